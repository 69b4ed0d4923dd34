//! `hamn disks record`, `hamn disks verify` and `hamn takeover --moved-disks`: the moved
//! disks recipe. Exit statuses of verify: 0 all good, 4 acceptable changes only, 1 refuse,
//! 3 error (no usable manifest, or the disks could not be inspected).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::json;

use super::{CommandError, EXIT_ACCEPTABLE, EXIT_FAILED, EXIT_OK, Report, fence_peer};
use crate::cli::{Cli, RecordArgs, TakeoverArgs, VerifyArgs};
use crate::config::Config;
use crate::disks::manifest::{self, Manifest};
use crate::disks::present::Present;
use crate::disks::verify::{self, Bays, Status, Verdict, Verification};
use crate::fence;
use crate::profiles::Profiles;
use crate::takeover::moved;

/// hamn.toml if there is one. Moved disks work without it (no BMC to fence, no shared
/// LUNs); an explicitly named or present but broken file is still an error.
fn optional_config(cli: &Cli) -> Result<Option<Config>, CommandError> {
    let path = Config::path(cli.config.as_deref());
    if cli.config.is_none() && !path.exists() {
        return Ok(None);
    }
    Ok(Some(Config::load(&path)?))
}

fn manifest_path(explicit: Option<&Path>, cfg: Option<&Config>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| cfg.and_then(|c| c.disks.manifest.clone()))
        .unwrap_or_else(|| PathBuf::from(manifest::DEFAULT_PATH))
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .map(|h| h.to_string_lossy().into_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

pub fn record_cmd(cli: &Cli, args: &RecordArgs) -> Result<Report, CommandError> {
    let cfg = optional_config(cli)?;
    let path = manifest_path(args.output.as_deref(), cfg.as_ref());
    let node = args
        .node
        .clone()
        .or_else(|| cfg.as_ref().map(|c| c.node.clone()))
        .unwrap_or_else(hostname);
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
fn verification(
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
        Status::ArrayRunning => "running",
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

fn render(manifest_file: &Path, v: &Verification) -> String {
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

pub fn takeover_cmd(cli: &Cli, args: &TakeoverArgs) -> Result<Report, CommandError> {
    if !args.moved_disks {
        return super::takeover::san_takeover(cli, args);
    }
    let cfg = optional_config(cli)?;
    let path = manifest_path(args.manifest.as_deref(), cfg.as_ref());
    let (m, v) = verification(&path, args.accept_degraded)?;
    let peer_name = args.peer.clone().unwrap_or_else(|| m.node.clone());
    let peer = cfg.as_ref().and_then(|c| c.peers.get(&peer_name));
    let fencing = if args.i_know_the_peer_is_off {
        format!("admin override for {peer_name}: --i-know-the-peer-is-off (logged)")
    } else if let Some(p) = peer {
        format!(
            "power off {peer_name} through its BMC {} and confirm",
            p.bmc.address
        )
    } else if cfg.as_ref().is_some_and(|c| c.node == peer_name) || hostname() == peer_name {
        return Err(CommandError::Refused(format!(
            "these are {peer_name}'s disks and this node runs as {peer_name}: the OS moved \
             with them. hamn cannot fence the box they came from by name; once you have \
             confirmed it is off (or has no disks left that could hold this data), add \
             --i-know-the-peer-is-off (logged), or name its BMC peer with --peer"
        )));
    } else {
        return Err(CommandError::Refused(format!(
            "refusing to take over {peer_name}'s disks without a fencing proof: hamn.toml \
             has no peer '{peer_name}' with a BMC to power it off. If you have confirmed \
             that {peer_name} is off (its disks are in this box), add \
             --i-know-the-peer-is-off (logged); or configure [peers.{peer_name}.bmc] in \
             hamn.toml, or name the node with --peer"
        )));
    };

    if args.dry_run {
        let mut out = vec![
            render(&path, &v),
            "plan (nothing is changed by --dry-run):".into(),
        ];
        out.push(format!("  1. fence: {fencing}"));
        for (i, c) in moved::plan(&v, args.read_write).iter().enumerate() {
            out.push(format!("  {}. {c}", i + 2));
        }
        return Ok(Report {
            human: out.join("\n"),
            json: json!({"dry_run": true, "manifest": path, "verdict": v.verdict,
                         "findings": v.findings, "fencing": fencing,
                         "commands": moved::plan(&v, args.read_write)}),
            exit: if v.verdict == Verdict::Refuse {
                EXIT_FAILED
            } else {
                EXIT_OK
            },
        });
    }

    // Identity before anything else: wrong disks mean nothing is touched, not even the peer.
    if v.verdict == Verdict::Refuse {
        return Err(moved::MovedError::Refused {
            node: m.node.clone(),
            list: v
                .refusals(args.accept_degraded)
                .map(|f| format!("  {}: {}", f.subject, f.message))
                .collect::<Vec<_>>()
                .join("\n"),
        }
        .into());
    }
    let quiet = cli.json;
    let say = |line: String| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    say(format!(
        "hamn: disks of {} verified ({:?}); fencing: {fencing}",
        m.node, v.verdict
    ));
    let fenced = if args.i_know_the_peer_is_off {
        fence::admin_override(
            &peer_name,
            "--i-know-the-peer-is-off given to hamn takeover --moved-disks",
        )
    } else if let Some(p) = peer {
        let profiles = Profiles::load()?;
        fence_peer(p, &profiles, None)?.0
    } else {
        return Err(CommandError::Refused(format!("no fencing for {peer_name}")));
    };
    say(format!("hamn: {peer_name} fenced"));
    let mut progress = |e: &moved::Event| {
        if !quiet {
            eprintln!("hamn: {:<9} {} ({:.2} s)", e.step, e.detail, e.seconds);
        }
    };
    let outcome = moved::run(
        &m,
        &v,
        args.accept_degraded,
        args.read_write,
        fenced,
        &mut progress,
    )?;
    // The service address and services of hamn.toml's [takeover], as for the SAN
    // takeover; only on read-write mounts, since xCAT writes its data.
    let mut served = Vec::new();
    if let Some(c) = cfg.as_ref().filter(|_| args.read_write) {
        if let Some(ipc) = &c.takeover.service_ip {
            let ip = crate::net::ServiceIp::parse(ipc)
                .map_err(|e| CommandError::Refused(e.to_string()))?;
            crate::net::bring_up(&ip, &outcome.fenced)
                .map_err(|e| CommandError::Refused(e.to_string()))?;
            say(format!(
                "hamn: service IP {}/{} up on {}",
                ip.address, ip.prefix, ip.interface
            ));
            served.push(format!("service IP {}/{}", ip.address, ip.prefix));
        }
        for sv in
            crate::svc::services(&c.takeover).map_err(|e| CommandError::Refused(e.to_string()))?
        {
            crate::svc::start(&sv, &outcome.fenced)
                .map_err(|e| CommandError::Refused(e.to_string()))?;
            say(format!("hamn: service {} ready", sv.name));
            served.push(format!("service {}", sv.name));
        }
    }
    let mut human = vec![format!("took over {}'s disks:", outcome.node)];
    for a in &outcome.arrays {
        human.push(format!(
            "  array {} {}",
            a.devnode.display(),
            if a.degraded {
                "DEGRADED: add a member back (mdadm --add) to restore redundancy"
            } else {
                "whole"
            }
        ));
    }
    for mnt in &outcome.mounted {
        human.push(format!(
            "  {} mounted on {} ({})",
            mnt.device.display(),
            mnt.mountpoint.display(),
            if mnt.read_only {
                "read-only: remount rw when you have looked"
            } else {
                "read-write"
            }
        ));
    }
    for x in &served {
        human.push(format!("  {x} up"));
    }
    if !args.read_write
        && cfg.as_ref().is_some_and(|c| {
            c.takeover.service_ip.is_some()
                || !c.takeover.services.is_empty()
                || c.takeover.preset.is_some()
        })
    {
        human.push(
            "  services and service IP not started: the filesystems are read-only. When \
             you have looked, run `hamn takeover --moved-disks --read-write ...` again"
                .into(),
        );
    }
    for d in &outcome.in_use {
        human.push(format!("  {d}: already mounted, in use (left as it is)"));
    }
    for d in &outcome.checked_only {
        human.push(format!(
            "  {d} checked, not mounted (no mount point recorded)"
        ));
    }
    Ok(Report {
        human: human.join("\n"),
        json: serde_json::to_value(&outcome).unwrap_or_default(),
        exit: EXIT_OK,
    })
}
