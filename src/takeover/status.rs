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
    /// Each [[takeover.drbd]] resource as DRBD reports it now.
    pub drbd: Vec<crate::drbd::State>,
    pub mounts: Vec<MountState>,
    /// "192.168.60.10/24 on eth0: present" (or absent, or unknown and why).
    pub service_ip: Option<String>,
    /// Each service and whether its readiness check passes now.
    pub services: Vec<(String, String)>,
    /// What the cluster's users lack on this node: the service address not here, a
    /// service not ready. Empty on a node serving them fully (or with nothing to serve).
    pub users_lack: Vec<String>,
    pub journal: Option<JournalSummary>,
    /// What could not be read.
    pub unknown: Vec<String>,
    /// What needs the admin now: a peer this node took over from whose power is on
    /// again. `hamn status` exits 1 when there is one.
    pub alarms: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PeerPower {
    pub name: String,
    pub key: String,
    /// "on", "off", or why it is unknown.
    pub power: String,
    /// The peer's power restore policy ("always-off", "previous", "always-on",
    /// "unknown"), when the BMC was read.
    pub restore_policy: Option<String>,
    /// This node's takeover journal shows a fencing step done against this peer.
    pub fenced_by_this_node: bool,
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
    let peer_power = peer.map(|p| {
        let (power, restore_policy) = if contact_bmc {
            match crate::profiles::Profiles::load() {
                Ok(profiles) => match crate::fence::power::read_chassis(p, &profiles) {
                    Ok(s) => (s.power.to_string(), Some(s.restore_policy.to_string())),
                    Err(e) => (format!("unknown: {e}"), None),
                },
                Err(e) => (format!("unknown: {e}"), None),
            }
        } else {
            ("not asked (--no-bmc)".into(), None)
        };
        PeerPower {
            name: p.name.clone(),
            key: reserve::key_text(Key(p.pr_key())),
            power,
            restore_policy,
            fenced_by_this_node: false,
        }
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
    let mut peer_power = peer_power;
    let mut alarms = Vec::new();
    if let (Some(p), Ok(Some(j))) = (peer_power.as_mut(), &loaded) {
        p.fenced_by_this_node = took_over_from(j, &p.name);
        if let Some(a) = power_back_alarm(p, &jpath) {
            alarms.push(a);
        }
    }
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
    let users_lack = users_lack(service_ip.as_deref(), &services);
    let mut drbd = Vec::new();
    for d in cfg.map(|c| c.takeover.drbd.as_slice()).unwrap_or_default() {
        match crate::drbd::state(&d.resource) {
            Ok(st) => drbd.push(st),
            Err(e) => unknown.push(format!("DRBD resource {}: {e}", d.resource)),
        }
    }
    Status {
        node: cfg.map_or_else(crate::config::hostname, |c| c.node.clone()),
        own_key: own,
        peer: peer_power,
        luns,
        arrays,
        drbd,
        mounts,
        service_ip,
        services,
        users_lack,
        journal,
        unknown,
        alarms,
    }
}

/// The service address unless it is present here, and every service not ready.
fn users_lack(service_ip: Option<&str>, services: &[(String, String)]) -> Vec<String> {
    let mut lack: Vec<String> = service_ip
        .filter(|s| !s.ends_with(": present here"))
        .map(|s| format!("service address {s}"))
        .into_iter()
        .collect();
    lack.extend(
        services
            .iter()
            .filter(|(_, state)| state != "ready")
            .map(|(name, state)| format!("service {name}: {state}")),
    );
    lack
}

/// The journal's fencing steps: one of them done against `peer` means this node took
/// over from it (a giveback retires the journal).
const FENCE_STEPS: [&str; 3] = ["fence-power", "fence-storage", "fence-override"];

/// This node's takeover fenced `peer`. A peer that had given the storage back cleanly (a
/// planned move) was not fenced: it runs on, and its power is no alarm.
fn took_over_from(j: &Journal, peer: &str) -> bool {
    let fenced = |step: &str| {
        j.entries
            .iter()
            .rev()
            .find(|e| e.step == step)
            .is_some_and(|e| {
                e.state == super::journal::State::Done && !e.detail.contains(super::run::GIVEN_BACK)
            })
    };
    j.peer == peer && FENCE_STEPS.iter().any(|s| fenced(s))
}

/// A peer this node fenced and took over from whose power reads "on" again: it is
/// running, and must not get its storage back.
fn power_back_alarm(p: &PeerPower, journal: &std::path::Path) -> Option<String> {
    (p.fenced_by_this_node && p.power == "on").then(|| {
        format!(
            "ALARM: peer {peer} was fenced by this node's takeover (journal {}), but its \
             power reads 'on' again: {peer} is running again (power restore policy {}, \
             someone at its power button or PDU, or its BMC). It must not get its storage \
             back: check with `hamn pr status --all-shared` that its key is absent on \
             every path, and power it off with `hamn fence {peer}`",
            journal.display(),
            p.restore_policy.as_deref().unwrap_or("unknown"),
            peer = p.name,
        )
    })
}

pub fn render(s: &Status) -> String {
    let mut out = vec![format!("node {} (key {})", s.node, s.own_key)];
    if let Some(p) = &s.peer {
        out.push(format!(
            "peer {} (key {}): power {}{}{}",
            p.name,
            p.key,
            p.power,
            p.restore_policy
                .as_deref()
                .map(|r| format!(", power restore policy {r}"))
                .unwrap_or_default(),
            if p.fenced_by_this_node {
                ", fenced by this node's takeover"
            } else {
                ""
            }
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
    for d in &s.drbd {
        out.push(format!("DRBD {}: {d}", d.resource));
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
                // The journal's "san" flow is every plan of `hamn takeover` without
                // --moved-disks: shared LUNs, NFS shares and DRBD mirrors alike.
                if j.flow == "san" {
                    "shared storage"
                } else {
                    j.flow.as_str()
                },
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
    out.extend(s.alarms.iter().cloned());
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
        // Not a device node: an NFS share, or a device that is not here.
        (None, super::step::Device::Spec { spec }) => {
            crate::fs::nfs::is_share_mounted_at(spec, mountpoint)
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::takeover::journal::State;

    fn peer(power: &str, fenced: bool) -> PeerPower {
        PeerPower {
            name: "mn1".into(),
            key: "0x1".into(),
            power: power.into(),
            restore_policy: Some("always-on".into()),
            fenced_by_this_node: fenced,
        }
    }

    #[test]
    fn a_done_fencing_step_against_the_peer_means_this_node_took_over_from_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("takeover.json");
        let mut j = Journal::new(&path, "mn1", "san");
        j.record("fence-storage", State::Started, "").expect("w");
        assert!(!took_over_from(&j, "mn1"), "started is not done");
        j.record("fence-storage", State::Done, "").expect("w");
        assert!(took_over_from(&j, "mn1"));
        assert!(!took_over_from(&j, "mn3"), "another peer");
        for step in ["fence-power", "fence-override"] {
            let mut j = Journal::new(&path, "mn1", "san");
            j.record(step, State::Done, "").expect("w");
            assert!(took_over_from(&j, "mn1"), "{step}");
        }
        let mut j = Journal::new(&path, "mn1", "san");
        j.record("check /install", State::Done, "").expect("w");
        assert!(!took_over_from(&j, "mn1"), "no fencing step");
        // A planned move: mn1 gave back, nothing was fenced, mn1 runs on.
        let mut j = Journal::new(&path, "mn1", "san");
        let detail = format!(
            "mn1 {}: its key is on no path",
            crate::takeover::run::GIVEN_BACK
        );
        j.record("fence-storage", State::Done, &detail).expect("w");
        assert!(
            !took_over_from(&j, "mn1"),
            "a peer that gave back was not fenced"
        );
    }

    #[test]
    fn a_fenced_peer_whose_power_is_on_again_is_an_alarm_saying_what_to_do() {
        let j = std::path::Path::new("/var/lib/hamn/takeover.json");
        let a = power_back_alarm(&peer("on", true), j).expect("alarm");
        assert!(
            a.starts_with("ALARM")
                && a.contains("mn1 is running again")
                && a.contains("must not get its storage back")
                && a.contains("hamn pr status --all-shared")
                && a.contains("hamn fence mn1")
                && a.contains("always-on"),
            "{a}"
        );
        assert!(power_back_alarm(&peer("off", true), j).is_none());
        assert!(
            power_back_alarm(&peer("on", false), j).is_none(),
            "not fenced by us"
        );
        assert!(power_back_alarm(&peer("unknown: timeout", true), j).is_none());
    }

    #[test]
    fn what_users_lack_is_the_address_not_here_and_every_service_not_ready() {
        let services = vec![
            ("xcatd".to_string(), "ready".to_string()),
            ("dhcpd".to_string(), "not ready".to_string()),
            ("named".to_string(), "unknown: timeout".to_string()),
        ];
        assert_eq!(
            users_lack(Some("10.0.0.1/24 on eth0: not here"), &services),
            [
                "service address 10.0.0.1/24 on eth0: not here",
                "service dhcpd: not ready",
                "service named: unknown: timeout"
            ]
        );
        assert!(users_lack(Some("10.0.0.1/24 on eth0: present here"), &services[..1]).is_empty());
        assert!(users_lack(None, &[]).is_empty());
    }

    #[test]
    fn the_alarm_and_the_restore_policy_are_rendered() {
        let s = Status {
            node: "mn2".into(),
            own_key: "0x2".into(),
            peer: Some(peer("on", true)),
            luns: Vec::new(),
            arrays: Vec::new(),
            drbd: Vec::new(),
            mounts: Vec::new(),
            service_ip: None,
            services: Vec::new(),
            users_lack: Vec::new(),
            journal: None,
            unknown: Vec::new(),
            alarms: vec!["ALARM: x".into()],
        };
        let text = render(&s);
        assert!(
            text.contains("power on, power restore policy always-on, fenced by this node"),
            "{text}"
        );
        assert!(text.ends_with("ALARM: x"), "{text}");
    }
}
