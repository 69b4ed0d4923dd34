//! Takeover with moved disks (xCAT's recipe 1): the failed node's disks are now in this
//! box. The gates, in order: the disks verify against the manifest (identity before use)
//! -> the failed node is fenced (BMC or the admin's audited statement) -> arrays are
//! assembled from exactly the verified members -> every filesystem is checked -> only
//! then is anything mounted. A refusal at any gate leaves the disks untouched by the
//! later steps.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::Serialize;
use tracing::info_span;

use crate::disks::manifest::{FsRecord, Manifest, same_uuid};
use crate::disks::md::{self, Assembled};
use crate::disks::verify::{Verdict, Verification};
use crate::fence::Fenced;
use crate::fs::{self, Checked, Policy};

#[derive(Debug, thiserror::Error)]
pub enum MovedError {
    #[error(
        "the disks do not match the manifest of {node}; nothing was touched:\n{list}\nSee \
         `hamn disks verify` for the full report"
    )]
    Refused { node: String, list: String },
    #[error(transparent)]
    Md(#[from] md::MdError),
    #[error(
        "{device} ({label}): expected {want}, but it holds {seen}; the array was assembled \
         but nothing is mounted. {hint}"
    )]
    WrongFilesystem {
        device: String,
        label: String,
        want: String,
        seen: String,
        hint: String,
    },
    #[error(
        "{count} filesystem check(s) failed; nothing was mounted (the arrays stay assembled, \
         for the repair):\n{list}\nRepair by hand as said, then run `hamn takeover \
         --moved-disks` again"
    )]
    Checks { count: usize, list: String },
    #[error("{mountpoint} is mounted, but `mount -o remount,rw {mountpoint}` failed; see `dmesg`")]
    Remount { mountpoint: String },
    #[error("mounting {device} on {mountpoint}: {source}")]
    Mount {
        device: String,
        mountpoint: String,
        source: fs::FsError,
    },
}

/// One filesystem to bring up.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub device: PathBuf,
    /// Where the device name came from: "array box1:0" or "disk xfs-1".
    pub what: String,
    pub filesystem: FsRecord,
}

/// One line of progress, also the JSON event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub step: String,
    pub detail: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub node: String,
    pub verdict: Verdict,
    pub fenced: Fenced,
    pub arrays: Vec<Assembled>,
    pub mounted: Vec<fs::Mounted>,
    pub checked_only: Vec<String>,
    /// Already mounted where the manifest says (the OS booted from the moved disks).
    pub in_use: Vec<String>,
    pub events: Vec<Event>,
}

/// The commands a takeover would run, for --dry-run.
pub fn plan(v: &Verification, read_write: bool) -> Vec<String> {
    let mut out = Vec::new();
    for a in &v.arrays {
        if let Some(k) = &a.assembled {
            out.push(format!(
                "# {k} is already assembled from the verified members: used as it is"
            ));
            if let Some(fs) = &a.filesystem {
                out.push(format!(
                    "# its {} is checked and mounted unless already mounted on {}",
                    fs.fs_type,
                    fs.mountpoint.as_deref().unwrap_or("its mount point")
                ));
            }
            continue;
        }
        for (k, state) in &a.running {
            out.push(format!(
                "mdadm {}    # {k} is running ({})",
                md::stop_args(k).join(" "),
                state.as_deref().unwrap_or("?")
            ));
        }
        out.push(format!("mdadm {}", md::assemble_args(a).join(" ")));
        if let Some(fs) = &a.filesystem {
            let dev = PathBuf::from(md::device_name(a));
            out.extend(fs::plan(&dev, &fs.fs_type, Policy::CheckOnly));
        }
    }
    for vol in &v.volumes {
        out.extend(fs::plan(
            &vol.devnode,
            &vol.filesystem.fs_type,
            Policy::CheckOnly,
        ));
    }
    for t in mount_order(targets_planned(v)) {
        if let Some(mp) = &t.filesystem.mountpoint {
            out.push(format!(
                "mount -t {} -o {} {} {mp}",
                t.filesystem.fs_type,
                if read_write { "rw" } else { "ro" },
                t.device.display()
            ));
        }
    }
    out
}

fn targets_planned(v: &Verification) -> Vec<Target> {
    let mut t: Vec<Target> = v
        .arrays
        .iter()
        .filter_map(|a| {
            Some(Target {
                device: PathBuf::from(md::device_name(a)),
                what: format!("array {}", a.name.as_deref().unwrap_or(&a.uuid)),
                filesystem: a.filesystem.clone()?,
            })
        })
        .collect();
    t.extend(v.volumes.iter().map(|vol| Target {
        device: vol.devnode.clone(),
        what: format!("disk {}", vol.devnode.display()),
        filesystem: vol.filesystem.clone(),
    }));
    t
}

/// Parents before children (/install before /install/netboot), so no mount hides another.
fn mount_order(mut t: Vec<Target>) -> Vec<Target> {
    t.sort_by_key(|x| {
        x.filesystem
            .mountpoint
            .as_deref()
            .map(|m| (Path::new(m).components().count(), m.to_string()))
    });
    t
}

/// What blkid finds on the device right now: (type, uuid).
fn probe(device: &Path) -> (Option<String>, Option<String>) {
    let out = Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(device)
        .env("LC_ALL", "C")
        .output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::to_string)
    };
    (get("TYPE="), get("UUID="))
}

/// Runs the storage part of the takeover. `progress` sees each step as it ends.
pub fn run(
    manifest: &Manifest,
    v: &Verification,
    accept_degraded: bool,
    read_write: bool,
    fenced: Fenced,
    progress: &mut dyn FnMut(&Event),
) -> Result<Outcome, MovedError> {
    let mut events = Vec::new();
    let mut emit = |step: &str, detail: String, started: Instant| {
        let e = Event {
            step: step.into(),
            detail,
            seconds: started.elapsed().as_secs_f64(),
        };
        progress(&e);
        events.push(e);
    };
    let refusals: Vec<String> = v
        .refusals(accept_degraded)
        .map(|f| format!("  {}: {}", f.subject, f.message))
        .collect();
    if !refusals.is_empty() {
        return Err(MovedError::Refused {
            node: manifest.node.clone(),
            list: refusals.join("\n"),
        });
    }

    let mut arrays = Vec::new();
    let mut targets = Vec::new();
    for a in &v.arrays {
        let label = a.name.clone().unwrap_or_else(|| a.uuid.clone());
        let _span = info_span!("assemble", array = %label).entered();
        let t = Instant::now();
        let done = md::assemble(a, &fenced)?;
        emit(
            "assemble",
            format!(
                "{label} as {} from {}{}{}",
                done.devnode.display(),
                a.members
                    .iter()
                    .map(|m| m.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
                if done.degraded { ", DEGRADED" } else { "" },
                if done.reused {
                    ", already assembled by an earlier run"
                } else {
                    ""
                }
            ),
            t,
        );
        if let Some(fs) = &a.filesystem {
            // Identity of what the array holds, before any check writes to it.
            let (ty, uuid) = probe(&done.devnode);
            let type_ok = ty.as_deref() == Some(fs.fs_type.as_str());
            let uuid_ok = match (&fs.uuid, &uuid) {
                (Some(w), Some(g)) => same_uuid(w, g),
                (None, _) => true,
                (Some(_), None) => false,
            };
            if !(type_ok && uuid_ok) {
                let dev = done.devnode.display().to_string();
                // No filesystem at all is most likely a damaged primary superblock; another
                // filesystem means other data: never repair that.
                let hint = match (ty.as_deref(), fs.fs_type.as_str()) {
                    (None, "ext2" | "ext3" | "ext4") => format!(
                        "If its primary superblock is damaged, list the backups with `mke2fs \
                         -n {dev}` and repair by hand with `e2fsck -b 32768 {dev}`; then run \
                         the takeover again"
                    ),
                    (None, "xfs") => format!(
                        "If its superblock is damaged, `xfs_repair {dev}` finds a secondary \
                         one; then run the takeover again"
                    ),
                    _ => format!(
                        "Stop it with `mdadm --stop {dev}` and find out which disks these are"
                    ),
                };
                return Err(MovedError::WrongFilesystem {
                    hint,
                    device: done.devnode.display().to_string(),
                    label,
                    want: format!("{} {}", fs.fs_type, fs.uuid.as_deref().unwrap_or("")),
                    seen: format!(
                        "{} {}",
                        ty.as_deref().unwrap_or("no filesystem blkid knows"),
                        uuid.as_deref().unwrap_or("")
                    ),
                });
            }
            targets.push(Target {
                device: done.devnode.clone(),
                what: format!("array {label}"),
                filesystem: fs.clone(),
            });
        }
        arrays.push(done);
    }
    targets.extend(v.volumes.iter().map(|vol| Target {
        device: vol.devnode.clone(),
        what: format!("disk {}", vol.devnode.display()),
        filesystem: vol.filesystem.clone(),
    }));

    // Check everything before mounting anything: half of xCAT's data is worse than none.
    let mut checked: Vec<(Target, Checked)> = Vec::new();
    let mut failures = Vec::new();
    let mut in_use = Vec::new();
    for t in targets {
        let _span = info_span!("check", device = %t.device.display()).entered();
        let started = Instant::now();
        // The OS moved with the disks and booted from them: what it mounted at the recorded
        // place is in use; it was checked at boot and cannot be checked live.
        if let Some(mp) = &t.filesystem.mountpoint
            && fs::is_mounted_at(&t.device, Path::new(mp))
        {
            emit(
                "in use",
                format!(
                    "{} ({}) is already mounted on {mp}: used as it is",
                    t.device.display(),
                    t.what
                ),
                started,
            );
            in_use.push(format!("{} on {mp}", t.device.display()));
            // A second run with --read-write after looking at the read-only mount.
            if read_write {
                let ok = Command::new("mount")
                    .args(["-o", "remount,rw", mp])
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    return Err(MovedError::Remount {
                        mountpoint: mp.clone(),
                    });
                }
            }
            continue;
        }
        match fs::check(&t.device, &t.filesystem.fs_type, Policy::CheckOnly, &fenced) {
            Ok(c) => {
                emit(
                    "check",
                    format!(
                        "{} {} on {} ({}): {}",
                        t.filesystem.fs_type,
                        t.filesystem.label.as_deref().unwrap_or(""),
                        t.device.display(),
                        t.what,
                        fs::replay_note(&c)
                    ),
                    started,
                );
                checked.push((t, c));
            }
            Err(e) => failures.push(format!("  {} ({}): {e}", t.device.display(), t.what)),
        }
    }
    if !failures.is_empty() {
        return Err(MovedError::Checks {
            count: failures.len(),
            list: failures.join("\n"),
        });
    }

    let mut mounted = Vec::new();
    let mut checked_only = Vec::new();
    checked.sort_by_key(|(t, _)| {
        t.filesystem
            .mountpoint
            .as_deref()
            .map(|m| (Path::new(m).components().count(), m.to_string()))
    });
    for (t, c) in &checked {
        let Some(mp) = &t.filesystem.mountpoint else {
            checked_only.push(t.device.display().to_string());
            continue;
        };
        let _span = info_span!("mount", device = %t.device.display(), mountpoint = %mp).entered();
        let started = Instant::now();
        let m = fs::mount(c, Path::new(mp), !read_write).map_err(|source| MovedError::Mount {
            device: t.device.display().to_string(),
            mountpoint: mp.clone(),
            source,
        })?;
        emit(
            "mount",
            format!(
                "{} on {mp} ({})",
                t.device.display(),
                if read_write {
                    "read-write"
                } else {
                    "read-only"
                }
            ),
            started,
        );
        mounted.push(m);
    }
    Ok(Outcome {
        node: manifest.node.clone(),
        verdict: v.verdict,
        fenced,
        arrays,
        mounted,
        checked_only,
        in_use,
        events,
    })
}
