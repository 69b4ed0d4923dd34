//! The clap command tree: the one source that the man-page coverage test, the fence
//! agent's metadata and shell completions are checked against.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "hamn",
    version,
    about = "Safe takeover for the standby xCAT management node: fence the failed one, then take over",
    after_help = "Passwords are never accepted on the command line: see password_file and password_env in hamn.toml(5)."
)]
pub struct Cli {
    /// Configuration file [default: /etc/hamn/hamn.toml]
    #[arg(long, global = true, env = "HAMN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format on standard error
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// More log detail: -v info, -vv debug, -vvv trace (default: warnings and errors)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Print the result as JSON on standard output, for scripts
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Power the peer off through its BMC and confirm it stays off
    Fence(FenceArgs),
    /// Read or change a peer's power state through its BMC (admin use; not a fencing proof)
    Power {
        #[command(subcommand)]
        action: PowerAction,
    },
    /// Show the storage this node sees; record and verify disk identity around a disk move
    Disks(DisksArgs),
    /// SCSI-3 persistent reservations on every path of shared LUNs
    Pr {
        #[command(subcommand)]
        action: PrAction,
    },
    /// Take over from the failed node: fence it, take its storage, check, mount
    Takeover(TakeoverArgs),
    /// On the owner: unmount and release the shared storage so the other node can take over
    Giveback(GivebackArgs),
    /// Peer power, reservation holder per LUN, arrays, mounts, and the takeover journal
    Status(StatusArgs),
    /// Show the BMC hardware profiles hamn knows and where they come from
    Profiles,
    /// DRBD's handlers for `fencing resource-and-stonith`: fence the peer through its BMC
    Drbd {
        #[command(subcommand)]
        action: DrbdAction,
    },
    /// Run as a FenceAgentAPI fence agent (what fence_hamn executes)
    #[command(name = "fence-agent")]
    FenceAgent(AgentArgs),
    /// Check, changing nothing, what a takeover needs: BMCs, reservations, paths, filesystems, the service address, services at boot, the disk manifest, hamn.toml
    Preflight,
    /// List the records of past takeovers, givebacks, fences and overrides, or show one
    History(HistoryArgs),
    /// Print the shell completion script for bash or zsh (scripts/install installs both)
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// A record's id (as listed) to show whole: plan, steps, keys before and after, BMC answers, checks
    pub id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
}

#[derive(Debug, Subcommand)]
pub enum DrbdAction {
    /// DRBD's fence-peer handler: power the peer named in DRBD_PEERS off through its BMC; exit 7 once confirmed, 1 on any failure (DRBD keeps I/O frozen)
    #[command(name = "fence-peer")]
    FencePeer {
        /// Where this node's copy is Primary (it serves; the peer is the standby), wait this long before powering the peer off: under Pacemaker, after a cut link, the standby's cluster fences this node first and one node remains (as fence_hamn's standby_delay)
        #[arg(long, value_name = "SECONDS")]
        standby_delay: Option<f64>,
    },
    /// DRBD's after-resync-target handler: log that this node's copy is whole again (a power fence leaves nothing to lift)
    #[command(name = "unfence-peer")]
    UnfencePeer,
}

#[derive(Debug, Args)]
pub struct FenceArgs {
    /// Peer node name, as in hamn.toml [peers.NAME]
    pub node: String,
    /// Overall deadline in seconds for power off and confirmation [default: from the hardware profile]
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Show what would be done, contact nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
#[group(multiple = false)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DisksArgs {
    #[command(subcommand)]
    pub action: Option<DisksAction>,
    /// Find the multipath map or disk with this WWID/WWN (any spelling: 0x..., naa...., 3...)
    #[arg(long, value_name = "WWID")]
    pub wwid: Option<String>,
    /// Find the disk or path with this serial number
    #[arg(long, value_name = "SERIAL")]
    pub serial: Option<String>,
    /// Find the device holding the filesystem with this UUID
    #[arg(long, value_name = "UUID")]
    pub fs_uuid: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DisksAction {
    /// On the healthy primary: write the manifest of its disks, arrays, filesystems and NICs
    Record(RecordArgs),
    /// After moving disks: compare what is here with the manifest, device by device
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Manifest file to write [default: [disks] manifest in hamn.toml, else /etc/hamn/disks.toml]
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Show what changed since the manifest was written, and write nothing (exit 1 if anything did)
    #[arg(long)]
    pub diff: bool,
    /// Node name to record [default: node in hamn.toml, else the hostname]
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The failed node's manifest [default: [disks] manifest in hamn.toml, else /etc/hamn/disks.toml]
    #[arg(long, short, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Count an array with members missing as acceptable (takeover would assemble it degraded)
    #[arg(long)]
    pub accept_degraded: bool,
}

#[derive(Debug, Args)]
pub struct TakeoverArgs {
    /// The failed node's disks were moved into this box: verify them against its manifest, assemble, check, mount
    #[arg(long)]
    pub moved_disks: bool,
    /// The failed node's manifest (with --moved-disks) [default: as for `hamn disks verify`]
    #[arg(long, short, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Assemble an array that has members missing (degraded), and say so
    #[arg(long)]
    pub accept_degraded: bool,
    /// Mount read-write (default: read-only, so the admin looks before xCAT writes)
    #[arg(long)]
    pub read_write: bool,
    /// Print the exact plan (devices, commands) and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// The failed node, a peer in hamn.toml, fenced through its BMC [default: the node named in the manifest]
    #[arg(long, value_name = "NODE")]
    pub peer: Option<String>,
    /// Skip power fencing (the storage is still fenced): the admin confirms the failed node is off or disconnected (logged)
    #[arg(long)]
    pub i_know_the_peer_is_off: bool,
    /// First register this node's key on every shared LUN, even if it was fenced since it last held them, as `hamn pr unfence --all-shared --rejoin` (what a cluster's start does; logged)
    #[arg(long)]
    pub rejoin: bool,
    /// Promote this DRBD resource although its copy is Outdated or Inconsistent (`drbdadm primary --force`): what the peer wrote since is lost (logged; repeat for more resources)
    #[arg(long, value_name = "RESOURCE")]
    pub force_promote: Vec<String>,
}

#[derive(Debug, Args)]
pub struct GivebackArgs {
    /// Print the exact plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The peer to report on [default: [takeover] peer, else the only peer]
    #[arg(long, value_name = "NODE")]
    pub peer: Option<String>,
    /// Do not contact the peer's BMC (its power state is then not shown)
    #[arg(long)]
    pub no_bmc: bool,
}

#[derive(Debug, Subcommand)]
pub enum PrAction {
    /// Keys and reservation holder per LUN and per path
    Status(PrTarget),
    /// Register this node's key on every path (REGISTER AND IGNORE EXISTING KEY)
    Register(RegisterArgs),
    /// Register, then reserve the LUN for this node (type from hamn.toml)
    Reserve(PrTarget),
    /// Release this node's reservation
    Release(PrTarget),
    /// Remove every registration and the reservation (all nodes!): the peer is fenced first
    Clear(ClearArgs),
    /// Take the LUN from a failed node: register, preempt its key, verify on every path
    Preempt(PreemptArgs),
    /// Register this node's key on every path (with --all-shared: of every shared LUN), as at boot like fence_scsi's on
    Unfence(RegisterArgs),
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub target: PrTarget,
    /// Register although this node held the LUN and was fenced since (its key removed while another node holds it): the admin lets it back (logged)
    #[arg(long)]
    pub rejoin: bool,
}

#[derive(Debug, Args)]
pub struct PrTarget {
    /// LUN: multipath map (mpatha, /dev/mapper/mpatha, dm-0), WWID, or a SCSI disk (/dev/sdb)
    #[arg(required_unless_present = "all_shared")]
    pub device: Option<String>,
    /// Every shared LUN: [storage] shared in hamn.toml, or every multipath map
    #[arg(long, conflicts_with = "device")]
    pub all_shared: bool,
}

#[derive(Debug, Args)]
pub struct ClearArgs {
    #[command(flatten)]
    pub target: PrTarget,
    /// The other node, a peer in hamn.toml: fenced through its BMC first [default: [takeover] peer, else the only peer]
    #[arg(long, value_name = "NODE")]
    pub peer: Option<String>,
    /// Skip power fencing: the admin confirms the peer is off or does not use the LUN (logged)
    #[arg(long)]
    pub i_know_the_peer_is_off: bool,
}

#[derive(Debug, Args)]
pub struct PreemptArgs {
    #[command(flatten)]
    pub target: PrTarget,
    /// The failed node's key (default: from --victim's name or pr_key in hamn.toml)
    #[arg(long, value_name = "KEY")]
    pub victim_key: Option<String>,
    /// The failed node, a peer in hamn.toml: fenced through its BMC first
    #[arg(long, value_name = "NODE")]
    pub victim: Option<String>,
    /// Skip power fencing: the admin confirms the victim is off or disconnected (logged)
    #[arg(long)]
    pub i_know_the_peer_is_off: bool,
}

#[derive(Debug, Subcommand)]
pub enum PowerAction {
    /// Print "on" or "off"
    Status(PowerArgs),
    /// Send Chassis Control power up
    On(PowerArgs),
    /// Send Chassis Control power down and report the state read back once
    Off(PowerArgs),
}

#[derive(Debug, Args)]
pub struct PowerArgs {
    /// Peer node name, as in hamn.toml [peers.NAME]
    pub node: String,
    /// Deadline in seconds [default: from the hardware profile]
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
}

/// FenceAgentAPI options. Pacemaker passes arguments on standard input instead; the
/// password is accepted only there, through password_script, or from a file.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// off, on, reboot, status, monitor, list, metadata, validate-all
    #[arg(short = 'o', long = "action")]
    pub action: Option<String>,
    /// The node to act on (a peer in hamn.toml)
    #[arg(short = 'n', long = "plug", alias = "port")]
    pub plug: Option<String>,
    /// BMC address, for use without a hamn.toml peer
    #[arg(short = 'a', long = "ip", alias = "ipaddr")]
    pub ip: Option<String>,
    /// BMC UDP port
    #[arg(short = 'u', long = "ipport")]
    pub ipport: Option<u16>,
    /// BMC user
    #[arg(short = 'l', long = "username", alias = "login")]
    pub username: Option<String>,
    /// Script whose first output line is the BMC password
    #[arg(short = 'S', long = "password-script")]
    pub password_script: Option<PathBuf>,
    /// File holding the BMC password (mode 0600)
    #[arg(long = "password-file")]
    pub password_file: Option<PathBuf>,
    /// RMCP+ cipher suite (3 or 17)
    #[arg(short = 'C', long = "cipher")]
    pub cipher: Option<u8>,
    /// Seconds to wait before fencing (Pacemaker's tie-breaker between two nodes)
    #[arg(long = "delay")]
    pub delay: Option<f64>,
    /// Seconds allowed for power off and confirmation
    #[arg(long = "power-timeout")]
    pub power_timeout: Option<f64>,
    /// Refused with an explanation: a password in argv is visible to every user in ps
    #[arg(short = 'p', long = "password", hide = true)]
    pub password: Option<String>,
}
