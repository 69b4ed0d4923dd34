//! Proves the storage lab (tests/support/lab.rs): real guests see multipath maps over
//! tgtd LUNs, local disks by serial, md RAID1 and filesystems through udev, can record
//! umockdev fixtures, and run side by side.  Skips (fails with env CI) when the lab image
//! is not built: `bash tests/lab/build`.

mod support;

use support::lab::{
    GuestRun, GuestSpec, LioSan, LocalDisk, LunSpec, San, make_disk, run_guest, run_guests,
};

/// Lines of `multipath -ll` that open a map: "<alias> (<wwid>) dm-N <vendor>,<product>".
fn map_lines(ll: &str) -> Vec<&str> {
    ll.lines()
        .filter(|l| l.contains(" dm-") && l.contains('('))
        .collect()
}

/// Number of path lines ("|- 1:0:0:0 sda 8:0 active ready running") under the map whose
/// header names `wwid`.
fn paths_of(ll: &str, wwid: &str) -> usize {
    let mut in_map = false;
    let mut count = 0;
    for line in ll.lines() {
        if line.contains(" dm-") && line.contains('(') {
            in_map = line.contains(wwid);
        } else if in_map && line.split_whitespace().any(|w| w.starts_with("sd")) {
            count += 1;
        }
    }
    count
}

/// The udev property blocks ("P: ..." up to a blank line) of `udevadm info --export-db`.
fn udev_blocks(db: &str) -> Vec<&str> {
    db.split("\n\n").collect()
}

fn has_block_with(db: &str, all: &[&str]) -> bool {
    udev_blocks(db)
        .iter()
        .any(|b| all.iter().all(|want| b.lines().any(|l| l.ends_with(want))))
}

fn explain(run: &GuestRun, what: &str) -> String {
    format!(
        "guest {}: {what}\nmultipath -ll:\n{}\nlsblk:\n{}",
        run.name,
        std::fs::read_to_string(run.out_dir.join("multipath-ll.txt")).unwrap_or_default(),
        std::fs::read_to_string(run.out_dir.join("lsblk.txt")).unwrap_or_default()
    )
}

const INVENTORY: &str = r#"
set -x
multipath -ll > /out/multipath-ll.txt 2>&1
lsblk -o NAME,TYPE,SIZE,SERIAL,WWN,VENDOR,MODEL,FSTYPE > /out/lsblk.txt
udevadm info --export-db > /out/udev-db.txt
cat /out/multipath-ll.txt /out/lsblk.txt
"#;

#[test]
fn maps_over_two_and_four_paths_and_local_disks_by_serial() {
    let Ok(Some(mut san)) = San::start().map_err(|e| panic!("tgtd: {e}")) else {
        return;
    };
    let two = san.add_lun(&LunSpec::new(1));
    let four = san.add_lun(&LunSpec::new(2));
    let dir = tempfile::tempdir().expect("tempdir");
    let (raw, qcow) = (
        dir.path().join("local0.raw"),
        dir.path().join("local1.qcow2"),
    );
    make_disk(&raw, 32);
    make_disk(&qcow, 32);
    let mut spec = GuestSpec::new("mn1", INVENTORY);
    spec.luns = vec![(two.clone(), 2), (four.clone(), 4)];
    spec.disks = vec![
        LocalDisk {
            image: raw,
            serial: "LOCALRAW0".into(),
            wwn: Some(0x5000c500a1b2c3d4),
        },
        LocalDisk {
            image: qcow,
            serial: "LOCALQCOW1".into(),
            wwn: None,
        },
    ];
    let run = run_guest(&spec);
    run.assert_ok();

    let ll = run.out("multipath-ll.txt");
    assert_eq!(
        map_lines(&ll).len(),
        2,
        "{}",
        explain(&run, "want exactly two maps")
    );
    assert_eq!(
        paths_of(&ll, &two.spec.wwid),
        2,
        "{}",
        explain(&run, "map of LUN 1")
    );
    assert_eq!(
        paths_of(&ll, &four.spec.wwid),
        4,
        "{}",
        explain(&run, "map of LUN 2")
    );

    let db = run.out("udev-db.txt");
    for lun in [&two, &four] {
        let uuid = format!("DM_UUID=mpath-{}", lun.spec.wwid);
        assert!(
            has_block_with(&db, &[&uuid, "DM_NAME=mpatha"])
                || has_block_with(&db, &[&uuid, "DM_NAME=mpathb"]),
            "{}",
            explain(&run, &format!("no map with {uuid}"))
        );
        let serial = format!("ID_SCSI_SERIAL={}", lun.spec.serial);
        let paths = udev_blocks(&db)
            .iter()
            .filter(|b| {
                b.contains(&serial)
                    && b.contains("DM_MULTIPATH_DEVICE_PATH=1")
                    && b.contains("ID_PATH=")
            })
            .count();
        assert!(
            paths >= 2,
            "{}",
            explain(&run, &format!("{serial}: {paths} paths in udev"))
        );
    }
    assert!(
        has_block_with(
            &db,
            &["ID_SCSI_SERIAL=LOCALRAW0", "ID_WWN=0x5000c500a1b2c3d4"]
        ),
        "{}",
        explain(&run, "local raw disk's serial and WWN not in udev")
    );
    assert!(
        has_block_with(&db, &["ID_SCSI_SERIAL=LOCALQCOW1"]),
        "{}",
        explain(&run, "local qcow2 disk's serial not in udev")
    );
    assert!(
        !udev_blocks(&db)
            .iter()
            .any(|b| b.contains("LOCALRAW0") && b.contains("DM_MULTIPATH_DEVICE_PATH=1")),
        "{}",
        explain(&run, "a local disk was claimed by multipath")
    );
}

/// Builds md RAID1 on two local disks (ext4) and XFS on a multipath map, then records
/// umockdev fixtures of both stacks, every member listed (umockdev-record does not follow
/// slaves).
const RECORD: &str = r#"
set -e
set -x
disks=""
for d in /sys/block/sd*; do
  if grep -q QEMU "$d/device/vendor"; then disks="$disks /dev/${d##*/}"; fi
done
mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 $disks
mkfs.ext4 -q /dev/md0
mkfs.xfs -q /dev/mapper/mpatha
udevadm settle
members() { for s in /sys/block/$1/slaves/*; do echo "/dev/${s##*/}"; done; }
umockdev-record /dev/dm-0 $(members dm-0) /dev/md0 $(members md0) > /out/stack.umockdev
ls -la /out
"#;

#[test]
fn records_umockdev_fixtures_of_a_map_and_an_md_array() {
    let Ok(Some(mut san)) = San::start().map_err(|e| panic!("tgtd: {e}")) else {
        return;
    };
    let lun = san.add_lun(&LunSpec {
        size_mb: 320,
        ..LunSpec::new(3)
    }); // XFS wants 300 MB
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = GuestSpec::new("rec1", RECORD);
    spec.luns = vec![(lun.clone(), 2)];
    for i in 0..2 {
        let image = dir.path().join(format!("md{i}.raw"));
        make_disk(&image, 64);
        spec.disks.push(LocalDisk {
            image,
            serial: format!("MDDISK{i}"),
            wwn: None,
        });
    }
    let run = run_guest(&spec);
    run.assert_ok();
    let fixture = run.out("stack.umockdev");
    let want = [
        "P: /devices/virtual/block/dm-0".to_string(),
        format!("E: DM_UUID=mpath-{}", lun.spec.wwid),
        "E: ID_FS_TYPE=xfs".into(),
        "E: MD_LEVEL=raid1".into(),
        "E: ID_FS_TYPE=ext4".into(),
        "E: ID_SCSI_SERIAL=MDDISK1".into(),
        "E: DM_MULTIPATH_DEVICE_PATH=1".into(),
    ];
    for line in want {
        assert!(
            fixture.contains(&line),
            "guest rec1: {line:?} not in the umockdev fixture ({} bytes)",
            fixture.len()
        );
    }
}

#[test]
fn two_guests_share_a_lun_side_by_side() {
    let Ok(Some(mut san)) = San::start().map_err(|e| panic!("tgtd: {e}")) else {
        return;
    };
    let lun = san.add_lun(&LunSpec::new(4));
    let script = "multipath -ll > /out/multipath-ll.txt 2>&1; cat /out/multipath-ll.txt";
    let specs: Vec<GuestSpec> = ["mn1", "mn2"]
        .iter()
        .map(|name| {
            let mut spec = GuestSpec::new(name, script);
            spec.luns = vec![(lun.clone(), 2)];
            spec
        })
        .collect();
    let runs = run_guests(&specs);
    for run in &runs {
        run.assert_ok();
        let ll = run.out("multipath-ll.txt");
        assert_eq!(
            paths_of(&ll, &lun.spec.wwid),
            2,
            "{}",
            explain(run, "shared LUN's map")
        );
    }
    eprintln!(
        "lab: side by side: {}",
        runs.iter()
            .map(|r| format!("{} {:.1} s", r.name, r.seconds))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// PREEMPT AND ABORT, which tgtd rejects, through the LIO SAN guest: key a1 holds a type 5
/// reservation on path 0, key b2 on path 1 preempts and aborts it.
const PREEMPT_ABORT: &str = r#"
set -e
set -x
multipath -ll > /out/multipath-ll.txt
set -- $(ls /sys/block/dm-0/slaves)
a=/dev/$1; b=/dev/$2
sg_persist -n --out --register --param-sark=0xa1 $a
sg_persist -n --out --register --param-sark=0xb2 $b
sg_persist -n --out --reserve --param-rk=0xa1 --prout-type=5 $a
sg_persist -n --out --preempt-abort --param-rk=0xb2 --param-sark=0xa1 --prout-type=5 $b
sg_persist -n --in -r $b > /out/reservation.txt
sg_persist -n --in -k $b > /out/keys.txt
cat /out/reservation.txt /out/keys.txt
"#;

#[test]
fn lio_san_guest_does_preempt_and_abort() {
    let Ok(Some(lio)) = LioSan::start(&[LunSpec::new(5)]).map_err(|e| panic!("LIO: {e}")) else {
        return;
    };
    let lun = lio.luns()[0].clone();
    let mut spec = GuestSpec::new("mn2", PREEMPT_ABORT);
    spec.luns = vec![(lun.clone(), 2)];
    let run = run_guest(&spec);
    assert_eq!(
        run.status,
        0,
        "{}\nSAN guest console:\n{}",
        explain(&run, "PR scenario failed"),
        lio.console()
    );
    let ll = run.out("multipath-ll.txt");
    assert_eq!(
        paths_of(&ll, &lun.spec.wwid),
        2,
        "{}",
        explain(&run, "LIO LUN's map")
    );
    let res = run.out("reservation.txt");
    assert!(
        res.contains("0xb2"),
        "guest mn2: holder after PREEMPT AND ABORT is not b2:\n{res}"
    );
    let keys = run.out("keys.txt");
    assert!(
        !keys.contains("0xa1"),
        "guest mn2: a1 still registered:\n{keys}"
    );
}
