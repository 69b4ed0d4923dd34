//! `hamn preflight`: what would make a takeover fail on the day, found ahead of time,
//! changing nothing. Each check reads only: a BMC session is opened and closed with one
//! status read; reservations are read (READ KEYS, READ RESERVATION), never written;
//! filesystems are identified by their superblock, never checked or mounted; the service
//! address is looked up and probed with ARP (a probe claims nothing); services are asked
//! whether they are enabled.
//!
//! Each finding says what was seen and the command that fixes it. The role of this node
//! (primary or standby) is read from what it holds: the reservation of a shared LUN, or a
//! takeover mount mounted here.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tracing::info_span;

use crate::bmc::lanplus::Backoff;
use crate::bmc::{AnyBmc, PowerControl, PowerState, RestorePolicy};
use crate::config::{Config, Peer};
use crate::disks::manifest::{self, Manifest};
use crate::profiles::Profiles;
use crate::scsi::pr::Key;
use crate::scsi::reserve::{self, LunReport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    Ok,
    Warning,
    Problem,
}

/// One thing checked: what it is about, what was seen, and what fixes it.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// "bmc", "reservation", "path", "mount", "service-address", "service", "manifest",
    /// "config".
    pub check: String,
    /// The peer, LUN, path, mountpoint, address or service concerned.
    pub subject: String,
    pub level: Level,
    pub seen: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn finding(check: &str, subject: &str, level: Level, seen: String, fix: Option<String>) -> Finding {
    Finding {
        check: check.into(),
        subject: subject.into(),
        level,
        seen,
        fix,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Primary,
    Standby,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub node: String,
    pub role: Role,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn worst(&self) -> Level {
        self.findings
            .iter()
            .map(|f| f.level)
            .max()
            .unwrap_or(Level::Ok)
    }
}

/// Run every check. `cfg` was loaded (a configuration that does not load is the caller's
/// finding).
pub fn run(cfg: &Config, profiles: &Profiles) -> Report {
    let _span = info_span!("preflight").entered();
    let mut findings = Vec::new();
    let own = reserve::key_text(Key(cfg.own_key()));
    let luns = shared_luns(cfg, &mut findings);
    let role = role(cfg, &own, &luns);
    let mut peer_power = Vec::new();
    for peer in cfg.peers.values() {
        peer_power.push((peer.name.clone(), bmc(peer, profiles, role, &mut findings)));
    }
    let peer_on = peer_power.iter().any(|(_, p)| *p == Some(PowerState::On));
    for lun in &luns {
        reservations(cfg, lun, &own, role, &mut findings);
    }
    mounts(cfg, role, &mut findings);
    service_address(cfg, role, peer_on, &mut findings);
    if role == Role::Standby {
        services(cfg, &mut findings);
    }
    moved_disks_manifest(cfg, role, &mut findings);
    Report {
        node: cfg.node.clone(),
        role,
        findings,
    }
}

fn shared_luns(cfg: &Config, findings: &mut Vec<Finding>) -> Vec<LunReport> {
    let inv = match crate::disks::inventory() {
        Ok(i) => i,
        Err(e) => {
            findings.push(finding(
                "path",
                "udev",
                Level::Problem,
                format!("the storage inventory could not be read: {e}"),
                Some("check that udevd runs (`udevadm info --export-db`)".into()),
            ));
            return Vec::new();
        }
    };
    if inv.multipath.is_empty() && cfg.storage.shared.is_empty() {
        return Vec::new();
    }
    let luns = match crate::disks::luns::shared_luns(&inv, &cfg.storage.shared) {
        Ok(l) => l,
        Err(e) => {
            findings.push(finding(
                "path",
                "shared LUNs",
                Level::Problem,
                e.to_string(),
                Some("`multipath -ll` shows the maps; `hamn disks` what this node sees".into()),
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for lun in &luns {
        match reserve::status(lun) {
            Ok(r) => out.push(r),
            Err(e) => findings.push(finding(
                "reservation",
                &lun.name,
                Level::Problem,
                format!("the reservation could not be read: {e}"),
                Some(format!(
                    "`hamn pr status {}`; check the paths with `multipath -ll`",
                    lun.name
                )),
            )),
        }
    }
    out
}

/// Primary where this node holds a shared LUN's reservation or has a takeover mount
/// mounted; standby otherwise.
fn role(cfg: &Config, own: &str, luns: &[LunReport]) -> Role {
    let holds = luns
        .iter()
        .flat_map(|l| &l.paths)
        .any(|p| p.holder.as_deref() == Some(own));
    let mounted = crate::mountinfo::read()
        .map(|m| {
            cfg.takeover
                .mounts
                .iter()
                .any(|t| m.iter().any(|e| e.mount_point == t.mountpoint))
        })
        .unwrap_or(false);
    if holds || mounted {
        Role::Primary
    } else {
        Role::Standby
    }
}

/// The peer's BMC: a session with the stored credentials, its power and its power
/// restore policy. Returns the power state read, if any.
fn bmc(
    peer: &Peer,
    profiles: &Profiles,
    role: Role,
    findings: &mut Vec<Finding>,
) -> Option<PowerState> {
    let subject = peer.name.as_str();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut b = match AnyBmc::connect(peer, profiles, deadline, Backoff::default()) {
        Ok(b) => b,
        Err(e) => {
            findings.push(finding(
                "bmc",
                subject,
                Level::Problem,
                format!(
                    "no session with {}'s BMC {}: {e}",
                    peer.name, peer.bmc.address
                ),
                Some(format!(
                    "correct peers.{0}.bmc (address, user, password source) in hamn.toml, \
                     then `hamn power status {0}`",
                    peer.name
                )),
            ));
            return None;
        }
    };
    let status = b.chassis_status(deadline);
    let described = b.describe();
    let command = b.always_off_command();
    b.close();
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            findings.push(finding(
                "bmc",
                subject,
                Level::Problem,
                format!("{described}: logged in, but the power state could not be read: {e}"),
                Some(format!("`hamn -v power status {}`", peer.name)),
            ));
            return None;
        }
    };
    let (level, fix) = match (status.power, role) {
        (PowerState::On, _) => (Level::Ok, None),
        // The standby's view: the primary is off, so nothing is served.
        (PowerState::Off, Role::Standby) => (
            Level::Warning,
            Some(format!(
                "if {0} failed: `hamn takeover`; if it is down for maintenance, power it on: \
                 `hamn power on {0}`",
                peer.name
            )),
        ),
        (PowerState::Off, Role::Primary) => (
            Level::Warning,
            Some(format!(
                "the standby {0} is off: no failover is possible until `hamn power on {0}`",
                peer.name
            )),
        ),
    };
    findings.push(finding(
        "bmc",
        subject,
        level,
        format!("{described}: logged in, power {}", status.power),
        fix,
    ));
    if status.restore_policy != RestorePolicy::AlwaysOff {
        findings.push(finding(
            "bmc",
            subject,
            Level::Warning,
            format!(
                "power restore policy '{}': after a power loss {} may start again by itself \
                 (a fence sets 'always-off', but only when it runs)",
                status.restore_policy, peer.name
            ),
            Some(format!("`{command}`")),
        ));
    }
    Some(status.power)
}

fn reservations(cfg: &Config, lun: &LunReport, own: &str, role: Role, findings: &mut Vec<Finding>) {
    let name = lun.lun.as_str();
    let peer_keys: Vec<(String, String)> = cfg
        .peers
        .values()
        .map(|p| (reserve::key_text(Key(p.pr_key())), p.name.clone()))
        .collect();
    let mut readable = 0;
    let mut registrations = None;
    let mut holder = None;
    for p in &lun.paths {
        match &p.error {
            Some(e) => findings.push(finding(
                "path",
                &format!("{name} {}", p.path),
                Level::Problem,
                format!("path {} of {name} does not answer: {e}", p.path),
                Some(format!(
                    "`multipath -ll` shows its state; restore the path (cabling, zoning, the \
                     target), then `multipathd reinstate path {}`",
                    p.path.trim_start_matches("/dev/")
                )),
            )),
            None => {
                readable += 1;
                registrations = Some(p.keys.iter().filter(|k| k.as_str() == own).count());
                holder = p.holder.clone();
            }
        }
    }
    if readable == lun.paths.len() && !lun.paths.is_empty() {
        findings.push(finding(
            "path",
            name,
            Level::Ok,
            format!("all {} paths answer", lun.paths.len()),
            None,
        ));
    }
    let Some(registered) = registrations else {
        return;
    };
    // READ KEYS lists one registration per I_T nexus: this node's key once per path.
    let paths = lun.paths.len();
    if registered < paths {
        findings.push(finding(
            "reservation",
            name,
            Level::Problem,
            format!(
                "this node's key {own} is registered on {registered} of its {paths} paths: a \
                 takeover could not preempt through the others"
            ),
            Some("`hamn pr register --all-shared`".into()),
        ));
    } else {
        findings.push(finding(
            "reservation",
            name,
            Level::Ok,
            format!("this node's key {own} is registered on all {paths} paths"),
            None,
        ));
    }
    let holder_name = holder.as_ref().map(|h| {
        if h == own {
            "this node".to_string()
        } else {
            peer_keys
                .iter()
                .find(|(k, _)| k == h)
                .map_or_else(|| format!("an unknown node ({h})"), |(_, n)| n.clone())
        }
    });
    let peer_holds = holder
        .as_ref()
        .is_some_and(|h| peer_keys.iter().any(|(k, _)| k == h));
    let (level, fix) = match (role, holder.as_deref()) {
        (_, None) => (
            Level::Problem,
            Some("on the primary: `hamn pr reserve --all-shared`".to_string()),
        ),
        (Role::Standby, Some(_)) if peer_holds => (Level::Ok, None),
        (Role::Primary, Some(h)) if h == own => (Level::Ok, None),
        _ => (
            Level::Problem,
            Some(format!(
                "find who holds {name} (`hamn pr status {name}`); only the primary may"
            )),
        ),
    };
    findings.push(finding(
        "reservation",
        name,
        level,
        match holder_name {
            Some(h) => format!("held by {h}"),
            None => "nobody holds the reservation: any registered node may write".into(),
        },
        fix,
    ));
}

fn mounts(cfg: &Config, role: Role, findings: &mut Vec<Finding>) {
    for m in &cfg.takeover.mounts {
        let subject = m.mountpoint.display().to_string();
        let checker = match m.fs_type.as_str() {
            "ext2" | "ext3" | "ext4" => Some(("e2fsck", "e2fsprogs")),
            "xfs" => Some(("xfs_repair", "xfsprogs")),
            "nfs" | "nfs4" => Some(("mount.nfs", "nfs-utils or nfs-common")),
            _ => None,
        };
        if let Some((tool, package)) = checker
            && crate::exec::locate(tool).is_none()
        {
            findings.push(finding(
                "mount",
                &subject,
                Level::Problem,
                format!(
                    "{tool} is not installed: {subject} ({}) cannot be checked",
                    m.fs_type
                ),
                Some(format!("install {package}")),
            ));
        }
        if matches!(m.fs_type.as_str(), "nfs" | "nfs4") {
            continue;
        }
        let Some(dev) = super::step::resolve_spec(&m.device) else {
            findings.push(finding(
                "mount",
                &subject,
                Level::Problem,
                format!("{} for {subject} is not present on this node", m.device),
                Some(
                    "`hamn disks` and `multipath -ll` show what this node sees; check the LUN's \
                     zoning and mapping to this node"
                        .into(),
                ),
            ));
            continue;
        };
        match crate::fs::blkid_probe(&dev) {
            Ok((Some(ty), _)) if ty == m.fs_type => findings.push(finding(
                "mount",
                &subject,
                Level::Ok,
                format!(
                    "{} is {} ({ty}){}",
                    m.device,
                    dev.display(),
                    match role {
                        Role::Primary => "",
                        Role::Standby => ", ready to be checked and mounted",
                    }
                ),
                None,
            )),
            Ok((ty, _)) => findings.push(finding(
                "mount",
                &subject,
                Level::Problem,
                format!(
                    "{} ({}) holds {}, not {}",
                    m.device,
                    dev.display(),
                    ty.as_deref().unwrap_or("no filesystem blkid knows"),
                    m.fs_type
                ),
                Some(format!(
                    "correct [[takeover.mount]] device or type for {subject} in hamn.toml \
                     (`blkid {}` shows what is there)",
                    dev.display()
                )),
            )),
            Err(e) => findings.push(finding(
                "mount",
                &subject,
                Level::Problem,
                format!("{} could not be identified: {e}", dev.display()),
                Some(format!("`blkid {}`", dev.display())),
            )),
        }
    }
}

/// What the standby and the primary should see of the service address.
fn address_verdict(
    role: Role,
    here: bool,
    answered_by: Option<&str>,
    peer_on: bool,
    address: &str,
    interface: &str,
) -> (Level, String, Option<String>) {
    match (role, here, answered_by) {
        (Role::Standby, true, _) => (
            Level::Problem,
            format!("{address} is configured on this node ({interface}), the standby"),
            Some(format!("`ip addr del {address} dev {interface}`")),
        ),
        (Role::Standby, false, Some(mac)) if peer_on => (
            Level::Ok,
            format!(
                "{address} is answered by {mac}: the primary's, if that is its NIC (`ip neigh` \
                 on the primary shows its own MAC)"
            ),
            None,
        ),
        (Role::Standby, false, Some(mac)) => (
            Level::Problem,
            format!(
                "{address} is answered by {mac} while the primary is not on: another machine uses it"
            ),
            Some(format!(
                "find the machine with MAC {mac} and remove the address there; `arping -I \
                 {interface} {}` shows who answers",
                address.split('/').next().unwrap_or(address)
            )),
        ),
        (Role::Standby, false, None) => (
            Level::Ok,
            format!("{address} is not on this node and nobody else answers for it"),
            None,
        ),
        (Role::Primary, true, None) => (
            Level::Ok,
            format!("{address} is on this node ({interface}) and nobody else answers for it"),
            None,
        ),
        (Role::Primary, _, Some(mac)) => (
            Level::Problem,
            format!("{address} is also answered by {mac}: two machines use it"),
            Some(format!(
                "find the machine with MAC {mac} and remove the address there"
            )),
        ),
        (Role::Primary, false, None) => (
            Level::Warning,
            format!("{address} is not on this node, the primary: xCAT is not served there"),
            Some("`hamn takeover` puts it in place (it finds the rest in place)".into()),
        ),
    }
}

fn service_address(cfg: &Config, role: Role, peer_on: bool, findings: &mut Vec<Finding>) {
    let Some(sc) = &cfg.takeover.service_ip else {
        return;
    };
    let ip = match crate::net::ServiceIp::parse(sc) {
        Ok(ip) => ip,
        Err(e) => {
            findings.push(finding(
                "service-address",
                &sc.address,
                Level::Problem,
                e.to_string(),
                Some("correct [takeover.service_ip] in hamn.toml".into()),
            ));
            return;
        }
    };
    let here = match crate::net::ip_present(&ip) {
        Ok(h) => h,
        Err(e) => {
            findings.push(finding(
                "service-address",
                &sc.address,
                Level::Problem,
                e.to_string(),
                Some(format!(
                    "check interface {} (`ip link show {}`)",
                    sc.interface, sc.interface
                )),
            ));
            return;
        }
    };
    // Asking while the address is here would only find ourselves.
    let answered = if here {
        Ok(None)
    } else {
        crate::net::someone_else_answers(&ip)
    };
    match answered {
        Ok(mac) => {
            let (level, seen, fix) = address_verdict(
                role,
                here,
                mac.as_deref(),
                peer_on,
                &sc.address,
                &sc.interface,
            );
            findings.push(finding("service-address", &sc.address, level, seen, fix));
        }
        Err(e) => findings.push(finding(
            "service-address",
            &sc.address,
            Level::Problem,
            format!("who answers for {} could not be probed: {e}", sc.address),
            Some(format!("check interface {}", sc.interface)),
        )),
    }
}

/// The takeover's services must not start at boot on the standby: they would serve
/// without the data (or with a stale copy) the moment the standby reboots.
fn services(cfg: &Config, findings: &mut Vec<Finding>) {
    let Ok(list) = crate::svc::services(&cfg.takeover) else {
        return;
    };
    for s in list {
        let unit = match s.start.as_slice() {
            [prog, verb, unit, ..]
                if Path::new(prog)
                    .file_name()
                    .is_some_and(|n| n == "systemctl")
                    && (verb == "start" || verb == "restart") =>
            {
                unit.clone()
            }
            _ => continue,
        };
        let ran = crate::exec::Command::new(["systemctl", "is-enabled", unit.as_str()])
            .timeout(Duration::from_secs(10))
            .run();
        let state = match ran {
            Ok(r) => r.stdout.trim().to_string(),
            Err(_) => continue,
        };
        if matches!(
            state.as_str(),
            "enabled" | "enabled-runtime" | "alias" | "linked"
        ) {
            findings.push(finding(
                "service",
                &unit,
                Level::Problem,
                format!(
                    "{unit} is {state} at boot on the standby: it would start without the xCAT data"
                ),
                Some(format!(
                    "`systemctl disable {unit}` (hamn takeover starts it)"
                )),
            ));
        } else {
            findings.push(finding(
                "service",
                &unit,
                Level::Ok,
                format!(
                    "{unit} is {} at boot",
                    if state.is_empty() {
                        "not enabled"
                    } else {
                        &state
                    }
                ),
                None,
            ));
        }
    }
}

fn manifest_path(cfg: &Config) -> Option<PathBuf> {
    cfg.disks
        .manifest
        .clone()
        .or_else(|| Some(PathBuf::from(manifest::DEFAULT_PATH)).filter(|p| p.exists()))
}

/// The moved-disks manifest (where this site keeps one): readable, how old, and on the
/// primary whether the disks changed since it was recorded.
fn moved_disks_manifest(cfg: &Config, role: Role, findings: &mut Vec<Finding>) {
    let Some(path) = manifest_path(cfg) else {
        return;
    };
    let subject = path.display().to_string();
    let m = match Manifest::load(&path) {
        Ok(m) => m,
        Err(e) => {
            findings.push(finding(
                "manifest",
                &subject,
                Level::Problem,
                e.to_string(),
                Some("on the primary: `hamn disks record`, then copy the file here".into()),
            ));
            return;
        }
    };
    let age = humantime::parse_rfc3339_weak(&m.recorded_at)
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| format!("{} days old", d.as_secs() / 86_400))
        .unwrap_or_else(|| "of unknown age".into());
    if role == Role::Primary && m.node == cfg.node {
        let changes = crate::disks::present::Present::scan()
            .ok()
            .and_then(|p| crate::disks::record::record(&p, &cfg.node, SystemTime::now()).ok())
            .map(|(now, _)| manifest::diff(&m, &now));
        match changes {
            Some(c) if !c.is_empty() => {
                findings.push(finding(
                    "manifest",
                    &subject,
                    Level::Problem,
                    format!(
                        "recorded {} ({age}); the disks changed since: {}",
                        m.recorded_at,
                        c.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    Some(format!(
                        "`hamn disks record`, then copy {subject} to the standby"
                    )),
                ));
                return;
            }
            None => {
                findings.push(finding(
                    "manifest",
                    &subject,
                    Level::Warning,
                    format!(
                        "recorded {} ({age}); this node's disks could not be compared",
                        m.recorded_at
                    ),
                    Some("`hamn disks record --diff`".into()),
                ));
                return;
            }
            Some(_) => {}
        }
    }
    findings.push(finding(
        "manifest",
        &subject,
        Level::Ok,
        format!(
            "{} disks recorded {} ({age}), readable",
            m.node, m.recorded_at
        ),
        None,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_address_on_the_standby_or_answered_while_the_primary_is_off_is_a_problem() {
        let v = |role, here, mac: Option<&str>, on| {
            address_verdict(role, here, mac, on, "10.0.0.1/24", "eth0").0
        };
        assert_eq!(v(Role::Standby, true, None, true), Level::Problem);
        assert_eq!(
            v(Role::Standby, false, Some("52:54:00:00:00:01"), true),
            Level::Ok
        );
        assert_eq!(
            v(Role::Standby, false, Some("52:54:00:00:00:01"), false),
            Level::Problem
        );
        assert_eq!(v(Role::Standby, false, None, false), Level::Ok);
        assert_eq!(v(Role::Primary, true, None, true), Level::Ok);
        assert_eq!(
            v(Role::Primary, true, Some("52:54:00:00:00:02"), true),
            Level::Problem
        );
        assert_eq!(v(Role::Primary, false, None, true), Level::Warning);
    }
}
