//! The one executor every flow runs on. For each step of a plan it writes the journal
//! before and after, emits a progress event, and enforces the gates:
//! - no storage write (assemble, check, mount, service IP, services, promote) without a
//!   proof made in this run for the node taken over from; a proof for another node is
//!   refused;
//! - no mount, and nothing served, before every check of the plan passed;
//! - a refused step stops the run; everything before it stays, journaled, and a rerun
//!   continues: fencing is proven again (a proof is never read from the journal), and
//!   every step finds what is verifiably in place and says so ("re-checked");
//! - one run at a time: a lock beside the journal (`lock`) is held for the whole run, and
//!   a second takeover or giveback on the node refuses at once, naming the first;
//! - SIGTERM or SIGINT (Pacemaker's operation timeout, Ctrl-C) stops the running command
//!   and its process group (`exec`), records the step as interrupted and ends the run
//!   with [`EngineError::Interrupted`] (exit status 1); a rerun continues with that step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::{debug, info_span};

use super::events::{Event, Outcome};
use super::journal::{self, Journal, State};
use super::step::{Device, Filesystem, Step, resolve_spec};
use crate::audit;
use crate::config::{Config, Peer};
use crate::disks::manifest::same_uuid;
use crate::disks::md;
use crate::fence::{self, FenceError, Fenced, ProofError};
use crate::fs::{self, Checked};
use crate::profiles::Profiles;
use crate::scsi::pr::Key;
use crate::scsi::reserve;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "step '{step}' writes {peer}'s storage, but no fencing proof for {peer} was made in \
         this run; nothing was done. Every plan fences first: this is a bug in the plan"
    )]
    NoProof { step: String, peer: String },
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error(
        "the disks do not match the manifest of {node}; nothing was touched:\n{list}\nSee \
         `hamn disks verify` for the full report"
    )]
    Refused { node: String, list: String },
    #[error(
        "{peer}'s BMC {bmc}: {}\nNothing was done: the storage is untouched and nothing is \
         mounted. Fix the BMC, or, if {peer} is confirmed off or disconnected, run the \
         takeover again with --i-know-the-peer-is-off (logged; shared storage is still \
         fenced)",
        bmc_reason(.source)
    )]
    BmcCheck {
        peer: String,
        bmc: String,
        source: FenceError,
    },
    #[error(
        "{0}\nNothing else was done: the storage is untouched by this node beyond the \
         preempt, nothing is mounted"
    )]
    Fence(FenceError),
    #[error(transparent)]
    Md(#[from] md::MdError),
    #[error("{device} ({label}): expected {want}, but it holds {seen}; nothing is mounted. {hint}")]
    WrongFilesystem {
        device: String,
        label: String,
        want: String,
        seen: String,
        hint: String,
    },
    #[error(
        "{count} filesystem check(s) failed; nothing was mounted:\n{list}\nRepair by hand as \
         said, then run the takeover again: it continues from here"
    )]
    Checks { count: usize, list: String },
    #[error(
        "{what}: no device {device} on this node (is the LUN's multipath map up, the array \
         assembled? `hamn disks` shows what is here)"
    )]
    NoDevice { what: String, device: String },
    #[error("{step}: {source}")]
    Fs { step: String, source: fs::FsError },
    #[error(
        "unmount {mountpoint}: {source}. Nothing after it was done: the storage is still \
         this node's. Stop what uses it, then run `hamn giveback` again"
    )]
    Unmount {
        mountpoint: String,
        source: fs::FsError,
    },
    #[error("{0}")]
    Svc(#[from] crate::svc::SvcError),
    #[error("{0}")]
    Net(#[from] crate::net::NetError),
    #[error(transparent)]
    Pr(#[from] reserve::PrError),
    #[error(transparent)]
    Profile(#[from] crate::profiles::ProfileError),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error(transparent)]
    Held(#[from] super::held::HeldError),
    #[error(
        "step '{step}' needs hamn.toml (this node's reservation key and type); none was \
         loaded"
    )]
    NoConfig { step: String },
    #[error(transparent)]
    Drbd(#[from] crate::drbd::DrbdError),
    #[error(transparent)]
    Lock(#[from] super::lock::LockError),
    #[error(transparent)]
    Signals(crate::exec::ExecError),
    #[error(
        "interrupted by {signal} during step '{step}': its command was stopped and nothing \
         of this run is running any more; the journal {journal} records the step as \
         interrupted. Run the same command again to continue from there"
    )]
    Interrupted {
        step: String,
        signal: String,
        journal: String,
    },
}

/// What the BMC said, without the "NOT fenced" frame of a fencing failure: the check
/// only read.
fn bmc_reason(e: &FenceError) -> String {
    match e {
        FenceError::Bmc { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

impl EngineError {
    /// A configuration problem rather than a refusal at the hardware: exit status 3.
    pub fn is_config(&self) -> bool {
        match self {
            EngineError::BmcCheck { source, .. } | EngineError::Fence(source) => source.is_config(),
            EngineError::Profile(_) | EngineError::NoConfig { .. } => true,
            _ => false,
        }
    }
}

/// The journal's mark of a storage fence that found the peer's storage given back.
pub(crate) const GIVEN_BACK: &str = "gave the storage back cleanly";

/// Which flow a run belongs to (the journal says so, and giveback reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    San,
    MovedDisks,
    Giveback,
}

impl Flow {
    pub fn name(self) -> &'static str {
        match self {
            Flow::San => "san",
            Flow::MovedDisks => "moved-disks",
            Flow::Giveback => "giveback",
        }
    }
}

/// What the executor needs besides the steps.
pub struct Context<'a> {
    pub flow: Flow,
    /// The node taken over from (or given back to).
    pub peer: String,
    /// Its BMC, where hamn.toml has one.
    pub peer_cfg: Option<&'a Peer>,
    /// hamn.toml, where there is one (moved disks work without).
    pub cfg: Option<&'a Config>,
    pub journal: PathBuf,
}

impl Context<'_> {
    pub fn journal_path(cfg: Option<&Config>) -> PathBuf {
        cfg.and_then(|c| c.takeover.journal.clone())
            .unwrap_or_else(|| PathBuf::from(journal::DEFAULT_PATH))
    }
}

#[derive(Debug, Serialize)]
pub struct RunOutcome {
    pub flow: Flow,
    pub peer: String,
    pub proofs: Vec<Fenced>,
    pub events: Vec<Event>,
    pub journal: PathBuf,
    pub resumed: bool,
    /// Steps an earlier, interrupted run had done, found in place again.
    pub rechecked: Vec<String>,
    /// This run's evidence file (None if it could not be written; a warning said why).
    pub evidence: Option<PathBuf>,
}

/// The executor's memory within one run.
struct Run<'a> {
    ctx: &'a Context<'a>,
    /// The evidence of this run (audit): what the steps saw, kept as they go.
    ev: &'a mut audit::Evidence,
    journal: Journal,
    proofs: Vec<Fenced>,
    /// Filesystems checked in this run, by step name.
    checked: BTreeMap<String, Checked>,
    failures: Vec<String>,
    /// md UUID -> the device node the assemble step left.
    arrays: BTreeMap<String, PathBuf>,
    profiles: Option<Profiles>,
    /// The service address's duplicate check, started with the run (see `net::probe`).
    early_probe: Option<crate::net::Probe>,
    /// The same check once tied to the peer's fence.
    probe: Option<crate::net::FencedProbe>,
    probe_started: bool,
    /// The filesystem modules being loaded while the checks run.
    modules: Option<fs::Preload>,
    /// The shared LUNs' paths, read while the BMC check runs.
    survey: Option<fence::storage::Survey>,
    /// The service address's announcement repeats: dropped (stopped) if the run fails.
    announcer: Option<crate::net::Announcer>,
}

/// Run the plan. `progress` sees every event as it happens. Every run, whatever its end,
/// leaves one evidence file beside the journal and one line in the system log (`audit`).
pub fn run(
    ctx: &Context,
    steps: &[Step],
    progress: &mut dyn FnMut(&Event),
) -> Result<RunOutcome, EngineError> {
    let command = match ctx.flow {
        Flow::San => "takeover",
        Flow::MovedDisks => "takeover (moved disks)",
        Flow::Giveback => "giveback",
    };
    let node = ctx
        .cfg
        .map(|c| c.node.clone())
        .or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .map(|h| h.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let mut ev = audit::Evidence::start(command, &node, &ctx.peer);
    for (i, s) in steps.iter().enumerate() {
        ev.plan.push(format!("{}. {}", i + 1, s.id()));
        ev.plan
            .extend(s.commands().into_iter().map(|c| format!("     {c}")));
    }
    let luns: Vec<reserve::Lun> = steps
        .iter()
        .filter_map(|s| match s {
            Step::FenceStorage { luns, .. } => Some(luns.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let result = run_steps(ctx, steps, progress, &mut ev);
    if !luns.is_empty() {
        ev.reservations_after = reservations(&luns);
    }
    let end = match &result {
        Ok(_) => audit::Result::Succeeded,
        Err(EngineError::Interrupted { .. }) => audit::Result::Interrupted,
        Err(_) if !ev.steps.iter().any(|s| s["outcome"] != "failed") => audit::Result::Refused,
        Err(_) => audit::Result::Failed,
    };
    if let Err(e) = &result {
        ev.error = Some(e.to_string());
    }
    let dir = ctx
        .journal
        .parent()
        .map_or_else(|| PathBuf::from(audit::DEFAULT_DIR), |d| d.join("evidence"));
    let file = ev.finish(end, &dir);
    result.map(|mut o| {
        o.evidence = file;
        o
    })
}

/// Keys and holder on every path of each LUN, as the evidence keeps them.
fn reservations(luns: &[reserve::Lun]) -> serde_json::Value {
    serde_json::Value::Array(
        luns.iter()
            .map(|l| match reserve::status(l) {
                Ok(r) => serde_json::to_value(r).unwrap_or_default(),
                Err(e) => serde_json::json!({"lun": l.name, "error": e.to_string()}),
            })
            .collect(),
    )
}

fn run_steps(
    ctx: &Context,
    steps: &[Step],
    progress: &mut dyn FnMut(&Event),
    ev: &mut audit::Evidence,
) -> Result<RunOutcome, EngineError> {
    let flow = ctx.flow.name();
    // Before anything is read or written: a second run refuses here, naming the first.
    let mut lock = super::lock::RunLock::acquire(&ctx.journal, flow, &ctx.peer)?;
    debug!("run lock held");
    // From here on SIGTERM and SIGINT stop the current command and end the run, journaled.
    let _signals = crate::exec::arm_interrupts().map_err(EngineError::Signals)?;
    let (mut journal, resumed) = match Journal::load(&ctx.journal)? {
        // Giveback records into the takeover's journal, which it retires at the end.
        Some(j) if ctx.flow == Flow::Giveback => (j, false),
        Some(j) if j.peer == ctx.peer && j.flow == flow => (j, true),
        _ => (Journal::new(&ctx.journal, &ctx.peer, flow), false),
    };
    if ctx.flow != Flow::Giveback {
        journal.set_plan(steps);
    }
    let mut r = Run {
        ctx,
        ev,
        journal,
        proofs: Vec::new(),
        checked: BTreeMap::new(),
        failures: Vec::new(),
        arrays: BTreeMap::new(),
        profiles: None,
        early_probe: None,
        probe: None,
        probe_started: false,
        modules: None,
        survey: None,
        announcer: None,
    };
    // IPv4 only: for IPv6 the kernel's duplicate address detection runs when the address
    // is added.
    let service_ip = steps.iter().find_map(|s| match s {
        Step::ServiceIp { ip } if ip.address.is_ipv4() => Some(ip),
        _ => None,
    });
    // Asking is harmless before the fence; what counts is judged against it (net::probe).
    // A check that cannot start here is started again once the peer is fenced.
    if let Some(ip) = service_ip {
        r.early_probe = crate::net::start_probe(ip).ok();
    }
    let mut events = Vec::new();
    let mut rechecked = Vec::new();
    for step in steps {
        let id = step.id();
        let _span = info_span!("step", step = %id, flow).entered();
        let t = Instant::now();
        let before = r.journal.state_of(&id);
        lock.set_step(&id);
        if let Some(sig) = crate::exec::interrupted() {
            return Err(r.interrupted(&id, sig, "before the step began")?);
        }
        if matches!(step, Step::BmcCheck { .. })
            && let Some(luns) = steps.iter().find_map(|s| match s {
                Step::FenceStorage { luns, .. } => Some(luns.clone()),
                _ => None,
            })
        {
            r.survey = fence::storage::start_survey(luns);
        }
        if !is_fencing(step) {
            // Once the peer is fenced, and not before: the fencing race for the storage
            // is decided by who is faster, so no module loading competes with it for the
            // CPU (the early duplicate address check mostly sleeps).
            if r.modules.is_none() {
                r.modules = Some(fs::preload(&fs_types(steps)));
            }
            if let Some(ip) = service_ip {
                r.start_probe(step, ip)?;
            }
        }
        if let Step::FenceStorage { luns, .. } = step
            && r.ev.reservations_before.is_null()
        {
            r.ev.reservations_before = reservations(luns);
        }
        r.journal.record(&id, State::Started, "")?;
        let result = r.step(step);
        // Whatever the step made of its stopped command, the run stops here, journaled.
        if result.is_err()
            && let Some(sig) = crate::exec::interrupted()
        {
            return Err(r.interrupted(&id, sig, "its command was stopped")?);
        }
        match result {
            Ok((mut outcome, detail)) => {
                if outcome == Outcome::InPlace && before.is_some() {
                    outcome = Outcome::Rechecked;
                }
                if outcome == Outcome::Done && before == Some(State::Done) && is_state(step) {
                    outcome = Outcome::Redone;
                }
                if outcome == Outcome::Rechecked {
                    rechecked.push(id.clone());
                }
                r.journal.record(&id, State::Done, &detail)?;
                let e = Event {
                    step: id,
                    outcome,
                    detail,
                    seconds: t.elapsed().as_secs_f64(),
                };
                progress(&e);
                r.ev.steps
                    .push(serde_json::to_value(&e).unwrap_or_default());
                events.push(e);
            }
            // A failed check does not stop the other checks: the admin sees every
            // filesystem that needs a repair at once. Mounting stops on it.
            Err(Failure::Check(msg)) => {
                r.journal.record(&id, State::Failed, &msg)?;
                let e = Event {
                    step: id,
                    outcome: Outcome::Failed,
                    detail: msg.clone(),
                    seconds: t.elapsed().as_secs_f64(),
                };
                progress(&e);
                r.ev.steps
                    .push(serde_json::to_value(&e).unwrap_or_default());
                events.push(e);
                r.failures.push(msg);
            }
            Err(Failure::Stop(err)) => {
                r.journal.record(&id, State::Failed, &err.to_string())?;
                r.ev.steps.push(serde_json::json!({
                    "step": id, "outcome": "failed", "detail": err.to_string(),
                    "seconds": t.elapsed().as_secs_f64()}));
                return Err(err);
            }
        }
    }
    r.gate_checks()?;
    // The repeats go out while the services start; what is still due when the run is
    // done goes out from a detached process that holds the run's lock until the last, so
    // that a giveback waits rather than removing the address while it is announced.
    if let Some(a) = r.announcer.take() {
        lock.set_step(super::lock::ANNOUNCING);
        a.detach(&[lock.raw_fd()]);
    }
    if ctx.flow == Flow::Giveback {
        Journal::retire(&ctx.journal)?;
    } else {
        r.journal.finish()?;
    }
    Ok(RunOutcome {
        flow: ctx.flow,
        peer: ctx.peer.clone(),
        proofs: r.proofs,
        events,
        journal: ctx.journal.clone(),
        resumed,
        rechecked,
        evidence: None,
    })
}

/// Steps that fence or decide whether to: the service address's duplicate check waits
/// for them, since until the peer is fenced the peer itself may answer for the address.
fn is_fencing(step: &Step) -> bool {
    matches!(
        step,
        Step::VerifyDisks { .. }
            | Step::BmcCheck { .. }
            | Step::FenceStorage { .. }
            | Step::FencePower { .. }
            | Step::FenceOverride { .. }
    )
}

/// The filesystem types the plan checks or mounts.
fn fs_types(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Check { fs } | Step::Mount { fs } => Some(fs.fs_type.clone()),
            _ => None,
        })
        .collect()
}

/// Steps whose effect is a state that can vanish between runs (a mount).
fn is_state(step: &Step) -> bool {
    matches!(step, Step::Mount { .. })
}

enum Failure {
    /// This filesystem failed its check; the run goes on to check the others.
    Check(String),
    Stop(EngineError),
}

impl<E: Into<EngineError>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Stop(e.into())
    }
}

type StepResult = Result<(Outcome, String), Failure>;

impl Run<'_> {
    /// Keep a proof for the gates, and its summary for the evidence.
    fn prove(&mut self, proof: Fenced) {
        let line = format!("{}: {}", proof.node(), proof.method().summary());
        self.ev.proof = if self.ev.proof.is_empty() {
            line
        } else {
            format!("{}; {line}", self.ev.proof)
        };
        self.proofs.push(proof);
    }

    /// Journal step `id` as interrupted by `sig`; the error that ends the run.
    fn interrupted(&mut self, id: &str, sig: i32, what: &str) -> Result<EngineError, EngineError> {
        let signal = crate::exec::signal_name(sig);
        self.journal
            .record(id, State::Interrupted, &format!("{signal}: {what}"))?;
        Ok(EngineError::Interrupted {
            step: id.into(),
            signal,
            journal: self.ctx.journal.display().to_string(),
        })
    }

    /// Tie the service address's duplicate check to the peer's fence once, before the
    /// first step after fencing, so that it runs while the filesystems are checked and
    /// mounted. Without a proof for the peer (a plan that failed to fence stops before
    /// this) it waits for the service-address step, which refuses.
    fn start_probe(&mut self, step: &Step, ip: &crate::net::ServiceIp) -> Result<(), EngineError> {
        if self.probe_started {
            return Ok(());
        }
        self.probe_started = true;
        let early = self.early_probe.take();
        let Ok(proof) = self.proof(step, &format!("service address {}", ip.address)) else {
            return Ok(());
        };
        let early = match early {
            Some(p) => p,
            None => crate::net::start_probe(ip)?,
        };
        self.probe = Some(early.after_fencing(ip, proof)?);
        Ok(())
    }

    fn profiles(&mut self) -> Result<&Profiles, EngineError> {
        if self.profiles.is_none() {
            self.profiles = Some(Profiles::load()?);
        }
        match &self.profiles {
            Some(p) => Ok(p),
            None => Err(EngineError::NoConfig {
                step: "profiles".into(),
            }),
        }
    }

    fn peer_cfg(&self, step: &Step) -> Result<&Peer, EngineError> {
        self.ctx
            .peer_cfg
            .ok_or_else(|| EngineError::NoConfig { step: step.id() })
    }

    fn cfg(&self, step: &Step) -> Result<&Config, EngineError> {
        self.ctx
            .cfg
            .ok_or_else(|| EngineError::NoConfig { step: step.id() })
    }

    /// The gate of every storage write: a proof from this run that covers the peer.
    fn proof(&self, step: &Step, subject: &str) -> Result<&Fenced, EngineError> {
        let last = self.proofs.last().ok_or_else(|| EngineError::NoProof {
            step: step.id(),
            peer: self.ctx.peer.clone(),
        })?;
        Ok(last.covers(&self.ctx.peer, subject)?)
    }

    /// The gate before any mount and anything served: every check passed.
    fn gate_checks(&self) -> Result<(), EngineError> {
        if self.failures.is_empty() {
            return Ok(());
        }
        Err(EngineError::Checks {
            count: self.failures.len(),
            list: self
                .failures
                .iter()
                .map(|f| format!("  {f}"))
                .collect::<Vec<_>>()
                .join("\n"),
        })
    }

    fn device(&self, fs: &Filesystem) -> Result<PathBuf, EngineError> {
        let found = match &fs.device {
            Device::Spec { spec } => resolve_spec(spec),
            Device::Array { uuid, .. } => self.arrays.get(uuid).cloned(),
        };
        found.ok_or_else(|| EngineError::NoDevice {
            what: fs.name(),
            device: match &fs.device {
                Device::Spec { spec } => spec.clone(),
                Device::Array { name, .. } => name.clone(),
            },
        })
    }

    fn step(&mut self, step: &Step) -> StepResult {
        let peer = self.ctx.peer.clone();
        match step {
            Step::VerifyDisks {
                node,
                verdict,
                notes,
                ..
            } => {
                if verdict == "refuse" {
                    return Err(EngineError::Refused {
                        node: node.clone(),
                        list: notes.join("\n"),
                    }
                    .into());
                }
                Ok((
                    Outcome::Done,
                    format!("{node}'s disks verified ({verdict})"),
                ))
            }
            Step::BmcCheck { bmc, .. } => {
                let p = self.peer_cfg(step)?.clone();
                let state = fence::power::read_power(&p, self.profiles()?).map_err(|source| {
                    EngineError::BmcCheck {
                        peer: peer.clone(),
                        bmc: bmc.clone(),
                        source,
                    }
                })?;
                Ok((Outcome::Done, format!("{bmc} answers: {peer} is {state}")))
            }
            Step::FenceStorage {
                victim_key, luns, ..
            } => {
                let cfg = self.cfg(step)?;
                let p = self.peer_cfg(step)?;
                let own = Key(cfg.own_key());
                let victim = Key(p.pr_key());
                let ty = reserve::pr_type(cfg.storage.reservation_type);
                let luns = luns.clone();
                let survey = self.survey.take();
                let released_earlier = self.journal.entries.iter().any(|e| {
                    e.step == step.id() && e.state == State::Done && e.detail.contains(GIVEN_BACK)
                });
                let proof = fence::storage::tiebreak(
                    &peer,
                    own,
                    victim,
                    ty,
                    &luns,
                    self.profiles()?,
                    released_earlier,
                    survey,
                )
                .map_err(EngineError::Fence)?;
                let names = luns
                    .iter()
                    .map(|l| l.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ");
                // Remember that this node holds these LUNs: if it is fenced in turn, it
                // must not register again on its own when it comes back.
                super::held::Held::update(
                    &super::held::path_beside(&self.ctx.journal),
                    &luns
                        .iter()
                        .map(|l| super::held::id_of(&l.name, l.wwid.as_deref()))
                        .collect::<Vec<_>>(),
                    &[],
                )?;
                let detail = match proof.method() {
                    fence::FenceMethod::Released { .. } => format!(
                        "{peer} {GIVEN_BACK}: its key {victim_key} is on no path of {names} and \
                         nobody held a reservation; this node reserved and holds every path"
                    ),
                    _ => format!(
                        "{peer}'s key {victim_key} preempted on {names}; this node holds every path"
                    ),
                };
                self.prove(proof);
                Ok((Outcome::Done, detail))
            }
            Step::FencePower {
                shares, mirrors, ..
            } => {
                // A planned switchover: the storage proof shows the peer gave everything
                // back and cannot write; powering it off would only cost a good node. Not
                // with NFS shares: the LUNs say nothing about what the peer mounts. With
                // DRBD mirrors, DRBD's state must show it too.
                let luns_given_back = match self.proofs.last() {
                    None => true,
                    Some(p) => {
                        p.node() == peer
                            && matches!(p.method(), fence::FenceMethod::Released { .. })
                    }
                };
                if shares.is_empty()
                    && luns_given_back
                    && !mirrors.is_empty()
                    && let Some(proof) = fence::mirror::peer_secondary(&peer, mirrors)?
                {
                    self.prove(proof);
                    return Ok((
                        Outcome::Skipped,
                        format!(
                            "{peer} is not powered off: it {GIVEN_BACK} (DRBD shows it \
                             Secondary and connected, both copies UpToDate, on {}; DRBD \
                             allows one Primary while connected), so it cannot write; a \
                             planned switchover does not need a power-off",
                            mirrors.join(", ")
                        ),
                    ));
                }
                if let Some(last) = self.proofs.last()
                    && shares.is_empty()
                    && mirrors.is_empty()
                    && last.node() == peer
                    && let fence::FenceMethod::Released { luns, victim_key } = last.method()
                {
                    return Ok((
                        Outcome::Skipped,
                        format!(
                            "{peer} is not powered off: it gave the storage back cleanly (its \
                             key {victim_key} is on no path of {}, nobody held a reservation), \
                             so it cannot write; a planned switchover does not need a \
                             power-off",
                            luns.join(", ")
                        ),
                    ));
                }
                let p = self.peer_cfg(step)?.clone();
                let done =
                    fence::fence_peer(&p, self.profiles()?, None).map_err(EngineError::Fence)?;
                let detail = format!("{peer}: {}", done.proof.method().summary());
                self.ev.bmc.push(serde_json::json!({
                    "peer": peer, "proof": done.proof, "restore_policy": done.restore_policy}));
                self.prove(done.proof);
                Ok((Outcome::Done, detail))
            }
            // The step names whom the admin vouches for; the gate compares that with the
            // node this run takes over from.
            Step::FenceOverride {
                peer: vouched,
                statement,
            } => {
                self.prove(fence::admin_override(vouched, statement));
                Ok((
                    Outcome::Done,
                    format!("the admin states that {vouched} is off (logged: {statement})"),
                ))
            }
            Step::Assemble { array } => {
                let as_label = md::label(array.name.as_deref(), &array.uuid);
                let proof = self.proof(step, &as_label)?.clone();
                let done = md::assemble(array, &proof, &peer)?;
                self.arrays.insert(array.uuid.clone(), done.devnode.clone());
                let label = array.name.clone().unwrap_or_else(|| array.uuid.clone());
                let detail = format!(
                    "{label} as {as_label} ({}) from {}{}{}",
                    done.kernel_name,
                    array
                        .members
                        .iter()
                        .map(|m| m.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                    if done.degraded { ", DEGRADED" } else { "" },
                    if done.reused {
                        ", already assembled by an earlier run"
                    } else {
                        ""
                    }
                );
                Ok((
                    if done.reused {
                        Outcome::InPlace
                    } else {
                        Outcome::Done
                    },
                    detail,
                ))
            }
            Step::Promote {
                resource,
                force,
                wait,
            } => {
                // The copy may be written once the peer's power is off: that proof, wherever
                // it is in this run (a storage proof may come after it).
                self.proof(step, &format!("DRBD resource {resource}"))?;
                let mirrored = |p: &&Fenced| {
                    matches!(p.method(), fence::FenceMethod::MirrorSecondary { resources }
                        if resources.contains(resource))
                };
                let proof = self
                    .proofs
                    .iter()
                    .rev()
                    .find(|p| p.node() == peer && p.stops_all_writes())
                    .or_else(|| self.proofs.iter().rev().find(mirrored))
                    .or(self.proofs.last())
                    .cloned()
                    .ok_or_else(|| EngineError::NoProof {
                        step: step.id(),
                        peer: peer.clone(),
                    })?;
                let p = crate::drbd::promote(
                    resource,
                    *force,
                    Duration::from_secs(*wait),
                    &proof,
                    &peer,
                )?;
                Ok(if p.already {
                    (
                        Outcome::InPlace,
                        format!("{resource} is Primary here ({})", p.after),
                    )
                } else {
                    (
                        Outcome::Done,
                        format!(
                            "{resource} Primary{} (was: {})",
                            if p.forced { ", forced as asked" } else { "" },
                            p.before
                        ),
                    )
                })
            }
            Step::Demote { resource } => {
                let s = crate::drbd::demote(resource)?;
                Ok((Outcome::Done, format!("{resource}: {s}")))
            }
            Step::Check { fs } => self.check(step, fs),
            Step::Mount { fs } => self.mount(step, fs),
            Step::ServiceIp { ip } => {
                self.gate_checks()?;
                let probe = self.probe.take();
                let proof = self.proof(step, &format!("service address {}", ip.address))?;
                let up = crate::net::bring_up(ip, proof, probe)?;
                let (outcome, what) = match up.outcome {
                    crate::net::IpOutcome::Added => (Outcome::Done, "added and announced"),
                    crate::net::IpOutcome::AlreadyPresent => {
                        (Outcome::InPlace, "already here; announced again")
                    }
                };
                self.announcer = up.announcer;
                Ok((
                    outcome,
                    format!("{}/{} on {}: {what}", ip.address, ip.prefix, ip.interface),
                ))
            }
            Step::Service { service } => {
                self.gate_checks()?;
                let proof = self.proof(step, &format!("service {}", service.name))?;
                Ok(match crate::svc::start(service, proof)? {
                    crate::svc::StartOutcome::AlreadyReady => {
                        (Outcome::InPlace, format!("{}: already ready", service.name))
                    }
                    crate::svc::StartOutcome::Started { waited } => (
                        Outcome::Done,
                        format!(
                            "{}: started, ready after {:.1} s",
                            service.name,
                            waited.as_secs_f64()
                        ),
                    ),
                })
            }
            Step::StopService { service } => {
                crate::svc::stop(service)?;
                Ok((Outcome::Done, "stopped".into()))
            }
            Step::ServiceIpDown { ip } => {
                crate::net::take_down(ip)?;
                Ok((Outcome::Done, "removed".into()))
            }
            Step::Unmount { mountpoint } => {
                fs::unmount(mountpoint).map_err(|source| EngineError::Unmount {
                    mountpoint: mountpoint.display().to_string(),
                    source,
                })?;
                Ok((Outcome::Done, "not mounted now".into()))
            }
            Step::Release { luns } => {
                let cfg = self.cfg(step)?;
                let own = Key(cfg.own_key());
                let ty = reserve::pr_type(cfg.storage.reservation_type);
                // Released and unregistered: this node cannot write any more, which is
                // what lets the other node take over without powering it off.
                for lun in luns {
                    reserve::release(lun, own, ty)?;
                    reserve::unregister(lun)?;
                }
                // Left voluntarily: registering again later is a standby's right.
                super::held::Held::update(
                    &super::held::path_beside(&self.ctx.journal),
                    &[],
                    &luns
                        .iter()
                        .map(|l| super::held::id_of(&l.name, l.wwid.as_deref()))
                        .collect::<Vec<_>>(),
                )?;
                Ok((
                    Outcome::Done,
                    format!(
                        "reservation released and this node's key removed on {}",
                        luns.iter()
                            .map(|l| l.name.clone())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
            Step::StopArray { uuid, name } => Ok(match md::stop_array(uuid)? {
                Some(k) => (Outcome::Done, format!("{name} ({k}) stopped")),
                None => (Outcome::InPlace, format!("{name} is not running")),
            }),
        }
    }

    fn check(&mut self, step: &Step, f: &Filesystem) -> StepResult {
        let name = f.name();
        let proof = self.proof(step, &format!("filesystem {name}"))?.clone();
        let dev = self.device(f)?;
        let shown = shown(f, &dev);
        // Mounted where it belongs (by an earlier run, or the OS booted from moved
        // disks): in use, checked then; it cannot be checked live.
        if let Some(mp) = &f.mountpoint
            && fs::is_mounted_at(&dev, mp)
        {
            return Ok((
                Outcome::InPlace,
                format!(
                    "{shown} is already mounted on {}: used as it is",
                    mp.display()
                ),
            ));
        }
        // Identity of what the device holds, before any check writes to it.
        if f.uuid.is_some() {
            identity(&dev, f)?;
        }
        match fs::check(&dev, &f.fs_type, f.policy, &proof, &self.ctx.peer) {
            Ok(c) => {
                let detail = format!("{} {shown} {}", f.fs_type, fs::replay_note(&c));
                self.ev
                    .checks
                    .push(serde_json::json!({"step": name, "check": c}));
                self.checked.insert(name, c);
                Ok((Outcome::Done, detail))
            }
            Err(e) => Err(Failure::Check(format!("{name} ({shown}): {e}"))),
        }
    }

    fn mount(&mut self, step: &Step, f: &Filesystem) -> StepResult {
        self.gate_checks()?;
        if f.is_network() {
            return self.mount_share(step, f);
        }
        let name = f.name();
        let proof = self.proof(step, &format!("filesystem {name}"))?.clone();
        let dev = self.device(f)?;
        let shown = shown(f, &dev);
        let Some(mp) = &f.mountpoint else {
            return Ok((
                Outcome::Done,
                format!("{shown} checked, not mounted (no mount point recorded)"),
            ));
        };
        if fs::is_mounted_at(&dev, mp) {
            if !f.read_only {
                fs::remount_rw(mp, &proof, &self.ctx.peer).map_err(|source| EngineError::Fs {
                    step: step.id(),
                    source,
                })?;
            }
            return Ok((
                Outcome::InPlace,
                format!(
                    "{shown} already mounted on {}{}",
                    mp.display(),
                    if f.read_only { "" } else { " (read-write)" }
                ),
            ));
        }
        let Some(c) = self.checked.get(&name) else {
            return Err(EngineError::Checks {
                count: 1,
                list: format!("  {name}: not checked"),
            }
            .into());
        };
        let m = fs::mount(c, mp, f.read_only).map_err(|source| EngineError::Fs {
            step: step.id(),
            source,
        })?;
        Ok((
            Outcome::Done,
            format!(
                "{} on {} ({})",
                m.device.display(),
                m.mountpoint.display(),
                if m.read_only {
                    "read-only"
                } else {
                    "read-write"
                }
            ),
        ))
    }
}

impl Run<'_> {
    /// An NFS share: no check, and the proof must be the peer's power being off (or the
    /// admin's statement), wherever it is in this run's proofs: the storage proof may
    /// come after it.
    fn mount_share(&mut self, step: &Step, f: &Filesystem) -> StepResult {
        let name = f.name();
        let (Some(mp), Device::Spec { spec: share }) = (&f.mountpoint, &f.device) else {
            return Err(EngineError::NoDevice {
                what: name,
                device: "an NFS share without a mount point".into(),
            }
            .into());
        };
        self.proof(step, &format!("the NFS share {share}"))?;
        let proof = self
            .proofs
            .iter()
            .rev()
            .find(|p| p.node() == self.ctx.peer && p.stops_all_writes())
            .or(self.proofs.last())
            .cloned()
            .ok_or_else(|| EngineError::NoProof {
                step: step.id(),
                peer: self.ctx.peer.clone(),
            })?;
        let m = fs::nfs::mount_share(
            share,
            &f.fs_type,
            f.options.as_deref(),
            mp,
            &proof,
            &self.ctx.peer,
        )
        .map_err(|source| EngineError::Fs {
            step: step.id(),
            source,
        })?;
        let how = if m.read_only {
            "read-only"
        } else {
            "read-write"
        };
        Ok(if m.already {
            (
                Outcome::InPlace,
                format!(
                    "{share} already mounted on {} ({how})",
                    m.mountpoint.display()
                ),
            )
        } else {
            (
                Outcome::Done,
                format!("{share} on {} ({how}, NFS)", m.mountpoint.display()),
            )
        })
    }
}

/// A device as the plan named it and as the kernel does: "/dev/md/hamn-0 (md127)".
fn shown(f: &Filesystem, dev: &Path) -> String {
    match &f.device {
        Device::Array { name, .. } => format!(
            "{name} ({})",
            dev.file_name().map_or_else(
                || dev.display().to_string(),
                |n| n.to_string_lossy().into_owned()
            )
        ),
        Device::Spec { .. } => dev.display().to_string(),
    }
}

/// The filesystem on `dev` is the recorded one (type and UUID), or the run stops.
fn identity(dev: &Path, f: &Filesystem) -> Result<(), EngineError> {
    // The recorded UUID in an ext superblock is the answer, without starting blkid;
    // anything else is left to blkid, which also names what is there instead.
    if let Some(want) = &f.uuid
        && let Some(found) = fs::ext_uuid(dev, &f.fs_type)
        && same_uuid(want, &found)
    {
        return Ok(());
    }
    let (ty, uuid) = fs::blkid_probe(dev).map_err(|source| EngineError::Fs {
        step: format!("check {}", f.name()),
        source,
    })?;
    let type_ok = ty.as_deref() == Some(f.fs_type.as_str());
    let uuid_ok = match (&f.uuid, &uuid) {
        (Some(w), Some(g)) => same_uuid(w, g),
        (None, _) => true,
        (Some(_), None) => false,
    };
    if type_ok && uuid_ok {
        return Ok(());
    }
    let shown = dev.display().to_string();
    // No filesystem at all is most likely a damaged primary superblock; another
    // filesystem means other data: never repair that.
    let hint = match (ty.as_deref(), f.fs_type.as_str()) {
        (None, "ext2" | "ext3" | "ext4") => format!(
            "If its primary superblock is damaged, list the backups with `mke2fs -n {shown}` \
             and repair by hand with `e2fsck -b 32768 {shown}`; then run the takeover again"
        ),
        (None, "xfs") => format!(
            "If its superblock is damaged, `xfs_repair {shown}` finds a secondary one; then \
             run the takeover again"
        ),
        _ => match &f.device {
            Device::Array { .. } => {
                format!("Stop it with `mdadm --stop {shown}` and find out which disks these are")
            }
            Device::Spec { spec } => format!("Find out what {spec} is before using it"),
        },
    };
    Err(EngineError::WrongFilesystem {
        hint,
        device: shown,
        label: f.label.clone().unwrap_or_else(|| f.name()),
        want: format!("{} {}", f.fs_type, f.uuid.as_deref().unwrap_or("")),
        seen: format!(
            "{} {}",
            ty.as_deref().unwrap_or("no filesystem blkid knows"),
            uuid.as_deref().unwrap_or("")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::takeover::step::Device;

    fn ctx_for(peer: &str, journal: PathBuf) -> Context<'static> {
        Context {
            flow: Flow::San,
            peer: peer.into(),
            peer_cfg: None,
            cfg: None,
            journal,
        }
    }

    fn install() -> Filesystem {
        Filesystem {
            device: Device::Spec {
                spec: "/dev/null".into(),
            },
            fs_type: "ext4".into(),
            uuid: None,
            label: None,
            mountpoint: Some("/install".into()),
            policy: crate::fs::Policy::CheckOnly,
            read_only: false,
            options: None,
        }
    }

    #[test]
    fn a_proof_for_mn1_is_refused_when_taking_over_from_mn3() {
        let dir = tempfile::tempdir().expect("tmp");
        // The plan fences mn1 (the admin's word), but this run takes over from mn3.
        let steps = vec![
            Step::FenceOverride {
                peer: "mn1".into(),
                statement: "test".into(),
            },
            Step::Check { fs: install() },
        ];
        let ctx = ctx_for("mn3", dir.path().join("takeover.json"));
        let err = run(&ctx, &steps, &mut |_| {}).expect_err("refused");
        assert!(matches!(err, EngineError::Proof(_)), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("mn3") && msg.contains("'mn1'"), "{msg}");
    }

    #[test]
    fn no_storage_step_runs_before_a_fencing_step() {
        let dir = tempfile::tempdir().expect("tmp");
        let ctx = ctx_for("mn1", dir.path().join("takeover.json"));
        let steps = vec![Step::Check { fs: install() }];
        let err = run(&ctx, &steps, &mut |_| {}).expect_err("no proof");
        assert!(matches!(err, EngineError::NoProof { .. }), "{err}");
        let j = Journal::load(&ctx.journal).expect("read").expect("written");
        assert_eq!(j.state_of("check /install"), Some(State::Failed));
    }
}
