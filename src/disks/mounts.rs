//! Which block devices are mounted where, from /proc/self/mountinfo (matched by
//! major:minor, so bind mounts and renamed device nodes still count).

use std::collections::BTreeMap;

pub type Mounts = BTreeMap<(u32, u32), Vec<String>>;

/// Read the current mount table; an unreadable one is empty (noted by the caller).
pub fn read() -> Option<Mounts> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .map(|t| parse(&t))
}

/// Parse mountinfo text (proc(5)): field 3 is major:minor, field 5 the mount point with
/// octal escapes for space, tab, newline and backslash.
pub fn parse(text: &str) -> Mounts {
    let mut mounts = Mounts::new();
    for line in text.lines() {
        let mut fields = line.split(' ');
        let (Some(_), Some(_), Some(devnum), Some(_), Some(point)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        let Some((ma, mi)) = devnum.split_once(':') else {
            continue;
        };
        let (Ok(ma), Ok(mi)) = (ma.parse(), mi.parse()) else {
            continue;
        };
        mounts.entry((ma, mi)).or_default().push(unescape(point));
    }
    mounts
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
    fn mountinfo_lines_map_devices_to_mount_points() {
        let text = "36 35 253:0 / /install rw,relatime shared:1 - ext4 /dev/mapper/mpatha rw\n\
                    37 35 9:127 / /etc/xcat\\040data rw - xfs /dev/md127 rw\n\
                    38 35 9:127 /sub /mnt/bind rw - xfs /dev/md127 rw\n\
                    garbage\n";
        let m = parse(text);
        assert_eq!(m[&(253, 0)], vec!["/install"]);
        assert_eq!(m[&(9, 127)], vec!["/etc/xcat data", "/mnt/bind"]);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn a_trailing_backslash_does_not_panic() {
        assert_eq!(unescape("a\\"), "a\\");
        assert_eq!(unescape("\\04"), "\\04");
    }
}
