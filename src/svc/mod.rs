//! The services xCAT needs: started, in order, as the last steps of `hamn takeover`, and
//! stopped in reverse order as the first of `hamn giveback`. Each is an argv (never a
//! shell) run by `crate::exec` with a deadline, and a readiness check polled until it
//! passes; `preset` holds xCAT's documented list.
//!
//! Starting takes a [`Fenced`]: a daemon started while the old primary still serves
//! splits the cluster's clients between two management nodes. Stopping (giveback) needs
//! no proof.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::{info, info_span};

use crate::config::{ServiceConfig, TakeoverConfig};
use crate::exec::{self, ExecError, Ran};
use crate::fence::proof::Fenced;

mod preset;

#[derive(Debug, thiserror::Error)]
pub enum SvcError {
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("unknown [takeover] preset '{name}'; known presets: {known}")]
    UnknownPreset { name: String, known: String },
    #[error("[[takeover.service]] '{name}': {reason}")]
    BadService { name: String, reason: String },
    #[error(
        "service '{service}': {action} failed: {source}. Find out why (for a systemd unit: \
         `systemctl status UNIT`, `journalctl -u UNIT`), fix it, and rerun"
    )]
    Service {
        service: String,
        action: &'static str,
        source: Box<SvcError>,
    },
    #[error(
        "service '{service}' is not ready {waited:.1}s after its start: `{ready}` still \
         fails{output}. Find out why (for a systemd unit: `systemctl status UNIT`, \
         `journalctl -u UNIT`), fix it, and rerun"
    )]
    NotReady {
        service: String,
        waited: f64,
        ready: String,
        output: String,
    },
}

fn command(argv: &[String], timeout: Duration) -> exec::Command {
    exec::Command::new(argv.iter().cloned())
        .timeout(timeout)
        .hint("install it, or correct the command in hamn.toml")
}

/// Run `argv` with a deadline. Returns whatever the exit status; errors only when the
/// program could not be run or did not finish in time.
fn run(argv: &[String], timeout: Duration) -> Result<Ran, SvcError> {
    Ok(command(argv, timeout).run()?)
}

fn run_ok(argv: &[String], timeout: Duration) -> Result<Ran, SvcError> {
    Ok(command(argv, timeout).run_ok()?)
}

/// How often `ready` is polled.
const READY_POLL: Duration = Duration::from_millis(500);

/// The least time a readiness probe gets, even when the start command used up the budget.
const MIN_PROBE: Duration = Duration::from_secs(2);

/// The idempotence check before starting: a probe that hangs counts as "not ready".
const FIRST_PROBE: Duration = Duration::from_secs(10);

/// hamn.toml's documented default for `timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A service to start on takeover and stop on giveback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Service {
    pub name: String,
    /// May be empty when `ready` alone decides (a pure wait).
    pub start: Vec<String>,
    /// Exits 0 once the service is ready; empty: `start`'s exit status decides.
    pub ready: Vec<String>,
    /// Empty: nothing to undo on giveback.
    pub stop: Vec<String>,
    /// For the start command and readiness together.
    pub timeout: Duration,
}

/// What [`start`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartOutcome {
    /// `ready` passed before anything was run (a rerun).
    AlreadyReady,
    /// Started; ready after this long.
    Started { waited: Duration },
}

impl Service {
    fn from_preset(p: &preset::PresetEntry) -> Self {
        let owned = |v: &[&str]| v.iter().map(|s| (*s).to_string()).collect();
        Service {
            name: p.name.to_string(),
            start: owned(p.start),
            ready: owned(p.ready),
            stop: owned(p.stop),
            timeout: Duration::from_secs(p.timeout_secs),
        }
    }

    fn from_config(c: &ServiceConfig) -> Result<Self, SvcError> {
        let bad = |reason: &str| SvcError::BadService {
            name: c.name.clone(),
            reason: reason.to_string(),
        };
        if c.name.trim().is_empty() {
            return Err(bad("the name is empty"));
        }
        if c.start.is_empty() && c.ready.is_empty() {
            return Err(bad(
                "needs a start command, a ready command, or both (program and arguments, \
                 e.g. [\"systemctl\", \"start\", \"xcatd\"])",
            ));
        }
        for cmd in [&c.start, &c.ready, &c.stop] {
            if cmd.first().is_some_and(|p| p.trim().is_empty()) {
                return Err(bad("a command's program name is empty"));
            }
            if preset::destroys_xcat_state(cmd) {
                return Err(bad(
                    "xcatconfig -c/-d regenerate xCAT's credentials and database, destroying \
                     what the standby takes over; remove it",
                ));
            }
        }
        if c.timeout == Some(0) {
            return Err(bad(
                "timeout = 0 leaves no time to become ready; give seconds, e.g. 60",
            ));
        }
        Ok(Service {
            name: c.name.clone(),
            start: c.start.clone(),
            ready: c.ready.clone(),
            stop: c.stop.clone(),
            timeout: c.timeout.map_or(DEFAULT_TIMEOUT, Duration::from_secs),
        })
    }
}

/// The services to run, in order: the preset's (if any) then the config's; a config entry
/// with the same name as a preset entry replaces it in place. Giveback stops them in
/// reverse order.
pub fn services(cfg: &TakeoverConfig) -> Result<Vec<Service>, SvcError> {
    let mut out: Vec<Service> = match cfg.preset.as_deref() {
        None => Vec::new(),
        Some(name) => preset::PRESETS
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| SvcError::UnknownPreset {
                name: name.to_string(),
                known: preset::PRESETS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?
            .1
            .iter()
            .map(Service::from_preset)
            .collect(),
    };
    let mut seen = BTreeSet::new();
    for c in &cfg.services {
        let s = Service::from_config(c)?;
        if !seen.insert(s.name.clone()) {
            return Err(SvcError::BadService {
                name: s.name,
                reason: "defined twice; each service name must be unique".into(),
            });
        }
        match out.iter_mut().find(|p| p.name == s.name) {
            Some(slot) => *slot = s,
            None => out.push(s),
        }
    }
    Ok(out)
}

fn service_err(s: &Service, action: &'static str, source: SvcError) -> SvcError {
    SvcError::Service {
        service: s.name.clone(),
        action,
        source: Box::new(source),
    }
}

/// One readiness probe: Ok(Ok(())) when ready, Ok(Err(output)) when not (yet). A probe
/// that cannot run at all (missing program) is an error at once rather than a minute of
/// polling.
fn probe(s: &Service, timeout: Duration) -> Result<Result<(), String>, SvcError> {
    match run(&s.ready, timeout) {
        Ok(ran) if ran.success() => Ok(Ok(())),
        Ok(ran) => Ok(Err(ran.output())),
        Err(SvcError::Exec(e @ ExecError::Timeout { .. })) => Ok(Err(e.to_string())),
        Err(e) => Err(service_err(s, "the readiness check", e)),
    }
}

/// Does `ready` pass now? A service without a ready command is never known to be ready.
pub fn is_ready(s: &Service) -> Result<bool, SvcError> {
    if s.ready.is_empty() {
        return Ok(false);
    }
    Ok(probe(s, s.timeout.min(FIRST_PROBE))?.is_ok())
}

/// Start one service: if `ready` already passes, do nothing (a rerun); else run `start`,
/// then poll `ready` every 0.5 s until it passes or `timeout` runs out. Without a ready
/// command, start's exit status decides.
pub fn start(s: &Service, fenced: &Fenced) -> Result<StartOutcome, SvcError> {
    let _span = info_span!("service-start", service = %s.name).entered();
    if is_ready(s)? {
        info!("already ready; nothing to do");
        return Ok(StartOutcome::AlreadyReady);
    }
    info!(fenced = fenced.node(), "starting");
    let started = Instant::now();
    let deadline = started + s.timeout;
    if !s.start.is_empty() {
        run_ok(&s.start, s.timeout).map_err(|e| service_err(s, "start", e))?;
    }
    if s.ready.is_empty() {
        return Ok(StartOutcome::Started {
            waited: started.elapsed(),
        });
    }
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let last = match probe(s, remaining.max(MIN_PROBE))? {
            Ok(()) => {
                let waited = started.elapsed();
                info!(waited_s = waited.as_secs_f64(), "ready");
                return Ok(StartOutcome::Started { waited });
            }
            Err(output) => output,
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(SvcError::NotReady {
                service: s.name.clone(),
                waited: started.elapsed().as_secs_f64(),
                ready: exec::display(&s.ready),
                output: exec::tail(&last),
            });
        }
        std::thread::sleep(READY_POLL.min(remaining));
    }
}

/// Stop one service (giveback). No stop command: nothing to do.
pub fn stop(s: &Service) -> Result<(), SvcError> {
    let _span = info_span!("service-stop", service = %s.name).entered();
    if s.stop.is_empty() {
        return Ok(());
    }
    run_ok(&s.stop, s.timeout).map_err(|e| service_err(s, "stop", e))?;
    info!("stopped");
    Ok(())
}

/// The exact commands [`start`] runs, for --dry-run: the start command, then the
/// readiness check it polls (also run first: if it passes, nothing else is).
pub fn service_plan(s: &Service) -> Vec<String> {
    [&s.start, &s.ready]
        .into_iter()
        .filter(|c| !c.is_empty())
        .map(|c| exec::display(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::preset::{PRESETS, XCAT_PRESET, destroys_xcat_state};
    use super::*;

    fn argv(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| (*s).to_string()).collect()
    }

    fn takeover(preset: Option<&str>, services: Vec<ServiceConfig>) -> TakeoverConfig {
        TakeoverConfig {
            preset: preset.map(str::to_string),
            services,
            ..TakeoverConfig::default()
        }
    }

    fn svc(name: &str, start: &[&str]) -> ServiceConfig {
        ServiceConfig {
            name: name.into(),
            start: argv(start),
            ready: vec![],
            stop: vec![],
            timeout: None,
        }
    }

    fn names(s: &[Service]) -> Vec<&str> {
        s.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn the_xcat_preset_follows_the_documented_order() {
        let s = services(&takeover(Some("xcat"), vec![])).expect("preset");
        assert_eq!(
            names(&s),
            [
                "database",
                "xcatd",
                "named",
                "makedns",
                "dhcpd",
                "makedhcp-n",
                "makedhcp-a",
                "conserver",
                "makeconservercf",
                "nfs-server",
                "exportfs",
            ]
        );
        assert_eq!(s[0].start, argv(&["systemctl", "start", "postgresql"]));
        assert_eq!(s[1].ready, argv(&["/opt/xcat/bin/lsxcatd", "-a"]));
        assert_eq!(s[3].start, argv(&["/opt/xcat/sbin/makedns", "-n"]));
        assert_eq!(s[10].stop, argv(&["exportfs", "-ua"]));
        assert!(s.iter().all(|s| !s.start.is_empty()));
    }

    #[test]
    fn the_xcat_preset_never_runs_xcatconfig() {
        for (_, preset) in PRESETS {
            for p in preset.iter() {
                for cmd in [p.start, p.ready, p.stop] {
                    assert!(
                        !cmd.iter().any(|a| a.contains("xcatconfig")),
                        "{}: {cmd:?}",
                        p.name
                    );
                }
            }
        }
        assert!(destroys_xcat_state(&argv(&["xcatconfig", "-c"])));
        assert!(destroys_xcat_state(&argv(&[
            "/opt/xcat/sbin/xcatconfig",
            "-d"
        ])));
        assert!(destroys_xcat_state(&argv(&["xcatconfig", "-cd"])));
        assert!(destroys_xcat_state(&argv(&["xcatconfig", "--credentials"])));
        assert!(!destroys_xcat_state(&argv(&["xcatconfig", "-t"])));
        let e = services(&takeover(None, vec![svc("creds", &["xcatconfig", "-c"])]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'creds'") && e.contains("credentials"), "{e}");
    }

    #[test]
    fn a_config_entry_replaces_the_preset_entry_of_its_name_in_place() {
        let mut db = svc("database", &["systemctl", "start", "mariadb"]);
        db.ready = argv(&["systemctl", "is-active", "--quiet", "mariadb"]);
        db.timeout = Some(300);
        let extra = svc("httpd", &["systemctl", "start", "httpd"]);
        let s = services(&takeover(Some("xcat"), vec![extra, db])).expect("services");
        assert_eq!(s.len(), XCAT_PRESET.len() + 1);
        assert_eq!(s[0].name, "database");
        assert_eq!(s[0].start, argv(&["systemctl", "start", "mariadb"]));
        assert_eq!(
            s[0].stop,
            Vec::<String>::new(),
            "replaced whole, not merged"
        );
        assert_eq!(s[0].timeout, Duration::from_secs(300));
        assert_eq!(s.last().map(|s| s.name.as_str()), Some("httpd"));
        assert_eq!(s.last().map(|s| s.timeout), Some(DEFAULT_TIMEOUT));
    }

    #[test]
    fn presets_none_and_absent_run_only_the_config() {
        let only = vec![svc("a", &["true"]), svc("b", &["true"])];
        for preset in [None, Some("none")] {
            let s = services(&takeover(preset, only.clone())).expect("services");
            assert_eq!(names(&s), ["a", "b"]);
        }
    }

    #[test]
    fn bad_service_configurations_are_refused() {
        let e = services(&takeover(Some("xCAT2"), vec![]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'xCAT2'") && e.contains("xcat, none"), "{e}");
        let dup = vec![svc("a", &["true"]), svc("a", &["false"])];
        let e = services(&takeover(None, dup)).unwrap_err().to_string();
        assert!(e.contains("defined twice"), "{e}");
        let e = services(&takeover(None, vec![svc("nothing", &[])]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'nothing'") && e.contains("start command"),
            "{e}"
        );
        let mut zero = svc("z", &["true"]);
        zero.timeout = Some(0);
        let e = services(&takeover(None, vec![zero]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeout = 0"), "{e}");
        let e = services(&takeover(None, vec![svc(" ", &["true"])]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("name is empty"), "{e}");
    }

    #[test]
    fn service_plan_lists_start_then_ready() {
        let s = services(&takeover(Some("xcat"), vec![])).expect("preset");
        assert_eq!(
            service_plan(&s[1]),
            ["systemctl start xcatd", "/opt/xcat/bin/lsxcatd -a"]
        );
        assert_eq!(service_plan(&s[6]), ["/opt/xcat/sbin/makedhcp -a"]);
        let mut odd = Service::from_preset(&XCAT_PRESET[0]);
        odd.start = argv(&["touch", "/tmp/a file", "it's"]);
        assert_eq!(service_plan(&odd)[0], r"touch '/tmp/a file' 'it'\''s'");
    }
}
