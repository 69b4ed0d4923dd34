//! `hamn disks verify` on the host, against box2 of the moved-disks lab replayed by
//! umockdev: its real udev data (tests/fixtures/moved/moved-box2.umockdev) and the first
//! 8 KiB of each disk as the guest read them (the md 1.2 superblocks), written into the
//! test bed's device nodes before hamn runs. The manifest is the one box1 recorded. The
//! fixtures are recorded by `HAMN_RECORD_FIXTURES=1 cargo test --test lab_moved`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/moved")
}

fn recorded_manifest() -> String {
    std::fs::read_to_string(fixtures().join("box1-disks.toml")).expect("box1 manifest fixture")
}

/// `hamn disks verify --manifest M` in box2's test bed. With `heads`, the disks' first
/// 8 KiB are in place; without, the device nodes are empty, as umockdev leaves them.
fn verify(manifest: &str, heads: bool, extra: &[&str]) -> Option<Output> {
    if !support::require_tool("umockdev-run") {
        return None;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let m = dir.path().join("disks.toml");
    std::fs::write(&m, manifest).expect("write manifest");
    let script = r#"
if [ "$HEADS" = 1 ]; then
    for f in "$FIXTURES"/head-*.bin; do
        n=${f##*/head-}; n=${n%.bin}
        dd if="$f" of="/dev/$n" conv=notrunc 2>/dev/null || exit 99
    done
fi
exec "$HAMN" "$@"
"#;
    let out = std::process::Command::new("umockdev-run")
        .arg("--device")
        .arg(fixtures().join("moved-box2.umockdev"))
        .args([
            "--",
            "sh",
            "-c",
            script,
            "sh",
            "--json",
            "disks",
            "verify",
            "--manifest",
        ])
        .arg(&m)
        .args(extra)
        .env("HAMN", assert_cmd::cargo::cargo_bin("hamn"))
        .env("FIXTURES", fixtures())
        .env("HEADS", if heads { "1" } else { "0" })
        .env_remove("HAMN_CONFIG")
        .env("HAMN_PROFILE_PATH", dir.path())
        .output()
        .expect("umockdev-run runs");
    Some(out)
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// (subject, status) of every finding.
fn findings(v: &serde_json::Value) -> Vec<(String, String)> {
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["subject"].as_str().unwrap_or("").to_string(),
                f["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn message_of(v: &serde_json::Value, status: &str) -> String {
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["status"] == status)
        .map(|f| f["message"].as_str().unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_moved_disks_in_other_bays_are_acceptable_and_both_members_fresh() {
    let Some(out) = verify(&recorded_manifest(), true, &[]) else {
        return;
    };
    let v = report(&out);
    assert_eq!(v["verdict"], "acceptable", "{v:#}");
    assert_eq!(out.status.code(), Some(4), "{v:#}");
    let f = findings(&v);
    for member in ["raid-a", "raid-b"] {
        assert!(
            f.contains(&(
                format!("member {member} of array box1:0"),
                "slot-changed".into()
            )),
            "{f:?}"
        );
    }
    assert!(
        f.contains(&("array box1:0".into(), "array-whole".into())),
        "{f:?}"
    );
    assert!(
        f.iter()
            .any(|(s, st)| s == "disk sdd" && st == "unexpected"),
        "{f:?}"
    );
    // udev's auto-assembled md127 is reported, to be stopped by takeover.
    assert!(
        f.contains(&("array box1:0".into(), "array-running".into())),
        "{f:?}"
    );
    let members = v["arrays"][0]["members"].as_array().expect("members").len();
    assert_eq!(members, 2, "{v:#}");
}

#[test]
fn superblocks_that_cannot_be_read_refuse_the_array() {
    let Some(out) = verify(&recorded_manifest(), false, &[]) else {
        return;
    };
    let v = report(&out);
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    assert_eq!(v["verdict"], "refuse");
    let msg = message_of(&v, "unreadable");
    assert!(msg.contains("mdadm --examine"), "{v:#}");
}

#[test]
fn members_older_than_the_manifest_are_stale() {
    // As if the manifest had been recorded after more writes than these disks saw.
    let manifest = recorded_manifest().replace("events = ", "events = 1000");
    let Some(out) = verify(&manifest, true, &[]) else {
        return;
    };
    let v = report(&out);
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    let msg = message_of(&v, "stale");
    assert!(msg.contains("recorded in the manifest"), "{msg}");
}

#[test]
fn a_member_the_manifest_does_not_know_is_refused_by_name() {
    let manifest = recorded_manifest().replace("serial = \"raid-b\"", "serial = \"raid-x\"");
    let Some(out) = verify(&manifest, true, &["--accept-degraded"]) else {
        return;
    };
    let v = report(&out);
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    let msg = message_of(&v, "stale");
    assert!(
        msg.contains("raid-b") && msg.contains("not a recorded member"),
        "{v:#}"
    );
}

#[test]
fn a_newer_or_malformed_manifest_is_an_error_not_a_verdict() {
    let newer = recorded_manifest().replace("version = 1", "version = 2");
    let Some(out) = verify(&newer, true, &[]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("newer than this hamn reads"), "{err}");

    let Some(out) = verify("version = 1\nnode = \"box1\"\n", true, &[]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing field"), "{err}");
}
