//! Shared SAN storage (xCAT's recipes 2 and 5): fence at the storage first (the
//! tie-breaking preempt on every shared LUN), then the power, check every filesystem,
//! mount them in the configured order, then the service address and the services.

use super::{PlanError, fencing_steps, filesystem_steps, service_steps};
use crate::config::{Config, FencingKind, Peer};
use crate::takeover::step::{Device, Filesystem, Step};

/// Who to take over from: --peer, else [takeover] peer, else the only peer.
pub fn peer<'a>(cfg: &'a Config, explicit: Option<&str>) -> Result<&'a Peer, PlanError> {
    let name = explicit
        .map(str::to_string)
        .or_else(|| cfg.takeover.peer.clone())
        .or_else(|| (cfg.peers.len() == 1).then(|| cfg.peers.keys().next().cloned())?)
        .ok_or(PlanError::NoPeer)?;
    cfg.peer(&name).map_err(|_| PlanError::NoPeer)
}

/// The plan. `admin_says_off`: --i-know-the-peer-is-off replaces the power steps (BMC
/// check and power fence) by the admin's logged statement; the storage fence still runs.
pub fn plan(
    cfg: &Config,
    peer: &Peer,
    admin_says_off: Option<&str>,
) -> Result<Vec<Step>, PlanError> {
    let luns = if peer.fencing.contains(&FencingKind::Storage) {
        let inv = crate::disks::inventory()?;
        Some(crate::disks::luns::shared_luns(&inv, &cfg.storage.shared)?)
    } else {
        None
    };
    let mut steps = fencing_steps(peer, admin_says_off, Some(cfg), luns)?;
    let filesystems = cfg
        .takeover
        .mounts
        .iter()
        .map(|m| Filesystem {
            device: Device::Spec {
                spec: m.device.clone(),
            },
            fs_type: m.fs_type.clone(),
            // UUID= finds the device by its filesystem UUID already.
            uuid: None,
            label: m.device.strip_prefix("LABEL=").map(str::to_string),
            mountpoint: Some(m.mountpoint.clone()),
            policy: m.check,
            read_only: false,
            options: m.options.clone(),
        })
        .collect();
    steps.extend(filesystem_steps(filesystems)?);
    steps.extend(service_steps(cfg)?);
    Ok(steps)
}
