//! hamn.toml: who this node is, which peers it may fence and how to reach their BMCs.
//!
//! Every error names the file and, where the TOML parser knows it, the line and key.
//! Passwords are never part of the file: it names a password file (mode 0600 or stricter,
//! owned by the user running hamn) or an environment variable.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::secret::Secret;

pub mod suite;
pub use suite::{CipherSuite, SuiteError};

pub const DEFAULT_PATH: &str = "/etc/hamn/hamn.toml";
pub const DEFAULT_BMC_PORT: u16 = 623;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read configuration {path}: {source}; create it or pass --config FILE (see hamn.toml(5))"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "configuration {path} sets nothing yet (the packaged example is all comments): \
         set node and the peers in it, see hamn.toml(5)"
    )]
    NothingSet { path: PathBuf },
    #[error("configuration {path}, line {line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("node '{node}' is not a peer in {path}; configured peers: {known}")]
    UnknownPeer {
        node: String,
        path: PathBuf,
        known: String,
    },
    #[error("cannot read the BMC password file {path} for node '{node}': {source}")]
    PasswordFile {
        node: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "refusing the BMC password file {path} for node '{node}': it is {problem}; \
         run: chown {user} {path} && chmod 600 {path}"
    )]
    PasswordFileUnsafe {
        node: String,
        path: PathBuf,
        problem: String,
        user: u32,
    },
    #[error(
        "refusing the BMC password file {path} for node '{node}': it is a symbolic link to \
         {target}, and hamn reads only a regular file that it owns with mode 0600 (through a \
         link, the file checked and the file someone can replace are not the same). Set \
         password_file to the file itself ({target}) after checking who may write it, or \
         replace the link with the file"
    )]
    PasswordFileSymlink {
        node: String,
        path: PathBuf,
        target: String,
    },
    #[error("the BMC password for node '{node}' is empty ({source_desc}); set it there")]
    EmptyPassword { node: String, source_desc: String },
    #[error(
        "environment variable {var} (password_env of node '{node}') is not set; export it or use password_file"
    )]
    PasswordEnvMissing { node: String, var: String },
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: String,
    #[serde(default)]
    storage: StorageConfig,
    #[serde(default)]
    disks: DisksConfig,
    #[serde(default)]
    takeover: TakeoverConfig,
    #[serde(default)]
    peers: BTreeMap<String, toml::Spanned<PeerConfig>>,
}

/// A SCSI persistent reservation key: 8 bytes, written "0x" and up to 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct KeySetting(pub u64);

impl TryFrom<String> for KeySetting {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let hex = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(&s);
        match u64::from_str_radix(hex, 16) {
            Ok(0) => Err("reservation key 0 means 'no key' in SCSI; choose another".into()),
            Ok(k) => Ok(KeySetting(k)),
            Err(_) => Err(format!(
                "'{s}' is not a reservation key: write 0x and up to 16 hex digits"
            )),
        }
    }
}

/// Persistent reservation types hamn may take (SPC-4 table 213), by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReservationType {
    WriteExclusive,
    ExclusiveAccess,
    /// The default: every registered path of the owner may write; a preempted (fenced)
    /// node's writes fail with RESERVATION CONFLICT.
    #[default]
    WriteExclusiveRegistrantsOnly,
    ExclusiveAccessRegistrantsOnly,
}

/// Shared storage: our reservation key and type, and which LUNs are shared.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Our key; by default derived from `node` (see `node_key`).
    pub key: Option<KeySetting>,
    #[serde(default)]
    pub reservation_type: ReservationType,
    /// WWIDs of the shared LUNs (any spelling); empty means every multipath map.
    #[serde(default)]
    pub shared: Vec<String>,
}

/// Moved disks (xCAT's recipe 1).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisksConfig {
    /// The disk manifest `hamn disks record` writes and `verify`/`takeover` read.
    pub manifest: Option<PathBuf>,
}

/// `hamn takeover` of shared SAN storage (xCAT's recipes 2 and 5): what to mount, the
/// service IP, the services. Steps run in the order written here.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TakeoverConfig {
    /// The node taken over from; default: the only peer.
    pub peer: Option<String>,
    /// Where each step's outcome is recorded, so a rerun continues.
    pub journal: Option<PathBuf>,
    /// DRBD resources made Primary after the fence, before the checks (xCAT's option 3).
    #[serde(default, rename = "drbd")]
    pub drbd: Vec<DrbdConfig>,
    #[serde(default, rename = "mount")]
    pub mounts: Vec<MountConfig>,
    pub service_ip: Option<ServiceIpConfig>,
    /// "xcat": xCAT's documented services in their order (see hamn.toml(5)); "none".
    pub preset: Option<String>,
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceConfig>,
}

/// One filesystem of the xCAT data, e.g. /install.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    /// UUID=..., LABEL=..., or a device path (/dev/mapper/xcat-install); for NFS the
    /// share, "server:/export".
    pub device: String,
    pub mountpoint: PathBuf,
    #[serde(rename = "type")]
    pub fs_type: String,
    /// check-only (default: refuse on any problem) or repair (e2fsck -p; never xfs_repair -L).
    #[serde(default)]
    pub check: Policy,
    /// NFS only: mount options for mount.nfs ("vers=4.2,hard,timeo=600").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
}

/// A DRBD resource holding xCAT data, mirrored between the two nodes.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DrbdConfig {
    /// The resource's name in drbd.conf.
    pub resource: String,
    /// Seconds to wait, after the peer is off, for DRBD to notice it is gone (its
    /// ping-int and ping-timeout decide); default 30.
    pub wait: Option<u64>,
}

/// The network filesystem types `[[takeover.mount]]` accepts. NFS has no reservation a
/// takeover could preempt and no client-side checker: only powering the peer off stops
/// its writes, and the server checks its own filesystems.
pub fn is_network_fs(fs_type: &str) -> bool {
    matches!(fs_type, "nfs" | "nfs4")
}

impl MountConfig {
    pub fn is_network(&self) -> bool {
        is_network_fs(&self.fs_type)
    }
}

/// What a filesystem check may do beyond replaying the journal or log. Here rather than
/// in `fs` because hamn.toml names it, and the configuration imports no adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Only replay and check; any problem found is a refusal.
    #[default]
    CheckOnly,
    /// Let the checker repair what it can repair unattended (`e2fsck -p`, `xfs_repair`).
    Repair,
}

/// The address xCAT's clients use, moved to the node that serves.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceIpConfig {
    /// Address with prefix length, e.g. "172.20.0.1/16".
    pub address: String,
    pub interface: String,
}

/// A service started after the storage is mounted and the IP is up.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: String,
    /// Program and arguments (no shell), e.g. ["systemctl", "start", "xcatd"].
    pub start: Vec<String>,
    /// Exits 0 once the service is ready; polled until `timeout`.
    #[serde(default)]
    pub ready: Vec<String>,
    /// For giveback.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Seconds to wait for `ready` (default 60).
    pub timeout: Option<u64>,
}

/// The default reservation key of a node: "hamn" in the high four bytes, so that admins
/// recognise hamn's keys in `sg_persist` output, and the first four bytes of SHA-256 of
/// the node name in the low four: stable across reboots and distinct per node name.
pub fn node_key(node: &str) -> u64 {
    use sha2::Digest;
    let h = sha2::Sha256::digest(node.as_bytes());
    let low = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    (0x6861_6d6e_u64 << 32) | u64::from(low)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub bmc: BmcConfig,
    /// The peer's reservation key; by default derived from its name like ours.
    pub pr_key: Option<KeySetting>,
    /// How `hamn takeover` fences this peer: "storage" (preempt its PR key on every
    /// shared LUN), "power" (BMC off, confirmed); default both, storage first.
    #[serde(default = "default_fencing")]
    pub fencing: Vec<FencingKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FencingKind {
    Storage,
    Power,
}

fn default_fencing() -> Vec<FencingKind> {
    vec![FencingKind::Storage, FencingKind::Power]
}

/// A cipher suite number from the file, refused at parse time unless it is 3 or 17, so
/// the error carries the line and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u8")]
pub struct SuiteSetting(pub CipherSuite);

impl TryFrom<u8> for SuiteSetting {
    type Error = SuiteError;
    fn try_from(v: u8) -> Result<Self, SuiteError> {
        CipherSuite::try_from(v).map(SuiteSetting)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BmcConfig {
    /// How hamn talks to the BMC: IPMI v2.0 RMCP+ (the default) or Redfish over HTTPS.
    #[serde(default)]
    pub protocol: BmcProtocol,
    /// Host name or IP address of the BMC's LAN interface.
    pub address: String,
    /// Default: 623 for IPMI, 443 for Redfish (see `port()`).
    pub port: Option<u16>,
    pub user: String,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// Pin one cipher suite instead of the profile's order (IPMI).
    pub cipher_suite: Option<SuiteSetting>,
    /// Pin a hardware profile by name instead of choosing by manufacturer ID.
    pub profile: Option<String>,
    /// Redfish: the CA certificate(s), PEM, that the BMC's certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// Redfish: the SHA-256 fingerprint of the BMC's own certificate (hex, colons
    /// optional), for a BMC with a self-signed certificate.
    pub fingerprint: Option<String>,
    /// Redfish: do not verify the BMC's certificate at all. Explicit, and logged at every
    /// connection: anyone on the path could then read the BMC password.
    #[serde(default)]
    pub insecure: bool,
    /// Redfish: which member of the Systems collection is this peer (its Id, UUID or
    /// serial number); needed when the service has more than one.
    pub system: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BmcProtocol {
    #[default]
    Ipmi,
    Redfish,
}

impl BmcProtocol {
    pub fn is_ipmi(&self) -> bool {
        *self == BmcProtocol::Ipmi
    }
}

/// Redfish's HTTPS port.
pub const DEFAULT_REDFISH_PORT: u16 = 443;

impl BmcConfig {
    /// The configured port, or the protocol's default.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.protocol {
            BmcProtocol::Ipmi => DEFAULT_BMC_PORT,
            BmcProtocol::Redfish => DEFAULT_REDFISH_PORT,
        })
    }

    /// An IPMI BMC at `address` with nothing else set (the fence agent's `ip=`).
    pub fn ipmi(address: &str) -> BmcConfig {
        BmcConfig {
            protocol: BmcProtocol::Ipmi,
            address: address.to_string(),
            port: None,
            user: String::new(),
            password_file: None,
            password_env: None,
            cipher_suite: None,
            profile: None,
            ca_file: None,
            fingerprint: None,
            insecure: false,
            system: None,
        }
    }

    /// What does not fit the protocol: Redfish keys on an IPMI BMC and the other way
    /// round, and a Redfish BMC whose certificate would be checked against nothing.
    fn misfit(&self) -> Option<String> {
        let redfish_keys = [
            ("ca_file", self.ca_file.is_some()),
            ("fingerprint", self.fingerprint.is_some()),
            ("insecure", self.insecure),
            ("system", self.system.is_some()),
        ];
        match self.protocol {
            BmcProtocol::Ipmi => redfish_keys.iter().find(|(_, set)| *set).map(|(k, _)| {
                format!("'{k}' is a Redfish setting: add protocol = \"redfish\" or remove it")
            }),
            BmcProtocol::Redfish => {
                if self.cipher_suite.is_some() {
                    return Some("'cipher_suite' is an IPMI setting: remove it".into());
                }
                let trust = [
                    self.ca_file.is_some(),
                    self.fingerprint.is_some(),
                    self.insecure,
                ];
                match trust.iter().filter(|t| **t).count() {
                    1 => None,
                    0 => Some(
                        "a Redfish BMC needs how to verify its certificate: ca_file (the CA \
                         that signed it), fingerprint (its SHA-256), or, knowingly, \
                         insecure = true"
                            .into(),
                    ),
                    _ => Some("give only one of ca_file, fingerprint and insecure".into()),
                }
            }
        }
    }
}

/// Where a BMC password comes from. There is deliberately no variant for argv.
#[derive(Debug, Clone)]
pub enum PasswordSource {
    File(PathBuf),
    Env(String),
    /// Already read, e.g. from the fence agent's standard input.
    Given(Secret),
}

#[derive(Debug, Clone)]
pub struct Peer {
    pub name: String,
    pub bmc: BmcConfig,
    pub password: PasswordSource,
    pub pr_key: Option<KeySetting>,
    pub fencing: Vec<FencingKind>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub node: String,
    pub storage: StorageConfig,
    pub disks: DisksConfig,
    pub takeover: TakeoverConfig,
    pub peers: BTreeMap<String, Peer>,
}

impl Config {
    /// This node's reservation key.
    pub fn own_key(&self) -> u64 {
        self.storage
            .key
            .map_or_else(|| node_key(&self.node), |k| k.0)
    }
}

impl Peer {
    /// The peer's reservation key, to preempt it.
    pub fn pr_key(&self) -> u64 {
        self.pr_key.map_or_else(|| node_key(&self.name), |k| k.0)
    }
}

/// What hamn.toml may say about storage without reservations. NFS mounts: options only
/// there, no repair (there is no checker), a share "server:/export". NFS and DRBD: every
/// peer fenced by power, since a peer fenced at the storage only would keep writing.
fn check_network_mounts(
    takeover: &TakeoverConfig,
    peers: &BTreeMap<String, Peer>,
) -> Result<(), String> {
    for m in &takeover.mounts {
        let mp = m.mountpoint.display();
        if !m.is_network() {
            if m.options.is_some() {
                return Err(format!(
                    "[[takeover.mount]] {mp}: 'options' applies to nfs and nfs4 mounts only \
                     (hamn mounts {} itself, read-write, after its check)",
                    m.fs_type
                ));
            }
            continue;
        }
        if m.check == Policy::Repair {
            return Err(format!(
                "[[takeover.mount]] {mp}: check = \"repair\" does not apply to {}: there is \
                 no client-side checker (the NFS server checks its own filesystems); remove \
                 the key",
                m.fs_type
            ));
        }
        let share_ok = m
            .device
            .split_once(":/")
            .is_some_and(|(host, _)| !host.is_empty() && !host.contains('/'));
        if !share_ok {
            return Err(format!(
                "[[takeover.mount]] {mp}: device '{}' is not an NFS share; write it as \
                 \"server:/export\"",
                m.device
            ));
        }
        needs_power(
            peers,
            &format!("[[takeover.mount]] {mp} is on NFS ({})", m.device),
        )?;
    }
    let mut seen = Vec::new();
    for d in &takeover.drbd {
        if d.resource.trim().is_empty() || seen.contains(&&d.resource) {
            return Err(format!(
                "[[takeover.drbd]]: resource '{}' is empty or named twice",
                d.resource
            ));
        }
        seen.push(&d.resource);
        needs_power(
            peers,
            &format!("[[takeover.drbd]] {} is a DRBD mirror", d.resource),
        )?;
    }
    Ok(())
}

/// `what` has no reservation that a takeover could preempt: only powering the peer off
/// stops its writes there, so every peer's `fencing` must include "power".
fn needs_power(peers: &BTreeMap<String, Peer>, what: &str) -> Result<(), String> {
    match peers
        .values()
        .find(|p| !p.fencing.contains(&FencingKind::Power))
    {
        None => Ok(()),
        Some(p) => Err(format!(
            "{what}, which has no reservation to preempt: only powering the peer off \
             stops its writes there. peers.{}.fencing leaves out \"power\", so a takeover \
             would use it while {} may still write to it. Set fencing = [\"storage\", \
             \"power\"] (or [\"power\"] without shared LUNs)",
            p.name, p.name
        )),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |t| t.matches('\n').count()) + 1
}

/// Whether a hamn.toml has any line besides comments and blank ones: the example the
/// packages install is all comments, and a node with only that is not configured.
pub fn sets_anything(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .any(|l| !l.is_empty() && !l.starts_with('#'))
}

impl Config {
    /// Path from --config, else $HAMN_CONFIG, else /etc/hamn/hamn.toml (clap resolves the
    /// first two into `explicit`).
    pub fn path(explicit: Option<&Path>) -> PathBuf {
        explicit.map_or_else(|| PathBuf::from(DEFAULT_PATH), Path::to_path_buf)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if !sets_anything(&text) {
            return Err(ConfigError::NothingSet {
                path: path.to_path_buf(),
            });
        }
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            let message = e.message().to_string();
            match line {
                Some(line) => ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line,
                    message,
                },
                None => ConfigError::Parse {
                    path: path.to_path_buf(),
                    message,
                },
            }
        })?;
        let invalid = |offset: usize, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line_of(text, offset),
            message,
        };
        if raw.node.trim().is_empty() {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: "key 'node' (this node's name) is empty".into(),
            });
        }
        let mut peers = BTreeMap::new();
        for (name, spanned) in raw.peers {
            let start = spanned.span().start;
            let peer = spanned.into_inner();
            if name == raw.node {
                return Err(invalid(
                    start,
                    format!(
                        "peer '{name}' is this node itself (key 'node'); a node must not fence itself"
                    ),
                ));
            }
            let password = match (&peer.bmc.password_file, &peer.bmc.password_env) {
                (Some(f), None) => PasswordSource::File(f.clone()),
                (None, Some(v)) => {
                    // hamn reads it; the programs it runs have no business with it.
                    crate::exec::scrub_env_var(v);
                    PasswordSource::Env(v.clone())
                }
                _ => {
                    return Err(invalid(
                        start,
                        format!(
                            "peers.{name}.bmc needs exactly one of password_file or password_env"
                        ),
                    ));
                }
            };
            if let Some(m) = peer.bmc.misfit() {
                return Err(invalid(start, format!("peers.{name}.bmc: {m}")));
            }
            if peer.bmc.protocol == BmcProtocol::Ipmi && peer.bmc.user.len() > 16 {
                return Err(invalid(
                    start,
                    format!("peers.{name}.bmc.user is longer than IPMI's 16 bytes"),
                ));
            }
            peers.insert(
                name.clone(),
                Peer {
                    name,
                    bmc: peer.bmc,
                    password,
                    pr_key: peer.pr_key,
                    fencing: peer.fencing,
                },
            );
        }
        check_network_mounts(&raw.takeover, &peers).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(Config {
            path: path.to_path_buf(),
            node: raw.node,
            storage: raw.storage,
            disks: raw.disks,
            takeover: raw.takeover,
            peers,
        })
    }

    /// The `[[takeover.mount]]` entries on NFS.
    pub fn network_mounts(&self) -> impl Iterator<Item = &MountConfig> {
        self.takeover.mounts.iter().filter(|m| m.is_network())
    }

    pub fn peer(&self, node: &str) -> Result<&Peer, ConfigError> {
        self.peers
            .get(node)
            .ok_or_else(|| ConfigError::UnknownPeer {
                node: node.to_string(),
                path: self.path.clone(),
                known: if self.peers.is_empty() {
                    "none".into()
                } else {
                    self.peers.keys().cloned().collect::<Vec<_>>().join(", ")
                },
            })
    }
}

impl Peer {
    /// Read the password from its source, refusing a file others could read.
    pub fn password(&self) -> Result<Secret, ConfigError> {
        let node = self.name.clone();
        let (secret, source_desc) = match &self.password {
            PasswordSource::Given(s) => (s.clone(), "given on standard input".to_string()),
            PasswordSource::Env(var) => match std::env::var_os(var) {
                Some(v) => (
                    Secret::new(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()).to_vec()),
                    format!("environment variable {var}"),
                ),
                None => {
                    return Err(ConfigError::PasswordEnvMissing {
                        node,
                        var: var.clone(),
                    });
                }
            },
            PasswordSource::File(path) => (
                read_password_file(&node, path)?,
                format!("file {}", path.display()),
            ),
        };
        if secret.is_empty() {
            return Err(ConfigError::EmptyPassword { node, source_desc });
        }
        Ok(secret)
    }
}

/// Read a password file after checking, on the open descriptor, that only its owner (the
/// user running hamn) can read it.
pub fn read_password_file(node: &str, path: &Path) -> Result<Secret, ConfigError> {
    let io = |source| ConfigError::PasswordFile {
        node: node.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let symlink = || ConfigError::PasswordFileSymlink {
        node: node.to_string(),
        path: path.to_path_buf(),
        target: std::fs::read_link(path).map_or_else(
            |e| format!("(unreadable: {e})"),
            |t| t.display().to_string(),
        ),
    };
    // A link is refused rather than followed: the mode check and the chmod hamn suggests
    // would be about the link's target. O_NOFOLLOW closes the race with the check.
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(symlink());
    }
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(symlink()),
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    let me = nix::unistd::geteuid().as_raw();
    let mode = meta.mode() & 0o7777;
    let problem = if meta.uid() != me {
        Some(format!(
            "owned by uid {} but hamn runs as uid {me}",
            meta.uid()
        ))
    } else if mode & 0o077 != 0 {
        Some(format!(
            "mode {mode:04o}, readable or writable by group or others"
        ))
    } else if !meta.is_file() {
        Some("not a regular file".to_string())
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(ConfigError::PasswordFileUnsafe {
            node: node.to_string(),
            path: path.to_path_buf(),
            problem,
            user: me,
        });
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    Ok(Secret::from_file_contents(bytes))
}

/// This machine's host name: the node name where hamn.toml gives none (moved disks).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .map(|h| h.to_string_lossy().into_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example the packages install as /etc/hamn/hamn.toml configures nothing, and
    /// every setting it shows, uncommented, is valid.
    #[test]
    fn the_packaged_example_sets_nothing_and_its_settings_parse() {
        let text = include_str!("../../packaging/hamn.toml");
        assert!(!sets_anything(text));
        let is_setting = |l: &str| {
            l.starts_with('[')
                || l.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                })
        };
        let settings: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| is_setting(l))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(settings.contains("[peers.mn1.bmc]"), "{settings}");
        let cfg = Config::parse(Path::new("packaging/hamn.toml"), &settings)
            .unwrap_or_else(|e| panic!("{e}\n{settings}"));
        assert_eq!(cfg.node, "mn2");
    }

    const GOOD: &str = r#"
node = "mn2"

[peers.mn1.bmc]
address = "127.0.0.1"
port = 6230
user = "admin"
password_file = "/etc/hamn/mn1.pw"
cipher_suite = 17
"#;

    /// GOOD with the xCAT data on NFS and `fencing` for mn1.
    fn on_nfs(fencing: &str, mount_extra: &str) -> String {
        GOOD.replace(
            "[peers.mn1.bmc]",
            &format!(
                "[[takeover.mount]]\ndevice = \"filer:/srv/xcat\"\nmountpoint = \"/install\"\n\
                 type = \"nfs4\"\n{mount_extra}\n[peers.mn1]\nfencing = {fencing}\n\n[peers.mn1.bmc]"
            ),
        )
    }

    #[test]
    fn xcat_data_on_nfs_needs_the_peer_powered_off() {
        let ok = Config::parse(
            Path::new("h.toml"),
            &on_nfs(r#"["storage", "power"]"#, "options = \"vers=4.2,hard\""),
        )
        .expect("parses");
        let m: Vec<_> = ok.network_mounts().collect();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].options.as_deref(), Some("vers=4.2,hard"));
        assert!(Config::parse(Path::new("h.toml"), &on_nfs(r#"["power"]"#, "")).is_ok());
        // Storage fencing alone would leave mn1 writing to the share.
        let e = Config::parse(Path::new("h.toml"), &on_nfs(r#"["storage"]"#, ""))
            .unwrap_err()
            .to_string();
        for want in ["/install is on NFS", "peers.mn1.fencing", "\"power\""] {
            assert!(e.contains(want), "{want:?} missing in: {e}");
        }
    }

    #[test]
    fn nfs_mounts_take_no_repair_and_a_share_is_server_colon_path() {
        let e = Config::parse(
            Path::new("h.toml"),
            &on_nfs(r#"["power"]"#, "check = \"repair\""),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no client-side checker"), "{e}");
        let text = on_nfs(r#"["power"]"#, "").replace("filer:/srv/xcat", "/dev/sdb1");
        let e = Config::parse(Path::new("h.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("server:/export"), "{e}");
        // Mount options are for NFS; local filesystems are mounted by hamn itself.
        let text = on_nfs(r#"["power"]"#, "options = \"noatime\"")
            .replace("filer:/srv/xcat", "LABEL=x")
            .replace("nfs4", "ext4");
        let e = Config::parse(Path::new("h.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'options' applies to nfs"), "{e}");
    }

    #[test]
    fn a_good_file_loads() {
        let c = Config::parse(Path::new("hamn.toml"), GOOD).expect("parses");
        let p = c.peer("mn1").expect("peer");
        assert_eq!(p.bmc.port(), 6230);
        assert_eq!(p.bmc.cipher_suite, Some(SuiteSetting(CipherSuite::Suite17)));
        assert!(matches!(p.password, PasswordSource::File(_)));
    }

    #[test]
    fn cipher_suite_zero_is_refused_with_line_and_reason() {
        let text = GOOD.replace("cipher_suite = 17", "cipher_suite = 0");
        let e = Config::parse(Path::new("/etc/hamn/hamn.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/hamn/hamn.toml, line 9"), "{e}");
        assert!(e.contains("cipher suite 0 has no authentication"), "{e}");
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = GOOD.replace("port = 6230", "prot = 6230");
        let e = Config::parse(Path::new("h.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("h.toml, line 6") && e.contains("prot"), "{e}");
    }

    #[test]
    fn password_on_the_command_line_has_no_place_and_two_sources_are_refused() {
        let text = GOOD.replace(
            "password_file = \"/etc/hamn/mn1.pw\"",
            "password_file = \"/x\"\npassword_env = \"X\"",
        );
        let e = Config::parse(Path::new("h.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("exactly one of password_file or password_env"),
            "{e}"
        );
        let text = GOOD.replace("user = \"admin\"", "user = \"admin\"\npassword = \"x\"");
        assert!(Config::parse(Path::new("h.toml"), &text).is_err());
    }

    #[test]
    fn reservation_keys_are_derived_per_node_or_configured() {
        let c = Config::parse(Path::new("h.toml"), GOOD).expect("parses");
        assert_eq!(c.own_key() >> 32, 0x6861_6d6e, "'hamn' prefix");
        assert_ne!(c.own_key(), c.peer("mn1").expect("peer").pr_key());
        assert_eq!(c.own_key(), node_key("mn2"), "stable");
        let text = format!(
            "{GOOD}\n[storage]\nkey = \"0xabc\"\nreservation_type = \"exclusive-access\"\n"
        )
        .replacen("node = \"mn2\"\n", "node = \"mn2\"\n", 1);
        let text = text.replace(
            "[peers.mn1.bmc]",
            "[peers.mn1]\npr_key = \"0x1234\"\n[peers.mn1.bmc]",
        );
        let c = Config::parse(Path::new("h.toml"), &text).expect("parses");
        assert_eq!(c.own_key(), 0xabc);
        assert_eq!(c.peer("mn1").expect("peer").pr_key(), 0x1234);
        assert_eq!(c.storage.reservation_type, ReservationType::ExclusiveAccess);
        let bad = text.replace("0xabc", "0x0");
        assert!(
            Config::parse(Path::new("h.toml"), &bad)
                .unwrap_err()
                .to_string()
                .contains("key 0")
        );
    }

    #[test]
    fn unknown_peer_lists_the_configured_ones() {
        let c = Config::parse(Path::new("h.toml"), GOOD).expect("parses");
        let e = c.peer("mn9").unwrap_err().to_string();
        assert!(e.contains("mn9") && e.contains("mn1"), "{e}");
    }

    #[test]
    fn a_password_file_that_is_a_symbolic_link_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("real.pw");
        std::fs::write(&target, "secret\n").expect("write");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let link = dir.path().join("mn1.pw");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let e = read_password_file("mn1", &link).unwrap_err();
        assert!(matches!(e, ConfigError::PasswordFileSymlink { .. }), "{e}");
        let e = e.to_string();
        assert!(
            e.contains(&link.display().to_string()),
            "names the link: {e}"
        );
        assert!(
            e.contains(&format!("symbolic link to {}", target.display())),
            "names the target: {e}"
        );
        assert!(!e.contains("chmod 600"), "no chmod through the link: {e}");
        assert!(!e.contains("secret"));
    }

    #[test]
    fn group_readable_password_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("pw");
        std::fs::write(&f, "secret\n").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let e = read_password_file("mn1", &f).unwrap_err().to_string();
        assert!(e.contains("mode 0640") && e.contains("chmod 600"), "{e}");
        assert!(!e.contains("secret"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(
            read_password_file("mn1", &f).expect("ok").expose(),
            b"secret"
        );
    }
}
