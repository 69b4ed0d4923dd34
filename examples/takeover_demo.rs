//! The main job, shown in the storage lab: two simulated management nodes share a SAN LUN
//! (tgtd, two paths each); mn1 is the primary, writing xCAT data, with a BMC (OpenIPMI's
//! ipmi_sim) that powers its QEMU process. mn2, the standby, runs `hamn takeover`: the
//! plan, then each step, then `hamn status`. Run by `bash scripts/demo`, or
//! `cargo run --example takeover_demo` after `bash tests/lab/build`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;

use support::lab::{GuestSpec, LunSpec, San, run_guest, spawn_guest};
use support::sim::{SimBmc, SimOptions};

const MN1: &str = r#"
modprobe ext4
map=$(multipath -ll | awk '/ dm-/ {print $3; exit}')
hamn pr reserve $map > /dev/null 2>&1
mkfs.ext4 -q -L xcatinstall /dev/$map
mkdir -p /install && mount /dev/$map /install
i=0
while true; do
    echo "osimage update $i" | dd of=/install/osimages oflag=append conv=notrunc,fsync status=none 2>/dev/null && echo "MN1-SYNCED $i"
    i=$((i + 1)); sleep 0.2
done
"#;

const MN2: &str = r#"
modprobe ext4
map=$(multipath -ll | awk '/ dm-/ {print $3; exit}')
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
export HAMN_BMC_PW=hamn-test-pw
hamn pr unfence --all-shared > /dev/null 2>&1
udevadm trigger --action=change --subsystem-match=block && udevadm settle
say() { printf '\n$ %s\n' "$*"; }
{
say "hamn takeover --dry-run"; hamn takeover --dry-run
say "hamn takeover"; hamn takeover
say "hamn status"; hamn status
say "tail -1 /install/osimages    # mn1's last synced write, read on mn2"; tail -1 /install/osimages
} > /out/demo.txt 2>&1
"#;

fn config(port: u16) -> String {
    format!(
        r#"# mn2, the standby; mn1 is the primary it takes over from.
node = "mn2"

[takeover]
peer = "mn1"

[[takeover.mount]]
device = "LABEL=xcatinstall"
mountpoint = "/install"
type = "ext4"

[peers.mn1]
fencing = ["storage", "power"]

[peers.mn1.bmc]
address = "10.0.2.2"   # the host's loopback, from inside QEMU
port = {port}
user = "admin"
password_env = "HAMN_BMC_PW"
profile = "openipmi-sim"
"#
    )
}

fn main() {
    if !support::lab::require_lab() || !support::require_tool("ipmi_sim") {
        std::process::exit(1);
    }
    let hamn = std::env::var_os("HAMN_DEMO_HAMN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/debug/hamn"));
    let mut san = San::start()
        .unwrap_or_else(|e| panic!("SAN: {e}"))
        .expect("tgtd");
    let lun = san.add_lun(&LunSpec::new(1));
    let bmc = SimBmc::start(SimOptions {
        initially_on: false,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("ipmi_sim: {e}"))
    .expect("ipmi_sim");

    println!("booting mn1 (the primary): it reserves the LUN and writes /install ...");
    let mut mn1 = GuestSpec::new("mn1", MN1);
    mn1.luns = vec![(lun.clone(), 2)];
    mn1.with_binary("/usr/sbin/hamn", &hamn);
    mn1.with_file(
        "/etc/hamn/hamn.toml",
        b"node = \"mn1\"\n[peers.mn2.bmc]\naddress = \"10.0.2.2\"\nuser = \"admin\"\npassword_env = \"UNUSED\"\n",
    );
    let mut mn1 = spawn_guest(&mn1);
    mn1.guest.wait_for_line("MN1-SYNCED 3");
    bmc.adopt_server(mn1.guest.qemu_pid().expect("mn1 pid"));
    println!(
        "mn1 is up and writing; its BMC (ipmi_sim on 127.0.0.1:{}) powers its QEMU process {}",
        bmc.addr().port(),
        mn1.guest.qemu_pid().unwrap_or(0)
    );

    println!("booting mn2 (the standby) and taking over ...");
    let mut mn2 = GuestSpec::new("mn2", MN2);
    mn2.luns = vec![(lun.clone(), 2)];
    mn2.with_binary("/usr/sbin/hamn", &hamn);
    mn2.with_file("/etc/hamn/hamn.toml", config(bmc.addr().port()).as_bytes());
    mn2.qemu_args = vec![
        "-netdev".into(),
        "user,id=n0".into(),
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
    ];
    let run = run_guest(&mn2);
    print!("{}", run.out("demo.txt"));
    let gone = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        mn1.guest.qemu_exited()
    });
    println!(
        "\nmn1's QEMU process: {}",
        if gone {
            "gone (powered off by its BMC)"
        } else {
            "STILL RUNNING"
        }
    );
}
