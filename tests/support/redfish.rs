//! A failed MN whose BMC speaks Redfish: sushy-tools' `sushy-emulator` (PyPI, its fake
//! driver) on 127.0.0.1 over HTTPS with a certificate from a test CA and HTTP Basic
//! users, and the standby's hamn.toml naming it peer "mn1". The emulator's power state
//! drives a real process (the "server", `sleep`): its external notifier reports each
//! change to a listener here, which kills the server once the emulator reads "Off", as
//! ipmi_sim's chassis control does for the IPMI tests. The fake driver applies a power
//! change 1-11 s after it was asked for, which a confirmation must wait out.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "hamn-redfish-pw-4Kc";
pub const UUID_1: &str = "3c2b7a0e-1b8e-4c52-9d7e-5f1c9a0b2d11";
pub const UUID_2: &str = "8e4f2d19-6a3b-4f0c-b7d2-1e9c5a7b3f22";

/// Where CI installs sushy-tools (scripts/setup), else PATH.
pub fn emulator() -> Option<PathBuf> {
    let venv = PathBuf::from("/opt/hamn-sushy/bin/sushy-emulator");
    if venv.is_file() {
        return Some(venv);
    }
    super::find_on_path("sushy-emulator")
}

/// The emulator's venv Python (with bcrypt), else the system's.
fn python() -> PathBuf {
    let venv = emulator().map(|e| e.with_file_name("python3"));
    venv.filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// True where sushy-emulator and openssl are there; otherwise SKIP (a failure in CI).
pub fn available() -> bool {
    if emulator().is_none() {
        super::skip_or_panic(
            "sushy-emulator not installed (scripts/setup installs it in /opt/hamn-sushy)",
        );
        return false;
    }
    super::require_tool("openssl")
}

pub struct Options {
    /// The fake systems: (name, UUID, serial number, initially on).
    pub systems: Vec<(&'static str, &'static str, &'static str, bool)>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            systems: vec![("mn1", UUID_1, "SN-MN1", true)],
        }
    }
}

pub struct Sushy {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The CA that signed the emulator's certificate, and one that did not.
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    /// SHA-256 of the emulator's certificate, "AB:CD:...".
    pub fingerprint: String,
    /// The servers, by system name: alive while the emulator's system is not "Off".
    servers: Servers,
    pub config: PathBuf,
}

/// A system's server: a process of this test (`sleep`), or one adopted (a lab guest's
/// QEMU), which powering the system off kills.
pub enum Server {
    Own(Child),
    Adopted(u32),
}

impl Server {
    fn kill(&mut self) {
        match self {
            Server::Own(c) => {
                let _ = c.kill();
                let _ = c.wait();
            }
            Server::Adopted(pid) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }

    fn alive(&mut self) -> bool {
        match self {
            Server::Own(c) => matches!(c.try_wait(), Ok(None)),
            Server::Adopted(pid) => std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.starts_with(['Z', 'X'])))
                .is_some_and(|dead| !dead),
        }
    }
}

type Servers = Arc<Mutex<Vec<(String, Server)>>>;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate for 127.0.0.1 (and 10.0.2.2, the host's loopback as a lab
/// guest reaches it through QEMU's user network) signed by it.
fn certificates(dir: &Path) {
    for ca in ["ca", "other-ca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=hamn test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ],
        );
    }
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "bmc.key",
            "-out",
            "bmc.csr",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,IP:10.0.2.2\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext.cnf");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "bmc.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "bmc.pem",
        ],
    );
}

fn fingerprint(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.trim()
        .rsplit('=')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Kills the server of a system once the emulator reports it "Off" (and no change
/// pending); the emulator PUTs the whole system record on every change.
fn listen(listener: TcpListener, servers: Servers) {
    for stream in listener.incoming().flatten() {
        let mut reader = BufReader::new(stream);
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        let _ = reader.read_exact(&mut body);
        let mut stream = reader.into_inner();
        let _ =
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
            continue;
        };
        let off = v["power_state"] == "Off" && v["pending_power"].is_null();
        if let (true, Some(name)) = (off, v["name"].as_str()) {
            let mut list = servers.lock().expect("servers");
            for (n, server) in list.iter_mut() {
                if n == name {
                    server.kill();
                }
            }
        }
    }
}

impl Sushy {
    pub fn start(opts: Options) -> Sushy {
        let dir = tempfile::tempdir().expect("tempdir");
        certificates(dir.path());
        let emulator = emulator().expect("sushy-emulator");
        let python = python();
        // bcrypt, the only digest sushy's Basic auth file accepts.
        let hash = Command::new(&python)
            .args([
                "-c",
                &format!(
                    "import bcrypt; print(bcrypt.hashpw(b'{PASSWORD}', bcrypt.gensalt(4)).decode())"
                ),
            ])
            .output()
            .expect("python3 with bcrypt");
        assert!(
            hash.status.success(),
            "bcrypt: {}",
            String::from_utf8_lossy(&hash.stderr)
        );
        let users = dir.path().join("users");
        std::fs::write(
            &users,
            format!("admin:{}\n", String::from_utf8_lossy(&hash.stdout).trim()),
        )
        .expect("users");
        let listener = TcpListener::bind("127.0.0.1:0").expect("notifier");
        let notify_port = listener.local_addr().expect("addr").port();
        let servers: Servers = Arc::new(Mutex::new(Vec::new()));
        let systems: Vec<String> = opts
            .systems
            .iter()
            .map(|(name, uuid, serial, on)| {
                if *on {
                    let child = Command::new("sleep")
                        .arg("3600")
                        .spawn()
                        .expect("server process");
                    servers
                        .lock()
                        .expect("servers")
                        .push((name.to_string(), Server::Own(child)));
                }
                format!(
                    "{{'uuid': '{uuid}', 'name': '{name}', 'power_state': '{}', \
                     'external_notifier': True, 'serial_number': '{serial}', \
                     'nics': []}}",
                    if *on { "On" } else { "Off" }
                )
            })
            .collect();
        let config = dir.path().join("sushy.conf");
        std::fs::write(
            &config,
            format!(
                "SUSHY_EMULATOR_FAKE_SYSTEMS = [{}]\n\
                 SUSHY_EMULATOR_AUTH_FILE = '{}'\n\
                 EXTERNAL_NOTIFICATION_URL = 'http://127.0.0.1:{notify_port}/'\n\
                 SUSHY_EMULATOR_STATE_DIR = '{}'\n",
                systems.join(", "),
                users.display(),
                dir.path().display()
            ),
        )
        .expect("sushy.conf");
        {
            let servers = servers.clone();
            std::thread::spawn(move || listen(listener, servers));
        }
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("sushy.log")).expect("log");
        let child = Command::new(&emulator)
            .arg("--config")
            .arg(&config)
            .args(["--fake", "-i", "127.0.0.1", "-p", &port.to_string()])
            .arg("--ssl-certificate")
            .arg(dir.path().join("bmc.pem"))
            .arg("--ssl-key")
            .arg(dir.path().join("bmc.key"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sushy-emulator");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sushy-emulator did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        let hamn_config = dir.path().join("hamn.toml");
        let s = Sushy {
            child,
            port,
            ca: dir.path().join("ca.pem"),
            other_ca: dir.path().join("other-ca.pem"),
            fingerprint: fingerprint(&dir.path().join("bmc.pem")),
            dir,
            servers,
            config: hamn_config,
        };
        s.write_password(PASSWORD);
        s.write_config(&format!("ca_file = \"{}\"", s.ca.display()));
        s
    }

    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("mn1.password")
    }

    pub fn write_password(&self, pw: &str) {
        let f = self.password_file();
        std::fs::write(&f, format!("{pw}\n")).expect("write password");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }

    /// (Re)write hamn.toml: peer mn1's Redfish BMC; `extra` lines go into its bmc table.
    pub fn write_config(&self, extra: &str) {
        let text = format!(
            "node = \"mn2\"\n\n[peers.mn1.bmc]\nprotocol = \"redfish\"\naddress = \"127.0.0.1\"\n\
             port = {}\nuser = \"admin\"\npassword_file = \"{}\"\nprofile = \"sushy-emulator\"\n{extra}\n",
            self.port,
            self.password_file().display()
        );
        std::fs::write(&self.config, text).expect("write hamn.toml");
    }

    /// `hamn --config <this hamn.toml> ARGS`
    pub fn hamn(&self, args: &[&str]) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::cargo_bin("hamn").expect("hamn binary");
        c.arg("--config").arg(&self.config).args(args);
        c.env_remove("HAMN_CONFIG").env_remove("HAMN_LOG");
        c
    }

    /// The server of system `name` still runs.
    pub fn server_alive(&self, name: &str) -> bool {
        let mut list = self.servers.lock().expect("servers");
        list.iter_mut()
            .filter(|(n, _)| n == name)
            .any(|(_, c)| c.alive())
    }

    /// From now on, system `name`'s server is process `pid` (a lab guest's QEMU): its
    /// placeholder process ends, and powering the system off kills `pid`.
    pub fn adopt_server(&self, name: &str, pid: u32) {
        let mut list = self.servers.lock().expect("servers");
        for (n, server) in list.iter_mut() {
            if n == name {
                server.kill();
                *server = Server::Adopted(pid);
            }
        }
    }

    /// What the emulator logged (its requests, one line each).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sushy.log")).unwrap_or_default()
    }
}

/// The thin proxy of tests/support/redfish_proxy.py in front of the emulator: a
/// SessionService, and fault modes (comma-separated; "sessions" for none; the others
/// are listed in the script's header).
pub struct Proxy {
    child: Child,
    pub port: u16,
    state: PathBuf,
}

impl Proxy {
    /// What the proxy saw: sessions created, deleted, still active; resets posted.
    pub fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(&self.state).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sushy {
    /// Starts the proxy and points hamn.toml at it (certificate from the same CA), with
    /// the emulator's profile pinned.
    pub fn proxy(&self, mode: &str) -> Proxy {
        self.proxy_with(mode, Some("sushy-emulator"))
    }

    /// As `proxy`, with the profile hamn chooses from the service root (none pinned).
    pub fn proxy_unpinned(&self, mode: &str) -> Proxy {
        self.proxy_with(mode, None)
    }

    fn proxy_with(&self, mode: &str, profile: Option<&str>) -> Proxy {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/redfish_proxy.py");
        let port = free_port();
        let state = self.dir.path().join(format!("proxy-{port}.json"));
        let log = std::fs::File::create(self.dir.path().join(format!("proxy-{port}.log")))
            .expect("proxy log");
        let child = Command::new(python())
            .arg(script)
            .arg(port.to_string())
            .arg(format!("https://127.0.0.1:{}", self.port))
            .arg(self.dir.path().join("bmc.pem"))
            .arg(self.dir.path().join("bmc.key"))
            .arg(&self.ca)
            .arg(&state)
            .arg(mode)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("redfish_proxy.py");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !state.is_file() {
            assert!(Instant::now() < deadline, "the proxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let text = format!(
            "node = \"mn2\"\n\n[peers.mn1.bmc]\nprotocol = \"redfish\"\naddress = \"127.0.0.1\"\n\
             port = {port}\nuser = \"admin\"\npassword_file = \"{}\"\n{}\
             ca_file = \"{}\"\n",
            self.password_file().display(),
            profile
                .map(|p| format!("profile = \"{p}\"\n"))
                .unwrap_or_default(),
            self.ca.display()
        );
        std::fs::write(&self.config, text).expect("write hamn.toml");
        Proxy { child, port, state }
    }

    /// Stops (SIGSTOP) or resumes (SIGCONT) the emulator: a frozen BMC.
    pub fn freeze(&self, frozen: bool) {
        let sig = if frozen {
            nix::sys::signal::Signal::SIGSTOP
        } else {
            nix::sys::signal::Signal::SIGCONT
        };
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig)
            .expect("signal sushy-emulator");
    }
}

impl Drop for Sushy {
    fn drop(&mut self) {
        self.freeze(false);
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(mut list) = self.servers.lock() {
            for (_, server) in list.iter_mut() {
                // An adopted guest belongs to the lab harness, which ends it.
                if let Server::Own(_) = server {
                    server.kill();
                }
            }
        }
    }
}
