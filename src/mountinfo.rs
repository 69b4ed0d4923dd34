//! The kernel's mount table, /proc/self/mountinfo (proc(5)), parsed once for every
//! adapter that asks what is mounted where: `fs` before it checks or mounts, `disks` when
//! it tells the admin which device holds what. Ground floor: it imports nothing of hamn.

use std::path::{Path, PathBuf};

/// The table every caller reads: this process's mount namespace.
pub const PATH: &str = "/proc/self/mountinfo";

#[derive(Debug, thiserror::Error)]
pub enum MountinfoError {
    #[error("reading the mount table {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The device number (field 3), which also matches bind mounts and renamed nodes.
    pub major: u32,
    pub minor: u32,
    pub mount_point: PathBuf,
    pub read_only: bool,
    pub fs_type: String,
    /// The mount source as the kernel names it (e.g. /dev/md127).
    pub source: String,
}

/// One line: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER`.
/// A line that does not have that shape is `None`, never a guess.
pub fn parse_line(line: &str) -> Option<Entry> {
    let (left, right) = line.split_once(" - ")?;
    let l: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.split(' ').collect();
    let (major, minor) = l.get(2)?.split_once(':')?;
    let opts = l.get(5)?;
    Some(Entry {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        mount_point: PathBuf::from(unescape(l.get(4)?)),
        read_only: opts.split(',').any(|o| o == "ro"),
        fs_type: r.first()?.to_string(),
        source: unescape(r.get(1)?),
    })
}

/// Every well-formed line of mountinfo text, in the kernel's order (later mounts stack on
/// earlier ones).
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines().filter_map(parse_line).collect()
}

/// Read and parse this process's mount table.
pub fn read() -> Result<Vec<Entry>, MountinfoError> {
    let path = Path::new(PATH);
    let text = std::fs::read_to_string(path).map_err(|source| MountinfoError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse(&text))
}

/// Undo the octal escapes the kernel writes in mountinfo for space, tab, newline and
/// backslash.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v.min(255) as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let l = "42 27 7:0 / /tmp/my\\040mnt rw,relatime shared:1 - ext4 /dev/loop0 rw";
        let m = parse_line(l).expect("parsed");
        assert_eq!((m.major, m.minor), (7, 0));
        assert_eq!(m.mount_point, Path::new("/tmp/my mnt"));
        assert!(!m.read_only);
        assert_eq!(m.fs_type, "ext4");
        assert_eq!(m.source, "/dev/loop0");
        let ro = "43 27 253:3 / /install ro,noatime - xfs /dev/mapper/vg-install ro,attr2";
        assert!(parse_line(ro).expect("parsed").read_only);
        assert_eq!(parse_line("garbage"), None);
        assert_eq!(unescape("a\\134b\\011"), "a\\b\t");
    }

    #[test]
    fn a_trailing_backslash_does_not_panic() {
        assert_eq!(unescape("a\\"), "a\\");
        assert_eq!(unescape("\\04"), "\\04");
    }
}
