//! xCAT's recipe 1, moved disks, in the lab: box1 (the primary) has a RAID1 with ext4 and
//! an xfs data disk and records its manifest; its disks are then "moved" into box2 (the
//! same image files, attached in another order, with other NIC MACs and a foreign disk),
//! where `hamn disks verify` and `hamn takeover --moved-disks` run. Each box2 variant boots
//! on qcow2 overlays of box1's disks, so every scenario starts from the same moved disks.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::lab::{GuestRun, GuestSpec, LocalDisk, make_disk, run_guest, run_guests};

/// Shell helpers every box shares.
const PRELUDE: &str = r#"
modprobe ext4; modprobe xfs; modprobe raid1
dev_of() { lsblk -dno NAME,SERIAL | awk -v s="$1" '$2==s {print "/dev/"$1}'; }
# IPv4 only: QEMU's user network hands out IPv6 prefixes at its own pace.
echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6
ip link set eth0 up && ip addr add 192.168.50.$BOXNO/24 dev eth0
"#;

/// The primary: RAID1 (ext4, /install) and an xfs disk (/xcatdata), data, the manifest.
const BOX1: &str = r#"
set -e
# --assume-clean: both members are zeroed images, so there is nothing to resync.
mdadm --create /dev/md0 --level=1 --raid-devices=2 --metadata=1.2 --run --assume-clean \
    --homehost=box1 --name=0 "$(dev_of raid-a)" "$(dev_of raid-b)" >/dev/null 2>&1
mkfs.ext4 -q -L xcatdata /dev/md0
mkfs.xfs -q -f -L xcatxfs "$(dev_of xfs-1)"
mkdir -p /install /xcatdata
mount /dev/md0 /install
mount "$(dev_of xfs-1)" /xcatdata
echo "osimage rhels9.4-x86_64-install-compute" > /install/from-box1
echo "xfs data from box1" > /xcatdata/from-box1
sync
udevadm trigger --action=change --subsystem-match=block && udevadm settle
hamn disks record --output /out/disks.toml --node box1 > /out/record.txt
# Nothing changed: a second record --diff shows no difference and exits 0.
hamn disks record --output /out/disks.toml --node box1 --diff > /out/diff.txt
# preflight on the primary compares its disks with the manifest: unchanged, then after a
# disk's filesystem was relabelled (a change the standby's verify would refuse), then
# with the label back.
hamn preflight > /out/preflight-recorded.txt 2>&1; echo $? > /out/preflight-recorded.rc
tune2fs -L xcatold /dev/md0 > /dev/null
udevadm trigger --action=change --subsystem-match=block && udevadm settle
hamn preflight > /out/preflight-changed.txt 2>&1 || true
tune2fs -L xcatdata /dev/md0 > /dev/null
udevadm trigger --action=change --subsystem-match=block && udevadm settle
for s in raid-a raid-b; do mdadm --examine "$(dev_of $s)" > "/out/examine-$s.txt"; done
echo "written after the manifest" > /install/late
sync
umount /install /xcatdata
mdadm --stop /dev/md0
"#;

/// box1's hamn.toml: no peers; /install from the array, and where its manifest is kept.
const BOX1_CONFIG: &str = r#"node = "box1"

[disks]
manifest = "/out/disks.toml"

[[takeover.mount]]
device = "/dev/md0"
mountpoint = "/install"
type = "ext4"
"#;

/// The standby, after the move: verify, dry run, take over, read box1's data.
const BOX2_HAPPY: &str = r#"
set +e
# The host's verify tests replay this box: its udev data and each disk's first 8 KiB (where
# the md 1.2 superblock lives).
umockdev-record $(lsblk -dnpo NAME | grep /dev/sd) $(ls -d /dev/md[0-9]* 2>/dev/null) > /out/moved-box2.umockdev
for d in $(lsblk -dno NAME | grep ^sd); do dd if=/dev/$d of=/out/head-$d.bin bs=4096 count=2 2>/dev/null; done
hamn disks verify > /out/verify.txt; echo $? > /out/verify.rc
hamn --json disks verify > /out/verify.json
hamn takeover --moved-disks --i-know-the-peer-is-off --dry-run > /out/dry-run.txt; echo $? > /out/dry-run.rc
cat /proc/mdstat > /out/mdstat-after-dry-run.txt
hamn takeover --moved-disks --i-know-the-peer-is-off > /out/takeover.txt 2>&1; echo $? > /out/takeover.rc
cat /proc/mounts > /out/mounts.txt
cat /install/from-box1 /install/late /xcatdata/from-box1 > /out/data.txt 2>&1
# Run again (an admin's second try; also what a box booted from the moved disks sees):
# everything is in place and used as it is.
hamn takeover --moved-disks --i-know-the-peer-is-off > /out/rerun.txt 2>&1; echo $? > /out/rerun.rc
# Looked at it: read-write now, and the service address and services of hamn.toml.
hamn takeover --moved-disks --i-know-the-peer-is-off --read-write > /out/rw.txt 2>&1; echo $? > /out/rw.rc
grep " /install " /proc/mounts > /out/rw-mounts.txt
[ -e /install/xcatd.started ] && echo started > /out/rw-service.txt
ip -4 addr show dev eth0 > /out/rw-ip.txt
mdadm --detail /dev/md/hamn-0 > /out/detail.txt 2>&1
hamn status --no-bmc > /out/status.txt 2>&1
# Killed with SIGKILL right after each step in turn (so: during the next), then run again:
# giveback first, so that every round starts from the disks as they were moved.
n=0
for step in verify-disks fence-override "assemble /dev/md/hamn-0" "check /install" \
        "check /xcatdata" "mount /install" "mount /xcatdata" "service-ip 192.168.50.100/24"; do
    n=$((n + 1))
    hamn giveback > /out/giveback-$n.txt 2>&1; echo $? > /out/giveback-$n.rc
    grep -c -e " /install " -e " /xcatdata " /proc/mounts > /out/giveback-$n-mounts.txt
    # Not the last round's events: the shell truncates the file only once hamn starts.
    rm -f /tmp/events
    hamn --json takeover --moved-disks --i-know-the-peer-is-off --read-write > /tmp/events 2>&1 &
    pid=$!
    while [ -d /proc/$pid ] && ! grep -q "\"step\":\"$step\"" /tmp/events; do sleep 0.02; done
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    cp /tmp/events /out/killed-$n.txt
    hamn takeover --moved-disks --i-know-the-peer-is-off --read-write > /out/resume-$n.txt 2>&1; echo $? > /out/resume-$n.rc
    grep -c -e " /install ext4 rw" -e " /xcatdata xfs rw" /proc/mounts > /out/resume-$n-mounted.txt
    mdadm --detail /dev/md/hamn-0 | grep -c "active sync" > /out/resume-$n-members.txt
    ip -4 addr show dev eth0 | grep -c 192.168.50.100/24 > /out/resume-$n-ip.txt
done
exit 0
"#;

/// box2's hamn.toml: no peers (box1's BMC is not reachable from here), the service
/// address and a stand-in for xCAT's services that needs /install writable.
const BOX2_CONFIG: &str = r#"node = "box2"

[takeover.service_ip]
address = "192.168.50.100/24"
interface = "eth0"

[[takeover.service]]
name = "xcatd"
start = ["touch", "/install/xcatd.started"]
ready = ["test", "-e", "/install/xcatd.started"]
"#;

/// One member replaced by a disk with another serial, in the member's old bay.
const BOX2_WRONG: &str = r#"
set +e
hamn disks verify > /out/verify.txt; echo $? > /out/verify.rc
hamn takeover --moved-disks --i-know-the-peer-is-off > /out/takeover.txt 2>&1; echo $? > /out/takeover.rc
cat /proc/mounts > /out/mounts.txt
exit 0
"#;

/// Only one member arrived: refused, then accepted degraded on request.
const BOX2_DEGRADED: &str = r#"
set +e
hamn disks verify > /out/verify.txt; echo $? > /out/verify.rc
hamn disks verify --accept-degraded > /out/verify-accept.txt; echo $? > /out/verify-accept.rc
hamn takeover --moved-disks --i-know-the-peer-is-off > /out/refused.txt 2>&1; echo $? > /out/refused.rc
hamn takeover --moved-disks --accept-degraded --i-know-the-peer-is-off > /out/takeover.txt 2>&1; echo $? > /out/takeover.rc
cat /install/from-box1 > /out/data.txt 2>&1
exit 0
"#;

/// box1's history replayed first (it saves a boot; the disks end up exactly as if box1 had
/// done it): raid-b is failed and removed, then box1 writes more. raid-b is now stale, and
/// it was moved along with raid-a: it stays in the box, untouched by the takeover.
const BOX2_STALE: &str = r#"
set +e
for m in $(ls /dev | grep -E '^md[0-9]+$'); do mdadm --stop /dev/$m >/dev/null 2>&1; done
mdadm --assemble /dev/md0 "$(dev_of raid-a)" "$(dev_of raid-b)" >/dev/null 2>&1 || exit 10
mdadm /dev/md0 --fail "$(dev_of raid-b)" >/dev/null 2>&1 || exit 11
mdadm /dev/md0 --remove "$(dev_of raid-b)" >/dev/null 2>&1 || exit 12
mkdir -p /mnt/box1 && mount /dev/md0 /mnt/box1 && echo "after the pull" > /mnt/box1/after-pull && sync
umount /mnt/box1 && mdadm --stop /dev/md0 >/dev/null 2>&1 || exit 13
udevadm trigger --action=change --subsystem-match=block && udevadm settle
echo "== box2 ==" > /dev/console
dev_of raid-b > /out/raid-b.txt
cat /proc/mdstat > /out/mdstat-before.txt
mdadm --examine "$(dev_of raid-b)" > /out/examine-b-before.txt 2>&1
hamn disks verify > /out/verify.txt; echo $? > /out/verify.rc
hamn disks verify --accept-degraded > /out/verify-accept.txt; echo $? > /out/verify-accept.rc
hamn takeover --moved-disks --i-know-the-peer-is-off > /out/refused.txt 2>&1; echo $? > /out/refused.rc
cat /proc/mounts > /out/refused-mounts.txt
hamn takeover --moved-disks --accept-degraded --i-know-the-peer-is-off > /out/takeover.txt 2>&1; echo $? > /out/takeover.rc
cat /proc/mounts > /out/mounts.txt
cat /install/after-pull > /out/data.txt 2>&1
mdadm --detail /dev/md/hamn-0 > /out/detail.txt 2>&1
mdadm --examine "$(dev_of raid-b)" > /out/examine-b-after.txt 2>&1
exit 0
"#;

/// The RAID1's ext4 damaged (root inode cleared) and the xfs disk's log overwritten: both
/// checks must fail, nothing may be mounted, and the message must say how to repair each
/// by hand.
const BOX2_CORRUPT: &str = r#"
set +e
for m in $(ls /dev | grep -E '^md[0-9]+$'); do mdadm --stop /dev/$m >/dev/null 2>&1; done
mdadm --assemble /dev/md0 "$(dev_of raid-a)" "$(dev_of raid-b)" >/dev/null 2>&1 || exit 10
debugfs -w -R "clri <2>" /dev/md0 >/dev/null 2>&1 || exit 11
mdadm --stop /dev/md0 >/dev/null 2>&1 || exit 12
# And the xfs disk's log overwritten with garbage.
x=$(dev_of xfs-1)
logstart=$(xfs_db -r -c "sb 0" -c "p logstart" "$x" | awk '{print $3}')
daddr=$(xfs_db -r -c "convert fsb $logstart daddr" "$x" | sed -n 's/.*(\([0-9]*\)).*/\1/p')
[ -n "$daddr" ] || exit 14
dd if=/dev/urandom of="$x" bs=512 seek="$daddr" count=256 conv=notrunc 2>/dev/null || exit 15
echo "xfs log at sector $daddr overwritten" > /out/xfs-log.txt
udevadm trigger --action=change --subsystem-match=block && udevadm settle
hamn takeover --moved-disks --i-know-the-peer-is-off > /out/takeover.txt 2>&1; echo $? > /out/takeover.rc
cat /proc/mounts > /out/mounts.txt
exit 0
"#;

struct Disks {
    dir: tempfile::TempDir,
}

impl Disks {
    fn base(&self, serial: &str) -> PathBuf {
        self.dir.path().join(format!("{serial}.img"))
    }

    /// A qcow2 overlay of box1's disk for one scenario, so scenarios do not see each
    /// other's writes.
    fn moved(&self, scenario: &str, serial: &str) -> LocalDisk {
        let overlay = self.dir.path().join(format!("{scenario}-{serial}.qcow2"));
        let status = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(self.base(serial))
            .arg(&overlay)
            .status()
            .expect("qemu-img");
        assert!(
            status.success(),
            "qemu-img create overlay {}",
            overlay.display()
        );
        LocalDisk {
            image: overlay,
            serial: serial.into(),
            wwn: None,
        }
    }

    /// A disk that never was in box1.
    fn foreign(&self, scenario: &str, serial: &str) -> LocalDisk {
        let image = self.dir.path().join(format!("{scenario}-{serial}.img"));
        make_disk(&image, 64);
        LocalDisk {
            image,
            serial: serial.into(),
            wwn: None,
        }
    }
}

fn hamn_binary() -> PathBuf {
    std::env::var_os("HAMN_LAB_HAMN")
        .map(PathBuf::from)
        .unwrap_or_else(|| assert_cmd::cargo::cargo_bin("hamn"))
}

/// A box: its NIC MAC, the lab server model (so bays have names), hamn, the prelude.
fn boxed(name: &str, number: u8, script: &str, disks: Vec<LocalDisk>) -> GuestSpec {
    let mut spec = GuestSpec::new(name, &format!("BOXNO={number}\n{PRELUDE}\n{script}"));
    spec.disks = disks;
    spec.memory_mb = 640;
    spec.qemu_args = vec![
        "-netdev".into(),
        "user,id=n0,restrict=on".into(),
        "-device".into(),
        format!("virtio-net-pci,netdev=n0,mac=52:54:00:b0:00:{number:02x}"),
        "-smbios".into(),
        "type=1,product=hamn lab box".into(),
    ];
    spec.with_binary(support::layout::HAMN, &hamn_binary());
    spec
}

fn rc(run: &GuestRun, name: &str) -> i32 {
    run.out(name).trim().parse().unwrap_or_else(|_| {
        panic!(
            "guest {}: /out/{name} is not an exit status:\n{}",
            run.name, run.console
        )
    })
}

fn events_of(examine: &str) -> u64 {
    examine
        .lines()
        .find_map(|l| l.trim().strip_prefix("Events : "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Events line in mdadm --examine:\n{examine}"))
}

/// tests/fixtures/moved/: box1's manifest, box2's udev data and disk heads, for the host
/// tests in disks_verify_umockdev.rs.
fn record_fixtures(manifest: &str, box2: &GuestRun) {
    let dest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/moved");
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::create_dir_all(&dest).expect("mkdir fixtures");
    std::fs::write(dest.join("box1-disks.toml"), manifest).expect("write manifest");
    for entry in std::fs::read_dir(&box2.out_dir).expect("out dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("head-") || name == "moved-box2.umockdev" {
            std::fs::copy(entry.path(), dest.join(&name)).expect("copy fixture");
        }
    }
    println!("recorded fixtures into {}", dest.display());
}

#[test]
fn moved_disks_are_verified_assembled_checked_and_mounted_or_refused() {
    if !support::lab::require_lab() {
        return;
    }
    let disks = Disks {
        dir: tempfile::tempdir().expect("tmp"),
    };
    for (serial, mb) in [("raid-a", 64), ("raid-b", 64), ("xfs-1", 320)] {
        make_disk(&disks.base(serial), mb);
    }
    let plain = |serial: &str| LocalDisk {
        image: disks.base(serial),
        serial: serial.into(),
        wwn: None,
    };

    // 1. On the healthy primary: record.
    let mut spec = boxed(
        "box1",
        1,
        BOX1,
        vec![plain("raid-a"), plain("raid-b"), plain("xfs-1")],
    );
    spec.with_file("/etc/hamn/hamn.toml", BOX1_CONFIG.as_bytes());
    let box1 = run_guest(&spec);
    box1.assert_ok();
    // preflight on the primary: the manifest matches; then a disk changed after it was
    // recorded is found, with the fix.
    let recorded = box1.out("preflight-recorded.txt");
    assert_eq!(box1.out("preflight-recorded.rc").trim(), "0", "{recorded}");
    assert!(recorded.contains("ready (primary)"), "{recorded}");
    let changed = box1.out("preflight-changed.txt");
    assert!(
        changed.contains("PROBLEM  manifest")
            && changed.contains("the disks changed since")
            && changed.contains("xcatold")
            && changed
                .contains("fix: `hamn disks record`, then copy /out/disks.toml to the standby"),
        "{changed}"
    );
    let manifest = box1.out("disks.toml");
    assert!(manifest.contains("version = 1"), "{manifest}");
    assert!(manifest.contains("node = \"box1\""), "{manifest}");
    assert!(manifest.contains("server = \"hamn lab box\""), "{manifest}");
    for want in [
        "serial = \"raid-a\"",
        "serial = \"raid-b\"",
        "serial = \"xfs-1\"",
        "level = \"raid1\"",
        "mountpoint = \"/install\"",
        "mountpoint = \"/xcatdata\"",
        "type = \"xfs\"",
        "mac = \"52:54:00:b0:00:01\"",
        "192.168.50.0/24",
    ] {
        assert!(
            manifest.contains(want),
            "manifest lacks {want}:\n{manifest}"
        );
    }
    assert!(
        box1.out("diff.txt").contains("no changes"),
        "record --diff on an unchanged node: {}",
        box1.out("diff.txt")
    );
    // hamn reads the superblock itself: its event counts agree with mdadm's.
    let recorded: Vec<u64> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("events = "))
        .map(|v| v.trim().parse().expect("events"))
        .collect();
    let theirs = [
        events_of(&box1.out("examine-raid-a.txt")),
        events_of(&box1.out("examine-raid-b.txt")),
    ];
    assert_eq!(recorded.len(), 2, "{manifest}");
    for (ours, theirs) in recorded.iter().zip(theirs) {
        assert!(
            ours.abs_diff(theirs) <= 1,
            "manifest events {recorded:?}, mdadm --examine says {theirs}"
        );
    }

    // 2. The moves. Each box2 gets box1's manifest where verify looks by default.
    let with_manifest = |mut spec: GuestSpec| {
        spec.with_file("/etc/hamn/disks.toml", manifest.as_bytes());
        spec
    };
    let mut happy = with_manifest(boxed(
        "box2",
        2,
        BOX2_HAPPY,
        vec![
            disks.moved("happy", "raid-b"),
            disks.foreign("happy", "foreign-1"),
            disks.moved("happy", "xfs-1"),
            disks.moved("happy", "raid-a"),
        ],
    ));
    happy.with_file("/etc/hamn/hamn.toml", BOX2_CONFIG.as_bytes());
    // Eight rounds of giveback, a killed takeover and its rerun come after the rest.
    happy.timeout = std::time::Duration::from_secs(480);
    let wrong = with_manifest(boxed(
        "box2wrong",
        3,
        BOX2_WRONG,
        vec![
            disks.moved("wrong", "raid-a"),
            disks.foreign("wrong", "raid-w"), // in raid-b's bay
            disks.moved("wrong", "xfs-1"),
        ],
    ));
    let degraded = with_manifest(boxed(
        "box2degraded",
        4,
        BOX2_DEGRADED,
        vec![
            disks.moved("degraded", "xfs-1"),
            disks.moved("degraded", "raid-a"),
        ],
    ));
    let runs = run_guests(&[happy, wrong, degraded]);
    let (happy, wrong, degraded) = (&runs[0], &runs[1], &runs[2]);
    for r in &runs {
        r.assert_ok();
    }

    // Other order, other MAC, a foreign disk: slot and NIC changes only, "acceptable".
    let verify = happy.out("verify.txt");
    assert_eq!(
        rc(happy, "verify.rc"),
        4,
        "verify exit: acceptable\n{verify}"
    );
    assert!(verify.contains("SLOT CHANGED"), "{verify}");
    assert!(
        verify.contains("bay 0") && verify.contains("bay 3"),
        "bay names: {verify}"
    );
    assert!(verify.contains("NEW MAC"), "{verify}");
    assert!(
        verify.contains("foreign-1") && verify.contains("unexpected"),
        "{verify}"
    );
    for refusal in ["WRONG", "STALE", "MISSING", "UNREADABLE", "REFUSE"] {
        assert!(!verify.contains(refusal), "{refusal} in:\n{verify}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&happy.out("verify.json")).expect("verify --json");
    assert_eq!(json["verdict"], "acceptable", "{json}");
    // The dry run names every command and changes nothing.
    let dry = happy.out("dry-run.txt");
    assert_eq!(rc(happy, "dry-run.rc"), 0, "{dry}");
    for want in [
        "--i-know-the-peer-is-off",
        "mdadm --assemble /dev/md/hamn-0 --uuid=",
        "e2fsck",
        "xfs_repair -n",
        "mount -t ext4 -o ro",
    ] {
        assert!(dry.contains(want), "dry run lacks {want}:\n{dry}");
    }
    assert!(
        !happy.out("mdstat-after-dry-run.txt").contains("md/hamn-0"),
        "the dry run assembled something"
    );
    // The takeover: assembled from both members, checked, mounted, box1's data readable.
    if std::env::var_os("HAMN_RECORD_FIXTURES").is_some() {
        record_fixtures(&manifest, happy);
    }
    let takeover = happy.out("takeover.txt");
    assert_eq!(
        rc(happy, "takeover.rc"),
        0,
        "takeover:\n{takeover}\n{}",
        happy.console
    );
    let mounts = happy.out("mounts.txt");
    assert!(mounts.contains(" /install ext4 ro"), "{mounts}");
    assert!(mounts.contains(" /xcatdata xfs ro"), "{mounts}");
    let data = happy.out("data.txt");
    assert!(data.contains("osimage rhels9.4"), "{data}");
    assert!(data.contains("written after the manifest"), "{data}");
    assert!(data.contains("xfs data from box1"), "{data}");
    let rw = happy.out("rw.txt");
    assert_eq!(rc(happy, "rw.rc"), 0, "read-write run:\n{rw}");
    assert!(
        happy.out("rw-mounts.txt").contains(" /install ext4 rw"),
        "{}",
        happy.out("rw-mounts.txt")
    );
    assert_eq!(happy.out("rw-service.txt").trim(), "started", "{rw}");
    assert!(happy.out("rw-ip.txt").contains("192.168.50.100/24"), "{rw}");
    let rerun = happy.out("rerun.txt");
    assert_eq!(rc(happy, "rerun.rc"), 0, "second takeover:\n{rerun}");
    assert!(
        rerun.contains("already assembled by an earlier run"),
        "{rerun}"
    );
    assert!(rerun.contains("already mounted on /install"), "{rerun}");
    assert!(
        happy.out("detail.txt").contains("Active Devices : 2"),
        "{}",
        happy.out("detail.txt")
    );
    // hamn status shows the moved-disks takeover's journal, without asking for hamn.toml's
    // mounts.
    let status = happy.out("status.txt");
    assert!(
        status.contains("takeover (moved-disks) from box1: complete"),
        "{status}"
    );
    assert!(status.contains("/install: mounted"), "{status}");
    // Killed after each step in turn: the rerun ends in the same state every time (array
    // from both verified members, both filesystems mounted read-write, service IP up) and
    // says which steps of the killed run it re-checked.
    for n in 1..=8 {
        let giveback = happy.out(&format!("giveback-{n}.txt"));
        assert_eq!(rc(happy, &format!("giveback-{n}.rc")), 0, "{giveback}");
        assert_eq!(
            happy.out(&format!("giveback-{n}-mounts.txt")).trim(),
            "0",
            "giveback #{n} left mounts: {giveback}"
        );
        let resume = happy.out(&format!("resume-{n}.txt"));
        let killed = happy.out(&format!("killed-{n}.txt"));
        assert_eq!(
            rc(happy, &format!("resume-{n}.rc")),
            0,
            "rerun after kill -9 #{n} (events before the kill: {killed}):\n{resume}"
        );
        assert_eq!(
            happy.out(&format!("resume-{n}-mounted.txt")).trim(),
            "2",
            "#{n}: {resume}"
        );
        assert_eq!(
            happy.out(&format!("resume-{n}-members.txt")).trim(),
            "2",
            "#{n}: {resume}"
        );
        assert_eq!(
            happy.out(&format!("resume-{n}-ip.txt")).trim(),
            "1",
            "#{n}: {resume}"
        );
        assert!(
            resume.contains("continuing an earlier run"),
            "#{n}: {resume}"
        );
        // From the assembly on, the killed run left something the rerun finds in place.
        if n >= 3 {
            assert!(
                resume.contains("re-checked what the earlier run had done: ")
                    && resume.contains("assemble /dev/md/hamn-0"),
                "#{n}: {resume}"
            );
        }
    }

    // A wrong disk in raid-b's bay: refused, naming the bay and both serials.
    let verify = wrong.out("verify.txt");
    assert_eq!(rc(wrong, "verify.rc"), 1, "{verify}");
    assert!(verify.contains("WRONG"), "{verify}");
    assert!(
        verify.contains("raid-w") && verify.contains("raid-b"),
        "{verify}"
    );
    assert!(verify.contains("bay 1"), "{verify}");
    assert_eq!(rc(wrong, "takeover.rc"), 1, "{}", wrong.out("takeover.txt"));
    assert!(!wrong.out("mounts.txt").contains("/install"));

    // One member only: refused; with --accept-degraded assembled degraded, and said so.
    assert_eq!(
        rc(degraded, "verify.rc"),
        1,
        "{}",
        degraded.out("verify.txt")
    );
    assert!(degraded.out("verify.txt").contains("MISSING"));
    assert_eq!(
        rc(degraded, "verify-accept.rc"),
        4,
        "{}",
        degraded.out("verify-accept.txt")
    );
    assert_eq!(
        rc(degraded, "refused.rc"),
        1,
        "{}",
        degraded.out("refused.txt")
    );
    let takeover = degraded.out("takeover.txt");
    assert_eq!(rc(degraded, "takeover.rc"), 0, "{takeover}");
    assert!(takeover.contains("DEGRADED"), "{takeover}");
    assert!(degraded.out("data.txt").contains("osimage rhels9.4"));

    let stale = with_manifest(boxed(
        "box2stale",
        5,
        BOX2_STALE,
        vec![
            disks.moved("stale", "raid-a"),
            disks.moved("stale", "raid-b"),
            disks.moved("stale", "xfs-1"),
        ],
    ));
    let corrupt = with_manifest(boxed(
        "box2corrupt",
        6,
        BOX2_CORRUPT,
        vec![
            disks.moved("corrupt", "raid-a"),
            disks.moved("corrupt", "raid-b"),
            disks.moved("corrupt", "xfs-1"),
        ],
    ));
    let runs = run_guests(&[stale, corrupt]);
    let (stale, corrupt) = (&runs[0], &runs[1]);
    for r in &runs {
        r.assert_ok();
    }

    // A stale member still in the box (failed and removed on box1): refused by name
    // without --accept-degraded; with it, left out, untouched, and the takeover runs from
    // the fresh member.
    let verify = stale.out("verify.txt");
    assert_eq!(rc(stale, "verify.rc"), 1, "{verify}");
    assert!(
        verify.contains("STALE") && verify.contains("raid-b"),
        "{verify}"
    );
    assert!(verify.contains("behind"), "{verify}");
    assert!(verify.contains("failed and removed"), "{verify}");
    assert!(!verify.contains("spare"), "{verify}");
    assert!(!verify.contains("running ("), "{verify}");
    if stale.out("mdstat-before.txt").contains("inactive") {
        assert!(verify.contains("assembled but inactive"), "{verify}");
    }
    let accept = stale.out("verify-accept.txt");
    assert_eq!(rc(stale, "verify-accept.rc"), 4, "{accept}");
    assert!(
        accept.contains("leaves it out, untouched") && accept.contains("--add"),
        "{accept}"
    );
    assert_eq!(rc(stale, "refused.rc"), 1, "{}", stale.out("refused.txt"));
    assert!(!stale.out("refused-mounts.txt").contains("/install"));
    let takeover = stale.out("takeover.txt");
    assert_eq!(rc(stale, "takeover.rc"), 0, "{takeover}\n{}", stale.console);
    assert!(takeover.contains("DEGRADED"), "{takeover}");
    let mounts = stale.out("mounts.txt");
    assert!(mounts.contains(" /install ext4 ro"), "{mounts}");
    assert!(
        stale.out("data.txt").contains("after the pull"),
        "{}",
        stale.out("data.txt")
    );
    let raid_b = stale.out("raid-b.txt").trim().to_string();
    let detail = stale.out("detail.txt");
    assert!(detail.contains("Active Devices : 1"), "{detail}");
    assert!(
        !raid_b.is_empty() && !detail.contains(&raid_b),
        "{raid_b}: {detail}"
    );
    assert_eq!(
        events_of(&stale.out("examine-b-before.txt")),
        events_of(&stale.out("examine-b-after.txt")),
        "the stale member was written to:\n{}",
        stale.out("examine-b-after.txt")
    );

    // A corrupt ext4: the check fails, nothing is mounted, the repair command is named.
    let takeover = corrupt.out("takeover.txt");
    assert_eq!(rc(corrupt, "takeover.rc"), 1, "{takeover}");
    assert!(takeover.contains("ext4"), "{takeover}");
    assert!(takeover.contains("e2fsck -f /dev/md"), "{takeover}");
    assert!(
        takeover.contains("2 filesystem check(s) failed"),
        "{takeover}"
    );
    assert!(takeover.contains("xfs_repair"), "{takeover}");
    assert!(takeover.contains("nothing was mounted"), "{takeover}");
    let mounts = corrupt.out("mounts.txt");
    assert!(
        !mounts.contains("/install") && !mounts.contains("/xcatdata"),
        "{mounts}"
    );
}
