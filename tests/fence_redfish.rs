//! Fencing through a Redfish BMC, against sushy-tools' emulator on 127.0.0.1 over HTTPS
//! (tests/support/redfish.rs): the certificate checked against the site's CA or a
//! pinned fingerprint before anything is sent, the one system the configuration names,
//! ForceOff, and "Off" read back on consecutive reads while the emulator's fake driver
//! takes 1-11 s to apply it; the emulator's state drives a real process, which must be
//! gone when hamn says fenced.

mod support;

use std::time::Instant;

use support::redfish::{Options, PASSWORD, Sushy, UUID_1, UUID_2, available};

fn output(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_admin_fences_a_running_node_through_redfish_and_its_server_is_off() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options::default());
    let out = mn1
        .hamn(&["power", "status", "mn1"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", output(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("on"),
        "{}",
        output(&out)
    );

    let started = Instant::now();
    let out = mn1
        .hamn(&["--json", "fence", "mn1"])
        .output()
        .expect("runs");
    println!(
        "fence through Redfish: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(out.status.success(), "{}", output(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["fenced"], true, "{v}");
    assert_eq!(v["profile"], "sushy-emulator");
    assert!(v["cipher_suite"].is_null(), "{v}");
    // The emulator refuses to set PowerRestorePolicy: the warning says how, in Redfish.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"{"PowerRestorePolicy": "AlwaysOff"}"#) && !stderr.contains("ipmitool"),
        "{}",
        output(&out)
    );
    assert!(
        !mn1.server_alive("mn1"),
        "hamn said fenced while the server still runs:\n{}",
        mn1.log()
    );
    // Off already: confirmed, not asked again.
    let out = mn1.hamn(&["fence", "mn1"]).output().expect("runs");
    assert!(out.status.success(), "{}", output(&out));
    let resets = mn1.log().matches("ComputerSystem.Reset").count();
    assert_eq!(resets, 1, "one reset in all:\n{}", mn1.log());
}

#[test]
fn a_pinned_certificate_fingerprint_is_accepted_and_a_wrong_one_refused() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options::default());
    mn1.write_config(&format!("fingerprint = \"{}\"", mn1.fingerprint));
    let out = mn1
        .hamn(&["power", "status", "mn1"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", output(&out));

    let wrong = mn1
        .fingerprint
        .replace(|c: char| c.is_ascii_hexdigit(), "0");
    mn1.write_config(&format!("fingerprint = \"{wrong}\""));
    let out = mn1
        .hamn(&["fence", "mn1", "--timeout", "5"])
        .output()
        .expect("runs");
    assert!(!out.status.success(), "{}", output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("certificate"), "{}", output(&out));
    assert!(mn1.server_alive("mn1"));
}

#[test]
fn a_certificate_from_another_ca_is_refused_before_any_request() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options::default());
    mn1.write_config(&format!("ca_file = \"{}\"", mn1.other_ca.display()));
    let out = mn1
        .hamn(&["fence", "mn1", "--timeout", "5"])
        .output()
        .expect("runs");
    assert!(!out.status.success(), "{}", output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("certificate") && stderr.contains("nothing was sent"),
        "{}",
        output(&out)
    );
    assert!(
        !mn1.log().contains("GET /redfish"),
        "a request reached the emulator:\n{}",
        mn1.log()
    );
    assert!(mn1.server_alive("mn1"), "nothing was fenced");
}

#[test]
fn a_wrong_password_is_refused_and_nothing_is_fenced() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options::default());
    mn1.write_password("not-the-password");
    let out = mn1
        .hamn(&["fence", "mn1", "--timeout", "5"])
        .output()
        .expect("runs");
    assert!(!out.status.success(), "{}", output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("password was refused") && stderr.contains("node 'mn1'"),
        "{}",
        output(&out)
    );
    assert!(!stderr.contains(PASSWORD) && !stderr.contains("not-the-password"));
    assert!(mn1.server_alive("mn1"));
}

#[test]
fn several_systems_and_none_named_is_a_refusal_that_lists_them() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options {
        systems: vec![
            ("mn1", UUID_1, "SN-MN1", true),
            ("other", UUID_2, "SN-OTHER", true),
        ],
    });
    let out = mn1
        .hamn(&["fence", "mn1", "--timeout", "5"])
        .output()
        .expect("runs");
    assert!(!out.status.success(), "{}", output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("2 systems") && stderr.contains(UUID_1) && stderr.contains(UUID_2),
        "{}",
        output(&out)
    );
    assert!(mn1.server_alive("mn1") && mn1.server_alive("other"));

    // Named by UUID: that one, and only that one, is powered off.
    mn1.write_config(&format!(
        "ca_file = \"{}\"\nsystem = \"{UUID_1}\"",
        mn1.ca.display()
    ));
    let out = mn1.hamn(&["fence", "mn1"]).output().expect("runs");
    assert!(out.status.success(), "{}", output(&out));
    assert!(!mn1.server_alive("mn1"), "{}", mn1.log());
    assert!(
        mn1.server_alive("other"),
        "the other machine was powered off"
    );
}

#[test]
fn a_redfish_bmc_without_a_way_to_verify_its_certificate_is_a_configuration_error() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options::default());
    mn1.write_config("");
    let out = mn1
        .hamn(&["power", "status", "mn1"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3), "{}", output(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ca_file"),
        "{}",
        output(&out)
    );
    // insecure = true is allowed, and said.
    mn1.write_config("insecure = true");
    let out = mn1
        .hamn(&["power", "status", "mn1"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", output(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NOT verified"),
        "{}",
        output(&out)
    );
}

#[test]
fn a_service_with_sessions_gets_one_and_it_is_deleted_afterwards_even_when_refused() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options::default());
    let proxy = mn1.proxy("sessions");
    let out = mn1.hamn(&["fence", "mn1"]).output().expect("runs");
    assert!(out.status.success(), "{}", output(&out));
    assert!(!mn1.server_alive("mn1"));
    let st = proxy.state();
    assert_eq!(st["created"], 1, "{st}");
    assert_eq!(st["deleted"], 1, "the session was deleted: {st}");
    assert_eq!(st["active"], 0, "{st}");

    // A wrong password creates no session; nothing is left behind either.
    mn1.write_password("not-the-password");
    let out = mn1
        .hamn(&["fence", "mn1", "--timeout", "5"])
        .output()
        .expect("runs");
    assert!(!out.status.success(), "{}", output(&out));
    assert_eq!(proxy.state()["active"], 0);
}

#[test]
fn a_service_that_accepts_force_off_while_the_node_runs_on_is_not_fenced() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options::default());
    let proxy = mn1.proxy("noop-forceoff");
    let started = Instant::now();
    let out = mn1
        .hamn(&["fence", "mn1", "--timeout", "4"])
        .output()
        .expect("runs");
    let took = started.elapsed().as_secs_f64();
    assert!(!out.status.success(), "{}", output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NOT fenced"), "{}", output(&out));
    assert!(mn1.server_alive("mn1"), "the node still runs");
    assert!(
        took < 8.0,
        "refused after the deadline, not long after: {took:.1} s"
    );
    let st = proxy.state();
    assert_eq!(st["resets"], 1, "{st}");
    assert_eq!(
        st["active"], 0,
        "the session was deleted on the refusal too: {st}"
    );
}

#[test]
fn a_conflict_for_a_node_that_was_already_off_is_success_after_reading_off() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options {
        systems: vec![("mn1", UUID_1, "SN-MN1", false)],
    });
    let proxy = mn1.proxy("stale-on-409");
    let out = mn1.hamn(&["fence", "mn1"]).output().expect("runs");
    assert!(out.status.success(), "{}", output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("409"),
        "the conflict is reported: {}",
        output(&out)
    );
    let st = proxy.state();
    assert_eq!(st["resets"], 1, "{st}");
}

#[test]
fn a_frozen_service_is_not_fenced_and_one_that_resumes_within_the_deadline_is() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options::default());
    mn1.freeze(true);
    let started = Instant::now();
    let out = mn1
        .hamn(&["fence", "mn1", "--timeout", "4"])
        .output()
        .expect("runs");
    let took = started.elapsed().as_secs_f64();
    mn1.freeze(false);
    assert!(!out.status.success(), "{}", output(&out));
    assert!(took < 8.0, "gave up at the deadline: {took:.1} s");
    assert!(mn1.server_alive("mn1"));

    // Frozen for 3 s while the fence runs, then resumed: fenced within the deadline.
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("hamn"))
        .arg("--config")
        .arg(&mn1.config)
        .args(["fence", "mn1", "--timeout", "20"])
        .env_remove("HAMN_CONFIG")
        .env_remove("HAMN_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("hamn");
    std::thread::sleep(std::time::Duration::from_millis(300));
    mn1.freeze(true);
    std::thread::sleep(std::time::Duration::from_secs(3));
    mn1.freeze(false);
    let out = child.wait_with_output().expect("hamn");
    assert!(out.status.success(), "{}", output(&out));
    assert!(!mn1.server_alive("mn1"));
}

/// fencing/fence_hamn as the cluster runs it, the hamn under test first on PATH.
fn fence_hamn(stdin: &str) -> std::process::Output {
    let bin = assert_cmd::cargo::cargo_bin("hamn");
    let dir = bin.parent().expect("bin dir").to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![dir];
    paths.extend(std::env::split_paths(&path));
    let mut c = std::process::Command::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fencing/fence_hamn"),
    );
    c.env("PATH", std::env::join_paths(paths).expect("PATH"))
        .env_remove("HAMN_CONFIG");
    assert_cmd::Command::from_std(c)
        .write_stdin(stdin.to_string())
        .output()
        .expect("fence_hamn runs")
}

/// fence_redfish's parameters on standard input, no hamn.toml: what an admin moving from
/// fence_redfish writes into the CIB (with the certificate's CA instead of
/// ssl_insecure).
#[test]
fn fence_hamn_takes_fence_redfish_parameters_on_standard_input() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options {
        systems: vec![
            ("mn1", UUID_1, "SN-MN1", true),
            ("other", UUID_2, "SN-OTHER", true),
        ],
    });
    let base = |extra: &str| {
        format!(
            "action=off\nprotocol=redfish\nip=127.0.0.1\nipport={}\nusername=admin\n\
             password={PASSWORD}\nconfig=/nonexistent/hamn.toml\n{extra}",
            mn1.port
        )
    };
    // No way to trust the certificate: refused before anything is sent.
    let out = fence_hamn(&base(""));
    assert_eq!(out.status.code(), Some(1), "{}", output(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ssl_insecure"),
        "{}",
        output(&out)
    );
    // Several systems, none named: refused, both listed, both still running.
    let out = fence_hamn(&base(&format!("ca_file={}\n", mn1.ca.display())));
    assert_eq!(out.status.code(), Some(1), "{}", output(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(UUID_2),
        "{}",
        output(&out)
    );
    assert!(mn1.server_alive("mn1") && mn1.server_alive("other"));
    // A wrong password: refused.
    let wrong = base(&format!(
        "ca_file={}\nsystems_uri=/redfish/v1/Systems/{UUID_1}\n",
        mn1.ca.display()
    ))
    .replace(PASSWORD, "not-the-password");
    let out = fence_hamn(&wrong);
    assert_eq!(out.status.code(), Some(1), "{}", output(&out));
    assert!(mn1.server_alive("mn1"));
    // systems_uri as fence_redfish takes it, the service root named: mn1, only mn1, off.
    let out = fence_hamn(&base(&format!(
        "ca_file={}\nsystems_uri=/redfish/v1/Systems/{UUID_1}\nredfish_uri=/redfish/v1\n",
        mn1.ca.display()
    )));
    assert_eq!(out.status.code(), Some(0), "{}", output(&out));
    assert!(!mn1.server_alive("mn1"), "{}", mn1.log());
    assert!(
        mn1.server_alive("other"),
        "the other machine was powered off"
    );
    // status through ssl_insecure: off (2), and the warning says it was not verified.
    let out = fence_hamn(
        &base(&format!("ssl_insecure=1\nsystems_uri={UUID_1}\n"))
            .replace("action=off", "action=status"),
    );
    assert_eq!(out.status.code(), Some(2), "{}", output(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NOT verified"),
        "{}",
        output(&out)
    );
    // Another service root: refused.
    let out = fence_hamn(&base("ssl_insecure=1\nredfish_uri=/redfish/v2\n"));
    assert_eq!(out.status.code(), Some(1), "{}", output(&out));
}

/// A peer of hamn.toml with a Redfish BMC, as Pacemaker calls the agent: monitor without
/// a target checks the BMC, then off.
#[test]
fn fence_hamn_fences_a_redfish_peer_of_hamn_toml_as_pacemaker_calls_it() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options::default());
    let cfg = mn1.config.display().to_string();
    let out = fence_hamn(&format!("action=monitor\nconfig={cfg}\n"));
    assert_eq!(out.status.code(), Some(0), "{}", output(&out));
    let out = fence_hamn(&format!(
        "action=off\nport=mn1\nnodename=mn1\nconfig={cfg}\n"
    ));
    assert!(out.status.success(), "{}", output(&out));
    assert!(!mn1.server_alive("mn1"));
}

/// `hamn status` on the standby shows the Redfish peer's power, as for IPMI.
#[test]
fn hamn_status_reads_the_power_of_a_redfish_peer() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options::default());
    let out = mn1.hamn(&["status"]).output().expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("peer mn1") && stdout.contains("power on"),
        "{}",
        output(&out)
    );
    let out = mn1.hamn(&["fence", "mn1"]).output().expect("runs");
    assert!(out.status.success(), "{}", output(&out));
    let out = mn1.hamn(&["status"]).output().expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("power off"), "{}", output(&out));
}

#[test]
fn a_reset_answered_with_a_task_is_followed_until_it_completes_then_off_is_read_back() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options::default());
    let proxy = mn1.proxy("task");
    let out = mn1.hamn(&["-v", "fence", "mn1"]).output().expect("runs");
    assert!(out.status.success(), "{}", output(&out));
    let st = proxy.state();
    assert_eq!(st["resets"], 1, "{st}");
    assert!(
        st["task_polls"].as_u64().unwrap_or(0) >= 3,
        "the monitor was followed past its two 202 answers: {st}"
    );
    assert!(
        !mn1.server_alive("mn1"),
        "fenced while the server still runs:\n{}",
        mn1.log()
    );
    assert_eq!(st["active"], 0, "{st}");
}

#[test]
fn a_reset_task_that_fails_is_reported_and_a_running_node_is_not_fenced() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options::default());
    let proxy = mn1.proxy("task-exception");
    let out = mn1
        .hamn(&["fence", "mn1", "--timeout", "4"])
        .output()
        .expect("runs");
    assert!(!out.status.success(), "{}", output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NOT fenced"), "{}", output(&out));
    assert!(
        stderr.contains("the reset task failed")
            && stderr.contains("Unable to perform the power operation"),
        "the task's own words are shown: {}",
        output(&out)
    );
    assert!(mn1.server_alive("mn1"), "the node still runs");
    let st = proxy.state();
    assert!(st["task_polls"].as_u64().unwrap_or(0) >= 1, "{st}");
    assert_eq!(st["active"], 0, "{st}");
}

/// The bmc description of `hamn --json power status mn1`, which names the profile.
fn bmc_seen(mn1: &Sushy) -> String {
    let out = mn1
        .hamn(&["--json", "power", "status", "mn1"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", output(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["bmc"].as_str().unwrap_or_default().to_string()
}

#[test]
fn the_hardware_profile_is_chosen_from_what_the_service_root_says_of_its_maker() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options::default());
    {
        let _proxy = mn1.proxy_unpinned("vendor-dell");
        let bmc = bmc_seen(&mn1);
        assert!(bmc.contains("dell-idrac profile"), "{bmc}");
        assert!(
            bmc.contains("Integrated Dell Remote Access Controller"),
            "{bmc}"
        );
    }
    {
        // Firmware older than ServiceRoot.Vendor names itself only by its Oem key.
        let _proxy = mn1.proxy_unpinned("oem-hpe");
        let bmc = bmc_seen(&mn1);
        assert!(bmc.contains("hpe-ilo profile"), "{bmc}");
    }
    {
        // bmcweb names no maker in its root; its manager's Model says OpenBmc.
        let _proxy = mn1.proxy_unpinned("model-openbmc");
        let bmc = bmc_seen(&mn1);
        assert!(bmc.contains("openbmc profile"), "{bmc}");
    }
    {
        // The emulator names no maker: the generic profile, unless one is pinned.
        let _proxy = mn1.proxy_unpinned("sessions");
        let bmc = bmc_seen(&mn1);
        assert!(bmc.contains("generic profile"), "{bmc}");
    }
}

#[test]
fn a_bmc_without_a_free_session_is_named_with_its_limit_and_nothing_is_powered() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options::default());
    let proxy = mn1.proxy_unpinned("vendor-dell,no-free-session");
    let out = mn1.hamn(&["fence", "mn1"]).output().expect("runs");
    assert!(!out.status.success(), "{}", output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("a new session was refused (HTTP 503")
            && stderr.contains("maximum number of user sessions")
            && stderr.contains("dell-idrac allows"),
        "{}",
        output(&out)
    );
    assert!(mn1.server_alive("mn1"));
    assert_eq!(proxy.state()["resets"], 0);
}

#[test]
fn reset_types_listed_only_in_an_action_info_are_read_there_and_force_off_must_be_among_them() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options::default());
    {
        // Supermicro and OpenBMC list the reset types only behind @Redfish.ActionInfo.
        let proxy = mn1.proxy("actioninfo-no-forceoff");
        let out = mn1.hamn(&["fence", "mn1"]).output().expect("runs");
        assert!(!out.status.success(), "{}", output(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("offers no ForceOff") && stderr.contains("GracefulShutdown"),
            "{}",
            output(&out)
        );
        let st = proxy.state();
        assert_eq!(st["resets"], 0, "nothing was asked of the system: {st}");
        assert!(st["action_info_reads"].as_u64().unwrap_or(0) >= 1, "{st}");
        assert!(mn1.server_alive("mn1"));
    }
    let proxy = mn1.proxy("actioninfo");
    let out = mn1.hamn(&["fence", "mn1"]).output().expect("runs");
    assert!(out.status.success(), "{}", output(&out));
    assert!(proxy.state()["action_info_reads"].as_u64().unwrap_or(0) >= 1);
    assert!(!mn1.server_alive("mn1"));
}

/// The faults of the hamn tests above, as Pacemaker would meet them through fence_hamn's
/// standard input (fence_redfish's parameters): a wrong certificate, a ForceOff that
/// does nothing, a task that fails, and a 409 for a node already off.
#[test]
fn fence_hamn_meets_the_same_faults_through_standard_input() {
    if !available() {
        return;
    }
    let mn1 = Sushy::start(Options::default());
    let stdin = |port: u16, extra: &str| {
        format!(
            "action=off\nprotocol=redfish\nip=127.0.0.1\nipport={port}\nusername=admin\n\
             password={PASSWORD}\nconfig=/nonexistent/hamn.toml\npower_timeout=4\n{extra}"
        )
    };
    // Another certificate than the pinned one: refused, the emulator saw no request.
    let requests = mn1.log().lines().count();
    let wrong = "AA:".repeat(31) + "AA";
    let out = fence_hamn(&stdin(mn1.port, &format!("fingerprint={wrong}\n")));
    assert_eq!(out.status.code(), Some(1), "{}", output(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("certificate was refused"),
        "{}",
        output(&out)
    );
    assert_eq!(mn1.log().lines().count(), requests, "{}", mn1.log());
    let ca = format!("ca_file={}\n", mn1.ca.display());
    // A ForceOff accepted while the node runs on: failed at the deadline.
    {
        let proxy = mn1.proxy("noop-forceoff");
        let out = fence_hamn(&stdin(proxy.port, &ca));
        assert_eq!(out.status.code(), Some(1), "{}", output(&out));
        assert!(mn1.server_alive("mn1"));
        assert_eq!(proxy.state()["active"], 0);
    }
    // A reset task that ends in an Exception: failed, its message shown.
    {
        let proxy = mn1.proxy("task-exception");
        let out = fence_hamn(&stdin(proxy.port, &ca));
        assert_eq!(out.status.code(), Some(1), "{}", output(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Unable to perform the power operation"),
            "{}",
            output(&out)
        );
        assert!(mn1.server_alive("mn1"));
    }
    // Powered off (through the task), then asked again: the stale "On" and the 409 of
    // a node already off end in success after reading off.
    {
        let proxy = mn1.proxy("task");
        let out =
            fence_hamn(&stdin(proxy.port, &ca).replace("power_timeout=4", "power_timeout=20"));
        assert_eq!(out.status.code(), Some(0), "{}", output(&out));
        assert!(!mn1.server_alive("mn1"));
    }
    let proxy = mn1.proxy("stale-on-409");
    let out = fence_hamn(&stdin(proxy.port, &ca));
    assert_eq!(out.status.code(), Some(0), "{}", output(&out));
    assert_eq!(proxy.state()["resets"], 1);
}
