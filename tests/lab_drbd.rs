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

/// xCAT's option 6 under the cluster: what each node runs once its mirror is up. mn1's
/// first boot makes the file system with both copies in sync, then leaves the role to
/// the cluster (Secondary); both start Corosync and Pacemaker with the CIB that
/// fencing/examples/pacemaker-drbd.sh builds, as hamn(8) says.
const CLUSTER_PREP: &str = r#"
if [ $ID = 1 ]; then
    $MN1_PRIMARY
    echo setup > /install/synced && umount /install && drbdadm secondary xcat || exit 27
fi
in_sync || exit 28
"#;

/// mn1 under the cluster: once the cluster has started the takeover here, a synced line
/// every 200 ms until it dies.
const MN1_CLUSTER: &str = r#"
wait_for MN1-NEVER-STARTED 180 started_on mn1
echo "MN1-SERVING $(now)"
drbdadm role xcat > /out/role.txt
save
set +e
write_synced /install/synced MN1
"#;

/// mn2 under the cluster: the standby, until the cluster has moved the role here.
const MN2_CLUSTER: &str = r#"
wait_for MN2-NEVER-SAW-MN1 180 started_on mn1
echo "MN2-STANDBY $(now)"
wait_for MN2-NEVER-SERVED 240 started_on mn2
echo "MN2-SERVING $(now)"
set +e
tail -1 /install/synced > /out/last-line.txt 2>&1
drbdadm role xcat > /out/role.txt
drbdadm dstate xcat > /out/dstate.txt
ip -4 addr show dev eth0 > /out/ip.txt
ls /run/xcatd.up > /out/xcatd.txt 2>&1
hamn status > /out/status.txt 2>&1
cp /var/lib/hamn/takeover.json /out/journal.json
dmesg > /out/dmesg.txt
sleep 3
save
exit 0
"#;

/// A node's hamn.toml under the cluster: the BMC password from a file (fence_hamn and
/// DRBD's handler run with environments of their own), and what users see: the service
/// address and xcatd.
fn cluster_config(node: &str, peer: &str, bmc_port: u16) -> String {
    format!(
        "{}\n[takeover.service_ip]\naddress = \"192.168.60.10/24\"\ninterface = \"eth0\"\n\n\
         [[takeover.service]]\nname = \"xcatd\"\nstart = [\"touch\", \"/run/xcatd.up\"]\n\
         ready = [\"test\", \"-e\", \"/run/xcatd.up\"]\nstop = [\"rm\", \"-f\", \"/run/xcatd.up\"]\n",
        config_with(
            node,
            peer,
            bmc_port,
            &format!("password_file = \"/etc/hamn/{peer}.bmc\"")
        )
    )
}

/// The two nodes under the cluster, running `mn1` and `mn2` after the shared set-up,
/// each powered by its own BMC, the link between them (Corosync's and DRBD's) through a
/// cable a test may cut.
struct Pair {
    _dir: tempfile::TempDir,
    bmc1: support::sim::SimBmc,
    _bmc2: support::sim::SimBmc,
    cable: support::cable::Cable,
    mn1: support::lab::Background,
    mn2: support::lab::Background,
}

fn cluster_pair(mn1: &str, mn2: &str) -> Option<Pair> {
    if !support::require_tool("cibadmin") || !support::require_tool("corosync") {
        return None;
    }
    let (bmc1, bmc2) = two_bmcs()?;
    let dir = tempfile::tempdir().expect("tempdir");
    let cib = support::cluster::build_cib(dir.path(), "pacemaker-drbd.sh");
    let pw = dir.path().join("bmc.pw");
    std::fs::write(&pw, support::sim::SimOptions::default().password).expect("password file");
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let (p1, p2) = (free_udp_port(), free_udp_port());
    let cable = support::cable::Cable::new([p1, p2]);
    // The handler as hamn(8) gives it for the cluster.
    let conf = support::drbd::drbd_conf_with(
        7789,
        Some("/usr/sbin/hamn drbd fence-peer --standby-delay 15"),
    );
    let spec = |name: &str, id: u8, peer: &str, link, bmc_port, scenario: &str| {
        let script = format!("{CLUSTER_PREP}\n{}\n{scenario}", support::cluster::START);
        let mut g = node(
            name,
            id,
            &script,
            dir.path(),
            link,
            &conf,
            &cluster_config(name, peer, bmc_port),
        );
        support::cluster::with_cluster(&mut g, &cib);
        support::cluster::with_linbit_drbd_agent(&mut g);
        g.files.push((format!("/etc/hamn/{peer}.bmc"), pw.clone()));
        g.timeout = Duration::from_secs(420);
        g
    };
    let specs = [
        spec(
            "mn1",
            1,
            "mn2",
            (p1, cable.ends[0]),
            bmc2.addr().port(),
            mn1,
        ),
        spec(
            "mn2",
            2,
            "mn1",
            (p2, cable.ends[1]),
            bmc1.addr().port(),
            mn2,
        ),
    ];
    let mut guests = spawn_guests(&specs).into_iter();
    let (Some(mn1), Some(mn2)) = (guests.next(), guests.next()) else {
        panic!("two guests");
    };
    bmc1.adopt_server(mn1.guest.qemu_pid().expect("mn1 QEMU pid"));
    bmc2.adopt_server(mn2.guest.qemu_pid().expect("mn2 QEMU pid"));
    Some(Pair {
        _dir: dir,
        bmc1,
        _bmc2: bmc2,
        cable,
        mn1,
        mn2,
    })
}

/// mn2 served after mn1 was lost: mn1 is off, mn1's last synced line is read on mn2,
/// the copy is Primary there, users see the address and xcatd, Pacemaker fenced mn1
/// through fence_hamn and DRBD's handler on mn2 confirmed it, and crm_mon shows no
/// failed action.
fn assert_mn2_took_over(
    bmc1: &support::sim::SimBmc,
    run2: &support::lab::GuestRun,
    mn1_console: &str,
) {
    run2.assert_ok();
    assert!(!bmc1.server_alive(), "mn1 is off");
    assert_eq!(
        run2.line_number("last-line.txt"),
        last_synced(mn1_console, "MN1"),
        "mn1's last synced line is read on mn2:\n{}",
        run2.out("last-line.txt")
    );
    assert!(
        run2.out("role.txt").starts_with("Primary/"),
        "{}",
        run2.out("role.txt")
    );
    assert!(run2.out("ip.txt").contains("192.168.60.10"));
    assert!(run2.out("xcatd.txt").contains("xcatd.up"));
    let mon = run2.out("crm_mon.txt");
    assert!(
        support::cluster::failed_actions(&mon, |_| false).is_empty()
            && !mon.contains("Failed Fencing Actions"),
        "crm_mon shows failed actions:\n{mon}"
    );
    let log = run2.out("pacemaker.log");
    assert!(
        log.contains("Peer mn1 was terminated (reboot) by mn2"),
        "Pacemaker fenced mn1 through fence_hamn:\n{log}"
    );
    let dmesg = run2.out("dmesg.txt");
    assert!(
        dmesg.contains("fence-peer helper returned 7"),
        "promoting, DRBD asked hamn drbd fence-peer, which confirmed mn1 off:\n{dmesg}"
    );
    let journal = run2.out("journal.json");
    assert!(
        journal.contains("\"complete\": true") || journal.contains("\"complete\":true"),
        "{journal}"
    );
}

/// The Primary crashes under Pacemaker: the cluster on mn2 fences mn1 through
/// fence_hamn (ipmi_sim reports it off), ocf:linbit:drbd promotes mn2's copy (DRBD asks
/// `hamn drbd fence-peer` first, which confirms mn1 off), then ocf:hamn:takeover checks,
/// mounts and serves: mn1's last synced line is read on mn2, with no failed action.
#[test]
fn the_primary_crashes_under_pacemaker_and_the_cluster_fences_and_promotes_through_hamn() {
    let Some(mut p) = cluster_pair(MN1_CLUSTER, MN2_CLUSTER) else {
        return;
    };
    p.mn1.guest.wait_for_line("MN1-SYNCED 5");
    let crashed = std::time::Instant::now();
    let pid = nix::unistd::Pid::from_raw(p.mn1.guest.qemu_pid().expect("mn1 QEMU") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill mn1");
    while !p.mn1.guest.qemu_exited() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mn1_console = p.mn1.guest.console();
    let run2 = p.mn2.guest.finish();
    println!(
        "crash of the DRBD Primary to service up on mn2: {:.1} s; {}\n{}",
        crashed.elapsed().as_secs_f64(),
        support::cluster::noticed_to_started(&run2.out("pacemaker.log")),
        run2.out("crm_mon.txt")
    );
    // (mn2 ran its scenario to the end: nobody powered it off.)
    assert_mn2_took_over(&p.bmc1, &run2, &mn1_console);
}

/// The link between the nodes (Corosync's and DRBD's) is cut while mn1 is Primary and
/// writes: both sides fence at once, mn1 through DRBD's handler and its cluster, mn2
/// through its cluster. mn1 is Primary, so both its fences wait the standby delay
/// while its I/O is frozen; mn2 powers mn1 off first and takes over. Exactly one node
/// remains, and no write mn1 reported synced is missing on mn2.
#[test]
fn a_cut_link_under_pacemaker_leaves_the_standby_serving_and_loses_no_synced_write() {
    let Some(mut p) = cluster_pair(MN1_CLUSTER, MN2_CLUSTER) else {
        return;
    };
    p.mn1.guest.wait_for_line("MN1-SYNCED 5");
    let cut = std::time::Instant::now();
    p.cable.cut();
    let run2 = p.mn2.guest.finish();
    println!(
        "cut link to service up on mn2: {:.1} s; {}\n{}",
        cut.elapsed().as_secs_f64(),
        support::cluster::noticed_to_started(&run2.out("pacemaker.log")),
        run2.out("crm_mon.txt")
    );
    // mn1 was powered off by mn2's cluster, not by itself or anything else, and never
    // powered mn2 off: mn2 ran its scenario to the end.
    assert!(p.mn1.guest.qemu_exited(), "mn1 was powered off");
    let mn1_console = p.mn1.guest.console();
    assert!(
        !mn1_console.contains("MN1-WRITE-FAILED"),
        "a write of mn1 failed rather than waiting:\n{mn1_console}"
    );
    assert_mn2_took_over(&p.bmc1, &run2, &mn1_console);
}

/// mn1 for a planned move: serves, writes five synced lines, goes idle (the admin stops
/// the work before moving the xCAT data), and must end up alive and Secondary.
const MN1_MOVED: &str = r#"
wait_for MN1-NEVER-STARTED 180 started_on mn1
echo "MN1-SERVING $(now)"
set +e
i=0
while [ $i -lt 5 ]; do
    echo "line $i" | dd of=/install/synced oflag=append conv=notrunc,fsync status=none \
        && echo "MN1-SYNCED $i"
    i=$((i + 1))
done
echo "MN1-IDLE"
wait_for MN1-NEVER-MOVED 180 started_on mn2
# The cluster demotes this copy once the takeover here has stopped.
i=0
until drbdadm role xcat | grep -q '^Secondary/Primary'; do
    i=$((i + 1)); [ $i -lt 300 ] || break
    sleep 0.2
done
drbdadm role xcat > /out/role-after.txt
grep -c ' /install ' /proc/mounts > /out/mounted-after.txt
ip -4 addr show dev eth0 > /out/ip-after.txt
save
# Up (Secondary) until the test is done with mn2.
while [ ! -e /out/done ]; do sleep 0.5; done
exit 0
"#;

/// mn2 for a planned move: the admin moves the resource here when told to, as hamn(8)
/// says, then clears the move's constraint.
const MN2_MOVES: &str = r#"
wait_for MN2-NEVER-SAW-MN1 180 started_on mn1
while [ ! -e /out/move-now ]; do sleep 0.5; done
crm_resource --move --resource xcat-mn --node mn2 > /out/move.txt 2>&1
wait_for MN2-NEVER-SERVED 240 started_on mn2
echo "MN2-SERVING $(now)"
crm_resource --clear --resource xcat-mn > /out/clear.txt 2>&1
set +e
tail -1 /install/synced > /out/last-line.txt 2>&1
drbdadm role xcat > /out/role.txt
stonith_admin --history mn1 > /out/fence-history.txt 2>&1
# The demoted copy's next monitor has run (interval 31 s as Unpromoted).
sleep 35
save
exit 0
"#;

/// A planned move under the cluster: `crm_resource --move` stops the takeover on mn1
/// (giveback), the cluster demotes mn1's copy and promotes mn2's, and the takeover on
/// mn2 sees mn1 Secondary and connected: nobody is powered off, mn1's last line is
/// read on mn2, and crm_mon shows no failed action.
#[test]
fn a_planned_move_under_pacemaker_moves_the_mirror_and_fences_nobody() {
    let Some(mut p) = cluster_pair(MN1_MOVED, MN2_MOVES) else {
        return;
    };
    p.mn1.guest.wait_for_line("MN1-IDLE");
    std::fs::write(p.mn2.guest.dir().join("out/move-now"), "").expect("tell mn2");
    let run2 = p.mn2.guest.finish();
    std::fs::write(p.mn1.guest.dir().join("out/done"), "").expect("tell mn1");
    let run1 = p.mn1.guest.finish();
    println!("{}", run2.out("crm_mon.txt"));
    run2.assert_ok();
    run1.assert_ok();
    assert_eq!(run2.out("last-line.txt").trim(), "line 4");
    assert!(
        run2.out("role.txt").starts_with("Primary/Secondary"),
        "{}",
        run2.out("role.txt")
    );
    assert!(
        run1.out("role-after.txt").starts_with("Secondary/Primary"),
        "{}",
        run1.out("role-after.txt")
    );
    assert_eq!(run1.out("mounted-after.txt").trim(), "0");
    assert!(!run1.out("ip-after.txt").contains("192.168.60.10"));
    let history = run2.out("fence-history.txt");
    assert!(
        !history.contains("reboot") && !history.contains("off"),
        "nobody was fenced:\n{history}"
    );
    let mon = run2.out("crm_mon.txt");
    assert!(
        support::cluster::failed_actions(&mon, |_| false).is_empty(),
        "crm_mon shows failed actions:\n{mon}"
    );
}
