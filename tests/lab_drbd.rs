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

use std::path::Path;
use std::time::Duration;

use support::lab::{GuestSpec, spawn_guests};

fn drbd_conf(port: u16, fencing: bool) -> String {
    // Resyncs at a fixed, fast rate (8.4's default controller starts slowly).
    let (disk, handlers) = if fencing {
        (
            "    disk { fencing resource-and-stonith; c-plan-ahead 0; resync-rate 100M; }\n",
            "    handlers {\n        fence-peer \"/usr/sbin/hamn drbd fence-peer\";\n        \
             after-resync-target \"/usr/sbin/hamn drbd unfence-peer\";\n    }\n",
        )
    } else {
        ("    disk { c-plan-ahead 0; resync-rate 100M; }\n", "")
    };
    format!(
        r#"global {{ usage-count no; }}
resource xcat {{
    protocol C;
    net {{ ping-int 2; ping-timeout 5; connect-int 2; }}
{disk}{handlers}    on mn1 {{
        device /dev/drbd0;
        disk /dev/vda;
        address 192.168.100.1:{port};
        meta-disk internal;
    }}
    on mn2 {{
        device /dev/drbd0;
        disk /dev/vda;
        address 192.168.100.2:{port};
        meta-disk internal;
    }}
}}
"#
    )
}

/// A node's hamn.toml: the other node's BMC, the mirror, the file system on it.
fn config(node: &str, peer: &str, bmc_port: u16) -> String {
    config_with(node, peer, bmc_port, "password_env = \"HAMN_BMC_PW\"")
}

/// The same with the BMC password's source: DRBD runs its handlers with an environment
/// of its own, so there the password comes from a file.
fn config_with(node: &str, peer: &str, bmc_port: u16, password: &str) -> String {
    format!(
        r#"node = "{node}"

[takeover]
peer = "{peer}"
journal = "/var/lib/hamn/takeover.json"

[[takeover.drbd]]
resource = "xcat"
wait = 20

[[takeover.mount]]
device = "/dev/drbd0"
mountpoint = "/install"
type = "ext4"

[peers.{peer}]
fencing = ["power"]

[peers.{peer}.bmc]
address = "10.0.2.2"
port = {bmc_port}
user = "admin"
{password}
profile = "openipmi-sim"
"#
    )
}

/// Both nodes: the BMCs through the user network, the mirror over the link, the
/// resource up (metadata created on the empty disk). `in_sync` polls drbdadm, which
/// takes a moment under emulation: 600 rounds are minutes.
const BOOT: &str = r#"
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
ip link set eth1 up && ip addr add 192.168.100.$ID/24 dev eth1
modprobe drbd
mkdir -p /var/lib/drbd /var/lock /install
# The first boot finds an empty disk; a node powered on again finds its metadata.
FIRST_BOOT=0
if ! drbdadm up xcat 2>/dev/null; then
    FIRST_BOOT=1
    echo yes | drbdadm create-md xcat > /tmp/create-md.txt 2>&1 || { cat /tmp/create-md.txt; exit 20; }
    drbdadm up xcat || exit 21
fi
export HAMN_BMC_PW=hamn-test-pw
# Waits until both copies are UpToDate (the initial sync or a resync done).
in_sync() {
    i=0
    until drbdadm dstate xcat | grep -q '^UpToDate/UpToDate'; do
        i=$((i + 1)); [ $i -lt 600 ] || { echo "never in sync: $(drbdadm dstate xcat)"; return 1; }
        sleep 0.2
    done
}
"#;

/// mn1, the Primary: the file system on the mirror, a line appended every 200 ms and
/// reported synced once its fsync returned (protocol C: on both disks).
/// mn1's first boot: Primary over two empty disks (no initial sync: DRBD's "skipping
/// the initial resync"), the file system made and mounted.
const MN1_PRIMARY: &str = r#"
i=0
until drbdadm cstate xcat | grep -q '^Connected'; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "never connected: $(drbdadm cstate xcat)"; exit 25; }
    sleep 0.2
done
drbdadm -- --clear-bitmap new-current-uuid xcat || exit 26
drbdadm primary xcat || exit 22
mkfs.ext4 -q -L xcatinstall /dev/drbd0 || exit 23
modprobe ext4
mount -t ext4 /dev/drbd0 /install || exit 24
"#;

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

/// A node of the pair: its mirror disk, the link to the other node (a UDP socket pair
/// on the host's loopback), a user network for the BMCs, hamn and the configurations.
fn node(
    name: &str,
    id: u8,
    script: &str,
    dir: &Path,
    link: (u16, u16),
    conf: &str,
    toml: &str,
) -> GuestSpec {
    let script = script.replace("$MN1_PRIMARY", MN1_PRIMARY);
    let mut g = GuestSpec::new(name, &format!("ID={id}\n{BOOT}\n{script}"));
    let disk = dir.join(format!("{name}-drbd.img"));
    support::lab::make_disk(&disk, 96);
    g.timeout = Duration::from_secs(300);
    g.qemu_args = vec![
        "-netdev".into(),
        "user,id=n0".into(),
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
        "-netdev".into(),
        format!(
            "socket,id=r0,udp=127.0.0.1:{},localaddr=127.0.0.1:{}",
            link.1, link.0
        ),
        "-device".into(),
        format!("virtio-net-pci,netdev=r0,mac=52:54:00:64:72:0{id}"),
        "-blockdev".into(),
        format!(
            "driver=raw,node-name=drbd,file.driver=file,file.filename={}",
            disk.display()
        ),
        "-device".into(),
        "virtio-blk-pci,drive=drbd,serial=drbd".into(),
    ];
    // No LUNs: the mirror's disk is the node's own.
    g.with_file("/etc/lab-no-multipathd", b"");
    g.with_file("/etc/drbd.conf", conf.as_bytes());
    g.with_file("/etc/hamn/hamn.toml", toml.as_bytes());
    g.with_binary("/usr/sbin/hamn", &assert_cmd::cargo::cargo_bin("hamn"));
    g
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

fn rc(run: &support::lab::GuestRun, name: &str) -> i32 {
    run.out(name)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name}: {}", run.out(name)))
}

fn synced(console: &str) -> u32 {
    console
        .lines()
        .filter_map(|l| l.trim().strip_prefix("MN1-SYNCED "))
        .filter_map(|n| n.trim().parse::<u32>().ok())
        .max()
        .expect("mn1 synced lines")
}

#[test]
fn an_outdated_standby_refuses_and_an_up_to_date_one_takes_over_the_mirror() {
    if !support::lab::require_lab() || !support::require_tool("ipmi_sim") {
        return;
    }
    let bmc = || {
        support::sim::SimBmc::start(support::sim::SimOptions {
            initially_on: false,
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("ipmi_sim: {e}"))
    };
    let (Some(bmc1), Some(bmc2)) = (bmc(), bmc()) else {
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
    let last_synced = synced(&mn1.guest.console());
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
    assert_ne!(rc(&mn2, "outdated.rc"), 0, "{refused}");
    for want in ["xcat", "Outdated", "--force-promote xcat", "not fenced"] {
        assert!(refused.contains(want), "{want:?} missing:\n{refused}");
    }
    assert!(!refused.contains("fence-power"), "fenced first:\n{refused}");
    assert_ne!(
        rc(&mn2, "outdated-dry-run.rc"),
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
    assert_eq!(rc(&mn2, "takeover.rc"), 0, "{takeover}");
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
    let last: u32 = mn2
        .out("last-line.txt")
        .trim()
        .strip_prefix("line ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("mn2 read: {}", mn2.out("last-line.txt")));
    assert!(
        last >= last_synced,
        "mn2 reads line {last}; mn1 had synced line {last_synced}"
    );
    let status = mn2.out("status.txt");
    assert!(status.contains("DRBD xcat: role Primary"), "{status}");

    // Giveback: unmounted and Secondary again.
    let giveback = mn2.out("giveback.txt");
    assert_eq!(rc(&mn2, "giveback.rc"), 0, "{giveback}");
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
i=0
while [ ! -e /out/stop ]; do
    if echo "line $i" | dd of=/install/synced oflag=append conv=notrunc,fsync status=none 2>/dev/null; then
        echo "MN1-SYNCED $i"
    else
        echo "MN1-WRITE-FAILED $i"
    fi
    i=$((i + 1))
    sleep 0.2
done
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
    if !support::lab::require_lab() || !support::require_tool("ipmi_sim") {
        return;
    }
    let bmc = || {
        support::sim::SimBmc::start(support::sim::SimOptions {
            initially_on: false,
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("ipmi_sim: {e}"))
    };
    let (Some(bmc1), Some(bmc2)) = (bmc(), bmc()) else {
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
    let at_cut = synced(&mn1.guest.console());
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
    let last: u32 = mn1
        .out("last-line.txt")
        .trim()
        .strip_prefix("line ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("mn1's last line: {}", mn1.out("last-line.txt")));
    assert_eq!(
        last,
        synced(&mn1.console),
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
