//! Loading the kernels' filesystem modules ahead of the mounts. mount(2) loads a missing
//! module itself (the kernel runs `modprobe fs-TYPE`), but only once every check is done,
//! on the critical path: ext4's module took 0.4 s to load in the lab's TCG guests, as long
//! as the mount. Started once the peer is fenced, the load runs while the checks wait for
//! the disks. Where the type is registered already (/proc/filesystems lists it: built in,
//! or the root filesystem has the same type) nothing is started. Loading a module writes
//! to no disk; it is what the mount would do a moment later, and if it fails the mount
//! still tries and reports.

use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{debug, info, warn};

use crate::exec;

/// Loading a module takes well under a second even under emulation.
const MODPROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// The loads started; [`Preload::wait`] or dropping it waits for them.
#[derive(Debug, Default)]
pub struct Preload {
    thread: Option<JoinHandle<()>>,
}

/// The kernel's names for filesystem types: what may follow "fs-" in a module alias.
fn plausible(fs_type: &str) -> bool {
    // "auto" asks mount(8) to probe; no module has that name.
    !fs_type.is_empty()
        && fs_type != "auto"
        && fs_type.len() <= 32
        && fs_type
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The types in `wanted` that `/proc/filesystems` (its text in `registered`) lacks.
fn missing<'a>(wanted: &'a [String], registered: &str) -> Vec<&'a str> {
    let known: Vec<&str> = registered
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    let mut out: Vec<&str> = wanted
        .iter()
        .map(String::as_str)
        .filter(|t| plausible(t) && !known.contains(t))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Start loading the modules of `fs_types` that the kernel does not have yet.
pub fn preload(fs_types: &[String]) -> Preload {
    let registered = match std::fs::read_to_string("/proc/filesystems") {
        Ok(text) => text,
        Err(e) => {
            debug!(error = %e, "cannot read /proc/filesystems; the mounts load what they need");
            return Preload::default();
        }
    };
    let types: Vec<String> = missing(fs_types, &registered)
        .into_iter()
        .map(str::to_string)
        .collect();
    if types.is_empty() {
        return Preload::default();
    }
    let span = tracing::Span::current();
    let thread = std::thread::Builder::new()
        .name("fs-modules".into())
        .spawn(move || {
            let _span = span.entered();
            for t in types {
                let alias = format!("fs-{t}");
                let ran = exec::Command::new(["modprobe", "-q", "--", alias.as_str()])
                    .timeout(MODPROBE_TIMEOUT)
                    .run();
                match ran {
                    Ok(r) if r.exit() == Some(0) => {
                        info!(fs_type = %t, seconds = r.seconds, "filesystem module loaded");
                    }
                    Ok(r) => warn!(
                        fs_type = %t,
                        exit = ?r.exit(),
                        "modprobe {alias} failed; the mount will try to load it itself"
                    ),
                    Err(e) => warn!(
                        fs_type = %t,
                        error = %e,
                        "the module could not be loaded ahead; the mount will try itself"
                    ),
                }
            }
        });
    match thread {
        Ok(t) => Preload { thread: Some(t) },
        Err(e) => {
            debug!(error = %e, "no thread for loading modules; the mounts load them");
            Preload::default()
        }
    }
}

impl Preload {
    /// Wait until the loads have ended (successfully or not).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Preload {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC_FILESYSTEMS: &str = "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\tproc\n";

    #[test]
    fn only_types_the_kernel_lacks_are_loaded() {
        let wanted = ["ext4", "xfs", "xfs", "ext4"].map(String::from);
        assert_eq!(missing(&wanted, PROC_FILESYSTEMS), ["xfs"]);
        assert!(missing(&["ext4".into()], PROC_FILESYSTEMS).is_empty());
    }

    #[test]
    fn a_type_that_cannot_be_a_module_alias_is_left_to_the_mount() {
        let wanted = ["", "auto", "../x", "-r", "XFS", "ext4 xfs"].map(String::from);
        assert!(missing(&wanted, PROC_FILESYSTEMS).is_empty());
    }
}
