//! `hamn disks record` and `hamn disks verify`: the moved disks recipe's identity
//! checks (the takeover itself is in takeover.rs). Exit statuses of verify: 0 all good, 4 acceptable changes only, 1 refuse,
//! 3 error (no usable manifest, or the disks could not be inspected).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::json;

use super::{CommandError, EXIT_ACCEPTABLE, EXIT_FAILED, EXIT_OK, Report};
use crate::cli::{Cli, RecordArgs, VerifyArgs};
use crate::config::Config;
use crate::disks::manifest::{self, Manifest};
use crate::disks::present::Present;
use crate::disks::verify::{self, Bays, Status, Verdict, Verification};
use crate::profiles::Profiles;

/// hamn.toml if there is one. Moved disks, giveback of a journaled takeover and status
/// work without it (no BMC to fence, no shared LUNs); an explicitly named or present but
/// broken file is still an error.
/// hamn.toml where there is one; None where there is none at the default path, or only
/// the packaged example there (all comments): the commands that only read work without.
pub(super) fn optional_config(cli: &Cli) -> Result<Option<Config>, CommandError> {
    let path = Config::path(cli.config.as_deref());
    if cli.config.is_none() && !path.exists() {
        return Ok(None);
    }
    match Config::load(&path) {
        Err(crate::config::ConfigError::NothingSet { .. }) if cli.config.is_none() => Ok(None),
        other => Ok(Some(other?)),
    }
}

pub(super) fn manifest_path(explicit: Option<&Path>, cfg: Option<&Config>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| cfg.and_then(|c| c.disks.manifest.clone()))
        .unwrap_or_else(|| PathBuf::from(manifest::DEFAULT_PATH))
}

pub fn record_cmd(cli: &Cli, args: &RecordArgs) -> Result<Report, CommandError> {
    let cfg = optional_config(cli)?;
    let path = manifest_path(args.output.as_deref(), cfg.as_ref());
    let node = args
        .node
        .clone()
        .or_else(|| cfg.as_ref().map(|c| c.node.clone()))
        .unwrap_or_else(crate::config::hostname);
    let present = Present::scan()?;
    let (new, notes) = crate::disks::record::record(&present, &node, SystemTime::now())?;
    let old = if path.exists() {
        Some(Manifest::load(&path)?)
    } else {
        None
    };
    let changes = old
        .as_ref()
        .map(|o| manifest::diff(o, &new))
        .unwrap_or_default();
    let lines: Vec<String> = changes.iter().map(ToString::to_string).collect();
    if args.diff {
        let Some(_) = old else {
            return Err(CommandError::Usage(format!(
                "no manifest at {} to compare with: run `hamn disks record` first",
                path.display()
            )));
        };
        let human = if lines.is_empty() {
            format!("no changes since {} was recorded", path.display())
        } else {
            lines.join("\n")
        };
        return Ok(Report {
            human,
            json: json!({"manifest": path, "changes": changes, "notes": notes}),
            exit: if changes.is_empty() {
                EXIT_OK
            } else {
                EXIT_FAILED
            },
        });
    }
    new.write(&path)?;
    let mut human = vec![format!(
        "recorded {} array(s), {} other disk(s) and {} NIC(s) of {node} in {}",
        new.arrays.len(),
        new.disks.len(),
        new.nics.len(),
        path.display()
    )];
    if old.is_some() {
        if lines.is_empty() {
            human.push("no changes since the previous manifest".into());
        } else {
            human.push("changes since the previous manifest:".into());
            human.extend(lines.iter().map(|l| format!("  {l}")));
        }
    }
    human.extend(notes.iter().map(|n| format!("note: {n}")));
    human.push(format!(
        "copy it to the standby now and after every change (see hamn(8), MOVED DISKS \
         PROCEDURE), e.g. scp {} STANDBY:/etc/hamn/peer-disks.toml",
        path.display()
    ));
    Ok(Report {
        human: human.join("\n"),
        json: json!({"manifest": path, "written": true, "node": node, "changes": changes,
                     "notes": notes, "recorded": new}),
        exit: EXIT_OK,
    })
}

/// Load the manifest and compare it with this box.
pub(super) fn verification(
    manifest_file: &Path,
    accept_degraded: bool,
) -> Result<(Manifest, Verification), CommandError> {
    let m = Manifest::load(manifest_file)?;
    let present = Present::scan().map_err(|e| {
        CommandError::Manifest(manifest::ManifestError::Invalid {
            path: manifest_file.into(),
            message: format!("cannot inspect this box's disks to compare: {e}"),
        })
    })?;
    let profiles = Profiles::load()?;
    let bays = Bays {
        recorded: m.server.as_deref().and_then(|s| profiles.for_server(s)),
        present: present
            .server
            .as_deref()
            .and_then(|s| profiles.for_server(s)),
    };
    let v = verify::verify(&m, &present, &bays, accept_degraded);
    Ok((m, v))
}

fn tag(s: Status) -> &'static str {
    match s {
        Status::Matched | Status::NicMatched => "ok",
        Status::SlotChanged => "SLOT CHANGED",
        Status::Missing | Status::MemberMissing => "MISSING",
        Status::Wrong => "WRONG",
        Status::Stale => "STALE",
        Status::Unreadable => "UNREADABLE",
        Status::Unexpected => "unexpected",
        Status::NotMoved => "not moved",
        Status::ArrayWhole => "whole",
        Status::ArrayDegraded => "DEGRADED",
        Status::ArrayRunning => "assembled",
        Status::NicRenamed => "NIC RENAMED",
        Status::NicMacChanged => "NEW MAC",
        Status::NicNetworksChanged => "NETWORK CHANGED",
        Status::NicMissing => "NIC MISSING",
    }
}

fn verdict_line(v: Verdict) -> &'static str {
    match v {
        Verdict::Good => "verdict: all good: these are the recorded disks, arrays whole",
        Verdict::Acceptable => {
            "verdict: acceptable changes only (see above); nothing refused (exit 4)"
        }
        Verdict::Refuse => {
            "verdict: REFUSE: do not use these disks until the lines marked in capitals \
             are resolved (exit 1)"
        }
    }
}

pub(super) fn render(manifest_file: &Path, v: &Verification) -> String {
    let mut out = vec![format!(
        "disks of {} (manifest {}):",
        v.node,
        manifest_file.display()
    )];
    for f in &v.findings {
        out.push(format!(
            "  {:<15} {}: {}",
            tag(f.status),
            f.subject,
            f.message
        ));
    }
    out.push(verdict_line(v.verdict).into());
    out.join("\n")
}

fn verdict_exit(v: Verdict) -> u8 {
    match v {
        Verdict::Good => EXIT_OK,
        Verdict::Acceptable => EXIT_ACCEPTABLE,
        Verdict::Refuse => EXIT_FAILED,
    }
}

pub fn verify_cmd(cli: &Cli, args: &VerifyArgs) -> Result<Report, CommandError> {
    let cfg = optional_config(cli)?;
    let path = manifest_path(args.manifest.as_deref(), cfg.as_ref());
    let (_, v) = verification(&path, args.accept_degraded)?;
    Ok(Report {
        human: render(&path, &v),
        json: json!({"manifest": path, "verdict": v.verdict, "exit": verdict_exit(v.verdict),
                     "findings": v.findings, "arrays": v.arrays, "volumes": v.volumes}),
        exit: verdict_exit(v.verdict),
    })
}
