//! Benchmark (not a test): `hamn takeover` in the lab, from its start until the storage is
//! up (mn1 powered off through its BMC, its key preempted, /install checked and mounted),
//! step by step with the filesystem check apart, next to the same sequence done with the
//! anchor tools in the documented order: the power fence as fence_ipmilan does it (with
//! ipmitool, which is in the guest image; fence_ipmilan is Python and is not), then
//! `sg_persist` on every path, `e2fsck`, `mount`. Run with
//! `cargo bench --bench takeover_lab`.
//!
//! Each round boots a fresh mn1 that reserves a fresh LUN and writes to it every 200 ms,
//! with an ipmi_sim BMC on the host whose "server" is mn1's QEMU, and a fresh mn2 (QEMU
//! user networking, the BMC at 10.0.2.2) that takes over. Round A: `hamn --json takeover`;
//! round B: the anchor tools. Rounds alternate, three of each by default
//! (HAMN_BENCH_ROUNDS); four guests a pair of rounds, at most two at a time.
//!
//! Times come from /proc/uptime inside the TCG guest (10 ms resolution) on a shared
//! machine, each number the median of its rounds: compare ratios and orders of magnitude,
//! not absolute values.
//! Both sides end with the service address up (hamn: probed, added, first announcement
//! sent; the anchor: `ip addr add` as xCAT's HA documents do it); no services.
//!
//! The fence_ipmilan emulation is a lower bound: fence_ipmilan also reads the power status
//! once before the off, which is left out, and the guest has no IANA enterprise-numbers
//! file for ipmitool to read. "No power_wait" is the measured sequence minus the measured
//! 2 s sleep: ipmi_sim's chassis_control kills the server before it answers, so the first
//! status poll reads "off" either way.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::lab::{GuestRun, GuestSpec, Lun, LunSpec, San, run_guest, spawn_guest};
use support::sim::{SimBmc, SimOptions};

/// fence_ipmilan's default `--power-wait` (seconds slept after the power off request).
const POWER_WAIT_S: u32 = 2;
const BMC_USER: &str = "admin";
const BMC_PASSWORD: &str = "hamn-test-pw";
/// The service address both rounds bring up on mn2's eth0 (QEMU user networking; a
/// subnet of its own beside the 10.0.2.0/24 that reaches the BMC).
const SERVICE_IP: &str = "192.168.60.10/24";

const PRELUDE: &str = r#"
modprobe ext4
map=$(multipath -ll | awk '/ dm-/ {print $3; exit}')
# The shell's own `read`: no process competes with the step being timed.
now() { read -r u _ < /proc/uptime; echo "$u"; }
"#;

/// What the standby does before either round's clock starts: its network to the BMC.
const NETWORK: &str = r#"
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2 \
    || { echo "TAKEOVER-LAB-FAILED: network set-up"; exit 11; }
"#;

/// mn1's hamn.toml: only its own key matters (it reserves the LUN).
fn primary_config() -> String {
    format!(
        "node = \"mn1\"\n\n[peers.mn2]\nfencing = [\"storage\"]\n\n[peers.mn2.bmc]\n\
         address = \"10.0.2.2\"\nuser = \"{BMC_USER}\"\npassword_env = \"HAMN_UNUSED\"\n"
    )
}

/// mn2's hamn.toml, as in tests/lab_takeover.rs: storage and power fencing, mn1's BMC is
/// the host's ipmi_sim.
fn standby_config(bmc_port: u16) -> String {
    format!(
        r#"node = "mn2"

[takeover]
peer = "mn1"

[[takeover.mount]]
device = "LABEL=xcatinstall"
mountpoint = "/install"
type = "ext4"

[takeover.service_ip]
address = "{SERVICE_IP}"
interface = "eth0"

[peers.mn1]
fencing = ["storage", "power"]

[peers.mn1.bmc]
address = "10.0.2.2"
port = {bmc_port}
user = "{BMC_USER}"
password_env = "HAMN_BMC_PW"
profile = "openipmi-sim"
"#
    )
}

/// mn1 holds the LUN and appends a line every 200 ms (reported only once fsync'ed) until
/// it is powered off.
const MN1_WRITING: &str = r#"
set -e
hamn pr reserve $map > /dev/null 2>&1
mkfs.ext4 -q -L xcatinstall /dev/$map
mkdir -p /install && mount /dev/$map /install
set +e
i=0
while true; do
    if echo "line $i" | dd of=/install/synced oflag=append conv=notrunc,fsync status=none 2>/dev/null; then
        echo "MN1-SYNCED $i"
    else
        echo "MN1-WRITE-FAILED $i"
    fi
    i=$((i + 1))
    sleep 0.2
done
"#;

/// Round A: registered at boot like any standby (timed apart), then `hamn takeover`, each
/// of its JSON events stamped with /proc/uptime as it arrives.
const MN2_HAMN: &str = r#"
set +e
export HAMN_BMC_PW=hamn-test-pw
s=$(now); hamn pr unfence --all-shared > /out/unfence.txt 2>&1 \
    || { echo "TAKEOVER-LAB-FAILED: hamn pr unfence"; cat /out/unfence.txt; exit 12; }
e=$(now); echo "unfence $s $e" > /out/marks.txt
udevadm trigger --action=change --subsystem-match=block && udevadm settle
s=$(now)
{ hamn --json takeover 2> /out/takeover.err; echo $? > /out/takeover.rc; } \
    | while IFS= read -r l; do echo "$(now) $l"; done > /out/takeover.json
e=$(now); echo "takeover $s $e" >> /out/marks.txt
tail -1 /install/synced > /out/last-line.txt 2>&1
exit 0
"#;

/// Round B: the anchor tools in the documented order. `mark NAME` records /proc/uptime.
fn mn2_anchor(port: u16, k1: &str, k2: &str) -> String {
    format!(
        r#"
set +e
paths=$(ls /sys/block/$map/slaves)
first=$(echo $paths | cut -d' ' -f1)
[ -n "$first" ] || {{ echo "TAKEOVER-LAB-FAILED: no paths under /sys/block/$map/slaves"; exit 13; }}
mkdir -p /install
mark() {{ echo "$1 $(now)" >> /out/marks.txt; }}
fail() {{ echo "TAKEOVER-LAB-FAILED: $1"; [ -f "$2" ] && cat "$2"; exit 20; }}
ipmi() {{ ipmitool -I lanplus -C 3 -H 10.0.2.2 -p {port} -U {BMC_USER} -P {BMC_PASSWORD} "$@"; }}

# 1. power fence, as fence_ipmilan -o off does it: off, sleep power_wait, status until off
#    (one status a second, power_timeout 20).
mark start
ipmi chassis power off > /out/ipmi-off.txt 2>&1 || fail "ipmitool chassis power off" /out/ipmi-off.txt
mark off
sleep {POWER_WAIT_S}
mark power-wait
polls=0
while :; do
    polls=$((polls + 1))
    ipmi chassis power status > /out/ipmi-status.txt 2>&1
    grep -q "Chassis Power is off" /out/ipmi-status.txt && break
    [ $polls -ge 20 ] && fail "chassis power status never off" /out/ipmi-status.txt
    sleep 1
done
echo "$polls" > /out/polls.txt
mark power-off-confirmed

# 2. storage fence: register on every path, preempt mn1's key, read keys and reservation back.
for p in $paths; do
    sg_persist --out --register --param-sark={k2} -d /dev/$p > /out/sg-register-$p.txt 2>&1 \
        || fail "sg_persist --register on $p" /out/sg-register-$p.txt
done
if sg_persist --out --preempt-abort --param-rk={k2} --param-sark={k1} --prout-type=5 -d /dev/$first \
    > /out/sg-preempt-abort.txt 2>&1; then
    echo preempt-abort > /out/preempt-kind.txt
else
    sg_persist --out --preempt --param-rk={k2} --param-sark={k1} --prout-type=5 -d /dev/$first \
        > /out/sg-preempt.txt 2>&1 || fail "sg_persist --preempt on $first" /out/sg-preempt.txt
    echo preempt > /out/preempt-kind.txt
fi
: > /out/readback.txt
for p in $paths; do
    echo "path $p" >> /out/readback.txt
    sg_persist --in -k -d /dev/$p >> /out/readback.txt 2>&1 || fail "sg_persist --in -k on $p" /out/readback.txt
    sg_persist --in -r -d /dev/$p >> /out/readback.txt 2>&1 || fail "sg_persist --in -r on $p" /out/readback.txt
done
mark storage-fenced

# 3. filesystem: e2fsck -p replays the journal (exit 1: corrected), then a forced read-only check.
e2fsck -p /dev/$map > /out/e2fsck-p.txt 2>&1
rc=$?; [ $rc -le 1 ] || fail "e2fsck -p /dev/$map exited $rc" /out/e2fsck-p.txt
mark journal-replayed
e2fsck -f -n /dev/$map > /out/e2fsck-fn.txt 2>&1 || fail "e2fsck -f -n /dev/$map exited $?" /out/e2fsck-fn.txt
mark checked

# 4. mount.
mount -t ext4 /dev/$map /install > /out/mount.txt 2>&1 || fail "mount /dev/$map /install" /out/mount.txt
mark mounted

# 5. the service address, as xCAT's HA documents do it: no duplicate check, no announcement.
ip addr add {SERVICE_IP} dev eth0 > /out/ip.txt 2>&1 || fail "ip addr add {SERVICE_IP}" /out/ip.txt
mark address-up
tail -1 /install/synced > /out/last-line.txt 2>&1
exit 0
"#
    )
}

/// A running BMC and a mn1 writing on `lun`, adopted as the BMC's server.
struct Primary {
    bmc: SimBmc,
    mn1: support::lab::Background,
}

fn start_primary(lun: &Lun, round: &str) -> Primary {
    let bmc = SimBmc::start(SimOptions {
        user: BMC_USER.into(),
        password: BMC_PASSWORD.into(),
        initially_on: false,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("round {round}: ipmi_sim: {e}"))
    .unwrap_or_else(|| panic!("round {round}: ipmi_sim is not installed"));
    let mut spec = GuestSpec::new("mn1", &format!("{PRELUDE}\n{MN1_WRITING}"));
    spec.luns = vec![(lun.clone(), 2)];
    spec.timeout = Duration::from_secs(600);
    spec.with_binary("/usr/sbin/hamn", &assert_cmd::cargo::cargo_bin("hamn"));
    spec.with_file("/etc/hamn/hamn.toml", primary_config().as_bytes());
    let mut mn1 = spawn_guest(&spec);
    mn1.guest.wait_for_line("MN1-SYNCED 3");
    let pid = mn1
        .guest
        .qemu_pid()
        .unwrap_or_else(|| panic!("round {round}: mn1 has no QEMU pid"));
    bmc.adopt_server(pid);
    assert!(
        bmc.server_alive(),
        "round {round}: mn1's QEMU (pid {pid}) is not 'on' for its BMC after adoption"
    );
    Primary { bmc, mn1 }
}

fn standby(script: &str, lun: &Lun, bmc_port: u16) -> GuestSpec {
    let mut spec = GuestSpec::new("mn2", &format!("{PRELUDE}\n{NETWORK}\n{script}"));
    spec.luns = vec![(lun.clone(), 2)];
    spec.timeout = Duration::from_secs(600);
    spec.with_binary("/usr/sbin/hamn", &assert_cmd::cargo::cargo_bin("hamn"));
    spec.with_file("/etc/hamn/hamn.toml", standby_config(bmc_port).as_bytes());
    spec.qemu_args = vec![
        "-netdev".into(),
        "user,id=n0".into(),
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
    ];
    spec
}

/// After mn2: mn1's QEMU is gone (the BMC really powered it off) and mn2 read every line
/// mn1 had reported synced.
fn check_outcome(round: &str, mut primary: Primary, mn2: &GuestRun) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !primary.mn1.guest.qemu_exited() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        primary.mn1.guest.qemu_exited() && !primary.bmc.server_alive(),
        "round {round}: mn1's QEMU still runs after the power fence"
    );
    let synced = primary
        .mn1
        .guest
        .console()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("MN1-SYNCED "))
        .filter_map(|n| n.trim().parse::<u32>().ok())
        .max()
        .unwrap_or_else(|| panic!("round {round}: mn1 reported no synced line"));
    let last_line = mn2.out("last-line.txt");
    let last: u32 = last_line
        .trim()
        .strip_prefix("line ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("round {round}: mn2 read {last_line:?} from /install/synced"));
    assert!(
        last >= synced,
        "round {round}: mn2 read line {last}, but mn1 had synced line {synced}"
    );
}

/// "NAME UPTIME" or "NAME START END" lines of /out/marks.txt.
fn marks(run: &GuestRun) -> BTreeMap<String, Vec<f64>> {
    let text = run.out("marks.txt");
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?.to_string();
            let values = it
                .map(|v| {
                    v.parse::<f64>().unwrap_or_else(|_| {
                        panic!("guest {}: bad /proc/uptime mark {l:?}", run.name)
                    })
                })
                .collect();
            Some((name, values))
        })
        .collect()
}

/// Round A's numbers: seconds per takeover step, when each step's event arrived (from
/// the start), the wall time, the boot-time unfence.
struct HamnRun {
    steps: BTreeMap<String, f64>,
    arrived: BTreeMap<String, f64>,
    wall: f64,
    unfence: f64,
}

fn round_hamn(san: &mut San, round: u32) -> HamnRun {
    let lun = san.add_lun(&LunSpec::new(21 + 2 * round));
    let primary = start_primary(&lun, "A (hamn)");
    let mn2 = run_guest(&standby(MN2_HAMN, &lun, primary.bmc.addr().port()));
    mn2.assert_ok();
    let rc = mn2.out("takeover.rc");
    assert_eq!(
        rc.trim(),
        "0",
        "round A: hamn takeover exited {}:\n{}\n{}",
        rc.trim(),
        mn2.out("takeover.err"),
        mn2.out("takeover.json")
    );
    check_outcome("A (hamn)", primary, &mn2);

    let json = mn2.out("takeover.json");
    let m = marks(&mn2);
    let started = match m.get("takeover").map(Vec::as_slice) {
        Some([s, _]) => *s,
        other => panic!("round A: mark takeover: {other:?}"),
    };
    let mut steps = BTreeMap::new();
    let mut arrived = BTreeMap::new();
    for stamped in json.lines().filter(|l| !l.trim().is_empty()) {
        let (at, line) = stamped
            .split_once(' ')
            .unwrap_or_else(|| panic!("round A: unstamped line {stamped:?}"));
        let at: f64 = at
            .parse()
            .unwrap_or_else(|_| panic!("round A: bad stamp in {stamped:?}"));
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("round A: hamn --json takeover line {line:?}: {e}"));
        if let Some(step) = v["step"].as_str() {
            arrived.insert(step.to_string(), at - started);
        }
        let (Some(step), Some(seconds)) = (v["step"].as_str(), v["seconds"].as_f64()) else {
            continue; // the summary
        };
        assert_eq!(
            v["outcome"].as_str(),
            Some("done"),
            "round A: step {step} was not done afresh, its time means nothing: {line}"
        );
        steps.insert(step.to_string(), seconds);
    }
    for want in [
        "bmc-check",
        "fence-storage",
        "fence-power",
        "check /install",
        "mount /install",
        SERVICE_IP_STEP,
    ] {
        assert!(
            steps.contains_key(want),
            "round A: no {want} event in hamn --json takeover:\n{json}"
        );
    }
    let span = |name: &str| match m.get(name).map(Vec::as_slice) {
        Some([s, e]) => e - s,
        other => panic!("round A: mark {name}: {other:?}"),
    };
    HamnRun {
        steps,
        arrived,
        wall: span("takeover"),
        unfence: span("unfence"),
    }
}

/// Round B's numbers, in the order done.
struct AnchorRun {
    off: f64,
    power_wait: f64,
    polls_s: f64,
    polls: u32,
    storage: f64,
    preempt_kind: String,
    replay: f64,
    forced: f64,
    mount: f64,
    address: f64,
    total: f64,
}

fn round_anchor(san: &mut San, round: u32) -> AnchorRun {
    let lun = san.add_lun(&LunSpec::new(22 + 2 * round));
    let primary = start_primary(&lun, "B (anchor tools)");
    let key = |node: &str| format!("0x{:016x}", hamn::config::node_key(node));
    let (k1, k2) = (key("mn1"), key("mn2"));
    let port = primary.bmc.addr().port();
    let mn2 = run_guest(&standby(&mn2_anchor(port, &k1, &k2), &lun, port));
    mn2.assert_ok();
    check_outcome("B (anchor tools)", primary, &mn2);

    // The read back is what an admin checks: mn2 holds, mn1's key is gone, on every path.
    let readback = mn2.out("readback.txt");
    let hex_keys: Vec<u64> = readback
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("0x"))
        .filter_map(|h| u64::from_str_radix(h, 16).ok())
        .collect();
    assert!(
        !hex_keys.contains(&hamn::config::node_key("mn1"))
            && hex_keys.contains(&hamn::config::node_key("mn2")),
        "round B: after the preempt mn1's key ({k1}) should be gone and mn2's ({k2}) there:\n{readback}"
    );

    let m = marks(&mn2);
    let at = |name: &str| match m.get(name).map(Vec::as_slice) {
        Some([t]) => *t,
        other => panic!("round B: mark {name}: {other:?}"),
    };
    let polls = mn2.out("polls.txt");
    AnchorRun {
        off: at("off") - at("start"),
        power_wait: at("power-wait") - at("off"),
        polls_s: at("power-off-confirmed") - at("power-wait"),
        polls: polls
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("round B: /out/polls.txt {polls:?}")),
        storage: at("storage-fenced") - at("power-off-confirmed"),
        preempt_kind: mn2.out("preempt-kind.txt").trim().to_string(),
        replay: at("journal-replayed") - at("storage-fenced"),
        forced: at("checked") - at("journal-replayed"),
        mount: at("mounted") - at("checked"),
        address: at("address-up") - at("mounted"),
        total: at("address-up") - at("start"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Each number the median of the rounds' (not one round's numbers).
fn median_hamn(runs: &[HamnRun]) -> HamnRun {
    let per_key = |pick: &dyn Fn(&HamnRun) -> &BTreeMap<String, f64>| {
        pick(&runs[0])
            .keys()
            .map(|k| {
                let values = runs
                    .iter()
                    .filter_map(|r| pick(r).get(k).copied())
                    .collect();
                (k.clone(), median(values))
            })
            .collect::<BTreeMap<_, _>>()
    };
    HamnRun {
        steps: per_key(&|r| &r.steps),
        arrived: per_key(&|r| &r.arrived),
        wall: median(runs.iter().map(|r| r.wall).collect()),
        unfence: median(runs.iter().map(|r| r.unfence).collect()),
    }
}

fn median_anchor(runs: &[AnchorRun]) -> AnchorRun {
    let m = |f: &dyn Fn(&AnchorRun) -> f64| median(runs.iter().map(f).collect());
    AnchorRun {
        off: m(&|r| r.off),
        power_wait: m(&|r| r.power_wait),
        polls_s: m(&|r| r.polls_s),
        polls: runs.iter().map(|r| r.polls).max().unwrap_or(0),
        storage: m(&|r| r.storage),
        preempt_kind: runs[0].preempt_kind.clone(),
        replay: m(&|r| r.replay),
        forced: m(&|r| r.forced),
        mount: m(&|r| r.mount),
        address: m(&|r| r.address),
        total: m(&|r| r.total),
    }
}

const SERVICE_IP_STEP: &str = "service-ip 192.168.60.10/24";

const W: usize = 46;

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn row(what: &str, hamn: f64, anchor: f64) {
    println!(
        "  {what:<W$} {hamn:7.2} s {anchor:9.2} s   ratio {:5.1}x",
        anchor / hamn
    );
}

fn note(text: &str) {
    println!("      {text}");
}

fn main() {
    // `cargo test --all-targets` runs this binary without --bench: nothing to do then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if !support::require_tool("ipmi_sim") || !support::require_tool("ipmitool") {
        return;
    }
    let Some(mut san) = San::start().unwrap_or_else(|e| panic!("SAN: {e}")) else {
        return;
    };
    let rounds: u32 = std::env::var("HAMN_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3);
    let load_before = loadavg();
    // Alternating, so that a drift in the machine's load falls on both sides alike.
    let mut hamn_runs = Vec::new();
    let mut anchor_runs = Vec::new();
    for round in 0..rounds {
        hamn_runs.push(round_hamn(&mut san, round));
        anchor_runs.push(round_anchor(&mut san, round));
    }
    let load_after = loadavg();
    let a = median_hamn(&hamn_runs);
    let b = median_anchor(&anchor_runs);

    let s = |k: &str| a.steps[k];
    let a_power = s("bmc-check") + s("fence-power");
    let a_storage = s("fence-storage");
    let a_fsck = s("check /install");
    let a_mount = s("mount /install");
    let a_address = s(SERVICE_IP_STEP);
    // From hamn's start until the service address is up and its first announcement out:
    // when the step's event reached the guest's clock.
    let a_total = a.arrived[SERVICE_IP_STEP];
    let a_steps: f64 = a.steps.values().sum();
    let b_power = b.off + b.power_wait + b.polls_s;
    let b_power_nowait = b_power - b.power_wait;
    let b_fsck = b.replay + b.forced;
    let b_total_nowait = b.total - b.power_wait;

    println!(
        "takeover from a writing primary to the service address up (services excluded): \
         2-path LUN (tgtd), ipmi_sim BMC, TCG guests; medians of {rounds} alternating \
         rounds of each on a shared machine (each number its own median); /proc/uptime has \
         10 ms resolution; host load average {load_before} before, {load_after} after"
    );
    println!("  {:<W$} {:>9} {:>11}", "step", "hamn", "anchor");
    row(
        "power fence, fence_ipmilan's power_wait 2 s",
        a_power,
        b_power,
    );
    row("power fence, no power_wait", a_power, b_power_nowait);
    note(&format!(
        "hamn: bmc-check {:.2} s + fence-power {:.2} s; anchor: ipmitool power off {:.2} s, \
         power_wait {:.2} s, {} status poll(s) {:.2} s",
        s("bmc-check"),
        s("fence-power"),
        b.off,
        b.power_wait,
        b.polls,
        b.polls_s
    ));
    row(
        "storage fence (register, preempt, read back)",
        a_storage,
        b.storage,
    );
    note(&format!(
        "anchor: {}; read back with `sg_persist --in -k` and `--in -r` per path (one \
         service action per call)",
        if b.preempt_kind == "preempt" {
            "tgtd rejected --preempt-abort, --preempt used"
        } else {
            "--preempt-abort accepted"
        }
    ));
    row("fsck (journal replay, then forced check)", a_fsck, b_fsck);
    note(&format!(
        "anchor: e2fsck -p {:.2} s, e2fsck -f -n {:.2} s",
        b.replay, b.forced
    ));
    row("mount /install", a_mount, b.mount);
    row("service address", a_address, b.address);
    note(&format!(
        "hamn: the duplicate address probe (ARP probes over {:.1} s, sent by hamn) started \
         with the run, before the BMC check, and ran during the fencing, check and mount \
         (judged against the fence: see hamn-takeover(8)); the step waited for its \
         verdict, added the address and sent the first of {} announcements; anchor: `ip \
         addr add`, no probe, no announcement",
        hamn::net::probe_time().as_secs_f64(),
        hamn::net::ANNOUNCEMENTS
    ));
    println!(
        "  {:<W$} {:7.2} s {:>11}",
        "hamn outside its steps (start, scan, plan)",
        a_total - a_steps,
        "-"
    );
    row("total to address up, with power_wait", a_total, b.total);
    row(
        "total to address up, no power_wait",
        a_total,
        b_total_nowait,
    );
    row(
        "total without fsck, no power_wait",
        a_total - a_fsck,
        b_total_nowait - b_fsck,
    );
    note(&format!(
        "hamn's process ended {:.2} s after its start (the announcements still due go out \
         from a detached process, one a second); not in the \
         totals: `hamn pr unfence` at mn2's boot ({:.2} s), the standby registration the \
         anchor does in its storage step",
        a.wall, a.unfence
    ));
    println!("ratio total_with_power_wait {:.2}x", b.total / a_total);
    println!(
        "ratio total_without_power_wait {:.2}x",
        b_total_nowait / a_total
    );
    println!(
        "ratio power_fence_with_power_wait {:.2}x",
        b_power / a_power
    );
    println!(
        "ratio power_fence_without_power_wait {:.2}x",
        b_power_nowait / a_power
    );
    println!("ratio storage_fence {:.2}x", b.storage / a_storage);
    println!("ratio fsck {:.2}x", b_fsck / a_fsck);
    println!("ratio mount {:.2}x", b.mount / a_mount);
    println!("ratio service_address {:.2}x", b.address / a_address);
}
