//! The duplicate address check in the background, started before the peer is fenced.
//!
//! Probing only asks ("who has the address?", from nobody), so it may begin with the
//! takeover; what it heard decides only under two rules, because until the peer is
//! confirmed off the peer itself may still answer for the address:
//! - silence counts only if the listening lasted until fencing was confirmed;
//! - an answer counts only from a probe that started after it. An earlier answer (most
//!   likely the old primary, alive until its power went) means probing again, after.
//!
//! A crashed primary answers nothing, so the usual takeover has its verdict by the time
//! the filesystems are mounted; a hung one that still answers costs one probe after the
//! fence, as if the check had started there.

use std::net::IpAddr;
use std::thread::JoinHandle;
use std::time::Instant;

use tracing::info;

use super::{NetError, ServiceIp};
use crate::fence::proof::Fenced;

/// What one probe heard: who answered, or nobody until `ended`.
#[derive(Debug)]
struct Heard {
    who: Option<String>,
    ended: Instant,
}

/// A duplicate address check running in the background, not yet tied to a fence.
#[derive(Debug)]
pub struct Probe {
    address: IpAddr,
    started: Instant,
    thread: JoinHandle<Result<Heard, NetError>>,
}

/// A check whose verdict is judged against the moment the peer was fenced.
#[derive(Debug)]
pub struct FencedProbe {
    probe: Probe,
    fenced_at: Instant,
}

/// What a probe's result means once the fence is known.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Judgement {
    /// Someone answered after the peer was fenced: the MAC.
    Taken(String),
    /// Nobody answered, and the listening lasted past the fence.
    Free,
    /// Nothing that counts: probe again, now.
    Again,
}

/// Start asking whether anyone answers for `ip` (see [`super::someone_else_answers`]).
pub fn start(ip: &ServiceIp) -> Result<Probe, NetError> {
    info!(address = %ip.address, "duplicate address check started");
    let mine = ip.clone();
    let span = tracing::Span::current();
    let started = Instant::now();
    let thread = std::thread::Builder::new()
        .name("dad-probe".into())
        .spawn(move || {
            let _span = span.entered();
            let who = super::someone_else_answers(&mine)?;
            Ok(Heard {
                who,
                ended: Instant::now(),
            })
        })
        .map_err(|e| NetError::ProbeLost {
            address: ip.address,
            reason: format!("cannot start a thread: {e}"),
        })?;
    Ok(Probe {
        address: ip.address,
        started,
        thread,
    })
}

impl Probe {
    /// Tie the check to `fenced`, confirmed by now. A check that already ended with
    /// nothing that counts is replaced by a fresh one at once, so that it runs while the
    /// filesystems are checked rather than after.
    pub fn after_fencing(self, ip: &ServiceIp, fenced: &Fenced) -> Result<FencedProbe, NetError> {
        let fenced_at = Instant::now();
        // Ended before the fence was confirmed: nothing it heard counts.
        let probe = if self.thread.is_finished() {
            info!(
                fenced = fenced.node(),
                "probing again now that the peer is fenced"
            );
            start(ip)?
        } else {
            self
        };
        Ok(FencedProbe { probe, fenced_at })
    }

    fn join(self) -> Result<Heard, NetError> {
        let address = self.address;
        self.thread.join().unwrap_or_else(|_| {
            Err(NetError::ProbeLost {
                address,
                reason: "its thread panicked".into(),
            })
        })
    }
}

impl FencedProbe {
    pub(super) fn address(&self) -> IpAddr {
        self.probe.address
    }

    /// Wait for the check and judge it.
    pub(super) fn verdict(self) -> Result<Judgement, NetError> {
        let started = self.probe.started;
        let heard = self.probe.join();
        // A check that began after the fence: its errors are the answer.
        let heard = match heard {
            Err(e) if started >= self.fenced_at => return Err(e),
            other => other,
        };
        Ok(judge(started, &heard, self.fenced_at))
    }
}

/// The two rules of the module documentation. A check that failed before the fence
/// (the link not up yet, say) is simply made again.
fn judge(started: Instant, heard: &Result<Heard, NetError>, fenced_at: Instant) -> Judgement {
    match heard {
        Ok(Heard { who: Some(mac), .. }) if started >= fenced_at => Judgement::Taken(mac.clone()),
        Ok(Heard { who: None, ended }) if *ended >= fenced_at => Judgement::Free,
        _ => Judgement::Again,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn heard(who: Option<&str>, ended: Instant) -> Result<Heard, NetError> {
        Ok(Heard {
            who: who.map(str::to_string),
            ended,
        })
    }

    #[test]
    fn only_what_was_heard_after_the_fence_decides() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let fenced = ms(300);
        // The usual crash: nobody answered, from before the fence until after it.
        assert_eq!(judge(t0, &heard(None, ms(1000)), fenced), Judgement::Free);
        // Silence that ended before the fence says nothing about after it.
        assert_eq!(judge(t0, &heard(None, ms(200)), fenced), Judgement::Again);
        // The old primary answering while it was still on: probe again, not a conflict.
        assert_eq!(
            judge(t0, &heard(Some("52:54:00:00:00:01"), ms(10)), fenced),
            Judgement::Again
        );
        // A check begun after the fence that hears someone: taken.
        assert_eq!(
            judge(ms(400), &heard(Some("52:54:00:00:00:02"), ms(500)), fenced),
            Judgement::Taken("52:54:00:00:00:02".into())
        );
        // A check that failed early is made again.
        let lost = Err(NetError::ProbeLost {
            address: "10.0.0.1".parse().expect("ip"),
            reason: "test".into(),
        });
        assert_eq!(judge(t0, &lost, fenced), Judgement::Again);
    }
}
