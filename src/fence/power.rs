//! Fencing by power: the BMC powers the peer down and "off" is read back on consecutive
//! reads. Power cycle is never used: a cycled peer comes back and writes again.

use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::{info, info_span, warn};

use super::FenceError;
use super::proof::{FenceMethod, Fenced};
use crate::bmc::lanplus::Backoff;
use crate::bmc::{ChassisAction, IpmiBmc, PowerControl, PowerState};
use crate::config::Peer;
use crate::profiles::{BmcProfile, ProfileError, Profiles};

/// How to confirm, from the hardware profile (and the caller's deadline).
#[derive(Debug, Clone, Copy)]
pub struct ConfirmPolicy {
    pub confirm_reads: u32,
    pub poll_interval: Duration,
    pub settle: Duration,
    pub deadline: Instant,
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
            return Ok(Fenced::new(node, method));
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

/// The profile known before contacting the BMC: pinned in hamn.toml, else generic.
pub fn profile_before_contact<'a>(
    peer: &Peer,
    profiles: &'a Profiles,
) -> Result<&'a BmcProfile, ProfileError> {
    profiles.by_name(
        peer.bmc
            .profile
            .as_deref()
            .unwrap_or(crate::profiles::GENERIC),
    )
}

/// What a power fence did, for `--json` and the fence agent.
#[derive(Debug, Clone, Serialize)]
pub struct PowerFenced {
    pub node: String,
    pub fenced: bool,
    pub proof: Fenced,
    pub profile: String,
    pub cipher_suite: u8,
    pub elapsed_ms: u64,
}

/// Fence `peer` by power: connect, power down, confirm. Every front end and the takeover
/// use this one procedure.
pub fn fence_peer(
    peer: &Peer,
    profiles: &Profiles,
    timeout: Option<Duration>,
) -> Result<PowerFenced, FenceError> {
    let started = Instant::now();
    let node = peer.name.clone();
    let pre = profile_before_contact(peer, profiles).map_err(|source| FenceError::Profile {
        node: node.clone(),
        source,
    })?;
    let connect_deadline = started + timeout.unwrap_or(pre.timeout);
    let fence_err = |source| FenceError::Bmc {
        node: node.clone(),
        source,
    };
    let mut bmc = IpmiBmc::connect(peer, profiles, connect_deadline, Backoff::default())
        .map_err(fence_err)?;
    let profile = bmc.profile().clone();
    let policy = ConfirmPolicy {
        confirm_reads: profile.confirm_reads,
        poll_interval: profile.poll_interval,
        settle: profile.power_off_settle,
        deadline: started + timeout.unwrap_or(profile.timeout),
    };
    let suite = bmc.suite().id();
    let result = fence(&peer.name, &mut bmc, policy);
    bmc.close();
    let proof = result?;
    Ok(PowerFenced {
        node: peer.name.clone(),
        fenced: true,
        proof,
        profile: profile.name.clone(),
        cipher_suite: suite,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// The longest a read-only BMC check may take before the takeover gives up on it.
const CHECK_LIMIT: Duration = Duration::from_secs(10);

/// One power status read through the peer's BMC, changing nothing: the takeover's check
/// that the power fence will be possible, before any storage step.
pub fn read_power(peer: &Peer, profiles: &Profiles) -> Result<PowerState, FenceError> {
    let node = peer.name.clone();
    let pre = profile_before_contact(peer, profiles).map_err(|source| FenceError::Profile {
        node: node.clone(),
        source,
    })?;
    let deadline = Instant::now() + pre.timeout.min(CHECK_LIMIT);
    let bmc_err = |source| FenceError::Bmc {
        node: node.clone(),
        source,
    };
    let mut bmc =
        IpmiBmc::connect(peer, profiles, deadline, Backoff::default()).map_err(bmc_err)?;
    let st = bmc.power_state(deadline);
    bmc.close();
    st.map_err(bmc_err)
}

#[cfg(test)]
mod tests {
    //! The decision logic against scripted BMC answers; the real exchanges with ipmi_sim
    //! are in tests/fence_ipmi_sim.rs.
    use super::*;
    use crate::bmc::BmcError;

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
