//! Reading block devices from libudev (properties from udev's database, attributes and
//! slaves/holders from sysfs) into plain `RawDevice` values. This is the only part of the
//! inventory that does I/O; classification and assembly work on `RawDevice`s and are
//! tested without a system.
//!
//! Cost: one libudev enumeration of the block subsystem plus a few sysfs reads per
//! device, linear in the number of block devices.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::props::*;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(
        "cannot enumerate block devices through libudev: {0}; is /sys mounted? (hamn disks needs sysfs)"
    )]
    Udev(std::io::Error),
}

/// One value as read: text, or bytes that were not UTF-8 (kept lossily, with a flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub text: String,
    pub lossy: bool,
}

impl Value {
    pub fn from_os(v: &OsStr) -> Self {
        let bytes = v.as_bytes();
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
    /// Whether udev's database knows the device; false in containers and early boot.
    pub initialized: bool,
    pub properties: BTreeMap<String, Value>,
    pub attributes: BTreeMap<String, Value>,
    pub slaves: Vec<String>,
    pub holders: Vec<String>,
    /// Parent partition's disk, for partitions.
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

/// The attributes read for every device (missing ones are simply absent).
const ATTRIBUTES: &[&str] = &[
    ATTR_SIZE,
    ATTR_DM_NAME,
    ATTR_DM_UUID,
    ATTR_MD_LEVEL,
    ATTR_MD_ARRAY_STATE,
    ATTR_MD_DEGRADED,
    ATTR_MD_RAID_DISKS,
    ATTR_DEVICE_STATE,
    ATTR_DEVICE_VENDOR,
    ATTR_DEVICE_MODEL,
    ATTR_DEVICE_WWID,
    ATTR_SERIAL,
];

/// Names in a sysfs link directory (slaves/, holders/). A directory that does not
/// exist is empty: sysfs and umockdev omit empty ones.
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

/// Enumerate the block subsystem. Devices that vanish between enumeration and reading
/// simply come back with fewer facts; the assembly step notes what is missing.
pub fn scan() -> Result<Vec<RawDevice>, ScanError> {
    let mut en = udev::Enumerator::new().map_err(ScanError::Udev)?;
    en.match_subsystem("block").map_err(ScanError::Udev)?;
    let mut out = Vec::new();
    for dev in en.scan_devices().map_err(ScanError::Udev)? {
        out.push(read_device(&dev));
    }
    out.sort_by(|a, b| a.sysname.cmp(&b.sysname));
    Ok(out)
}

fn read_device(dev: &udev::Device) -> RawDevice {
    let sysname = Value::from_os(dev.sysname()).text;
    let syspath = dev.syspath().to_path_buf();
    let mut properties = BTreeMap::new();
    for p in dev.properties() {
        properties.insert(Value::from_os(p.name()).text, Value::from_os(p.value()));
    }
    let mut attributes = BTreeMap::new();
    for a in ATTRIBUTES {
        if let Some(v) = dev.attribute_value(a) {
            attributes.insert((*a).to_string(), Value::from_os(v));
        }
    }
    let slaves = link_names(&syspath.join("slaves"));
    // md member states live under the array: md/dev-<member>/state.
    for member in &slaves {
        let key = format!("md/dev-{member}/state");
        if let Some(v) = dev.attribute_value(&key) {
            attributes.insert(key, Value::from_os(v));
        }
    }
    let devnum = dev.devnum().map(|d| (libc_major(d), libc_minor(d)));
    let devtype = dev.devtype().map(|t| Value::from_os(t).text);
    let parent = if devtype.as_deref() == Some("partition") {
        dev.parent().map(|p| Value::from_os(p.sysname()).text)
    } else {
        None
    };
    RawDevice {
        slaves,
        holders: link_names(&syspath.join("holders")),
        syspath: syspath.to_string_lossy().into_owned(),
        devnode: dev.devnode().map(|p| p.to_string_lossy().into_owned()),
        devtype,
        devnum,
        initialized: dev.is_initialized(),
        properties,
        attributes,
        parent,
        sysname,
    }
}

fn libc_major(d: u64) -> u32 {
    // glibc's gnu_dev_major encoding, spelled out to stay off raw-syscall crates.
    (((d >> 32) & 0xffff_f000) | ((d >> 8) & 0x0000_0fff)) as u32
}

fn libc_minor(d: u64) -> u32 {
    (((d >> 12) & 0xffff_ff00) | (d & 0x0000_00ff)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_t_decoding_matches_the_glibc_layout() {
        // 8:16 (sdb) and 253:0 (dm-0), encoded as glibc makedev does.
        let make = |ma: u64, mi: u64| {
            ((ma & 0xfffff000) << 32)
                | ((ma & 0xfff) << 8)
                | ((mi & 0xffffff00) << 12)
                | (mi & 0xff)
        };
        assert_eq!((libc_major(make(8, 16)), libc_minor(make(8, 16))), (8, 16));
        assert_eq!(
            (libc_major(make(253, 0)), libc_minor(make(253, 0))),
            (253, 0)
        );
        assert_eq!(
            (libc_major(make(259, 300)), libc_minor(make(259, 300))),
            (259, 300)
        );
    }

    #[test]
    fn non_utf8_values_are_kept_lossily_and_flagged() {
        let v = Value::from_os(OsStr::from_bytes(b"SER\xff1"));
        assert!(v.lossy);
        assert!(v.text.starts_with("SER"));
    }
}
