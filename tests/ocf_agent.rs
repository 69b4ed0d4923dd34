//! The OCF resource agent's contract with Pacemaker, on the host: well-formed meta-data
//! (xmllint), and the OCF exit codes for actions it does not know. What start, monitor
//! and stop do against real storage is tested in the lab (lab_takeover.rs).

mod support;

use std::path::Path;
use std::process::Command;

fn agent() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fencing/ocf/hamn-takeover")
}

#[test]
fn meta_data_is_well_formed_xml_listing_every_action() {
    let out = Command::new("sh")
        .arg(agent())
        .arg("meta-data")
        .output()
        .expect("sh");
    assert!(out.status.success());
    let xml = String::from_utf8_lossy(&out.stdout);
    for action in ["start", "stop", "monitor", "validate-all", "meta-data"] {
        assert!(xml.contains(&format!("<action name=\"{action}\"")), "{xml}");
    }
    if !support::require_tool("xmllint") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("meta.xml");
    std::fs::write(&file, &out.stdout).expect("write");
    // --nonet: the DTD named in the DOCTYPE is Pacemaker's and not fetched.
    let lint = Command::new("xmllint")
        .args(["--noout", "--nonet"])
        .arg(&file)
        .output()
        .expect("xmllint");
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stderr)
    );
}

#[test]
fn unknown_and_missing_actions_get_the_ocf_exit_codes() {
    let run = |args: &[&str]| {
        Command::new("sh")
            .arg(agent())
            .args(args)
            .status()
            .expect("sh")
            .code()
    };
    assert_eq!(run(&["promote"]), Some(3), "OCF_ERR_UNIMPLEMENTED");
    assert_eq!(run(&[]), Some(2), "OCF_ERR_ARGS");
}
