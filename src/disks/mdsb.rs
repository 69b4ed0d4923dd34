//! md RAID superblocks (v1.x, 0.90), read from member devices.
//!
//! This module owns the on-disk md metadata formats: where each version's superblock
//! lives on a member, how to decode it, and when not to trust it. A member moved from a
//! failed server carries its array's identity (set UUID), its event count and the roles
//! the array last recorded for every slot; comparing these between twins is how a stale
//! member is told apart from a current one.
//!
//! The bytes are read here rather than through mdadm so the same code runs on umockdev
//! test beds, where device nodes are plain files. Layouts follow the kernel's
//! include/uapi/linux/raid/md_p.h and the acceptance checks of drivers/md/md.c
//! (super_1_load, super_90_load); a superblock the kernel would refuse is refused here.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::uncached::Reader;

const MD_SB_MAGIC: u32 = 0xa92b_4efc;

/// v1: the fixed part before dev_roles[].
const V1_FIXED: usize = 256;
/// v1: the kernel reads one 4 KiB page and refuses a role table that does not fit it.
const V1_MAX_DEV: u32 = ((4096 - V1_FIXED) / 2) as u32;
/// 0.90: the whole superblock, every byte of it under the checksum.
const V090_BYTES: usize = 4096;
/// 0.90: descriptors in disks[], and where they and this_disk start (in 32-bit words).
const V090_DISKS: usize = 27;
const V090_DISKS_WORD: usize = 128;
const V090_THIS_DISK_WORD: usize = 992;
const V090_DESCRIPTOR_WORDS: usize = 32;
const V090_CSUM_WORD: usize = 38;

// One read (`uncached::BLOCK`, 4 KiB) covers any superblock: 0.90 is 4 KiB, v1 at most
// 256 + 2 * 1920 bytes.
const ROLE_SPARE: u16 = 0xffff;
const ROLE_FAULTY: u16 = 0xfffe;
const ROLE_JOURNAL: u16 = 0xfffd;

const DISK_FAULTY: u32 = 1 << 0;
const DISK_ACTIVE: u32 = 1 << 1;
const DISK_SYNC: u32 = 1 << 2;
const DISK_REMOVED: u32 = 1 << 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Superblock {
    /// "1.0", "1.1", "1.2" or "0.90" ("0.91" while a 0.90 array records a reshape).
    pub version: String,
    /// Array UUID formatted like mdadm / udev MD_UUID: "xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx"
    /// (lowercase hex).
    pub array_uuid: String,
    /// Array name as in the superblock (e.g. "box1:0"); None for 0.90 or empty.
    pub name: Option<String>,
    /// RAID level number as stored (1 for raid1; -1 linear, 0 raid0, 5, 6, 10).
    pub level: i32,
    pub raid_disks: u32,
    /// This device's index into the role table (v1: dev_number; 0.90: this_disk.number).
    pub dev_number: u32,
    /// This device's UUID (v1 only), same format as array_uuid.
    pub device_uuid: Option<String>,
    pub events: u64,
    /// Last update time, seconds since the epoch.
    pub update_time: u64,
    /// Role of every device slot as the array saw it when this superblock was written.
    pub roles: Vec<Role>,
    /// Bytes from the start of the member to the start of the array data.
    pub data_offset_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "role", content = "slot")]
pub enum Role {
    /// Holds (or, while recovering, is being rebuilt into) this slot of the array.
    Active(u16),
    Spare,
    Faulty,
    Journal,
    /// No device recorded under this number.
    Unused,
}

impl Superblock {
    /// This device's own role from the role table (Unused if out of range).
    pub fn own_role(&self) -> Role {
        self.role_of(self.dev_number)
    }

    /// The role this superblock records for the device numbered `dev_number` (Unused if
    /// out of range).
    pub fn role_of(&self, dev_number: u32) -> Role {
        usize::try_from(dev_number)
            .ok()
            .and_then(|i| self.roles.get(i))
            .copied()
            .unwrap_or(Role::Unused)
    }
}

/// Why a superblock's bytes cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Defect {
    #[error("bad magic {found:#010x} (an md superblock starts with 0xa92b4efc)")]
    BadMagic { found: u32 },
    #[error("unsupported metadata version {major}.{minor}")]
    BadVersion { major: u32, minor: u32 },
    #[error("bad checksum: stored {stored:#010x}, computed {computed:#010x}")]
    BadChecksum { stored: u32, computed: u32 },
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("max_dev {0} is more than a superblock can hold ({V1_MAX_DEV})")]
    MaxDevTooLarge(u32),
    #[error("super_offset records sector {recorded} but the superblock is at sector {actual}")]
    Misplaced { recorded: u64, actual: u64 },
    #[error("raid_disks is 0")]
    NoRaidDisks,
}

#[derive(Debug, thiserror::Error)]
pub enum MdSbError {
    /// From `parse_v1` / `parse_v090`, which do not know where the bytes came from.
    #[error("md superblock: {0}")]
    Defect(#[from] Defect),
    #[error("md {version} superblock on {} at byte {offset} cannot be trusted: {defect}", .path.display())]
    Invalid {
        path: PathBuf,
        version: String,
        offset: u64,
        defect: Defect,
    },
    #[error(
        "no md superblock on {} (looked for 1.2 at 4 KiB, 1.1 at 0, 1.0 and 0.90 at the end)",
        .path.display()
    )]
    NotFound { path: PathBuf },
    #[error(
        "more than one valid md superblock on {}: {found}; md would pick one by creation time, hamn does not guess",
        .path.display()
    )]
    Ambiguous { path: PathBuf, found: String },
    #[error("I/O error on {} ({action}): {source}", .path.display())]
    Io {
        path: PathBuf,
        action: String,
        source: io::Error,
    },
}

fn bytes_at<const N: usize>(buf: &[u8], at: usize) -> Result<[u8; N], Defect> {
    buf.get(at..at.saturating_add(N))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(Defect::Truncated {
            need: at.saturating_add(N),
            have: buf.len(),
        })
}

fn u32_at(buf: &[u8], at: usize) -> Result<u32, Defect> {
    bytes_at::<4>(buf, at).map(u32::from_le_bytes)
}

fn u64_at(buf: &[u8], at: usize) -> Result<u64, Defect> {
    bytes_at::<8>(buf, at).map(u64::from_le_bytes)
}

fn check_magic(buf: &[u8]) -> Result<(), Defect> {
    let found = u32_at(buf, 0)?;
    if found == MD_SB_MAGIC {
        Ok(())
    } else {
        Err(Defect::BadMagic { found })
    }
}

fn uuid_from_bytes(b: &[u8; 16]) -> String {
    let mut s = String::with_capacity(35);
    for (i, byte) in b.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            s.push(':');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

/// The kernel's calc_sb_1_csum over `region` (header and role table): le32 words, a
/// trailing half word (odd max_dev) as le16, the checksum word taken as 0, the 64-bit
/// sum folded once. Anything else would refuse superblocks the kernel assembles.
fn v1_checksum(region: &[u8]) -> u32 {
    const CSUM_AT: usize = 216;
    let mut sum: u64 = 0;
    let mut words = region.chunks_exact(4);
    for (i, w) in words.by_ref().enumerate() {
        if i * 4 != CSUM_AT {
            sum += u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        }
    }
    if let [a, b] = words.remainder() {
        sum += u64::from(u16::from_le_bytes([*a, *b]));
    }
    (sum as u32).wrapping_add((sum >> 32) as u32)
}

/// Parse a v1.x superblock from `buf` (the 1 KiB+ region starting at the superblock);
/// `version_minor` is 0/1/2 as told by where it was found. Never panics on any input.
pub fn parse_v1(buf: &[u8], version_minor: u8) -> Result<Superblock, MdSbError> {
    // No magic means no superblock, whatever the caller believed the version to be.
    check_magic(buf)?;
    let expected_sector = match version_minor {
        0 => None,
        1 => Some(0),
        2 => Some(8),
        minor => {
            return Err(Defect::BadVersion {
                major: 1,
                minor: u32::from(minor),
            }
            .into());
        }
    };
    let (sb, super_offset) = decode_v1(buf, version_minor)?;
    if let Some(actual) = expected_sector
        && super_offset != actual
    {
        return Err(Defect::Misplaced {
            recorded: super_offset,
            actual,
        }
        .into());
    }
    Ok(sb)
}

/// Decode and verify everything but the placement, which only the caller knows for 1.0;
/// returns the recorded super_offset (sectors) with the superblock.
fn decode_v1(buf: &[u8], minor: u8) -> Result<(Superblock, u64), Defect> {
    check_magic(buf)?;
    let major = u32_at(buf, 4)?;
    if major != 1 {
        return Err(Defect::BadVersion {
            major,
            minor: u32::from(minor),
        });
    }
    if buf.len() < V1_FIXED {
        return Err(Defect::Truncated {
            need: V1_FIXED,
            have: buf.len(),
        });
    }
    let max_dev = u32_at(buf, 220)?;
    // Bounded before use: max_dev sizes the checksummed region and the role table.
    if max_dev > V1_MAX_DEV {
        return Err(Defect::MaxDevTooLarge(max_dev));
    }
    let len = V1_FIXED + 2 * max_dev as usize;
    let region = buf.get(..len).ok_or(Defect::Truncated {
        need: len,
        have: buf.len(),
    })?;
    let stored = u32_at(region, 216)?;
    let computed = v1_checksum(region);
    if stored != computed {
        return Err(Defect::BadChecksum { stored, computed });
    }

    let name_bytes = bytes_at::<32>(region, 32)?;
    let name_len = name_bytes.iter().position(|&b| b == 0).unwrap_or(32);
    let name = Some(String::from_utf8_lossy(&name_bytes[..name_len]).into_owned())
        .filter(|n| !n.is_empty());

    let roles = region[V1_FIXED..]
        .chunks_exact(2)
        .map(|r| match u16::from_le_bytes([r[0], r[1]]) {
            ROLE_SPARE => Role::Spare,
            ROLE_FAULTY => Role::Faulty,
            ROLE_JOURNAL => Role::Journal,
            slot => Role::Active(slot),
        })
        .collect();

    let sb = Superblock {
        version: format!("1.{minor}"),
        array_uuid: uuid_from_bytes(&bytes_at::<16>(region, 16)?),
        name,
        level: i32::from_le_bytes(bytes_at::<4>(region, 72)?),
        raid_disks: u32_at(region, 92)?,
        dev_number: u32_at(region, 160)?,
        device_uuid: Some(uuid_from_bytes(&bytes_at::<16>(region, 168)?)),
        events: u64_at(region, 200)?,
        // The high 24 bits hold microseconds.
        update_time: u64_at(region, 192)? & 0xff_ffff_ffff,
        roles,
        data_offset_bytes: u64_at(region, 128)?.saturating_mul(512),
    };
    Ok((sb, u64_at(region, 144)?))
}

/// The kernel's md_csum_fold: 0.90 checksums are compared folded to 16 bits, a relic of
/// csum_partial that it still honours.
fn fold16(csum: u32) -> u32 {
    let c = (csum & 0xffff) + (csum >> 16);
    (c & 0xffff) + (c >> 16)
}

/// The kernel's calc_sb_csum for 0.90: every word of the 4 KiB, checksum word as 0.
fn v090_checksum(sb: &[u8]) -> u32 {
    let sum: u64 = sb
        .chunks_exact(4)
        .enumerate()
        .filter(|(i, _)| *i != V090_CSUM_WORD)
        .map(|(_, w)| u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]])))
        .sum();
    (sum as u32).wrapping_add((sum >> 32) as u32)
}

/// A disks[] descriptor's state as the kernel's super_90_validate reads it.
fn v090_role(desc: &[u8], minor_version: u32) -> Result<Role, Defect> {
    let major = u32_at(desc, 4)?;
    let minor = u32_at(desc, 8)?;
    let raid_disk = u32_at(desc, 12)?;
    let state = u32_at(desc, 16)?;
    let slot = || u16::try_from(raid_disk).map_or(Role::Faulty, Role::Active);
    Ok(if state & DISK_FAULTY != 0 {
        Role::Faulty
    } else if state & DISK_SYNC != 0 {
        slot()
    } else if state & DISK_ACTIVE != 0 {
        // Active but not in sync: recovering into its slot, which only 0.91 records.
        if minor_version >= 91 {
            slot()
        } else {
            Role::Spare
        }
    } else if state & DISK_REMOVED != 0 || (major == 0 && minor == 0 && state == 0) {
        // An all-zero descriptor was never filled in; spares always name a device.
        Role::Unused
    } else {
        Role::Spare
    })
}

/// Parse a 0.90 superblock (4 KiB region). Never panics.
pub fn parse_v090(buf: &[u8]) -> Result<Superblock, MdSbError> {
    Ok(decode_v090(buf)?)
}

fn decode_v090(buf: &[u8]) -> Result<Superblock, Defect> {
    check_magic(buf)?;
    let sb = buf.get(..V090_BYTES).ok_or(Defect::Truncated {
        need: V090_BYTES,
        have: buf.len(),
    })?;
    let word = |i: usize| u32_at(sb, i * 4);
    let (major, minor) = (word(1)?, word(2)?);
    if major != 0 || !(90..=91).contains(&minor) {
        return Err(Defect::BadVersion { major, minor });
    }
    let raid_disks = word(10)?;
    if raid_disks == 0 {
        return Err(Defect::NoRaidDisks);
    }
    let stored = word(V090_CSUM_WORD)?;
    let computed = v090_checksum(sb);
    if fold16(stored) != fold16(computed) {
        return Err(Defect::BadChecksum { stored, computed });
    }

    let descriptor = |n: usize| {
        let at = (V090_DISKS_WORD + n * V090_DESCRIPTOR_WORDS) * 4;
        sb.get(at..at + V090_DESCRIPTOR_WORDS * 4)
            .ok_or(Defect::Truncated {
                need: at + V090_DESCRIPTOR_WORDS * 4,
                have: sb.len(),
            })
    };
    let roles = (0..V090_DISKS)
        .map(|n| descriptor(n).and_then(|d| v090_role(d, minor)))
        .collect::<Result<Vec<_>, _>>()?;
    // Host-endian words; mdadm prints each as one 32-bit number.
    let array_uuid = [word(5)?, word(13)?, word(14)?, word(15)?]
        .map(|w| format!("{w:08x}"))
        .join(":");

    Ok(Superblock {
        version: format!("0.{minor}"),
        array_uuid,
        name: None,
        level: word(7)? as i32,
        raid_disks,
        dev_number: word(V090_THIS_DISK_WORD)?,
        device_uuid: None,
        // Little-endian hosts store events_lo before events_hi.
        events: (u64::from(word(40)?) << 32) | u64::from(word(39)?),
        update_time: u64::from(word(32)?),
        roles,
        // 0.90 keeps its metadata at the end; the data starts at the first byte.
        data_offset_bytes: 0,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    V1(u8),
    V090,
}

impl Kind {
    fn version(self) -> String {
        match self {
            Kind::V1(minor) => format!("1.{minor}"),
            Kind::V090 => "0.90".to_string(),
        }
    }
}

/// Where each version would sit on a member of `size` bytes, in the order they are tried.
fn locations(size: u64) -> Vec<(Kind, u64)> {
    let sectors = size / 512;
    let mut at = vec![(Kind::V1(2), 4096), (Kind::V1(1), 0)];
    // 1.0: 8 to 12 KiB from the end, 4 KiB aligned (super_1_load).
    if let Some(s) = sectors.checked_sub(16) {
        at.push((Kind::V1(0), (s & !7) * 512));
    }
    // 0.90: the last whole 64 KiB (MD_NEW_SIZE_SECTORS).
    if let Some(s) = (sectors & !127).checked_sub(128) {
        at.push((Kind::V090, s * 512));
    }
    at
}

/// A member opened for reading superblocks, past its page cache (see `crate::uncached`):
/// md writes superblocks around the member's cache, so a cached read could show an
/// event count from before the last update.
struct Member {
    path: PathBuf,
    reader: Reader,
}

impl Member {
    fn io_error(&self, action: impl Into<String>, source: io::Error) -> MdSbError {
        MdSbError::Io {
            path: self.path.clone(),
            action: action.into(),
            source,
        }
    }

    fn open(path: &Path) -> Result<Member, MdSbError> {
        Reader::open(path)
            .map(|reader| Member {
                path: path.to_path_buf(),
                reader,
            })
            .map_err(|source| MdSbError::Io {
                path: path.to_path_buf(),
                action: "open".to_string(),
                source,
            })
    }

    fn size(&self) -> Result<u64, MdSbError> {
        let file = self.reader.file();
        let meta = file.metadata().map_err(|e| self.io_error("stat", e))?;
        if !meta.file_type().is_block_device() {
            return Ok(meta.len());
        }
        match block_device_size(file) {
            Ok(size) => Ok(size),
            // A node that claims to be a block device but is not one (umockdev) still
            // knows its length.
            Err(_) => (&*file)
                .seek(SeekFrom::End(0))
                .map_err(|e| self.io_error("find the size", e)),
        }
    }

    /// Up to 4 KiB at `offset` (4 KiB aligned); shorter only at the end of the member.
    fn read_block(&mut self, offset: u64) -> Result<Vec<u8>, MdSbError> {
        self.reader
            .read_block(offset)
            .map_err(|e| self.io_error(format!("read at byte {offset}"), e))
    }
}

/// _IOR(0x12, 114, size_t) in the generic encoding, and in the one with a 3-bit
/// direction field at bit 29.
#[cfg(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
))]
const BLKGETSIZE64: libc::c_ulong = 0x4008_1272;
#[cfg(not(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
)))]
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;

fn block_device_size(file: &File) -> io::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 stores one u64 through the pointer, which points at `size`
    // for the duration of the synchronous call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64 as _, &mut size as *mut u64) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(size)
    }
}

/// Read the superblock of the device or file at `path`: try 1.2 (offset 4096), 1.1
/// (offset 0), 1.0 (at ((size_in_512_sectors - 16) & !7) * 512), 0.90 (at
/// ((size_sectors & !127) - 128) * 512, i.e. the last whole 64 KiB). Size: for a block
/// device the BLKGETSIZE64 ioctl; for a regular file its length. Read with O_DIRECT
/// through a 4096-aligned buffer, falling back to a buffered read where the filesystem
/// refuses O_DIRECT.
///
/// Every location is looked at. A location holding the md magic but failing a check is
/// reported when no location holds a good superblock; good superblocks at two locations
/// are an error, since which one md assembles depends on creation times we will not
/// second-guess.
pub fn read(path: &Path) -> Result<Superblock, MdSbError> {
    let mut member = Member::open(path)?;
    let size = member.size()?;
    let mut good: Vec<(Kind, u64, Superblock)> = Vec::new();
    let mut first_bad: Option<MdSbError> = None;
    for (kind, offset) in locations(size) {
        let buf = member.read_block(offset)?;
        if check_magic(&buf).is_err() {
            continue;
        }
        let parsed = match kind {
            Kind::V1(minor @ (1 | 2)) => decode_v1(&buf, minor).and_then(|(sb, recorded)| {
                let actual = if minor == 1 { 0 } else { 8 };
                if recorded == actual {
                    Ok(sb)
                } else {
                    Err(Defect::Misplaced { recorded, actual })
                }
            }),
            Kind::V1(minor) => decode_v1(&buf, minor).and_then(|(sb, recorded)| {
                let actual = offset / 512;
                if recorded == actual {
                    Ok(sb)
                } else {
                    Err(Defect::Misplaced { recorded, actual })
                }
            }),
            Kind::V090 => decode_v090(&buf),
        };
        match parsed {
            Ok(sb) => good.push((kind, offset, sb)),
            Err(defect) => {
                first_bad.get_or_insert(MdSbError::Invalid {
                    path: path.to_path_buf(),
                    version: kind.version(),
                    offset,
                    defect,
                });
            }
        }
    }
    if good.len() > 1 {
        let found = good
            .iter()
            .map(|(_, offset, sb)| {
                format!("{} at byte {offset} (array {})", sb.version, sb.array_uuid)
            })
            .collect::<Vec<_>>()
            .join(", ");
        return Err(MdSbError::Ambiguous {
            path: path.to_path_buf(),
            found,
        });
    }
    match good.pop() {
        Some((_, _, sb)) => Ok(sb),
        None => Err(first_bad.unwrap_or(MdSbError::NotFound {
            path: path.to_path_buf(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    const ARRAY_UUID: [u8; 16] = [
        0x3a, 0x1b, 0xc4, 0x0f, 0x91, 0x22, 0x7e, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02,
        0xff,
    ];
    const DEVICE_UUID: [u8; 16] = [
        0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0,
        0x0a,
    ];

    /// A v1 superblock to be laid out byte by byte, independently of the decoder.
    struct V1 {
        name: &'static str,
        level: i32,
        raid_disks: u32,
        data_offset: u64,
        super_offset: u64,
        dev_number: u32,
        utime: u64,
        events: u64,
        roles: Vec<u16>,
        max_dev: Option<u32>,
    }

    impl Default for V1 {
        fn default() -> Self {
            V1 {
                name: "box1:0",
                level: 1,
                raid_disks: 2,
                data_offset: 2048,
                super_offset: 8,
                dev_number: 1,
                utime: (123_456 << 40) | 1_700_000_000,
                events: 0x1_0000_0042,
                roles: vec![0, 1, 0xffff, 0xfffe],
                max_dev: None,
            }
        }
    }

    fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
        buf[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// calc_sb_1_csum, written out the kernel's way: size counts down in 4s.
    fn kernel_v1_csum(sb: &[u8]) -> u32 {
        let max_dev = u32::from_le_bytes(sb[220..224].try_into().unwrap());
        let mut size = 256 + max_dev as usize * 2;
        let mut at = 0;
        let mut sum: u64 = 0;
        while size >= 4 {
            if at != 216 {
                sum += u64::from(u32::from_le_bytes(sb[at..at + 4].try_into().unwrap()));
            }
            at += 4;
            size -= 4;
        }
        if size == 2 {
            sum += u64::from(u16::from_le_bytes(sb[at..at + 2].try_into().unwrap()));
        }
        ((sum & 0xffff_ffff) + (sum >> 32)) as u32
    }

    fn v1_bytes(v: &V1) -> Vec<u8> {
        let mut sb = vec![0u8; 4096];
        put(&mut sb, 0, &MD_SB_MAGIC.to_le_bytes());
        put(&mut sb, 4, &1u32.to_le_bytes());
        put(&mut sb, 16, &ARRAY_UUID);
        put(&mut sb, 32, v.name.as_bytes());
        put(&mut sb, 64, &1_600_000_000u64.to_le_bytes());
        put(&mut sb, 72, &v.level.to_le_bytes());
        put(&mut sb, 80, &1_000_000u64.to_le_bytes());
        put(&mut sb, 92, &v.raid_disks.to_le_bytes());
        put(&mut sb, 128, &v.data_offset.to_le_bytes());
        put(&mut sb, 136, &1_000_000u64.to_le_bytes());
        put(&mut sb, 144, &v.super_offset.to_le_bytes());
        put(&mut sb, 160, &v.dev_number.to_le_bytes());
        put(&mut sb, 168, &DEVICE_UUID);
        put(&mut sb, 192, &v.utime.to_le_bytes());
        put(&mut sb, 200, &v.events.to_le_bytes());
        let max_dev = v.max_dev.unwrap_or(v.roles.len() as u32);
        put(&mut sb, 220, &max_dev.to_le_bytes());
        for (i, r) in v.roles.iter().enumerate() {
            put(&mut sb, 256 + 2 * i, &r.to_le_bytes());
        }
        if max_dev as usize * 2 + 256 <= sb.len() {
            let csum = kernel_v1_csum(&sb);
            put(&mut sb, 216, &csum.to_le_bytes());
        }
        sb
    }

    /// A 0.90 disks[] descriptor: (number, major, minor, raid_disk, state).
    type Desc = (u32, u32, u32, u32, u32);

    struct V090 {
        minor_version: u32,
        level: i32,
        raid_disks: u32,
        utime: u32,
        events: u64,
        disks: Vec<Desc>,
        this_disk: Desc,
    }

    impl Default for V090 {
        fn default() -> Self {
            V090 {
                minor_version: 90,
                level: 1,
                raid_disks: 2,
                utime: 1_650_000_000,
                events: 0x2_0000_0007,
                disks: vec![
                    (0, 8, 16, 0, DISK_ACTIVE | DISK_SYNC),
                    (1, 8, 32, 1, DISK_FAULTY | DISK_REMOVED),
                    (2, 8, 48, 2, 0),
                ],
                this_disk: (0, 8, 16, 0, DISK_ACTIVE | DISK_SYNC),
            }
        }
    }

    fn v090_bytes(v: &V090) -> Vec<u8> {
        let mut sb = vec![0u8; 4096];
        let mut word = |i: usize, x: u32| put(&mut sb, i * 4, &x.to_le_bytes());
        word(0, MD_SB_MAGIC);
        word(1, 0);
        word(2, v.minor_version);
        word(5, 0xa1b2_c3d4);
        word(6, 1_500_000_000);
        word(7, v.level as u32);
        word(10, v.raid_disks);
        word(13, 0x0000_0001);
        word(14, 0xdead_beef);
        word(15, 0x0102_0304);
        word(32, v.utime);
        word(39, v.events as u32);
        word(40, (v.events >> 32) as u32);
        let desc = |word: &mut dyn FnMut(usize, u32), base: usize, d: Desc| {
            word(base, d.0);
            word(base + 1, d.1);
            word(base + 2, d.2);
            word(base + 3, d.3);
            word(base + 4, d.4);
        };
        for (n, d) in v.disks.iter().enumerate() {
            desc(&mut word, 128 + 32 * n, *d);
        }
        desc(&mut word, 992, v.this_disk);
        let sum: u64 = sb
            .chunks(4)
            .map(|w| u64::from(u32::from_le_bytes(w.try_into().unwrap())))
            .sum();
        let csum = ((sum & 0xffff_ffff) + (sum >> 32)) as u32;
        put(&mut sb, 38 * 4, &csum.to_le_bytes());
        sb
    }

    /// An image of `size` zero bytes with `parts` written at their offsets.
    fn image(size: u64, parts: &[(u64, &[u8])]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(size).unwrap();
        for (offset, bytes) in parts {
            f.as_file().write_all_at(bytes, *offset).unwrap();
        }
        f.flush().unwrap();
        f
    }

    // 2_000_000 bytes is 3906 sectors: 1.0 sits at (3890 & !7) = 3888 sectors, 0.90 at
    // (3840 - 128) = 3712 sectors.
    const SIZE: u64 = 2_000_000;
    const V10_AT: u64 = 3888 * 512;
    const V090_AT: u64 = 3712 * 512;

    #[test]
    fn v1_2_is_found_and_decoded() {
        let sb = v1_bytes(&V1::default());
        let img = image(SIZE, &[(4096, &sb)]);
        let got = read(img.path()).unwrap();
        assert_eq!(
            got,
            Superblock {
                version: "1.2".into(),
                array_uuid: "3a1bc40f:91227e05:deadbeef:000102ff".into(),
                name: Some("box1:0".into()),
                level: 1,
                raid_disks: 2,
                dev_number: 1,
                device_uuid: Some("10203040:50607080:90a0b0c0:d0e0f00a".into()),
                events: 0x1_0000_0042,
                update_time: 1_700_000_000,
                roles: vec![Role::Active(0), Role::Active(1), Role::Spare, Role::Faulty],
                data_offset_bytes: 2048 * 512,
            }
        );
        assert_eq!(got.own_role(), Role::Active(1));
        assert_eq!(got.role_of(0), Role::Active(0));
        assert_eq!(got.role_of(3), Role::Faulty);
        assert_eq!(got.role_of(4), Role::Unused);
        assert_eq!(got.role_of(u32::MAX), Role::Unused);
    }

    #[test]
    fn v1_1_at_the_start() {
        let sb = v1_bytes(&V1 {
            super_offset: 0,
            ..V1::default()
        });
        let got = read(image(SIZE, &[(0, &sb)]).path()).unwrap();
        assert_eq!(got.version, "1.1");
    }

    #[test]
    fn v1_0_at_the_end_with_data_at_zero() {
        let sb = v1_bytes(&V1 {
            data_offset: 0,
            super_offset: V10_AT / 512,
            dev_number: 0,
            roles: vec![0, 1],
            ..V1::default()
        });
        let got = read(image(SIZE, &[(V10_AT, &sb)]).path()).unwrap();
        assert_eq!(got.version, "1.0");
        assert_eq!(got.data_offset_bytes, 0);
        assert_eq!(got.own_role(), Role::Active(0));
    }

    #[test]
    fn v1_0_recording_another_place_is_refused() {
        let sb = v1_bytes(&V1 {
            data_offset: 0,
            super_offset: 1234,
            ..V1::default()
        });
        let img = image(SIZE, &[(V10_AT, &sb)]);
        let err = read(img.path()).unwrap_err();
        assert!(
            matches!(
                &err,
                MdSbError::Invalid {
                    defect: Defect::Misplaced {
                        recorded: 1234,
                        actual: 3888
                    },
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn v1_2_with_the_wrong_super_offset_is_refused() {
        let sb = v1_bytes(&V1 {
            super_offset: 0,
            ..V1::default()
        });
        let err = parse_v1(&sb, 2).unwrap_err();
        assert!(
            matches!(err, MdSbError::Defect(Defect::Misplaced { .. })),
            "{err}"
        );
    }

    #[test]
    fn odd_max_dev_sums_the_last_half_word() {
        let v = V1 {
            roles: vec![0, 1, 0xfffd],
            ..V1::default()
        };
        let sb = v1_bytes(&v);
        let got = parse_v1(&sb, 2).unwrap();
        assert_eq!(
            got.roles,
            vec![Role::Active(0), Role::Active(1), Role::Journal]
        );
        // The trailing role is under the checksum.
        let mut bad = sb.clone();
        bad[256 + 4] ^= 1;
        assert!(matches!(
            parse_v1(&bad, 2),
            Err(MdSbError::Defect(Defect::BadChecksum { .. }))
        ));
    }

    #[test]
    fn empty_name_is_none() {
        let sb = v1_bytes(&V1 {
            name: "",
            ..V1::default()
        });
        assert_eq!(parse_v1(&sb, 2).unwrap().name, None);
    }

    #[test]
    fn full_length_name_without_nul() {
        let name = "abcdefghijklmnopqrstuvwxyz012345";
        let sb = v1_bytes(&V1 {
            name,
            ..V1::default()
        });
        assert_eq!(parse_v1(&sb, 2).unwrap().name.as_deref(), Some(name));
    }

    #[test]
    fn v0_90_at_the_end() {
        let sb = v090_bytes(&V090::default());
        let img = image(SIZE, &[(V090_AT, &sb)]);
        let got = read(img.path()).unwrap();
        let mut roles = vec![Role::Active(0), Role::Faulty, Role::Spare];
        roles.resize(27, Role::Unused);
        assert_eq!(
            got,
            Superblock {
                version: "0.90".into(),
                array_uuid: "a1b2c3d4:00000001:deadbeef:01020304".into(),
                name: None,
                level: 1,
                raid_disks: 2,
                dev_number: 0,
                device_uuid: None,
                events: 0x2_0000_0007,
                update_time: 1_650_000_000,
                roles,
                data_offset_bytes: 0,
            }
        );
        assert_eq!(got.own_role(), Role::Active(0));
        assert_eq!(got.role_of(1), Role::Faulty);
    }

    #[test]
    fn v0_90_linear_level_and_recovering_member() {
        let v = V090 {
            level: -1,
            disks: vec![
                (0, 8, 16, 0, DISK_ACTIVE | DISK_SYNC),
                (1, 8, 32, 1, DISK_ACTIVE),
            ],
            ..V090::default()
        };
        let got = parse_v090(&v090_bytes(&v)).unwrap();
        assert_eq!(got.level, -1);
        // Active without sync is a recovery only 0.91 records; 0.90 treats it as spare.
        assert_eq!(got.role_of(1), Role::Spare);
        let got = parse_v090(&v090_bytes(&V090 {
            minor_version: 91,
            ..v
        }))
        .unwrap();
        assert_eq!(got.version, "0.91");
        assert_eq!(got.role_of(1), Role::Active(1));
    }

    #[test]
    fn v0_90_checksum_is_compared_folded() {
        let mut sb = v090_bytes(&V090::default());
        let at = 38 * 4;
        let stored = u32::from_le_bytes(sb[at..at + 4].try_into().unwrap());
        // Same 16-bit fold, different 32-bit value: the kernel accepts it.
        let (hi, lo) = (stored >> 16, stored & 0xffff);
        if hi > 0 && lo < 0xffff {
            let alt = ((hi - 1) << 16) | (lo + 1);
            put(&mut sb, at, &alt.to_le_bytes());
            assert!(parse_v090(&sb).is_ok());
        }
        put(&mut sb, at, &stored.wrapping_add(1).to_le_bytes());
        assert!(matches!(
            parse_v090(&sb),
            Err(MdSbError::Defect(Defect::BadChecksum { .. }))
        ));
    }

    #[test]
    fn v0_90_with_no_raid_disks_is_refused() {
        let sb = v090_bytes(&V090 {
            raid_disks: 0,
            ..V090::default()
        });
        assert!(matches!(
            parse_v090(&sb),
            Err(MdSbError::Defect(Defect::NoRaidDisks))
        ));
    }

    #[test]
    fn bad_magic_is_no_superblock() {
        let mut sb = v1_bytes(&V1::default());
        sb[0] ^= 0xff;
        assert!(matches!(
            parse_v1(&sb, 2),
            Err(MdSbError::Defect(Defect::BadMagic { .. }))
        ));
        let img = image(SIZE, &[(4096, &sb)]);
        let err = read(img.path()).unwrap_err();
        assert!(matches!(err, MdSbError::NotFound { .. }), "{err}");
    }

    #[test]
    fn bad_checksum_names_the_path() {
        let mut sb = v1_bytes(&V1::default());
        sb[200] ^= 1; // events
        let img = image(SIZE, &[(4096, &sb)]);
        let err = read(img.path()).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(
                &err,
                MdSbError::Invalid {
                    offset: 4096,
                    defect: Defect::BadChecksum { .. },
                    ..
                }
            ),
            "{msg}"
        );
        assert!(msg.contains(&img.path().display().to_string()), "{msg}");
        assert!(msg.contains("bad checksum"), "{msg}");
        assert!(msg.contains("1.2"), "{msg}");
    }

    #[test]
    fn truncated_file_is_reported() {
        let sb = v1_bytes(&V1 {
            roles: vec![0xffff; 384],
            ..V1::default()
        });
        // The member ends inside the role table.
        let img = image(4096 + 300, &[(4096, &sb[..300])]);
        let err = read(img.path()).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(
                &err,
                MdSbError::Invalid {
                    defect: Defect::Truncated {
                        need: 1024,
                        have: 300
                    },
                    ..
                }
            ),
            "{msg}"
        );
        assert!(msg.contains("truncated"), "{msg}");
        assert!(msg.contains(&img.path().display().to_string()), "{msg}");
        assert!(matches!(
            parse_v1(&sb[..100], 2),
            Err(MdSbError::Defect(Defect::Truncated {
                need: 256,
                have: 100
            }))
        ));
        assert!(matches!(
            parse_v090(&v090_bytes(&V090::default())[..4095]),
            Err(MdSbError::Defect(Defect::Truncated {
                need: 4096,
                have: 4095
            }))
        ));
    }

    #[test]
    fn huge_max_dev_is_refused_before_use() {
        for max_dev in [1921, 100_000, u32::MAX] {
            let sb = v1_bytes(&V1 {
                max_dev: Some(max_dev),
                ..V1::default()
            });
            let err = parse_v1(&sb, 2).unwrap_err();
            assert!(
                matches!(err, MdSbError::Defect(Defect::MaxDevTooLarge(m)) if m == max_dev),
                "{err}"
            );
        }
        // The largest table the kernel accepts still fits one 4 KiB read.
        let sb = v1_bytes(&V1 {
            roles: vec![0xffff; 1920],
            ..V1::default()
        });
        assert_eq!(parse_v1(&sb, 2).unwrap().roles.len(), 1920);
    }

    #[test]
    fn no_superblock_message() {
        let img = image(SIZE, &[]);
        let err = read(img.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no md superblock on {} (looked for 1.2 at 4 KiB, 1.1 at 0, 1.0 and 0.90 at the end)",
                img.path().display()
            )
        );
    }

    #[test]
    fn tiny_and_empty_members() {
        for size in [0, 3, 511, 4096, 8191, 70_000] {
            let err = read(image(size, &[]).path()).unwrap_err();
            assert!(matches!(err, MdSbError::NotFound { .. }), "{size}: {err}");
        }
    }

    #[test]
    fn missing_device_is_an_io_error_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sdz");
        let err = read(&path).unwrap_err();
        assert!(matches!(err, MdSbError::Io { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn two_good_superblocks_are_not_guessed_between() {
        let v12 = v1_bytes(&V1::default());
        let v090 = v090_bytes(&V090::default());
        let img = image(SIZE, &[(4096, &v12), (V090_AT, &v090)]);
        let err = read(img.path()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, MdSbError::Ambiguous { .. }), "{msg}");
        assert!(
            msg.contains("1.2 at byte 4096") && msg.contains("0.90 at byte"),
            "{msg}"
        );
    }

    #[test]
    fn a_good_superblock_wins_over_a_damaged_one_elsewhere() {
        let v12 = v1_bytes(&V1::default());
        let mut v090 = v090_bytes(&V090::default());
        v090[200] ^= 1;
        let img = image(SIZE, &[(4096, &v12), (V090_AT, &v090)]);
        assert_eq!(read(img.path()).unwrap().version, "1.2");
    }

    #[test]
    fn unknown_minor_is_refused() {
        let sb = v1_bytes(&V1::default());
        assert!(matches!(
            parse_v1(&sb, 3),
            Err(MdSbError::Defect(Defect::BadVersion { major: 1, minor: 3 }))
        ));
    }

    #[test]
    fn roles_serialize_tagged() {
        let json = serde_json::to_string(&[Role::Active(1), Role::Spare, Role::Unused]).unwrap();
        assert_eq!(
            json,
            r#"[{"role":"active","slot":1},{"role":"spare"},{"role":"unused"}]"#
        );
    }

    #[test]
    fn direct_read_refused_falls_back_to_buffered() {
        let img = image(SIZE, &[(100, b"md")]);
        let mut member = Member::open(img.path()).unwrap();
        // An unaligned offset is what a filesystem refusing direct reads looks like.
        let block = member.read_block(100).unwrap();
        assert_eq!(block.get(..2), Some(&b"md"[..]));
        assert!(!member.reader.is_direct());
        assert_eq!(member.read_block(4096).unwrap().len(), 4096);
    }

    #[test]
    fn reads_from_tmpfs_too() {
        // tmpfs may refuse O_DIRECT; the buffered fallback must find the same thing.
        let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let path = dir.path().join("member");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(SIZE).unwrap();
        f.write_all_at(&v1_bytes(&V1::default()), 4096).unwrap();
        assert_eq!(read(&path).unwrap().events, 0x1_0000_0042);
    }
}
