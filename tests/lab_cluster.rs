//! xCAT's option 5 under a real cluster: two management nodes running Corosync (knet,
//! two_node) and Pacemaker from Debian's packages on a guest-to-guest link, each powered
//! by its own ipmi_sim on the host, both seeing the shared tgtd LUN over two paths.
//! fence_hamn fences, ocf:hamn:takeover takes over. The cluster configuration is the one
//! hamn(8) documents, built here with the same cibadmin commands.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::cable::Cable;
use support::cluster::{START, build_cib, failed_actions, noticed_to_started, with_cluster};
use support::lab::{GuestSpec, Lun, LunSpec, San, run_guest, spawn_guests};
use support::sim::{SimBmc, SimOptions};

const BMC_PASSWORD: &str = "hamn-test-pw";

/// Each node's hamn.toml: its peer fenced at the storage by the takeover itself
/// (Pacemaker powers it off through fence_hamn first), the peer's BMC for fence_hamn.
fn config(node: &str, peer: &str, peer_bmc_port: u16) -> String {
    format!(
        r#"node = "{node}"

[takeover]
peer = "{peer}"
journal = "/var/lib/hamn/takeover.json"

[[takeover.mount]]
device = "LABEL=xcatinstall"
mountpoint = "/install"
type = "ext4"

[takeover.service_ip]
address = "192.168.60.10/24"
interface = "eth0"

[[takeover.service]]
name = "xcatd"
start = ["touch", "/run/xcatd.up"]
ready = ["test", "-e", "/run/xcatd.up"]
stop = ["rm", "-f", "/run/xcatd.up"]

[peers.{peer}]
fencing = ["storage"]

[peers.{peer}.bmc]
address = "10.0.2.2"
port = {peer_bmc_port}
user = "admin"
password_file = "/etc/hamn/{peer}.bmc"
profile = "openipmi-sim"
"#
    )
}

/// What every cluster node does at boot, as a real MN's units would: its cluster link,
/// the standby's key on the shared LUNs (hamn-pr(8)), then Corosync and Pacemaker.
const BOOT: &str = r#"
modprobe ext4
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
ip link set eth1 up && ip addr add 192.168.100.$NODEID/24 dev eth1
# hamn's state (the takeover journal, which LUNs this node held) lives on a local disk,
# as /var/lib does on a real MN: a node powered on again remembers that it was fenced.
mkdir -p /var/lib/hamn
state=$(lsblk -dno NAME,SERIAL | awk '$2=="HAMNSTATE" {print "/dev/"$1}')
mount -t ext4 $state /var/lib/hamn 2>/dev/null \
    || { mkfs.ext4 -q $state && mount -t ext4 $state /var/lib/hamn; }
hamn pr unfence --all-shared > /out/unfence.txt 2>&1; echo $? > /out/unfence.rc
"#;

/// mn1: once the cluster has started the resource here, write a synced line every
/// 200 ms until it dies. Powered on again after its fence, it only rejoins: the cluster
/// must leave the resource where it runs and mn1 must touch no storage.
const MN1: &str = r#"
if [ -e /out/mn1-booted ]; then
    echo "MN1-BOOTED-AGAIN $(now)"
    wait_for MN1-NEVER-REJOINED 180 both_online
    echo "MN1-REJOINED $(now)"
    # Time for the cluster to probe the resources here and settle.
    sleep 20
    crm_mon -1 -r -f > /out/crm_mon-rejoined.txt 2>&1
    hamn --json pr status --all-shared > /out/pr-rejoined.json 2>&1
    grep " /install " /proc/mounts > /out/mounts-rejoined.txt
    save
    exit 0
fi
touch /out/mn1-booted
wait_for MN1-NEVER-STARTED 120 started_on mn1
echo "MN1-SERVING $(now)"
save
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

/// mn2: the standby, until the cluster has moved the resource here.
const MN2: &str = r#"
wait_for MN2-NEVER-SAW-MN1 120 started_on mn1
echo "MN2-STANDBY $(now)"
wait_for MN2-NEVER-SERVED 240 started_on mn2
echo "MN2-SERVING $(now)"
tail -1 /install/synced > /out/last-line.txt 2>&1
ip -4 addr show dev eth0 > /out/ip.txt
ls /run/xcatd.up > /out/xcatd.txt 2>&1
hamn status > /out/status.txt 2>&1
hamn pr status --all-shared > /out/pr.txt 2>&1
cp /var/lib/hamn/takeover.json /out/journal.json
sleep 3
save
# Serving until the test is done with mn1 (it may power it on again).
while [ ! -e /out/host-done ]; do sleep 0.5; done
crm_mon -1 -r -f > /out/crm_mon-final.txt 2>&1
stonith_admin --history mn1 > /out/fence-history.txt 2>&1
exit 0
"#;

/// mn1 for a planned move: serves and writes a few synced lines; its xcatd stand-in dies
/// and the cluster recovers it in place; then mn1 goes idle (the admin stops the work
/// before moving the xCAT data); it must end up alive, not serving.
const MN1_MOVED: &str = r#"
wait_for MN1-NEVER-STARTED 120 started_on mn1
echo "MN1-SERVING $(now)"
i=0
while [ $i -lt 5 ]; do
    echo "line $i" | dd of=/install/synced oflag=append conv=notrunc,fsync status=none \
        && echo "MN1-SYNCED $i"
    i=$((i + 1))
done
rm -f /run/xcatd.up
echo "MN1-XCATD-DIED $(now)"
wait_for MN1-XCATD-NOT-RECOVERED 120 xcatd_back_on_mn1
echo "MN1-XCATD-RECOVERED $(now)"
crm_mon -1 -r -f > /out/crm_mon-recovered.txt 2>&1
echo "MN1-IDLE"
wait_for MN1-NEVER-MOVED 120 started_on mn2
echo "MN1-GAVE-BACK $(now)"
grep " /install " /proc/mounts > /out/mounts-after.txt
ip -4 addr show dev eth0 > /out/ip-after.txt
ls /run/xcatd.up > /out/xcatd-after.txt 2>&1
hamn --json pr status --all-shared > /out/pr-after.json 2>&1
save
exit 0
"#;

/// mn2 for a planned move: the admin moves the resource here when told to, as hamn(8)
/// says, then clears the move's constraint.
const MN2_MOVES: &str = r#"
while [ ! -e /out/move-now ]; do sleep 0.5; done
t0=$(now)
crm_resource --move --resource xcat-mn --node mn2 > /out/move.txt 2>&1; echo $? > /out/move.rc
wait_for MN2-NEVER-SERVED 240 started_on mn2
echo "MN2-SERVING $(now) moved in $(echo "$(now) $t0" | awk '{print $1 - $2}') s"
crm_resource --clear --resource xcat-mn > /out/clear.txt 2>&1
tail -1 /install/synced > /out/last-line.txt 2>&1
ip -4 addr show dev eth0 > /out/ip.txt
ls /run/xcatd.up > /out/xcatd.txt 2>&1
stonith_admin --history mn1 > /out/fence-history.txt 2>&1
sleep 3
save
exit 0
"#;

struct Node<'a> {
    name: &'a str,
    peer: &'a str,
    id: u8,
    /// The UDP ports of the guest-to-guest link: this node's, and where it sends (its
    /// end of the cable).
    link: (u16, u16),
    peer_bmc_port: u16,
}

fn cluster_node(n: &Node, lun: &Lun, cib: &Path, dir: &Path, script: &str) -> GuestSpec {
    let mut g = GuestSpec::new(
        n.name,
        &format!("NODEID={}\n{BOOT}\n{START}\n{script}", n.id),
    );
    g.luns = vec![(lun.clone(), 2)];
    let state = dir.join(format!("{}-state.img", n.name));
    support::lab::make_disk(&state, 16);
    g.disks = vec![support::lab::LocalDisk {
        image: state,
        serial: "HAMNSTATE".into(),
        wwn: None,
    }];
    let pw_dir = dir;
    g.timeout = Duration::from_secs(420);
    g.qemu_args = vec![
        "-netdev".into(),
        "user,id=n0".into(),
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
        "-netdev".into(),
        format!(
            "socket,id=c0,udp=127.0.0.1:{},localaddr=127.0.0.1:{}",
            n.link.1, n.link.0
        ),
        "-device".into(),
        format!("virtio-net-pci,netdev=c0,mac=52:54:00:68:6d:0{}", n.id),
    ];
    with_cluster(&mut g, cib);
    g.files
        .push((format!("/etc/hamn/{}.bmc", n.peer), pw_dir.join("bmc.pw")));
    g.with_file(
        "/etc/hamn/hamn.toml",
        config(n.name, n.peer, n.peer_bmc_port).as_bytes(),
    );
    g
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

fn bmc() -> Option<SimBmc> {
    SimBmc::start(SimOptions {
        initially_on: false,
        password: BMC_PASSWORD.into(),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("ipmi_sim: {e}"))
}

fn tools_present() -> bool {
    support::lab::require_lab()
        && support::require_tool("ipmi_sim")
        && support::require_tool("cibadmin")
        && support::require_tool("corosync")
}

/// A running two-node cluster: mn1 and mn2 booted with their scripts, each powered by
/// its own BMC, sharing one LUN that holds the xCAT data.
struct Cluster {
    _san: San,
    _dir: tempfile::TempDir,
    bmc1: SimBmc,
    bmc2: SimBmc,
    cable: Cable,
    mn1: support::lab::Background,
    mn2: support::lab::Background,
}

fn start_cluster(lun_id: u32, mn1_script: &str, mn2_script: &str) -> Option<Cluster> {
    if !tools_present() {
        return None;
    }
    let mut san = San::start().unwrap_or_else(|e| panic!("SAN: {e}"))?;
    let lun = san.add_lun(&LunSpec::new(lun_id));
    // The xCAT data exists before the cluster does.
    let mut setup = GuestSpec::new(
        "mn1",
        "modprobe ext4\nmap=$(multipath -ll | awk '/ dm-/ {print $3; exit}')\n\
         mkfs.ext4 -q -L xcatinstall /dev/$map && mkdir -p /mnt/i && mount /dev/$map /mnt/i \
         && echo setup > /mnt/i/synced && umount /mnt/i",
    );
    setup.luns = vec![(lun.clone(), 2)];
    run_guest(&setup).assert_ok();

    let (bmc1, bmc2) = (bmc()?, bmc()?);
    let dir = tempfile::tempdir().expect("tmp");
    let cib = build_cib(dir.path(), "pacemaker-cluster.sh");
    let pw = dir.path().join("bmc.pw");
    std::fs::write(&pw, BMC_PASSWORD).expect("password file");
    // The guest gets it with this mode: hamn refuses a password file others can read.
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let (p1, p2) = (free_udp_port(), free_udp_port());
    let cable = Cable::new([p1, p2]);
    let n1 = Node {
        name: "mn1",
        peer: "mn2",
        id: 1,
        link: (p1, cable.ends[0]),
        peer_bmc_port: bmc2.addr().port(),
    };
    let n2 = Node {
        name: "mn2",
        peer: "mn1",
        id: 2,
        link: (p2, cable.ends[1]),
        peer_bmc_port: bmc1.addr().port(),
    };
    let mut nodes = spawn_guests(&[
        cluster_node(&n1, &lun, &cib, dir.path(), mn1_script),
        cluster_node(&n2, &lun, &cib, dir.path(), mn2_script),
    ]);
    let (Some(mn2), Some(mn1)) = (nodes.pop(), nodes.pop()) else {
        panic!("two guests asked for, fewer booted");
    };
    bmc1.adopt_server(mn1.guest.qemu_pid().expect("mn1 QEMU"));
    bmc2.adopt_server(mn2.guest.qemu_pid().expect("mn2 QEMU"));
    Some(Cluster {
        _san: san,
        _dir: dir,
        bmc1,
        bmc2,
        cable,
        mn1,
        mn2,
    })
}

/// Every key registered on any path, from `hamn --json pr status`.
fn registered(json: &str) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("pr status JSON: {e}: {json}"));
    let mut keys: Vec<String> = v["luns"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["paths"].as_array().into_iter().flatten())
        .flat_map(|p| p["keys"].as_array().into_iter().flatten())
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    keys.dedup();
    keys
}

/// crm_mon shows the takeover resource started on `node` (a monitor may be running:
/// "Started mn1 (Monitoring)"), and only there.
fn serves(mon: &str, node: &str) -> bool {
    let lines: Vec<&str> = mon.lines().filter(|l| l.contains("xcat-mn\t")).collect();
    lines.len() == 1
        && lines[0]
            .split("Started ")
            .nth(1)
            .is_some_and(|rest| rest.split_whitespace().next() == Some(node))
}

/// What Pacemaker's log on the guest says the takeover resource's start took, and hamn's
/// journal of that takeover (for the report).
fn start_time(run: &support::lab::GuestRun) -> String {
    let log = run.out("pacemaker.log");
    let start = log
        .lines()
        .find(|l| l.contains("xcat-mn start (call"))
        .and_then(|l| l.split("(execution time ").nth(1))
        .and_then(|t| t.split(' ').next())
        .unwrap_or("unknown");
    format!(
        "{}; start of ocf:hamn:takeover {start}; journal {}",
        noticed_to_started(&log),
        run.out("journal.json")
    )
}

/// How often `stonith_admin --history` says `node` was fenced.
fn times_fenced(history: &str, node: &str) -> usize {
    history
        .lines()
        .filter(|l| l.contains(&format!(" of {node} ")) && l.contains("successful"))
        .count()
}

/// What mn2 read last from the shared data is the last line mn1 reported synced on its
/// console `mn1`: no acknowledged write was lost, none landed later.
fn assert_last_line_is_mn1s(run2: &support::lab::GuestRun, mn1: &str) {
    assert_eq!(
        run2.out("last-line.txt").trim(),
        format!("line {}", last_synced(mn1)),
        "mn1's last synced line on mn2"
    );
}

/// The highest line number mn1 reported as synced on the console `text`.
fn last_synced(text: &str) -> u32 {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("MN1-SYNCED "))
        .filter_map(|n| n.trim().parse::<u32>().ok())
        .max()
        .expect("mn1 synced lines")
}

/// How the active node is lost.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Loss {
    /// Its QEMU killed; its BMC answers (and reports it off).
    Crash,
    /// Its QEMU killed and its BMC with it (a lost power supply).
    CrashWithBmc,
    /// Its QEMU stopped, not killed: alive for its BMC, silent for the cluster.
    Hang,
}

/// mn1 (active) crashes: Pacemaker on mn2 fences it through fence_hamn and mn1's BMC,
/// then starts the takeover, which reads mn1's last synced line and serves.
#[test]
fn the_active_node_crashes_and_the_cluster_fences_it_and_takes_over() {
    active_node_lost(Loss::Crash, false);
}

/// mn1 crashes and its BMC dies with it (a lost power supply): the power level cannot
/// confirm anything and fails, the storage level preempts mn1's key, mn2 serves.
#[test]
fn the_active_node_crashes_with_its_bmc_and_the_storage_level_fences_it() {
    active_node_lost(Loss::CrashWithBmc, false);
}

/// mn1 hangs: the cluster cannot tell it from a crash, and its BMC really powers it off
/// before mn2 takes over. Then someone powers mn1 on again (or its BMC restores power):
/// it rejoins the cluster as the standby, its boot registration is refused (it was
/// fenced while it held the LUN), the resource stays on mn2, and mn1 touches no storage.
#[test]
fn a_hung_active_node_is_powered_off_and_rejoins_as_standby_when_powered_on() {
    active_node_lost(Loss::Hang, true);
}

fn active_node_lost(loss: Loss, power_on_again: bool) {
    let lun_id = match loss {
        Loss::Crash => 11,
        Loss::CrashWithBmc => 12,
        Loss::Hang => 13,
    };
    let Some(mut c) = start_cluster(lun_id, MN1, MN2) else {
        return;
    };
    if power_on_again {
        c.bmc1.on_power_on(&c.mn1.guest.boot_again_script("again"));
    }
    c.mn1.guest.wait_for_line("MN1-SYNCED 5");
    let lost = Instant::now();
    let pid = nix::unistd::Pid::from_raw(c.mn1.guest.qemu_pid().expect("mn1 QEMU") as i32);
    let signal = match loss {
        Loss::Hang => nix::sys::signal::Signal::SIGSTOP,
        Loss::Crash | Loss::CrashWithBmc => nix::sys::signal::Signal::SIGKILL,
    };
    nix::sys::signal::kill(pid, signal).expect("signal mn1's QEMU");
    if loss != Loss::Hang {
        // Reaped at once: a zombie would still count as a running server for its BMC.
        while !c.mn1.guest.qemu_exited() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if loss == Loss::CrashWithBmc {
        c.bmc1.kill_bmc();
    }
    c.mn2.guest.wait_for_line("MN2-SERVING");
    let served = lost.elapsed();
    // Fenced means off: only the BMC can have ended a stopped QEMU.
    assert!(
        !c.bmc1.server_alive(),
        "mn1 ({loss:?}) is off once mn2 serves"
    );
    assert!(c.mn1.guest.qemu_exited(), "mn1's QEMU ended");
    let mn1_console = c.mn1.guest.console();

    let again = c.mn1.guest.dir().join("console-again.log");
    let mn1_out = c.mn1.guest.dir().join("out");
    if power_on_again {
        // Someone presses the button: mn1 boots again, with what its disks hold.
        c.bmc1.power_on();
        let (status, console) = support::lab::wait_for_result_in(&again, Duration::from_secs(300));
        assert_eq!(status, 0, "mn1's second boot:\n{console}");
    }
    std::fs::write(c.mn2.guest.dir().join("out/host-done"), "").expect("tell mn2");
    let run2 = c.mn2.guest.finish();
    println!(
        "{loss:?} of mn1 to service up on mn2: {:.1} s; {}\n{}",
        served.as_secs_f64(),
        start_time(&run2),
        run2.out("crm_mon.txt")
    );
    run2.assert_ok();
    assert_last_line_is_mn1s(&run2, &mn1_console);
    assert!(
        run2.out("ip.txt").contains("192.168.60.10"),
        "{}",
        run2.out("ip.txt")
    );
    assert!(run2.out("xcatd.txt").contains("xcatd.up"));
    let mon = run2.out("crm_mon.txt");
    assert!(
        !mon.contains("Failed Fencing Actions"),
        "the fencing succeeded:\n{mon}"
    );
    // With the BMC dead, the device that watches it fails its monitor: that is news for
    // the admin. A node powered on again is the alarm of mn2's monitor (OCF_DEGRADED:
    // running, no recovery). Nothing else fails.
    let alarm = |l: &str| l.contains("xcat-mn") && l.contains("on mn2") && l.contains("DEGRADED");
    let failed = failed_actions(&mon, |l| {
        (loss == Loss::CrashWithBmc && l.contains("fence-mn1 ")) || (power_on_again && alarm(l))
    });
    assert!(failed.is_empty(), "crm_mon shows failed actions:\n{mon}");
    // mn1's key is on no path: had it survived, its writes would fail.
    let status = run2.out("status.txt");
    let key = status
        .lines()
        .find_map(|l| l.strip_prefix("peer mn1 (key ")?.split(')').next())
        .unwrap_or_else(|| panic!("mn1's key in hamn status:\n{status}"));
    let pr = run2.out("pr.txt");
    assert!(
        !pr.contains(key),
        "mn1's key {key} is still registered:\n{pr}"
    );
    if !power_on_again {
        // (Powered on again, mn1 may already be the alarm it is below.)
        assert!(!status.contains("ALARM"), "{status}");
        // The cluster's reboot is an off for a management node (see hamn(8)): the
        // failed node waits for the admin.
        return;
    }
    let out = |name: &str| std::fs::read_to_string(mn1_out.join(name)).unwrap_or_default();
    // Back, mn1 asked to register at boot and was refused: it was fenced while it
    // held the LUN, and the other node holds it now.
    assert_eq!(out("unfence.rc").trim(), "1", "{}", out("unfence.txt"));
    assert!(out("unfence.txt").contains("mn2"), "{}", out("unfence.txt"));
    let rejoined = out("crm_mon-rejoined.txt");
    assert!(
        serves(&rejoined, "mn2"),
        "the resource stays on mn2 when mn1 rejoins:\n{rejoined}"
    );
    // The one thing crm_mon flags is the alarm on mn2: the node it fenced has power
    // again (the monitor reports OCF_DEGRADED: running, no recovery, told to the admin).
    assert!(
        failed_actions(&rejoined, alarm).is_empty(),
        "mn1 rejoined with failed actions:\n{rejoined}"
    );
    assert!(
        !registered(&out("pr-rejoined.json")).contains(&key.to_string()),
        "mn1 registered on its own: {}",
        out("pr-rejoined.json")
    );
    assert_eq!(
        out("mounts-rejoined.txt").trim(),
        "",
        "mn1 mounted the data"
    );
    let history = run2.out("fence-history.txt");
    assert_eq!(
        times_fenced(&history, "mn1"),
        1,
        "mn1 was fenced once, not again when it came back:\n{history}"
    );
    let fin = run2.out("crm_mon-final.txt");
    assert!(
        fin.contains("Online: [ mn1 mn2 ]") && serves(&fin, "mn2"),
        "{fin}"
    );
    assert!(
        fin.lines().any(alarm) && failed_actions(&fin, alarm).is_empty(),
        "mn2 flags the returned node, and only that:\n{fin}"
    );
}

/// The cluster link is cut while both nodes run and mn1 serves: each side sees the other
/// lost and fences it at the same moment. The standby (mn2) powers mn1 off at once; mn1
/// waits `standby_delay` before powering the standby off and is off before it would.
/// Exactly one node serves afterwards, with mn1's last synced line, and mn2 was never
/// powered off.
#[test]
fn a_cut_cluster_link_leaves_exactly_one_node_serving() {
    let Some(mut c) = start_cluster(15, MN1, MN2) else {
        return;
    };
    c.mn1.guest.wait_for_line("MN1-SYNCED 5");
    let cut = Instant::now();
    c.cable.cut();
    c.mn2.guest.wait_for_line("MN2-SERVING");
    let served = cut.elapsed();
    assert!(!c.bmc1.server_alive(), "mn1 is off once mn2 serves");
    let mn1_console = c.mn1.guest.console();
    // mn1's own fence of mn2 would have come after its standby_delay.
    std::thread::sleep(Duration::from_secs(20));
    assert!(c.bmc2.server_alive(), "mn2 was powered off too");
    std::fs::write(c.mn2.guest.dir().join("out/host-done"), "").expect("tell mn2");
    let run2 = c.mn2.guest.finish();
    println!(
        "cluster link cut to service up on mn2: {:.1} s; {}\n{}",
        served.as_secs_f64(),
        start_time(&run2),
        run2.out("crm_mon.txt")
    );
    run2.assert_ok();
    assert_last_line_is_mn1s(&run2, &mn1_console);
    assert!(run2.out("ip.txt").contains("192.168.60.10"));
    let mon = run2.out("crm_mon-final.txt");
    assert!(
        failed_actions(&mon, |_| false).is_empty(),
        "crm_mon shows failed actions:\n{mon}"
    );
    let history = run2.out("fence-history.txt");
    assert_eq!(times_fenced(&history, "mn1"), 1, "{history}");
}

/// The xcatd stand-in dies on the serving node: the monitor notices and Pacemaker
/// recovers it in place (stop, start), fencing nobody. Then the admin moves the xCAT data
/// to mn2 as hamn(8) says (`crm_resource --move`, which `pcs resource move` runs): mn1
/// gives back (services, address, mount, reservation), mn2 takes over without powering
/// mn1 off, and reads mn1's last line.
#[test]
fn a_dead_xcatd_is_recovered_in_place_and_a_planned_move_fences_nobody() {
    let Some(mut c) = start_cluster(14, MN1_MOVED, MN2_MOVES) else {
        return;
    };
    c.mn1.guest.wait_for_line("MN1-IDLE");
    std::fs::write(c.mn2.guest.dir().join("out/move-now"), "").expect("tell mn2");
    let run2 = c.mn2.guest.finish();
    let run1 = c.mn1.guest.finish();
    println!("{}", run2.out("crm_mon.txt"));
    run2.assert_ok();
    run1.assert_ok();
    assert_eq!(run2.out("move.rc").trim(), "0", "{}", run2.out("move.txt"));
    assert_last_line_is_mn1s(&run2, &run1.console);
    assert!(run2.out("ip.txt").contains("192.168.60.10"));
    assert!(run2.out("xcatd.txt").contains("xcatd.up"));
    // mn1 gave everything back and lived on to see mn2 serve (its script's end).
    assert!(run1.console.contains("MN1-GAVE-BACK"), "{}", run1.console);
    assert_eq!(
        run1.out("mounts-after.txt").trim(),
        "",
        "still mounted on mn1"
    );
    assert!(!run1.out("ip-after.txt").contains("192.168.60.10"));
    assert!(
        run1.out("xcatd-after.txt").contains("No such file"),
        "xcatd still up on mn1: {}",
        run1.out("xcatd-after.txt")
    );
    let mn1_key = format!("0x{:016x}", hamn::config::node_key("mn1"));
    assert!(
        !registered(&run1.out("pr-after.json")).contains(&mn1_key),
        "mn1 gave back but its key is still registered: {}",
        run1.out("pr-after.json")
    );
    let history = run2.out("fence-history.txt");
    assert!(!history.contains(" of mn1 "), "mn1 was fenced:\n{history}");
    // The dead xcatd was seen by the monitor and recovered where it ran.
    let recovered = run1.out("crm_mon-recovered.txt");
    let xcatd_died = |l: &str| l.contains("xcat-mn") && l.contains("monitor on mn1");
    assert!(serves(&recovered, "mn1"), "{recovered}");
    assert!(recovered.lines().any(xcatd_died), "{recovered}");
    // Nothing else failed, and no alarm: mn1 was never fenced, its power is no news.
    let mon = run2.out("crm_mon.txt");
    assert!(
        failed_actions(&mon, xcatd_died).is_empty(),
        "crm_mon shows failed actions:\n{mon}"
    );
}
