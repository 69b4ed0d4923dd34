//! What the inventory reports: multipath maps with their paths, plain disks, md arrays,
//! and the filesystem on each. Facts that could not be read are `None` and explained in
//! `notes`, never invented.

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Inventory {
    pub multipath: Vec<MultipathMap>,
    pub md: Vec<MdArray>,
    pub disks: Vec<Disk>,
    /// One line per device whose facts are incomplete or odd, and why.
    pub notes: Vec<Note>,
    /// Where the facts came from: "udev" or "sysfs" (no udev database).
    pub source: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Note {
    pub device: String,
    pub note: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Filesystem {
    #[serde(rename = "type")]
    pub fs_type: Option<String>,
    pub uuid: Option<String>,
    pub label: Option<String>,
    pub mountpoints: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MultipathMap {
    /// Map name, e.g. mpatha.
    pub name: Option<String>,
    /// Kernel name, e.g. dm-0.
    pub kernel_name: String,
    pub devnode: Option<String>,
    pub wwid: Option<String>,
    pub size_bytes: Option<u64>,
    pub paths: Vec<PathDevice>,
    pub filesystem: Option<Filesystem>,
    /// Partitions (kpartx maps) on it, by kernel name.
    pub partitions: Vec<Partition>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PathDevice {
    pub kernel_name: String,
    pub devnode: Option<String>,
    /// SCSI device state from sysfs: running, offline, blocked, ...
    pub state: Option<String>,
    pub id_path: Option<String>,
    /// SCSI host the path goes through, e.g. host2.
    pub host: Option<String>,
    pub wwn: Option<String>,
    pub serial: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Disk {
    pub kernel_name: String,
    pub devnode: Option<String>,
    pub wwn: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub size_bytes: Option<u64>,
    /// Slot as udev's ID_PATH (by-path link name).
    pub by_path: Option<String>,
    pub filesystem: Option<Filesystem>,
    pub partitions: Vec<Partition>,
    /// md arrays or other stacked devices using this disk, by kernel name.
    pub holders: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Partition {
    pub kernel_name: String,
    pub devnode: Option<String>,
    pub size_bytes: Option<u64>,
    pub filesystem: Option<Filesystem>,
    pub holders: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MdArray {
    /// Kernel name, e.g. md0 or an auto-assembled md127.
    pub kernel_name: String,
    pub devnode: Option<String>,
    /// MD_NAME as recorded in the superblock, e.g. box1:0.
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub level: Option<String>,
    /// sysfs array_state: clean, active, read-auto (auto-assembled read-only), ...
    pub state: Option<String>,
    pub raid_disks: Option<u32>,
    /// Members missing from a redundant array (sysfs md/degraded).
    pub degraded: Option<bool>,
    pub members: Vec<MdMember>,
    pub size_bytes: Option<u64>,
    pub filesystem: Option<Filesystem>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MdMember {
    pub kernel_name: String,
    /// sysfs md/dev-<name>/state: in_sync, faulty, spare, ...
    pub state: Option<String>,
}
