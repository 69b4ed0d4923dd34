//! fence_hamn as Pacemaker runs it: name=value lines on standard input, FenceAgentAPI
//! exit codes, against ipmi_sim; and its metadata against the schema fence-agents ships.

mod support;

use std::path::Path;

use support::peer::{self, PASSWORD};
use support::sim::{ServerBehaviour, SimOptions};

const SCHEMA: &str = "/usr/share/cluster/relaxng/metadata.rng";

/// fencing/fence_hamn as the cluster runs it, finding the hamn under test first on PATH.
fn agent_process() -> std::process::Command {
    let mut c = std::process::Command::new(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fencing/fence_hamn"),
    );
    let bin = assert_cmd::cargo::cargo_bin("hamn");
    let dir = bin.parent().expect("bin dir").to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![dir];
    paths.extend(std::env::split_paths(&path));
    c.env("PATH", std::env::join_paths(paths).expect("PATH"));
    c.env_remove("HAMN_CONFIG");
    c
}

fn agent() -> assert_cmd::Command {
    assert_cmd::Command::from_std(agent_process())
}

fn run(stdin: &str) -> std::process::Output {
    agent()
        .write_stdin(stdin.to_string())
        .output()
        .expect("agent runs")
}

fn show(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdin_for(mn1: &peer::Peer, action: &str) -> String {
    format!(
        "# as pacemaker-fenced writes it\naction={action}\nport=mn1\nnodename=mn1\nconfig={}\n",
        mn1.config_path().display()
    )
}

#[test]
fn metadata_validates_against_the_fence_agents_schema() {
    let out = agent().args(["-o", "metadata"]).output().expect("runs");
    assert!(out.status.success(), "{}", show(&out));
    let xml = String::from_utf8_lossy(&out.stdout);
    for p in [
        "action",
        "plug",
        "port",
        "ip",
        "ipport",
        "username",
        "password_script",
        "cipher",
        "delay",
        "power_timeout",
    ] {
        assert!(xml.contains(&format!("name=\"{p}\"")), "metadata lacks {p}");
    }
    if !support::require_tool("xmllint") {
        return;
    }
    if !Path::new(SCHEMA).exists() {
        support::skip_or_panic(&format!(
            "{SCHEMA} not installed (Debian package fence-agents)"
        ));
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("meta.xml");
    std::fs::write(&f, xml.as_bytes()).expect("write");
    let v = std::process::Command::new("xmllint")
        .args(["--noout", "--relaxng", SCHEMA])
        .arg(&f)
        .output()
        .expect("xmllint runs");
    assert!(
        v.status.success(),
        "metadata does not validate: {}",
        show(&v)
    );
}

#[test]
fn off_from_standard_input_fences_and_status_then_exits_2() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    let out = run(&stdin_for(&mn1, "status"));
    assert_eq!(out.status.code(), Some(0), "status on is 0: {}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Status: ON"));
    let out = run(&stdin_for(&mn1, "off"));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Success: Powered OFF"),
        "{}",
        show(&out)
    );
    assert!(!mn1.bmc.server_alive());
    assert_eq!(mn1.bmc.ipmitool_power_is_on(), Some(false));
    let out = run(&stdin_for(&mn1, "status"));
    assert_eq!(
        out.status.code(),
        Some(2),
        "status off is 2: {}",
        show(&out)
    );
    let out = run(&stdin_for(&mn1, "off"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Success: Already OFF"),
        "{}",
        show(&out)
    );
    let out = run(&stdin_for(&mn1, "monitor"));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

#[test]
fn reboot_confirms_off_and_powers_on_again() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    let before = mn1.bmc.server_pid();
    let out = run(&stdin_for(&mn1, "reboot"));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(mn1.bmc.server_alive(), "powered on again");
    assert_ne!(
        mn1.bmc.server_pid(),
        before,
        "a new server process: it really went off"
    );
}

#[test]
fn a_bmc_given_entirely_on_standard_input_with_its_password_works_without_hamn_toml() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    let a = mn1.bmc.addr();
    let stdin = format!(
        "action=status\nip={}\nipport={}\nusername=admin\npassword={PASSWORD}\ncipher=3\nconfig=/nonexistent/hamn.toml\n",
        a.ip(),
        a.port()
    );
    let out = run(&stdin);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

#[test]
fn faults_through_standard_input_exit_1_and_fence_nothing() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    let a = mn1.bmc.addr();
    let wrong = format!(
        "action=off\nip={}\nipport={}\nusername=admin\npassword=wrong\ncipher=3\npower_timeout=3\nconfig=/nonexistent\n",
        a.ip(),
        a.port()
    );
    let out = run(&wrong);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong password"),
        "{}",
        show(&out)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Success"));

    mn1.bmc.freeze();
    let out = run(&format!("{}power_timeout=2\n", stdin_for(&mn1, "off")));
    mn1.bmc.resume();
    assert_eq!(out.status.code(), Some(1), "frozen BMC: {}", show(&out));

    mn1.bmc.set_behaviour(ServerBehaviour::IgnoresPowerOff);
    let out = run(&format!("{}power_timeout=2\n", stdin_for(&mn1, "off")));
    assert_eq!(
        out.status.code(),
        Some(1),
        "ignored power off: {}",
        show(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NOT fenced"),
        "{}",
        show(&out)
    );
    assert!(mn1.bmc.server_alive());
}

#[test]
fn a_bmc_that_is_not_running_makes_status_exit_1() {
    let Some(mut mn1) = peer::failed_primary(SimOptions::default()) else {
        return;
    };
    mn1.bmc.kill_bmc();
    let out = run(&format!("{}power_timeout=2\n", stdin_for(&mn1, "status")));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
}

/// As pacemaker-fenced starts and monitors a fence device: no port, no nodename.
fn device_monitor(mn1: &peer::Peer) -> std::process::Output {
    run(&format!(
        "action=monitor\npower_timeout=2\nconfig={}\n",
        mn1.config_path().display()
    ))
}

#[test]
fn the_device_starts_and_is_monitored_without_a_node_and_fails_when_its_bmc_is_gone() {
    let Some(mut mn1) = peer::failed_primary(SimOptions::default()) else {
        return;
    };
    let out = device_monitor(&mn1);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(mn1.bmc.server_alive(), "a monitor powers nothing off");
    // The BMC is gone (unplugged, crashed): the device is not ready, and says whose.
    mn1.bmc.kill_bmc();
    let out = device_monitor(&mn1);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mn1") && err.contains("127.0.0.1"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_password_in_argv_is_refused_with_the_reason() {
    let out = agent()
        .args(["-o", "status", "-n", "mn1", "-p", "secret"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("visible to every user in ps"));
}

#[test]
fn list_names_the_peers_and_validate_all_checks_the_password_file() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    let out = run(&stdin_for(&mn1, "list"));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("mn1,127.0.0.1"));
    let out = run(&stdin_for(&mn1, "validate-all"));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    mn1.write_password(PASSWORD, 0o644);
    let out = run(&stdin_for(&mn1, "validate-all"));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("chmod 600"),
        "{}",
        show(&out)
    );
}

#[test]
fn the_stdin_password_appears_in_no_log_line() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    let a = mn1.bmc.addr();
    let stdin = format!(
        "action=off\nip={}\nipport={}\nusername=admin\npassword={PASSWORD}\ncipher=3\nconfig=/nonexistent\nbogus_password_line\n",
        a.ip(),
        a.port()
    );
    let out = agent()
        .args(["-vvv"])
        .write_stdin(stdin)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(PASSWORD));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(PASSWORD));
}

/// `standby_delay` decides by who holds the shared LUNs, which only hamn.toml names: a
/// BMC given on standard input alone is refused with the reason, and nothing is fenced.
#[test]
fn standby_delay_without_hamn_toml_is_refused_and_fences_nothing() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    let stdin = adhoc(
        mn1.bmc.addr(),
        "off",
        &format!("username=admin\npassword={PASSWORD}\ncipher=3\nstandby_delay=5"),
    );
    let out = run(&stdin);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("standby_delay needs hamn.toml"),
        "{}",
        show(&out)
    );
    assert!(mn1.bmc.server_alive(), "fenced although refused");
}

/// With the xCAT data on NFS or a DRBD mirror, a storage-level device cannot stand in
/// for the power: the node it "fenced" would go on writing to the share or its own copy.
/// Every action of such a device fails with the reason, `monitor` included, so
/// Pacemaker shows it failed from the start.
#[test]
fn the_storage_level_refuses_to_fence_a_node_whose_data_is_on_nfs_or_drbd() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, storage, named) in [
        (
            "nfs",
            "[[takeover.mount]]\ndevice = \"filer:/srv/xcat\"\nmountpoint = \"/install\"\ntype = \"nfs4\"\n",
            "/install on filer:/srv/xcat",
        ),
        (
            "drbd",
            "[[takeover.drbd]]\nresource = \"xcat\"\n",
            "DRBD resource xcat",
        ),
    ] {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "node = \"mn2\"\n\n{storage}\n[peers.mn1]\nfencing = [\"power\"]\n\n\
                 [peers.mn1.bmc]\naddress = \"127.0.0.1\"\nuser = \"admin\"\n\
                 password_env = \"HAMN_UNUSED\"\n"
            ),
        )
        .expect("write hamn.toml");
        for stdin in [
            format!(
                "action=off\nport=mn1\nfencing=storage\nconfig={}\n",
                config.display()
            ),
            format!(
                "action=monitor\nfencing=storage\nconfig={}\n",
                config.display()
            ),
        ] {
            let out = run(&stdin);
            assert_eq!(out.status.code(), Some(1), "{stdin}\n{}", show(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            for want in ["fencing=storage cannot fence", named, "fencing=power"] {
                assert!(err.contains(want), "{want:?} missing:\n{}", show(&out));
            }
        }
    }
}

/// The power level stays the fence where the data is on NFS: with `standby_delay`, a
/// node that holds no LUN is fenced after the delay, not refused as the storage level is.
#[test]
fn the_power_level_with_standby_delay_still_fences_where_the_data_is_on_nfs() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    mn1.write_config(
        mn1.bmc.addr(),
        "admin",
        "\n[[takeover.mount]]\ndevice = \"filer:/srv/xcat\"\nmountpoint = \"/install\"\n\
         type = \"nfs4\"",
    );
    let out = run(&format!("{}standby_delay=1\n", stdin_for(&mn1, "off")));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(!mn1.bmc.server_alive(), "mn1 was not powered off");
}

fn adhoc(addr: std::net::SocketAddr, action: &str, extra: &str) -> String {
    format!(
        "action={action}\nip={}\nipport={}\nconfig=/nonexistent\n{extra}\n",
        addr.ip(),
        addr.port()
    )
}

#[test]
fn more_faults_through_standard_input_unknown_user_suite_zero_and_frozen_then_resumed() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    let a = mn1.bmc.addr();
    let out = run(&adhoc(
        a,
        "off",
        &format!("username=nobody\npassword={PASSWORD}\npower_timeout=3"),
    ));
    assert_eq!(out.status.code(), Some(1), "unknown user: {}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nobody"),
        "{}",
        show(&out)
    );

    let out = run(&adhoc(
        a,
        "validate-all",
        &format!("username=admin\npassword={PASSWORD}\ncipher=0"),
    ));
    assert_eq!(out.status.code(), Some(1), "suite 0: {}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cipher suite 0"),
        "{}",
        show(&out)
    );
    assert!(mn1.bmc.server_alive());

    mn1.bmc.freeze();
    let mut child = agent_process();
    child
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut running = child.spawn().expect("spawn");
    {
        use std::io::Write;
        let mut stdin = running.stdin.take().expect("stdin");
        stdin
            .write_all(
                adhoc(
                    a,
                    "off",
                    &format!("username=admin\npassword={PASSWORD}\ncipher=3\npower_timeout=8"),
                )
                .as_bytes(),
            )
            .expect("write");
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    mn1.bmc.resume();
    let out = running.wait_with_output().expect("ends");
    assert_eq!(
        out.status.code(),
        Some(0),
        "frozen then resumed: {}",
        show(&out)
    );
    assert!(
        !mn1.bmc.server_alive(),
        "reported fenced, so the server is gone"
    );
}

#[test]
fn off_through_standard_input_survives_30_percent_packet_loss() {
    let Some(mn1) = peer::with_defaults() else {
        return;
    };
    let relay = support::relay::LossyRelay::start(
        mn1.bmc.addr(),
        0.3,
        std::time::Duration::from_millis(100),
        7,
    )
    .expect("relay");
    let out = run(&adhoc(
        relay.addr(),
        "off",
        &format!("username=admin\npassword={PASSWORD}\ncipher=3\npower_timeout=30"),
    ));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(!mn1.bmc.server_alive());
    let st = relay.stats();
    assert!(
        st.to_target_dropped + st.to_client_dropped > 0,
        "the relay really dropped datagrams"
    );
}

#[test]
fn a_rejected_command_line_exits_1_so_it_is_never_read_as_off() {
    let out = agent()
        .args(["-o", "status", "--bogus"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
}

/// password_script is the one program fence_hamn starts: it sees neither the variable that
/// hamn.toml names with `password_env` nor its value. No BMC is needed: the script runs
/// before the BMC is contacted (the status read then fails on a closed port).
#[test]
fn password_script_sees_no_password_variable() {
    const VAR: &str = "HAMN_AGENT_TEST_PW";
    const SECRET: &str = "pw-5d02b1-env-only";
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let config = d.join("hamn.toml");
    std::fs::write(
        &config,
        format!(
            "node = \"mn2\"\n\n[peers.mn1]\nfencing = [\"power\"]\n\n[peers.mn1.bmc]\n\
             address = \"127.0.0.1\"\nport = 9\nuser = \"admin\"\npassword_env = \"{VAR}\"\n"
        ),
    )
    .expect("write");
    let script = format!(
        "tr '\\0' '\\n' < /proc/$$/environ > {d}/script.environ; \
         tr '\\0' ' ' < /proc/$$/cmdline > {d}/script.cmdline; echo from-script",
        d = d.display()
    );
    let out = assert_cmd::Command::from_std(agent_process())
        .env(VAR, SECRET)
        .write_stdin(format!(
            "action=status\nplug=mn1\nconfig={}\npassword_script={script}\npower_timeout=2\n",
            config.display()
        ))
        .output()
        .expect("agent runs");
    let environ = std::fs::read_to_string(d.join("script.environ"))
        .unwrap_or_else(|e| panic!("password_script did not run ({e}): {}", show(&out)));
    let cmdline = std::fs::read_to_string(d.join("script.cmdline")).expect("cmdline");
    assert!(environ.lines().any(|l| l == "LC_ALL=C"), "{environ}");
    for (what, text) in [("environment", &environ), ("command line", &cmdline)] {
        assert!(
            !text.contains(SECRET),
            "its {what} holds the password:\n{text}"
        );
        assert!(!text.contains(VAR), "its {what} holds {VAR}:\n{text}");
    }
}
