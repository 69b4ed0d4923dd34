//! Filesystem check and mount: the public face of the `fs` adapter. `ext` and `xfs` hold
//! each family's checker and what its exit statuses mean, `extsb` the ext superblock
//! hamn reads itself, `mount` the mount table and (un)mounting; `blkid_probe` says what
//! a device holds.
//!
//! The invariant: a filesystem is mounted only after its check passed, and the check
//! examined the filesystem that will actually be mounted. After a failover the peer
//! usually died mid-write, so its ext4 journal or XFS log may hold metadata that is not
//! yet in place. `e2fsck -n` then skips journal recovery, calls the filesystem "clean"
//! and exits 0 while examining a filesystem that lacks what is still in the journal
//! (seen in the lab); `xfs_repair -n` likewise cannot judge a filesystem with a dirty
//! log. So the journal or log is replayed first, then the filesystem is checked.
//!
//! Replay and mount write to storage the peer used, hence `check` requires the fencing
//! proof, and `mount` requires the `Checked` proof that only `check` creates.

use std::ffi::OsString;
use std::fmt;
use std::fs as stdfs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tracing::{info, info_span, warn};

use crate::exec::{self, ExecError};
use crate::fence::proof::Fenced;

mod ext;
pub mod extsb;
mod mount;
pub mod nfs;
mod preload;
mod xfs;

pub use mount::{is_mounted_at, mount, mountpoints_of, remount_rw, unmount};
pub use preload::{Preload, preload};

/// What `check` may do beyond replaying the journal or log; hamn.toml names it, so the
/// configuration owns the type.
pub use crate::config::Policy;

/// One command that was run, or one thing hamn did itself, with what its result meant.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The command line, or for `in_process` what hamn did ("read the superblock of ...").
    pub command: String,
    /// None: killed by a signal, or no process at all (`in_process`).
    pub exit: Option<i32>,
    /// Done by hamn itself, without running a program.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub in_process: bool,
    pub meaning: String,
    pub seconds: f64,
    /// What the program said (the lines worth keeping), for the evidence record.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<String>,
}

/// Proof that `check` passed for this device. Only this module creates it.
#[derive(Debug, Serialize)]
pub struct Checked {
    device: PathBuf,
    fs_type: String,
    uuid: Option<String>,
    policy: Policy,
    fenced_node: String,
    steps: Vec<Step>,
}

impl Checked {
    pub fn device(&self) -> &Path {
        &self.device
    }
    pub fn fs_type(&self) -> &str {
        &self.fs_type
    }
    /// The filesystem UUID as the superblock reported it, if it could be read.
    pub fn uuid(&self) -> Option<&str> {
        self.uuid.as_deref()
    }
    pub fn policy(&self) -> Policy {
        self.policy
    }
    /// The node whose fencing allowed the replay.
    pub fn fenced_node(&self) -> &str {
        &self.fenced_node
    }
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
}

/// A filesystem mounted (or found already mounted) by `mount`.
#[derive(Debug, Clone, Serialize)]
pub struct Mounted {
    pub device: PathBuf,
    pub mountpoint: PathBuf,
    pub read_only: bool,
    /// It was already mounted there; nothing was done.
    pub already: bool,
}

/// Why a filesystem must not be mounted, with what the admin can do about it.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub device: PathBuf,
    pub fs_type: String,
    /// The command whose result decided the refusal, or what hamn itself did.
    pub command: String,
    pub exit: Option<i32>,
    /// `command` is something hamn did itself; there is no exit status.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub in_process: bool,
    pub meaning: String,
    /// The relevant lines of the checker's output.
    pub said: Vec<String>,
    /// Commands (with a word on each) the admin can run by hand.
    pub next: Vec<String>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} filesystem on {} is NOT checked; do not mount it: ",
            self.fs_type,
            self.device.display(),
        )?;
        if self.in_process {
            write!(f, "{} failed ({})", self.command, self.meaning)?;
        } else {
            write!(
                f,
                "`{}` {} ({})",
                self.command,
                exit_text(self.exit),
                self.meaning
            )?;
        }
        if !self.said.is_empty() {
            write!(f, ". It said:")?;
            for l in &self.said {
                write!(f, "\n    {l}")?;
            }
        }
        if !self.next.is_empty() {
            write!(f, "\nBy hand, once the peer is known to be off:")?;
            for n in &self.next {
                write!(f, "\n    {n}")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error(
        "{device}: unknown filesystem type '{fs_type}'; hamn checks only ext2, ext3, ext4 \
         and xfs, and does not mount what it cannot check"
    )]
    UnknownType { device: PathBuf, fs_type: String },
    #[error("{device}: {reason}")]
    Device { device: PathBuf, reason: String },
    #[error(
        "{device} is mounted at {}; a mounted filesystem cannot be checked. If hamn \
         mounted it in an earlier run it was checked then; otherwise unmount it \
         (`umount {}`) and run again",
        .mountpoints.join(", "), .mountpoints.first().map(String::as_str).unwrap_or("")
    )]
    Mounted {
        device: PathBuf,
        mountpoints: Vec<String>,
    },
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Proof(#[from] crate::fence::proof::ProofError),
    #[error("{0}")]
    Refused(Refusal),
    #[error("{what} {path}: {source}")]
    Io {
        what: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "{mountpoint} already has {source_dev} ({fs_type}) mounted on it, not {device}; \
         nothing was mounted. Find out why (`findmnt {mountpoint}`) before unmounting it"
    )]
    Occupied {
        device: PathBuf,
        mountpoint: PathBuf,
        source_dev: String,
        fs_type: String,
    },
    #[error(
        "{device} is already mounted on {mountpoint}, but {actual} while {wanted} was \
         asked; nothing was changed. Unmount it (`umount {mountpoint}`) and run again"
    )]
    ModeMismatch {
        device: PathBuf,
        mountpoint: PathBuf,
        actual: &'static str,
        wanted: &'static str,
    },
    #[error(
        "`{command}` {}; {device} is not mounted on {mountpoint}{}. `dmesg` may say why",
        exit_text(*.exit), said_text(.said)
    )]
    MountFailed {
        device: PathBuf,
        mountpoint: PathBuf,
        command: String,
        exit: Option<i32>,
        said: Vec<String>,
    },
    #[error(
        "mount(2) of {device} on {mountpoint} failed: {errno}{}; nothing was mounted. \
         `dmesg | tail` says why; once that is fixed, run again (by hand, the same \
         mount is `{equivalent}`)",
        if hint.is_empty() { String::new() } else { format!(" ({hint})") }
    )]
    MountCall {
        device: PathBuf,
        mountpoint: PathBuf,
        errno: nix::errno::Errno,
        /// What the errno most likely means here; may be empty.
        hint: String,
        /// The mount(8) command that does the same.
        equivalent: String,
    },
    #[error(
        "{command} reported success, but {device} is not mounted on {mountpoint} \
         afterwards ({found}); not using it"
    )]
    NotMountedAfter {
        device: PathBuf,
        mountpoint: PathBuf,
        /// How it was mounted: "`mount ...`" or "mount(2), as `mount ...`,".
        command: String,
        found: String,
    },
    #[error(
        "{mountpoint} is busy, so it was not unmounted (hamn never unmounts lazily). See \
         who uses it with `fuser -vm {mountpoint}` or `lsof +f -- {mountpoint}`, stop \
         them, and unmount again{}",
        said_text(.said)
    )]
    Busy {
        mountpoint: PathBuf,
        said: Vec<String>,
    },
    #[error("`{command}` {}; {mountpoint} is still mounted{}", exit_text(*.exit), said_text(.said))]
    UnmountFailed {
        mountpoint: PathBuf,
        command: String,
        exit: Option<i32>,
        said: Vec<String>,
    },
    #[error(
        "refusing to mount the NFS share {share}: the proof that {node} cannot write is \
         \"{proof}\", which stops writes to shared LUNs, not to an NFS server. Nothing was \
         mounted. Power {node} off first (`hamn fence {node}`), or, once you have confirmed \
         it is off, run the takeover with --i-know-the-peer-is-off (logged)"
    )]
    ShareNeedsPowerOff {
        share: String,
        node: String,
        proof: String,
    },
    #[error(
        "{mountpoint} is mounted, but `mount -o remount,rw {mountpoint}` failed{}; see `dmesg`",
        said_text(.said)
    )]
    RemountFailed {
        mountpoint: PathBuf,
        said: Vec<String>,
    },
}

fn exit_text(exit: Option<i32>) -> String {
    match exit {
        Some(c) => format!("exited {c}"),
        None => "was killed by a signal".to_string(),
    }
}

fn said_text(said: &[String]) -> String {
    if said.is_empty() {
        String::new()
    } else {
        format!(": {}", said.join(" | "))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Ext,
    Xfs,
}

fn family(fs_type: &str) -> Option<Family> {
    match fs_type {
        "ext2" | "ext3" | "ext4" => Some(Family::Ext),
        "xfs" => Some(Family::Xfs),
        _ => None,
    }
}

fn display_command(tool: &str, args: &[OsString]) -> String {
    let mut argv = vec![OsString::from(tool)];
    argv.extend(args.iter().cloned());
    exec::display(&argv)
}

/// A finished checker or mount command, or a step hamn did itself, as the records and
/// refusals show it.
struct Ran {
    command: String,
    exit: Option<i32>,
    /// No program ran: `command` says what hamn did, `exit` is None.
    in_process: bool,
    /// stderr first: that is where the tools say why they stopped ("e2fsck: MMP: ...",
    /// "Bad magic number"), which must survive the cut to a few lines.
    output: String,
    seconds: f64,
}

/// No deadline: a check of a large filesystem may rightly take hours, and killing
/// e2fsck or xfs_repair mid-repair is worse than waiting.
fn run(tool: &str, args: &[OsString]) -> Result<Ran, FsError> {
    let mut argv = vec![OsString::from(tool)];
    argv.extend(args.iter().cloned());
    let cmd = exec::Command::new(argv).keep_all_output();
    let _span = info_span!("fs-step", command = %cmd.display()).entered();
    let ran = cmd.run()?;
    Ok(Ran {
        exit: ran.exit(),
        in_process: false,
        output: ran.output_stderr_first(),
        seconds: ran.seconds,
        command: ran.command,
    })
}

fn args<I, S>(items: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    items.into_iter().map(Into::into).collect()
}

/// Lines of checker output worth showing the admin: no progress, banners or the notes
/// xfs_repair prints for every image file.
fn relevant_lines(output: &str, max: usize) -> Vec<String> {
    const NOISE: [&str; 6] = [
        "Cannot get host filesystem geometry",
        "Repair may fail if there is a sector size mismatch",
        "the image and the host filesystem",
        "No modify flag set",
        "Using EXT2FS Library version",
        "dmesg(1) may have more information",
    ];
    let is_banner = |l: &str| {
        ["e2fsck ", "xfs_repair version"]
            .iter()
            .any(|p| l.starts_with(p) && l.contains('('))
    };
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !l.starts_with("Pass ") && !l.starts_with("Phase "))
        .filter(|l| !l.trim_start().starts_with("- "))
        .filter(|l| !NOISE.iter().any(|n| l.contains(n)))
        .filter(|l| !is_banner(l))
        .collect();
    let mut out: Vec<String> = lines.iter().take(max).map(|l| l.to_string()).collect();
    if lines.len() > max {
        out.push(format!("... ({} more lines)", lines.len() - max));
    }
    out
}

const SAID_LINES: usize = 10;
/// Lines of a checker's output kept in its record (and so in the evidence file).
const KEPT_LINES: usize = 40;

/// The record of a check in progress.
struct Record<'a> {
    device: &'a Path,
    fs_type: &'a str,
    steps: Vec<Step>,
}

impl Record<'_> {
    fn record(&mut self, ran: &Ran, meaning: &str) {
        info!(command = %ran.command, exit = ran.exit, meaning, "step");
        self.steps.push(Step {
            command: ran.command.clone(),
            exit: ran.exit,
            in_process: ran.in_process,
            meaning: meaning.to_string(),
            seconds: ran.seconds,
            output: relevant_lines(&ran.output, KEPT_LINES),
        });
    }

    fn refuse(&self, ran: &Ran, meaning: &str, next: Vec<String>) -> FsError {
        warn!(command = %ran.command, exit = ran.exit, meaning, "refused");
        FsError::Refused(Refusal {
            device: self.device.to_path_buf(),
            fs_type: self.fs_type.to_string(),
            command: ran.command.clone(),
            exit: ran.exit,
            in_process: ran.in_process,
            meaning: meaning.to_string(),
            said: relevant_lines(&ran.output, SAID_LINES),
            next,
        })
    }
}

fn dev_arg(device: &Path) -> String {
    exec::shell_quote(&device.to_string_lossy())
}

fn is_regular_file(device: &Path) -> bool {
    stdfs::metadata(device)
        .map(|m| m.file_type().is_file())
        .unwrap_or(false)
}

/// `blkid -p` reads a device; a path that stopped answering must not hang the takeover.
const BLKID_TIMEOUT: Duration = Duration::from_secs(60);

/// What `device` holds by its own superblock: (filesystem type, filesystem UUID), e.g.
/// (Some("ext4"), Some("0b3c...")). `-p` probes the device itself rather than trusting
/// the udev cache, which may describe what the device held before the disks were moved.
/// Nothing recognisable on the device is (None, None); a probe that fails is an error,
/// never a guess.
/// The UUID in the ext2/3/4 superblock of `device`, read by hamn itself (no process
/// started; see `extsb`), when `fs_type` is ext and the superblock is there. None
/// otherwise: then only [`blkid_probe`] can say what the device holds.
pub fn ext_uuid(device: &Path, fs_type: &str) -> Option<String> {
    if !matches!(family(fs_type), Some(Family::Ext)) {
        return None;
    }
    let (head, _) = extsb::read_head(device).ok()?;
    extsb::parse(&head).ok()?.uuid
}

pub fn blkid_probe(device: &Path) -> Result<(Option<String>, Option<String>), FsError> {
    let cmd = exec::Command::new([
        OsString::from("blkid"),
        OsString::from("-p"),
        OsString::from("-o"),
        OsString::from("export"),
        device.as_os_str().to_owned(),
    ])
    .timeout(BLKID_TIMEOUT);
    let ran = cmd.run()?;
    match ran.exit() {
        Some(0) => Ok(parse_blkid_export(&ran.stdout)),
        // blkid(8): 2 is "no token found", i.e. no known signature on the device.
        Some(2) => Ok((None, None)),
        _ => Err(ran.failure().into()),
    }
}

fn parse_blkid_export(text: &str) -> (Option<String>, Option<String>) {
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    (get("TYPE="), get("UUID="))
}

/// The commands `check` would run, in order, for a dry run; conditional ones carry a
/// shell comment saying when.
pub fn plan(device: &Path, fs_type: &str, policy: Policy) -> Vec<String> {
    let dev = dev_arg(device);
    match family(fs_type) {
        None => vec![format!(
            "# refused: unknown filesystem type '{fs_type}' on {dev}; only ext2, ext3, \
             ext4 and xfs are checked"
        )],
        Some(Family::Ext) => ext::plan(&dev, policy),
        Some(Family::Xfs) => xfs::plan(device, policy),
    }
}

/// Make `device` (holding a filesystem of `fs_type`: ext2/ext3/ext4/xfs) ready and
/// checked: replay its journal or log, then check it. Anything not understood is a
/// refusal. Replaying and repairing write: `fenced` must be a proof for `owner`, the
/// node whose filesystem this is.
pub fn check(
    device: &Path,
    fs_type: &str,
    policy: Policy,
    fenced: &Fenced,
    owner: &str,
) -> Result<Checked, FsError> {
    fenced.covers(owner, &format!("the filesystem on {}", device.display()))?;
    let _span = info_span!(
        "fs-check",
        device = %device.display(),
        fs_type,
        ?policy,
        fenced = fenced.node()
    )
    .entered();
    let Some(fam) = family(fs_type) else {
        return Err(FsError::UnknownType {
            device: device.to_path_buf(),
            fs_type: fs_type.to_string(),
        });
    };
    let meta = stdfs::metadata(device).map_err(|e| FsError::Device {
        device: device.to_path_buf(),
        reason: format!("cannot be examined: {e}"),
    })?;
    if !meta.file_type().is_block_device() && !meta.file_type().is_file() {
        return Err(FsError::Device {
            device: device.to_path_buf(),
            reason: "is neither a block device nor an image file".to_string(),
        });
    }
    // e2fsck and xfs_repair would judge a live filesystem as corrupt, or refuse with a
    // message that hides the real reason.
    let table = mount::read_mount_table()?;
    let at: Vec<String> = table
        .iter()
        .filter(|m| mount::is_device(m, device))
        .map(|m| m.mount_point.display().to_string())
        .collect();
    if !at.is_empty() {
        return Err(FsError::Mounted {
            device: device.to_path_buf(),
            mountpoints: at,
        });
    }
    let mut rec = Record {
        device,
        fs_type,
        steps: Vec::new(),
    };
    let uuid = match fam {
        Family::Ext => ext::check_ext(&mut rec, policy, fenced)?,
        Family::Xfs => xfs::check_xfs(&mut rec, policy, fenced)?,
    };
    info!(steps = rec.steps.len(), "check passed");
    Ok(Checked {
        device: device.to_path_buf(),
        fs_type: fs_type.to_string(),
        uuid,
        policy,
        fenced_node: fenced.node().to_string(),
        steps: rec.steps,
    })
}

/// "clean", or "journal replayed, then clean" (log for XFS) when a replay ran: the peer
/// died mid-write, and the admin should know its last writes were recovered.
pub fn replay_note(c: &Checked) -> &'static str {
    let replayed = c.steps().iter().any(|s| {
        s.command.contains("journal_only")
            || (s.command.starts_with("mount ") && !s.command.contains("-o ro"))
    });
    if replayed {
        "journal/log replayed, then clean"
    } else {
        "clean"
    }
}

#[cfg(test)]
mod tests {
    //! The decisions, table-driven; the tools themselves run in tests/fs_check.rs.
    use super::*;

    #[test]
    fn plans_list_the_replay_before_the_check() {
        let dev = Path::new("/dev/md/box1:0");
        let p = plan(dev, "ext4", Policy::CheckOnly);
        assert!(p[0].starts_with("read the superblock of /dev/md/box1:0  # by hamn itself"));
        assert!(p[0].contains("needs_recovery?"), "{}", p[0]);
        assert!(p[1].starts_with("e2fsck -p -E journal_only /dev/md/box1:0"));
        assert!(p[1].contains("needs_recovery"));
        assert_eq!(p[2], "e2fsck -f -n /dev/md/box1:0");
        assert_eq!(
            plan(dev, "ext3", Policy::Repair)[2],
            "e2fsck -f -p /dev/md/box1:0"
        );

        let x = plan(Path::new("/dev/sdz1"), "xfs", Policy::CheckOnly);
        assert_eq!(x[0], "xfs_repair -n /dev/sdz1");
        assert!(x[1].starts_with("mount -t xfs /dev/sdz1 "));
        assert!(x[2].starts_with("umount "));
        assert!(x[3].starts_with("xfs_repair -n /dev/sdz1"));
        assert!(x[4].starts_with("mount -t xfs -o ro /dev/sdz1 "));
        assert!(x[5].starts_with("xfs_db -r -c uuid /dev/sdz1"));
        assert_eq!(x.len(), 6);
        let r = plan(Path::new("/dev/sdz1"), "xfs", Policy::Repair);
        assert!(r[5].starts_with("xfs_repair /dev/sdz1"));
        assert!(r.iter().all(|c| !c.contains("-L")));

        let u = plan(dev, "btrfs", Policy::CheckOnly);
        assert!(u.len() == 1 && u[0].starts_with('#') && u[0].contains("unknown"));
    }

    #[test]
    fn blkid_export_gives_type_and_uuid() {
        let out = "DEVNAME=/dev/md127\nUUID=0b3c1d5e-aaaa-bbbb-cccc-0123456789ab\n\
                   BLOCK_SIZE=4096\nTYPE=ext4\nUSAGE=filesystem\n";
        assert_eq!(
            parse_blkid_export(out),
            (
                Some("ext4".to_string()),
                Some("0b3c1d5e-aaaa-bbbb-cccc-0123456789ab".to_string())
            )
        );
        assert_eq!(parse_blkid_export("DEVNAME=/dev/sdz\n"), (None, None));
    }

    #[test]
    fn relevant_lines_drop_progress_and_banners() {
        let out = "e2fsck 1.47.0 (5-Feb-2023)\nPass 1: Checking inodes\n\
                   Cannot get host filesystem geometry.\n        - agno = 0\n\
                   bad magic # 0x0 for agf 1\n\n";
        assert_eq!(relevant_lines(out, 5), vec!["bad magic # 0x0 for agf 1"]);
        let many = "x\n".repeat(12);
        let r = relevant_lines(&many, 3);
        assert_eq!(r.len(), 4);
        assert_eq!(r[3], "... (9 more lines)");
    }

    #[test]
    fn policy_serde_is_kebab_case_and_defaults_to_check_only() {
        assert_eq!(Policy::default(), Policy::CheckOnly);
        assert_eq!(
            serde_json::to_string(&Policy::CheckOnly).expect("json"),
            "\"check-only\""
        );
        let p: Policy = serde_json::from_str("\"repair\"").expect("json");
        assert_eq!(p, Policy::Repair);
    }

    #[test]
    fn refusal_text_names_device_type_command_and_next_step() {
        let r = Refusal {
            device: "/dev/sdb1".into(),
            fs_type: "ext4".into(),
            command: "e2fsck -f -n /dev/sdb1".into(),
            exit: Some(4),
            in_process: false,
            meaning: "errors left uncorrected".into(),
            said: vec!["Inode 12 has illegal block(s).".into()],
            next: vec!["`e2fsck -f /dev/sdb1` repairs interactively".into()],
        };
        let t = FsError::Refused(r).to_string();
        for want in [
            "ext4 filesystem on /dev/sdb1 is NOT checked",
            "`e2fsck -f -n /dev/sdb1` exited 4",
            "Inode 12 has illegal block(s).",
            "e2fsck -f /dev/sdb1",
        ] {
            assert!(t.contains(want), "{want:?} missing in:\n{t}");
        }
    }

    #[test]
    fn a_refusal_by_hamn_itself_claims_no_exit_status() {
        let r = Refusal {
            device: "/dev/sdb1".into(),
            fs_type: "ext4".into(),
            command: "read the superblock of /dev/sdb1".into(),
            exit: None,
            in_process: true,
            meaning: "the superblock cannot be read".into(),
            said: vec!["Bad magic number in super-block".into()],
            next: vec![],
        };
        let t = FsError::Refused(r).to_string();
        assert!(
            t.contains(
                "do not mount it: read the superblock of /dev/sdb1 failed (the superblock \
                 cannot be read)"
            ),
            "{t}"
        );
        assert!(!t.contains("signal") && !t.contains('`'), "{t}");
    }
}
