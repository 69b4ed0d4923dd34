//! `hamn takeover` (shared SAN, or --moved-disks), `hamn giveback` and `hamn status`: the
//! main job, its planned reverse, and what an admin looks at first. Each builds a plan
//! and hands it to the one executor.

use serde_json::json;

use super::moved::{manifest_path, optional_config, render, verification};
use super::{CommandError, EXIT_FAILED, EXIT_OK, Report};
use crate::cli::{Cli, GivebackArgs, StatusArgs, TakeoverArgs};
use crate::config::Config;
use crate::disks::verify::Verdict;
use crate::takeover::events::Event;
use crate::takeover::flows;
use crate::takeover::giveback;
use crate::takeover::run::{self, Context, Flow, RunOutcome};
use crate::takeover::step::Step;

const OVERRIDE_SAN: &str = "--i-know-the-peer-is-off given to hamn takeover";
const OVERRIDE_MOVED: &str = "--i-know-the-peer-is-off given to hamn takeover --moved-disks";

/// The plan as --dry-run prints it: numbered steps, each with its exact commands.
fn render_plan(title: &str, steps: &[Step]) -> String {
    let mut out = vec![format!("{title} (nothing is changed by --dry-run):")];
    for (i, s) in steps.iter().enumerate() {
        out.push(format!("{}. {}", i + 1, s.id()));
        out.extend(s.commands().into_iter().map(|c| format!("     {c}")));
    }
    out.join("\n")
}

fn plan_json(steps: &[Step]) -> serde_json::Value {
    json!(
        steps
            .iter()
            .map(|s| json!({"id": s.id(), "commands": s.commands(), "step": s}))
            .collect::<Vec<_>>()
    )
}

/// Progress on stderr as each step ends, or one JSON object per line on stdout.
fn progress(json_stream: bool) -> impl FnMut(&Event) {
    move |e: &Event| {
        if json_stream {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        } else {
            eprintln!("{}", e.line());
        }
    }
}

fn summary(what: &str, outcome: &RunOutcome) -> String {
    let total: f64 = outcome.events.iter().map(|e| e.seconds).sum();
    let mut s = format!(
        "{what} {}: {} step(s) in {total:.2} s{} (journal {})",
        outcome.peer,
        outcome.events.len(),
        if outcome.resumed {
            ", continuing an earlier run"
        } else {
            ""
        },
        outcome.journal.display()
    );
    if !outcome.rechecked.is_empty() {
        s.push_str(&format!(
            "\nre-checked what the earlier run had done: {}",
            outcome.rechecked.join(", ")
        ));
    }
    if let Some(f) = &outcome.evidence {
        s.push_str(&format!("\nevidence: {}", f.display()));
    }
    s
}

pub fn takeover_cmd(cli: &Cli, args: &TakeoverArgs) -> Result<Report, CommandError> {
    if args.moved_disks {
        if args.rejoin {
            return Err(CommandError::Usage(
                "--rejoin registers on shared LUNs: it does not go with --moved-disks".into(),
            ));
        }
        if !args.force_promote.is_empty() {
            return Err(CommandError::Usage(
                "--force-promote names a DRBD resource of hamn.toml: it does not go with \
                 --moved-disks"
                    .into(),
            ));
        }
        return moved_takeover(cli, args);
    }
    if args.manifest.is_some() || args.accept_degraded || args.read_write {
        return Err(CommandError::Usage(
            "--manifest, --accept-degraded and --read-write belong to --moved-disks".into(),
        ));
    }
    // The same registration as `hamn pr unfence --all-shared --rejoin`, in this process:
    // the cluster's start saves starting a second hamn on the failover's path.
    if args.rejoin && !args.dry_run {
        let unfence = crate::cli::PrAction::Unfence(crate::cli::RegisterArgs {
            target: crate::cli::PrTarget {
                device: None,
                all_shared: true,
            },
            rejoin: true,
        });
        let r = super::pr_cmd(cli, &unfence)?;
        if r.exit != EXIT_OK {
            return Ok(r);
        }
    }
    tracing::debug!("takeover: reading the configuration");
    let cfg = Config::load(&Config::path(cli.config.as_deref()))?;
    let peer = flows::san::peer(&cfg, args.peer.as_deref())?;
    let statement = args.i_know_the_peer_is_off.then_some(OVERRIDE_SAN);
    tracing::debug!("takeover: planning");
    let steps = flows::san::plan(&cfg, peer, statement, &args.force_promote)?;
    tracing::debug!(steps = steps.len(), "takeover: planned");
    if args.dry_run {
        let mut human = render_plan(&format!("plan to take over from {}", peer.name), &steps);
        if args.rejoin {
            human = format!(
                "first, as `hamn pr unfence --all-shared --rejoin`: this node's key \
                 registered on every path of every shared LUN\n{human}"
            );
        }
        return Ok(Report {
            human,
            json: json!({"dry_run": true, "peer": peer.name, "rejoin": args.rejoin,
                "steps": plan_json(&steps)}),
            exit: EXIT_OK,
        });
    }
    let ctx = Context {
        flow: Flow::San,
        peer: peer.name.clone(),
        peer_cfg: Some(peer),
        cfg: Some(&cfg),
        journal: Context::journal_path(Some(&cfg)),
    };
    let outcome = run::run(&ctx, &steps, &mut progress(cli.json))?;
    Ok(Report {
        human: summary("took over from", &outcome),
        json: serde_json::to_value(&outcome).unwrap_or_default(),
        exit: EXIT_OK,
    })
}

fn moved_takeover(cli: &Cli, args: &TakeoverArgs) -> Result<Report, CommandError> {
    let cfg = optional_config(cli)?;
    let path = manifest_path(args.manifest.as_deref(), cfg.as_ref());
    let (m, v) = verification(&path, args.accept_degraded)?;
    let peer = args.peer.clone().unwrap_or_else(|| m.node.clone());
    let runs_as_peer =
        cfg.as_ref().is_some_and(|c| c.node == peer) || crate::config::hostname() == peer;
    let req = flows::moved::Request {
        manifest: &path,
        verification: &v,
        accept_degraded: args.accept_degraded,
        read_write: args.read_write,
        admin_says_off: args.i_know_the_peer_is_off.then_some(OVERRIDE_MOVED),
        peer: &peer,
        peer_cfg: cfg.as_ref().and_then(|c| c.peers.get(&peer)),
        cfg: cfg.as_ref(),
        runs_as_peer,
    };
    let planned = flows::moved::plan(&req);
    if args.dry_run {
        // A refused plan is shown as the refusal, not as steps that read as if they
        // would run.
        return Ok(match planned {
            Ok(steps) => Report {
                human: format!(
                    "{}\n{}",
                    render(&path, &v),
                    render_plan(&format!("plan to take over {peer}'s disks"), &steps)
                ),
                json: json!({"dry_run": true, "manifest": path, "verdict": v.verdict,
                             "findings": v.findings, "peer": peer,
                             "steps": plan_json(&steps)}),
                exit: EXIT_OK,
            },
            Err(e) => Report {
                human: format!(
                    "{}\nthe takeover would stop here and change nothing:\n{e}",
                    render(&path, &v)
                ),
                json: json!({"dry_run": true, "manifest": path, "verdict": v.verdict,
                             "findings": v.findings, "refused": e.to_string()}),
                exit: EXIT_FAILED,
            },
        });
    }
    let steps = planned?;
    if !cli.json {
        eprintln!(
            "hamn: disks of {} verified ({}); {} step(s) to run",
            m.node,
            match v.verdict {
                Verdict::Good => "all good",
                Verdict::Acceptable => "acceptable changes",
                Verdict::Refuse => "refused",
            },
            steps.len()
        );
    }
    let ctx = Context {
        flow: Flow::MovedDisks,
        peer: peer.clone(),
        peer_cfg: req.peer_cfg,
        cfg: cfg.as_ref(),
        journal: Context::journal_path(cfg.as_ref()),
    };
    let outcome = run::run(&ctx, &steps, &mut progress(cli.json))?;
    let mut human = vec![summary("took over the disks of", &outcome)];
    for e in &outcome.events {
        if e.step.starts_with("assemble") && e.detail.contains("DEGRADED") {
            human.push(format!(
                "  {}: DEGRADED: add a member back (mdadm --add) to restore redundancy",
                e.step
            ));
        }
    }
    if !args.read_write {
        human.push(
            "  mounted read-only: when you have looked, run `hamn takeover --moved-disks \
             --read-write ...` again (it also brings up the service IP and services of \
             hamn.toml)"
                .into(),
        );
    }
    Ok(Report {
        human: human.join("\n"),
        json: serde_json::to_value(&outcome).unwrap_or_default(),
        exit: EXIT_OK,
    })
}

pub fn giveback_cmd(cli: &Cli, args: &GivebackArgs) -> Result<Report, CommandError> {
    let cfg = optional_config(cli)?;
    let journal = Context::journal_path(cfg.as_ref());
    let steps = giveback::plan(cfg.as_ref(), &journal)?;
    if args.dry_run {
        return Ok(Report {
            human: render_plan("plan to give the storage back", &steps),
            json: json!({"dry_run": true, "steps": plan_json(&steps),
                         "commands": steps.iter().flat_map(Step::commands).collect::<Vec<_>>()}),
            exit: EXIT_OK,
        });
    }
    let peer = crate::takeover::journal::Journal::load(&journal)
        .ok()
        .flatten()
        .map(|j| j.peer)
        .unwrap_or_default();
    let ctx = Context {
        flow: Flow::Giveback,
        peer,
        peer_cfg: None,
        cfg: cfg.as_ref(),
        journal,
    };
    let quiet = cli.json;
    let mut progress = |e: &Event| {
        if !quiet {
            eprintln!("{}", e.line());
        }
    };
    let outcome = run::run(&ctx, &steps, &mut progress)?;
    let mut human = "storage given back: the other node can run `hamn takeover` now".to_string();
    // Only a node with shared LUNs has a key to register again; NFS alone has none.
    if steps
        .iter()
        .any(|s| matches!(s, Step::Release { luns } if !luns.is_empty()))
    {
        human.push_str("; run `hamn pr unfence --all-shared` here afterwards to stand by again");
    } else if cfg
        .as_ref()
        .is_some_and(|c| c.network_mounts().next().is_some())
    {
        human.push_str(
            "; it will power this node off first (NFS keeps no record that this node let go)",
        );
    } else if cfg.as_ref().is_some_and(|c| !c.takeover.drbd.is_empty()) {
        human.push_str(
            "; while DRBD stays connected with this node Secondary, it does so without \
             powering this node off",
        );
    }
    Ok(Report {
        human,
        json: json!({"steps": outcome.events}),
        exit: EXIT_OK,
    })
}

pub fn status_cmd(cli: &Cli, args: &StatusArgs) -> Result<Report, CommandError> {
    let cfg = optional_config(cli)?;
    let peer = cfg
        .as_ref()
        .and_then(|c| flows::san::peer(c, args.peer.as_deref()).ok());
    let status = crate::takeover::status::collect(cfg.as_ref(), peer, !args.no_bmc);
    for a in &status.alarms {
        tracing::error!("{a}");
    }
    Ok(Report {
        human: crate::takeover::status::render(&status),
        json: serde_json::to_value(&status).unwrap_or_default(),
        // A fenced peer running again needs the admin: never a quiet 0.
        exit: if status.alarms.is_empty() {
            EXIT_OK
        } else {
            EXIT_FAILED
        },
    })
}
