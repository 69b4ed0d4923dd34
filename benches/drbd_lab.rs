//! Benchmark (not a test): crash to service up with DRBD mirrors (xCAT's option 3), step
//! by step, `hamn takeover` next to the same sequence done with the tools an admin would
//! otherwise type: the power fence as fence_ipmilan does it (ipmitool: off, its default
//! 2 s power_wait, then a status poll a second), `drbdadm primary` retried until DRBD
//! lets it (it refuses while it still counts the dead peer as connected Primary),
//! `e2fsck -p` and `e2fsck -f -n`, `mount`, `ip addr add`. Run with
//! `cargo bench --bench drbd_lab`.
//!
//! Each round boots a pair (tests/support/drbd.rs): mn1 Primary, writing a line every
//! 200 ms; mn2 Secondary and in sync. mn1's QEMU is killed (the crash), then mn2 is told
//! to take over, and its clock starts when it sees that. Round A: `hamn --json takeover`,
//! each event stamped as it arrives; round B: the tools. Rounds alternate, three of each by
//! default (HAMN_BENCH_ROUNDS).
//!
//! Times come from /proc/uptime inside the TCG guest (10 ms resolution) on a shared
//! machine, each number the median of its rounds: compare ratios, not absolute values.
//! Both sides wait the same for DRBD to notice that its peer is gone (ping-int 2 s,
//! ping-timeout 0.5 s in the lab's drbd.conf); that wait is in "promote".

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::drbd::{config, config_with, drbd_conf, free_udp_port, node};
use support::lab::{GuestRun, last_synced, spawn_guests};
use support::sim::{SimBmc, SimOptions};

const POWER_WAIT_S: u32 = 2;
const SERVICE_IP: &str = "192.168.60.10/24";

const MN1_WRITING: &str = r#"
$MN1_PRIMARY
set +e
write_synced /install/synced MN1
"#;

/// Both rounds: in sync, then wait for the host's word (mn1 has crashed).
const MN2_READY: &str = r#"
set +e
now() { read -r u _ < /proc/uptime; echo "$u"; }
in_sync || exit 30
modprobe ext4
echo "MN2-IN-SYNC"
while [ ! -e /out/go ]; do sleep 0.05; done
"#;

const MN2_HAMN: &str = r#"
s=$(now)
{ hamn --json takeover 2> /out/takeover.err; echo $? > /out/takeover.rc; } \
    | while IFS= read -r l; do echo "$(now) $l"; done > /out/takeover.json
e=$(now); echo "takeover $s $e" > /out/marks.txt
tail -1 /install/synced > /out/last-line.txt 2>&1
exit 0
"#;

fn mn2_anchor(bmc_port: u16) -> String {
    format!(
        r#"
mark() {{ echo "$1 $(now)" >> /out/marks.txt; }}
fail() {{ echo "DRBD-LAB-FAILED: $1"; exit 20; }}
ipmi() {{ ipmitool -I lanplus -C 3 -H 10.0.2.2 -p {bmc_port} -U admin -P hamn-test-pw "$@"; }}
mark start
ipmi chassis power off > /out/ipmi-off.txt 2>&1 || fail "ipmitool chassis power off"
sleep {POWER_WAIT_S}
polls=0
until ipmi chassis power status 2>&1 | grep -q "Chassis Power is off"; do
    polls=$((polls + 1)); [ $polls -lt 20 ] || fail "never off"; sleep 1
done
mark fenced
tries=0
until drbdadm primary xcat 2> /out/primary.txt; do
    tries=$((tries + 1)); [ $tries -lt 300 ] || fail "drbdadm primary"; sleep 0.2
done
echo $tries > /out/primary-tries.txt
mark promoted
e2fsck -p /dev/drbd0 > /out/e2fsck-p.txt 2>&1; [ $? -le 1 ] || fail "e2fsck -p"
e2fsck -f -n /dev/drbd0 > /out/e2fsck-fn.txt 2>&1 || fail "e2fsck -f -n"
mark checked
mount -t ext4 /dev/drbd0 /install || fail "mount"
mark mounted
ip addr add {SERVICE_IP} dev eth0 || fail "ip addr add"
mark address-up
tail -1 /install/synced > /out/last-line.txt 2>&1
exit 0
"#
    )
}

/// One round: a fresh pair, mn1 crashes, mn2 runs `script`. Returns mn2's run.
fn round(script: &dyn Fn(u16) -> String, name: &str) -> GuestRun {
    let bmc1 = SimBmc::start(SimOptions {
        initially_on: false,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("round {name}: ipmi_sim: {e}"))
    .unwrap_or_else(|| panic!("round {name}: ipmi_sim is not installed"));
    let dir = tempfile::tempdir().expect("tempdir");
    let (p1, p2) = (free_udp_port(), free_udp_port());
    let conf = drbd_conf(7789, false);
    let port = bmc1.addr().port();
    let standby = format!(
        "{}\n[takeover.service_ip]\naddress = \"{SERVICE_IP}\"\ninterface = \"eth0\"\n",
        config_with("mn2", "mn1", port, "password_env = \"HAMN_BMC_PW\"")
    );
    let mn2_script = format!(
        "export HAMN_BMC_PW=hamn-test-pw\n{MN2_READY}\n{}",
        script(port)
    );
    let specs = [
        node(
            "mn1",
            1,
            MN1_WRITING,
            dir.path(),
            (p1, p2),
            &conf,
            &config("mn1", "mn2", port),
        ),
        node("mn2", 2, &mn2_script, dir.path(), (p2, p1), &conf, &standby),
    ];
    let mut guests = spawn_guests(&specs).into_iter();
    let (Some(mut mn1), Some(mut mn2)) = (guests.next(), guests.next()) else {
        panic!("two guests");
    };
    mn1.guest.wait_for_line("MN1-SYNCED 3");
    mn2.guest.wait_for_line("MN2-IN-SYNC");
    bmc1.adopt_server(mn1.guest.qemu_pid().expect("mn1 QEMU pid"));
    let pid = nix::unistd::Pid::from_raw(mn1.guest.qemu_pid().expect("mn1 QEMU") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("crash mn1");
    while !mn1.guest.qemu_exited() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let synced = last_synced(&mn1.guest.console(), "MN1");
    std::fs::write(mn2.guest.dir().join("out/go"), "").expect("tell mn2");
    let run = mn2.guest.finish();
    run.assert_ok();
    let last = run.line_number("last-line.txt");
    assert!(
        last >= synced,
        "round {name}: mn2 read line {last}, mn1 had synced {synced}"
    );
    run
}

fn marks(run: &GuestRun) -> BTreeMap<String, Vec<f64>> {
    run.out("marks.txt")
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?.to_string();
            Some((name, it.filter_map(|v| v.parse().ok()).collect()))
        })
        .collect()
}

/// Seconds per phase, in order: fence, promote, check, mount, address, total.
type Phases = [f64; 6];

fn hamn_round() -> Phases {
    let run = round(&|_| MN2_HAMN.to_string(), "A (hamn)");
    assert_eq!(
        run.out("takeover.rc").trim(),
        "0",
        "{}\n{}",
        run.out("takeover.err"),
        run.out("takeover.json")
    );
    let m = marks(&run);
    let (start, end) = match m.get("takeover").map(Vec::as_slice) {
        Some([s, e]) => (*s, *e),
        other => panic!("mark takeover: {other:?}"),
    };
    let mut seconds: BTreeMap<String, f64> = BTreeMap::new();
    for stamped in run.out("takeover.json").lines() {
        let Some((_, line)) = stamped.split_once(' ') else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let (Some(step), Some(s)) = (v["step"].as_str(), v["seconds"].as_f64()) {
            seconds.insert(step.to_string(), s);
        }
    }
    let get = |k: &str| {
        *seconds
            .get(k)
            .unwrap_or_else(|| panic!("no {k} event:\n{}", run.out("takeover.json")))
    };
    [
        get("bmc-check") + get("fence-power"),
        get("promote xcat"),
        get("check /install"),
        get("mount /install"),
        get(&format!("service-ip {SERVICE_IP}")),
        end - start,
    ]
}

fn anchor_round() -> Phases {
    let run = round(&mn2_anchor, "B (tools)");
    let m = marks(&run);
    let at = |k: &str| match m.get(k).map(Vec::as_slice) {
        Some([t]) => *t,
        other => panic!("mark {k}: {other:?}"),
    };
    [
        at("fenced") - at("start"),
        at("promoted") - at("fenced"),
        at("checked") - at("promoted"),
        at("mounted") - at("checked"),
        at("address-up") - at("mounted"),
        at("address-up") - at("start"),
    ]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    // `cargo test --all-targets` runs this binary without --bench: nothing to do then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if !support::lab::require_lab() || !support::require_tool("ipmi_sim") {
        return;
    }
    let rounds: usize = std::env::var("HAMN_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        a.push(hamn_round());
        b.push(anchor_round());
        eprintln!("drbd_lab: round {} of {rounds} done", r + 1);
    }
    let names = ["fence", "promote", "check", "mount", "address", "total"];
    println!("DRBD crash to service up, median of {rounds} rounds (seconds, TCG guest):");
    println!("{:<10} {:>8} {:>18}", "step", "hamn", "fence_ipmilan+tools");
    for (i, n) in names.iter().enumerate() {
        println!(
            "{n:<10} {:>8.2} {:>18.2}",
            median(a.iter().map(|p| p[i]).collect()),
            median(b.iter().map(|p| p[i]).collect())
        );
    }
}
