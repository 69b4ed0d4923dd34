//! Power control through a Redfish service (DMTF DSP0266) over HTTPS: the same
//! `PowerControl` seam as IPMI, so fencing keeps one set of semantics (off read back on
//! consecutive reads, "already off" is success, an error answer leads to reading the
//! power state before deciding).
//!
//! Safety rules of this adapter:
//! - the certificate is verified before any request (against `ca_file`, or the pinned
//!   `fingerprint`); not verifying is an explicit setting, logged at every connection;
//! - a session (SessionService, X-Auth-Token) is used where the service offers one, and
//!   deleted on every exit path (Drop); HTTP Basic only where it offers none;
//! - the system is the one the configuration names (Id, UUID or serial number), or the
//!   only member; several and none named is a refusal that lists them;
//! - the reset type is ForceOff, from the system's allowable values when it lists them;
//!   never a restart, never a graceful shutdown (a fence must not depend on the OS).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tracing::{debug, info, info_span, warn};

use super::chassis::{ChassisAction, ChassisStatus, PolicySupport, PowerState, RestorePolicy};
use super::{BmcError, PowerControl};
use crate::config::Peer;
use crate::profiles::{BmcProfile, Profiles, RedfishIdentity};
use crate::secret::Secret;

mod tls;

#[derive(Debug, thiserror::Error)]
pub enum RedfishError {
    #[error(
        "Redfish service {url}: {detail}; check that the BMC answers HTTPS on this \
         address and port (peers.NODE.bmc.address, port)"
    )]
    Transport { url: String, detail: String },
    #[error(
        "Redfish service {url}: the certificate was refused ({detail}); nothing was sent. \
         Check peers.NODE.bmc.ca_file or fingerprint against the BMC's certificate \
         (openssl s_client -connect ADDRESS:PORT)"
    )]
    Certificate { url: String, detail: String },
    #[error("Redfish service {url}: HTTP {status} to {what}{detail}")]
    Status {
        url: String,
        status: u16,
        what: String,
        detail: String,
    },
    #[error(
        "Redfish service {url}: the user name or password was refused (HTTP {status}); \
         check peers.NODE.bmc.user and the password source"
    )]
    Auth { url: String, status: u16 },
    #[error("Redfish service {url}: {what}: {detail}")]
    Answer {
        url: String,
        what: String,
        detail: String,
    },
    #[error(
        "Redfish service {url} has {count} systems and hamn.toml names none: {list}. \
         Set peers.NODE.bmc.system to the Id, UUID or serial number of the failed MN's \
         system; hamn never guesses which machine to power off"
    )]
    WhichSystem {
        url: String,
        count: usize,
        list: String,
    },
    #[error(
        "Redfish service {url}: no system matches system = \"{wanted}\" (its systems: \
         {list}); correct peers.NODE.bmc.system"
    )]
    NoSuchSystem {
        url: String,
        wanted: String,
        list: String,
    },
    #[error(
        "Redfish service {url}: the system {system} offers no ForceOff (its reset types: \
         {offered}); hamn fences only by cutting the power, never by a graceful shutdown or \
         a restart"
    )]
    NoForceOff {
        url: String,
        system: String,
        offered: String,
    },
    #[error(
        "Redfish service {url}: a new session was refused (HTTP {status}{detail}); the BMC \
         may have no free session{limit}: end stale sessions in its web interface or with \
         its tools, then fence again"
    )]
    SessionRefused {
        url: String,
        status: u16,
        detail: String,
        limit: String,
    },
    #[error(
        "Redfish service {url}: the reset task failed: {detail}; see the BMC's log for why \
         it did not power the system off"
    )]
    TaskFailed { url: String, detail: String },
    #[error("Redfish service {url}: no answer before the deadline ({what})")]
    Timeout { url: String, what: String },
    #[error("Redfish: {0}")]
    Tls(String),
}

/// How requests prove who we are.
enum Auth {
    Session { token: Secret, location: String },
    Basic(Secret),
}

/// An open connection to a peer's Redfish service, bound to the one system that is the
/// peer.
pub struct RedfishBmc {
    node: String,
    base: String,
    agent: ureq::Agent,
    /// None until logged in.
    auth: Option<Auth>,
    /// The system's resource path (/redfish/v1/Systems/1).
    system: String,
    /// Where ComputerSystem.Reset is posted.
    reset_target: String,
    vendor: String,
    profile: BmcProfile,
}

/// One request's time by default: a frozen service must not use up a whole fencing
/// deadline on one read when the loop could try again.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// One request's time: what is left of the deadline, at most `limit`.
fn per_request(deadline: Instant, limit: Duration) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then(|| left.min(limit))
}

impl RedfishBmc {
    /// Connect and choose the hardware profile: the pinned one, else the one whose
    /// `[redfish]` table matches the service root's Vendor/Product (or Oem key), else
    /// the generic one.
    pub fn connect(peer: &Peer, profiles: &Profiles, deadline: Instant) -> Result<Self, BmcError> {
        let _span = info_span!("redfish-connect", node = %peer.name).entered();
        let node = peer.name.clone();
        let err = |source| BmcError::Redfish {
            node: node.clone(),
            source: Box::new(source),
        };
        let base = format!("https://{}", host_port(&peer.bmc.address, peer.bmc.port()));
        let trust = tls::Trust::from_config(&peer.bmc).map_err(err)?;
        if matches!(trust, tls::Trust::Insecure) {
            warn!(node = %peer.name, url = %base,
                "insecure = true: the BMC's certificate is NOT verified; anyone on the path \
                 can read the BMC password");
        }
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(tls::client_config(&trust).map_err(err)?))
            .redirects(0)
            .build();
        let password = peer.password()?;
        let pinned = match &peer.bmc.profile {
            Some(name) => Some(
                profiles
                    .by_name(name)
                    .map_err(|source| BmcError::Profile {
                        node: node.clone(),
                        source,
                    })?
                    .clone(),
            ),
            None => None,
        };
        let mut bmc = RedfishBmc {
            node: node.clone(),
            base: base.clone(),
            agent,
            auth: None,
            system: String::new(),
            reset_target: String::new(),
            vendor: String::new(),
            profile: match &pinned {
                Some(p) => p.clone(),
                None => profiles
                    .by_name(crate::profiles::GENERIC)
                    .map_err(|source| BmcError::Profile {
                        node: node.clone(),
                        source,
                    })?
                    .clone(),
            },
        };
        // The service root needs no credentials: certificate first, then the password.
        let root = bmc.get("/redfish/v1", deadline).map_err(err)?;
        let mut identity = identity_of_root(&root);
        bmc.vendor = [identity.vendor.as_str(), identity.product.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let choose = |bmc: &mut RedfishBmc, identity: &RedfishIdentity| {
            bmc.profile = profiles
                .for_redfish(identity)
                .map_err(|source| BmcError::Profile {
                    node: node.clone(),
                    source,
                })?
                .clone();
            debug!(vendor = %identity.vendor, product = %identity.product,
                oem = ?identity.oem_keys, models = ?identity.manager_models,
                profile = %bmc.profile.name, "hardware profile chosen");
            Ok::<_, BmcError>(())
        };
        if pinned.is_none() {
            choose(&mut bmc, &identity)?;
        }
        let sessions = root["Links"]["Sessions"]["@odata.id"]
            .as_str()
            .map(str::to_string);
        bmc.auth = Some(match sessions {
            Some(path) => bmc
                .open_session(&path, &peer.bmc.user, &password, deadline)
                .map_err(err)?,
            None => {
                debug!("the service offers no SessionService: HTTP Basic");
                let mut raw = peer.bmc.user.as_bytes().to_vec();
                raw.push(b':');
                raw.extend_from_slice(password.expose());
                let encoded = base64::engine::general_purpose::STANDARD.encode(&raw);
                raw.iter_mut().for_each(|b| *b = 0);
                Auth::Basic(Secret::new(format!("Basic {encoded}").into_bytes()))
            }
        });
        if pinned.is_none()
            && bmc.profile.name == crate::profiles::GENERIC
            && profiles.match_manager_models()
        {
            identity.manager_models = bmc.manager_models(&root, deadline);
            if !identity.manager_models.is_empty() {
                choose(&mut bmc, &identity)?;
            }
        }
        let systems_path = root["Systems"]["@odata.id"]
            .as_str()
            .unwrap_or("/redfish/v1/Systems")
            .to_string();
        bmc.system = bmc
            .choose_system(&systems_path, peer.bmc.system.as_deref(), deadline)
            .map_err(err)?;
        let sys = bmc.get(&bmc.system.clone(), deadline).map_err(err)?;
        bmc.reset_target = reset_target(&sys, &bmc.system).map_err(|detail| {
            err(RedfishError::Answer {
                url: bmc.url(&bmc.system),
                what: "the system's reset action".into(),
                detail,
            })
        })?;
        let offered = bmc.allowable_reset_types(&sys, deadline);
        force_off_allowed(offered.as_deref()).map_err(|offered| {
            err(RedfishError::NoForceOff {
                url: base.clone(),
                system: bmc.system.clone(),
                offered,
            })
        })?;
        info!(system = %bmc.system, vendor = %bmc.vendor, "Redfish system chosen");
        Ok(bmc)
    }

    fn per_request(&self, deadline: Instant) -> Option<Duration> {
        let limit = self
            .profile
            .redfish
            .as_ref()
            .and_then(|r| r.request_timeout_s)
            .map_or(REQUEST_LIMIT, Duration::from_secs);
        per_request(deadline, limit)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn open_session(
        &self,
        path: &str,
        user: &str,
        password: &Secret,
        deadline: Instant,
    ) -> Result<Auth, RedfishError> {
        let url = self.url(path);
        let body = json!({
            "UserName": user,
            "Password": String::from_utf8_lossy(password.expose()),
        });
        let timeout = self
            .per_request(deadline)
            .ok_or_else(|| RedfishError::Timeout {
                url: url.clone(),
                what: "creating a session".into(),
            })?;
        // No credentials yet: authorized() adds only the headers every request carries.
        let resp = self
            .authorized(self.agent.post(&url))
            .timeout(timeout)
            .send_json(body)
            .map_err(|e| match self.error(e, &url, "create a session") {
                RedfishError::Status {
                    url,
                    status,
                    detail,
                    ..
                } => RedfishError::SessionRefused {
                    url,
                    status,
                    detail,
                    limit: self
                        .profile
                        .redfish
                        .as_ref()
                        .and_then(|r| r.max_sessions)
                        .map(|n| format!(" ({} allows {n} at once)", self.profile.name))
                        .unwrap_or_default(),
                },
                other => other,
            })?;
        let token = resp.header("X-Auth-Token").map(|t| t.as_bytes().to_vec());
        let location = resp.header("Location").map(str::to_string);
        match (token, location) {
            (Some(token), Some(location)) => {
                // Location may be absolute; DELETE needs the path on this service.
                let location = location
                    .strip_prefix(&self.base)
                    .unwrap_or(&location)
                    .to_string();
                debug!(session = %location, "Redfish session opened");
                Ok(Auth::Session {
                    token: Secret::new(token),
                    location,
                })
            }
            _ => Err(RedfishError::Answer {
                url,
                what: "creating a session".into(),
                detail: "no X-Auth-Token or Location in the answer".into(),
            }),
        }
    }

    /// The Model of each manager (at most four), for a service whose root names no maker
    /// hamn knows. Not being able to read them only leaves the generic profile.
    fn manager_models(&self, root: &Value, deadline: Instant) -> Vec<String> {
        let Some(path) = root["Managers"]["@odata.id"].as_str() else {
            return Vec::new();
        };
        let list = match self.get(path, deadline) {
            Ok(l) => l,
            Err(e) => {
                debug!(error = %e, "managers not readable; the generic profile stays");
                return Vec::new();
            }
        };
        members(&list)
            .iter()
            .take(4)
            .filter_map(|m| self.get(m, deadline).ok())
            .filter_map(|m| m["Model"].as_str().map(str::to_string))
            .collect()
    }

    /// The reset types the system allows: listed on the action, or (Supermicro,
    /// OpenBMC) in the ActionInfo resource it links to. None: not said, or not readable
    /// (then the service's answer to ForceOff decides, and the power state the fence).
    fn allowable_reset_types(&self, sys: &Value, deadline: Instant) -> Option<Vec<String>> {
        let action = &sys["Actions"]["#ComputerSystem.Reset"];
        if let Some(list) = action["ResetType@Redfish.AllowableValues"].as_array() {
            return Some(strings(list));
        }
        let info_path = action["@Redfish.ActionInfo"].as_str()?;
        match self.get(info_path, deadline) {
            Ok(info) => info["Parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["Name"].as_str() == Some("ResetType"))
                .and_then(|p| p["AllowableValues"].as_array())
                .map(|l| strings(l)),
            Err(e) => {
                warn!(action_info = %info_path, error = %e,
                    "the reset's ActionInfo could not be read; ForceOff will be asked for and the power state decides");
                None
            }
        }
    }

    fn choose_system(
        &self,
        collection: &str,
        wanted: Option<&str>,
        deadline: Instant,
    ) -> Result<String, RedfishError> {
        let list = self.get(collection, deadline)?;
        let members = members(&list);
        if members.is_empty() {
            return Err(RedfishError::Answer {
                url: self.url(collection),
                what: "the Systems collection".into(),
                detail: "no member".into(),
            });
        }
        if wanted.is_none() && members.len() == 1 {
            return Ok(members[0].clone());
        }
        let mut seen = Vec::new();
        let mut matching = Vec::new();
        for m in &members {
            let sys = self.get(m, deadline)?;
            let (id, uuid, serial) = identity(&sys);
            if let Some(w) = wanted
                && (w.trim_end_matches('/') == m.trim_end_matches('/')
                    || w == id
                    || w.eq_ignore_ascii_case(&uuid)
                    || (!serial.is_empty() && w == serial))
            {
                matching.push(m.clone());
            }
            seen.push(format!(
                "{m} (Id {id}{}{})",
                if uuid.is_empty() {
                    String::new()
                } else {
                    format!(", UUID {uuid}")
                },
                if serial.is_empty() {
                    String::new()
                } else {
                    format!(", serial {serial}")
                }
            ));
        }
        let list = seen.join("; ");
        match (wanted, matching.as_slice()) {
            (Some(_), [one]) => Ok(one.clone()),
            (Some(w), _) => Err(RedfishError::NoSuchSystem {
                url: self.base.clone(),
                wanted: w.to_string(),
                list,
            }),
            (None, _) => Err(RedfishError::WhichSystem {
                url: self.base.clone(),
                count: members.len(),
                list,
            }),
        }
    }

    /// With the credentials once logged in; the service root is read before, without.
    fn authorized(&self, req: ureq::Request) -> ureq::Request {
        // Some services answer 406 without these (fence-agents PR #265).
        let req = req
            .set("Accept", "application/json")
            .set("OData-Version", "4.0");
        match &self.auth {
            Some(Auth::Session { token, .. }) => {
                req.set("X-Auth-Token", &String::from_utf8_lossy(token.expose()))
            }
            Some(Auth::Basic(h)) => req.set("Authorization", &String::from_utf8_lossy(h.expose())),
            None => req,
        }
    }

    fn get(&self, path: &str, deadline: Instant) -> Result<Value, RedfishError> {
        let url = self.url(path);
        let timeout = self
            .per_request(deadline)
            .ok_or_else(|| RedfishError::Timeout {
                url: url.clone(),
                what: format!("GET {path}"),
            })?;
        let resp = self
            .authorized(self.agent.get(&url))
            .timeout(timeout)
            .call()
            .map_err(|e| self.error(e, &url, &format!("GET {path}")))?;
        resp.into_json().map_err(|e| RedfishError::Answer {
            url,
            what: format!("GET {path}"),
            detail: format!("not JSON: {e}"),
        })
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Value,
        deadline: Instant,
    ) -> Result<Answer, RedfishError> {
        let url = self.url(path);
        let what = format!("{method} {path}");
        let timeout = self
            .per_request(deadline)
            .ok_or_else(|| RedfishError::Timeout {
                url: url.clone(),
                what: what.clone(),
            })?;
        let resp = self
            .authorized(self.agent.request(method, &url))
            .timeout(timeout)
            .send_json(body)
            .map_err(|e| self.error(e, &url, &what))?;
        Ok(self.answer(resp))
    }

    /// Status, Location (as a path on this service) and body (Null when empty or not
    /// JSON: an action's answer needs no body).
    fn answer(&self, resp: ureq::Response) -> Answer {
        let status = resp.status();
        let location = resp
            .header("Location")
            .map(|l| l.strip_prefix(&self.base).unwrap_or(l).to_string());
        let body = resp.into_json::<Value>().unwrap_or(Value::Null);
        Answer {
            status,
            location,
            body,
        }
    }

    /// Follow the task an action was answered with (202 Accepted and a task monitor,
    /// DSP0266 "Asynchronous operations") until the service says it ended. Ok: completed,
    /// or the service gave no way to follow it; Err: it failed, or did not end in time.
    /// Either way the power state decides afterwards: a completed task proves nothing.
    fn follow_task(&self, accepted: &Answer, deadline: Instant) -> Result<(), RedfishError> {
        let _s = info_span!("task").entered();
        let Some(monitor) = task_monitor(accepted) else {
            debug!("202 Accepted without a task monitor: the power state will tell");
            return Ok(());
        };
        let url = self.url(&monitor);
        let mut polls = 0u32;
        loop {
            let timeout = self
                .per_request(deadline)
                .ok_or_else(|| RedfishError::Timeout {
                    url: url.clone(),
                    what: format!("the reset task ({polls} polls of its monitor)"),
                })?;
            let resp = self
                .authorized(self.agent.get(&url))
                .timeout(timeout)
                .call();
            polls += 1;
            let answer = match resp {
                Ok(r) => self.answer(r),
                // A monitor may be gone once the task ended and its result was read.
                Err(ureq::Error::Status(404 | 410, _)) => {
                    debug!(polls, "the task monitor is gone: the power state will tell");
                    return Ok(());
                }
                Err(e) => return Err(self.error(e, &url, "GET the reset task's monitor")),
            };
            match task_outcome(&answer) {
                TaskOutcome::Running => {}
                TaskOutcome::Done => {
                    debug!(polls, "the reset task completed");
                    return Ok(());
                }
                TaskOutcome::Failed(detail) => {
                    return Err(RedfishError::TaskFailed { url, detail });
                }
            }
            let pause = self.profile.poll_interval;
            if Instant::now() + pause >= deadline {
                return Err(RedfishError::Timeout {
                    url,
                    what: format!("the reset task ({polls} polls of its monitor)"),
                });
            }
            std::thread::sleep(pause);
        }
    }

    fn error(&self, e: ureq::Error, url: &str, what: &str) -> RedfishError {
        match e {
            ureq::Error::Status(status @ (401 | 403), _) => RedfishError::Auth {
                url: url.to_string(),
                status,
            },
            ureq::Error::Status(status, resp) => {
                // The service's own words, where it gives them (Redfish @Message.ExtendedInfo).
                let detail = resp
                    .into_json::<Value>()
                    .ok()
                    .and_then(|v| {
                        v["error"]["@Message.ExtendedInfo"][0]["Message"]
                            .as_str()
                            .or_else(|| v["error"]["message"].as_str())
                            .map(|m| format!(": {m}"))
                    })
                    .unwrap_or_default();
                RedfishError::Status {
                    url: url.to_string(),
                    status,
                    what: what.to_string(),
                    detail,
                }
            }
            ureq::Error::Transport(t) => {
                let detail = t.to_string();
                if tls::is_certificate_error(&t) {
                    RedfishError::Certificate {
                        url: url.to_string(),
                        detail,
                    }
                } else if detail.contains("timed out") || detail.contains("Timeout") {
                    RedfishError::Timeout {
                        url: url.to_string(),
                        what: what.to_string(),
                    }
                } else {
                    RedfishError::Transport {
                        url: url.to_string(),
                        detail,
                    }
                }
            }
        }
    }

    fn lift(&self, source: RedfishError) -> BmcError {
        BmcError::Redfish {
            node: self.node.clone(),
            source: Box::new(source),
        }
    }

    pub fn profile(&self) -> &BmcProfile {
        &self.profile
    }
}

impl Drop for RedfishBmc {
    /// The session is deleted on every exit path: BMCs allow only a few sessions, and a
    /// fence that leaked them would lock the next one out.
    fn drop(&mut self) {
        if let Some(Auth::Session { location, .. }) = &self.auth {
            let url = self.url(location);
            let deadline = Instant::now() + Duration::from_secs(5);
            let result = self
                .per_request(deadline)
                .map(|t| self.authorized(self.agent.delete(&url)).timeout(t).call());
            match result {
                Some(Ok(_)) => debug!(session = %location, "Redfish session deleted"),
                Some(Err(e)) => {
                    warn!(session = %location, error = %e, "the Redfish session could not be deleted; it expires on the BMC")
                }
                None => {}
            }
        }
    }
}

/// An action's answer.
struct Answer {
    status: u16,
    /// The Location header, as a path on this service.
    location: Option<String>,
    body: Value,
}

/// Where a 202 Accepted says the task can be followed: the Location header (the task
/// monitor), else the Task's TaskMonitor property, else the Task resource itself.
fn task_monitor(accepted: &Answer) -> Option<String> {
    accepted
        .location
        .clone()
        .or_else(|| accepted.body["TaskMonitor"].as_str().map(str::to_string))
        .or_else(|| {
            accepted.body["TaskState"]
                .is_string()
                .then(|| accepted.body["@odata.id"].as_str().map(str::to_string))
                .flatten()
        })
}

#[derive(Debug, PartialEq, Eq)]
enum TaskOutcome {
    Running,
    Done,
    Failed(String),
}

/// A task monitor's answer: 202 while the task runs; once it ended, the operation's own
/// answer, or the Task resource, whose TaskState (and TaskStatus) say how it ended.
fn task_outcome(answer: &Answer) -> TaskOutcome {
    let body = &answer.body;
    let state = body["TaskState"].as_str();
    let failed_state = matches!(state, Some("Exception" | "Killed" | "Cancelled"));
    let critical = body["TaskStatus"].as_str() == Some("Critical");
    if failed_state || critical {
        let messages: Vec<&str> = body["Messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["Message"].as_str())
            .collect();
        return TaskOutcome::Failed(format!(
            "TaskState {}{}",
            state.unwrap_or("?"),
            if messages.is_empty() {
                String::new()
            } else {
                format!(" ({})", messages.join("; "))
            }
        ));
    }
    match (answer.status, state) {
        (202, _) => TaskOutcome::Running,
        (_, Some("Completed") | None) => TaskOutcome::Done,
        // A 200 with a task still running (some services answer so): keep following.
        (_, Some(_)) => TaskOutcome::Running,
    }
}

/// Who made the service, as its root says: Vendor and Product (ServiceRoot v1.5.0 and
/// later), and the keys of its Oem object (older firmware names itself only there).
fn identity_of_root(root: &Value) -> RedfishIdentity {
    RedfishIdentity {
        vendor: root["Vendor"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string(),
        product: root["Product"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string(),
        oem_keys: root["Oem"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default(),
        manager_models: Vec::new(),
    }
}

/// The member paths of a Redfish collection.
fn members(list: &Value) -> Vec<String> {
    list["Members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["@odata.id"].as_str().map(str::to_string))
        .collect()
}

/// A system's Id, UUID and serial number ("?" and empty where it gives none).
fn identity(sys: &Value) -> (String, String, String) {
    let text = |k: &str, missing: &str| sys[k].as_str().unwrap_or(missing).to_string();
    (text("Id", "?"), text("UUID", ""), text("SerialNumber", ""))
}

/// "10.0.0.1:443", with brackets for an IPv6 address.
fn host_port(address: &str, port: u16) -> String {
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// Where the system's ComputerSystem.Reset action is posted.
fn reset_target(sys: &Value, system: &str) -> Result<String, String> {
    match sys["Actions"]["#ComputerSystem.Reset"]["target"].as_str() {
        Some(t) => Ok(t.to_string()),
        None if sys["Actions"].is_object() => {
            Err("the system lists no #ComputerSystem.Reset action".into())
        }
        None => Ok(format!("{system}/Actions/ComputerSystem.Reset")),
    }
}

fn strings(list: &[Value]) -> Vec<String> {
    list.iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// Ok when ForceOff may be asked for: among the allowable reset types, or none listed
/// (then the service's answer to the reset decides). Err: what it offers.
fn force_off_allowed(offered: Option<&[String]>) -> Result<(), String> {
    match offered {
        None => Ok(()),
        Some(values) if values.iter().any(|v| v == "ForceOff") => Ok(()),
        Some(values) => Err(values.join(", ")),
    }
}

/// Redfish PowerState: only "Off" is off. On, PoweringOn, PoweringOff and Paused all
/// mean the machine may still run; anything else is not an answer.
fn power_state(sys: &Value) -> Result<PowerState, String> {
    match sys["PowerState"].as_str() {
        Some("Off") => Ok(PowerState::Off),
        Some("On" | "PoweringOn" | "PoweringOff" | "Paused") => Ok(PowerState::On),
        Some(other) => Err(format!(
            "PowerState '{other}' is not a power state hamn knows"
        )),
        None => Err("the system reports no PowerState".into()),
    }
}

fn restore_policy(sys: &Value) -> RestorePolicy {
    match sys["PowerRestorePolicy"].as_str() {
        Some("AlwaysOff") => RestorePolicy::AlwaysOff,
        Some("AlwaysOn") => RestorePolicy::AlwaysOn,
        Some("LastState") => RestorePolicy::Previous,
        _ => RestorePolicy::Unknown,
    }
}

impl PowerControl for RedfishBmc {
    fn chassis_status(&mut self, deadline: Instant) -> Result<ChassisStatus, BmcError> {
        let path = self.system.clone();
        let sys = self.get(&path, deadline).map_err(|e| self.lift(e))?;
        let power = power_state(&sys).map_err(|detail| {
            self.lift(RedfishError::Answer {
                url: self.url(&path),
                what: "reading the power state".into(),
                detail,
            })
        })?;
        Ok(ChassisStatus {
            power,
            restore_policy: restore_policy(&sys),
        })
    }

    fn chassis(&mut self, action: ChassisAction, deadline: Instant) -> Result<(), BmcError> {
        let reset_type = match action {
            ChassisAction::PowerDown => "ForceOff",
            ChassisAction::PowerUp => "On",
        };
        let target = self.reset_target.clone();
        let answer = self
            .send(
                "POST",
                &target,
                json!({ "ResetType": reset_type }),
                deadline,
            )
            .map_err(|e| self.lift(e))?;
        debug!(
            status = answer.status,
            reset_type, "ComputerSystem.Reset accepted"
        );
        if answer.status == 202 {
            self.follow_task(&answer, deadline)
                .map_err(|e| self.lift(e))?;
        }
        Ok(())
    }

    fn set_restore_policy(
        &mut self,
        policy: RestorePolicy,
        deadline: Instant,
    ) -> Result<PolicySupport, BmcError> {
        let value = match policy {
            RestorePolicy::AlwaysOff => "AlwaysOff",
            RestorePolicy::AlwaysOn => "AlwaysOn",
            RestorePolicy::Previous | RestorePolicy::Unknown => "LastState",
        };
        let path = self.system.clone();
        self.send(
            "PATCH",
            &path,
            json!({ "PowerRestorePolicy": value }),
            deadline,
        )
        .map_err(|e| self.lift(e))?;
        Ok(PolicySupport {
            always_off: policy == RestorePolicy::AlwaysOff,
            previous: policy == RestorePolicy::Previous,
            always_on: policy == RestorePolicy::AlwaysOn,
        })
    }

    fn always_off_command(&self) -> String {
        format!(
            "curl --cacert <CA> -u <user> -X PATCH -H 'Content-Type: application/json' -d \
             '{{\"PowerRestorePolicy\": \"AlwaysOff\"}}' {}",
            self.url(&self.system)
        )
    }

    fn describe(&self) -> String {
        format!(
            "Redfish {}{} ({}{} profile)",
            self.base,
            self.system,
            if self.vendor.is_empty() {
                String::new()
            } else {
                format!("{}, ", self.vendor)
            },
            self.profile.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_off_is_off_and_an_unknown_state_is_no_answer() {
        assert_eq!(
            power_state(&json!({"PowerState": "Off"})),
            Ok(PowerState::Off)
        );
        for s in ["On", "PoweringOn", "PoweringOff", "Paused"] {
            assert_eq!(
                power_state(&json!({"PowerState": s})),
                Ok(PowerState::On),
                "{s}"
            );
        }
        assert!(power_state(&json!({"PowerState": "Unknown"})).is_err());
        assert!(power_state(&json!({})).is_err());
    }

    #[test]
    fn force_off_must_be_among_the_allowable_reset_types_when_they_are_listed() {
        let listed = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(force_off_allowed(Some(&listed(&["On", "ForceOff", "GracefulShutdown"]))).is_ok());
        assert_eq!(
            force_off_allowed(Some(&listed(&["On", "GracefulShutdown", "ForceRestart"]))),
            Err("On, GracefulShutdown, ForceRestart".into())
        );
        assert!(force_off_allowed(None).is_ok());
    }

    #[test]
    fn the_reset_target_is_the_one_the_system_names() {
        let sys = json!({"Actions": {"#ComputerSystem.Reset": {"target": "/x/Reset"}}});
        assert_eq!(
            reset_target(&sys, "/redfish/v1/Systems/1"),
            Ok("/x/Reset".into())
        );
        assert!(reset_target(&json!({"Actions": {}}), "/s").is_err());
    }

    /// Any JSON at all, a few levels deep, with the keys hamn reads among the others.
    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let key = prop_oneof![
            Just("PowerState".to_string()),
            Just("PowerRestorePolicy".to_string()),
            Just("Actions".to_string()),
            Just("#ComputerSystem.Reset".to_string()),
            Just("target".to_string()),
            Just("ResetType@Redfish.AllowableValues".to_string()),
            Just("Members".to_string()),
            Just("@odata.id".to_string()),
            Just("Id".to_string()),
            Just("UUID".to_string()),
            "[a-zA-Z@.#]{0,12}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            prop_oneof![
                Just("Off".to_string()),
                Just("ForceOff".to_string()),
                ".{0,16}"
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(key.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever a service answers, reading it never panics: it is a state, a
        /// refusal or an error.
        #[test]
        fn no_answer_from_a_service_panics_the_reading(v in any_json()) {
            let _ = power_state(&v);
            let _ = restore_policy(&v);
            if let Some(list) = v["ResetType@Redfish.AllowableValues"].as_array() {
                let _ = force_off_allowed(Some(&strings(list)));
            }
            let _ = reset_target(&v, "/redfish/v1/Systems/1");
            let _ = members(&v);
            let _ = identity(&v);
            let _ = identity_of_root(&v);
            for status in [200, 202, 204] {
                let a = Answer { status, location: None, body: v.clone() };
                let _ = task_monitor(&a);
                let _ = task_outcome(&a);
            }
        }

        /// Only the string "Off" is ever read as off.
        #[test]
        fn nothing_but_off_reads_as_off(v in any_json()) {
            if power_state(&v) == Ok(PowerState::Off) {
                proptest::prop_assert_eq!(v["PowerState"].as_str(), Some("Off"));
            }
        }
    }

    #[test]
    fn a_task_is_running_until_its_monitor_stops_answering_202_and_failed_when_it_says_so() {
        let at = |status, body| Answer {
            status,
            location: None,
            body,
        };
        assert_eq!(
            task_outcome(&at(202, json!({"TaskState": "Running"}))),
            TaskOutcome::Running
        );
        assert_eq!(task_outcome(&at(202, Value::Null)), TaskOutcome::Running);
        assert_eq!(task_outcome(&at(204, Value::Null)), TaskOutcome::Done);
        assert_eq!(
            task_outcome(&at(
                200,
                json!({"TaskState": "Completed", "TaskStatus": "OK"})
            )),
            TaskOutcome::Done
        );
        assert_eq!(
            task_outcome(&at(200, json!({"TaskState": "Running"}))),
            TaskOutcome::Running
        );
        assert_eq!(
            task_outcome(&at(
                200,
                json!({"TaskState": "Exception", "TaskStatus": "Critical",
                       "Messages": [{"Message": "Unable to power off the server."}]})
            )),
            TaskOutcome::Failed("TaskState Exception (Unable to power off the server.)".into())
        );
        assert!(matches!(
            task_outcome(&at(
                200,
                json!({"TaskState": "Completed", "TaskStatus": "Critical"})
            )),
            TaskOutcome::Failed(_)
        ));
    }

    #[test]
    fn the_task_monitor_is_the_location_else_what_the_task_names() {
        let a = Answer {
            status: 202,
            location: Some("/redfish/v1/TaskService/TaskMonitors/7".into()),
            body: json!({"TaskMonitor": "/other"}),
        };
        assert_eq!(
            task_monitor(&a).as_deref(),
            Some("/redfish/v1/TaskService/TaskMonitors/7")
        );
        let a = Answer {
            status: 202,
            location: None,
            body: json!({"@odata.id": "/redfish/v1/TaskService/Tasks/7", "TaskState": "New"}),
        };
        assert_eq!(
            task_monitor(&a).as_deref(),
            Some("/redfish/v1/TaskService/Tasks/7")
        );
        let a = Answer {
            status: 202,
            location: None,
            body: Value::Null,
        };
        assert_eq!(task_monitor(&a), None);
    }

    #[test]
    fn the_service_root_names_its_maker_by_vendor_or_by_its_oem_key() {
        let id = identity_of_root(
            &json!({"Vendor": "Dell", "Product": "Integrated Dell Remote Access Controller"}),
        );
        assert_eq!(id.vendor, "Dell");
        let id = identity_of_root(&json!({"Oem": {"Hpe": {}}}));
        assert_eq!(id.vendor, "");
        assert_eq!(id.oem_keys, vec!["Hpe".to_string()]);
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        assert_eq!(host_port("::1", 443), "[::1]:443");
        assert_eq!(host_port("10.0.0.1", 8443), "10.0.0.1:8443");
    }
}
