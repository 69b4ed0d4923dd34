//! The `Fenced` proof: evidence that one named node can no longer write. It depends on
//! nothing, so every adapter that writes storage can demand one, and its constructor is
//! visible to the fence module only: a proof exists only where the fence module itself
//! read "off" back from the BMC, read its own preempt back from every path, or logged the
//! admin's audited statement. A proof is never read from a file or the journal.

use std::time::SystemTime;

use serde::Serialize;

/// How fencing was confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum FenceMethod {
    /// The BMC reported "off" on `reads` consecutive reads.
    PowerOff {
        bmc: String,
        reads: u32,
        already_off: bool,
        /// The error the BMC answered the power down with, when it did: the power was
        /// read afterwards and reads off all the same.
        #[serde(skip_serializing_if = "Option::is_none")]
        bmc_error: Option<String>,
    },
    /// The admin stated that the peer is physically off or disconnected.
    AdminOverride { statement: String },
    /// The peer's reservation key was preempted on every shared LUN and the read-back
    /// shows this node as holder on every path: the array refuses the peer's writes.
    Reservation {
        luns: Vec<String>,
        victim_key: String,
    },
    /// A planned switchover: the peer gave the storage back cleanly (its key was on no
    /// path and nobody held a reservation), and this node then reserved every LUN, read
    /// back on every path. The peer cannot write, and needs no power-off.
    Released {
        luns: Vec<String>,
        victim_key: String,
    },
    /// A planned switchover of DRBD mirrors: on every resource DRBD is connected, the
    /// peer Secondary and both copies UpToDate. While connected DRBD refuses the peer a
    /// second Primary, so it cannot write; a promotion with this proof must still find
    /// the resource connected.
    MirrorSecondary { resources: Vec<String> },
}

impl FenceMethod {
    /// How fencing was confirmed, in one phrase for messages: "powered off, confirmed by
    /// BMC ..., 2 consecutive 'off' reads".
    pub fn summary(&self) -> String {
        match self {
            FenceMethod::PowerOff {
                bmc,
                reads,
                already_off,
                bmc_error,
            } => {
                let how = match (already_off, bmc_error) {
                    (true, _) => "was already off, confirmed".to_string(),
                    (false, None) => "powered off, confirmed".to_string(),
                    (false, Some(e)) => format!(
                        "the BMC reported an error for the power down ({e}), but the power \
                         reads off, confirmed"
                    ),
                };
                format!("{how} by {bmc}, {reads} consecutive 'off' reads")
            }
            FenceMethod::AdminOverride { statement } => format!("admin override: {statement}"),
            FenceMethod::Reservation { luns, victim_key } => {
                format!("key {victim_key} preempted on {}", luns.join(", "))
            }
            FenceMethod::Released { luns, victim_key } => {
                format!("key {victim_key} given back cleanly on {}", luns.join(", "))
            }
            FenceMethod::MirrorSecondary { resources } => format!(
                "Secondary and connected on DRBD resource(s) {}",
                resources.join(", ")
            ),
        }
    }
}

/// Proof that a peer was fenced. No public constructor: see the module documentation.
#[derive(Debug, Clone, Serialize)]
pub struct Fenced {
    node: String,
    method: FenceMethod,
    #[serde(serialize_with = "unix_seconds")]
    confirmed_at: SystemTime,
}

/// A proof offered for a storage write that it does not cover.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error(
        "refusing to write {subject}: it is {owner}'s, but the fencing proof in hand is for \
         node '{proven}'. Nothing was done. Fence {owner} itself (`hamn fence {owner}`, or \
         `hamn takeover --peer {owner}`)"
    )]
    OtherNode {
        subject: String,
        owner: String,
        proven: String,
    },
}

fn unix_seconds<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
    )
}

impl Fenced {
    /// Only the fence module's procedures reach this (power.rs, storage.rs, the override).
    pub(super) fn new(node: &str, method: FenceMethod) -> Fenced {
        Fenced {
            node: node.to_string(),
            method,
            confirmed_at: SystemTime::now(),
        }
    }

    /// A proof for any node, for tests that exercise a storage adapter against image
    /// files or namespaces. Absent from the binaries hamn ships (no `testing` feature).
    #[cfg(any(test, feature = "testing"))]
    pub fn for_tests(node: &str) -> Fenced {
        Fenced::new(
            node,
            FenceMethod::AdminOverride {
                statement: "test fixture".into(),
            },
        )
    }

    pub fn node(&self) -> &str {
        &self.node
    }
    pub fn method(&self) -> &FenceMethod {
        &self.method
    }
    pub fn confirmed_at(&self) -> SystemTime {
        self.confirmed_at
    }

    /// Whether this proof stops every write of the node, wherever it writes: its power
    /// is off, or the admin says it is. A preempted or released reservation stops its
    /// writes to the shared LUNs only, not to an NFS server or to its own DRBD copy.
    pub fn stops_all_writes(&self) -> bool {
        matches!(
            self.method,
            FenceMethod::PowerOff { .. } | FenceMethod::AdminOverride { .. }
        )
    }

    /// This proof, if it covers `owner`, whose `subject` (a LUN, an array, a filesystem)
    /// is about to be written; every storage write asks first.
    pub fn covers(&self, owner: &str, subject: &str) -> Result<&Fenced, ProofError> {
        if self.node == owner {
            Ok(self)
        } else {
            Err(ProofError::OtherNode {
                subject: subject.to_string(),
                owner: owner.to_string(),
                proven: self.node.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_for_mn1_does_not_let_the_standby_write_mn3s_storage() {
        let mn1 = Fenced::for_tests("mn1");
        assert!(mn1.covers("mn1", "LUN mpatha").is_ok());
        let err = mn1.covers("mn3", "LUN mpatha").expect_err("other node");
        let msg = err.to_string();
        assert!(
            msg.contains("mn3") && msg.contains("'mn1'") && msg.contains("hamn fence mn3"),
            "{msg}"
        );
    }
}
