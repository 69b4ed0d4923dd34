//! The service IP between two network namespaces joined by a veth pair, and services with
//! small shell-free commands.
//!
//! Namespace "a" is the standby running hamn; namespace "b" is the link's other side: a
//! client, or the old primary still holding the address. hamn's functions run in "a" on a
//! thread that entered it with setns(2): the thread's children (`ip`, `arping`) inherit
//! its namespace, and the host's interfaces are never touched. The namespace tests need
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
            net::bring_up(&ip, &fenced()).expect("bring_up"),
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
            net::bring_up(&ip, &fenced()),
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
            net::bring_up(&ip, &fenced()).expect("first"),
            IpOutcome::Added
        );
        assert_eq!(
            net::bring_up(&ip, &fenced()).expect("second"),
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
        let e = net::bring_up(&wrong_prefix, &fenced()).unwrap_err();
        assert!(
            matches!(e, NetError::PrefixMismatch { found: 25, .. }),
            "{e}"
        );
        let e = net::bring_up(&elsewhere, &fenced()).unwrap_err();
        assert!(e.to_string().contains("already configured on lo"), "{e}");
        let e = net::bring_up(&missing, &fenced()).unwrap_err();
        assert!(e.to_string().contains("hamnnope0 does not exist"), "{e}");
    });
    // The other end down: arping would hear nobody and call any address free.
    link.ip_b(&["link", "set", &link.vb, "down"]);
    let e = link.in_a(|| net::bring_up(&ip, &fenced())).unwrap_err();
    assert!(e.to_string().contains("no carrier"), "{e}");
    assert!(!link.in_a(|| net::ip_present(&ip)).expect("ip_present"));
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
