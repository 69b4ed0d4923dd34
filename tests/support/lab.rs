//! Storage lab: real Linux guests (QEMU, TCG) that see shared SAN LUNs over several paths
//! (tgtd on loopback, one iSCSI session per path) and local disks, with udev and
//! multipathd running inside.  `tests/lab/build` makes the base image; see
//! tests/lab/README.md.
//!
//! Everything started here (tgtd, QEMU) is killed by PID when its owner is dropped, so a
//! failing test leaves nothing behind.  Guests share the machine's 2 cores: at most
//! `MAX_GUESTS` run at once on the machine (file locks), whatever the test threads.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{find_on_path, skip_or_panic};

/// Guests running at once on the machine; more starve each other of CPU under TCG.
const MAX_GUESTS: usize = 3;
/// The line guest-init prints once the scenario has finished.
const RESULT_MARK: &str = "HAMN-LAB-RESULT: ";
const OUT_BEGIN: &str = "HAMN-LAB-OUT-BEGIN";
const OUT_END: &str = "HAMN-LAB-OUT-END";

// ---------------------------------------------------------------------------------------
// The lab image
// ---------------------------------------------------------------------------------------

/// Where `tests/lab/build` put the image: env HAMN_LAB_DIR, else <repo>/target/lab.
pub fn lab_dir() -> PathBuf {
    match std::env::var_os("HAMN_LAB_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/lab"),
    }
}

/// Why the lab cannot run here, if it cannot.
fn lab_missing() -> Option<String> {
    let dir = lab_dir();
    for file in ["vmlinux", "initrd.base"] {
        if !dir.join(file).is_file() {
            return Some(format!(
                "lab image {} missing (run `bash tests/lab/build`)",
                dir.join(file).display()
            ));
        }
    }
    ["qemu-system-x86_64", "tgtd", "tgtadm", "qemu-img"]
        .iter()
        .find(|tool| find_on_path(tool).is_none())
        .map(|tool| format!("{tool} not installed (run `bash tests/lab/build`)"))
}

/// True if guests can be booted.  Otherwise prints "SKIP: <reason>" (or panics with env
/// CI set, see `skip_or_panic`) and returns false.
pub fn require_lab() -> bool {
    match lab_missing() {
        None => true,
        Some(reason) => {
            skip_or_panic(&reason);
            false
        }
    }
}

// ---------------------------------------------------------------------------------------
// Small process helpers
// ---------------------------------------------------------------------------------------

/// A loopback TCP port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for a free port");
    listener.local_addr().expect("local_addr").port()
}

/// A child process killed (SIGKILL, by PID) and reaped when dropped: on every exit path,
/// panics included.
struct Killed {
    child: Child,
}

impl Killed {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Exit status if the process has ended.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `limit` for the process to end by itself.
    fn wait_for(&mut self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if self.exited().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `program` set to die with the thread that starts it (PR_SET_PDEATHSIG): if the test
/// process is killed outright (a CI timeout), no tgtd or QEMU is left behind.  Drop still
/// does the normal clean-up; start them on the thread that owns them.
fn owned_command(program: &str) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

/// Last `n` lines of `text`, for panic messages.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs a command to completion; Err carries its output.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{cmd:?} failed ({}): {}", out.status, text.trim()))
    }
}

// ---------------------------------------------------------------------------------------
// The SAN: tgtd on loopback
// ---------------------------------------------------------------------------------------

/// What a LUN reports.  `wwid` is what the guest's multipath and udev (ID_SERIAL,
/// DM_UUID=mpath-<wwid>) see: "3" (NAA) + 32 hex digits starting with "6" (NAA IEEE
/// registered extended), e.g. `LunSpec::new(1)`'s "36001405...".
#[derive(Clone, Debug)]
pub struct LunSpec {
    pub size_mb: u64,
    pub vendor: String,
    pub product: String,
    pub serial: String,
    pub wwid: String,
}

impl LunSpec {
    /// A 64 MB LUN with distinct, valid identity for number `n`.
    pub fn new(n: u32) -> LunSpec {
        LunSpec {
            size_mb: 64,
            vendor: "HAMN".into(),
            product: "LABLUN".into(),
            serial: format!("HAMNSN{n:04}"),
            wwid: format!("36001405{:025x}", 0xa0_0000_u64 + u64::from(n)),
        }
    }

    /// tgt derives the NAA type 6 designator (which udev's scsi_id prefers, giving
    /// ID_SERIAL "3" + 32 hex digits) from scsi_id read as hex: so scsi_id is the wwid
    /// without its "3".
    fn scsi_id(&self) -> String {
        let hex = self.wwid.strip_prefix('3').unwrap_or("");
        assert!(
            hex.len() == 32 && hex.starts_with('6') && hex.chars().all(|c| c.is_ascii_hexdigit()),
            "LunSpec wwid {:?}: want \"36\" followed by 31 hex digits (NAA 6), like 36001405...",
            self.wwid
        );
        hex.to_ascii_lowercase()
    }
}

/// One LUN on a `San`: what a guest needs to reach it.
#[derive(Clone, Debug)]
pub struct Lun {
    /// "127.0.0.1:<port>"
    pub portal: String,
    pub iqn: String,
    pub lun: u32,
    pub spec: LunSpec,
    /// The backing file on the host (inspect it after a test).
    pub backing: PathBuf,
}

/// A userspace iSCSI target (tgtd) on 127.0.0.1 with file-backed LUNs, one target per
/// LUN.  Dropping it deletes the targets, stops tgtd and kills it by PID if it lingers.
pub struct San {
    tgtd: Option<Killed>,
    ctl: u16,
    port: u16,
    tids: Vec<u32>,
    dir: tempfile::TempDir,
}

impl San {
    /// Starts tgtd.  Ok(None) after "SKIP: <reason>" when the lab is not built or a tool is
    /// missing (a failure instead when env CI is set).
    pub fn start() -> Result<Option<San>, String> {
        if !require_lab() {
            return Ok(None);
        }
        // A port (or control number) taken between our probe and tgtd's bind: try again.
        let mut last = String::new();
        for _ in 0..5 {
            match San::try_start() {
                Ok(san) => return Ok(Some(san)),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn try_start() -> Result<San, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let port = free_port();
        // The control socket is /run/tgtd/socket.<ctl>, ctl at most 32767. Ephemeral ports
        // are 32768-60999, so this is unique among our tgtds.
        let ctl = port & 0x7fff;
        let log = fs::File::create(dir.path().join("tgtd.log")).map_err(|e| e.to_string())?;
        let child = owned_command("tgtd")
            .args(["-f", "-C", &ctl.to_string(), "--iscsi"])
            .arg(format!("portal=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn tgtd: {e}"))?;
        let mut san = San {
            tgtd: Some(Killed { child }),
            ctl,
            port,
            tids: Vec::new(),
            dir,
        };
        san.wait_ready()?;
        Ok(san)
    }

    /// tgtd accepts tgtadm once its control socket is up.
    fn wait_ready(&mut self) -> Result<(), String> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if self.tgtadm(&["--op", "show", "--mode", "system"]).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.tgtd.as_mut().and_then(Killed::exited) {
                return Err(format!("tgtd exited ({status}): {}", self.log()));
            }
            if Instant::now() > until {
                return Err(format!("tgtd not ready within 10 s: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("tgtd.log")).unwrap_or_default()
    }

    /// "127.0.0.1:<port>" where tgtd listens.
    pub fn portal(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs tgtadm against this tgtd.
    pub fn tgtadm(&self, args: &[&str]) -> Result<String, String> {
        run(Command::new("tgtadm")
            .args(["-C", &self.ctl.to_string(), "--lld", "iscsi"])
            .args(args))
    }

    fn tgtadm_or_panic(&self, args: &[&str]) {
        if let Err(e) = self.tgtadm(args) {
            panic!(
                "San on {}: {e}\ntgtd log:\n{}",
                self.portal(),
                tail(&self.log(), 20)
            );
        }
    }

    /// Adds a file-backed LUN (LUN 1 of a new target) any initiator may log in to.
    pub fn add_lun(&mut self, spec: &LunSpec) -> Lun {
        let scsi_id = spec.scsi_id();
        let tid = self.tids.len() as u32 + 1;
        let iqn = format!("iqn.2026-11.hamn.san:{}.lun{tid}", self.port);
        let backing = self.dir.path().join(format!("lun{tid}.img"));
        let file = fs::File::create(&backing).expect("create LUN backing file");
        file.set_len(spec.size_mb << 20)
            .expect("size LUN backing file");
        let (tid_s, backing_s) = (tid.to_string(), backing.display().to_string());
        self.tgtadm_or_panic(&[
            "--op", "new", "--mode", "target", "--tid", &tid_s, "-T", &iqn,
        ]);
        self.tids.push(tid);
        self.tgtadm_or_panic(&[
            "--op",
            "new",
            "--mode",
            "logicalunit",
            "--tid",
            &tid_s,
            "--lun",
            "1",
            "-b",
            &backing_s,
        ]);
        let params = format!(
            "vendor_id={},product_id={},scsi_sn={},scsi_id={scsi_id}",
            spec.vendor, spec.product, spec.serial
        );
        self.tgtadm_or_panic(&[
            "--op",
            "update",
            "--mode",
            "logicalunit",
            "--tid",
            &tid_s,
            "--lun",
            "1",
            "--params",
            &params,
        ]);
        self.tgtadm_or_panic(&[
            "--op", "bind", "--mode", "target", "--tid", &tid_s, "-I", "ALL",
        ]);
        Lun {
            portal: self.portal(),
            iqn,
            lun: 1,
            spec: spec.clone(),
            backing,
        }
    }
}

impl Drop for San {
    fn drop(&mut self) {
        // tgtd ignores SIGTERM while targets exist: delete them, then the system.
        for tid in self.tids.clone() {
            let _ = self.tgtadm(&[
                "--op",
                "delete",
                "--mode",
                "target",
                "--tid",
                &tid.to_string(),
                "--force",
            ]);
        }
        let _ = self.tgtadm(&["--op", "delete", "--mode", "system"]);
        if let Some(mut tgtd) = self.tgtd.take() {
            tgtd.wait_for(Duration::from_secs(3));
            // Dropping kills it by PID if it is still there.
        }
    }
}

// ---------------------------------------------------------------------------------------
// Guests
// ---------------------------------------------------------------------------------------

/// A plain local disk: `scsi-hd` with `serial=` (and `wwn=`) backed by a raw or qcow2 file
/// the test keeps, so it can be "moved" to another guest.
#[derive(Clone, Debug)]
pub struct LocalDisk {
    pub image: PathBuf,
    pub serial: String,
    pub wwn: Option<u64>,
}

/// What to boot.  `GuestSpec::new(name, script)` gives the defaults.
#[derive(Clone, Debug)]
pub struct GuestSpec {
    /// Role ("mn1", "mn2", "box1"): hostname and initiator names.
    pub name: String,
    /// Each LUN reached over N paths: N iSCSI sessions with initiator names
    /// iqn.2026-11.hamn:<name>-p<i>, one virtio-scsi controller per path index.
    pub luns: Vec<(Lun, usize)>,
    pub disks: Vec<LocalDisk>,
    /// Guest path <- host file, in the per-guest archive (mode kept).
    pub files: Vec<(String, PathBuf)>,
    /// Guest path <- content, in the per-guest archive (mode 0755).
    pub inline_files: Vec<(String, Vec<u8>)>,
    /// /scenario.sh (busybox sh); runs after udev settle and multipathd; may write /out.
    pub script: String,
    pub memory_mb: u32,
    /// Virtual CPUs. One by default: the host has two cores for every guest of a test.
    /// A management node has many; where a test measures a failover's time on a node
    /// that runs alone once its peer is dead, two let its parallel work (the
    /// cluster's daemons next to the takeover) run in parallel as on a real one.
    pub cpus: u32,
    /// From boot to the result line.
    pub timeout: Duration,
    /// Appended to QEMU's command line (networking, BMC devices...).
    pub qemu_args: Vec<String>,
}

impl GuestSpec {
    pub fn new(name: &str, script: &str) -> GuestSpec {
        GuestSpec {
            name: name.into(),
            luns: Vec::new(),
            disks: Vec::new(),
            files: Vec::new(),
            inline_files: Vec::new(),
            script: script.into(),
            memory_mb: 512,
            cpus: 1,
            timeout: Duration::from_secs(120),
            qemu_args: Vec::new(),
        }
    }

    /// Adds a host binary at `guest_path` plus every shared library `ldd` names for it,
    /// each under the name the loader looks for (its soname link, not the file it points
    /// to), below /usr: the base image has the merged-/usr layout, where /lib is a link.
    pub fn with_binary(&mut self, guest_path: &str, host_path: &Path) -> &mut Self {
        self.files
            .push((guest_path.into(), without_debug_info(host_path)));
        for lib in ldd(host_path) {
            let name = lib.display().to_string();
            let guest = if name.starts_with("/usr/") {
                name
            } else {
                format!("/usr{name}")
            };
            let real = fs::canonicalize(&lib).unwrap_or(lib);
            if !self.files.iter().any(|(g, _)| *g == guest) {
                self.files.push((guest, real));
            }
        }
        self
    }

    pub fn with_file(&mut self, guest_path: &str, content: &[u8]) -> &mut Self {
        self.inline_files
            .push((guest_path.into(), content.to_vec()));
        self
    }
}

/// Absolute library paths `ldd` lists for `binary` (none for a static binary).
/// The test build of hamn carries over 100 MB of debug information, which the guest
/// unpacks into its RAM with the rest of its root file system (and a 512 MB guest then
/// runs out of room). A copy without it (`objcopy --strip-debug`: the same code), made
/// once per build under the lab directory; small files are used as they are.
fn without_debug_info(binary: &Path) -> PathBuf {
    let Ok(meta) = fs::metadata(binary) else {
        return binary.to_path_buf();
    };
    if meta.len() < 16 << 20 {
        return binary.to_path_buf();
    }
    let stamp = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let name = binary.file_name().map_or_else(
        || "binary".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let dir = lab_dir().join("stripped");
    let copy = dir.join(format!("{name}-{}-{stamp}", meta.len()));
    if copy.is_file() {
        return copy;
    }
    fs::create_dir_all(&dir).expect("lab stripped dir");
    // Two tests may strip at once: each writes its own file, the rename is atomic.
    let tmp = dir.join(format!(".{name}-{}", std::process::id()));
    let ok = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(binary)
        .arg(&tmp)
        .status()
        .is_ok_and(|s| s.success());
    if ok && fs::rename(&tmp, &copy).is_ok() {
        copy
    } else {
        let _ = fs::remove_file(&tmp);
        binary.to_path_buf()
    }
}

fn ldd(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.split_whitespace()
        .filter(|word| word.starts_with('/'))
        .map(PathBuf::from)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// What a guest left behind.
#[derive(Debug)]
pub struct GuestRun {
    pub name: String,
    /// The scenario's exit status.
    pub status: i32,
    /// Everything on the serial console.
    pub console: String,
    /// What the scenario wrote to /out.
    pub out_dir: PathBuf,
    /// Boot to result line.
    pub seconds: f64,
}

impl GuestRun {
    /// Content of `/out/<name>` as text; panics naming the guest if missing.
    pub fn out(&self, name: &str) -> String {
        let path = self.out_dir.join(name);
        fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "guest {}: /out/{name} not readable ({e}); last console lines:\n{}",
                self.name,
                tail(&self.console, 30)
            )
        })
    }

    /// The exit status a scenario wrote to `/out/<name>` (`echo $? > /out/x.rc`).
    pub fn rc(&self, name: &str) -> i32 {
        self.out(name)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("guest {}: /out/{name}: {:?}", self.name, self.out(name)))
    }

    /// N of the "line N" the scenario wrote to `/out/<name>` (`write_synced`'s lines).
    pub fn line_number(&self, name: &str) -> u32 {
        self.out(name)
            .trim()
            .strip_prefix("line ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("guest {}: /out/{name}: {:?}", self.name, self.out(name)))
    }

    /// Panics with the console's tail unless the scenario exited 0.
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.status,
            0,
            "guest {}: scenario exited {}; last console lines:\n{}",
            self.name,
            self.status,
            tail(&self.console, 40)
        );
        self
    }
}

/// The highest N of "TAG-SYNCED N" on a console: the last line `write_synced` reported
/// on stable storage.
pub fn last_synced(console: &str, tag: &str) -> u32 {
    let prefix = format!("{tag}-SYNCED ");
    console
        .lines()
        .filter_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .filter_map(|n| n.trim().parse::<u32>().ok())
        .max()
        .unwrap_or_else(|| panic!("no {prefix}lines on the console"))
}

/// Creates a sparse disk image: qcow2 if `path` ends in .qcow2, else raw.
pub fn make_disk(path: &Path, size_mb: u64) {
    if path.extension().is_some_and(|e| e == "qcow2") {
        let size = format!("{size_mb}M");
        if let Err(e) = run(Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(path)
            .arg(size))
        {
            panic!("make_disk {}: {e}", path.display());
        }
    } else {
        let file =
            fs::File::create(path).unwrap_or_else(|e| panic!("make_disk {}: {e}", path.display()));
        file.set_len(size_mb << 20)
            .unwrap_or_else(|e| panic!("make_disk {}: {e}", path.display()));
    }
}

// --- guest slots ---------------------------------------------------------------------------

/// `n` guest slots held until dropped: locks (flock) on `n` of the files
/// <tmp>/hamn-lab-slots/slot0..2, so the limit holds across test threads and across test
/// processes (two developers' test runs on one machine).  All `n` are taken at once, or
/// none is kept, so tests that each need guests side by side never hold half of what
/// another needs.
struct Slots(#[allow(dead_code)] Vec<fs::File>);

impl Slots {
    fn take(n: usize) -> Slots {
        assert!(
            n <= MAX_GUESTS,
            "{n} guests at once: the lab runs at most {MAX_GUESTS}"
        );
        let dir = std::env::temp_dir().join("hamn-lab-slots");
        let _ = fs::create_dir_all(&dir);
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            let held: Vec<fs::File> = (0..MAX_GUESTS)
                .filter_map(|i| try_lock(&dir.join(format!("slot{i}"))))
                .take(n)
                .collect();
            if held.len() == n {
                return Slots(held);
            }
            drop(held); // closing the files releases their locks
            if Instant::now() > deadline {
                panic!(
                    "no {n} free lab guest slots within 15 min: other tests or processes \
                     hold the locks in {}",
                    dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(
                200 + u64::from(std::process::id() % 100),
            ));
        }
    }
}

/// The file, exclusively locked, or None if someone else holds it.  Each open() is its
/// own open file description, so locks also exclude other threads of this process.
fn try_lock(path: &Path) -> Option<fs::File> {
    use std::os::fd::AsRawFd;
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()?;
    // SAFETY: flock on a descriptor we own.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    locked.then_some(file)
}

/// Boots one guest, waits for its result line and returns what it left.  Panics (naming
/// the guest, with the console's last lines) if it does not finish within its timeout.
pub fn run_guest(spec: &GuestSpec) -> GuestRun {
    let _slot = Slots::take(1);
    boot(spec)
}

/// Boots the guests side by side (at most 3) and returns their runs in the same order.
pub fn run_guests(specs: &[GuestSpec]) -> Vec<GuestRun> {
    let _slots = Slots::take(specs.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = specs
            .iter()
            .map(|spec| scope.spawn(move || boot(spec)))
            .collect();
        handles
            .into_iter()
            .zip(specs)
            .map(|(handle, spec)| match handle.join() {
                Ok(run) => run,
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    panic!("guest {} failed: {msg}", spec.name)
                }
            })
            .collect()
    })
}

static RUN_SEQ: AtomicU32 = AtomicU32::new(0);

/// A fresh directory for one boot: <lab>/runs/<name>-<pid>-<n>, kept for debugging
/// (console.log, qemu.log, qemu.cmdline, extra.cpio, out/).
fn run_dir(name: &str) -> PathBuf {
    let seq = RUN_SEQ.fetch_add(1, Ordering::SeqCst);
    let dir = lab_dir()
        .join("runs")
        .join(format!("{name}-{}-{seq}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("out"))
        .unwrap_or_else(|e| panic!("guest {name}: create {}: {e}", dir.display()));
    dir
}

fn boot(spec: &GuestSpec) -> GuestRun {
    RunningGuest::spawn(spec).finish()
}

/// A guest left running while the test goes on (a primary that a BMC will power off),
/// holding one guest slot until dropped.
pub struct Background {
    pub guest: RunningGuest,
    _slot: Slots,
}

/// Boots `spec` and returns at once; see `Background`.
pub fn spawn_guest(spec: &GuestSpec) -> Background {
    let slot = Slots::take(1);
    Background {
        guest: RunningGuest::spawn(spec),
        _slot: slot,
    }
}

/// Boots the guests side by side and returns at once, their slots taken all together: a
/// cluster whose nodes boot in turn could hold one slot while another test holds the
/// rest, each waiting for the other's second node.
pub fn spawn_guests(specs: &[GuestSpec]) -> Vec<Background> {
    let Slots(files) = Slots::take(specs.len());
    specs
        .iter()
        .zip(files)
        .map(|(spec, file)| Background {
            guest: RunningGuest::spawn(spec),
            _slot: Slots(vec![file]),
        })
        .collect()
}

/// A booted guest whose QEMU is killed by PID when this is dropped.  `run_guest` is
/// `spawn` + `finish`; long-lived guests (the LIO SAN guest) wait for their own lines.
pub struct RunningGuest {
    name: String,
    dir: PathBuf,
    initrd: PathBuf,
    timeout: Duration,
    started: Instant,
    qemu: Option<Killed>,
}

impl RunningGuest {
    /// Boots `spec` without waiting.  Takes no guest slot: callers account for it.
    fn spawn(spec: &GuestSpec) -> RunningGuest {
        if let Some(reason) = lab_missing() {
            panic!("guest {}: {reason}", spec.name);
        }
        let dir = run_dir(&spec.name);
        let initrd = dir.join("initrd");
        write_initrd(spec, &dir, &initrd);
        let args = qemu_args(spec, &dir, &initrd);
        let _ = fs::write(dir.join("qemu.cmdline"), shell_line(&args));
        let qemu_log = fs::File::create(dir.join("qemu.log")).expect("create qemu.log");
        let child = owned_command("qemu-system-x86_64")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(qemu_log.try_clone().expect("dup qemu.log"))
            .stderr(qemu_log)
            .spawn()
            .unwrap_or_else(|e| panic!("guest {}: spawn qemu-system-x86_64: {e}", spec.name));
        RunningGuest {
            name: spec.name.clone(),
            dir,
            initrd,
            timeout: spec.timeout,
            started: Instant::now(),
            qemu: Some(Killed { child }),
        }
    }

    pub fn console(&self) -> String {
        read_console(&self.dir)
    }

    /// The run's directory: console.log, qemu.cmdline, out/ (the guest's /out over 9p).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A shell script that boots this guest again, as powering the machine on does: the
    /// same kernel, initrd, LUN paths and local disks (so what the guest does is decided
    /// by what its disks hold), the console in `console-<tag>.log`. For a BMC's power-on.
    pub fn boot_again_script(&self, tag: &str) -> String {
        let cmdline = fs::read_to_string(self.dir.join("qemu.cmdline"))
            .unwrap_or_else(|e| panic!("guest {}: read qemu.cmdline: {e}", self.name));
        let console = format!("file:{}", self.dir.join("console.log").display());
        let again = format!(
            "file:{}",
            self.dir.join(format!("console-{tag}.log")).display()
        );
        assert!(cmdline.contains(&console), "qemu.cmdline without {console}");
        format!(
            "#!/bin/sh\nexec {} > '{}' 2>&1\n",
            cmdline.trim().replace(&console, &again),
            self.dir.join(format!("qemu-{tag}.log")).display()
        )
    }

    /// QEMU's PID while this handle owns it.
    pub fn qemu_pid(&self) -> Option<u32> {
        self.qemu.as_ref().map(|q| q.pid())
    }

    /// True once QEMU has exited (killed by a BMC, or powered off); reaps it.
    pub fn qemu_exited(&mut self) -> bool {
        self.qemu.as_mut().is_none_or(|q| q.exited().is_some())
    }

    /// Waits until `found` returns Some for the console text; panics naming the guest,
    /// with the console's last lines, on timeout or if QEMU dies first.
    fn wait_for<T>(&mut self, what: &str, found: impl Fn(&str) -> Option<T>) -> T {
        loop {
            let console = self.console();
            if let Some(value) = found(&console) {
                return value;
            }
            let qemu = self.qemu.as_mut().expect("QEMU handle");
            if let Some(exit) = qemu.exited() {
                let log = fs::read_to_string(self.dir.join("qemu.log")).unwrap_or_default();
                panic!(
                    "guest {}: QEMU (pid {}) exited ({exit}) before {what}\n\
                     qemu.log:\n{}\nlast console lines:\n{}",
                    self.name,
                    qemu.pid(),
                    tail(&log, 10),
                    tail(&console, 30)
                );
            }
            if self.started.elapsed() > self.timeout {
                panic!(
                    "guest {}: no {what} within {} s (QEMU pid {} killed; files in {})\n\
                     last console lines:\n{}",
                    self.name,
                    self.timeout.as_secs(),
                    qemu.pid(),
                    self.dir.display(),
                    tail(&console, 30)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for a console line containing `text`.
    pub fn wait_for_line(&mut self, text: &str) {
        self.wait_for(&format!("console line {text:?}"), |c| {
            c.contains(text).then_some(())
        });
    }

    /// Waits for the result line, lets the guest power off, and returns what it left.
    pub fn finish(mut self) -> GuestRun {
        let status = self.wait_for("result line", parse_result);
        let seconds = self.started.elapsed().as_secs_f64();
        if let Some(mut qemu) = self.qemu.take() {
            // The guest powers itself off after the result line; then it is killed.
            qemu.wait_for(Duration::from_secs(5));
        }
        if status == 0 {
            // Kept only for reruns of failures: with a debug hamn binary it is 50 MB.
            let _ = fs::remove_file(self.dir.join("extra.cpio"));
        }
        let console = self.console();
        let out_dir = self.dir.join("out");
        if console.contains(OUT_BEGIN) {
            unpack_console_out(&self.name, &console, &out_dir);
        }
        eprintln!(
            "lab: guest {} status {status} after {seconds:.1} s (boot to result; {})",
            self.name,
            self.dir.display()
        );
        GuestRun {
            name: self.name.clone(),
            status,
            console,
            out_dir,
            seconds,
        }
    }
}

impl Drop for RunningGuest {
    fn drop(&mut self) {
        drop(self.qemu.take()); // kills QEMU by PID if still running
        let _ = fs::remove_file(&self.initrd); // 45 MB each; qemu.cmdline says how to rebuild
    }
}

fn read_console(dir: &Path) -> String {
    fs::read(dir.join("console.log"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Waits until the console file `path` (a guest booted by `boot_again_script`) shows its
/// result line and returns its status and the console; panics with the last lines after
/// `timeout`.
pub fn wait_for_result_in(path: &Path, timeout: Duration) -> (i32, String) {
    let start = Instant::now();
    loop {
        let console = fs::read(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if let Some(status) = parse_result(&console) {
            return (status, console);
        }
        if start.elapsed() > timeout {
            panic!(
                "no result line in {} within {} s\nlast console lines:\n{}",
                path.display(),
                timeout.as_secs(),
                tail(&console, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The status in "HAMN-LAB-RESULT: host=<name> status=<n>".
fn parse_result(console: &str) -> Option<i32> {
    let line = console.lines().find_map(|l| l.split(RESULT_MARK).nth(1))?;
    let status = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("status="))?;
    status.trim().parse().ok()
}

/// The QEMU command line (without the program name).
fn qemu_args(spec: &GuestSpec, dir: &Path, initrd: &Path) -> Vec<String> {
    let lab = lab_dir();
    let mut a: Vec<String> = [
        "-accel",
        "tcg,tb-size=64", // no usable KVM; tb-size keeps RSS near 400 MB
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(["-smp".into(), spec.cpus.to_string()]);
    a.extend(["-m".into(), spec.memory_mb.to_string()]);
    a.extend([
        "-serial".into(),
        format!("file:{}", dir.join("console.log").display()),
    ]);
    a.extend(["-kernel".into(), lab.join("vmlinux").display().to_string()]);
    a.extend(["-initrd".into(), initrd.display().to_string()]);
    a.extend(["-append".into(), "console=ttyS0 panic=-1 quiet".into()]);
    a.extend([
        "-virtfs".into(),
        format!(
            "local,path={},mount_tag=out,security_model=none",
            dir.join("out").display()
        ),
    ]);
    a.extend(lun_args(spec));
    a.extend(disk_args(spec));
    a.extend(spec.qemu_args.iter().cloned());
    // A hardware RNG, as servers have (RDRAND, TPM): without it the guest kernel's random
    // generator is seeded only seconds after boot, and hamn's first BMC session waits.
    // Last, so that it takes no PCI slot the disks' controllers had (the moved-disks
    // manifests name bays by PCI path).
    a.extend(["-device".into(), "virtio-rng-pci".into()]);
    a
}

/// One virtio-scsi controller per path index (like one HBA per fabric), each LUN's path i
/// on controller i with the LUN's index as SCSI target id.
fn lun_args(spec: &GuestSpec) -> Vec<String> {
    let paths = spec.luns.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let mut a = Vec::new();
    for p in 0..paths {
        a.extend(["-device".into(), format!("virtio-scsi-pci,id=mp{p}")]);
    }
    for (j, (lun, n)) in spec.luns.iter().enumerate() {
        for p in 0..*n {
            let node = format!("l{j}p{p}");
            a.extend([
                "-blockdev".into(),
                format!(
                    "driver=iscsi,node-name={node},transport=tcp,portal={},target={},lun={},\
                     initiator-name=iqn.2026-11.hamn:{}-p{p},cache.direct=on",
                    lun.portal, lun.iqn, lun.lun, spec.name
                ),
                "-device".into(),
                format!("scsi-block,drive={node},bus=mp{p}.0,channel=0,scsi-id={j},lun=0"),
            ]);
        }
    }
    a
}

/// Local disks on their own controller, as scsi-hd (QEMU vendor: multipath ignores them).
fn disk_args(spec: &GuestSpec) -> Vec<String> {
    if spec.disks.is_empty() {
        return Vec::new();
    }
    let mut a = vec!["-device".into(), "virtio-scsi-pci,id=local".into()];
    for (k, disk) in spec.disks.iter().enumerate() {
        let format = if is_qcow2(&disk.image) {
            "qcow2"
        } else {
            "raw"
        };
        let mut dev = format!(
            "scsi-hd,drive=d{k},bus=local.0,channel=0,scsi-id={k},lun=0,serial={}",
            disk.serial
        );
        if let Some(wwn) = disk.wwn {
            dev.push_str(&format!(",wwn=0x{wwn:016x}"));
        }
        a.extend([
            "-blockdev".into(),
            format!(
                "driver={format},node-name=d{k},file.driver=file,file.filename={}",
                disk.image.display()
            ),
            "-device".into(),
            dev,
        ]);
    }
    a
}

fn is_qcow2(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic == *b"QFI\xfb"
}

/// `args` as one line to paste into a shell (for rerunning a guest by hand).
fn shell_line(args: &[String]) -> String {
    let quoted: Vec<String> = args
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    format!("qemu-system-x86_64 {}\n", quoted.join(" "))
}

// --- the per-guest archive -----------------------------------------------------------------

/// Base image + a per-guest cpio (hostname, scenario, files).  The kernel unpacks
/// concatenated archives in order, later files replacing earlier ones.
fn write_initrd(spec: &GuestSpec, dir: &Path, initrd: &Path) {
    let mut cpio = Cpio::default();
    cpio.file("etc/hostname", format!("{}\n", spec.name).as_bytes(), 0o644);
    cpio.file("scenario.sh", spec.script.as_bytes(), 0o755);
    for (guest, host) in &spec.files {
        let data = fs::read(host).unwrap_or_else(|e| {
            panic!(
                "guest {}: read {} for {guest}: {e}",
                spec.name,
                host.display()
            )
        });
        let mode = fs::metadata(host)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
            .unwrap_or(0o755);
        cpio.file(guest, &data, mode);
    }
    for (guest, data) in &spec.inline_files {
        cpio.file(guest, data, 0o755);
    }
    let archive = cpio.finish();
    let _ = fs::write(dir.join("extra.cpio"), &archive);
    let mut out = fs::File::create(initrd).expect("create initrd");
    let base = fs::read(lab_dir().join("initrd.base")).expect("read initrd.base");
    out.write_all(&base)
        .and_then(|_| out.write_all(&archive))
        .expect("write initrd");
}

/// A cpio "newc" archive writer: just enough for regular files and their directories.
#[derive(Default)]
struct Cpio {
    buf: Vec<u8>,
    dirs: BTreeSet<String>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let nlink = if mode & 0o040000 != 0 { 2 } else { 1 };
        let header = format!(
            "070701{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        self.buf.extend_from_slice(header.as_bytes());
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// Adds `path` (leading "/" optional) and, first, each parent directory: the kernel's
    /// unpacker does not create missing parents.
    fn file(&mut self, path: &str, data: &[u8], mode: u32) {
        let path = path.trim_start_matches('/');
        let mut parent = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, d)| d.to_vec())
            .unwrap_or_default()
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            if self.dirs.insert(parent.clone()) {
                let name = parent.clone();
                self.entry(&name, 0o040755, &[]);
            }
        }
        self.entry(path, 0o100000 | mode, data);
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.buf
    }
}

// --- /out through the console (when 9p is unavailable) --------------------------------------

/// guest-init prints /out as a base64 tar.gz between markers when it could not mount 9p.
fn unpack_console_out(name: &str, console: &str, out_dir: &Path) {
    let b64: String = console
        .split(OUT_BEGIN)
        .nth(1)
        .and_then(|rest| rest.split(OUT_END).next())
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '+' || *c == '/' || *c == '=')
        .collect();
    let tarball = out_dir.join("../out.tar.gz");
    fs::write(&tarball, base64_decode(&b64)).expect("write out.tar.gz");
    if let Err(e) = run(Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(out_dir))
    {
        panic!("guest {name}: /out from the console does not unpack: {e}");
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The LIO SAN guest: the in-kernel target, for what tgtd lacks (PREEMPT AND ABORT)
// ---------------------------------------------------------------------------------------

/// One LIO SAN guest at a time per process: it holds a guest slot while the test then
/// waits for more, and two such holders could otherwise wait on each other forever.
static LIO: Mutex<()> = Mutex::new(());

/// A third guest running the kernel's LIO iSCSI target, reached from the host (and so
/// from other guests' QEMU) at 127.0.0.1:<port> through QEMU user networking with
/// `restrict=on` (`hostfwd` to 10.0.2.15:3260).  LUNs are iblock over virtio-blk disks
/// backed by host files.  Dropping it kills the guest by PID.
pub struct LioSan {
    guest: RunningGuest,
    luns: Vec<Lun>,
    _slot: Slots,
    _lock: std::sync::MutexGuard<'static, ()>,
    _dir: tempfile::TempDir,
}

impl LioSan {
    /// Boots the SAN guest with `specs` as LUNs 0.. of one target and waits until it
    /// serves them.  Ok(None) after "SKIP" like `San::start`.
    ///
    /// LIO derives the wwid from the unit serial (NAA 6, company 001405, then the serial's
    /// first 25 hex digits), so each wwid must start "36001405" and the LUN's serial
    /// becomes the wwid's last 25 digits (the returned `Lun.spec.serial` says so).
    pub fn start(specs: &[LunSpec]) -> Result<Option<LioSan>, String> {
        if !require_lab() {
            return Ok(None);
        }
        let lock = LIO.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let port = free_port();
        let iqn = format!("iqn.2026-11.hamn.lio:{port}");
        let mut spec = GuestSpec::new("san", &lio_script(&iqn, specs));
        spec.with_file("/etc/lab-no-multipathd", b"");
        spec.timeout = Duration::from_secs(3600); // lives as long as the test
        spec.qemu_args.extend([
            "-netdev".into(),
            format!("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-10.0.2.15:3260"),
            "-device".into(),
            "virtio-net-pci,netdev=n0".into(),
        ]);
        let mut luns = Vec::new();
        for (i, lun_spec) in specs.iter().enumerate() {
            let serial = lio_serial(lun_spec)?;
            let backing = dir.path().join(format!("lio{i}.img"));
            make_disk(&backing, lun_spec.size_mb);
            spec.qemu_args.extend([
                "-blockdev".into(),
                format!(
                    "driver=raw,node-name=b{i},file.driver=file,file.filename={}",
                    backing.display()
                ),
                "-device".into(),
                format!("virtio-blk-pci,drive=b{i},serial=lio{i}"),
            ]);
            let spec = LunSpec {
                serial,
                ..lun_spec.clone()
            };
            let portal = format!("127.0.0.1:{port}");
            let iqn = iqn.clone();
            luns.push(Lun {
                portal,
                iqn,
                lun: i as u32,
                spec,
                backing,
            });
        }
        let slot = Slots::take(1);
        let mut guest = RunningGuest::spawn(&spec);
        guest.timeout = Duration::from_secs(120); // for booting; then it waits for nothing
        guest.wait_for_line("HAMN-LAB: lio ready");
        guest.timeout = Duration::from_secs(3600);
        let seconds = guest.started.elapsed().as_secs_f64();
        eprintln!(
            "lab: LIO SAN guest serving {} LUNs at 127.0.0.1:{port} after {seconds:.1} s",
            luns.len()
        );
        Ok(Some(LioSan {
            guest,
            luns,
            _slot: slot,
            _lock: lock,
            _dir: dir,
        }))
    }

    pub fn luns(&self) -> &[Lun] {
        &self.luns
    }

    /// The SAN guest's console so far (LIO's kernel messages are there).
    pub fn console(&self) -> String {
        self.guest.console()
    }
}

/// The unit serial that makes LIO report `spec.wwid`.
fn lio_serial(spec: &LunSpec) -> Result<String, String> {
    spec.scsi_id()
        .strip_prefix("6001405")
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "LIO LUN wwid {:?}: LIO's wwids start with 36001405",
                spec.wwid
            )
        })
}

/// The SAN guest's scenario: configfs by hand (no targetcli in the image), demo-mode TPG
/// (any initiator, no CHAP), then it idles until killed.
fn lio_script(iqn: &str, specs: &[LunSpec]) -> String {
    let mut luns = String::new();
    for (i, spec) in specs.iter().enumerate() {
        let serial = lio_serial(spec).unwrap_or_default();
        luns.push_str(&format!(
            "add_lun {i} lio{i} {serial} '{}' '{}'\n",
            spec.vendor.replace('\'', ""),
            spec.product.replace('\'', "")
        ));
    }
    format!(
        r#"set -e
# LIO keeps PR state under /etc/target/pr: REGISTER answers NOT READY without it.
mkdir -p /etc/target/pr
modprobe configfs; modprobe target_core_mod; modprobe target_core_iblock; modprobe iscsi_target_mod
grep -q " /sys/kernel/config " /proc/mounts || mount -t configfs configfs /sys/kernel/config
nic=$(ls /sys/class/net | grep -v '^lo$' | head -1)
ip link set "$nic" up
ip addr add 10.0.2.15/24 dev "$nic"
T=/sys/kernel/config/target
IQN={iqn}
TPG=$T/iscsi/$IQN/tpgt_1
mkdir -p $TPG
add_lun() {{ # index virtio-serial unit-serial vendor product
  dev=""
  for b in /sys/block/vd*; do [ "$(cat $b/serial)" = "$2" ] && dev=/dev/${{b##*/}}; done
  [ -n "$dev" ] || {{ echo "no virtio disk with serial $2"; exit 1; }}
  so=$T/core/iblock_$1/lun$1
  mkdir -p $so
  echo "udev_path=$dev" > $so/control
  echo 1 > $so/enable
  echo "$3" > $so/wwn/vpd_unit_serial
  [ ! -e $so/wwn/vendor_id ] || echo "$4" > $so/wwn/vendor_id
  [ ! -e $so/wwn/product_id ] || echo "$5" > $so/wwn/product_id
  mkdir -p $TPG/lun/lun_$1
  ln -s $so $TPG/lun/lun_$1/lio$1
}}
{luns}mkdir -p $TPG/np/10.0.2.15:3260
echo 1 > $TPG/attrib/generate_node_acls
echo 1 > $TPG/attrib/cache_dynamic_acls
echo 0 > $TPG/attrib/demo_mode_write_protect
echo 0 > $TPG/attrib/authentication
echo 1 > $TPG/enable
echo "HAMN-LAB: lio ready"
while :; do sleep 3600; done
"#
    )
}

// ---------------------------------------------------------------------------------------
// The NFS filer guest: the kernel's nfsd, for xCAT's option 5 (the xCAT data on NFS)
// ---------------------------------------------------------------------------------------

/// A third guest running the kernel NFS server (NFSv4 only, TCP), exporting one
/// directory, reached from the host at 127.0.0.1:<port> (`hostfwd` to 10.0.2.15:2049)
/// and so from every other guest's user network at 10.0.2.2:<port>. The management
/// nodes reach it through their own QEMU, which is what dies with them: a killed node's
/// connections end, a stopped one's stay open, as on a real network.
pub struct NfsFiler {
    guest: RunningGuest,
    port: u16,
    _slot: Slots,
}

impl NfsFiler {
    /// The export every client mounts.
    pub const EXPORT: &'static str = "/srv/xcat";

    /// Boots the filer and waits until it serves (its NFSv4 grace period over). Ok(None)
    /// after "SKIP" like `San::start`.
    pub fn start() -> Result<Option<NfsFiler>, String> {
        if !require_lab() {
            return Ok(None);
        }
        let port = free_port();
        let mut spec = GuestSpec::new("filer", &nfs_script(Self::EXPORT));
        spec.with_file("/etc/lab-no-multipathd", b"");
        spec.timeout = Duration::from_secs(3600);
        spec.qemu_args.extend([
            "-netdev".into(),
            format!("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-10.0.2.15:2049"),
            "-device".into(),
            "virtio-net-pci,netdev=n0".into(),
        ]);
        let slot = Slots::take(1);
        let mut guest = RunningGuest::spawn(&spec);
        guest.timeout = Duration::from_secs(120);
        guest.wait_for_line("HAMN-LAB: nfs ready");
        guest.timeout = Duration::from_secs(3600);
        eprintln!(
            "lab: NFS filer exporting {} at 127.0.0.1:{port} after {:.1} s",
            Self::EXPORT,
            guest.started.elapsed().as_secs_f64()
        );
        Ok(Some(NfsFiler {
            guest,
            port,
            _slot: slot,
        }))
    }

    /// What a management node's hamn.toml names as the device: `10.0.2.2:/srv/xcat`.
    pub fn source(&self) -> String {
        format!("10.0.2.2:{}", Self::EXPORT)
    }

    /// The host port the guests' mount options name (`port=`).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn console(&self) -> String {
        self.guest.console()
    }
}

/// The filer's scenario: a tmpfs exported read-write to anyone (the lab's user network
/// is private to each QEMU), no root squash (xCAT's data is root's), `insecure` because
/// QEMU's user network rewrites the clients' source ports. Lease and grace time are the
/// kernel's minimum so that the first mount does not wait 90 s.
fn nfs_script(export: &str) -> String {
    format!(
        r#"set -e
modprobe nfsd
nic=$(ls /sys/class/net | grep -v '^lo$' | head -1)
ip link set "$nic" up
ip addr add 10.0.2.15/24 dev "$nic"
mkdir -p {export} /var/lib/nfs/v4recovery
mount -t tmpfs -o size=64m,mode=755 xcat {export}
grep -q " /proc/fs/nfsd " /proc/mounts || mount -t nfsd nfsd /proc/fs/nfsd
printf '[nfsd]\nvers3=n\nudp=n\nthreads=4\nlease-time=10\ngrace-time=10\n' > /etc/nfs.conf
: > /var/lib/nfs/etab
: > /var/lib/nfs/rmtab
echo "{export} *(rw,sync,no_root_squash,insecure,no_subtree_check,fsid=1)" > /etc/exports
exportfs -ra
rpc.mountd
rpc.nfsd
cat /proc/fs/nfsd/versions
# The grace period: opens for writing wait until it ends.
sleep 11
echo "HAMN-LAB: nfs ready"
while :; do sleep 3600; done
"#
    )
}
