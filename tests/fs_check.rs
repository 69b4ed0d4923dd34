//! The standby's filesystem procedure after the peer is fenced, on image files: replay
//! what the peer left in its journal or log, check, and only then mount.
//!
//! e2fsprogs and xfsprogs work on image files directly. The tests that need the kernel
//! (mounting an image through a loop device, `xfs_io ... shutdown` to make a crashed
//! filesystem) need root and loop devices; where those are missing they print SKIP.

mod support;

use support::{sh, sh_ok};

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hamn::fence::Fenced;
use hamn::fs::{self as hfs, FsError, Policy};
use support::{require_tool, skip_or_panic};

const MIB: u64 = 1024 * 1024;

fn fenced() -> Fenced {
    Fenced::for_tests("peer")
}

fn tools(names: &[&str]) -> bool {
    names.iter().all(|n| require_tool(n))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A sparse image file of `size` bytes.
fn image(dir: &Path, name: &str, size: u64) -> PathBuf {
    let p = dir.join(name);
    File::create(&p)
        .and_then(|f| f.set_len(size))
        .expect("image");
    p
}

fn ext4(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let p = image(dir, name, 64 * MIB);
    let mut args = vec!["-q", "-F"];
    args.extend_from_slice(extra);
    args.push(s(&p));
    sh_ok("mkfs.ext4", &args);
    p
}

fn xfs(dir: &Path, name: &str) -> PathBuf {
    // mkfs.xfs refuses filesystems smaller than 300 MiB.
    let p = image(dir, name, 320 * MIB);
    sh_ok("mkfs.xfs", &["-q", "-f", s(&p)]);
    p
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(path).expect("open");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.write_all(bytes).expect("write");
}

/// The refusal inside `e`; its text is printed, being what the admin reads.
fn refusal(e: FsError) -> hfs::Refusal {
    eprintln!("{e}\n");
    match e {
        FsError::Refused(r) => r,
        other => panic!("expected a refusal, got: {other}"),
    }
}

fn commands(c: &hfs::Checked) -> Vec<&str> {
    c.steps().iter().map(|s| s.command.as_str()).collect()
}

/// Whether this host can mount image files (root, loop devices). Probed once.
fn loop_mounts() -> bool {
    static CAN: OnceLock<Result<(), String>> = OnceLock::new();
    let r = CAN.get_or_init(|| {
        if !nix::unistd::geteuid().is_root() {
            return Err("mounting image files needs root".into());
        }
        if support::find_on_path("mkfs.ext4").is_none() {
            return Err("mkfs.ext4 not installed".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let img = ext4(dir.path(), "probe.img", &[]);
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).map_err(|e| e.to_string())?;
        let out = sh("mount", &["-t", "ext4", s(&img), s(&mnt)]);
        if !out.status.success() {
            return Err(format!(
                "this host cannot mount image files through loop devices: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        sh_ok("umount", &[s(&mnt)]);
        Ok(())
    });
    match r {
        Ok(()) => true,
        Err(reason) => {
            // CI runs as root on machines that mount image files: there, this is a failure.
            skip_or_panic(reason);
            false
        }
    }
}

/// Unmounts on drop, so that a failing test leaves no mount behind.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let mounted = fs::read_to_string("/proc/self/mountinfo")
            .map(|t| t.lines().any(|l| l.split(' ').nth(4) == self.0.to_str()))
            .unwrap_or(false);
        if mounted {
            let _ = sh("umount", &[s(&self.0)]);
        }
    }
}

/// What a standby finds after the primary died mid-write: `name`'s filesystem with
/// `/d/f` ("synced line", fsynced) committed to the journal or log, and the machine gone
/// before the metadata reached its place. The copy is taken while the filesystem is
/// shut down and still mounted, so nothing after the commit reaches it.
fn crashed(dir: &Path, fs_type: &str, name: &str) -> PathBuf {
    let live = if fs_type == "xfs" {
        xfs(dir, &format!("live-{name}"))
    } else {
        ext4(dir, &format!("live-{name}"), &[])
    };
    let mnt = dir.join(format!("live-mnt-{name}"));
    fs::create_dir(&mnt).expect("mkdir");
    let _guard = Unmount(mnt.clone());
    sh_ok("mount", &["-t", fs_type, s(&live), s(&mnt)]);
    fs::create_dir(mnt.join("d")).expect("mkdir d");
    let mut f = File::create(mnt.join("d/f")).expect("create f");
    f.write_all(b"synced line\n").expect("write");
    f.sync_all().expect("fsync");
    drop(f);
    // A file deleted while still open, as a dying daemon leaves them: the replay has to
    // release it too (ext4's orphan list, XFS's unlinked lists).
    let mut open_unlinked = File::create(mnt.join("tmp")).expect("create tmp");
    open_unlinked.write_all(&[7; 100_000]).expect("write");
    open_unlinked.sync_all().expect("fsync");
    fs::remove_file(mnt.join("tmp")).expect("unlink");
    // -f: flush the log first, as the last fsync would have; then nothing more is written.
    sh_ok("xfs_io", &["-x", "-c", "shutdown -f", s(&mnt)]);
    let copy = dir.join(name);
    sh_ok("cp", &["--sparse=always", s(&live), s(&copy)]);
    drop(open_unlinked);
    copy
}

// ---------------------------------------------------------------------------------------
// ext4

#[test]
fn a_fresh_ext4_image_is_checked_and_nothing_is_replayed() {
    if !tools(&["mkfs.ext4", "dumpe2fs", "e2fsck"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let img = ext4(dir.path(), "fresh.img", &[]);
    let c = hfs::check(&img, "ext4", Policy::CheckOnly, &fenced(), "peer").expect("checked");
    assert_eq!(c.device(), img);
    assert_eq!(c.fs_type(), "ext4");
    assert_eq!(c.fenced_node(), "peer");
    assert!(c.uuid().is_some_and(|u| u.len() == 36), "{:?}", c.uuid());
    assert_eq!(
        commands(&c),
        [
            format!("read the superblock of {}", img.display()),
            format!("e2fsck -f -n {}", img.display())
        ]
    );
    // hamn reads the superblock itself (issue 13): no process, no exit status.
    assert!(c.steps()[0].in_process && c.steps()[0].exit.is_none());
    assert_eq!(
        c.steps()[0].meaning,
        "superblock read; no journal recovery needed"
    );
    // The UUID is the one e2fsprogs reads.
    let dumped = sh_ok("dumpe2fs", &["-h", s(&img)]);
    let uuid = dumped
        .lines()
        .find_map(|l| l.strip_prefix("Filesystem UUID:"))
        .map(str::trim)
        .expect("dumpe2fs names the UUID");
    assert_eq!(c.uuid(), Some(uuid));
    assert!(!c.steps()[1].in_process);
    assert_eq!(c.steps()[1].exit, Some(0));
    assert_eq!(c.steps()[1].meaning, "clean");

    let c = hfs::check(&img, "ext4", Policy::Repair, &fenced(), "peer").expect("checked");
    assert_eq!(commands(&c)[1], format!("e2fsck -f -p {}", img.display()));
}

#[test]
fn ext4_with_a_zeroed_superblock_is_refused_with_the_backup_superblock_procedure() {
    if !tools(&["mkfs.ext4", "dumpe2fs", "e2fsck"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let img = ext4(dir.path(), "nosuper.img", &[]);
    // The primary superblock is the 1024 bytes at offset 1024.
    write_at(&img, 1024, &[0; 1024]);
    let e = hfs::check(&img, "ext4", Policy::Repair, &fenced(), "peer").expect_err("refused");
    let text = e.to_string();
    let r = refusal(e);
    assert_eq!(r.fs_type, "ext4");
    assert!(r.in_process, "{text}");
    assert!(
        r.said.iter().any(|l| l.contains("Bad magic number")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "read the superblock of {} failed (the superblock cannot be read)",
            img.display()
        )),
        "{text}"
    );
    for want in [
        "is NOT checked".to_string(),
        img.display().to_string(),
        format!("e2fsck -b 32768 {}", img.display()),
        format!("mke2fs -n {}", img.display()),
        format!("e2fsck -f {}", img.display()),
    ] {
        assert!(text.contains(&want), "{want:?} missing in:\n{text}");
    }
}

#[test]
fn ext4_without_a_root_inode_is_refused_by_both_policies() {
    if !tools(&["mkfs.ext4", "dumpe2fs", "e2fsck", "debugfs"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let img = ext4(dir.path(), "noroot.img", &[]);
    sh_ok("debugfs", &["-w", "-R", "clri <2>", s(&img)]);
    for policy in [Policy::CheckOnly, Policy::Repair] {
        let e = hfs::check(&img, "ext4", policy, &fenced(), "peer").expect_err("refused");
        let text = e.to_string();
        let r = refusal(e);
        assert!(r.exit.is_some_and(|x| x & 4 != 0), "{policy:?}: {text}");
        assert!(r.said.iter().any(|l| l.contains("Root inode")), "{text}");
        assert!(
            r.next
                .iter()
                .any(|n| n.contains(&format!("`e2fsck -f {}`", img.display()))),
            "{text}"
        );
    }
}

#[test]
fn a_journal_that_needs_recovery_is_replayed_before_the_check() {
    if !tools(&["mkfs.ext4", "dumpe2fs", "e2fsck", "debugfs"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let img = ext4(dir.path(), "flagged.img", &[]);
    // The flag alone, with an empty journal: e2fsck still goes through recovery.
    sh_ok("debugfs", &["-w", "-R", "feature needs_recovery", s(&img)]);
    let plan = hfs::plan(&img, "ext4", Policy::CheckOnly);
    assert!(plan[1].starts_with(&format!("e2fsck -p -E journal_only {}", img.display())));

    let c = hfs::check(&img, "ext4", Policy::CheckOnly, &fenced(), "peer").expect("checked");
    let cmds = commands(&c);
    assert!(plan[0].starts_with(cmds[0]), "{plan:?} {cmds:?}");
    assert_eq!(
        &cmds[1..],
        [
            format!("e2fsck -p -E journal_only {}", img.display()).as_str(),
            plan[2].as_str()
        ]
    );
    assert_eq!(
        c.steps()[0].meaning,
        "superblock read; the journal needs recovery"
    );
    assert_eq!(c.steps()[1].meaning, "journal replayed");
    let features = sh_ok("dumpe2fs", &["-h", s(&img)]);
    assert!(!features.contains("needs_recovery"), "{features}");
}

#[test]
fn after_a_crash_the_journal_is_replayed_and_the_synced_file_is_there() {
    if !tools(&["mkfs.ext4", "dumpe2fs", "e2fsck", "debugfs", "xfs_io"]) || !loop_mounts() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let img = crashed(dir.path(), "ext4", "crashed.img");

    // The lab's finding, the reason for the replay: a read-only check skips recovery
    // and passes.
    let ro = sh("e2fsck", &["-f", "-n", s(&img)]);
    let said =
        String::from_utf8_lossy(&ro.stderr).into_owned() + &String::from_utf8_lossy(&ro.stdout);
    assert!(said.contains("skipping journal recovery"), "{said}");
    assert_eq!(ro.status.code(), Some(0), "{said}");

    let c = hfs::check(&img, "ext4", Policy::CheckOnly, &fenced(), "peer").expect("checked");
    assert!(
        commands(&c).contains(&format!("e2fsck -p -E journal_only {}", img.display()).as_str()),
        "{:?}",
        commands(&c)
    );
    let cat = sh_ok("debugfs", &["-R", "cat /d/f", s(&img)]);
    assert_eq!(cat, "synced line\n");

    // And the admin's next step: mount it and read the line.
    let mnt = dir.path().join("install");
    let _guard = Unmount(mnt.clone());
    let m = hfs::mount(&c, &mnt, true).expect("mounted");
    assert!(m.read_only && !m.already);
    assert_eq!(
        fs::read_to_string(mnt.join("d/f")).expect("read"),
        "synced line\n"
    );
    hfs::unmount(&mnt).expect("unmounted");
}

/// What e2fsprogs says of `img`: (UUID, whether the features include needs_recovery).
fn dumpe2fs_says(img: &Path) -> (String, bool) {
    let out = sh_ok("dumpe2fs", &["-h", s(img)]);
    let field = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{k} not in {out}"))
    };
    let features = field("Filesystem features:");
    (
        field("Filesystem UUID:"),
        features.split_whitespace().any(|f| f == "needs_recovery"),
    )
}

#[test]
fn the_superblock_hamn_reads_agrees_with_e2fsprogs() {
    if !tools(&[
        "mkfs.ext4",
        "mkfs.ext3",
        "mkfs.ext2",
        "dumpe2fs",
        "debugfs",
        "blkid",
    ]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let given = "6f1c0f4e-3b1a-4d2e-9c5b-1a2b3c4d5e6f";
    let mut imgs = vec![
        ext4(dir.path(), "plain.img", &[]),
        ext4(dir.path(), "given.img", &["-U", given]),
        // 1 KiB blocks: the superblock is then block 1, still at byte 1024.
        ext4(dir.path(), "small-blocks.img", &["-b", "1024"]),
    ];
    for mkfs in ["mkfs.ext3", "mkfs.ext2"] {
        let p = image(dir.path(), &format!("{mkfs}.img"), 16 * MIB);
        sh_ok(mkfs, &["-q", "-F", s(&p)]);
        imgs.push(p);
    }
    for img in &imgs {
        let (head, _) = hfs::extsb::read_head(img).expect("read");
        let sup = hfs::extsb::parse(&head).expect("an ext superblock");
        let (uuid, recover) = dumpe2fs_says(img);
        assert_eq!(
            sup.uuid.as_deref(),
            Some(uuid.as_str()),
            "{}",
            img.display()
        );
        let blkid = sh_ok("blkid", &["-p", "-o", "value", "-s", "UUID", s(img)]);
        assert_eq!(sup.uuid.as_deref(), Some(blkid.trim()), "{}", img.display());
        assert!(!recover && !sup.needs_recovery, "{}", img.display());
    }
    assert_eq!(
        hfs::extsb::parse(&hfs::extsb::read_head(&imgs[1]).expect("read").0)
            .expect("parse")
            .uuid
            .as_deref(),
        Some(given)
    );

    // The flag as a crashed peer leaves it.
    sh_ok(
        "debugfs",
        &["-w", "-R", "feature needs_recovery", s(&imgs[0])],
    );
    assert!(dumpe2fs_says(&imgs[0]).1);
    let (head, _) = hfs::extsb::read_head(&imgs[0]).expect("read");
    assert!(hfs::extsb::parse(&head).expect("parse").needs_recovery);

    // Not ext at all.
    let x = xfs(dir.path(), "x.img");
    let (head, _) = hfs::extsb::read_head(&x).expect("read");
    assert!(matches!(
        hfs::extsb::parse(&head),
        Err(hfs::extsb::SbDefect::BadMagic { .. })
    ));
}

/// The reason for O_DIRECT: this node's page cache of a block device can be older than
/// what the peer wrote to the disk since. A loop device stands in for the shared disk,
/// and writing its image file for the peer: the loop device's own cache does not see it.
#[test]
fn a_stale_page_cache_does_not_hide_needs_recovery() {
    if !tools(&["mkfs.ext4", "debugfs", "losetup"]) || !loop_mounts() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let img = ext4(dir.path(), "shared.img", &[]);
    let out = sh("losetup", &["--find", "--show", s(&img)]);
    if !out.status.success() {
        skip_or_panic(&format!(
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
        return;
    }
    let loopdev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let _detach = Detach(loopdev.clone());
    // Held open, as udev or a probe would: the kernel drops a block device's cache at
    // its last close, and only then.
    let mut held = File::open(&loopdev).expect("open the loop device");
    let mut cached = vec![0u8; 4096];
    std::io::Read::read_exact(&mut held, &mut cached).expect("buffered read");
    assert!(!hfs::extsb::parse(&cached).expect("parse").needs_recovery);

    // "The peer" sets the flag behind the loop device's back.
    sh_ok("debugfs", &["-w", "-R", "feature needs_recovery", s(&img)]);

    let mut again = vec![0u8; 4096];
    std::io::Read::read_exact(&mut File::open(&loopdev).expect("open"), &mut again)
        .expect("buffered read");
    let buffered_saw = hfs::extsb::parse(&again).expect("parse").needs_recovery;
    // Not asserted: whether the cache is stale is the kernel's business (it was stale on
    // Linux 6.18, losetup's default buffered loop device).
    eprintln!("a buffered read of {loopdev} saw needs_recovery: {buffered_saw}");
    let (head, mode) = hfs::extsb::read_head(Path::new(&loopdev)).expect("direct read");
    assert_eq!(mode, hfs::extsb::ReadMode::Direct);
    assert!(
        hfs::extsb::parse(&head).expect("parse").needs_recovery,
        "hamn missed the flag"
    );
    drop(held);
}

#[test]
fn mmp_held_by_another_fsck_is_refused_with_the_clear_mmp_step() {
    if !tools(&["mkfs.ext4", "dumpe2fs", "e2fsck"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // Without metadata_csum the MMP block has no checksum to fix after the edit.
    let img = ext4(dir.path(), "mmp.img", &["-O", "mmp,^metadata_csum"]);
    let sup = sh_ok("dumpe2fs", &["-h", s(&img)]);
    let field = |k: &str| -> u64 {
        sup.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{k} not in {sup}"))
    };
    let block = field("MMP block number:");
    let size = field("Block size:");
    // mmp_seq (after the 4-byte magic) = EXT4_MMP_SEQ_FSCK: "an fsck runs on it".
    write_at(&img, block * size + 4, &0xE24D_4D50u32.to_le_bytes());
    let text = refusal(
        hfs::check(&img, "ext4", Policy::CheckOnly, &fenced(), "peer").expect_err("refused"),
    )
    .to_string();
    assert!(text.contains("MMP"), "{text}");
    assert!(
        text.contains(&format!("tune2fs -f -E clear_mmp {}", img.display())),
        "{text}"
    );
    assert!(text.contains("hamn fenced 'peer'"), "{text}");
}

// ---------------------------------------------------------------------------------------
// XFS

#[test]
fn a_fresh_xfs_image_is_checked() {
    if !tools(&["mkfs.xfs", "xfs_repair", "xfs_db"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let img = xfs(dir.path(), "fresh.img");
    let c = hfs::check(&img, "xfs", Policy::CheckOnly, &fenced(), "peer").expect("checked");
    assert_eq!(c.fs_type(), "xfs");
    assert_eq!(
        commands(&c)[0],
        format!("xfs_repair -n -f {}", img.display())
    );
    assert_eq!(c.steps()[0].meaning, "clean");
    assert!(c.uuid().is_some_and(|u| u.len() == 36), "{:?}", c.uuid());
    assert_eq!(
        hfs::plan(&img, "xfs", Policy::CheckOnly)[0],
        commands(&c)[0],
        "the plan shows what check runs"
    );
}

#[test]
fn corrupt_xfs_is_refused_then_repaired_only_under_the_repair_policy() {
    if !tools(&["mkfs.xfs", "xfs_repair", "xfs_db"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let img = xfs(dir.path(), "badagf.img");
    sh_ok(
        "xfs_db",
        &["-x", "-c", "agf 1", "-c", "write -d magicnum 0", s(&img)],
    );
    let e = hfs::check(&img, "xfs", Policy::CheckOnly, &fenced(), "peer").expect_err("refused");
    let text = e.to_string();
    let r = refusal(e);
    assert_eq!(r.exit, Some(1));
    assert!(r.said.iter().any(|l| l.contains("agf")), "{text}");
    assert!(
        text.contains(&format!("`xfs_repair -f {}` repairs", img.display())),
        "{text}"
    );
    assert!(!text.contains("-L"), "{text}");

    let c = hfs::check(&img, "xfs", Policy::Repair, &fenced(), "peer").expect("repaired");
    let cmds = commands(&c);
    assert_eq!(cmds[0], format!("xfs_repair -n -f {}", img.display()));
    assert_eq!(cmds[1], format!("xfs_repair -f {}", img.display()));
    assert_eq!(c.steps()[1].meaning, "repair completed");
    hfs::check(&img, "xfs", Policy::CheckOnly, &fenced(), "peer").expect("clean after the repair");
}

#[test]
fn a_dirty_xfs_log_is_replayed_by_a_private_mount_before_the_check() {
    if !tools(&["mkfs.xfs", "xfs_repair", "xfs_db", "xfs_io"]) || !loop_mounts() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let img = crashed(dir.path(), "xfs", "crashed.img");
    let c = hfs::check(&img, "xfs", Policy::CheckOnly, &fenced(), "peer").expect("checked");
    let cmds = commands(&c);
    assert_eq!(cmds[0], format!("xfs_repair -n -f {}", img.display()));
    assert!(c.steps()[0].meaning.contains("replayed"), "{:?}", c.steps());
    assert!(
        cmds[1].starts_with(&format!("mount -t xfs {} ", img.display())),
        "{cmds:?}"
    );
    assert!(cmds[2].starts_with("umount "), "{cmds:?}");
    assert_eq!(cmds[3], cmds[0]);
    assert_eq!(c.steps()[3].meaning, "clean");

    let mnt = dir.path().join("install");
    let _guard = Unmount(mnt.clone());
    hfs::mount(&c, &mnt, true).expect("mounted");
    assert_eq!(
        fs::read_to_string(mnt.join("d/f")).expect("read"),
        "synced line\n"
    );
    hfs::unmount(&mnt).expect("unmounted");
}

#[test]
fn a_dirty_xfs_log_that_cannot_be_replayed_is_refused_with_the_last_resort_named() {
    if !tools(&["mkfs.xfs", "xfs_repair", "xfs_db", "xfs_io"]) || !loop_mounts() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let img = crashed(dir.path(), "xfs", "unreplayable.img");
    // Log recovery verifies the root inode it replays into; a bad magic there makes the
    // replay mount fail ("log mount/recovery failed: error -117").
    sh_ok(
        "xfs_db",
        &[
            "-x",
            "-c",
            "inode 128",
            "-c",
            "write -d core.magic 0",
            s(&img),
        ],
    );
    let e = hfs::check(&img, "xfs", Policy::Repair, &fenced(), "peer").expect_err("refused");
    let text = e.to_string();
    let r = refusal(e);
    assert!(r.command.starts_with("mount -t xfs"), "{text}");
    assert!(
        text.contains(&format!("xfs_repair -L -f {}", img.display())),
        "{text}"
    );
    assert!(text.contains("DISCARDS"), "{text}");
    assert!(text.contains("dmesg"), "{text}");
    // This check's replay directory (named in the refusal) was removed and nothing
    // stayed mounted there. (Other tests run in parallel and replay logs of their own.)
    let replay_dir = text
        .split_whitespace()
        .find(|w| w.contains("hamn-xfs-replay."))
        .map(|w| w.trim_matches(|c: char| c == '`' || c == ':'))
        .unwrap_or_else(|| panic!("the refusal names the replay mount: {text}"));
    let table = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !table.contains(replay_dir),
        "{replay_dir} is mounted:\n{table}"
    );
    assert!(
        !Path::new(replay_dir).exists(),
        "{replay_dir} was left behind"
    );
}

// ---------------------------------------------------------------------------------------
// What is refused before any tool runs

#[test]
fn unknown_filesystem_types_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = image(dir.path(), "any.img", MIB);
    for t in ["btrfs", "auto", "", "EXT4", "vfat"] {
        let e = hfs::check(&img, t, Policy::Repair, &fenced(), "peer").expect_err("refused");
        assert!(matches!(e, FsError::UnknownType { .. }), "{t}: {e}");
        assert!(e.to_string().contains("unknown filesystem type"), "{e}");
        let plan = hfs::plan(&img, t, Policy::CheckOnly);
        assert!(plan.iter().all(|l| l.starts_with('#')), "{plan:?}");
    }
}

#[test]
fn a_proof_for_another_node_replays_and_checks_nothing() {
    // The standby holds a proof for "peer"; this filesystem is mn3's. Refused before any
    // tool runs: the path does not even have to exist.
    let e = hfs::check(
        Path::new("/nonexistent/mn3-install"),
        "ext4",
        Policy::Repair,
        &fenced(),
        "mn3",
    )
    .expect_err("refused");
    assert!(matches!(e, FsError::Proof(_)), "{e}");
    assert!(e.to_string().contains("hamn fence mn3"), "{e}");
}

#[test]
fn a_missing_device_is_refused() {
    let e = hfs::check(
        Path::new("/nonexistent/hamn-test-device"),
        "ext4",
        Policy::CheckOnly,
        &fenced(),
        "peer",
    )
    .expect_err("refused");
    assert!(matches!(e, FsError::Device { .. }), "{e}");
    assert!(
        e.to_string().contains("/nonexistent/hamn-test-device"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// Mount and unmount

#[test]
fn mount_is_idempotent_refuses_a_foreign_mount_and_unmount_is_never_lazy() {
    if !tools(&["mkfs.ext4", "dumpe2fs", "e2fsck"]) || !loop_mounts() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let img = ext4(dir.path(), "install.img", &[]);
    let other = ext4(dir.path(), "other.img", &[]);
    let c = hfs::check(&img, "ext4", Policy::CheckOnly, &fenced(), "peer").expect("checked");
    let c_other =
        hfs::check(&other, "ext4", Policy::CheckOnly, &fenced(), "peer").expect("checked");

    // Created when missing.
    let mnt = dir.path().join("a/b/install");
    let _guard = Unmount(mnt.clone());
    let m = hfs::mount(&c, &mnt, false).expect("mounted");
    assert!(!m.read_only && !m.already);
    fs::write(mnt.join("x"), "x").expect("write");

    let again = hfs::mount(&c, &mnt, false).expect("idempotent");
    assert!(again.already);
    let e = hfs::mount(&c, &mnt, true).expect_err("mode differs");
    assert!(matches!(e, FsError::ModeMismatch { .. }), "{e}");
    eprintln!("{e}\n");
    let e = hfs::mount(&c_other, &mnt, false).expect_err("occupied");
    assert!(matches!(e, FsError::Occupied { .. }), "{e}");
    eprintln!("{e}\n");

    // A mounted filesystem cannot be checked.
    let e = hfs::check(&img, "ext4", Policy::CheckOnly, &fenced(), "peer").expect_err("mounted");
    assert!(matches!(e, FsError::Mounted { .. }), "{e}");
    eprintln!("{e}\n");

    let held = File::open(mnt.join("x")).expect("open");
    let e = hfs::unmount(&mnt).expect_err("busy");
    assert!(matches!(e, FsError::Busy { .. }), "{e}");
    eprintln!("{e}\n");
    assert!(e.to_string().contains(s(&mnt)), "{e}");
    drop(held);
    hfs::unmount(&mnt).expect("unmounted");
    hfs::unmount(&mnt).expect("nothing mounted is success");
    hfs::unmount(&dir.path().join("never")).expect("no directory is success");
}

/// Detaches the loop device on drop.
struct Detach(String);

impl Drop for Detach {
    fn drop(&mut self) {
        let _ = sh("losetup", &["-d", &self.0]);
    }
}

#[test]
fn a_block_device_is_checked_and_recognised_when_mounted() {
    if !tools(&["mkfs.ext4", "dumpe2fs", "e2fsck", "losetup"]) || !loop_mounts() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let img = ext4(dir.path(), "disk.img", &[]);
    let out = sh("losetup", &["--find", "--show", s(&img)]);
    if !out.status.success() {
        skip_or_panic(&format!(
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
        return;
    }
    let loopdev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let _detach = Detach(loopdev.clone());
    let dev = Path::new(&loopdev);

    let c = hfs::check(dev, "ext4", Policy::CheckOnly, &fenced(), "peer").expect("checked");
    assert_eq!(commands(&c)[1], format!("e2fsck -f -n {loopdev}"));
    let mnt = dir.path().join("mnt");
    let _guard = Unmount(mnt.clone());
    hfs::mount(&c, &mnt, true).expect("mounted");
    // Recognised by major:minor in the mount table.
    assert!(hfs::mount(&c, &mnt, true).expect("idempotent").already);
    hfs::unmount(&mnt).expect("unmounted");

    // Through a symlink, as /dev/md/hamn-0 names md127: hamn calls mount(2) with the
    // canonical path, as mount(8) did, so the table shows the kernel's name (issue 13).
    let link = dir.path().join("disk");
    std::os::unix::fs::symlink(&loopdev, &link).expect("symlink");
    let c = hfs::check(&link, "ext4", Policy::CheckOnly, &fenced(), "peer").expect("checked");
    hfs::mount(&c, &mnt, true).expect("mounted");
    let table = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let line = table
        .lines()
        .find(|l| l.split(' ').nth(4) == mnt.to_str())
        .expect("in the table");
    assert!(line.contains(&format!(" - ext4 {loopdev} ro")), "{line}");
    assert!(hfs::is_mounted_at(&link, &mnt));
    hfs::unmount(&mnt).expect("unmounted");
}

/// A block device goes through mount(2) itself; where mount(8) would have retried a
/// write-protected device read-only, a takeover that asked for read-write fails, naming
/// the errno, the device, the mount point and the command to do the same by hand.
#[test]
fn a_write_protected_device_is_not_mounted_read_write() {
    if !tools(&["mkfs.ext4", "e2fsck", "losetup"]) || !loop_mounts() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let img = ext4(dir.path(), "ro.img", &[]);
    let out = sh("losetup", &["--find", "--show", "--read-only", s(&img)]);
    if !out.status.success() {
        skip_or_panic(&format!(
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
        return;
    }
    let loopdev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let _detach = Detach(loopdev.clone());
    let dev = Path::new(&loopdev);
    let c = hfs::check(dev, "ext4", Policy::CheckOnly, &fenced(), "peer").expect("checked");
    let mnt = dir.path().join("mnt");
    let _guard = Unmount(mnt.clone());
    let e = hfs::mount(&c, &mnt, false).expect_err("write-protected");
    let text = e.to_string();
    eprintln!("{text}\n");
    assert!(matches!(e, FsError::MountCall { .. }), "{text}");
    for want in [
        format!("mount(2) of {loopdev} on {}", mnt.display()),
        "write-protected".to_string(),
        format!("`mount -t ext4 {loopdev} {}`", mnt.display()),
        "dmesg".to_string(),
    ] {
        assert!(text.contains(&want), "{want:?} missing in:\n{text}");
    }
    assert!(hfs::mountpoints_of(dev).expect("table").is_empty());
    // Read-only is what it can do.
    assert!(
        hfs::mount(&c, &mnt, true)
            .expect("mounted read-only")
            .read_only
    );
    hfs::unmount(&mnt).expect("unmounted");
}
