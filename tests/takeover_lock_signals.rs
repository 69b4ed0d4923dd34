//! One takeover at a time, and SIGTERM during a step, on the host: no QEMU, no BMC. The
//! peer has no fencing (`fencing = []`) and the admin's override stands for it; the only
//! work is a service whose start command keeps the run busy. The journal and its lock
//! live in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn hamn() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("hamn"));
    c.env_remove("HAMN_CONFIG").env("LC_ALL", "C");
    c
}

/// hamn.toml for this node (mn2), taking over from mn1, with one service.
fn write_config(dir: &Path, start: &[&str]) -> PathBuf {
    let start = start
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        r#"node = "mn2"

[takeover]
peer = "mn1"
journal = "{journal}"

[[takeover.service]]
name = "busy"
start = [{start}]
timeout = 120

[peers.mn1]
fencing = []

[peers.mn1.bmc]
address = "192.0.2.1"
user = "admin"
password_env = "HAMN_TEST_UNUSED"
"#,
        journal = dir.join("lib/takeover.json").display()
    );
    let path = dir.join("hamn.toml");
    std::fs::write(&path, text).expect("write hamn.toml");
    path
}

fn takeover(config: &Path) -> Command {
    let mut c = hamn();
    c.arg("--config")
        .arg(config)
        .args(["takeover", "--i-know-the-peer-is-off"]);
    c
}

fn spawn(mut c: Command) -> Child {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hamn starts")
}

fn show(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Poll until `f` gives a value or 30 s pass (the machine may be busy).
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn journal(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("lib/takeover.json")).expect("journal");
    serde_json::from_str(&text).expect("journal is JSON")
}

/// The last state the journal records for `step`.
fn last_state(j: &serde_json::Value, step: &str) -> Option<String> {
    j["entries"]
        .as_array()?
        .iter()
        .rev()
        .find(|e| e["step"] == step)
        .and_then(|e| e["state"].as_str().map(str::to_string))
}

#[test]
fn a_second_takeover_or_giveback_refuses_naming_the_running_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = write_config(dir.path(), &["sleep", "5"]);
    let first = spawn(takeover(&config));
    let pid = first.id();
    let lock = dir.path().join("lib/takeover.json.lock");
    // The first run is on the service step once its lock file says so.
    wait_for("the first run to reach the service step", || {
        std::fs::read_to_string(&lock)
            .ok()
            .filter(|t| t.contains("service busy"))
    });

    let second = takeover(&config).output().expect("runs");
    let msg = String::from_utf8_lossy(&second.stderr).into_owned();
    assert_eq!(second.status.code(), Some(1), "{}", show(&second));
    assert!(msg.contains(&format!("PID {pid}")), "names the PID: {msg}");
    assert!(
        msg.contains("at step 'service busy'"),
        "names the step: {msg}"
    );
    assert!(msg.contains("nothing was done"), "{msg}");

    let giveback = hamn()
        .arg("--config")
        .arg(&config)
        .arg("giveback")
        .output()
        .expect("runs");
    assert_eq!(giveback.status.code(), Some(1), "{}", show(&giveback));
    assert!(
        String::from_utf8_lossy(&giveback.stderr).contains(&format!("PID {pid}")),
        "{}",
        show(&giveback)
    );

    // --dry-run changes nothing and takes no lock.
    let dry = takeover(&config).arg("--dry-run").output().expect("runs");
    assert!(dry.status.success(), "{}", show(&dry));

    let first = first.wait_with_output().expect("first ends");
    assert!(first.status.success(), "{}", show(&first));
    assert_eq!(journal(dir.path())["complete"], true);
}

fn group_alive(pgid: i32) -> bool {
    // Signal 0 to the group: ESRCH once no process of it is left.
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok()
}

#[test]
fn sigterm_stops_the_step_s_process_group_journals_it_and_a_rerun_continues() {
    let dir = tempfile::tempdir().expect("tmp");
    let pidfile = dir.path().join("start.pid");
    // The start command is a shell that leaves `sleep 30` running in its process group
    // (as a start script's daemon would) and waits for it.
    let script = format!("echo $$ > {}; sleep 30 & wait", pidfile.display());
    let config = write_config(dir.path(), &["sh", "-c", &script]);
    let run = spawn(takeover(&config));
    let pgid: i32 = wait_for("the start command's pid", || {
        std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    });
    // The sleep is running in that group.
    wait_for("sleep 30 to run", || {
        let out = Command::new("pgrep")
            .args(["-g", &pgid.to_string(), "-x", "sleep"])
            .output()
            .ok()?;
        out.status.success().then_some(())
    });

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(run.id()).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let t0 = Instant::now();
    let out = run.wait_with_output().expect("hamn ends");
    let msg = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "stopped promptly, not after the sleep"
    );
    assert!(
        msg.contains("interrupted by SIGTERM during step 'service busy'"),
        "{msg}"
    );
    // hamn waited for the whole group before it exited.
    assert!(
        !group_alive(pgid),
        "the start command's process group {pgid} outlived hamn"
    );
    let j = journal(dir.path());
    assert_eq!(
        last_state(&j, "service busy").as_deref(),
        Some("interrupted"),
        "{j:#}"
    );
    assert_eq!(j["complete"], false);

    // The rerun continues that journal (the service now starts at once).
    let config = write_config(dir.path(), &["true"]);
    let rerun = takeover(&config).output().expect("runs");
    assert!(rerun.status.success(), "{}", show(&rerun));
    assert!(
        String::from_utf8_lossy(&rerun.stdout).contains("continuing an earlier run"),
        "{}",
        show(&rerun)
    );
    let j = journal(dir.path());
    assert_eq!(last_state(&j, "service busy").as_deref(), Some("done"));
    assert_eq!(j["complete"], true);
}

fn alive(pid: i32) -> bool {
    // A zombie waiting for its reaper counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        !st.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    })
}

#[test]
fn kill_9_of_hamn_takes_the_running_command_with_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let pidfile = dir.path().join("start.pid");
    // `exec`: the sleep is hamn's own child, the one PR_SET_PDEATHSIG covers.
    let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let config = write_config(dir.path(), &["sh", "-c", &script]);
    let mut run = spawn(takeover(&config));
    let child: i32 = wait_for("the start command's pid", || {
        std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    });
    run.kill().expect("SIGKILL");
    let _ = run.wait();
    wait_for("the start command to die with hamn", || {
        (!alive(child)).then_some(())
    });
    // The lock went with hamn: a rerun is not refused, and continues.
    let config = write_config(dir.path(), &["true"]);
    let rerun = takeover(&config).output().expect("runs");
    assert!(rerun.status.success(), "{}", show(&rerun));
}
