//! The LUNs an admin or hamn.toml names, found in the inventory with every path: a
//! multipath map by name, /dev/mapper path, dm-N or WWID; or a single SCSI disk.

use std::path::PathBuf;

use super::Inventory;
use super::inventory::same_wwid;
use crate::lun::Lun;

#[derive(Debug, thiserror::Error)]
pub enum LunError {
    #[error(
        "no LUN '{0}' among this node's multipath maps and SCSI disks; see `hamn disks` for what is here"
    )]
    NoSuchLun(String),
    #[error("LUN {0} has no usable path (all paths are gone); check cabling and `multipath -ll`")]
    NoPaths(String),
}

fn dev_path(kernel_name: &str, devnode: &Option<String>) -> PathBuf {
    devnode.as_ref().map_or_else(
        || PathBuf::from(format!("/dev/{kernel_name}")),
        PathBuf::from,
    )
}

/// Find the LUN an admin named: a multipath map by name, /dev/mapper path, dm-N or
/// WWID; or a single SCSI disk (/dev/sdb, sdb).
pub fn resolve(target: &str, inv: &Inventory) -> Result<Lun, LunError> {
    let t = target
        .trim_start_matches("/dev/mapper/")
        .trim_start_matches("/dev/");
    for m in &inv.multipath {
        let hit = m.name.as_deref() == Some(t)
            || m.kernel_name == t
            || m.wwid.as_deref().is_some_and(|w| same_wwid(w, t));
        if hit {
            let paths: Vec<PathBuf> = m
                .paths
                .iter()
                .map(|p| dev_path(&p.kernel_name, &p.devnode))
                .collect();
            if paths.is_empty() {
                return Err(LunError::NoPaths(target.to_string()));
            }
            return Ok(Lun {
                name: m.name.clone().unwrap_or_else(|| m.kernel_name.clone()),
                wwid: m.wwid.clone(),
                paths,
            });
        }
    }
    for d in &inv.disks {
        if d.kernel_name == t || d.wwn.as_deref().is_some_and(|w| same_wwid(w, t)) {
            return Ok(Lun {
                name: d.kernel_name.clone(),
                wwid: d.wwn.clone(),
                paths: vec![dev_path(&d.kernel_name, &d.devnode)],
            });
        }
    }
    Err(LunError::NoSuchLun(target.to_string()))
}

/// The shared LUNs: those listed by WWID, or every multipath map.
pub fn shared_luns(inv: &Inventory, shared: &[String]) -> Result<Vec<Lun>, LunError> {
    if shared.is_empty() {
        return inv
            .multipath
            .iter()
            .map(|m| resolve(&m.kernel_name, inv))
            .collect();
    }
    shared.iter().map(|w| resolve(w, inv)).collect()
}
