//! xCAT's option 5 under a real cluster: two management nodes running Corosync (knet,
//! two_node) and Pacemaker from Debian's packages on a guest-to-guest link, each powered
//! by its own ipmi_sim on the host, both seeing the shared tgtd LUN over two paths.
//! fence_hamn fences, ocf:hamn:takeover takes over. The cluster configuration is the one
//! hamn(8) documents, built here with the same cibadmin commands.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::lab::{GuestSpec, Lun, LunSpec, San, run_guest, spawn_guest};
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

const COROSYNC_CONF: &str = "totem {
    version: 2
    cluster_name: xcat
    transport: knet
    crypto_cipher: none
    crypto_hash: none
    token: 3000
}
nodelist {
    node {
        ring0_addr: 192.168.100.1
        name: mn1
        nodeid: 1
    }
    node {
        ring0_addr: 192.168.100.2
        name: mn2
        nodeid: 2
    }
}
quorum {
    provider: corosync_votequorum
    two_node: 1
}
logging {
    to_stderr: yes
    to_logfile: yes
    logfile: /var/log/corosync.log
    to_syslog: no
    timestamp: on
}
";

/// The CIB, built offline by the script hamn(8) tells the admin to run
/// (fencing/examples/pacemaker-cluster.sh; `CIB_file` makes cibadmin and crm_attribute
/// work on a file instead of a running cluster), then the lab's own timing: a shorter
/// wait for the DC at start (TCG guests boot together).
fn build_cib(dir: &Path) -> PathBuf {
    let cib = dir.join("cib.xml");
    let run = |program: &str, args: &[&str]| {
        let out = std::process::Command::new(program)
            .args(args)
            .env("CIB_file", &cib)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let empty = run("cibadmin", &["--empty"]);
    std::fs::write(&cib, empty).expect("write cib");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fencing/examples/pacemaker-cluster.sh");
    run("sh", &[&script.display().to_string()]);
    run(
        "crm_attribute",
        &[
            "--type",
            "crm_config",
            "--name",
            "dc-deadtime",
            "--update",
            "5s",
        ],
    );
    run("crm_verify", &["--xml-file", &cib.display().to_string()]);
    cib
}

/// What every cluster node does at boot, as a real MN's units would: its cluster link,
/// the standby's key on the shared LUNs (hamn-pr(8)), then Corosync and Pacemaker.
const BOOT: &str = r#"
modprobe ext4
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
ip link set eth1 up && ip addr add 192.168.100.$NODEID/24 dev eth1
mount -t tmpfs -o mode=1777 shm /dev/shm
mkdir -p /var/lib/pacemaker/cib /var/lib/pacemaker/pengine /var/lib/pacemaker/blackbox \
    /var/lib/pacemaker/cores /var/log/pacemaker /var/lib/corosync /var/lib/hamn /run/crm
cp /etc/cib.xml /var/lib/pacemaker/cib/cib.xml
chown -R hacluster:haclient /var/lib/pacemaker /var/log/pacemaker
chmod 750 /var/lib/pacemaker/cib
hamn pr unfence --all-shared > /out/unfence.txt 2>&1
export OCF_ROOT=/usr/lib/ocf PCMK_logfile=/var/log/pacemaker/pacemaker.log
corosync > /out/corosync.out 2>&1
pacemakerd > /out/pacemakerd.out 2>&1 &
now() { read -r u _ < /proc/uptime; echo "$u"; }
# Where the takeover resource has started (not merely is starting).
started_on() { crm_mon -1 -r 2>/dev/null | grep -E "xcat-mn.*Started $1" > /dev/null; }
save() {
    crm_mon -1 -r -f > /out/crm_mon.txt 2>&1
    cp /var/log/pacemaker/pacemaker.log /out/pacemaker.log 2>/dev/null
    cp /var/log/corosync.log /out/corosync.log 2>/dev/null
}
"#;

/// mn1: once the cluster has started the resource here, write a synced line every
/// 200 ms until it dies.
const MN1: &str = r#"
i=0
while ! started_on mn1; do
    sleep 0.5; i=$((i + 1)); [ $i -gt 240 ] && { echo "MN1-NEVER-STARTED"; save; exit 1; }
done
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
i=0
while ! started_on mn1; do
    sleep 0.5; i=$((i + 1)); [ $i -gt 240 ] && { echo "MN2-NEVER-SAW-MN1"; save; exit 1; }
done
echo "MN2-STANDBY $(now)"
t=$(now); deadline=$(( ${t%.*} + 240 ))
while ! started_on mn2; do
    sleep 0.2
    t=$(now); [ ${t%.*} -gt $deadline ] && { echo "MN2-NEVER-SERVED"; save; exit 1; }
done
echo "MN2-SERVING $(now)"
tail -1 /install/synced > /out/last-line.txt 2>&1
ip -4 addr show dev eth0 > /out/ip.txt
ls /run/xcatd.up > /out/xcatd.txt 2>&1
hamn status > /out/status.txt 2>&1
hamn pr status --all-shared > /out/pr.txt 2>&1
sleep 3
save
exit 0
"#;

/// Adds every file below `host_dir` at the same path in the guest.
fn with_tree(spec: &mut GuestSpec, host_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(host_dir) else {
        panic!("{}: not readable", host_dir.display());
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            with_tree(spec, &p);
        } else if p.is_file() {
            spec.files.push((p.display().to_string(), p.clone()));
        }
    }
}

struct Node<'a> {
    name: &'a str,
    peer: &'a str,
    id: u8,
    /// The UDP ports of the guest-to-guest link: this node's and its peer's.
    link: (u16, u16),
    peer_bmc_port: u16,
}

fn cluster_node(n: &Node, lun: &Lun, cib: &Path, pw_dir: &Path, script: &str) -> GuestSpec {
    let mut g = GuestSpec::new(n.name, &format!("NODEID={}\n{BOOT}\n{script}", n.id));
    g.luns = vec![(lun.clone(), 2)];
    g.memory_mb = 1024;
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
    g.with_binary("/usr/sbin/hamn", &assert_cmd::cargo::cargo_bin("hamn"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    g.files.push((
        "/usr/sbin/fence_hamn".into(),
        root.join("fencing/fence_hamn"),
    ));
    g.files.push((
        "/usr/lib/ocf/resource.d/hamn/takeover".into(),
        root.join("fencing/ocf/hamn-takeover"),
    ));
    for bin in [
        "/usr/sbin/corosync",
        "/usr/sbin/corosync-cfgtool",
        "/usr/sbin/corosync-quorumtool",
        "/usr/sbin/pacemakerd",
        "/usr/sbin/cibadmin",
        "/usr/sbin/crm_mon",
        "/usr/sbin/crm_resource",
        "/usr/sbin/crm_attribute",
        "/usr/sbin/crm_node",
        "/usr/sbin/stonith_admin",
        "/usr/lib/pacemaker/pacemaker-attrd",
        "/usr/lib/pacemaker/pacemaker-based",
        "/usr/lib/pacemaker/pacemaker-controld",
        "/usr/lib/pacemaker/pacemaker-execd",
        "/usr/lib/pacemaker/pacemaker-fenced",
        "/usr/lib/pacemaker/pacemaker-schedulerd",
    ] {
        g.with_binary(bin, Path::new(bin));
    }
    with_tree(&mut g, Path::new("/usr/share/pacemaker"));
    g.files.push(("/etc/cib.xml".into(), cib.to_path_buf()));
    g.files
        .push((format!("/etc/hamn/{}.bmc", n.peer), pw_dir.join("bmc.pw")));
    g.with_file("/etc/corosync/corosync.conf", COROSYNC_CONF.as_bytes());
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

/// mn1 (active) crashes: Pacemaker on mn2 fences it through fence_hamn and mn1's BMC,
/// then starts the takeover, which reads mn1's last synced line and serves.
#[test]
fn the_active_node_crashes_and_the_cluster_fences_it_and_takes_over() {
    crash_of_the_active_node(false);
}

/// mn1 crashes and its BMC dies with it (a lost power supply): the power level cannot
/// confirm anything and fails, the storage level preempts mn1's key, mn2 serves.
#[test]
fn the_active_node_crashes_with_its_bmc_and_the_storage_level_fences_it() {
    crash_of_the_active_node(true);
}

fn crash_of_the_active_node(bmc_dies_too: bool) {
    if !tools_present() {
        return;
    }
    let Some(mut san) = San::start().unwrap_or_else(|e| panic!("SAN: {e}")) else {
        return;
    };
    let lun = san.add_lun(&LunSpec::new(if bmc_dies_too { 12 } else { 11 }));
    // The xCAT data exists before the cluster does.
    let mut setup = GuestSpec::new(
        "mn1",
        "modprobe ext4\nmap=$(multipath -ll | awk '/ dm-/ {print $3; exit}')\n\
         mkfs.ext4 -q -L xcatinstall /dev/$map && mkdir -p /mnt/i && mount /dev/$map /mnt/i \
         && echo setup > /mnt/i/synced && umount /mnt/i",
    );
    setup.luns = vec![(lun.clone(), 2)];
    run_guest(&setup).assert_ok();

    let (Some(mut bmc1), Some(bmc2)) = (bmc(), bmc()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let cib = build_cib(dir.path());
    let pw = dir.path().join("bmc.pw");
    std::fs::write(&pw, BMC_PASSWORD).expect("password file");
    // The guest gets it with this mode: hamn refuses a password file others can read.
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let (p1, p2) = (free_udp_port(), free_udp_port());
    let n1 = Node {
        name: "mn1",
        peer: "mn2",
        id: 1,
        link: (p1, p2),
        peer_bmc_port: bmc2.addr().port(),
    };
    let n2 = Node {
        name: "mn2",
        peer: "mn1",
        id: 2,
        link: (p2, p1),
        peer_bmc_port: bmc1.addr().port(),
    };
    let mut mn1 = spawn_guest(&cluster_node(&n1, &lun, &cib, dir.path(), MN1));
    let mut mn2 = spawn_guest(&cluster_node(&n2, &lun, &cib, dir.path(), MN2));
    bmc1.adopt_server(mn1.guest.qemu_pid().expect("mn1 QEMU"));
    bmc2.adopt_server(mn2.guest.qemu_pid().expect("mn2 QEMU"));

    mn1.guest.wait_for_line("MN1-SYNCED 5");
    // The crash: mn1's QEMU killed, its BMC still answering (and reporting it off).
    let crash = Instant::now();
    if let Some(pid) = mn1.guest.qemu_pid() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    // Reaped at once: a zombie would still count as a running server for its BMC.
    while !mn1.guest.qemu_exited() {
        std::thread::sleep(Duration::from_millis(20));
    }
    if bmc_dies_too {
        bmc1.kill_bmc();
    }
    mn2.guest.wait_for_line("MN2-SERVING");
    let served = crash.elapsed();
    let run2 = mn2.guest.finish();
    println!(
        "crash to service up on mn2: {:.1} s\n{}",
        served.as_secs_f64(),
        run2.out("crm_mon.txt")
    );
    run2.assert_ok();
    let synced = mn1
        .guest
        .console()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("MN1-SYNCED "))
        .filter_map(|n| n.trim().parse::<u32>().ok())
        .max()
        .expect("mn1 synced lines");
    assert_eq!(
        run2.out("last-line.txt").trim(),
        format!("line {synced}"),
        "mn1's last synced line on mn2"
    );
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
    // the admin. Nothing else fails.
    let failed: Vec<&str> = mon
        .lines()
        .skip_while(|l| !l.contains("Failed Resource Actions"))
        .skip(1)
        .filter(|l| l.trim_start().starts_with('*'))
        .filter(|l| !(bmc_dies_too && l.contains("fence-mn1 ")))
        .collect();
    assert!(failed.is_empty(), "crm_mon shows failed actions:\n{mon}");
    // Fenced means off: the cluster's reboot is an off for a management node (see
    // hamn(8)), so the failed node waits for the admin.
    assert!(!bmc1.server_alive(), "mn1 stays off");
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
    assert!(!status.contains("ALARM"), "{status}");
}
