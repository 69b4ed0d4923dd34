//! A peer that gave its DRBD mirrors back cleanly (a planned switchover): DRBD's own
//! state is the evidence, as a released reservation is for shared LUNs. Connected, with
//! the peer Secondary and both copies UpToDate, the peer cannot become Primary behind
//! this node's back: DRBD allows one Primary while connected. Anything else is no
//! evidence, and the peer is powered off as usual.

use super::proof::{FenceMethod, Fenced};
use crate::drbd::{self, Disk, DrbdError, Role};

/// The proof for `node` if every resource shows it let go; None otherwise.
pub fn peer_secondary(node: &str, resources: &[String]) -> Result<Option<Fenced>, DrbdError> {
    if resources.is_empty() {
        return Ok(None);
    }
    for r in resources {
        let s = drbd::state(r)?;
        if !let_go(&s) {
            tracing::info!(resource = %r, state = %s, "no DRBD evidence that the peer let go");
            return Ok(None);
        }
    }
    Ok(Some(Fenced::new(
        node,
        FenceMethod::MirrorSecondary {
            resources: resources.to_vec(),
        },
    )))
}

/// DRBD's state shows that the peer let go of the resource.
fn let_go(s: &drbd::State) -> bool {
    s.connection == "Connected"
        && s.peer_role == Role::Secondary
        && s.disk == Disk::UpToDate
        && s.peer_disk == Disk::UpToDate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connected_secondary_peer_with_both_copies_up_to_date_let_go() {
        let st = |r, c, d| drbd::parse_state("xcat", r, c, d);
        assert!(let_go(&st(
            "Secondary/Secondary",
            "Connected",
            "UpToDate/UpToDate"
        )));
        // Still Primary, gone, or behind: no evidence.
        for s in [
            st("Secondary/Primary", "Connected", "UpToDate/UpToDate"),
            st("Secondary/Unknown", "WFConnection", "UpToDate/DUnknown"),
            st("Secondary/Secondary", "SyncTarget", "Inconsistent/UpToDate"),
            st("Secondary/Secondary", "Connected", "UpToDate/Outdated"),
        ] {
            assert!(!let_go(&s), "{s}");
        }
    }
}
