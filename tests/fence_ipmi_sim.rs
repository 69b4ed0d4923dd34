//! `hamn fence` and `hamn power` against a real BMC implementation (OpenIPMI's ipmi_sim)
//! whose server is a real process. Each test reads like the admin's situation it checks.

mod support;

use std::time::{Duration, Instant};

use support::peer::{self, PASSWORD};
use support::relay::LossyRelay;
use support::sim::{ServerBehaviour, SimOptions};

fn output(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn fencing_a_running_primary_kills_its_server_and_ipmitool_agrees() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    assert!(
        mn1.bmc.server_alive(),
        "the primary's server runs before fencing"
    );
    let out = mn1.hamn(&["fence", "mn1"]).output().expect("runs");
    assert!(out.status.success(), "{}", output(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("mn1: FENCED"), "{}", output(&out));
    assert!(
        !mn1.bmc.server_alive(),
        "the server process is gone after fencing"
    );
    assert_eq!(
        mn1.bmc.ipmitool_power_is_on(),
        Some(false),
        "ipmitool sees it off too"
    );
}

#[test]
fn fencing_a_primary_that_is_already_off_succeeds_and_says_so() {
    let Some(mn1) = peer::failed_primary(SimOptions {
        initially_on: false,
        ..SimOptions::default()
    }) else {
        return;
    };
    let out = mn1
        .hamn(&["--json", "fence", "mn1"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", output(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["fenced"], true);
    assert_eq!(v["proof"]["method"]["already_off"], true);
    assert_eq!(
        v["proof"]["method"]["reads"], 2,
        "already off is still confirmed"
    );
}

#[test]
fn power_status_on_and_off_for_the_admin_match_ipmitool() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    let status = |p: &peer::Peer| {
        let o = p.hamn(&["power", "status", "mn1"]).output().expect("runs");
        assert!(o.status.success(), "{}", output(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(status(&mn1), "mn1: on");
    assert_eq!(mn1.bmc.ipmitool_power_is_on(), Some(true));
    mn1.hamn(&["power", "off", "mn1"]).assert().success();
    assert_eq!(status(&mn1), "mn1: off");
    assert_eq!(mn1.bmc.ipmitool_power_is_on(), Some(false));
    mn1.hamn(&["power", "on", "mn1"]).assert().success();
    assert_eq!(status(&mn1), "mn1: on");
    assert!(mn1.bmc.server_alive());
}

/// Each fault: a clear error on stderr, a non-zero exit, nothing reported fenced, and
/// the server still running.
fn assert_not_fenced(mn1: &peer::Peer, out: &std::process::Output, says: &[&str]) {
    assert_eq!(out.status.code(), Some(1), "{}", output(out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("FENCED"), "{}", output(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("node 'mn1'"),
        "names the node: {}",
        output(out)
    );
    for s in says {
        assert!(stderr.contains(s), "expected '{s}' in: {}", output(out));
    }
    assert!(mn1.bmc.server_alive(), "the server must still be running");
}

#[test]
fn a_wrong_password_is_refused_and_nothing_is_fenced() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    mn1.write_config(mn1.bmc.addr(), "admin", "cipher_suite = 3");
    mn1.write_password("not-the-password", 0o600);
    let out = mn1
        .hamn(&["fence", "mn1", "--timeout", "5"])
        .output()
        .expect("runs");
    assert_not_fenced(
        &mn1,
        &out,
        &["wrong password", "user 'admin'", "is NOT fenced"],
    );
}

#[test]
fn an_unknown_user_is_refused_and_nothing_is_fenced() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    mn1.write_config(mn1.bmc.addr(), "nobody", "cipher_suite = 3");
    let out = mn1
        .hamn(&["fence", "mn1", "--timeout", "5"])
        .output()
        .expect("runs");
    assert_not_fenced(&mn1, &out, &["nobody"]);
}

#[test]
fn a_bmc_that_is_not_running_fails_by_the_deadline() {
    let Some(mut mn1) = peer::with_defaults() else {
        return;
    };
    mn1.bmc.kill_bmc();
    let started = Instant::now();
    let out = mn1
        .hamn(&["fence", "mn1", "--timeout", "2"])
        .output()
        .expect("runs");
    assert_not_fenced(&mn1, &out, &["no valid reply", "127.0.0.1"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the deadline holds"
    );
}

#[test]
fn a_bmc_frozen_for_the_whole_timeout_is_a_failure() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    mn1.bmc.freeze();
    let out = mn1
        .hamn(&["fence", "mn1", "--timeout", "2"])
        .output()
        .expect("runs");
    mn1.bmc.resume();
    assert_not_fenced(&mn1, &out, &["no valid reply"]);
}

#[test]
fn a_bmc_that_acknowledges_power_off_while_the_server_keeps_running_is_not_a_fence() {
    let Some(mn1) = peer::failed_primary(SimOptions {
        behaviour: ServerBehaviour::IgnoresPowerOff,
        ..SimOptions::default()
    }) else {
        return;
    };
    let out = mn1
        .hamn(&["fence", "mn1", "--timeout", "2"])
        .output()
        .expect("runs");
    assert_not_fenced(&mn1, &out, &["accepted power down", "still reported 'on'"]);
}

#[test]
fn a_bmc_frozen_then_resumed_mid_fence_is_fenced_only_on_fresh_replies() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    mn1.bmc.freeze();
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("hamn"));
    cmd.arg("--config")
        .arg(mn1.config_path())
        .args(["fence", "mn1", "--timeout", "8"]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let running = cmd.spawn().expect("spawn hamn");
    // Let several retransmissions queue up at the frozen BMC, then let it answer them all.
    std::thread::sleep(Duration::from_millis(1500));
    mn1.bmc.resume();
    let out = running.wait_with_output().expect("hamn ends");
    assert!(out.status.success(), "{}", output(&out));
    assert!(
        !mn1.bmc.server_alive(),
        "reported fenced, so the server must be gone"
    );
    assert_eq!(mn1.bmc.ipmitool_power_is_on(), Some(false));
}

#[test]
fn a_late_reply_to_a_timed_out_request_is_not_read_as_the_chassis_status() {
    // The false confirmation lab.md saw with ipmi-rs: a late Get Device ID reply read as
    // Get Chassis Status says "off" while the server runs.
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    let cfg = hamn::config::Config::load(mn1.config_path()).expect("config");
    let peer = cfg.peer("mn1").expect("peer");
    let profiles = hamn::profiles::Profiles::load_from(&[]).expect("profiles");
    let soon = |ms| Instant::now() + Duration::from_millis(ms);
    let mut bmc = hamn::bmc::IpmiBmc::connect(peer, &profiles, soon(5000), Default::default())
        .expect("session");
    mn1.bmc.freeze();
    assert!(
        bmc.manufacturer_id(soon(600)).is_err(),
        "times out while frozen"
    );
    mn1.bmc.resume();
    std::thread::sleep(Duration::from_millis(300));
    use hamn::bmc::PowerControl;
    let state = bmc.power_state(soon(3000)).expect("fresh status");
    assert_eq!(state, hamn::bmc::PowerState::On, "the server is on");
    assert!(mn1.bmc.server_alive());
}

#[test]
fn fencing_succeeds_through_30_percent_packet_loss_and_100_ms_delay() {
    for seed in [1u64, 2] {
        let Some(mn1) = peer::with_defaults() else {
            return;
        };
        let relay = LossyRelay::start(mn1.bmc.addr(), 0.3, Duration::from_millis(100), seed)
            .expect("relay");
        mn1.write_config(relay.addr(), "admin", "cipher_suite = 3");
        let out = mn1
            .hamn(&["-v", "fence", "mn1", "--timeout", "30"])
            .output()
            .expect("runs");
        assert!(out.status.success(), "seed {seed}: {}", output(&out));
        assert!(!mn1.bmc.server_alive(), "seed {seed}: server gone");
        let stats = relay.stats();
        assert!(
            stats.to_target_dropped + stats.to_client_dropped > 0,
            "seed {seed}: the relay really dropped datagrams"
        );
    }
}

#[test]
fn cipher_suite_zero_is_refused_before_anything_is_sent() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    mn1.write_config(mn1.bmc.addr(), "admin", "cipher_suite = 0");
    let out = mn1.hamn(&["fence", "mn1"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(3), "{}", output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cipher suite 0 has no authentication"),
        "{}",
        output(&out)
    );
    assert!(
        stderr.contains("line 8"),
        "names the line: {}",
        output(&out)
    );
    assert!(mn1.bmc.server_alive());
}

#[test]
fn without_a_pinned_suite_hamn_falls_back_from_17_to_3_and_picks_the_profile() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    mn1.write_config(mn1.bmc.addr(), "admin", "");
    let out = mn1
        .hamn(&["--json", "fence", "mn1"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", output(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["cipher_suite"], 3);
    assert_eq!(
        v["profile"], "openipmi-sim",
        "chosen by manufacturer ID 0x1291"
    );
}

#[test]
fn the_password_appears_in_no_log_line_even_at_trace_level() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    for format in ["human", "json"] {
        let out = mn1
            .hamn(&[
                "-vvv",
                "--log-format",
                format,
                "fence",
                "mn1",
                "--timeout",
                "5",
            ])
            .output()
            .expect("runs");
        assert!(out.status.success(), "{}", output(&out));
        assert!(
            out.stderr.len() > 200,
            "trace logging is on: {}",
            output(&out)
        );
        for stream in [&out.stdout, &out.stderr] {
            assert!(
                !String::from_utf8_lossy(stream).contains(PASSWORD),
                "password leaked"
            );
        }
        mn1.bmc.power_on();
    }
    // A failed login must not leak it either.
    mn1.write_password("wrong-pw-Zz9", 0o600);
    let out = mn1
        .hamn(&["-vvv", "fence", "mn1", "--timeout", "3"])
        .output()
        .expect("runs");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("wrong-pw-Zz9"));
}

#[test]
fn a_group_readable_password_file_is_refused() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    mn1.write_password(PASSWORD, 0o640);
    let out = mn1.hamn(&["fence", "mn1"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(3), "{}", output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mode 0640") && stderr.contains("chmod 600"),
        "{}",
        output(&out)
    );
    assert!(mn1.bmc.server_alive());
}

#[test]
fn every_session_is_closed_after_each_command() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    for _ in 0..3 {
        mn1.hamn(&["power", "status", "mn1"]).assert().success();
    }
    mn1.hamn(&["fence", "mn1"]).assert().success();
    let out = mn1.bmc.ipmitool(&["session", "info", "all"]);
    let text = String::from_utf8_lossy(&out.stdout);
    // Only ipmitool's own session is active.
    let active: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("active session count"))
        .collect();
    assert!(
        active.iter().all(|l| l.trim().ends_with(": 1")),
        "sessions left open: {text}"
    );
}

#[test]
fn a_bmc_offering_only_cipher_suite_zero_is_refused_and_nothing_is_fenced() {
    let Some(mn1) = peer::failed_primary(SimOptions {
        only_cipher_suite_0: true,
        ..SimOptions::default()
    }) else {
        return;
    };
    for extra in ["cipher_suite = 3", ""] {
        mn1.write_config(mn1.bmc.addr(), "admin", extra);
        let out = mn1
            .hamn(&["fence", "mn1", "--timeout", "6"])
            .output()
            .expect("runs");
        assert_not_fenced(
            &mn1,
            &out,
            &["refused to open an RMCP+ session with cipher suite 3"],
        );
    }
}

#[test]
fn a_bmc_that_cuts_the_power_and_then_answers_with_an_error_is_fenced_and_says_so() {
    let Some(mn1) = peer::failed_primary(SimOptions {
        behaviour: ServerBehaviour::CutsPowerThenErrors,
        ..SimOptions::default()
    }) else {
        return;
    };
    // The power model really answers the power down with ipmi_sim's error completion.
    let raw = mn1.bmc.ipmitool(&["chassis", "power", "off"]);
    assert!(
        !raw.status.success(),
        "ipmitool sees the error: {}",
        output(&raw)
    );
    assert!(!mn1.bmc.server_alive(), "and yet the power was cut");
    mn1.bmc.power_on();
    assert!(mn1.bmc.server_alive());

    let out = mn1.hamn(&["fence", "mn1"]).output().expect("runs");
    assert!(out.status.success(), "{}", output(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("mn1: FENCED")
            && stdout.contains("the BMC reported an error")
            && stdout.contains("0xff")
            && stdout.contains("reads off"),
        "{}",
        output(&out)
    );
    assert!(
        !mn1.bmc.server_alive(),
        "reported fenced: the server is gone"
    );

    mn1.bmc.power_on();
    let out = mn1
        .hamn(&["--json", "fence", "mn1"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", output(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["fenced"], true);
    let method = &v["proof"]["method"];
    assert_eq!(method["already_off"], false);
    assert!(
        method["bmc_error"]
            .as_str()
            .is_some_and(|e| e.contains("0xff")),
        "{v}"
    );
}

#[test]
fn a_bmc_that_refuses_the_restore_policy_gets_a_warning_and_the_fence_still_succeeds() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    // ipmi_sim does not implement Set Power Restore Policy ("invalid command", 0xC1),
    // and reports the policy bits of Get Chassis Status as 00b (always off).
    let out = mn1
        .hamn(&["--json", "fence", "mn1"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", output(&out));
    assert!(!mn1.bmc.server_alive());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let policy = &v["restore_policy"];
    assert_eq!(policy["before"], "always-off", "{v}");
    assert!(policy["after"].is_null(), "{v}");
    let warning = policy["warning"].as_str().unwrap_or_default();
    assert!(
        warning.contains("node 'mn1'")
            && warning.contains("0xc1")
            && warning.contains("Power Restore Policy")
            && warning.contains("Always Off"),
        "{v}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WARN") && stderr.contains("chassis policy always-off"),
        "a tracing warning too: {}",
        output(&out)
    );

    mn1.bmc.power_on();
    let out = mn1.hamn(&["fence", "mn1"]).output().expect("runs");
    assert!(out.status.success(), "{}", output(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("mn1: FENCED") && stdout.contains("WARNING: node 'mn1'"),
        "{}",
        output(&out)
    );
}

/// hamn.toml for mn1 plus a takeover journal of mn2 that fenced mn1 (`step` done).
fn took_over_from_mn1(mn1: &peer::Peer, step: Option<&str>) -> std::path::PathBuf {
    let journal = mn1.dir.path().join("takeover.json");
    let mut text = std::fs::read_to_string(mn1.config_path()).expect("hamn.toml");
    text.push_str(&format!(
        "\n[takeover]\njournal = \"{}\"\n",
        journal.display()
    ));
    std::fs::write(mn1.config_path(), text).expect("write hamn.toml");
    if let Some(step) = step {
        use hamn::takeover::journal::{Journal, State};
        let mut j = Journal::new(&journal, "mn1", "san");
        j.record(step, State::Started, "").expect("journal");
        j.record(step, State::Done, "fenced").expect("journal");
    }
    journal
}

#[test]
fn status_raises_an_alarm_and_exits_1_when_a_peer_this_node_fenced_is_powered_on_again() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    took_over_from_mn1(&mn1, Some("fence-storage"));
    mn1.hamn(&["fence", "mn1"]).assert().success();

    // Fenced and off: no alarm, and the policy is shown.
    let out = mn1.hamn(&["status"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", output(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("power off, power restore policy always-off, fenced by this node"),
        "{}",
        output(&out)
    );
    assert!(!stdout.contains("ALARM"), "{}", output(&out));

    // Someone powers mn1 on again (its BMC's restore policy, the button, a PDU).
    mn1.bmc.power_on();
    let out = mn1.hamn(&["status"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", output(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ALARM: peer mn1")
            && stdout.contains("mn1 is running again")
            && stdout.contains("hamn pr status --all-shared")
            && stdout.contains("hamn fence mn1"),
        "{}",
        output(&out)
    );
    let out = mn1.hamn(&["--json", "status"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", output(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["peer"]["power"], "on", "{v}");
    assert_eq!(v["peer"]["fenced_by_this_node"], true, "{v}");
    assert_eq!(v["peer"]["restore_policy"], "always-off", "{v}");
    assert_eq!(v["alarms"].as_array().map(Vec::len), Some(1), "{v}");
}

#[test]
fn status_shows_a_running_peer_quietly_when_this_node_never_fenced_it() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    took_over_from_mn1(&mn1, None);
    let out = mn1.hamn(&["--json", "status"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", output(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["peer"]["power"], "on", "{v}");
    assert_eq!(v["peer"]["fenced_by_this_node"], false, "{v}");
    assert_eq!(v["alarms"], serde_json::json!([]), "{v}");
}

/// The whole takeover, not only `hamn fence`: the BMC cuts mn1's power and answers the
/// power down with an error. The takeover reads the power, finds it off, goes on to its
/// services and completes, and its report says what the BMC did.
#[test]
fn a_takeover_whose_power_down_is_answered_with_an_error_completes_when_the_power_reads_off() {
    let Some(mn1) = peer::failed_primary(SimOptions {
        behaviour: ServerBehaviour::CutsPowerThenErrors,
        ..SimOptions::default()
    }) else {
        return;
    };
    let started = mn1.dir.path().join("xcatd.started");
    let mut text = std::fs::read_to_string(mn1.config_path()).expect("hamn.toml");
    text.push_str(&format!(
        "\n[takeover]\npeer = \"mn1\"\njournal = \"{}\"\n\n\
         [[takeover.service]]\nname = \"xcatd\"\nstart = [\"touch\", \"{}\"]\n\n\
         [peers.mn1]\nfencing = [\"power\"]\n",
        mn1.dir.path().join("takeover.json").display(),
        started.display()
    ));
    std::fs::write(mn1.config_path(), text).expect("write hamn.toml");
    assert!(mn1.bmc.server_alive(), "mn1 runs before the takeover");

    let out = mn1.hamn(&["takeover"]).output().expect("runs");
    assert!(out.status.success(), "{}", output(&out));
    // The step's line in the progress report (stderr).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().any(|l| l.contains("fence-power")
            && l.contains("done")
            && l.contains("the BMC reported an error")
            && l.contains("reads off")),
        "{}",
        output(&out)
    );
    assert!(!mn1.bmc.server_alive(), "mn1's power is cut");
    assert!(
        started.exists(),
        "the service was started: {}",
        output(&out)
    );
    let journal: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(mn1.dir.path().join("takeover.json")).expect("journal"),
    )
    .expect("journal JSON");
    assert_eq!(journal["complete"], true, "{journal:#}");
}
