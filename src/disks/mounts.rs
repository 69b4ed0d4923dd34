//! Which block devices are mounted where, as the inventory shows it: the mount table
//! (`crate::mountinfo`) keyed by major:minor, so bind mounts and renamed device nodes
//! still count.

use std::collections::BTreeMap;

use crate::mountinfo;

pub type Mounts = BTreeMap<(u32, u32), Vec<String>>;

/// Read the current mount table; an unreadable one is None (noted by the caller).
pub fn read() -> Option<Mounts> {
    mountinfo::read().ok().map(|t| by_device(&t))
}

/// Parse mountinfo text into device number -> mount points.
pub fn parse(text: &str) -> Mounts {
    by_device(&mountinfo::parse(text))
}

fn by_device(table: &[mountinfo::Entry]) -> Mounts {
    let mut mounts = Mounts::new();
    for e in table {
        mounts
            .entry((e.major, e.minor))
            .or_default()
            .push(e.mount_point.to_string_lossy().into_owned());
    }
    mounts
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
}
