//! No bytes found on a device may panic hamn's ext superblock decoder (issue 13: it
//! replaced `dumpe2fs -h`): arbitrary bytes, arbitrary bytes behind the ext magic, and a
//! superblock whose every field but the magic is arbitrary. Real superblocks from
//! mkfs.ext4 are compared with e2fsprogs in tests/fs_check.rs.

use hamn::fs::extsb::{self, EXT_MAGIC, SUPERBLOCK_OFFSET, SbDefect};
use proptest::prelude::*;

const MAGIC_AT: usize = SUPERBLOCK_OFFSET + 0x38;
const INCOMPAT_AT: usize = SUPERBLOCK_OFFSET + 0x60;
const UUID_AT: usize = SUPERBLOCK_OFFSET + 0x68;

fn with_magic(mut head: Vec<u8>) -> Vec<u8> {
    if head.len() >= MAGIC_AT + 2 {
        head[MAGIC_AT..MAGIC_AT + 2].copy_from_slice(&EXT_MAGIC.to_le_bytes());
    }
    head
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(head in prop::collection::vec(any::<u8>(), 0..5000)) {
        let _ = extsb::parse(&head);
    }

    #[test]
    fn arbitrary_bytes_behind_the_magic_never_panic(
        head in prop::collection::vec(any::<u8>(), 0..5000)
    ) {
        let head = with_magic(head);
        match extsb::parse(&head) {
            Ok(s) => {
                prop_assert!(head.len() >= 2048);
                if let Some(u) = &s.uuid {
                    prop_assert_eq!(u.len(), 36);
                }
            }
            Err(SbDefect::Short { len }) => prop_assert!(len < 2048),
            Err(e) => prop_assert!(false, "magic present, yet {}", e),
        }
    }

    #[test]
    fn the_recover_bit_alone_decides(
        head in prop::collection::vec(any::<u8>(), 2048..4096),
        incompat in any::<u32>(),
    ) {
        let mut head = with_magic(head);
        head[INCOMPAT_AT..INCOMPAT_AT + 4].copy_from_slice(&incompat.to_le_bytes());
        let s = extsb::parse(&head).expect("magic present");
        prop_assert_eq!(s.needs_recovery, incompat & 0x4 != 0);
        let uuid = &head[UUID_AT..UUID_AT + 16];
        prop_assert_eq!(s.uuid.is_none(), uuid.iter().all(|&b| b == 0));
        if let Some(u) = s.uuid {
            let hex: String = u.chars().filter(|&c| c != '-').collect();
            let want: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(hex, want);
        }
    }

    #[test]
    fn without_the_magic_nothing_is_believed(
        head in prop::collection::vec(any::<u8>(), 2048..4096),
        magic in any::<u16>().prop_filter("not ext", |m| *m != EXT_MAGIC),
    ) {
        let mut head = head;
        head[MAGIC_AT..MAGIC_AT + 2].copy_from_slice(&magic.to_le_bytes());
        prop_assert_eq!(extsb::parse(&head), Err(SbDefect::BadMagic { found: magic }));
    }
}
