//! The service address: the address xCAT's clients use, brought up on the node that
//! takes over (after a duplicate check: nobody else may answer for it) and taken down on
//! giveback. Addresses are read and changed over rtnetlink (`rtnl`, what `ip` does,
//! without a process); `arping` remains for links that are not Ethernet, run by
//! `crate::exec` with a deadline. A request that hangs or fails is reported, because an
//! unknown outcome is a failure (design invariant 5). `links` reads what the interfaces
//! hold, `dad` decides whether the address is free.
//!
//! Bringing the address up takes a [`Fenced`]: an address brought up while the old
//! primary still serves it splits the cluster's clients between two management nodes.
//! Taking it down (giveback) needs no proof.
//!
//! IPv6: `arping` speaks ARP only, and there is no ndisc6 on a stock node, so an IPv6
//! service address is checked by the kernel's own duplicate address detection (DAD):
//! hamn adds the address, waits until it is no longer tentative, and removes it again and
//! refuses if DAD failed. hamn sends no unsolicited neighbour advertisement itself; set
//! `net.ipv6.conf.IF.ndisc_notify=1` if the switches need one.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::Serialize;
use tracing::{info, info_span};

use crate::config::ServiceIpConfig;
use crate::exec::{self, ExecError, Ran};
use crate::fence::proof::Fenced;

mod announce;
mod arp;
mod dad;
mod links;
mod probe;
mod rtnl;

pub use announce::{Announcer, COUNT as ANNOUNCEMENTS, INTERVAL as ANNOUNCE_INTERVAL};
pub use arp::PROBES;
pub use probe::{FencedProbe, Probe, start as start_probe};

/// How long the duplicate address probe of an Ethernet link takes, from its first probe
/// to its verdict.
pub fn probe_time() -> Duration {
    arp::INTERVAL * (arp::PROBES - 1) + arp::LISTEN
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
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
        source: Box<NetError>,
    },
    #[error(
        "{address} is up on {interface}, but its announcement could not be sent ({source}), \
         so switches and clients may keep sending to the old primary's MAC until their \
         caches expire. Rerun (hamn announces again when the address is already up) or run \
         `{command}`"
    )]
    AnnounceSend {
        address: IpAddr,
        interface: String,
        command: String,
        source: std::io::Error,
    },
    #[error(
        "cannot {what} on {interface} through a packet socket ({source}); hamn runs as \
         root and needs CAP_NET_RAW for this. Nothing was added; rerun as root"
    )]
    Arp {
        what: String,
        interface: String,
        source: std::io::Error,
    },
    #[error(
        "the duplicate address check of {address} ended without a verdict ({reason}); \
         nothing was added. Rerun"
    )]
    ProbeLost { address: IpAddr, reason: String },
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(
        "{0}; hamn asks the kernel over rtnetlink, as `ip` does: run it as root, in the \
         node's own network namespace"
    )]
    Rtnl(#[from] rtnl::RtnlError),
    #[error(
        "{address} vanished from {interface} while its duplicate address detection ran: \
         something else on this node manages addresses there (NetworkManager, \
         systemd-networkd?); stop it managing {interface}, then rerun"
    )]
    Vanished { address: IpAddr, interface: String },
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_string()).collect()
}

/// Run `argv` with a deadline. Returns whatever the exit status; errors only when the
/// program could not be run or did not finish in time.
fn run(argv: &[String], timeout: Duration) -> Result<Ran, NetError> {
    Ok(exec::Command::new(argv.iter().cloned())
        .timeout(timeout)
        .run()?)
}

fn run_ok(argv: &[String], timeout: Duration) -> Result<Ran, NetError> {
    Ok(exec::Command::new(argv.iter().cloned())
        .timeout(timeout)
        .run_ok()?)
}

/// Linux's IFNAMSIZ less the terminating NUL.
const MAX_IFNAME: usize = 15;

/// The address xCAT's clients use, with its prefix length and interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
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
    pub fn parse(cfg: &ServiceIpConfig) -> Result<Self, NetError> {
        let bad = |reason: String| NetError::BadAddress {
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

fn check_interface(interface: &str, address: IpAddr) -> Result<(), NetError> {
    let bad = |reason: &str| NetError::BadInterface {
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

/// Add the address (what `ip addr add` does, over netlink).
fn add(ip: &ServiceIp) -> Result<(), NetError> {
    let what = format!("`{}` (over netlink)", exec::display(&add_argv(ip)));
    let index = index_of(ip.device(), &what)?;
    Ok(rtnl::add_address(
        index,
        ip.address,
        ip.prefix,
        ip.label(),
        &what,
    )?)
}

/// Remove the address with `prefix` (what `ip addr del` does, over netlink).
fn del(ip: &ServiceIp, prefix: u8) -> Result<(), NetError> {
    let what = format!("`{}` (over netlink)", exec::display(&del_argv(ip, prefix)));
    let index = index_of(ip.device(), &what)?;
    Ok(rtnl::del_address(index, ip.address, prefix, &what)?)
}

fn index_of(device: &str, what: &str) -> Result<u32, NetError> {
    nix::net::if_::if_nametoindex(device).map_err(|e| {
        if e == nix::errno::Errno::ENODEV {
            NetError::NoInterface {
                interface: device.to_string(),
            }
        } else {
            NetError::Rtnl(rtnl::RtnlError {
                what: what.to_string(),
                source: e.into(),
            })
        }
    })
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

/// The exact commands [`bring_up`] runs to change or probe the network, for --dry-run.
/// For IPv6 the duplicate check is the kernel's, part of `ip addr add`.
pub fn ip_plan(ip: &ServiceIp) -> Vec<String> {
    match ip.address {
        IpAddr::V4(_) => vec![
            format!(
                "{} ARP probes for {} on {}, {:.2} s apart, answers awaited until {:.2} s, \
                 sent by hamn (on a link that is not Ethernet: `{}`); started with the \
                 takeover, counted only if the listening outlasts the fence (an answer \
                 before the peer is off means probing again after)",
                arp::PROBES,
                ip.address,
                ip.device(),
                arp::INTERVAL.as_secs_f64(),
                probe_time().as_secs_f64(),
                exec::display(&dad::dad_probe_argv(ip))
            ),
            exec::display(&add_argv(ip)),
            format!(
                "{ANNOUNCEMENTS} ARP announcements of {} on {}, {} s apart, sent by hamn \
                 (what `{}` sends; the first before this step is done)",
                ip.address,
                ip.device(),
                ANNOUNCE_INTERVAL.as_secs(),
                exec::display(&dad::announce_argv(ip))
            ),
        ],
        IpAddr::V6(_) => vec![exec::display(&add_argv(ip))],
    }
}

/// Is the address configured on the interface now? (An IPv6 address whose duplicate
/// address detection failed is configured but unusable: not present.)
pub fn ip_present(ip: &ServiceIp) -> Result<bool, NetError> {
    let view = links::inspect(&links::read_links()?, ip)?;
    Ok(view.here.is_some_and(|h| !h.dadfailed))
}

/// Is anybody else answering for the address on the interface's link? Returns the MAC of
/// who answered. IPv4 only: for IPv6 this returns `None` and the kernel's duplicate address
/// detection checks the address when [`bring_up`] adds it (see the module documentation).
pub fn someone_else_answers(ip: &ServiceIp) -> Result<Option<String>, NetError> {
    let links = links::read_links()?;
    let view = links::inspect(&links, ip)?;
    links::link_usable(ip, &view)?;
    match ip.address {
        IpAddr::V4(_) => dad::probe_v4(ip, &links),
        IpAddr::V6(_) => {
            info!(address = %ip.address, "IPv6: checked by the kernel's DAD when added");
            Ok(None)
        }
    }
}

/// What [`bring_up`] did, and the announcement's repeats still to come (IPv4 on
/// Ethernet): drop them to stop them, or let them finish.
#[derive(Debug)]
pub struct Up {
    pub outcome: IpOutcome,
    pub announcer: Option<Announcer>,
}

/// Bring the service address up: refuse if someone else answers for it (the verdict of
/// `probe` when one was started, else a check run now), add it, announce it.
/// Idempotent: an address already here is not added again.
pub fn bring_up(
    ip: &ServiceIp,
    fenced: &Fenced,
    probe: Option<FencedProbe>,
) -> Result<Up, NetError> {
    let _span =
        info_span!("service-ip-up", address = %ip.address, interface = %ip.interface).entered();
    info!(fenced = fenced.node(), "bringing up the service address");
    let links = links::read_links()?;
    let view = links::inspect(&links, ip)?;
    if let Some((found, prefix)) = view.elsewhere.clone() {
        return Err(NetError::OnOtherInterface {
            address: ip.address,
            prefix,
            interface: ip.device().to_string(),
            found,
        });
    }
    if let Some(h) = view.here
        && h.prefix != ip.prefix
    {
        return Err(NetError::PrefixMismatch {
            address: ip.address,
            interface: ip.device().to_string(),
            found: h.prefix,
            wanted: ip.prefix,
        });
    }
    links::link_usable(ip, &view)?;
    match ip.address {
        IpAddr::V4(_) => dad::bring_up_v4(ip, &view, &links, probe),
        IpAddr::V6(_) => dad::bring_up_v6(ip, &view),
    }
}

/// Remove the service address from its interface (giveback). Absent: nothing to do.
pub fn take_down(ip: &ServiceIp) -> Result<(), NetError> {
    let _span =
        info_span!("service-ip-down", address = %ip.address, interface = %ip.interface).entered();
    match links::inspect(&links::read_links()?, ip)?.here {
        None => {
            info!("not present; nothing to do");
            Ok(())
        }
        // Removed with the prefix it has, which may differ from the configured one: whoever
        // set it, the address must not stay on a node that gives back.
        Some(h) => {
            del(ip, h.prefix)?;
            info!("removed");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::links::{self, Held, LinkView, inspect};
    use super::*;

    fn sip(address: &str, interface: &str) -> Result<ServiceIp, NetError> {
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
        let plan = ip_plan(&ip);
        assert!(
            plan[0].starts_with(
                "3 ARP probes for 172.20.0.1 on eth0, 0.25 s apart, answers awaited until \
                 1.00 s, sent by hamn"
            ) && plan[0].contains("arping -D -c 2 -w 3 -I eth0 172.20.0.1"),
            "{plan:?}"
        );
        assert_eq!(plan[1], "ip addr add 172.20.0.1/16 dev eth0");
        assert!(
            plan[2].starts_with("3 ARP announcements of 172.20.0.1 on eth0, 1 s apart")
                && plan[2].contains("arping -U -c 3 -I eth0 172.20.0.1"),
            "{plan:?}"
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
    /// What a node with a service alias, IPv6 addresses in DAD, a link without carrier
    /// and a link that is down looks like to `links::inspect`.
    fn node_links() -> Vec<rtnl::Link> {
        let addr = |a: &str, prefix, tentative, dadfailed| rtnl::Addr {
            address: a.parse().expect("address"),
            prefix,
            tentative,
            dadfailed,
        };
        vec![
            rtnl::Link {
                index: 1,
                name: "lo".into(),
                mac: Some(vec![0; 6]),
                up: true,
                carrier: true,
                addrs: vec![addr("127.0.0.1", 8, false, false)],
            },
            rtnl::Link {
                index: 2,
                name: "eth0".into(),
                mac: Some(vec![0xc6, 0x89, 0x80, 0x4f, 0x31, 0xcc]),
                up: true,
                carrier: true,
                addrs: vec![
                    addr("10.77.0.2", 24, false, false),
                    addr("172.20.0.1", 16, false, false),
                    addr("fd00:77::2", 64, true, true),
                    addr("fd00:77::3", 64, true, false),
                    addr("fe80::c489:80ff:fe4f:31cc", 64, false, false),
                ],
            },
            rtnl::Link {
                index: 3,
                name: "eth1".into(),
                mac: Some(vec![2, 0, 0, 0, 0, 3]),
                up: true,
                carrier: false,
                addrs: vec![],
            },
            rtnl::Link {
                index: 4,
                name: "eth2".into(),
                mac: Some(vec![2, 0, 0, 0, 0, 4]),
                up: false,
                carrier: false,
                addrs: vec![addr("10.9.0.5", 24, false, false)],
            },
            rtnl::Link {
                index: 5,
                name: "ib0".into(),
                mac: Some(vec![0x80; 20]),
                up: true,
                carrier: true,
                addrs: vec![],
            },
        ]
    }

    #[test]
    fn interfaces_are_read_into_what_matters() {
        let links = node_links();
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
        assert!(matches!(e, NetError::NoInterface { .. }), "{e}");
        assert!(e.to_string().contains("eth9"), "{e}");
        assert_eq!(
            links::ethernet(&links, "eth0"),
            Some((2, [0xc6, 0x89, 0x80, 0x4f, 0x31, 0xcc]))
        );
        assert_eq!(
            links::ethernet(&links, "ib0"),
            None,
            "20-byte IPoIB address"
        );
    }

    #[test]
    fn error_messages_name_the_next_step() {
        let e = NetError::AddressInUse {
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
}
