//! Mount and unmount, judged by the kernel's mount table rather than by mount(8)'s exit
//! status: a device counts as mounted somewhere when the table shows its device number,
//! its canonical path, or a loop device backed by its image file.

use std::fs as stdfs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tracing::{info, info_span, warn};

use super::{Checked, FsError, Mounted, args, relevant_lines, run};
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
fn mounted_at<'a>(table: &'a [MountEntry], mountpoint: &Path) -> Option<&'a MountEntry> {
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

    let mut a = args(["-t", checked.fs_type()]);
    if read_only {
        a.extend(args(["-o", "ro"]));
    }
    a.push(device.as_os_str().to_owned());
    a.push(mp.as_os_str().to_owned());
    let ran = run("mount", &a)?;
    if ran.exit != Some(0) {
        return Err(FsError::MountFailed {
            device: device.to_path_buf(),
            mountpoint: mp,
            command: ran.command,
            exit: ran.exit,
            said: relevant_lines(&ran.output, 4),
        });
    }
    // mount(8) exiting 0 is not the proof; the kernel's table is.
    let table = read_mount_table()?;
    match mounted_at(&table, &mp) {
        Some(m) if is_device(m, device) => {
            info!(seconds = ran.seconds, "mounted");
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
            command: ran.command,
            found: other.map_or("nothing mounted there".to_string(), |m| {
                format!("{} is there", m.source)
            }),
        }),
    }
}

/// Unmount `mountpoint`; nothing mounted there is success. Never lazy: a lazy unmount
/// would let the filesystem live on, invisibly, while the takeover thinks it is gone.
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
