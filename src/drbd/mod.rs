//! DRBD mirrors of the xCAT data (xCAT's options 3 and 6): the state of a resource as
//! `drbdadm` reports it, whether this node's copy may be promoted, the promotion and the
//! demotion. What decides is DRBD's own view of the local disk: UpToDate may be promoted;
//! Consistent may once the peer is known off (DRBD then asks its fence-peer handler);
//! Outdated and Inconsistent copies lack the peer's last writes and are promoted only
//! when the admin names the resource after being told so; a Diskless or unconfigured
//! resource never is.
//!
//! A promotion writes nothing yet, but it lets this node write a copy the peer may still
//! be writing to its own disk: it takes a proof that the peer's power is off (a
//! preempted reservation stops no write to a local disk).

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::{info, info_span};

use crate::exec::{self, ExecError};
use crate::fence::proof::{FenceMethod, Fenced, ProofError};

/// drbdadm answers at once; a hung one (a frozen device) must not hang the takeover.
const DRBDADM_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DrbdError {
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error(
        "refusing to promote DRBD resource {resource}: the proof that {node} cannot write \
         is \"{proof}\", which does not stop writes to {node}'s own copy. Nothing was \
         changed. Power {node} off first (`hamn fence {node}`), or, once you have \
         confirmed it is off, run the takeover with --i-know-the-peer-is-off (logged)"
    )]
    NeedsPowerOff {
        resource: String,
        node: String,
        proof: String,
    },
    #[error("DRBD resource {resource}: {why}. Nothing was changed. {next}")]
    Refused {
        resource: String,
        why: String,
        next: String,
    },
    #[error(
        "DRBD resource {resource}: `{command}` failed: {said}. The copy is still {state}; \
         `drbdadm status {resource}` and the kernel log (`dmesg | grep drbd`) say more"
    )]
    Failed {
        resource: String,
        command: String,
        said: String,
        state: String,
    },
    #[error(
        "DRBD resource {resource}: still connected to a Primary peer {waited:.0} s after \
         {node} was powered off ({state}); DRBD has not noticed the loss yet. Check the \
         replication link's timeouts (ping-int, ping-timeout) and run again"
    )]
    PeerStillPrimary {
        resource: String,
        node: String,
        waited: f64,
        state: String,
    },
}

/// One side's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Role {
    Primary,
    Secondary,
    Unknown,
    /// The resource is not up on this node (`drbdadm up` was not run).
    Unconfigured,
}

/// A disk state, as DRBD names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Disk {
    UpToDate,
    Consistent,
    Outdated,
    Inconsistent,
    Diskless,
    Attaching,
    Negotiating,
    Failed,
    DUnknown,
    Unconfigured,
}

impl Disk {
    fn parse(s: &str) -> Disk {
        match s.trim() {
            "UpToDate" => Disk::UpToDate,
            "Consistent" => Disk::Consistent,
            "Outdated" => Disk::Outdated,
            "Inconsistent" => Disk::Inconsistent,
            "Diskless" => Disk::Diskless,
            "Attaching" => Disk::Attaching,
            "Negotiating" => Disk::Negotiating,
            "Failed" => Disk::Failed,
            "Unconfigured" => Disk::Unconfigured,
            _ => Disk::DUnknown,
        }
    }
}

impl Role {
    fn parse(s: &str) -> Role {
        match s.trim() {
            "Primary" => Role::Primary,
            "Secondary" => Role::Secondary,
            "Unconfigured" => Role::Unconfigured,
            _ => Role::Unknown,
        }
    }
}

/// What `drbdadm role`, `cstate` and `dstate` report for a resource: this node's side
/// first, the peer's after the '/'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct State {
    pub resource: String,
    pub role: Role,
    pub peer_role: Role,
    /// Connected, WFConnection, StandAlone, SyncSource...
    pub connection: String,
    pub disk: Disk,
    pub peer_disk: Disk,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "role {:?}/{:?}, connection {}, disk {:?}/{:?}",
            self.role, self.peer_role, self.connection, self.disk, self.peer_disk
        )
    }
}

/// "Secondary/Primary" -> (Secondary, Primary); "Secondary" (DRBD 9, no peer) ->
/// (Secondary, Unknown).
fn pair(text: &str) -> (&str, &str) {
    let first = text.lines().next().unwrap_or("").trim();
    first.split_once('/').unwrap_or((first, "Unknown"))
}

/// The state from the three answers (each drbdadm's standard output, or "Unconfigured"
/// where it failed because the resource is not up).
pub fn parse_state(resource: &str, role: &str, cstate: &str, dstate: &str) -> State {
    let (r, pr) = pair(role);
    let (d, pd) = pair(dstate);
    State {
        resource: resource.to_string(),
        role: Role::parse(r),
        peer_role: Role::parse(pr),
        connection: cstate.lines().next().unwrap_or("").trim().to_string(),
        disk: Disk::parse(d),
        peer_disk: Disk::parse(pd),
    }
}

fn drbdadm(args: &[&str]) -> exec::Command {
    let mut argv = vec!["drbdadm"];
    argv.extend_from_slice(args);
    exec::Command::new(argv)
        .timeout(DRBDADM_TIMEOUT)
        .hint("install drbd-utils")
}

/// Read the resource's state now.
pub fn state(resource: &str) -> Result<State, DrbdError> {
    let mut answers = Vec::new();
    for what in ["role", "cstate", "dstate"] {
        let ran = drbdadm(&[what, resource]).run()?;
        // A resource that is not up: drbdadm fails ("Device minor not allocated");
        // any other failure (an unknown resource) is the admin's to see.
        if ran.success() {
            answers.push(ran.stdout);
        } else if ran.output().contains("not allocated") || ran.output().contains("Unconfigured") {
            answers.push("Unconfigured".to_string());
        } else {
            return Err(ran.failure().into());
        }
    }
    Ok(parse_state(resource, &answers[0], &answers[1], &answers[2]))
}

/// What may be done with this node's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    AlreadyPrimary,
    /// `drbdadm primary`; `force`: with --force, as the admin asked by name.
    Promote {
        force: bool,
    },
    Refuse {
        why: String,
        next: String,
    },
}

/// The rule, on DRBD's view of the local disk. `forced`: the admin named this resource
/// with --force-promote after being told what would be lost.
pub fn verdict(s: &State, forced: bool) -> Verdict {
    let r = &s.resource;
    if s.role == Role::Primary {
        return Verdict::AlreadyPrimary;
    }
    let lost = |what: &str| {
        format!(
            "Bring up the peer's copy instead (power it on and run `hamn takeover` there), \
             or, accepting that {what} is lost, run `hamn takeover --force-promote {r}`"
        )
    };
    match s.disk {
        Disk::UpToDate | Disk::Consistent => Verdict::Promote { force: false },
        Disk::Outdated if forced => Verdict::Promote { force: true },
        Disk::Inconsistent if forced => Verdict::Promote { force: true },
        Disk::Outdated => Verdict::Refuse {
            why: format!(
                "this node's copy is Outdated ({s}): the peer went on writing after \
                 replication stopped, and those writes are not here"
            ),
            next: lost("what the peer wrote since"),
        },
        Disk::Inconsistent => Verdict::Refuse {
            why: format!(
                "this node's copy is Inconsistent ({s}): a resync to this node had not \
                 finished, so its blocks are a mix of old and new"
            ),
            next: lost("the data (the file system check will likely fail)"),
        },
        Disk::Diskless | Disk::Failed => Verdict::Refuse {
            why: format!("this node has no usable local disk for it ({s})"),
            next: format!(
                "Check the backing device, attach it (`drbdadm attach {r}`) and run again"
            ),
        },
        Disk::Unconfigured => Verdict::Refuse {
            why: "the resource is not up on this node".to_string(),
            next: format!(
                "Bring it up (`drbdadm up {r}`), let it connect or settle, and run again"
            ),
        },
        Disk::Attaching | Disk::Negotiating | Disk::DUnknown => Verdict::Refuse {
            why: format!("DRBD does not know this node's disk state yet ({s})"),
            next: "Wait a moment and run again; `drbdadm status` shows when it settles".to_string(),
        },
    }
}

/// The commands `promote` runs, for plans.
pub fn promote_commands(resource: &str, force: bool) -> Vec<String> {
    vec![
        format!("drbdadm role {resource}; drbdadm cstate {resource}; drbdadm dstate {resource}"),
        if force {
            format!("drbdadm primary --force {resource}   # asked for by name: --force-promote")
        } else {
            format!("drbdadm primary {resource}")
        },
    ]
}

/// What `promote` did.
#[derive(Debug, Clone, Serialize)]
pub struct Promoted {
    pub already: bool,
    pub forced: bool,
    pub before: State,
    pub after: State,
}

/// Make this node's copy Primary. `fenced` must show `owner` powered off (or the admin's
/// word). Waits (up to `wait`) for DRBD to notice that the peer, powered off, is gone:
/// until then DRBD still counts a Primary peer and refuses a second one.
pub fn promote(
    resource: &str,
    forced: bool,
    wait: Duration,
    fenced: &Fenced,
    owner: &str,
) -> Result<Promoted, DrbdError> {
    fenced.covers(owner, &format!("DRBD resource {resource}"))?;
    // A planned switchover: the peer is up, Secondary and connected; DRBD itself refuses
    // it a second Primary as long as the resource stays connected, which it must be now.
    let switchover = matches!(fenced.method(), FenceMethod::MirrorSecondary { resources }
        if resources.iter().any(|r| r == resource));
    if !fenced.stops_all_writes() && !switchover {
        return Err(DrbdError::NeedsPowerOff {
            resource: resource.to_string(),
            node: owner.to_string(),
            proof: fenced.method().summary(),
        });
    }
    let _span = info_span!("drbd-promote", resource, forced).entered();
    let started = Instant::now();
    let before = state(resource)?;
    if switchover && !(before.connection == "Connected" && before.peer_role == Role::Secondary) {
        return Err(DrbdError::Refused {
            resource: resource.to_string(),
            why: format!(
                "{owner} was not powered off because DRBD showed it Secondary and connected, \
                 but that changed ({before})"
            ),
            next: "Run the takeover again: it powers the peer off this time".to_string(),
        });
    }
    let force = match verdict(&before, forced) {
        Verdict::AlreadyPrimary => {
            return Ok(Promoted {
                already: true,
                forced: false,
                after: before.clone(),
                before,
            });
        }
        Verdict::Refuse { why, next } => {
            return Err(DrbdError::Refused {
                resource: resource.to_string(),
                why,
                next,
            });
        }
        Verdict::Promote { force } => force,
    };
    if force {
        tracing::warn!(
            resource,
            state = %before,
            "promoting with --force, as the admin asked by name: what the peer wrote since \
             this copy fell behind is lost"
        );
    }
    let args: Vec<&str> = if force {
        vec!["primary", "--force", resource]
    } else {
        vec!["primary", resource]
    };
    let cmd = drbdadm(&args);
    let after = loop {
        let ran = cmd.run()?;
        // DRBD's own state is the proof, not the exit status.
        let after = state(resource)?;
        if ran.success() && after.role == Role::Primary {
            break after;
        }
        // Right after the power-off DRBD still counts the peer as its connected Primary
        // and refuses a second one, until it notices the loss (ping-int, ping-timeout):
        // asking again at once is what takes over soonest. Not on a switchover, where
        // the peer is up and a Primary peer means it is in use.
        let peer_primary = after.peer_role == Role::Primary && after.connection == "Connected";
        if peer_primary && !switchover && started.elapsed() < wait {
            continue;
        }
        if peer_primary {
            return Err(DrbdError::PeerStillPrimary {
                resource: resource.to_string(),
                node: owner.to_string(),
                waited: started.elapsed().as_secs_f64(),
                state: after.to_string(),
            });
        }
        return Err(DrbdError::Failed {
            resource: resource.to_string(),
            command: cmd.display(),
            said: exec::tail(&ran.output()).trim().to_string(),
            state: after.to_string(),
        });
    };
    info!(seconds = started.elapsed().as_secs_f64(), "promoted");
    Ok(Promoted {
        already: false,
        forced: force,
        before,
        after,
    })
}

/// Make this node's copy Secondary again (giveback), read back.
pub fn demote(resource: &str) -> Result<State, DrbdError> {
    let _span = info_span!("drbd-demote", resource).entered();
    let now = state(resource)?;
    if now.role != Role::Primary {
        return Ok(now);
    }
    let cmd = drbdadm(&["secondary", resource]);
    let ran = cmd.run()?;
    let after = state(resource)?;
    if !ran.success() || after.role == Role::Primary {
        return Err(DrbdError::Failed {
            resource: resource.to_string(),
            command: cmd.display(),
            said: exec::tail(&ran.output()).trim().to_string(),
            state: after.to_string(),
        });
    }
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(role: &str, cstate: &str, dstate: &str) -> State {
        parse_state("xcat", role, cstate, dstate)
    }

    #[test]
    fn drbdadms_answers_are_this_node_then_the_peer() {
        let s = st("Secondary/Primary\n", "Connected\n", "UpToDate/UpToDate\n");
        assert_eq!((s.role, s.peer_role), (Role::Secondary, Role::Primary));
        assert_eq!((s.disk, s.peer_disk), (Disk::UpToDate, Disk::UpToDate));
        assert_eq!(s.connection, "Connected");
        // DRBD 9 without a peer prints one word.
        let s = st("Secondary", "StandAlone", "Outdated");
        assert_eq!((s.peer_role, s.peer_disk), (Role::Unknown, Disk::DUnknown));
        assert_eq!(s.disk, Disk::Outdated);
    }

    #[test]
    fn an_up_to_date_or_consistent_copy_is_promoted_and_the_others_are_refused_with_why() {
        let ok = st("Secondary/Unknown", "WFConnection", "UpToDate/DUnknown");
        assert_eq!(verdict(&ok, false), Verdict::Promote { force: false });
        let c = st("Secondary/Unknown", "WFConnection", "Consistent/DUnknown");
        assert_eq!(verdict(&c, false), Verdict::Promote { force: false });
        let p = st("Primary/Unknown", "WFConnection", "UpToDate/DUnknown");
        assert_eq!(verdict(&p, false), Verdict::AlreadyPrimary);

        let out = st("Secondary/Unknown", "WFConnection", "Outdated/DUnknown");
        let Verdict::Refuse { why, next } = verdict(&out, false) else {
            panic!("an Outdated copy was not refused");
        };
        assert!(
            why.contains("Outdated") && why.contains("not here"),
            "{why}"
        );
        assert!(next.contains("--force-promote xcat"), "{next}");
        // Named by the admin: forced.
        assert_eq!(verdict(&out, true), Verdict::Promote { force: true });

        let inc = st("Secondary/Unknown", "WFConnection", "Inconsistent/DUnknown");
        assert!(matches!(verdict(&inc, false), Verdict::Refuse { .. }));
        // Never forced: no disk, or not up.
        for s in [
            st("Secondary/Unknown", "WFConnection", "Diskless/DUnknown"),
            st("Unconfigured", "Unconfigured", "Unconfigured"),
        ] {
            let v = verdict(&s, true);
            assert!(matches!(v, Verdict::Refuse { .. }), "{s}: {v:?}");
        }
    }

    #[test]
    fn a_plan_shows_force_only_when_asked_by_name() {
        assert_eq!(promote_commands("xcat", false)[1], "drbdadm primary xcat");
        assert!(promote_commands("xcat", true)[1].starts_with("drbdadm primary --force xcat"));
    }
}
