//! Fencing by power: the BMC powers the peer down and "off" is read back on consecutive
//! reads. Power cycle is never used: a cycled peer comes back and writes again.

use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::{info, info_span, warn};

use super::FenceError;
use super::proof::{FenceMethod, Fenced};
use crate::bmc::lanplus::Backoff;
use crate::bmc::{AnyBmc, ChassisAction, ChassisStatus, PowerControl, PowerState, RestorePolicy};
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

/// The longest the restore policy exchange (set, read back) may take: a BMC that stays
/// silent on a command it does not know must not use up the fencing deadline.
const POLICY_LIMIT: Duration = Duration::from_secs(3);

/// What the power fence did about the peer's power restore policy (what its chassis does
/// when mains power returns). "always-off" keeps a fenced node off after a power event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestorePolicyReport {
    /// As read before the fence changed anything; None when it could not be read.
    pub before: Option<RestorePolicy>,
    /// As read back after setting "always-off"; None when not set or not read.
    pub after: Option<RestorePolicy>,
    /// Why the policy is not confirmed "always-off", and what the admin changes.
    pub warning: Option<String>,
}

/// What a successful power fence hands back.
#[derive(Debug, Clone)]
pub struct PowerDown {
    pub proof: Fenced,
    pub restore_policy: RestorePolicyReport,
}

/// A BMC error without the "node '...':" its Display starts with, for messages that
/// already name the node.
fn bmc_detail(e: &crate::bmc::BmcError) -> String {
    match e {
        crate::bmc::BmcError::Lan { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// The warning for a restore policy hamn could not make "always-off".
fn policy_warning(node: &str, bmc: &str, command: &str, why: &str) -> String {
    format!(
        "node '{node}': {why}. The fence holds now, but a power event may start the node \
         again: on {bmc} set the power restore policy (called \"Power Restore Policy\", \
         \"After Power Loss\" or \"AC Power Recovery\" in BMC web interfaces) to \
         \"Always Off\", or run `{command}`"
    )
}

/// Set the restore policy to "always off" and read it back. Never fails the fence: what
/// went wrong becomes the report's warning.
fn hold_off_after_power_loss(
    node: &str,
    bmc: &mut dyn PowerControl,
    before: RestorePolicy,
    deadline: Instant,
) -> RestorePolicyReport {
    let _s = info_span!("restore-policy", before = %before).entered();
    let left = deadline.saturating_duration_since(Instant::now());
    let limit = Instant::now() + POLICY_LIMIT.min(left / 4);
    let describe = bmc.describe();
    let command = bmc.always_off_command();
    let report = match bmc.set_restore_policy(RestorePolicy::AlwaysOff, limit) {
        Err(e) => RestorePolicyReport {
            before: Some(before),
            after: None,
            warning: Some(policy_warning(
                node,
                &describe,
                &command,
                &if before == RestorePolicy::AlwaysOff {
                    // A BMC without the command may report 00b without having the setting.
                    format!(
                        "the BMC reports the power restore policy 'always-off' but refused \
                         to set it ({}), so hamn cannot make sure of it",
                        bmc_detail(&e)
                    )
                } else {
                    format!(
                        "the power restore policy stays '{before}': setting it to \
                         'always-off' failed ({})",
                        bmc_detail(&e)
                    )
                },
            )),
        },
        Ok(support) => match bmc.chassis_status(limit) {
            Ok(st) if st.restore_policy == RestorePolicy::AlwaysOff => RestorePolicyReport {
                before: Some(before),
                after: Some(st.restore_policy),
                warning: None,
            },
            Ok(st) => RestorePolicyReport {
                before: Some(before),
                after: Some(st.restore_policy),
                warning: Some(policy_warning(
                    node,
                    &describe,
                    &command,
                    &format!(
                        "the BMC accepted the power restore policy 'always-off' (it reports \
                         support for{}{}{}) but reads back '{}'",
                        if support.always_off {
                            " always-off"
                        } else {
                            ""
                        },
                        if support.previous { " previous" } else { "" },
                        if support.always_on { " always-on" } else { "" },
                        st.restore_policy
                    ),
                )),
            },
            Err(e) => RestorePolicyReport {
                before: Some(before),
                after: None,
                warning: Some(policy_warning(
                    node,
                    &describe,
                    &command,
                    &format!(
                        "the power restore policy 'always-off' was accepted but could not be \
                         read back ({})",
                        bmc_detail(&e)
                    ),
                )),
            },
        },
    };
    match &report.warning {
        Some(w) => warn!(bmc = %describe, "{w}"),
        None => info!(bmc = %describe, before = %before, "power restore policy set to always-off"),
    }
    report
}

/// How much of the deadline the power down leaves for reading the power state after it,
/// so that an error or a timeout on the power down is followed by a look.
fn look_reserve(policy: &ConfirmPolicy) -> Duration {
    let per_read = policy.poll_interval + LAST_READ_MARGIN;
    let want = policy.settle + per_read * (policy.confirm_reads + 1);
    want.min(policy.deadline.saturating_duration_since(Instant::now()) / 2)
}

/// Set the peer's restore policy to "always off", power it down and confirm it stays off.
/// "Already off" is success, but is still confirmed by the same number of reads. An
/// error or a timeout on the power down is a cue to look, not a verdict: the power state
/// is read as after an accepted power down, and only "off" on the profile's number of
/// consecutive reads is fenced (the proof then carries the BMC's error).
pub fn fence(
    node: &str,
    bmc: &mut dyn PowerControl,
    policy: ConfirmPolicy,
) -> Result<PowerDown, FenceError> {
    let _span = info_span!("fence", node).entered();
    let started = Instant::now();
    let bmc_err = |source| FenceError::Bmc {
        node: node.to_string(),
        source,
    };
    let initial = {
        let _s = info_span!("initial-status").entered();
        bmc.chassis_status(policy.deadline).map_err(bmc_err)?
    };
    let restore_policy =
        hold_off_after_power_loss(node, bmc, initial.restore_policy, policy.deadline);
    let already_off = initial.power == PowerState::Off;
    let mut down_error: Option<crate::bmc::BmcError> = None;
    if already_off {
        info!(bmc = %bmc.describe(), "already off; confirming");
    } else {
        let _s = info_span!("power-down").entered();
        let down_deadline = policy.deadline - look_reserve(&policy);
        match bmc.chassis(ChassisAction::PowerDown, down_deadline) {
            Ok(()) => info!(bmc = %bmc.describe(), "power down accepted; confirming"),
            Err(e) => {
                warn!(bmc = %bmc.describe(), error = %e,
                    "the BMC answered the power down with an error; reading the power state");
                down_error = Some(e);
            }
        }
        sleep_until(policy.deadline, policy.settle);
    }

    // After a power down that failed, every way of not confirming "off" says so and
    // carries the BMC's error.
    let describe = bmc.describe();
    let not_fenced = |down_error: Option<crate::bmc::BmcError>, other: FenceError, seen: String| {
        match down_error {
            Some(source) => FenceError::PowerDownError {
                node: node.to_string(),
                bmc: describe.clone(),
                source,
                seen,
            },
            None => other,
        }
    };

    let _s = info_span!("confirm", needed = policy.confirm_reads).entered();
    let mut consecutive = 0;
    let mut reads = 0;
    let mut seen_off = false;
    let mut last;
    loop {
        // The initial read counts when the node was already off; otherwise every
        // confirming read comes after the power down.
        let state = if reads == 0 && already_off {
            initial.power
        } else {
            match bmc.power_state(policy.deadline) {
                Ok(s) => s,
                // A timeout here means the deadline passed without a readable status.
                Err(e) => {
                    let seen = format!("could not be read afterwards ({e})");
                    return Err(not_fenced(down_error, bmc_err(e), seen));
                }
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
                return Err(not_fenced(
                    down_error,
                    FenceError::PoweredBackOn {
                        node: node.to_string(),
                        bmc: bmc.describe(),
                    },
                    "read 'off' and then 'on' again".into(),
                ));
            }
            PowerState::On => consecutive = 0,
        }
        if consecutive >= policy.confirm_reads {
            let bmc_error = down_error.as_ref().map(bmc_detail);
            if let Some(e) = &bmc_error {
                warn!(error = %e, reads = consecutive,
                    "the BMC reported an error for the power down, but the power reads off");
            }
            let method = FenceMethod::PowerOff {
                bmc: bmc.describe(),
                reads: consecutive,
                already_off,
                bmc_error,
            };
            info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                reads, "fenced: power off confirmed"
            );
            return Ok(PowerDown {
                proof: Fenced::new(node, method),
                restore_policy,
            });
        }
        // A read needs time to be answered (and retransmitted once); one started in the
        // last moments would only time out and hide what was seen.
        if Instant::now() + policy.poll_interval + LAST_READ_MARGIN >= policy.deadline {
            let seen = format!(
                "still reads '{last}' after {:.1}s ({reads} status reads, {} consecutive \
                 'off' needed)",
                started.elapsed().as_secs_f64(),
                policy.confirm_reads
            );
            return Err(not_fenced(
                down_error,
                FenceError::NotConfirmed {
                    node: node.to_string(),
                    bmc: bmc.describe(),
                    last,
                    waited: started.elapsed().as_secs_f64(),
                    reads,
                    needed: policy.confirm_reads,
                },
                seen,
            ));
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
    /// The peer's power restore policy before and after, or why it is not "always-off".
    pub restore_policy: RestorePolicyReport,
    pub profile: String,
    /// IPMI's cipher suite; none for Redfish.
    pub cipher_suite: Option<u8>,
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
    let mut bmc =
        AnyBmc::connect(peer, profiles, connect_deadline, Backoff::default()).map_err(fence_err)?;
    let profile = bmc.profile().clone();
    let policy = ConfirmPolicy {
        confirm_reads: profile.confirm_reads,
        poll_interval: profile.poll_interval,
        settle: profile.power_off_settle,
        deadline: started + timeout.unwrap_or(profile.timeout),
    };
    let suite = bmc.suite();
    let result = fence(&peer.name, &mut bmc, policy);
    bmc.close();
    let done = result?;
    Ok(PowerFenced {
        node: peer.name.clone(),
        fenced: true,
        proof: done.proof,
        restore_policy: done.restore_policy,
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
    read_chassis(peer, profiles).map(|s| s.power)
}

/// One Get Chassis Status through the peer's BMC, changing nothing: power and restore
/// policy, for `hamn status`.
pub fn read_chassis(peer: &Peer, profiles: &Profiles) -> Result<ChassisStatus, FenceError> {
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
    let mut bmc = AnyBmc::connect(peer, profiles, deadline, Backoff::default()).map_err(bmc_err)?;
    let st = bmc.chassis_status(deadline);
    bmc.close();
    st.map_err(bmc_err)
}

#[cfg(test)]
mod tests {
    //! The decision logic against scripted BMC answers; the real exchanges with ipmi_sim
    //! are in tests/fence_ipmi_sim.rs.
    use super::*;
    use crate::bmc::lanplus::LanError;
    use crate::bmc::{BmcError, PolicySupport};

    struct Scripted {
        states: Vec<PowerState>,
        downs: u32,
        /// The power down's answer: None accepts it, Some(code) is that completion code.
        down_error: Option<u8>,
        policy: RestorePolicy,
        /// false: the BMC refuses Set Power Restore Policy (0xC1), as ipmi_sim does.
        settable: bool,
        /// Reads back this instead of the policy set (a BMC that ignores it).
        sticky_policy: bool,
    }

    impl Scripted {
        fn new(states: Vec<PowerState>) -> Scripted {
            Scripted {
                states,
                downs: 0,
                down_error: None,
                policy: RestorePolicy::Previous,
                settable: true,
                sticky_policy: false,
            }
        }
    }

    fn completion(what: &'static str, code: u8) -> BmcError {
        BmcError::Lan {
            node: "mn1".into(),
            source: LanError::Completion {
                bmc: "127.0.0.1:623".parse().expect("addr"),
                what,
                code,
                meaning: "scripted".into(),
            },
        }
    }

    impl PowerControl for Scripted {
        fn chassis_status(&mut self, _: Instant) -> Result<ChassisStatus, BmcError> {
            let power = if self.states.len() > 1 {
                self.states.remove(0)
            } else {
                self.states[0]
            };
            Ok(ChassisStatus {
                power,
                restore_policy: self.policy,
            })
        }
        fn chassis(&mut self, a: ChassisAction, _: Instant) -> Result<(), BmcError> {
            assert_eq!(a, ChassisAction::PowerDown, "fencing must only power down");
            self.downs += 1;
            match self.down_error {
                None => Ok(()),
                Some(code) => Err(completion("Chassis Control (power down)", code)),
            }
        }
        fn set_restore_policy(
            &mut self,
            p: RestorePolicy,
            _: Instant,
        ) -> Result<PolicySupport, BmcError> {
            if !self.settable {
                return Err(completion("Set Power Restore Policy", 0xc1));
            }
            if !self.sticky_policy {
                self.policy = p;
            }
            Ok(PolicySupport {
                always_off: true,
                previous: true,
                always_on: true,
            })
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

    // The restore policy exchange reads the status once more (the read-back): the
    // scripts below start with the initial read and that read-back.

    #[test]
    fn on_then_off_twice_is_fenced_after_one_power_down() {
        let mut b = Scripted::new(vec![On, On, Off, Off]);
        let f = fence("mn1", &mut b, policy(1000)).expect("fenced");
        assert_eq!(b.downs, 1);
        assert!(matches!(
            f.proof.method(),
            FenceMethod::PowerOff {
                already_off: false,
                bmc_error: None,
                ..
            }
        ));
    }

    #[test]
    fn already_off_is_success_without_a_power_down_but_still_confirmed() {
        let mut b = Scripted::new(vec![Off, Off]);
        let f = fence("mn1", &mut b, policy(1000)).expect("fenced");
        assert_eq!(b.downs, 0);
        assert!(matches!(
            f.proof.method(),
            FenceMethod::PowerOff {
                already_off: true,
                reads: 2,
                ..
            }
        ));
    }

    #[test]
    fn off_then_on_is_a_failure() {
        let mut b = Scripted::new(vec![On, On, Off, On]);
        let e = fence("mn1", &mut b, policy(1000)).unwrap_err();
        assert!(matches!(e, FenceError::PoweredBackOn { .. }), "{e}");
    }

    #[test]
    fn staying_on_until_the_deadline_is_not_fenced() {
        let mut b = Scripted::new(vec![On]);
        let e = fence("mn1", &mut b, policy(50)).unwrap_err().to_string();
        assert!(e.contains("NOT fenced") && e.contains("'on'"), "{e}");
    }

    #[test]
    fn the_restore_policy_is_set_to_always_off_before_the_power_down_and_read_back() {
        let mut b = Scripted::new(vec![On, On, Off, Off]);
        let f = fence("mn1", &mut b, policy(1000)).expect("fenced");
        assert_eq!(
            f.restore_policy,
            RestorePolicyReport {
                before: Some(RestorePolicy::Previous),
                after: Some(RestorePolicy::AlwaysOff),
                warning: None,
            }
        );
    }

    #[test]
    fn a_bmc_refusing_the_restore_policy_is_a_warning_naming_the_setting_not_a_failure() {
        let mut b = Scripted::new(vec![On, Off, Off]);
        b.settable = false;
        let f = fence("mn1", &mut b, policy(1000)).expect("still fenced");
        assert_eq!(f.restore_policy.before, Some(RestorePolicy::Previous));
        assert_eq!(f.restore_policy.after, None);
        let w = f.restore_policy.warning.expect("warning");
        assert!(
            w.contains("node 'mn1'")
                && w.contains("0xc1")
                && w.contains("Power Restore Policy")
                && w.contains("Always Off")
                && w.contains("chassis policy always-off"),
            "{w}"
        );
    }

    #[test]
    fn a_policy_accepted_but_read_back_unchanged_is_a_warning() {
        let mut b = Scripted::new(vec![On, On, Off, Off]);
        b.sticky_policy = true;
        let f = fence("mn1", &mut b, policy(1000)).expect("fenced");
        assert_eq!(f.restore_policy.after, Some(RestorePolicy::Previous));
        let w = f.restore_policy.warning.expect("warning");
        assert!(w.contains("reads back 'previous'"), "{w}");
    }

    #[test]
    fn an_error_on_the_power_down_with_the_power_reading_off_is_fenced_and_says_so() {
        let mut b = Scripted::new(vec![On, On, Off, Off]);
        b.down_error = Some(0xff);
        let f = fence("mn1", &mut b, policy(1000)).expect("fenced after looking");
        assert_eq!(b.downs, 1, "the power down is never repeated blindly");
        match f.proof.method() {
            FenceMethod::PowerOff {
                bmc_error: Some(e),
                reads: 2,
                already_off: false,
                ..
            } => assert!(e.contains("0xff"), "{e}"),
            other => panic!("{other:?}"),
        }
        let summary = f.proof.method().summary();
        assert!(
            summary.contains("the BMC reported an error") && summary.contains("reads off"),
            "{summary}"
        );
    }

    #[test]
    fn an_error_on_the_power_down_with_the_power_still_on_is_not_fenced_and_keeps_the_error() {
        let mut b = Scripted::new(vec![On]);
        b.down_error = Some(0xff);
        let e = fence("mn1", &mut b, policy(200)).unwrap_err();
        assert!(matches!(e, FenceError::PowerDownError { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("NOT fenced")
                && msg.contains("0xff")
                && msg.contains("still reads 'on'")
                && msg.contains("hamn power status mn1"),
            "{msg}"
        );
    }

    #[test]
    fn an_error_on_the_power_down_then_off_and_on_again_is_not_fenced() {
        let mut b = Scripted::new(vec![On, On, Off, On]);
        b.down_error = Some(0xff);
        let msg = fence("mn1", &mut b, policy(1000)).unwrap_err().to_string();
        assert!(
            msg.contains("0xff") && msg.contains("'off' and then 'on'"),
            "{msg}"
        );
    }

    #[test]
    fn one_off_read_after_an_error_is_not_enough() {
        let mut b = Scripted::new(vec![On, On, Off]);
        b.states.push(On);
        b.down_error = Some(0xff);
        assert!(fence("mn1", &mut b, policy(1000)).is_err());
    }
}
