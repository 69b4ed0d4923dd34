//! FenceAgentAPI front end: `fence_hamn` (fencing/fence_hamn runs `hamn fence-agent`).
//!
//! Arguments come as options, or, when no agent option is given, as `name=value` lines
//! on standard input (how Pacemaker calls agents). One parameter table drives the stdin
//! parser and the metadata XML, and a test checks it against the clap arguments of
//! `hamn fence-agent`, so the three cannot drift. The password is accepted only on
//! standard input, through password_script, or from a file: never in argv.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;

use super::{CommandError, EXIT_FAILED, EXIT_OK, Report};
use crate::bmc::lanplus::Backoff;
use crate::bmc::{AnyBmc, ChassisAction, PowerControl, PowerState};
use crate::cli::{AgentArgs, Cli};
use crate::config::{BmcConfig, Config, ConfigError, PasswordSource, Peer, SuiteSetting};
use crate::fence::profile_before_contact;
use crate::profiles::Profiles;
use crate::secret::Secret;

pub const AGENT_NAME: &str = "fence_hamn";

/// FenceAgentAPI: status reports "off" with exit status 2.
pub const EXIT_STATUS_OFF: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("Failed: {0}")]
    Usage(String),
    #[error(
        "Failed: a password on the command line is visible to every user in ps; pass password= on standard input, --password-script or --password-file"
    )]
    PasswordInArgv,
    #[error("Failed: {0}")]
    Config(#[from] ConfigError),
    #[error("Failed: {0}")]
    Command(Box<CommandError>),
    #[error("Failed: cannot read standard input: {0}")]
    Stdin(std::io::Error),
    #[error("Failed: password_script {script} failed: {detail}")]
    PasswordScript { script: String, detail: String },
    /// The storage level could not read or change what it needs.
    #[error("Failed: {0}")]
    Storage(String),
}

impl AgentError {
    /// FenceAgentAPI: every failure is 1.
    pub fn exit_code(&self) -> u8 {
        EXIT_FAILED
    }
}

impl From<CommandError> for AgentError {
    fn from(e: CommandError) -> Self {
        AgentError::Command(Box::new(e))
    }
}

/// Content types of the metadata schema.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    String,
    Integer,
    Second,
    Boolean,
    Select(&'static [&'static str]),
}

/// One agent parameter: its stdin name, deprecated stdin aliases, the clap long option
/// that carries it on the command line (None: standard input only), type and default.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub long: Option<&'static str>,
    pub short: Option<char>,
    pub kind: Kind,
    pub default: Option<&'static str>,
    pub desc: &'static str,
}

const fn p(
    name: &'static str,
    aliases: &'static [&'static str],
    long: Option<&'static str>,
    short: Option<char>,
    kind: Kind,
    default: Option<&'static str>,
    desc: &'static str,
) -> Param {
    Param {
        name,
        aliases,
        long,
        short,
        kind,
        default,
        desc,
    }
}

/// The parameter table (names and aliases follow fence_ipmilan where they mean the same).
pub const PARAMS: &[Param] = &[
    p(
        "action",
        &[],
        Some("action"),
        Some('o'),
        Kind::String,
        Some("off"),
        "Fencing action",
    ),
    p(
        "plug",
        &["port"],
        Some("plug"),
        Some('n'),
        Kind::String,
        None,
        "Node to fence, as named in hamn.toml [peers.NAME]",
    ),
    p(
        "nodename",
        &[],
        None,
        None,
        Kind::String,
        None,
        "Node to fence when plug is not given (Pacemaker passes it)",
    ),
    p(
        "ip",
        &["ipaddr"],
        Some("ip"),
        Some('a'),
        Kind::String,
        None,
        "BMC address; without it the node's BMC comes from hamn.toml",
    ),
    p(
        "ipport",
        &[],
        Some("ipport"),
        Some('u'),
        Kind::Integer,
        Some("623"),
        "BMC port: UDP 623 for IPMI; for Redfish (protocol=redfish) TCP, default 443",
    ),
    p(
        "username",
        &["login"],
        Some("username"),
        Some('l'),
        Kind::String,
        None,
        "BMC user",
    ),
    p(
        "password",
        &["passwd"],
        None,
        None,
        Kind::String,
        None,
        "BMC password (standard input only, never the command line)",
    ),
    p(
        "password_script",
        &["passwd_script"],
        Some("password-script"),
        Some('S'),
        Kind::String,
        None,
        "Script whose first output line is the BMC password",
    ),
    p(
        "password_file",
        &[],
        Some("password-file"),
        None,
        Kind::String,
        None,
        "File holding the BMC password (mode 0600, owned by the caller)",
    ),
    p(
        "cipher",
        &[],
        Some("cipher"),
        Some('C'),
        Kind::Select(&["3", "17"]),
        None,
        "RMCP+ cipher suite (default: the hardware profile's order)",
    ),
    p(
        "lanplus",
        &[],
        None,
        None,
        Kind::Boolean,
        Some("1"),
        "IPMI v2.0 RMCP+; always on, 0 is refused",
    ),
    p(
        "privlvl",
        &[],
        None,
        None,
        Kind::Select(&["administrator"]),
        Some("administrator"),
        "Privilege level on the BMC",
    ),
    p(
        "method",
        &[],
        None,
        None,
        Kind::Select(&["onoff"]),
        Some("onoff"),
        "Method to fence; power cycle is never used",
    ),
    p(
        "delay",
        &[],
        Some("delay"),
        None,
        Kind::Second,
        Some("0"),
        "Wait X seconds before fencing is started",
    ),
    p(
        "power_timeout",
        &[],
        Some("power-timeout"),
        None,
        Kind::Second,
        None,
        "Seconds allowed for power off and its confirmation (default: hardware profile)",
    ),
    p(
        "config",
        &[],
        Some("config"),
        None,
        Kind::String,
        Some("/etc/hamn/hamn.toml"),
        "hamn configuration file",
    ),
    p(
        "protocol",
        &[],
        None,
        None,
        Kind::Select(&["ipmi", "redfish"]),
        Some("ipmi"),
        "How to talk to the BMC given by ip=: IPMI v2.0 RMCP+ or Redfish over HTTPS \
         (for a peer of hamn.toml, its bmc.protocol)",
    ),
    p(
        "ca_file",
        &[],
        None,
        None,
        Kind::String,
        None,
        "Redfish: PEM file of the CA that signed the BMC's certificate",
    ),
    p(
        "fingerprint",
        &[],
        None,
        None,
        Kind::String,
        None,
        "Redfish: SHA-256 fingerprint of the BMC's own certificate",
    ),
    p(
        "ssl_insecure",
        &[],
        None,
        None,
        Kind::Boolean,
        None,
        "Redfish: do not verify the BMC's certificate (logged; as fence_redfish's \
         ssl_insecure)",
    ),
    p(
        "systems_uri",
        &[],
        None,
        None,
        Kind::String,
        None,
        "Redfish: the system to power off, as its path (/redfish/v1/Systems/1), Id, UUID \
         or serial number; needed when the service has several",
    ),
    p(
        "redfish_uri",
        &[],
        None,
        None,
        Kind::String,
        Some("/redfish/v1"),
        "Redfish: the service root (only /redfish/v1, the one DSP0266 defines)",
    ),
    p(
        "fencing",
        &[],
        None,
        None,
        Kind::Select(&["power", "storage"]),
        Some("power"),
        "power: through the node's BMC. storage: preempt the node's key on every path of \
         the shared LUNs (as fence_scsi does), a second fencing level for a node whose BMC \
         died with it",
    ),
    p(
        "standby_delay",
        &[],
        None,
        None,
        Kind::Second,
        Some("0"),
        "Wait X seconds before powering off a node that does not hold the shared LUNs (the \
         standby), none before powering off the node that serves: when the cluster link of \
         two nodes is cut, both fence at once, and this lets the standby win instead of \
         both losing, without delaying the recovery from a crash of the serving node. \
         Needs hamn.toml",
    ),
    p(
        "verbose",
        &[],
        Some("verbose"),
        Some('v'),
        Kind::Boolean,
        None,
        "Verbose mode",
    ),
];

fn param(name: &str) -> Option<&'static Param> {
    let name = name.replace('-', "_");
    PARAMS
        .iter()
        .find(|p| p.name == name || p.aliases.contains(&name.as_str()))
}

/// Whether the binary was started under the agent's name (e.g. a symlink fence_hamn).
pub fn invoked_as_agent(argv0: &OsStr) -> bool {
    Path::new(argv0).file_name() == Some(OsStr::new(AGENT_NAME))
}

/// Parse `fence_hamn ARGS` as `hamn fence-agent ARGS`.
pub fn cli_from_agent_argv() -> Result<Cli, clap::Error> {
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    argv.splice(0..1, ["hamn".into(), "fence-agent".into()]);
    Cli::try_parse_from(argv)
}

/// Parameters after merging options or standard input.
#[derive(Debug, Default)]
pub struct Inputs {
    values: BTreeMap<&'static str, String>,
    password: Option<Secret>,
    pub warnings: Vec<String>,
}

impl Inputs {
    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Parse FenceAgentAPI standard input: `name=value` lines, `#` comments, last one
    /// wins, unknown names ignored with a warning.
    pub fn from_stdin_text(text: &str) -> Result<Self, AgentError> {
        let mut inputs = Inputs::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                inputs
                    .warnings
                    .push(format!("ignoring line without '=': {}", redact_line(line)));
                continue;
            };
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            match param(name.trim()) {
                Some(p) if p.name == "password" => {
                    inputs.password = Some(Secret::new(value.as_bytes().to_vec()));
                }
                Some(p) => {
                    inputs.values.insert(p.name, value.to_string());
                }
                None => inputs
                    .warnings
                    .push(format!("ignoring unknown parameter '{}'", name.trim())),
            }
        }
        Ok(inputs)
    }

    fn from_args(cli: &Cli, a: &AgentArgs) -> Self {
        let mut inputs = Inputs::default();
        let mut set = |k: &'static str, v: Option<String>| {
            if let Some(v) = v {
                inputs.values.insert(k, v);
            }
        };
        set("action", a.action.clone());
        set("plug", a.plug.clone());
        set("ip", a.ip.clone());
        set("ipport", a.ipport.map(|v| v.to_string()));
        set("username", a.username.clone());
        set(
            "password_script",
            a.password_script.as_ref().map(|p| p.display().to_string()),
        );
        set(
            "password_file",
            a.password_file.as_ref().map(|p| p.display().to_string()),
        );
        set("cipher", a.cipher.map(|v| v.to_string()));
        set("delay", a.delay.map(|v| v.to_string()));
        set("power_timeout", a.power_timeout.map(|v| v.to_string()));
        set(
            "config",
            cli.config.as_ref().map(|p| p.display().to_string()),
        );
        inputs
    }
}

/// Never echo a password line back, even in a warning.
fn redact_line(line: &str) -> &str {
    if line.to_ascii_lowercase().contains("passw") {
        "<redacted>"
    } else {
        line
    }
}

fn any_agent_option(a: &AgentArgs) -> bool {
    a.action.is_some()
        || a.plug.is_some()
        || a.ip.is_some()
        || a.ipport.is_some()
        || a.username.is_some()
        || a.password_script.is_some()
        || a.password_file.is_some()
        || a.cipher.is_some()
        || a.delay.is_some()
        || a.power_timeout.is_some()
}

pub fn run(cli: &Cli, args: &AgentArgs) -> Result<Report, AgentError> {
    if args.password.is_some() {
        return Err(AgentError::PasswordInArgv);
    }
    let inputs = if any_agent_option(args) || std::io::stdin().is_terminal() {
        Inputs::from_args(cli, args)
    } else {
        let mut text = String::new();
        for line in std::io::stdin().lock().lines() {
            text.push_str(&line.map_err(AgentError::Stdin)?);
            text.push('\n');
        }
        let mut i = Inputs::from_stdin_text(&text)?;
        if let (None, Some(c)) = (i.get("config"), &cli.config) {
            i.values.insert("config", c.display().to_string());
        }
        i
    };
    for w in &inputs.warnings {
        tracing::warn!("{w}");
    }
    execute(&inputs)
}

fn number(inputs: &Inputs, name: &str) -> Result<Option<f64>, AgentError> {
    match inputs.get(name) {
        None => Ok(None),
        Some(v) => match v.parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
            _ => Err(AgentError::Usage(format!(
                "{name}={v} is not a number of seconds"
            ))),
        },
    }
}

fn check_fixed(inputs: &Inputs) -> Result<(), AgentError> {
    for (name, allowed) in [
        ("lanplus", &["1", "on", "yes", "true"][..]),
        ("privlvl", &["administrator"][..]),
        ("method", &["onoff"][..]),
    ] {
        if let Some(v) = inputs.get(name)
            && !allowed.contains(&v.to_ascii_lowercase().as_str())
        {
            {
                return Err(AgentError::Usage(format!(
                    "{name}={v} is not supported: hamn always uses IPMI v2.0 RMCP+ at administrator privilege and powers off (never cycles)"
                )));
            }
        }
    }
    Ok(())
}

/// The peer to act on: from hamn.toml by plug/nodename, with stdin overrides; or, with
/// `ip`, described entirely by the parameters.
fn target(inputs: &Inputs) -> Result<(Peer, Option<Config>), AgentError> {
    let node = inputs.get("plug").or(inputs.get("nodename"));
    let config_path = PathBuf::from(inputs.get("config").unwrap_or(crate::config::DEFAULT_PATH));
    let config = if inputs.get("ip").is_some() && !config_path.exists() {
        None
    } else {
        Some(Config::load(&config_path)?)
    };
    let mut peer = match (&config, node, inputs.get("ip")) {
        (Some(c), Some(n), _) if c.peers.contains_key(n) => c.peer(n)?.clone(),
        (_, _, Some(ip)) => Peer {
            name: node.unwrap_or(ip).to_string(),
            bmc: BmcConfig::ipmi(ip),
            password: PasswordSource::Given(Secret::new(Vec::new())),
            pr_key: None,
            // The agent only ever powers off.
            fencing: vec![crate::config::FencingKind::Power],
        },
        (Some(c), Some(n), None) => c.peer(n)?.clone(),
        (_, None, None) => {
            return Err(AgentError::Usage(
                "no node given: pass plug= (or port=/nodename=) naming a peer in hamn.toml, or ip="
                    .into(),
            ));
        }
        (None, Some(_), None) => unreachable_without_ip(),
    };
    if let Some(ip) = inputs.get("ip") {
        peer.bmc.address = ip.to_string();
    }
    redfish_inputs(inputs, &mut peer)?;
    if let Some(port) = inputs.get("ipport") {
        peer.bmc.port = Some(
            port.parse()
                .map_err(|_| AgentError::Usage(format!("ipport={port} is not a port number")))?,
        );
    }
    if let Some(u) = inputs.get("username") {
        peer.bmc.user = u.to_string();
    }
    if let Some(c) = inputs.get("cipher") {
        let n: u8 = c
            .parse()
            .map_err(|_| AgentError::Usage(format!("cipher={c} is not a cipher suite number")))?;
        peer.bmc.cipher_suite = Some(
            SuiteSetting::try_from(n).map_err(|e| AgentError::Usage(format!("cipher={c}: {e}")))?,
        );
    }
    if let Some(s) = &inputs.password {
        peer.password = PasswordSource::Given(s.clone());
    } else if let Some(f) = inputs.get("password_file") {
        peer.password =
            PasswordSource::Given(crate::config::read_password_file(&peer.name, Path::new(f))?);
    } else if let Some(script) = inputs.get("password_script") {
        peer.password = PasswordSource::Given(run_password_script(script)?);
    }
    if peer.bmc.user.is_empty() {
        return Err(AgentError::Usage(format!(
            "no BMC user for node '{}': pass username= or configure peers.{}.bmc.user",
            peer.name, peer.name
        )));
    }
    Ok((peer, config))
}

/// fence_redfish's parameters (and hamn's own for the certificate), over what hamn.toml
/// says. A Redfish BMC still needs exactly one way to trust its certificate.
fn redfish_inputs(inputs: &Inputs, peer: &mut Peer) -> Result<(), AgentError> {
    use crate::config::BmcProtocol;
    match inputs
        .get("protocol")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("redfish") => peer.bmc.protocol = BmcProtocol::Redfish,
        Some("ipmi") => peer.bmc.protocol = BmcProtocol::Ipmi,
        Some(other) => {
            return Err(AgentError::Usage(format!(
                "protocol={other}: hamn speaks ipmi or redfish"
            )));
        }
        None => {}
    }
    if let Some(root) = inputs.get("redfish_uri")
        && root.trim_end_matches('/') != "/redfish/v1"
    {
        return Err(AgentError::Usage(format!(
            "redfish_uri={root}: hamn uses the service root /redfish/v1, the one Redfish \
             (DSP0266) defines"
        )));
    }
    let trust_given = ["ca_file", "fingerprint", "ssl_insecure"]
        .iter()
        .any(|k| inputs.get(k).is_some());
    if trust_given {
        peer.bmc.ca_file = inputs.get("ca_file").map(PathBuf::from);
        peer.bmc.fingerprint = inputs.get("fingerprint").map(str::to_string);
        peer.bmc.insecure = inputs.get("ssl_insecure").is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "1" | "yes" | "on" | "true")
        });
    }
    if let Some(sys) = inputs.get("systems_uri") {
        peer.bmc.system = Some(sys.to_string());
    }
    if peer.bmc.protocol == BmcProtocol::Redfish {
        let ways = [
            peer.bmc.ca_file.is_some(),
            peer.bmc.fingerprint.is_some(),
            peer.bmc.insecure,
        ];
        if ways.iter().filter(|w| **w).count() != 1 {
            return Err(AgentError::Usage(format!(
                "node '{}': a Redfish BMC needs exactly one of ca_file=, fingerprint= or \
                 ssl_insecure=1 (or the same in hamn.toml)",
                peer.name
            )));
        }
    }
    Ok(())
}

#[cold]
fn unreachable_without_ip() -> ! {
    // The match above covers every (config, node, ip) combination: config is None only
    // when ip is set.
    panic!("fence_hamn: no hamn.toml and no ip; this combination cannot happen")
}

/// How long password_script may take.
const PASSWORD_SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// Run password_script (a shell command by the FenceAgentAPI's definition) through the one
/// process runner, so that it gets exec's environment policy like every other child: no
/// variable named by a `password_env`, stdin /dev/null, killed with hamn. Its output is
/// the password: no error quotes it.
fn run_password_script(script: &str) -> Result<Secret, AgentError> {
    let fail = |detail: String| AgentError::PasswordScript {
        script: script.to_string(),
        detail,
    };
    let mut ran = crate::exec::Command::new(["/bin/sh", "-c", script])
        .timeout(PASSWORD_SCRIPT_TIMEOUT)
        .run()
        .map_err(|e| match e {
            crate::exec::ExecError::Timeout { seconds, .. } => fail(format!(
                "it did not finish within {seconds:.0} s and was killed"
            )),
            other => fail(other.to_string()),
        })?;
    if !ran.success() {
        return Err(fail(crate::exec::describe_status(ran.status)));
    }
    // The bytes as printed: a password need not be UTF-8, and a lossy conversion would
    // send the BMC a different one.
    let first = ran
        .stdout_bytes
        .split(|b| *b == b'\n')
        .next()
        .unwrap_or_default()
        .to_vec();
    // The copies in the run's output go the way of every other copy of a password.
    zeroize::Zeroize::zeroize(&mut ran.stdout_bytes);
    zeroize::Zeroize::zeroize(&mut ran.stdout);
    Ok(Secret::from_file_contents(first))
}

fn report(human: impl Into<String>, exit: u8, json: serde_json::Value) -> Report {
    Report {
        human: human.into(),
        json,
        exit,
    }
}

fn execute(inputs: &Inputs) -> Result<Report, AgentError> {
    let action = inputs.get("action").unwrap_or("off").to_ascii_lowercase();
    check_fixed(inputs)?;
    let delay = number(inputs, "delay")?;
    let timeout = number(inputs, "power_timeout")?
        .filter(|t| *t > 0.0)
        .map(Duration::from_secs_f64);
    match action.as_str() {
        "metadata" | "meta-data" => {
            return Ok(report(metadata(), EXIT_OK, serde_json::Value::Null));
        }
        "list" | "list-status" => {
            let path = PathBuf::from(inputs.get("config").unwrap_or(crate::config::DEFAULT_PATH));
            let cfg = Config::load(&path)?;
            let lines: Vec<String> = cfg
                .peers
                .values()
                .map(|p| format!("{},{}", p.name, p.bmc.address))
                .collect();
            return Ok(report(lines.join("\n"), EXIT_OK, serde_json::json!(lines)));
        }
        "off" | "on" | "reboot" | "status" | "monitor" | "validate-all" => {}
        other => return Err(AgentError::Usage(format!("Unrecognised action '{other}'"))),
    }
    let named = ["plug", "nodename", "ip"]
        .iter()
        .any(|n| inputs.get(n).is_some());
    if action == "monitor" && !named {
        return if inputs.get("fencing") == Some("storage") {
            monitor_storage(inputs)
        } else {
            monitor_device(inputs, timeout)
        };
    }
    let (peer, config) = target(inputs)?;
    let profiles = Profiles::load().map_err(CommandError::from)?;
    match inputs.get("fencing").unwrap_or("power") {
        "power" => {}
        "storage" => {
            return storage_level(&action, inputs, &peer, config.as_ref(), &profiles, delay);
        }
        other => {
            return Err(AgentError::Usage(format!(
                "fencing={other}: use power (the BMC) or storage (the shared LUNs)"
            )));
        }
    }
    if action == "validate-all" {
        peer.password().map_err(CommandError::from)?;
        profile_before_contact(&peer, &profiles).map_err(CommandError::from)?;
        return Ok(report("", EXIT_OK, serde_json::json!({"valid": true})));
    }
    if let (Some(d), "off" | "reboot") = (delay, action.as_str()) {
        std::thread::sleep(Duration::from_secs_f64(d));
    }
    if let (Some(d), "off" | "reboot") = (number(inputs, "standby_delay")?, action.as_str())
        && d > 0.0
    {
        std::thread::sleep(standby_wait(&peer, config.as_ref(), d)?);
    }
    match action.as_str() {
        "off" => {
            let done = super::fence_recorded(
                "fence-agent off",
                config.as_ref(),
                &peer,
                &profiles,
                timeout,
            )
            .map_err(CommandError::from)?;
            let json = serde_json::to_value(&done).unwrap_or_default();
            Ok(report(off_line(&done.proof), EXIT_OK, json))
        }
        "reboot" => {
            let done = super::fence_recorded(
                "fence-agent reboot",
                config.as_ref(),
                &peer,
                &profiles,
                timeout,
            )
            .map_err(CommandError::from)?;
            let json = serde_json::to_value(&done).unwrap_or_default();
            // FenceAgentAPI: the reboot succeeded once the node is confirmed off; a
            // failure to power it on again is reported but does not undo the fencing.
            if let Err(e) = power_on(&peer, &profiles, timeout) {
                tracing::warn!(
                    "node '{}' was fenced but did not power on again: {e}",
                    peer.name
                );
            }
            Ok(report("Success: Rebooted", EXIT_OK, json))
        }
        "on" => {
            power_on(&peer, &profiles, timeout)?;
            Ok(report(
                "Success: Powered ON",
                EXIT_OK,
                serde_json::json!({"power": "on"}),
            ))
        }
        _ => {
            let state = read_status(&peer, &profiles, timeout)?;
            if action == "monitor" {
                return Ok(report("", EXIT_OK, serde_json::json!({"power": state})));
            }
            let (line, exit) = match state {
                PowerState::On => ("Status: ON", EXIT_OK),
                PowerState::Off => ("Status: OFF", EXIT_STATUS_OFF),
            };
            Ok(report(line, exit, serde_json::json!({"power": state})))
        }
    }
}

/// How long to wait before powering off `peer` under `standby_delay=d`: nothing when it
/// serves (it holds the reservation on every readable path of every shared LUN), `d`
/// otherwise, unknown included. Two nodes whose cluster link is cut fence each other at
/// the same moment; the one that serves is fenced at once and the standby only later,
/// so the standby wins, takes over, and the two cannot both be powered off. A crash of
/// the node that serves, the common case, is never delayed.
fn standby_wait(peer: &Peer, config: Option<&Config>, d: f64) -> Result<Duration, AgentError> {
    use crate::scsi::pr::Key;
    use crate::scsi::reserve;
    let cfg = config.ok_or_else(|| {
        AgentError::Usage(format!(
            "standby_delay needs hamn.toml (the key of '{}' and the shared LUNs, or the \
             DRBD resources, to tell whether it serves); pass config= or install \
             /etc/hamn/hamn.toml",
            peer.name
        ))
    })?;
    // The mirror tells the roles without asking the storage: the node whose copy is
    // Primary serves. This node's own role is what it can always read (the peer's is
    // unknown once the link is cut): Primary here, the target is the standby and waits;
    // Secondary on every resource, the target serves and is fenced at once.
    if !cfg.takeover.drbd.is_empty() {
        let primary_here = cfg.takeover.drbd.iter().try_fold(false, |any, d| {
            crate::drbd::state(&d.resource).map(|s| any || s.role == crate::drbd::Role::Primary)
        });
        return Ok(match primary_here {
            Ok(false) => {
                tracing::info!(node = %peer.name,
                    "this node's DRBD copies are Secondary, so it serves: fenced without delay");
                Duration::ZERO
            }
            Ok(true) => {
                tracing::info!(node = %peer.name, seconds = d,
                    "this node is DRBD Primary (the standby is the target): waiting \
                     standby_delay before powering it off");
                Duration::from_secs_f64(d)
            }
            Err(e) => {
                tracing::warn!(node = %peer.name, seconds = d, error = %e,
                    "this node's DRBD role is unknown: waiting standby_delay before powering \
                     it off");
                Duration::from_secs_f64(d)
            }
        });
    }
    let inventory = crate::disks::inventory().map_err(CommandError::from)?;
    let luns = crate::disks::luns::shared_luns(&inventory, &cfg.storage.shared)
        .map_err(CommandError::from)?;
    let victim = reserve::key_text(Key(peer.pr_key()));
    let serves = !luns.is_empty()
        && luns.iter().all(|lun| {
            reserve::status(lun).is_ok_and(|r| {
                let read: Vec<_> = r.paths.iter().filter(|p| p.ok).collect();
                !read.is_empty() && read.iter().all(|p| p.holder.as_deref() == Some(&victim))
            })
        });
    if serves {
        tracing::info!(node = %peer.name, "it holds the shared LUNs: fenced without delay");
        Ok(Duration::ZERO)
    } else {
        tracing::info!(
            node = %peer.name,
            seconds = d,
            "it does not hold the shared LUNs (the standby, or unknown): waiting \
             standby_delay before powering it off"
        );
        Ok(Duration::from_secs_f64(d))
    }
}

/// `monitor` with no node: the device itself, as fence-agents' agents answer it without a
/// target. Pacemaker starts and monitors every fence device this way. A fence_hamn device
/// stands for the peers of this node's hamn.toml: each peer's BMC must open a session
/// with the stored credentials and report a power state, or the device is not ready
/// (exit 1, naming the peer, the BMC and why).
/// `monitor` of a storage-level device with no node: every path of every shared LUN must
/// answer a read of its keys, or a fence through this device could not be proven.
fn monitor_storage(inputs: &Inputs) -> Result<Report, AgentError> {
    let path = PathBuf::from(inputs.get("config").unwrap_or(crate::config::DEFAULT_PATH));
    let cfg = Config::load(&path)?;
    no_shares_at_the_storage_level(&cfg, "this node's peers")?;
    let inventory = crate::disks::inventory().map_err(CommandError::from)?;
    let luns = crate::disks::luns::shared_luns(&inventory, &cfg.storage.shared)
        .map_err(CommandError::from)?;
    if luns.is_empty() {
        return Err(AgentError::Storage(
            "no shared LUN on this node: nothing to fence at the storage ([storage] shared, \
             multipath -ll)"
                .into(),
        ));
    }
    for lun in &luns {
        let r = crate::scsi::reserve::status(lun).map_err(CommandError::from)?;
        if let Some(p) = r.paths.iter().find(|p| !p.ok) {
            return Err(AgentError::Storage(format!(
                "LUN {} path {} cannot be read ({}): a fence through it could not be proven; \
                 check the path with `multipath -ll` and `hamn pr status {}`",
                lun.name,
                p.path,
                p.error.as_deref().unwrap_or("no answer"),
                lun.name
            )));
        }
    }
    tracing::info!(luns = luns.len(), "every path of every shared LUN answers");
    Ok(report("", EXIT_OK, serde_json::json!({"luns": luns.len()})))
}

fn monitor_device(inputs: &Inputs, timeout: Option<Duration>) -> Result<Report, AgentError> {
    let path = PathBuf::from(inputs.get("config").unwrap_or(crate::config::DEFAULT_PATH));
    let cfg = Config::load(&path)?;
    if cfg.peers.is_empty() {
        return Err(AgentError::Usage(format!(
            "{} lists no peer, so this device can fence nobody: add a [peers.NAME] table",
            path.display()
        )));
    }
    let profiles = Profiles::load().map_err(CommandError::from)?;
    let mut lines = Vec::new();
    let mut json = serde_json::Map::new();
    // Every peer's BMC, whatever hamn.toml's `fencing` list says: that list is what hamn
    // takeover does itself (under Pacemaker often storage only), while this device fences
    // through the BMC.
    for peer in cfg.peers.values() {
        let state = read_status(peer, &profiles, timeout)?;
        lines.push(format!(
            "{}: BMC {} answers, power {state}",
            peer.name, peer.bmc.address
        ));
        json.insert(
            peer.name.clone(),
            serde_json::json!({"bmc": peer.bmc.address, "power": state}),
        );
    }
    tracing::info!("{}", lines.join("; "));
    Ok(report("", EXIT_OK, serde_json::Value::Object(json)))
}

/// A storage-level fence cannot stand for the node's power where xCAT data is on NFS or
/// on a DRBD mirror: the node, preempted on the LUNs, would keep writing to the share or
/// to its own copy. Failing here (every action, `monitor` included, so that the device
/// shows failed from the start) leaves Pacemaker with the power level only, and no
/// false "fenced".
fn no_shares_at_the_storage_level(cfg: &Config, node: &str) -> Result<(), AgentError> {
    let mut unreserved: Vec<String> = cfg
        .network_mounts()
        .map(|m| format!("{} on {}", m.mountpoint.display(), m.device))
        .collect();
    unreserved.extend(
        cfg.takeover
            .drbd
            .iter()
            .map(|d| format!("DRBD resource {}", d.resource)),
    );
    if unreserved.is_empty() {
        return Ok(());
    }
    Err(AgentError::Storage(format!(
        "fencing=storage cannot fence {node}: hamn.toml keeps xCAT data on NFS or DRBD ({}), \
         which has no reservation, so {node} could still write there. Fence through the BMC \
         only (fencing=power); remove this device from the fencing topology",
        unreserved.join(", ")
    )))
}

/// The storage level (`fencing=storage`): what fence_scsi does, with hamn's tie-breaking
/// preempt. `off` registers this node's key where it is missing (the boot-time rule), then
/// preempts the node's key on every path of every shared LUN through paths where this
/// node's key is registered, and succeeds only on the read-back (this node
/// holds, the key is gone everywhere); `status` is ON while the node's key is on any path
/// and OFF when it is on none; `on` registers this node's own key again as at boot, under
/// the returning-node rule (a node fenced while it held the LUNs is refused), so it only
/// works for this node itself.
fn storage_level(
    action: &str,
    inputs: &Inputs,
    peer: &Peer,
    config: Option<&Config>,
    profiles: &Profiles,
    delay: Option<f64>,
) -> Result<Report, AgentError> {
    use crate::scsi::pr::Key;
    use crate::scsi::reserve;
    let cfg = config.ok_or_else(|| {
        AgentError::Usage(format!(
            "fencing=storage needs hamn.toml (the keys of this node and of '{}', and the \
             shared LUNs); pass config= or install /etc/hamn/hamn.toml",
            peer.name
        ))
    })?;
    no_shares_at_the_storage_level(cfg, &peer.name)?;
    let inventory = crate::disks::inventory().map_err(CommandError::from)?;
    let luns = crate::disks::luns::shared_luns(&inventory, &cfg.storage.shared)
        .map_err(CommandError::from)?;
    let own = Key(cfg.own_key());
    let victim = Key(peer.pr_key());
    let victim_text = reserve::key_text(victim);
    match action {
        "off" | "reboot" => {
            if let Some(d) = delay {
                std::thread::sleep(Duration::from_secs_f64(d));
            }
            // Only a registered node can preempt. Under Pacemaker the standby's key was
            // preempted when the other node started the takeover resource, so it registers
            // again first, under the boot-time rule (refused if this node held the LUNs
            // and was fenced since): the cluster has chosen this node to fence the other.
            unfence_self(inputs, false)?;
            let ty = reserve::pr_type(cfg.storage.reservation_type);
            let proof = crate::fence::storage::tiebreak(
                &peer.name, own, victim, ty, &luns, profiles, false, None,
            )
            .map_err(CommandError::from)?;
            // This node holds the LUNs now: if it is fenced in turn, it must not register
            // again on its own when it comes back.
            let held = crate::takeover::held::path_beside(
                &crate::takeover::run::Context::journal_path(Some(cfg)),
            );
            let ids: Vec<String> = luns
                .iter()
                .map(|l| crate::takeover::held::id_of(&l.name, l.wwid.as_deref()))
                .collect();
            crate::takeover::held::Held::update(&held, &ids, &[]).map_err(CommandError::from)?;
            tracing::info!(node = %peer.name, "fenced at the storage: {:?}", proof.method());
            let json = serde_json::json!({"fenced": true, "level": "storage", "node": peer.name,
                "luns": luns.iter().map(|l| l.name.clone()).collect::<Vec<_>>()});
            let line = if action == "reboot" {
                "Success: Rebooted"
            } else {
                "Success: Powered OFF"
            };
            Ok(report(line, EXIT_OK, json))
        }
        "status" | "monitor" => {
            let mut on_somewhere = false;
            for lun in &luns {
                let r = reserve::status(lun).map_err(|e| {
                    AgentError::Storage(format!(
                        "cannot read the keys of LUN {} to tell whether '{}' is fenced: {e}",
                        lun.name, peer.name
                    ))
                })?;
                if let Some(p) = r.paths.iter().find(|p| !p.ok) {
                    return Err(AgentError::Storage(format!(
                        "LUN {} path {} cannot be read, so whether '{}' can write is unknown",
                        lun.name, p.path, peer.name
                    )));
                }
                on_somewhere |= r.paths.iter().any(|p| p.keys.contains(&victim_text));
            }
            if luns.is_empty() {
                return Err(AgentError::Storage(
                    "no shared LUN: nothing to fence at the storage ([storage] shared)".into(),
                ));
            }
            if action == "monitor" {
                return Ok(report("", EXIT_OK, serde_json::json!({"luns": luns.len()})));
            }
            let (line, exit) = if on_somewhere {
                ("Status: ON", EXIT_OK)
            } else {
                ("Status: OFF", EXIT_STATUS_OFF)
            };
            Ok(report(
                line,
                exit,
                serde_json::json!({"registered": on_somewhere, "key": victim_text}),
            ))
        }
        "on" => {
            if peer.name != cfg.node {
                return Err(AgentError::Usage(format!(
                    "fencing=storage: a node's key can only be registered from that node (the \
                     registration belongs to its own paths); run `hamn pr unfence \
                     --all-shared` on {} itself (what action=on does there)",
                    peer.name
                )));
            }
            let r = unfence_self(inputs, true)?;
            Ok(report("Success: Powered ON", EXIT_OK, r.json))
        }
        "validate-all" => Ok(report("", EXIT_OK, serde_json::json!({"valid": true}))),
        other => Err(AgentError::Usage(format!("Unrecognised action '{other}'"))),
    }
}

/// `hamn pr unfence --all-shared` for this node: its key registered on every path of
/// every shared LUN unless it held them and was fenced since. `report_all`: the unfence's
/// own report is the answer (action=on); else only a refusal matters.
fn unfence_self(inputs: &Inputs, report_all: bool) -> Result<Report, AgentError> {
    let args = crate::cli::PrAction::Unfence(crate::cli::RegisterArgs {
        target: crate::cli::PrTarget {
            device: None,
            all_shared: true,
        },
        rejoin: false,
    });
    let cli = Cli::try_parse_from(["hamn", "status"]).map_err(|e| {
        AgentError::Usage(format!("internal: cannot build the unfence command: {e}"))
    })?;
    let cli = Cli {
        config: Some(PathBuf::from(
            inputs.get("config").unwrap_or(crate::config::DEFAULT_PATH),
        )),
        ..cli
    };
    let r = super::pr_cmd(&cli, &args)?;
    if r.exit != EXIT_OK {
        return Err(AgentError::Storage(r.human));
    }
    if !report_all {
        tracing::info!("this node's key is registered on every shared LUN");
    }
    Ok(r)
}

fn off_line(f: &crate::fence::Fenced) -> &'static str {
    match f.method() {
        crate::fence::FenceMethod::PowerOff {
            already_off: true, ..
        } => "Success: Already OFF",
        _ => "Success: Powered OFF",
    }
}

fn connect(
    peer: &Peer,
    profiles: &Profiles,
    timeout: Option<Duration>,
) -> Result<(AnyBmc, Instant), AgentError> {
    let pre = profile_before_contact(peer, profiles).map_err(CommandError::from)?;
    let deadline = Instant::now() + timeout.unwrap_or(pre.timeout);
    let bmc = AnyBmc::connect(peer, profiles, deadline, Backoff::default())
        .map_err(CommandError::from)?;
    Ok((bmc, deadline))
}

fn read_status(
    peer: &Peer,
    profiles: &Profiles,
    timeout: Option<Duration>,
) -> Result<PowerState, AgentError> {
    let (mut bmc, deadline) = connect(peer, profiles, timeout)?;
    let r = bmc.power_state(deadline);
    bmc.close();
    Ok(r.map_err(CommandError::from)?)
}

fn power_on(peer: &Peer, profiles: &Profiles, timeout: Option<Duration>) -> Result<(), AgentError> {
    let (mut bmc, deadline) = connect(peer, profiles, timeout)?;
    let poll = bmc.profile().poll_interval;
    let r = (|| {
        bmc.chassis(ChassisAction::PowerUp, deadline)?;
        loop {
            if bmc.power_state(deadline)? == PowerState::On {
                return Ok(());
            }
            if Instant::now() + poll >= deadline {
                return Err(crate::bmc::BmcError::NotOnInTime {
                    node: peer.name.clone(),
                    bmc: bmc.describe(),
                });
            }
            std::thread::sleep(poll);
        }
    })();
    bmc.close();
    Ok(r.map_err(CommandError::from)?)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// FenceAgentAPI metadata, generated from `PARAMS`.
pub fn metadata() -> String {
    let mut x = String::from("<?xml version=\"1.0\" ?>\n");
    x.push_str(&format!(
        "<resource-agent name=\"{AGENT_NAME}\" shortdesc=\"Fence agent for xCAT management nodes through their BMC (IPMI v2.0 RMCP+), by hamn\">\n"
    ));
    x.push_str("<longdesc>fence_hamn powers a failed xCAT management node off through its BMC and reports success only after the BMC has read back 'off' on consecutive reads. BMC addresses, users, password sources and hardware profiles come from hamn.toml; the parameters here override them for one call. Passwords are accepted on standard input, through password_script or from a file, never on the command line.</longdesc>\n");
    x.push_str("<vendor-url>https://xcat.org</vendor-url>\n<parameters>\n");
    for prm in PARAMS {
        let mut getopt = String::new();
        if let Some(s) = prm.short {
            getopt.push_str(&format!("-{s}, "));
        }
        match prm.long {
            Some(l) => getopt.push_str(&format!("--{l}")),
            None => getopt.push_str(&format!("{}=[value] (standard input)", prm.name)),
        }
        if prm.long.is_some() && !matches!(prm.kind, Kind::Boolean) {
            getopt.push_str("=[value]");
        }
        let content = |default: Option<&str>| {
            let d = default
                .map(|d| format!(" default=\"{}\"", xml_escape(d)))
                .unwrap_or_default();
            match prm.kind {
                Kind::Select(opts) => {
                    let mut c = format!("\t\t<content type=\"select\"{d}>\n");
                    for o in opts {
                        c.push_str(&format!("\t\t\t<option value=\"{o}\" />\n"));
                    }
                    c.push_str("\t\t</content>\n");
                    c
                }
                k => {
                    let t = match k {
                        Kind::Integer => "integer",
                        Kind::Second => "second",
                        Kind::Boolean => "boolean",
                        _ => "string",
                    };
                    format!("\t\t<content type=\"{t}\"{d} />\n")
                }
            }
        };
        let required = if prm.name == "action" { "1" } else { "0" };
        let obsoletes = prm
            .aliases
            .first()
            .map(|a| format!(" obsoletes=\"{a}\""))
            .unwrap_or_default();
        let mut emit = |name: &str, extra: &str| {
            x.push_str(&format!(
                "\t<parameter name=\"{name}\" unique=\"0\" required=\"{required}\"{extra}>\n\t\t<getopt mixed=\"{}\" />\n{}\t\t<shortdesc lang=\"en\">{}</shortdesc>\n\t</parameter>\n",
                xml_escape(&getopt),
                content(prm.default),
                xml_escape(prm.desc)
            ));
        };
        emit(prm.name, &obsoletes);
        for alias in prm.aliases {
            emit(alias, " deprecated=\"1\"");
        }
    }
    x.push_str("</parameters>\n<actions>\n");
    for a in [
        "on",
        "off",
        "reboot",
        "status",
        "monitor",
        "list",
        "metadata",
        "validate-all",
    ] {
        let extra = if a == "on" { " automatic=\"0\"" } else { "" };
        x.push_str(&format!("\t<action name=\"{a}\"{extra} />\n"));
    }
    x.push_str("</actions>\n</resource-agent>");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn password_script_output_is_the_password_byte_for_byte() {
        // Latin-1 and CR/LF: the bytes printed, up to the first newline, without the CR.
        let s = run_password_script(r"printf 'caf\351 pw\r\nsecond line\n'").expect("runs");
        assert_eq!(s.expose(), b"caf\xe9 pw");
        let e = run_password_script("echo oops >&2; exit 3").expect_err("fails");
        assert!(e.to_string().contains("status 3"), "{e}");
    }

    #[test]
    fn every_agent_option_in_clap_is_in_the_parameter_table_and_back() {
        let mut cmd = Cli::command();
        cmd.build();
        let agent = cmd
            .find_subcommand("fence-agent")
            .expect("fence-agent exists");
        let clap_longs: Vec<String> = agent
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long().map(str::to_string))
            .filter(|l| !["log-format", "json", "help", "version"].contains(&l.as_str()))
            .collect();
        for l in &clap_longs {
            assert!(
                PARAMS.iter().any(|p| p.long == Some(l.as_str())),
                "clap option --{l} has no agent parameter"
            );
        }
        for p in PARAMS.iter().filter_map(|p| p.long) {
            assert!(
                clap_longs.iter().any(|l| l == p),
                "parameter --{p} is not a clap option"
            );
        }
    }

    #[test]
    fn stdin_lines_follow_the_fence_agent_api() {
        let i = Inputs::from_stdin_text(
            "# comment\naction=off\nport=mn1\nnodename=mn1\npasswd=\"s3cret\"\nfoo=bar\n\naction=status\n",
        )
        .expect("parses");
        assert_eq!(i.get("action"), Some("status"), "last value wins");
        assert_eq!(i.get("plug"), Some("mn1"), "port is an alias of plug");
        assert_eq!(
            i.password.as_ref().map(|s| s.expose().to_vec()),
            Some(b"s3cret".to_vec())
        );
        assert_eq!(i.warnings.len(), 1);
        assert!(!format!("{i:?}").contains("s3cret"));
    }

    #[test]
    fn fixed_settings_other_than_rmcp_plus_onoff_admin_are_refused() {
        for line in ["lanplus=0", "method=cycle", "privlvl=user"] {
            let i = Inputs::from_stdin_text(line).expect("parses");
            assert!(check_fixed(&i).is_err(), "{line} accepted");
        }
    }
}
