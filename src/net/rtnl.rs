//! The node's interfaces and addresses, read and changed over rtnetlink: what
//! `ip -j addr show`, `ip addr add` and `ip addr del` do, from inside hamn. Each `ip`
//! was a process, 0.1-0.25 s apiece in the lab's TCG guests, and the service address
//! step ran two of them while clients waited (issue 13). The messages are built and
//! parsed by the rust-netlink crates; this module only asks and checks the answers.
//!
//! Every request gets an answer or an error: the socket has a receive deadline, a
//! kernel error (EEXIST, EADDRNOTAVAIL, EPERM) is reported with the equivalent `ip`
//! command, and a dump interrupted by a concurrent change is read again.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// One interface and the addresses it holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Link {
    pub(super) index: u32,
    pub(super) name: String,
    /// The link-layer address (6 bytes on Ethernet, 20 on InfiniBand).
    pub(super) mac: Option<Vec<u8>>,
    /// Administratively up (IFF_UP).
    pub(super) up: bool,
    /// The driver reports carrier (IFF_LOWER_UP) and the link is operational
    /// (IFF_RUNNING; `ip` prints NO-CARRIER for an up link without it).
    pub(super) carrier: bool,
    pub(super) addrs: Vec<Addr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Addr {
    pub(super) address: IpAddr,
    pub(super) prefix: u8,
    pub(super) tentative: bool,
    pub(super) dadfailed: bool,
}

/// A request the kernel refused or did not answer, with what failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct RtnlError {
    pub(super) what: String,
    #[source]
    pub(super) source: io::Error,
}

/// The kernel answers at once; a request that takes this long means a hung system.
const DEADLINE: Duration = Duration::from_secs(10);

/// Larger than any datagram the kernel sends for a dump (it fills up to 32 KiB).
const RECV_BUF: usize = 64 * 1024;

/// A dump that keeps being interrupted by changes is given up after this many reads.
const DUMP_TRIES: u32 = 5;

struct Rtnl {
    socket: Socket,
    seq: u32,
}

impl Rtnl {
    fn open() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        nix::sys::socket::setsockopt(
            &socket.as_fd(),
            nix::sys::socket::sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(DEADLINE.as_secs() as i64, 0),
        )
        .map_err(io::Error::from)?;
        Ok(Rtnl { socket, seq: 0 })
    }

    /// Send `message` and collect the answers to it: the inner messages of a dump, or
    /// nothing for an acknowledged change. A kernel error is an `io::Error` with its errno.
    /// Ok(None): a dump was interrupted by a concurrent change and must be asked again.
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Option<Vec<RouteNetlinkMessage>>> {
        self.seq = self.seq.wrapping_add(1);
        let mut packet = NetlinkMessage::new(NetlinkHeader::default(), message.into());
        packet.header.flags = NLM_F_REQUEST | flags;
        packet.header.sequence_number = self.seq;
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket.send(&out, 0)?;

        let mut answers = Vec::new();
        let mut interrupted = false;
        let mut buf: Vec<u8> = Vec::with_capacity(RECV_BUF);
        loop {
            buf.clear();
            let size = self.socket.recv(&mut buf, libc::MSG_TRUNC)?;
            if size > buf.len() {
                return Err(io::Error::other(format!(
                    "a netlink answer of {size} bytes did not fit in {RECV_BUF}"
                )));
            }
            let mut offset = 0;
            while offset < buf.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[offset..])
                    .map_err(|e| io::Error::other(format!("undecodable netlink answer: {e}")))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    return Err(io::Error::other("a netlink answer of length 0"));
                }
                offset += len;
                // Answers to an earlier request that timed out are not ours.
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                if msg.header.flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok((!interrupted).then_some(answers)),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                            None => Ok(Some(answers)),
                        };
                    }
                    NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                    _ => {}
                }
            }
        }
    }

    fn dump(
        &mut self,
        message: impl Fn() -> RouteNetlinkMessage,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        for _ in 0..DUMP_TRIES {
            if let Some(answers) = self.request(message(), NLM_F_DUMP)? {
                return Ok(answers);
            }
        }
        Err(io::Error::other(format!(
            "the interfaces kept changing while read ({DUMP_TRIES} tries)"
        )))
    }
}

fn failed(what: &str) -> impl FnOnce(io::Error) -> RtnlError + '_ {
    move |source| RtnlError {
        what: what.to_string(),
        source,
    }
}

/// Every interface of this network namespace with its addresses (`ip -j addr show`).
pub(super) fn links() -> Result<Vec<Link>, RtnlError> {
    let what = "reading the interfaces and their addresses over netlink";
    let mut rtnl = Rtnl::open().map_err(failed(what))?;
    let link_msgs = rtnl
        .dump(|| RouteNetlinkMessage::GetLink(LinkMessage::default()))
        .map_err(failed(what))?;
    let addr_msgs = rtnl
        .dump(|| RouteNetlinkMessage::GetAddress(AddressMessage::default()))
        .map_err(failed(what))?;
    let mut links: Vec<Link> = link_msgs
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(link_of(&l)),
            _ => None,
        })
        .collect();
    for m in addr_msgs {
        if let RouteNetlinkMessage::NewAddress(a) = m
            && let Some(addr) = addr_of(&a)
            && let Some(link) = links.iter_mut().find(|l| l.index == a.header.index)
        {
            link.addrs.push(addr);
        }
    }
    Ok(links)
}

fn link_of(m: &LinkMessage) -> Link {
    let mut link = Link {
        index: m.header.index,
        up: m.header.flags.contains(LinkFlags::Up),
        carrier: m.header.flags.contains(LinkFlags::LowerUp)
            && m.header.flags.contains(LinkFlags::Running),
        ..Link::default()
    };
    for attr in &m.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Address(mac) => link.mac = Some(mac.clone()),
            _ => {}
        }
    }
    link
}

fn addr_of(m: &AddressMessage) -> Option<Addr> {
    // IFA_LOCAL is the address itself; IFA_ADDRESS is the peer on point-to-point links
    // and the same address elsewhere. The 32-bit IFA_FLAGS supersedes the header's 8.
    let mut local = None;
    let mut address = None;
    let mut flags = AddressFlags::from_bits_retain(u32::from(m.header.flags.bits()));
    for attr in &m.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Flags(f) => flags = *f,
            _ => {}
        }
    }
    Some(Addr {
        address: local.or(address)?,
        prefix: m.header.prefix_len,
        tentative: flags.contains(AddressFlags::Tentative),
        dadfailed: flags.contains(AddressFlags::Dadfailed),
    })
}

fn address_message(index: u32, address: IpAddr, prefix: u8, label: Option<&str>) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = match address {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    m.header.prefix_len = prefix;
    m.header.index = index;
    // As `ip addr add` sends it: the address as both local and (no peer) address.
    m.attributes.push(AddressAttribute::Local(address));
    m.attributes.push(AddressAttribute::Address(address));
    if let Some(label) = label {
        m.attributes
            .push(AddressAttribute::Label(label.to_string()));
    }
    m
}

/// Add `address/prefix` to interface `index` (`ip addr add`); EEXIST if it is there.
pub(super) fn add_address(
    index: u32,
    address: IpAddr,
    prefix: u8,
    label: Option<&str>,
    what: &str,
) -> Result<(), RtnlError> {
    let mut rtnl = Rtnl::open().map_err(failed(what))?;
    rtnl.request(
        RouteNetlinkMessage::NewAddress(address_message(index, address, prefix, label)),
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    )
    .map(|_| ())
    .map_err(failed(what))
}

/// Remove `address/prefix` from interface `index` (`ip addr del`).
pub(super) fn del_address(
    index: u32,
    address: IpAddr,
    prefix: u8,
    what: &str,
) -> Result<(), RtnlError> {
    let mut rtnl = Rtnl::open().map_err(failed(what))?;
    rtnl.request(
        RouteNetlinkMessage::DelAddress(address_message(index, address, prefix, None)),
        NLM_F_ACK,
    )
    .map(|_| ())
    .map_err(failed(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs no privilege: any process may read its namespace's interfaces.
    #[test]
    fn the_loopback_interface_and_its_address_are_read() {
        let links = links().expect("rtnetlink dump");
        let lo = links.iter().find(|l| l.name == "lo").expect("lo");
        assert!(lo.index > 0 && lo.up, "{lo:?}");
        if !lo.addrs.is_empty() {
            assert!(
                lo.addrs
                    .iter()
                    .any(|a| a.address == IpAddr::from([127, 0, 0, 1]) && a.prefix == 8),
                "{lo:?}"
            );
        }
    }
}
