//! The hand-written man pages in man/: lint-clean for mandoc and groff, and in step with
//! the code they describe.
//!
//! - hamn.8 documents every subcommand and every long and short option of the clap
//!   command tree, and mentions no `--option` that the command line would reject.
//! - fence_hamn.8 documents every parameter (and alias) of the agent's table `PARAMS`,
//!   and mentions no `--option` that `hamn fence-agent` would reject.
//! - hamn.toml.5 and hamn-hw-profiles.5 document every key their parsers accept, and
//!   every `.EX`/`.EE` block in them is a complete file the current parser accepts.
//!
//! "Documented" means: the word appears on a definition line, that is the tag line after
//! `.TP`, or a line of one of the bold macros (`.B`, `.BR`, `.BI`, `.IB`, `.RB`) or of a
//! subsection heading (`.SS`). A mention in running text does not count.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use clap::CommandFactory;
use hamn::cli::Cli;

const PAGES: [&str; 4] = [
    "hamn.8",
    "fence_hamn.8",
    "hamn.toml.5",
    "hamn-hw-profiles.5",
];

fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("man")
}

fn read_page(name: &str) -> String {
    let path = man_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every page in man/ (files named like `name.N`).
fn pages_on_disk() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(man_dir())
        .expect("man/ exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| x.len() == 1 && x.as_bytes()[0].is_ascii_digit())
        })
        .collect();
    pages.sort();
    pages
}

/// Prints "SKIP: ..." and returns true, or panics when env CI is set.
fn skip(reason: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("{reason}; env CI is set, so this is a failure rather than a skip");
    }
    eprintln!("SKIP: {reason}");
    true
}

/// Run `tool args page`; None if the tool is not installed (after skip()).
fn run_tool(tool: &str, args: &[&str], page: &Path) -> Option<std::process::Output> {
    match Process::new(tool)
        .args(args)
        .arg(page)
        .env("LC_ALL", "C")
        .output()
    {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let package = if tool == "groff" { "groff-base" } else { tool };
            skip(&format!("{tool} not installed (Debian package {package})"));
            None
        }
        Err(e) => panic!("cannot run {tool}: {e}"),
    }
}

fn assert_silent(tool: &str, page: &Path, out: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim().is_empty() && stderr.trim().is_empty(),
        "{tool} on {}: exit {:?}\n{stdout}{stderr}",
        page.display(),
        out.status.code()
    );
}

#[test]
fn the_expected_pages_exist_and_are_ascii() {
    let on_disk = pages_on_disk();
    for name in PAGES {
        let path = man_dir().join(name);
        assert!(on_disk.contains(&path), "man/{name} is missing");
    }
    for path in &on_disk {
        let text = std::fs::read(path).expect("readable");
        assert!(
            text.is_ascii(),
            "{}: roff source should be ASCII (use escapes such as \\(em)",
            path.display()
        );
    }
}

#[test]
fn mandoc_lint_finds_nothing() {
    for page in pages_on_disk() {
        let Some(out) = run_tool("mandoc", &["-T", "lint", "-W", "warning"], &page) else {
            return;
        };
        assert_silent("mandoc -T lint -W warning", &page, &out);
    }
}

#[test]
fn groff_warns_about_nothing() {
    for page in pages_on_disk() {
        let Some(out) = run_tool("groff", &["-man", "-ww", "-z"], &page) else {
            return;
        };
        assert_silent("groff -man -ww -z", &page, &out);
    }
}

// ---------------------------------------------------------------------------------------
// A small reader for the subset of roff the pages use.

/// Plain text of a roff line: escapes replaced by what they print, fonts dropped.
fn unescape(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('-') => out.push('-'),
            Some('e') | Some('\\') => out.push('\\'),
            Some('&') | Some('%') | Some('c') => {}
            Some(' ') | Some('~') => out.push(' '),
            // \fB, \fI, \fR, \fP, \f(CW
            Some('f') => match chars.next() {
                Some('(') => {
                    chars.next();
                    chars.next();
                }
                Some('[') => {
                    for c in chars.by_ref() {
                        if c == ']' {
                            break;
                        }
                    }
                }
                _ => {}
            },
            // \(xx special characters
            Some('(') => {
                let name: String = [chars.next(), chars.next()].into_iter().flatten().collect();
                out.push_str(match name.as_str() {
                    "aq" => "'",
                    "dq" => "\"",
                    "lq" | "rq" => "\"",
                    "oq" | "cq" => "'",
                    _ => " ",
                });
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => {}
        }
    }
    out
}

fn is_comment(line: &str) -> bool {
    line.starts_with(".\\\"") || line.starts_with("'\\\"") || line.starts_with("\\\"")
}

/// The macro name of a control line (".TP" -> "TP"), or None for a text line.
fn macro_of(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('.').or_else(|| line.strip_prefix('\''))?;
    Some(rest.split_whitespace().next().unwrap_or(""))
}

/// The page's lines that define something: the tag after .TP, bold macro lines and .SS
/// headings, unescaped and without their macro name.
fn definition_lines(page: &str) -> Vec<String> {
    let mut defs = Vec::new();
    let mut after_tp = false;
    for line in page.lines().filter(|l| !is_comment(l)) {
        let mac = macro_of(line);
        let take = after_tp || matches!(mac, Some("B" | "BR" | "BI" | "IB" | "RB" | "SS"));
        if take {
            let body = match mac {
                Some(m) => line[1 + m.len()..].to_string(),
                None => line.to_string(),
            };
            defs.push(unescape(&body));
        }
        after_tp = mac == Some("TP");
    }
    defs
}

/// Words of a line: runs of letters, digits, '-' and '_' (so "--dry-run", "-v",
/// "fence-agent" and "password_file" are single words).
fn words(line: &str) -> BTreeSet<String> {
    line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn defined_words(page: &str) -> Vec<BTreeSet<String>> {
    definition_lines(page).iter().map(|l| words(l)).collect()
}

/// Every `--name` the page mentions anywhere (text, macros, examples), comments excluded.
fn long_options_mentioned(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|l| !is_comment(l))
        .flat_map(|l| words(&unescape(l)))
        .filter_map(|w| {
            let name = w.strip_prefix("--")?;
            name.starts_with(|c: char| c.is_ascii_alphabetic())
                .then(|| name.trim_end_matches('-').to_string())
        })
        .collect()
}

/// The text between each `.EX` and `.EE`, unescaped.
fn examples(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines().filter(|l| !is_comment(l)) {
        match (macro_of(line), current.as_mut()) {
            (Some("EX"), None) => current = Some(String::new()),
            (Some("EE"), Some(_)) => out.extend(current.take()),
            (Some(m), Some(_)) => panic!("macro .{m} inside .EX/.EE: {line}"),
            (None, Some(text)) => {
                text.push_str(&unescape(line));
                text.push('\n');
            }
            _ => {}
        }
    }
    assert!(current.is_none(), ".EX without .EE");
    out
}

// ---------------------------------------------------------------------------------------
// The clap command tree.

fn cli() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

/// Every command below the root with its path of names, e.g. ["power", "status"]; clap's
/// generated "help" subcommands are left out.
fn subcommands(cmd: &clap::Command) -> Vec<(Vec<String>, clap::Command)> {
    fn walk(cmd: &clap::Command, path: &[String], out: &mut Vec<(Vec<String>, clap::Command)>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut p = path.to_vec();
            p.push(sub.get_name().to_string());
            out.push((p.clone(), sub.clone()));
            walk(sub, &p, out);
        }
    }
    let mut out = Vec::new();
    walk(cmd, &[], &mut out);
    out
}

/// Every long option and long alias (hidden ones included) that `cmd` accepts.
fn accepted_longs(cmd: &clap::Command) -> BTreeSet<String> {
    cmd.get_arguments()
        .flat_map(|a| {
            let mut names: Vec<String> = a.get_long().map(str::to_string).into_iter().collect();
            names.extend(
                a.get_all_aliases()
                    .unwrap_or_default()
                    .into_iter()
                    .map(str::to_string),
            );
            names
        })
        .collect()
}

/// The options a page must document for `cmd`: visible long names and aliases, and
/// visible short flags, without help and version.
fn documented_options(cmd: &clap::Command) -> Vec<String> {
    let mut out = Vec::new();
    for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        if let Some(l) = a.get_long() {
            if l == "help" || l == "version" {
                continue;
            }
            out.push(format!("--{l}"));
            out.extend(
                a.get_visible_aliases()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|x| format!("--{x}")),
            );
        }
        if let Some(s) = a.get_short() {
            out.push(format!("-{s}"));
        }
    }
    out
}

#[test]
fn hamn_8_documents_every_command_and_option() {
    let page = read_page("hamn.8");
    let defs = defined_words(&page);
    let root = cli();
    let mut missing = Vec::new();
    let mut commands = vec![(Vec::new(), root.clone())];
    commands.extend(subcommands(&root));
    for (path, cmd) in &commands {
        // A nested command counts as documented only on a line naming its whole path,
        // such as ".SS hamn power status|on|off".
        if !path.is_empty() && !defs.iter().any(|d| path.iter().all(|w| d.contains(w))) {
            missing.push(format!("command '{}'", path.join(" ")));
        }
        for opt in documented_options(cmd) {
            if !defs.iter().any(|d| d.contains(&opt)) {
                missing.push(format!("option {opt} of 'hamn {}'", path.join(" ")));
            }
        }
    }
    missing.dedup();
    assert!(
        missing.is_empty(),
        "hamn.8 lacks a definition line (.TP tag, .B/.BR/.BI/.RB or .SS) for:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_option_in_hamn_8_is_accepted_by_some_command() {
    let page = read_page("hamn.8");
    let root = cli();
    let mut accepted = accepted_longs(&root);
    for (_, cmd) in subcommands(&root) {
        accepted.extend(accepted_longs(&cmd));
    }
    let unknown: Vec<String> = long_options_mentioned(&page)
        .into_iter()
        .filter(|o| !accepted.contains(o))
        .map(|o| format!("--{o}"))
        .collect();
    assert!(
        unknown.is_empty(),
        "hamn.8 mentions options no hamn command accepts: {unknown:?}"
    );
}

#[test]
fn fence_hamn_8_documents_every_agent_parameter() {
    let page = read_page("fence_hamn.8");
    let defs = defined_words(&page);
    let defined = |w: &str| defs.iter().any(|d| d.contains(w));
    let mut missing = Vec::new();
    for p in hamn::agent::PARAMS {
        for name in std::iter::once(&p.name).chain(p.aliases) {
            if !defined(name) {
                missing.push(format!("parameter {name}"));
            }
        }
        // Options the command line accepts: the long one and its short form.
        if let Some(l) = p.long {
            if !defined(&format!("--{l}")) {
                missing.push(format!("option --{l}"));
            }
            if let Some(s) = p.short
                && !defined(&format!("-{s}"))
            {
                missing.push(format!("option -{s}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "fence_hamn.8 lacks a definition line for:\n  {}",
        missing.join("\n  ")
    );
    for action in [
        "off", "on", "reboot", "status", "monitor", "list", "metadata",
    ] {
        assert!(
            defined(action),
            "fence_hamn.8 does not define action {action}"
        );
    }
    assert!(
        defined("validate-all"),
        "fence_hamn.8 does not define validate-all"
    );
}

#[test]
fn every_option_in_fence_hamn_8_is_accepted_by_the_agent() {
    let page = read_page("fence_hamn.8");
    let root = cli();
    let agent = root
        .find_subcommand("fence-agent")
        .expect("hamn fence-agent exists");
    let accepted = accepted_longs(agent);
    let unknown: Vec<String> = long_options_mentioned(&page)
        .into_iter()
        .filter(|o| !accepted.contains(o))
        .map(|o| format!("--{o}"))
        .collect();
    assert!(
        unknown.is_empty(),
        "fence_hamn.8 mentions options fence_hamn does not accept: {unknown:?}"
    );
}

/// The field names a serde parser lists when it meets an unknown one, from its error
/// message ("unknown field `x`, expected one of `a`, `b`").
fn expected_fields(error: &str) -> Vec<String> {
    let list = error
        .split_once("expected")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no list of expected fields in: {error}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn config_error(text: &str) -> String {
    hamn::config::Config::parse(Path::new("probe.toml"), text)
        .expect_err("unknown field is refused")
        .to_string()
}

fn profile_error(text: &str) -> String {
    hamn::profiles::BmcProfile::parse("probe", "probe", text)
        .expect_err("unknown field is refused")
        .to_string()
}

#[test]
fn hamn_toml_5_documents_every_key_and_its_examples_parse() {
    let page = read_page("hamn.toml.5");
    let defs = defined_words(&page);
    let top = expected_fields(&config_error("unknown_probe_key = 1\n"));
    let bmc = expected_fields(&config_error(
        "node = \"a\"\n[peers.b.bmc]\nunknown_probe_key = 1\n",
    ));
    assert!(top.contains(&"node".to_string()), "{top:?}");
    assert!(bmc.contains(&"address".to_string()), "{bmc:?}");
    let storage = expected_fields(&config_error(
        "node = \"a\"\n[storage]\nunknown_probe_key = 1\n",
    ));
    let peer = expected_fields(&config_error(
        "node = \"a\"\n[peers.b]\nunknown_probe_key = 1\n",
    ));
    let keys: Vec<String> = top
        .into_iter()
        .chain(bmc)
        .chain(storage)
        .chain(peer)
        .collect();
    for key in &keys {
        assert!(
            defs.iter().any(|d| d.contains(key)),
            "hamn.toml.5 has no definition line for key {key}"
        );
    }

    let exs = examples(&page);
    assert!(!exs.is_empty(), "hamn.toml.5 has no .EX example");
    let mut used = BTreeSet::new();
    for (i, text) in exs.iter().enumerate() {
        let origin = format!("hamn.toml.5 example {}", i + 1);
        if let Err(e) = hamn::config::Config::parse(Path::new(&origin), text) {
            panic!("{e}\n--- example ---\n{text}");
        }
        let table: toml::Table = toml::from_str(text).expect("valid TOML");
        collect_keys(&toml::Value::Table(table), &mut used);
    }
    // "peers" and the peer names are tables; every key proper must appear in an example.
    for key in keys.iter().filter(|k| *k != "peers") {
        assert!(
            used.contains(key),
            "no example in hamn.toml.5 uses key {key}"
        );
    }
}

fn collect_keys(v: &toml::Value, out: &mut BTreeSet<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                out.insert(k.clone());
                collect_keys(v, out);
            }
        }
        toml::Value::Array(a) => a.iter().for_each(|v| collect_keys(v, out)),
        _ => {}
    }
}

#[test]
fn hamn_hw_profiles_5_documents_every_key_and_its_examples_parse() {
    let page = read_page("hamn-hw-profiles.5");
    let defs = defined_words(&page);
    let valid = "name = \"probe\"\ndescription = \"d\"\nmanufacturer_ids = []\n\
                 cipher_suites = [3]\nconfirm_reads = 1\npoll_interval_ms = 1\n\
                 power_off_settle_ms = 0\ntimeout_s = 1\n";
    hamn::profiles::BmcProfile::parse("probe", "probe", valid).expect("the probe is valid");
    let top = expected_fields(&profile_error(&format!("{valid}unknown_probe_key = 1\n")));
    let quirk = expected_fields(&profile_error(&format!(
        "{valid}[[quirks]]\nid = \"i\"\ndescription = \"d\"\nsource = \"s\"\nunknown_probe_key = 1\n"
    )));
    assert!(top.contains(&"confirm_reads".to_string()), "{top:?}");
    assert!(quirk.contains(&"source".to_string()), "{quirk:?}");
    for key in top.iter().chain(&quirk) {
        assert!(
            defs.iter().any(|d| d.contains(key)),
            "hamn-hw-profiles.5 has no definition line for key {key}"
        );
    }

    let exs = examples(&page);
    assert!(!exs.is_empty(), "hamn-hw-profiles.5 has no .EX example");
    for text in exs {
        let table: toml::Table = toml::from_str(&text).expect("valid TOML");
        let name = table
            .get("name")
            .and_then(toml::Value::as_str)
            .expect("the example has a name");
        if let Err(e) = hamn::profiles::BmcProfile::parse("hamn-hw-profiles.5", name, &text) {
            panic!("{e}\n--- example ---\n{text}");
        }
    }
}

#[test]
fn the_roff_reader_understands_the_macros_it_relies_on() {
    let page = ".TH X 8\n.\\\" --not-an-option\n.TP\n.BR \\-v \", \" \\-\\-verbose\nMore.\n\
                .SS \"hamn power status|on|off \\fInode\\fP\"\nText \\-\\-json here.\n\
                .EX\nname = \\(dqx\\(dq \\e\n.EE\n";
    let defs = definition_lines(page);
    assert!(
        defs.iter().any(|d| words(d).contains("--verbose")),
        "{defs:?}"
    );
    assert!(defs.iter().any(|d| words(d).contains("-v")), "{defs:?}");
    assert!(
        defs.iter().any(|d| ["power", "status", "on"]
            .iter()
            .all(|w| words(d).contains(*w))),
        "{defs:?}"
    );
    assert!(!defs.iter().any(|d| d.contains("More")), "{defs:?}");
    let mentioned = long_options_mentioned(page);
    assert!(mentioned.contains("json") && mentioned.contains("verbose"));
    assert!(!mentioned.contains("not-an-option"), "{mentioned:?}");
    assert_eq!(examples(page), vec!["name = \"x\" \\\n".to_string()]);
}
