//! SCSI-3 persistent reservations: CDBs, parameter lists and response decoders.
//!
//! Storage takeover fences the peer on the disk itself: hamn registers its key and
//! PREEMPTs the peer's, so a peer that wakes up later gets RESERVATION CONFLICT instead
//! of writing. This module is the pure half of that: it builds the bytes to send and
//! decodes the bytes a target returns, without I/O, so it can be tested against the
//! standard's layouts and fuzzed. Nothing here may panic on what a device sent.
//!
//! Layouts are from SPC-4; clause and table numbers are those of draft spc4r17 (the one
//! the Linux LIO target cites), which later drafts renumbered:
//! PERSISTENT RESERVE IN 6.13 (service actions table 159, READ KEYS table 160,
//! READ RESERVATION tables 161-162, REPORT CAPABILITIES tables 165-167, READ FULL STATUS
//! tables 168-169), PERSISTENT RESERVE OUT 6.14 (service actions table 171, then the
//! basic parameter list), TransportIDs 7.5.4, INQUIRY 6.4, and the Device
//! Identification VPD page (designator types: table 459).

use std::fmt;
use std::str::FromStr;

/// Operation code of PERSISTENT RESERVE IN.
pub const PR_IN_OPCODE: u8 = 0x5e;
/// Operation code of PERSISTENT RESERVE OUT.
pub const PR_OUT_OPCODE: u8 = 0x5f;
/// Operation code of INQUIRY.
pub const INQUIRY_OPCODE: u8 = 0x12;
/// Length of the basic PERSISTENT RESERVE OUT parameter list (everything but
/// REGISTER AND MOVE, and REGISTER with SPEC_I_PT, which append TransportIDs).
pub const PR_OUT_BASIC_LEN: u32 = 24;
/// A PR IN allocation length that fits any realistic cluster (sg_persist and
/// multipathd use the same 8 KiB). Several targets reject small ones: tgtd answers
/// INVALID FIELD IN CDB to REPORT CAPABILITIES below 8 bytes, LIO below 6.
pub const DEFAULT_ALLOC_LEN: u16 = 8192;
/// SCOPE field value for the whole logical unit, the only scope SPC-4 keeps.
pub const LU_SCOPE: u8 = 0;

/// Why a response or an argument could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrDecodeError {
    /// The response is shorter than its fixed header.
    #[error("{what}: response is {got} bytes, the header alone needs {need}")]
    Short {
        what: &'static str,
        need: usize,
        got: usize,
    },
    /// The response was cut off by the allocation length where a partial answer would
    /// be misleading (a half reservation descriptor is not "no reservation").
    #[error(
        "{what}: response truncated to {got} bytes, {need} are needed; retry with a larger allocation length"
    )]
    Truncated {
        what: &'static str,
        need: usize,
        got: usize,
    },
    /// A length field that the standard does not allow.
    #[error("{what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    /// A reservation key given by the admin that is not hex (0x...) or decimal u64.
    #[error(
        "invalid reservation key {0:?}: expected 0x followed by up to 16 hex digits, or a decimal number"
    )]
    InvalidKey(String),
}

/// A reservation key. Displayed as sg_persist and multipath do, 0x%016x, so the keys
/// in hamn's logs can be grepped for in theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Key(pub u64);

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:016x}", self.0)
    }
}

impl FromStr for Key {
    type Err = PrDecodeError;

    /// "0x1234abcd" (any case, at most 16 digits) or plain decimal.
    fn from_str(s: &str) -> Result<Key, PrDecodeError> {
        let t = s.trim();
        let bad = || PrDecodeError::InvalidKey(s.to_string());
        if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            u64::from_str_radix(hex, 16).map(Key).map_err(|_| bad())
        } else {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse::<u64>().map(Key).map_err(|_| bad())
        }
    }
}

impl serde::Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Key {
    fn from_be(bytes: &[u8], at: usize) -> Option<Key> {
        let s = bytes.get(at..at.checked_add(8)?)?;
        let arr: [u8; 8] = s.try_into().ok()?;
        Some(Key(u64::from_be_bytes(arr)))
    }
}

/// Persistent reservation TYPE (the "persistent reservations type codes" table of the
/// READ RESERVATION clause, 6.13.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[repr(u8)]
pub enum PrType {
    WriteExclusive = 1,
    ExclusiveAccess = 3,
    WriteExclusiveRegistrantsOnly = 5,
    ExclusiveAccessRegistrantsOnly = 6,
    WriteExclusiveAllRegistrants = 7,
    ExclusiveAccessAllRegistrants = 8,
}

impl PrType {
    pub const ALL: [PrType; 6] = [
        PrType::WriteExclusive,
        PrType::ExclusiveAccess,
        PrType::WriteExclusiveRegistrantsOnly,
        PrType::ExclusiveAccessRegistrantsOnly,
        PrType::WriteExclusiveAllRegistrants,
        PrType::ExclusiveAccessAllRegistrants,
    ];

    /// The type for a TYPE nibble; `None` for 0 (no reservation / not holder),
    /// the obsolete 2 and 4, and reserved values.
    pub fn from_u8(v: u8) -> Option<PrType> {
        PrType::ALL.into_iter().find(|t| *t as u8 == v)
    }

    /// The standard's name, as sg_persist prints it.
    pub fn name(self) -> &'static str {
        match self {
            PrType::WriteExclusive => "Write Exclusive",
            PrType::ExclusiveAccess => "Exclusive Access",
            PrType::WriteExclusiveRegistrantsOnly => "Write Exclusive, registrants only",
            PrType::ExclusiveAccessRegistrantsOnly => "Exclusive Access, registrants only",
            PrType::WriteExclusiveAllRegistrants => "Write Exclusive, all registrants",
            PrType::ExclusiveAccessAllRegistrants => "Exclusive Access, all registrants",
        }
    }

    /// True for the "all registrants" types, where every registrant is a holder and
    /// READ RESERVATION reports the key as zero (SPC-4 5.7, "Reservations").
    pub fn all_registrants(self) -> bool {
        matches!(
            self,
            PrType::WriteExclusiveAllRegistrants | PrType::ExclusiveAccessAllRegistrants
        )
    }

    /// Bit of this type in the 16-bit PERSISTENT RESERVATION TYPE MASK (table 167):
    /// byte 4 holds WR_EX_AR(7) EX_AC_RO(6) WR_EX_RO(5) EX_AC(3) WR_EX(1), byte 5
    /// holds EX_AC_AR(0). Not the type code order.
    pub fn mask_bit(self) -> u16 {
        match self {
            PrType::WriteExclusiveAllRegistrants => 1 << 15,
            PrType::ExclusiveAccessRegistrantsOnly => 1 << 14,
            PrType::WriteExclusiveRegistrantsOnly => 1 << 13,
            PrType::ExclusiveAccess => 1 << 11,
            PrType::WriteExclusive => 1 << 9,
            PrType::ExclusiveAccessAllRegistrants => 1,
        }
    }
}

impl fmt::Display for PrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// PERSISTENT RESERVE IN service actions (table 159).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum InAction {
    ReadKeys = 0,
    ReadReservation = 1,
    ReportCapabilities = 2,
    ReadFullStatus = 3,
}

/// PERSISTENT RESERVE OUT service actions (table 171).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OutAction {
    Register = 0,
    Reserve = 1,
    Release = 2,
    Clear = 3,
    Preempt = 4,
    PreemptAndAbort = 5,
    RegisterAndIgnoreExistingKey = 6,
    RegisterAndMove = 7,
}

/// PERSISTENT RESERVE IN CDB (6.13.1): service action in byte 1 bits 4-0, allocation
/// length in bytes 7-8.
pub fn pr_in_cdb(action: InAction, alloc_len: u16) -> [u8; 10] {
    let [hi, lo] = alloc_len.to_be_bytes();
    [PR_IN_OPCODE, action as u8, 0, 0, 0, 0, 0, hi, lo, 0]
}

/// PERSISTENT RESERVE OUT CDB (6.14.1): service action in byte 1, SCOPE (bits 7-4,
/// always LU_SCOPE) and TYPE (bits 3-0) in byte 2, parameter list length in bytes 5-8.
/// `pr_type` matters for RESERVE, RELEASE, PREEMPT and PREEMPT AND ABORT; the target
/// ignores it for the others, so `None` sends 0.
pub fn pr_out_cdb(action: OutAction, pr_type: Option<PrType>, param_len: u32) -> [u8; 10] {
    let t = pr_type.map_or(0, |t| t as u8);
    let [a, b, c, d] = param_len.to_be_bytes();
    [
        PR_OUT_OPCODE,
        action as u8,
        (LU_SCOPE << 4) | (t & 0x0f),
        0,
        0,
        a,
        b,
        c,
        d,
        0,
    ]
}

/// The basic PERSISTENT RESERVE OUT parameter list (6.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutParams {
    /// RESERVATION KEY: this I_T nexus's current key (0 when registering afresh).
    pub key: Key,
    /// SERVICE ACTION RESERVATION KEY: the new key for REGISTER, the victim's key for
    /// PREEMPT.
    pub sa_key: Key,
    /// Activate persist through power loss (REGISTER only; honoured if PTPL_C).
    pub aptpl: bool,
    /// Register on all target ports (REGISTER only; needs ATP_C).
    pub all_tg_pt: bool,
    /// Specify initiator ports: TransportIDs follow the basic list. This encoder does
    /// not append them, so a target gets a bare 24-byte list with SPEC_I_PT set and
    /// will reject it (PARAMETER LIST LENGTH ERROR); the flag is here for completeness
    /// and for decoding.
    pub spec_i_pt: bool,
}

impl OutParams {
    /// Bytes 0-7 key, 8-15 service action key, 16-19 obsolete, byte 20 SPEC_I_PT(3)
    /// ALL_TG_PT(2) APTPL(0), 21 reserved, 22-23 obsolete.
    pub fn encode(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        let flags = (u8::from(self.spec_i_pt) << 3)
            | (u8::from(self.all_tg_pt) << 2)
            | u8::from(self.aptpl);
        for (dst, src) in out.iter_mut().zip(
            self.key
                .0
                .to_be_bytes()
                .into_iter()
                .chain(self.sa_key.0.to_be_bytes())
                .chain([0, 0, 0, 0, flags]),
        ) {
            *dst = src;
        }
        out
    }

    /// Decode a basic parameter list (used by tests and target simulators).
    pub fn decode(data: &[u8]) -> Result<OutParams, PrDecodeError> {
        const WHAT: &str = "PERSISTENT RESERVE OUT parameter list";
        let short = || PrDecodeError::Short {
            what: WHAT,
            need: 24,
            got: data.len(),
        };
        if data.len() < 24 {
            return Err(short());
        }
        let key = Key::from_be(data, 0).ok_or_else(short)?;
        let sa_key = Key::from_be(data, 8).ok_or_else(short)?;
        let flags = data.get(20).copied().ok_or_else(short)?;
        Ok(OutParams {
            key,
            sa_key,
            aptpl: flags & 0x01 != 0,
            all_tg_pt: flags & 0x04 != 0,
            spec_i_pt: flags & 0x08 != 0,
        })
    }
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    let s = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(s.try_into().ok()?))
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let s = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes(s.try_into().ok()?))
}

/// PRGENERATION and ADDITIONAL LENGTH, the 8-byte header of READ KEYS, READ
/// RESERVATION and READ FULL STATUS. Returns (generation, additional length, the
/// bytes after the header that are both present and inside the additional length,
/// whether the additional length reaches past the data).
fn header<'a>(
    what: &'static str,
    data: &'a [u8],
) -> Result<(u32, u32, &'a [u8], bool), PrDecodeError> {
    let short = || PrDecodeError::Short {
        what,
        need: 8,
        got: data.len(),
    };
    let generation = be32(data, 0).ok_or_else(short)?;
    let additional = be32(data, 4).ok_or_else(short)?;
    let rest = data.get(8..).ok_or_else(short)?;
    let want = usize::try_from(additional).unwrap_or(usize::MAX);
    let truncated = want > rest.len();
    let body = rest.get(..want.min(rest.len())).unwrap_or(rest);
    Ok((generation, additional, body, truncated))
}

/// READ KEYS response (table 160): every registered key, one per registered I_T
/// nexus, so the same key appears once per path of a multipathed initiator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReadKeys {
    /// PRGENERATION: bumped by every REGISTER/PREEMPT/CLEAR; lets a caller detect a
    /// change between two reads.
    pub generation: u32,
    pub keys: Vec<Key>,
    /// The target had more keys than the allocation length let through; re-issue with
    /// at least `8 + additional_length` bytes.
    pub truncated: bool,
    pub additional_length: u32,
}

impl ReadKeys {
    pub fn decode(data: &[u8]) -> Result<ReadKeys, PrDecodeError> {
        const WHAT: &str = "READ KEYS";
        let (generation, additional_length, body, truncated) = header(WHAT, data)?;
        if additional_length % 8 != 0 {
            return Err(PrDecodeError::Malformed {
                what: WHAT,
                detail: format!("additional length {additional_length} is not a multiple of 8"),
            });
        }
        let keys = body
            .chunks_exact(8)
            .filter_map(|c| Key::from_be(c, 0))
            .collect();
        Ok(ReadKeys {
            generation,
            keys,
            truncated,
            additional_length,
        })
    }
}

/// The persistent reservation, as READ RESERVATION reports it (table 162).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reservation {
    /// The holder's key; 0 for the all-registrants types, where every registrant holds
    /// the reservation and no single key does (SPC-4 5.7, "Reservations").
    pub key: Key,
    pub scope: u8,
    /// `None` when the target reports a type this code does not know.
    pub pr_type: Option<PrType>,
    pub raw_type: u8,
}

/// READ RESERVATION response (table 161).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReadReservation {
    pub generation: u32,
    pub reservation: Option<Reservation>,
}

impl ReadReservation {
    /// Additional length 0 means no reservation, 16 means one descriptor. A descriptor
    /// cut off by the allocation length is an error, not `None`: "no reservation" is
    /// the one answer that must never be guessed.
    pub fn decode(data: &[u8]) -> Result<ReadReservation, PrDecodeError> {
        const WHAT: &str = "READ RESERVATION";
        let (generation, additional, body, _) = header(WHAT, data)?;
        if additional == 0 {
            return Ok(ReadReservation {
                generation,
                reservation: None,
            });
        }
        if additional < 16 {
            return Err(PrDecodeError::Malformed {
                what: WHAT,
                detail: format!("additional length {additional}, expected 0 or 16"),
            });
        }
        let truncated = || PrDecodeError::Truncated {
            what: WHAT,
            need: 24,
            got: data.len(),
        };
        // Descriptor: bytes 8-15 key, 16-19 obsolete, 20 reserved, 21 SCOPE|TYPE,
        // 22-23 obsolete (offsets below are relative to byte 8).
        let key = Key::from_be(body, 0).ok_or_else(truncated)?;
        let scope_type = body.get(13).copied().ok_or_else(truncated)?;
        let raw_type = scope_type & 0x0f;
        Ok(ReadReservation {
            generation,
            reservation: Some(Reservation {
                key,
                scope: scope_type >> 4,
                pr_type: PrType::from_u8(raw_type),
                raw_type,
            }),
        })
    }
}

/// REPORT CAPABILITIES response (tables 165-167).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Capabilities {
    /// Replace lost reservation capable (byte 2 bit 7, added late in SPC-4).
    pub rlr_c: bool,
    /// Compatible reservation handling: SPC-2 RESERVE/RELEASE coexist with PR.
    pub crh: bool,
    /// SPEC_I_PT supported in REGISTER.
    pub sip_c: bool,
    /// ALL_TG_PT supported in REGISTER.
    pub atp_c: bool,
    /// Persist through power loss supported.
    pub ptpl_c: bool,
    /// Type mask valid: without it `type_mask` is empty, even if the target filled
    /// the bytes (old tgtd did exactly that).
    pub tmv: bool,
    /// ALLOW COMMANDS (byte 3 bits 6-4, table 166).
    pub allow_commands: u8,
    /// Persist through power loss currently active.
    pub ptpl_a: bool,
    /// The reservation types the target supports, in type code order.
    pub type_mask: Vec<PrType>,
    /// Fewer than the 8 bytes the LENGTH field announced arrived (only the mask and
    /// flags that arrived are reported).
    pub truncated: bool,
}

impl Capabilities {
    /// Byte 0-1 LENGTH (the total length, 8, not an additional length), byte 2 flags,
    /// byte 3 TMV/ALLOW COMMANDS/PTPL_A, bytes 4-5 type mask, 6-7 reserved.
    pub fn decode(data: &[u8]) -> Result<Capabilities, PrDecodeError> {
        const WHAT: &str = "REPORT CAPABILITIES";
        let short = || PrDecodeError::Short {
            what: WHAT,
            need: 4,
            got: data.len(),
        };
        let length = be16(data, 0).ok_or_else(short)?;
        let b2 = data.get(2).copied().ok_or_else(short)?;
        let b3 = data.get(3).copied().ok_or_else(short)?;
        let tmv = b3 & 0x80 != 0;
        let mask = be16(data, 4);
        let type_mask = match (tmv, mask) {
            (true, Some(m)) => PrType::ALL
                .into_iter()
                .filter(|t| m & t.mask_bit() != 0)
                .collect(),
            _ => Vec::new(),
        };
        Ok(Capabilities {
            rlr_c: b2 & 0x80 != 0,
            crh: b2 & 0x10 != 0,
            sip_c: b2 & 0x08 != 0,
            atp_c: b2 & 0x04 != 0,
            ptpl_c: b2 & 0x01 != 0,
            tmv,
            allow_commands: (b3 >> 4) & 0x07,
            ptpl_a: b3 & 0x01 != 0,
            type_mask,
            truncated: data.len() < usize::from(length.min(8)) || (tmv && mask.is_none()),
        })
    }
}

/// One registration in READ FULL STATUS (table 169).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FullStatusEntry {
    pub key: Key,
    /// R_HOLDER: this registrant holds the reservation (all of them, for the
    /// all-registrants types).
    pub holder: bool,
    /// ALL_TG_PT: registered through every target port; `relative_target_port` is
    /// then meaningless.
    pub all_tg_pt: bool,
    /// SCOPE and TYPE are only meaningful when `holder`.
    pub scope: u8,
    pub pr_type: Option<PrType>,
    pub raw_type: u8,
    pub relative_target_port: u16,
    /// The registrant's TransportID (7.5.4), raw.
    pub transport_id: Vec<u8>,
    /// The iSCSI initiator name, when the TransportID is iSCSI (protocol 5); the
    /// ",i,0x<ISID>" of the port format is stripped.
    pub initiator: Option<String>,
}

/// READ FULL STATUS response (table 168).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FullStatus {
    pub generation: u32,
    pub entries: Vec<FullStatusEntry>,
    /// Not every descriptor arrived; re-issue with `8 + additional_length` bytes.
    pub truncated: bool,
    pub additional_length: u32,
}

impl FullStatus {
    /// Descriptors are variable length: 24 fixed bytes (key 0-7, reserved 8-11, byte 12
    /// ALL_TG_PT(1) R_HOLDER(0), 13 SCOPE|TYPE, 14-17 reserved, 18-19 RELATIVE TARGET
    /// PORT IDENTIFIER, 20-23 ADDITIONAL DESCRIPTOR LENGTH) then that many bytes of
    /// TransportID. A descriptor cut off by the allocation length ends the list with
    /// `truncated`; one that overruns the additional length is malformed.
    pub fn decode(data: &[u8]) -> Result<FullStatus, PrDecodeError> {
        const WHAT: &str = "READ FULL STATUS";
        let (generation, additional_length, body, mut truncated) = header(WHAT, data)?;
        let mut entries = Vec::new();
        let mut at = 0usize;
        while at < body.len() {
            let Some(fixed) = body.get(at..at + 24) else {
                if truncated {
                    break;
                }
                return Err(PrDecodeError::Malformed {
                    what: WHAT,
                    detail: format!(
                        "descriptor at offset {} overruns the additional length",
                        at + 8
                    ),
                });
            };
            let (Some(key), Some(&flags), Some(&scope_type), Some(port), Some(tid_len)) = (
                Key::from_be(fixed, 0),
                fixed.get(12),
                fixed.get(13),
                be16(fixed, 18),
                be32(fixed, 20),
            ) else {
                break;
            };
            let tid_start = at + 24;
            let tid_end = usize::try_from(tid_len)
                .ok()
                .and_then(|n| tid_start.checked_add(n));
            let Some(tid) = tid_end.and_then(|end| body.get(tid_start..end)) else {
                if truncated {
                    break;
                }
                return Err(PrDecodeError::Malformed {
                    what: WHAT,
                    detail: format!(
                        "TransportID of {tid_len} bytes at offset {} overruns the additional length",
                        tid_start + 8
                    ),
                });
            };
            let raw_type = scope_type & 0x0f;
            entries.push(FullStatusEntry {
                key,
                holder: flags & 0x01 != 0,
                all_tg_pt: flags & 0x02 != 0,
                scope: scope_type >> 4,
                pr_type: PrType::from_u8(raw_type),
                raw_type,
                relative_target_port: port,
                transport_id: tid.to_vec(),
                initiator: iscsi_initiator(tid),
            });
            at = tid_start + tid.len();
        }
        // A list that ends exactly where the data ends but short of the additional
        // length is still a truncation.
        truncated |= usize::try_from(additional_length).map_or(true, |n| n > body.len());
        Ok(FullStatus {
            generation,
            entries,
            truncated,
            additional_length,
        })
    }
}

/// The iSCSI name in an iSCSI TransportID (7.5.4.6): byte 0 FORMAT CODE (bits 7-6)
/// and PROTOCOL IDENTIFIER (bits 3-0, 5 = iSCSI), bytes 2-3 ADDITIONAL LENGTH, the
/// null-terminated name from byte 4. Format 01b appends ",i,0x" and the ISID; older
/// LIO even put a NUL between the name and the separator, so the name ends at the
/// first NUL or the first ",i,0x", whichever comes first.
pub fn iscsi_initiator(tid: &[u8]) -> Option<String> {
    let b0 = *tid.first()?;
    if b0 & 0x0f != 5 {
        return None;
    }
    let additional = usize::from(be16(tid, 2)?);
    let rest = tid.get(4..)?;
    let field = rest.get(..additional.min(rest.len()))?;
    let name = field.split(|&b| b == 0).next()?;
    let name = match name
        .windows(5)
        .position(|w| w.eq_ignore_ascii_case(b",i,0x"))
    {
        Some(p) => name.get(..p)?,
        None => name,
    };
    if name.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(name).into_owned())
}

/// Standard INQUIRY CDB (6.4.1), EVPD=0. The allocation length is two bytes since
/// SPC-3 but only the low one is used here: SPC-2 targets read byte 3 as reserved.
pub fn inquiry_cdb(alloc: u8) -> [u8; 6] {
    [INQUIRY_OPCODE, 0, 0, 0, alloc, 0]
}

/// Allocation length of [`vpd83_cdb`]: below 256 for the same SPC-2 reason, and a
/// multiple of 4 as sg3_utils uses for VPD pages.
pub const VPD83_ALLOC_LEN: u8 = 252;

/// INQUIRY for the Device Identification VPD page (EVPD=1, page 0x83).
pub fn vpd83_cdb() -> [u8; 6] {
    [INQUIRY_OPCODE, 0x01, 0x83, 0, VPD83_ALLOC_LEN, 0]
}

/// Standard INQUIRY data, the parts used to name a disk in messages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Inquiry {
    /// PERIPHERAL QUALIFIER: 0 = LU present, 3 = no LU at this LUN.
    pub peripheral_qualifier: u8,
    /// PERIPHERAL DEVICE TYPE: 0 = direct access block device.
    pub peripheral_type: u8,
    pub vendor: String,
    pub product: String,
    pub revision: String,
}

fn ascii_field(data: &[u8], from: usize, to: usize) -> String {
    let end = to.min(data.len());
    let bytes = data.get(from..end).unwrap_or(&[]);
    String::from_utf8_lossy(bytes)
        .trim_matches(|c: char| c == ' ' || c == '\0')
        .to_string()
}

/// Parse standard INQUIRY data (6.4.2): byte 0 qualifier/type, byte 4 ADDITIONAL
/// LENGTH, vendor 8-15, product 16-31, revision 32-35, space padded. Fields past the
/// data (or the additional length) are empty rather than an error: a name is a
/// courtesy, not a decision input. `None` only for an empty response.
pub fn parse_inquiry(data: &[u8]) -> Option<Inquiry> {
    let b0 = *data.first()?;
    let len = match data.get(4) {
        Some(&add) => data.len().min(5 + usize::from(add)),
        None => data.len(),
    };
    let d = data.get(..len)?;
    Some(Inquiry {
        peripheral_qualifier: b0 >> 5,
        peripheral_type: b0 & 0x1f,
        vendor: ascii_field(d, 8, 16),
        product: ascii_field(d, 16, 32),
        revision: ascii_field(d, 32, 36),
    })
}

/// The LU's NAA designator from the Device Identification VPD page, as lower
/// case hex, e.g. "6001405..." for LIO. udev's scsi_id, and so multipath, print the
/// same designator prefixed with "3" (the designator type), so a multipath WWID
/// "36001405..." matches `format!("3{naa}")`.
///
/// Only designators associated with the logical unit (ASSOCIATION 0), of type NAA
/// (3) and binary code set (1) count: target port and port group designators are
/// per path and would not match across paths. When several are present the order of
/// preference is that of scsi_id: NAA 6 (IEEE registered extended), then 5, then the
/// rest.
pub fn parse_vpd83_naa(data: &[u8]) -> Option<String> {
    if *data.get(1)? != 0x83 {
        return None;
    }
    let page_len = usize::from(be16(data, 2)?);
    let rest = data.get(4..)?;
    let page = rest.get(..page_len.min(rest.len()))?;
    let mut best: Option<(u8, &[u8])> = None;
    let mut at = 0usize;
    while let (Some(&b0), Some(&b1), Some(&len)) =
        (page.get(at), page.get(at + 1), page.get(at + 3))
    {
        let start = at + 4;
        let end = start + usize::from(len);
        let Some(designator) = page.get(start..end) else {
            break;
        };
        let code_set = b0 & 0x0f;
        let association = (b1 >> 4) & 0x03;
        let designator_type = b1 & 0x0f;
        if code_set == 1
            && association == 0
            && designator_type == 3
            && let Some(&first) = designator.first()
        {
            let rank = match first >> 4 {
                6 => 3,
                5 => 2,
                _ => 1,
            };
            if best.is_none_or(|(r, _)| rank > r) {
                best = Some((rank, designator));
            }
        }
        at = end;
    }
    let (_, d) = best?;
    Some(d.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_display_and_parse() {
        assert_eq!(Key(0x123abc).to_string(), "0x0000000000123abc");
        assert_eq!("0x123ABC".parse::<Key>(), Ok(Key(0x123abc)));
        assert_eq!("0X1".parse::<Key>(), Ok(Key(1)));
        assert_eq!("4660".parse::<Key>(), Ok(Key(0x1234)));
        assert_eq!("0xffffffffffffffff".parse::<Key>(), Ok(Key(u64::MAX)));
        for bad in [
            "",
            "0x",
            "0x1ffffffffffffffff",
            "-1",
            "+1",
            "12a",
            "0xg",
            "18446744073709551616",
        ] {
            assert!(bad.parse::<Key>().is_err(), "{bad}");
        }
        let k = Key(0xabc);
        assert_eq!(k.to_string().parse::<Key>(), Ok(k));
    }

    #[test]
    fn pr_type_codes() {
        for t in PrType::ALL {
            assert_eq!(PrType::from_u8(t as u8), Some(t));
        }
        for v in [0, 2, 4, 9, 15] {
            assert_eq!(PrType::from_u8(v), None);
        }
        assert_eq!(
            PrType::WriteExclusiveRegistrantsOnly.name(),
            "Write Exclusive, registrants only"
        );
    }

    #[test]
    fn cdbs() {
        // PR IN READ FULL STATUS, allocation length 8192 = 0x2000 in bytes 7-8.
        assert_eq!(
            pr_in_cdb(InAction::ReadFullStatus, 8192),
            [0x5e, 0x03, 0, 0, 0, 0, 0, 0x20, 0x00, 0]
        );
        // PR OUT PREEMPT, type 5 (WERO), LU scope, 24-byte list in bytes 5-8: what
        // `sg_persist --out --preempt --prout-type=5 ...` sends.
        assert_eq!(
            pr_out_cdb(
                OutAction::Preempt,
                Some(PrType::WriteExclusiveRegistrantsOnly),
                PR_OUT_BASIC_LEN
            ),
            [0x5f, 0x04, 0x05, 0, 0, 0, 0, 0, 24, 0]
        );
        assert_eq!(
            pr_out_cdb(OutAction::RegisterAndIgnoreExistingKey, None, 24),
            [0x5f, 0x06, 0x00, 0, 0, 0, 0, 0, 24, 0]
        );
        assert_eq!(inquiry_cdb(96), [0x12, 0, 0, 0, 96, 0]);
        assert_eq!(vpd83_cdb(), [0x12, 1, 0x83, 0, 252, 0]);
    }

    #[test]
    fn out_params_layout() {
        let p = OutParams {
            key: Key(0x1122334455667788),
            sa_key: Key(0xabcd),
            aptpl: true,
            all_tg_pt: true,
            spec_i_pt: false,
        };
        let b = p.encode();
        assert_eq!(
            b,
            [
                0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // RESERVATION KEY
                0, 0, 0, 0, 0, 0, 0xab, 0xcd, // SERVICE ACTION RESERVATION KEY
                0, 0, 0, 0, // obsolete
                0x05, 0, 0, 0, // ALL_TG_PT | APTPL
            ]
        );
        assert_eq!(OutParams::decode(&b), Ok(p));
        assert!(OutParams::decode(&b[..23]).is_err());
    }

    #[test]
    fn read_keys_fence_mpath_example() {
        // `sg_persist -n -i -k -d /dev/mapper/mpathb` output published in a public
        // sos-report parser test (fence_mpath keys, two paths per node):
        //   PR generation=0xc2, 4 registered reservation keys follow:
        //     0xfdfe0001 / 0xfdfe0001 / 0xfdfe0000 / 0xfdfe0000
        // rebuilt as the table 160 bytes the target sent.
        let mut d = vec![0, 0, 0, 0xc2, 0, 0, 0, 32];
        for k in [0xfdfe0001u64, 0xfdfe0001, 0xfdfe0000, 0xfdfe0000] {
            d.extend_from_slice(&k.to_be_bytes());
        }
        let r = ReadKeys::decode(&d).unwrap();
        assert_eq!(r.generation, 0xc2);
        assert_eq!(
            r.keys,
            vec![
                Key(0xfdfe0001),
                Key(0xfdfe0001),
                Key(0xfdfe0000),
                Key(0xfdfe0000)
            ]
        );
        assert!(!r.truncated);
        // "PR generation=0x1b, there are NO registered reservation keys" (LIO).
        let r = ReadKeys::decode(&[0, 0, 0, 0x1b, 0, 0, 0, 0]).unwrap();
        assert_eq!((r.generation, r.keys.len(), r.truncated), (0x1b, 0, false));
    }

    #[test]
    fn read_keys() {
        // Table 160: two registrations of key 0x123abc (two paths), generation 4.
        let d = [
            0, 0, 0, 4, 0, 0, 0, 16, //
            0, 0, 0, 0, 0, 0x12, 0x3a, 0xbc, //
            0, 0, 0, 0, 0, 0x12, 0x3a, 0xbc,
        ];
        let r = ReadKeys::decode(&d).unwrap();
        assert_eq!(r.generation, 4);
        assert_eq!(r.keys, vec![Key(0x123abc), Key(0x123abc)]);
        assert!(!r.truncated);

        // Allocation length 16: header plus one key of the two.
        let r = ReadKeys::decode(&d[..16]).unwrap();
        assert_eq!(r.keys, vec![Key(0x123abc)]);
        assert!(r.truncated);
        assert_eq!(r.additional_length, 16);

        // Allocation length 8 (a common "how big is it" probe).
        let r = ReadKeys::decode(&d[..8]).unwrap();
        assert!(r.keys.is_empty() && r.truncated);

        // No registrations.
        let r = ReadKeys::decode(&[0, 0, 0, 9, 0, 0, 0, 0]).unwrap();
        assert!(r.keys.is_empty() && !r.truncated);

        assert!(matches!(
            ReadKeys::decode(&d[..7]),
            Err(PrDecodeError::Short { .. })
        ));
        let mut bad = d;
        bad[7] = 12;
        assert!(matches!(
            ReadKeys::decode(&bad),
            Err(PrDecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn read_reservation() {
        // Tables 161-162: key 0x123abc holds WERO (5), LU scope.
        let d = [
            0, 0, 0, 4, 0, 0, 0, 16, //
            0, 0, 0, 0, 0, 0x12, 0x3a, 0xbc, //
            0, 0, 0, 0, 0, 0x05, 0, 0,
        ];
        let r = ReadReservation::decode(&d).unwrap();
        assert_eq!(
            r.reservation,
            Some(Reservation {
                key: Key(0x123abc),
                scope: 0,
                pr_type: Some(PrType::WriteExclusiveRegistrantsOnly),
                raw_type: 5
            })
        );
        let none = ReadReservation::decode(&[0, 0, 0, 4, 0, 0, 0, 0]).unwrap();
        assert_eq!(none.reservation, None);
        assert!(matches!(
            ReadReservation::decode(&d[..20]),
            Err(PrDecodeError::Truncated { .. })
        ));
        // Scope/type byte is byte 21: 22 bytes suffice.
        assert!(ReadReservation::decode(&d[..22]).is_ok());
        let mut bad = d;
        bad[7] = 8;
        assert!(matches!(
            ReadReservation::decode(&bad),
            Err(PrDecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn report_capabilities_lio() {
        // What LIO (target_core_pr.c) returns with APTPL active: CRH SIP_C ATP_C
        // PTPL_C, TMV, ALLOW COMMANDS 001b, PTPL_A, all six types.
        let c = Capabilities::decode(&[0x00, 0x08, 0x1d, 0x91, 0xea, 0x01, 0, 0]).unwrap();
        assert!(c.crh && c.sip_c && c.atp_c && c.ptpl_c && c.tmv && c.ptpl_a);
        assert!(!c.rlr_c);
        assert_eq!(c.allow_commands, 1);
        assert_eq!(c.type_mask, PrType::ALL.to_vec());
        assert!(!c.truncated);
    }

    #[test]
    fn report_capabilities_old_tgtd_without_tmv() {
        // Old tgtd filled the mask but left TMV clear: the mask must then be ignored.
        let c = Capabilities::decode(&[0x00, 0x08, 0, 0, 0xea, 0x01, 0, 0]).unwrap();
        assert!(!c.tmv);
        assert!(c.type_mask.is_empty());
        // Only WR_EX and EX_AC_AR.
        let c = Capabilities::decode(&[0x00, 0x08, 0, 0x80, 0x02, 0x01, 0, 0]).unwrap();
        assert_eq!(
            c.type_mask,
            vec![
                PrType::WriteExclusive,
                PrType::ExclusiveAccessAllRegistrants
            ]
        );
        let c = Capabilities::decode(&[0x00, 0x08, 0, 0x80]).unwrap();
        assert!(c.truncated && c.type_mask.is_empty());
        assert!(Capabilities::decode(&[0x00, 0x08, 0]).is_err());
    }

    /// An iSCSI TransportID, format `fmt`, padded to a multiple of 4 (7.5.4.6).
    fn iscsi_tid(fmt: u8, name: &str) -> Vec<u8> {
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        while !n.len().is_multiple_of(4) {
            n.push(0);
        }
        let mut t = vec![(fmt << 6) | 0x05, 0];
        t.extend_from_slice(&(n.len() as u16).to_be_bytes());
        t.extend_from_slice(&n);
        t
    }

    fn full_status_descriptor(key: u64, flags: u8, st: u8, port: u16, tid: &[u8]) -> Vec<u8> {
        let mut d = key.to_be_bytes().to_vec();
        d.extend_from_slice(&[0, 0, 0, 0, flags, st, 0, 0, 0, 0]);
        d.extend_from_slice(&port.to_be_bytes());
        d.extend_from_slice(&(tid.len() as u32).to_be_bytes());
        d.extend_from_slice(tid);
        d
    }

    fn full_status(gen_: u32, descs: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = descs.concat();
        let mut d = gen_.to_be_bytes().to_vec();
        d.extend_from_slice(&(body.len() as u32).to_be_bytes());
        d.extend_from_slice(&body);
        d
    }

    #[test]
    fn read_full_status() {
        // Tables 168-169: the holder (WERO, registered via port 1, port-format iSCSI
        // TransportID) and a plain registrant (all target ports, device format).
        let a = full_status_descriptor(
            0x123abc,
            0x01,
            0x05,
            1,
            &iscsi_tid(1, "iqn.1994-05.com.redhat:node1,i,0x23d000000001"),
        );
        let b = full_status_descriptor(
            0x456def,
            0x02,
            0x00,
            0,
            &iscsi_tid(0, "iqn.1994-05.com.redhat:node2"),
        );
        let d = full_status(7, &[a.clone(), b.clone()]);
        let s = FullStatus::decode(&d).unwrap();
        assert_eq!(s.generation, 7);
        assert!(!s.truncated);
        assert_eq!(s.entries.len(), 2);
        let e0 = &s.entries[0];
        assert_eq!(e0.key, Key(0x123abc));
        assert!(e0.holder && !e0.all_tg_pt);
        assert_eq!(e0.pr_type, Some(PrType::WriteExclusiveRegistrantsOnly));
        assert_eq!(e0.relative_target_port, 1);
        assert_eq!(
            e0.initiator.as_deref(),
            Some("iqn.1994-05.com.redhat:node1")
        );
        let e1 = &s.entries[1];
        assert!(!e1.holder && e1.all_tg_pt);
        assert_eq!(e1.pr_type, None);
        assert_eq!(
            e1.initiator.as_deref(),
            Some("iqn.1994-05.com.redhat:node2")
        );

        // Cut inside the second descriptor: the first survives, truncated is set.
        let cut = FullStatus::decode(&d[..8 + a.len() + 30]).unwrap();
        assert_eq!(cut.entries.len(), 1);
        assert!(cut.truncated);
        // Cut exactly between descriptors.
        let cut = FullStatus::decode(&d[..8 + a.len()]).unwrap();
        assert_eq!(cut.entries.len(), 1);
        assert!(cut.truncated);

        // Additional length ending inside a descriptor while all data is there.
        let mut bad = d.clone();
        let short = (a.len() + 10) as u32;
        bad[4..8].copy_from_slice(&short.to_be_bytes());
        assert!(matches!(
            FullStatus::decode(&bad),
            Err(PrDecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn transport_ids() {
        // Older LIO: NUL between the name and ",i,0x".
        let mut t = vec![0x45, 0, 0, 24];
        t.extend_from_slice(b"iqn.x:a\0,i,0x1234\0\0\0\0\0\0\0");
        assert_eq!(iscsi_initiator(&t).as_deref(), Some("iqn.x:a"));
        // Fibre Channel (protocol 0) is not iSCSI.
        let fc = [0u8; 24];
        assert_eq!(iscsi_initiator(&fc), None);
        // Additional length shorter than the name: the name is cut there.
        let t = [0x05, 0, 0, 3, b'i', b'q', b'n', b'.', b'x'];
        assert_eq!(iscsi_initiator(&t).as_deref(), Some("iqn"));
        assert_eq!(iscsi_initiator(&[0x05, 0, 0, 4, 0, 0, 0, 0]), None);
    }

    #[test]
    fn inquiry() {
        let mut d = vec![0x00, 0x00, 0x06, 0x02, 31, 0, 0, 0];
        d.extend_from_slice(b"LIO-ORG ");
        d.extend_from_slice(b"disk01          ");
        d.extend_from_slice(b"4.0 ");
        let i = parse_inquiry(&d).unwrap();
        assert_eq!(i.vendor, "LIO-ORG");
        assert_eq!(i.product, "disk01");
        assert_eq!(i.revision, "4.0");
        assert_eq!((i.peripheral_qualifier, i.peripheral_type), (0, 0));
        // Truncated at 20 bytes: partial product, no revision.
        let i = parse_inquiry(&d[..20]).unwrap();
        assert_eq!((i.product.as_str(), i.revision.as_str()), ("disk", ""));
        // No LU at this LUN.
        assert_eq!(parse_inquiry(&[0x7f]).unwrap().peripheral_qualifier, 3);
        assert_eq!(parse_inquiry(&[]), None);
    }

    #[test]
    fn vpd83() {
        // Page 0x83 as LIO returns it (abridged): a T10 vendor ID designator (type 1,
        // ASCII), the NAA 6 LU designator, and a relative target port designator
        // (association 1) that must be ignored.
        let mut body = vec![0x02, 0x01, 0x00, 0x08];
        body.extend_from_slice(b"LIO-ORG ");
        body.extend_from_slice(&[0x01, 0x03, 0x00, 0x10]);
        body.extend_from_slice(&[
            0x60, 0x01, 0x40, 0x5a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde,
            0xf0, 0x12,
        ]);
        body.extend_from_slice(&[0x61, 0x94, 0x00, 0x04, 0, 0, 0, 1]);
        let mut d = vec![0x00, 0x83];
        d.extend_from_slice(&(body.len() as u16).to_be_bytes());
        d.extend_from_slice(&body);
        assert_eq!(
            parse_vpd83_naa(&d).as_deref(),
            Some("6001405abcdef0123456789abcdef012")
        );

        // NAA 5 before NAA 6 in the page: 6 still wins.
        let mut body2 = vec![0x01, 0x03, 0x00, 0x08, 0x50, 1, 2, 3, 4, 5, 6, 7];
        body2.extend_from_slice(&body);
        let mut d2 = vec![0x00, 0x83];
        d2.extend_from_slice(&(body2.len() as u16).to_be_bytes());
        d2.extend_from_slice(&body2);
        assert_eq!(
            parse_vpd83_naa(&d2).as_deref(),
            Some("6001405abcdef0123456789abcdef012")
        );

        // Wrong page, or the NAA designator cut off: nothing.
        let mut other = d.clone();
        other[1] = 0x80;
        assert_eq!(parse_vpd83_naa(&other), None);
        assert_eq!(parse_vpd83_naa(&d[..20]), None);
    }
}
