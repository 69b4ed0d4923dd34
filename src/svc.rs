//! The service IP and the services xCAT needs: the last steps of `hamn takeover` and the
//! first of `hamn giveback`.
//!
//! Everything here runs external programs (`ip`, `arping`, `systemctl`, xCAT's commands)
//! from argv vectors, never through a shell, with `LC_ALL=C` so that their output can be
//! parsed, and with a deadline: a command that hangs is killed and reported, because an
//! unknown outcome is a failure (design invariant 5).
//!
//! Bringing anything up takes a [`Fenced`]: an address or a daemon started while the old
//! primary still serves them splits the cluster's clients between two management nodes.
//! Taking them down (giveback) needs no proof.
//!
//! IPv6: `arping` speaks ARP only, and there is no ndisc6 on a stock node, so an IPv6
//! service address is checked by the kernel's own duplicate address detection (DAD):
//! hamn adds the address, waits until it is no longer tentative, and removes it again and
//! refuses if DAD failed. hamn sends no unsolicited neighbour advertisement itself; set
//! `net.ipv6.conf.IF.ndisc_notify=1` if the switches need one.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{info, info_span, warn};

use crate::config::{ServiceConfig, ServiceIpConfig, TakeoverConfig};
use crate::exec::{self, ExecError, Ran};
use crate::fence::Fenced;

#[derive(Debug, thiserror::Error)]
pub enum SvcError {
    #[error(
        "service_ip.address '{address}': {reason}; write it as ADDRESS/PREFIX, \
         e.g. 172.20.0.1/16 or fd00::1/64"
    )]
    BadAddress { address: String, reason: String },
    #[error(
        "service_ip.interface '{interface}': {reason}; use a name `ip link` lists, e.g. eth0, \
         or eth0:0 for a labelled IPv4 alias"
    )]
    BadInterface { interface: String, reason: String },
    #[error(
        "interface {interface} does not exist on this node; correct service_ip.interface \
         (see `ip link`)"
    )]
    NoInterface { interface: String },
    #[error(
        "interface {interface} {state}: nothing can be heard or served there, so hamn cannot \
         tell whether the service address is free; bring the link up (`ip link set {interface} \
         up`, cable, switch port) and rerun"
    )]
    LinkDown { interface: String, state: String },
    #[error(
        "refusing to bring up {address} on {interface}: {who} answers for it on that link. \
         The old primary may still be alive and serving it: check that machine (is it really \
         off? `hamn power status`), find who owns that MAC (`ip neigh`, the switch's MAC \
         address table), remove the address there, then rerun"
    )]
    AddressInUse {
        address: IpAddr,
        interface: String,
        who: String,
    },
    #[error(
        "{address} is already configured on {found}, not on {interface} as service_ip says; \
         remove it there (`ip addr del {address}/{prefix} dev {found}`) or correct \
         service_ip.interface, then rerun"
    )]
    OnOtherInterface {
        address: IpAddr,
        prefix: u8,
        interface: String,
        found: String,
    },
    #[error(
        "{address} is on {interface} as /{found}, but service_ip.address says /{wanted}; \
         remove it (`ip addr del {address}/{found} dev {interface}`) or correct \
         service_ip.address, then rerun"
    )]
    PrefixMismatch {
        address: IpAddr,
        interface: String,
        found: u8,
        wanted: u8,
    },
    #[error(
        "IPv6 duplicate address detection cannot run on {interface} ({setting}), so hamn \
         cannot tell whether another node holds {address}; enable it (`sysctl -w \
         net.ipv6.conf.{interface}.accept_dad=1 net.ipv6.conf.{interface}.dad_transmits=1`) \
         and rerun"
    )]
    DadUnavailable {
        address: IpAddr,
        interface: String,
        setting: String,
    },
    #[error(
        "IPv6 duplicate address detection for {address} on {interface} did not finish within \
         {seconds:.0}s, so the address was removed again; check the link (`ip addr show dev \
         {interface}`) and rerun"
    )]
    DadUnfinished {
        address: IpAddr,
        interface: String,
        seconds: f64,
    },
    #[error(
        "{address} is up on {interface}, but announcing it failed, so switches and clients may \
         keep sending to the old primary's MAC until their caches expire: {source}. Rerun \
         (hamn announces again when the address is already up) or run `{command}`"
    )]
    AnnounceFailed {
        address: IpAddr,
        interface: String,
        command: String,
        source: Box<SvcError>,
    },
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("cannot understand the output of `{command}`: {reason}")]
    Unparsable { command: String, reason: String },
    #[error("unknown [takeover] preset '{name}'; known presets: {known}")]
    UnknownPreset { name: String, known: String },
    #[error("[[takeover.service]] '{name}': {reason}")]
    BadService { name: String, reason: String },
    #[error(
        "service '{service}': {action} failed: {source}. Find out why (for a systemd unit: \
         `systemctl status UNIT`, `journalctl -u UNIT`), fix it, and rerun"
    )]
    Service {
        service: String,
        action: &'static str,
        source: Box<SvcError>,
    },
    #[error(
        "service '{service}' is not ready {waited:.1}s after its start: `{ready}` still \
         fails{output}. Find out why (for a systemd unit: `systemctl status UNIT`, \
         `journalctl -u UNIT`), fix it, and rerun"
    )]
    NotReady {
        service: String,
        waited: f64,
        ready: String,
        output: String,
    },
}

// ---------------------------------------------------------------------------------------
// Running commands

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_string()).collect()
}

fn command(argv: &[String], timeout: Duration) -> exec::Command {
    exec::Command::new(argv.iter().cloned())
        .timeout(timeout)
        .hint("install it, or correct the command in hamn.toml")
}

/// Run `argv` with a deadline. Returns whatever the exit status; errors only when the
/// program could not be run or did not finish in time.
fn run(argv: &[String], timeout: Duration) -> Result<Ran, SvcError> {
    Ok(command(argv, timeout).run()?)
}

fn run_ok(argv: &[String], timeout: Duration) -> Result<Ran, SvcError> {
    Ok(command(argv, timeout).run_ok()?)
}

// ---------------------------------------------------------------------------------------
// Service IP

/// `ip` answers from the kernel at once; anything slower is a hung system.
const IP_TIMEOUT: Duration = Duration::from_secs(10);
/// `arping -D -c 2 -w 3` ends by itself after 3 s; the margin covers a slow start.
const DAD_PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// `arping -U -c 3` sends for about 2 s.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(10);
/// The kernel's IPv6 DAD waits up to rtr_solicit_delay (1 s) before the first probe.
const DAD_START_DELAY: Duration = Duration::from_secs(2);
const DAD_POLL: Duration = Duration::from_millis(100);
/// Linux's IFNAMSIZ less the terminating NUL.
const MAX_IFNAME: usize = 15;

/// The address xCAT's clients use, with its prefix length and interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceIp {
    pub address: IpAddr,
    pub prefix: u8,
    /// A device (eth0), or a device with an IPv4 alias label (eth0:0) as xCAT's own HA
    /// documents configure it.
    pub interface: String,
}

/// What [`bring_up`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IpOutcome {
    Added,
    /// Already configured here (a rerun); not added again, but announced again, because
    /// the earlier run may have stopped between adding and announcing.
    AlreadyPresent,
}

impl ServiceIp {
    pub fn parse(cfg: &ServiceIpConfig) -> Result<Self, SvcError> {
        let bad = |reason: String| SvcError::BadAddress {
            address: cfg.address.clone(),
            reason,
        };
        let text = cfg.address.trim();
        let Some((addr, prefix)) = text.split_once('/') else {
            return Err(bad(
                "the prefix length is missing (a bare address says nothing about the subnet \
                 the clients are on)"
                    .into(),
            ));
        };
        let address: IpAddr = addr
            .parse()
            .map_err(|_| bad(format!("'{addr}' is not an IPv4 or IPv6 address")))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| bad(format!("prefix length '{prefix}' is not a number")))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        if prefix == 0 || prefix > max {
            return Err(bad(format!(
                "prefix length /{prefix} is out of range (1-{max} for {})",
                if address.is_ipv4() { "IPv4" } else { "IPv6" }
            )));
        }
        if let Some(kind) = unusable_kind(address) {
            return Err(bad(format!(
                "{address} is {kind} address, never a service address"
            )));
        }
        if let IpAddr::V4(v4) = address
            && prefix <= 30
        {
            let host_mask = u32::MAX >> prefix;
            let bits = u32::from(v4);
            let network = Ipv4Addr::from(bits & !host_mask);
            if bits & host_mask == 0 {
                return Err(bad(format!(
                    "{address} is the network address of {network}/{prefix}"
                )));
            }
            if bits & host_mask == host_mask {
                return Err(bad(format!(
                    "{address} is the broadcast address of {network}/{prefix}"
                )));
            }
        }
        check_interface(&cfg.interface, address)?;
        Ok(ServiceIp {
            address,
            prefix,
            interface: cfg.interface.clone(),
        })
    }

    /// The link device: the interface up to an alias label's ':'.
    pub fn device(&self) -> &str {
        self.interface
            .split(':')
            .next()
            .unwrap_or(self.interface.as_str())
    }

    fn label(&self) -> Option<&str> {
        self.interface
            .contains(':')
            .then_some(self.interface.as_str())
    }

    fn cidr(&self) -> String {
        format!("{}/{}", self.address, self.prefix)
    }
}

fn unusable_kind(address: IpAddr) -> Option<&'static str> {
    if address.is_unspecified() {
        return Some("the unspecified");
    }
    if address.is_loopback() {
        return Some("a loopback");
    }
    if address.is_multicast() {
        return Some("a multicast");
    }
    match address {
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast"),
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => Some("a link-local"),
        _ => None,
    }
}

fn check_interface(interface: &str, address: IpAddr) -> Result<(), SvcError> {
    let bad = |reason: &str| SvcError::BadInterface {
        interface: interface.to_string(),
        reason: reason.to_string(),
    };
    if interface.is_empty() {
        return Err(bad("it is empty"));
    }
    if interface.len() > MAX_IFNAME {
        return Err(bad("it is longer than the kernel's 15 characters"));
    }
    if interface
        .chars()
        .any(|c| c == '/' || c.is_whitespace() || c.is_control())
        || interface == "."
        || interface == ".."
    {
        return Err(bad("it is not a valid interface name"));
    }
    if let Some((device, label)) = interface.split_once(':') {
        if device.is_empty() || label.is_empty() || label.contains(':') {
            return Err(bad("an alias is written DEVICE:LABEL, e.g. eth0:0"));
        }
        if address.is_ipv6() {
            return Err(bad(
                "alias labels (eth0:0) exist for IPv4 only; name the device itself",
            ));
        }
    }
    Ok(())
}

fn dad_probe_argv(ip: &ServiceIp) -> Vec<String> {
    let addr = ip.address.to_string();
    argv(&[
        "arping",
        "-D",
        "-c",
        "2",
        "-w",
        "3",
        "-I",
        ip.device(),
        &addr,
    ])
}

fn add_argv(ip: &ServiceIp) -> Vec<String> {
    let mut v = argv(&["ip", "addr", "add", &ip.cidr(), "dev", ip.device()]);
    if let Some(label) = ip.label() {
        v.extend(argv(&["label", label]));
    }
    v
}

fn del_argv(ip: &ServiceIp, prefix: u8) -> Vec<String> {
    let cidr = format!("{}/{prefix}", ip.address);
    argv(&["ip", "addr", "del", &cidr, "dev", ip.device()])
}

/// An unsolicited ARP request (-U) rather than a reply (-A): every ARP implementation
/// updates an existing cache entry from a request whose sender and target are both the
/// address, and switches learn the MAC from either.
fn announce_argv(ip: &ServiceIp) -> Vec<String> {
    let addr = ip.address.to_string();
    argv(&["arping", "-U", "-c", "3", "-I", ip.device(), &addr])
}

/// The exact commands [`bring_up`] runs to change or probe the network, for --dry-run.
/// For IPv6 the duplicate check is the kernel's, part of `ip addr add`.
pub fn ip_plan(ip: &ServiceIp) -> Vec<String> {
    match ip.address {
        IpAddr::V4(_) => vec![
            exec::display(&dad_probe_argv(ip)),
            exec::display(&add_argv(ip)),
            exec::display(&announce_argv(ip)),
        ],
        IpAddr::V6(_) => vec![exec::display(&add_argv(ip))],
    }
}

/// One interface of `ip -j addr show`.
#[derive(Debug, Deserialize)]
struct IpLink {
    #[serde(default)]
    ifname: String,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    addr_info: Vec<IpAddrInfo>,
}

#[derive(Debug, Deserialize)]
struct IpAddrInfo {
    local: Option<String>,
    prefixlen: Option<u8>,
    #[serde(default)]
    tentative: bool,
    #[serde(default)]
    dadfailed: bool,
}

impl IpAddrInfo {
    fn is(&self, address: IpAddr) -> bool {
        self.local
            .as_deref()
            .and_then(|l| l.parse::<IpAddr>().ok())
            .is_some_and(|l| l == address)
    }
}

/// The service address as configured on its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    prefix: u8,
    tentative: bool,
    dadfailed: bool,
}

/// What the node's interfaces say about the service address.
#[derive(Debug, PartialEq, Eq)]
struct LinkView {
    /// On the configured device.
    here: Option<Held>,
    /// Another interface of this node that has it, with its prefix.
    elsewhere: Option<(String, u8)>,
    /// Why the device cannot be used to check or serve the address.
    problem: Option<String>,
}

const IP_ADDR_SHOW: &[&str] = &["ip", "-j", "addr", "show"];

fn parse_links(json: &str) -> Result<Vec<IpLink>, SvcError> {
    serde_json::from_str(json.trim()).map_err(|e| SvcError::Unparsable {
        command: exec::display(&argv(IP_ADDR_SHOW)),
        reason: format!("{e} (JSON output needs iproute2 4.13 or later)"),
    })
}

fn read_links() -> Result<Vec<IpLink>, SvcError> {
    parse_links(&run_ok(&argv(IP_ADDR_SHOW), IP_TIMEOUT)?.stdout)
}

fn inspect(links: &[IpLink], ip: &ServiceIp) -> Result<LinkView, SvcError> {
    let device = ip.device();
    let held = |info: &IpAddrInfo| -> Result<u8, SvcError> {
        info.prefixlen.ok_or_else(|| SvcError::Unparsable {
            command: exec::display(&argv(IP_ADDR_SHOW)),
            reason: format!("no prefixlen for {}", ip.address),
        })
    };
    let mut elsewhere = None;
    for link in links.iter().filter(|l| l.ifname != device) {
        if let Some(info) = link.addr_info.iter().find(|a| a.is(ip.address)) {
            elsewhere = Some((link.ifname.clone(), held(info)?));
        }
    }
    let link = links
        .iter()
        .find(|l| l.ifname == device)
        .ok_or_else(|| SvcError::NoInterface {
            interface: device.to_string(),
        })?;
    let here = match link.addr_info.iter().find(|a| a.is(ip.address)) {
        Some(info) => Some(Held {
            prefix: held(info)?,
            tentative: info.tentative,
            dadfailed: info.dadfailed,
        }),
        None => None,
    };
    let has = |flag: &str| link.flags.iter().any(|f| f == flag);
    let problem = if !has("UP") {
        Some("is administratively down".to_string())
    } else if has("NO-CARRIER") || !has("LOWER_UP") {
        // arping on a link without carrier hears nobody and would call the address free.
        Some("has no carrier (cable, switch port, or the other end is down)".to_string())
    } else {
        None
    };
    Ok(LinkView {
        here,
        elsewhere,
        problem,
    })
}

/// Is the address configured on the interface now? (An IPv6 address whose duplicate
/// address detection failed is configured but unusable: not present.)
pub fn ip_present(ip: &ServiceIp) -> Result<bool, SvcError> {
    let view = inspect(&read_links()?, ip)?;
    Ok(view.here.is_some_and(|h| !h.dadfailed))
}

/// The MAC in an iputils arping reply line: "Unicast reply from 10.0.0.2 [C6:89:..]  0.5ms".
fn reply_mac(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .filter(|l| l.contains("reply from"))
        .find_map(|l| {
            let inside = l.split_once('[')?.1.split_once(']')?.0;
            let octets: Vec<&str> = inside.split(':').collect();
            let is_mac = octets.len() == 6
                && octets
                    .iter()
                    .all(|o| o.len() == 2 && o.chars().all(|c| c.is_ascii_hexdigit()));
            is_mac.then(|| inside.to_ascii_lowercase())
        })
}

fn link_usable(ip: &ServiceIp, view: &LinkView) -> Result<(), SvcError> {
    match &view.problem {
        Some(state) => Err(SvcError::LinkDown {
            interface: ip.device().to_string(),
            state: state.clone(),
        }),
        None => Ok(()),
    }
}

/// Duplicate address detection with arping (IPv4): exit 0 means nobody answered, 1 that
/// somebody did.
fn probe_v4(ip: &ServiceIp) -> Result<Option<String>, SvcError> {
    let ran = run(&dad_probe_argv(ip), DAD_PROBE_TIMEOUT)?;
    match ran.exit() {
        Some(0) => Ok(None),
        Some(1) => Ok(Some(reply_mac(&ran.stdout).unwrap_or_else(|| {
            "a host whose MAC arping did not print".to_string()
        }))),
        _ => Err(ran.failure().into()),
    }
}

/// Is anybody else answering for the address on the interface's link? Returns the MAC of
/// who answered. IPv4 only: for IPv6 this returns `None` and the kernel's duplicate address
/// detection checks the address when [`bring_up`] adds it (see the module documentation).
pub fn someone_else_answers(ip: &ServiceIp) -> Result<Option<String>, SvcError> {
    let view = inspect(&read_links()?, ip)?;
    link_usable(ip, &view)?;
    match ip.address {
        IpAddr::V4(_) => probe_v4(ip),
        IpAddr::V6(_) => {
            info!(address = %ip.address, "IPv6: checked by the kernel's DAD when added");
            Ok(None)
        }
    }
}

fn who_v6(ip: &ServiceIp) -> String {
    format!(
        "another node (the kernel's IPv6 duplicate address detection failed; \
         `ip -6 neigh show {} dev {}` may show its MAC)",
        ip.address,
        ip.device()
    )
}

/// Bring the service address up: refuse if someone else answers for it, add it, announce
/// it. Idempotent: an address already here is not added again.
pub fn bring_up(ip: &ServiceIp, fenced: &Fenced) -> Result<IpOutcome, SvcError> {
    let _span =
        info_span!("service-ip-up", address = %ip.address, interface = %ip.interface).entered();
    info!(fenced = fenced.node(), "bringing up the service address");
    let view = inspect(&read_links()?, ip)?;
    if let Some((found, prefix)) = view.elsewhere.clone() {
        return Err(SvcError::OnOtherInterface {
            address: ip.address,
            prefix,
            interface: ip.device().to_string(),
            found,
        });
    }
    if let Some(h) = view.here
        && h.prefix != ip.prefix
    {
        return Err(SvcError::PrefixMismatch {
            address: ip.address,
            interface: ip.device().to_string(),
            found: h.prefix,
            wanted: ip.prefix,
        });
    }
    link_usable(ip, &view)?;
    match ip.address {
        IpAddr::V4(_) => bring_up_v4(ip, &view),
        IpAddr::V6(_) => bring_up_v6(ip, &view),
    }
}

fn bring_up_v4(ip: &ServiceIp, view: &LinkView) -> Result<IpOutcome, SvcError> {
    // Probed even when the address is already here: a rerun must notice a peer that came
    // back with it.
    if let Some(mac) = probe_v4(ip)? {
        warn!(%mac, "someone else answers for the service address");
        return Err(SvcError::AddressInUse {
            address: ip.address,
            interface: ip.device().to_string(),
            who: format!("MAC {mac}"),
        });
    }
    let outcome = if view.here.is_some() {
        info!("already present");
        IpOutcome::AlreadyPresent
    } else {
        run_ok(&add_argv(ip), IP_TIMEOUT)?;
        info!("added");
        IpOutcome::Added
    };
    let announce = announce_argv(ip);
    run_ok(&announce, ANNOUNCE_TIMEOUT).map_err(|source| SvcError::AnnounceFailed {
        address: ip.address,
        interface: ip.device().to_string(),
        command: exec::display(&announce),
        source: Box::new(source),
    })?;
    info!("announced with gratuitous ARP");
    Ok(outcome)
}

fn read_sysctl(path: &str) -> Result<i64, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {path}: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("{path}: {e}"))
}

/// How long the kernel's DAD may take on the device, or why it will not run at all.
/// Read through /proc/sys, which shows the calling thread's network namespace.
fn dad_budget(ip: &ServiceIp) -> Result<Duration, SvcError> {
    let dev = ip.device();
    let unavailable = |setting: String| SvcError::DadUnavailable {
        address: ip.address,
        interface: dev.to_string(),
        setting,
    };
    let conf = |name: &str, key: &str| format!("/proc/sys/net/ipv6/conf/{name}/{key}");
    // The kernel uses the larger of "all" and the device's accept_dad.
    let accept = read_sysctl(&conf(dev, "accept_dad"))
        .map_err(unavailable)?
        .max(read_sysctl(&conf("all", "accept_dad")).unwrap_or(0));
    if accept < 1 {
        return Err(unavailable(format!("net.ipv6.conf.{dev}.accept_dad is 0")));
    }
    let transmits = read_sysctl(&conf(dev, "dad_transmits")).map_err(unavailable)?;
    if transmits < 1 {
        return Err(unavailable(format!(
            "net.ipv6.conf.{dev}.dad_transmits is {transmits}"
        )));
    }
    let retrans_ms = read_sysctl(&format!("/proc/sys/net/ipv6/neigh/{dev}/retrans_time_ms"))
        .unwrap_or(1000)
        .max(1);
    let per_probe = Duration::from_millis(u64::try_from(retrans_ms).unwrap_or(1000));
    Ok(per_probe * u32::try_from(transmits).unwrap_or(1) + DAD_START_DELAY)
}

fn bring_up_v6(ip: &ServiceIp, view: &LinkView) -> Result<IpOutcome, SvcError> {
    let budget = dad_budget(ip)?;
    let refuse = |prefix: u8| -> SvcError {
        warn!("IPv6 duplicate address detection failed");
        if let Err(e) = run_ok(&del_argv(ip, prefix), IP_TIMEOUT) {
            warn!(error = %e, "could not remove the duplicate address");
        }
        SvcError::AddressInUse {
            address: ip.address,
            interface: ip.device().to_string(),
            who: who_v6(ip),
        }
    };
    let outcome = match view.here {
        Some(h) if h.dadfailed => return Err(refuse(h.prefix)),
        Some(_) => IpOutcome::AlreadyPresent,
        None => {
            run_ok(&add_argv(ip), IP_TIMEOUT)?;
            IpOutcome::Added
        }
    };
    let deadline = Instant::now() + budget;
    loop {
        let held = inspect(&read_links()?, ip)?.here;
        match held {
            None => {
                return Err(SvcError::Unparsable {
                    command: exec::display(&argv(IP_ADDR_SHOW)),
                    reason: format!("{} vanished from {}", ip.address, ip.device()),
                });
            }
            Some(h) if h.dadfailed => return Err(refuse(h.prefix)),
            Some(h) if !h.tentative => break,
            Some(h) if Instant::now() >= deadline => {
                let _ = run_ok(&del_argv(ip, h.prefix), IP_TIMEOUT);
                return Err(SvcError::DadUnfinished {
                    address: ip.address,
                    interface: ip.device().to_string(),
                    seconds: budget.as_secs_f64(),
                });
            }
            Some(_) => std::thread::sleep(DAD_POLL),
        }
    }
    info!(
        ?outcome,
        "IPv6 address up, duplicate address detection passed"
    );
    Ok(outcome)
}

/// Remove the service address from its interface (giveback). Absent: nothing to do.
pub fn take_down(ip: &ServiceIp) -> Result<(), SvcError> {
    let _span =
        info_span!("service-ip-down", address = %ip.address, interface = %ip.interface).entered();
    match inspect(&read_links()?, ip)?.here {
        None => {
            info!("not present; nothing to do");
            Ok(())
        }
        // Removed with the prefix it has, which may differ from the configured one: whoever
        // set it, the address must not stay on a node that gives back.
        Some(h) => {
            run_ok(&del_argv(ip, h.prefix), IP_TIMEOUT)?;
            info!("removed");
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------
// Services

/// How often `ready` is polled.
const READY_POLL: Duration = Duration::from_millis(500);
/// The least time a readiness probe gets, even when the start command used up the budget.
const MIN_PROBE: Duration = Duration::from_secs(2);
/// The idempotence check before starting: a probe that hangs counts as "not ready".
const FIRST_PROBE: Duration = Duration::from_secs(10);
/// hamn.toml's documented default for `timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A service to start on takeover and stop on giveback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    pub name: String,
    /// May be empty when `ready` alone decides (a pure wait).
    pub start: Vec<String>,
    /// Exits 0 once the service is ready; empty: `start`'s exit status decides.
    pub ready: Vec<String>,
    /// Empty: nothing to undo on giveback.
    pub stop: Vec<String>,
    /// For the start command and readiness together.
    pub timeout: Duration,
}

/// What [`start`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartOutcome {
    /// `ready` passed before anything was run (a rerun).
    AlreadyReady,
    /// Started; ready after this long.
    Started { waited: Duration },
}

/// One entry of a preset.
struct PresetEntry {
    name: &'static str,
    start: &'static [&'static str],
    ready: &'static [&'static str],
    stop: &'static [&'static str],
    timeout_secs: u64,
}

/// xCAT's takeover, from "Setup HA Mgmt Node With Shared Data", section "Failover / Bring
/// up the New Primary Management Node" (xcat-core docs/source/advanced/hamn), and the
/// `activate-mn` script xCAT ships (xCAT-server/share/xcat/hamn): the database, xcatd,
/// the daemons, then `makedns -n`, `makedhcp -n`, `makedhcp -a`, `makeconservercf`, then
/// the NFS exports. Each regeneration runs right after the daemon it configures, so that a
/// failure names the service it belongs to. `makedhcp -a` talks to the running dhcpd
/// (OMAPI), so dhcpd must be up first.
///
/// The database is PostgreSQL, activate-mn's default; sites on MariaDB/MySQL (or with
/// other unit names, e.g. Debian's isc-dhcp-server) give a [[takeover.service]] entry of
/// the same name ("database", "dhcpd", ...), which replaces the preset's in place.
///
/// xCAT's own commands are named by their path: they live in /opt/xcat, which is on an
/// admin's PATH through /etc/profile.d but not on a cluster manager's.
///
/// Never `xcatconfig -c` or `xcatconfig -d`: they regenerate xCAT's CA and credentials and
/// re-initialise its database, destroying the very data the standby takes over and every
/// node's trust in this management node. `services` refuses them in hamn.toml too.
const XCAT_PRESET: &[PresetEntry] = &[
    PresetEntry {
        name: "database",
        start: &["systemctl", "start", "postgresql"],
        ready: &["systemctl", "is-active", "--quiet", "postgresql"],
        stop: &["systemctl", "stop", "postgresql"],
        timeout_secs: 120,
    },
    // lsxcatd -a is answered by the running xcatd over its socket with the database behind
    // it: stronger than "the unit is active".
    PresetEntry {
        name: "xcatd",
        start: &["systemctl", "start", "xcatd"],
        ready: &["/opt/xcat/bin/lsxcatd", "-a"],
        stop: &["systemctl", "stop", "xcatd"],
        timeout_secs: 120,
    },
    PresetEntry {
        name: "named",
        start: &["systemctl", "start", "named"],
        ready: &["systemctl", "is-active", "--quiet", "named"],
        stop: &["systemctl", "stop", "named"],
        timeout_secs: 60,
    },
    PresetEntry {
        name: "makedns",
        start: &["/opt/xcat/sbin/makedns", "-n"],
        ready: &[],
        stop: &[],
        timeout_secs: 600,
    },
    PresetEntry {
        name: "dhcpd",
        start: &["systemctl", "start", "dhcpd"],
        ready: &["systemctl", "is-active", "--quiet", "dhcpd"],
        stop: &["systemctl", "stop", "dhcpd"],
        timeout_secs: 60,
    },
    PresetEntry {
        name: "makedhcp-n",
        start: &["/opt/xcat/sbin/makedhcp", "-n"],
        ready: &[],
        stop: &[],
        timeout_secs: 600,
    },
    PresetEntry {
        name: "makedhcp-a",
        start: &["/opt/xcat/sbin/makedhcp", "-a"],
        ready: &[],
        stop: &[],
        timeout_secs: 600,
    },
    PresetEntry {
        name: "conserver",
        start: &["systemctl", "start", "conserver"],
        ready: &["systemctl", "is-active", "--quiet", "conserver"],
        stop: &["systemctl", "stop", "conserver"],
        timeout_secs: 60,
    },
    PresetEntry {
        name: "makeconservercf",
        start: &["/opt/xcat/sbin/makeconservercf"],
        ready: &[],
        stop: &[],
        timeout_secs: 600,
    },
    PresetEntry {
        name: "nfs-server",
        start: &["systemctl", "start", "nfs-server"],
        ready: &["systemctl", "is-active", "--quiet", "nfs-server"],
        stop: &["systemctl", "stop", "nfs-server"],
        timeout_secs: 60,
    },
    // Giveback unexports first (services stop in reverse order): xCAT's documented
    // `exportfs -ua` before the shared filesystems can be unmounted.
    PresetEntry {
        name: "exportfs",
        start: &["exportfs", "-ra"],
        ready: &[],
        stop: &["exportfs", "-ua"],
        timeout_secs: 60,
    },
];

const PRESETS: &[(&str, &[PresetEntry])] = &[("xcat", XCAT_PRESET), ("none", &[])];

/// xcatconfig's options that regenerate credentials (-c, --credentials) or the database
/// (-d, --database), also inside bundled short options such as -cd.
fn destroys_xcat_state(argv: &[String]) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return false;
    };
    program.rsplit('/').next() == Some("xcatconfig")
        && args.iter().any(|a| {
            a == "--credentials"
                || a == "--database"
                || (a.starts_with('-')
                    && !a.starts_with("--")
                    && a.chars().any(|c| c == 'c' || c == 'd'))
        })
}

impl Service {
    fn from_preset(p: &PresetEntry) -> Self {
        let owned = |v: &[&str]| v.iter().map(|s| (*s).to_string()).collect();
        Service {
            name: p.name.to_string(),
            start: owned(p.start),
            ready: owned(p.ready),
            stop: owned(p.stop),
            timeout: Duration::from_secs(p.timeout_secs),
        }
    }

    fn from_config(c: &ServiceConfig) -> Result<Self, SvcError> {
        let bad = |reason: &str| SvcError::BadService {
            name: c.name.clone(),
            reason: reason.to_string(),
        };
        if c.name.trim().is_empty() {
            return Err(bad("the name is empty"));
        }
        if c.start.is_empty() && c.ready.is_empty() {
            return Err(bad(
                "needs a start command, a ready command, or both (program and arguments, \
                 e.g. [\"systemctl\", \"start\", \"xcatd\"])",
            ));
        }
        for cmd in [&c.start, &c.ready, &c.stop] {
            if cmd.first().is_some_and(|p| p.trim().is_empty()) {
                return Err(bad("a command's program name is empty"));
            }
            if destroys_xcat_state(cmd) {
                return Err(bad(
                    "xcatconfig -c/-d regenerate xCAT's credentials and database, destroying \
                     what the standby takes over; remove it",
                ));
            }
        }
        if c.timeout == Some(0) {
            return Err(bad(
                "timeout = 0 leaves no time to become ready; give seconds, e.g. 60",
            ));
        }
        Ok(Service {
            name: c.name.clone(),
            start: c.start.clone(),
            ready: c.ready.clone(),
            stop: c.stop.clone(),
            timeout: c.timeout.map_or(DEFAULT_TIMEOUT, Duration::from_secs),
        })
    }
}

/// The services to run, in order: the preset's (if any) then the config's; a config entry
/// with the same name as a preset entry replaces it in place. Giveback stops them in
/// reverse order.
pub fn services(cfg: &TakeoverConfig) -> Result<Vec<Service>, SvcError> {
    let mut out: Vec<Service> = match cfg.preset.as_deref() {
        None => Vec::new(),
        Some(name) => PRESETS
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| SvcError::UnknownPreset {
                name: name.to_string(),
                known: PRESETS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?
            .1
            .iter()
            .map(Service::from_preset)
            .collect(),
    };
    let mut seen = BTreeSet::new();
    for c in &cfg.services {
        let s = Service::from_config(c)?;
        if !seen.insert(s.name.clone()) {
            return Err(SvcError::BadService {
                name: s.name,
                reason: "defined twice; each service name must be unique".into(),
            });
        }
        match out.iter_mut().find(|p| p.name == s.name) {
            Some(slot) => *slot = s,
            None => out.push(s),
        }
    }
    Ok(out)
}

fn service_err(s: &Service, action: &'static str, source: SvcError) -> SvcError {
    SvcError::Service {
        service: s.name.clone(),
        action,
        source: Box::new(source),
    }
}

/// One readiness probe: Ok(Ok(())) when ready, Ok(Err(output)) when not (yet). A probe
/// that cannot run at all (missing program) is an error at once rather than a minute of
/// polling.
fn probe(s: &Service, timeout: Duration) -> Result<Result<(), String>, SvcError> {
    match run(&s.ready, timeout) {
        Ok(ran) if ran.success() => Ok(Ok(())),
        Ok(ran) => Ok(Err(ran.output())),
        Err(SvcError::Exec(e @ ExecError::Timeout { .. })) => Ok(Err(e.to_string())),
        Err(e) => Err(service_err(s, "the readiness check", e)),
    }
}

/// Does `ready` pass now? A service without a ready command is never known to be ready.
pub fn is_ready(s: &Service) -> Result<bool, SvcError> {
    if s.ready.is_empty() {
        return Ok(false);
    }
    Ok(probe(s, s.timeout.min(FIRST_PROBE))?.is_ok())
}

/// Start one service: if `ready` already passes, do nothing (a rerun); else run `start`,
/// then poll `ready` every 0.5 s until it passes or `timeout` runs out. Without a ready
/// command, start's exit status decides.
pub fn start(s: &Service, fenced: &Fenced) -> Result<StartOutcome, SvcError> {
    let _span = info_span!("service-start", service = %s.name).entered();
    if is_ready(s)? {
        info!("already ready; nothing to do");
        return Ok(StartOutcome::AlreadyReady);
    }
    info!(fenced = fenced.node(), "starting");
    let started = Instant::now();
    let deadline = started + s.timeout;
    if !s.start.is_empty() {
        run_ok(&s.start, s.timeout).map_err(|e| service_err(s, "start", e))?;
    }
    if s.ready.is_empty() {
        return Ok(StartOutcome::Started {
            waited: started.elapsed(),
        });
    }
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let last = match probe(s, remaining.max(MIN_PROBE))? {
            Ok(()) => {
                let waited = started.elapsed();
                info!(waited_s = waited.as_secs_f64(), "ready");
                return Ok(StartOutcome::Started { waited });
            }
            Err(output) => output,
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(SvcError::NotReady {
                service: s.name.clone(),
                waited: started.elapsed().as_secs_f64(),
                ready: exec::display(&s.ready),
                output: exec::tail(&last),
            });
        }
        std::thread::sleep(READY_POLL.min(remaining));
    }
}

/// Stop one service (giveback). No stop command: nothing to do.
pub fn stop(s: &Service) -> Result<(), SvcError> {
    let _span = info_span!("service-stop", service = %s.name).entered();
    if s.stop.is_empty() {
        return Ok(());
    }
    run_ok(&s.stop, s.timeout).map_err(|e| service_err(s, "stop", e))?;
    info!("stopped");
    Ok(())
}

/// The exact commands [`start`] runs, for --dry-run: the start command, then the
/// readiness check it polls (also run first: if it passes, nothing else is).
pub fn service_plan(s: &Service) -> Vec<String> {
    [&s.start, &s.ready]
        .into_iter()
        .filter(|c| !c.is_empty())
        .map(|c| exec::display(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(address: &str, interface: &str) -> Result<ServiceIp, SvcError> {
        ServiceIp::parse(&ServiceIpConfig {
            address: address.into(),
            interface: interface.into(),
        })
    }

    #[test]
    fn addresses_parse_v4_and_v6() {
        let ip = sip("172.20.0.1/16", "eth0").expect("v4");
        assert_eq!(ip.address, "172.20.0.1".parse::<IpAddr>().expect("ip"));
        assert_eq!((ip.prefix, ip.device()), (16, "eth0"));
        let ip = sip(" fd00:20::1/64 ", "bond0").expect("v6");
        assert!(ip.address.is_ipv6());
        assert_eq!(ip.prefix, 64);
        let ip = sip("10.0.0.7/32", "eth1:2").expect("alias");
        assert_eq!((ip.device(), ip.label()), ("eth1", Some("eth1:2")));
        assert!(
            sip("192.168.1.254/31", "eth0").is_ok(),
            "/31 has no broadcast"
        );
    }

    #[test]
    fn bad_addresses_say_why_and_how_to_write_them() {
        for (addr, why) in [
            ("172.20.0.1", "prefix length is missing"),
            ("172.20.0.1/", "is not a number"),
            ("172.20.0.1/x", "is not a number"),
            ("172.20.0.1/33", "/33 is out of range (1-32 for IPv4)"),
            ("172.20.0.1/0", "out of range"),
            ("fd00::1/129", "(1-128 for IPv6)"),
            ("172.20.0.300/16", "not an IPv4 or IPv6 address"),
            ("127.0.0.1/8", "loopback"),
            ("0.0.0.0/8", "unspecified"),
            ("224.0.0.1/4", "multicast"),
            ("fe80::1/64", "link-local"),
            ("172.20.0.0/16", "network address of 172.20.0.0/16"),
            ("172.20.255.255/16", "broadcast address of 172.20.0.0/16"),
        ] {
            let e = sip(addr, "eth0").expect_err(addr).to_string();
            assert!(e.contains(why), "{addr}: {e}");
            assert!(e.contains("ADDRESS/PREFIX"), "{e}");
        }
    }

    #[test]
    fn bad_interfaces_are_refused() {
        for (ifname, why) in [
            ("", "empty"),
            ("averyveryverylongname", "15 characters"),
            ("eth 0", "not a valid"),
            ("eth0/1", "not a valid"),
            (":0", "DEVICE:LABEL"),
            ("eth0:", "DEVICE:LABEL"),
        ] {
            let e = sip("10.1.0.1/24", ifname).expect_err(ifname).to_string();
            assert!(e.contains(why), "{ifname:?}: {e}");
        }
        let e = sip("fd00::1/64", "eth0:1").unwrap_err().to_string();
        assert!(e.contains("IPv4 only"), "{e}");
    }

    #[test]
    fn ip_plan_lists_the_exact_commands() {
        let ip = sip("172.20.0.1/16", "eth0").expect("v4");
        assert_eq!(
            ip_plan(&ip),
            [
                "arping -D -c 2 -w 3 -I eth0 172.20.0.1",
                "ip addr add 172.20.0.1/16 dev eth0",
                "arping -U -c 3 -I eth0 172.20.0.1",
            ]
        );
        let ip = sip("172.20.0.1/16", "eth0:0").expect("alias");
        assert_eq!(
            ip_plan(&ip)[1],
            "ip addr add 172.20.0.1/16 dev eth0 label eth0:0"
        );
        let ip = sip("fd00::1/64", "eth0").expect("v6");
        assert_eq!(ip_plan(&ip), ["ip addr add fd00::1/64 dev eth0"]);
    }

    // Recorded from `ip -j addr show` in network namespaces (iproute2 6.1).
    const LINKS: &str = r#"[
      {"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"addr_info":[
        {"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo"}]},
      {"ifindex":2,"link_index":2,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],
       "operstate":"UP","address":"c6:89:80:4f:31:cc","addr_info":[
        {"family":"inet","local":"10.77.0.2","prefixlen":24,"scope":"global","label":"eth0"},
        {"family":"inet","local":"172.20.0.1","prefixlen":16,"scope":"global","label":"eth0:0"},
        {"family":"inet6","local":"fd00:77::2","prefixlen":64,"scope":"global","dadfailed":true,"tentative":true},
        {"family":"inet6","local":"fd00:77::3","prefixlen":64,"scope":"global","tentative":true},
        {"family":"inet6","local":"fe80::c489:80ff:fe4f:31cc","prefixlen":64,"scope":"link"}]},
      {"ifindex":3,"ifname":"eth1","flags":["NO-CARRIER","BROADCAST","MULTICAST","UP"],
       "operstate":"DOWN","addr_info":[]},
      {"ifindex":4,"ifname":"eth2","flags":["BROADCAST","MULTICAST"],"operstate":"DOWN","addr_info":[
        {"family":"inet","local":"10.9.0.5","prefixlen":24}]}
    ]"#;

    #[test]
    fn ip_json_is_read_into_what_matters() {
        let links = parse_links(LINKS).expect("parses");
        let held = |prefix, tentative, dadfailed| Held {
            prefix,
            tentative,
            dadfailed,
        };
        let v = inspect(&links, &sip("172.20.0.1/16", "eth0").expect("ip")).expect("eth0");
        assert_eq!(
            v,
            LinkView {
                here: Some(held(16, false, false)),
                elsewhere: None,
                problem: None
            }
        );
        let v = inspect(&links, &sip("172.20.0.1/16", "eth0:0").expect("ip")).expect("alias");
        assert_eq!(v.here, Some(held(16, false, false)));
        let v = inspect(&links, &sip("fd00:77:0::2/64", "eth0").expect("ip")).expect("v6");
        assert_eq!(v.here, Some(held(64, true, true)));
        let v = inspect(&links, &sip("fd00:77::3/64", "eth0").expect("ip")).expect("v6");
        assert_eq!(v.here, Some(held(64, true, false)));

        let v = inspect(&links, &sip("10.9.0.5/24", "eth1").expect("ip")).expect("eth1");
        assert_eq!(v.here, None);
        assert_eq!(v.elsewhere, Some(("eth2".to_string(), 24)));
        assert!(v.problem.expect("no carrier").contains("no carrier"));
        let v = inspect(&links, &sip("10.9.0.5/24", "eth2").expect("ip")).expect("eth2");
        assert!(v.problem.expect("down").contains("administratively down"));

        let e = inspect(&links, &sip("10.9.0.5/24", "eth9").expect("ip")).unwrap_err();
        assert!(matches!(e, SvcError::NoInterface { .. }), "{e}");
        assert!(e.to_string().contains("eth9"), "{e}");
        assert!(parse_links("Option \"-j\" is unknown").is_err());
    }

    #[test]
    fn the_mac_of_an_arping_reply_is_found() {
        let out = "ARPING 10.77.0.2 from 0.0.0.0 va16091\n\
                   Unicast reply from 10.77.0.2 [C6:89:80:4F:31:CC]  0.531ms\n\
                   Sent 1 probes (1 broadcast(s))\nReceived 1 response(s)\n";
        assert_eq!(reply_mac(out).as_deref(), Some("c6:89:80:4f:31:cc"));
        assert_eq!(reply_mac("Sent 2 probes\nReceived 0 response(s)\n"), None);
        assert_eq!(reply_mac("Unicast reply from 10.0.0.1 [junk]"), None);
    }

    #[test]
    fn error_messages_name_the_next_step() {
        let e = SvcError::AddressInUse {
            address: "172.20.0.1".parse().expect("ip"),
            interface: "eth0".into(),
            who: "MAC c6:89:80:4f:31:cc".into(),
        }
        .to_string();
        assert!(e.contains("172.20.0.1") && e.contains("eth0"), "{e}");
        assert!(
            e.contains("c6:89:80:4f:31:cc") && e.contains("old primary"),
            "{e}"
        );
    }

    fn takeover(preset: Option<&str>, services: Vec<ServiceConfig>) -> TakeoverConfig {
        TakeoverConfig {
            preset: preset.map(str::to_string),
            services,
            ..TakeoverConfig::default()
        }
    }

    fn svc(name: &str, start: &[&str]) -> ServiceConfig {
        ServiceConfig {
            name: name.into(),
            start: argv(start),
            ready: vec![],
            stop: vec![],
            timeout: None,
        }
    }

    fn names(s: &[Service]) -> Vec<&str> {
        s.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn the_xcat_preset_follows_the_documented_order() {
        let s = services(&takeover(Some("xcat"), vec![])).expect("preset");
        assert_eq!(
            names(&s),
            [
                "database",
                "xcatd",
                "named",
                "makedns",
                "dhcpd",
                "makedhcp-n",
                "makedhcp-a",
                "conserver",
                "makeconservercf",
                "nfs-server",
                "exportfs",
            ]
        );
        assert_eq!(s[0].start, argv(&["systemctl", "start", "postgresql"]));
        assert_eq!(s[1].ready, argv(&["/opt/xcat/bin/lsxcatd", "-a"]));
        assert_eq!(s[3].start, argv(&["/opt/xcat/sbin/makedns", "-n"]));
        assert_eq!(s[10].stop, argv(&["exportfs", "-ua"]));
        assert!(s.iter().all(|s| !s.start.is_empty()));
    }

    #[test]
    fn the_xcat_preset_never_runs_xcatconfig() {
        for (_, preset) in PRESETS {
            for p in preset.iter() {
                for cmd in [p.start, p.ready, p.stop] {
                    assert!(
                        !cmd.iter().any(|a| a.contains("xcatconfig")),
                        "{}: {cmd:?}",
                        p.name
                    );
                }
            }
        }
        assert!(destroys_xcat_state(&argv(&["xcatconfig", "-c"])));
        assert!(destroys_xcat_state(&argv(&[
            "/opt/xcat/sbin/xcatconfig",
            "-d"
        ])));
        assert!(destroys_xcat_state(&argv(&["xcatconfig", "-cd"])));
        assert!(destroys_xcat_state(&argv(&["xcatconfig", "--credentials"])));
        assert!(!destroys_xcat_state(&argv(&["xcatconfig", "-t"])));
        let e = services(&takeover(None, vec![svc("creds", &["xcatconfig", "-c"])]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'creds'") && e.contains("credentials"), "{e}");
    }

    #[test]
    fn a_config_entry_replaces_the_preset_entry_of_its_name_in_place() {
        let mut db = svc("database", &["systemctl", "start", "mariadb"]);
        db.ready = argv(&["systemctl", "is-active", "--quiet", "mariadb"]);
        db.timeout = Some(300);
        let extra = svc("httpd", &["systemctl", "start", "httpd"]);
        let s = services(&takeover(Some("xcat"), vec![extra, db])).expect("services");
        assert_eq!(s.len(), XCAT_PRESET.len() + 1);
        assert_eq!(s[0].name, "database");
        assert_eq!(s[0].start, argv(&["systemctl", "start", "mariadb"]));
        assert_eq!(
            s[0].stop,
            Vec::<String>::new(),
            "replaced whole, not merged"
        );
        assert_eq!(s[0].timeout, Duration::from_secs(300));
        assert_eq!(s.last().map(|s| s.name.as_str()), Some("httpd"));
        assert_eq!(s.last().map(|s| s.timeout), Some(DEFAULT_TIMEOUT));
    }

    #[test]
    fn presets_none_and_absent_run_only_the_config() {
        let only = vec![svc("a", &["true"]), svc("b", &["true"])];
        for preset in [None, Some("none")] {
            let s = services(&takeover(preset, only.clone())).expect("services");
            assert_eq!(names(&s), ["a", "b"]);
        }
    }

    #[test]
    fn bad_service_configurations_are_refused() {
        let e = services(&takeover(Some("xCAT2"), vec![]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'xCAT2'") && e.contains("xcat, none"), "{e}");
        let dup = vec![svc("a", &["true"]), svc("a", &["false"])];
        let e = services(&takeover(None, dup)).unwrap_err().to_string();
        assert!(e.contains("defined twice"), "{e}");
        let e = services(&takeover(None, vec![svc("nothing", &[])]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'nothing'") && e.contains("start command"),
            "{e}"
        );
        let mut zero = svc("z", &["true"]);
        zero.timeout = Some(0);
        let e = services(&takeover(None, vec![zero]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeout = 0"), "{e}");
        let e = services(&takeover(None, vec![svc(" ", &["true"])]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("name is empty"), "{e}");
    }

    #[test]
    fn service_plan_lists_start_then_ready() {
        let s = services(&takeover(Some("xcat"), vec![])).expect("preset");
        assert_eq!(
            service_plan(&s[1]),
            ["systemctl start xcatd", "/opt/xcat/bin/lsxcatd -a"]
        );
        assert_eq!(service_plan(&s[6]), ["/opt/xcat/sbin/makedhcp -a"]);
        let mut odd = Service::from_preset(&XCAT_PRESET[0]);
        odd.start = argv(&["touch", "/tmp/a file", "it's"]);
        assert_eq!(service_plan(&odd)[0], r"touch '/tmp/a file' 'it'\''s'");
    }
}
