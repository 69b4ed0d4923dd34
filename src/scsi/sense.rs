//! SCSI status bytes and sense data, turned into typed errors.
//!
//! The takeover decides what to do from *why* a command failed: a RESERVATION CONFLICT
//! means the peer still holds the disk, a UNIT ATTENTION after a preempt is expected
//! and retried, an ILLEGAL REQUEST with "invalid command operation code" means the
//! target has no persistent reservations at all. So the bytes the device sent back are
//! decoded here, without I/O, and nothing a device sends may panic this code.
//!
//! Layouts are from SPC-4 (T10/BSR INCITS 513) clause 4.5, "Sense data": descriptor
//! format (4.5.2), the sense key specific descriptor and its field pointer form
//! (4.5.2.4), fixed format (4.5.3) and the sense keys (4.5.6). Table numbers move
//! between SPC-4 drafts, so the comments below cite clauses. Status codes are from
//! SAM-5 clause 5.3 ("Status").
//!
//! The split of the Linux SG_IO result into `status`, `host_status` and
//! `driver_status` follows `<scsi/sg.h>` and sg3_utils' `sg_err_category_new()`.

use std::fmt;

/// The SCSI status byte (SAM-5 5.3).
///
/// Only the values hamn reacts to have their own variant; everything else keeps the
/// raw byte so that a log line still says what the target sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Status {
    Good,
    CheckCondition,
    ConditionMet,
    Busy,
    ReservationConflict,
    TaskSetFull,
    TaskAborted,
    /// Any other status, raw (e.g. 0x22 COMMAND TERMINATED, 0x30 ACA ACTIVE).
    Other(u8),
}

impl Status {
    /// Decode a status byte. Bits 0, 6 and 7 were vendor/reserved in older SCSI and
    /// some HBAs leave junk there, so they are masked off (as sg3_utils does with
    /// `& 0x7e`) before matching; `Other` keeps the unmasked byte.
    pub fn from_byte(b: u8) -> Status {
        match b & 0x7e {
            0x00 => Status::Good,
            0x02 => Status::CheckCondition,
            0x04 => Status::ConditionMet,
            0x08 => Status::Busy,
            0x18 => Status::ReservationConflict,
            0x28 => Status::TaskSetFull,
            0x40 => Status::TaskAborted,
            _ => Status::Other(b),
        }
    }

    /// The status byte as the standard defines it.
    pub fn to_byte(self) -> u8 {
        match self {
            Status::Good => 0x00,
            Status::CheckCondition => 0x02,
            Status::ConditionMet => 0x04,
            Status::Busy => 0x08,
            Status::ReservationConflict => 0x18,
            Status::TaskSetFull => 0x28,
            Status::TaskAborted => 0x40,
            Status::Other(b) => b,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Good => f.write_str("GOOD"),
            Status::CheckCondition => f.write_str("CHECK CONDITION"),
            Status::ConditionMet => f.write_str("CONDITION MET"),
            Status::Busy => f.write_str("BUSY"),
            Status::ReservationConflict => f.write_str("RESERVATION CONFLICT"),
            Status::TaskSetFull => f.write_str("TASK SET FULL"),
            Status::TaskAborted => f.write_str("TASK ABORTED"),
            Status::Other(0x22) => f.write_str("COMMAND TERMINATED (0x22)"),
            Status::Other(0x30) => f.write_str("ACA ACTIVE (0x30)"),
            Status::Other(b) => write!(f, "status 0x{b:02x}"),
        }
    }
}

/// The sense key (SPC-4 4.5.6, "Sense key and sense code definitions").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum SenseKey {
    NoSense,
    RecoveredError,
    NotReady,
    MediumError,
    HardwareError,
    IllegalRequest,
    UnitAttention,
    DataProtect,
    BlankCheck,
    VendorSpecific,
    CopyAborted,
    AbortedCommand,
    VolumeOverflow,
    Miscompare,
    /// 0x0C (obsolete EQUAL) and 0x0F (reserved in SPC-4, COMPLETED in SPC-5).
    Other(u8),
}

impl SenseKey {
    /// Decode the low nibble of a sense key byte.
    pub fn from_nibble(b: u8) -> SenseKey {
        match b & 0x0f {
            0x0 => SenseKey::NoSense,
            0x1 => SenseKey::RecoveredError,
            0x2 => SenseKey::NotReady,
            0x3 => SenseKey::MediumError,
            0x4 => SenseKey::HardwareError,
            0x5 => SenseKey::IllegalRequest,
            0x6 => SenseKey::UnitAttention,
            0x7 => SenseKey::DataProtect,
            0x8 => SenseKey::BlankCheck,
            0x9 => SenseKey::VendorSpecific,
            0xa => SenseKey::CopyAborted,
            0xb => SenseKey::AbortedCommand,
            0xd => SenseKey::VolumeOverflow,
            0xe => SenseKey::Miscompare,
            other => SenseKey::Other(other),
        }
    }
}

impl fmt::Display for SenseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            SenseKey::NoSense => "NO SENSE",
            SenseKey::RecoveredError => "RECOVERED ERROR",
            SenseKey::NotReady => "NOT READY",
            SenseKey::MediumError => "MEDIUM ERROR",
            SenseKey::HardwareError => "HARDWARE ERROR",
            SenseKey::IllegalRequest => "ILLEGAL REQUEST",
            SenseKey::UnitAttention => "UNIT ATTENTION",
            SenseKey::DataProtect => "DATA PROTECT",
            SenseKey::BlankCheck => "BLANK CHECK",
            SenseKey::VendorSpecific => "VENDOR SPECIFIC",
            SenseKey::CopyAborted => "COPY ABORTED",
            SenseKey::AbortedCommand => "ABORTED COMMAND",
            SenseKey::VolumeOverflow => "VOLUME OVERFLOW",
            SenseKey::Miscompare => "MISCOMPARE",
            SenseKey::Other(k) => return write!(f, "sense key 0x{k:x}"),
        };
        f.write_str(s)
    }
}

/// Where in the CDB or parameter list an ILLEGAL REQUEST points (SPC-4 4.5.2.4.2,
/// "Field pointer sense key specific data"): it turns "invalid field" into "byte 2 of
/// the CDB", which is what an admin needs to tell a target bug from a hamn bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct FieldPointer {
    /// C/D bit: true when the byte is in the CDB, false when in the parameter list.
    pub in_cdb: bool,
    /// FIELD POINTER: the byte offset.
    pub byte: u16,
    /// BIT POINTER, present only when BPV was set.
    pub bit: Option<u8>,
}

impl fmt::Display for FieldPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = if self.in_cdb { "CDB" } else { "parameter list" };
        write!(f, "{place} byte {}", self.byte)?;
        if let Some(bit) = self.bit {
            write!(f, " bit {bit}")?;
        }
        Ok(())
    }
}

/// Decoded sense data, the parts of it hamn uses, in either format.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Sense {
    pub key: SenseKey,
    pub asc: u8,
    pub ascq: u8,
    /// Descriptor format (0x72/0x73) rather than fixed (0x70/0x71).
    pub descriptor_format: bool,
    /// Current error (0x70/0x72) rather than deferred (0x71/0x73). A deferred error
    /// belongs to an *earlier* command, which matters when deciding whether to retry.
    pub current: bool,
    /// Sense-key specific field pointer, only for ILLEGAL REQUEST with SKSV set: for
    /// other keys the same three bytes mean progress indication, retry counts, etc.
    pub field_pointer: Option<FieldPointer>,
}

/// Decode the three sense-key-specific bytes (SPC-4 4.5.2.4.1: SKSV is bit 7 of the
/// first) as a field pointer. `None` if SKSV is clear.
fn field_pointer(sks: [u8; 3]) -> Option<FieldPointer> {
    let [b0, b1, b2] = sks;
    if b0 & 0x80 == 0 {
        return None;
    }
    Some(FieldPointer {
        in_cdb: b0 & 0x40 != 0,
        byte: u16::from_be_bytes([b1, b2]),
        bit: (b0 & 0x08 != 0).then_some(b0 & 0x07),
    })
}

/// Copy three bytes at `at`, if they are all there.
fn three(bytes: &[u8], at: usize) -> Option<[u8; 3]> {
    let s = bytes.get(at..at.checked_add(3)?)?;
    Some([*s.first()?, *s.get(1)?, *s.get(2)?])
}

/// Parse sense data in fixed (0x70/0x71) or descriptor (0x72/0x73) format.
///
/// Returns `None` when there is no usable sense: empty, a response code that is not
/// one of those four (0x7F is vendor specific, 0x00 is what an empty buffer holds), or
/// too short to carry a sense key. Fields cut off by a short buffer or by the
/// ADDITIONAL SENSE LENGTH read as zero, as sg3_utils does, rather than failing: a
/// sense key alone is already worth reporting.
pub fn parse_sense(bytes: &[u8]) -> Option<Sense> {
    let code = bytes.first()? & 0x7f;
    match code {
        0x70 | 0x71 => parse_fixed(bytes, code == 0x70),
        0x72 | 0x73 => parse_descriptor(bytes, code == 0x72),
        _ => None,
    }
}

/// Fixed format, SPC-4 4.5.3: key in byte 2, additional sense length in byte 7,
/// ASC/ASCQ in bytes 12/13, sense-key specific in bytes 15-17.
fn parse_fixed(bytes: &[u8], current: bool) -> Option<Sense> {
    let key = SenseKey::from_nibble(*bytes.get(2)?);
    // Only believe bytes inside both the buffer and the advertised length.
    let len = match bytes.get(7) {
        Some(&add) => bytes.len().min(8 + usize::from(add)),
        None => bytes.len(),
    };
    let valid = bytes.get(..len)?;
    let asc = valid.get(12).copied().unwrap_or(0);
    let ascq = valid.get(13).copied().unwrap_or(0);
    let field_pointer = if key == SenseKey::IllegalRequest {
        three(valid, 15).and_then(field_pointer)
    } else {
        None
    };
    Some(Sense {
        key,
        asc,
        ascq,
        descriptor_format: false,
        current,
        field_pointer,
    })
}

/// Descriptor format, SPC-4 4.5.2.1: key/ASC/ASCQ in bytes 1-3, additional sense
/// length in byte 7, descriptors from byte 8. The sense key specific descriptor
/// (type 0x02, SPC-4 4.5.2.4) carries the SKS bytes at offsets 4-6.
fn parse_descriptor(bytes: &[u8], current: bool) -> Option<Sense> {
    let key = SenseKey::from_nibble(*bytes.get(1)?);
    let asc = bytes.get(2).copied().unwrap_or(0);
    let ascq = bytes.get(3).copied().unwrap_or(0);
    let mut field = None;
    if key == SenseKey::IllegalRequest
        && let Some(&add) = bytes.get(7)
    {
        let end = bytes.len().min(8 + usize::from(add));
        let mut at = 8;
        while let (Some(&dtype), Some(&dlen)) = (bytes.get(at), bytes.get(at + 1)) {
            let next = at + 2 + usize::from(dlen);
            if next > end {
                break;
            }
            if dtype == 0x02 && dlen >= 6 {
                field = three(bytes, at + 4).and_then(field_pointer);
                break;
            }
            at = next;
        }
    }
    Some(Sense {
        key,
        asc,
        ascq,
        descriptor_format: true,
        current,
        field_pointer: field,
    })
}

/// A short meaning for the additional sense codes that matter to persistent
/// reservations and takeover (SPC-4 annex D / the T10 asc-num.txt list). `None` for
/// anything else: callers print the raw numbers then.
pub fn asc_meaning(asc: u8, ascq: u8) -> Option<&'static str> {
    Some(match (asc, ascq) {
        (0x00, 0x00) => "no additional sense information",
        (0x04, 0x00) => "logical unit not ready, cause not reportable",
        (0x04, 0x01) => "logical unit is in process of becoming ready",
        (0x04, 0x02) => "logical unit not ready, initializing command required",
        (0x04, 0x03) => "logical unit not ready, manual intervention required",
        (0x04, 0x04) => "logical unit not ready, format in progress",
        (0x04, 0x07) => "logical unit not ready, operation in progress",
        (0x04, 0x09) => "logical unit not ready, self-test in progress",
        (0x04, 0x0a) => "logical unit not accessible, asymmetric access state transition",
        (0x04, 0x0b) => "logical unit not accessible, target port in standby state",
        (0x04, 0x0c) => "logical unit not accessible, target port in unavailable state",
        (0x04, 0x11) => "logical unit not ready, notify (enable spinup) required",
        (0x04, 0x12) => "logical unit not ready, offline",
        (0x04, _) => "logical unit not ready",
        (0x08, 0x00) => "logical unit communication failure",
        (0x20, 0x00) => "invalid command operation code",
        (0x24, 0x00) => "invalid field in CDB",
        (0x25, 0x00) => "logical unit not supported",
        (0x26, 0x00) => "invalid field in parameter list",
        (0x1a, 0x00) => "parameter list length error",
        (0x29, 0x00) => "power on, reset, or bus device reset occurred",
        (0x29, 0x01) => "power on occurred",
        (0x29, 0x02) => "SCSI bus reset occurred",
        (0x29, 0x03) => "bus device reset function occurred",
        (0x29, 0x04) => "device internal reset",
        (0x29, 0x07) => "I_T nexus loss occurred",
        (0x29, _) => "power on or reset occurred",
        (0x2a, 0x01) => "mode parameters changed",
        (0x2a, 0x03) => "reservations preempted",
        (0x2a, 0x04) => "reservations released",
        (0x2a, 0x05) => "registrations preempted",
        (0x2a, 0x06) => "asymmetric access state changed",
        (0x2a, 0x09) => "capacity data has changed",
        (0x2c, 0x00) => "command sequence error",
        (0x3a, 0x00) => "medium not present",
        (0x3f, 0x03) => "inquiry data has changed",
        (0x3f, 0x0e) => "reported luns data has changed",
        (0x55, 0x02) => "insufficient reservation resources",
        (0x55, 0x04) => "insufficient registration resources",
        _ => return None,
    })
}

/// Linux `driver_status` DRIVER_SENSE: the sense buffer holds data.
pub const DRIVER_SENSE: u16 = 0x08;
/// Linux `host_status` DID_NEXUS_FAILURE: the SCSI midlayer sets it on a
/// RESERVATION CONFLICT ("permanent nexus failure, retrying elsewhere won't help").
pub const DID_NEXUS_FAILURE: u16 = 0x11;

/// Why a SCSI command did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScsiError {
    /// Another I_T nexus holds a reservation that forbids this command.
    #[error("RESERVATION CONFLICT: another initiator holds a persistent reservation")]
    ReservationConflict,
    /// Something changed on the LU (preempt, reset, ...). Usually retried once.
    #[error("UNIT ATTENTION: {} (ASC 0x{asc:02x}, ASCQ 0x{ascq:02x})", meaning.unwrap_or("unknown condition"))]
    UnitAttention {
        asc: u8,
        ascq: u8,
        meaning: Option<&'static str>,
    },
    #[error("NOT READY: {} (ASC 0x{asc:02x}, ASCQ 0x{ascq:02x})", meaning.unwrap_or("unknown cause"))]
    NotReady {
        asc: u8,
        ascq: u8,
        meaning: Option<&'static str>,
    },
    /// The target refused the command as sent. The field pointer, if any, names the
    /// offending byte.
    #[error("ILLEGAL REQUEST: {} (ASC 0x{asc:02x}, ASCQ 0x{ascq:02x}){}",
        meaning.unwrap_or("unknown reason"),
        field.map(|p| format!(" at {p}")).unwrap_or_default())]
    IllegalRequest {
        asc: u8,
        ascq: u8,
        meaning: Option<&'static str>,
        field: Option<FieldPointer>,
    },
    #[error("{key}: {} (ASC 0x{asc:02x}, ASCQ 0x{ascq:02x})", asc_meaning(*asc, *ascq).unwrap_or("unknown condition"))]
    OtherSense { key: SenseKey, asc: u8, ascq: u8 },
    /// A status other than GOOD without usable sense data.
    #[error("SCSI status {0} without sense data")]
    Status(Status),
    /// The command did not complete at the target: the HBA or the kernel driver gave up
    /// (link down, timeout, abort). Nothing is known about whether it executed.
    #[error(
        "transport failure: host_status 0x{host_status:02x}, driver_status 0x{driver_status:02x}"
    )]
    Transport {
        host_status: u16,
        driver_status: u16,
    },
}

/// Decide success or a typed error from what SG_IO returned.
///
/// The order follows sg3_utils and the kernel: a RESERVATION CONFLICT status (or the
/// DID_NEXUS_FAILURE host byte the midlayer substitutes for it) wins; then sense data
/// is consulted whenever the status is CHECK CONDITION / COMMAND TERMINATED or the
/// driver says DRIVER_SENSE; then a non-zero host or driver status is a transport
/// failure; then any status but GOOD / CONDITION MET is an error.
///
/// RECOVERED ERROR counts as success (SPC-4: the command completed, with recovery
/// action). NO SENSE with CHECK CONDITION does *not*: for a fencing tool a command
/// that may not have executed is a failure.
pub fn classify(
    status: u8,
    host_status: u16,
    driver_status: u16,
    sense: &[u8],
) -> Result<(), ScsiError> {
    let st = Status::from_byte(status);
    // The low nibble is the driver byte proper; the high nibble held "suggestions"
    // in older kernels (sg3_utils masks with SG_LIB_DRIVER_MASK = 0x0f).
    let driver = driver_status & 0x0f;
    if st == Status::Good && host_status == 0 && driver == 0 {
        return Ok(());
    }
    if st == Status::ReservationConflict || host_status == DID_NEXUS_FAILURE {
        return Err(ScsiError::ReservationConflict);
    }
    let sense_expected =
        matches!(st, Status::CheckCondition | Status::Other(0x22)) || driver == DRIVER_SENSE;
    if sense_expected && let Some(s) = parse_sense(sense) {
        let meaning = asc_meaning(s.asc, s.ascq);
        match s.key {
            SenseKey::RecoveredError if host_status == 0 => return Ok(()),
            SenseKey::RecoveredError => {}
            // NO SENSE alongside GOOD: informational; fall through to the status.
            SenseKey::NoSense if st == Status::Good || st == Status::ConditionMet => {}
            SenseKey::UnitAttention => {
                return Err(ScsiError::UnitAttention {
                    asc: s.asc,
                    ascq: s.ascq,
                    meaning,
                });
            }
            SenseKey::NotReady => {
                return Err(ScsiError::NotReady {
                    asc: s.asc,
                    ascq: s.ascq,
                    meaning,
                });
            }
            SenseKey::IllegalRequest => {
                return Err(ScsiError::IllegalRequest {
                    asc: s.asc,
                    ascq: s.ascq,
                    meaning,
                    field: s.field_pointer,
                });
            }
            key => {
                return Err(ScsiError::OtherSense {
                    key,
                    asc: s.asc,
                    ascq: s.ascq,
                });
            }
        }
    }
    if host_status != 0 || (driver != 0 && driver != DRIVER_SENSE) {
        return Err(ScsiError::Transport {
            host_status,
            driver_status,
        });
    }
    match st {
        Status::Good | Status::ConditionMet => Ok(()),
        other => Err(ScsiError::Status(other)),
    }
}

/// True when the error is how a target says "I don't do that": ILLEGAL REQUEST with
/// INVALID COMMAND OPERATION CODE (no PERSISTENT RESERVE IN/OUT at all) or INVALID
/// FIELD IN CDB (the opcode exists but not this service action or type, e.g. tgtd
/// without READ FULL STATUS). Callers use it to fall back or report "PR unsupported"
/// instead of a failure.
pub fn is_unsupported(e: &ScsiError) -> bool {
    matches!(
        e,
        ScsiError::IllegalRequest {
            asc: 0x20 | 0x24,
            ascq: 0x00,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixed format (SPC-4 4.5.3): ILLEGAL REQUEST, INVALID FIELD IN CDB, SKSV=1,
    /// C/D=1, BPV=1 bit 3, field pointer 0x0002 (sense-key specific bytes 15-17 =
    /// 0xcb 0x00 0x02, SPC-4 4.5.2.4.2): a target rejecting the TYPE nibble of a
    /// PERSISTENT RESERVE OUT CDB.
    const FIXED_INVALID_CDB: [u8; 18] = [
        0x70, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x24, 0x00, 0x00,
        0xcb, 0x00, 0x02,
    ];

    #[test]
    fn fixed_illegal_request_with_field_pointer() {
        let s = parse_sense(&FIXED_INVALID_CDB).unwrap();
        assert_eq!(s.key, SenseKey::IllegalRequest);
        assert_eq!((s.asc, s.ascq), (0x24, 0x00));
        assert!(!s.descriptor_format);
        assert!(s.current);
        assert_eq!(
            s.field_pointer,
            Some(FieldPointer {
                in_cdb: true,
                byte: 2,
                bit: Some(3)
            })
        );
    }

    #[test]
    fn fixed_format_respects_additional_length() {
        // Additional sense length 4: ASC/ASCQ (bytes 12/13) are outside it, even if the
        // buffer holds stale bytes there.
        let mut b = FIXED_INVALID_CDB;
        b[7] = 4;
        let s = parse_sense(&b).unwrap();
        assert_eq!((s.asc, s.ascq), (0, 0));
        assert_eq!(s.field_pointer, None);
    }

    #[test]
    fn fixed_deferred_and_valid_bit() {
        // 0xF1: VALID bit set, deferred error.
        let b = [
            0xf1, 0, 0x06, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x29, 0x00, 0, 0, 0, 0,
        ];
        let s = parse_sense(&b).unwrap();
        assert!(!s.current);
        assert_eq!(s.key, SenseKey::UnitAttention);
        assert_eq!(s.field_pointer, None);
    }

    #[test]
    fn descriptor_format_with_sks_descriptor() {
        // Descriptor format (SPC-4 4.5.2.1) + sense key specific descriptor (4.5.2.4):
        // parameter list byte 20 (the APTPL/ALL_TG_PT/SPEC_I_PT byte), no bit pointer.
        let b = [
            0x72, 0x05, 0x26, 0x00, 0, 0, 0, 0x14, // header, additional length 20
            0x00, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // information descriptor
            0x02, 0x06, 0, 0, 0x80, 0x00, 0x14, 0x00, // SKS: SKSV=1, C/D=0, field 20
        ];
        let s = parse_sense(&b).unwrap();
        assert!(s.descriptor_format);
        assert_eq!(s.key, SenseKey::IllegalRequest);
        assert_eq!((s.asc, s.ascq), (0x26, 0x00));
        assert_eq!(
            s.field_pointer,
            Some(FieldPointer {
                in_cdb: false,
                byte: 20,
                bit: None
            })
        );
    }

    #[test]
    fn descriptor_past_additional_length_is_ignored() {
        let b = [
            0x72, 0x05, 0x24, 0x00, 0, 0, 0, 0x02, 0x02, 0x06, 0, 0, 0xc0, 0x00, 0x01, 0x00,
        ];
        let s = parse_sense(&b).unwrap();
        assert_eq!(s.field_pointer, None);
    }

    #[test]
    fn no_sense_for_junk() {
        assert_eq!(parse_sense(&[]), None);
        assert_eq!(parse_sense(&[0; 18]), None);
        assert_eq!(parse_sense(&[0x7f, 0, 5]), None);
        assert_eq!(parse_sense(&[0x70, 0]), None);
        assert!(parse_sense(&[0x70, 0, 6]).is_some());
    }

    #[test]
    fn status_bytes() {
        assert_eq!(Status::from_byte(0x18), Status::ReservationConflict);
        assert_eq!(Status::from_byte(0x02), Status::CheckCondition);
        assert_eq!(Status::from_byte(0x22), Status::Other(0x22));
        for b in [0u8, 2, 4, 8, 0x18, 0x28, 0x40, 0x22, 0x30] {
            assert_eq!(Status::from_byte(b).to_byte(), b);
        }
    }

    #[test]
    fn classify_good() {
        assert_eq!(classify(0, 0, 0, &[]), Ok(()));
        assert_eq!(classify(0x04, 0, 0, &[]), Ok(()));
    }

    #[test]
    fn classify_reservation_conflict() {
        assert_eq!(
            classify(0x18, 0, 0, &[]),
            Err(ScsiError::ReservationConflict)
        );
        // What the Linux midlayer hands back: the status plus DID_NEXUS_FAILURE.
        assert_eq!(
            classify(0x18, DID_NEXUS_FAILURE, 0, &[]),
            Err(ScsiError::ReservationConflict)
        );
        assert_eq!(
            classify(0, DID_NEXUS_FAILURE, 0, &[]),
            Err(ScsiError::ReservationConflict)
        );
    }

    #[test]
    fn classify_unit_attention_after_preempt() {
        let b = [
            0x70, 0, 0x06, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x2a, 0x03, 0, 0, 0, 0,
        ];
        let e = classify(0x02, 0, DRIVER_SENSE, &b).unwrap_err();
        assert_eq!(
            e,
            ScsiError::UnitAttention {
                asc: 0x2a,
                ascq: 0x03,
                meaning: Some("reservations preempted")
            }
        );
        assert!(e.to_string().contains("reservations preempted"));
    }

    #[test]
    fn classify_illegal_request_names_the_byte() {
        let e = classify(0x02, 0, DRIVER_SENSE, &FIXED_INVALID_CDB).unwrap_err();
        assert!(is_unsupported(&e));
        assert_eq!(
            e.to_string(),
            "ILLEGAL REQUEST: invalid field in CDB (ASC 0x24, ASCQ 0x00) at CDB byte 2 bit 3"
        );
    }

    #[test]
    fn classify_invalid_opcode_is_unsupported() {
        let b = [
            0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x20, 0x00, 0, 0, 0, 0,
        ];
        let e = classify(0x02, 0, DRIVER_SENSE, &b).unwrap_err();
        assert!(is_unsupported(&e));
        let b = [
            0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x26, 0x00, 0, 0, 0, 0,
        ];
        assert!(!is_unsupported(
            &classify(0x02, 0, DRIVER_SENSE, &b).unwrap_err()
        ));
    }

    #[test]
    fn classify_not_ready_and_other() {
        let b = [0x72, 0x02, 0x04, 0x0b, 0, 0, 0, 0];
        assert_eq!(
            classify(0x02, 0, DRIVER_SENSE, &b),
            Err(ScsiError::NotReady {
                asc: 0x04,
                ascq: 0x0b,
                meaning: Some("logical unit not accessible, target port in standby state")
            })
        );
        let b = [0x72, 0x04, 0x44, 0x00, 0, 0, 0, 0];
        assert_eq!(
            classify(0x02, 0, 0, &b),
            Err(ScsiError::OtherSense {
                key: SenseKey::HardwareError,
                asc: 0x44,
                ascq: 0
            })
        );
    }

    #[test]
    fn classify_recovered_and_no_sense() {
        let rec = [0x72, 0x01, 0x17, 0x01, 0, 0, 0, 0];
        assert_eq!(classify(0x02, 0, DRIVER_SENSE, &rec), Ok(()));
        let none = [0x72, 0x00, 0x00, 0x00, 0, 0, 0, 0];
        assert_eq!(classify(0x00, 0, DRIVER_SENSE, &none), Ok(()));
        assert!(matches!(
            classify(0x02, 0, DRIVER_SENSE, &none),
            Err(ScsiError::OtherSense {
                key: SenseKey::NoSense,
                ..
            })
        ));
    }

    #[test]
    fn classify_without_sense_or_with_transport_errors() {
        assert_eq!(
            classify(0x02, 0, 0, &[]),
            Err(ScsiError::Status(Status::CheckCondition))
        );
        assert_eq!(
            classify(0x08, 0, 0, &[]),
            Err(ScsiError::Status(Status::Busy))
        );
        // DID_TIME_OUT
        assert_eq!(
            classify(0, 0x03, 0, &[]),
            Err(ScsiError::Transport {
                host_status: 3,
                driver_status: 0
            })
        );
        // DRIVER_TIMEOUT
        assert_eq!(
            classify(0, 0, 0x06, &[]),
            Err(ScsiError::Transport {
                host_status: 0,
                driver_status: 6
            })
        );
        // Sense flagged but empty, status GOOD: trust the status.
        assert_eq!(classify(0, 0, DRIVER_SENSE, &[]), Ok(()));
    }

    #[test]
    fn meanings() {
        assert_eq!(asc_meaning(0x2a, 0x05), Some("registrations preempted"));
        assert_eq!(asc_meaning(0x29, 0x42), Some("power on or reset occurred"));
        assert_eq!(asc_meaning(0x04, 0x7f), Some("logical unit not ready"));
        assert_eq!(
            asc_meaning(0x55, 0x04),
            Some("insufficient registration resources")
        );
        assert_eq!(asc_meaning(0x99, 0x99), None);
    }
}
