//! No bytes found on a disk may panic hamn's md superblock decoders: arbitrary bytes,
//! bytes behind a valid magic and header, and valid superblocks with bits flipped. A
//! flipped bit under the checksum must be caught, never decoded as something else.

use hamn::disks::mdsb::{self, MdSbError};
use proptest::prelude::*;

const MAGIC: u32 = 0xa92b_4efc;

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

fn le32(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().unwrap())
}

/// A valid v1.2 superblock in a 4 KiB buffer, checksummed the kernel's way.
fn v1(max_dev: u32, events: u64, dev_number: u32) -> Vec<u8> {
    let mut sb = vec![0u8; 4096];
    put(&mut sb, 0, &MAGIC.to_le_bytes());
    put(&mut sb, 4, &1u32.to_le_bytes());
    put(&mut sb, 16, &[7u8; 16]);
    put(&mut sb, 32, b"host:0");
    put(&mut sb, 72, &1i32.to_le_bytes());
    put(&mut sb, 92, &2u32.to_le_bytes());
    put(&mut sb, 128, &2048u64.to_le_bytes());
    put(&mut sb, 144, &8u64.to_le_bytes());
    put(&mut sb, 160, &dev_number.to_le_bytes());
    put(&mut sb, 200, &events.to_le_bytes());
    put(&mut sb, 220, &max_dev.to_le_bytes());
    for i in 0..max_dev as usize {
        let role: u16 = match i {
            0 | 1 => i as u16,
            _ => 0xffff,
        };
        put(&mut sb, 256 + 2 * i, &role.to_le_bytes());
    }
    let len = 256 + 2 * max_dev as usize;
    let mut sum: u64 = 0;
    let mut at = 0;
    while at + 4 <= len {
        if at != 216 {
            sum += u64::from(le32(&sb, at));
        }
        at += 4;
    }
    if at + 2 == len {
        sum += u64::from(u16::from_le_bytes([sb[at], sb[at + 1]]));
    }
    let csum = ((sum & 0xffff_ffff) + (sum >> 32)) as u32;
    put(&mut sb, 216, &csum.to_le_bytes());
    sb
}

/// A valid 0.90 superblock (4 KiB).
fn v090(events: u64, states: &[u32]) -> Vec<u8> {
    let mut sb = vec![0u8; 4096];
    let mut word = |i: usize, x: u32| put(&mut sb, i * 4, &x.to_le_bytes());
    word(0, MAGIC);
    word(2, 90);
    word(5, 0x1234_5678);
    word(7, 1);
    word(10, 2);
    word(39, events as u32);
    word(40, (events >> 32) as u32);
    for (n, state) in states.iter().enumerate() {
        let base = 128 + 32 * n;
        word(base, n as u32);
        word(base + 1, 8);
        word(base + 2, 16 * n as u32);
        word(base + 3, n as u32);
        word(base + 4, *state);
    }
    let sum: u64 = (0..1024).map(|i| u64::from(le32(&sb, i * 4))).sum();
    let csum = ((sum & 0xffff_ffff) + (sum >> 32)) as u32;
    put(&mut sb, 38 * 4, &csum.to_le_bytes());
    sb
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

proptest! {
    #[test]
    fn parse_v1_never_panics(buf in bytes(5000), minor in any::<u8>()) {
        let _ = mdsb::parse_v1(&buf, minor);
    }

    #[test]
    fn parse_v090_never_panics(buf in bytes(5000)) {
        let _ = mdsb::parse_v090(&buf);
    }

    /// Garbage behind a valid magic and version reaches the deeper checks.
    #[test]
    fn garbage_behind_a_header_never_panics(
        mut buf in bytes(5000),
        max_dev in prop_oneof![0u32..2000, any::<u32>()],
        minor in 0u8..3,
    ) {
        buf.resize(buf.len().max(256), 0);
        put(&mut buf, 0, &MAGIC.to_le_bytes());
        put(&mut buf, 4, &1u32.to_le_bytes());
        put(&mut buf, 220, &max_dev.to_le_bytes());
        let _ = mdsb::parse_v1(&buf, minor);
        put(&mut buf, 4, &0u32.to_le_bytes());
        put(&mut buf, 8, &90u32.to_le_bytes());
        let _ = mdsb::parse_v090(&buf);
    }

    #[test]
    fn v1_round_trips(max_dev in 0u32..=1920, events in any::<u64>(), dev in 0u32..4) {
        let sb = mdsb::parse_v1(&v1(max_dev, events, dev), 2).unwrap();
        prop_assert_eq!(sb.events, events);
        prop_assert_eq!(sb.roles.len(), max_dev as usize);
        prop_assert_eq!(sb.array_uuid.as_str(), "07070707:07070707:07070707:07070707");
    }

    /// One flipped bit under the checksum is caught; outside it changes nothing.
    #[test]
    fn v1_single_bit_flip(
        max_dev in 0u32..=1920,
        events in any::<u64>(),
        bit in 0usize..4096 * 8,
    ) {
        let good = v1(max_dev, events, 1);
        let expected = mdsb::parse_v1(&good, 2).unwrap();
        let mut bad = good.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let got = mdsb::parse_v1(&bad, 2);
        if bit / 8 < 256 + 2 * max_dev as usize {
            prop_assert!(matches!(got, Err(MdSbError::Defect(_))), "{:?}", got);
        } else {
            prop_assert_eq!(got.unwrap(), expected);
        }
    }

    #[test]
    fn v090_single_bit_flip(events in any::<u64>(), bit in 0usize..4096 * 8) {
        let good = v090(events, &[6, 6, 0]);
        prop_assert_eq!(mdsb::parse_v090(&good).unwrap().events, events);
        let mut bad = good.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let got = mdsb::parse_v090(&bad);
        prop_assert!(matches!(got, Err(MdSbError::Defect(_))), "{:?}", got);
    }

    /// Several bytes overwritten anywhere, lengths cut anywhere: errors, never panics.
    #[test]
    fn damaged_valid_superblocks_never_panic(
        max_dev in 0u32..=1920,
        hits in proptest::collection::vec((0usize..4096, any::<u8>()), 1..16),
        cut in 0usize..=4096,
        minor in 0u8..3,
    ) {
        let mut a = v1(max_dev, 5, 0);
        let mut b = v090(5, &[6, 1, 0]);
        for (at, byte) in &hits {
            a[*at] = *byte;
            b[*at] = *byte;
        }
        let _ = mdsb::parse_v1(&a[..cut], minor);
        let _ = mdsb::parse_v1(&a, minor);
        let _ = mdsb::parse_v090(&b[..cut]);
        let _ = mdsb::parse_v090(&b);
    }
}
