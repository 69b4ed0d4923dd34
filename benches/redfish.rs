//! Benchmark (not a test): fencing through Redfish, `hamn` next to fence-agents'
//! `fence_redfish`, whole processes, against the same sushy-tools emulator on 127.0.0.1
//! over HTTPS (tests/support/redfish.rs), both verifying the emulator's certificate
//! against the test CA (hamn: ca_file; fence_redfish: --ssl-secure with
//! REQUESTS_CA_BUNDLE). Run with `cargo bench --bench redfish`.
//!
//! Three cases, each the median of HAMN_BENCH_ROUNDS rounds (default 7), the tools
//! alternating within a round:
//! - status: one power state read (`hamn power status`, `fence_redfish -o status`);
//! - off, already off: the node is off; each must find that out and confirm it;
//! - off: the node runs (powered on, untimed, before each run); the emulator's fake
//!   driver applies the power off 1-11 s (random) after it was asked for, so this case
//!   mostly measures how soon each tool notices: hamn reads every 500 ms and needs two
//!   "Off" reads in a row (its profile), fence_redfish reads once a second.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::redfish::{Options, PASSWORD, Sushy, UUID_1};

fn hamn(s: &Sushy, args: &[&str]) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("hamn"));
    c.arg("--config").arg(&s.config).args(args);
    c.env_remove("HAMN_CONFIG").env_remove("HAMN_LOG");
    c
}

fn fence_redfish(s: &Sushy, action: &str) -> Command {
    let mut c = Command::new("fence_redfish");
    c.args([
        "--ip",
        "127.0.0.1",
        "--ipport",
        &s.port.to_string(),
        "--username",
        "admin",
        "--password-script",
        &format!("echo {PASSWORD}"),
        "--ssl-secure",
        "--systems-uri",
        &format!("/redfish/v1/Systems/{UUID_1}"),
        "-o",
        action,
    ]);
    c.env("REQUESTS_CA_BUNDLE", &s.ca);
    c
}

/// Runs `cmd`, returns its wall time; panics (with its output) if it failed.
fn timed(mut cmd: Command, ok_codes: &[i32]) -> f64 {
    let t = Instant::now();
    let out = cmd.output().expect("runs");
    let took = t.elapsed().as_secs_f64();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        ok_codes.contains(&code),
        "{cmd:?} exited {code}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// Powered on again and seen on (untimed preparation).
fn power_on(s: &Sushy) {
    let out = fence_redfish(s, "on").output().expect("fence_redfish on");
    assert!(
        out.status.success(),
        "fence_redfish -o on: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if !support::redfish::available() || !support::require_tool("fence_redfish") {
        return;
    }
    let rounds: usize = std::env::var("HAMN_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let s = Sushy::start(Options::default());
    // Session-less Basic on both sides: the emulator has no SessionService.
    let mut rows: Vec<(&str, Vec<f64>, Vec<f64>)> = vec![
        ("status", Vec::new(), Vec::new()),
        ("off, already off", Vec::new(), Vec::new()),
        ("off", Vec::new(), Vec::new()),
    ];
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        rows[0]
            .1
            .push(timed(hamn(&s, &["power", "status", "mn1"]), &[0]));
        // fence_redfish: 0 on, 2 off.
        rows[0].2.push(timed(fence_redfish(&s, "status"), &[0, 2]));

        power_on(&s);
        rows[2].1.push(timed(hamn(&s, &["fence", "mn1"]), &[0]));
        rows[1].1.push(timed(hamn(&s, &["fence", "mn1"]), &[0]));
        power_on(&s);
        rows[2].2.push(timed(fence_redfish(&s, "off"), &[0]));
        rows[1].2.push(timed(fence_redfish(&s, "off"), &[0]));
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "\nRedfish fencing against sushy-emulator, medians of {rounds} rounds, whole process:"
    );
    println!("{:<18} {:>10} {:>15}", "case", "hamn", "fence_redfish");
    for (name, h, f) in rows {
        println!("{name:<18} {:>9.2}s {:>14.2}s", median(h), median(f));
    }
}
