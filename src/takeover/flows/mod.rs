//! Flows are plans: each builds the list of steps for one of xCAT's recipes from the
//! configuration and what this node sees, and the one executor (run.rs) runs it. What
//! every flow shares is here: the fencing steps, the one mount-order rule, the check
//! policy, and the service steps.

pub mod moved;
pub mod san;

use std::path::PathBuf;

use super::step::{Filesystem, Step};
use crate::config::{Config, MountConfig, Peer};
use crate::fence::{self, FenceError, Method};
use crate::fs::Policy;
use crate::scsi::pr::Key;
use crate::scsi::reserve::{self, Lun};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "hamn.toml names no peer to take over from: add [takeover] peer = \"NODE\" or give \
         --peer NODE"
    )]
    NoPeer,
    #[error(transparent)]
    Fence(#[from] FenceError),
    #[error(
        "[[takeover.mount]] {child} comes before (or repeats) {parent} in hamn.toml: its \
         parent's mount would hide it. Write parents first"
    )]
    MountOrder { child: String, parent: String },
    #[error(transparent)]
    Scan(#[from] crate::disks::scan::ScanError),
    #[error(transparent)]
    Lun(#[from] crate::disks::luns::LunError),
    #[error(transparent)]
    Svc(#[from] crate::svc::SvcError),
    #[error(transparent)]
    Drbd(#[from] crate::drbd::DrbdError),
    #[error(
        "--force-promote {resource}: hamn.toml has no [[takeover.drbd]] resource \
         '{resource}'; nothing was done"
    )]
    UnknownDrbd { resource: String },
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error(
        "the disks do not match the manifest of {node}; nothing was touched:\n{list}\nSee \
         `hamn disks verify` for the full report"
    )]
    Refused { node: String, list: String },
    #[error(
        "these are {peer}'s disks and this node runs as {peer}: the OS moved with them. \
         hamn cannot fence the box they came from by name; once you have confirmed it is \
         off (or has no disks left that could hold this data), add \
         --i-know-the-peer-is-off (logged), or name its BMC peer with --peer"
    )]
    OsMovedWithDisks { peer: String },
    #[error(
        "refusing to take over {peer}'s disks without a fencing proof: hamn.toml has no \
         peer '{peer}' with a BMC to power it off. If you have confirmed that {peer} is off \
         (its disks are in this box), add --i-know-the-peer-is-off (logged); or configure \
         [peers.{peer}.bmc] in hamn.toml, or name the node with --peer"
    )]
    NoBmc { peer: String },
}

/// The fencing steps for `peer`, in the order fence::methods gives. `luns`: the shared
/// LUNs, or None where the flow has no shared storage (moved disks). An empty list still
/// plans the storage fence, which then fails: no LUN is no proof.
pub fn fencing_steps(
    peer: &Peer,
    admin_says_off: Option<&str>,
    cfg: Option<&Config>,
    luns: Option<Vec<Lun>>,
) -> Result<Vec<Step>, PlanError> {
    let methods = fence::methods(peer, admin_says_off.is_some(), luns.is_some())?;
    let mut luns = luns;
    let mut steps = Vec::new();
    for m in methods {
        steps.push(match m {
            Method::BmcCheck => Step::BmcCheck {
                peer: peer.name.clone(),
                bmc: peer.bmc.address.clone(),
                protocol: peer.bmc.protocol,
            },
            Method::Storage => Step::FenceStorage {
                peer: peer.name.clone(),
                victim_key: reserve::key_text(Key(peer.pr_key())),
                own_key: cfg
                    .map(|c| reserve::key_text(Key(c.own_key())))
                    .unwrap_or_default(),
                luns: luns.take().unwrap_or_default(),
            },
            Method::Power => Step::FencePower {
                peer: peer.name.clone(),
                bmc: peer.bmc.address.clone(),
                protocol: peer.bmc.protocol,
                shares: cfg.map(shares).unwrap_or_default(),
                mirrors: cfg
                    .map(|c| c.takeover.drbd.iter().map(|d| d.resource.clone()).collect())
                    .unwrap_or_default(),
            },
            Method::Override => Step::FenceOverride {
                peer: peer.name.clone(),
                statement: admin_says_off.unwrap_or_default().to_string(),
            },
        });
    }
    Ok(steps)
}

/// The plan's NFS shares: only a power-off stops the peer's writes there, and nothing
/// shows that it let go, so with any the power fence always runs.
fn shares(cfg: &Config) -> Vec<String> {
    cfg.network_mounts()
        .map(|m| format!("{} on {}", m.mountpoint.display(), m.device))
        .collect()
}

/// The one mount-order rule: mounts go in the given order, and a child before its
/// parent would be hidden by the parent's mount (/install/netboot before /install), so
/// that order is refused, as is one mount point twice.
pub fn check_mount_order(mounts: &[PathBuf]) -> Result<(), PlanError> {
    for (i, child) in mounts.iter().enumerate() {
        for parent in &mounts[i + 1..] {
            if child != parent && child.starts_with(parent) {
                return Err(PlanError::MountOrder {
                    child: child.display().to_string(),
                    parent: parent.display().to_string(),
                });
            }
        }
        if mounts[..i].contains(child) {
            return Err(PlanError::MountOrder {
                child: child.display().to_string(),
                parent: child.display().to_string(),
            });
        }
    }
    Ok(())
}

/// The one check policy: a `[[takeover.mount]]` for that mount point says; otherwise
/// check only (any problem is a refusal).
pub fn policy_for(cfg: Option<&Config>, mountpoint: Option<&std::path::Path>) -> Policy {
    cfg.and_then(|c| {
        c.takeover
            .mounts
            .iter()
            .find(|m: &&MountConfig| Some(m.mountpoint.as_path()) == mountpoint)
    })
    .map(|m| m.check)
    .unwrap_or_default()
}

/// Every check, then every mount: half of xCAT's data is worse than none. NFS shares
/// have no check (the server checks its own filesystems).
pub fn filesystem_steps(filesystems: Vec<Filesystem>) -> Result<Vec<Step>, PlanError> {
    let order: Vec<PathBuf> = filesystems
        .iter()
        .filter_map(|f| f.mountpoint.clone())
        .collect();
    check_mount_order(&order)?;
    let mut steps: Vec<Step> = filesystems
        .iter()
        .filter(|f| !f.is_network())
        .map(|f| Step::Check { fs: f.clone() })
        .collect();
    steps.extend(filesystems.into_iter().map(|fs| Step::Mount { fs }));
    Ok(steps)
}

/// The service address and services of hamn.toml's [takeover], in xCAT's order.
pub fn service_steps(cfg: &Config) -> Result<Vec<Step>, PlanError> {
    let mut steps = Vec::new();
    if let Some(ip) = &cfg.takeover.service_ip {
        steps.push(Step::ServiceIp {
            ip: crate::net::ServiceIp::parse(ip)?,
        });
    }
    for service in crate::svc::services(&cfg.takeover)? {
        steps.push(Step::Service { service });
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(p: &[&str]) -> Result<(), PlanError> {
        check_mount_order(&p.iter().map(PathBuf::from).collect::<Vec<_>>())
    }

    #[test]
    fn an_nfs_share_is_mounted_unchecked_and_only_after_a_power_fence_that_is_never_skipped() {
        let cfg = Config::parse(
            std::path::Path::new("h.toml"),
            r#"node = "mn2"
[[takeover.mount]]
device = "filer:/srv/xcat"
mountpoint = "/install"
type = "nfs4"
options = "vers=4.2"
[peers.mn1]
fencing = ["power"]
[peers.mn1.bmc]
address = "127.0.0.1"
user = "admin"
password_env = "X"
"#,
        )
        .expect("parses");
        let steps = san::plan(&cfg, cfg.peer("mn1").expect("peer"), None, &[]).expect("plan");
        let ids: Vec<String> = steps.iter().map(Step::id).collect();
        assert_eq!(ids, ["bmc-check", "fence-power", "mount /install"]);
        let fence = steps[1].commands().join("\n");
        assert!(
            fence.contains("never skipped") && fence.contains("/install on filer:/srv/xcat"),
            "{fence}"
        );
        let mount = steps[2].commands().join("\n");
        assert!(
            mount.starts_with("mount -t nfs4 -o vers=4.2 filer:/srv/xcat /install"),
            "{mount}"
        );
    }

    #[test]
    fn parents_must_be_mounted_before_their_children() {
        assert!(order(&["/install", "/install/netboot", "/opt/xcat"]).is_ok());
        let err = order(&["/install/netboot", "/install"]).expect_err("order");
        assert!(err.to_string().contains("Write parents first"), "{err}");
        // A sibling whose name merely starts alike is not a child.
        assert!(order(&["/install2", "/install"]).is_ok());
        assert!(order(&["/install", "/install"]).is_err());
    }
}
