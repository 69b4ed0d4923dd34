//! xCAT's option 3: each management node keeps its own copy of the xCAT data, mirrored
//! by DRBD (the guest kernel's 8.4 module, drbd-utils) over a guest-to-guest link. mn1
//! is Primary and writes /install; mn2 is Secondary. First mn2's copy is marked Outdated
//! (disconnected, as a `resource-only` fence-peer handler on mn1 would leave it) while
//! mn1 writes on: `hamn takeover` on mn2 refuses before fencing anything and says why.
//! Reconnected, mn2 resyncs; then mn1 crashes, and `hamn takeover` on mn2 confirms mn1
//! off through its BMC, promotes, replays and checks the journal, mounts, and reads
//! mn1's last synced line. Then mn1 is powered on again: it resyncs as Secondary, mn2
//! gives the data back (`hamn giveback` demotes), and mn1's `hamn takeover` moves the
//! role back without powering mn2 off, since DRBD shows mn2 Secondary and connected.
//!
//! mn1's drbd.conf here has no fencing policy: with `resource-and-stonith` its handler
//! would power mn2 off the moment mn2 disconnects, which is that policy working, and
//! what the other test checks.

mod support;

use std::time::Duration;

use support::drbd::{config, config_with, drbd_conf, free_udp_port, node, two_bmcs};
use support::lab::{last_synced, spawn_guests};

/// mn1, the Primary: the file system on the mirror, a line appended every 200 ms and
/// reported synced once its fsync returned (protocol C: on both disks).
const MN1: &str = r#"
if [ $FIRST_BOOT = 0 ]; then
    # Powered on again after mn2 took over: Secondary, resynced from mn2; then, once mn2
    # gave the data back, the failback.
    set +e
    in_sync || exit 40
    echo "MN1-RESYNCED"
    i=0
    until drbdadm role xcat | grep -q '^Secondary/Secondary'; do
        i=$((i + 1)); [ $i -lt 600 ] || exit 41
        sleep 0.2
    done
    hamn takeover > /out/failback.txt 2>&1; echo $? > /out/failback.rc
    tail -1 /install/synced > /out/failback-last-line.txt 2>&1
    drbdadm role xcat > /out/failback-role.txt
    exit 0
fi
$MN1_PRIMARY
set +e
write_synced /install/synced MN1
"#;

const MN2: &str = r#"
set +e
in_sync || exit 30
echo "MN2-IN-SYNC"
# Replication stops and this copy is marked Outdated; mn1 writes on.
drbdadm disconnect xcat && drbdadm outdate xcat || exit 31
sleep 2
drbdadm dstate xcat > /out/outdated-state.txt
hamn takeover > /out/outdated.txt 2>&1; echo $? > /out/outdated.rc
hamn takeover --dry-run > /out/outdated-dry-run.txt 2>&1; echo $? > /out/outdated-dry-run.rc
drbdadm role xcat > /out/outdated-role.txt
# Reconnected, this copy catches up with what mn1 wrote meanwhile.
drbdadm connect xcat
in_sync || exit 32
echo "MN2-READY"
while [ ! -e /out/go ]; do sleep 0.2; done
hamn takeover --dry-run > /out/dry-run.txt 2>&1
hamn takeover > /out/takeover.txt 2>&1; echo $? > /out/takeover.rc
tail -1 /install/synced > /out/last-line.txt 2>&1
drbdadm role xcat > /out/role.txt
hamn status > /out/status.txt 2>&1
echo "written by mn2" | dd of=/install/synced oflag=append conv=notrunc,fsync status=none
echo "MN2-SERVING"
# mn1 is powered on again and resyncs from this node; then the data goes back to it.
in_sync || exit 33
hamn giveback > /out/giveback.txt 2>&1; echo $? > /out/giveback.rc
drbdadm role xcat > /out/role-after-giveback.txt
grep -c ' /install ' /proc/mounts > /out/mounted-after-giveback.txt
i=0
until drbdadm role xcat | grep -q '^Secondary/Primary'; do
    i=$((i + 1)); [ $i -lt 600 ] || { echo "mn1 never took the role back"; break; }
    sleep 0.2
done
drbdadm role xcat > /out/role-after-failback.txt
# Up until the host has looked at this node's power.
while [ ! -e /out/host-done ]; do sleep 0.2; done
exit 0
"#;

#[test]
fn an_outdated_standby_refuses_and_an_up_to_date_one_takes_over_the_mirror() {
    let Some((bmc1, bmc2)) = two_bmcs() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (p1, p2) = (free_udp_port(), free_udp_port());
    let drbd_port = 7789;
    let conf = drbd_conf(drbd_port, false);
    let (bmc1_port, bmc2_port) = (bmc1.addr().port(), bmc2.addr().port());
    let specs = [
        node(
            "mn1",
            1,
            MN1,
            dir.path(),
            (p1, p2),
            &conf,
            &config("mn1", "mn2", bmc2_port),
        ),
        node(
            "mn2",
            2,
            MN2,
            dir.path(),
            (p2, p1),
            &conf,
            &config("mn2", "mn1", bmc1_port),
        ),
    ];
    let mut guests = spawn_guests(&specs).into_iter();
    let (Some(mut mn1), Some(mut mn2)) = (guests.next(), guests.next()) else {
        panic!("two guests");
    };
    mn1.guest.wait_for_line("MN1-SYNCED 3");
    bmc1.adopt_server(mn1.guest.qemu_pid().expect("mn1 QEMU pid"));
    bmc2.adopt_server(mn2.guest.qemu_pid().expect("mn2 QEMU pid"));
    bmc1.on_power_on(&mn1.guest.boot_again_script("again"));

    // The refusal left mn1 running (its BMC still reports it on).
    mn2.guest.wait_for_line("MN2-READY");
    assert!(bmc1.server_alive(), "the refused takeover powered mn1 off");

    // mn1 crashes; mn2 is told to take over.
    let pid = nix::unistd::Pid::from_raw(mn1.guest.qemu_pid().expect("mn1 QEMU") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill mn1");
    while !mn1.guest.qemu_exited() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let synced = last_synced(&mn1.guest.console(), "MN1");
    std::fs::write(mn2.guest.dir().join("out/go"), "").expect("tell mn2");
    mn2.guest.wait_for_line("MN2-SERVING");

    // The admin powers mn1 on: it resyncs as Secondary, mn2 gives the data back, and
    // mn1 takes it over again, without powering mn2 off.
    bmc1.power_on();
    let again = mn1.guest.dir().join("console-again.log");
    let (status, console) = support::lab::wait_for_result_in(&again, Duration::from_secs(300));
    assert_eq!(status, 0, "mn1's second boot:\n{console}");
    let mn1_out = |name: &str| {
        std::fs::read_to_string(mn1.guest.dir().join("out").join(name)).unwrap_or_default()
    };
    assert!(bmc2.server_alive(), "mn2 was powered off by the failback");
    std::fs::write(mn2.guest.dir().join("out/host-done"), "").expect("tell mn2");
    let mn2 = mn2.guest.finish();
    mn2.assert_ok();
    let failback = mn1_out("failback.txt");
    assert_eq!(mn1_out("failback.rc").trim(), "0", "{failback}");
    assert!(
        failback.contains("not powered off") && failback.contains("Secondary and connected"),
        "the failback does not power mn2 off, and says why:\n{failback}"
    );
    assert!(
        mn1_out("failback-role.txt").starts_with("Primary/Secondary"),
        "{failback}"
    );
    assert_eq!(
        mn1_out("failback-last-line.txt").trim(),
        "written by mn2",
        "mn1 has what mn2 wrote while it served"
    );
    assert!(
        mn2.out("role-after-failback.txt")
            .starts_with("Secondary/Primary"),
        "{}",
        mn2.out("role-after-failback.txt")
    );

    // Outdated: refused before any fencing, with the reason and the way out.
    assert!(
        mn2.out("outdated-state.txt").starts_with("Outdated"),
        "{}",
        mn2.out("outdated-state.txt")
    );
    let refused = mn2.out("outdated.txt");
    assert_ne!(mn2.rc("outdated.rc"), 0, "{refused}");
    for want in ["xcat", "Outdated", "--force-promote xcat", "not fenced"] {
        assert!(refused.contains(want), "{want:?} missing:\n{refused}");
    }
    assert!(!refused.contains("fence-power"), "fenced first:\n{refused}");
    assert_ne!(
        mn2.rc("outdated-dry-run.rc"),
        0,
        "{}",
        mn2.out("outdated-dry-run.txt")
    );
    assert!(mn2.out("outdated-role.txt").starts_with("Secondary"));

    // The plan, then the takeover.
    let plan = mn2.out("dry-run.txt");
    for want in [
        "fence-power",
        "promote xcat",
        "drbdadm primary xcat",
        "check /install",
    ] {
        assert!(plan.contains(want), "{want:?} missing:\n{plan}");
    }
    let takeover = mn2.out("takeover.txt");
    assert_eq!(mn2.rc("takeover.rc"), 0, "{takeover}");
    let at = |step: &str| {
        takeover
            .find(step)
            .unwrap_or_else(|| panic!("{step} missing:\n{takeover}"))
    };
    assert!(at("fence-power") < at("promote xcat") && at("promote xcat") < at("check /install"));
    assert!(at("check /install") < at("mount /install"), "{takeover}");
    assert!(
        mn2.out("role.txt").starts_with("Primary"),
        "{}",
        mn2.out("role.txt")
    );
    let last = mn2.line_number("last-line.txt");
    assert!(
        last >= synced,
        "mn2 reads line {last}; mn1 had synced line {synced}"
    );
    let status = mn2.out("status.txt");
    assert!(status.contains("DRBD xcat: role Primary"), "{status}");

    // Giveback: unmounted and Secondary again.
    let giveback = mn2.out("giveback.txt");
    assert_eq!(mn2.rc("giveback.rc"), 0, "{giveback}");
    assert!(
        mn2.out("role-after-giveback.txt").starts_with("Secondary"),
        "{giveback}"
    );
    assert_eq!(mn2.out("mounted-after-giveback.txt").trim(), "0");
}

/// mn1 with `fencing resource-and-stonith` and hamn as its fence-peer handler: Primary,
/// writing until the host says stop, then what it saw.
const MN1_WRITES_ON: &str = r#"
chmod 600 /etc/hamn/mn2.pw
$MN1_PRIMARY
set +e
write_synced /install/synced MN1 /out/stop
tail -1 /install/synced > /out/last-line.txt
drbdadm role xcat > /out/role.txt
drbdadm dstate xcat > /out/dstate.txt
dmesg | grep -i 'drbd' > /out/dmesg.txt
exit 0
"#;

/// mn2, Secondary, says its role until it is powered off.
const MN2_WATCHES: &str = r#"
set +e
in_sync || exit 30
echo "MN2-IN-SYNC"
while true; do
    echo "MN2-ROLE $(drbdadm role xcat)"
    sleep 0.5
done
"#;

/// The replication link is cut while mn1 writes: DRBD on mn1 freezes its I/O and runs
/// `hamn drbd fence-peer`, which powers mn2 off through mn2's BMC and answers 7; DRBD
/// resumes, and mn1 writes on. mn2 never became Primary, and every write mn1 reported
/// synced is in its file.
#[test]
fn a_cut_replication_link_powers_the_secondary_off_and_the_primary_writes_on() {
    let Some((bmc1, bmc2)) = two_bmcs() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (p1, p2) = (free_udp_port(), free_udp_port());
    let cable = support::cable::Cable::new([p1, p2]);
    let conf = drbd_conf(7789, true);
    let mut mn1_spec = node(
        "mn1",
        1,
        MN1_WRITES_ON,
        dir.path(),
        (p1, cable.ends[0]),
        &conf,
        &config_with(
            "mn1",
            "mn2",
            bmc2.addr().port(),
            "password_file = \"/etc/hamn/mn2.pw\"",
        ),
    );
    mn1_spec.with_file("/etc/hamn/mn2.pw", b"hamn-test-pw");
    let mn2_spec = node(
        "mn2",
        2,
        MN2_WATCHES,
        dir.path(),
        (p2, cable.ends[1]),
        &conf,
        &config("mn2", "mn1", bmc1.addr().port()),
    );
    let mut guests = spawn_guests(&[mn1_spec, mn2_spec]).into_iter();
    let (Some(mut mn1), Some(mut mn2)) = (guests.next(), guests.next()) else {
        panic!("two guests");
    };
    mn1.guest.wait_for_line("MN1-SYNCED 3");
    mn2.guest.wait_for_line("MN2-IN-SYNC");
    bmc1.adopt_server(mn1.guest.qemu_pid().expect("mn1 QEMU pid"));
    bmc2.adopt_server(mn2.guest.qemu_pid().expect("mn2 QEMU pid"));

    cable.cut();
    let at_cut = last_synced(&mn1.guest.console(), "MN1");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !mn2.guest.qemu_exited() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        mn2.guest.qemu_exited() && !bmc2.server_alive(),
        "mn2 is still running after the cut:\n{}",
        mn1.guest.console()
    );
    mn1.guest
        .wait_for_line(&format!("MN1-SYNCED {}", at_cut + 10));
    std::fs::write(mn1.guest.dir().join("out/stop"), "").expect("tell mn1");
    let mn1 = mn1.guest.finish();
    mn1.assert_ok();

    assert!(bmc1.server_alive() || mn1.status == 0, "mn1 ran to its end");
    assert!(
        !mn1.console.contains("MN1-WRITE-FAILED"),
        "a write of mn1 failed:\n{}",
        mn1.console
    );
    let last = mn1.line_number("last-line.txt");
    assert_eq!(
        last,
        last_synced(&mn1.console, "MN1"),
        "every synced line is in the file"
    );
    assert!(
        mn1.out("role.txt").starts_with("Primary/"),
        "{}",
        mn1.out("role.txt")
    );
    let dmesg = mn1.out("dmesg.txt");
    assert!(
        dmesg.contains("fence-peer") && dmesg.contains("exit code 7"),
        "DRBD ran the handler and read 7:\n{dmesg}"
    );
    let mn2_console = mn2.guest.console();
    assert!(
        mn2_console.contains("MN2-ROLE Secondary/Primary")
            && !mn2_console.contains("MN2-ROLE Primary"),
        "mn2 was never Primary:\n{mn2_console}"
    );
}
