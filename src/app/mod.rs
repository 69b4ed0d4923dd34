//! One entry function per command; each returns what to print or an error that knows its
//! exit status. Exit statuses are a contract (see hamn(8)):
//! 0 done; 1 the operation failed (for fence: the node is NOT fenced); 2 usage error;
//! 3 configuration error (hamn.toml, password source, hardware profiles).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::bmc::lanplus::Backoff;
use crate::bmc::{AnyBmc, BmcError, ChassisAction, PowerControl};
use crate::cli::{Cli, Command, FenceArgs, PowerAction, PowerArgs};
use crate::config::{Config, ConfigError, Peer};
use crate::fence::{self, FenceError, profile_before_contact};
use crate::profiles::{ProfileError, Profiles};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_CONFIG: u8 = 3;
/// `hamn disks verify`: nothing refused, but something changed (slots, NICs, degraded
/// accepted); `hamn preflight`: ready, with warnings.
pub const EXIT_ACCEPTABLE: u8 = 4;

pub mod agent;
mod drbd;
mod moved;
mod takeover;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Bmc(#[from] BmcError),
    #[error(transparent)]
    Fence(#[from] FenceError),
    #[error(transparent)]
    Agent(#[from] agent::AgentError),
    #[error(transparent)]
    Scan(#[from] crate::disks::scan::ScanError),
    #[error(transparent)]
    Pr(#[from] crate::scsi::reserve::PrError),
    #[error(transparent)]
    Lun(#[from] crate::disks::luns::LunError),
    #[error(transparent)]
    Held(#[from] crate::takeover::held::HeldError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Manifest(#[from] crate::disks::manifest::ManifestError),
    #[error(transparent)]
    Record(#[from] crate::disks::record::RecordError),
    #[error(transparent)]
    Plan(#[from] crate::takeover::flows::PlanError),
    #[error(transparent)]
    Engine(#[from] crate::takeover::run::EngineError),
    #[error(transparent)]
    Giveback(#[from] crate::takeover::giveback::GivebackPlanError),
    #[error("invalid --timeout {0}: give a positive number of seconds")]
    Timeout(f64),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
}

impl CommandError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::Profile(_) | Self::Manifest(_) => EXIT_CONFIG,
            Self::Bmc(BmcError::Config(_) | BmcError::Profile { .. }) => EXIT_CONFIG,
            Self::Fence(e) if e.is_config() => EXIT_CONFIG,
            Self::Plan(crate::takeover::flows::PlanError::Fence(e)) if e.is_config() => EXIT_CONFIG,
            Self::Engine(e) if e.is_config() => EXIT_CONFIG,
            Self::Timeout(_) | Self::Usage(_) => EXIT_USAGE,
            Self::Agent(e) => e.exit_code(),
            _ => EXIT_FAILED,
        }
    }
}

/// What a command prints on success: a line for people, a JSON value for scripts.
pub struct Report {
    pub human: String,
    pub json: serde_json::Value,
    pub exit: u8,
}

pub fn run(cli: &Cli) -> Result<Report, CommandError> {
    match &cli.command {
        Command::Fence(args) => fence_cmd(cli, args),
        Command::Power { action } => power_cmd(cli, action),
        Command::Disks(args) => match &args.action {
            Some(crate::cli::DisksAction::Record(a)) => moved::record_cmd(cli, a),
            Some(crate::cli::DisksAction::Verify(a)) => moved::verify_cmd(cli, a),
            None => disks_cmd(args),
        },
        Command::Takeover(args) => takeover::takeover_cmd(cli, args),
        Command::Giveback(args) => takeover::giveback_cmd(cli, args),
        Command::Status(args) => takeover::status_cmd(cli, args),
        Command::Pr { action } => pr_cmd(cli, action),
        Command::Profiles => profiles_cmd(),
        Command::FenceAgent(args) => agent::run(cli, args).map_err(Into::into),
        Command::Drbd { action } => drbd::drbd_cmd(cli, action),
        Command::Completions { shell } => Ok(completions(*shell)),
        Command::History(args) => history_cmd(cli, args),
        Command::Preflight => preflight_cmd(cli),
    }
}

fn load(cli: &Cli) -> Result<(Config, Profiles), CommandError> {
    let cfg = Config::load(&Config::path(cli.config.as_deref()))?;
    Ok((cfg, Profiles::load()?))
}

/// `hamn preflight`: ready (0), not ready (1) or ready with warnings (4). A hamn.toml
/// that does not load is itself the finding (like crm_verify), not a usage error.
fn preflight_cmd(cli: &Cli) -> Result<Report, CommandError> {
    use crate::takeover::preflight::{self, Finding, Level, Role};
    let path = Config::path(cli.config.as_deref());
    let loaded = Config::load(&path)
        .map_err(|e| e.to_string())
        .and_then(|c| Profiles::load().map(|p| (c, p)).map_err(|e| e.to_string()));
    let report = match loaded {
        Ok((cfg, profiles)) => {
            let mut r = preflight::run(&cfg, &profiles);
            r.findings.insert(
                0,
                Finding {
                    check: "config".into(),
                    subject: path.display().to_string(),
                    level: Level::Ok,
                    seen: "every key is valid, and the hardware profiles load".into(),
                    fix: None,
                },
            );
            r
        }
        Err(e) => preflight::Report {
            node: crate::config::hostname(),
            role: Role::Standby,
            findings: vec![Finding {
                check: "config".into(),
                subject: path.display().to_string(),
                level: Level::Problem,
                seen: e,
                fix: Some(format!(
                    "correct {} (see hamn.toml(5)); nothing else was checked",
                    path.display()
                )),
            }],
        },
    };
    let worst = report.worst();
    let mut human = Vec::new();
    for f in &report.findings {
        let tag = match f.level {
            Level::Ok => "ok",
            Level::Warning => "WARNING",
            Level::Problem => "PROBLEM",
        };
        human.push(format!(
            "{tag:<8} {:<16} {}: {}",
            f.check, f.subject, f.seen
        ));
        if let Some(fix) = &f.fix {
            human.push(format!("{:<8} fix: {fix}", ""));
        }
    }
    human.push(match worst {
        Level::Ok => format!(
            "{}: ready ({})",
            report.node,
            match report.role {
                Role::Primary => "primary",
                Role::Standby => "standby",
            }
        ),
        Level::Warning => format!("{}: ready, with warnings", report.node),
        Level::Problem => format!("{}: NOT READY", report.node),
    });
    Ok(Report {
        human: human.join("\n"),
        json: serde_json::to_value(&report).unwrap_or_default(),
        exit: match worst {
            Level::Ok => EXIT_OK,
            Level::Warning => EXIT_ACCEPTABLE,
            Level::Problem => EXIT_FAILED,
        },
    })
}

/// `hamn history`: the evidence records of this node, oldest first, or one whole.
fn history_cmd(cli: &Cli, args: &crate::cli::HistoryArgs) -> Result<Report, CommandError> {
    let cfg = moved::optional_config(cli)?;
    let dir = evidence_dir(cfg.as_ref());
    if let Some(id) = &args.id {
        let v = crate::audit::show(&dir, id)?;
        return Ok(Report {
            human: serde_json::to_string_pretty(&v).unwrap_or_default(),
            json: v,
            exit: EXIT_OK,
        });
    }
    let list = crate::audit::list(&dir)?;
    let human = if list.is_empty() {
        format!("no records in {}", dir.display())
    } else {
        list.iter()
            .map(|r| {
                format!(
                    "{}  {:<24} {} -> {}  {}  by {}{}\n    {}",
                    r.when,
                    r.command,
                    r.node,
                    r.peer,
                    r.result,
                    r.user,
                    if r.proof.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", r.proof)
                    },
                    r.id
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Report {
        human,
        json: json!({"dir": dir, "records": list}),
        exit: EXIT_OK,
    })
}

/// The completion script, generated from the same clap tree the man page test checks.
fn completions(shell: crate::cli::CompletionShell) -> Report {
    use clap::CommandFactory;
    let mut out = Vec::new();
    let mut cmd = Cli::command();
    match shell {
        crate::cli::CompletionShell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "hamn", &mut out)
        }
        crate::cli::CompletionShell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "hamn", &mut out)
        }
    }
    let script = String::from_utf8_lossy(&out).into_owned();
    Report {
        json: json!({ "script": script }),
        human: script,
        exit: EXIT_OK,
    }
}

fn timeout_arg(t: Option<f64>) -> Result<Option<Duration>, CommandError> {
    match t {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(CommandError::Timeout(s)),
    }
}

/// Where this node keeps its evidence files: beside the takeover journal.
pub(crate) fn evidence_dir(cfg: Option<&Config>) -> std::path::PathBuf {
    crate::takeover::run::Context::journal_path(cfg)
        .parent()
        .map_or_else(
            || std::path::PathBuf::from(crate::audit::DEFAULT_DIR),
            |d| d.join("evidence"),
        )
}

fn this_node(cfg: Option<&Config>) -> String {
    cfg.map(|c| c.node.clone())
        .or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .map(|h| h.to_string_lossy().into_owned())
        })
        .unwrap_or_default()
}

/// `fence::fence_peer`, recorded: an evidence file and a system log line, whatever the
/// result (`audit`).
pub(crate) fn fence_recorded(
    command: &str,
    cfg: Option<&Config>,
    peer: &Peer,
    profiles: &Profiles,
    timeout: Option<Duration>,
) -> Result<fence::PowerFenced, FenceError> {
    let mut ev = crate::audit::Evidence::start(command, &this_node(cfg), &peer.name);
    let result = fence::fence_peer(peer, profiles, timeout);
    let end = match &result {
        Ok(done) => {
            ev.proof = done.proof.method().summary();
            ev.bmc.push(serde_json::to_value(done).unwrap_or_default());
            crate::audit::Result::Succeeded
        }
        Err(e) => {
            ev.error = Some(e.to_string());
            crate::audit::Result::Failed
        }
    };
    ev.finish(end, &evidence_dir(cfg));
    result
}

/// The admin's word in place of a fence, recorded as such.
pub(crate) fn override_recorded(
    command: &str,
    cfg: Option<&Config>,
    node: &str,
    statement: &str,
) -> crate::fence::Fenced {
    let proof = fence::admin_override(node, statement);
    let mut ev = crate::audit::Evidence::start(command, &this_node(cfg), node);
    ev.proof = proof.method().summary();
    ev.finish(crate::audit::Result::Succeeded, &evidence_dir(cfg));
    proof
}

fn fence_cmd(cli: &Cli, args: &FenceArgs) -> Result<Report, CommandError> {
    let timeout = timeout_arg(args.timeout)?;
    let (cfg, profiles) = load(cli)?;
    let peer = cfg.peer(&args.node)?;
    if args.dry_run {
        return fence_plan(peer, &profiles, timeout);
    }
    let done = fence_recorded("fence", Some(&cfg), peer, &profiles, timeout)?;
    let json = serde_json::to_value(&done).unwrap_or_default();
    let how = done.proof.method().summary();
    let policy = match &done.restore_policy {
        fence::RestorePolicyReport {
            warning: Some(w), ..
        } => format!("\nWARNING: {w}"),
        fence::RestorePolicyReport {
            before: Some(b),
            after: Some(a),
            ..
        } => format!("; power restore policy {a} (was {b})"),
        _ => String::new(),
    };
    Ok(Report {
        human: format!(
            "{}: FENCED ({how}) in {:.2}s{policy}",
            peer.name,
            json["elapsed_ms"].as_u64().unwrap_or(0) as f64 / 1000.0
        ),
        json,
        exit: EXIT_OK,
    })
}

fn fence_plan(
    peer: &Peer,
    profiles: &Profiles,
    timeout: Option<Duration>,
) -> Result<Report, CommandError> {
    let pre = profile_before_contact(peer, profiles)?;
    let suites: Vec<u8> = match peer.bmc.cipher_suite {
        Some(s) => vec![s.0.id()],
        None => pre.cipher_suites.iter().map(|s| s.id()).collect(),
    };
    let profile = match &peer.bmc.profile {
        Some(p) => format!("{p} (pinned in hamn.toml)"),
        None => "chosen from Get Device ID's manufacturer ID".to_string(),
    };
    let password = match &peer.password {
        crate::config::PasswordSource::File(p) => format!("from file {}", p.display()),
        crate::config::PasswordSource::Env(v) => format!("from environment variable {v}"),
        crate::config::PasswordSource::Given(_) => "given on standard input".into(),
    };
    let confirm = match &peer.bmc.profile {
        Some(_) => format!(
            "confirm: {} consecutive 'off' reads, {} ms apart, within {:.1}s",
            pre.confirm_reads,
            pre.poll_interval.as_millis(),
            timeout.unwrap_or(pre.timeout).as_secs_f64()
        ),
        None => format!(
            "confirm: the chosen profile's consecutive 'off' reads and poll interval (if no profile matches: generic, {} reads {} ms apart), within {}",
            pre.confirm_reads,
            pre.poll_interval.as_millis(),
            match timeout {
                Some(t) => format!("{:.1}s", t.as_secs_f64()),
                None => "the profile's deadline".into(),
            }
        ),
    };
    if peer.bmc.protocol == crate::config::BmcProtocol::Redfish {
        return Ok(plan_report(peer, redfish_plan(peer, &password, confirm)));
    }
    let steps = vec![
        format!(
            "open an RMCP+ session to BMC {}:{} as user '{}' (password {password}), cipher suites {suites:?} in order, privilege ADMINISTRATOR",
            peer.bmc.address,
            peer.bmc.port(),
            peer.bmc.user
        ),
        format!("hardware profile: {profile}"),
        "read Get Chassis Status (power state and power restore policy)".into(),
        "set the power restore policy to always-off (Set Power Restore Policy) and read it \
         back; a BMC that refuses is a warning, not a failure"
            .into(),
        "if on, send Chassis Control power down (never power cycle); after an error or a \
         timeout, read the power state all the same"
            .into(),
        confirm,
        "close the session".into(),
    ];
    Ok(plan_report(peer, steps))
}

fn plan_report(peer: &Peer, steps: Vec<String>) -> Report {
    let mut human = format!(
        "plan to fence {} (dry run: nothing is contacted):\n",
        peer.name
    );
    for (i, s) in steps.iter().enumerate() {
        human.push_str(&format!("  {}. {s}\n", i + 1));
    }
    Report {
        human: human.trim_end().to_string(),
        json: json!({"node": peer.name, "dry_run": true, "steps": steps}),
        exit: EXIT_OK,
    }
}

/// The same fence in Redfish's terms.
fn redfish_plan(peer: &Peer, password: &str, confirm: String) -> Vec<String> {
    let b = &peer.bmc;
    let trust = match (&b.ca_file, &b.fingerprint) {
        (Some(f), _) => format!("against the CA in {}", f.display()),
        (None, Some(fp)) => format!("against the pinned fingerprint {fp}"),
        (None, None) => "NOT verified (insecure = true)".into(),
    };
    vec![
        format!(
            "connect to https://{}:{}, the certificate checked {trust} before anything is sent",
            b.address,
            b.port()
        ),
        format!(
            "log in as user '{}' (password {password}): a session where the service offers \
             SessionService, else HTTP Basic",
            b.user
        ),
        match &b.system {
            Some(s) => format!("the system whose Id, UUID or serial number is '{s}'"),
            None => "the only member of the Systems collection (several: refused)".into(),
        },
        match &b.profile {
            Some(p) => format!("hardware profile: {p} (pinned)"),
            None => "hardware profile: the one whose [redfish] table recognises the service \
                     root's Vendor, Product or Oem key (else a manager's Model), else generic"
                .into(),
        },
        "read the system's PowerState and PowerRestorePolicy".into(),
        "set PowerRestorePolicy to AlwaysOff and read it back; a service that refuses is a \
         warning, not a failure"
            .into(),
        "if on, ComputerSystem.Reset with ResetType ForceOff (never a restart or a graceful \
         shutdown; refused unless ForceOff is among the reset types the system or its \
         ActionInfo lists); a 202 answer's task monitor is followed until the task ends; \
         after an error answer, read PowerState all the same"
            .into(),
        confirm,
        "delete the session".into(),
    ]
}

fn power_cmd(cli: &Cli, action: &PowerAction) -> Result<Report, CommandError> {
    let (PowerAction::Status(args) | PowerAction::On(args) | PowerAction::Off(args)) = action;
    let PowerArgs { node, timeout } = args;
    let timeout = timeout_arg(*timeout)?;
    let (cfg, profiles) = load(cli)?;
    let peer = cfg.peer(node)?;
    let started = Instant::now();
    let pre = profile_before_contact(peer, &profiles)?;
    let deadline = started + timeout.unwrap_or(pre.timeout);
    let mut bmc = AnyBmc::connect(peer, &profiles, deadline, Backoff::default())?;
    let result = (|| {
        let sent = match action {
            PowerAction::Status(_) => None,
            PowerAction::On(_) => Some(ChassisAction::PowerUp),
            PowerAction::Off(_) => Some(ChassisAction::PowerDown),
        };
        if let Some(a) = sent {
            bmc.chassis(a, deadline)?;
        }
        let state = bmc.power_state(deadline)?;
        Ok::<_, BmcError>((sent, state))
    })();
    let bmc_desc = bmc.describe();
    bmc.close();
    let (sent, state) = result?;
    let sent_txt = match sent {
        None => "",
        Some(ChassisAction::PowerUp) => "power up sent; ",
        Some(ChassisAction::PowerDown) => "power down sent; ",
    };
    Ok(Report {
        human: format!("{node}: {sent_txt}{state}"),
        json: json!({"node": node, "power": state, "bmc": bmc_desc,
                     "command": sent.map(|a| format!("{a:?}")),
                     "elapsed_ms": started.elapsed().as_millis() as u64}),
        exit: EXIT_OK,
    })
}

fn profiles_cmd() -> Result<Report, CommandError> {
    let profiles = Profiles::load()?;
    let mut human = String::new();
    for p in profiles.all() {
        human.push_str(&format!(
            "{:<14} ids {:?}  suites {:?}  {} reads / {} ms  timeout {}s  ({})\n",
            p.name,
            p.manufacturer_ids,
            p.cipher_suites.iter().map(|s| s.id()).collect::<Vec<_>>(),
            p.confirm_reads,
            p.poll_interval.as_millis(),
            p.timeout.as_secs(),
            p.origin
        ));
    }
    let list: Vec<_> = profiles.all().collect();
    Ok(Report {
        human: human.trim_end().to_string(),
        json: serde_json::to_value(&list).unwrap_or_default(),
        exit: EXIT_OK,
    })
}

/// `hamn disks`: the inventory, or with a query the one device it names (exit 0 found,
/// 1 not found).
fn disks_cmd(args: &crate::cli::DisksArgs) -> Result<Report, CommandError> {
    use crate::disks::{self, Query};
    let inv = disks::inventory()?;
    let query = match (&args.wwid, &args.serial, &args.fs_uuid) {
        (Some(w), _, _) => Some(("wwid", w, Query::Wwid(w))),
        (_, Some(s), _) => Some(("serial", s, Query::Serial(s))),
        (_, _, Some(u)) => Some(("fs-uuid", u, Query::FsUuid(u))),
        _ => None,
    };
    let Some((what, value, q)) = query else {
        return Ok(Report {
            human: disks::render::table(&inv),
            json: serde_json::to_value(&inv).unwrap_or_default(),
            exit: EXIT_OK,
        });
    };
    let found = disks::find(&inv, &q);
    let names: Vec<String> = found
        .iter()
        .map(|f| match f {
            disks::Found::MultipathMap(m) => format!(
                "multipath map {} ({})",
                m.name.as_deref().unwrap_or("?"),
                m.kernel_name
            ),
            disks::Found::MdArray(a) => format!("md array {}", a.kernel_name),
            disks::Found::Disk(d) => format!("disk {}", d.kernel_name),
            disks::Found::Path { map, path } => format!("path {} of {map}", path.kernel_name),
            disks::Found::Partition { of, partition } => {
                format!("partition {} of {of}", partition.kernel_name)
            }
        })
        .collect();
    let human = if names.is_empty() {
        format!("no device with {what} {value}")
    } else {
        names.join("\n")
    };
    Ok(Report {
        human,
        json: json!({"query": {what: value}, "found": found, "notes": inv.notes}),
        exit: if found.is_empty() {
            EXIT_FAILED
        } else {
            EXIT_OK
        },
    })
}

/// `hamn pr ...`: persistent reservations on every path of one LUN or of every shared
/// LUN. Exit 0 when every path did it, 1 otherwise (partial counts as failure).
fn pr_cmd(cli: &Cli, action: &crate::cli::PrAction) -> Result<Report, CommandError> {
    use crate::cli::PrAction;
    use crate::scsi::reserve::{self, Lun, LunReport};
    if let PrAction::Status(target) = action {
        return pr_status_cmd(cli, target);
    }
    let cfg = Config::load(&Config::path(cli.config.as_deref()))?;
    let inv = crate::disks::inventory()?;
    let own = crate::scsi::pr::Key(cfg.own_key());
    let ty = reserve::pr_type(cfg.storage.reservation_type);
    let target = match action {
        PrAction::Status(t) | PrAction::Reserve(t) | PrAction::Release(t) => t,
        PrAction::Register(r) | PrAction::Unfence(r) => &r.target,
        PrAction::Preempt(p) => &p.target,
        PrAction::Clear(c) => &c.target,
    };
    let luns: Vec<Lun> = match (
        &target.device,
        target.all_shared || matches!(action, PrAction::Unfence(_)),
    ) {
        (Some(d), _) => vec![crate::disks::luns::resolve(d, &inv)?],
        (None, _) => crate::disks::luns::shared_luns(&inv, &cfg.storage.shared)?,
    };
    // Preempting requires the proof that the victim is fenced (or the admin's word).
    let preempt = match action {
        PrAction::Preempt(p) => {
            let victim_peer = p.victim.as_deref().map(|v| cfg.peer(v)).transpose()?;
            let victim_key = match (&p.victim_key, victim_peer) {
                (Some(k), _) => reserve::parse_key(k)?,
                (None, Some(peer)) => crate::scsi::pr::Key(peer.pr_key()),
                (None, None) => {
                    return Err(CommandError::Usage(
                        "hamn pr preempt needs --victim NODE or --victim-key KEY".into(),
                    ));
                }
            };
            let node = p.victim.clone().unwrap_or_else(|| {
                format!("holder of key {}", p.victim_key.clone().unwrap_or_default())
            });
            let fenced = if p.i_know_the_peer_is_off {
                override_recorded(
                    "pr preempt (override)",
                    Some(&cfg),
                    &node,
                    "--i-know-the-peer-is-off given to hamn pr preempt",
                )
            } else if let Some(peer) = victim_peer {
                let profiles = Profiles::load()?;
                fence_recorded("pr preempt (fence)", Some(&cfg), peer, &profiles, None)?.proof
            } else {
                return Err(CommandError::Usage(format!(
                    "refusing to preempt key {victim_key} without a fencing proof: name the node with --victim NODE so hamn fences it through its BMC first, or, if you have confirmed it is off or disconnected, add --i-know-the-peer-is-off (logged)"
                )));
            };
            Some((victim_key, fenced, node))
        }
        _ => None,
    };
    // Clearing removes the peer's registration too: the same proof as a preempt.
    let clear = match action {
        PrAction::Clear(c) => {
            let peer = crate::takeover::flows::san::peer(&cfg, c.peer.as_deref())?;
            let fenced = if c.i_know_the_peer_is_off {
                override_recorded(
                    "pr clear (override)",
                    Some(&cfg),
                    &peer.name,
                    "--i-know-the-peer-is-off given to hamn pr clear",
                )
            } else {
                fence_recorded(
                    "pr clear (fence)",
                    Some(&cfg),
                    peer,
                    &Profiles::load()?,
                    None,
                )?
                .proof
            };
            Some((fenced, peer.name.clone()))
        }
        _ => None,
    };
    let held_path = crate::takeover::held::path_beside(
        &crate::takeover::run::Context::journal_path(Some(&cfg)),
    );
    let held = crate::takeover::held::Held::load(&held_path)?;
    let own_text = reserve::key_text(own);
    let mut reports: Vec<LunReport> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut took: Vec<String> = Vec::new();
    let mut left: Vec<String> = Vec::new();
    for lun in &luns {
        let id = crate::takeover::held::id_of(&lun.name, lun.wwid.as_deref());
        let r = match action {
            PrAction::Status(_) => reserve::status(lun),
            PrAction::Register(a) | PrAction::Unfence(a) => {
                let now = reserve::status(lun)?;
                let verdict =
                    crate::takeover::held::decide(&own_text, held.luns.contains(&id), &now);
                match (verdict, a.rejoin) {
                    (crate::takeover::held::Rejoin::Refuse { holder }, false) => {
                        let who = cfg
                            .peers
                            .values()
                            .find(|p| reserve::key_text(crate::scsi::pr::Key(p.pr_key())) == holder)
                            .map_or_else(|| "another node".to_string(), |p| p.name.clone());
                        errors.push(format!(
                            "LUN {}: NOT registered: this node held it and was fenced since: \
                             its key {own_text} is on no path and {who} ({holder}) holds it \
                             now. Registering again would let this node write to storage \
                             that {who} has mounted; nothing was changed. Once {who} has \
                             given it back, or you have made sure this node must write again, \
                             run `hamn pr unfence --rejoin {}` (logged)",
                            lun.name, lun.name
                        ));
                        continue;
                    }
                    (crate::takeover::held::Rejoin::Refuse { holder }, true) => {
                        tracing::warn!(
                            lun = %lun.name,
                            holder = %holder,
                            "rejoin: registering again although this node was fenced (--rejoin)"
                        );
                        left.push(id.clone());
                    }
                    (crate::takeover::held::Rejoin::Register, _) => {}
                }
                reserve::register(lun, own)
            }
            PrAction::Reserve(_) => reserve::reserve(lun, own, ty),
            PrAction::Release(_) => reserve::release(lun, own, ty),
            PrAction::Clear(_) => match &clear {
                Some((fenced, peer)) => reserve::clear(lun, own, fenced, peer),
                None => continue,
            },
            PrAction::Preempt(_) => match &preempt {
                Some((victim, fenced, node)) => {
                    let profiles = Profiles::load()?;
                    let profile = reserve::profile_for(lun, &profiles);
                    reserve::preempt(lun, own, *victim, ty, profile, fenced, node)
                }
                None => continue,
            },
        };
        match r {
            Ok(rep) => {
                match action {
                    PrAction::Reserve(_) | PrAction::Preempt(_) => took.push(id),
                    PrAction::Release(_) | PrAction::Clear(_) => left.push(id),
                    _ => {}
                }
                reports.push(rep);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !took.is_empty() || !left.is_empty() {
        crate::takeover::held::Held::update(&held_path, &took, &left)?;
    }
    let names = key_names(Some(&cfg));
    let human = render_pr(&reports, &errors, &names);
    let ok = pr_ok(&reports, &errors);
    Ok(Report {
        human: human.trim_end().to_string(),
        json: json!({"own_key": format!("0x{:016x}", own.0), "luns": reports, "errors": errors,
                     "nodes": names}),
        exit: if ok { EXIT_OK } else { EXIT_FAILED },
    })
}

/// `hamn pr status`: reading only, so hamn.toml is optional. Without it every multipath
/// map is shown (or the one named), and keys as they are; with it, the configured shared
/// LUNs, and each key known to the configuration named by its node.
fn pr_status_cmd(cli: &Cli, target: &crate::cli::PrTarget) -> Result<Report, CommandError> {
    use crate::scsi::reserve;
    let cfg = moved::optional_config(cli)?;
    let inv = crate::disks::inventory()?;
    let luns = match &target.device {
        Some(d) => vec![crate::disks::luns::resolve(d, &inv)?],
        None => crate::disks::luns::shared_luns(
            &inv,
            cfg.as_ref()
                .map(|c| c.storage.shared.as_slice())
                .unwrap_or(&[]),
        )?,
    };
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for lun in &luns {
        match reserve::status(lun) {
            Ok(r) => reports.push(r),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let names = key_names(cfg.as_ref());
    let mut human = render_pr(&reports, &errors, &names);
    if cfg.is_none() {
        human.push_str(
            "\n(no hamn.toml: keys are shown as read; with one, each key is named by its node)",
        );
    }
    let ok = pr_ok(&reports, &errors);
    Ok(Report {
        human: human.trim_end().to_string(),
        json: json!({
            "own_key": cfg.as_ref().map(|c| reserve::key_text(crate::scsi::pr::Key(c.own_key()))),
            "luns": reports, "errors": errors, "nodes": names}),
        exit: if ok { EXIT_OK } else { EXIT_FAILED },
    })
}

/// Any path that failed, even to be read, fails the command: partial is failure.
fn pr_ok(reports: &[crate::scsi::reserve::LunReport], errors: &[String]) -> bool {
    errors.is_empty()
        && !reports
            .iter()
            .flat_map(|r| &r.paths)
            .any(|p| p.error.is_some())
}

/// Key (as `reserve::key_text` writes it) -> "node" or "node (this node)", from hamn.toml.
fn key_names(cfg: Option<&Config>) -> std::collections::BTreeMap<String, String> {
    use crate::scsi::{pr::Key, reserve::key_text};
    let mut names = std::collections::BTreeMap::new();
    if let Some(c) = cfg {
        for p in c.peers.values() {
            names.insert(key_text(Key(p.pr_key())), p.name.clone());
        }
        names.insert(
            key_text(Key(c.own_key())),
            format!("{} (this node)", c.node),
        );
    }
    names
}

fn render_pr(
    reports: &[crate::scsi::reserve::LunReport],
    errors: &[String],
    names: &std::collections::BTreeMap<String, String>,
) -> String {
    let named = |k: &str| match names.get(k) {
        Some(n) => format!("{k} ({n})"),
        None => k.to_string(),
    };
    let mut human = String::new();
    for r in reports {
        human.push_str(&format!(
            "{} (wwid {})\n",
            r.lun,
            r.wwid.as_deref().unwrap_or("?")
        ));
        for p in &r.paths {
            let state = match (&p.error, p.ok) {
                (Some(e), _) => format!("FAILED: {e}"),
                (None, true) if !p.keys.is_empty() || p.holder.is_some() => format!(
                    "keys [{}]  holder {}{}",
                    p.keys
                        .iter()
                        .map(|k| named(k))
                        .collect::<Vec<_>>()
                        .join(", "),
                    p.holder.as_deref().map_or("none".to_string(), named),
                    p.reservation_type
                        .as_deref()
                        .map(|t| format!(" ({t})"))
                        .unwrap_or_default()
                ),
                (None, true) => "ok".into(),
                (None, false) => "not done".into(),
            };
            human.push_str(&format!("  {:<10} {state}\n", p.path));
            for reg in &p.registrants {
                human.push_str(&format!(
                    "             {} registered by {}{}\n",
                    named(&reg.key),
                    reg.initiator.as_deref().unwrap_or("?"),
                    if reg.holder { " (holder)" } else { "" }
                ));
            }
        }
        for n in &r.notes {
            human.push_str(&format!("  note: {n}\n"));
        }
    }
    for e in errors {
        human.push_str(&format!("error: {e}\n"));
    }
    human
}
