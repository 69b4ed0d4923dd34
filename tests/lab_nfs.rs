//! xCAT's published option 5 keeps the xCAT data on NFS. In the lab a third guest is the
//! filer (the kernel's nfsd); mn1 mounts its export on /install and writes to it; mn2's
//! `hamn takeover` must power mn1 off through its BMC before it mounts the share, because
//! NFS has no reservation a takeover could preempt. A hamn.toml that would fence mn1 at
//! the storage only is refused before anything is done.

mod support;

use std::time::{Duration, Instant};

use support::lab::{GuestSpec, NfsFiler, last_synced, run_guest, spawn_guest};

/// Every guest reaches the filer and the BMCs through its own QEMU's user network.
const NET: &str = r#"
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
"#;

fn with_user_net(spec: &mut GuestSpec) {
    spec.qemu_args = vec![
        "-netdev".into(),
        "user,id=n0".into(),
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
    ];
}

/// mn1, the primary: the share on /install, a line appended every 200 ms, reported
/// synced only once its fsync returned (NFS commits it to the filer's storage then).
fn mn1_writing(filer: &NfsFiler) -> GuestSpec {
    let script = format!(
        r#"{NET}
set -e
mkdir -p /install
mount -t nfs4 -o vers=4.2,port={port} {share} /install
set +e
. /usr/lib/lab/lib.sh
write_synced /install/synced MN1
"#,
        port = filer.port(),
        share = filer.source(),
    );
    let mut spec = GuestSpec::new("mn1", &script);
    with_user_net(&mut spec);
    spec
}

/// mn2's hamn.toml: the share, and how mn1 is fenced.
fn config(filer: &NfsFiler, bmc_port: u16, fencing: &str) -> String {
    format!(
        r#"node = "mn2"

[takeover]
peer = "mn1"
journal = "/var/lib/hamn/takeover.json"

[[takeover.mount]]
device = "{share}"
mountpoint = "/install"
type = "nfs4"
options = "vers=4.2,port={port}"

[peers.mn1]
fencing = {fencing}

[peers.mn1.bmc]
address = "10.0.2.2"
port = {bmc_port}
user = "admin"
password_env = "HAMN_BMC_PW"
profile = "openipmi-sim"
"#,
        share = filer.source(),
        port = filer.port(),
    )
}

const MN2_TAKES_OVER: &str = r#"
set +e
export HAMN_BMC_PW=hamn-test-pw
# Fencing mn1 at the storage only would leave it writing to the share: refused.
hamn --config /etc/hamn/storage-only.toml takeover > /out/storage-only.txt 2>&1
echo $? > /out/storage-only.rc
hamn takeover --dry-run > /out/dry-run.txt 2>&1; echo $? > /out/dry-run.rc
grep -c ' /install ' /proc/mounts > /out/mounted-before.txt
hamn takeover > /out/takeover.txt 2>&1; echo $? > /out/takeover.rc
tail -1 /install/synced > /out/last-line.txt 2>&1
grep ' /install ' /proc/mounts > /out/mounts.txt
hamn --json status > /out/status.json 2>/out/status.err
# Nothing of mn1's lands after mn2 mounted: the file is the same a while later.
sleep 3
tail -1 /install/synced > /out/last-line-later.txt 2>&1
echo "written by mn2" > /install/mn2-was-here
hamn takeover > /out/rerun.txt 2>&1; echo $? > /out/rerun.rc
hamn giveback > /out/giveback.txt 2>&1; echo $? > /out/giveback.rc
grep -c ' /install ' /proc/mounts > /out/mounted-after-giveback.txt
exit 0
"#;

#[test]
fn the_standby_powers_off_the_primary_before_it_mounts_the_xcat_data_from_nfs() {
    if !support::lab::require_lab() || !support::require_tool("ipmi_sim") {
        return;
    }
    let Some(filer) = NfsFiler::start().unwrap_or_else(|e| panic!("NFS filer: {e}")) else {
        return;
    };
    let Some(bmc) = support::sim::SimBmc::start(support::sim::SimOptions {
        initially_on: false,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("ipmi_sim: {e}")) else {
        return;
    };
    let mut mn1 = spawn_guest(&mn1_writing(&filer));
    mn1.guest.wait_for_line("MN1-SYNCED 3");
    bmc.adopt_server(mn1.guest.qemu_pid().expect("mn1 QEMU pid"));

    let port = bmc.addr().port();
    let mut spec = GuestSpec::new("mn2", &format!("{NET}\n{MN2_TAKES_OVER}"));
    with_user_net(&mut spec);
    spec.with_binary(support::layout::HAMN, &assert_cmd::cargo::cargo_bin("hamn"));
    spec.with_file(
        "/etc/hamn/hamn.toml",
        config(&filer, port, r#"["power"]"#).as_bytes(),
    );
    spec.with_file(
        "/etc/hamn/storage-only.toml",
        config(&filer, port, r#"["storage"]"#).as_bytes(),
    );
    let mn2 = run_guest(&spec);
    mn2.assert_ok();

    // The configuration that fences mn1 at the storage only: refused, nothing done.
    let refused = mn2.out("storage-only.txt");
    assert_ne!(mn2.rc("storage-only.rc"), 0, "{refused}");
    assert!(
        refused.contains("no reservation") && refused.contains("\"power\""),
        "says why and what to set:\n{refused}"
    );
    assert_eq!(
        mn2.out("mounted-before.txt").trim(),
        "0",
        "mounted before the takeover"
    );

    // The plan: the power fence, never skipped, then the NFS mount, no check.
    let plan = mn2.out("dry-run.txt");
    assert_eq!(mn2.rc("dry-run.rc"), 0, "{plan}");
    assert!(plan.contains("never skipped"), "{plan}");
    assert!(
        plan.contains(&format!(
            "mount -t nfs4 -o vers=4.2,port={} {} /install",
            filer.port(),
            filer.source()
        )),
        "{plan}"
    );
    assert!(
        !plan.contains("check /install"),
        "an NFS share has no check:\n{plan}"
    );

    // The takeover: mn1 powered off through its BMC, then the share mounted.
    let takeover = mn2.out("takeover.txt");
    assert_eq!(mn2.rc("takeover.rc"), 0, "{takeover}");
    let fence_at = takeover.find("fence-power").expect("fence-power step");
    let mount_at = takeover.find("mount /install").expect("mount step");
    assert!(fence_at < mount_at, "the mount came first:\n{takeover}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !mn1.guest.qemu_exited() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        mn1.guest.qemu_exited(),
        "mn1's QEMU is gone: its BMC powered it off"
    );
    assert!(!bmc.server_alive());
    assert!(
        mn2.out("mounts.txt")
            .contains(&format!("{} /install nfs4 rw", filer.source())),
        "{}",
        mn2.out("mounts.txt")
    );

    // Every line mn1 reported synced is on the share mn2 mounted, and nothing after.
    let synced = last_synced(&mn1.guest.console(), "MN1");
    let last = mn2.line_number("last-line.txt");
    assert!(
        last >= synced,
        "mn2 reads line {last}; mn1 had synced line {synced}"
    );
    assert_eq!(
        mn2.out("last-line.txt"),
        mn2.out("last-line-later.txt"),
        "mn1's data changed after mn2 mounted"
    );

    // hamn status sees the share mounted; a second run finds it in place.
    let status: serde_json::Value =
        serde_json::from_str(&mn2.out("status.json")).unwrap_or_else(|e| {
            panic!(
                "status JSON ({e}): {}\n{}",
                mn2.out("status.json"),
                mn2.out("status.err")
            )
        });
    let mounts = status["mounts"].as_array().expect("mounts");
    assert!(
        mounts
            .iter()
            .any(|m| m["mountpoint"] == "/install" && m["mounted"] == true),
        "{status}"
    );
    let rerun = mn2.out("rerun.txt");
    assert_eq!(mn2.rc("rerun.rc"), 0, "{rerun}");
    assert!(rerun.contains("already mounted"), "{rerun}");

    // The giveback unmounts the share.
    let giveback = mn2.out("giveback.txt");
    assert_eq!(mn2.rc("giveback.rc"), 0, "{giveback}");
    assert_eq!(
        mn2.out("mounted-after-giveback.txt").trim(),
        "0",
        "{giveback}"
    );
    let _ = filer.console();
}
