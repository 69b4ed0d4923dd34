//! `hamn drbd fence-peer` and `hamn drbd unfence-peer`: DRBD's handlers for its
//! `fencing resource-and-stonith` policy (drbd.conf(5), "handlers"). DRBD freezes the
//! resource's I/O when a Primary loses its peer and runs `fence-peer`; the exit status
//! tells it what happened, and only some statuses let the I/O resume:
//!
//! - 7: the peer was fenced (powered off, confirmed by its BMC): I/O resumes;
//! - anything that is not 3 to 7: the handler failed: I/O stays frozen until the admin
//!   acts (`drbdadm resume-io`).
//!
//! Every failure, whatever its cause, answers 1. A hamn error status such as 3 (its
//! "configuration" status) would read to DRBD as "the peer is Inconsistent" and resume
//! I/O with the peer perhaps alive; 5 ("unreachable, assumed dead") likewise. An
//! unreachable BMC proves nothing, so it is a failure.

use super::{CommandError, EXIT_FAILED, Report, load};
use crate::cli::{Cli, DrbdAction};
use crate::config::{Config, Peer};

/// DRBD's "the peer was fenced off the cluster (STONITH)".
pub const EXIT_PEER_FENCED: u8 = 7;

pub fn drbd_cmd(cli: &Cli, action: &DrbdAction) -> Result<Report, CommandError> {
    let result = match action {
        DrbdAction::FencePeer { standby_delay } => fence_peer(cli, *standby_delay),
        DrbdAction::UnfencePeer => unfence_peer(),
    };
    // Never a status DRBD reads as success: see the module documentation.
    result.or_else(|e| {
        tracing::error!(
            resource = %std::env::var("DRBD_RESOURCE").unwrap_or_default(),
            "{e}; DRBD keeps the resource's I/O frozen"
        );
        Ok(Report {
            human: String::new(),
            json: serde_json::json!({"ok": false, "error": e.to_string()}),
            exit: EXIT_FAILED,
        })
    })
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The peer DRBD names (DRBD_PEERS, or the older DRBD_PEER) among hamn.toml's peers; with
/// one peer in hamn.toml and a DRBD host name that differs, that peer.
fn peer_named(cfg: &Config) -> Result<&Peer, CommandError> {
    let named = env("DRBD_PEERS")
        .or_else(|| env("DRBD_PEER"))
        .unwrap_or_default();
    for n in named.split_whitespace() {
        if let Ok(p) = cfg.peer(n) {
            return Ok(p);
        }
        // DRBD may give the host's full name; hamn.toml the short one.
        if let Some(short) = n.split('.').next()
            && let Ok(p) = cfg.peer(short)
        {
            return Ok(p);
        }
    }
    if cfg.peers.len() == 1
        && let Some(p) = cfg.peers.values().next()
    {
        tracing::warn!(
            drbd_peers = %named,
            peer = %p.name,
            "DRBD's peer name is not a peer of hamn.toml; fencing its only peer"
        );
        return Ok(p);
    }
    Err(CommandError::Usage(format!(
        "DRBD names the peer '{named}' (DRBD_PEERS), which is not a peer of {}; name the \
         peers in hamn.toml as in drbd.conf's `on` sections",
        cfg.path.display()
    )))
}

fn fence_peer(cli: &Cli, standby_delay: Option<f64>) -> Result<Report, CommandError> {
    let resource = env("DRBD_RESOURCE").ok_or_else(|| {
        CommandError::Usage(
            "DRBD_RESOURCE is not set: `hamn drbd fence-peer` is DRBD's fence-peer handler \
             (drbd.conf: handlers { fence-peer \"/usr/sbin/hamn drbd fence-peer\"; })"
                .into(),
        )
    })?;
    let (cfg, profiles) = load(cli)?;
    let peer = peer_named(&cfg)?;
    let _span = tracing::info_span!("drbd-fence-peer", resource, peer = %peer.name).entered();
    // A node whose own copy is known stale must not power off the node that may hold
    // the only good one.
    let state = crate::drbd::state(&resource).map_err(|e| CommandError::Usage(e.to_string()))?;
    if !matches!(
        state.disk,
        crate::drbd::Disk::UpToDate | crate::drbd::Disk::Consistent
    ) {
        return Err(CommandError::Usage(format!(
            "not fencing {}: this node's copy of {resource} is {:?} ({state}), so {} may \
             hold the only good copy",
            peer.name, state.disk, peer.name
        )));
    }
    // The serving node (Primary) gives the standby's cluster the first move: if only
    // the link died, the standby fences this node meanwhile and one node remains; if
    // the standby is gone, it is powered off after the delay. A Secondary being
    // promoted fences at once: its peer was the one serving.
    if let Some(d) = standby_delay.filter(|d| *d > 0.0)
        && state.role == crate::drbd::Role::Primary
    {
        let wait = std::time::Duration::try_from_secs_f64(d).map_err(|_| {
            CommandError::Usage(format!("--standby-delay {d}: not a number of seconds"))
        })?;
        tracing::info!(
            seconds = d,
            "this node is Primary of {resource}: waiting the standby delay before powering \
             {} off",
            peer.name
        );
        std::thread::sleep(wait);
    }
    let done = super::fence_recorded("drbd fence-peer", Some(&cfg), peer, &profiles, None)?;
    let how = done.proof.method().summary();
    tracing::info!(
        "{}: fenced for DRBD resource {resource} ({how}); DRBD may resume I/O",
        peer.name
    );
    Ok(Report {
        human: format!("{}: FENCED for DRBD resource {resource} ({how})", peer.name),
        json: serde_json::json!({"ok": true, "resource": resource, "peer": peer.name,
            "proof": done.proof}),
        exit: EXIT_PEER_FENCED,
    })
}

/// After a resync made this node's copy UpToDate again (DRBD's after-resync-target): a
/// power fence leaves nothing to lift (hamn never powers a node on), so this records
/// that the copy is whole again.
fn unfence_peer() -> Result<Report, CommandError> {
    let resource = env("DRBD_RESOURCE").ok_or_else(|| {
        CommandError::Usage("DRBD_RESOURCE is not set: this is DRBD's handler".into())
    })?;
    let state = crate::drbd::state(&resource).map_err(|e| CommandError::Usage(e.to_string()))?;
    tracing::info!(resource, %state, "resync done; nothing to lift after a power fence");
    Ok(Report {
        human: format!("DRBD resource {resource}: {state}; nothing to lift"),
        json: serde_json::json!({"ok": true, "resource": resource, "state": state}),
        exit: super::EXIT_OK,
    })
}
