//! Takeover of shared SAN storage (xCAT's recipes 2 and 5). The order and its reasons:
//!
//! 1. **fence at the storage first**: PREEMPT the peer's key on every shared LUN, sent
//!    only through paths where this node's key is still registered. PREEMPT is atomic at
//!    the array, so when both nodes take over at once exactly one wins; the loser finds
//!    its key gone and stops before it touches its peer's power. That is why storage comes
//!    before power: two nodes shooting each other's power at once would leave nobody.
//! 2. **fence the power** (BMC off, confirmed), where the peer's config asks for it.
//! 3. **check every filesystem** (journal/log replayed first), and only if all pass,
//! 4. **mount** them in the configured order, then
//! 5. the **service IP** and 6. the **services**.
//!
//! Every step is idempotent and journaled; a rerun proves fencing again (a proof is never
//! read from the journal), skips what is verifiably in place and continues.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use tracing::info_span;

use super::journal::{self, Journal, State};
use crate::config::{Config, FencingKind, MountConfig, Peer};
use crate::fence::{self, Fenced};
use crate::fs::{self, Checked};
use crate::scsi::pr::Key;
use crate::scsi::reserve::{self, Lun};

#[derive(Debug, thiserror::Error)]
pub enum SanError {
    #[error(
        "hamn.toml names no peer to take over from: add [takeover] peer = \"NODE\" or give \
         --peer NODE"
    )]
    NoPeer,
    #[error(
        "peer {peer}: its fencing list is empty; hamn never takes storage from an unfenced \
         node. Set peers.{peer}.fencing to [\"storage\", \"power\"] (the default)"
    )]
    NoFencing { peer: String },
    #[error("{0}")]
    Pr(#[from] reserve::PrError),
    #[error(
        "{0}\nNothing else was done: the storage is untouched by this node beyond the \
         preempt, nothing is mounted"
    )]
    Fence(#[from] fence::FenceError),
    #[error("{step}: {source}")]
    Fs { step: String, source: fs::FsError },
    #[error(
        "{count} filesystem check(s) failed; nothing was mounted:\n{list}\nRepair by hand as \
         said, then run `hamn takeover` again: it continues from here"
    )]
    Checks { count: usize, list: String },
    #[error(
        "mount {mountpoint}: no device {device} on this node (is the LUN's multipath map \
         up? `hamn disks` shows what is here)"
    )]
    NoDevice { mountpoint: String, device: String },
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error(transparent)]
    Scan(#[from] crate::disks::scan::ScanError),
    #[error(transparent)]
    Profile(#[from] crate::profiles::ProfileError),
    #[error("{0}")]
    Power(String),
    #[error(transparent)]
    Svc(#[from] crate::svc::SvcError),
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error(
        "[[takeover.mount]] {child} comes before (or repeats) {parent} in hamn.toml: its \
         parent's mount would hide it. Write parents first"
    )]
    MountOrder { child: String, parent: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str) -> MountConfig {
        MountConfig {
            device: "LABEL=x".into(),
            mountpoint: p.into(),
            fs_type: "ext4".into(),
            check: crate::fs::Policy::CheckOnly,
        }
    }

    #[test]
    fn parents_must_be_mounted_before_their_children() {
        assert!(check_mount_order(&[m("/install"), m("/install/netboot"), m("/opt/xcat")]).is_ok());
        let err = check_mount_order(&[m("/install/netboot"), m("/install")]).expect_err("order");
        assert!(err.to_string().contains("Write parents first"), "{err}");
        // A sibling whose name merely starts alike is not a child.
        assert!(check_mount_order(&[m("/install2"), m("/install")]).is_ok());
        assert!(check_mount_order(&[m("/install"), m("/install")]).is_err());
    }
}

/// One step of the plan, as shown by --dry-run and recorded in the journal.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Before any storage step: open a session to the peer's BMC and read the power
    /// state. A BMC that refuses or does not answer stops the takeover here, with the
    /// storage untouched (the power fence would fail later, after the preempt).
    BmcCheck {
        peer: String,
        bmc: String,
    },
    FenceStorage {
        peer: String,
        victim_key: String,
        own_key: String,
        luns: Vec<Lun>,
    },
    FencePower {
        peer: String,
        bmc: String,
    },
    /// In place of the power fence: the admin's statement that the peer is off or
    /// physically disconnected (--i-know-the-peer-is-off), logged as an audit record.
    FenceOverride {
        peer: String,
    },
    Check {
        mount: MountConfig,
    },
    Mount {
        mount: MountConfig,
    },
    /// The address xCAT's clients use, after checking nobody else answers for it.
    ServiceIp {
        ip: crate::net::ServiceIp,
    },
    Service {
        service: crate::svc::Service,
    },
}

impl Step {
    /// Stable name in the journal.
    pub fn id(&self) -> String {
        match self {
            Step::BmcCheck { .. } => "bmc-check".into(),
            Step::FenceStorage { .. } => "fence-storage".into(),
            Step::FencePower { .. } => "fence-power".into(),
            Step::FenceOverride { .. } => "fence-override".into(),
            Step::Check { mount } => format!("check {}", mount.mountpoint.display()),
            Step::Mount { mount } => format!("mount {}", mount.mountpoint.display()),
            Step::ServiceIp { ip } => format!("service-ip {}/{}", ip.address, ip.prefix),
            Step::Service { service } => format!("service {}", service.name),
        }
    }

    /// The exact commands, or their standard-tool equivalents where hamn speaks the
    /// protocol itself (SG_IO, IPMI).
    pub fn commands(&self) -> Vec<String> {
        match self {
            Step::FenceStorage {
                victim_key,
                own_key,
                luns,
                ..
            } => {
                let mut v = Vec::new();
                for l in luns {
                    let paths: Vec<String> =
                        l.paths.iter().map(|p| p.display().to_string()).collect();
                    v.push(format!(
                        "# LUN {} ({}): read keys on {}; this node's key {own_key} must be \
                         registered on at least one path, else stop (the peer won)",
                        l.name,
                        l.wwid.as_deref().unwrap_or("?"),
                        paths.join(" ")
                    ));
                    v.push(format!(
                        "sg_persist --out --preempt-abort --param-rk={own_key} \
                         --param-sark={victim_key} --prout-type=<type> <a registered path>   \
                         # PREEMPT if the target lacks PREEMPT AND ABORT"
                    ));
                    v.push(format!(
                        "sg_persist --out --register-ignore --param-sark={own_key} <each other path>"
                    ));
                    v.push(format!(
                        "sg_persist --in --read-keys --read-reservation <each path>   # must show \
                         holder {own_key}, no {victim_key}"
                    ));
                }
                v
            }
            Step::BmcCheck { peer, bmc } => vec![format!(
                "IPMI session to {bmc} ({peer}) and one power status read, changing nothing \
                 (like: ipmitool -I lanplus -H {bmc} chassis power status)"
            )],
            Step::FenceOverride { peer } => vec![format!(
                "# no power fence: the admin states that {peer} is off or disconnected \
                 (--i-know-the-peer-is-off), logged"
            )],
            Step::FencePower { peer, bmc } => vec![format!(
                "IPMI chassis power down to {bmc} ({peer}), then consecutive 'off' reads \
                 (like: ipmitool -I lanplus -H {bmc} chassis power off; chassis power status)"
            )],
            Step::Check { mount } => fs::plan(&shown_device(mount), &mount.fs_type, mount.check),
            Step::Mount { mount } => vec![format!(
                "mount -t {} {} {}",
                mount.fs_type,
                shown_device(mount).display(),
                mount.mountpoint.display()
            )],
            Step::ServiceIp { ip } => crate::net::ip_plan(ip),
            Step::Service { service } => crate::svc::service_plan(service),
        }
    }
}

/// Who to take over from.
pub fn peer<'a>(cfg: &'a Config, explicit: Option<&str>) -> Result<&'a Peer, SanError> {
    let name = explicit
        .map(str::to_string)
        .or_else(|| cfg.takeover.peer.clone())
        .or_else(|| (cfg.peers.len() == 1).then(|| cfg.peers.keys().next().cloned())?)
        .ok_or(SanError::NoPeer)?;
    cfg.peer(&name).map_err(|_| SanError::NoPeer)
}

/// The steps, in order, from the configuration and the LUNs this node sees.
/// `admin_says_off`: --i-know-the-peer-is-off replaces the power steps (BMC check and
/// power fence) by the admin's logged statement; the storage fence still runs.
pub fn plan(cfg: &Config, peer: &Peer, admin_says_off: bool) -> Result<Vec<Step>, SanError> {
    if peer.fencing.is_empty() && !admin_says_off {
        return Err(SanError::NoFencing {
            peer: peer.name.clone(),
        });
    }
    let mut steps = Vec::new();
    let power = peer.fencing.contains(&FencingKind::Power) && !admin_says_off;
    if power {
        steps.push(Step::BmcCheck {
            peer: peer.name.clone(),
            bmc: peer.bmc.address.clone(),
        });
    }
    if peer.fencing.contains(&FencingKind::Storage) {
        let inv = crate::disks::inventory()?;
        let luns = reserve::shared_luns(&inv, &cfg.storage.shared)?;
        steps.push(Step::FenceStorage {
            peer: peer.name.clone(),
            victim_key: reserve::key_text(Key(peer.pr_key())),
            own_key: reserve::key_text(Key(cfg.own_key())),
            luns,
        });
    }
    if power {
        steps.push(Step::FencePower {
            peer: peer.name.clone(),
            bmc: peer.bmc.address.clone(),
        });
    }
    if admin_says_off {
        steps.push(Step::FenceOverride {
            peer: peer.name.clone(),
        });
    }
    check_mount_order(&cfg.takeover.mounts)?;
    for m in &cfg.takeover.mounts {
        steps.push(Step::Check { mount: m.clone() });
    }
    for m in &cfg.takeover.mounts {
        steps.push(Step::Mount { mount: m.clone() });
    }
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

/// The device a [[takeover.mount]] names, which must be here.
fn mount_device(mount: &MountConfig) -> Result<PathBuf, SanError> {
    resolve_device(&mount.device).ok_or_else(|| SanError::NoDevice {
        mountpoint: mount.mountpoint.display().to_string(),
        device: mount.device.clone(),
    })
}

/// The fencing proof every storage-touching step needs: the last one taken in this run.
fn last_proof<'a>(proofs: &'a [Fenced], peer: &Peer) -> Result<&'a Fenced, SanError> {
    proofs.last().ok_or_else(|| SanError::NoFencing {
        peer: peer.name.clone(),
    })
}

/// One power status read through the peer's BMC (no change).
pub fn bmc_power_state(peer: &Peer) -> Result<String, String> {
    use crate::bmc::{IpmiBmc, PowerControl};
    let profiles = crate::profiles::Profiles::load().map_err(|e| e.to_string())?;
    let pre =
        crate::commands::profile_before_contact(peer, &profiles).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + pre.timeout.min(std::time::Duration::from_secs(10));
    let mut bmc = IpmiBmc::connect(
        peer,
        &profiles,
        deadline,
        crate::bmc::lanplus::Backoff::default(),
    )
    .map_err(|e| format!("{}'s BMC {}: {e}", peer.name, peer.bmc.address))?;
    let st = bmc.power_state(deadline);
    bmc.close();
    st.map(|s| s.to_string())
        .map_err(|e| format!("{}'s BMC {}: {e}", peer.name, peer.bmc.address))
}

/// The device node a mount's UUID=/LABEL= names now, for plans; the spec if none.
fn shown_device(mount: &MountConfig) -> PathBuf {
    resolve_device(&mount.device).unwrap_or_else(|| PathBuf::from(&mount.device))
}

/// Mounts go in the configured order; a child written before its parent would be hidden
/// by the parent's mount (/install/netboot before /install), so that order is refused.
pub fn check_mount_order(mounts: &[MountConfig]) -> Result<(), SanError> {
    for (i, child) in mounts.iter().enumerate() {
        for parent in &mounts[i + 1..] {
            if child.mountpoint != parent.mountpoint
                && child.mountpoint.starts_with(&parent.mountpoint)
            {
                return Err(SanError::MountOrder {
                    child: child.mountpoint.display().to_string(),
                    parent: parent.mountpoint.display().to_string(),
                });
            }
        }
        if mounts[..i].iter().any(|m| m.mountpoint == child.mountpoint) {
            return Err(SanError::MountOrder {
                child: child.mountpoint.display().to_string(),
                parent: child.mountpoint.display().to_string(),
            });
        }
    }
    Ok(())
}

/// UUID=, LABEL= or a path, to a device node.
pub fn resolve_device(spec: &str) -> Option<PathBuf> {
    let link = if let Some(u) = spec.strip_prefix("UUID=") {
        PathBuf::from("/dev/disk/by-uuid").join(u)
    } else if let Some(l) = spec.strip_prefix("LABEL=") {
        PathBuf::from("/dev/disk/by-label").join(l)
    } else {
        PathBuf::from(spec)
    };
    std::fs::canonicalize(&link).ok()
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub step: String,
    pub outcome: String,
    pub detail: String,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub peer: String,
    pub proofs: Vec<Fenced>,
    pub events: Vec<Event>,
    pub journal: PathBuf,
    pub resumed: bool,
}

/// Run the plan. `progress` sees every event as it happens.
pub fn run(
    cfg: &Config,
    peer: &Peer,
    steps: &[Step],
    progress: &mut dyn FnMut(&Event),
) -> Result<Outcome, SanError> {
    let jpath = cfg
        .takeover
        .journal
        .clone()
        .unwrap_or_else(|| PathBuf::from(journal::DEFAULT_PATH));
    let (mut j, resumed) = match Journal::load(&jpath)? {
        Some(j) if j.peer == peer.name && !j.complete => (j, true),
        Some(j) if j.peer == peer.name => (j, true),
        _ => (Journal::new(&jpath, &peer.name), false),
    };
    let mut events = Vec::new();
    let mut emit = |step: &str, outcome: &str, detail: String, t: Instant| {
        let e = Event {
            step: step.into(),
            outcome: outcome.into(),
            detail,
            seconds: t.elapsed().as_secs_f64(),
        };
        progress(&e);
        events.push(e);
    };
    let mut proofs: Vec<Fenced> = Vec::new();
    let mut checked: Vec<(MountConfig, Checked)> = Vec::new();
    let mut failures = Vec::new();

    for step in steps {
        let id = step.id();
        let _span = info_span!("takeover-step", step = %id).entered();
        let t = Instant::now();
        let before = j.state_of(&id);
        j.record(&id, State::Started, "")?;
        match step {
            Step::FenceStorage {
                victim_key,
                own_key,
                luns,
                ..
            } => {
                let own = Key(cfg.own_key());
                let victim = Key(peer.pr_key());
                let ty = reserve::pr_type(cfg.storage.reservation_type);
                let profiles = crate::profiles::Profiles::load()?;
                let mut reports = Vec::new();
                for lun in luns {
                    let profile = reserve::profile_for(lun, &profiles);
                    match reserve::preempt_tiebreak(lun, own, victim, ty, profile) {
                        Ok(r) => reports.push(r),
                        Err(e) => {
                            // A failed PREEMPT after which our key is gone: the peer won.
                            let lost = reserve::status(lun)
                                .is_ok_and(|s| s.paths.iter().all(|p| !p.keys.contains(own_key)));
                            j.record(&id, State::Failed, &e.to_string())?;
                            if lost && !matches!(e, reserve::PrError::NotRegistered { .. }) {
                                return Err(reserve::PrError::NotRegistered {
                                    lun: lun.name.clone(),
                                    key: own_key.clone(),
                                    holder: victim_key.clone(),
                                }
                                .into());
                            }
                            return Err(e.into());
                        }
                    }
                }
                let proof = fence::by_reservation(&peer.name, own_key, victim_key, &reports)?;
                j.record(&id, State::Done, "preempted and verified on every path")?;
                emit(
                    &id,
                    "done",
                    format!(
                        "{}'s key {victim_key} preempted on {}; this node holds every path",
                        peer.name,
                        luns.iter()
                            .map(|l| l.name.clone())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    t,
                );
                proofs.push(proof);
            }
            Step::FenceOverride { .. } => {
                let proof = fence::admin_override(
                    &peer.name,
                    "--i-know-the-peer-is-off given to hamn takeover",
                );
                j.record(&id, State::Done, "admin override (logged)")?;
                emit(
                    &id,
                    "done",
                    format!("the admin states that {} is off (logged)", peer.name),
                    t,
                );
                proofs.push(proof);
            }
            Step::BmcCheck { bmc, .. } => {
                let state = bmc_power_state(peer);
                match state {
                    Ok(st) => {
                        j.record(&id, State::Done, &format!("power {st}"))?;
                        emit(
                            &id,
                            "done",
                            format!("{bmc} answers: {} is {st}", peer.name),
                            t,
                        );
                    }
                    Err(e) => {
                        j.record(&id, State::Failed, &e)?;
                        return Err(SanError::Power(format!(
                            "{e}\nNothing was done: the storage is untouched and nothing is \
                             mounted. Fix the BMC, or, if {peer} is confirmed off or \
                             disconnected, run `hamn takeover --i-know-the-peer-is-off` \
                             (logged; the storage is still fenced)",
                            peer = peer.name
                        )));
                    }
                }
            }
            Step::FencePower { .. } => {
                let profiles = crate::profiles::Profiles::load()?;
                let proof = crate::commands::fence_peer(peer, &profiles, None)
                    .map(|(f, _)| f)
                    .map_err(|e| SanError::Power(e.to_string()));
                let proof = match proof {
                    Ok(p) => p,
                    Err(e) => {
                        j.record(&id, State::Failed, &e.to_string())?;
                        return Err(e);
                    }
                };
                j.record(&id, State::Done, "powered off, confirmed")?;
                emit(&id, "done", format!("{} is off, confirmed", peer.name), t);
                proofs.push(proof);
            }
            Step::Check { mount } => {
                let proof = last_proof(&proofs, peer)?;
                let dev = mount_device(mount)?;
                // Mounted where it belongs by an earlier run: in use, checked then.
                if fs::is_mounted_at(&dev, &mount.mountpoint) {
                    j.record(&id, State::Done, "already mounted")?;
                    emit(
                        &id,
                        "in place",
                        format!("{} already mounted", dev.display()),
                        t,
                    );
                    continue;
                }
                match fs::check(&dev, &mount.fs_type, mount.check, proof) {
                    Ok(c) => {
                        j.record(&id, State::Done, "clean")?;
                        emit(
                            &id,
                            "done",
                            format!(
                                "{} {} {}",
                                mount.fs_type,
                                dev.display(),
                                crate::fs::replay_note(&c)
                            ),
                            t,
                        );
                        checked.push((mount.clone(), c));
                    }
                    Err(e) => {
                        j.record(&id, State::Failed, &e.to_string())?;
                        failures.push(format!("  {}: {e}", mount.mountpoint.display()));
                    }
                }
            }
            Step::Mount { mount } => {
                if !failures.is_empty() {
                    return Err(SanError::Checks {
                        count: failures.len(),
                        list: failures.join("\n"),
                    });
                }
                let dev = mount_device(mount)?;
                if fs::is_mounted_at(&dev, &mount.mountpoint) {
                    j.record(&id, State::Done, "already mounted")?;
                    emit(
                        &id,
                        "in place",
                        format!("{} on {}", dev.display(), mount.mountpoint.display()),
                        t,
                    );
                    continue;
                }
                let Some((_, c)) = checked.iter().find(|(m, _)| m == mount) else {
                    return Err(SanError::Checks {
                        count: 1,
                        list: format!("  {}: not checked", mount.mountpoint.display()),
                    });
                };
                let m = fs::mount(c, &mount.mountpoint, false).map_err(|source| SanError::Fs {
                    step: id.clone(),
                    source,
                })?;
                j.record(&id, State::Done, "mounted")?;
                emit(
                    &id,
                    if before == Some(State::Done) {
                        "redone"
                    } else {
                        "done"
                    },
                    format!("{} on {}", m.device.display(), m.mountpoint.display()),
                    t,
                );
            }
            // Nothing is served from storage that failed its check.
            Step::ServiceIp { .. } | Step::Service { .. } if !failures.is_empty() => {
                return Err(SanError::Checks {
                    count: failures.len(),
                    list: failures.join("\n"),
                });
            }
            Step::ServiceIp { ip } => {
                let proof = last_proof(&proofs, peer)?;
                match crate::net::bring_up(ip, proof) {
                    Ok(o) => {
                        j.record(&id, State::Done, &format!("{o:?}"))?;
                        let (outcome, what) = match o {
                            crate::net::IpOutcome::Added => ("done", "added and announced"),
                            crate::net::IpOutcome::AlreadyPresent => {
                                ("in place", "already here; announced again")
                            }
                        };
                        emit(
                            &id,
                            outcome,
                            format!("{}/{} on {}: {what}", ip.address, ip.prefix, ip.interface),
                            t,
                        );
                    }
                    Err(e) => {
                        j.record(&id, State::Failed, &e.to_string())?;
                        return Err(e.into());
                    }
                }
            }
            Step::Service { service } => {
                let proof = last_proof(&proofs, peer)?;
                match crate::svc::start(service, proof) {
                    Ok(o) => {
                        j.record(&id, State::Done, &format!("{o:?}"))?;
                        let (outcome, what) = match o {
                            crate::svc::StartOutcome::AlreadyReady => {
                                ("in place", "already ready".to_string())
                            }
                            crate::svc::StartOutcome::Started { waited } => (
                                "done",
                                format!("started, ready after {:.1} s", waited.as_secs_f64()),
                            ),
                        };
                        emit(&id, outcome, format!("{}: {what}", service.name), t);
                    }
                    Err(e) => {
                        j.record(&id, State::Failed, &e.to_string())?;
                        return Err(e.into());
                    }
                }
            }
        }
    }
    if !failures.is_empty() {
        return Err(SanError::Checks {
            count: failures.len(),
            list: failures.join("\n"),
        });
    }
    j.finish()?;
    Ok(Outcome {
        peer: peer.name.clone(),
        proofs,
        events,
        journal: j.path().to_path_buf(),
        resumed,
    })
}
