//! What is in this box now, for record and verify: the local disks (not the paths of
//! shared multipath LUNs, which do not move) with their identity, filesystems and md
//! superblocks, the running md arrays, the NICs, and the server model.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::manifest::DiskIdentity;
use super::mdsb::{self, Superblock};
use super::model::{Disk, Filesystem, Inventory};

/// Filesystems whose disk is "the OS disk" for the manifest.
const OS_MOUNTPOINTS: [&str; 5] = ["/", "/boot", "/boot/efi", "/usr", "/var"];
const DMI_PRODUCT: &str = "/sys/class/dmi/id/product_name";
const MD_MEMBER_FS: &str = "linux_raid_member";

#[derive(Debug, Clone, Serialize)]
pub struct Present {
    pub inventory: Inventory,
    pub disks: Vec<LocalDisk>,
    pub nics: Vec<super::nics::Nic>,
    /// DMI product name of this server.
    pub server: Option<String>,
}

/// A disk, or a partition of one, that may carry an md superblock or a filesystem.
#[derive(Debug, Clone, Serialize)]
pub struct Volume {
    pub kernel_name: String,
    pub devnode: PathBuf,
    /// Partition number; None for the whole disk.
    pub partition: Option<u32>,
    pub filesystem: Option<Filesystem>,
    /// The md superblock, or why it could not be read (None: not looked for, no sign
    /// of one).
    pub superblock: Option<Result<Superblock, String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LocalDisk {
    pub kernel_name: String,
    pub identity: DiskIdentity,
    /// The whole disk first, then its partitions.
    pub volumes: Vec<Volume>,
}

impl LocalDisk {
    pub fn whole(&self) -> Option<&Volume> {
        self.volumes.iter().find(|v| v.partition.is_none())
    }
    pub fn volume(&self, partition: Option<u32>) -> Option<&Volume> {
        self.volumes.iter().find(|v| v.partition == partition)
    }
    /// The md superblocks found on this disk and its partitions.
    pub fn superblocks(&self) -> impl Iterator<Item = (&Volume, &Superblock)> {
        self.volumes.iter().filter_map(|v| match &v.superblock {
            Some(Ok(sb)) => Some((v, sb)),
            _ => None,
        })
    }
}

impl Present {
    /// Look at this system.
    pub fn scan() -> Result<Present, super::scan::ScanError> {
        let inventory = super::inventory()?;
        let server = std::fs::read_to_string(DMI_PRODUCT)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        Ok(Self::from_inventory(
            inventory,
            super::nics::nics(Path::new("/sys/class/net")),
            server,
        ))
    }

    pub fn from_inventory(
        inventory: Inventory,
        nics: Vec<super::nics::Nic>,
        server: Option<String>,
    ) -> Present {
        let disks = inventory.disks.iter().map(local_disk).collect();
        Present {
            inventory,
            disks,
            nics,
            server,
        }
    }

    /// Is this filesystem one of the OS's own (so its disk is the OS disk)?
    pub fn is_os(fs: Option<&Filesystem>) -> bool {
        fs.is_some_and(|f| {
            f.mountpoints
                .iter()
                .any(|m| OS_MOUNTPOINTS.contains(&m.as_str()))
        })
    }
}

fn devnode(kernel_name: &str, devnode: Option<&str>) -> PathBuf {
    PathBuf::from(devnode.map_or_else(|| format!("/dev/{kernel_name}"), str::to_string))
}

/// "sda2" of "sda" -> 2, "nvme0n1p3" of "nvme0n1" -> 3.
pub fn partition_number(disk: &str, part: &str) -> Option<u32> {
    let rest = part.strip_prefix(disk)?;
    rest.strip_prefix('p').unwrap_or(rest).parse().ok()
}

/// Read the md superblock where there is a sign of one: udev says linux_raid_member, an md
/// array holds the device, or the filesystem type is unknown (no udev database).
fn superblock_of(
    devnode: &Path,
    fs: Option<&Filesystem>,
    holders: &[String],
) -> Option<Result<Superblock, String>> {
    let fs_type = fs.and_then(|f| f.fs_type.as_deref());
    let member_sign = fs_type == Some(MD_MEMBER_FS) || holders.iter().any(|h| h.starts_with("md"));
    if !member_sign && fs_type.is_some() {
        return None;
    }
    match mdsb::read(devnode) {
        Ok(sb) => Some(Ok(sb)),
        // Without a sign, finding nothing is the normal case, not a fault to report.
        Err(_) if !member_sign => None,
        Err(e) => Some(Err(e.to_string())),
    }
}

fn local_disk(d: &Disk) -> LocalDisk {
    let node = devnode(&d.kernel_name, d.devnode.as_deref());
    let mut volumes = vec![Volume {
        kernel_name: d.kernel_name.clone(),
        superblock: superblock_of(&node, d.filesystem.as_ref(), &d.holders),
        devnode: node,
        partition: None,
        filesystem: d.filesystem.clone(),
    }];
    for p in &d.partitions {
        let node = devnode(&p.kernel_name, p.devnode.as_deref());
        volumes.push(Volume {
            kernel_name: p.kernel_name.clone(),
            superblock: superblock_of(&node, p.filesystem.as_ref(), &p.holders),
            devnode: node,
            partition: partition_number(&d.kernel_name, &p.kernel_name),
            filesystem: p.filesystem.clone(),
        });
    }
    LocalDisk {
        kernel_name: d.kernel_name.clone(),
        identity: DiskIdentity {
            serial: d.serial.clone(),
            wwn: d.wwn.clone(),
            model: d.model.clone(),
            size_bytes: d.size_bytes,
            slot: d.by_path.clone(),
        },
        volumes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_numbers_follow_the_kernel_names() {
        assert_eq!(partition_number("sda", "sda2"), Some(2));
        assert_eq!(partition_number("nvme0n1", "nvme0n1p3"), Some(3));
        assert_eq!(partition_number("sda", "sdb1"), None);
        assert_eq!(partition_number("sda", "sda"), None);
    }
}
