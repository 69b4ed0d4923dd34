//! The fencing procedure and its proof.
//!
//! `Fenced` is the gate every storage step will require. Only this module can create one:
//! either by reading "off" back from the peer's BMC on N consecutive reads after a power
//! down, or through the admin's explicit, logged override. Power cycle is never used:
//! a cycled peer comes back and writes again.

use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tracing::{info, info_span, warn};

use crate::bmc::{BmcError, ChassisAction, PowerControl, PowerState};

/// How fencing was confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum FenceMethod {
    /// The BMC reported "off" on `reads` consecutive reads.
    PowerOff {
        bmc: String,
        reads: u32,
        already_off: bool,
    },
    /// The admin stated that the peer is physically off or disconnected.
    AdminOverride { statement: String },
    /// The peer's reservation key was preempted on every shared LUN and the read-back
    /// shows this node as holder on every path: the array refuses the peer's writes.
    Reservation {
        luns: Vec<String>,
        victim_key: String,
    },
}

/// Proof that a peer was fenced. No public constructor: see the module documentation.
#[derive(Debug, Clone, Serialize)]
pub struct Fenced {
    node: String,
    method: FenceMethod,
    #[serde(serialize_with = "unix_seconds")]
    confirmed_at: SystemTime,
}

fn unix_seconds<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
    )
}

impl Fenced {
    pub fn node(&self) -> &str {
        &self.node
    }
    pub fn method(&self) -> &FenceMethod {
        &self.method
    }
    pub fn confirmed_at(&self) -> SystemTime {
        self.confirmed_at
    }
}

/// How to confirm, from the hardware profile (and the caller's deadline).
#[derive(Debug, Clone, Copy)]
pub struct ConfirmPolicy {
    pub confirm_reads: u32,
    pub poll_interval: Duration,
    pub settle: Duration,
    pub deadline: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("node '{node}' is NOT fenced: {source}. Do not touch its storage")]
    Bmc { node: String, source: BmcError },
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
        "node '{node}' is NOT fenced at the storage: {detail}. Do not touch its storage; \
         see `hamn pr status --all-shared`"
    )]
    Storage { node: String, detail: String },
}

/// The least time left for a confirming read to be worth starting.
const LAST_READ_MARGIN: Duration = Duration::from_millis(600);

/// Power the peer down and confirm it stays off. "Already off" is success, but is still
/// confirmed by the same number of reads.
pub fn fence(
    node: &str,
    bmc: &mut dyn PowerControl,
    policy: ConfirmPolicy,
) -> Result<Fenced, FenceError> {
    let _span = info_span!("fence", node).entered();
    let started = Instant::now();
    let bmc_err = |source| FenceError::Bmc {
        node: node.to_string(),
        source,
    };
    let initial = {
        let _s = info_span!("initial-status").entered();
        bmc.power_state(policy.deadline).map_err(bmc_err)?
    };
    let already_off = initial == PowerState::Off;
    if already_off {
        info!(bmc = %bmc.describe(), "already off; confirming");
    } else {
        let _s = info_span!("power-down").entered();
        bmc.chassis(ChassisAction::PowerDown, policy.deadline)
            .map_err(bmc_err)?;
        info!(bmc = %bmc.describe(), "power down accepted; confirming");
        sleep_until(policy.deadline, policy.settle);
    }

    let _s = info_span!("confirm", needed = policy.confirm_reads).entered();
    let mut consecutive = 0;
    let mut reads = 0;
    let mut seen_off = false;
    let mut last;
    loop {
        // The initial read counts when the node was already off; otherwise every
        // confirming read comes after the power down.
        let state = if reads == 0 && already_off {
            initial
        } else {
            match bmc.power_state(policy.deadline) {
                Ok(s) => s,
                // A timeout here means the deadline passed without a readable status.
                Err(e) => return Err(bmc_err(e)),
            }
        };
        reads += 1;
        last = state;
        match state {
            PowerState::Off => {
                consecutive += 1;
                seen_off = true;
            }
            PowerState::On if seen_off => {
                warn!("chassis reported off, then on again");
                return Err(FenceError::PoweredBackOn {
                    node: node.to_string(),
                    bmc: bmc.describe(),
                });
            }
            PowerState::On => consecutive = 0,
        }
        if consecutive >= policy.confirm_reads {
            let method = FenceMethod::PowerOff {
                bmc: bmc.describe(),
                reads: consecutive,
                already_off,
            };
            info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                reads, "fenced: power off confirmed"
            );
            return Ok(Fenced {
                node: node.to_string(),
                method,
                confirmed_at: SystemTime::now(),
            });
        }
        // A read needs time to be answered (and retransmitted once); one started in the
        // last moments would only time out and hide what was seen.
        if Instant::now() + policy.poll_interval + LAST_READ_MARGIN >= policy.deadline {
            return Err(FenceError::NotConfirmed {
                node: node.to_string(),
                bmc: bmc.describe(),
                last,
                waited: started.elapsed().as_secs_f64(),
                reads,
                needed: policy.confirm_reads,
            });
        }
        std::thread::sleep(policy.poll_interval);
    }
}

fn sleep_until(deadline: Instant, d: Duration) {
    let left = deadline.saturating_duration_since(Instant::now());
    std::thread::sleep(d.min(left));
}

/// Storage fencing (what fence_scsi does): confirmed only if every LUN's read-back, on
/// every path, shows `own` as holder and `victim` nowhere. No LUN at all is no proof.
pub fn by_reservation(
    node: &str,
    own: &str,
    victim: &str,
    reports: &[crate::scsi::reserve::LunReport],
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
    Ok(Fenced {
        node: node.to_string(),
        method: FenceMethod::Reservation {
            luns: reports.iter().map(|r| r.lun.clone()).collect(),
            victim_key: victim.to_string(),
        },
        confirmed_at: SystemTime::now(),
    })
}

/// The admin's statement that the peer is off or disconnected, accepted in place of a
/// BMC confirmation. Logged at WARN so that it lands in the audit trail.
pub fn admin_override(node: &str, statement: &str) -> Fenced {
    warn!(
        node,
        statement, "fencing override: the admin asserts the node is off; no BMC confirmation"
    );
    Fenced {
        node: node.to_string(),
        method: FenceMethod::AdminOverride {
            statement: statement.to_string(),
        },
        confirmed_at: SystemTime::now(),
    }
}

#[cfg(test)]
mod tests {
    //! The decision logic against scripted BMC answers; the real exchanges with ipmi_sim
    //! are in tests/fence_ipmi_sim.rs.
    use super::*;

    struct Scripted {
        states: Vec<PowerState>,
        downs: u32,
    }

    impl PowerControl for Scripted {
        fn power_state(&mut self, _: Instant) -> Result<PowerState, BmcError> {
            Ok(if self.states.len() > 1 {
                self.states.remove(0)
            } else {
                self.states[0]
            })
        }
        fn chassis(&mut self, a: ChassisAction, _: Instant) -> Result<(), BmcError> {
            assert_eq!(a, ChassisAction::PowerDown, "fencing must only power down");
            self.downs += 1;
            Ok(())
        }
        fn describe(&self) -> String {
            "scripted".into()
        }
    }

    fn policy(ms: u64) -> ConfirmPolicy {
        ConfirmPolicy {
            confirm_reads: 2,
            poll_interval: Duration::from_millis(1),
            settle: Duration::ZERO,
            deadline: Instant::now() + Duration::from_millis(ms),
        }
    }

    use PowerState::{Off, On};

    #[test]
    fn on_then_off_twice_is_fenced_after_one_power_down() {
        let mut b = Scripted {
            states: vec![On, On, Off, Off],
            downs: 0,
        };
        let f = fence("mn1", &mut b, policy(1000)).expect("fenced");
        assert_eq!(b.downs, 1);
        assert!(matches!(
            f.method(),
            FenceMethod::PowerOff {
                already_off: false,
                ..
            }
        ));
    }

    #[test]
    fn already_off_is_success_without_a_power_down_but_still_confirmed() {
        let mut b = Scripted {
            states: vec![Off, Off],
            downs: 0,
        };
        let f = fence("mn1", &mut b, policy(1000)).expect("fenced");
        assert_eq!(b.downs, 0);
        assert!(matches!(
            f.method(),
            FenceMethod::PowerOff {
                already_off: true,
                reads: 2,
                ..
            }
        ));
    }

    #[test]
    fn off_then_on_is_a_failure() {
        let mut b = Scripted {
            states: vec![On, Off, On],
            downs: 0,
        };
        let e = fence("mn1", &mut b, policy(1000)).unwrap_err();
        assert!(matches!(e, FenceError::PoweredBackOn { .. }), "{e}");
    }

    #[test]
    fn staying_on_until_the_deadline_is_not_fenced() {
        let mut b = Scripted {
            states: vec![On],
            downs: 0,
        };
        let e = fence("mn1", &mut b, policy(50)).unwrap_err().to_string();
        assert!(e.contains("NOT fenced") && e.contains("'on'"), "{e}");
    }
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
