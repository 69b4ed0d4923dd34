//! `hamn disks` inside a real Linux guest of the storage lab, checked against what the
//! admin's own tools say in the same guest: `multipath -ll`, `mdadm --detail` and
//! `blkid`. The same runs record the umockdev fixtures the host tests use
//! (tests/fixtures/lab-*.umockdev) when HAMN_RECORD_FIXTURES=1.
//!
//! The guest: one LUN over two paths and one over four (tgtd), two local disks in RAID1
//! with ext4, one local disk with xfs, ext4 on the first LUN mounted at /install.

mod support;

use std::path::Path;

use support::lab::{GuestRun, GuestSpec, LocalDisk, LunSpec, San, make_disk, run_guest};

const SCENARIO: &str = r#"
set -e
modprobe ext4; modprobe xfs; modprobe raid1
dev_of() { lsblk -dno NAME,SERIAL | awk -v s="$1" '$2==s {print "/dev/"$1}'; }
mdadm --create /dev/md0 --level=1 --raid-devices=2 --metadata=1.2 --run --homehost=box1 --name=0 \
    "$(dev_of raid-a)" "$(dev_of raid-b)" >/dev/null 2>&1
mkfs.ext4 -q -L xcatdata /dev/md0
mkfs.xfs -q -f -L xcatxfs "$(dev_of xfs-1)"
map=$(multipath -ll | awk '/HAMN/ && / dm-/ {print $3; exit}')
mkfs.ext4 -q -L install "/dev/$map"
mkdir -p /install && mount -t ext4 "/dev/$map" /install
udevadm trigger --action=change --subsystem-match=block && udevadm settle
hamn --json disks > /out/hamn.json
hamn disks > /out/hamn.txt
multipath -ll > /out/multipath-ll.txt
mdadm --detail --export /dev/md0 > /out/mdadm.txt
mdadm --detail /dev/md0 >> /out/mdadm-human.txt
blkid -o export > /out/blkid.txt
# The small real case of the benchmark: hamn against multipath -ll, same guest.
# Mean milliseconds of 10 runs, timed with /proc/uptime (busybox date has no %N).
t() { s=$(cut -d' ' -f1 /proc/uptime); for i in 1 2 3 4 5 6 7 8 9 10; do "$@" >/dev/null 2>&1; done; e=$(cut -d' ' -f1 /proc/uptime); awk -v s="$s" -v e="$e" 'BEGIN {printf "%.0f", (e - s) * 100}'; }
echo "hamn_ms=$(t hamn --json disks) multipath_ms=$(t multipath -ll) lsblk_ms=$(t lsblk -J)" > /out/bench.txt
if [ "${RECORD:-0}" = 1 ]; then
    devs=$(ls -d /dev/dm-* /dev/md0 $(lsblk -dnpo NAME | grep -E '/dev/sd'))
    umockdev-record $devs > /out/lab-guest.umockdev
    # Degraded RAID1: one member failed and removed.
    mdadm /dev/md0 --fail "$(dev_of raid-b)" --remove "$(dev_of raid-b)" >/dev/null 2>&1
    udevadm settle
    umockdev-record $devs > /out/lab-degraded.umockdev
    # A failed path: one path of the four-path LUN taken offline.
    p=$(multipath -ll | awk '/running/ {print $3}' | tail -1)
    echo offline > "/sys/block/$p/device/state"
    sleep 2; udevadm settle
    umockdev-record $devs > /out/lab-failed-path.umockdev
fi
"#;

struct Lab {
    _san: San,
    spec: GuestSpec,
    _dir: tempfile::TempDir,
}

fn lab(record: bool) -> Option<Lab> {
    let mut san = San::start().unwrap_or_else(|e| panic!("cannot start the SAN: {e}"))?;
    let two = san.add_lun(&LunSpec::new(1));
    let four = san.add_lun(&LunSpec::new(2));
    let dir = tempfile::tempdir().expect("tmp");
    let disk = |serial: &str, mb: u64| {
        let image = dir.path().join(format!("{serial}.img"));
        make_disk(&image, mb);
        LocalDisk {
            image,
            serial: serial.into(),
            wwn: None,
        }
    };
    let script = if record {
        format!("RECORD=1\n{SCENARIO}")
    } else {
        SCENARIO.to_string()
    };
    let mut spec = GuestSpec::new("mn1", &script);
    spec.luns = vec![(two, 2), (four, 4)];
    spec.disks = vec![disk("raid-a", 64), disk("raid-b", 64), disk("xfs-1", 320)];
    // HAMN_LAB_HAMN: an optimised build for the benchmark line; the test build otherwise.
    let hamn = std::env::var_os("HAMN_LAB_HAMN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| assert_cmd::cargo::cargo_bin("hamn"));
    spec.with_binary(support::layout::HAMN, &hamn);
    Some(Lab {
        _san: san,
        spec,
        _dir: dir,
    })
}

fn kv(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `multipath -ll`: map name, WWID, and the path device names under it.
fn multipath_maps(ll: &str) -> Vec<(String, String, Vec<String>)> {
    let mut maps: Vec<(String, String, Vec<String>)> = Vec::new();
    for line in ll.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if line.contains(" dm-") && line.contains('(') {
            let wwid = words
                .get(1)
                .map(|w| w.trim_matches(|c| c == '(' || c == ')'))
                .unwrap_or("");
            maps.push((words[0].to_string(), wwid.to_string(), Vec::new()));
        } else if let Some(dev) = words.iter().find(|w| w.starts_with("sd"))
            && let Some(m) = maps.last_mut()
        {
            m.2.push(dev.to_string());
        }
    }
    maps
}

fn check_against_the_admins_tools(run: &GuestRun) {
    let v: serde_json::Value = serde_json::from_str(&run.out("hamn.json")).expect("hamn --json");
    // Multipath: the same maps, WWIDs and path devices as multipath -ll.
    let mut theirs = multipath_maps(&run.out("multipath-ll.txt"));
    theirs.sort();
    let mut ours: Vec<(String, String, Vec<String>)> = v["multipath"]
        .as_array()
        .expect("maps")
        .iter()
        .map(|m| {
            let mut paths: Vec<String> = m["paths"]
                .as_array()
                .expect("paths")
                .iter()
                .map(|p| p["kernel_name"].as_str().unwrap_or("").to_string())
                .collect();
            paths.sort();
            (
                m["name"].as_str().unwrap_or("").into(),
                m["wwid"].as_str().unwrap_or("").into(),
                paths,
            )
        })
        .collect();
    ours.sort();
    for t in theirs.iter_mut() {
        t.2.sort();
    }
    assert_eq!(
        ours,
        theirs,
        "hamn disks vs multipath -ll\n{}",
        run.out("hamn.txt")
    );
    assert_eq!(
        ours.iter()
            .map(|m| m.2.len())
            .collect::<Vec<_>>()
            .iter()
            .sum::<usize>(),
        6
    );

    // md: the same UUID, level, members and state as mdadm --detail.
    let md = kv(&run.out("mdadm.txt"));
    let get = |k: &str| {
        md.iter()
            .find(|(a, _)| a == k)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    };
    let arr = &v["md"][0];
    assert_eq!(
        arr["uuid"],
        get("MD_UUID"),
        "{}",
        run.out("mdadm-human.txt")
    );
    assert_eq!(arr["level"], get("MD_LEVEL"));
    assert_eq!(arr["name"], get("MD_NAME"));
    assert_eq!(
        arr["members"].as_array().map(Vec::len),
        get("MD_DEVICES").parse::<usize>().ok()
    );
    assert_eq!(arr["degraded"], false);

    // Filesystems: every UUID blkid reports on the array, the xfs disk and the map.
    let blkid = run.out("blkid.txt");
    let entries: Vec<Vec<(String, String)>> = blkid.split("\n\n").map(kv).collect();
    let uuid_of = |label: &str| {
        entries
            .iter()
            .find(|e| e.iter().any(|(k, v)| k == "LABEL" && v == label))
            .and_then(|e| e.iter().find(|(k, _)| k == "UUID").map(|(_, v)| v.clone()))
            .unwrap_or_else(|| panic!("blkid has no filesystem labelled {label}:\n{blkid}"))
    };
    assert_eq!(arr["filesystem"]["uuid"], uuid_of("xcatdata"));
    assert_eq!(arr["filesystem"]["type"], "ext4");
    let xfs = v["disks"]
        .as_array()
        .expect("disks")
        .iter()
        .find(|d| d["serial"] == "xfs-1")
        .expect("xfs disk by serial");
    assert_eq!(xfs["filesystem"]["uuid"], uuid_of("xcatxfs"));
    assert_eq!(xfs["filesystem"]["type"], "xfs");
    let install = v["multipath"]
        .as_array()
        .expect("maps")
        .iter()
        .find(|m| m["filesystem"]["label"] == "install")
        .expect("mounted map");
    assert_eq!(install["filesystem"]["uuid"], uuid_of("install"));
    assert_eq!(install["filesystem"]["mountpoints"][0], "/install");
    for serial in ["raid-a", "raid-b"] {
        let d = v["disks"]
            .as_array()
            .expect("disks")
            .iter()
            .find(|d| d["serial"] == serial)
            .expect("raid member by serial");
        assert_eq!(d["holders"][0], "md0", "{serial} is used by md0");
        assert!(
            d["by_path"].as_str().is_some_and(|p| p.contains("scsi")),
            "slot of {serial}"
        );
    }
    println!(
        "guest {}: {:.1}s boot to result; {}",
        run.name,
        run.seconds,
        run.out("bench.txt").trim()
    );
}

#[test]
fn hamn_disks_in_a_guest_agrees_with_multipath_mdadm_and_blkid() {
    let record = std::env::var_os("HAMN_RECORD_FIXTURES").is_some();
    let Some(lab) = lab(record) else { return };
    let run = run_guest(&lab.spec);
    run.assert_ok();
    check_against_the_admins_tools(&run);
    if record {
        let dest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for f in [
            "lab-guest.umockdev",
            "lab-degraded.umockdev",
            "lab-failed-path.umockdev",
        ] {
            std::fs::copy(run.out_dir.join(f), dest.join(f))
                .unwrap_or_else(|e| panic!("copy {f}: {e}"));
        }
        println!("recorded fixtures into {}", dest.display());
    }
}
