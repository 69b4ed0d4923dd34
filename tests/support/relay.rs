//! A lossy, delaying UDP relay on 127.0.0.1 to put between a client and a BMC.
//!
//! Client datagrams go to the target; the target's replies go back to the
//! client address seen last.  Each datagram, in either direction, is dropped
//! with probability `loss`; the rest are delivered `delay` later.  Delivery
//! happens on its own thread so a delayed datagram never holds up the
//! receiving side of either direction.
//!
//! The drop decisions come from one seeded generator per direction, so the
//! same seed and the same traffic give the same drops (print the seed in a
//! failing test to reproduce it).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often blocked threads look at the stop flag; bounds Drop's latency.
const POLL: Duration = Duration::from_millis(20);
/// Datagrams waiting for delivery beyond this are dropped, so a flood cannot
/// grow memory without bound.
const MAX_QUEUED: usize = 4096;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub to_target_forwarded: u64,
    pub to_target_dropped: u64,
    pub to_client_forwarded: u64,
    pub to_client_dropped: u64,
}

pub struct LossyRelay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

#[derive(Clone, Copy)]
enum Dir {
    ToTarget,
    ToClient,
}

struct Pending {
    due: Instant,
    dir: Dir,
    data: Vec<u8>,
}

struct Shared {
    stop: AtomicBool,
    /// FIFO is enough: every datagram gets the same delay, so due times are
    /// non-decreasing in arrival order.
    queue: Mutex<VecDeque<Pending>>,
    wake: Condvar,
    client: Mutex<Option<SocketAddr>>,
    counters: [AtomicU64; 4],
}

impl LossyRelay {
    pub fn start(
        target: SocketAddr,
        loss: f64,
        delay: Duration,
        seed: u64,
    ) -> io::Result<LossyRelay> {
        if !(0.0..=1.0).contains(&loss) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("loss {loss} not in 0..=1"),
            ));
        }
        // Client-facing socket; the target-facing one is connected so only the
        // target's datagrams reach it.
        let front = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let back = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        back.connect(target)?;
        front.set_read_timeout(Some(POLL))?;
        back.set_read_timeout(Some(POLL))?;
        let addr = front.local_addr()?;

        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            client: Mutex::new(None),
            counters: Default::default(),
        });

        let front = Arc::new(front);
        let back = Arc::new(back);
        let mut threads = Vec::new();
        {
            let (sock, shared) = (front.clone(), shared.clone());
            let rng = SplitMix64::new(seed ^ 0x746f_7461_7267_6574); // "totarget"
            threads.push(spawn("relay-from-client", move || {
                receive(&sock, Dir::ToTarget, loss, delay, rng, &shared)
            })?);
        }
        {
            let (sock, shared) = (back.clone(), shared.clone());
            let rng = SplitMix64::new(seed ^ 0x746f_636c_6965_6e74); // "toclient"
            threads.push(spawn("relay-from-target", move || {
                receive(&sock, Dir::ToClient, loss, delay, rng, &shared)
            })?);
        }
        {
            let shared = shared.clone();
            threads.push(spawn("relay-deliver", move || {
                deliver(&front, &back, &shared)
            })?);
        }
        Ok(LossyRelay {
            addr,
            shared,
            threads,
        })
    }

    /// Where clients should send (127.0.0.1:<ephemeral port>).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What happened so far, e.g. to assert that loss really was exercised.
    pub fn stats(&self) -> RelayStats {
        let c = |i: usize| self.shared.counters[i].load(Ordering::Relaxed);
        RelayStats {
            to_target_forwarded: c(0),
            to_target_dropped: c(1),
            to_client_forwarded: c(2),
            to_client_dropped: c(3),
        }
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name.into()).spawn(f)
}

fn receive(
    sock: &UdpSocket,
    dir: Dir,
    loss: f64,
    delay: Duration,
    mut rng: SplitMix64,
    shared: &Shared,
) {
    let counter = |dropped: bool| match (dir, dropped) {
        (Dir::ToTarget, false) => &shared.counters[0],
        (Dir::ToTarget, true) => &shared.counters[1],
        (Dir::ToClient, false) => &shared.counters[2],
        (Dir::ToClient, true) => &shared.counters[3],
    };
    // Max UDP payload: IPMI datagrams are small, but truncating would corrupt.
    let mut buf = vec![0u8; 65536];
    while !shared.stop.load(Ordering::Relaxed) {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            // Timeouts let us see the stop flag.  ECONNREFUSED on the connected
            // back socket just means the target is down (e.g. kill_bmc):
            // keep relaying so it can come back.
            Err(_) => continue,
        };
        if let Dir::ToTarget = dir {
            *shared.client.lock().unwrap() = Some(from);
        }
        // Draw for every datagram, dropped or not, so the decision sequence
        // depends only on the seed and the datagram count.
        let dropped = rng.next_f64() < loss;
        counter(dropped).fetch_add(1, Ordering::Relaxed);
        if dropped {
            continue;
        }
        let mut q = shared.queue.lock().unwrap();
        if q.len() >= MAX_QUEUED {
            continue;
        }
        q.push_back(Pending {
            due: Instant::now() + delay,
            dir,
            data: buf[..n].to_vec(),
        });
        drop(q);
        shared.wake.notify_one();
    }
}

fn deliver(front: &UdpSocket, back: &UdpSocket, shared: &Shared) {
    let mut q = shared.queue.lock().unwrap();
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        match q.front() {
            Some(p) if p.due <= now => {
                let p = q.pop_front().expect("front exists");
                // Send without the lock so receivers are never blocked on I/O.
                drop(q);
                let _ = match p.dir {
                    Dir::ToTarget => back.send(&p.data),
                    Dir::ToClient => match *shared.client.lock().unwrap() {
                        Some(client) => front.send_to(&p.data, client),
                        None => Ok(0),
                    },
                };
                q = shared.queue.lock().unwrap();
            }
            Some(p) => {
                let wait = p.due - now;
                q = shared.wake.wait_timeout(q, wait.min(POLL)).unwrap().0;
            }
            None => {
                q = shared.wake.wait_timeout(q, POLL).unwrap().0;
            }
        }
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, seedable with any u64, and good
/// enough for coin flips; avoids a rand dependency for test support.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1): the top 53 bits as a double's mantissa.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}
