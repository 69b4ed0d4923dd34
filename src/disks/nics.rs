//! The node's network interfaces as the moved-disks manifest records them: name, MAC,
//! and the networks (CIDR) each is on. Physical interfaces only: those with a device
//! behind them in sysfs, because bridges, bonds' virtual devices and loopback do not move
//! with a server.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nic {
    pub name: String,
    pub mac: String,
    pub networks: Vec<String>,
}

/// Every physical interface under `sys_class_net` (normally /sys/class/net), with the
/// networks of its addresses. Interfaces without a MAC are left out.
pub fn nics(sys_class_net: &Path) -> Vec<Nic> {
    let networks = networks_by_interface();
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(sys_class_net) else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let dir = entry.path();
        if !dir.join("device").exists() {
            continue;
        }
        let Ok(mac) = std::fs::read_to_string(dir.join("address")) else {
            continue;
        };
        let mac = mac.trim().to_ascii_lowercase();
        if mac.is_empty() || mac == "00:00:00:00:00:00" {
            continue;
        }
        out.push(Nic {
            networks: networks.get(&name).cloned().unwrap_or_default(),
            name,
            mac,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Interface name -> sorted networks of its global addresses (link-local IPv6 left out:
/// every interface has one and it says nothing about the cluster's networks).
fn networks_by_interface() -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return map;
    };
    for a in addrs {
        let (Some(addr), Some(mask)) = (a.address, a.netmask) else {
            continue;
        };
        let net = match (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
            (Some(ip), Some(m)) => network(IpAddr::V4(ip.ip()), IpAddr::V4(m.ip())),
            _ => match (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
                (Some(ip), Some(m)) => network(IpAddr::V6(ip.ip()), IpAddr::V6(m.ip())),
                _ => None,
            },
        };
        if let Some(net) = net {
            let list = map.entry(a.interface_name).or_default();
            if !list.contains(&net) {
                list.push(net);
                list.sort();
            }
        }
    }
    map
}

/// "192.168.50.0/24" from an address and its netmask; None for link-local IPv6.
pub fn network(addr: IpAddr, mask: IpAddr) -> Option<String> {
    match (addr, mask) {
        (IpAddr::V4(a), IpAddr::V4(m)) => {
            let (a, m) = (u32::from(a), u32::from(m));
            Some(format!(
                "{}/{}",
                std::net::Ipv4Addr::from(a & m),
                m.count_ones()
            ))
        }
        (IpAddr::V6(a), IpAddr::V6(m)) => {
            if a.segments()[0] & 0xffc0 == 0xfe80 {
                return None;
            }
            let (a, m) = (u128::from(a), u128::from(m));
            Some(format!(
                "{}/{}",
                std::net::Ipv6Addr::from(a & m),
                m.count_ones()
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_written_as_cidr() {
        let v4 = |s: &str| IpAddr::V4(s.parse().expect("v4"));
        let v6 = |s: &str| IpAddr::V6(s.parse().expect("v6"));
        assert_eq!(
            network(v4("172.20.3.7"), v4("255.255.0.0")).as_deref(),
            Some("172.20.0.0/16")
        );
        assert_eq!(
            network(v6("2001:db8::5"), v6("ffff:ffff:ffff:ffff::")).as_deref(),
            Some("2001:db8::/64")
        );
        assert_eq!(network(v6("fe80::1"), v6("ffff:ffff:ffff:ffff::")), None);
    }

    #[test]
    fn only_interfaces_with_a_device_and_a_mac_count() {
        let dir = tempfile::tempdir().expect("tmp");
        let mk = |name: &str, mac: &str, device: bool| {
            let d = dir.path().join(name);
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("address"), format!("{mac}\n")).expect("write");
            if device {
                std::fs::create_dir_all(d.join("device")).expect("mkdir");
            }
        };
        mk("lo", "00:00:00:00:00:00", false);
        mk("br0", "52:54:00:aa:bb:cc", false);
        mk("eth1", "52:54:00:00:00:02", true);
        mk("eth0", "52:54:00:00:00:01", true);
        let names: Vec<(String, String)> = nics(dir.path())
            .into_iter()
            .map(|n| (n.name, n.mac))
            .collect();
        assert_eq!(
            names,
            vec![
                ("eth0".into(), "52:54:00:00:00:01".into()),
                ("eth1".into(), "52:54:00:00:00:02".into())
            ]
        );
    }
}
