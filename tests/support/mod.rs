//! Shared support for integration tests: a real OpenIPMI BMC on loopback
//! (`sim`) and a lossy UDP relay to put in front of it (`relay`).
//!
//! Each integration test file that uses this declares `mod support;`; not every
//! file uses every helper, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod cable;
pub mod cluster;
pub mod drbd;
pub mod lab;
pub mod layout;
pub mod peer;
pub mod redfish;
pub mod relay;
pub mod sim;

use std::path::PathBuf;
use std::process::{Command, Output};

/// True if `name` is an executable on PATH.  Otherwise prints
/// "SKIP: <name> not installed" and returns false, so the caller can return
/// early.  With env `CI` set a missing tool is a failure, not a skip: a CI
/// image that silently lacks the tool would otherwise "pass" untested.
pub fn require_tool(name: &str) -> bool {
    if find_on_path(name).is_some() {
        return true;
    }
    skip_or_panic(&format!("{name} not installed"));
    false
}

/// Full path of executable `name` on PATH, if any.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Prints "SKIP: <reason>" to stderr, or panics when env `CI` is set.
pub fn skip_or_panic(reason: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{reason}; env CI is set, so this is a failure rather than a skip");
    }
    eprintln!("SKIP: {reason}");
}

/// Runs `program args` with LC_ALL=C and returns what it did; panics only if it cannot
/// be started.
pub fn sh(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// `sh`, which must succeed; its standard output.
pub fn sh_ok(program: &str, args: &[&str]) -> String {
    let out = sh(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
