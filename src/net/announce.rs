//! Telling the link that the service address has moved: ARP announcements (RFC 5227
//! section 2.3: an ARP request whose sender and target protocol address are both the
//! address, sent to the broadcast address), which update every neighbour's cache entry
//! and teach the switches the new port. hamn sends them itself through a packet socket:
//! the first before the address step reports done (a `sendto` that returned has queued
//! the frame on the device), the repeats from a thread while the takeover goes on.
//! `arping -U` cannot say when its first packet left, and does not exit until a second
//! after its last one.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{debug, info, warn};

/// Announcements in all, and the time between them: as `arping -U -c 3` sent them before.
pub const COUNT: u32 = 3;
pub const INTERVAL: Duration = Duration::from_secs(1);

const ETH_P_ARP: u16 = 0x0806;

/// The announcement's ARP payload (RFC 826 layout; the kernel adds the Ethernet header).
fn frame(mac: [u8; 6], address: Ipv4Addr) -> [u8; 28] {
    let mut f = [0u8; 28];
    f[0..2].copy_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
    f[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol type: IPv4
    f[4] = 6;
    f[5] = 4;
    f[6..8].copy_from_slice(&1u16.to_be_bytes()); // request
    f[8..14].copy_from_slice(&mac);
    f[14..18].copy_from_slice(&address.octets());
    // Target hardware address: zero, ignored in an announcement.
    f[24..28].copy_from_slice(&address.octets());
    f
}

/// A packet socket bound to nothing, sending ARP on one device.
struct Sender {
    fd: OwnedFd,
    to: libc::sockaddr_ll,
    frame: [u8; 28],
}

impl Sender {
    fn open(ifindex: u32, mac: [u8; 6], address: Ipv4Addr) -> std::io::Result<Sender> {
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
        Ok(Sender {
            fd,
            to,
            frame: frame(mac, address),
        })
    }

    fn send(&self) -> std::io::Result<()> {
        // SAFETY: the buffer and the address are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                self.frame.as_ptr().cast(),
                self.frame.len(),
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
}

/// The repeats of an announcement whose first packet went out. Dropping it stops them
/// (the takeover failed after the address step: the address is not to be advertised any
/// more); [`Announcer::finish`] lets them run to the end.
#[derive(Debug)]
pub struct Announcer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Send the first announcement now and the repeats from a thread.
pub fn start(ifindex: u32, mac: [u8; 6], address: Ipv4Addr) -> std::io::Result<Announcer> {
    let sender = Sender::open(ifindex, mac, address)?;
    sender.send()?;
    info!(%address, ifindex, "announced (1 of {COUNT})");
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("announce".into())
        .spawn(move || {
            for n in 2..=COUNT {
                match stopped.recv_timeout(INTERVAL) {
                    Err(mpsc::RecvTimeoutError::Timeout) => match sender.send() {
                        Ok(()) => debug!(%address, "announced ({n} of {COUNT})"),
                        Err(e) => warn!(%address, error = %e, "a repeated announcement failed"),
                    },
                    // Stopped, or the handle is gone: the takeover did not complete.
                    _ => {
                        info!(%address, "announcements stopped after {} of {COUNT}", n - 1);
                        return;
                    }
                }
            }
        })?;
    Ok(Announcer {
        stop: Some(stop),
        thread: Some(thread),
    })
}

impl Announcer {
    /// Wait until every repeat was sent (at most `(COUNT - 1) * INTERVAL` after the first).
    pub fn finish(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_announcement_is_an_arp_request_for_the_address_from_itself() {
        let f = frame(
            [0xc6, 0x89, 0x80, 0x4f, 0x31, 0xcc],
            Ipv4Addr::new(172, 20, 0, 1),
        );
        assert_eq!(
            f,
            [
                0, 1, 8, 0, 6, 4, 0, 1, // Ethernet, IPv4, 6, 4, request
                0xc6, 0x89, 0x80, 0x4f, 0x31, 0xcc, 172, 20, 0, 1, // sender
                0, 0, 0, 0, 0, 0, 172, 20, 0, 1, // target
            ]
        );
    }
}
