//! What the node's interfaces hold, from `ip -j addr show`: whether the service address
//! is here (and with which prefix, and whether IPv6 DAD still runs or failed), on another
//! interface, and whether its link can carry it at all.

use std::net::IpAddr;

use serde::Deserialize;

use super::{IP_TIMEOUT, NetError, ServiceIp, argv, run_ok};
use crate::exec;

/// One interface of `ip -j addr show`.
#[derive(Debug, Deserialize)]
pub(super) struct IpLink {
    #[serde(default)]
    ifindex: u32,
    #[serde(default)]
    ifname: String,
    /// The link-layer address ("c6:89:80:4f:31:cc" on Ethernet).
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    addr_info: Vec<IpAddrInfo>,
}

#[derive(Debug, Deserialize)]
pub(super) struct IpAddrInfo {
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
pub(super) struct Held {
    pub(super) prefix: u8,
    pub(super) tentative: bool,
    pub(super) dadfailed: bool,
}

/// The device's index and Ethernet address, for announcing an address on it: None for a
/// device that has no 6-byte link-layer address (not Ethernet-like).
pub(super) fn ethernet(links: &[IpLink], device: &str) -> Option<(u32, [u8; 6])> {
    let link = links.iter().find(|l| l.ifname == device)?;
    let mut mac = [0u8; 6];
    let mut octets = link.address.as_deref()?.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(octets.next()?, 16).ok()?;
    }
    (octets.next().is_none() && link.ifindex > 0).then_some((link.ifindex, mac))
}

/// What the node's interfaces say about the service address.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct LinkView {
    /// On the configured device.
    pub(super) here: Option<Held>,
    /// Another interface of this node that has it, with its prefix.
    pub(super) elsewhere: Option<(String, u8)>,
    /// Why the device cannot be used to check or serve the address.
    pub(super) problem: Option<String>,
}

pub(super) const IP_ADDR_SHOW: &[&str] = &["ip", "-j", "addr", "show"];

pub(super) fn parse_links(json: &str) -> Result<Vec<IpLink>, NetError> {
    serde_json::from_str(json.trim()).map_err(|e| NetError::Unparsable {
        command: exec::display(&argv(IP_ADDR_SHOW)),
        reason: format!("{e} (JSON output needs iproute2 4.13 or later)"),
    })
}

pub(super) fn read_links() -> Result<Vec<IpLink>, NetError> {
    parse_links(&run_ok(&argv(IP_ADDR_SHOW), IP_TIMEOUT)?.stdout)
}

pub(super) fn inspect(links: &[IpLink], ip: &ServiceIp) -> Result<LinkView, NetError> {
    let device = ip.device();
    let held = |info: &IpAddrInfo| -> Result<u8, NetError> {
        info.prefixlen.ok_or_else(|| NetError::Unparsable {
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
        .ok_or_else(|| NetError::NoInterface {
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

pub(super) fn link_usable(ip: &ServiceIp, view: &LinkView) -> Result<(), NetError> {
    match &view.problem {
        Some(state) => Err(NetError::LinkDown {
            interface: ip.device().to_string(),
            state: state.clone(),
        }),
        None => Ok(()),
    }
}
