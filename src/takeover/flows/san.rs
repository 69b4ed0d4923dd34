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
    force_promote: &[String],
) -> Result<Vec<Step>, PlanError> {
    if let Some(r) = force_promote
        .iter()
        .find(|r| !cfg.takeover.drbd.iter().any(|d| &d.resource == *r))
    {
        return Err(PlanError::UnknownDrbd {
            resource: r.clone(),
        });
    }
    // Before anything is fenced: a copy that may not be promoted stops the takeover here,
    // with the peer still running on the good copy.
    let mut promotes = Vec::new();
    for d in &cfg.takeover.drbd {
        let force = force_promote.contains(&d.resource);
        let state = crate::drbd::state(&d.resource)?;
        if let crate::drbd::Verdict::Refuse { why, next } = crate::drbd::verdict(&state, force) {
            return Err(PlanError::Drbd(crate::drbd::DrbdError::Refused {
                resource: d.resource.clone(),
                why: format!("{why}; the peer was not fenced"),
                next,
            }));
        }
        promotes.push(Step::Promote {
            resource: d.resource.clone(),
            force,
            wait: d
                .wait
                .unwrap_or_else(crate::takeover::step::default_drbd_wait),
        });
    }
    let luns = if peer.fencing.contains(&FencingKind::Storage) {
        let inv = crate::disks::inventory()?;
        Some(crate::disks::luns::shared_luns(&inv, &cfg.storage.shared)?)
    } else {
        None
    };
    let mut steps = fencing_steps(peer, admin_says_off, Some(cfg), luns)?;
    steps.extend(promotes);
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
