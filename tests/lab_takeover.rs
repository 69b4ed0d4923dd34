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
    let mount = if mount {
        "[[takeover.mount]]\ndevice = \"LABEL=xcatinstall\"\nmountpoint = \"/install\"\ntype = \"ext4\"\n"
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
"#;

fn node(name: &str, peer: &str, lun: &Lun, script: &str, mount: bool) -> GuestSpec {
    let mut g = GuestSpec::new(name, &format!("{PRELUDE}\n{script}"));
    g.luns = vec![(lun.clone(), 2)];
    g.with_binary("/usr/sbin/hamn", &assert_cmd::cargo::cargo_bin("hamn"));
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
hamn --json pr status $map > /out/status.json
cat /var/lib/hamn/takeover.json > /out/journal.json
# A second run: everything is in place and proven again.
hamn takeover > /out/rerun.txt 2>&1; echo $? > /out/rerun.rc
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
    let mn2 = run_guest(&node("mn2", "mn1", &lun, MN2_STANDBY, true));
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
        ["fence-storage", "check /install", "mount /install"],
        "{lines:?}"
    );
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
