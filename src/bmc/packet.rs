//! Wire format of RMCP / IPMI 2.0 (RMCP+) datagrams and of the IPMI LAN message inside
//! them (IPMI 2.0 §13.6, §13.8, table 13-8). Pure functions: encoding cannot fail, and
//! decoding returns `None` for anything malformed. Decoding never panics on any byte
//! string; `tests/ipmi_parser_props.rs` holds the property test that says so.

use super::crypto::{SessionKeys, SuiteAlgorithms};

pub const RMCP_HEADER: [u8; 4] = [0x06, 0x00, 0xff, 0x07];
const AUTH_TYPE_RMCP_PLUS: u8 = 0x06;
const NEXT_HEADER: u8 = 0x07;

/// Our software ID as requester and the BMC's slave address (IPMI 2.0 §13.8).
pub const CONSOLE_SWID: u8 = 0x81;
pub const BMC_SLAVE_ADDR: u8 = 0x20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadType {
    Ipmi,
    OpenSessionRequest,
    OpenSessionResponse,
    Rakp1,
    Rakp2,
    Rakp3,
    Rakp4,
}

impl PayloadType {
    pub fn code(self) -> u8 {
        match self {
            Self::Ipmi => 0x00,
            Self::OpenSessionRequest => 0x10,
            Self::OpenSessionResponse => 0x11,
            Self::Rakp1 => 0x12,
            Self::Rakp2 => 0x13,
            Self::Rakp3 => 0x14,
            Self::Rakp4 => 0x15,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x00 => Self::Ipmi,
            0x10 => Self::OpenSessionRequest,
            0x11 => Self::OpenSessionResponse,
            0x12 => Self::Rakp1,
            0x13 => Self::Rakp2,
            0x14 => Self::Rakp3,
            0x15 => Self::Rakp4,
            _ => return None,
        })
    }
}

/// One decoded RMCP+ datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub payload_type: PayloadType,
    pub encrypted: bool,
    pub authenticated: bool,
    pub session_id: u32,
    pub session_seq: u32,
    /// Plain payload: decrypted when it was encrypted.
    pub payload: Vec<u8>,
}

/// Encode a datagram. With `keys`, the payload is encrypted and the packet authenticated.
pub fn encode(
    payload_type: PayloadType,
    session_id: u32,
    session_seq: u32,
    payload: &[u8],
    keys: Option<(&SessionKeys, [u8; 16])>,
) -> Vec<u8> {
    let mut out = RMCP_HEADER.to_vec();
    let session_start = out.len();
    let body = match keys {
        Some((k, iv)) => k.encrypt(payload, iv),
        None => payload.to_vec(),
    };
    let flags = if keys.is_some() { 0xc0 } else { 0x00 };
    out.push(AUTH_TYPE_RMCP_PLUS);
    out.push(flags | payload_type.code());
    out.extend_from_slice(&session_id.to_le_bytes());
    out.extend_from_slice(&session_seq.to_le_bytes());
    out.extend_from_slice(&(body.len() as u16).to_le_bytes());
    out.extend_from_slice(&body);
    if let Some((k, _)) = keys {
        // Pad so that AuthType..NextHeader is a multiple of four bytes (§13.28.4).
        let covered = out.len() - session_start + 2;
        let pad = (4 - covered % 4) % 4;
        out.extend(std::iter::repeat_n(0xffu8, pad));
        out.push(pad as u8);
        out.push(NEXT_HEADER);
        let code = k.auth_code(&out[session_start..]);
        out.extend_from_slice(&code);
    }
    out
}

/// Why a datagram was dropped; only used for trace logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    Malformed,
    NotRmcpPlus,
    BadAuthCode,
    Unauthenticated,
    Undecryptable,
}

/// Decode a datagram. `keys` must be given once the session is active: then any packet
/// whose AuthCode does not verify is dropped, and so is any unauthenticated one.
pub fn decode(datagram: &[u8], keys: Option<&SessionKeys>) -> Result<Packet, Drop> {
    let rest = datagram.strip_prefix(&RMCP_HEADER).ok_or(Drop::Malformed)?;
    let session = rest;
    let (&auth_type, rest) = rest.split_first().ok_or(Drop::Malformed)?;
    if auth_type != AUTH_TYPE_RMCP_PLUS {
        return Err(Drop::NotRmcpPlus);
    }
    let (&ptype, rest) = rest.split_first().ok_or(Drop::Malformed)?;
    let encrypted = ptype & 0x80 != 0;
    let authenticated = ptype & 0x40 != 0;
    let payload_type = PayloadType::from_code(ptype & 0x3f).ok_or(Drop::Malformed)?;
    let (sid, rest) = take4(rest)?;
    let (seq, rest) = take4(rest)?;
    let (len, rest) = split(rest, 2)?;
    let len = u16::from_le_bytes([len[0], len[1]]) as usize;
    let (body, trailer) = split(rest, len)?;

    match keys {
        Some(k) => {
            if !authenticated {
                return Err(Drop::Unauthenticated);
            }
            let icv = k.suite.icv_len();
            if trailer.len() < icv + 2 {
                return Err(Drop::Malformed);
            }
            let covered_len = session.len() - icv;
            let (covered, code) = session.split_at(covered_len);
            if !k.verify_auth_code(covered, code) {
                return Err(Drop::BadAuthCode);
            }
        }
        None if authenticated || encrypted => return Err(Drop::Unauthenticated),
        None => {}
    }
    let payload = match (encrypted, keys) {
        (true, Some(k)) => k.decrypt(body).ok_or(Drop::Undecryptable)?,
        (true, None) => return Err(Drop::Undecryptable),
        (false, _) => body.to_vec(),
    };
    Ok(Packet {
        payload_type,
        encrypted,
        authenticated,
        session_id: u32::from_le_bytes(sid),
        session_seq: u32::from_le_bytes(seq),
        payload,
    })
}

fn split(b: &[u8], n: usize) -> Result<(&[u8], &[u8]), Drop> {
    if b.len() < n {
        Err(Drop::Malformed)
    } else {
        Ok(b.split_at(n))
    }
}

fn take4(b: &[u8]) -> Result<([u8; 4], &[u8]), Drop> {
    let (head, rest) = split(b, 4)?;
    let arr = [head[0], head[1], head[2], head[3]];
    Ok((arr, rest))
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |acc, b| acc.wrapping_add(*b))
        .wrapping_neg()
}

/// Encode an IPMI LAN request message addressed to the BMC, LUN 0.
pub fn encode_request(netfn: u8, cmd: u8, rq_seq: u8, data: &[u8]) -> Vec<u8> {
    let head = [BMC_SLAVE_ADDR, netfn << 2];
    let mut out = head.to_vec();
    out.push(checksum(&head));
    let body_start = out.len();
    out.extend_from_slice(&[CONSOLE_SWID, (rq_seq & 0x3f) << 2, cmd]);
    out.extend_from_slice(data);
    let sum = checksum(&out[body_start..]);
    out.push(sum);
    out
}

/// A decoded IPMI LAN response message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpmiResponse {
    pub netfn: u8,
    pub rq_seq: u8,
    pub cmd: u8,
    pub completion_code: u8,
    pub data: Vec<u8>,
}

/// Decode an IPMI LAN response; checksums and addressing must be right.
pub fn decode_response(msg: &[u8]) -> Option<IpmiResponse> {
    if msg.len() < 8 {
        return None;
    }
    let (head, body) = msg.split_at(3);
    if checksum(&head[..2]) != head[2] || checksum(&body[..body.len() - 1]) != body[body.len() - 1]
    {
        return None;
    }
    if head[0] != CONSOLE_SWID || body[0] != BMC_SLAVE_ADDR {
        return None;
    }
    Some(IpmiResponse {
        netfn: head[1] >> 2,
        rq_seq: body[1] >> 2,
        cmd: body[2],
        completion_code: body[3],
        data: body[4..body.len() - 1].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bmc::crypto::{CipherSuite, SessionKeys};

    #[test]
    fn get_device_id_request_matches_ipmitool_bytes() {
        // Table 13-8 worked by hand: rsAddr, netFn/LUN, checksum, rqAddr, rqSeq/LUN, cmd, checksum.
        assert_eq!(
            encode_request(0x06, 0x01, 1, &[]),
            vec![0x20, 0x18, 0xc8, 0x81, 0x04, 0x01, 0x7a]
        );
    }

    #[test]
    fn authenticated_packet_round_trips_and_tampering_is_detected() {
        for suite in [CipherSuite::Suite3, CipherSuite::Suite17] {
            let keys = SessionKeys::derive(suite, &[3u8; 20]);
            let msg = encode_request(0x00, 0x01, 5, &[]);
            let dgram = encode(PayloadType::Ipmi, 0x1234, 7, &msg, Some((&keys, [1u8; 16])));
            let pkt = decode(&dgram, Some(&keys)).ok().map(|p| p.payload);
            assert_eq!(pkt.as_deref(), Some(&msg[..]));
            let mut bad = dgram.clone();
            bad[20] ^= 1;
            assert!(decode(&bad, Some(&keys)).is_err());
            let other = SessionKeys::derive(suite, &[4u8; 20]);
            assert_eq!(decode(&dgram, Some(&other)), Err(Drop::BadAuthCode));
        }
    }

    #[test]
    fn unauthenticated_packets_are_dropped_once_a_session_is_active() {
        let keys = SessionKeys::derive(CipherSuite::Suite3, &[3u8; 20]);
        let dgram = encode(PayloadType::Ipmi, 1, 1, &[1, 2, 3], None);
        assert_eq!(decode(&dgram, Some(&keys)), Err(Drop::Unauthenticated));
    }

    #[test]
    fn response_with_bad_checksum_is_rejected() {
        let mut resp = vec![0x81, 0x1c, 0x63, 0x20, 0x04, 0x01, 0x00, 0x01];
        let sum = checksum(&resp[3..]);
        resp.push(sum);
        assert!(decode_response(&resp).is_some());
        resp[6] = 0xc1;
        assert!(decode_response(&resp).is_none());
    }
}
