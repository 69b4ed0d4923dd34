//! `hamn takeover` of a shared SAN LUN (xCAT's recipe 2) in the lab: mn1 holds the
//! reservation and writes /install on the shared LUN, then dies mid-life (its guest powers
//! off without unmounting); mn2, registered at boot like any standby, takes over: preempts
//! mn1's key on every path, checks the filesystem (replaying its journal), mounts it and
//! reads mn1's last synced data. The steps are journaled: a second run continues and
//! finds everything in place. Then the race: with both nodes alive and registered, each
//! takes over from the other at the same moment; exactly one owns the LUN afterwards.

mod support;

use support::lab::{GuestSpec, Lun, LunSpec, San, run_guest, run_guests};

/// Storage-only fencing: the lab's BMC path is tested elsewhere (fence_ipmi_sim.rs).
/// Without `mount`, the takeover is the storage fencing alone (the race).
fn config(node: &str, peer: &str, mount: bool) -> String {
    // With the mount come the service IP and two stand-in services, the second of which
    // is ready only once the first is (the database before xcatd).
    let mount = if mount {
        r#"[[takeover.mount]]
device = "LABEL=xcatinstall"
mountpoint = "/install"
type = "ext4"

[takeover.service_ip]
address = "192.168.60.10/24"
interface = "eth0"

[[takeover.service]]
name = "database"
start = ["touch", "/run/database.up"]
ready = ["test", "-e", "/run/database.up"]
stop = ["rm", "-f", "/run/database.up"]

[[takeover.service]]
name = "xcatd"
start = ["sh", "-c", "test -e /run/database.up && touch /run/xcatd.up"]
ready = ["test", "-e", "/run/xcatd.up"]
stop = ["rm", "-f", "/run/xcatd.up"]
timeout = 10
"#
    } else {
        ""
    };
    format!(
        r#"node = "{node}"

[takeover]
peer = "{peer}"
journal = "/var/lib/hamn/takeover.json"

{mount}
[peers.{peer}]
fencing = ["storage"]

[peers.{peer}.bmc]
address = "10.0.2.2"
user = "admin"
password_env = "HAMN_UNUSED"
"#
    )
}

const PRELUDE: &str = r#"
modprobe ext4
map=$(multipath -ll | awk '/ dm-/ {print $3; exit}')
ip link set eth0 up 2>/dev/null
"#;

fn node(name: &str, peer: &str, lun: &Lun, script: &str, mount: bool) -> GuestSpec {
    let mut g = GuestSpec::new(name, &format!("{PRELUDE}\n{script}"));
    g.luns = vec![(lun.clone(), 2)];
    // A NIC for the service IP (no traffic leaves QEMU: restrict=on).
    g.qemu_args = vec![
        "-netdev".into(),
        "user,id=n0,restrict=on".into(),
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
    ];
    g.with_binary(support::layout::HAMN, &assert_cmd::cargo::cargo_bin("hamn"));
    g.with_file("/etc/hamn/hamn.toml", config(name, peer, mount).as_bytes());
    g
}

const MN1_PRIMARY: &str = r#"
set -e
hamn pr reserve $map > /out/reserve.txt 2>&1
mkfs.ext4 -q -L xcatinstall /dev/$map
mkdir -p /install && mount /dev/$map /install
i=0
while [ $i -lt 20 ]; do echo "line $i" >> /install/synced; i=$((i + 1)); done
sync
echo "written after the last sync" >> /install/unsynced
# mn1 dies: no unmount, no release.
"#;

const MN2_STANDBY: &str = r#"
set +e
hamn pr unfence --all-shared > /out/unfence.txt 2>&1 || exit 10
udevadm trigger --action=change --subsystem-match=block && udevadm settle
hamn takeover --dry-run > /out/dry-run.txt 2>&1; echo $? > /out/dry-run.rc
[ -e /install/synced ] && echo "DRY RUN MOUNTED" >> /out/dry-run.txt
hamn --json takeover > /out/takeover.json 2> /out/takeover.err; echo $? > /out/takeover.rc
tail -1 /install/synced > /out/last-line.txt 2>&1
grep install /proc/mounts > /out/mounts.txt
ip -4 addr show dev eth0 > /out/ip.txt
for f in database xcatd; do [ -e /run/$f.up ] && echo "$f up"; done > /out/services.txt
hamn --json pr status $map > /out/status.json
cat /var/lib/hamn/takeover.json > /out/journal.json
# A second run: everything is in place and proven again.
hamn takeover > /out/rerun.txt 2>&1; echo $? > /out/rerun.rc
# kill -9 right after each step in turn (so: during the next), then run again.
n=0
for step in fence-storage "check /install" "mount /install" "service-ip 192.168.60.10/24" "service database"; do
    n=$((n + 1))
    hamn giveback > /out/giveback-$n.txt 2>&1; echo $? > /out/giveback-$n.rc
    # The giveback removed this node's key: register again, as a standby does at boot.
    hamn pr unfence --all-shared > /dev/null 2>&1
    # Not the last round's events: the shell truncates the file only once hamn starts.
    rm -f /tmp/events
    hamn --json takeover > /tmp/events 2>&1 &
    pid=$!
    while [ -d /proc/$pid ] && ! grep -q "\"step\":\"$step\"" /tmp/events; do sleep 0.02; done
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    cp /tmp/events /out/killed-$n.txt
    hamn takeover > /out/resume-$n.txt 2>&1; echo $? > /out/resume-$n.rc
    grep -c " /install ext4 rw" /proc/mounts > /out/resume-$n-mounted.txt
    tail -1 /install/synced > /out/resume-$n-line.txt 2>&1
done
# SIGTERM (Pacemaker's answer to an operation timeout) while the filesystem is checked.
# The check takes its time: e2fsck on PATH is a wrapper that waits, then runs the real one.
hamn giveback > /out/giveback-term.txt 2>&1; echo $? > /out/giveback-term.rc
hamn pr unfence --all-shared > /dev/null 2>&1
mkdir -p /tmp/slow
printf '#!/bin/sh\nsleep 60\nexec %s "$@"\n' "$(command -v e2fsck)" > /tmp/slow/e2fsck
chmod +x /tmp/slow/e2fsck
# PIDs whose command line matches the regex $1 (the image's busybox has no pgrep). Write
# the regex so that it does not match itself: "/tmp/slo[w]/".
running() {
    for d in /proc/[0-9]*; do
        tr '\0' ' ' < $d/cmdline 2>/dev/null | grep -q -- "$1" && echo "${d#/proc/} $1"
    done
}
PATH=/tmp/slow:$PATH hamn takeover > /out/term.txt 2>&1 &
pid=$!
while [ -d /proc/$pid ] && [ -z "$(running '/tmp/slo[w]/e2fsck')" ]; do sleep 0.05; done
kill -TERM $pid
wait $pid; echo $? > /out/term.rc
{ running '/tmp/slo[w]/e2fsck'; running '^e2fsc[k] '; running '^slee[p] 60'; } > /out/term-left.txt
cp /var/lib/hamn/takeover.json /out/term-journal.json
hamn takeover > /out/term-resume.txt 2>&1; echo $? > /out/term-resume.rc
grep -c " /install ext4 rw" /proc/mounts > /out/term-resume-mounted.txt
for f in database xcatd; do [ -e /run/$f.up ] && echo "$f up"; done > /out/term-services.txt
ip -4 addr show dev eth0 > /out/term-ip.txt
hamn status --no-bmc > /out/status.txt 2>&1
# Hand back: the other node takes over next.
hamn giveback > /out/final-giveback.txt 2>&1; echo $? > /out/final-giveback.rc
grep -c " /install " /proc/mounts > /out/after-giveback.txt
hamn --json pr status $map > /out/keys-after-giveback.json
ip -4 addr show dev eth0 > /out/ip-after-giveback.txt
for f in database xcatd; do [ -e /run/$f.up ] && echo "$f up"; done > /out/services-after-giveback.txt
exit 0
"#;

/// mn1 is back and takes its storage back from mn2 after mn2's giveback.
const MN1_BACK: &str = r#"
set +e
hamn pr unfence --all-shared > /out/unfence.txt 2>&1 || exit 10
udevadm trigger --action=change --subsystem-match=block && udevadm settle
hamn takeover > /out/takeover.txt 2>&1; echo $? > /out/takeover.rc
tail -1 /install/synced > /out/last-line.txt 2>&1
exit 0
"#;

fn rc(run: &support::lab::GuestRun, name: &str) -> i32 {
    run.out(name)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}: /out/{name}:\n{}", run.name, run.console))
}

#[test]
fn the_standby_takes_over_a_shared_lun_from_a_dead_primary() {
    if !support::lab::require_lab() {
        return;
    }
    let Some(mut san) = San::start().unwrap_or_else(|e| panic!("SAN: {e}")) else {
        return;
    };
    let lun = san.add_lun(&LunSpec::new(1));
    let mn1 = run_guest(&node("mn1", "mn2", &lun, MN1_PRIMARY, true));
    mn1.assert_ok();
    let mut standby = node("mn2", "mn1", &lun, MN2_STANDBY, true);
    // Eight takeovers and six givebacks under TCG: about 2.5 min.
    standby.timeout = std::time::Duration::from_secs(480);
    let mn2 = run_guest(&standby);
    mn2.assert_ok();

    let dry = mn2.out("dry-run.txt");
    assert_eq!(rc(&mn2, "dry-run.rc"), 0, "{dry}");
    for want in [
        "fence-storage",
        "--preempt-abort",
        "check /install",
        "e2fsck",
        "mount /install",
    ] {
        assert!(dry.contains(want), "dry run lacks {want}:\n{dry}");
    }
    assert!(!dry.contains("DRY RUN MOUNTED"), "{dry}");

    let err = mn2.out("takeover.err");
    assert_eq!(
        rc(&mn2, "takeover.rc"),
        0,
        "takeover failed:\n{err}\n{}",
        mn2.out("takeover.json")
    );
    // --json: one event per line as it happens, then the summary.
    let lines: Vec<serde_json::Value> = mn2
        .out("takeover.json")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let steps: Vec<&str> = lines.iter().filter_map(|v| v["step"].as_str()).collect();
    assert_eq!(
        steps,
        [
            "fence-storage",
            "check /install",
            "mount /install",
            "service-ip 192.168.60.10/24",
            "service database",
            "service xcatd"
        ],
        "{lines:?}"
    );
    assert!(
        mn2.out("ip.txt").contains("192.168.60.10/24"),
        "{}",
        mn2.out("ip.txt")
    );
    let services = mn2.out("services.txt");
    assert_eq!(services, "database up\nxcatd up\n", "both services started");
    assert_eq!(lines.last().expect("summary")["peer"], "mn1");

    assert_eq!(
        mn2.out("last-line.txt").trim(),
        "line 19",
        "mn1's last synced line"
    );
    assert!(mn2.out("mounts.txt").contains("/install ext4 rw"));
    let status: serde_json::Value = serde_json::from_str(&mn2.out("status.json")).expect("json");
    let own = status["own_key"].as_str().expect("own key");
    for p in status["luns"][0]["paths"].as_array().expect("paths") {
        assert_eq!(p["holder"].as_str(), Some(own), "mn2 holds every path: {p}");
        assert_eq!(
            p["keys"].as_array().expect("keys").len(),
            2,
            "mn2's key on both paths: {p}"
        );
    }
    let journal = mn2.out("journal.json");
    assert!(journal.contains("\"complete\": true"), "{journal}");

    let rerun = mn2.out("rerun.txt");
    assert_eq!(rc(&mn2, "rerun.rc"), 0, "{rerun}");
    assert!(rerun.contains("in place"), "{rerun}");
    assert!(rerun.contains("continuing an earlier run"), "{rerun}");

    // Killed after each step in turn: the rerun reaches the same end state.
    for n in 1..=5 {
        assert_eq!(
            rc(&mn2, &format!("giveback-{n}.rc")),
            0,
            "{}",
            mn2.out(&format!("giveback-{n}.txt"))
        );
        let resume = mn2.out(&format!("resume-{n}.txt"));
        assert_eq!(
            rc(&mn2, &format!("resume-{n}.rc")),
            0,
            "rerun after kill -9 #{n} (events before the kill: {}):\n{resume}",
            mn2.out(&format!("killed-{n}.txt"))
        );
        assert_eq!(
            mn2.out(&format!("resume-{n}-mounted.txt")).trim(),
            "1",
            "{resume}"
        );
        assert_eq!(mn2.out(&format!("resume-{n}-line.txt")).trim(), "line 19");
        assert!(
            resume.contains("xcatd"),
            "services up after rerun #{n}:\n{resume}"
        );
    }
    // SIGTERM during the check: the check's processes are gone, the journal says
    // interrupted, and the rerun ends where an uninterrupted takeover does.
    assert_eq!(
        rc(&mn2, "giveback-term.rc"),
        0,
        "{}",
        mn2.out("giveback-term.txt")
    );
    let term = mn2.out("term.txt");
    assert_eq!(rc(&mn2, "term.rc"), 1, "{term}");
    assert!(
        term.contains("interrupted by SIGTERM during step 'check /install'"),
        "{term}"
    );
    assert_eq!(
        mn2.out("term-left.txt"),
        "",
        "left running after SIGTERM:\n{term}"
    );
    let journal: serde_json::Value =
        serde_json::from_str(&mn2.out("term-journal.json")).expect("journal JSON");
    let check_state = journal["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .rev()
        .find(|e| e["step"] == "check /install")
        .and_then(|e| e["state"].as_str());
    assert_eq!(check_state, Some("interrupted"), "{journal:#}");
    let resume = mn2.out("term-resume.txt");
    assert_eq!(rc(&mn2, "term-resume.rc"), 0, "{resume}");
    assert!(resume.contains("continuing an earlier run"), "{resume}");
    assert_eq!(mn2.out("term-resume-mounted.txt").trim(), "1", "{resume}");
    assert_eq!(mn2.out("term-services.txt"), services, "{resume}");
    assert!(mn2.out("term-ip.txt").contains("192.168.60.10/24"));

    let status = mn2.out("status.txt");
    assert!(status.contains("held by this node"), "{status}");
    assert!(status.contains("/install: mounted"), "{status}");
    assert!(status.contains("complete"), "{status}");

    // Giveback on mn2, then mn1 takes its storage back.
    assert_eq!(
        rc(&mn2, "final-giveback.rc"),
        0,
        "{}",
        mn2.out("final-giveback.txt")
    );
    assert_eq!(mn2.out("after-giveback.txt").trim(), "0");
    // The giveback released the reservation and removed mn2's key: mn2 cannot write.
    let mn2_key = format!("0x{:016x}", hamn::config::node_key("mn2"));
    let after = keys(&mn2.out("keys-after-giveback.json"));
    assert!(
        !after.contains(&mn2_key),
        "mn2's key {mn2_key} left: {after:?}"
    );
    assert!(!mn2.out("ip-after-giveback.txt").contains("192.168.60.10"));
    assert_eq!(
        mn2.out("services-after-giveback.txt"),
        "",
        "services stopped"
    );
    let back = run_guest(&node("mn1", "mn2", &lun, MN1_BACK, true));
    back.assert_ok();
    let takeover = back.out("takeover.txt");
    assert_eq!(rc(&back, "takeover.rc"), 0, "{takeover}");
    // A planned switchover: nothing to preempt, and it says so.
    assert!(
        takeover.contains("gave the storage back cleanly"),
        "{takeover}"
    );
    assert_eq!(back.out("last-line.txt").trim(), "line 19");
}

/// Both nodes alive, both registered, mn1 holding: each takes over from the other.
const RACER: &str = r#"
set +e
hamn pr unfence --all-shared > /out/unfence.txt 2>&1 || exit 10
# Start together: wait until both nodes are registered on both paths (four keys), then go.
i=0
while [ $i -lt 600 ]; do
    n=$(hamn --json pr status $map 2>/dev/null | grep -o '"keys":\[[^]]*\]' | head -1 | tr ',' '\n' | grep -c 0x)
    [ "$n" -ge 4 ] && break
    i=$((i + 1)); sleep 0.1
done
[ "$ROLE" = primary ] && hamn pr reserve $map > /out/reserve.txt 2>&1
sleep 2
hamn takeover > /out/takeover.txt 2>&1; echo $? > /out/takeover.rc
hamn --json pr status $map > /out/status.json
exit 0
"#;

#[test]
fn two_nodes_taking_over_at_once_leave_exactly_one_owner() {
    if !support::lab::require_lab() {
        return;
    }
    let Some(mut san) = San::start().unwrap_or_else(|e| panic!("SAN: {e}")) else {
        return;
    };
    let lun = san.add_lun(&LunSpec::new(2));
    let runs = run_guests(&[
        node("mn1", "mn2", &lun, &format!("ROLE=primary\n{RACER}"), false),
        node("mn2", "mn1", &lun, &format!("ROLE=standby\n{RACER}"), false),
    ]);
    for r in &runs {
        r.assert_ok();
    }
    let won: Vec<&str> = runs
        .iter()
        .filter(|r| rc(r, "takeover.rc") == 0)
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        won.len(),
        1,
        "exactly one winner; mn1: {}\nmn2: {}",
        runs[0].out("takeover.txt"),
        runs[1].out("takeover.txt")
    );
    let loser = runs
        .iter()
        .find(|r| rc(r, "takeover.rc") != 0)
        .expect("a loser");
    let said = loser.out("takeover.txt");
    assert!(said.contains("the peer owns the storage"), "{said}");
    // The LUN's holder, as the last node to read it saw it, is the winner's key.
    let winner = runs
        .iter()
        .find(|r| rc(r, "takeover.rc") == 0)
        .expect("winner");
    let s: serde_json::Value = serde_json::from_str(&winner.out("status.json")).expect("json");
    let own = s["own_key"].as_str().expect("key");
    for p in s["luns"][0]["paths"].as_array().expect("paths") {
        assert_eq!(p["holder"].as_str(), Some(own), "{p}");
        assert_eq!(
            p["keys"].as_array().expect("keys").len(),
            2,
            "only the winner: {p}"
        );
    }
}

/// mn2's hamn.toml for the end-to-end test: storage and power fencing, mn1's BMC is the
/// host's ipmi_sim (10.0.2.2 inside QEMU's user network is the host's loopback).
fn config_with_bmc(bmc_port: u16, password_env: &str) -> String {
    format!(
        r#"node = "mn2"

[takeover]
peer = "mn1"

[[takeover.mount]]
device = "LABEL=xcatinstall"
mountpoint = "/install"
type = "ext4"

[peers.mn1]
fencing = ["storage", "power"]

[peers.mn1.bmc]
address = "10.0.2.2"
port = {bmc_port}
user = "admin"
password_env = "{password_env}"
profile = "openipmi-sim"
"#
    )
}

/// mn1 holds the LUN and appends a line every 200 ms until it is powered off. A line is
/// reported synced only when its fsync succeeded: after mn2's preempt, mn1's writes fail
/// at the array (sync(1) would not say so).
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

const MN2_TAKEOVER: &str = r#"
set +e
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
export HAMN_BMC_PW=hamn-test-pw HAMN_WRONG_PW=not-the-password
hamn pr unfence --all-shared > /out/unfence.txt 2>&1 || exit 10
udevadm trigger --action=change --subsystem-match=block && udevadm settle
hamn --json pr status $map > /out/keys-before.json
# The BMC refuses (wrong password): nothing may be touched.
hamn --config /etc/hamn/wrong-bmc.toml takeover > /out/refused.txt 2>&1; echo $? > /out/refused.rc
hamn --json pr status $map > /out/keys-after-refusal.json
grep -c install /proc/mounts > /out/mounted-after-refusal.txt
# The real takeover.
hamn takeover > /out/takeover.txt 2>&1; echo $? > /out/takeover.rc
tail -1 /install/synced > /out/last-line.txt 2>&1
exit 0
"#;

fn keys(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).expect("pr status JSON");
    v["luns"][0]["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .flat_map(|p| p["keys"].as_array().cloned().unwrap_or_default())
        .map(|k| k.as_str().unwrap_or("").to_string())
        .collect()
}

/// mn2 with mn1's BMC (ipmi_sim on `port`) in its hamn.toml and a NIC that reaches it.
fn mn2_with_bmc(script: &str, lun: &Lun, port: u16) -> GuestSpec {
    let mut spec = GuestSpec::new("mn2", &format!("{PRELUDE}\n{script}"));
    spec.luns = vec![(lun.clone(), 2)];
    spec.with_binary(support::layout::HAMN, &assert_cmd::cargo::cargo_bin("hamn"));
    spec.with_file(
        "/etc/hamn/hamn.toml",
        config_with_bmc(port, "HAMN_BMC_PW").as_bytes(),
    );
    spec.qemu_args = vec![
        "-netdev".into(),
        "user,id=n0".into(),
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
    ];
    spec
}

#[test]
fn the_standby_powers_off_the_writing_primary_through_its_bmc_and_takes_over() {
    if !support::lab::require_lab() || !support::require_tool("ipmi_sim") {
        return;
    }
    let Some(mut san) = San::start().unwrap_or_else(|e| panic!("SAN: {e}")) else {
        return;
    };
    let lun = san.add_lun(&LunSpec::new(3));
    let Some(bmc) = support::sim::SimBmc::start(support::sim::SimOptions {
        initially_on: false,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("ipmi_sim: {e}")) else {
        return;
    };

    // mn1 runs and writes; its QEMU becomes the server mn1's BMC powers.
    let mut mn1 = support::lab::spawn_guest(&node("mn1", "mn2", &lun, MN1_WRITING, true));
    mn1.guest.wait_for_line("MN1-SYNCED 3");
    bmc.adopt_server(mn1.guest.qemu_pid().expect("mn1 QEMU pid"));
    assert!(bmc.server_alive(), "mn1 is 'on' for its BMC");

    let port = bmc.addr().port();
    let mut spec = mn2_with_bmc(MN2_TAKEOVER, &lun, port);
    spec.with_file(
        "/etc/hamn/wrong-bmc.toml",
        config_with_bmc(port, "HAMN_WRONG_PW").as_bytes(),
    );
    let mn2 = run_guest(&spec);
    mn2.assert_ok();

    // The BMC refused: exit 1, the BMC and the override named, storage untouched.
    let refused = mn2.out("refused.txt");
    assert_eq!(rc(&mn2, "refused.rc"), 1, "{refused}");
    assert!(refused.contains("10.0.2.2"), "names the BMC: {refused}");
    assert!(
        refused.contains("--i-know-the-peer-is-off"),
        "names the override: {refused}"
    );
    assert!(refused.contains("storage is untouched"), "{refused}");
    assert_eq!(
        keys(&mn2.out("keys-before.json")),
        keys(&mn2.out("keys-after-refusal.json")),
        "READ KEYS unchanged after the refusal"
    );
    assert_eq!(mn2.out("mounted-after-refusal.txt").trim(), "0");

    // The takeover: mn1 powered off by its BMC, its key preempted, its data mounted.
    let takeover = mn2.out("takeover.txt");
    assert_eq!(rc(&mn2, "takeover.rc"), 0, "{takeover}");
    for step in [
        "bmc-check",
        "fence-storage",
        "fence-power",
        "check /install",
        "mount /install",
    ] {
        assert!(takeover.contains(step), "{step} missing:\n{takeover}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !mn1.guest.qemu_exited() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        mn1.guest.qemu_exited(),
        "mn1's QEMU is gone: the BMC powered it off"
    );
    assert!(!bmc.server_alive());
    // Every line mn1 reported synced is on the LUN mn2 mounted.
    let synced = mn1
        .guest
        .console()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("MN1-SYNCED "))
        .filter_map(|n| n.trim().parse::<u32>().ok())
        .max()
        .expect("mn1 synced lines");
    let last: u32 = mn2
        .out("last-line.txt")
        .trim()
        .strip_prefix("line ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("mn2 read: {}", mn2.out("last-line.txt")));
    assert!(
        last >= synced,
        "mn2 reads line {last}; mn1 had synced line {synced}"
    );
}

/// mn1 owns the LUN, then gives it back cleanly (a planned switchover) and stays up. Once
/// somebody else holds the LUN it tries to write to it directly, which must fail.
const MN1_GIVES_BACK: &str = r#"
set -e
hamn pr reserve $map > /dev/null 2>&1
mkfs.ext4 -q -L xcatinstall /dev/$map
mkdir -p /install && mount /dev/$map /install
i=0
while [ $i -lt 10 ]; do echo "line $i" >> /install/synced; i=$((i + 1)); done
sync
set +e
hamn giveback > /tmp/giveback.txt 2>&1
echo "MN1-GIVEBACK-RC $?"
echo "MN1-GAVE-BACK"
# Wait until another node holds the LUN, then write to it: the array must refuse.
while ! hamn --json pr status $map 2>/dev/null | grep -q '"holder":"0x'; do sleep 0.3; done
last=$(( $(blockdev --getsz /dev/$map) - 8 ))
path=/dev/$(ls /sys/block/$map/slaves | head -1)
for dev in /dev/$map $path; do
    # conv=fsync: busybox's dd may write through the page cache, where only the
    # flush meets the array's RESERVATION CONFLICT.
    if dd if=/dev/zero of=$dev bs=512 count=8 seek=$last conv=notrunc,fsync status=none 2>/dev/null; then
        echo "MN1-RAW-WRITE-OK $dev"
    else
        echo "MN1-RAW-WRITE-FAILED $dev"
    fi
done
echo "MN1-RAW-WRITE-DONE"
while true; do sleep 1; done
"#;

const MN2_SWITCHOVER: &str = r#"
set +e
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
export HAMN_BMC_PW=hamn-test-pw
hamn pr unfence --all-shared > /out/unfence.txt 2>&1 || exit 10
udevadm trigger --action=change --subsystem-match=block && udevadm settle
hamn takeover > /out/takeover.txt 2>&1; echo $? > /out/takeover.rc
tail -1 /install/synced > /out/last-line.txt 2>&1
# Stay up (and keep holding) while mn1 tries to write.
sleep 15
exit 0
"#;

/// After a clean giveback on mn1, mn2's takeover does not power mn1 off (its BMC would):
/// mn1's key is on no path and nobody holds the LUN, so mn1 cannot write, and the
/// takeover says so. mn1 keeps running, and its write after the takeover fails.
#[test]
fn a_planned_switchover_after_a_clean_giveback_does_not_power_the_old_owner_off() {
    if !support::lab::require_lab() || !support::require_tool("ipmi_sim") {
        return;
    }
    let Some(mut san) = San::start().unwrap_or_else(|e| panic!("SAN: {e}")) else {
        return;
    };
    let lun = san.add_lun(&LunSpec::new(5));
    let Some(bmc) = support::sim::SimBmc::start(support::sim::SimOptions {
        initially_on: false,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("ipmi_sim: {e}")) else {
        return;
    };
    let mut mn1 = support::lab::spawn_guest(&node("mn1", "mn2", &lun, MN1_GIVES_BACK, true));
    mn1.guest.wait_for_line("MN1-GAVE-BACK");
    assert!(
        mn1.guest.console().contains("MN1-GIVEBACK-RC 0"),
        "mn1's giveback failed:\n{}",
        mn1.guest.console()
    );
    bmc.adopt_server(mn1.guest.qemu_pid().expect("mn1 QEMU pid"));

    let mn2 = run_guest(&mn2_with_bmc(MN2_SWITCHOVER, &lun, bmc.addr().port()));
    mn2.assert_ok();
    let takeover = mn2.out("takeover.txt");
    assert_eq!(rc(&mn2, "takeover.rc"), 0, "{takeover}");
    assert!(
        takeover.contains("gave the storage back cleanly") && takeover.contains("skipped"),
        "the power fence is skipped, and why:\n{takeover}"
    );
    assert_eq!(mn2.out("last-line.txt").trim(), "line 9");
    mn1.guest.wait_for_line("MN1-RAW-WRITE-DONE");
    let console = mn1.guest.console();
    assert!(
        console.contains("MN1-RAW-WRITE-FAILED /dev/dm") && !console.contains("MN1-RAW-WRITE-OK"),
        "mn1 wrote to the LUN mn2 holds:\n{console}"
    );
    assert!(
        !mn1.guest.qemu_exited() && bmc.server_alive(),
        "mn1 was not powered off"
    );
}

/// mn1 keeps hamn's state on its own disk, as a real node does (/var/lib/hamn). Its first
/// life: the primary, holding the LUN and writing /install. Powered on again through its
/// BMC after mn2 took over, the same boot finds that state and runs the boot sequence
/// (`hamn pr unfence --all-shared`) while mn2 holds the LUN, tries to write, and, once mn2
/// has given the LUN back, the admin lets it rejoin.
const MN1_POWERED_ON_AGAIN: &str = r#"
state=$(lsblk -dno NAME,SERIAL | awk '$2=="MN1STATE" {print "/dev/"$1}')
mkdir -p /var/lib/hamn
mount -t ext4 $state /var/lib/hamn 2>/dev/null || { mkfs.ext4 -q $state && mount -t ext4 $state /var/lib/hamn; }
if [ ! -e /var/lib/hamn/first-life ]; then
    set -e
    touch /var/lib/hamn/first-life
    hamn pr reserve $map > /dev/null 2>&1
    mkfs.ext4 -q -L xcatinstall /dev/$map
    mkdir -p /install && mount /dev/$map /install
    i=0
    while [ $i -lt 10 ]; do echo "line $i" >> /install/synced; i=$((i + 1)); done
    sync
    echo "MN1-READY"
    # Until its BMC powers it off.
    while true; do sleep 1; done
fi
set +e
echo "MN1-BOOTED-AGAIN"
sg_persist --in -k /dev/$map > /out/keys-before.txt 2>&1
hamn pr unfence --all-shared > /out/boot-unfence.txt 2>&1; echo $? > /out/boot-unfence.rc
sg_persist --in -k /dev/$map > /out/keys-after.txt 2>&1
write_last() {  # $1: device; prints written or refused
    last=$(( $(blockdev --getsz $1) - 8 ))
    # conv=fsync: busybox's dd may write through the page cache, where only the
    # flush meets the array's RESERVATION CONFLICT.
    if dd if=/dev/zero of=$1 bs=512 count=8 seek=$last conv=notrunc,fsync status=none 2>/dev/null; then
        echo written
    else
        echo refused
    fi
}
echo "map $(write_last /dev/$map) path $(write_last /dev/$(ls /sys/block/$map/slaves | head -1))" > /out/write.txt
echo "MN1-TRIED"
# mn2 gives the LUN back; then the admin lets mn1 rejoin.
while hamn --json pr status $map 2>/dev/null | grep -q '"holder":"0x'; do sleep 0.3; done
hamn pr unfence --all-shared --rejoin > /out/rejoin.txt 2>&1; echo $? > /out/rejoin.rc
hamn --json pr status $map > /out/keys-rejoined.json
exit 0
"#;

/// mn2 registers for the first time while mn1 holds the LUN, takes over (powering mn1
/// off through its BMC), and serves until the host says mn1 has tried to come back; then
/// it reports what `hamn status` says about mn1 and gives the LUN back.
const MN2_SERVES_WHILE_MN1_RETURNS: &str = r#"
set +e
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
export HAMN_BMC_PW=hamn-test-pw
hamn pr unfence --all-shared > /out/unfence.txt 2>&1; echo $? > /out/unfence.rc
udevadm trigger --action=change --subsystem-match=block && udevadm settle
hamn takeover > /out/takeover.txt 2>&1; echo $? > /out/takeover.rc
md5sum < /install/synced > /out/synced-before.md5
echo "MN2-TOOK-OVER"
while [ ! -e /out/mn1-tried ]; do sleep 0.3; done
md5sum < /install/synced > /out/synced-after.md5
hamn status > /out/status.txt 2>&1; echo $? > /out/status.rc
hamn giveback > /out/giveback.txt 2>&1; echo $? > /out/giveback.rc
exit 0
"#;

/// The returning primary does not get write access back on its own: mn2 takes over and
/// powers mn1 off through its BMC; mn1 is powered on again through the same BMC (ipmi_sim
/// starts its QEMU again) and its boot registration is refused. A first-time standby
/// (mn2, registering while mn1 holds the LUN) still registers.
#[test]
fn a_fenced_primary_powered_on_again_does_not_register_on_its_own() {
    if !support::lab::require_lab() || !support::require_tool("ipmi_sim") {
        return;
    }
    let Some(mut san) = San::start().unwrap_or_else(|e| panic!("SAN: {e}")) else {
        return;
    };
    let lun = san.add_lun(&LunSpec::new(6));
    let Some(bmc) = support::sim::SimBmc::start(support::sim::SimOptions {
        initially_on: false,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("ipmi_sim: {e}")) else {
        return;
    };
    let disk_dir = tempfile::tempdir().expect("tmp");
    let state = disk_dir.path().join("mn1-state.img");
    support::lab::make_disk(&state, 16);
    let mut spec = node("mn1", "mn2", &lun, MN1_POWERED_ON_AGAIN, false);
    spec.disks = vec![support::lab::LocalDisk {
        image: state,
        serial: "MN1STATE".into(),
        wwn: None,
    }];
    let mut mn1 = support::lab::spawn_guest(&spec);
    mn1.guest.wait_for_line("MN1-READY");
    bmc.adopt_server(mn1.guest.qemu_pid().expect("mn1 QEMU pid"));
    bmc.on_power_on(&mn1.guest.boot_again_script("again"));

    let mut mn2_spec = mn2_with_bmc(MN2_SERVES_WHILE_MN1_RETURNS, &lun, bmc.addr().port());
    // mn2 serves through mn1's whole second boot.
    mn2_spec.timeout = std::time::Duration::from_secs(360);
    let mut mn2 = support::lab::spawn_guest(&mn2_spec);
    mn2.guest.wait_for_line("MN2-TOOK-OVER");
    assert!(
        mn1.guest.qemu_exited() && !bmc.server_alive(),
        "mn2's takeover powered mn1 off"
    );

    // Someone presses the button (or the BMC restores power): mn1 boots again.
    bmc.power_on();
    let again = mn1.guest.dir().join("console-again.log");
    let mn1_out = mn1.guest.dir().join("out");
    let start = std::time::Instant::now();
    while !mn1_out.join("write.txt").exists() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(180),
            "mn1's second boot did not get to its write: {}",
            std::fs::read_to_string(&again).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    std::fs::write(mn2.guest.dir().join("out/mn1-tried"), "").expect("signal mn2");
    let mn2 = mn2.guest.finish();
    mn2.assert_ok();
    let (status, console) =
        support::lab::wait_for_result_in(&again, std::time::Duration::from_secs(120));
    assert_eq!(status, 0, "mn1's second boot:\n{console}");
    let out = |name: &str| std::fs::read_to_string(mn1_out.join(name)).unwrap_or_default();

    assert_eq!(
        rc(&mn2, "unfence.rc"),
        0,
        "first-time standby: {}",
        mn2.out("unfence.txt")
    );
    assert_eq!(rc(&mn2, "takeover.rc"), 0, "{}", mn2.out("takeover.txt"));
    // The boot's registration is refused, names the holder and the way back, changes
    // nothing; mn1 cannot write; mn2's data is as it was.
    let said = out("boot-unfence.txt");
    assert_eq!(out("boot-unfence.rc").trim(), "1", "{said}");
    assert!(
        said.contains("NOT registered") && said.contains("mn2"),
        "{said}"
    );
    assert!(said.contains("--rejoin"), "{said}");
    assert_eq!(
        out("keys-before.txt"),
        out("keys-after.txt"),
        "READ KEYS changed by a refused unfence"
    );
    assert_eq!(
        out("write.txt").trim(),
        "map refused path refused",
        "mn1 wrote to the LUN mn2 holds"
    );
    assert_eq!(
        mn2.out("synced-before.md5"),
        mn2.out("synced-after.md5"),
        "mn2's data changed while mn1 was back"
    );
    // mn2's status raises the alarm: the peer it fenced has power again.
    let status_said = mn2.out("status.txt");
    assert_eq!(rc(&mn2, "status.rc"), 1, "{status_said}");
    assert!(status_said.contains("ALARM"), "{status_said}");
    assert_eq!(rc(&mn2, "giveback.rc"), 0, "{}", mn2.out("giveback.txt"));
    // After mn2's giveback, the admin's --rejoin registers mn1 again.
    assert_eq!(out("rejoin.rc").trim(), "0", "{}", out("rejoin.txt"));
    let mn1_key = format!("0x{:016x}", hamn::config::node_key("mn1"));
    assert!(
        keys(&out("keys-rejoined.json")).contains(&mn1_key),
        "{}",
        out("keys-rejoined.json")
    );
}

/// Storage-only fencing while mn1 keeps running and writing (its BMC would ack a power
/// off and do nothing, so the site relies on the reservation alone): after the preempt,
/// mn1's writes fail at the array.
#[test]
fn a_primary_that_keeps_running_cannot_write_after_the_preempt() {
    if !support::lab::require_lab() {
        return;
    }
    let Some(mut san) = San::start().unwrap_or_else(|e| panic!("SAN: {e}")) else {
        return;
    };
    let lun = san.add_lun(&LunSpec::new(4));
    let mut mn1 = support::lab::spawn_guest(&node("mn1", "mn2", &lun, MN1_WRITING, true));
    mn1.guest.wait_for_line("MN1-SYNCED 3");
    let mut standby = node("mn2", "mn1", &lun, MN2_STORAGE_ONLY, true);
    standby.timeout = std::time::Duration::from_secs(240);
    let mn2 = run_guest(&standby);
    mn2.assert_ok();
    assert_eq!(rc(&mn2, "takeover.rc"), 0, "{}", mn2.out("takeover.txt"));
    // mn1 is still running, and now fails to write.
    mn1.guest.wait_for_line("MN1-WRITE-FAILED");
    let console = mn1.guest.console();
    let synced_after_failure = console
        .lines()
        .skip_while(|l| !l.contains("MN1-WRITE-FAILED"))
        .any(|l| l.contains("MN1-SYNCED"));
    assert!(
        !synced_after_failure,
        "mn1 synced again after its first failed write"
    );
    assert!(
        !mn1.guest.qemu_exited(),
        "mn1 kept running (storage-only fencing)"
    );
}

const MN2_STORAGE_ONLY: &str = r#"
set +e
hamn pr unfence --all-shared > /out/unfence.txt 2>&1 || exit 10
udevadm trigger --action=change --subsystem-match=block && udevadm settle
hamn takeover > /out/takeover.txt 2>&1; echo $? > /out/takeover.rc
exit 0
"#;

/// mn2 as Pacemaker's fencer would run fence_hamn for a node whose BMC died with it:
/// the power level fails, the storage level (fencing=storage) fences.
const MN2_FENCE_LEVELS: &str = r#"
set +e
export HAMN_UNUSED=not-the-password
hamn pr unfence --all-shared > /out/unfence.txt 2>&1 || exit 10
F="sh /usr/sbin/fence_hamn"
printf 'action=monitor\nfencing=storage\n' | $F > /out/monitor.txt 2>&1; echo $? > /out/monitor.rc
printf 'action=status\nfencing=storage\nport=mn1\n' | $F > /out/status-before.txt 2>&1; echo $? > /out/status-before.rc
printf 'action=off\nport=mn1\npower_timeout=3\n' | $F > /out/power-off.txt 2>&1; echo $? > /out/power-off.rc
printf 'action=off\nfencing=storage\nport=mn1\n' | $F > /out/off.txt 2>&1; echo $? > /out/off.rc
printf 'action=status\nfencing=storage\nport=mn1\n' | $F > /out/status-after.txt 2>&1; echo $? > /out/status-after.rc
printf 'action=on\nfencing=storage\nport=mn1\n' | $F > /out/on-other.txt 2>&1; echo $? > /out/on-other.rc
hamn pr status --all-shared > /out/pr-after.txt 2>&1
exit 0
"#;

#[test]
fn a_node_whose_bmc_died_with_it_is_fenced_by_fence_hamns_storage_level() {
    if !support::lab::require_lab() {
        return;
    }
    let Some(mut san) = San::start().unwrap_or_else(|e| panic!("SAN: {e}")) else {
        return;
    };
    let lun = san.add_lun(&LunSpec::new(8));
    let mut mn1 = support::lab::spawn_guest(&node("mn1", "mn2", &lun, MN1_WRITING, true));
    mn1.guest.wait_for_line("MN1-SYNCED 3");
    let mut fencer = node("mn2", "mn1", &lun, MN2_FENCE_LEVELS, true);
    fencer.files.push((
        support::layout::FENCE_HAMN.into(),
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fencing/fence_hamn"),
    ));
    let mn2 = run_guest(&fencer);
    mn2.assert_ok();
    let show = |f: &str| format!("{f}: {}", mn2.out(f));
    assert_eq!(rc(&mn2, "monitor.rc"), 0, "{}", show("monitor.txt"));
    assert_eq!(
        rc(&mn2, "status-before.rc"),
        0,
        "{}",
        show("status-before.txt")
    );
    assert!(mn2.out("status-before.txt").contains("Status: ON"));
    assert_eq!(
        rc(&mn2, "power-off.rc"),
        1,
        "the dead BMC: {}",
        show("power-off.txt")
    );
    assert_eq!(rc(&mn2, "off.rc"), 0, "{}", show("off.txt"));
    assert!(
        mn2.out("off.txt").contains("Success: Powered OFF"),
        "{}",
        show("off.txt")
    );
    assert_eq!(
        rc(&mn2, "status-after.rc"),
        2,
        "{}",
        show("status-after.txt")
    );
    assert!(mn2.out("status-after.txt").contains("Status: OFF"));
    assert_eq!(rc(&mn2, "on-other.rc"), 1, "{}", show("on-other.txt"));
    assert!(
        mn2.out("on-other.txt").contains("on mn1 itself"),
        "{}",
        show("on-other.txt")
    );
    // mn1 still runs and can no longer write.
    mn1.guest.wait_for_line("MN1-WRITE-FAILED");
    let console = mn1.guest.console();
    assert!(
        !console
            .lines()
            .skip_while(|l| !l.contains("MN1-WRITE-FAILED"))
            .any(|l| l.contains("MN1-SYNCED")),
        "mn1 synced again after its first failed write; PR after: {}",
        mn2.out("pr-after.txt")
    );
}

/// Two filesystems on two LUNs; one of them is corrupt. The check refuses it, nothing is
/// mounted (not even the good one), and the message says how to repair it by hand.
#[test]
fn a_corrupt_filesystem_stops_the_takeover_before_any_mount() {
    if !support::lab::require_lab() {
        return;
    }
    let Some(mut san) = San::start().unwrap_or_else(|e| panic!("SAN: {e}")) else {
        return;
    };
    let install = san.add_lun(&LunSpec::new(5));
    let db = san.add_lun(&LunSpec::new(6));
    let guest = |name: &str, peer: &str, script: &str| {
        let mut g = GuestSpec::new(name, script);
        g.luns = vec![(install.clone(), 2), (db.clone(), 2)];
        g.with_binary(support::layout::HAMN, &assert_cmd::cargo::cargo_bin("hamn"));
        let cfg = format!(
            "node = \"{name}\"\n[takeover]\npeer = \"{peer}\"\n\n\
             [[takeover.mount]]\ndevice = \"LABEL=xcatinstall\"\nmountpoint = \"/install\"\ntype = \"ext4\"\n\n\
             [[takeover.mount]]\ndevice = \"LABEL=xcatdb\"\nmountpoint = \"/var/lib/pgsql\"\ntype = \"ext4\"\n\n\
             [peers.{peer}]\nfencing = [\"storage\"]\n[peers.{peer}.bmc]\naddress = \"10.0.2.2\"\nuser = \"a\"\npassword_env = \"UNUSED\"\n"
        );
        g.with_file("/etc/hamn/hamn.toml", cfg.as_bytes());
        g
    };
    let mn1 = run_guest(&guest(
        "mn1",
        "mn2",
        r#"
set -e
modprobe ext4
maps=$(multipath -ll | awk '/ dm-/ {print $3}')
for m in $maps; do hamn pr reserve $m > /dev/null; done
a=$(echo $maps | cut -d' ' -f1); b=$(echo $maps | cut -d' ' -f2)
mkfs.ext4 -q -L xcatinstall /dev/$a
mkfs.ext4 -q -L xcatdb /dev/$b
# The database filesystem is damaged: its root inode cleared.
debugfs -w -R "clri <2>" /dev/$b > /dev/null 2>&1
"#,
    ));
    mn1.assert_ok();
    let mn2 = run_guest(&guest(
        "mn2",
        "mn1",
        r#"
set +e
modprobe ext4
hamn pr unfence --all-shared > /out/unfence.txt 2>&1 || exit 10
udevadm trigger --action=change --subsystem-match=block && udevadm settle
hamn takeover > /out/takeover.txt 2>&1; echo $? > /out/takeover.rc
grep -c -e " /install " -e " /var/lib/pgsql " /proc/mounts > /out/mounted.txt
hamn status --no-bmc > /out/status.txt 2>&1
exit 0
"#,
    ));
    mn2.assert_ok();
    let said = mn2.out("takeover.txt");
    assert_eq!(rc(&mn2, "takeover.rc"), 1, "{said}");
    assert!(
        said.contains("/var/lib/pgsql"),
        "names the filesystem: {said}"
    );
    assert!(said.contains("e2fsck -f /dev/"), "names the repair: {said}");
    assert!(said.contains("nothing was mounted"), "{said}");
    assert_eq!(mn2.out("mounted.txt").trim(), "0", "not even the good one");
    let status = mn2.out("status.txt");
    assert!(status.contains("NOT complete"), "{status}");
    assert!(status.contains("check /var/lib/pgsql: failed"), "{status}");
}

/// Pacemaker's side of option 5: the OCF resource agent (fencing/ocf/hamn-takeover) run
/// by hand the way Pacemaker runs it, on a standby that was never registered (its key was
/// preempted when it last lost the role): monitor says stopped, start takes over, monitor
/// says running, a second start changes nothing, stop gives back, monitor says stopped.
const MN2_OCF: &str = r#"
set +e
A=/usr/lib/ocf/resource.d/hamn/takeover
export OCF_ROOT=/usr/lib/ocf
sh $A meta-data > /out/meta.xml; echo $? > /out/meta.rc
sh $A monitor; echo $? > /out/monitor-before.rc
sh $A validate-all; echo $? > /out/validate.rc
sh $A start > /out/start.txt 2>&1; echo $? > /out/start.rc
sh $A monitor; echo $? > /out/monitor-started.rc
# The xcatd stand-in dies: the storage is still here, but users lack xcatd. Pacemaker
# then recovers the resource: stop, then start.
rm -f /run/xcatd.up
sh $A monitor 2> /out/monitor-gone.err; echo $? > /out/monitor-gone.rc
sh $A stop > /out/recover-stop.txt 2>&1; echo $? > /out/recover-stop.rc
sh $A start > /out/recover-start.out 2> /out/recover-start.err; echo $? > /out/recover-start.rc
sh $A monitor; echo $? > /out/monitor-recovered.rc
sh $A start > /out/start2.txt 2>&1; echo $? > /out/start2.rc
tail -1 /install/synced > /out/line.txt 2>&1
sh $A stop > /out/stop.txt 2>&1; echo $? > /out/stop.rc
sh $A monitor; echo $? > /out/monitor-stopped.rc
sh $A stop > /out/stop2.txt 2>&1; echo $? > /out/stop2.rc
# resource-agents' conformance test: meta-data against the DTD, then start, monitor,
# stop, and each of them again on a resource already in that state.
ocf-tester -n xcat-mn -o config=/etc/hamn/hamn.toml $A > /out/ocf-tester.txt 2>&1
echo $? > /out/ocf-tester.rc
exit 0
"#;

#[test]
fn the_ocf_resource_agent_starts_monitors_and_stops_the_takeover() {
    if !support::lab::require_lab() {
        return;
    }
    let Some(mut san) = San::start().unwrap_or_else(|e| panic!("SAN: {e}")) else {
        return;
    };
    let lun = san.add_lun(&LunSpec::new(7));
    run_guest(&node("mn1", "mn2", &lun, MN1_PRIMARY, true)).assert_ok();
    let mut mn2 = node("mn2", "mn1", &lun, MN2_OCF, true);
    mn2.files.push((
        support::layout::OCF_TAKEOVER.into(),
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fencing/ocf/hamn-takeover"),
    ));
    // ocf-tester's xmllint, with ICU's 30 MB of data: more room for the unpacked image.
    mn2.with_binary("/usr/bin/xmllint", std::path::Path::new("/usr/bin/xmllint"));
    mn2.memory_mb = 1024;
    mn2.timeout = std::time::Duration::from_secs(300);
    let run = run_guest(&mn2);
    run.assert_ok();
    let meta = run.out("meta.xml");
    assert!(meta.contains("<resource-agent name=\"takeover\""), "{meta}");
    let expect = [
        ("meta.rc", 0),
        ("monitor-before.rc", 7),
        ("validate.rc", 0),
        ("start.rc", 0),
        ("monitor-started.rc", 0),
        ("monitor-gone.rc", 1),
        ("recover-stop.rc", 0),
        ("recover-start.rc", 0),
        ("monitor-recovered.rc", 0),
        ("start2.rc", 0),
        ("stop.rc", 0),
        ("monitor-stopped.rc", 7),
        ("stop2.rc", 0),
        ("ocf-tester.rc", 0),
    ];
    for (file, want) in expect {
        assert_eq!(
            rc(&run, file),
            want,
            "{file}; start:\n{}\nstop:\n{}\nocf-tester:\n{}",
            run.out("start.txt"),
            run.out("stop.txt"),
            run.out("ocf-tester.txt")
        );
    }
    assert_eq!(run.out("line.txt").trim(), "line 19");
    let gone = run.out("monitor-gone.err");
    assert!(
        gone.contains("users lack") && gone.contains("service xcatd: not ready"),
        "the monitor names what the users lack: {gone}"
    );
    // Progress is information for Pacemaker's log (stdout), not "error output".
    let (out, err) = (run.out("recover-start.out"), run.out("recover-start.err"));
    assert!(
        out.contains("hamn: mount /install") && !err.contains("hamn: mount /install"),
        "progress on stdout only:\nstdout:\n{out}\nstderr:\n{err}"
    );
}

/// mn2's hamn.toml when mn1's BMC speaks Redfish: sushy-emulator on the host, reached at
/// 10.0.2.2, its certificate checked against the test CA copied into the guest.
fn config_with_redfish_bmc(port: u16) -> String {
    format!(
        r#"node = "mn2"

[takeover]
peer = "mn1"

[[takeover.mount]]
device = "LABEL=xcatinstall"
mountpoint = "/install"
type = "ext4"

[peers.mn1]
fencing = ["storage", "power"]

[peers.mn1.bmc]
protocol = "redfish"
address = "10.0.2.2"
port = {port}
user = "admin"
password_env = "HAMN_BMC_PW"
ca_file = "/etc/hamn/bmc-ca.pem"
profile = "sushy-emulator"
"#
    )
}

const MN2_REDFISH_TAKEOVER: &str = r#"
set +e
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
hamn pr unfence --all-shared > /out/unfence.txt 2>&1 || exit 10
udevadm trigger --action=change --subsystem-match=block && udevadm settle
# The system log the takeover records in (busybox syslogd on /dev/log).
syslogd -n -O /out/syslog.txt &
sleep 0.3
hamn takeover --dry-run > /out/plan.txt 2>&1
hamn takeover > /out/takeover.txt 2>&1; echo $? > /out/takeover.rc
tail -1 /install/synced > /out/last-line.txt 2>&1
hamn status > /out/status.txt 2>&1
for p in $(ls /sys/block/$map/slaves); do
    sg_persist --in -k -d /dev/$p > /out/sg-keys-$p.txt 2>&1
    sg_persist --in -r -d /dev/$p > /out/sg-res-$p.txt 2>&1
done
ls /sys/block/$map/slaves > /out/paths.txt
ls /var/lib/hamn/evidence > /out/evidence-1.txt
cp /var/lib/hamn/evidence/*.json /out/evidence.json
# A second run (all in place) adds a second record; the first stays as it was.
hamn takeover > /out/takeover-2.txt 2>&1; echo $? > /out/takeover-2.rc
ls /var/lib/hamn/evidence > /out/evidence-2.txt
hamn --json history > /out/history.json 2> /out/history.err
sleep 0.3
exit 0
"#;

/// The same takeover when mn1's BMC speaks only Redfish: mn2 powers mn1 off through the
/// emulator (ForceOff, "Off" read back once its fake driver applied it), preempts mn1's
/// key and mounts the data with every synced line; `hamn status` reads mn1 off.
#[test]
fn the_standby_fences_the_writing_primary_through_its_redfish_bmc_and_takes_over() {
    if !support::lab::require_lab() || !support::redfish::available() {
        return;
    }
    let Some(mut san) = San::start().unwrap_or_else(|e| panic!("SAN: {e}")) else {
        return;
    };
    let lun = san.add_lun(&LunSpec::new(9));
    let redfish = support::redfish::Sushy::start(support::redfish::Options::default());

    let mut mn1 = support::lab::spawn_guest(&node("mn1", "mn2", &lun, MN1_WRITING, true));
    mn1.guest.wait_for_line("MN1-SYNCED 3");
    redfish.adopt_server("mn1", mn1.guest.qemu_pid().expect("mn1 QEMU pid"));
    assert!(redfish.server_alive("mn1"));

    let mut spec = GuestSpec::new(
        "mn2",
        &format!(
            "{PRELUDE}\nexport HAMN_BMC_PW='{}'\n{MN2_REDFISH_TAKEOVER}",
            support::redfish::PASSWORD
        ),
    );
    spec.luns = vec![(lun.clone(), 2)];
    spec.with_binary(support::layout::HAMN, &assert_cmd::cargo::cargo_bin("hamn"));
    spec.with_file(
        "/etc/hamn/hamn.toml",
        config_with_redfish_bmc(redfish.port).as_bytes(),
    );
    spec.with_file(
        "/etc/hamn/bmc-ca.pem",
        &std::fs::read(&redfish.ca).expect("test CA"),
    );
    spec.qemu_args = vec![
        "-netdev".into(),
        "user,id=n0".into(),
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
    ];
    let mn2 = run_guest(&spec);
    mn2.assert_ok();

    let plan = mn2.out("plan.txt");
    assert!(
        plan.contains("Redfish") && plan.contains("10.0.2.2"),
        "the plan names the Redfish BMC:\n{plan}"
    );
    let takeover = mn2.out("takeover.txt");
    assert_eq!(rc(&mn2, "takeover.rc"), 0, "{takeover}");
    for step in [
        "fence-storage",
        "fence-power",
        "check /install",
        "mount /install",
    ] {
        assert!(takeover.contains(step), "{step} missing:\n{takeover}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !mn1.guest.qemu_exited() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        mn1.guest.qemu_exited(),
        "mn1's QEMU is gone: the Redfish BMC powered it off\n{}",
        redfish.log()
    );
    let synced = support::lab::last_synced(&mn1.guest.console(), "MN1");
    let last: u32 = mn2
        .out("last-line.txt")
        .trim()
        .strip_prefix("line ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("mn2 read: {}", mn2.out("last-line.txt")));
    assert!(
        last >= synced,
        "mn2 reads line {last}; mn1 had synced line {synced}"
    );
    let status = mn2.out("status.txt");
    assert!(
        status.contains("off"),
        "hamn status reads mn1's power through Redfish:\n{status}"
    );

    // The record: one evidence file, with the keys before (mn1's, mn1 holding) and after
    // (mn2's alone) on every path, as sg_persist reads them after; a line in the log.
    let first: Vec<String> = mn2
        .out("evidence-1.txt")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(first.len(), 1, "one evidence file: {first:?}");
    let ev: serde_json::Value =
        serde_json::from_str(&mn2.out("evidence.json")).expect("evidence JSON");
    assert_eq!(ev["command"], "takeover");
    assert_eq!(ev["result"], "succeeded");
    assert_eq!(ev["actor"]["user"], "root");
    assert!(ev["plan"].as_array().is_some_and(|p| !p.is_empty()), "{ev}");
    let step_names: Vec<&str> = ev["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    assert!(step_names.contains(&"fence-power"), "{step_names:?}");
    assert!(
        ev["bmc"][0]["proof"]["method"]["bmc"]
            .as_str()
            .is_some_and(|b| b.contains("Redfish")),
        "{}",
        ev["bmc"]
    );
    assert!(
        ev["checks"][0]["check"]["steps"].is_array(),
        "{}",
        ev["checks"]
    );
    let hex = |t: &str| u64::from_str_radix(t.trim().trim_start_matches("0x"), 16).ok();
    let keys_of = |report: &serde_json::Value,
                   path: &str|
     -> (std::collections::BTreeSet<u64>, Option<u64>) {
        let p = report[0]["paths"]
            .as_array()
            .expect("paths")
            .iter()
            .find(|p| p["path"].as_str() == Some(&format!("/dev/{path}")))
            .unwrap_or_else(|| panic!("path {path} in {report}"));
        (
            p["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .filter_map(|k| k.as_str().and_then(hex))
                .collect(),
            p["holder"].as_str().and_then(hex),
        )
    };
    let paths = mn2.out("paths.txt");
    let paths: Vec<&str> = paths.split_whitespace().collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    for p in &paths {
        let sg_keys: std::collections::BTreeSet<u64> = mn2
            .out(&format!("sg-keys-{p}.txt"))
            .lines()
            .filter(|l| l.trim().starts_with("0x"))
            .filter_map(hex)
            .collect();
        let sg_holder = mn2
            .out(&format!("sg-res-{p}.txt"))
            .lines()
            .find_map(|l| l.trim().strip_prefix("Key=").and_then(hex));
        let (after, holder_after) = keys_of(&ev["reservations_after"], p);
        assert_eq!(after, sg_keys, "keys after on {p}");
        assert_eq!(holder_after, sg_holder, "holder after on {p}");
        let (before, holder_before) = keys_of(&ev["reservations_before"], p);
        assert_ne!(holder_before, holder_after, "the holder changed on {p}");
        assert!(
            holder_before.is_some_and(|h| before.contains(&h)),
            "{before:?}"
        );
    }
    let syslog = mn2.out("syslog.txt");
    assert!(
        syslog.contains("hamn")
            && syslog.contains("takeover of mn1 on mn2 by root")
            && syslog.contains(&first[0]),
        "the system log names the run and its evidence:\n{syslog}"
    );
    // A second run: a second file, the first unchanged; history lists both.
    assert_eq!(
        rc(&mn2, "takeover-2.rc"),
        0,
        "{}",
        mn2.out("takeover-2.txt")
    );
    let second: Vec<String> = mn2
        .out("evidence-2.txt")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(second.len(), 2, "{second:?}");
    assert!(second.contains(&first[0]));
    let history: serde_json::Value =
        serde_json::from_str(&mn2.out("history.json")).expect("history JSON");
    assert_eq!(
        history["records"].as_array().map(Vec::len),
        Some(2),
        "{history}"
    );
}

/// The standby's hamn.toml for preflight: mn1's BMC on the host's ipmi_sim, the LUN's
/// filesystem, a service address nobody answers for.
fn config_for_preflight(bmc_port: u16) -> String {
    config_with_bmc(bmc_port, "HAMN_BMC_PW")
        + "\n[takeover.service_ip]\naddress = \"10.0.2.100/24\"\ninterface = \"eth0\"\n"
}

/// mn2, the standby, asks whether it is ready, then once per fault. Around every
/// preflight the reservation keys, the mounts and the addresses are read, and must be
/// the same afterwards: preflight changes nothing.
const MN2_PREFLIGHT: &str = r#"
set +e
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
export HAMN_BMC_PW=hamn-test-pw
hamn pr register --all-shared > /out/register.txt 2>&1 || exit 10
udevadm trigger --action=change --subsystem-match=block && udevadm settle
paths=$(ls /sys/block/$map/slaves)
second=$(echo $paths | cut -d' ' -f2)
key=$(hamn --json pr status $map | sed 's/.*"own_key":"\(0x[0-9a-f]*\)".*/\1/')
snapshot() {
    for p in $paths; do sg_persist --in -k -d /dev/$p 2>&1; sg_persist --in -r -d /dev/$p 2>&1; done
    grep -c ' /install ' /proc/mounts
    # IPv4 only: the kernel adds IPv6 addresses from the user network's router
    # advertisements whenever they arrive, preflight or not.
    ip -o -4 addr show dev eth0 | awk '{print $4}'
}
# pf NAME [hamn options]: preflight, its exit status, and whether anything changed.
pf() {
    name=$1; shift
    snapshot > /tmp/before
    hamn "$@" preflight > /out/$name.txt 2>&1; echo $? > /out/$name.rc
    snapshot > /tmp/after
    if cmp -s /tmp/before /tmp/after; then echo same > /out/$name.changed; else
        echo changed > /out/$name.changed; diff /tmp/before /tmp/after >> /out/$name.changed; fi
}
pf ready
hamn --json preflight > /out/ready.json 2>/dev/null
HAMN_BMC_PW=not-the-password pf password
# This node's key gone from one path (REGISTER with service action key 0 on it).
sg_persist --out --register --param-rk=$key --param-sark=0 /dev/$second > /dev/null 2>&1
pf key
hamn pr register --all-shared > /dev/null 2>&1
echo offline > /sys/block/$second/device/state
pf path
echo running > /sys/block/$second/device/state
ip addr add 10.0.2.100/24 dev eth0
pf address
ip addr del 10.0.2.100/24 dev eth0
pf config --config /etc/hamn/typo.toml
pf again
exit 0
"#;

/// `hamn preflight` on the standby: ready; then one fault at a time (a wrong BMC
/// password, this node's key unregistered on one path, one path down, the service address
/// up on the standby, a misspelt key in hamn.toml), each found and named with its fix,
/// and nothing changed by any run (keys, mounts, addresses read before and after).
#[test]
fn preflight_finds_each_fault_on_the_standby_and_changes_nothing() {
    if !support::lab::require_lab() || !support::require_tool("ipmi_sim") {
        return;
    }
    let Some(mut san) = San::start().unwrap_or_else(|e| panic!("SAN: {e}")) else {
        return;
    };
    let lun = san.add_lun(&LunSpec::new(10));
    let Some(bmc) = support::sim::SimBmc::start(support::sim::SimOptions::default())
        .unwrap_or_else(|e| panic!("ipmi_sim: {e}"))
    else {
        return;
    };
    // mn1, the primary, holds the LUN and made its filesystem (and is then gone; its BMC
    // stays on).
    let mn1 = run_guest(&node(
        "mn1",
        "mn2",
        &lun,
        "hamn pr reserve $map > /out/reserve.txt 2>&1; echo $? > /out/reserve.rc\n\
         mkfs.ext4 -q -L xcatinstall /dev/$map",
        false,
    ));
    assert_eq!(rc(&mn1, "reserve.rc"), 0, "{}", mn1.out("reserve.txt"));

    let port = bmc.addr().port();
    let mut spec = GuestSpec::new("mn2", &format!("{PRELUDE}\n{MN2_PREFLIGHT}"));
    spec.luns = vec![(lun.clone(), 2)];
    spec.with_binary(support::layout::HAMN, &assert_cmd::cargo::cargo_bin("hamn"));
    spec.with_file("/etc/hamn/hamn.toml", config_for_preflight(port).as_bytes());
    spec.with_file(
        "/etc/hamn/typo.toml",
        config_for_preflight(port)
            .replace("mountpoint = ", "mountpoitn = ")
            .as_bytes(),
    );
    spec.qemu_args = vec![
        "-netdev".into(),
        "user,id=n0".into(),
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
    ];
    let mn2 = run_guest(&spec);
    mn2.assert_ok();

    let ready = mn2.out("ready.txt");
    assert_eq!(rc(&mn2, "ready.rc"), 0, "ready:\n{ready}");
    assert!(ready.contains("ready (standby)"), "{ready}");
    let json: serde_json::Value = serde_json::from_str(&mn2.out("ready.json")).expect("json");
    assert_eq!(json["role"], "standby", "{json}");
    for check in [
        "config",
        "bmc",
        "path",
        "reservation",
        "mount",
        "service-address",
    ] {
        assert!(
            json["findings"]
                .as_array()
                .expect("findings")
                .iter()
                .any(|f| f["check"] == check && f["level"] == "ok"),
            "{check} checked and ok: {json}"
        );
    }
    // Each fault: not ready (1), the finding and its fix named.
    let faults: [(&str, &[&str]); 5] = [
        ("password", &["PROBLEM  bmc", "fix: correct peers.mn1.bmc"]),
        (
            "key",
            &[
                "PROBLEM  reservation",
                "registered on 1 of its 2 paths",
                "fix: `hamn pr register --all-shared`",
            ],
        ),
        (
            "path",
            &[
                "PROBLEM  path",
                "does not answer",
                "multipathd reinstate path",
            ],
        ),
        (
            "address",
            &[
                "PROBLEM  service-address",
                "configured on this node",
                "ip addr del 10.0.2.100/24 dev eth0",
            ],
        ),
        (
            "config",
            &[
                "PROBLEM  config",
                "unknown field `mountpoitn`",
                "fix: correct /etc/hamn/typo.toml",
            ],
        ),
    ];
    for (name, says) in faults {
        let out = mn2.out(&format!("{name}.txt"));
        assert_eq!(rc(&mn2, &format!("{name}.rc")), 1, "{name}:\n{out}");
        for s in says {
            assert!(out.contains(s), "{name}: '{s}' missing:\n{out}");
        }
    }
    // The faults undone, ready again; and no run changed anything.
    assert_eq!(rc(&mn2, "again.rc"), 0, "{}", mn2.out("again.txt"));
    for name in [
        "ready", "password", "key", "path", "address", "config", "again",
    ] {
        assert_eq!(
            mn2.out(&format!("{name}.changed")).trim(),
            "same",
            "{name}: preflight changed something"
        );
    }
}
