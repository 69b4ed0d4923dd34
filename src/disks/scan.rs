//! Reading block devices into plain `RawDevice` values: the device list from sysfs
//! (/sys/class/block), the kernel's properties from each uevent file, udev's from its
//! database record (/run/udev/data/b<major>:<minor>), attributes and slaves/holders from
//! sysfs. This is the only part of the inventory that does I/O; classification and
//! assembly work on `RawDevice`s and are tested without a system.
//!
//! These are the sources libudev itself reads. hamn reads them directly because
//! libudev's cost was measured too high for a large SAN: it resolves every path
//! component of every device and attribute anew, and, when the database has no record
//! (containers, early boot, umockdev testbeds), retries it for every property (16 failed
//! opens per device were counted on a 160-device testbed).
//!
//! Cost: linear in the number of block devices; per device one link read and a few file
//! reads, fewer when udev already supplied the fact.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::props::*;

pub const SYS_CLASS_BLOCK: &str = "/sys/class/block";
/// Where udevd keeps its record of each device (b<major>:<minor> for block devices).
pub const UDEV_DB: &str = "/run/udev/data";

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot list block devices in {path}: {source}; is sysfs mounted on /sys?")]
    Sysfs {
        path: String,
        source: std::io::Error,
    },
}

/// One value as read: text, or bytes that were not UTF-8 (kept lossily, with a flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub text: String,
    pub lossy: bool,
}

impl Value {
    pub fn from_bytes(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(s) => Value {
                text: s.to_string(),
                lossy: false,
            },
            Err(_) => Value {
                text: String::from_utf8_lossy(bytes).into_owned(),
                lossy: true,
            },
        }
    }

    pub fn from_os(v: &OsStr) -> Self {
        Self::from_bytes(v.as_bytes())
    }

    pub fn plain(s: &str) -> Self {
        Value {
            text: s.to_string(),
            lossy: false,
        }
    }
}

/// Everything the inventory uses about one block device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawDevice {
    pub sysname: String,
    pub syspath: String,
    pub devnode: Option<String>,
    pub devtype: Option<String>,
    pub devnum: Option<(u32, u32)>,
    /// Whether udev's database has a record of the device; not in containers, early boot.
    pub initialized: bool,
    pub properties: BTreeMap<String, Value>,
    pub attributes: BTreeMap<String, Value>,
    pub slaves: Vec<String>,
    pub holders: Vec<String>,
    /// For a partition, the disk it is on.
    pub parent: Option<String>,
}

impl RawDevice {
    pub fn prop(&self, key: &str) -> Option<&str> {
        self.properties
            .get(key)
            .map(|v| v.text.trim())
            .filter(|s| !s.is_empty())
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .get(key)
            .map(|v| v.text.trim())
            .filter(|s| !s.is_empty())
    }
}

/// `base` joined with a relative link target, `..` resolved lexically (sysfs class links
/// are relative and point straight at the device directory).
fn resolve(base: &Path, rel: &Path) -> PathBuf {
    let mut out = PathBuf::from(base);
    for c in rel.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// List every block device (disks and partitions). A device that vanishes between
/// listing and reading comes back with fewer facts; the assembly step notes the gaps.
pub fn scan() -> Result<Vec<RawDevice>, ScanError> {
    let class = Path::new(SYS_CLASS_BLOCK);
    let rd = std::fs::read_dir(class).map_err(|source| ScanError::Sysfs {
        path: SYS_CLASS_BLOCK.into(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in rd.filter_map(Result::ok) {
        let sysname = entry.file_name().to_string_lossy().into_owned();
        let syspath = match std::fs::read_link(entry.path()) {
            Ok(target) if target.is_relative() => resolve(class, &target),
            Ok(target) => target,
            Err(_) => entry.path(),
        };
        out.push(read_device(sysname, syspath));
    }
    out.sort_by(|a, b| a.sysname.cmp(&b.sysname));
    Ok(out)
}

/// `KEY=VALUE` lines (uevent), or `E:KEY=VALUE` lines (udev database) with `prefix`.
/// Values may be any bytes.
pub fn key_values(text: &[u8], prefix: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for line in text.split(|b| *b == b'\n') {
        let Some(line) = line.strip_prefix(prefix.as_bytes()) else {
            continue;
        };
        let Some(eq) = line.iter().position(|b| *b == b'=') else {
            continue;
        };
        let key = String::from_utf8_lossy(&line[..eq]).into_owned();
        out.insert(key, Value::from_bytes(&line[eq + 1..]));
    }
    out
}

/// One sysfs attribute; its trailing newline is not part of the value.
fn read_attr(syspath: &Path, attr: &str) -> Option<Value> {
    let mut bytes = std::fs::read(syspath.join(attr)).ok()?;
    while matches!(bytes.last(), Some(b'\n')) {
        bytes.pop();
    }
    Some(Value::from_bytes(&bytes))
}

/// Names in a sysfs link directory (slaves/, holders/). One that does not exist is
/// empty: sysfs and umockdev omit empty ones.
fn link_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// The sysfs attributes worth reading for a device, given what udev already said. Each
/// read is a file access, so only what can exist for that kind of device, and only
/// what udev did not supply, is asked for.
fn attributes_wanted(
    sysname: &str,
    syspath: &str,
    props: &BTreeMap<String, Value>,
) -> Vec<&'static str> {
    let has = |k: &str| props.contains_key(k);
    let mut want = vec![ATTR_SIZE];
    if sysname.starts_with("dm-") {
        if !has(DM_NAME) {
            want.push(ATTR_DM_NAME);
        }
        if !has(DM_UUID) {
            want.push(ATTR_DM_UUID);
        }
    } else if sysname.starts_with("md") {
        want.extend([
            ATTR_MD_LEVEL,
            ATTR_MD_ARRAY_STATE,
            ATTR_MD_DEGRADED,
            ATTR_MD_RAID_DISKS,
        ]);
    } else if syspath.contains("/host") {
        // SCSI: the device state is only in sysfs; INQUIRY facts only when udev lacks them.
        want.push(ATTR_DEVICE_STATE);
        if !has(ID_VENDOR) {
            want.push(ATTR_DEVICE_VENDOR);
        }
        if !has(ID_MODEL) {
            want.push(ATTR_DEVICE_MODEL);
        }
        if !has(ID_WWN) && !has(ID_WWN_WITH_EXTENSION) {
            want.push(ATTR_DEVICE_WWID);
        }
    } else if sysname.starts_with("vd") && !has(ID_SERIAL) {
        want.push(ATTR_SERIAL);
    }
    want
}

fn read_device(sysname: String, syspath: PathBuf) -> RawDevice {
    let mut properties = std::fs::read(syspath.join("uevent"))
        .map(|t| key_values(&t, ""))
        .unwrap_or_default();
    let devnum = properties
        .get("MAJOR")
        .zip(properties.get("MINOR"))
        .and_then(|(a, b)| a.text.parse().ok().zip(b.text.parse().ok()));
    let mut initialized = false;
    if let Some((ma, mi)) = devnum
        && let Ok(text) = std::fs::read(Path::new(UDEV_DB).join(format!("b{ma}:{mi}")))
    {
        initialized = true;
        properties.extend(key_values(&text, "E:"));
    }
    let path_text = syspath.to_string_lossy().into_owned();
    let mut attributes = BTreeMap::new();
    for a in attributes_wanted(&sysname, &path_text, &properties) {
        if let Some(v) = read_attr(&syspath, a) {
            attributes.insert(a.to_string(), v);
        }
    }
    let slaves = link_names(&syspath.join("slaves"));
    // md member states live under the array: md/dev-<member>/state.
    if sysname.starts_with("md") {
        for member in &slaves {
            let key = format!("md/dev-{member}/state");
            if let Some(v) = read_attr(&syspath, &key) {
                attributes.insert(key, v);
            }
        }
    }
    let prop = |k: &str| properties.get(k).map(|v| v.text.clone());
    let devtype = prop(DEVTYPE);
    let devnode = prop("DEVNAME").map(|n| {
        if n.starts_with('/') {
            n
        } else {
            format!("/dev/{n}")
        }
    });
    // A partition's directory sits inside its disk's: /sys/.../block/sda/sda1.
    let parent = if devtype.as_deref() == Some("partition") {
        syspath
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
    } else {
        None
    };
    RawDevice {
        holders: link_names(&syspath.join("holders")),
        slaves,
        syspath: path_text,
        devnode,
        devtype,
        devnum,
        initialized,
        properties,
        attributes,
        parent,
        sysname,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uevent_and_udev_database_lines_are_parsed_and_other_lines_skipped() {
        let uevent = key_values(b"MAJOR=8\nMINOR=16\nDEVNAME=sdb\nDEVTYPE=disk\n", "");
        assert_eq!(uevent["DEVNAME"].text, "sdb");
        let db = key_values(
            b"S:disk/by-id/wwn-0x5\nI:123\nE:ID_SERIAL=Z1\xff\nE:ID_PATH=pci-0\nG:systemd\n",
            "E:",
        );
        assert_eq!(db.len(), 2);
        assert!(db["ID_SERIAL"].lossy);
        assert_eq!(db["ID_PATH"].text, "pci-0");
    }

    #[test]
    fn relative_sysfs_links_resolve_lexically() {
        assert_eq!(
            resolve(
                Path::new("/sys/class/block"),
                Path::new("../../devices/virtual/block/dm-0")
            ),
            PathBuf::from("/sys/devices/virtual/block/dm-0")
        );
    }

    #[test]
    fn udev_facts_spare_the_sysfs_reads() {
        let mut props = BTreeMap::new();
        let want = attributes_wanted("sda", "/sys/devices/x/host0/t/0:0:0:0/block/sda", &props);
        assert!(want.contains(&ATTR_DEVICE_VENDOR) && want.contains(&ATTR_DEVICE_WWID));
        props.insert(ID_VENDOR.to_string(), Value::plain("LIO-ORG"));
        props.insert(ID_WWN.to_string(), Value::plain("0x6"));
        let want = attributes_wanted("sda", "/sys/devices/x/host0/t/0:0:0:0/block/sda", &props);
        assert!(!want.contains(&ATTR_DEVICE_VENDOR) && !want.contains(&ATTR_DEVICE_WWID));
        assert!(want.contains(&ATTR_DEVICE_STATE));
    }

    #[test]
    fn non_utf8_values_are_kept_lossily_and_flagged() {
        let v = Value::from_os(OsStr::from_bytes(b"SER\xff1"));
        assert!(v.lossy);
        assert!(v.text.starts_with("SER"));
    }
}
