//! Moved disks (xCAT's recipes 1 and 4): the failed node's disks are now in this box. The
//! gates, in order: the disks verify against the manifest (identity before use) -> the
//! failed node is fenced (BMC, or the admin's audited statement) -> arrays are assembled
//! from exactly the verified members -> every filesystem is checked -> only then is
//! anything mounted (read-only unless the admin asks for read-write, and only then the
//! service address and services). A refusal at any gate leaves the disks untouched by
//! the later steps.

use std::path::{Path, PathBuf};

use super::{PlanError, fencing_steps, filesystem_steps, policy_for, service_steps};
use crate::config::{Config, Peer};
use crate::disks::md;
use crate::disks::verify::{Status, Verdict, Verification};
use crate::takeover::step::{Device, Filesystem, Step};

/// What the admin asked for, and what this node knows.
pub struct Request<'a> {
    pub manifest: &'a Path,
    pub verification: &'a Verification,
    pub accept_degraded: bool,
    pub read_write: bool,
    /// --i-know-the-peer-is-off, with the statement that is logged.
    pub admin_says_off: Option<&'a str>,
    /// The node the disks came from (the manifest's, or --peer).
    pub peer: &'a str,
    /// Its BMC, where hamn.toml has it.
    pub peer_cfg: Option<&'a Peer>,
    pub cfg: Option<&'a Config>,
    /// This node runs under the failed node's name (hamn.toml's node or the host
    /// name): the OS moved with the disks.
    pub runs_as_peer: bool,
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Good => "all good",
        Verdict::Acceptable => "acceptable changes",
        Verdict::Refuse => "refuse",
    }
}

/// The plan, or the refusal that stops it before anything is touched.
pub fn plan(req: &Request) -> Result<Vec<Step>, PlanError> {
    let v = req.verification;
    let refusals: Vec<String> = v
        .refusals(req.accept_degraded)
        .map(|f| format!("  {}: {}", f.subject, f.message))
        .collect();
    if !refusals.is_empty() {
        return Err(PlanError::Refused {
            node: v.node.clone(),
            list: refusals.join("\n"),
        });
    }
    let mut steps = vec![Step::VerifyDisks {
        node: v.node.clone(),
        manifest: req.manifest.to_path_buf(),
        verdict: verdict_word(v.verdict).into(),
        notes: v
            .findings
            .iter()
            .filter(|f| {
                !matches!(
                    f.status,
                    Status::Matched | Status::NicMatched | Status::ArrayWhole
                )
            })
            .map(|f| format!("{}: {}", f.subject, f.message))
            .collect(),
    }];
    steps.extend(fencing(req)?);
    for a in &v.arrays {
        steps.push(Step::Assemble { array: a.clone() });
    }
    let mut filesystems: Vec<Filesystem> = Vec::new();
    for a in &v.arrays {
        if let Some(fs) = &a.filesystem {
            let mountpoint = fs.mountpoint.as_ref().map(PathBuf::from);
            filesystems.push(Filesystem {
                device: Device::Array {
                    uuid: a.uuid.clone(),
                    name: md::label(a.name.as_deref(), &a.uuid),
                },
                fs_type: fs.fs_type.clone(),
                uuid: fs.uuid.clone(),
                label: fs.label.clone(),
                policy: policy_for(req.cfg, mountpoint.as_deref()),
                mountpoint,
                read_only: !req.read_write,
                options: None,
            });
        }
    }
    for vol in &v.volumes {
        let mountpoint = vol.filesystem.mountpoint.as_ref().map(PathBuf::from);
        filesystems.push(Filesystem {
            device: Device::Spec {
                spec: vol.devnode.display().to_string(),
            },
            fs_type: vol.filesystem.fs_type.clone(),
            uuid: vol.filesystem.uuid.clone(),
            label: vol.filesystem.label.clone(),
            policy: policy_for(req.cfg, mountpoint.as_deref()),
            mountpoint,
            read_only: !req.read_write,
            options: None,
        });
    }
    // The manifest lists filesystems as recorded, not in an order anyone chose: parents
    // go first here, and the one mount-order rule then holds.
    filesystems.sort_by_key(|f| {
        f.mountpoint
            .as_ref()
            .map(|m| (m.components().count(), m.clone()))
    });
    steps.extend(filesystem_steps(filesystems)?);
    // xCAT writes its data: the service address and services only on read-write mounts.
    if let (true, Some(cfg)) = (req.read_write, req.cfg) {
        steps.extend(service_steps(cfg)?);
    }
    Ok(steps)
}

fn fencing(req: &Request) -> Result<Vec<Step>, PlanError> {
    let peer = req.peer;
    if let Some(p) = req.peer_cfg {
        return fencing_steps(p, req.admin_says_off, req.cfg, None);
    }
    if let Some(statement) = req.admin_says_off {
        return Ok(vec![Step::FenceOverride {
            peer: peer.to_string(),
            statement: statement.to_string(),
        }]);
    }
    if req.runs_as_peer {
        return Err(PlanError::OsMovedWithDisks {
            peer: peer.to_string(),
        });
    }
    Err(PlanError::NoBmc {
        peer: peer.to_string(),
    })
}
