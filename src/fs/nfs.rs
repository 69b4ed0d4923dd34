//! NFS shares of the xCAT data (xCAT's published option 5 keeps it on NFS). There is
//! nothing to check on the client and nothing to preempt: the server checks its own
//! filesystems, and the peer stops writing only when it is off. So mounting a share needs
//! a proof that the peer was powered off (or the admin's logged statement that it is),
//! not merely that its reservation was preempted.
//!
//! The mount goes through mount(8) and its mount.nfs helper, which negotiates the
//! version and resolves the server: what mount(2) would need for NFS is that helper's
//! whole job.

use std::ffi::OsString;
use std::fs as stdfs;
use std::path::{Path, PathBuf};

use tracing::{info, info_span};

use super::mount::{mounted_at, read_mount_table};
use super::{FsError, Mounted, args, display_command, relevant_lines, run};
use crate::fence::proof::Fenced;

pub use crate::config::is_network_fs;

/// The share as the kernel's table writes it: "server:/export", without a trailing '/'.
fn normal(share: &str) -> &str {
    match share.strip_suffix('/') {
        Some(s) if !s.ends_with(':') => s,
        _ => share,
    }
}

fn is_share(entry: &super::mount::MountEntry, share: &str) -> bool {
    is_network_fs(&entry.fs_type) && normal(&entry.source) == normal(share)
}

/// The mount(8) command hamn runs for a share.
fn mount_args(share: &str, fs_type: &str, options: Option<&str>, mp: &Path) -> Vec<OsString> {
    let mut a = args(["-t", fs_type]);
    if let Some(o) = options.filter(|o| !o.is_empty()) {
        a.extend(args(["-o", o]));
    }
    a.push(share.into());
    a.push(mp.as_os_str().to_owned());
    a
}

/// The command line for plans.
pub fn mount_command(share: &str, fs_type: &str, options: Option<&str>, mp: &Path) -> String {
    display_command("mount", &mount_args(share, fs_type, options, mp))
}

/// Is `share` mounted on `mountpoint` now? An unreadable table counts as no.
pub fn is_share_mounted_at(share: &str, mountpoint: &Path) -> bool {
    let Ok(mp) = stdfs::canonicalize(mountpoint) else {
        return false;
    };
    read_mount_table()
        .ok()
        .and_then(|t| mounted_at(&t, &mp).map(|e| is_share(e, share)))
        .unwrap_or(false)
}

/// Mount `share` on `mountpoint`, creating the directory if missing. Idempotent: the
/// share already there is success; anything else there is a refusal.
pub fn mount_share(
    share: &str,
    fs_type: &str,
    options: Option<&str>,
    mountpoint: &Path,
    fenced: &Fenced,
    owner: &str,
) -> Result<Mounted, FsError> {
    let subject = format!("the NFS share {share}");
    fenced.covers(owner, &subject)?;
    if !fenced.stops_all_writes() {
        return Err(FsError::ShareNeedsPowerOff {
            share: share.to_string(),
            node: owner.to_string(),
            proof: fenced.method().summary(),
        });
    }
    let _span = info_span!("fs-mount-share", share, mountpoint = %mountpoint.display()).entered();
    let io = |what: &str, source| FsError::Io {
        what: what.to_string(),
        path: mountpoint.to_path_buf(),
        source,
    };
    stdfs::create_dir_all(mountpoint).map_err(|e| io("creating the mountpoint", e))?;
    let mp = stdfs::canonicalize(mountpoint).map_err(|e| io("resolving the mountpoint", e))?;
    let device = PathBuf::from(share);
    if let Some(there) = mounted_at(&read_mount_table()?, &mp) {
        if !is_share(there, share) {
            return Err(FsError::Occupied {
                device,
                mountpoint: mp,
                source_dev: there.source.clone(),
                fs_type: there.fs_type.clone(),
            });
        }
        info!("already mounted there; nothing to do");
        return Ok(Mounted {
            device,
            mountpoint: mp,
            read_only: there.read_only,
            already: true,
        });
    }
    let ran = run("mount", &mount_args(share, fs_type, options, &mp))?;
    if ran.exit != Some(0) {
        return Err(FsError::MountFailed {
            device,
            mountpoint: mp,
            command: ran.command,
            exit: ran.exit,
            said: relevant_lines(&ran.output, 4),
        });
    }
    match mounted_at(&read_mount_table()?, &mp) {
        Some(m) if is_share(m, share) => {
            info!(seconds = ran.seconds, "mounted");
            Ok(Mounted {
                device,
                mountpoint: mp,
                read_only: m.read_only,
                already: false,
            })
        }
        other => Err(FsError::NotMountedAfter {
            device,
            mountpoint: mp,
            command: format!("`{}`", ran.command),
            found: other.map_or("nothing mounted there".to_string(), |m| {
                format!("{} is there", m.source)
            }),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_and_the_config_may_differ_by_a_trailing_slash() {
        assert_eq!(normal("filer:/srv/xcat/"), "filer:/srv/xcat");
        assert_eq!(normal("filer:/"), "filer:/");
        assert_eq!(normal("[fd00::1]:/x"), "[fd00::1]:/x");
    }

    #[test]
    fn the_command_is_mount_t_type_o_options_share_mountpoint() {
        let c = mount_command(
            "10.0.2.2:/srv/xcat",
            "nfs4",
            Some("vers=4.2,port=2049"),
            Path::new("/install"),
        );
        assert_eq!(
            c,
            "mount -t nfs4 -o vers=4.2,port=2049 10.0.2.2:/srv/xcat /install"
        );
        let c = mount_command("f:/x", "nfs", None, Path::new("/install"));
        assert_eq!(c, "mount -t nfs f:/x /install");
    }

    #[test]
    fn a_preempted_reservation_does_not_let_a_share_be_mounted() {
        // for_tests is an admin override: it covers shares.
        let p = Fenced::for_tests("mn1");
        assert!(p.stops_all_writes());
        let dir = tempfile::tempdir().expect("tempdir");
        let e = mount_share("f:/x", "nfs4", None, dir.path(), &p, "mn2").expect_err("other node");
        assert!(e.to_string().contains("mn2"), "{e}");
    }
}
