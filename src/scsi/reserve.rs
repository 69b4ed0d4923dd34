//! Persistent reservations on a LUN, applied on every path (every I_T nexus) the
//! inventory finds for it, with a per-path report. An operation that succeeded on only
//! some paths is `Partial` and fails: a path left unregistered cannot write after the
//! takeover, and a path still registered for the failed node could.
//!
//! Preempting needs a `Fenced` proof: taking a LUN from a node that may still run would
//! make it fail writes mid-transaction instead of being stopped cleanly first.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use tracing::{info, info_span, warn};

use super::pr::{self, InAction, Key, OutAction, OutParams, PrType};
use super::sense;
use super::sg::{Data, ScsiDevice, SgError};
use crate::config::ReservationType;
use crate::fence::proof::{Fenced, ProofError};
use crate::profiles::{Profiles, StorageProfile};

const TIMEOUT: Duration = Duration::from_secs(20);
const ALLOC: u16 = 8192;

#[derive(Debug, thiserror::Error)]
pub enum PrError {
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error(
        "LUN {lun} does not support persistent reservations ({detail}); it cannot be fenced at the storage: use a LUN that does (on QEMU: scsi-block over iSCSI, not scsi-hd)"
    )]
    Unsupported { lun: String, detail: String },
    #[error(
        "LUN {lun}: {op} succeeded on {ok} of {total} paths; failed: {failed}. Fix the failed paths (multipath -ll) and run the command again: it is safe to repeat"
    )]
    Partial {
        lun: String,
        op: &'static str,
        ok: usize,
        total: usize,
        failed: String,
    },
    #[error("LUN {lun}: {op} failed on every path: {detail}")]
    Failed {
        lun: String,
        op: &'static str,
        detail: String,
    },
    #[error(
        "LUN {lun}: after the preempt, {detail}. The victim may still be able to write: do not mount; check `hamn pr status {lun}` and `sg_persist --in -k -r`"
    )]
    NotVerified { lun: String, detail: String },
    #[error("'{0}' is not a reservation key: write 0x and up to 16 hex digits")]
    BadKey(String),
    #[error(
        "LUN {lun}: this node's key {key} is registered on no path (holder: {holder}). \
         Either the peer preempted it, because it is taking over at the same moment and \
         won: stop, the peer owns the storage; or this node was never registered: run \
         `hamn pr unfence --all-shared` at boot, as the setup in hamn(8) says"
    )]
    NotRegistered {
        lun: String,
        key: String,
        holder: String,
    },
}

pub use crate::lun::Lun;

pub fn parse_key(s: &str) -> Result<Key, PrError> {
    let hex = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(hex, 16)
        .ok()
        .filter(|k| *k != 0)
        .map(Key)
        .ok_or_else(|| PrError::BadKey(s.to_string()))
}

pub fn pr_type(t: ReservationType) -> PrType {
    match t {
        ReservationType::WriteExclusive => PrType::WriteExclusive,
        ReservationType::ExclusiveAccess => PrType::ExclusiveAccess,
        ReservationType::WriteExclusiveRegistrantsOnly => PrType::WriteExclusiveRegistrantsOnly,
        ReservationType::ExclusiveAccessRegistrantsOnly => PrType::ExclusiveAccessRegistrantsOnly,
    }
}

/// What one path said.
#[derive(Debug, Clone, Serialize)]
pub struct PathReport {
    pub path: String,
    pub ok: bool,
    pub error: Option<String>,
    pub generation: Option<u32>,
    pub keys: Vec<String>,
    pub holder: Option<String>,
    pub reservation_type: Option<String>,
    /// Who registered each key, from READ FULL STATUS where the target supports it.
    pub registrants: Vec<Registrant>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Registrant {
    pub key: String,
    /// Initiator name (iSCSI) from the TransportID, when the target reports one.
    pub initiator: Option<String>,
    pub holder: bool,
}

impl PathReport {
    fn new(path: &std::path::Path) -> Self {
        PathReport {
            path: path.display().to_string(),
            ok: false,
            error: None,
            generation: None,
            keys: Vec::new(),
            holder: None,
            reservation_type: None,
            registrants: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LunReport {
    pub lun: String,
    pub wwid: Option<String>,
    pub paths: Vec<PathReport>,
    /// Things the admin should know (fallbacks taken, unit attentions).
    pub notes: Vec<String>,
}

/// The basic PERSISTENT RESERVE OUT parameter list hamn uses: this I_T nexus only,
/// no persistence through power loss (the target's default), no TransportIDs.
fn basic_params(key: Key, sa_key: Key) -> OutParams {
    OutParams {
        key,
        sa_key,
        aptpl: false,
        all_tg_pt: false,
        spec_i_pt: false,
    }
}

pub fn key_text(k: Key) -> String {
    format!("0x{:016x}", k.0)
}

fn open(path: &std::path::Path) -> Result<ScsiDevice, SgError> {
    ScsiDevice::open(path, TIMEOUT)
}

fn unsupported(lun: &Lun, e: &SgError) -> Option<PrError> {
    e.scsi()
        .filter(|s| sense::is_unsupported(s))
        .map(|s| PrError::Unsupported {
            lun: lun.name.clone(),
            detail: s.to_string(),
        })
}

/// READ KEYS and READ RESERVATION on one path.
fn read_path(path: &std::path::Path) -> Result<PathReport, SgError> {
    let dev = open(path)?;
    let mut r = PathReport::new(path);
    let keys = dev.execute(
        &pr::pr_in_cdb(InAction::ReadKeys, ALLOC),
        Data::In(ALLOC as usize),
    )?;
    let keys = pr::ReadKeys::decode(&keys).map_err(|e| decode_err(path, e))?;
    r.generation = Some(keys.generation);
    r.keys = keys.keys.iter().map(|k| key_text(*k)).collect();
    let res = dev.execute(
        &pr::pr_in_cdb(InAction::ReadReservation, ALLOC),
        Data::In(ALLOC as usize),
    )?;
    let res = pr::ReadReservation::decode(&res).map_err(|e| decode_err(path, e))?;
    if let Some(hold) = res.reservation {
        r.holder = Some(key_text(hold.key));
        r.reservation_type = Some(match hold.pr_type {
            Some(t) => format!("{t:?}"),
            None => format!("type 0x{:x}", hold.raw_type),
        });
    }
    // Optional: targets without READ FULL STATUS (tgtd) answer ILLEGAL REQUEST, and
    // the keys and holder above are all that fencing needs.
    if let Ok(full) = dev.execute(
        &pr::pr_in_cdb(InAction::ReadFullStatus, ALLOC),
        Data::In(ALLOC as usize),
    ) && let Ok(full) = pr::FullStatus::decode(&full)
    {
        r.registrants = full
            .entries
            .iter()
            .map(|e| Registrant {
                key: key_text(e.key),
                initiator: e.initiator.clone(),
                holder: e.holder,
            })
            .collect();
    }
    r.ok = true;
    Ok(r)
}

fn decode_err(path: &std::path::Path, e: pr::PrDecodeError) -> SgError {
    SgError::Decode {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// INQUIRY through the first path that answers, and the storage profile it matches.
pub fn profile_for<'a>(lun: &Lun, profiles: &'a Profiles) -> Option<&'a StorageProfile> {
    for p in &lun.paths {
        let Ok(dev) = open(p) else { continue };
        if let Ok(data) = dev.execute(&pr::inquiry_cdb(96), Data::In(96))
            && let Some(inq) = pr::parse_inquiry(&data)
        {
            return profiles.for_target(&inq.vendor, &inq.product);
        }
    }
    profiles.for_target("", "")
}

/// Keys and holder on every path.
pub fn status(lun: &Lun) -> Result<LunReport, PrError> {
    let _s = info_span!("pr-status", lun = %lun.name).entered();
    let mut report = LunReport {
        lun: lun.name.clone(),
        wwid: lun.wwid.clone(),
        paths: Vec::new(),
        notes: Vec::new(),
    };
    for p in &lun.paths {
        match read_path(p) {
            Ok(r) => report.paths.push(r),
            Err(e) => {
                if let Some(u) = unsupported(lun, &e) {
                    return Err(u);
                }
                let mut r = PathReport::new(p);
                r.error = Some(e.to_string());
                report.paths.push(r);
            }
        }
    }
    Ok(report)
}

/// One PERSISTENT RESERVE OUT with its parameter list on one open path.
fn pr_out(
    dev: &ScsiDevice,
    action: OutAction,
    ty: Option<PrType>,
    data: &[u8],
) -> Result<Vec<u8>, SgError> {
    dev.execute(
        &pr::pr_out_cdb(action, ty, data.len() as u32),
        Data::Out(data),
    )
}

/// Apply one PERSISTENT RESERVE OUT on every path; Partial if some failed.
fn out_on_every_path(
    lun: &Lun,
    op: &'static str,
    action: OutAction,
    ty: Option<PrType>,
    params: &OutParams,
    report: &mut LunReport,
) -> Result<(), PrError> {
    let mut failed = Vec::new();
    let data = params.encode();
    for p in &lun.paths {
        let mut r = PathReport::new(p);
        let res = open(p).and_then(|d| pr_out(&d, action, ty, &data));
        match res {
            Ok(_) => r.ok = true,
            Err(e) => {
                if let Some(u) = unsupported(lun, &e) {
                    return Err(u);
                }
                warn!(path = %p.display(), error = %e, "{op} failed on this path");
                failed.push(format!("{} ({e})", p.display()));
                r.error = Some(e.to_string());
            }
        }
        report.paths.push(r);
    }
    check_all(lun, op, &failed)
}

fn check_all(lun: &Lun, op: &'static str, failed: &[String]) -> Result<(), PrError> {
    let total = lun.paths.len();
    match failed.len() {
        0 => Ok(()),
        n if n == total => Err(PrError::Failed {
            lun: lun.name.clone(),
            op,
            detail: failed.join("; "),
        }),
        n => Err(PrError::Partial {
            lun: lun.name.clone(),
            op,
            ok: total - n,
            total,
            failed: failed.join("; "),
        }),
    }
}

fn new_report(lun: &Lun) -> LunReport {
    LunReport {
        lun: lun.name.clone(),
        wwid: lun.wwid.clone(),
        paths: Vec::new(),
        notes: Vec::new(),
    }
}

/// REGISTER AND IGNORE EXISTING KEY with `key` on every path: idempotent, so it is safe
/// at every boot and on every rerun.
pub fn register(lun: &Lun, key: Key) -> Result<LunReport, PrError> {
    let _s = info_span!("pr-register", lun = %lun.name).entered();
    let mut report = new_report(lun);
    // Persist through power loss where the target can (REPORT CAPABILITIES PTPL_C): a
    // fenced node must stay fenced when the array restarts.
    let aptpl = capabilities(lun).is_some_and(|c| c.ptpl_c);
    let mut params = basic_params(Key(0), key);
    params.aptpl = aptpl;
    let first = out_on_every_path(
        lun,
        "register",
        OutAction::RegisterAndIgnoreExistingKey,
        None,
        &params,
        &mut report,
    );
    match first {
        Ok(()) => {
            if aptpl {
                report
                    .notes
                    .push("registered with APTPL: the registrations persist through the target's power loss".into());
            }
            Ok(report)
        }
        // A target that advertised PTPL_C but refuses APTPL on every path: register
        // without it rather than not at all, and say so.
        Err(PrError::Failed { detail, .. } | PrError::Unsupported { detail, .. }) if aptpl => {
            let mut report = new_report(lun);
            report.notes.push(format!(
                "the target refused APTPL ({detail}); registered without persistence through power loss"
            ));
            params.aptpl = false;
            out_on_every_path(
                lun,
                "register",
                OutAction::RegisterAndIgnoreExistingKey,
                None,
                &params,
                &mut report,
            )?;
            Ok(report)
        }
        Err(e) => Err(e),
    }
}

/// Remove this node's registration on every path (REGISTER AND IGNORE EXISTING KEY with
/// a service action key of zero, SPC-4 5.14.7): after a giveback this node cannot write,
/// so the other node can take over without powering it off. Idempotent.
pub fn unregister(lun: &Lun) -> Result<LunReport, PrError> {
    let _s = info_span!("pr-unregister", lun = %lun.name).entered();
    let mut report = new_report(lun);
    out_on_every_path(
        lun,
        "unregister",
        OutAction::RegisterAndIgnoreExistingKey,
        None,
        &basic_params(Key(0), Key(0)),
        &mut report,
    )?;
    Ok(report)
}

/// REPORT CAPABILITIES through the first path that answers; None if none does (the
/// service action is optional, and tgtd versions differ).
pub fn capabilities(lun: &Lun) -> Option<pr::Capabilities> {
    lun.paths.iter().find_map(|p| {
        let dev = open(p).ok()?;
        let data = dev
            .execute(
                &pr::pr_in_cdb(InAction::ReportCapabilities, ALLOC),
                Data::In(ALLOC as usize),
            )
            .ok()?;
        pr::Capabilities::decode(&data).ok()
    })
}

/// Reserve through the first path that works (a reservation belongs to the LUN, and
/// every registered path of ours may then use it). Registers first.
pub fn reserve(lun: &Lun, key: Key, ty: PrType) -> Result<LunReport, PrError> {
    let mut report = register(lun, key)?;
    let _s = info_span!("pr-reserve", lun = %lun.name).entered();
    let params = basic_params(key, Key(0));
    single_path(
        lun,
        "reserve",
        OutAction::Reserve,
        Some(ty),
        &params,
        &mut report,
    )?;
    Ok(report)
}

pub fn release(lun: &Lun, key: Key, ty: PrType) -> Result<LunReport, PrError> {
    let _s = info_span!("pr-release", lun = %lun.name).entered();
    let mut report = new_report(lun);
    let params = basic_params(key, Key(0));
    single_path(
        lun,
        "release",
        OutAction::Release,
        Some(ty),
        &params,
        &mut report,
    )?;
    Ok(report)
}

/// CLEAR removes every node's registration, the peer's too: it takes the LUN from the
/// peer as a preempt does, so it needs the proof that `peer` is fenced.
pub fn clear(lun: &Lun, key: Key, fenced: &Fenced, peer: &str) -> Result<LunReport, PrError> {
    fenced.covers(peer, &format!("every registration on LUN {}", lun.name))?;
    let mut report = register(lun, key)?;
    let _s = info_span!("pr-clear", lun = %lun.name).entered();
    let params = basic_params(key, Key(0));
    single_path(lun, "clear", OutAction::Clear, None, &params, &mut report)?;
    Ok(report)
}

/// A LU-wide service action through one path: the first that accepts it.
fn single_path(
    lun: &Lun,
    op: &'static str,
    action: OutAction,
    ty: Option<PrType>,
    params: &OutParams,
    report: &mut LunReport,
) -> Result<std::path::PathBuf, PrError> {
    let data = params.encode();
    let mut failed = Vec::new();
    for p in &lun.paths {
        match open(p).and_then(|d| pr_out(&d, action, ty, &data)) {
            Ok(_) => {
                report
                    .notes
                    .push(format!("{op} done through {}", p.display()));
                return Ok(p.clone());
            }
            Err(e) => {
                if let Some(u) = unsupported(lun, &e) {
                    return Err(u);
                }
                failed.push(format!("{} ({e})", p.display()));
            }
        }
    }
    Err(PrError::Failed {
        lun: lun.name.clone(),
        op,
        detail: failed.join("; "),
    })
}

/// Take the LUN from `victim`: register our key on every path, PREEMPT AND ABORT the
/// victim's key (PREEMPT where the target lacks it, as tgtd does), then read back on
/// every path that the victim's key is gone and our reservation holds.
pub fn preempt(
    lun: &Lun,
    key: Key,
    victim: Key,
    ty: PrType,
    profile: Option<&StorageProfile>,
    fenced: &Fenced,
    owner: &str,
) -> Result<LunReport, PrError> {
    fenced.covers(owner, &format!("LUN {}", lun.name))?;
    let report = register(lun, key)?;
    preempt_through(lun, key, victim, ty, profile, report, &lun.paths, false)
}

/// The takeover's preempt, and its tie-breaker when both nodes take over at once: the
/// PREEMPT is atomic at the target, and it is sent only through paths where this node's
/// key is still registered. The node that loses finds its key gone from every path and
/// stops; it must not register again first, or it would undo the winner's preempt.
/// Only after a successful preempt are this node's remaining paths registered.
/// `before`: every path of `lun` as [`status`] read it just before.
pub fn preempt_tiebreak(
    lun: &Lun,
    key: Key,
    victim: Key,
    ty: PrType,
    profile: Option<&StorageProfile>,
    before: LunReport,
) -> Result<LunReport, PrError> {
    let unread: Vec<String> = before
        .paths
        .iter()
        .filter(|p| !p.ok)
        .map(|p| format!("{} ({})", p.path, p.error.as_deref().unwrap_or("?")))
        .collect();
    if !unread.is_empty() {
        return Err(PrError::Failed {
            lun: lun.name.clone(),
            op: "read keys before the preempt",
            detail: unread.join("; "),
        });
    }
    let own = key_text(key);
    let registered: Vec<PathBuf> = lun
        .paths
        .iter()
        .zip(&before.paths)
        .filter(|(_, r)| r.keys.contains(&own))
        .map(|(p, _)| p.clone())
        .collect();
    if registered.is_empty() {
        let holder = before
            .paths
            .iter()
            .find_map(|p| p.holder.clone())
            .unwrap_or_else(|| "none".into());
        return Err(PrError::NotRegistered {
            lun: lun.name.clone(),
            key: own,
            holder,
        });
    }
    preempt_through(
        lun,
        key,
        victim,
        ty,
        profile,
        new_report(lun),
        &registered,
        true,
    )
}

#[allow(clippy::too_many_arguments)]
fn preempt_through(
    lun: &Lun,
    key: Key,
    victim: Key,
    ty: PrType,
    profile: Option<&StorageProfile>,
    mut report: LunReport,
    through: &[PathBuf],
    register_after: bool,
) -> Result<LunReport, PrError> {
    // The storage profile may know that the target lacks PREEMPT AND ABORT (tgtd):
    // then PREEMPT at once instead of a rejected command per attempt.
    let first_action = match profile {
        Some(p) if !p.preempt_and_abort => {
            report.notes.push(format!(
                "storage profile '{}': the target does not implement PREEMPT AND ABORT; using PREEMPT (the victim's queued commands are not aborted, but its key and reservation are removed)",
                p.name
            ));
            OutAction::Preempt
        }
        _ => OutAction::PreemptAndAbort,
    };
    let _s = info_span!("pr-preempt", lun = %lun.name, victim = %key_text(victim)).entered();
    let params = basic_params(key, victim);
    let data = params.encode();
    // A rerun after an interrupted takeover finds the victim already gone: preempting a
    // key that is not registered is a RESERVATION CONFLICT, so look first.
    let before = status(lun)?;
    let victim_registered = before
        .paths
        .iter()
        .any(|p| p.keys.contains(&key_text(victim)));
    let mut done = false;
    let mut failed = Vec::new();
    if !victim_registered {
        let ours = before
            .paths
            .iter()
            .any(|p| p.holder.as_deref() == Some(key_text(key).as_str()));
        report.notes.push(format!(
            "the victim's key {} is not registered (already preempted, or it never registered): nothing to preempt",
            key_text(victim)
        ));
        if !ours {
            single_path(
                lun,
                "reserve",
                OutAction::Reserve,
                Some(ty),
                &basic_params(key, Key(0)),
                &mut report,
            )?;
        }
        done = true;
    }
    let to_try: &[PathBuf] = if done { &[] } else { through };
    for p in to_try {
        let dev = match open(p) {
            Ok(d) => d,
            Err(e) => {
                failed.push(format!("{} ({e})", p.display()));
                continue;
            }
        };
        match pr_out(&dev, first_action, Some(ty), &data) {
            Ok(_) => {
                report
                    .notes
                    .push(format!("{first_action:?} done through {}", p.display()));
                done = true;
            }
            Err(e)
                if first_action == OutAction::PreemptAndAbort
                    && e.scsi().is_some_and(sense::is_unsupported) =>
            {
                let note = format!(
                    "the target rejected PREEMPT AND ABORT ({e}); used PREEMPT: the victim's queued commands are not aborted, but its key and reservation are removed"
                );
                warn!("{note}");
                report.notes.push(note);
                match pr_out(&dev, OutAction::Preempt, Some(ty), &data) {
                    Ok(_) => done = true,
                    Err(e) => failed.push(format!("{} ({e})", p.display())),
                }
            }
            Err(e) => failed.push(format!("{} ({e})", p.display())),
        }
        if done {
            break;
        }
    }
    if !done {
        return Err(PrError::Failed {
            lun: lun.name.clone(),
            op: "preempt",
            detail: failed.join("; "),
        });
    }
    if register_after {
        let r = register(lun, key)?;
        report.notes.extend(r.notes);
    }
    // A peer that died before it reserved leaves no reservation for PREEMPT to move: the
    // preempt removed its key, and this node reserves now.
    let mid = status(lun)?;
    if mid.paths.iter().all(|p| p.ok && p.holder.is_none()) {
        report
            .notes
            .push("no reservation existed: the victim's key was removed, then reserved".into());
        single_path(
            lun,
            "reserve",
            OutAction::Reserve,
            Some(ty),
            &basic_params(key, Key(0)),
            &mut report,
        )?;
    }
    // Read back on every path.
    let after = status(lun)?;
    let mut problems = Vec::new();
    for p in &after.paths {
        if !p.ok {
            problems.push(format!(
                "{} could not be read ({})",
                p.path,
                p.error.as_deref().unwrap_or("?")
            ));
            continue;
        }
        if p.keys.contains(&key_text(victim)) {
            problems.push(format!(
                "{} still shows the victim's key {}",
                p.path,
                key_text(victim)
            ));
        }
        if p.holder.as_deref() != Some(key_text(key).as_str()) {
            problems.push(format!(
                "{} shows holder {} instead of ours {}",
                p.path,
                p.holder.as_deref().unwrap_or("none"),
                key_text(key)
            ));
        }
    }
    if !problems.is_empty() {
        return Err(PrError::NotVerified {
            lun: lun.name.clone(),
            detail: problems.join("; "),
        });
    }
    info!(lun = %lun.name, "preempted and verified on every path");
    report.paths = after.paths;
    Ok(report)
}
