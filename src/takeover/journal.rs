//! The takeover journal: each step's outcome, written before and after the step, so that
//! a rerun after an interruption (kill -9, power loss of this node) knows where it was.
//! A rerun never trusts the journal for safety: fencing is always proven again, and every
//! finished step's state is re-checked before the next step runs. The journal says where
//! to continue and what `hamn status` shows.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const DEFAULT_PATH: &str = "/var/lib/hamn/takeover.json";
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write the takeover journal {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the takeover journal {path} is unreadable ({message}); move it aside after checking \
         `hamn status`, then run the takeover again"
    )]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Started,
    Done,
    Failed,
    /// hamn received SIGTERM or SIGINT during the step: its command (and the command's
    /// process group) was stopped and waited for; a rerun continues with this step.
    /// Journals written before this state existed still load: they never contain it.
    Interrupted,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub step: String,
    pub state: State,
    /// Unix seconds.
    pub at: f64,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub version: u32,
    /// The node taken over from.
    pub peer: String,
    pub started_at: f64,
    pub entries: Vec<Entry>,
    /// Set when every step finished.
    pub complete: bool,
    /// Which flow wrote it: "san", "moved-disks" (absent in journals of hamn before the
    /// engine: those were all "san").
    #[serde(default = "san")]
    pub flow: String,
    /// The plan as it ran last, so that giveback can run its reverse.
    #[serde(default)]
    pub plan: Vec<super::step::Step>,
    #[serde(skip)]
    path: PathBuf,
}

fn san() -> String {
    "san".into()
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Journal {
    /// The journal at `path`, or None if there is none.
    pub fn load(path: &Path) -> Result<Option<Journal>, JournalError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(JournalError::Invalid {
                    path: path.into(),
                    message: e.to_string(),
                });
            }
        };
        let mut j: Journal = serde_json::from_str(&text).map_err(|e| JournalError::Invalid {
            path: path.into(),
            message: e.to_string(),
        })?;
        if j.version != VERSION {
            return Err(JournalError::Invalid {
                path: path.into(),
                message: format!("version {} (this hamn writes {VERSION})", j.version),
            });
        }
        j.path = path.into();
        Ok(Some(j))
    }

    pub fn new(path: &Path, peer: &str, flow: &str) -> Journal {
        Journal {
            version: VERSION,
            peer: peer.into(),
            started_at: now(),
            entries: Vec::new(),
            complete: false,
            flow: flow.into(),
            plan: Vec::new(),
            path: path.into(),
        }
    }

    /// Record the plan this run follows (written through with the next record).
    pub fn set_plan(&mut self, plan: &[super::step::Step]) {
        self.plan = plan.to_vec();
        self.complete = false;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last state recorded for a step.
    pub fn state_of(&self, step: &str) -> Option<State> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.step == step)
            .map(|e| e.state)
    }

    /// Record and write through (fsync), so the record survives a power loss.
    pub fn record(&mut self, step: &str, state: State, detail: &str) -> Result<(), JournalError> {
        self.entries.push(Entry {
            step: step.into(),
            state,
            at: now(),
            detail: detail.into(),
        });
        self.save()
    }

    pub fn finish(&mut self) -> Result<(), JournalError> {
        self.complete = true;
        self.save()
    }

    fn save(&self) -> Result<(), JournalError> {
        use std::io::Write;
        let err = |source| JournalError::Write {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &self.path).map_err(err)
    }

    /// Moves the journal aside (giveback): the next takeover starts afresh.
    pub fn retire(path: &Path) -> Result<(), JournalError> {
        match std::fs::rename(path, path.with_extension("json.done")) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(JournalError::Write {
                path: path.into(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_takeover_is_read_back_with_its_last_states() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("var/lib/hamn/takeover.json");
        assert!(Journal::load(&path).expect("none").is_none());
        let mut j = Journal::new(&path, "mn1", "san");
        j.record("fence-storage", State::Started, "").expect("w");
        j.record("fence-storage", State::Done, "preempted")
            .expect("w");
        j.record("check /install", State::Started, "").expect("w");
        let back = Journal::load(&path).expect("ok").expect("some");
        assert_eq!(back.peer, "mn1");
        assert_eq!(back.state_of("fence-storage"), Some(State::Done));
        assert_eq!(back.state_of("check /install"), Some(State::Started));
        assert_eq!(back.state_of("mount /install"), None);
        assert!(!back.complete);
        Journal::retire(&path).expect("retire");
        assert!(Journal::load(&path).expect("none").is_none());
    }

    #[test]
    fn interrupted_is_written_kebab_case_and_older_journals_still_load() {
        assert_eq!(
            serde_json::to_string(&State::Interrupted).expect("json"),
            "\"interrupted\""
        );
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("takeover.json");
        // A journal of hamn before the interrupted state (and before flow and plan).
        std::fs::write(
            &path,
            r#"{"version":1,"peer":"mn1","started_at":1.0,"complete":false,
               "entries":[{"step":"fence-storage","state":"done","at":1.0,"detail":""},
                          {"step":"check /install","state":"started","at":2.0,"detail":""}]}"#,
        )
        .expect("w");
        let mut j = Journal::load(&path).expect("ok").expect("some");
        assert_eq!(j.state_of("check /install"), Some(State::Started));
        j.record("check /install", State::Interrupted, "SIGTERM")
            .expect("w");
        let back = Journal::load(&path).expect("ok").expect("some");
        assert_eq!(back.state_of("check /install"), Some(State::Interrupted));
        assert_eq!(back.flow, "san");
    }

    #[test]
    fn a_garbled_journal_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("takeover.json");
        std::fs::write(&path, "{not json").expect("w");
        let msg = Journal::load(&path).expect_err("garbled").to_string();
        assert!(msg.contains("hamn status"), "{msg}");
    }
}
