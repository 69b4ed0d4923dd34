//! A real OpenIPMI `ipmi_sim` BMC on 127.0.0.1, with a "server" that is a real
//! process, so tests can check what a fence actually did rather than what the
//! BMC claims.
//!
//! Layout of the per-instance temp dir:
//!   lan.conf, bmc.emu       ipmi_sim configuration (rewritten per start attempt)
//!   chassis_control.sh      the power model, see that file
//!   ipmi_sim.log            ipmi_sim's stdout/stderr (startup errors only;
//!                           after startup it logs to syslog)
//!   state/                  ipmi_sim persistence + server.pid + behaviour
//!   only_suite0.so          optional cipher suite restriction module
#![allow(dead_code)]

use std::fs;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

const CHASSIS_CONTROL: &str = include_str!("chassis_control.sh");

/// ipmi_sim hard-codes its cipher suite table (`valid_cipher_suites` in
/// libIPMIlanserv) and has no configuration to restrict it; the LAN parameter
/// "cipher suite privilege levels" is stored but its check is indexed by the
/// requested privilege, not by the suite.  The table is an exported data
/// symbol, though, so a `loadlib` module can truncate it to suite 0
/// (RAKP-none / no integrity / no confidentiality) before any session opens.
const ONLY_SUITE0_C: &str = r#"
struct suite { int auth, integ, conf; };
extern struct suite valid_cipher_suites[];
int ipmi_sim_module_print_version(void *sys, char *options) { (void)sys; (void)options; return 0; }
int ipmi_sim_module_init(void *sys, char *options) {
    (void)sys; (void)options;
    valid_cipher_suites[0].auth = 0;
    valid_cipher_suites[0].integ = 0;
    valid_cipher_suites[0].conf = 0;
    valid_cipher_suites[1].auth = -1;
    valid_cipher_suites[1].integ = -1;
    valid_cipher_suites[1].conf = -1;
    return 0;
}
"#;

/// How long the BMC gets to answer an RMCP presence ping after spawn.
/// Measured: it answers within a few ms; 5 s covers a loaded 2-core CI box.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Starts retried when the free port we picked was taken before ipmi_sim bound it.
const BIND_ATTEMPTS: usize = 5;

pub struct SimOptions {
    pub user: String,
    pub password: String,
    pub behaviour: ServerBehaviour,
    pub initially_on: bool,
    /// Offer only cipher suite 0 (no authentication: ipmi_sim then accepts
    /// any password).  Needs a C compiler (`cc`) at test time.
    pub only_cipher_suite_0: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            user: "admin".into(),
            password: "hamn-test-pw".into(),
            behaviour: ServerBehaviour::Normal,
            initially_on: true,
            only_cipher_suite_0: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerBehaviour {
    Normal,
    /// The BMC acknowledges power off (and reset) but the server keeps
    /// running and the power status stays on.
    IgnoresPowerOff,
    /// Power off kills the server, and then the BMC answers the Chassis Control with
    /// an error (completion code 0xFF: ipmi_sim's answer when chassis_control fails).
    CutsPowerThenErrors,
}

pub struct SimBmc {
    /// None once the BMC was killed (or before it first started).
    child: Option<Child>,
    dir: PathBuf,
    addr: SocketAddr,
    user: String,
    password: String,
    /// The suite ipmitool helpers use: 3 normally, 0 when that is all we offer.
    cipher_suite: u8,
}

impl SimBmc {
    /// Ok(None) (after printing "SKIP: <reason>" to stderr) when ipmi_sim is
    /// not installed and env CI is unset; panics if CI is set and it is missing.
    pub fn start(opts: SimOptions) -> Result<Option<SimBmc>, String> {
        if super::find_on_path("ipmi_sim").is_none() {
            super::skip_or_panic("ipmi_sim not installed (Debian package openipmi)");
            return Ok(None);
        }
        if opts.only_cipher_suite_0 && super::find_on_path("cc").is_none() {
            super::skip_or_panic(
                "cc not installed (needed to restrict ipmi_sim to cipher suite 0)",
            );
            return Ok(None);
        }
        for (what, s) in [("user", &opts.user), ("password", &opts.password)] {
            // ipmi_sim parses these as quoted config strings and IPMI 1.5
            // user records hold 16 bytes.
            if s.is_empty()
                || s.len() > 16
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
            {
                return Err(format!(
                    "SimOptions.{what} {s:?}: need 1-16 printable ASCII chars without quotes or backslashes"
                ));
            }
        }

        // From here on `bmc` owns the temp dir and any server process, so an
        // early return cleans up through Drop.
        let mut bmc = SimBmc {
            child: None,
            dir: make_temp_dir()?,
            addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
            user: opts.user,
            password: opts.password,
            cipher_suite: if opts.only_cipher_suite_0 { 0 } else { 3 },
        };
        let dir = bmc.dir.clone();
        let dir_str = dir.to_str().unwrap_or("");
        if dir_str.is_empty() || dir_str.contains(|c: char| c.is_whitespace() || c == '"') {
            // ipmi_sim runs chassis_control via sh -c without quoting.
            return Err(format!(
                "temp dir {dir:?} is unusable in ipmi_sim's config (whitespace or quotes)"
            ));
        }

        fs::create_dir(dir.join("state")).map_err(|e| format!("creating state dir: {e}"))?;
        write(&dir.join("chassis_control.sh"), CHASSIS_CONTROL)?;
        write(
            &dir.join("bmc.emu"),
            "mc_setbmc 0x20\n\
             mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\n\
             mc_enable 0x20\n",
        )?;
        bmc.set_behaviour(opts.behaviour);
        if opts.only_cipher_suite_0 {
            compile_only_suite0(&dir)?;
        }
        if opts.initially_on {
            // Same code path as a BMC power on, minus the BMC.
            let out = Command::new("/bin/sh")
                .arg(dir.join("chassis_control.sh"))
                .arg(dir.join("state"))
                .args(["set", "power", "1"])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("running chassis_control.sh: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "chassis_control.sh set power 1 failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }

        let mut last_err = String::new();
        for _ in 0..BIND_ATTEMPTS {
            // Racy by nature (the port is free only when we look), hence the
            // retry when ipmi_sim reports it could not bind.
            let port = free_udp_port()?;
            bmc.addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
            write(
                &dir.join("lan.conf"),
                &lan_conf(
                    &dir,
                    port,
                    &bmc.user,
                    &bmc.password,
                    opts.only_cipher_suite_0,
                ),
            )?;
            match bmc.spawn_and_wait_ready()? {
                Ok(()) => return Ok(Some(bmc)),
                Err(e) => last_err = e,
            }
        }
        Err(format!(
            "ipmi_sim did not start after {BIND_ATTEMPTS} attempts: {last_err}"
        ))
    }

    /// Outer Err: give up.  Inner Err: the port was taken, try another.
    fn spawn_and_wait_ready(&mut self) -> Result<Result<(), String>, String> {
        let log_path = self.dir.join("ipmi_sim.log");
        let log = fs::File::create(&log_path).map_err(|e| format!("creating {log_path:?}: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("dup log fd: {e}"))?;
        let child = Command::new("ipmi_sim")
            .arg("-c")
            .arg(self.dir.join("lan.conf"))
            .arg("-f")
            .arg(self.dir.join("bmc.emu"))
            .arg("-s")
            .arg(self.dir.join("state"))
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("spawning ipmi_sim: {e}"))?;
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("child was just set");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                if log.contains("Address already in use") {
                    return Ok(Err(format!("port {} taken", self.addr.port())));
                }
                return Err(format!(
                    "ipmi_sim exited with {status} during startup; its output:\n{log}"
                ));
            }
            if rmcp_ping(self.addr, Duration::from_millis(50)) {
                return Ok(Ok(()));
            }
            if Instant::now() > deadline {
                self.kill_bmc();
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!(
                    "ipmi_sim on {} did not answer an RMCP ping within {READY_TIMEOUT:?}; its output:\n{log}",
                    self.addr
                ));
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// PID of the ipmi_sim process, None after `kill_bmc`.
    pub fn bmc_pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The temp dir holding config, state and `ipmi_sim.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Changes how the BMC treats power off from now on (takes effect with the
    /// next request; the state file is read by every chassis_control call).
    pub fn set_behaviour(&self, behaviour: ServerBehaviour) {
        let text = match behaviour {
            ServerBehaviour::Normal => "normal\n",
            ServerBehaviour::IgnoresPowerOff => "ignore-power-off\n",
            ServerBehaviour::CutsPowerThenErrors => "power-off-then-error\n",
        };
        let path = self.dir.join("state").join("behaviour");
        write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    }

    /// What powering on starts from now on, instead of the stand-in server: `script`
    /// (for example a lab guest's `boot_again_script`), exec'd by the chassis control.
    pub fn on_power_on(&self, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join("state").join("power-on");
        write(&path, script).unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    }

    /// The simulated server is running.  A zombie counts as dead.
    /// Makes an already running process (a lab guest's QEMU) the server this BMC powers:
    /// power off then SIGKILLs it, and power status follows whether it lives.
    pub fn adopt_server(&self, pid: u32) {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_else(|e| panic!("adopt server {pid}: {e}"));
        let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
        let start = rest.split_whitespace().nth(19).expect("starttime field");
        let pidfile = self.dir.join("state").join("server.pid");
        fs::write(&pidfile, format!("{pid} {start}\n")).expect("write server.pid");
    }

    pub fn server_alive(&self) -> bool {
        self.server_pid().is_some()
    }

    /// PID of the running server process, None when it is not running.
    pub fn server_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.dir.join("state").join("server.pid")).ok()?;
        let mut it = text.split_whitespace();
        let pid: u32 = it.next()?.parse().ok()?;
        let start: u64 = it.next()?.parse().ok()?;
        let (state, now_start) = proc_state(pid)?;
        // Start time mismatch: the PID was reused by something else.
        (now_start == start && !matches!(state, 'Z' | 'X' | 'x')).then_some(pid)
    }

    /// SIGSTOP ipmi_sim: the BMC stays bound but answers nothing (a hung BMC).
    pub fn freeze(&self) {
        self.signal_bmc(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal_bmc(libc::SIGCONT);
    }

    fn signal_bmc(&self, sig: libc::c_int) {
        if let Some(child) = &self.child {
            // SAFETY: plain syscall; the child is unreaped, so the PID is ours.
            unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        }
    }

    /// Stops ipmi_sim (the "BMC not running" case).  The server keeps running,
    /// as a real server would when its BMC dies.
    pub fn kill_bmc(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL works on a stopped process too
            let _ = child.wait();
        }
    }

    /// Runs `ipmitool -I lanplus -C 3 -H 127.0.0.1 -p PORT -U user -E ARGS`
    /// (`-C 0` when only suite 0 is offered).  Options in `args` that precede
    /// the command (`-N 1 -R 1`, another `-C`) override the defaults.  The
    /// password goes through IPMI_PASSWORD, never argv.
    pub fn ipmitool(&self, args: &[&str]) -> Output {
        self.ipmitool_via(self.addr, args)
    }

    /// Like `ipmitool`, but sends to `addr` (e.g. a `LossyRelay` in front).
    pub fn ipmitool_via(&self, addr: SocketAddr, args: &[&str]) -> Output {
        Command::new("ipmitool")
            .args(["-I", "lanplus", "-C", &self.cipher_suite.to_string()])
            .args(["-H", &addr.ip().to_string(), "-p", &addr.port().to_string()])
            .args(["-U", &self.user, "-E"])
            .args(args)
            .env("IPMI_PASSWORD", &self.password)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("running ipmitool (is it installed? see support::require_tool): {e}")
            })
    }

    /// The BMC's own view via `chassis power status`; None if ipmitool failed.
    pub fn ipmitool_power_is_on(&self) -> Option<bool> {
        let out = self.ipmitool(&["-N", "1", "-R", "3", "chassis", "power", "status"]);
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return None;
        }
        if text.contains("Chassis Power is on") {
            Some(true)
        } else if text.contains("Chassis Power is off") {
            Some(false)
        } else {
            None
        }
    }

    /// Powers the server on through the BMC and waits until it runs.
    pub fn power_on(&self) {
        let out = self.ipmitool(&["-N", "1", "-R", "3", "chassis", "power", "on"]);
        assert!(
            out.status.success(),
            "ipmitool chassis power on failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.server_alive() {
            assert!(
                Instant::now() < deadline,
                "server not running 5 s after chassis power on"
            );
            sleep(Duration::from_millis(10));
        }
    }

    fn kill_server(&self) {
        if let Some(pid) = self.server_pid() {
            // SAFETY: plain syscall; server_pid checked the start time, so this
            // is still our server and not a reused PID.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.server_alive() && Instant::now() < deadline {
                sleep(Duration::from_millis(5));
            }
        }
    }
}

impl Drop for SimBmc {
    fn drop(&mut self) {
        // BMC first, so it cannot start a server behind our back.  A
        // chassis_control run already in flight only starts a server if it can
        // still record it in the state dir, which is removed last.
        self.kill_bmc();
        self.kill_server();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn lan_conf(dir: &Path, port: u16, user: &str, password: &str, only_suite0: bool) -> String {
    let d = dir.display();
    // The guid is required: without one ipmi_sim refuses RMCP+ (IPMI 2.0).
    // md5 is the only IPMI 1.5 auth type enabled for the user; lanplus is
    // unaffected by it.
    let mut conf = format!(
        "name \"hamn-sim\"\n\
         set_working_mc 0x20\n\
         startlan 1\n\
         \x20 addr 127.0.0.1 {port}\n\
         \x20 priv_limit admin\n\
         \x20 guid 68616d6e2d73696d2d67756964303031\n\
         endlan\n\
         user 2 true \"{user}\" \"{password}\" admin 10 md5\n\
         chassis_control \"/bin/sh {d}/chassis_control.sh {d}/state\"\n"
    );
    if only_suite0 {
        conf.push_str(&format!("loadlib \"{d}/only_suite0.so\" \"\"\n"));
    }
    conf
}

fn compile_only_suite0(dir: &Path) -> Result<(), String> {
    let src = dir.join("only_suite0.c");
    write(&src, ONLY_SUITE0_C)?;
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(dir.join("only_suite0.so"))
        .arg(&src)
        .output()
        .map_err(|e| format!("running cc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cc failed to build the suite-0 module: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("writing {path:?}: {e}"))
}

fn make_temp_dir() -> Result<PathBuf, String> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let base = std::env::temp_dir();
    for _ in 0..100 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("hamn-sim-{}-{n}-{nanos:x}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("creating {dir:?}: {e}")),
        }
    }
    Err(format!("could not create a unique temp dir under {base:?}"))
}

fn free_udp_port() -> Result<u16, String> {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("binding a UDP port: {e}"))?;
    let port = sock
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?
        .port();
    Ok(port)
}

/// (state letter, start time in clock ticks) from /proc/PID/stat.
fn proc_state(pid: u32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm (field 2) may contain spaces and ')', so parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?; // field 22 overall
    Some((state, start))
}

/// Sends an ASF presence ping (RMCP class 6) and waits for the pong.  Cheap
/// and session-less, so it works as a readiness probe without credentials.
fn rmcp_ping(addr: SocketAddr, timeout: Duration) -> bool {
    const PING: [u8; 12] = [
        0x06, 0x00, 0xff, 0x06, // RMCP v1, reserved, no ack, class ASF
        0x00, 0x00, 0x11, 0xbe, // IANA 4542 (ASF)
        0x80, 0x01, 0x00, 0x00, // presence ping, tag 1, reserved, no data
    ];
    let Ok(sock) = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)) else {
        return false;
    };
    if sock.set_read_timeout(Some(timeout)).is_err() || sock.send_to(&PING, addr).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) if from == addr && n >= 12 && buf[3] == 0x06 && buf[8] == 0x40 => {
                return true;
            }
            Ok(_) => continue,
            // ECONNREFUSED (ICMP port unreachable) shows up here too: not bound yet.
            Err(_) => {
                sleep(Duration::from_millis(10));
                return false;
            }
        }
    }
    false
}
