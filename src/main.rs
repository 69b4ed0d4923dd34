//! Entry point: parse arguments, set up logging, turn the result into an exit status.
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::process::ExitCode;

use clap::Parser;
use hamn::app;
use hamn::cli::Cli;

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let cli = if hamn::app::agent::invoked_as_agent(&argv0) {
        hamn::app::agent::cli_from_agent_argv()
    } else {
        Cli::try_parse()
    };
    let cli = match cli {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                return ExitCode::from(app::EXIT_OK);
            }
            // FenceAgentAPI: a fence agent fails with 1; 2 would read as "off" to status.
            let agent = hamn::app::agent::invoked_as_agent(&argv0)
                || std::env::args_os().any(|a| a == "fence-agent");
            return ExitCode::from(if agent {
                app::EXIT_FAILED
            } else {
                app::EXIT_USAGE
            });
        }
    };
    hamn::logging::init(cli.log_format, cli.verbose);
    match app::run(&cli) {
        Ok(report) => {
            if cli.json {
                println!("{}", report.json);
            } else if !report.human.is_empty() {
                println!("{}", report.human);
            }
            ExitCode::from(report.exit)
        }
        Err(e) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "error": e.to_string(), "exit": e.exit_code()})
                );
            }
            eprintln!("hamn: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
