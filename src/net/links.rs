//! What the node's interfaces hold, read over rtnetlink (see `rtnl`): whether the
//! service address is here (and with which prefix, and whether IPv6 DAD still runs or
//! failed), on another interface, and whether its link can carry it at all.

use super::rtnl::{self, Link};
use super::{NetError, ServiceIp};

pub(super) type IpLink = Link;

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
    let link = links.iter().find(|l| l.name == device)?;
    let mac: [u8; 6] = link.mac.as_deref()?.try_into().ok()?;
    (link.index > 0).then_some((link.index, mac))
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

pub(super) fn read_links() -> Result<Vec<IpLink>, NetError> {
    rtnl::links().map_err(NetError::from)
}

pub(super) fn inspect(links: &[IpLink], ip: &ServiceIp) -> Result<LinkView, NetError> {
    let device = ip.device();
    let mut elsewhere = None;
    for link in links.iter().filter(|l| l.name != device) {
        if let Some(a) = link.addrs.iter().find(|a| a.address == ip.address) {
            elsewhere = Some((link.name.clone(), a.prefix));
        }
    }
    let link = links
        .iter()
        .find(|l| l.name == device)
        .ok_or_else(|| NetError::NoInterface {
            interface: device.to_string(),
        })?;
    let here = link
        .addrs
        .iter()
        .find(|a| a.address == ip.address)
        .map(|a| Held {
            prefix: a.prefix,
            tentative: a.tentative,
            dadfailed: a.dadfailed,
        });
    let problem = if !link.up {
        Some("is administratively down".to_string())
    } else if !link.carrier {
        // A probe on a link without carrier hears nobody and would call the address free.
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
