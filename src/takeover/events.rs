//! Progress events: one per step as it ends, printed as a line for people or as a JSON
//! object per line (`--json`), and kept in the outcome.

use serde::Serialize;

/// What became of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Done,
    /// Found already in place, on a first run (e.g. the OS booted from moved disks).
    InPlace,
    /// An earlier, interrupted run did this; found in place again and left as it is.
    Rechecked,
    /// An earlier run recorded it done, but it was not in place: done again.
    Redone,
    /// Not needed this time, and why (a power fence after a clean giveback).
    Skipped,
    Failed,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Done => "done",
            Outcome::InPlace => "in place",
            Outcome::Rechecked => "in place (re-checked)",
            Outcome::Redone => "redone",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub step: String,
    pub outcome: Outcome,
    pub detail: String,
    pub seconds: f64,
}

impl Event {
    /// The progress line on stderr.
    pub fn line(&self) -> String {
        format!(
            "hamn: {:<22} {:<10} {} ({:.2} s)",
            self.step,
            self.outcome.to_string(),
            self.detail,
            self.seconds
        )
    }
}
