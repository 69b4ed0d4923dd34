//! `hamn giveback`: the planned reverse of a takeover, on the node that owns the storage
//! now, so the other node can take over cleanly. It is the reverse of the plan the
//! takeover journal recorded, run by the same executor: services stopped, the service
//! address removed, filesystems unmounted (never lazily: a busy mount point is reported
//! with who holds it), arrays stopped, the reservation released on every shared LUN (the
//! registration stays: this node remains a registered standby), the journal retired.

use super::flows::PlanError;
use super::journal::{Journal, JournalError};
use super::step::Step;
use crate::config::Config;

/// The reverse of one takeover step, if it left something to undo.
fn undo(step: &Step) -> Option<Step> {
    match step {
        Step::Service { service } => Some(Step::StopService {
            service: service.clone(),
        }),
        Step::ServiceIp { ip } => Some(Step::ServiceIpDown { ip: ip.clone() }),
        Step::Mount { fs } => fs
            .mountpoint
            .clone()
            .map(|mountpoint| Step::Unmount { mountpoint }),
        Step::Assemble { array } => Some(Step::StopArray {
            uuid: array.uuid.clone(),
            name: crate::disks::md::label(array.name.as_deref(), &array.uuid),
        }),
        Step::FenceStorage { luns, .. } => Some(Step::Release { luns: luns.clone() }),
        Step::Promote { resource, .. } => Some(Step::Demote {
            resource: resource.clone(),
        }),
        _ => None,
    }
}

/// The reverse of a takeover plan.
pub fn reverse(plan: &[Step]) -> Vec<Step> {
    plan.iter().rev().filter_map(undo).collect()
}

/// Giveback's plan: the reverse of what the journal says the takeover ran; without a
/// journal (it was moved aside), the reverse of the shared SAN takeover hamn.toml
/// describes, so a giveback never needs the journal to release the storage.
pub fn plan(
    cfg: Option<&Config>,
    journal: &std::path::Path,
) -> Result<Vec<Step>, GivebackPlanError> {
    if let Some(j) = Journal::load(journal)?
        && !j.plan.is_empty()
    {
        return Ok(reverse(&j.plan));
    }
    let Some(cfg) = cfg else {
        return Err(GivebackPlanError::Nothing {
            journal: journal.display().to_string(),
        });
    };
    let mut forward = super::flows::service_steps(cfg)?;
    forward.reverse();
    let mut steps: Vec<Step> = forward.iter().filter_map(undo).collect();
    steps.extend(cfg.takeover.mounts.iter().rev().map(|m| Step::Unmount {
        mountpoint: m.mountpoint.clone(),
    }));
    steps.extend(cfg.takeover.drbd.iter().rev().map(|d| Step::Demote {
        resource: d.resource.clone(),
    }));
    let inv = crate::disks::inventory()?;
    steps.push(Step::Release {
        luns: crate::disks::luns::shared_luns(&inv, &cfg.storage.shared)?,
    });
    Ok(steps)
}

#[derive(Debug, thiserror::Error)]
pub enum GivebackPlanError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Scan(#[from] crate::disks::scan::ScanError),
    #[error(transparent)]
    Lun(#[from] crate::disks::luns::LunError),
    #[error(
        "nothing to give back: no takeover journal at {journal} and no hamn.toml to say \
         what a takeover would have taken. `hamn status` shows what is here"
    )]
    Nothing { journal: String },
}
