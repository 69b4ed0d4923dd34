//! Classification and assembly: from `RawDevice`s to multipath maps with their paths,
//! md arrays with their members, plain disks, and the filesystem on each.
//!
//! Beliefs, with their reasons:
//! - A device is a multipath path if udev says so (DM_MULTIPATH_DEVICE_PATH=1) or if a
//!   multipath map holds it: the first is missing without a udev database, the second
//!   while multipathd has not built the map yet.
//! - A map's WWID is its DM UUID without the "mpath-" prefix; that is how multipathd
//!   names it, whatever the paths' own WWN spelling.
//! - Nothing missing is invented: an unknown fact is `None` with a note saying why.

use std::collections::{BTreeMap, BTreeSet};

use super::model::*;
use super::mounts::Mounts;
use super::props::*;
use super::scan::RawDevice;

/// What a block device is, decided in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MultipathMap,
    MultipathPath,
    MdArray,
    Partition,
    Disk,
    /// Device-mapper devices that are not multipath maps (LVM, crypt...): not inventoried.
    OtherDm,
    /// loop, ram, zram, optical: never xCAT data disks.
    Ignored,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::MultipathMap => "multipath map",
            Kind::MultipathPath => "multipath path",
            Kind::MdArray => "md array",
            Kind::Partition => "partition",
            Kind::Disk => "disk",
            Kind::OtherDm => "device-mapper device",
            Kind::Ignored => "ignored",
        })
    }
}

fn dm_uuid(d: &RawDevice) -> Option<&str> {
    d.prop(DM_UUID).or_else(|| d.attr(ATTR_DM_UUID))
}

fn is_mpath_map(d: &RawDevice) -> bool {
    d.sysname.starts_with("dm-") && dm_uuid(d).is_some_and(|u| u.starts_with(MPATH_UUID_PREFIX))
}

pub fn classify(d: &RawDevice, by_name: &BTreeMap<&str, &RawDevice>) -> Kind {
    let name = d.sysname.as_str();
    if d.devtype.as_deref() == Some("partition") {
        return Kind::Partition;
    }
    if name.starts_with("dm-") {
        return match dm_uuid(d) {
            Some(u) if u.starts_with(MPATH_UUID_PREFIX) => Kind::MultipathMap,
            // kpartx partitions of a map: "part1-mpath-<wwid>".
            Some(u) if u.starts_with("part") && u.contains("-mpath-") => Kind::Partition,
            _ => Kind::OtherDm,
        };
    }
    if ["loop", "ram", "zram", "sr", "fd", "nbd"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        return Kind::Ignored;
    }
    // An inactive array (udev's incremental assembly waiting for more members) has no
    // level and no MD_UUID yet, but it holds its members all the same.
    if name.starts_with("md")
        && (d.prop(MD_UUID).is_some()
            || d.attr(ATTR_MD_LEVEL).is_some_and(|l| !l.is_empty())
            || d.attr(ATTR_MD_ARRAY_STATE).is_some())
    {
        return Kind::MdArray;
    }
    if d.prop(DM_MULTIPATH_DEVICE_PATH) == Some("1")
        || d.holders
            .iter()
            .any(|h| by_name.get(h.as_str()).is_some_and(|m| is_mpath_map(m)))
    {
        return Kind::MultipathPath;
    }
    Kind::Disk
}

fn size(d: &RawDevice) -> Option<u64> {
    d.attr(ATTR_SIZE)?.parse::<u64>().ok()?.checked_mul(512)
}

fn filesystem(d: &RawDevice, mounts: &Mounts) -> Option<Filesystem> {
    let fs_type = d.prop(ID_FS_TYPE).map(str::to_string);
    let uuid = d.prop(ID_FS_UUID).map(str::to_string);
    let label = d.prop(ID_FS_LABEL).map(str::to_string);
    let mountpoints = d
        .devnum
        .and_then(|n| mounts.get(&n).cloned())
        .unwrap_or_default();
    if fs_type.is_none() && uuid.is_none() && mountpoints.is_empty() {
        return None;
    }
    Some(Filesystem {
        fs_type,
        uuid,
        label,
        mountpoints,
    })
}

fn wwn(d: &RawDevice) -> Option<String> {
    d.prop(ID_WWN_WITH_EXTENSION)
        .or_else(|| d.prop(ID_WWN))
        .or_else(|| d.attr(ATTR_DEVICE_WWID))
        .map(str::to_string)
}

fn serial(d: &RawDevice) -> Option<String> {
    d.prop(ID_SCSI_SERIAL)
        .or_else(|| d.prop(ID_SERIAL_SHORT))
        .or_else(|| d.attr(ATTR_SERIAL))
        .or_else(|| d.prop(ID_SERIAL))
        .map(str::to_string)
}

/// The SCSI host a device hangs off, from its sysfs path (".../host2/target2:0:0/...").
fn scsi_host(syspath: &str) -> Option<String> {
    syspath
        .split('/')
        .find(|c| {
            c.starts_with("host") && c[4..].chars().all(|ch| ch.is_ascii_digit()) && c.len() > 4
        })
        .map(str::to_string)
}

/// device/vendor and device/model mean SCSI INQUIRY data only under a SCSI host; on
/// virtio-blk they are PCI IDs, which would read as a bogus vendor.
fn scsi_attr<'a>(d: &'a RawDevice, key: &str) -> Option<&'a str> {
    scsi_host(&d.syspath).and(d.attr(key))
}

struct Notes(Vec<Note>);

impl Notes {
    fn add(&mut self, device: &str, note: impl Into<String>) {
        self.0.push(Note {
            device: device.to_string(),
            note: note.into(),
        });
    }
}

/// Whether anything beyond the kernel's own uevent keys is known: udev rules add the
/// rest (ID_*, DM_*, MD_*), from the database or, in umockdev testbeds, the uevent file.
fn has_udev_properties(d: &RawDevice) -> bool {
    const KERNEL: &[&str] = &[
        "MAJOR",
        "MINOR",
        "DEVNAME",
        "DEVTYPE",
        "DISKSEQ",
        "PARTN",
        "PARTNAME",
        "SUBSYSTEM",
        "DEVPATH",
        "ACTION",
        "SEQNUM",
    ];
    d.properties.keys().any(|k| !KERNEL.contains(&k.as_str()))
}

/// Notes about facts that are absent or damaged on one device.
fn device_notes(d: &RawDevice, kind: Kind, notes: &mut Notes) {
    for (k, v) in d.properties.iter().chain(d.attributes.iter()) {
        if v.lossy {
            notes.add(
                &d.sysname,
                format!("{k} is not valid UTF-8; shown with replacement characters"),
            );
        }
    }
    if !d.initialized && !has_udev_properties(d) {
        notes.add(
            &d.sysname,
            "no udev record for this device (no udev database here?): serial, WWN, slot and \
             filesystem facts come from sysfs where it has them, the rest is unknown",
        );
    }
    if kind == Kind::Disk && d.initialized && d.prop(ID_PATH).is_none() {
        notes.add(&d.sysname, "udev gives no ID_PATH: the slot is unknown");
    }
    if size(d).is_none() {
        notes.add(&d.sysname, "size unknown (sysfs size attribute missing)");
    }
}

fn partitions_of(
    parent: &str,
    raw: &[RawDevice],
    kinds: &BTreeMap<&str, Kind>,
    mounts: &Mounts,
) -> Vec<Partition> {
    raw.iter()
        .filter(|d| kinds.get(d.sysname.as_str()) == Some(&Kind::Partition))
        .filter(|d| {
            d.parent.as_deref() == Some(parent)
                || (d.sysname.starts_with("dm-") && d.slaves.iter().any(|s| s == parent))
        })
        .map(|d| Partition {
            kernel_name: d.sysname.clone(),
            devnode: d.devnode.clone(),
            size_bytes: size(d),
            filesystem: filesystem(d, mounts),
            holders: d.holders.clone(),
        })
        .collect()
}

/// Build the inventory from scanned devices and the mount table.
pub fn assemble(raw: &[RawDevice], mounts: Option<&Mounts>) -> Inventory {
    let empty = Mounts::new();
    let mut notes = Notes(Vec::new());
    let mounts = match mounts {
        Some(m) => m,
        None => {
            notes.add("*", "/proc/self/mountinfo unreadable: mount points unknown");
            &empty
        }
    };
    let by_name: BTreeMap<&str, &RawDevice> = raw.iter().map(|d| (d.sysname.as_str(), d)).collect();
    let kinds: BTreeMap<&str, Kind> = raw
        .iter()
        .map(|d| (d.sysname.as_str(), classify(d, &by_name)))
        .collect();
    let kind_of = |n: &str| kinds.get(n).copied();

    let mut inv = Inventory {
        source: if raw.iter().any(|d| d.initialized || has_udev_properties(d)) {
            "udev".into()
        } else {
            "sysfs".into()
        },
        ..Inventory::default()
    };
    let mut claimed_paths = BTreeSet::new();

    for d in raw {
        let Some(kind) = kind_of(&d.sysname) else {
            continue;
        };
        if !matches!(kind, Kind::Ignored | Kind::OtherDm) {
            device_notes(d, kind, &mut notes);
        }
        match kind {
            Kind::MultipathMap => {
                let wwid = dm_uuid(d)
                    .and_then(|u| u.strip_prefix(MPATH_UUID_PREFIX))
                    .map(str::to_string);
                let mut paths = Vec::new();
                for s in &d.slaves {
                    claimed_paths.insert(s.clone());
                    match by_name.get(s.as_str()) {
                        Some(p) => paths.push(PathDevice {
                            kernel_name: p.sysname.clone(),
                            devnode: p.devnode.clone(),
                            state: p.attr(ATTR_DEVICE_STATE).map(str::to_string),
                            id_path: p.prop(ID_PATH).map(str::to_string),
                            host: scsi_host(&p.syspath),
                            wwn: wwn(p),
                            serial: serial(p),
                        }),
                        None => notes.add(
                            &d.sysname,
                            format!("path {s} is listed in sysfs slaves but its device is gone (removed during the scan?)"),
                        ),
                    }
                }
                if paths.is_empty() {
                    notes.add(&d.sysname, "multipath map with no usable path");
                }
                inv.multipath.push(MultipathMap {
                    name: d
                        .prop(DM_NAME)
                        .or_else(|| d.attr(ATTR_DM_NAME))
                        .map(str::to_string),
                    kernel_name: d.sysname.clone(),
                    devnode: d.devnode.clone(),
                    wwid,
                    size_bytes: size(d),
                    paths,
                    filesystem: filesystem(d, mounts),
                    partitions: partitions_of(&d.sysname, raw, &kinds, mounts),
                });
            }
            Kind::MdArray => {
                let members = d
                    .slaves
                    .iter()
                    .map(|m| MdMember {
                        kernel_name: m.clone(),
                        state: d.attr(&format!("md/dev-{m}/state")).map(str::to_string),
                    })
                    .collect();
                for m in &d.slaves {
                    if !by_name.contains_key(m.as_str()) {
                        notes.add(
                            &d.sysname,
                            format!("member {m} is listed in sysfs slaves but its device is gone"),
                        );
                    }
                }
                inv.md.push(MdArray {
                    kernel_name: d.sysname.clone(),
                    devnode: d.devnode.clone(),
                    name: d.prop(MD_NAME).map(str::to_string),
                    uuid: d.prop(MD_UUID).map(str::to_string),
                    level: d
                        .prop(MD_LEVEL)
                        .or_else(|| d.attr(ATTR_MD_LEVEL))
                        .map(str::to_string),
                    state: d.attr(ATTR_MD_ARRAY_STATE).map(str::to_string),
                    raid_disks: d.attr(ATTR_MD_RAID_DISKS).and_then(|v| v.parse().ok()),
                    degraded: d
                        .attr(ATTR_MD_DEGRADED)
                        .and_then(|v| v.parse::<u32>().ok())
                        .map(|n| n > 0),
                    members,
                    size_bytes: size(d),
                    filesystem: filesystem(d, mounts),
                });
            }
            Kind::Disk => inv.disks.push(Disk {
                kernel_name: d.sysname.clone(),
                devnode: d.devnode.clone(),
                wwn: wwn(d),
                serial: serial(d),
                model: d
                    .prop(ID_MODEL)
                    .or_else(|| scsi_attr(d, ATTR_DEVICE_MODEL))
                    .map(str::to_string),
                vendor: d
                    .prop(ID_VENDOR)
                    .or_else(|| scsi_attr(d, ATTR_DEVICE_VENDOR))
                    .map(str::to_string),
                size_bytes: size(d),
                by_path: d.prop(ID_PATH).map(str::to_string),
                filesystem: filesystem(d, mounts),
                partitions: partitions_of(&d.sysname, raw, &kinds, mounts),
                holders: d.holders.clone(),
            }),
            Kind::MultipathPath => {
                if !d
                    .holders
                    .iter()
                    .any(|h| by_name.get(h.as_str()).is_some_and(|m| is_mpath_map(m)))
                {
                    notes.add(
                        &d.sysname,
                        "udev marks it a multipath path, but no multipath map holds it (multipathd not running, or the map failed?)",
                    );
                }
            }
            Kind::Partition | Kind::OtherDm | Kind::Ignored => {}
        }
    }
    // Paths udev marked but no map claimed are still disks the admin should see.
    for d in raw {
        if kind_of(&d.sysname) == Some(Kind::MultipathPath) && !claimed_paths.contains(&d.sysname) {
            inv.disks.push(Disk {
                kernel_name: d.sysname.clone(),
                devnode: d.devnode.clone(),
                wwn: wwn(d),
                serial: serial(d),
                model: d.prop(ID_MODEL).map(str::to_string),
                vendor: d.prop(ID_VENDOR).map(str::to_string),
                size_bytes: size(d),
                by_path: d.prop(ID_PATH).map(str::to_string),
                filesystem: filesystem(d, mounts),
                partitions: Vec::new(),
                holders: d.holders.clone(),
            });
        }
    }
    inv.notes = notes.0;
    inv
}

/// WWIDs are spelled differently by udev ("0x6001405..."), multipath ("36001405...",
/// NAA type prefix) and sysfs ("naa.6001405..."): compare on the hex digits, with and
/// without multipath's leading NAA designator type.
pub fn same_wwid(a: &str, b: &str) -> bool {
    fn norm(s: &str) -> String {
        let s = s.trim().to_ascii_lowercase();
        s.strip_prefix("0x")
            .or_else(|| s.strip_prefix("naa."))
            .or_else(|| s.strip_prefix("eui."))
            .unwrap_or(&s)
            .to_string()
    }
    let (a, b) = (norm(a), norm(b));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    a == b
        || a.strip_prefix('3').is_some_and(|x| x == b)
        || b.strip_prefix('3').is_some_and(|x| x == a)
}

/// A device found by `--wwid`, `--serial` or `--fs-uuid`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Found {
    MultipathMap(MultipathMap),
    MdArray(MdArray),
    Disk(Disk),
    Path { map: String, path: PathDevice },
    Partition { of: String, partition: Partition },
}

pub enum Query<'a> {
    Wwid(&'a str),
    Serial(&'a str),
    FsUuid(&'a str),
}

fn fs_matches(fs: &Option<Filesystem>, uuid: &str) -> bool {
    fs.as_ref()
        .and_then(|f| f.uuid.as_deref())
        .is_some_and(|u| u.eq_ignore_ascii_case(uuid))
}

pub fn find(inv: &Inventory, q: &Query) -> Vec<Found> {
    let mut out = Vec::new();
    for m in &inv.multipath {
        let hit = match q {
            Query::Wwid(w) => m.wwid.as_deref().is_some_and(|x| same_wwid(x, w)),
            Query::Serial(_) => false,
            Query::FsUuid(u) => fs_matches(&m.filesystem, u),
        };
        if hit {
            out.push(Found::MultipathMap(m.clone()));
        }
        if let Query::Serial(s) = q {
            for p in m.paths.iter().filter(|p| p.serial.as_deref() == Some(*s)) {
                out.push(Found::Path {
                    map: m.kernel_name.clone(),
                    path: p.clone(),
                });
            }
        }
        if let Query::FsUuid(u) = q {
            for p in m.partitions.iter().filter(|p| fs_matches(&p.filesystem, u)) {
                out.push(Found::Partition {
                    of: m.kernel_name.clone(),
                    partition: p.clone(),
                });
            }
        }
    }
    for a in &inv.md {
        if let Query::FsUuid(u) = q
            && fs_matches(&a.filesystem, u)
        {
            out.push(Found::MdArray(a.clone()));
        }
    }
    for d in &inv.disks {
        let hit = match q {
            Query::Wwid(w) => d.wwn.as_deref().is_some_and(|x| same_wwid(x, w)),
            Query::Serial(s) => d.serial.as_deref() == Some(*s),
            Query::FsUuid(u) => fs_matches(&d.filesystem, u),
        };
        if hit {
            out.push(Found::Disk(d.clone()));
        }
        if let Query::FsUuid(u) = q {
            for p in d.partitions.iter().filter(|p| fs_matches(&p.filesystem, u)) {
                out.push(Found::Partition {
                    of: d.kernel_name.clone(),
                    partition: p.clone(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! Every udev property and sysfs attribute the inventory reads, one fact at a time.
    use super::*;
    use crate::disks::scan::Value;

    fn dev(name: &str, syspath: &str, props: &[(&str, &str)], attrs: &[(&str, &str)]) -> RawDevice {
        RawDevice {
            sysname: name.into(),
            syspath: syspath.into(),
            devnode: Some(format!("/dev/{name}")),
            devtype: Some("disk".into()),
            initialized: true,
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), Value::plain(v)))
                .collect(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), Value::plain(v)))
                .collect(),
            ..RawDevice::default()
        }
    }

    const SCSI: &str =
        "/sys/devices/pci0000:00/0000:00:04.0/virtio0/host3/target3:0:0/3:0:0:1/block/sdb";

    #[test]
    fn a_plain_scsi_disk_reads_wwn_serial_model_vendor_size_and_slot() {
        let d = dev(
            "sdb",
            SCSI,
            &[
                (ID_WWN, "0x5000c500a1b2c3d4"),
                (ID_WWN_WITH_EXTENSION, "0x5000c500a1b2c3d4"),
                (ID_SERIAL, "ST4000_Z1Z2"),
                (ID_SCSI_SERIAL, "Z1Z2"),
                (ID_MODEL, "ST4000NM"),
                (ID_VENDOR, "SEAGATE"),
                (ID_PATH, "pci-0000:00:04.0-scsi-0:0:0:1"),
                (ID_FS_TYPE, "xfs"),
                (ID_FS_UUID, "u-1"),
                (ID_FS_LABEL, "data"),
            ],
            &[(ATTR_SIZE, "7814037168")],
        );
        let inv = assemble(&[d], Some(&Mounts::new()));
        let d = &inv.disks[0];
        assert_eq!(d.wwn.as_deref(), Some("0x5000c500a1b2c3d4"));
        assert_eq!(
            d.serial.as_deref(),
            Some("Z1Z2"),
            "ID_SCSI_SERIAL before ID_SERIAL"
        );
        assert_eq!(
            (d.model.as_deref(), d.vendor.as_deref()),
            (Some("ST4000NM"), Some("SEAGATE"))
        );
        assert_eq!(d.size_bytes, Some(7_814_037_168 * 512));
        assert_eq!(d.by_path.as_deref(), Some("pci-0000:00:04.0-scsi-0:0:0:1"));
        let fs = d.filesystem.as_ref().expect("fs");
        assert_eq!(
            (
                fs.fs_type.as_deref(),
                fs.uuid.as_deref(),
                fs.label.as_deref()
            ),
            (Some("xfs"), Some("u-1"), Some("data"))
        );
        assert!(inv.notes.is_empty(), "{:?}", inv.notes);
    }

    #[test]
    fn without_udev_the_sysfs_wwid_vendor_and_model_are_used_and_the_gap_is_noted() {
        let mut d = dev(
            "sdb",
            SCSI,
            &[],
            &[
                (ATTR_SIZE, "8"),
                (ATTR_DEVICE_WWID, "naa.6001405abc"),
                (ATTR_DEVICE_VENDOR, "LIO-ORG "),
                (ATTR_DEVICE_MODEL, "disk1 "),
            ],
        );
        d.initialized = false;
        let inv = assemble(&[d], Some(&Mounts::new()));
        assert_eq!(inv.source, "sysfs");
        let d = &inv.disks[0];
        assert_eq!(d.wwn.as_deref(), Some("naa.6001405abc"));
        assert_eq!(
            (d.vendor.as_deref(), d.model.as_deref()),
            (Some("LIO-ORG"), Some("disk1"))
        );
        assert!(d.serial.is_none() && d.by_path.is_none());
        assert!(inv.notes.iter().any(|n| n.note.contains("no udev record")));
    }

    #[test]
    fn virtio_pci_ids_are_not_taken_for_a_vendor_but_the_virtio_serial_is_read() {
        let d = dev(
            "vda",
            "/sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda",
            &[],
            &[(ATTR_DEVICE_VENDOR, "0x1af4"), (ATTR_SERIAL, "vd-1")],
        );
        let inv = assemble(&[d], None);
        assert_eq!(inv.disks[0].vendor, None);
        assert_eq!(inv.disks[0].serial.as_deref(), Some("vd-1"));
        assert!(
            inv.notes
                .iter()
                .any(|n| n.note.contains("mountinfo unreadable"))
        );
    }

    fn mpath() -> Vec<RawDevice> {
        let mut map = dev(
            "dm-0",
            "/sys/devices/virtual/block/dm-0",
            &[(DM_NAME, "mpatha"), (DM_UUID, "mpath-36001405aa")],
            &[(ATTR_SIZE, "2048")],
        );
        map.slaves = vec!["sda".into(), "sdb".into()];
        map.devnum = Some((253, 0));
        let mut a = dev(
            "sda",
            "/sys/devices/x/host2/target2:0:0/2:0:0:0/block/sda",
            &[(DM_MULTIPATH_DEVICE_PATH, "1"), (ID_PATH, "ip-a")],
            &[(ATTR_DEVICE_STATE, "running")],
        );
        a.holders = vec!["dm-0".into()];
        // No udev flag on the second path: the holder link alone makes it a path.
        let mut b = dev(
            "sdb",
            "/sys/devices/x/host3/target3:0:0/3:0:0:0/block/sdb",
            &[],
            &[(ATTR_DEVICE_STATE, "offline")],
        );
        b.holders = vec!["dm-0".into()];
        vec![map, a, b]
    }

    #[test]
    fn a_multipath_map_reads_name_wwid_and_each_path_state_host_and_slot() {
        let mut mounts = Mounts::new();
        mounts.insert((253, 0), vec!["/install".into()]);
        let inv = assemble(&mpath(), Some(&mounts));
        let m = &inv.multipath[0];
        assert_eq!(
            (m.name.as_deref(), m.wwid.as_deref()),
            (Some("mpatha"), Some("36001405aa"))
        );
        assert_eq!(m.paths.len(), 2);
        assert_eq!(
            (m.paths[0].host.as_deref(), m.paths[0].id_path.as_deref()),
            (Some("host2"), Some("ip-a"))
        );
        assert_eq!(m.paths[1].state.as_deref(), Some("offline"));
        assert_eq!(
            m.filesystem.as_ref().map(|f| f.mountpoints.clone()),
            Some(vec!["/install".to_string()])
        );
        assert!(inv.disks.is_empty());
    }

    #[test]
    fn without_udev_the_map_name_and_uuid_come_from_sysfs_dm_attributes() {
        let mut raw = mpath();
        raw[0].properties.clear();
        raw[0]
            .attributes
            .insert(ATTR_DM_NAME.into(), Value::plain("mpatha"));
        raw[0]
            .attributes
            .insert(ATTR_DM_UUID.into(), Value::plain("mpath-36001405aa"));
        raw[1].properties.clear();
        let inv = assemble(&raw, Some(&Mounts::new()));
        assert_eq!(inv.multipath[0].name.as_deref(), Some("mpatha"));
        assert_eq!(inv.multipath[0].paths.len(), 2);
    }

    #[test]
    fn an_md_array_reads_uuid_name_level_state_degraded_and_member_states() {
        let mut md = dev(
            "md127",
            "/sys/devices/virtual/block/md127",
            &[
                (MD_UUID, "a:b:c:d"),
                (MD_NAME, "box1:0"),
                (MD_LEVEL, "raid1"),
            ],
            &[
                (ATTR_MD_ARRAY_STATE, "clean"),
                (ATTR_MD_DEGRADED, "0"),
                (ATTR_MD_RAID_DISKS, "2"),
                ("md/dev-sdc/state", "in_sync"),
                ("md/dev-sdd/state", "faulty"),
            ],
        );
        md.slaves = vec!["sdc".into(), "sdd".into()];
        let inv = assemble(&[md], Some(&Mounts::new()));
        let a = &inv.md[0];
        assert_eq!(
            (a.uuid.as_deref(), a.name.as_deref(), a.level.as_deref()),
            (Some("a:b:c:d"), Some("box1:0"), Some("raid1"))
        );
        assert_eq!(
            (a.state.as_deref(), a.degraded, a.raid_disks),
            (Some("clean"), Some(false), Some(2))
        );
        assert_eq!(a.members[1].state.as_deref(), Some("faulty"));
        let gone = inv.notes.iter().filter(|n| {
            n.note
                .contains("listed in sysfs slaves but its device is gone")
        });
        assert_eq!(
            gone.count(),
            2,
            "both members are absent from the scan: {:?}",
            inv.notes
        );
    }

    #[test]
    fn classification_of_loop_lvm_partitions_and_kpartx_maps() {
        let none = BTreeMap::new();
        let loop0 = dev("loop0", "/sys/devices/virtual/block/loop0", &[], &[]);
        assert_eq!(classify(&loop0, &none), Kind::Ignored);
        let lvm = dev(
            "dm-3",
            "/sys/devices/virtual/block/dm-3",
            &[(DM_UUID, "LVM-abc")],
            &[],
        );
        assert_eq!(classify(&lvm, &none), Kind::OtherDm);
        let kpartx = dev(
            "dm-4",
            "/sys/devices/virtual/block/dm-4",
            &[(DM_UUID, "part1-mpath-36001")],
            &[],
        );
        assert_eq!(classify(&kpartx, &none), Kind::Partition);
        let mut part = dev("sda1", "/sys/x/sda/sda1", &[], &[]);
        part.devtype = Some("partition".into());
        assert_eq!(classify(&part, &none), Kind::Partition);
    }

    #[test]
    fn wwids_match_across_udev_multipath_and_sysfs_spellings() {
        assert!(same_wwid("0x6001405abc", "36001405abc"));
        assert!(same_wwid("naa.6001405ABC", "0x6001405abc"));
        assert!(!same_wwid("36001405abc", "36001405abd"));
        assert!(!same_wwid("", ""));
    }
}
