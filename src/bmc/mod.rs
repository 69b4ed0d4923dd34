//! Power control of a peer through its BMC: IPMI v2.0 RMCP+ (`lanplus`) or Redfish over
//! HTTPS (`redfish`), behind one `PowerControl` trait, so that fencing has one set of
//! semantics whatever the BMC speaks.

pub mod chassis;
pub mod crypto;
pub mod lanplus;
pub mod packet;
pub mod redfish;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use tracing::{debug, info_span};

pub use chassis::{ChassisAction, ChassisStatus, PolicySupport, PowerState, RestorePolicy};
use chassis::{ChassisControl, GetChassisStatus, SetPowerRestorePolicy};
use crypto::CipherSuite;
use lanplus::{Backoff, LanError, Session, Target};

use crate::config::{ConfigError, Peer};
use crate::profiles::{BmcProfile, ProfileError, Profiles};

#[derive(Debug, thiserror::Error)]
pub enum BmcError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("node '{node}': {source}")]
    Profile { node: String, source: ProfileError },
    #[error(
        "node '{node}': cannot resolve BMC address '{address}': {detail}; check peers.{node}.bmc.address"
    )]
    Resolve {
        node: String,
        address: String,
        detail: String,
    },
    #[error("node '{node}': {source}")]
    Lan { node: String, source: LanError },
    #[error(
        "node '{node}': hardware profile '{profile}' lists no IPMI cipher suite (a profile \
         for Redfish services); set peers.{node}.bmc.cipher_suite or pin an IPMI profile"
    )]
    NoSuites { node: String, profile: String },
    #[error(
        "node '{node}': {bmc} did not report 'on' before the deadline after the power up; \
         check the node's console"
    )]
    NotOnInTime { node: String, bmc: String },
    #[error("node '{node}': {source}")]
    Redfish {
        node: String,
        source: Box<redfish::RedfishError>,
    },
}

/// What fencing needs from a BMC.
pub trait PowerControl {
    /// Get Chassis Status: the power state and the power restore policy.
    fn chassis_status(&mut self, deadline: Instant) -> Result<ChassisStatus, BmcError>;
    fn power_state(&mut self, deadline: Instant) -> Result<PowerState, BmcError> {
        self.chassis_status(deadline).map(|s| s.power)
    }
    fn chassis(&mut self, action: ChassisAction, deadline: Instant) -> Result<(), BmcError>;
    /// Set Power Restore Policy; the answer is which policies the chassis supports.
    fn set_restore_policy(
        &mut self,
        policy: RestorePolicy,
        deadline: Instant,
    ) -> Result<PolicySupport, BmcError>;
    /// "BMC 10.0.0.1:623 (dell-idrac, cipher suite 17)", for messages.
    fn describe(&self) -> String;
    /// The command an admin runs to set the power restore policy to "always off" by hand.
    fn always_off_command(&self) -> String {
        "ipmitool -I lanplus -H <BMC> -U <user> chassis policy always-off".into()
    }
}

/// An open RMCP+ session to a peer's BMC with the hardware profile chosen for it.
pub struct IpmiBmc {
    node: String,
    session: Session,
    profile: BmcProfile,
}

fn resolve(peer: &Peer) -> Result<SocketAddr, BmcError> {
    let err = |detail: String| BmcError::Resolve {
        node: peer.name.clone(),
        address: peer.bmc.address.clone(),
        detail,
    };
    (peer.bmc.address.as_str(), peer.bmc.port())
        .to_socket_addrs()
        .map_err(|e| err(e.to_string()))?
        .next()
        .ok_or_else(|| err("no address found".into()))
}

/// How long an attempt with a suite that is not the last choice may take before the next
/// suite is tried: a BMC that silently ignores an unsupported suite must not use up the
/// whole fencing deadline.
const SUITE_PROBE: Duration = Duration::from_secs(2);

impl IpmiBmc {
    /// Open a session (trying the configured or profiled cipher suites in order), then pick
    /// the hardware profile: pinned in hamn.toml, else by Get Device ID's manufacturer.
    pub fn connect(
        peer: &Peer,
        profiles: &Profiles,
        deadline: Instant,
        backoff: Backoff,
    ) -> Result<Self, BmcError> {
        let _span = info_span!("connect", node = %peer.name).entered();
        let node = peer.name.clone();
        let lan = |source| BmcError::Lan {
            node: node.clone(),
            source,
        };
        let prof_err = |source| BmcError::Profile {
            node: node.clone(),
            source,
        };
        let addr = resolve(peer)?;
        let password = peer.password()?;
        let pinned = match &peer.bmc.profile {
            Some(name) => Some(profiles.by_name(name).map_err(prof_err)?.clone()),
            None => None,
        };
        let suites: Vec<CipherSuite> = match (&peer.bmc.cipher_suite, &pinned) {
            (Some(s), _) => vec![s.0],
            (None, Some(p)) => p.cipher_suites.clone(),
            (None, None) => profiles
                .by_name(crate::profiles::GENERIC)
                .map_err(prof_err)?
                .cipher_suites
                .clone(),
        };
        if suites.is_empty() {
            return Err(BmcError::NoSuites {
                node: node.clone(),
                profile: peer.bmc.profile.clone().unwrap_or_default(),
            });
        }
        let mut session = None;
        let mut last_err = None;
        for (i, suite) in suites.iter().enumerate() {
            let last = i + 1 == suites.len();
            let attempt_deadline = if last {
                deadline
            } else {
                deadline.min(Instant::now() + SUITE_PROBE)
            };
            let target = Target {
                addr,
                user: peer.bmc.user.clone(),
                password: password.clone(),
                suite: *suite,
            };
            match Session::open(&target, attempt_deadline, backoff) {
                Ok(s) => {
                    session = Some(s);
                    break;
                }
                Err(e @ (LanError::OpenSessionRefused { .. } | LanError::Timeout { .. }))
                    if !last =>
                {
                    debug!(suite = suite.id(), error = %e, "cipher suite not usable, trying the next");
                    last_err = Some(e);
                }
                Err(e) => return Err(lan(e)),
            }
        }
        let Some(mut session) = session else {
            return Err(lan(last_err.unwrap_or(LanError::Random)));
        };
        let profile = match pinned {
            Some(p) => p,
            None => {
                let id = session.manufacturer_id(deadline).map_err(lan)?;
                let p = profiles.for_manufacturer(id).map_err(prof_err)?.clone();
                debug!(manufacturer_id = id, profile = %p.name, "hardware profile chosen");
                p
            }
        };
        Ok(IpmiBmc {
            node,
            session,
            profile,
        })
    }

    /// Get Device ID's manufacturer (IANA enterprise number).
    pub fn manufacturer_id(&mut self, deadline: Instant) -> Result<u32, BmcError> {
        self.session
            .manufacturer_id(deadline)
            .map_err(|e| self.lan(e))
    }

    pub fn profile(&self) -> &BmcProfile {
        &self.profile
    }

    pub fn suite(&self) -> CipherSuite {
        self.session.suite()
    }

    pub fn addr(&self) -> SocketAddr {
        self.session.bmc()
    }

    /// Close the session now (Drop would too; this makes the order explicit in logs).
    pub fn close(self) {
        self.session.close();
    }

    fn lan(&self, source: LanError) -> BmcError {
        BmcError::Lan {
            node: self.node.clone(),
            source,
        }
    }
}

impl PowerControl for IpmiBmc {
    fn chassis_status(&mut self, deadline: Instant) -> Result<ChassisStatus, BmcError> {
        self.session
            .execute(GetChassisStatus, "Get Chassis Status", deadline)
            .map_err(|e| self.lan(e))
    }

    fn set_restore_policy(
        &mut self,
        policy: RestorePolicy,
        deadline: Instant,
    ) -> Result<PolicySupport, BmcError> {
        self.session
            .execute(
                SetPowerRestorePolicy(Some(policy)),
                "Set Power Restore Policy",
                deadline,
            )
            .map_err(|e| self.lan(e))
    }

    fn chassis(&mut self, action: ChassisAction, deadline: Instant) -> Result<(), BmcError> {
        let what = match action {
            ChassisAction::PowerDown => "Chassis Control (power down)",
            ChassisAction::PowerUp => "Chassis Control (power up)",
        };
        self.session
            .execute(ChassisControl(action), what, deadline)
            .map_err(|e| self.lan(e))
    }

    fn describe(&self) -> String {
        format!(
            "BMC {} ({} profile, cipher suite {})",
            self.session.bmc(),
            self.profile.name,
            self.session.suite().id()
        )
    }
}

/// A connected BMC, whichever protocol hamn.toml names for the peer.
pub enum AnyBmc {
    Ipmi(IpmiBmc),
    Redfish(redfish::RedfishBmc),
}

impl AnyBmc {
    /// Connect as `peers.NODE.bmc.protocol` says; each protocol chooses the hardware
    /// profile from what the BMC says of itself, unless one is pinned.
    pub fn connect(
        peer: &Peer,
        profiles: &Profiles,
        deadline: Instant,
        backoff: Backoff,
    ) -> Result<AnyBmc, BmcError> {
        match peer.bmc.protocol {
            crate::config::BmcProtocol::Ipmi => {
                IpmiBmc::connect(peer, profiles, deadline, backoff).map(AnyBmc::Ipmi)
            }
            crate::config::BmcProtocol::Redfish => {
                redfish::RedfishBmc::connect(peer, profiles, deadline).map(AnyBmc::Redfish)
            }
        }
    }

    pub fn profile(&self) -> &BmcProfile {
        match self {
            AnyBmc::Ipmi(b) => b.profile(),
            AnyBmc::Redfish(b) => b.profile(),
        }
    }

    /// The IPMI cipher suite of the session (None for Redfish).
    pub fn suite(&self) -> Option<u8> {
        match self {
            AnyBmc::Ipmi(b) => Some(b.suite().id()),
            AnyBmc::Redfish(_) => None,
        }
    }

    /// Close the session now (Drop would too; this makes the order explicit in logs).
    pub fn close(self) {
        match self {
            AnyBmc::Ipmi(b) => b.close(),
            AnyBmc::Redfish(b) => drop(b),
        }
    }
}

impl PowerControl for AnyBmc {
    fn chassis_status(&mut self, deadline: Instant) -> Result<ChassisStatus, BmcError> {
        match self {
            AnyBmc::Ipmi(b) => b.chassis_status(deadline),
            AnyBmc::Redfish(b) => b.chassis_status(deadline),
        }
    }

    fn chassis(&mut self, action: ChassisAction, deadline: Instant) -> Result<(), BmcError> {
        match self {
            AnyBmc::Ipmi(b) => b.chassis(action, deadline),
            AnyBmc::Redfish(b) => b.chassis(action, deadline),
        }
    }

    fn set_restore_policy(
        &mut self,
        policy: RestorePolicy,
        deadline: Instant,
    ) -> Result<PolicySupport, BmcError> {
        match self {
            AnyBmc::Ipmi(b) => b.set_restore_policy(policy, deadline),
            AnyBmc::Redfish(b) => b.set_restore_policy(policy, deadline),
        }
    }

    fn describe(&self) -> String {
        match self {
            AnyBmc::Ipmi(b) => b.describe(),
            AnyBmc::Redfish(b) => b.describe(),
        }
    }

    fn always_off_command(&self) -> String {
        match self {
            AnyBmc::Ipmi(b) => b.always_off_command(),
            AnyBmc::Redfish(b) => b.always_off_command(),
        }
    }
}
