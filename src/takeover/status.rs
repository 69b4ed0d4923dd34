//! `hamn status`: what an admin looks at first, on either node. Everything is read, never
//! changed; what cannot be read is shown as unknown with the reason, not guessed.

use std::path::PathBuf;

use serde::Serialize;

use super::journal::Journal;
use crate::config::{Config, Peer};
use crate::scsi::pr::Key;
use crate::scsi::reserve;

#[derive(Debug, Serialize)]
pub struct Status {
    pub node: String,
    pub own_key: String,
    pub peer: Option<PeerPower>,
    pub luns: Vec<LunHolder>,
    pub arrays: Vec<ArrayState>,
    pub mounts: Vec<MountState>,
    /// "192.168.60.10/24 on eth0: present" (or absent, or unknown and why).
    pub service_ip: Option<String>,
    /// Each service and whether its readiness check passes now.
    pub services: Vec<(String, String)>,
    pub journal: Option<JournalSummary>,
    /// What could not be read.
    pub unknown: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PeerPower {
    pub name: String,
    pub key: String,
    /// "on", "off", or why it is unknown.
    pub power: String,
}

#[derive(Debug, Serialize)]
pub struct LunHolder {
    pub lun: String,
    pub holder: Option<String>,
    /// "this node", "the peer", "another key", "nobody", "unknown".
    pub held_by: String,
    pub keys: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ArrayState {
    pub name: String,
    pub state: Option<String>,
    pub degraded: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct MountState {
    pub mountpoint: PathBuf,
    pub device: String,
    pub mounted: bool,
}

#[derive(Debug, Serialize)]
pub struct JournalSummary {
    pub path: PathBuf,
    pub peer: String,
    /// "san" or "moved-disks".
    pub flow: String,
    pub complete: bool,
    /// Each step's last state.
    pub steps: Vec<(String, String)>,
}

/// `cfg`: hamn.toml, where there is one; without it (moved disks need none) what the
/// journal and the disks say is shown.
pub fn collect(cfg: Option<&Config>, peer: Option<&Peer>, contact_bmc: bool) -> Status {
    let own = cfg.map_or_else(
        || "none (no hamn.toml)".to_string(),
        |c| reserve::key_text(Key(c.own_key())),
    );
    let mut unknown = Vec::new();
    let peer_power = peer.map(|p| PeerPower {
        name: p.name.clone(),
        key: reserve::key_text(Key(p.pr_key())),
        power: if contact_bmc {
            match crate::profiles::Profiles::load() {
                Ok(profiles) => match crate::fence::power::read_power(p, &profiles) {
                    Ok(s) => s.to_string(),
                    Err(e) => format!("unknown: {e}"),
                },
                Err(e) => format!("unknown: {e}"),
            }
        } else {
            "not asked (--no-bmc)".into()
        },
    });
    let mut luns = Vec::new();
    let mut arrays = Vec::new();
    match crate::disks::inventory() {
        Ok(inv) => {
            arrays = inv
                .md
                .iter()
                .map(|a| ArrayState {
                    name: a.name.clone().unwrap_or_else(|| a.kernel_name.clone()),
                    state: a.state.clone(),
                    degraded: a.degraded,
                })
                .collect();
            let shared = cfg.map(|c| crate::disks::luns::shared_luns(&inv, &c.storage.shared));
            match shared.unwrap_or_else(|| Ok(Vec::new())) {
                Ok(list) => {
                    for lun in &list {
                        let r = reserve::status(lun);
                        let (holder, keys, readable) = match &r {
                            Ok(rep) => {
                                let ok: Vec<_> = rep.paths.iter().filter(|p| p.ok).collect();
                                (
                                    ok.first().and_then(|p| p.holder.clone()),
                                    ok.first().map(|p| p.keys.clone()).unwrap_or_default(),
                                    !ok.is_empty(),
                                )
                            }
                            Err(e) => {
                                unknown.push(format!("LUN {}: {e}", lun.name));
                                (None, Vec::new(), false)
                            }
                        };
                        let held_by = match (&holder, readable) {
                            (_, false) => "unknown",
                            (None, true) => "nobody",
                            (Some(h), _) if *h == own => "this node",
                            (Some(h), _) if peer_power.as_ref().is_some_and(|p| *h == p.key) => {
                                "the peer"
                            }
                            (Some(_), _) => "another key",
                        };
                        luns.push(LunHolder {
                            lun: lun.name.clone(),
                            holder,
                            held_by: held_by.into(),
                            keys,
                        });
                    }
                }
                Err(e) => unknown.push(format!("shared LUNs: {e}")),
            }
        }
        Err(e) => unknown.push(format!("disks: {e}")),
    }
    let service_ip =
        cfg.and_then(|c| c.takeover.service_ip.as_ref()).map(
            |c| match crate::net::ServiceIp::parse(c) {
                Ok(ip) => {
                    let state = match crate::net::ip_present(&ip) {
                        Ok(true) => "present here".to_string(),
                        Ok(false) => "not here".to_string(),
                        Err(e) => format!("unknown: {e}"),
                    };
                    format!("{}/{} on {}: {state}", ip.address, ip.prefix, ip.interface)
                }
                Err(e) => format!("invalid: {e}"),
            },
        );
    let services = match cfg.map_or_else(|| Ok(Vec::new()), |c| crate::svc::services(&c.takeover)) {
        Ok(list) => list
            .iter()
            .map(|sv| {
                let state = match crate::svc::is_ready(sv) {
                    Ok(true) => "ready".to_string(),
                    Ok(false) => "not ready".to_string(),
                    Err(e) => format!("unknown: {e}"),
                };
                (sv.name.clone(), state)
            })
            .collect(),
        Err(e) => {
            unknown.push(format!("services: {e}"));
            Vec::new()
        }
    };
    let jpath = super::run::Context::journal_path(cfg);
    let loaded = Journal::load(&jpath);
    // Where the journal has the plan it ran, its mounts are the ones to show (moved
    // disks); else hamn.toml's.
    let planned: Vec<(PathBuf, super::step::Device)> = match &loaded {
        Ok(Some(j)) => j
            .plan
            .iter()
            .filter_map(|st| match st {
                super::step::Step::Mount { fs } => {
                    fs.mountpoint.clone().map(|m| (m, fs.device.clone()))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let mounts: Vec<MountState> = if planned.is_empty() {
        cfg.map(|c| {
            c.takeover
                .mounts
                .iter()
                .map(|m| {
                    mount_state(
                        &m.mountpoint,
                        &super::step::Device::Spec {
                            spec: m.device.clone(),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default()
    } else {
        planned.iter().map(|(m, d)| mount_state(m, d)).collect()
    };
    let journal = match loaded {
        Ok(Some(j)) => {
            let mut steps: Vec<(String, String)> = Vec::new();
            for e in &j.entries {
                let state = format!("{:?}", e.state).to_lowercase();
                match steps.iter_mut().find(|(s, _)| *s == e.step) {
                    Some(slot) => slot.1 = state,
                    None => steps.push((e.step.clone(), state)),
                }
            }
            Some(JournalSummary {
                path: jpath,
                peer: j.peer.clone(),
                flow: j.flow.clone(),
                complete: j.complete,
                steps,
            })
        }
        Ok(None) => None,
        Err(e) => {
            unknown.push(e.to_string());
            None
        }
    };
    Status {
        node: cfg.map_or_else(crate::config::hostname, |c| c.node.clone()),
        own_key: own,
        peer: peer_power,
        luns,
        arrays,
        mounts,
        service_ip,
        services,
        journal,
        unknown,
    }
}

pub fn render(s: &Status) -> String {
    let mut out = vec![format!("node {} (key {})", s.node, s.own_key)];
    if let Some(p) = &s.peer {
        out.push(format!(
            "peer {} (key {}): power {}",
            p.name, p.key, p.power
        ));
    }
    for l in &s.luns {
        out.push(format!(
            "LUN {}: held by {} ({}); {} registration(s)",
            l.lun,
            l.held_by,
            l.holder.as_deref().unwrap_or("no reservation"),
            l.keys.len()
        ));
    }
    for a in &s.arrays {
        out.push(format!(
            "array {}: {}{}",
            a.name,
            a.state.as_deref().unwrap_or("state unknown"),
            if a.degraded == Some(true) {
                ", DEGRADED"
            } else {
                ""
            }
        ));
    }
    for m in &s.mounts {
        out.push(format!(
            "{}: {} ({})",
            m.mountpoint.display(),
            if m.mounted { "mounted" } else { "not mounted" },
            m.device
        ));
    }
    if let Some(ip) = &s.service_ip {
        out.push(format!("service IP {ip}"));
    }
    for (name, state) in &s.services {
        out.push(format!("service {name}: {state}"));
    }
    match &s.journal {
        Some(j) => {
            out.push(format!(
                "takeover ({}) from {}: {} (journal {})",
                j.flow,
                j.peer,
                if j.complete {
                    "complete"
                } else if j.flow == "moved-disks" {
                    "NOT complete: run `hamn takeover --moved-disks` to continue"
                } else {
                    "NOT complete: run `hamn takeover` to continue"
                },
                j.path.display()
            ));
            for (step, state) in &j.steps {
                out.push(format!("  {step}: {state}"));
            }
        }
        None => out.push("no takeover journal".into()),
    }
    for u in &s.unknown {
        out.push(format!("unknown: {u}"));
    }
    out.join("\n")
}

/// Whether a planned filesystem is mounted where it belongs now.
fn mount_state(mountpoint: &std::path::Path, device: &super::step::Device) -> MountState {
    let dev = match device {
        super::step::Device::Spec { spec } => super::step::resolve_spec(spec),
        // An array's kernel name is found through its UUID below.
        super::step::Device::Array { .. } => None,
    };
    let mounted = match (&dev, device) {
        (Some(d), _) => crate::fs::is_mounted_at(d, mountpoint),
        (None, super::step::Device::Array { uuid, .. }) => array_mounted(uuid, mountpoint),
        (None, _) => false,
    };
    MountState {
        mountpoint: mountpoint.to_path_buf(),
        device: dev.map_or_else(
            || match device {
                super::step::Device::Spec { spec } => spec.clone(),
                super::step::Device::Array { name, .. } => name.clone(),
            },
            |d| d.display().to_string(),
        ),
        mounted,
    }
}

/// The running array with this UUID is mounted on `mountpoint`.
fn array_mounted(uuid: &str, mountpoint: &std::path::Path) -> bool {
    let Ok(inv) = crate::disks::inventory() else {
        return false;
    };
    inv.md.iter().any(|md| {
        md.uuid
            .as_deref()
            .is_some_and(|u| crate::disks::manifest::same_uuid(u, uuid))
            && crate::fs::is_mounted_at(
                std::path::Path::new(&format!("/dev/{}", md.kernel_name)),
                mountpoint,
            )
    })
}
