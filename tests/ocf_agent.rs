//! The OCF resource agent's contract with Pacemaker, on the host: meta-data valid against
//! the OCF resource agent API's DTD (xmllint), and the OCF exit codes for actions it does not know. What start, monitor
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
    // The OCF resource agent API's DTD, as resource-agents ships it (and its ocf-tester
    // validates against).
    const DTD: &str = "/usr/share/resource-agents/ra-api-1.dtd";
    if !Path::new(DTD).exists() {
        support::skip_or_panic(&format!(
            "{DTD} not installed (Debian package resource-agents)"
        ));
        return;
    }
    let lint = Command::new("xmllint")
        .args(["--noout", "--nonet", "--dtdvalid", DTD])
        .arg(&file)
        .output()
        .expect("xmllint");
    assert!(
        lint.status.success(),
        "the meta-data does not validate against {DTD}: {}",
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

/// Runs the agent's monitor against a stand-in `hamn` whose `status --json` prints
/// `status` and exits `rc`; returns the agent's exit code and stderr.
fn monitor_with(status: &str, rc: i32, ocf_minor: Option<&str>) -> (Option<i32>, String) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let fake = dir.path().join("hamn");
    std::fs::write(dir.path().join("status.json"), status).expect("write");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \"$*\" in *status*) cat '{}'; exit {rc} ;; esac\nexit 1\n",
            dir.path().join("status.json").display()
        ),
    )
    .expect("write");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut cmd = Command::new("sh");
    cmd.arg(agent())
        .arg("monitor")
        .env("OCF_RESKEY_hamn", &fake)
        .env_remove("OCF_RA_VERSION_MAJOR")
        .env_remove("OCF_RA_VERSION_MINOR");
    if let Some(m) = ocf_minor {
        cmd.env("OCF_RA_VERSION_MAJOR", "1")
            .env("OCF_RA_VERSION_MINOR", m);
    }
    let out = cmd.output().expect("sh");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const RUNNING: &str = r#"{"luns":[{"lun":"a","held_by":"this node"}],"mounts":[{"mounted":true}],"users_lack":[],"journal":{"complete":true}"#;

#[test]
fn a_returning_peer_is_an_alarm_of_the_monitor_that_does_not_stop_the_resource() {
    let alarm =
        "ALARM: peer mn1 was fenced by this node's takeover, but its power reads 'on' again";
    let with_alarm = format!("{RUNNING},\"alarms\":[\"{alarm}\"]}}");
    // Pacemaker 2.1+ (OCF 1.1): running but degraded, no recovery.
    let (code, stderr) = monitor_with(&with_alarm, 1, Some("1"));
    assert_eq!(code, Some(190), "OCF_DEGRADED: {stderr}");
    assert!(stderr.contains(alarm), "{stderr}");
    // Older Pacemaker: running, the alarm in the log.
    let (code, stderr) = monitor_with(&with_alarm, 1, None);
    assert_eq!(code, Some(0), "OCF_SUCCESS: {stderr}");
    assert!(stderr.contains(alarm), "{stderr}");
    let (code, _) = monitor_with(&with_alarm, 1, Some("0"));
    assert_eq!(code, Some(0));
}

#[test]
fn the_storage_without_what_users_see_is_a_monitor_failure_that_names_it() {
    let lacking = RUNNING.replace(
        r#""users_lack":[]"#,
        r#""users_lack":["service xcatd: not ready"]"#,
    );
    let (code, stderr) = monitor_with(&format!("{lacking},\"alarms\":[]}}"), 0, Some("1"));
    assert_eq!(code, Some(1), "OCF_ERR_GENERIC: {stderr}");
    assert!(stderr.contains("service xcatd: not ready"), "{stderr}");
    let silent = RUNNING.replace(r#""users_lack":[],"#, "");
    let (code, stderr) = monitor_with(&format!("{silent},\"alarms\":[]}}"), 0, Some("1"));
    assert_eq!(code, Some(1), "unknown is no: {stderr}");
    assert!(stderr.contains("does not say"), "{stderr}");
}

#[test]
fn the_monitor_without_an_alarm_is_unchanged() {
    let quiet = format!("{RUNNING},\"alarms\":[]}}");
    assert_eq!(monitor_with(&quiet, 0, Some("1")).0, Some(0), "running");
    assert_eq!(
        monitor_with(&quiet, 1, Some("1")).0,
        Some(1),
        "status failed without an alarm: OCF_ERR_GENERIC"
    );
    let stopped = r#"{"luns":[{"lun":"a","held_by":"the peer"}],"mounts":[{"mounted":false}],"journal":null,"alarms":[]}"#;
    assert_eq!(
        monitor_with(stopped, 0, Some("1")).0,
        Some(7),
        "OCF_NOT_RUNNING"
    );
}

/// xCAT's option 6: the data on a DRBD mirror, no shared LUN.
#[test]
fn on_a_mirror_the_monitor_runs_where_the_copy_is_primary_and_mounted() {
    let mirror = |role: &str, mounted: bool| {
        format!(
            r#"{{"luns":[],"drbd":[{{"resource":"xcat","role":"{role}","peer_role":"Unknown","connection":"WFConnection","disk":"UpToDate","peer_disk":"DUnknown"}}],"mounts":[{{"mounted":{mounted}}}],"users_lack":[],"journal":{{"complete":true}},"alarms":[]}}"#
        )
    };
    assert_eq!(
        monitor_with(&mirror("Primary", true), 0, Some("1")).0,
        Some(0),
        "Primary and mounted: running"
    );
    assert_eq!(
        monitor_with(&mirror("Secondary", true), 0, Some("1")).0,
        Some(1),
        "mounted while Secondary cannot be: a failure"
    );
    assert_eq!(
        monitor_with(&mirror("Primary", false), 0, Some("1")).0,
        Some(7),
        "Primary (the cluster promoted it) with nothing mounted: stopped"
    );
    assert_eq!(
        monitor_with(&mirror("Secondary", false), 0, Some("1")).0,
        Some(7),
        "the standby: stopped"
    );
    let nothing = r#"{"luns":[],"drbd":[],"mounts":[{"mounted":true}],"users_lack":[],"journal":{"complete":true},"alarms":[]}"#;
    assert_eq!(
        monitor_with(nothing, 0, Some("1")).0,
        Some(1),
        "no LUN and no mirror says nothing about the data: not running here"
    );
}
