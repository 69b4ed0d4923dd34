//! `hamn takeover` (shared SAN), `hamn giveback` and `hamn status`: the main job, its
//! planned reverse, and what an admin looks at first.

use serde_json::json;

use super::{CommandError, EXIT_OK, Report};
use crate::cli::{Cli, GivebackArgs, StatusArgs, TakeoverArgs};
use crate::config::Config;
use crate::takeover::{giveback, san};

/// `hamn takeover` of shared SAN storage: the plan from hamn.toml, journaled.
pub fn san_takeover(cli: &Cli, args: &TakeoverArgs) -> Result<Report, CommandError> {
    if args.manifest.is_some() || args.accept_degraded || args.read_write {
        return Err(CommandError::Usage(
            "--manifest, --accept-degraded and --read-write belong to --moved-disks".into(),
        ));
    }
    let cfg = Config::load(&Config::path(cli.config.as_deref()))?;
    let peer = san::peer(&cfg, args.peer.as_deref())?;
    let steps = san::plan(&cfg, peer, args.i_know_the_peer_is_off)?;
    if args.dry_run {
        let mut out = vec![format!(
            "plan to take over from {} (nothing is changed by --dry-run):",
            peer.name
        )];
        for (i, s) in steps.iter().enumerate() {
            out.push(format!("{}. {}", i + 1, s.id()));
            out.extend(s.commands().into_iter().map(|c| format!("     {c}")));
        }
        return Ok(Report {
            human: out.join("\n"),
            json: json!({"dry_run": true, "peer": peer.name, "steps": steps.iter().map(|s| json!({"id": s.id(), "commands": s.commands(), "step": s})).collect::<Vec<_>>()}),
            exit: EXIT_OK,
        });
    }
    let json_stream = cli.json;
    let mut progress = |e: &san::Event| {
        if json_stream {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        } else {
            eprintln!(
                "hamn: {:<18} {:<8} {} ({:.2} s)",
                e.step, e.outcome, e.detail, e.seconds
            );
        }
    };
    let outcome = san::run(&cfg, peer, &steps, &mut progress)?;
    let total: f64 = outcome.events.iter().map(|e| e.seconds).sum();
    Ok(Report {
        human: format!(
            "took over from {}: {} step(s) in {total:.2} s{} (journal {})",
            outcome.peer,
            outcome.events.len(),
            if outcome.resumed {
                ", continuing an earlier run"
            } else {
                ""
            },
            outcome.journal.display()
        ),
        json: serde_json::to_value(&outcome).unwrap_or_default(),
        exit: EXIT_OK,
    })
}

pub fn giveback_cmd(cli: &Cli, args: &GivebackArgs) -> Result<Report, CommandError> {
    let cfg = Config::load(&Config::path(cli.config.as_deref()))?;
    if args.dry_run {
        let plan = giveback::plan(&cfg);
        return Ok(Report {
            human: format!(
                "plan to give the storage back (nothing is changed by --dry-run):\n{}",
                plan.iter()
                    .enumerate()
                    .map(|(i, c)| format!("{}. {c}", i + 1))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            json: json!({"dry_run": true, "commands": plan}),
            exit: EXIT_OK,
        });
    }
    let quiet = cli.json;
    let mut progress = |s: &giveback::Step| {
        if !quiet {
            eprintln!("hamn: {:<18} {} ({:.2} s)", s.step, s.detail, s.seconds);
        }
    };
    let steps = giveback::run(&cfg, &mut progress)?;
    Ok(Report {
        human: "storage given back: the other node can run `hamn takeover` now; run `hamn pr \
                unfence --all-shared` here afterwards to stand by again"
            .into(),
        json: json!({"steps": steps}),
        exit: EXIT_OK,
    })
}

pub fn status_cmd(cli: &Cli, args: &StatusArgs) -> Result<Report, CommandError> {
    let cfg = Config::load(&Config::path(cli.config.as_deref()))?;
    let peer = san::peer(&cfg, args.peer.as_deref()).ok();
    let status = crate::takeover::status::collect(&cfg, peer, !args.no_bmc);
    Ok(Report {
        human: crate::takeover::status::render(&status),
        json: serde_json::to_value(&status).unwrap_or_default(),
        exit: EXIT_OK,
    })
}
