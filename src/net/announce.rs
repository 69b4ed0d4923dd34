//! Telling the link that the service address has moved: ARP announcements (RFC 5227
//! section 2.3), which update every neighbour's cache entry and teach the switches the
//! new port. The first goes out before the address step reports done (a `sendto` that
//! returned has queued the frame on the device), the repeats from a thread while the
//! takeover goes on, and, once it is done, from a small detached process (see
//! [`Announcer::detach`]). `arping -U` cannot say when its first packet left, and does
//! not exit until a second after its last one.

use std::net::Ipv4Addr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::arp::{Arp, Socket};

/// Announcements in all, and the time between them: as `arping -U -c 3` sent them before.
pub const COUNT: u32 = 3;
pub const INTERVAL: Duration = Duration::from_secs(1);

/// What the repeating thread is told to do.
#[derive(Debug)]
enum Order {
    /// Stop sending and hand the rest over (the takeover is done).
    HandOver,
}

/// What is left to send when the thread stops.
struct Left {
    socket: Socket,
    announcement: Arp,
    sent: u32,
    last: Instant,
}

/// The repeats of an announcement whose first packet went out. Dropping it stops them
/// (the takeover failed after the address step: the address is not to be advertised any
/// more); [`Announcer::detach`] hands them to a process of their own.
#[derive(Debug)]
pub struct Announcer {
    stop: Option<mpsc::Sender<Order>>,
    thread: Option<JoinHandle<Left>>,
}

/// Send the first announcement now and the repeats from a thread.
pub fn start(ifindex: u32, mac: [u8; 6], address: Ipv4Addr) -> std::io::Result<Announcer> {
    let socket = Socket::open(ifindex)?;
    let announcement = Arp::announcement(mac, address);
    socket.send(&announcement)?;
    let first = Instant::now();
    info!(%address, ifindex, "announced (1 of {COUNT})");
    let (stop, orders) = mpsc::channel::<Order>();
    let thread = std::thread::Builder::new()
        .name("announce".into())
        .spawn(move || {
            let mut left = Left {
                socket,
                announcement,
                sent: 1,
                last: first,
            };
            while left.sent < COUNT {
                let wait = INTERVAL.saturating_sub(left.last.elapsed());
                match orders.recv_timeout(wait) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        left.sent += 1;
                        left.last = Instant::now();
                        match left.socket.send(&left.announcement) {
                            Ok(()) => debug!(%address, "announced ({} of {COUNT})", left.sent),
                            Err(e) => {
                                warn!(%address, error = %e, "a repeated announcement failed");
                            }
                        }
                    }
                    Ok(Order::HandOver) => return left,
                    // The handle is gone: the takeover did not complete.
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        info!(%address, "announcements stopped after {} of {COUNT}", left.sent);
                        left.sent = COUNT;
                        return left;
                    }
                }
            }
            left
        })?;
    Ok(Announcer {
        stop: Some(stop),
        thread: Some(thread),
    })
}

impl Announcer {
    /// The takeover is done: send the repeats still due from a detached process, so that
    /// hamn (and the cluster's start action that waits for it) need not stay for them.
    /// The process inherits every open descriptor, the run's lock among them, so no
    /// other takeover or giveback starts before the last repeat went out. Where it
    /// cannot be started, the repeats are sent from here. `keep`: the descriptors the
    /// process keeps open besides its socket (the run's lock); it closes every other,
    /// so that nobody waiting for the end of hamn's output waits for it.
    pub fn detach(mut self, keep: &[std::os::fd::RawFd]) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        if let Some(stop) = &self.stop {
            let _ = stop.send(Order::HandOver);
        }
        let Ok(left) = thread.join() else {
            return;
        };
        let remaining = COUNT.saturating_sub(left.sent);
        if remaining == 0 {
            return;
        }
        let first_in = INTERVAL.saturating_sub(left.last.elapsed());
        if let Err(e) =
            left.socket
                .repeat_detached(&left.announcement, remaining, first_in, INTERVAL, keep)
        {
            warn!(error = %e, "cannot hand the announcements over: sending them from here");
            let mut wait = first_in;
            for _ in 0..remaining {
                std::thread::sleep(wait);
                if let Err(e) = left.socket.send(&left.announcement) {
                    warn!(error = %e, "a repeated announcement failed");
                }
                wait = INTERVAL;
            }
            return;
        }
        debug!(
            remaining,
            "announcement repeats handed to a detached process"
        );
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
