//! `hamn disks` on the host against udev fixtures (umockdev): real libudev, recorded or
//! generated sysfs and udev data. The binary runs under `umockdev-run`, as an admin would
//! run it on the standby.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `hamn ARGS` inside a umockdev testbed of `device_file`; None where umockdev is missing.
fn hamn_in_testbed(device_file: &Path, args: &[&str]) -> Option<Output> {
    if !support::require_tool("umockdev-run") {
        return None;
    }
    let out = std::process::Command::new("umockdev-run")
        .arg("--device")
        .arg(device_file)
        .arg("--")
        .arg(assert_cmd::cargo::cargo_bin("hamn"))
        .args(args)
        .env_remove("HAMN_CONFIG")
        .output()
        .expect("umockdev-run runs");
    Some(out)
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.code().is_some(),
        "hamn died by a signal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn generated(maps: u32, paths: u32) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("tmp");
    let out = std::process::Command::new("python3")
        .arg(fixture("gen_fixture.py"))
        .args(["--maps", &maps.to_string(), "--paths", &paths.to_string()])
        .stdout(f.reopen().expect("reopen"))
        .status()
        .expect("python3 runs");
    assert!(out.success());
    f
}

#[test]
fn a_san_of_two_maps_over_two_paths_each_is_listed_with_paths_and_filesystems() {
    let f = generated(2, 2);
    let Some(out) = hamn_in_testbed(f.path(), &["--json", "disks"]) else {
        return;
    };
    assert!(out.status.success());
    let v = json(&out);
    let maps = v["multipath"].as_array().expect("maps");
    assert_eq!(maps.len(), 2);
    assert_eq!(maps[0]["name"], "mpath0");
    assert_eq!(maps[0]["wwid"], "36001405000000000000000000000000");
    assert_eq!(maps[0]["size_bytes"], 1u64 << 30);
    let paths: Vec<&str> = maps[0]["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .map(|p| p["kernel_name"].as_str().expect("name"))
        .collect();
    assert_eq!(paths, ["sda", "sdb"]);
    assert_eq!(maps[0]["paths"][1]["host"], "host1");
    assert_eq!(maps[0]["paths"][1]["state"], "running");
    assert_eq!(maps[1]["filesystem"]["type"], "ext4");
    assert_eq!(
        v["disks"].as_array().map(Vec::len),
        Some(0),
        "paths are not disks"
    );
}

#[test]
fn one_device_is_found_by_wwid_serial_or_filesystem_uuid_and_the_exit_code_says_so() {
    let f = generated(2, 2);
    let find = |args: &[&str]| hamn_in_testbed(f.path(), args);
    let Some(out) = find(&[
        "--json",
        "disks",
        "--wwid",
        "0x6001405000000000000000000000001",
    ]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        json(&out)["found"][0]["name"],
        "mpath1",
        "udev's 0x spelling finds multipath's 3... WWID"
    );
    let out = find(&["--json", "disks", "--serial", "hamn-lun-0001"]).expect("runs");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        json(&out)["found"].as_array().map(Vec::len),
        Some(2),
        "both paths of the LUN"
    );
    let out = find(&["disks", "--fs-uuid", "00000000-0000-4000-8000-000000000000"]).expect("runs");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("multipath map mpath0 (dm-0)"));
    let out = find(&["disks", "--serial", "no-such-serial"]).expect("runs");
    assert_eq!(out.status.code(), Some(1), "not found");
    assert!(String::from_utf8_lossy(&out.stdout).contains("no device with serial no-such-serial"));
}

#[test]
fn bad_input_gives_a_note_per_device_and_no_panic() {
    let Some(out) = hamn_in_testbed(&fixture("bad-input.umockdev"), &["--json", "disks"]) else {
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    let notes: Vec<String> = v["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .map(|n| {
            format!(
                "{}: {}",
                n["device"].as_str().unwrap_or(""),
                n["note"].as_str().unwrap_or("")
            )
        })
        .collect();
    let has = |dev: &str, words: &str| {
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with(dev) && n.contains(words)),
            "no note for {dev} containing '{words}': {notes:#?}"
        )
    };
    has(
        "dm-5",
        "path sdv is listed in sysfs slaves but its device is gone",
    );
    has("sdx", "no udev record");
    has("sdx", "size unknown");
    has("vdy", "serial is not valid UTF-8");
    let md = &v["md"][0];
    assert_eq!(md["kernel_name"], "md127");
    assert_eq!(md["degraded"], true);
    assert_eq!(md["state"], "read-auto");
    assert_eq!(md["name"], "box1:0");
    assert_eq!(v["multipath"][0]["paths"][0]["state"], "offline");
    let sdx = v["disks"]
        .as_array()
        .expect("disks")
        .iter()
        .find(|d| d["kernel_name"] == "sdx")
        .expect("sdx");
    assert!(
        sdx["size_bytes"].is_null() && sdx["serial"].is_null(),
        "nothing invented: {sdx}"
    );
}

/// Fixtures recorded in a lab guest (tests/lab_disks.rs with HAMN_RECORD_FIXTURES=1):
/// two LUNs over 2 and 4 paths, a RAID1 of two local disks with ext4, an xfs disk.
fn recorded(name: &str) -> Option<serde_json::Value> {
    let out = hamn_in_testbed(&fixture(name), &["--json", "disks"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(json(&out))
}

fn paths_of(v: &serde_json::Value, map: &str) -> Vec<(String, String)> {
    v["multipath"]
        .as_array()
        .expect("maps")
        .iter()
        .find(|m| m["name"] == map)
        .unwrap_or_else(|| panic!("no map {map}"))["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .map(|p| {
            (
                p["kernel_name"].as_str().unwrap_or("").to_string(),
                p["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_recorded_lab_guest_shows_both_maps_the_raid1_and_the_xfs_disk() {
    let Some(v) = recorded("lab-guest.umockdev") else {
        return;
    };
    assert_eq!(paths_of(&v, "mpatha").len(), 2);
    assert_eq!(paths_of(&v, "mpathb").len(), 4);
    let md = &v["md"][0];
    assert_eq!(
        (md["kernel_name"].as_str(), md["level"].as_str()),
        (Some("md0"), Some("raid1"))
    );
    assert_eq!(md["degraded"], false);
    assert_eq!(md["members"].as_array().map(Vec::len), Some(2));
    assert_eq!(md["filesystem"]["label"], "xcatdata");
    let serials: Vec<&str> = v["disks"]
        .as_array()
        .expect("disks")
        .iter()
        .filter_map(|d| d["serial"].as_str())
        .collect();
    assert_eq!(serials, ["raid-a", "raid-b", "xfs-1"]);
    assert_eq!(v["disks"][2]["filesystem"]["type"], "xfs");
    assert_eq!(
        v["notes"].as_array().map(Vec::len),
        Some(0),
        "{}",
        v["notes"]
    );
}

#[test]
fn a_recorded_degraded_raid1_is_reported_degraded_with_one_member() {
    let Some(v) = recorded("lab-degraded.umockdev") else {
        return;
    };
    assert_eq!(v["md"][0]["degraded"], true);
    assert_eq!(v["md"][0]["members"].as_array().map(Vec::len), Some(1));
    let b = v["disks"]
        .as_array()
        .expect("disks")
        .iter()
        .find(|d| d["serial"] == "raid-b")
        .expect("raid-b");
    assert_eq!(
        b["holders"].as_array().map(Vec::len),
        Some(0),
        "the removed member is no longer used by md0"
    );
}

#[test]
fn a_recorded_failed_path_shows_offline_while_the_others_run() {
    let Some(v) = recorded("lab-failed-path.umockdev") else {
        return;
    };
    let paths = paths_of(&v, "mpathb");
    assert_eq!(
        paths.iter().filter(|(_, s)| s == "offline").count(),
        1,
        "{paths:?}"
    );
    assert_eq!(
        paths.iter().filter(|(_, s)| s == "running").count(),
        3,
        "{paths:?}"
    );
}
