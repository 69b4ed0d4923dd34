//! Fencing at the storage (what fence_scsi does, made a tie-breaker): the peer's key is
//! preempted on every shared LUN, sent only through paths where this node's key is still
//! registered, and the proof is made from this module's own read-back of every path.
//! PREEMPT is atomic at the array: when both nodes take over at once, exactly one wins;
//! the loser finds its key gone and stops before it touches its peer's power.

use std::thread::JoinHandle;

use tracing::{debug, info};

use super::FenceError;
use super::proof::{FenceMethod, Fenced};
use crate::profiles::Profiles;
use crate::scsi::pr::{Key, PrType};
use crate::scsi::reserve::{self, Lun, LunReport, PrError};

/// The keys and the holder on every path of every shared LUN, read while the BMC check
/// runs (both only read, and neither needs the other), so that the storage fence starts
/// with its first write. The fence decides from this read which paths may carry its
/// PREEMPT, and still proves itself only from its own read-back afterwards: a change in
/// between (the peer preempting first) makes the PREEMPT fail and the run stop.
#[derive(Debug)]
pub struct Survey {
    thread: JoinHandle<Vec<LunReport>>,
}

/// Start reading every path of `luns` in the background.
pub fn start_survey(luns: Vec<Lun>) -> Option<Survey> {
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name("pr-survey".into())
        .spawn(move || {
            let _span = span.entered();
            // A LUN that cannot be read now is read again by the fence itself.
            luns.iter()
                .filter_map(|l| reserve::status(l).ok())
                .collect()
        })
        .map_err(|e| debug!(error = %e, "no thread for the survey; the fence reads itself"))
        .ok()
        .map(|thread| Survey { thread })
}

impl Survey {
    fn reports(self) -> Vec<LunReport> {
        self.thread.join().unwrap_or_default()
    }
}

/// Preempt `victim`'s key (node `node`) on every LUN and prove it from the read-back.
///
/// A peer that gave the storage back cleanly (`hamn giveback`: its reservation released
/// and its key removed on every path) leaves nothing to preempt: when every path of
/// every LUN shows no holder and no victim key, the proof says `Released`, and the
/// takeover need not power the peer off. `released_earlier`: an interrupted run of this
/// takeover found it so and reserved already (this node holds, the victim is absent).
/// `survey`: the paths as read during the BMC check, if they were; else they are read now.
#[allow(clippy::too_many_arguments)]
pub fn tiebreak(
    node: &str,
    own: Key,
    victim: Key,
    ty: PrType,
    luns: &[Lun],
    profiles: &Profiles,
    released_earlier: bool,
    survey: Option<Survey>,
) -> Result<Fenced, FenceError> {
    let own_text = reserve::key_text(own);
    let victim_text = reserve::key_text(victim);
    let mut surveyed = survey.map(Survey::reports).unwrap_or_default();
    let mut reports = Vec::new();
    let mut released = !luns.is_empty();
    for lun in luns {
        let before = match surveyed.iter().position(|r| r.lun == lun.name) {
            Some(i) => {
                debug!(lun = %lun.name, "paths as read during the BMC check");
                Ok(surveyed.swap_remove(i))
            }
            None => reserve::status(lun),
        };
        released &= before.as_ref().is_ok_and(|s| {
            s.paths.iter().all(|p| {
                p.ok && !p.keys.contains(&victim_text)
                    && (p.holder.is_none()
                        || (released_earlier && p.holder.as_deref() == Some(own_text.as_str())))
            })
        });
        let profile = reserve::profile_for(lun, profiles);
        let before = before.map_err(|source| FenceError::Reservation {
            node: node.to_string(),
            source,
        })?;
        // Fenced here already (by fence_hamn's storage level, or an earlier run): there is
        // no key left to preempt, and a PREEMPT naming an unregistered key is refused.
        // The proof is then a fresh read showing the same.
        if holds_without(&before, &own_text, &victim_text) {
            let now = reserve::status(lun).map_err(|source| FenceError::Reservation {
                node: node.to_string(),
                source,
            })?;
            info!(lun = %lun.name, node, "already fenced at the storage: its key is on no path");
            reports.push(now);
            continue;
        }
        match reserve::preempt_tiebreak(lun, own, victim, ty, profile, before) {
            Ok(r) => reports.push(r),
            Err(e) => {
                // A failed PREEMPT after which our key is gone: the peer won the race.
                let lost = reserve::status(lun)
                    .is_ok_and(|s| s.paths.iter().all(|p| !p.keys.contains(&own_text)));
                let source = if lost && !matches!(e, PrError::NotRegistered { .. }) {
                    PrError::NotRegistered {
                        lun: lun.name.clone(),
                        key: own_text.clone(),
                        holder: victim_text.clone(),
                    }
                } else {
                    e
                };
                return Err(FenceError::Reservation {
                    node: node.to_string(),
                    source,
                });
            }
        }
    }
    let proof = by_reservation(node, &own_text, &victim_text, &reports)?;
    if !released {
        return Ok(proof);
    }
    info!(
        node,
        "the peer had given the storage back: no holder, its key on no path"
    );
    Ok(Fenced::new(
        node,
        FenceMethod::Released {
            luns: reports.iter().map(|r| r.lun.clone()).collect(),
            victim_key: victim_text,
        },
    ))
}

/// Every path read, this node holding the reservation on each, the victim's key on none.
fn holds_without(report: &LunReport, own: &str, victim: &str) -> bool {
    !report.paths.is_empty()
        && report.paths.iter().all(|p| {
            p.ok && p.holder.as_deref() == Some(own) && !p.keys.iter().any(|k| k == victim)
        })
}

/// Confirmed only if every LUN's read-back, on every path, shows `own` as holder and
/// `victim` nowhere. No LUN at all is no proof. Private: the reports must be the ones
/// this module's own preempts read back.
fn by_reservation(
    node: &str,
    own: &str,
    victim: &str,
    reports: &[LunReport],
) -> Result<Fenced, FenceError> {
    let fail = |detail: String| FenceError::Storage {
        node: node.to_string(),
        detail,
    };
    if reports.is_empty() {
        return Err(fail("no shared LUN was preempted".into()));
    }
    for r in reports {
        if r.paths.is_empty() {
            return Err(fail(format!("LUN {} has no path read back", r.lun)));
        }
        for p in &r.paths {
            if !p.ok {
                return Err(fail(format!("LUN {} path {} unreadable", r.lun, p.path)));
            }
            if p.holder.as_deref() != Some(own) || p.keys.iter().any(|k| k == victim) {
                return Err(fail(format!(
                    "LUN {} path {}: holder {}, keys [{}]; expected holder {own} without {victim}",
                    r.lun,
                    p.path,
                    p.holder.as_deref().unwrap_or("none"),
                    p.keys.join(", ")
                )));
            }
        }
    }
    info!(
        node,
        luns = reports.len(),
        "fenced at the storage: preempted and verified"
    );
    Ok(Fenced::new(
        node,
        FenceMethod::Reservation {
            luns: reports.iter().map(|r| r.lun.clone()).collect(),
            victim_key: victim.to_string(),
        },
    ))
}

#[cfg(test)]
mod storage_tests {
    use super::*;
    use crate::scsi::reserve::{LunReport, PathReport};

    fn path(holder: Option<&str>, keys: &[&str]) -> PathReport {
        PathReport {
            path: "/dev/sdb".into(),
            ok: true,
            error: None,
            generation: Some(3),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            holder: holder.map(str::to_string),
            reservation_type: None,
            registrants: Vec::new(),
        }
    }

    fn lun(paths: Vec<PathReport>) -> LunReport {
        LunReport {
            lun: "mpatha".into(),
            wwid: None,
            paths,
            notes: Vec::new(),
        }
    }

    #[test]
    fn a_lun_already_held_without_the_victims_key_needs_no_preempt() {
        let held = lun(vec![
            path(Some("0x2"), &["0x2"]),
            path(Some("0x2"), &["0x2"]),
        ]);
        assert!(holds_without(&held, "0x2", "0x1"));
        let victim_left = lun(vec![
            path(Some("0x2"), &["0x2"]),
            path(Some("0x2"), &["0x1", "0x2"]),
        ]);
        assert!(!holds_without(&victim_left, "0x2", "0x1"));
        let other_holder = lun(vec![path(Some("0x1"), &["0x2"])]);
        assert!(!holds_without(&other_holder, "0x2", "0x1"));
        assert!(!holds_without(&lun(vec![]), "0x2", "0x1"));
    }

    #[test]
    fn storage_fencing_is_proven_only_by_every_path_showing_us_as_holder_without_the_victim() {
        let ok = lun(vec![
            path(Some("0xb"), &["0xb"]),
            path(Some("0xb"), &["0xb"]),
        ]);
        let proof = by_reservation("mn1", "0xb", "0xa", &[ok]).expect("fenced");
        assert!(matches!(proof.method(), FenceMethod::Reservation { .. }));

        let victim_left = lun(vec![path(Some("0xb"), &["0xb", "0xa"])]);
        let other_holder = lun(vec![path(Some("0xc"), &["0xb"])]);
        let mut unreadable = path(None, &[]);
        unreadable.ok = false;
        for bad in [
            victim_left,
            other_holder,
            lun(vec![unreadable]),
            lun(vec![]),
        ] {
            let err = by_reservation("mn1", "0xb", "0xa", &[bad]).expect_err("not fenced");
            assert!(
                err.to_string().contains("NOT fenced at the storage"),
                "{err}"
            );
        }
        assert!(
            by_reservation("mn1", "0xb", "0xa", &[]).is_err(),
            "no LUN is no proof"
        );
    }
}
