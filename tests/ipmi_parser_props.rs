//! No byte string from the network may panic hamn's decoders, and whatever they accept
//! must be what was sent. Property tests over arbitrary and mutated datagrams.

use hamn::bmc::crypto::{CipherSuite, SessionKeys};
use hamn::bmc::packet::{self, PayloadType};
use proptest::prelude::*;

fn keys(suite17: bool, seed: u8) -> SessionKeys {
    let suite = if suite17 {
        CipherSuite::Suite17
    } else {
        CipherSuite::Suite3
    };
    SessionKeys::derive(suite, &[seed; 20])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                                 suite17 in any::<bool>()) {
        let k = keys(suite17, 1);
        let _ = packet::decode(&bytes, None);
        let _ = packet::decode(&bytes, Some(&k));
        let _ = packet::decode_response(&bytes);
        let _ = k.decrypt(&bytes);
    }

    #[test]
    fn bytes_behind_a_valid_rmcp_plus_header_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..300),
                                                         ptype in any::<u8>(), suite17 in any::<bool>()) {
        let mut d = packet::RMCP_HEADER.to_vec();
        d.push(0x06);
        d.push(ptype);
        d.extend_from_slice(&tail);
        let _ = packet::decode(&d, None);
        let _ = packet::decode(&d, Some(&keys(suite17, 2)));
    }

    #[test]
    fn an_authenticated_packet_with_any_flipped_bit_is_dropped(payload in proptest::collection::vec(any::<u8>(), 0..64),
                                                               bit in any::<prop::sample::Index>(),
                                                               suite17 in any::<bool>()) {
        let k = keys(suite17, 3);
        let d = packet::encode(PayloadType::Ipmi, 0x55, 9, &payload, Some((&k, [7; 16])));
        let ok = packet::decode(&d, Some(&k)).expect("own packet decodes");
        prop_assert_eq!(ok.payload, payload);
        let mut bad = d.clone();
        let i = bit.index(bad.len() * 8);
        bad[i / 8] ^= 1 << (i % 8);
        prop_assert!(packet::decode(&bad, Some(&k)).is_err());
    }

    #[test]
    fn a_truncated_packet_is_dropped(payload in proptest::collection::vec(any::<u8>(), 0..64),
                                     cut in any::<prop::sample::Index>()) {
        let k = keys(false, 4);
        let d = packet::encode(PayloadType::Ipmi, 1, 2, &payload, Some((&k, [0; 16])));
        let n = cut.index(d.len());
        prop_assert!(packet::decode(&d[..n], Some(&k)).is_err());
    }

    #[test]
    fn response_decoding_round_trips_a_well_formed_message(netfn in 0u8..64, seq in 0u8..64, cmd in any::<u8>(),
                                                           data in proptest::collection::vec(any::<u8>(), 0..32)) {
        // Build a response the way a BMC would: rqAddr, netFn|1, chk, rsAddr, rqSeq, cmd, cc, data, chk.
        let sum = |b: &[u8]| b.iter().fold(0u8, |a, x| a.wrapping_add(*x)).wrapping_neg();
        let mut m = vec![0x81, ((netfn | 1) << 2) & 0xfc];
        m.push(sum(&m));
        let body_start = m.len();
        m.extend_from_slice(&[0x20, seq << 2, cmd, 0x00]);
        m.extend_from_slice(&data);
        let s = sum(&m[body_start..]);
        m.push(s);
        let r = packet::decode_response(&m).expect("well formed");
        prop_assert_eq!(r.rq_seq, seq);
        prop_assert_eq!(r.cmd, cmd);
        prop_assert_eq!(r.data, data);
    }

    #[test]
    fn fence_agent_standard_input_never_panics(text in "\\PC{0,200}") {
        let _ = hamn::app::agent::Inputs::from_stdin_text(&text);
    }

    #[test]
    fn configuration_text_never_panics(text in "\\PC{0,300}") {
        let _ = hamn::config::Config::parse(std::path::Path::new("fuzz.toml"), &text);
    }
}
