//! A guest-to-guest link's cable: the two guests' QEMU socket links meet in a relay on
//! the host's loopback, which a test can cut (a pulled cable, a dead switch port).

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A link's cable: each node's QEMU sends its frames to its own end (a UDP
/// socket on the host), which carries them to the other node's QEMU, until cut.
pub struct Cable {
    pub ends: [u16; 2],
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Cable {
    /// A cable between the QEMU link sockets on `nodes` (mn1's, mn2's port).
    pub fn new(nodes: [u16; 2]) -> Cable {
        let bind = || {
            let s = UdpSocket::bind("127.0.0.1:0").expect("cable end");
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
            s
        };
        let (a, b) = (bind(), bind());
        let ends = [
            a.local_addr().expect("addr").port(),
            b.local_addr().expect("addr").port(),
        ];
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (a2, b2) = (a.try_clone().expect("clone"), b.try_clone().expect("clone"));
        // What mn1 sends to its end leaves from mn2's end, and the other way round.
        let threads = [(a, b2, nodes[1]), (b, a2, nodes[0])]
            .into_iter()
            .map(|(from, out, to)| {
                let (cut, stop) = (cut.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 65536];
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(n) = from.recv(&mut buf)
                            && !cut.load(Ordering::Relaxed)
                        {
                            let _ = out.send_to(&buf[..n], ("127.0.0.1", to));
                        }
                    }
                })
            })
            .collect();
        Cable {
            ends,
            cut,
            stop,
            threads,
        }
    }

    /// Nothing passes any more, either way: both nodes run on, each alone.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
    }
}

impl Drop for Cable {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
