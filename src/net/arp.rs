//! ARP on one Ethernet device through a packet socket (the kernel adds and strips the
//! Ethernet header): the probes and announcements of RFC 5227, and what the link says
//! back. hamn speaks it itself because `arping` counts in whole seconds: it cannot probe
//! more often than once a second, and does not exit until a second after its last packet.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// RFC 5227's probe, with its times scaled down (see `dad`): PROBES probes, INTERVAL
/// apart, and the verdict after LISTEN more.
pub const PROBES: u32 = 3;
pub const INTERVAL: Duration = Duration::from_millis(250);
pub const LISTEN: Duration = Duration::from_millis(500);

const ETH_P_ARP: u16 = 0x0806;
const OP_REQUEST: u16 = 1;
/// The ARP payload for Ethernet and IPv4 (RFC 826).
const LEN: usize = 28;

/// One ARP packet for Ethernet and IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

impl Arp {
    /// RFC 5227 section 2.1.1: "who has ADDRESS", from nobody (sender address 0.0.0.0),
    /// so that no neighbour's cache learns anything from it.
    pub fn probe(mac: [u8; 6], address: Ipv4Addr) -> Arp {
        Arp {
            op: OP_REQUEST,
            sender_mac: mac,
            sender_ip: Ipv4Addr::UNSPECIFIED,
            target_ip: address,
        }
    }

    /// RFC 5227 section 2.3: a request whose sender and target address are both ours.
    pub fn announcement(mac: [u8; 6], address: Ipv4Addr) -> Arp {
        Arp {
            op: OP_REQUEST,
            sender_mac: mac,
            sender_ip: address,
            target_ip: address,
        }
    }

    fn encode(&self) -> [u8; LEN] {
        let mut f = [0u8; LEN];
        f[0..2].copy_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
        f[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol type: IPv4
        f[4] = 6;
        f[5] = 4;
        f[6..8].copy_from_slice(&self.op.to_be_bytes());
        f[8..14].copy_from_slice(&self.sender_mac);
        f[14..18].copy_from_slice(&self.sender_ip.octets());
        // Target hardware address: zero, unknown in a probe, ignored in an announcement.
        f[24..28].copy_from_slice(&self.target_ip.octets());
        f
    }

    /// None for anything that is not Ethernet/IPv4 ARP.
    fn decode(f: &[u8]) -> Option<Arp> {
        if f.len() < LEN || f[0..6] != [0, 1, 8, 0, 6, 4] {
            return None;
        }
        let ip = |o: usize| Ipv4Addr::new(f[o], f[o + 1], f[o + 2], f[o + 3]);
        let mut sender_mac = [0u8; 6];
        sender_mac.copy_from_slice(&f[8..14]);
        Some(Arp {
            op: u16::from_be_bytes([f[6], f[7]]),
            sender_mac,
            sender_ip: ip(14),
            target_ip: ip(24),
        })
    }
}

/// "c6:89:80:4f:31:cc"
pub fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A packet socket for ARP on one device: sends broadcasts there and hears only there.
pub struct Socket {
    fd: OwnedFd,
    to: libc::sockaddr_ll,
}

impl Socket {
    pub fn open(ifindex: u32) -> std::io::Result<Socket> {
        // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ARP.to_be()),
            )
        };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_protocol = ETH_P_ARP.to_be();
        to.sll_ifindex = i32::try_from(ifindex).map_err(std::io::Error::other)?;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        // Bound to the device: what other interfaces hear is not this link's answer.
        // SAFETY: `to` is a valid sockaddr_ll for its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const to).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Socket { fd, to })
    }

    /// Broadcast `arp` on the device; returns once the kernel queued it.
    pub fn send(&self, arp: &Arp) -> std::io::Result<()> {
        let frame = arp.encode();
        // SAFETY: the buffer and the address are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const self.to).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Send `arp` `count` more times from a detached process: the first after
    /// `first_in`, then `interval` apart. The process keeps this socket and the
    /// descriptors in `keep` open and closes every other; it is a grandchild, adopted by
    /// init, so nobody has to reap it.
    pub fn repeat_detached(
        &self,
        arp: &Arp,
        count: u32,
        first_in: Duration,
        interval: Duration,
        keep: &[std::os::fd::RawFd],
    ) -> std::io::Result<()> {
        // Everything the children use is prepared here: between fork(2) and _exit(2) a
        // child of a multi-threaded process may only make async-signal-safe calls.
        let frame = arp.encode();
        let fd = self.fd.as_raw_fd();
        let to = self.to;
        let to_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        let spec = |d: Duration| libc::timespec {
            tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(1),
            tv_nsec: libc::c_long::from(d.subsec_nanos()),
        };
        let (first, every) = (spec(first_in), spec(interval));
        let mut kept = [-1; 8];
        for (slot, k) in kept.iter_mut().zip(keep) {
            *slot = *k;
        }
        // SAFETY: sysconf is safe to call; the bound keeps the closing loop short.
        let open_max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) }.clamp(256, 65536) as i32;
        // SAFETY: fork(2); the children below call only setsid, fork, close, nanosleep,
        // sendto and _exit (async-signal-safe), on the copies of the values above.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: async-signal-safe calls only, in the forked child; it never returns.
            unsafe {
                libc::setsid();
                if libc::fork() != 0 {
                    libc::_exit(0);
                }
                for other in 0..open_max {
                    if other != fd && !kept.contains(&other) {
                        libc::close(other);
                    }
                }
                let mut wait = first;
                for _ in 0..count {
                    let mut rest = libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    };
                    while libc::nanosleep(&raw const wait, &raw mut rest) == -1 {
                        wait = rest;
                    }
                    libc::sendto(
                        fd,
                        frame.as_ptr().cast(),
                        frame.len(),
                        0,
                        (&raw const to).cast(),
                        to_len,
                    );
                    wait = every;
                }
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for the child just forked, which exits at once.
        unsafe { libc::waitpid(pid, &raw mut status, 0) };
        Ok(())
    }

    /// The next ARP packet another host sent on the device before `until`, or None when
    /// none came. Frames this node sent are not returned.
    pub fn receive(&self, until: Instant) -> std::io::Result<Option<Arp>> {
        let mut buf = [0u8; 256];
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&raw mut pfd, 1, ms) };
            if ready < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if ready == 0 {
                continue;
            }
            // SAFETY: sockaddr_ll is plain old data; recvfrom fills it.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: buf and from are valid for the lengths given.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&raw mut from).cast(),
                    &raw mut from_len,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) {
                    continue;
                }
                return Err(e);
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let len = usize::try_from(n).unwrap_or(0).min(buf.len());
            if let Some(arp) = Arp::decode(&buf[..len]) {
                return Ok(Some(arp));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0xc6, 0x89, 0x80, 0x4f, 0x31, 0xcc];

    #[test]
    fn a_probe_asks_from_nobody_and_an_announcement_from_the_address() {
        let a: Ipv4Addr = "172.20.0.1".parse().expect("ip");
        assert_eq!(
            Arp::probe(MAC, a).encode(),
            [
                0, 1, 8, 0, 6, 4, 0, 1, // Ethernet, IPv4, 6, 4, request
                0xc6, 0x89, 0x80, 0x4f, 0x31, 0xcc, 0, 0, 0, 0, // sender: nobody
                0, 0, 0, 0, 0, 0, 172, 20, 0, 1, // target
            ]
        );
        assert_eq!(
            Arp::announcement(MAC, a).encode()[14..18],
            [172, 20, 0, 1],
            "sender address"
        );
    }

    #[test]
    fn packets_decode_as_encoded_and_others_are_ignored() {
        let arp = Arp::announcement(MAC, "10.0.0.7".parse().expect("ip"));
        assert_eq!(Arp::decode(&arp.encode()), Some(arp));
        let mut reply = arp.encode();
        reply[7] = 2;
        assert_eq!(Arp::decode(&reply).map(|a| a.op), Some(2));
        assert_eq!(Arp::decode(&arp.encode()[..20]), None, "truncated");
        let mut ib = arp.encode();
        ib[1] = 32; // InfiniBand hardware type
        assert_eq!(Arp::decode(&ib), None);
        assert_eq!(mac_text(&MAC), "c6:89:80:4f:31:cc");
    }
}
