//! Names of the udev properties and sysfs attributes the inventory reads, in one place.
//! Each is set by a stock udev rule or the kernel; the comment says which.

// Kernel (uevent) properties.
pub const DEVTYPE: &str = "DEVTYPE";

// 60-persistent-storage.rules, scsi_id / ata_id / virtio builtins.
pub const ID_WWN: &str = "ID_WWN";
pub const ID_WWN_WITH_EXTENSION: &str = "ID_WWN_WITH_EXTENSION";
pub const ID_SERIAL: &str = "ID_SERIAL";
pub const ID_SERIAL_SHORT: &str = "ID_SERIAL_SHORT";
pub const ID_SCSI_SERIAL: &str = "ID_SCSI_SERIAL";
pub const ID_MODEL: &str = "ID_MODEL";
pub const ID_VENDOR: &str = "ID_VENDOR";
pub const ID_PATH: &str = "ID_PATH";

// blkid builtin (60-persistent-storage.rules).
pub const ID_FS_TYPE: &str = "ID_FS_TYPE";
pub const ID_FS_UUID: &str = "ID_FS_UUID";
pub const ID_FS_LABEL: &str = "ID_FS_LABEL";

// multipath-tools' 11-dm-mpath.rules / 13-dm-disk.rules and dm's 10-dm.rules.
pub const DM_MULTIPATH_DEVICE_PATH: &str = "DM_MULTIPATH_DEVICE_PATH";
pub const DM_NAME: &str = "DM_NAME";
pub const DM_UUID: &str = "DM_UUID";

// mdadm's 63-md-raid-arrays.rules (mdadm --detail --export).
pub const MD_UUID: &str = "MD_UUID";
pub const MD_NAME: &str = "MD_NAME";
pub const MD_LEVEL: &str = "MD_LEVEL";

// sysfs attributes, relative to /sys/block/<name>.
pub const ATTR_SIZE: &str = "size"; // in 512-byte sectors, whatever the logical block size
pub const ATTR_DM_NAME: &str = "dm/name";
pub const ATTR_DM_UUID: &str = "dm/uuid";
pub const ATTR_MD_LEVEL: &str = "md/level";
pub const ATTR_MD_ARRAY_STATE: &str = "md/array_state";
pub const ATTR_MD_DEGRADED: &str = "md/degraded";
pub const ATTR_MD_RAID_DISKS: &str = "md/raid_disks";
pub const ATTR_DEVICE_STATE: &str = "device/state"; // SCSI: running, offline, blocked...
pub const ATTR_DEVICE_VENDOR: &str = "device/vendor";
pub const ATTR_DEVICE_MODEL: &str = "device/model";
pub const ATTR_DEVICE_WWID: &str = "device/wwid"; // SCSI VPD page 0x83 designator
pub const ATTR_SERIAL: &str = "serial"; // virtio-blk

/// Prefix of a multipath map's DM UUID; what follows is the WWID.
pub const MPATH_UUID_PREFIX: &str = "mpath-";
