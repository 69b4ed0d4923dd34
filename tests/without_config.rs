//! What a new user tries first on a node without /etc/hamn/hamn.toml: the commands that
//! only read work without one (`hamn status`, `hamn pr status`, `hamn disks`,
//! `hamn history`), and none of them ends in "cannot read configuration".

mod support;

use std::path::Path;

fn hamn(args: &[&str]) -> std::process::Output {
    assert_cmd::Command::cargo_bin("hamn")
        .expect("hamn binary")
        .args(args)
        .env_remove("HAMN_CONFIG")
        .output()
        .expect("hamn runs")
}

/// No /etc/hamn/hamn.toml, or only the packaged example (all comments, which configures
/// nothing).
fn no_config_here() -> bool {
    let text = std::fs::read_to_string("/etc/hamn/hamn.toml").unwrap_or_default();
    if Path::new("/etc/hamn/hamn.toml").exists() && hamn::config::sets_anything(&text) {
        support::skip_or_panic(
            "/etc/hamn/hamn.toml exists on this machine: these tests need a node without one",
        );
        return false;
    }
    true
}

fn says(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn status_disks_and_history_work_without_hamn_toml() {
    if !no_config_here() {
        return;
    }
    for args in [
        &["status", "--no-bmc"][..],
        &["disks"],
        &["history"],
        &["--json", "history"],
    ] {
        let out = hamn(args);
        assert!(out.status.success(), "hamn {args:?}: {}", says(&out));
        assert!(
            !says(&out).contains("cannot read configuration"),
            "hamn {args:?}: {}",
            says(&out)
        );
    }
    let out = hamn(&["status", "--no-bmc"]);
    assert!(says(&out).contains("no hamn.toml"), "{}", says(&out));
}

#[test]
fn pr_status_without_hamn_toml_reads_the_device_instead_of_asking_for_a_config() {
    if !no_config_here() {
        return;
    }
    // No such LUN on this host: the answer is about the device, not the configuration.
    let out = hamn(&["pr", "status", "/dev/mapper/no-such-map"]);
    assert!(!out.status.success());
    let text = says(&out);
    assert!(!text.contains("cannot read configuration"), "{text}");
    assert!(text.contains("no-such-map"), "{text}");
}
