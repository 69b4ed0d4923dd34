//! XFS: `xfs_repair -n` judges the filesystem, but not a dirty log, which only a mount
//! replays; so a dirty log is replayed by mounting privately, and a log judged clean is
//! confirmed by a read-only trial mount, since the kernel reads logs that xfs_repair -n
//! cannot. Repair never uses -L: discarding the log is the admin's decision.

use std::ffi::OsString;
use std::fs as stdfs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

use tracing::warn;

use super::{FsError, Policy, Record, args, dev_arg, display_command, is_regular_file, run};
use crate::exec;
use crate::fence::proof::Fenced;

/// What an `xfs_repair` run found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum XfsVerdict {
    Clean,
    /// The log holds metadata changes: mount to replay before judging.
    DirtyLog,
    /// `-n` found corruption.
    Corrupt,
    /// xfs_repair could not find the log's head or tail.
    LogUnreadable,
    /// xfs_repair (without -n) completed.
    Repaired,
    Failed(String),
}

/// xfs_repair(8) "EXIT STATUS": with -n, 1 = corruption found, 0 = none; without -n, 0 =
/// completed, 1 = runtime error; 2 = the log must be replayed first. With -n a dirty log
/// is only a warning ("ALERT: ... valuable metadata changes in a log which is being
/// ignored") and the exit is 1, so the message decides.
fn xfs_repair_verdict(no_modify: bool, exit: Option<i32>, output: &str) -> XfsVerdict {
    let dirty = output.contains("valuable metadata changes in a log");
    let unreadable = output.contains("cannot find log head/tail")
        || output.contains("log head and/or tail cannot be discovered");
    match exit {
        None => XfsVerdict::Failed("killed by a signal".to_string()),
        Some(2) => XfsVerdict::DirtyLog,
        Some(1) if dirty => XfsVerdict::DirtyLog,
        Some(1) if unreadable => XfsVerdict::LogUnreadable,
        Some(0) if no_modify => XfsVerdict::Clean,
        Some(0) => XfsVerdict::Repaired,
        Some(1) if no_modify => XfsVerdict::Corrupt,
        Some(1) => XfsVerdict::Failed("xfs_repair failed".to_string()),
        Some(c) => XfsVerdict::Failed(format!("unknown status {c}")),
    }
}

fn xfs_meaning(v: &XfsVerdict) -> String {
    match v {
        XfsVerdict::Clean => "clean".to_string(),
        XfsVerdict::DirtyLog => "the log holds metadata changes that must be replayed".to_string(),
        XfsVerdict::Corrupt => "corruption found".to_string(),
        XfsVerdict::LogUnreadable => "the log's head or tail cannot be found".to_string(),
        XfsVerdict::Repaired => "repair completed".to_string(),
        XfsVerdict::Failed(m) => m.clone(),
    }
}

fn xfs_repair_args(device: &Path, no_modify: bool) -> Vec<OsString> {
    let mut a = Vec::new();
    if no_modify {
        a.push(OsString::from("-n"));
    }
    // xfs_repair refuses a regular file without -f ("the device is a file").
    if is_regular_file(device) {
        a.push(OsString::from("-f"));
    }
    a.push(device.as_os_str().to_owned());
    a
}

/// By-hand steps for an XFS filesystem the checker refused.
fn xfs_next(device: &Path, log_trouble: bool) -> Vec<String> {
    let dev = dev_arg(device);
    // An image file needs -f; the admin should be able to paste the command as shown.
    let f = if is_regular_file(device) { "-f " } else { "" };
    let mut next = Vec::new();
    if log_trouble {
        next.push(format!(
            "`mount -t xfs {dev} /mnt && umount /mnt` replays the log (if it fails, \
             `dmesg` says why)"
        ));
        next.push(format!(
            "`xfs_repair -L {f}{dev}` only as the last resort: it DISCARDS the metadata \
             changes still in the log (recent changes are lost), then repairs"
        ));
    } else {
        next.push(format!("`xfs_repair {f}{dev}` repairs"));
    }
    next
}

static REPLAY_DIRS: AtomicU32 = AtomicU32::new(0);

/// A directory only root can enter, for the replay mount, so that nothing else sees or
/// uses the filesystem while it is mounted there.
fn private_dir() -> Result<PathBuf, FsError> {
    let base = std::env::temp_dir();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut last = None;
    for _ in 0..16 {
        let n = REPLAY_DIRS.fetch_add(1, Ordering::Relaxed);
        let p = base.join(format!(
            "hamn-xfs-replay.{}.{n}.{nanos}",
            std::process::id()
        ));
        match stdfs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                return Err(FsError::Io {
                    what: "creating the replay directory".to_string(),
                    path: p,
                    source: e,
                });
            }
        }
    }
    Err(FsError::Io {
        what: "creating the replay directory".to_string(),
        path: base,
        source: last.unwrap_or_else(|| io::Error::other("no free name")),
    })
}

/// Replay a dirty XFS log the only way there is: mount and unmount. The replay writes to
/// the peer's storage, so it takes the fencing proof itself, whoever calls it.
///
/// With `trial`, the log was judged clean by `xfs_repair -n`, which cannot read every log:
/// one overwritten with garbage passed as "zeroed" while the kernel refused to mount it.
/// A read-only trial mount lets the kernel's own log recovery judge it before the real
/// mount is attempted.
fn replay_xfs_log(rec: &mut Record, _fenced: &Fenced, trial: bool) -> Result<(), FsError> {
    let device = rec.device;
    let dir = private_dir()?;
    let mut mount_args = vec![OsString::from("-t"), OsString::from("xfs")];
    if trial {
        mount_args.extend([OsString::from("-o"), OsString::from("ro")]);
    }
    mount_args.extend([device.as_os_str().to_owned(), dir.as_os_str().to_owned()]);
    let ran = run("mount", &mount_args)?;
    if ran.exit != Some(0) {
        let _ = stdfs::remove_dir(&dir);
        let meaning = if trial {
            "the kernel cannot mount it (a trial mount, read-only, failed): its log or \
             metadata is damaged in a way xfs_repair -n did not see"
        } else {
            "the log could not be replayed: mounting the filesystem failed"
        };
        let mut next = xfs_next(device, true);
        next.insert(0, "`dmesg | tail` says why the mount failed".to_string());
        return Err(rec.refuse(&ran, meaning, next));
    }
    rec.record(
        &ran,
        if trial {
            "mounted privately, read-only: the kernel accepts the log"
        } else {
            "mounted privately to replay the log"
        },
    );
    let ran = run("umount", &[dir.as_os_str().to_owned()])?;
    if ran.exit != Some(0) {
        let meaning = "the replay mount could not be unmounted; the filesystem is still \
                       mounted there";
        let next = vec![format!(
            "`umount {}`, then run again",
            exec::shell_quote(&dir.to_string_lossy())
        )];
        return Err(rec.refuse(&ran, meaning, next));
    }
    rec.record(
        &ran,
        if trial {
            "unmounted"
        } else {
            "unmounted: log replayed"
        },
    );
    if let Err(e) = stdfs::remove_dir(&dir) {
        warn!(dir = %dir.display(), error = %e, "replay directory left behind");
    }
    Ok(())
}

pub(super) fn check_xfs(
    rec: &mut Record,
    policy: Policy,
    fenced: &Fenced,
) -> Result<Option<String>, FsError> {
    let device = rec.device;

    let mut replayed = false;
    let verdict = loop {
        let ran = run("xfs_repair", &xfs_repair_args(device, true))?;
        let v = xfs_repair_verdict(true, ran.exit, &ran.output);
        match v {
            XfsVerdict::Clean => {
                rec.record(&ran, &xfs_meaning(&v));
                if !replayed {
                    replay_xfs_log(rec, fenced, true)?;
                }
                break v;
            }
            XfsVerdict::DirtyLog if !replayed => {
                rec.record(&ran, &xfs_meaning(&v));
                replay_xfs_log(rec, fenced, false)?;
                replayed = true;
            }
            XfsVerdict::DirtyLog => {
                let meaning = "the log is still dirty after it was replayed by mounting";
                return Err(rec.refuse(&ran, meaning, xfs_next(device, true)));
            }
            XfsVerdict::Corrupt if policy == Policy::Repair => {
                rec.record(&ran, &xfs_meaning(&v));
                break v;
            }
            XfsVerdict::LogUnreadable => {
                return Err(rec.refuse(&ran, &xfs_meaning(&v), xfs_next(device, true)));
            }
            XfsVerdict::Corrupt | XfsVerdict::Repaired | XfsVerdict::Failed(_) => {
                return Err(rec.refuse(&ran, &xfs_meaning(&v), xfs_next(device, false)));
            }
        }
    };

    if verdict == XfsVerdict::Corrupt {
        // Policy::Repair; never -L: discarding the log is the admin's decision.
        let ran = run("xfs_repair", &xfs_repair_args(device, false))?;
        let v = xfs_repair_verdict(false, ran.exit, &ran.output);
        match v {
            XfsVerdict::Repaired => rec.record(&ran, &xfs_meaning(&v)),
            XfsVerdict::DirtyLog | XfsVerdict::LogUnreadable => {
                return Err(rec.refuse(&ran, &xfs_meaning(&v), xfs_next(device, true)));
            }
            _ => return Err(rec.refuse(&ran, &xfs_meaning(&v), xfs_next(device, false))),
        }
    }

    Ok(xfs_uuid(rec))
}

fn xfs_db_uuid_args(device: &Path) -> Vec<OsString> {
    let mut a = args(["-r"]);
    if is_regular_file(device) {
        a.push(OsString::from("-f"));
    }
    a.extend(args(["-c", "uuid"]));
    a.push(device.as_os_str().to_owned());
    a
}

/// The UUID is a label for the record; failing to read it is not a reason to refuse.
fn xfs_uuid(rec: &mut Record) -> Option<String> {
    let ran = match run("xfs_db", &xfs_db_uuid_args(rec.device)) {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "UUID not read");
            return None;
        }
    };
    let uuid = (ran.exit == Some(0))
        .then(|| {
            ran.output
                .lines()
                .find_map(|l| l.trim().strip_prefix("UUID = "))
                .map(|u| u.trim().to_string())
        })
        .flatten();
    rec.record(
        &ran,
        if uuid.is_some() {
            "UUID read"
        } else {
            "UUID not read"
        },
    );
    uuid
}

/// The commands `check_xfs` runs, for a dry run; conditional ones carry a shell comment
/// saying when.
pub(super) fn plan(device: &Path, policy: Policy) -> Vec<String> {
    let dev = dev_arg(device);
    let check = display_command("xfs_repair", &xfs_repair_args(device, true));
    let mut v = vec![
        check.clone(),
        format!(
            "mount -t xfs {dev} <private temporary directory>  # only if the log \
             is dirty: mounting replays it"
        ),
        "umount <private temporary directory>".to_string(),
        format!("{check}  # again, after the replay"),
        format!(
            "mount -t xfs -o ro {dev} <private temporary directory>; umount it  # \
             if the log was clean: the kernel judges the log, which xfs_repair -n \
             cannot always"
        ),
    ];
    if policy == Policy::Repair {
        v.push(format!(
            "{}  # only if corruption was found",
            display_command("xfs_repair", &xfs_repair_args(device, false))
        ));
    }
    v.push(format!(
        "{}  # reads the UUID for the record",
        display_command("xfs_db", &xfs_db_uuid_args(device))
    ));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALERT: &str = "ALERT: The filesystem has valuable metadata changes in a log which \
                         is being\nignored because the -n option was used.";

    const ERROR2: &str = "ERROR: The filesystem has valuable metadata changes in a log which \
                          needs to\nbe replayed.  Mount the filesystem to replay the log";

    const HEADTAIL: &str = "zero_log: cannot find log head/tail (xlog_find_tail=22)";

    #[test]
    fn xfs_repair_exit_codes() {
        use XfsVerdict::*;
        let table: &[(bool, Option<i32>, &str, XfsVerdict)] = &[
            (true, Some(0), "", Clean),
            (true, Some(1), "bad magic # 0x0 for agf 1", Corrupt),
            (true, Some(1), ALERT, DirtyLog),
            (true, Some(2), "", DirtyLog),
            (true, Some(1), HEADTAIL, LogUnreadable),
            (true, Some(3), "", Failed("unknown status 3".into())),
            (true, None, "", Failed("killed by a signal".into())),
            (false, Some(0), "", Repaired),
            (false, Some(2), ERROR2, DirtyLog),
            (
                false,
                Some(1),
                "fatal error -- couldn't",
                Failed("xfs_repair failed".into()),
            ),
            (false, Some(1), HEADTAIL, LogUnreadable),
        ];
        for (no_modify, exit, out, want) in table {
            assert_eq!(
                &xfs_repair_verdict(*no_modify, *exit, out),
                want,
                "-n={no_modify} {exit:?} {out:?}"
            );
        }
    }
}
