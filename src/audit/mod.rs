//! The record of every takeover, giveback, fence and override: one line in the system
//! log (who ran it, on which node, against which peer, the proof, the result) and one
//! evidence file per run under the state directory, created new and never overwritten
//! (what was planned, each step's outcome and timing, the reservation keys before and
//! after on every path, the BMC's answers, the checkers' output).
//!
//! Recording never stops a failover: a record that cannot be written is a warning (the
//! step already happened; refusing afterwards would only hide it).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{debug, info, warn};

/// Where evidence files go by default (beside the takeover journal).
pub const DEFAULT_DIR: &str = "/var/lib/hamn/evidence";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(
        "cannot write the evidence file in {dir}: {source}; check that the directory is writable by root"
    )]
    Write {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the evidence directory {dir}: {source}")]
    Read {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("no evidence record '{id}' in {dir}; `hamn history` lists them")]
    NoSuchRecord { id: String, dir: PathBuf },
    #[error("evidence file {path} is not a hamn record: {detail}")]
    Parse { path: PathBuf, detail: String },
}

/// Who ran the command: the user behind sudo as well as the effective one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Actor {
    pub uid: u32,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo_user: Option<String>,
}

impl Actor {
    pub fn current() -> Actor {
        let uid = nix::unistd::getuid();
        let user = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| format!("uid {uid}"));
        Actor {
            uid: uid.as_raw(),
            user,
            sudo_user: std::env::var("SUDO_USER").ok().filter(|s| !s.is_empty()),
        }
    }

    fn shown(&self) -> String {
        match &self.sudo_user {
            Some(s) => format!("{} (uid {}, via sudo by {s})", self.user, self.uid),
            None => format!("{} (uid {})", self.user, self.uid),
        }
    }
}

/// How a recorded run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Result {
    Succeeded,
    Failed,
    /// Stopped before changing anything (a refusal).
    Refused,
    Interrupted,
}

impl std::fmt::Display for Result {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Result::Succeeded => "succeeded",
            Result::Failed => "failed",
            Result::Refused => "refused",
            Result::Interrupted => "interrupted",
        })
    }
}

/// One run's evidence. The parts a command does not have stay empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    /// "takeover", "giveback", "fence", "fence-agent off", "pr preempt", ...
    pub command: String,
    pub node: String,
    pub peer: String,
    pub actor: Actor,
    pub hamn_version: String,
    /// Unix seconds.
    pub started: f64,
    pub ended: f64,
    pub result: Result,
    /// One line: the proof(s) the run relied on, or why there was none.
    pub proof: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The plan as `--dry-run` shows it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<String>,
    /// Each step as it ended: step, outcome, detail, seconds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Value>,
    /// Reservation keys and holder on every path of every shared LUN.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub reservations_before: Value,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub reservations_after: Value,
    /// What the BMC answered: the fencing proofs and the power restore policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bmc: Vec<Value>,
    /// The filesystem checks: each command, its exit status, meaning and output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Value>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl Evidence {
    /// A record starting now, by the current user.
    pub fn start(command: &str, node: &str, peer: &str) -> Evidence {
        Evidence {
            command: command.to_string(),
            node: node.to_string(),
            peer: peer.to_string(),
            actor: Actor::current(),
            hamn_version: env!("CARGO_PKG_VERSION").to_string(),
            started: unix_now(),
            ended: 0.0,
            result: Result::Failed,
            proof: String::new(),
            error: None,
            plan: Vec::new(),
            steps: Vec::new(),
            reservations_before: Value::Null,
            reservations_after: Value::Null,
            bmc: Vec::new(),
            checks: Vec::new(),
        }
    }

    /// The system log line.
    pub fn log_line(&self, file: Option<&Path>) -> String {
        format!(
            "{} {} {} on {} by {}: {}{}{}",
            self.command,
            if self.command == "giveback" {
                "to"
            } else {
                "of"
            },
            self.peer,
            self.node,
            self.actor.shown(),
            self.result,
            if self.proof.is_empty() {
                String::new()
            } else {
                format!("; proof: {}", self.proof)
            },
            match (&self.error, file) {
                (Some(e), Some(f)) => format!("; {e}; evidence {}", f.display()),
                (Some(e), None) => format!("; {e}"),
                (None, Some(f)) => format!("; evidence {}", f.display()),
                (None, None) => String::new(),
            }
        )
    }

    /// End the record: write the evidence file in `dir` and the system log line. Returns
    /// the file, or None when it could not be written (a warning says why).
    pub fn finish(mut self, result: Result, dir: &Path) -> Option<PathBuf> {
        self.result = result;
        self.ended = unix_now();
        let file = match write(dir, &self) {
            Ok(f) => Some(f),
            Err(e) => {
                warn!("{e}");
                None
            }
        };
        syslog(result, &self.log_line(file.as_deref()));
        file
    }
}

/// "20261205T014233Z": RFC 3339 in UTC, without separators (a file name that sorts).
fn stamp(unix: f64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_secs_f64(unix.max(0.0));
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace(['-', ':'], "")
}

/// Create the file new (O_EXCL, mode 0600): a record is never overwritten, and two runs
/// in the same second get two files.
fn write(dir: &Path, ev: &Evidence) -> std::result::Result<PathBuf, AuditError> {
    let err = |source| AuditError::Write {
        dir: dir.to_path_buf(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err)?;
    let text = serde_json::to_vec_pretty(ev).map_err(|e| err(std::io::Error::other(e)))?;
    let base = format!(
        "{}-{}-{}",
        stamp(ev.started),
        ev.command.replace([' ', '/'], "-"),
        ev.peer.replace('/', "-")
    );
    for n in 0..1000 {
        let name = if n == 0 {
            format!("{base}.json")
        } else {
            format!("{base}.{n}.json")
        };
        let path = dir.join(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(&text).map_err(err)?;
                f.write_all(b"\n").map_err(err)?;
                f.sync_all().map_err(err)?;
                debug!(file = %path.display(), "evidence written");
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(err(e)),
        }
    }
    Err(err(std::io::Error::other(
        "1000 records in the same second",
    )))
}

/// One line to the system log (/dev/log: syslog or the journal), facility daemon, tag
/// "hamn". No log daemon is noted (at -v), never a failure.
fn syslog(result: Result, line: &str) {
    let formatter = syslog::Formatter3164 {
        facility: syslog::Facility::LOG_DAEMON,
        hostname: None,
        process: "hamn".into(),
        pid: std::process::id(),
    };
    match syslog::unix(formatter) {
        Ok(mut logger) => {
            let sent = match result {
                Result::Succeeded => logger.notice(line),
                Result::Refused | Result::Interrupted => logger.warning(line),
                Result::Failed => logger.err(line),
            };
            if let Err(e) = sent {
                warn!(error = %e, "the record could not be sent to the system log");
            }
        }
        // Containers and minimal systems have none; the evidence file still holds it all.
        Err(e) => info!(error = %e, "no system log to record in (/dev/log)"),
    }
}

/// A record as `hamn history` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub id: String,
    pub file: PathBuf,
    pub started: f64,
    pub when: String,
    pub command: String,
    pub node: String,
    pub peer: String,
    pub user: String,
    pub result: Result,
    pub proof: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn read(path: &Path) -> std::result::Result<Evidence, AuditError> {
    let text = fs::read_to_string(path).map_err(|e| AuditError::Parse {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| AuditError::Parse {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Every record in `dir`, oldest first. A file that is not a record is skipped with a
/// warning (someone put it there); a missing directory is no records.
pub fn list(dir: &Path) -> std::result::Result<Vec<Listed>, AuditError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(AuditError::Read {
                dir: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        match read(&path) {
            Ok(ev) => out.push(Listed {
                id: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                file: path.clone(),
                started: ev.started,
                when: stamp(ev.started),
                command: ev.command,
                node: ev.node,
                peer: ev.peer,
                user: ev.actor.shown(),
                result: ev.result,
                proof: ev.proof,
                error: ev.error,
            }),
            Err(e) => warn!("{e}"),
        }
    }
    out.sort_by(|a, b| a.started.total_cmp(&b.started).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// One record, by its id (the file name without .json).
pub fn show(dir: &Path, id: &str) -> std::result::Result<Value, AuditError> {
    let name = id.trim_end_matches(".json");
    let path = dir.join(format!("{name}.json"));
    if name.contains('/') || !path.is_file() {
        return Err(AuditError::NoSuchRecord {
            id: id.to_string(),
            dir: dir.to_path_buf(),
        });
    }
    let ev = read(&path)?;
    serde_json::to_value(ev).map_err(|e| AuditError::Parse {
        path,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_civil_time() {
        assert_eq!(stamp(0.0), "19700101T000000Z");
        // 2026-12-05 01:42:33 UTC
        assert_eq!(stamp(1_796_434_953.0), "20261205T014233Z");
        assert_eq!(stamp(951_782_400.0), "20000229T000000Z");
    }

    #[test]
    fn a_record_is_never_overwritten_and_is_listed_with_its_result() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ev = Evidence::start("takeover", "mn2", "mn1");
        ev.proof = "mn1 powered off".into();
        let a = write(dir.path(), &ev).expect("first");
        let b = write(dir.path(), &ev).expect("second");
        assert_ne!(a, b, "the same second gives a second file");
        let mode = fs::metadata(&a).expect("meta").permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        fs::write(dir.path().join("stray.json"), "{}").expect("stray");
        let listed = list(dir.path()).expect("list");
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert_eq!(listed[0].command, "takeover");
        assert_eq!(listed[0].result, Result::Failed);
        let shown = show(dir.path(), &listed[1].id).expect("show");
        assert_eq!(shown["peer"], "mn1");
        assert!(show(dir.path(), "../etc/passwd").is_err());
    }

    #[test]
    fn the_log_line_names_who_what_and_the_result() {
        let mut ev = Evidence::start("fence", "mn2", "mn1");
        ev.actor = Actor {
            uid: 0,
            user: "root".into(),
            sudo_user: Some("alice".into()),
        };
        ev.result = Result::Succeeded;
        ev.proof = "power off confirmed by BMC 10.0.0.1".into();
        assert_eq!(
            ev.log_line(Some(Path::new("/var/lib/hamn/evidence/x.json"))),
            "fence of mn1 on mn2 by root (uid 0, via sudo by alice): succeeded; proof: power \
             off confirmed by BMC 10.0.0.1; evidence /var/lib/hamn/evidence/x.json"
        );
    }
}
