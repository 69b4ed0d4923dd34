//! Is the service address free? IPv4: ARP probes ask the link (hamn's own on Ethernet,
//! `arping -D` elsewhere), and `announce` tells it the address is ours. IPv6: the
//! kernel's duplicate address detection runs when the address is added, and hamn waits
//! for its verdict.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::arp;
use super::links::{LinkView, inspect, read_links};
use super::probe::Judgement;
use super::{IpOutcome, NetError, ServiceIp, add, argv, del, run, run_ok};
use crate::exec;

/// `arping -D -c 2 -w 3` ends by itself after 3 s; the margin covers a slow start.
const DAD_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// `arping -U -c 3` sends for about 2 s.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(10);

/// The kernel's IPv6 DAD waits up to rtr_solicit_delay (1 s) before the first probe.
const DAD_START_DELAY: Duration = Duration::from_secs(2);

const DAD_POLL: Duration = Duration::from_millis(100);

pub(super) fn dad_probe_argv(ip: &ServiceIp) -> Vec<String> {
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

/// An unsolicited ARP request (-U) rather than a reply (-A): every ARP implementation
/// updates an existing cache entry from a request whose sender and target are both the
/// address, and switches learn the MAC from either.
pub(super) fn announce_argv(ip: &ServiceIp) -> Vec<String> {
    let addr = ip.address.to_string();
    argv(&["arping", "-U", "-c", "3", "-I", ip.device(), &addr])
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

/// Duplicate address detection (IPv4): the MAC of whoever answered, or None. On Ethernet
/// hamn probes itself; elsewhere (IP over InfiniBand) arping does.
pub(super) fn probe_v4(
    ip: &ServiceIp,
    links: &[super::links::IpLink],
) -> Result<Option<String>, NetError> {
    match (ip.address, super::links::ethernet(links, ip.device())) {
        (IpAddr::V4(v4), Some((ifindex, mac))) => probe_arp(ip, v4, ifindex, mac),
        _ => probe_arping(ip),
    }
}

/// RFC 5227 section 2.1.1's probe with its times scaled down: [`arp::PROBES`] probes
/// [`arp::INTERVAL`] apart, then [`arp::LISTEN`] more. The address is taken if anyone
/// sends an ARP packet from it (a reply, an announcement), or probes for it at the same
/// time from another MAC (a second node taking over at the same moment).
fn probe_arp(
    ip: &ServiceIp,
    address: std::net::Ipv4Addr,
    ifindex: u32,
    mac: [u8; 6],
) -> Result<Option<String>, NetError> {
    let failed = |what: &str| {
        let what = what.to_string();
        let interface = ip.device().to_string();
        move |source| NetError::Arp {
            what,
            interface,
            source,
        }
    };
    let socket = arp::Socket::open(ifindex).map_err(failed("listen for ARP"))?;
    let probe = arp::Arp::probe(mac, address);
    let start = Instant::now();
    let verdict_at = start + arp::INTERVAL * (arp::PROBES - 1) + arp::LISTEN;
    let mut sent = 0;
    let mut next = start;
    loop {
        if sent < arp::PROBES && Instant::now() >= next {
            socket.send(&probe).map_err(failed("send an ARP probe"))?;
            sent += 1;
            next += arp::INTERVAL;
        }
        let until = if sent < arp::PROBES { next } else { verdict_at };
        match socket.receive(until).map_err(failed("listen for ARP"))? {
            Some(a) if a.sender_mac == mac => {}
            Some(a) if a.sender_ip == address => {
                return Ok(Some(arp::mac_text(&a.sender_mac)));
            }
            Some(a) if a.sender_ip.is_unspecified() && a.target_ip == address => {
                return Ok(Some(format!(
                    "{} (probing for the same address at the same moment: is another \
                     node taking over too?)",
                    arp::mac_text(&a.sender_mac)
                )));
            }
            _ => {}
        }
        if sent >= arp::PROBES && Instant::now() >= verdict_at {
            info!(probes = sent, "nobody answered for the address");
            return Ok(None);
        }
    }
}

/// arping: exit 0 means nobody answered, 1 that somebody did.
fn probe_arping(ip: &ServiceIp) -> Result<Option<String>, NetError> {
    let ran = run(&dad_probe_argv(ip), DAD_PROBE_TIMEOUT)?;
    match ran.exit() {
        Some(0) => Ok(None),
        Some(1) => Ok(Some(reply_mac(&ran.stdout).unwrap_or_else(|| {
            "a host whose MAC arping did not print".to_string()
        }))),
        _ => Err(ran.failure().into()),
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

/// Whoever answers the probe for `ip`, from a probe started earlier (it ran while the
/// takeover checked and mounted) or from one run now.
fn verdict(
    ip: &ServiceIp,
    links: &[super::links::IpLink],
    probe: Option<super::FencedProbe>,
) -> Result<Option<String>, NetError> {
    if let Some(p) = probe
        && p.address() == ip.address
    {
        match p.verdict()? {
            Judgement::Taken(mac) => return Ok(Some(mac)),
            Judgement::Free => return Ok(None),
            Judgement::Again => info!("the check heard nothing that counts: probing again"),
        }
    }
    probe_v4(ip, links)
}

pub(super) fn bring_up_v4(
    ip: &ServiceIp,
    view: &LinkView,
    links: &[super::links::IpLink],
    probe: Option<super::FencedProbe>,
) -> Result<super::Up, NetError> {
    // Probed even when the address is already here: a rerun must notice a peer that came
    // back with it.
    if let Some(mac) = verdict(ip, links, probe)? {
        warn!(%mac, "someone else answers for the service address");
        return Err(NetError::AddressInUse {
            address: ip.address,
            interface: ip.device().to_string(),
            who: format!("MAC {mac}"),
        });
    }
    let outcome = if view.here.is_some() {
        info!("already present");
        IpOutcome::AlreadyPresent
    } else {
        add(ip)?;
        info!("added");
        IpOutcome::Added
    };
    let announcer = match (ip.address, super::links::ethernet(links, ip.device())) {
        (IpAddr::V4(v4), Some((ifindex, mac))) => {
            Some(super::announce::start(ifindex, mac, v4).map_err(|source| {
                NetError::AnnounceSend {
                    address: ip.address,
                    interface: ip.device().to_string(),
                    command: exec::display(&announce_argv(ip)),
                    source,
                }
            })?)
        }
        // Not Ethernet (IPoIB has 20-byte addresses): arping knows the link layer.
        _ => {
            let announce = announce_argv(ip);
            run_ok(&announce, ANNOUNCE_TIMEOUT).map_err(|source| NetError::AnnounceFailed {
                address: ip.address,
                interface: ip.device().to_string(),
                command: exec::display(&announce),
                source: Box::new(source),
            })?;
            None
        }
    };
    info!("announced");
    Ok(super::Up { outcome, announcer })
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
fn dad_budget(ip: &ServiceIp) -> Result<Duration, NetError> {
    let dev = ip.device();
    let unavailable = |setting: String| NetError::DadUnavailable {
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

pub(super) fn bring_up_v6(ip: &ServiceIp, view: &LinkView) -> Result<super::Up, NetError> {
    let budget = dad_budget(ip)?;
    let refuse = |prefix: u8| -> NetError {
        warn!("IPv6 duplicate address detection failed");
        if let Err(e) = del(ip, prefix) {
            warn!(error = %e, "could not remove the duplicate address");
        }
        NetError::AddressInUse {
            address: ip.address,
            interface: ip.device().to_string(),
            who: who_v6(ip),
        }
    };
    let outcome = match view.here {
        Some(h) if h.dadfailed => return Err(refuse(h.prefix)),
        Some(_) => IpOutcome::AlreadyPresent,
        None => {
            add(ip)?;
            IpOutcome::Added
        }
    };
    let deadline = Instant::now() + budget;
    loop {
        let held = inspect(&read_links()?, ip)?.here;
        match held {
            None => {
                return Err(NetError::Vanished {
                    address: ip.address,
                    interface: ip.device().to_string(),
                });
            }
            Some(h) if h.dadfailed => return Err(refuse(h.prefix)),
            Some(h) if !h.tentative => break,
            Some(h) if Instant::now() >= deadline => {
                let _ = del(ip, h.prefix);
                return Err(NetError::DadUnfinished {
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
    Ok(super::Up {
        outcome,
        announcer: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_of_an_arping_reply_is_found() {
        let out = "ARPING 10.77.0.2 from 0.0.0.0 va16091\n\
                   Unicast reply from 10.77.0.2 [C6:89:80:4F:31:CC]  0.531ms\n\
                   Sent 1 probes (1 broadcast(s))\nReceived 1 response(s)\n";
        assert_eq!(reply_mac(out).as_deref(), Some("c6:89:80:4f:31:cc"));
        assert_eq!(reply_mac("Sent 2 probes\nReceived 0 response(s)\n"), None);
        assert_eq!(reply_mac("Unicast reply from 10.0.0.1 [junk]"), None);
    }
}
