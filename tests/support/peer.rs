//! A failed MN for tests: an ipmi_sim BMC plus the standby's hamn.toml naming it peer
//! "mn1", with its password in a 0600 file.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::sim::{SimBmc, SimOptions};

pub const PASSWORD: &str = "hamn-test-pw-7Qx";

pub struct Peer {
    pub bmc: SimBmc,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

/// Start a simulated mn1; None (after printing why) where ipmi_sim is missing outside CI.
pub fn failed_primary(opts: SimOptions) -> Option<Peer> {
    let opts = SimOptions {
        password: PASSWORD.into(),
        ..opts
    };
    let bmc = SimBmc::start(opts).unwrap_or_else(|e| panic!("cannot start ipmi_sim: {e}"))?;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("hamn.toml");
    let peer = Peer { bmc, dir, config };
    peer.write_config(peer.bmc.addr(), "admin", "cipher_suite = 3");
    Some(peer)
}

pub fn with_defaults() -> Option<Peer> {
    failed_primary(SimOptions::default())
}

impl Peer {
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("mn1.password")
    }

    /// (Re)write hamn.toml for mn1 at `addr`; `extra` lines go into its bmc table.
    pub fn write_config(&self, addr: SocketAddr, user: &str, extra: &str) {
        self.write_password(PASSWORD, 0o600);
        let text = format!(
            "node = \"mn2\"\n\n[peers.mn1.bmc]\naddress = \"{}\"\nport = {}\nuser = \"{user}\"\npassword_file = \"{}\"\n{extra}\n",
            addr.ip(),
            addr.port(),
            self.password_file().display()
        );
        std::fs::write(&self.config, text).expect("write hamn.toml");
    }

    pub fn write_password(&self, pw: &str, mode: u32) {
        let f = self.password_file();
        std::fs::write(&f, format!("{pw}\n")).expect("write password");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// `hamn --config <this hamn.toml> ARGS`
    pub fn hamn(&self, args: &[&str]) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::cargo_bin("hamn").expect("hamn binary");
        c.arg("--config").arg(&self.config).args(args);
        c.env_remove("HAMN_CONFIG").env_remove("HAMN_LOG");
        c
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }
}
