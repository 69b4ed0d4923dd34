//! Two management nodes with DRBD mirrors in the lab (xCAT's options 3 and 6): each has
//! its own mirror disk (virtio-blk), a replication link to the other (QEMU socket
//! links, through a `Cable` where a test cuts it) and a user network to the BMCs.
//! Shared by tests/lab_drbd.rs and benches/drbd_lab.rs.

use std::path::Path;
use std::time::Duration;

use super::lab::GuestSpec;

pub fn drbd_conf(port: u16, fencing: bool) -> String {
    drbd_conf_with(port, fencing.then_some("/usr/sbin/hamn drbd fence-peer"))
}

/// With `fence_peer` as the fence-peer handler (and `fencing resource-and-stonith`), or
/// no fencing policy at all.
pub fn drbd_conf_with(port: u16, fence_peer: Option<&str>) -> String {
    // Resyncs at a fixed, fast rate (8.4's default controller starts slowly).
    let (disk, handlers) = match fence_peer {
        Some(handler) => (
            "    disk { fencing resource-and-stonith; c-plan-ahead 0; resync-rate 100M; }\n",
            format!(
                "    handlers {{\n        fence-peer \"{handler}\";\n        \
                 after-resync-target \"/usr/sbin/hamn drbd unfence-peer\";\n    }}\n"
            ),
        ),
        None => (
            "    disk { c-plan-ahead 0; resync-rate 100M; }\n",
            String::new(),
        ),
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
pub fn config(node: &str, peer: &str, bmc_port: u16) -> String {
    config_with(node, peer, bmc_port, "password_env = \"HAMN_BMC_PW\"")
}

/// The same with the BMC password's source: DRBD runs its handlers with an environment
/// of its own, so there the password comes from a file.
pub fn config_with(node: &str, peer: &str, bmc_port: u16, password: &str) -> String {
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
pub const BOOT: &str = r#"
. /usr/lib/lab/lib.sh
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

/// mn1's first boot: Primary over two empty disks (no initial sync: DRBD's "skipping
/// the initial resync"), the file system made and mounted.
pub const MN1_PRIMARY: &str = r#"
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

/// A node of the pair: its mirror disk, the link to the other node (a UDP socket pair
/// on the host's loopback), a user network for the BMCs, hamn and the configurations.
pub fn node(
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
    super::lab::make_disk(&disk, 96);
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
    g.with_binary(super::layout::HAMN, &assert_cmd::cargo::cargo_bin("hamn"));
    g
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

/// A BMC (ipmi_sim on the host) for each node, off until a guest is adopted; None after
/// "SKIP" where the lab or ipmi_sim is missing (not in CI).
pub fn two_bmcs() -> Option<(super::sim::SimBmc, super::sim::SimBmc)> {
    if !super::lab::require_lab() || !super::require_tool("ipmi_sim") {
        return None;
    }
    let bmc = || {
        super::sim::SimBmc::start(super::sim::SimOptions {
            initially_on: false,
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("ipmi_sim: {e}"))
    };
    Some((bmc()?, bmc()?))
}
