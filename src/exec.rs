//! The one way hamn runs an external program (`e2fsck`, `mount`, `mdadm`, `ip`,
//! `arping`, `systemctl`, xCAT's commands, `blkid`), so that every adapter gets the same
//! guarantees:
//!
//! - argv only, never a shell; the command line an admin sees (`--dry-run`, errors) is
//!   the exact argv, shell-quoted so that it can be pasted ([`display`]);
//! - a clean environment: `LC_ALL=C` so that output can be parsed, and every variable
//!   named with [`scrub_env_var`] removed, so that a BMC password given in the
//!   environment is not inherited by programs that have no business with it;
//! - stdin is /dev/null, so no program can wait for an answer nobody will give;
//! - with a deadline, the program runs in its own process group and the whole group is
//!   killed when the deadline passes: an unknown outcome is a failure (design invariant
//!   5), and a start script's children must not outlive it;
//! - a program that is not installed is named with the package that provides it;
//! - while a takeover or giveback runs ([`arm_interrupts`]), SIGTERM and SIGINT do not
//!   kill hamn: they set a flag that the wait loop sees; it stops the running command and
//!   its whole process group (SIGTERM, then SIGKILL after a grace period), waits until
//!   the group is gone, and reports [`ExecError::Interrupted`]. No new command starts
//!   after that. So a rerun never overlaps a command of the interrupted run (two checks
//!   of one filesystem at once);
//! - a child dies with hamn even when hamn is killed with SIGKILL, which no handler can
//!   see: every child is spawned with PR_SET_PDEATHSIG(SIGKILL) (Linux). This covers the
//!   program hamn started (e2fsck, mount, a service's start command), not what that
//!   program started in turn and left running in its process group.
//!
//! Ground floor: it imports nothing of hamn.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::info;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("`{command}`: program '{program}' not found (PATH={path}); {hint}")]
    Missing {
        program: String,
        command: String,
        path: String,
        hint: String,
    },
    #[error("cannot run `{command}`: {source}")]
    Spawn { command: String, source: io::Error },
    #[error("`{command}` {status}{output}")]
    Failed {
        command: String,
        status: String,
        output: String,
    },
    #[error("`{command}` did not finish within {seconds:.0}s and was killed{output}")]
    Timeout {
        command: String,
        seconds: f64,
        output: String,
    },
    #[error(
        "`{command}` was stopped, with every process it started, because hamn received \
         {signal}"
    )]
    Interrupted { command: String, signal: String },
    #[error("cannot handle {signal} (sigaction: {source}); nothing was done")]
    Signals { signal: String, source: nix::Error },
    #[error(
        "cannot create a file for command output in {dir}: {source}; make the temporary \
         directory writable (or point TMPDIR elsewhere) and rerun"
    )]
    Capture { dir: String, source: io::Error },
}

// ---------------------------------------------------------------------------------------
// The environment

static SCRUBBED: Mutex<BTreeSet<OsString>> = Mutex::new(BTreeSet::new());

/// Never pass the variable `name` to a program hamn runs. For secrets that reach hamn
/// through its environment (a BMC password named by `password_env`): hamn reads them,
/// its children must not.
pub fn scrub_env_var(name: &str) {
    SCRUBBED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(OsString::from(name));
}

fn scrubbed() -> Vec<OsString> {
    SCRUBBED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------
// Signals

/// The signal (SIGTERM, SIGINT) that asked hamn to stop, 0 while none did. Set by the
/// signal handler, which may do nothing else (async-signal-safe).
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

/// How many [`InterruptGuard`]s are alive, and the handlers they replaced.
static ARMED: Mutex<(
    usize,
    Vec<(nix::sys::signal::Signal, nix::sys::signal::SigAction)>,
)> = Mutex::new((0, Vec::new()));

const STOP_SIGNALS: [nix::sys::signal::Signal; 2] = [
    nix::sys::signal::Signal::SIGTERM,
    nix::sys::signal::Signal::SIGINT,
];

extern "C" fn on_stop_signal(sig: libc::c_int) {
    INTERRUPTED.store(sig, Ordering::SeqCst);
}

/// While alive, SIGTERM and SIGINT stop the running command instead of killing hamn
/// (see the module's notes); dropping the last guard restores the previous handlers.
#[derive(Debug)]
pub struct InterruptGuard(());

/// Catch SIGTERM and SIGINT until the guard is dropped. The takeover executor holds one
/// for its whole run, so that an interruption is journaled and no command outlives it.
pub fn arm_interrupts() -> Result<InterruptGuard, ExecError> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
    let mut armed = ARMED.lock().unwrap_or_else(|p| p.into_inner());
    if armed.0 == 0 {
        INTERRUPTED.store(0, Ordering::SeqCst);
        let action = SigAction::new(
            SigHandler::Handler(on_stop_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        let mut old = Vec::new();
        for sig in STOP_SIGNALS {
            // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
            match unsafe { sigaction(sig, &action) } {
                Ok(previous) => old.push((sig, previous)),
                Err(source) => {
                    restore(&old);
                    return Err(ExecError::Signals {
                        signal: sig.as_str().to_string(),
                        source,
                    });
                }
            }
        }
        armed.1 = old;
    }
    armed.0 += 1;
    Ok(InterruptGuard(()))
}

fn restore(old: &[(nix::sys::signal::Signal, nix::sys::signal::SigAction)]) {
    for (sig, action) in old {
        // SAFETY: puts back the disposition that was in place before arm_interrupts.
        let _ = unsafe { nix::sys::signal::sigaction(*sig, action) };
    }
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        let mut armed = ARMED.lock().unwrap_or_else(|p| p.into_inner());
        armed.0 = armed.0.saturating_sub(1);
        if armed.0 == 0 {
            let old = std::mem::take(&mut armed.1);
            restore(&old);
        }
    }
}

fn armed() -> bool {
    ARMED.lock().unwrap_or_else(|p| p.into_inner()).0 > 0
}

/// The signal that asked hamn to stop, if one did while interrupts were armed.
pub fn interrupted() -> Option<i32> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// "SIGTERM" for 15.
pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_string())
}

/// How long a command stopped by an interruption gets to end on SIGTERM before its
/// process group is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Showing commands

/// Quote for a POSIX shell only where needed, so that commands shown to the admin can be
/// pasted as they are.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// An argv as an admin would type it at a shell.
pub fn display<S: AsRef<OsStr>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| shell_quote(&a.as_ref().to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How many lines of a failed command's output an error quotes.
const TAIL_LINES: usize = 8;
/// Longer lines are cut: an error message is read by a person at a terminal.
const TAIL_LINE_CHARS: usize = 300;

/// The last lines of a command's output, formatted to end an error message ("" when
/// there is no output).
pub fn tail(output: &str) -> String {
    let lines: Vec<String> = output
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            if l.chars().count() > TAIL_LINE_CHARS {
                format!("{}...", l.chars().take(TAIL_LINE_CHARS).collect::<String>())
            } else {
                l.to_string()
            }
        })
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let from = lines.len().saturating_sub(TAIL_LINES);
    format!(
        "; its output ended with:\n    {}",
        lines[from..].join("\n    ")
    )
}

/// An exit status in words, to follow the command in a message.
pub fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => "ended abnormally".to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Finding programs

/// Where the tools live when hamn's PATH lacks the sbin directories (a cluster manager or
/// a systemd unit often starts it with a short PATH).
const FALLBACK_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// What to install (or do) when `program` is missing; None for programs hamn does not
/// know.
pub fn install_hint(program: &str) -> Option<String> {
    let base = program.rsplit('/').next().unwrap_or(program);
    let package = |p: &str| Some(format!("install the {p} package"));
    match base {
        "e2fsck" | "dumpe2fs" | "tune2fs" => package("e2fsprogs"),
        "xfs_repair" | "xfs_db" => package("xfsprogs"),
        "mount" | "umount" => package("mount (util-linux)"),
        "blkid" => package("util-linux (RHEL: util-linux-core)"),
        "mdadm" => package("mdadm"),
        "arping" => Some(
            "install it (Debian/Ubuntu: apt-get install iputils-arping; RHEL/SLES: the \
             iputils package)"
                .into(),
        ),
        "ip" => Some("install iproute2 (RHEL: iproute)".into()),
        "systemctl" => Some(
            "hamn's xcat preset expects systemd; give the service's own commands in a \
             [[takeover.service]] entry of the same name"
                .into(),
        ),
        _ if program.starts_with("/opt/xcat/") => Some(
            "is xCAT installed on this node? It must be, identically, on both management nodes"
                .into(),
        ),
        _ => None,
    }
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

/// The program file `program` names: itself if it contains a '/' and exists (running it
/// then says why it cannot run, e.g. permission denied), else the first executable match
/// in PATH, then in the sbin directories.
pub fn locate(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.exists().then_some(p);
    }
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain(FALLBACK_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

// ---------------------------------------------------------------------------------------
// Running

/// Only the end of a command's output is kept by default; the end is where the errors
/// are, and a daemon left writing to it must not fill memory.
const OUTPUT_WINDOW: u64 = 256 * 1024;

/// A command to run: an argv and how to run it.
#[derive(Debug, Clone)]
pub struct Command {
    argv: Vec<OsString>,
    timeout: Option<Duration>,
    keep_all: bool,
    hint: Option<String>,
}

/// A command that ran to its end, whatever its exit status.
#[derive(Debug)]
pub struct Ran {
    /// The command line as shown to the admin.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    /// stdout as the command wrote it (`stdout` replaces bytes that are not UTF-8): for
    /// output that is data, such as a password_script's password.
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
    pub seconds: f64,
}

impl Ran {
    /// The exit code; None when a signal ended it.
    pub fn exit(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// stdout, then stderr.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// stderr, then stdout: where checkers say why they stopped comes first, so that it
    /// survives a cut to a few lines.
    pub fn output_stderr_first(&self) -> String {
        let mut output = self.stderr.clone();
        if !self.stdout.is_empty() {
            if !output.is_empty() && !output.ends_with('\n') {
                output.push('\n');
            }
            output.push_str(&self.stdout);
        }
        output
    }

    /// The error for a run whose exit status the caller does not accept.
    pub fn failure(&self) -> ExecError {
        ExecError::Failed {
            command: self.command.clone(),
            status: describe_status(self.status),
            output: tail(&self.output()),
        }
    }
}

impl Command {
    /// `argv[0]` is the program; a name without '/' is looked up in PATH and the sbin
    /// directories.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Command {
            argv: argv.into_iter().map(Into::into).collect(),
            timeout: None,
            keep_all: false,
            hint: None,
        }
    }

    /// Kill the program and everything it started (its process group) if it has not
    /// ended after `d`. Without a deadline the program runs in hamn's process group, so
    /// that Ctrl-C at the terminal stops it together with hamn.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Keep all of the output rather than its last 256 KiB: for checkers whose first
    /// complaints are the ones worth showing.
    pub fn keep_all_output(mut self) -> Self {
        self.keep_all = true;
        self
    }

    /// What to tell the admin if the program is missing and [`install_hint`] does not
    /// know it.
    pub fn hint(mut self, hint: &str) -> Self {
        self.hint = Some(hint.to_string());
        self
    }

    /// The command line as an admin would type it.
    pub fn display(&self) -> String {
        display(&self.argv)
    }

    /// Run to the end; any exit status is Ok. Errors only when the program could not be
    /// run or did not finish in time.
    pub fn run(&self) -> Result<Ran, ExecError> {
        let command = self.display();
        let Some((program, args)) = self.argv.split_first() else {
            return Err(ExecError::Spawn {
                command,
                source: io::Error::new(io::ErrorKind::InvalidInput, "empty command"),
            });
        };
        let name = program.to_string_lossy().into_owned();
        let missing = || ExecError::Missing {
            program: name.clone(),
            command: command.clone(),
            path: std::env::var("PATH").unwrap_or_default(),
            hint: install_hint(&name)
                .or_else(|| self.hint.clone())
                .unwrap_or_else(|| "install the package that provides it".to_string()),
        };
        let Some(file) = locate(&name) else {
            return Err(missing());
        };
        if let Some(sig) = interrupted() {
            return Err(ExecError::Interrupted {
                command,
                signal: signal_name(sig),
            });
        }
        let mut out = capture_file()?;
        let mut err = capture_file()?;
        let spawn_err = |source| ExecError::Spawn {
            command: command.clone(),
            source,
        };
        let own_group = self.timeout.is_some() || armed();
        let mut cmd = self.std_command(&file, program, args, own_group);
        cmd.stdout(Stdio::from(out.try_clone().map_err(spawn_err)?))
            .stderr(Stdio::from(err.try_clone().map_err(spawn_err)?));
        let started = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
            Err(source) => return Err(ExecError::Spawn { command, source }),
        };
        let window = (!self.keep_all).then_some(OUTPUT_WINDOW);
        let status = match wait_for(&mut child, self.timeout, own_group) {
            Ok(Waited::Exited(status)) => status,
            Ok(Waited::TimedOut) => {
                let output = format!(
                    "{}{}",
                    read_back(&mut out, window),
                    read_back(&mut err, window)
                );
                return Err(ExecError::Timeout {
                    command,
                    seconds: self.timeout.unwrap_or_default().as_secs_f64(),
                    output: tail(&output),
                });
            }
            Ok(Waited::Interrupted(sig)) => {
                info!(command = %command, signal = sig, "stopped: hamn was interrupted");
                return Err(ExecError::Interrupted {
                    command,
                    signal: signal_name(sig),
                });
            }
            Err(source) => return Err(ExecError::Spawn { command, source }),
        };
        let seconds = started.elapsed().as_secs_f64();
        info!(command = %command, exit = status.code(), seconds, "ran");
        let stdout_bytes = read_back_bytes(&mut out, window);
        Ok(Ran {
            command,
            status,
            stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
            stdout_bytes,
            stderr: read_back(&mut err, window),
            seconds,
        })
    }

    /// The process to spawn, with the environment policy applied.
    fn std_command(
        &self,
        file: &Path,
        program: &OsStr,
        args: &[OsString],
        own_group: bool,
    ) -> std::process::Command {
        let mut cmd = std::process::Command::new(file);
        // arg0 as typed, so that messages read "e2fsck: ...", not "/usr/sbin/e2fsck: ...".
        cmd.arg0(program)
            .args(args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        for var in scrubbed() {
            cmd.env_remove(var);
        }
        // xCAT's client commands find their certificate in $HOME/.xcat, and a cluster
        // manager may start hamn without HOME.
        if std::env::var_os("HOME").is_none()
            && let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::geteuid())
        {
            cmd.env("HOME", user.dir);
        }
        if own_group {
            cmd.process_group(0);
        }
        // The child dies with hamn, even when hamn is killed with SIGKILL: a rerun after
        // `kill -9` must never overlap an e2fsck the killed run left running. The signal
        // is sent when the thread that spawned the child ends, and every thread that
        // spawns here waits for its child. Only the child itself is covered; what it
        // starts lives in its process group, which hamn kills on a deadline or a
        // SIGTERM/SIGINT.
        let parent = std::process::id();
        // SAFETY: between fork and exec only async-signal-safe calls (prctl, getppid).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // hamn died before the prctl: nobody is left to wait for this child.
                if u32::try_from(libc::getppid()).ok() != Some(parent) {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        cmd
    }

    /// Run, and make any exit status but 0 an error that quotes the output's end.
    pub fn run_ok(&self) -> Result<Ran, ExecError> {
        let ran = self.run()?;
        if ran.success() {
            Ok(ran)
        } else {
            Err(ran.failure())
        }
    }
}

enum Waited {
    Exited(ExitStatus),
    /// The deadline passed; the process group was killed.
    TimedOut,
    /// hamn received this signal; the process group was stopped and is gone.
    Interrupted(i32),
}

/// How long a wait for a child may go without looking at the interruption flag: the
/// signal may be delivered to another of hamn's threads, which does not wake this one.
const INTERRUPT_LATENCY: Duration = Duration::from_millis(50);

/// A descriptor that becomes readable when the process exits (pidfd_open(2), Linux 5.3),
/// so that its end is seen at once rather than at the next poll. None on older kernels.
fn exit_notifier(child: &Child) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(child.id()).ok()?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: a fresh descriptor that nobody else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sleep until `fd` is readable (the child exited) or `nap` has passed.
fn nap_until_exit(fd: &OwnedFd, nap: Duration) {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(nap.as_millis().max(1)).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd; an EINTR or an error only ends the nap early.
    unsafe { libc::poll(&raw mut pfd, 1, ms) };
}

/// Wait for the child, seeing its exit at once (or polling where the kernel cannot tell),
/// and looking for a deadline or an interruption at least every [`INTERRUPT_LATENCY`].
fn wait_for(child: &mut Child, timeout: Option<Duration>, own_group: bool) -> io::Result<Waited> {
    let started = Instant::now();
    let notifier = exit_notifier(child);
    let mut pause = Duration::from_millis(2);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(Waited::Exited(status)),
            Ok(None) => {}
            Err(e) => {
                kill_group(child);
                return Err(e);
            }
        }
        if let Some(sig) = interrupted() {
            stop(child, own_group);
            return Ok(Waited::Interrupted(sig));
        }
        let left = match timeout {
            Some(timeout) if started.elapsed() >= timeout => {
                kill_group(child);
                return Ok(Waited::TimedOut);
            }
            Some(timeout) => timeout.saturating_sub(started.elapsed()),
            None => INTERRUPT_LATENCY,
        };
        match &notifier {
            Some(fd) => nap_until_exit(fd, left.min(INTERRUPT_LATENCY)),
            None => {
                std::thread::sleep(left.min(pause));
                pause = (pause * 2).min(INTERRUPT_LATENCY);
            }
        }
    }
}

fn pgid(child: &Child) -> Option<nix::unistd::Pid> {
    i32::try_from(child.id())
        .ok()
        .map(nix::unistd::Pid::from_raw)
}

/// Kill the command and whatever it started: it runs in its own process group.
fn kill_group(child: &mut Child) {
    let killed = pgid(child)
        .is_some_and(|pg| nix::sys::signal::killpg(pg, nix::sys::signal::Signal::SIGKILL).is_ok());
    if !killed {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Stop an interrupted command: SIGTERM to its process group, SIGKILL after
/// [`STOP_GRACE`], and wait until no process of the group is left, so that nothing the
/// command started is still running when hamn exits.
fn stop(child: &mut Child, own_group: bool) {
    use nix::sys::signal::{Signal, killpg};
    let Some(pg) = pgid(child).filter(|_| own_group) else {
        let _ = child.kill();
        let _ = child.wait();
        return;
    };
    let _ = killpg(pg, Signal::SIGTERM);
    let grace = Instant::now() + STOP_GRACE;
    while Instant::now() < grace && matches!(child.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = killpg(pg, Signal::SIGKILL);
    let _ = child.wait();
    // The rest of the group (reparented, killed) goes within moments; wait for it.
    let gone = Instant::now() + STOP_GRACE;
    while killpg(pg, None).is_ok() && Instant::now() < gone {
        let _ = killpg(pg, Signal::SIGKILL);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Output goes to unlinked files rather than pipes: a daemon that a start command leaves
/// behind may keep its inherited stdout open for ever, and a pipe would then either never
/// reach end-of-file or, once we stop reading, block or SIGPIPE that daemon.
fn capture_file() -> Result<File, ExecError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    let capture_err = |source| ExecError::Capture {
        dir: dir.display().to_string(),
        source,
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let path = dir.join(format!(
        ".hamn-exec-{}-{}-{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(capture_err)?;
    std::fs::remove_file(&path).map_err(capture_err)?;
    Ok(file)
}

fn read_back(file: &mut File, window: Option<u64>) -> String {
    String::from_utf8_lossy(&read_back_bytes(file, window)).into_owned()
}

fn read_back_bytes(file: &mut File, window: Option<u64>) -> Vec<u8> {
    let len = file.seek(SeekFrom::End(0)).unwrap_or(0);
    let from = window.map_or(0, |w| len.saturating_sub(w));
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_ok() {
        let _ = file.read_to_end(&mut bytes);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(argv: &[&str]) -> Command {
        Command::new(argv.iter().copied())
    }

    #[test]
    fn commands_shown_are_pasteable() {
        assert_eq!(shell_quote("/dev/sda1"), "/dev/sda1");
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(
            display(&["touch", "/tmp/a file", "it's"]),
            r"touch '/tmp/a file' 'it'\''s'"
        );
    }

    #[test]
    fn command_output_tails_are_short() {
        let long: String = (0..30).map(|i| format!("line {i}\n")).collect();
        let t = tail(&long);
        assert!(t.contains("line 29") && t.contains("line 22"), "{t}");
        assert!(!t.contains("line 21"), "{t}");
        assert_eq!(tail("\n  \n"), "");
    }

    #[test]
    fn commands_run_without_a_shell_and_report_failures() {
        let five = Duration::from_secs(5);
        let ran = cmd(&["echo", "$HOME", "*"])
            .timeout(five)
            .run()
            .expect("runs");
        assert_eq!(ran.stdout, "$HOME *\n");
        let e = cmd(&["ls", "/nonexistent-hamn-path"])
            .timeout(five)
            .run_ok()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`ls /nonexistent-hamn-path` exited with status 2"),
            "{e}"
        );
        assert!(e.contains("No such file or directory"), "{e} (LC_ALL=C)");
        let e = cmd(&["hamn-no-such-program"])
            .timeout(five)
            .run()
            .unwrap_err()
            .to_string();
        assert!(e.contains("'hamn-no-such-program' not found"), "{e}");
        let t0 = Instant::now();
        let e = cmd(&["sleep", "30"])
            .timeout(Duration::from_millis(300))
            .run()
            .unwrap_err();
        assert!(matches!(e, ExecError::Timeout { .. }), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_timeout_kills_what_the_command_started() {
        // The grandchild prints its pid, then both wait; only a kill of the whole group
        // ends the grandchild too.
        let e = cmd(&["sh", "-c", "sleep 30 & echo $!; wait"])
            .timeout(Duration::from_millis(500))
            .run()
            .unwrap_err();
        let ExecError::Timeout { output, .. } = &e else {
            panic!("{e}");
        };
        let pid: i32 = output
            .lines()
            .find_map(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pid in {output:?}"));
        let deadline = Instant::now() + Duration::from_secs(5);
        let gone = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |st| {
                st.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            })
        };
        while !gone() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(gone(), "the grandchild {pid} outlived the deadline");
    }

    #[test]
    fn missing_tools_name_their_package() {
        let e = cmd(&["/nonexistent/e2fsck", "-n", "/dev/x"])
            .run()
            .unwrap_err()
            .to_string();
        assert!(e.contains("e2fsprogs"), "{e}");
        assert!(e.contains("`/nonexistent/e2fsck -n /dev/x`"), "{e}");
        let e = cmd(&["hamn-no-such-program"])
            .hint("correct it in hamn.toml")
            .run()
            .unwrap_err()
            .to_string();
        assert!(e.contains("correct it in hamn.toml"), "{e}");
    }

    #[test]
    fn scrubbed_variables_are_removed_and_lc_all_is_c() {
        // A name no other test uses: the list is process-wide.
        const VAR: &str = "HAMN_EXEC_TEST_SECRET";
        scrub_env_var(VAR);
        let c = cmd(&["env"]).std_command(Path::new("/usr/bin/env"), OsStr::new("env"), &[], false);
        let envs: Vec<(&OsStr, Option<&OsStr>)> = c.get_envs().collect();
        assert!(envs.contains(&(OsStr::new(VAR), None)), "{envs:?}");
        assert!(envs.contains(&(OsStr::new("LC_ALL"), Some(OsStr::new("C")))));
        let ran = cmd(&["env"]).run_ok().expect("env");
        assert!(ran.stdout.lines().any(|l| l == "LC_ALL=C"));
    }
}
