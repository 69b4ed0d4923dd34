//! Storage this node sees, through udev: multipath maps and their paths, plain disks, md
//! arrays, and the filesystems on them. `scan` reads (libudev and sysfs), `inventory`
//! decides what each device is and assembles the picture, `render` shows it.

pub mod inventory;
pub mod luns;
pub mod manifest;
pub mod md;
pub mod mdsb;
pub mod model;
pub mod mounts;
pub mod nics;
pub mod present;
pub mod props;
pub mod record;
pub mod render;
pub mod scan;
pub mod verify;

pub use inventory::{Found, Query, assemble, find};
pub use model::Inventory;

/// Scan this system.
pub fn inventory() -> Result<Inventory, scan::ScanError> {
    let raw = scan::scan()?;
    Ok(assemble(&raw, mounts::read().as_ref()))
}
