//! The ext2/3/4 primary superblock, read by hamn itself: where it lies, the few fields
//! the check needs (does the journal need recovery, the filesystem UUID), and reading it
//! past this node's page cache.
//!
//! This replaced `dumpe2fs -h` (issue 13): under TCG in the lab every process costs
//! 0.1-0.4 s, and dumpe2fs was run only for one flag and the UUID. Layout after the
//! kernel's Documentation/filesystems/ext4/super.rst (`struct ext4_super_block`).
//! Everything else about the filesystem, the superblock checksum included, is judged by
//! e2fsck, which runs next in every case.

use std::io;
use std::path::Path;

use crate::uncached::Reader;

/// The primary superblock is the 1024 bytes at byte 1024, whatever the block size.
pub const SUPERBLOCK_OFFSET: usize = 1024;
const SUPERBLOCK_LEN: usize = 1024;

/// s_magic (le16) and its one value.
const MAGIC_AT: usize = 0x38;
pub const EXT_MAGIC: u16 = 0xEF53;
/// s_feature_incompat (le32); INCOMPAT_RECOVER: the journal holds transactions not yet
/// written in place, i.e. the filesystem was not unmounted cleanly.
const INCOMPAT_AT: usize = 0x60;
const INCOMPAT_RECOVER: u32 = 0x4;
/// s_uuid[16].
const UUID_AT: usize = 0x68;

/// What the check needs from the superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtSuper {
    /// INCOMPAT_RECOVER is set: e2fsck must replay the journal before it can judge.
    pub needs_recovery: bool,
    /// The filesystem UUID as blkid and dumpe2fs print it (lowercase, hyphenated); None
    /// when it is all zeroes, which dumpe2fs shows as "<none>".
    pub uuid: Option<String>,
}

/// Why the bytes are not an ext2/3/4 superblock. The texts keep the words e2fsprogs uses
/// ("Bad magic number in super-block"), which the refusal's next steps key on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SbDefect {
    #[error(
        "only {len} bytes could be read; an ext2/3/4 superblock ends at byte {}",
        SUPERBLOCK_OFFSET + SUPERBLOCK_LEN
    )]
    Short { len: usize },
    #[error(
        "Bad magic number in super-block: {found:#06x} at byte {}, not {EXT_MAGIC:#06x}",
        SUPERBLOCK_OFFSET + MAGIC_AT
    )]
    BadMagic { found: u16 },
}

fn le16(sb: &[u8], at: usize) -> Option<u16> {
    let b: [u8; 2] = sb.get(at..at + 2)?.try_into().ok()?;
    Some(u16::from_le_bytes(b))
}

fn le32(sb: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = sb.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

fn format_uuid(u: &[u8]) -> Option<String> {
    if u.len() != 16 || u.iter().all(|&b| b == 0) {
        return None;
    }
    let hex = |r: std::ops::Range<usize>| -> String {
        u.get(r)
            .unwrap_or(&[])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    Some(format!(
        "{}-{}-{}-{}-{}",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    ))
}

/// Decode the superblock from the first bytes of a device (at least 2048 of them).
/// Pure: any bytes give an answer or a defect, never a panic.
pub fn parse(head: &[u8]) -> Result<ExtSuper, SbDefect> {
    let Some(sb) = head.get(SUPERBLOCK_OFFSET..SUPERBLOCK_OFFSET + SUPERBLOCK_LEN) else {
        return Err(SbDefect::Short { len: head.len() });
    };
    let magic = le16(sb, MAGIC_AT).unwrap_or(0);
    if magic != EXT_MAGIC {
        return Err(SbDefect::BadMagic { found: magic });
    }
    let incompat = le32(sb, INCOMPAT_AT).unwrap_or(0);
    Ok(ExtSuper {
        needs_recovery: incompat & INCOMPAT_RECOVER != 0,
        uuid: sb.get(UUID_AT..UUID_AT + 16).and_then(format_uuid),
    })
}

/// How the bytes were read, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    Direct,
    /// The file or device refused O_DIRECT; read through the page cache after asking the
    /// kernel to drop the cached range.
    Buffered,
}

/// The first 4 KiB of `device` (fewer only if it is smaller), past this node's page
/// cache (see `crate::uncached`): a cached superblock from before the peer's last writes
/// would lack the needs_recovery flag the peer set, and the journal would not be
/// replayed.
pub fn read_head(device: &Path) -> io::Result<(Vec<u8>, ReadMode)> {
    let mut reader = Reader::open(device)?;
    let head = reader.read_block(0)?;
    let mode = if reader.is_direct() {
        ReadMode::Direct
    } else {
        ReadMode::Buffered
    };
    Ok((head, mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device head holding a superblock with these fields.
    fn head(magic: u16, incompat: u32, uuid: [u8; 16]) -> Vec<u8> {
        let mut h = vec![0u8; 2048];
        let sb = &mut h[SUPERBLOCK_OFFSET..];
        sb[MAGIC_AT..MAGIC_AT + 2].copy_from_slice(&magic.to_le_bytes());
        sb[INCOMPAT_AT..INCOMPAT_AT + 4].copy_from_slice(&incompat.to_le_bytes());
        sb[UUID_AT..UUID_AT + 16].copy_from_slice(&uuid);
        h
    }

    const UUID: [u8; 16] = [
        0x0b, 0x3c, 0x1d, 0x5e, 0xaa, 0xaa, 0xbb, 0xbb, 0xcc, 0xcc, 0x01, 0x23, 0x45, 0x67, 0x89,
        0xab,
    ];

    #[test]
    fn recover_flag_and_uuid() {
        // filetype | extents | 64bit | flex_bg, as mkfs.ext4 makes them, plus RECOVER.
        let s = parse(&head(EXT_MAGIC, 0x2c2 | 0x4, UUID)).unwrap();
        assert!(s.needs_recovery);
        assert_eq!(
            s.uuid.as_deref(),
            Some("0b3c1d5e-aaaa-bbbb-cccc-0123456789ab")
        );
        let s = parse(&head(EXT_MAGIC, 0x2c2, UUID)).unwrap();
        assert!(!s.needs_recovery);
    }

    #[test]
    fn a_zero_uuid_is_none() {
        assert_eq!(parse(&head(EXT_MAGIC, 0, [0; 16])).unwrap().uuid, None);
    }

    #[test]
    fn bad_magic_and_short_heads_are_defects() {
        let e = parse(&head(0, 4, UUID)).unwrap_err();
        assert_eq!(e, SbDefect::BadMagic { found: 0 });
        // The refusal's backup-superblock advice keys on these words.
        assert!(e.to_string().contains("Bad magic number"), "{e}");
        // XFS's magic "XFSB" sits at byte 0, not here.
        assert!(matches!(
            parse(&head(0x5346, 0, UUID)),
            Err(SbDefect::BadMagic { found: 0x5346 })
        ));
        assert_eq!(parse(&[]), Err(SbDefect::Short { len: 0 }));
        let h = head(EXT_MAGIC, 0, UUID);
        assert_eq!(parse(&h[..2047]), Err(SbDefect::Short { len: 2047 }));
        assert!(parse(&h[..2048]).is_ok());
    }

    #[test]
    fn reads_a_file_directly_or_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        let mut h = head(EXT_MAGIC, 4, UUID);
        h.resize(8192, 0);
        std::fs::write(&p, &h).unwrap();
        let (bytes, _mode) = read_head(&p).unwrap();
        assert_eq!(bytes.len(), crate::uncached::BLOCK);
        assert!(parse(&bytes).unwrap().needs_recovery);

        // Smaller than one read: the rest is missing, not zero-filled.
        std::fs::write(&p, &h[..1500]).unwrap();
        let (bytes, _) = read_head(&p).unwrap();
        assert_eq!(bytes.len(), 1500);
        assert!(matches!(parse(&bytes), Err(SbDefect::Short { len: 1500 })));
    }

    #[test]
    fn reads_from_tmpfs_too() {
        // tmpfs may refuse O_DIRECT; the buffered fallback must find the same thing.
        let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let p = dir.path().join("img");
        std::fs::write(&p, head(EXT_MAGIC, 0, UUID)).unwrap();
        let (bytes, _) = read_head(&p).unwrap();
        assert_eq!(
            parse(&bytes).unwrap().uuid.as_deref(),
            Some("0b3c1d5e-aaaa-bbbb-cccc-0123456789ab")
        );
    }

    #[test]
    fn a_missing_device_is_an_io_error() {
        let e = read_head(Path::new("/nonexistent/hamn-extsb")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
