//! Telling the link that the service address has moved: ARP announcements (RFC 5227
//! section 2.3), which update every neighbour's cache entry and teach the switches the
//! new port. The first goes out before the address step reports done (a `sendto` that
//! returned has queued the frame on the device), the repeats from a thread while the
//! takeover goes on. `arping -U` cannot say when its first packet left, and does not exit
//! until a second after its last one.

use std::net::Ipv4Addr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::arp::{Arp, Socket};

/// Announcements in all, and the time between them: as `arping -U -c 3` sent them before.
pub const COUNT: u32 = 3;
pub const INTERVAL: Duration = Duration::from_secs(1);

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
    let socket = Socket::open(ifindex)?;
    let announcement = Arp::announcement(mac, address);
    socket.send(&announcement)?;
    info!(%address, ifindex, "announced (1 of {COUNT})");
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("announce".into())
        .spawn(move || {
            for n in 2..=COUNT {
                match stopped.recv_timeout(INTERVAL) {
                    Err(mpsc::RecvTimeoutError::Timeout) => match socket.send(&announcement) {
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
