//! Mount and unmount, judged by the kernel's mount table rather than by an exit status:
//! a device counts as mounted somewhere when the table shows its device number, its
//! canonical path, or a loop device backed by its image file.

use std::fs as stdfs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::mount::MsFlags;
use tracing::{info, info_span, warn};

use super::{
    Checked, FsError, Mounted, args, display_command, is_regular_file, relevant_lines, run,
};
use crate::fence::proof::Fenced;
use crate::mountinfo;

pub(super) type MountEntry = mountinfo::Entry;

pub(super) fn read_mount_table() -> Result<Vec<MountEntry>, FsError> {
    mountinfo::read().map_err(|e| match e {
        mountinfo::MountinfoError::Read { path, source } => FsError::Io {
            what: "reading the mount table".to_string(),
            path,
            source,
        },
    })
}

/// Whether this mount is of `device`: the same block device number, the same canonical
/// path, or a loop device backed by the image file `device`.
pub(super) fn is_device(entry: &MountEntry, device: &Path) -> bool {
    let Ok(meta) = stdfs::metadata(device) else {
        return false;
    };
    if meta.file_type().is_block_device() {
        let rdev = meta.rdev();
        if nix::sys::stat::major(rdev) == u64::from(entry.major)
            && nix::sys::stat::minor(rdev) == u64::from(entry.minor)
        {
            return true;
        }
    }
    let Ok(canon) = stdfs::canonicalize(device) else {
        return false;
    };
    if stdfs::canonicalize(&entry.source).is_ok_and(|s| s == canon) {
        return true;
    }
    if meta.file_type().is_file() {
        let backing = format!(
            "/sys/dev/block/{}:{}/loop/backing_file",
            entry.major, entry.minor
        );
        if let Ok(b) = stdfs::read_to_string(backing) {
            let b = b.trim_end_matches('\n');
            let b = b.strip_suffix(" (deleted)").unwrap_or(b);
            return stdfs::canonicalize(b).is_ok_and(|p| p == canon);
        }
    }
    false
}

/// What is visible at `mountpoint`: with stacked mounts, the last one.
pub(super) fn mounted_at<'a>(table: &'a [MountEntry], mountpoint: &Path) -> Option<&'a MountEntry> {
    table.iter().rev().find(|m| m.mount_point == mountpoint)
}

fn ro_rw(read_only: bool) -> &'static str {
    if read_only { "read-only" } else { "read-write" }
}

/// Where `device` is mounted now (empty if nowhere).
pub fn mountpoints_of(device: &Path) -> Result<Vec<PathBuf>, FsError> {
    Ok(read_mount_table()?
        .into_iter()
        .filter(|e| is_device(e, device))
        .map(|e| e.mount_point)
        .collect())
}

/// Is `device` mounted on `mountpoint` now? An unreadable mount table counts as no:
/// callers then go on to check and mount, which refuse a mounted device themselves.
pub fn is_mounted_at(device: &Path, mountpoint: &Path) -> bool {
    mountpoints_of(device)
        .unwrap_or_default()
        .iter()
        .any(|m| m == mountpoint)
}

/// Mount a checked filesystem, creating the mountpoint directory if missing. Idempotent:
/// if the device is already mounted there in the asked mode, nothing is done.
pub fn mount(checked: &Checked, mountpoint: &Path, read_only: bool) -> Result<Mounted, FsError> {
    let device = checked.device();
    let _span = info_span!(
        "fs-mount",
        device = %device.display(),
        mountpoint = %mountpoint.display(),
        read_only
    )
    .entered();
    stdfs::create_dir_all(mountpoint).map_err(|source| FsError::Io {
        what: "creating the mountpoint".to_string(),
        path: mountpoint.to_path_buf(),
        source,
    })?;
    // The kernel lists canonical paths; a symlinked mountpoint would never match.
    let mp = stdfs::canonicalize(mountpoint).map_err(|source| FsError::Io {
        what: "resolving the mountpoint".to_string(),
        path: mountpoint.to_path_buf(),
        source,
    })?;
    let table = read_mount_table()?;
    if let Some(there) = mounted_at(&table, &mp) {
        if !is_device(there, device) {
            return Err(FsError::Occupied {
                device: device.to_path_buf(),
                mountpoint: mp,
                source_dev: there.source.clone(),
                fs_type: there.fs_type.clone(),
            });
        }
        if there.read_only != read_only {
            return Err(FsError::ModeMismatch {
                device: device.to_path_buf(),
                mountpoint: mp,
                actual: ro_rw(there.read_only),
                wanted: ro_rw(read_only),
            });
        }
        info!("already mounted there; nothing to do");
        return Ok(Mounted {
            device: device.to_path_buf(),
            mountpoint: mp,
            read_only,
            already: true,
        });
    }
    let elsewhere: Vec<String> = table
        .iter()
        .filter(|m| is_device(m, device))
        .map(|m| m.mount_point.display().to_string())
        .collect();
    if !elsewhere.is_empty() {
        warn!(at = ?elsewhere, "the device is also mounted elsewhere");
    }

    let (how, seconds) = if is_regular_file(device) {
        mount_image(checked.fs_type(), read_only, device, &mp)?
    } else {
        mount_call(checked.fs_type(), read_only, device, &mp)?
    };
    // Success reported is not the proof; the kernel's table is.
    let table = read_mount_table()?;
    match mounted_at(&table, &mp) {
        Some(m) if is_device(m, device) => {
            info!(seconds, "mounted");
            Ok(Mounted {
                device: device.to_path_buf(),
                mountpoint: mp,
                read_only: m.read_only,
                already: false,
            })
        }
        other => Err(FsError::NotMountedAfter {
            device: device.to_path_buf(),
            mountpoint: mp,
            command: how,
            found: other.map_or("nothing mounted there".to_string(), |m| {
                format!("{} is there", m.source)
            }),
        }),
    }
}

/// The mount(8) command line that mounts `device` on `mp` as hamn does.
fn mount_args(fs_type: &str, read_only: bool, device: &Path, mp: &Path) -> Vec<std::ffi::OsString> {
    let mut a = args(["-t", fs_type]);
    if read_only {
        a.extend(args(["-o", "ro"]));
    }
    a.push(device.as_os_str().to_owned());
    a.push(mp.as_os_str().to_owned());
    a
}

/// Mount a block device with mount(2) itself (issue 13): a process costs 0.1-0.4 s in
/// the TCG lab, and mount(8) only translated `-t` and `-o ro` here. What it did beyond
/// that is not wanted: it would retry a write-protected device read-only, while a
/// takeover that asked for read-write must fail instead. Returns how it was done, for
/// messages, and the seconds it took.
fn mount_call(
    fs_type: &str,
    read_only: bool,
    device: &Path,
    mp: &Path,
) -> Result<(String, f64), FsError> {
    let equivalent = display_command("mount", &mount_args(fs_type, read_only, device, mp));
    let how = format!("mount(2), as `{equivalent}`,");
    // The kernel records the source as given; mount(8) gave the canonical path
    // (/dev/md127, not /dev/md/hamn-0), and the table should read the same as before.
    let source = stdfs::canonicalize(device).unwrap_or_else(|_| device.to_path_buf());
    let flags = if read_only {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    };
    let started = Instant::now();
    let _span = info_span!("fs-step", call = %how).entered();
    nix::mount::mount(
        Some(source.as_path()),
        mp,
        Some(fs_type),
        flags,
        None::<&str>,
    )
    .map_err(|errno| FsError::MountCall {
        device: device.to_path_buf(),
        mountpoint: mp.to_path_buf(),
        errno,
        hint: mount_errno_hint(errno, fs_type, read_only),
        equivalent: equivalent.clone(),
    })?;
    Ok((how, started.elapsed().as_secs_f64()))
}

/// What a failed mount(2) most likely means, as far as the errno tells (mount(2),
/// "ERRORS"); the kernel log says more.
fn mount_errno_hint(errno: nix::errno::Errno, fs_type: &str, read_only: bool) -> String {
    use nix::errno::Errno;
    match errno {
        Errno::ENODEV => format!("this kernel does not support {fs_type} (`modprobe {fs_type}`)"),
        Errno::EBUSY => "the device is in use (mounted elsewhere, or held by md, dm or \
                         another exclusive user: `lsblk` shows which)"
            .to_string(),
        Errno::EROFS | Errno::EACCES if !read_only => {
            "the device is write-protected; it can only be mounted read-only".to_string()
        }
        Errno::EINVAL | Errno::EUCLEAN => {
            format!("the kernel did not accept the {fs_type} filesystem on it")
        }
        Errno::ENOTBLK | Errno::ENXIO | Errno::ENOENT => {
            "the device is gone or is not a block device".to_string()
        }
        _ => String::new(),
    }
}

/// Image files (the tests' filesystems) go through mount(8), which sets up the loop
/// device the kernel needs for them.
fn mount_image(
    fs_type: &str,
    read_only: bool,
    device: &Path,
    mp: &Path,
) -> Result<(String, f64), FsError> {
    let ran = run("mount", &mount_args(fs_type, read_only, device, mp))?;
    if ran.exit != Some(0) {
        return Err(FsError::MountFailed {
            device: device.to_path_buf(),
            mountpoint: mp.to_path_buf(),
            command: ran.command,
            exit: ran.exit,
            said: relevant_lines(&ran.output, 4),
        });
    }
    Ok((format!("`{}`", ran.command), ran.seconds))
}

/// Remount a filesystem that a takeover mounted read-only, read-write: the admin looked
/// and now lets xCAT write.
/// `fenced` must be a proof for `owner`, whose filesystem this is.
pub fn remount_rw(mountpoint: &Path, fenced: &Fenced, owner: &str) -> Result<(), FsError> {
    fenced.covers(
        owner,
        &format!("the filesystem on {}", mountpoint.display()),
    )?;
    let _span = info_span!(
        "fs-remount-rw",
        mountpoint = %mountpoint.display(),
        fenced = fenced.node()
    )
    .entered();
    let mut argv = args(["-o", "remount,rw"]);
    argv.push(mountpoint.as_os_str().to_owned());
    let ran = run("mount", &argv)?;
    if ran.exit != Some(0) {
        return Err(FsError::RemountFailed {
            mountpoint: mountpoint.to_path_buf(),
            said: relevant_lines(&ran.output, 4),
        });
    }
    Ok(())
}

/// Unmount `mountpoint`; nothing mounted there is success. Never lazy: a lazy unmount
/// would let the filesystem live on, invisibly, while the takeover thinks it is gone.
pub fn unmount(mountpoint: &Path) -> Result<(), FsError> {
    let _span = info_span!("fs-unmount", mountpoint = %mountpoint.display()).entered();
    let mp = match stdfs::canonicalize(mountpoint) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            info!("no such directory; nothing mounted");
            return Ok(());
        }
        Err(source) => {
            return Err(FsError::Io {
                what: "resolving the mountpoint".to_string(),
                path: mountpoint.to_path_buf(),
                source,
            });
        }
    };
    if mounted_at(&read_mount_table()?, &mp).is_none() {
        info!("nothing mounted there");
        return Ok(());
    }
    let ran = run("umount", &[mp.as_os_str().to_owned()])?;
    if ran.exit != Some(0) {
        let said = relevant_lines(&ran.output, 4);
        if ran.output.contains("busy") {
            return Err(FsError::Busy {
                mountpoint: mp,
                said,
            });
        }
        return Err(FsError::UnmountFailed {
            mountpoint: mp,
            command: ran.command,
            exit: ran.exit,
            said,
        });
    }
    if let Some(m) = mounted_at(&read_mount_table()?, &mp) {
        // Stacked mounts: one was removed, another is still visible there.
        return Err(FsError::UnmountFailed {
            mountpoint: mp,
            command: ran.command,
            exit: ran.exit,
            said: vec![format!(
                "{} ({}) is still mounted there",
                m.source, m.fs_type
            )],
        });
    }
    info!(seconds = ran.seconds, "unmounted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;

    #[test]
    fn a_failed_mount_call_names_errno_device_mountpoint_and_the_command() {
        let dev = Path::new("/dev/md127");
        let mp = Path::new("/install");
        let e = FsError::MountCall {
            device: dev.to_path_buf(),
            mountpoint: mp.to_path_buf(),
            errno: Errno::EINVAL,
            hint: mount_errno_hint(Errno::EINVAL, "ext4", true),
            equivalent: display_command("mount", &mount_args("ext4", true, dev, mp)),
        };
        let t = e.to_string();
        for want in [
            "mount(2) of /dev/md127 on /install failed: EINVAL: Invalid argument",
            "did not accept the ext4 filesystem",
            "dmesg",
            "`mount -t ext4 -o ro /dev/md127 /install`",
        ] {
            assert!(t.contains(want), "{want:?} missing in:\n{t}");
        }
    }

    #[test]
    fn errno_hints() {
        assert!(mount_errno_hint(Errno::ENODEV, "xfs", true).contains("modprobe xfs"));
        assert!(mount_errno_hint(Errno::EROFS, "ext4", false).contains("write-protected"));
        // Read-only was asked: write protection is not the reason.
        assert_eq!(mount_errno_hint(Errno::EROFS, "ext4", true), "");
        assert_eq!(mount_errno_hint(Errno::EIO, "ext4", true), "");
    }
}
