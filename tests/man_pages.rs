//! The hand-written man pages in man/: lint-clean for mandoc and groff, and in step with
//! the code they describe.
//!
//! - Each command has one page that owns it (see `owner`): hamn-fence.8 (fence, power),
//!   hamn-pr.8 (pr ...), hamn-disks.8 (disks ...), hamn-takeover.8 (takeover, giveback,
//!   status), and hamn.8 (the global options, profiles, fence-agent, and any command
//!   without a page of its own). That page documents the command and every long and
//!   short option it accepts. hamn.8 lists every command and points to its page.
//! - No page mentions a `--option` the command line would reject: an option on a line
//!   after `hamn COMMAND` must be accepted by that command; elsewhere, by one of the
//!   commands of the page (hamn.8 and the section 5 pages: by any command). Options of
//!   other programs are therefore written without `--` on these pages.
//! - fence_hamn.8 documents every parameter (and alias) of the agent's table `PARAMS`,
//!   and mentions no `--option` that `hamn fence-agent` would reject.
//! - hamn.toml.5 and hamn-hw-profiles.5 document every key their parsers accept, and
//!   every `.EX`/`.EE` block in them is a complete file the current parser accepts.
//! - Every example command line parses with clap, and every command has an example
//!   (see `example_commands` for what counts as one).
//! - `scripts/install`, the install command of the README, puts the pages where
//!   man(1) finds them.
//!
//! "Documented" means: the word appears on a definition line, that is the tag line after
//! `.TP`, or a line of one of the bold macros (`.B`, `.BR`, `.BI`, `.IB`, `.RB`) or of a
//! subsection heading (`.SS`), outside the SYNOPSIS. A mention in running text does not
//! count.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use clap::{CommandFactory, Parser};
use hamn::cli::Cli;

const PAGES: [&str; 8] = [
    "hamn.8",
    "hamn-fence.8",
    "hamn-pr.8",
    "hamn-disks.8",
    "hamn-takeover.8",
    "fence_hamn.8",
    "hamn.toml.5",
    "hamn-hw-profiles.5",
];

/// The pages of hamn's own commands; hamn.8 first.
const COMMAND_PAGES: [&str; 5] = [
    "hamn.8",
    "hamn-fence.8",
    "hamn-pr.8",
    "hamn-disks.8",
    "hamn-takeover.8",
];

/// The page that documents a command, by the first word of its path. The root (the
/// global options), `profiles`, `fence-agent` and any new command stay in hamn.8.
fn owner(path: &[String]) -> &'static str {
    match path.first().map(String::as_str) {
        Some("fence" | "power") => "hamn-fence.8",
        Some("pr") => "hamn-pr.8",
        Some("disks") => "hamn-disks.8",
        Some("takeover" | "giveback" | "status") => "hamn-takeover.8",
        _ => "hamn.8",
    }
}

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
/// headings, unescaped and without their macro name. The SYNOPSIS does not count: an
/// option must also be described.
fn definition_lines(page: &str) -> Vec<String> {
    let mut defs = Vec::new();
    let mut after_tp = false;
    let mut in_synopsis = false;
    for line in page.lines().filter(|l| !is_comment(l)) {
        let mac = macro_of(line);
        if mac == Some("SH") {
            in_synopsis = unescape(&line[3..]).trim().trim_matches('"') == "SYNOPSIS";
        }
        if in_synopsis {
            continue;
        }
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

/// The options a page must document for the command at `path`: for the root the
/// global options, for a subcommand its own (the global ones propagated to it are
/// documented once, in hamn.8).
fn own_options(path: &[String], cmd: &clap::Command) -> Vec<String> {
    if path.is_empty() {
        return documented_options(cmd);
    }
    let globals: BTreeSet<String> = documented_options(&cli()).into_iter().collect();
    documented_options(cmd)
        .into_iter()
        .filter(|o| !globals.contains(o))
        .collect()
}

/// The root and every command below it, with their paths.
fn all_commands() -> Vec<(Vec<String>, clap::Command)> {
    let root = cli();
    let mut commands = vec![(Vec::new(), root.clone())];
    commands.extend(subcommands(&root));
    commands
}

#[test]
fn every_command_and_option_is_documented_in_the_page_that_owns_it() {
    let mut missing = Vec::new();
    for (path, cmd) in all_commands() {
        let page = owner(&path);
        let defs = defined_words(&read_page(page));
        // A nested command counts as documented only on a line naming its whole path,
        // such as ".SS hamn power status|on|off".
        if !path.is_empty() && !defs.iter().any(|d| path.iter().all(|w| d.contains(w))) {
            missing.push(format!("{page}: command 'hamn {}'", path.join(" ")));
        }
        for opt in own_options(&path, &cmd) {
            if !defs.iter().any(|d| d.contains(&opt)) {
                missing.push(format!("{page}: option {opt} of 'hamn {}'", path.join(" ")));
            }
        }
    }
    missing.dedup();
    assert!(
        missing.is_empty(),
        "a page lacks a definition line (.TP tag, .B/.BR/.BI/.RB or .SS) for:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn hamn_8_lists_every_command_and_points_to_every_page() {
    let page = read_page("hamn.8");
    let defs = defined_words(&page);
    let text: String = page
        .lines()
        .filter(|l| !is_comment(l))
        .map(|l| unescape(l) + "\n")
        .collect();
    let mut missing = Vec::new();
    for sub in cli().get_subcommands().filter(|s| s.get_name() != "help") {
        if !defs.iter().any(|d| d.contains(sub.get_name())) {
            missing.push(format!("command {}", sub.get_name()));
        }
    }
    for other in PAGES.iter().filter(|p| **p != "hamn.8") {
        let (name, section) = other.rsplit_once('.').expect("name.N");
        if !text.contains(&format!("{name} ({section})")) {
            missing.push(format!("a reference to {name}({section})"));
        }
    }
    assert!(missing.is_empty(), "hamn.8 lacks: {missing:?}");
}

/// The `.SH` headings of a page, unescaped and without quotes.
fn sections(page: &str) -> Vec<String> {
    page.lines()
        .filter(|l| macro_of(l) == Some("SH"))
        .map(|l| unescape(l[3..].trim()).trim_matches('"').to_string())
        .collect()
}

#[test]
fn every_command_page_has_the_usual_sections() {
    for page in &COMMAND_PAGES[1..] {
        let text = read_page(page);
        let have = sections(&text);
        let want = [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "EXIT STATUS",
            "EXAMPLES",
            "SEE ALSO",
        ];
        let order: Vec<&str> = have
            .iter()
            .map(String::as_str)
            .filter(|h| want.contains(h))
            .collect();
        assert_eq!(order, want, "{page}: sections {have:?}");
        assert!(
            text.contains(".BR hamn (8)"),
            "{page}: SEE ALSO should name hamn(8)"
        );
    }
}

/// A `--option` mentioned on a page: its line number, the command the line names
/// before it (None if it names none), and the option without its dashes.
#[derive(Debug)]
struct Mention {
    line: usize,
    command: Option<Vec<String>>,
    option: String,
}

/// A whitespace-separated token without the punctuation around it.
fn bare(token: &str) -> &str {
    token.trim_matches(|c: char| "\"'`(),;:[]{}".contains(c))
}

/// The command named by the tokens after a `hamn`: the subcommand names, skipping the
/// options before them (and the value of a global option that takes one). None if the
/// tokens name neither a subcommand nor an option ("hamn (8)", "hamn refuses").
fn command_after(root: &clap::Command, tokens: &[&str]) -> Option<Vec<String>> {
    let takes_value = |t: &str| {
        root.get_arguments().any(|a| {
            let named = t
                .strip_prefix("--")
                .is_some_and(|l| a.get_long() == Some(l))
                || t.strip_prefix('-').and_then(|s| s.chars().next()) == a.get_short()
                    && t.len() == 2;
            named && a.get_action().takes_values()
        })
    };
    let mut cmd = root;
    let mut path = Vec::new();
    let mut saw_option = false;
    let mut rest = tokens.iter().map(|t| bare(t));
    while let Some(t) = rest.next() {
        if t.starts_with('-') {
            saw_option = true;
            if path.is_empty() && !t.contains('=') && takes_value(t) {
                rest.next();
            }
            continue;
        }
        match cmd.find_subcommand(t) {
            Some(sub) if t != "help" => {
                path.push(t.to_string());
                cmd = sub;
            }
            _ => break,
        }
    }
    (!path.is_empty() || saw_option).then_some(path)
}

/// Programs whose command lines the pages show with their own `--options`.
const FOREIGN_PROGRAMS: [&str; 1] = ["drbdadm"];

/// Every `--option` a page mentions, comments excluded. On a line, the options after
/// `hamn COMMAND` (`hamn pr unfence`, `/usr/sbin/hamn takeover`, `hamn --json disks
/// verify`) belong to that command, and those after `fence_hamn` to `hamn
/// fence-agent`; "hamn.toml" and "hamn (8)" name no command.
fn option_mentions(page: &str, root: &clap::Command) -> Vec<Mention> {
    let mut out = Vec::new();
    for (n, line) in page.lines().enumerate() {
        if is_comment(line) {
            continue;
        }
        let text = unescape(line);
        let tokens: Vec<&str> = text.split_whitespace().collect();
        let mut context: Option<Vec<String>> = None;
        // After another program's name (DRBD's tools), its own options follow.
        let mut foreign = false;
        for (i, token) in tokens.iter().enumerate() {
            let program = bare(token).rsplit('/').next().unwrap_or_default();
            if program == "hamn" {
                context = command_after(root, &tokens[i + 1..]).or(context);
                foreign = false;
            } else if program == "fence_hamn" {
                context = Some(vec!["fence-agent".to_string()]);
                foreign = false;
            } else if FOREIGN_PROGRAMS.contains(&program) {
                foreign = true;
            }
            if foreign {
                continue;
            }
            for w in words(token) {
                if let Some(name) = w.strip_prefix("--")
                    && name.starts_with(|c: char| c.is_ascii_alphabetic())
                {
                    out.push(Mention {
                        line: n + 1,
                        command: context.clone(),
                        option: name.trim_end_matches('-').to_string(),
                    });
                }
            }
        }
    }
    out
}

fn find_command<'a>(root: &'a clap::Command, path: &[String]) -> &'a clap::Command {
    path.iter().fold(root, |cmd, name| {
        cmd.find_subcommand(name)
            .unwrap_or_else(|| panic!("no command {name}"))
    })
}

#[test]
fn every_option_a_page_mentions_is_accepted_where_it_is_used() {
    let root = cli();
    let commands = all_commands();
    let accepted_by = |filter: &dyn Fn(&[String]) -> bool| -> BTreeSet<String> {
        commands
            .iter()
            .filter(|(path, _)| filter(path))
            .flat_map(|(_, cmd)| accepted_longs(cmd))
            .collect()
    };
    let mut unknown = Vec::new();
    for path in pages_on_disk() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name");
        let page = read_page(name);
        // Options on lines that name no command: on a command page, those of the
        // page's own commands; on hamn.8, those of any command. The section 5 pages
        // describe files, whose commands (such as a service's `ready` command) take
        // other programs' options, so there only options after `hamn COMMAND` count.
        let anywhere: Option<BTreeSet<String>> = if name == "fence_hamn.8" {
            Some(accepted_longs(find_command(
                &root,
                &["fence-agent".to_string()],
            )))
        } else if COMMAND_PAGES[1..].contains(&name) {
            Some(accepted_by(&|p: &[String]| {
                p.is_empty() || owner(p) == name
            }))
        } else if name.ends_with(".8") || name.ends_with(".1") {
            Some(accepted_by(&|_: &[String]| true))
        } else {
            None
        };
        for m in option_mentions(&page, &root) {
            let ok = match (&m.command, &anywhere) {
                (Some(p), _) => accepted_longs(find_command(&root, p)).contains(&m.option),
                (None, Some(set)) => set.contains(&m.option),
                (None, None) => true,
            };
            if !ok {
                unknown.push(format!(
                    "{name}:{}: --{} {}",
                    m.line,
                    m.option,
                    match &m.command {
                        Some(p) => format!("is not an option of 'hamn {}'", p.join(" ")),
                        None => "is not an option of this page's commands".to_string(),
                    }
                ));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "options the command line would reject (write other programs' options \
         without --):\n  {}",
        unknown.join("\n  ")
    );
}

#[test]
fn fence_hamn_8_documents_every_agent_parameter() {
    let page = read_page("fence_hamn.8");
    let defs = defined_words(&page);
    let defined = |w: &str| defs.iter().any(|d| d.contains(w));
    let mut missing = Vec::new();
    for p in hamn::app::agent::PARAMS {
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

// ---------------------------------------------------------------------------------------
// Example command lines.

/// An example command line: where it is, and the arguments it passes to hamn.
#[derive(Debug)]
struct Example {
    page: String,
    line: usize,
    argv: Vec<String>,
}

/// Split a line into words as a POSIX shell would: whitespace separates, single and
/// double quotes group, a backslash outside single quotes takes the next character.
fn shell_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                word.get_or_insert_with(String::new).extend(chars.next());
            }
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => out.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    out.extend(word);
    out
}

/// The hamn command lines in one logical line of an example block. The convention:
///
/// - an example is written without a shell prompt;
/// - a command starts a line or follows `|`, `||`, `&&` or `;`, and ends at one of
///   those, at a redirection (`>`, `<`, `2>...`) or at a `#` comment;
/// - it is a hamn command when its program is `hamn` (or a path ending in `/hamn`,
///   also after a `Key=` prefix as in a systemd unit's `ExecStart=/usr/sbin/hamn`) or
///   `fence_hamn`, which runs `hamn fence-agent`; lines of other programs are skipped.
///
/// Returns the commands' argument vectors (program name first), or an error for a
/// hamn command written after a prompt (`# hamn`, `$ hamn`), which would otherwise be
/// skipped unchecked.
fn hamn_commands(line: &str) -> Result<Vec<Vec<String>>, String> {
    let is_program = |w: &str, name: &str| w == name || w.ends_with(&format!("/{name}"));
    let mut words = shell_words(line);
    // Environment assignments before a command (`DRBD_RESOURCE=xcat hamn ...`).
    while words.len() > 1
        && words[0].split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        })
    {
        words.remove(0);
    }
    if let Some(first) = words.first_mut()
        && let Some((key, rest)) = first.split_once('=')
        && !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphabetic())
    {
        *first = rest.to_string();
    }
    let mut out = Vec::new();
    for segment in words.split(|w| ["|", "||", "&&", ";"].contains(&w.as_str())) {
        // `sudo hamn ...` runs hamn too.
        let segment = match segment.first().map(String::as_str) {
            Some("sudo") => &segment[1..],
            _ => segment,
        };
        let Some(program) = segment.first() else {
            continue;
        };
        let end = segment
            .iter()
            .position(|w| {
                w.starts_with(['>', '<', '#'])
                    || w.trim_start_matches(|c: char| c.is_ascii_digit())
                        .starts_with('>')
            })
            .unwrap_or(segment.len());
        if ["#", "$"].contains(&program.as_str())
            && segment
                .get(1)
                .is_some_and(|w| is_program(w, "hamn") || is_program(w, "fence_hamn"))
        {
            return Err(format!("{line:?}: write example commands without a prompt"));
        }
        if end == 0 {
            continue;
        }
        let args = &segment[1..end];
        let mut argv = vec!["hamn".to_string()];
        if is_program(program, "hamn") {
        } else if is_program(program, "fence_hamn") {
            argv.push("fence-agent".to_string());
        } else {
            continue;
        }
        argv.extend(args.iter().cloned());
        out.push(argv);
    }
    Ok(out)
}

/// The example command lines of a page. Example commands are read from `.nf`/`.fi`
/// blocks of every page, and from `.EX`/`.EE` blocks of section 1 and 8 pages; the
/// `.EX` blocks of section 5 pages are whole files, checked by their own tests. A line
/// ending in a backslash continues on the next.
fn example_commands(name: &str, page: &str) -> (Vec<Example>, Vec<String>) {
    let ex_holds_commands = name.ends_with(".8") || name.ends_with(".1");
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut in_block = false;
    let mut pending: Option<(usize, String)> = None;
    for (n, line) in page.lines().enumerate() {
        if is_comment(line) {
            continue;
        }
        match macro_of(line) {
            Some("EX") => in_block = ex_holds_commands,
            Some("nf") => in_block = true,
            Some("EE" | "fi") => in_block = false,
            Some(_) => {}
            None if in_block => {
                let text = unescape(line);
                let (start, mut joined) = pending.take().unwrap_or((n + 1, String::new()));
                match text.trim_end().strip_suffix('\\') {
                    Some(head) => {
                        joined.push_str(head);
                        joined.push(' ');
                        pending = Some((start, joined));
                    }
                    None => {
                        joined.push_str(&text);
                        match hamn_commands(&joined) {
                            Ok(cmds) => out.extend(cmds.into_iter().map(|argv| Example {
                                page: name.to_string(),
                                line: start,
                                argv,
                            })),
                            Err(e) => errors.push(format!("{name}:{start}: {e}")),
                        }
                    }
                }
            }
            None => {}
        }
    }
    if let Some((start, _)) = pending {
        errors.push(format!(
            "{name}:{start}: the last line of a block ends in a backslash"
        ));
    }
    (out, errors)
}

/// Usage errors that hamn reports only after clap has parsed the line (see
/// src/commands/takeover.rs and the `pr` command in src/commands/mod.rs), so that an
/// example cannot show one either.
fn usage_error_after_parsing(cli: &Cli) -> Option<&'static str> {
    use hamn::cli::{Command, PrAction};
    match &cli.command {
        Command::Takeover(a)
            if !a.moved_disks && (a.manifest.is_some() || a.accept_degraded || a.read_write) =>
        {
            Some("--manifest, --accept-degraded and --read-write belong to --moved-disks")
        }
        Command::Pr {
            action: PrAction::Preempt(p),
        } if p.victim.is_none() && p.victim_key.is_none() => {
            Some("hamn pr preempt needs --victim or --victim-key")
        }
        Command::Pr {
            action: PrAction::Preempt(p),
        } if p.victim.is_none() && !p.i_know_the_peer_is_off => {
            Some("hamn pr preempt without --victim needs --i-know-the-peer-is-off")
        }
        _ => None,
    }
}

/// The command path an argument vector selects, such as ["pr", "status"].
fn command_path(argv: &[String]) -> Vec<String> {
    let matches = Cli::command()
        .try_get_matches_from(argv)
        .expect("parsed before");
    let mut path = Vec::new();
    let mut m = &matches;
    while let Some((name, sub)) = m.subcommand() {
        path.push(name.to_string());
        m = sub;
    }
    path
}

#[test]
fn every_example_command_line_parses_and_every_command_has_one() {
    let mut examples = Vec::new();
    let mut errors = Vec::new();
    for path in pages_on_disk() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name");
        let (found, problems) = example_commands(name, &read_page(name));
        examples.extend(found);
        errors.extend(problems);
    }
    let mut covered = BTreeSet::new();
    for ex in &examples {
        let shown = format!("{}:{}: {}", ex.page, ex.line, ex.argv.join(" "));
        match Cli::try_parse_from(&ex.argv) {
            Ok(cli) => {
                if let Some(why) = usage_error_after_parsing(&cli) {
                    errors.push(format!("{shown}\n    {why}"));
                }
                let path = command_path(&ex.argv);
                for i in 1..=path.len() {
                    covered.insert(path[..i].to_vec());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                ) => {}
            Err(e) => {
                let first = e.to_string().lines().next().unwrap_or_default().to_string();
                errors.push(format!("{shown}\n    {first}"));
            }
        }
    }
    assert!(
        errors.is_empty(),
        "example command lines that hamn would reject:\n  {}",
        errors.join("\n  ")
    );
    for page in COMMAND_PAGES {
        assert!(
            examples.iter().any(|e| e.page == page),
            "{page} has no example hamn command line"
        );
    }
    let uncovered: Vec<String> = subcommands(&cli())
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| !covered.contains(p))
        .map(|p| p.join(" "))
        .collect();
    assert!(
        uncovered.is_empty(),
        "no page has an example of: {uncovered:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Installation.

#[test]
fn the_readme_install_command_puts_the_pages_where_man_finds_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    assert!(
        readme.contains("scripts/install"),
        "the README no longer names scripts/install; test the install command it names"
    );
    if !support::require_tool("man") {
        return;
    }
    let tmp = tempfile::tempdir().expect("temporary directory");
    let prefix = tmp.path().join("usr");
    // HAMN_BIN: install the binary cargo built for the tests instead of building a
    // release binary; SYSCONFDIR keeps the configuration directory out of /etc.
    let out = Process::new("bash")
        .arg(root.join("scripts/install"))
        .env("PREFIX", &prefix)
        .env("SYSCONFDIR", tmp.path().join("etc"))
        .env("HAMN_BIN", env!("CARGO_BIN_EXE_hamn"))
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "scripts/install failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The completions, where bash-completion and zsh look for them.
    let bash = prefix.join("share/bash-completion/completions/hamn");
    assert_eq!(
        completes(&bash, "hamn ta"),
        vec!["takeover".to_string()],
        "the installed bash completion"
    );
    let zsh = ["vendor-completions", "site-functions"]
        .iter()
        .map(|d| prefix.join("share/zsh").join(d).join("_hamn"))
        .find(|p| p.is_file())
        .expect("the zsh completion is installed");
    let text = std::fs::read_to_string(zsh).expect("read _hamn");
    assert!(
        text.starts_with("#compdef hamn"),
        "{}",
        &text[..80.min(text.len())]
    );
    // The systemd units, pointing at the binary installed with them, and clean for
    // systemd-analyze.
    for unit in [
        "hamn-unfence.service",
        "hamn-preflight.service",
        "hamn-preflight.timer",
    ] {
        let path = prefix.join("lib/systemd/system").join(unit);
        let text = std::fs::read_to_string(&path).expect("unit installed");
        if unit.ends_with(".service") {
            assert!(
                text.contains(&format!("ExecStart={}/sbin/hamn ", prefix.display())),
                "{unit}:\n{text}"
            );
        }
        if support::require_tool("systemd-analyze") {
            let out = Process::new("systemd-analyze")
                .args(["verify", "--man=no"])
                .arg(&path)
                .output()
                .expect("systemd-analyze runs");
            let said = String::from_utf8_lossy(&out.stderr).to_string();
            let own: Vec<&str> = said.lines().filter(|l| l.contains("hamn")).collect();
            assert!(own.is_empty(), "{unit}: {said}");
        }
    }
    let manpath = prefix.join("share/man");
    for page in pages_on_disk() {
        let file = page
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name");
        let (name, section) = file.rsplit_once('.').expect("name.N");
        let out = Process::new("man")
            .args(["-w", name])
            .env("MANPATH", &manpath)
            .env("LC_ALL", "C")
            .env_remove("MANSECT")
            .env_remove("MANOPT")
            .output()
            .expect("man runs");
        let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let want = manpath.join(format!("man{section}")).join(file);
        assert_eq!(
            Path::new(&found),
            want,
            "man -w {name} with MANPATH={}: {}",
            manpath.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read(&want).expect("installed page"),
            std::fs::read(&page).expect("source page"),
            "{} differs from its source",
            want.display()
        );
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

    // Options after `hamn COMMAND` on a line belong to that command.
    let root = cli();
    let text = ".B hamn pr unfence \\-\\-all\\-shared\nsee hamn.toml, \\-\\-peer\n\
                .BR fence_hamn \" \\-\\-plug\"\n";
    let m = option_mentions(text, &root);
    let got: Vec<(Option<String>, &str)> = m
        .iter()
        .map(|m| (m.command.as_ref().map(|p| p.join(" ")), m.option.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Some("pr unfence".to_string()), "all-shared"),
            (None, "peer"),
            (Some("fence-agent".to_string()), "plug"),
        ]
    );

    // Example command lines: continued lines, pipes, prompts and other programs.
    let man8 = ".EX\nhamn \\-\\-json disks verify \\e\n    \\-m /x > out.json\n\
                printf \\(aqaction=off\\en\\(aq | fence_hamn\nExecStart=/usr/sbin/hamn takeover\n\
                ipmitool \\-I lanplus chassis power status\n.EE\n";
    let (found, problems) = example_commands("x.8", man8);
    assert!(problems.is_empty(), "{problems:?}");
    let argv: Vec<String> = found.into_iter().map(|e| e.argv.join(" ")).collect();
    assert_eq!(
        argv,
        [
            "hamn --json disks verify -m /x",
            "hamn fence-agent",
            "hamn takeover"
        ]
    );
    assert_eq!(
        example_commands("x.8", ".EX\n# hamn takeover\n.EE\n")
            .1
            .len(),
        1,
        "a prompt is an error"
    );
    let (found, _) = example_commands("x.8", ".nf\nsudo hamn giveback\n.fi\n");
    assert_eq!(found[0].argv, ["hamn", "giveback"]);
    // In section 5 an .EX block is a file, whose # lines are comments.
    let (found, problems) = example_commands("x.5", ".EX\n# hamn takeover\nhamn = 1\n.EE\n");
    assert!(found.is_empty() && problems.is_empty());
}

/// What bash offers for the last word of `line`, with `script` loaded as bash-completion
/// loads it.
fn completes(script: &Path, line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split(' ').collect();
    let program = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_LINE='{line}'\nCOMP_POINT={}\n\
         _hamn hamn '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
        words.len() - 1,
        line.len(),
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = Process::new("bash")
        .args(["-c", &program])
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The completion script is made from the command tree these pages are checked against:
/// every command, and each command's options, complete.
#[test]
fn bash_completes_every_command_and_the_options_of_a_command() {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let script = tmp.path().join("hamn");
    let out = Process::new(env!("CARGO_BIN_EXE_hamn"))
        .args(["completions", "bash"])
        .output()
        .expect("hamn runs");
    assert!(out.status.success());
    std::fs::write(&script, &out.stdout).expect("write");
    let offered = completes(&script, "hamn ");
    for sub in cli().get_subcommands().filter(|s| s.get_name() != "help") {
        assert!(
            offered.iter().any(|o| o == sub.get_name()),
            "{} not offered: {offered:?}",
            sub.get_name()
        );
    }
    let options = completes(&script, "hamn takeover --");
    // Every long option of the command (short ones are completed by their long form).
    for opt in own_options(
        &["takeover".to_string()],
        &cli().find_subcommand("takeover").expect("takeover").clone(),
    )
    .into_iter()
    .filter(|o| o.starts_with("--"))
    {
        assert!(options.contains(&opt), "{opt} not offered: {options:?}");
    }
}
