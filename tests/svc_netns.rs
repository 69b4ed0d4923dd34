//! The service IP between two network namespaces joined by a veth pair, and services with
//! small shell-free commands.
//!
//! Namespace "a" is the standby running hamn; namespace "b" is the link's other side: a
//! client, or the old primary still holding the address. hamn's functions run in "a" on a
//! thread that entered it with setns(2): the thread's netlink and packet sockets and its
//! children (`arping`) belong to that namespace, and the host's interfaces are never
//! touched. The namespace tests need
//! root, `ip` (iproute2), `arping` (iputils-arping) and `ping` (iputils-ping); without
//! them they print SKIP (and fail when CI is set). The service tests need nothing.

mod support;

use support::{sh, sh_ok};

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use hamn::config::ServiceIpConfig;
use hamn::fence::Fenced;
use hamn::net::{self, IpOutcome, NetError, ServiceIp};
use hamn::svc::{self, Service, StartOutcome, SvcError};
use support::{require_tool, skip_or_panic};

fn fenced() -> Fenced {
    Fenced::for_tests("mn1")
}

fn netns_possible() -> bool {
    if !nix::unistd::geteuid().is_root() {
        skip_or_panic("network namespaces need root");
        return false;
    }
    ["ip", "arping", "ping"].iter().all(|t| require_tool(t))
}

/// Two namespaces and a veth pair between them, removed on drop (deleting a namespace
/// deletes its end of the pair, and with it the other end).
struct Link {
    a: String,
    b: String,
    va: String,
    vb: String,
}

impl Link {
    /// `tag` keeps the names of concurrently running tests apart; the pid keeps them apart
    /// from other runs. Interface names stay within the kernel's 15 characters.
    fn new(tag: &str) -> Link {
        let pid = std::process::id();
        let link = Link {
            a: format!("hamn-svc-{pid}-{tag}-a"),
            b: format!("hamn-svc-{pid}-{tag}-b"),
            va: format!("ha{pid}{tag}"),
            vb: format!("hb{pid}{tag}"),
        };
        sh_ok("ip", &["netns", "add", &link.a]);
        sh_ok("ip", &["netns", "add", &link.b]);
        // Created inside the namespaces directly, never in the host's.
        sh_ok(
            "ip",
            &[
                "link", "add", &link.va, "netns", &link.a, "type", "veth", "peer", "name",
                &link.vb, "netns", &link.b,
            ],
        );
        for (ns, dev) in [(&link.a, &link.va), (&link.b, &link.vb)] {
            sh_ok("ip", &["-n", ns, "link", "set", "lo", "up"]);
            sh_ok("ip", &["-n", ns, "link", "set", dev, "up"]);
        }
        link
    }

    fn mac(ns: &str, dev: &str) -> String {
        let json = sh_ok("ip", &["-n", ns, "-j", "link", "show", "dev", dev]);
        let v: serde_json::Value = serde_json::from_str(&json).expect("ip -j link");
        v[0]["address"]
            .as_str()
            .expect("a MAC")
            .to_ascii_lowercase()
    }

    fn mac_a(&self) -> String {
        Self::mac(&self.a, &self.va)
    }

    fn mac_b(&self) -> String {
        Self::mac(&self.b, &self.vb)
    }

    fn ip_b(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.b.as_str()];
        all.extend_from_slice(args);
        sh_ok("ip", &all)
    }

    /// Run `f` in namespace "a" on its own thread.
    fn in_a<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.a);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                // SAFETY: setns(2) on a descriptor we own; it changes only this thread's
                // network namespace, and the thread ends with the scope.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// The service address on "a"'s end of the link.
    fn service_ip(&self, address: &str) -> ServiceIp {
        ServiceIp::parse(&ServiceIpConfig {
            address: address.into(),
            interface: self.va.clone(),
        })
        .expect("service ip")
    }

    /// The MAC "b" has in its neighbour table for `addr`, if any.
    fn b_neighbour(&self, addr: &str) -> Option<String> {
        let json = self.ip_b(&["-j", "neigh", "show", addr, "dev", &self.vb]);
        let v: serde_json::Value = serde_json::from_str(&json).expect("ip -j neigh");
        v.get(0)?
            .get("lladdr")?
            .as_str()
            .map(str::to_ascii_lowercase)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = sh("ip", &["netns", "del", &self.a]);
        let _ = sh("ip", &["netns", "del", &self.b]);
    }
}

#[test]
fn a_free_address_comes_up_and_clients_learn_the_new_mac() {
    if !netns_possible() {
        return;
    }
    let link = Link::new("1");
    link.ip_b(&["addr", "add", "10.201.0.2/24", "dev", &link.vb]);
    // A client whose cache still points at the old primary, as after a failover.
    let old_mac = "02:00:5e:00:00:01";
    link.ip_b(&[
        "neigh",
        "replace",
        "10.201.0.1",
        "lladdr",
        old_mac,
        "dev",
        &link.vb,
        "nud",
        "stale",
    ]);
    assert_eq!(link.b_neighbour("10.201.0.1").as_deref(), Some(old_mac));

    let ip = link.service_ip("10.201.0.1/24");
    let (present_before, answers, outcome, present_after) = link.in_a(|| {
        (
            net::ip_present(&ip).expect("ip_present"),
            net::someone_else_answers(&ip).expect("probe"),
            net::bring_up(&ip, &fenced(), None)
                .expect("bring_up")
                .outcome,
            net::ip_present(&ip).expect("ip_present"),
        )
    });
    assert!(!present_before);
    assert_eq!(answers, None);
    assert_eq!(outcome, IpOutcome::Added);
    assert!(present_after);

    // Only the gratuitous ARP can have changed the client's entry: it sent nothing.
    assert_eq!(link.b_neighbour("10.201.0.1"), Some(link.mac_a()));
    let ping = sh(
        "ip",
        &[
            "netns",
            "exec",
            &link.b,
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "10.201.0.1",
        ],
    );
    assert!(ping.status.success(), "{ping:?}");
}

#[test]
fn an_address_another_node_holds_is_refused_naming_its_mac() {
    if !netns_possible() {
        return;
    }
    let link = Link::new("2");
    // The old primary, still alive with the service address.
    link.ip_b(&["addr", "add", "10.202.0.1/24", "dev", &link.vb]);
    let ip = link.service_ip("10.202.0.1/24");
    let (answers, result, present) = link.in_a(|| {
        (
            net::someone_else_answers(&ip).expect("probe"),
            net::bring_up(&ip, &fenced(), None).map(|up| up.outcome),
            net::ip_present(&ip).expect("ip_present"),
        )
    });
    let mac_b = link.mac_b();
    assert_eq!(answers.as_deref(), Some(mac_b.as_str()));
    let e = result.expect_err("must refuse");
    assert!(matches!(e, NetError::AddressInUse { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&mac_b) && msg.contains("10.202.0.1"), "{msg}");
    assert!(
        msg.contains(&link.va) && msg.contains("old primary"),
        "{msg}"
    );
    assert!(!present, "the address must not have been added");
}

/// Two nodes taking over at the same moment both probe before either has the address:
/// a probe for it from another MAC is a conflict too (RFC 5227 section 2.1.1).
#[test]
fn another_node_probing_for_the_address_at_the_same_moment_is_a_conflict() {
    if !netns_possible() {
        return;
    }
    let link = Link::new("8");
    link.ip_b(&["addr", "add", "10.208.0.2/24", "dev", &link.vb]);
    let ip = link.service_ip("10.208.0.1/24");
    // "b" probes for the address all the while: two arpings, one probe a second each,
    // half a second apart, so that any half second holds a probe.
    let arping = || {
        std::process::Command::new("ip")
            .args([
                "netns", "exec", &link.b, "arping", "-D", "-c", "10", "-w", "10",
            ])
            .args(["-I", &link.vb, "10.208.0.1"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("arping in b")
    };
    let mut others = vec![arping()];
    std::thread::sleep(Duration::from_millis(500));
    others.push(arping());
    let result = link.in_a(|| net::bring_up(&ip, &fenced(), None).map(|up| up.outcome));
    for mut other in others {
        let _ = other.kill();
        let _ = other.wait();
    }
    let e = result.expect_err("conflict");
    let msg = e.to_string();
    assert!(
        msg.contains(&link.mac_b()) && msg.contains("at the same moment"),
        "{msg}"
    );
    assert!(!link.in_a(|| net::ip_present(&ip)).expect("ip_present"));
}

#[test]
fn bringing_up_twice_changes_nothing_and_take_down_removes_it() {
    if !netns_possible() {
        return;
    }
    let link = Link::new("3");
    link.ip_b(&["addr", "add", "10.203.0.2/24", "dev", &link.vb]);
    let ip = link.service_ip("10.203.0.1/24");
    link.in_a(|| {
        assert_eq!(
            net::bring_up(&ip, &fenced(), None).expect("first").outcome,
            IpOutcome::Added
        );
        assert_eq!(
            net::bring_up(&ip, &fenced(), None).expect("second").outcome,
            IpOutcome::AlreadyPresent
        );
        let json = sh_ok("ip", &["-j", "addr", "show", "dev", &ip.interface]);
        assert_eq!(json.matches("10.203.0.1").count(), 1, "{json}");
        net::take_down(&ip).expect("take_down");
        assert!(!net::ip_present(&ip).expect("ip_present"));
        net::take_down(&ip).expect("absent is fine");
    });
}

#[test]
fn an_alias_address_comes_up_with_its_label_as_xcat_configures_it() {
    if !netns_possible() {
        return;
    }
    let link = Link::new("9");
    link.ip_b(&["addr", "add", "10.206.0.2/24", "dev", &link.vb]);
    let alias = ServiceIp::parse(&ServiceIpConfig {
        address: "10.206.0.1/24".into(),
        interface: format!("{}:0", link.va),
    })
    .expect("service ip");
    let shown = link.in_a(|| {
        let up = net::bring_up(&alias, &fenced(), None).expect("bring_up");
        assert_eq!(up.outcome, IpOutcome::Added);
        sh_ok("ip", &["-j", "addr", "show", "dev", &link.va])
    });
    let v: serde_json::Value = serde_json::from_str(&shown).expect("ip -j addr");
    let info = v[0]["addr_info"]
        .as_array()
        .expect("addr_info")
        .iter()
        .find(|a| a["local"] == "10.206.0.1")
        .unwrap_or_else(|| panic!("10.206.0.1 not on {}: {shown}", link.va));
    assert_eq!(info["prefixlen"], 24, "{shown}");
    assert_eq!(info["label"], format!("{}:0", link.va), "{shown}");
    link.in_a(|| net::take_down(&alias).expect("take_down"));
    let after = link.in_a(|| sh_ok("ip", &["-j", "addr", "show", "dev", &link.va]));
    assert!(!after.contains("10.206.0.1"), "{after}");
}

#[test]
fn an_ipv6_address_waits_for_the_kernels_dad_and_a_taken_one_is_refused_and_removed() {
    if !netns_possible() {
        return;
    }
    let link = Link::new("a");
    // "b" holds fd00:207::2, as an old primary would (its own DAD done, so that it
    // defends the address); fd00:207::1 is free.
    link.ip_b(&["addr", "add", "fd00:207::2/64", "dev", &link.vb]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while link
        .ip_b(&["addr", "show", "dev", &link.vb, "tentative"])
        .contains("fd00:207::2")
    {
        assert!(Instant::now() < deadline, "b's own DAD never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    let free = link.service_ip("fd00:207::1/64");
    let taken = link.service_ip("fd00:207::2/64");
    let (up, held, refused, left) = link.in_a(|| {
        let up = net::bring_up(&free, &fenced(), None).map(|u| u.outcome);
        let shown = sh_ok("ip", &["-j", "addr", "show", "dev", &free.interface]);
        let refused = net::bring_up(&taken, &fenced(), None).map(|u| u.outcome);
        let left = sh_ok("ip", &["-j", "addr", "show", "dev", &free.interface]);
        (up, shown, refused, left)
    });
    assert_eq!(up.expect("the free address"), IpOutcome::Added);
    let v: serde_json::Value = serde_json::from_str(&held).expect("ip -j addr");
    let info = v[0]["addr_info"]
        .as_array()
        .expect("addr_info")
        .iter()
        .find(|a| a["local"] == "fd00:207::1")
        .unwrap_or_else(|| panic!("fd00:207::1 not there: {held}"));
    assert!(info.get("tentative").is_none(), "DAD still running: {held}");
    let e = refused.expect_err("the taken address");
    assert!(matches!(e, NetError::AddressInUse { .. }), "{e}");
    assert!(e.to_string().contains("fd00:207::2"), "{e}");
    assert!(
        !left.contains("fd00:207::2"),
        "the duplicate stayed: {left}"
    );
}

#[test]
fn links_and_interfaces_that_cannot_serve_are_refused() {
    if !netns_possible() {
        return;
    }
    let link = Link::new("4");
    let ip = link.service_ip("10.204.0.1/24");
    let wrong_prefix = link.service_ip("10.204.0.5/24");
    let elsewhere = link.service_ip("10.204.0.9/24");
    let missing = ServiceIp::parse(&ServiceIpConfig {
        address: "10.204.0.1/24".into(),
        interface: "hamnnope0".into(),
    })
    .expect("parses");
    link.in_a(|| {
        sh_ok(
            "ip",
            &["addr", "add", "10.204.0.5/25", "dev", &ip.interface],
        );
        sh_ok("ip", &["addr", "add", "10.204.0.9/32", "dev", "lo"]);
        let e = net::bring_up(&wrong_prefix, &fenced(), None).unwrap_err();
        assert!(
            matches!(e, NetError::PrefixMismatch { found: 25, .. }),
            "{e}"
        );
        let e = net::bring_up(&elsewhere, &fenced(), None).unwrap_err();
        assert!(e.to_string().contains("already configured on lo"), "{e}");
        let e = net::bring_up(&missing, &fenced(), None).unwrap_err();
        assert!(e.to_string().contains("hamnnope0 does not exist"), "{e}");
    });
    // The other end down: arping would hear nobody and call any address free.
    link.ip_b(&["link", "set", &link.vb, "down"]);
    let e = link
        .in_a(|| net::bring_up(&ip, &fenced(), None).map(|up| up.outcome))
        .unwrap_err();
    assert!(e.to_string().contains("no carrier"), "{e}");
    assert!(!link.in_a(|| net::ip_present(&ip)).expect("ip_present"));
}

/// One ARP frame heard on "b"'s end of the link.
#[derive(Debug, Clone)]
struct Heard {
    at: std::time::SystemTime,
    sender_mac: String,
    sender_ip: std::net::Ipv4Addr,
    target_ip: std::net::Ipv4Addr,
}

impl Heard {
    /// An RFC 5227 probe: "who has", from nobody.
    fn is_probe_for(&self, addr: std::net::Ipv4Addr) -> bool {
        self.sender_ip.is_unspecified() && self.target_ip == addr
    }

    fn is_announcement_of(&self, addr: std::net::Ipv4Addr) -> bool {
        self.sender_ip == addr && self.target_ip == addr
    }
}

impl Link {
    /// Listen for ARP on "b"'s end for `secs` seconds, from a thread in "b"; returns once
    /// the socket is open, and the thread's handle gives what was heard.
    fn listen_b(&self, secs: f64) -> std::thread::JoinHandle<Vec<Heard>> {
        let path = format!("/run/netns/{}", self.b);
        let (ready, opened) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns(2) on a descriptor we own; only this thread changes namespace.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            // SAFETY: plain socket(2); the descriptor is closed below.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_DGRAM,
                    i32::from(0x0806u16.to_be()),
                )
            };
            assert!(
                fd >= 0,
                "packet socket: {}",
                std::io::Error::last_os_error()
            );
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            // SAFETY: a valid timeval for SO_RCVTIMEO on our descriptor.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&raw const tv).cast(),
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                )
            };
            let _ = ready.send(());
            let mut heard = Vec::new();
            let end = Instant::now() + Duration::from_secs_f64(secs);
            let mut buf = [0u8; 128];
            while Instant::now() < end {
                // SAFETY: buf is valid for its length.
                let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 28 {
                    continue;
                }
                let ip =
                    |o: usize| std::net::Ipv4Addr::new(buf[o], buf[o + 1], buf[o + 2], buf[o + 3]);
                heard.push(Heard {
                    at: std::time::SystemTime::now(),
                    sender_mac: buf[8..14]
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":"),
                    sender_ip: ip(14),
                    target_ip: ip(24),
                });
            }
            // SAFETY: closing the descriptor opened above.
            unsafe { libc::close(fd) };
            heard
        });
        opened.recv().expect("listener started");
        handle
    }
}

/// Runs `steps` through the takeover engine in "a", taking over from mn1 on the admin's
/// word, with the journal in `dir`.
fn engine_in_a(
    link: &Link,
    dir: &Path,
    steps: Vec<hamn::takeover::step::Step>,
) -> Result<hamn::takeover::run::RunOutcome, String> {
    use hamn::takeover::run::{Context, Flow, run};
    let journal = dir.join("takeover.json");
    link.in_a(|| {
        let ctx = Context {
            flow: Flow::San,
            peer: "mn1".into(),
            peer_cfg: None,
            cfg: None,
            journal,
        };
        run(&ctx, &steps, &mut |_| {}).map_err(|e| e.to_string())
    })
}

fn vouched() -> hamn::takeover::step::Step {
    hamn::takeover::step::Step::FenceOverride {
        peer: "mn1".into(),
        statement: "svc_netns test".into(),
    }
}

/// The duplicate address check starts once fencing is done and runs while the filesystems
/// are checked (here a step that takes 1.5 s stands for the checks); when it heard the old
/// primary, the takeover stops at the service address without adding it, names the MAC
/// that answered, and the journal shows that step failed.
#[test]
fn an_address_found_taken_while_the_checks_run_stops_the_takeover_before_it_is_added() {
    if !netns_possible() {
        return;
    }
    use hamn::takeover::step::Step;
    let link = Link::new("5");
    link.ip_b(&["addr", "add", "10.205.0.1/24", "dev", &link.vb]);
    let ip = link.service_ip("10.205.0.1/24");
    let dir = tempfile::tempdir().expect("tmp");
    let listener = link.listen_b(6.0);
    let steps = vec![
        vouched(),
        Step::Service {
            service: service("checks", &["sleep", "1.5"], &[], &[], 10.0),
        },
        Step::ServiceIp { ip: ip.clone() },
    ];
    let e = engine_in_a(&link, dir.path(), steps).expect_err("refused");
    let mac_b = link.mac_b();
    let msg = e;
    assert!(
        msg.contains(&mac_b) && msg.contains("10.205.0.1") && msg.contains("old primary"),
        "{msg}"
    );
    assert!(!link.in_a(|| net::ip_present(&ip)).expect("ip_present"));
    let j: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("takeover.json")).expect("journal"),
    )
    .expect("JSON");
    let entries = j["entries"].as_array().expect("entries");
    let last = entries.last().expect("an entry");
    assert_eq!(last["step"], "service-ip 10.205.0.1/24", "{j:#}");
    assert_eq!(last["state"], "failed", "{j:#}");
    assert!(
        last["detail"].as_str().unwrap_or("").contains(&mac_b),
        "{j:#}"
    );
    // The probe went out while the stand-in for the checks ran, not after it.
    let checks_done = entries
        .iter()
        .find(|e| e["step"] == "service checks" && e["state"] == "done")
        .and_then(|e| e["at"].as_f64())
        .expect("the checks' step is done");
    let heard = listener.join().expect("listener");
    let first_probe = heard
        .iter()
        .find(|h| h.is_probe_for("10.205.0.1".parse().expect("ip")))
        .unwrap_or_else(|| panic!("no ARP probe heard: {heard:?}"));
    let probe_at = first_probe
        .at
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        probe_at < checks_done,
        "the probe ({probe_at}) waited for the checks (done at {checks_done})"
    );
}

/// The old primary hung but its kernel still answers ARP until the BMC powers it off.
/// The check started with the takeover hears it; that is no verdict, since the peer was
/// not fenced yet: once it is, the check probes again, hears nobody, and the address
/// comes up.
#[test]
fn an_answer_heard_before_the_fence_means_probing_again_after_it() {
    if !netns_possible() {
        return;
    }
    let address: std::net::Ipv4Addr = "10.207.0.1".parse().expect("ip");
    let link = Link::new("b");
    link.ip_b(&["addr", "add", "10.207.0.1/24", "dev", &link.vb]);
    let ip = link.service_ip("10.207.0.1/24");
    let listener = link.listen_b(4.0);
    let (fenced_at, outcome) = link.in_a(|| {
        let early = net::start_probe(&ip).expect("probe started");
        std::thread::sleep(Duration::from_millis(400));
        // The BMC powers the old primary off: its address goes with it.
        link.ip_b(&["addr", "del", "10.207.0.1/24", "dev", &link.vb]);
        let fenced_at = std::time::SystemTime::now();
        let probe = early
            .after_fencing(&ip, &fenced())
            .expect("tied to the fence");
        let up = net::bring_up(&ip, &fenced(), Some(probe)).map(|up| up.outcome);
        (fenced_at, up)
    });
    assert_eq!(outcome.expect("the address comes up"), IpOutcome::Added);
    let heard = listener.join().expect("listener");
    let mac_a = link.mac_a();
    let probes = |after: bool| {
        heard
            .iter()
            .filter(|h| h.sender_mac == mac_a && h.is_probe_for(address))
            .filter(|h| (h.at > fenced_at) == after)
            .count()
    };
    // The early check stopped probing when the old primary answered (its answer is
    // unicast to "a", so this side hears only the probes).
    let probes_before = probes(false);
    assert!(
        (1..hamn::net::PROBES as usize).contains(&probes_before),
        "the early check heard the answer and stopped: {heard:?}"
    );
    let probes_after = probes(true);
    assert_eq!(
        probes_after,
        hamn::net::PROBES as usize,
        "a whole probe after the fence: {heard:?}"
    );
}

/// On a quiet link (the old primary crashed) the check that started with the takeover
/// and listened past the fence is the verdict: the address comes up without probing
/// twice.
#[test]
fn silence_that_outlasts_the_fence_is_the_verdict() {
    if !netns_possible() {
        return;
    }
    let address: std::net::Ipv4Addr = "10.208.0.1".parse().expect("ip");
    let link = Link::new("c");
    let ip = link.service_ip("10.208.0.1/24");
    let listener = link.listen_b(3.0);
    let outcome = link.in_a(|| {
        let early = net::start_probe(&ip).expect("probe started");
        // Fencing confirmed at once (a quick BMC), while the check still listens.
        let probe = early
            .after_fencing(&ip, &fenced())
            .expect("tied to the fence");
        net::bring_up(&ip, &fenced(), Some(probe)).map(|up| up.outcome)
    });
    assert_eq!(outcome.expect("the address comes up"), IpOutcome::Added);
    let heard = listener.join().expect("listener");
    let mac_a = link.mac_a();
    let probes = heard
        .iter()
        .filter(|h| h.sender_mac == mac_a && h.is_probe_for(address))
        .count();
    assert_eq!(
        probes,
        hamn::net::PROBES as usize,
        "one probe only: {heard:?}"
    );
}

/// The first announcement goes out before the address step is done; when the takeover
/// then fails (a service that does not start), the repeats stop. A takeover that
/// completes returns at once and leaves the repeats to a detached process that holds
/// the run's lock: a giveback started right after waits for the last one.
#[test]
fn a_takeover_that_fails_after_the_announcement_stops_its_repeats() {
    if !netns_possible() {
        return;
    }
    use hamn::takeover::step::Step;
    let address: std::net::Ipv4Addr = "10.206.0.1".parse().expect("ip");
    let announced_by = |heard: &[Heard], mac: &str| {
        heard
            .iter()
            .filter(|h| h.is_announcement_of(address) && h.sender_mac == mac)
            .count()
    };

    let link = Link::new("6");
    link.ip_b(&["addr", "add", "10.206.0.2/24", "dev", &link.vb]);
    let ip = link.service_ip("10.206.0.1/24");
    let dir = tempfile::tempdir().expect("tmp");
    let listener = link.listen_b(4.0);
    let steps = vec![
        vouched(),
        Step::ServiceIp { ip: ip.clone() },
        Step::Service {
            service: service("xcatd", &["false"], &[], &[], 10.0),
        },
    ];
    let e = engine_in_a(&link, dir.path(), steps).expect_err("xcatd fails");
    assert!(e.contains("xcatd"), "{e}");
    let heard = listener.join().expect("listener");
    assert_eq!(
        announced_by(&heard, &link.mac_a()),
        1,
        "only the first announcement: {heard:?}"
    );

    let link = Link::new("7");
    link.ip_b(&["addr", "add", "10.206.0.2/24", "dev", &link.vb]);
    let ip = link.service_ip("10.206.0.1/24");
    let dir = tempfile::tempdir().expect("tmp");
    let listener = link.listen_b(4.0);
    let steps = vec![
        vouched(),
        Step::ServiceIp { ip },
        Step::Service {
            service: service("xcatd", &["true"], &[], &[], 10.0),
        },
    ];
    engine_in_a(&link, dir.path(), steps).expect("completes");
    let returned = std::time::SystemTime::now();
    // A giveback started at once (as the cluster may) waits for the repeats, then runs.
    let lock =
        hamn::takeover::lock::RunLock::acquire(&dir.path().join("takeover.json"), "giveback", "")
            .expect("waits for the announcements, then takes the lock");
    let acquired = std::time::SystemTime::now();
    drop(lock);
    let heard = listener.join().expect("listener");
    assert_eq!(
        announced_by(&heard, &link.mac_a()),
        hamn::net::ANNOUNCEMENTS as usize,
        "every announcement: {heard:?}"
    );
    let last = heard
        .iter()
        .filter(|h| h.is_announcement_of(address) && h.sender_mac == link.mac_a())
        .map(|h| h.at)
        .max()
        .expect("announcements");
    assert!(
        returned < last,
        "the takeover returned only after its last announcement"
    );
    assert!(
        last <= acquired,
        "the giveback did not wait for the last one"
    );
}

fn service(name: &str, start: &[&str], ready: &[&str], stop: &[&str], secs: f64) -> Service {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect();
    Service {
        name: name.into(),
        start: v(start),
        ready: v(ready),
        stop: v(stop),
        timeout: Duration::from_secs_f64(secs),
    }
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn ready_is_polled_until_the_service_is_up_and_a_rerun_does_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flag = dir.path().join("up");
    let s = service(
        "slow",
        &["true"],
        &["test", "-e", p(&flag)],
        &["rm", p(&flag)],
        10.0,
    );
    assert!(!svc::is_ready(&s).expect("is_ready"));
    let later = flag.clone();
    let maker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1200));
        std::fs::write(later, b"").expect("write flag");
    });
    let outcome = svc::start(&s, &fenced()).expect("start");
    maker.join().expect("maker");
    match outcome {
        StartOutcome::Started { waited } => {
            assert!(waited >= Duration::from_millis(1100), "{waited:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        svc::start(&s, &fenced()).expect("rerun"),
        StartOutcome::AlreadyReady
    );
    svc::stop(&s).expect("stop");
    assert!(!flag.exists());
    assert!(!svc::is_ready(&s).expect("is_ready"));
}

#[test]
fn a_start_that_makes_the_service_ready_passes_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flag = dir.path().join("up");
    let s = service(
        "touchy",
        &["touch", p(&flag)],
        &["test", "-e", p(&flag)],
        &[],
        10.0,
    );
    let t0 = Instant::now();
    assert!(matches!(
        svc::start(&s, &fenced()).expect("start"),
        StartOutcome::Started { .. }
    ));
    assert!(t0.elapsed() < Duration::from_secs(2));
    svc::stop(&s).expect("no stop command: nothing to do");
}

#[test]
fn a_service_that_never_gets_ready_times_out_naming_it() {
    let s = service("never", &["true"], &["false"], &[], 1.0);
    let t0 = Instant::now();
    let e = svc::start(&s, &fenced()).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(matches!(e, SvcError::NotReady { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("'never'") && msg.contains("`false` still fails"),
        "{msg}"
    );
}

#[test]
fn without_ready_the_start_command_decides() {
    let ok = service("oneshot", &["true"], &[], &[], 5.0);
    assert!(matches!(
        svc::start(&ok, &fenced()).expect("start"),
        StartOutcome::Started { .. }
    ));
    assert!(!svc::is_ready(&ok).expect("unknown is not ready"));
    let bad = service("broken", &["false"], &[], &["false"], 5.0);
    let msg = svc::start(&bad, &fenced()).unwrap_err().to_string();
    assert!(
        msg.contains("'broken': start failed") && msg.contains("`false` exited with status 1"),
        "{msg}"
    );
    let msg = svc::stop(&bad).unwrap_err().to_string();
    assert!(msg.contains("'broken': stop failed"), "{msg}");
}

#[test]
fn a_missing_program_and_a_hung_start_are_named() {
    let missing = service("ghost", &["hamn-no-such-program"], &[], &[], 5.0);
    let msg = svc::start(&missing, &fenced()).unwrap_err().to_string();
    assert!(
        msg.contains("'ghost'") && msg.contains("'hamn-no-such-program' not found"),
        "{msg}"
    );
    let hung = service("hung", &["sleep", "30"], &["false"], &[], 1.0);
    let t0 = Instant::now();
    let msg = svc::start(&hung, &fenced()).unwrap_err().to_string();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(
        msg.contains("'hung'") && msg.contains("`sleep 30` did not finish within 1s"),
        "{msg}"
    );
}
