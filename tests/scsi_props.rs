//! No byte string a SCSI target sends may panic hamn's sense and persistent reservation
//! decoders, and what the encoders build must decode back to what was meant. Property
//! tests over arbitrary bytes, over bytes behind valid headers, and round trips.

use hamn::scsi::pr::{
    self, Capabilities, FullStatus, InAction, Key, OutAction, OutParams, PrType, ReadKeys,
    ReadReservation,
};
use hamn::scsi::sense::{self, ScsiError};
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn pr_type() -> impl Strategy<Value = PrType> {
    proptest::sample::select(PrType::ALL.to_vec())
}

/// A registration as READ FULL STATUS reports it, before encoding.
#[derive(Debug, Clone)]
struct Reg {
    key: u64,
    holder: bool,
    all_tg_pt: bool,
    pr_type: Option<PrType>,
    port: u16,
    name: String,
}

fn reg() -> impl Strategy<Value = Reg> {
    (
        any::<u64>(),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(pr_type()),
        any::<u16>(),
        "iqn\\.[0-9]{4}-[0-9]{2}\\.[a-z]{1,10}(\\.[a-z]{1,8}){0,2}:[a-z0-9.-]{1,20}",
    )
        .prop_map(|(key, holder, all_tg_pt, pr_type, port, name)| Reg {
            key,
            holder,
            all_tg_pt,
            pr_type,
            port,
            name,
        })
}

/// SPC-4 READ FULL STATUS descriptor with an iSCSI device-format TransportID.
fn encode_reg(r: &Reg) -> Vec<u8> {
    let mut name = r.name.as_bytes().to_vec();
    name.push(0);
    while !name.len().is_multiple_of(4) {
        name.push(0);
    }
    let mut tid = vec![0x05, 0];
    tid.extend_from_slice(&(name.len() as u16).to_be_bytes());
    tid.extend_from_slice(&name);

    let mut d = r.key.to_be_bytes().to_vec();
    d.extend_from_slice(&[0, 0, 0, 0]);
    d.push(u8::from(r.holder) | (u8::from(r.all_tg_pt) << 1));
    d.push(r.pr_type.map_or(0, |t| t as u8));
    d.extend_from_slice(&[0, 0, 0, 0]);
    d.extend_from_slice(&r.port.to_be_bytes());
    d.extend_from_slice(&(tid.len() as u32).to_be_bytes());
    d.extend_from_slice(&tid);
    d
}

fn with_header(generation: u32, body: &[u8]) -> Vec<u8> {
    let mut d = generation.to_be_bytes().to_vec();
    d.extend_from_slice(&(body.len() as u32).to_be_bytes());
    d.extend_from_slice(body);
    d
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(b in bytes(600), status in any::<u8>(),
                                   host in any::<u16>(), driver in any::<u16>()) {
        let _ = sense::parse_sense(&b);
        let _ = sense::classify(status, host, driver, &b);
        let _ = ReadKeys::decode(&b);
        let _ = ReadReservation::decode(&b);
        let _ = Capabilities::decode(&b);
        let _ = FullStatus::decode(&b);
        let _ = OutParams::decode(&b);
        let _ = pr::parse_inquiry(&b);
        let _ = pr::parse_vpd83_naa(&b);
        let _ = pr::iscsi_initiator(&b);
        if let Err(e) = sense::classify(status, host, driver, &b) {
            let _ = e.to_string();
            let _ = sense::is_unsupported(&e);
        }
    }

    #[test]
    fn sense_behind_valid_response_codes_never_panics(code in prop_oneof![Just(0x70u8), Just(0x71), Just(0x72), Just(0x73), Just(0xf0), Just(0xf2)],
                                                      key in any::<u8>(), add in any::<u8>(),
                                                      tail in bytes(300)) {
        // Descriptor format puts the key in byte 1, fixed format in byte 2; set both and
        // the additional sense length, then arbitrary descriptors / fields.
        let mut b = vec![code, key, key, 0, 0, 0, 0, add];
        b.extend_from_slice(&tail);
        let s = sense::parse_sense(&b);
        prop_assert!(s.is_some());
        let _ = sense::classify(0x02, 0, sense::DRIVER_SENSE, &b);
    }

    #[test]
    fn pr_in_bodies_behind_valid_headers_never_panic(generation in any::<u32>(), tail in bytes(400),
                                                     lie in any::<bool>(), add in any::<u32>()) {
        let mut d = with_header(generation, &tail);
        if lie {
            d[4..8].copy_from_slice(&add.to_be_bytes());
        }
        let _ = ReadKeys::decode(&d);
        let _ = ReadReservation::decode(&d);
        let _ = FullStatus::decode(&d);
    }

    #[test]
    fn vpd83_behind_valid_header_never_panics(tail in bytes(300), len in any::<u16>()) {
        let mut d = vec![0x00, 0x83];
        d.extend_from_slice(&len.to_be_bytes());
        d.extend_from_slice(&tail);
        if let Some(hex) = pr::parse_vpd83_naa(&d) {
            prop_assert!(hex.len().is_multiple_of(2) && hex.bytes().all(|c| c.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn reservation_conflict_always_wins(host in any::<u16>(), driver in any::<u16>(), b in bytes(64)) {
        prop_assert_eq!(sense::classify(0x18, host, driver, &b), Err(ScsiError::ReservationConflict));
    }

    #[test]
    fn clean_completion_is_success_whatever_the_buffer(b in bytes(64)) {
        prop_assert_eq!(sense::classify(0, 0, 0, &b), Ok(()));
    }

    #[test]
    fn out_params_round_trip(key in any::<u64>(), sa in any::<u64>(), aptpl in any::<bool>(),
                             all_tg_pt in any::<bool>(), spec_i_pt in any::<bool>()) {
        let p = OutParams { key: Key(key), sa_key: Key(sa), aptpl, all_tg_pt, spec_i_pt };
        prop_assert_eq!(OutParams::decode(&p.encode()), Ok(p));
    }

    #[test]
    fn key_display_parse_round_trip(k in any::<u64>()) {
        prop_assert_eq!(Key(k).to_string().parse::<Key>(), Ok(Key(k)));
        prop_assert_eq!(k.to_string().parse::<Key>(), Ok(Key(k)));
    }

    #[test]
    fn key_parse_never_panics(s in ".{0,40}") {
        let _ = s.parse::<Key>();
    }

    #[test]
    fn cdb_fields_land_where_spc4_puts_them(alloc in any::<u16>(), len in any::<u32>(),
                                            t in proptest::option::of(pr_type()),
                                            sa in 0u8..8, ia in 0u8..4) {
        let out = [OutAction::Register, OutAction::Reserve, OutAction::Release, OutAction::Clear,
                   OutAction::Preempt, OutAction::PreemptAndAbort,
                   OutAction::RegisterAndIgnoreExistingKey, OutAction::RegisterAndMove][usize::from(sa)];
        let c = pr::pr_out_cdb(out, t, len);
        prop_assert_eq!(c[0], 0x5f);
        prop_assert_eq!(c[1], sa);
        prop_assert_eq!(c[2] >> 4, 0);
        prop_assert_eq!(PrType::from_u8(c[2] & 0x0f), t);
        prop_assert_eq!(u32::from_be_bytes([c[5], c[6], c[7], c[8]]), len);
        let in_action = [InAction::ReadKeys, InAction::ReadReservation,
                         InAction::ReportCapabilities, InAction::ReadFullStatus][usize::from(ia)];
        let c = pr::pr_in_cdb(in_action, alloc);
        prop_assert_eq!((c[0], c[1]), (0x5e, ia));
        prop_assert_eq!(u16::from_be_bytes([c[7], c[8]]), alloc);
    }

    #[test]
    fn read_keys_round_trip_and_truncation(generation in any::<u32>(),
                                           keys in proptest::collection::vec(any::<u64>(), 0..20),
                                           cut in any::<prop::sample::Index>()) {
        let body: Vec<u8> = keys.iter().flat_map(|k| k.to_be_bytes()).collect();
        let d = with_header(generation, &body);
        let r = ReadKeys::decode(&d).unwrap();
        prop_assert_eq!(r.generation, generation);
        prop_assert_eq!(r.keys.iter().map(|k| k.0).collect::<Vec<_>>(), keys.clone());
        prop_assert!(!r.truncated);

        // An allocation length cut anywhere after the header gives a prefix.
        let at = 8 + cut.index(body.len() + 1);
        let r = ReadKeys::decode(&d[..at]).unwrap();
        prop_assert_eq!(r.keys.len(), (at - 8) / 8);
        prop_assert!(keys.iter().zip(&r.keys).all(|(a, b)| *a == b.0));
        prop_assert_eq!(r.truncated, at < d.len());
    }

    #[test]
    fn read_reservation_round_trip(generation in any::<u32>(), key in any::<u64>(), t in pr_type()) {
        let mut body = key.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0, 0, 0, t as u8, 0, 0]);
        let r = ReadReservation::decode(&with_header(generation, &body)).unwrap();
        let res = r.reservation.unwrap();
        prop_assert_eq!((res.key, res.pr_type, res.scope), (Key(key), Some(t), 0));
    }

    #[test]
    fn capabilities_mask_round_trip(types in proptest::collection::btree_set(0usize..6, 0..6),
                                    b2 in any::<u8>()) {
        let chosen: Vec<PrType> = types.iter().map(|&i| PrType::ALL[i]).collect();
        let mask: u16 = chosen.iter().fold(0, |m, t| m | t.mask_bit());
        let [m0, m1] = mask.to_be_bytes();
        let c = Capabilities::decode(&[0, 8, b2, 0x80, m0, m1, 0, 0]).unwrap();
        prop_assert_eq!(c.type_mask, chosen);
        prop_assert_eq!(c.crh, b2 & 0x10 != 0);
        prop_assert!(!c.truncated);
    }

    #[test]
    fn full_status_round_trip_and_truncation(generation in any::<u32>(),
                                             regs in proptest::collection::vec(reg(), 0..8),
                                             cut in any::<prop::sample::Index>()) {
        let body: Vec<u8> = regs.iter().flat_map(encode_reg).collect();
        let d = with_header(generation, &body);
        let s = FullStatus::decode(&d).unwrap();
        prop_assert_eq!(s.generation, generation);
        prop_assert!(!s.truncated);
        prop_assert_eq!(s.entries.len(), regs.len());
        for (e, r) in s.entries.iter().zip(&regs) {
            prop_assert_eq!(e.key, Key(r.key));
            prop_assert_eq!(e.holder, r.holder);
            prop_assert_eq!(e.all_tg_pt, r.all_tg_pt);
            prop_assert_eq!(e.pr_type, r.pr_type);
            prop_assert_eq!(e.relative_target_port, r.port);
            prop_assert_eq!(e.initiator.as_deref(), Some(r.name.as_str()));
        }

        // Cut by a short allocation length: a prefix of whole entries, flagged.
        let at = 8 + cut.index(body.len() + 1);
        let t = FullStatus::decode(&d[..at]).unwrap();
        prop_assert!(t.entries.len() <= regs.len());
        prop_assert!(t.entries.iter().zip(&s.entries).all(|(a, b)| a == b));
        prop_assert_eq!(t.truncated, at < d.len());
    }
}
