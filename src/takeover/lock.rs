//! One takeover or giveback at a time on a node. The executor holds an exclusive
//! `flock(2)` on a file beside the journal (`takeover.json.lock`) for its whole run; a
//! second run on the same journal does not wait: it refuses at once and names the
//! running one, read from the lock file, where the holder keeps its PID, flow and the
//! step it is on.
//!
//! A takeover that is done but still announcing its service address (the repeats go on
//! from a detached process that holds the lock, see `net::Announcer::detach`) is waited
//! for, a few seconds at most, rather than refused: a giveback the cluster starts right
//! after a start must not fail, nor remove the address while it is being announced.
//!
//! The kernel drops the lock when the holder exits, however it exits (kill -9 included),
//! so a stale lock file never blocks anything; the file itself stays. Its descriptor is
//! close-on-exec: the commands hamn runs do not inherit the lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another hamn {holder} is running on this node (lock {path}); nothing was done. Wait \
         for it to finish (`hamn status` shows its journal), or stop it with `kill {pid}`: it \
         records where it stopped, and running this command again then continues"
    )]
    Busy {
        path: PathBuf,
        holder: String,
        pid: String,
    },
    #[error(
        "cannot take the lock {path} that keeps takeovers and givebacks apart: {source}; \
         nothing was done. Make its directory writable (it is the journal's, [takeover] \
         journal in hamn.toml) and run again"
    )]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the lock file says about the run that holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    /// "san", "moved-disks", "giveback".
    pub flow: String,
    /// The node taken over from (or given back to).
    pub peer: String,
    /// The step it is on; empty before the first.
    #[serde(default)]
    pub step: String,
}

impl Holder {
    /// "takeover (san, from mn1), PID 4242, at step 'check /install'".
    pub fn describe(&self) -> String {
        let what = if self.flow == "giveback" {
            "giveback".to_string()
        } else if self.peer.is_empty() {
            format!("takeover ({})", self.flow)
        } else {
            format!("takeover ({}, from {})", self.flow, self.peer)
        };
        let step = if self.step.is_empty() {
            "before its first step".to_string()
        } else {
            format!("at step '{}'", self.step)
        };
        format!("{what}, PID {}, {step}", self.pid)
    }
}

/// The step a takeover notes while its announcement repeats go on after it is done.
pub const ANNOUNCING: &str = "announcing the service address";

/// How long a run waits for another that is only announcing: every repeat, and a margin.
fn announcing_wait() -> std::time::Duration {
    crate::net::ANNOUNCE_INTERVAL * crate::net::ANNOUNCEMENTS + std::time::Duration::from_secs(1)
}

/// The lock file of the journal at `journal`.
pub fn lock_path(journal: &Path) -> PathBuf {
    let mut name = journal.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Held for the whole run; dropping it (or hamn's exit) releases the lock.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
    holder: Holder,
}

impl RunLock {
    /// Take the lock beside `journal`, or refuse at once naming the run that holds it.
    pub fn acquire(journal: &Path, flow: &str, peer: &str) -> Result<RunLock, LockError> {
        let path = lock_path(journal);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(io)?;
        let waited_from = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let mut text = String::new();
                    let _ = file.seek(SeekFrom::Start(0));
                    let _ = file.read_to_string(&mut text);
                    let announcing = serde_json::from_str::<Holder>(text.trim())
                        .is_ok_and(|h| h.step == ANNOUNCING);
                    if !announcing || waited_from.elapsed() > announcing_wait() {
                        return Err(busy(&path, &text));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        let mut lock = RunLock {
            file,
            path: path.clone(),
            holder: Holder {
                pid: std::process::id(),
                flow: flow.into(),
                peer: peer.into(),
                step: String::new(),
            },
        };
        lock.write().map_err(io)?;
        Ok(lock)
    }

    /// The lock's descriptor, for a process that must hold it after this one ends.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.file)
    }

    /// Note the step the run is on, for a second run's refusal.
    pub fn set_step(&mut self, step: &str) {
        self.holder.step = step.into();
        if let Err(e) = self.write() {
            tracing::warn!(lock = %self.path.display(), error = %e, "cannot note the step in the lock file");
        }
    }

    fn write(&mut self) -> std::io::Result<()> {
        let text = serde_json::to_string(&self.holder).unwrap_or_default();
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(format!("{text}\n").as_bytes())
    }
}

/// The refusal, from what the lock file says (it may be empty for a moment, right after
/// the holder took the lock).
fn busy(path: &Path, text: &str) -> LockError {
    match serde_json::from_str::<Holder>(text.trim()) {
        Ok(h) => LockError::Busy {
            path: path.into(),
            holder: h.describe(),
            pid: h.pid.to_string(),
        },
        Err(_) => LockError::Busy {
            path: path.into(),
            holder: "takeover or giveback (it has not written its PID yet)".into(),
            pid: "PID".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_is_refused_naming_the_first_its_pid_and_step() {
        let dir = tempfile::tempdir().expect("tmp");
        let journal = dir.path().join("lib/takeover.json");
        let mut first = RunLock::acquire(&journal, "san", "mn1").expect("first");
        first.set_step("check /install");
        assert_eq!(
            lock_path(&journal),
            dir.path().join("lib/takeover.json.lock")
        );
        // flock locks belong to the open file: a second open in this process conflicts
        // just as another process would.
        let e = RunLock::acquire(&journal, "giveback", "").expect_err("busy");
        let msg = e.to_string();
        let pid = std::process::id();
        assert!(matches!(e, LockError::Busy { .. }), "{msg}");
        assert!(
            msg.contains(&format!(
                "takeover (san, from mn1), PID {pid}, at step 'check /install'"
            )),
            "{msg}"
        );
        assert!(msg.contains(&format!("kill {pid}")), "{msg}");
        drop(first);
        let again = RunLock::acquire(&journal, "giveback", "");
        assert!(again.is_ok(), "released on drop: {again:?}");
    }

    #[test]
    fn an_unwritten_lock_file_still_gives_a_clear_refusal() {
        let msg = busy(Path::new("/var/lib/hamn/takeover.json.lock"), "").to_string();
        assert!(msg.contains("has not written its PID yet"), "{msg}");
        assert!(msg.contains("nothing was done"), "{msg}");
    }
}
