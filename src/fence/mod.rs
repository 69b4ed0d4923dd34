//! Fencing owns fencing: the procedures (power through the BMC, the storage tie-break,
//! the admin's audited word), the choice of method for a peer, and the proof.
//!
//! `Fenced` (proof.rs) is the gate every storage write requires, and only this module
//! makes one, from evidence it produced itself. The front ends (CLI, fence agent) and the
//! takeover engine call in here; this module calls the adapters (bmc, scsi).

pub mod mirror;
pub mod power;
pub mod proof;
pub mod storage;

use tracing::warn;

use crate::bmc::{BmcError, PowerState};
use crate::config::{FencingKind, Peer};
use crate::profiles::ProfileError;
use crate::scsi::reserve::PrError;

pub use power::{
    ConfirmPolicy, PowerDown, PowerFenced, RestorePolicyReport, fence, fence_peer,
    profile_before_contact,
};
pub use proof::{FenceMethod, Fenced, ProofError};

#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("node '{node}' is NOT fenced: {source}. Do not touch its storage")]
    Bmc { node: String, source: BmcError },
    #[error("node '{node}' is NOT fenced: {source}")]
    Profile { node: String, source: ProfileError },
    #[error(
        "node '{node}' is NOT fenced: {bmc} accepted power down, but the chassis still \
         reported '{last}' after {waited:.1}s ({reads} status reads, {needed} consecutive \
         'off' needed). The server may still be running: check it with `hamn power status \
         {node}`, the BMC's event log, or at the machine itself. Do not touch its storage"
    )]
    NotConfirmed {
        node: String,
        bmc: String,
        last: PowerState,
        waited: f64,
        reads: u32,
        needed: u32,
    },
    #[error(
        "node '{node}' is NOT fenced: {bmc} reported 'off' and then 'on' again: something \
         powered it back on (power restore policy, another admin, another node). Find out \
         what before retrying; do not touch its storage"
    )]
    PoweredBackOn { node: String, bmc: String },
    #[error(
        "node '{node}' is NOT fenced: {bmc} answered the power down with an error ({source}), \
         and the power {seen}. The server may still be running: check it with `hamn power \
         status {node}`, the BMC's event log, or at the machine itself. Do not touch its \
         storage"
    )]
    PowerDownError {
        node: String,
        bmc: String,
        source: BmcError,
        seen: String,
    },
    #[error(
        "node '{node}' is NOT fenced at the storage: {detail}. Do not touch its storage; \
         see `hamn pr status --all-shared`"
    )]
    Storage { node: String, detail: String },
    /// The preempt itself failed, or the peer won the race (its key holds the LUN).
    #[error("{source}")]
    Reservation { node: String, source: PrError },
    #[error(
        "peer {node}: its fencing list is empty; hamn never takes storage from an unfenced \
         node. Set peers.{node}.fencing to [\"storage\", \"power\"] (the default)"
    )]
    NoMethod { node: String },
}

impl FenceError {
    /// A configuration problem (hamn.toml, password source, profiles), not a fencing
    /// failure at the peer: exit status 3.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            FenceError::Bmc {
                source: BmcError::Config(_) | BmcError::Profile { .. },
                ..
            } | FenceError::Profile { .. }
                | FenceError::NoMethod { .. }
        )
    }
}

/// One way a takeover fences its peer, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Read the power state through the BMC, changing nothing, before any storage step:
    /// a BMC that does not answer stops the takeover with the storage untouched.
    BmcCheck,
    /// The tie-breaking preempt on every shared LUN.
    Storage,
    /// Power off through the BMC, confirmed by reads.
    Power,
    /// The admin's statement that the peer is off, in place of the power steps.
    Override,
}

/// The fencing a takeover from `peer` runs. Storage comes before power: the preempt is
/// atomic at the array, so when both nodes take over at once exactly one wins, where two
/// nodes shooting each other's power would leave nobody. `storage` says whether shared
/// LUNs exist for this flow (moved disks have none).
pub fn methods(
    peer: &Peer,
    admin_says_off: bool,
    storage: bool,
) -> Result<Vec<Method>, FenceError> {
    let by_storage = storage && peer.fencing.contains(&FencingKind::Storage);
    let by_power = peer.fencing.contains(&FencingKind::Power) && !admin_says_off;
    if !by_storage && !by_power && !admin_says_off {
        return Err(FenceError::NoMethod {
            node: peer.name.clone(),
        });
    }
    let mut m = Vec::new();
    if by_power {
        m.push(Method::BmcCheck);
    }
    if by_storage {
        m.push(Method::Storage);
    }
    if by_power {
        m.push(Method::Power);
    }
    if admin_says_off {
        m.push(Method::Override);
    }
    Ok(m)
}

/// The admin's statement that the peer is off or disconnected, accepted in place of a
/// BMC confirmation. Logged at WARN with the reason, so that it lands in the audit trail
/// (and the takeover journal records it).
pub fn admin_override(node: &str, statement: &str) -> Fenced {
    warn!(
        node,
        statement, "fencing override: the admin asserts the node is off; no BMC confirmation"
    );
    Fenced::new(
        node,
        FenceMethod::AdminOverride {
            statement: statement.to_string(),
        },
    )
}
