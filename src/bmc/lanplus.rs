//! The IPMI v2.0 RMCP+ ("lanplus") session layer: Open Session, RAKP 1-4, Set Session
//! Privilege Level (ADMINISTRATOR), authenticated and encrypted requests, Close Session.
//!
//! Why hamn has its own: fencing must never act on a reply that does not belong to the
//! request it sent. Every reply is matched on the session ID, a strictly increasing BMC
//! session sequence number, the AuthCode, and the request's rqSeq, netFn and command;
//! anything else is dropped. Requests are retransmitted with backoff inside one overall
//! deadline, and the session is closed on every exit path (including Drop).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use ipmi_rs_core::app::GetDeviceId;
use ipmi_rs_core::connection::{CompletionErrorCode, IpmiCommand, Message};
use tracing::{debug, trace, warn};

use super::crypto::{CipherSuite, RakpParams, SessionKeys, SuiteAlgorithms};
use super::packet::{self, Packet, PayloadType};
use crate::bmc::chassis::{CloseSession, PRIV_ADMINISTRATOR, SetSessionPrivilegeLevel};
use crate::secret::Secret;

/// Where and as whom to open a session.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub user: String,
    pub password: Secret,
    pub suite: CipherSuite,
}

/// Retransmission schedule: the first wait, doubled after each silent attempt up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        // Long enough for a loaded BMC that runs chassis control synchronously, short
        // enough that one lost datagram costs a fraction of a second.
        Self {
            first: Duration::from_millis(250),
            max: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LanError {
    #[error("cannot use a UDP socket towards BMC {bmc}: {source}")]
    Socket {
        bmc: SocketAddr,
        source: std::io::Error,
    },
    #[error("the operating system could not supply random numbers for the RMCP+ handshake")]
    Random,
    #[error(
        "no valid reply from BMC {bmc} to {what} before the deadline ({attempts} attempts{refused}); \
         check that the BMC is powered and reachable on UDP port {port}, and that the \
         address and port in hamn.toml are right"
    )]
    Timeout {
        bmc: SocketAddr,
        port: u16,
        what: &'static str,
        attempts: u32,
        refused: &'static str,
    },
    #[error(
        "BMC {bmc} refused to open an RMCP+ session with cipher suite {suite}: {meaning} \
         (RMCP+ status 0x{status:02x}); check the BMC's enabled cipher suites"
    )]
    OpenSessionRefused {
        bmc: SocketAddr,
        suite: u8,
        status: u8,
        meaning: &'static str,
    },
    #[error(
        "BMC {bmc} does not know user '{user}'; check the user name in hamn.toml and on the BMC"
    )]
    UnknownUser { bmc: SocketAddr, user: String },
    #[error(
        "BMC {bmc} rejected the login of user '{user}': {meaning} (RMCP+ status 0x{status:02x})"
    )]
    LoginRefused {
        bmc: SocketAddr,
        user: String,
        status: u8,
        meaning: &'static str,
    },
    #[error(
        "wrong password for user '{user}' on BMC {bmc} (the BMC's RAKP 2 proof does not match \
         the configured password); check the password file or variable"
    )]
    WrongPassword { bmc: SocketAddr, user: String },
    #[error(
        "BMC {bmc} sent an RAKP 4 integrity value that does not verify; the session was not trusted"
    )]
    BadRakp4 { bmc: SocketAddr },
    #[error(
        "BMC {bmc} granted privilege level {granted} instead of ADMINISTRATOR (4) to user \
         '{user}'; give the user administrator rights on the BMC"
    )]
    Privilege {
        bmc: SocketAddr,
        user: String,
        granted: u8,
    },
    #[error("BMC {bmc} refused {what}: completion code 0x{code:02x} ({meaning})")]
    Completion {
        bmc: SocketAddr,
        what: &'static str,
        code: u8,
        meaning: String,
    },
    #[error("BMC {bmc} answered {what} with data hamn cannot read: {detail}")]
    BadResponse {
        bmc: SocketAddr,
        what: &'static str,
        detail: String,
    },
}

/// Meaning of RMCP+ status codes, IPMI 2.0 table 13-15.
fn rmcp_status_meaning(code: u8) -> &'static str {
    match code {
        0x01 => "insufficient resources to create a session",
        0x02 => "invalid session ID",
        0x03 => "invalid payload type",
        0x04 => "invalid authentication algorithm",
        0x05 => "invalid integrity algorithm",
        0x06 => "no matching authentication payload",
        0x07 => "no matching integrity payload",
        0x08 => "inactive session ID",
        0x09 => "invalid role",
        0x0a => "unauthorized role or privilege level requested",
        0x0b => "insufficient resources to create a session at the requested role",
        0x0c => "invalid name length",
        0x0d => "unauthorized name",
        0x0e => "unauthorized GUID",
        0x0f => "invalid integrity check value",
        0x10 => "invalid confidentiality algorithm",
        0x11 => "no cipher suite match with the proposed security algorithms",
        0x12 => "illegal or unrecognized parameter",
        _ => "unknown status",
    }
}

fn random<const N: usize>() -> Result<[u8; N], LanError> {
    let mut buf = [0u8; N];
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !crng_ready() && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        // getrandom(2) blocks until the kernel's generator is seeded. On hardware that
        // takes a moment after boot (RDRAND, a TPM); in a VM without a hardware RNG it
        // took 1.4 s in the lab, and decides which of two nodes fencing each other wins.
        warn!(
            "waiting for the kernel's random number generator to be initialised before \
             contacting the BMC (no hardware RNG? give a VM a virtio-rng device)"
        );
    }
    getrandom::getrandom(&mut buf).map_err(|_| LanError::Random)?;
    Ok(buf)
}

/// Whether getrandom(2) would answer at once: one byte with GRND_NONBLOCK, which fails
/// with EAGAIN only while the generator is not yet initialised.
fn crng_ready() -> bool {
    let mut probe = 0u8;
    // SAFETY: one byte into a local; the flags ask only for the non-blocking pool read.
    let n = unsafe { libc::getrandom((&raw mut probe).cast(), 1, libc::GRND_NONBLOCK) };
    n == 1 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN)
}

/// Requested role byte in RAKP 1: ADMINISTRATOR with name-only lookup, so the BMC picks
/// the user by name and grants at most the user's own privilege limit.
const ROLE_ADMIN_NAME_ONLY: u8 = 0x10 | PRIV_ADMINISTRATOR;

/// Distinct rqSeq values one request may use across its retransmissions (half of 64).
const RQ_SEQS_PER_REQUEST: usize = 32;

/// How long RAKP 3 is retransmitted before the handshake starts over.
const RAKP3_BUDGET: Duration = Duration::from_millis(1800);

/// An active, authenticated, encrypted RMCP+ session at ADMINISTRATOR privilege.
pub struct Session {
    sock: UdpSocket,
    bmc: SocketAddr,
    keys: SessionKeys,
    bmc_sid: u32,
    console_sid: u32,
    out_seq: u32,
    last_in_seq: u32,
    rq_seq: u8,
    backoff: Backoff,
    closed: bool,
}

/// What one exchange saw, for the timeout message.
struct Exchange {
    attempts: u32,
    refused: bool,
}

fn socket_for(bmc: SocketAddr) -> Result<UdpSocket, LanError> {
    let local: SocketAddr = if bmc.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(local).map_err(|source| LanError::Socket { bmc, source })?;
    // Connecting makes the kernel drop datagrams from any other source.
    sock.connect(bmc)
        .map_err(|source| LanError::Socket { bmc, source })?;
    Ok(sock)
}

/// Send `build()` and wait for a datagram that `accept` takes, retransmitting with backoff
/// until `deadline`. `build` is called per attempt so that each copy can carry a fresh
/// session sequence number.
fn exchange<T>(
    sock: &UdpSocket,
    bmc: SocketAddr,
    backoff: Backoff,
    deadline: Instant,
    what: &'static str,
    mut build: impl FnMut() -> Vec<u8>,
    mut accept: impl FnMut(&[u8]) -> Option<T>,
) -> Result<T, LanError> {
    let mut ex = Exchange {
        attempts: 0,
        refused: false,
    };
    let mut wait = backoff.first;
    let mut buf = [0u8; 1024];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(LanError::Timeout {
                bmc,
                port: bmc.port(),
                what,
                attempts: ex.attempts,
                refused: if ex.refused {
                    "; the host answered 'port unreachable': nothing listens there"
                } else {
                    ""
                },
            });
        }
        ex.attempts += 1;
        trace!(what, attempt = ex.attempts, "sending");
        if let Err(e) = sock.send(&build()) {
            // A refused or unreachable send is a reason to retry, not to give up early:
            // a BMC that is rebooting refuses for a moment.
            debug!(what, error = %e, "send failed");
            ex.refused |= e.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        let attempt_end = (now + wait).min(deadline);
        loop {
            let left = attempt_end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if sock.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match sock.recv(&mut buf) {
                Ok(n) => {
                    trace!(what, len = n, head = ?&buf[..n.min(24)], "received");
                    if let Some(v) = accept(&buf[..n]) {
                        return Ok(v);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    ex.refused = true;
                    // Avoid spinning on a stream of ICMP errors: wait out this attempt.
                    std::thread::sleep(left.min(Duration::from_millis(50)));
                }
                Err(_) => {}
            }
        }
        wait = (wait * 2).min(backoff.max);
    }
}

impl Session {
    /// Open a session at ADMINISTRATOR privilege. Handshakes that fail in a way a lost or
    /// reordered datagram can explain are restarted from Open Session until `deadline`.
    pub fn open(target: &Target, deadline: Instant, backoff: Backoff) -> Result<Self, LanError> {
        let sock = socket_for(target.addr)?;
        loop {
            match Self::handshake(&sock, target, deadline, backoff) {
                Ok((keys, console_sid, bmc_sid)) => {
                    let mut session = Session {
                        sock,
                        bmc: target.addr,
                        keys,
                        bmc_sid,
                        console_sid,
                        out_seq: 0,
                        last_in_seq: 0,
                        rq_seq: 0,
                        backoff,
                        closed: false,
                    };
                    let granted = session.execute(
                        SetSessionPrivilegeLevel(PRIV_ADMINISTRATOR),
                        "Set Session Privilege Level",
                        deadline,
                    )?;
                    if granted != PRIV_ADMINISTRATOR {
                        return Err(LanError::Privilege {
                            bmc: target.addr,
                            user: target.user.clone(),
                            granted,
                        });
                    }
                    debug!(bmc = %target.addr, suite = target.suite.id(), "session open at ADMINISTRATOR");
                    return Ok(session);
                }
                Err(Handshake::Restart(why)) => {
                    debug!(bmc = %target.addr, why, "restarting the RMCP+ handshake");
                }
                Err(Handshake::Fatal(e)) => return Err(e),
            }
        }
    }

    fn handshake(
        sock: &UdpSocket,
        target: &Target,
        deadline: Instant,
        backoff: Backoff,
    ) -> Result<(SessionKeys, u32, u32), Handshake> {
        let bmc = target.addr;
        let suite = target.suite;
        let user = target.user.as_bytes();
        let console_sid = loop {
            let sid = u32::from_le_bytes(random::<4>()?);
            if sid != 0 {
                break sid;
            }
        };
        let tag = random::<1>()?[0];
        let (auth, integ, conf) = suite.algorithms();

        // Open Session Request (IPMI 2.0 table 13-16).
        let mut open = vec![tag, PRIV_ADMINISTRATOR, 0, 0];
        open.extend_from_slice(&console_sid.to_le_bytes());
        open.extend_from_slice(&[0x00, 0, 0, 8, auth, 0, 0, 0]);
        open.extend_from_slice(&[0x01, 0, 0, 8, integ, 0, 0, 0]);
        open.extend_from_slice(&[0x02, 0, 0, 8, conf, 0, 0, 0]);
        let dgram = packet::encode(PayloadType::OpenSessionRequest, 0, 0, &open, None);
        let resp = exchange(
            sock,
            bmc,
            backoff,
            deadline,
            "Open Session",
            || dgram.clone(),
            |d| pre_session_reply(d, PayloadType::OpenSessionResponse, tag, console_sid),
        )?;
        if resp[1] != 0 {
            return Err(Handshake::Fatal(LanError::OpenSessionRefused {
                bmc,
                suite: suite.id(),
                status: resp[1],
                meaning: rmcp_status_meaning(resp[1]),
            }));
        }
        if resp.len() < 36 || resp[16] != auth || resp[24] != integ || resp[32] != conf {
            return Err(Handshake::Fatal(LanError::BadResponse {
                bmc,
                what: "Open Session",
                detail: "the response does not confirm the proposed algorithms".into(),
            }));
        }
        let bmc_sid = u32::from_le_bytes([resp[8], resp[9], resp[10], resp[11]]);

        // RAKP 1 (table 13-20).
        let console_random = random::<16>()?;
        let mut rakp1 = vec![tag, 0, 0, 0];
        rakp1.extend_from_slice(&bmc_sid.to_le_bytes());
        rakp1.extend_from_slice(&console_random);
        rakp1.extend_from_slice(&[ROLE_ADMIN_NAME_ONLY, 0, 0, user.len() as u8]);
        rakp1.extend_from_slice(user);
        let dgram = packet::encode(PayloadType::Rakp1, 0, 0, &rakp1, None);
        let rakp2 = exchange(
            sock,
            bmc,
            backoff,
            deadline,
            "RAKP 1",
            || dgram.clone(),
            |d| pre_session_reply(d, PayloadType::Rakp2, tag, console_sid),
        )?;
        match rakp2[1] {
            0 => {}
            0x0d => {
                return Err(Handshake::Fatal(LanError::UnknownUser {
                    bmc,
                    user: target.user.clone(),
                }));
            }
            0x02 | 0x08 => return Err(Handshake::Restart("RAKP 2: session no longer known")),
            status => {
                return Err(Handshake::Fatal(LanError::LoginRefused {
                    bmc,
                    user: target.user.clone(),
                    status,
                    meaning: rmcp_status_meaning(status),
                }));
            }
        }
        let hlen = suite.rakp_hmac_len();
        if rakp2.len() < 40 + hlen {
            return Err(Handshake::Fatal(LanError::BadResponse {
                bmc,
                what: "RAKP 1",
                detail: format!("RAKP 2 is {} bytes, expected {}", rakp2.len(), 40 + hlen),
            }));
        }
        let mut bmc_random = [0u8; 16];
        bmc_random.copy_from_slice(&rakp2[8..24]);
        let mut bmc_guid = [0u8; 16];
        bmc_guid.copy_from_slice(&rakp2[24..40]);
        let params = RakpParams {
            console_sid,
            bmc_sid,
            console_random,
            bmc_random,
            bmc_guid,
            role: ROLE_ADMIN_NAME_ONLY,
            username: user,
        };
        let kuid = target.password.expose();
        let expected = params.rakp2_code(suite, kuid);
        if !super::crypto::ct_eq(&expected, &rakp2[40..40 + hlen]) {
            return Err(Handshake::Fatal(LanError::WrongPassword {
                bmc,
                user: target.user.clone(),
            }));
        }

        // RAKP 3 (table 13-22); no BMC key (Kg) is configured, so Kg = Kuid.
        let mut rakp3 = vec![tag, 0, 0, 0];
        rakp3.extend_from_slice(&bmc_sid.to_le_bytes());
        rakp3.extend_from_slice(&params.rakp3_code(suite, kuid));
        let dgram = packet::encode(PayloadType::Rakp3, 0, 0, &rakp3, None);
        // A BMC that activated the session on our first RAKP 3 (and whose RAKP 4 was
        // lost), or that answered a retransmitted RAKP 1 with a new random number, never
        // answers a repeated RAKP 3: after a few attempts, start over instead of waiting.
        let rakp3_deadline = deadline.min(Instant::now() + RAKP3_BUDGET);
        let rakp4 = match exchange(
            sock,
            bmc,
            backoff,
            rakp3_deadline,
            "RAKP 3",
            || dgram.clone(),
            |d| pre_session_reply(d, PayloadType::Rakp4, tag, console_sid),
        ) {
            Ok(r) => r,
            Err(LanError::Timeout { .. }) if rakp3_deadline < deadline => {
                return Err(Handshake::Restart("no RAKP 4"));
            }
            Err(e) => return Err(e.into()),
        };
        if rakp4[1] != 0 {
            // 0x0f: the BMC computed another RAKP 3 code, which happens when it answered a
            // retransmitted RAKP 1 with a new random number; start over.
            return Err(Handshake::Restart("RAKP 4 reported an error status"));
        }
        let sik = params.sik(suite, kuid);
        let icv = params.rakp4_icv(suite, &sik);
        let got = rakp4.get(8..8 + icv.len()).unwrap_or_default();
        if !super::crypto::ct_eq(&icv, got) {
            return Err(Handshake::Fatal(LanError::BadRakp4 { bmc }));
        }
        Ok((SessionKeys::derive(suite, &sik), console_sid, bmc_sid))
    }

    pub fn bmc(&self) -> SocketAddr {
        self.bmc
    }

    pub fn suite(&self) -> CipherSuite {
        self.keys.suite
    }

    /// Run one IPMI command in the session and return its parsed output.
    pub fn execute<C>(
        &mut self,
        cmd: C,
        what: &'static str,
        deadline: Instant,
    ) -> Result<C::Output, LanError>
    where
        C: IpmiCommand,
        C::Error: std::fmt::Debug,
    {
        let msg: Message = cmd.into();
        let want_netfn = msg.netfn_raw() | 1;
        let want_cmd = msg.cmd();
        let bmc = self.bmc;
        let console_sid = self.console_sid;
        let bmc_sid = self.bmc_sid;
        // Every retransmission gets a fresh rqSeq: BMCs (ipmi_sim among them) may treat a
        // repeated rqSeq as a duplicate and stay silent for seconds. A reply is taken if
        // it answers any copy of this request. At most RQ_SEQS_PER_REQUEST values per
        // request, so the sets of two consecutive requests never overlap in the 64-value
        // space, and a late reply to the previous request cannot match this one.
        let rq_seqs: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::new());
        let next_rq = std::cell::Cell::new(self.rq_seq);

        // Split borrows: the closures need the counters and keys at once.
        let Session {
            sock,
            keys,
            out_seq,
            last_in_seq,
            backoff,
            ..
        } = self;
        let keys: &SessionKeys = keys;
        let resp = exchange(
            sock,
            bmc,
            *backoff,
            deadline,
            what,
            || {
                let mut used = rq_seqs.borrow_mut();
                let rq = match used.last() {
                    Some(&last) if used.len() >= RQ_SEQS_PER_REQUEST => last,
                    _ => {
                        let n = (next_rq.get() + 1) & 0x3f;
                        next_rq.set(n);
                        used.push(n);
                        n
                    }
                };
                let req = packet::encode_request(msg.netfn_raw(), msg.cmd(), rq, msg.data());
                *out_seq = out_seq.wrapping_add(1).max(1);
                let iv = random::<16>().unwrap_or_else(|_| fallback_iv(*out_seq));
                packet::encode(PayloadType::Ipmi, bmc_sid, *out_seq, &req, Some((keys, iv)))
            },
            |d| {
                let pkt = match packet::decode(d, Some(keys)) {
                    Ok(p) => p,
                    Err(why) => {
                        trace!(?why, "dropped datagram");
                        return None;
                    }
                };
                accept_session_reply(
                    &pkt,
                    console_sid,
                    last_in_seq,
                    &rq_seqs.borrow(),
                    want_netfn,
                    want_cmd,
                )
            },
        );
        self.rq_seq = next_rq.get();
        let resp = resp?;
        if resp.completion_code != 0 {
            let meaning = CompletionErrorCode::try_from(resp.completion_code)
                .map(|c| format!("{c:?}"))
                .unwrap_or_else(|_| "unknown".into());
            return Err(LanError::Completion {
                bmc,
                what,
                code: resp.completion_code,
                meaning,
            });
        }
        C::parse_success_response(&resp.data).map_err(|e| LanError::BadResponse {
            bmc,
            what,
            detail: format!("{e:?}"),
        })
    }

    /// The BMC's manufacturer (IANA enterprise number), for choosing a hardware profile.
    pub fn manufacturer_id(&mut self, deadline: Instant) -> Result<u32, LanError> {
        let id = self.execute(GetDeviceId, "Get Device ID", deadline)?;
        Ok(id.manufacturer_id)
    }

    /// Close the session; failures are logged, not returned, because the session times out
    /// on the BMC anyway and the caller's result must not change because of it.
    pub fn close(mut self) {
        self.close_inner();
    }

    fn close_inner(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let deadline = Instant::now() + Duration::from_millis(700);
        let backoff = Backoff {
            first: Duration::from_millis(300),
            max: Duration::from_millis(400),
        };
        self.backoff = backoff;
        let sid = self.bmc_sid;
        match self.execute(CloseSession(sid), "Close Session", deadline) {
            Ok(()) => debug!(bmc = %self.bmc, "session closed"),
            Err(e) => {
                warn!(bmc = %self.bmc, error = %e, "could not close the session; the BMC will time it out")
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close_inner();
    }
}

/// A fixed-but-unique IV if the OS random source fails mid-session; AES-CBC only needs
/// the IV to be unpredictable against chosen-plaintext attackers, which a fencing session
/// of a few packets does not face, and refusing to send would leave the peer unfenced.
fn fallback_iv(seq: u32) -> [u8; 16] {
    let mut iv = [0x5au8; 16];
    iv[..4].copy_from_slice(&seq.to_le_bytes());
    iv
}

enum Handshake {
    Restart(&'static str),
    Fatal(LanError),
}

impl From<LanError> for Handshake {
    fn from(e: LanError) -> Self {
        Handshake::Fatal(e)
    }
}

/// Accept a pre-session reply only if it has the expected type, our message tag and our
/// console session ID.
fn pre_session_reply(d: &[u8], want: PayloadType, tag: u8, console_sid: u32) -> Option<Vec<u8>> {
    let pkt = packet::decode(d, None).ok()?;
    if pkt.payload_type != want || pkt.session_id != 0 {
        return None;
    }
    let p = pkt.payload;
    if p.len() < 2 || p[0] != tag {
        return None;
    }
    // An error reply may stop after the status byte (ipmi_sim sends just tag and status
    // for "no cipher suite match"). It can only make us fail, never succeed, so the tag
    // is enough to take it.
    if p.len() < 8 {
        return (p[1] != 0).then_some(p);
    }
    if u32::from_le_bytes([p[4], p[5], p[6], p[7]]) != console_sid {
        return None;
    }
    Some(p)
}

/// Accept an in-session reply only if it is for this session, newer than every reply
/// accepted before, and answers exactly this request.
fn accept_session_reply(
    pkt: &Packet,
    console_sid: u32,
    last_in_seq: &mut u32,
    rq_seqs: &[u8],
    want_netfn: u8,
    want_cmd: u8,
) -> Option<packet::IpmiResponse> {
    if pkt.payload_type != PayloadType::Ipmi || pkt.session_id != console_sid || !pkt.encrypted {
        trace!("dropped: not an encrypted IPMI message of this session");
        return None;
    }
    if pkt.session_seq == 0 || pkt.session_seq <= *last_in_seq {
        trace!(
            seq = pkt.session_seq,
            last = *last_in_seq,
            "dropped: stale or replayed"
        );
        return None;
    }
    let resp = packet::decode_response(&pkt.payload)?;
    if !rq_seqs.contains(&resp.rq_seq) || resp.netfn != want_netfn || resp.cmd != want_cmd {
        trace!(
            got_seq = resp.rq_seq,
            ?rq_seqs,
            "dropped: reply to another request"
        );
        // Still newer than anything seen: later replies must be newer than this one.
        *last_in_seq = pkt.session_seq;
        return None;
    }
    *last_in_seq = pkt.session_seq;
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> SessionKeys {
        SessionKeys::derive(CipherSuite::Suite3, &[9u8; 20])
    }

    /// A reply as the BMC would send it: rqAddr, netFn, chk, rsAddr, rqSeq, cmd, cc, data, chk.
    fn reply(netfn: u8, rq_seq: u8, cmd: u8, data: &[u8]) -> Vec<u8> {
        let sum = |b: &[u8]| b.iter().fold(0u8, |a, x| a.wrapping_add(*x)).wrapping_neg();
        let mut m = vec![0x81, netfn << 2];
        m.push(sum(&m));
        let start = m.len();
        m.extend_from_slice(&[0x20, rq_seq << 2, cmd, 0]);
        m.extend_from_slice(data);
        let s = sum(&m[start..]);
        m.push(s);
        m
    }

    fn session_packet(console_sid: u32, seq: u32, msg: &[u8]) -> Packet {
        let k = keys();
        let d = packet::encode(
            PayloadType::Ipmi,
            console_sid,
            seq,
            msg,
            Some((&k, [1; 16])),
        );
        packet::decode(&d, Some(&k)).expect("decodes")
    }

    #[test]
    fn a_late_reply_to_an_earlier_request_is_not_taken_for_the_current_one() {
        // Request 5 was Get Device ID and timed out; request 6 is Get Chassis Status. The
        // late Get Device ID reply must not be read as a chassis status ("off").
        let mut last = 0;
        let late = session_packet(7, 1, &reply(0x07, 5, 0x01, &[0, 0, 0]));
        assert!(accept_session_reply(&late, 7, &mut last, &[6], 0x01, 0x01).is_none());
        let late_same_cmd = session_packet(7, 2, &reply(0x01, 5, 0x01, &[0, 0, 0]));
        assert!(accept_session_reply(&late_same_cmd, 7, &mut last, &[6, 7], 0x01, 0x01).is_none());
        let right = session_packet(7, 3, &reply(0x01, 6, 0x01, &[1, 0, 0]));
        assert!(accept_session_reply(&right, 7, &mut last, &[6, 7], 0x01, 0x01).is_some());
        // A replay of the accepted datagram is stale now.
        assert!(accept_session_reply(&right, 7, &mut last, &[6, 7], 0x01, 0x01).is_none());
    }

    #[test]
    fn a_reply_for_another_session_is_dropped() {
        let mut last = 0;
        let other = session_packet(8, 1, &reply(0x01, 1, 0x01, &[1, 0, 0]));
        assert!(accept_session_reply(&other, 7, &mut last, &[1], 0x01, 0x01).is_none());
    }

    #[test]
    fn pre_session_replies_must_carry_our_tag_and_session_id() {
        let mut payload = vec![0x42, 0, 0, 0];
        payload.extend_from_slice(&0xdead_beefu32.to_le_bytes());
        let d = packet::encode(PayloadType::Rakp2, 0, 0, &payload, None);
        assert!(pre_session_reply(&d, PayloadType::Rakp2, 0x42, 0xdead_beef).is_some());
        assert!(pre_session_reply(&d, PayloadType::Rakp2, 0x43, 0xdead_beef).is_none());
        assert!(pre_session_reply(&d, PayloadType::Rakp2, 0x42, 0xdead_bee0).is_none());
        assert!(pre_session_reply(&d, PayloadType::Rakp4, 0x42, 0xdead_beef).is_none());
        let short_error =
            packet::encode(PayloadType::OpenSessionResponse, 0, 0, &[0x42, 0x11], None);
        assert!(
            pre_session_reply(&short_error, PayloadType::OpenSessionResponse, 0x42, 1).is_some()
        );
        let short_ok = packet::encode(PayloadType::OpenSessionResponse, 0, 0, &[0x42, 0x00], None);
        assert!(pre_session_reply(&short_ok, PayloadType::OpenSessionResponse, 0x42, 1).is_none());
    }

    proptest! {
        #[test]
        fn no_datagram_panics_the_reply_matchers(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = pre_session_reply(&bytes, PayloadType::OpenSessionResponse, 1, 2);
            let k = keys();
            if let Ok(p) = packet::decode(&bytes, Some(&k)) {
                let mut last = 0;
                let _ = accept_session_reply(&p, 1, &mut last, &[1], 1, 1);
            }
        }

        #[test]
        fn no_encrypted_payload_panics_the_session_matcher(msg in proptest::collection::vec(any::<u8>(), 0..64),
                                                           seq in any::<u32>()) {
            let p = session_packet(7, seq, &msg);
            let mut last = 0;
            let _ = accept_session_reply(&p, 7, &mut last, &[1], 1, 1);
        }
    }
}
