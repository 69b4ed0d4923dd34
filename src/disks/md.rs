//! md arrays for takeover: stop what udev auto-assembled, assemble by UUID from exactly
//! the verified members, and confirm the kernel shows what was asked for. Through mdadm,
//! the admin's own tool, so its safety checks apply on top of hamn's. Every function that
//! writes takes the `Fenced` proof.

use std::path::{Path, PathBuf};

use super::verify::ArrayPlan;
use crate::exec::{self, ExecError};
use crate::fence::proof::Fenced;

#[derive(Debug, thiserror::Error)]
pub enum MdError {
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("`{command}` failed (exit {status}): {output}")]
    Failed {
        command: String,
        status: String,
        output: String,
    },
    #[error(
        "array {label}: after `{command}` the kernel shows {seen}, not the {wanted} asked \
         for; hamn stopped it again. Look with `mdadm --detail --scan` and `cat \
         /proc/mdstat`"
    )]
    NotAsAssembled {
        label: String,
        command: String,
        seen: String,
        wanted: String,
    },
    #[error(transparent)]
    Scan(#[from] super::scan::ScanError),
    #[error(transparent)]
    Proof(#[from] crate::fence::proof::ProofError),
}

fn mdadm(args: &[String]) -> exec::Command {
    exec::Command::new(std::iter::once("mdadm".to_string()).chain(args.iter().cloned()))
}

/// mdadm's output, stdout then stderr. No deadline: an assembly waits for the kernel,
/// and a killed mdadm would leave an array half-assembled.
fn run(args: &[String]) -> Result<String, MdError> {
    let ran = mdadm(args).run()?;
    let text = ran.output();
    if !ran.success() {
        return Err(MdError::Failed {
            status: ran
                .exit()
                .map_or_else(|| "by signal".into(), |c| c.to_string()),
            output: text.trim().to_string(),
            command: ran.command,
        });
    }
    Ok(text)
}

/// The device takeover uses for an array: the running one it uses as it is (e.g.
/// /dev/md127, assembled by udev), else the label it assembles it as (`label`).
pub fn device_name(plan: &ArrayPlan) -> String {
    match &plan.assembled {
        Some(k) => format!("/dev/{k}"),
        None => label(plan.name.as_deref(), &plan.uuid),
    }
}

/// The label hamn gives an array it assembles: /dev/md/hamn-<name after the colon>.
pub fn label(name: Option<&str>, uuid: &str) -> String {
    let base = name
        .map(|n| n.rsplit(':').next().unwrap_or(n))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| uuid.get(..8).unwrap_or("array"));
    let safe: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("/dev/md/hamn-{safe}")
}

pub fn stop_args(kernel_name: &str) -> Vec<String> {
    vec!["--stop".into(), format!("/dev/{kernel_name}")]
}

/// `mdadm --assemble` with the UUID and exactly these members. --run only for an accepted
/// degraded array (without it mdadm will not start a degraded one); never --force, which
/// would take a stale member in.
pub fn assemble_args(plan: &ArrayPlan) -> Vec<String> {
    let mut a = vec![
        "--assemble".to_string(),
        label(plan.name.as_deref(), &plan.uuid),
        format!("--uuid={}", plan.uuid),
    ];
    if plan.degraded {
        a.push("--run".into());
    }
    a.extend(plan.members.iter().map(|m| m.display().to_string()));
    a
}

fn kernel_name(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The running array with this UUID: kernel name, members, state, degraded.
fn running(uuid: &str) -> Result<Option<super::model::MdArray>, MdError> {
    let inv = super::inventory()?;
    Ok(inv.md.into_iter().find(|md| {
        md.uuid
            .as_deref()
            .is_some_and(|u| super::manifest::same_uuid(u, uuid))
    }))
}

/// The array with this UUID once the kernel and udev show it after an assemble: udev
/// records the array's UUID a moment after mdadm returns, later on a busy machine (seen
/// in the lab under load), so one look could miss an array that is there.
fn appeared(uuid: &str) -> Result<Option<super::model::MdArray>, MdError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(md) = running(uuid)? {
            return Ok(Some(md));
        }
        if std::time::Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// What a takeover does for one array, also for --dry-run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Assembled {
    /// e.g. /dev/md127
    pub devnode: PathBuf,
    pub kernel_name: String,
    pub stopped: Vec<String>,
    /// Already assembled from exactly these members by an earlier run: left as it was.
    pub reused: bool,
    pub degraded: bool,
}

/// Stop auto-assembled arrays, assemble from the verified members, confirm.
/// `owner` is the node the disks were recorded on: the proof must be for it.
pub fn assemble(plan: &ArrayPlan, fenced: &Fenced, owner: &str) -> Result<Assembled, MdError> {
    let label = plan.name.clone().unwrap_or_else(|| plan.uuid.clone());
    fenced.covers(owner, &format!("array {label}"))?;
    let wanted: std::collections::BTreeSet<String> =
        plan.members.iter().map(|m| kernel_name(m)).collect();
    // A rerun after an interrupted takeover finds its own array: keep it.
    if let Some(md) = running(&plan.uuid)? {
        let have: std::collections::BTreeSet<String> =
            md.members.iter().map(|m| m.kernel_name.clone()).collect();
        let state = md.state.as_deref().unwrap_or("");
        if have == wanted && !matches!(state, "inactive" | "read-auto" | "") {
            return Ok(Assembled {
                devnode: PathBuf::from(format!("/dev/{}", md.kernel_name)),
                kernel_name: md.kernel_name.clone(),
                stopped: Vec::new(),
                reused: true,
                degraded: md.degraded.unwrap_or(plan.degraded),
            });
        }
    }
    let mut stopped = Vec::new();
    for (k, _) in &plan.running {
        match run(&stop_args(k)) {
            Ok(_) => stopped.push(k.clone()),
            // Already gone (stopped by a previous, interrupted run): nothing to stop.
            Err(_) if !Path::new(&format!("/sys/block/{k}/md")).exists() => {}
            Err(e) => return Err(e),
        }
    }
    let args = assemble_args(plan);
    let command = mdadm(&args).display();
    run(&args)?;
    let Some(md) = appeared(&plan.uuid)? else {
        return Err(MdError::NotAsAssembled {
            label,
            command,
            seen: "no array with that UUID".into(),
            wanted: format!("array of {}", join(&wanted)),
        });
    };
    let have: std::collections::BTreeSet<String> =
        md.members.iter().map(|m| m.kernel_name.clone()).collect();
    let degraded = md.degraded.unwrap_or(true);
    if have != wanted || (degraded && !plan.degraded) {
        let _ = run(&stop_args(&md.kernel_name));
        return Err(MdError::NotAsAssembled {
            label,
            command,
            seen: format!(
                "{} with members {}{}",
                md.kernel_name,
                join(&have),
                if degraded { ", degraded" } else { "" }
            ),
            wanted: format!("members {}", join(&wanted)),
        });
    }
    Ok(Assembled {
        devnode: PathBuf::from(format!("/dev/{}", md.kernel_name)),
        kernel_name: md.kernel_name,
        stopped,
        reused: false,
        degraded,
    })
}

fn join(s: &std::collections::BTreeSet<String>) -> String {
    s.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Stop the array with this UUID (giveback), if it runs: its kernel name, or None.
pub fn stop_array(uuid: &str) -> Result<Option<String>, MdError> {
    let Some(md) = running(uuid)? else {
        return Ok(None);
    };
    run(&stop_args(&md.kernel_name))?;
    Ok(Some(md.kernel_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(degraded: bool) -> ArrayPlan {
        ArrayPlan {
            uuid: "0a1b2c3d:4e5f6071:8293a4b5:c6d7e8f9".into(),
            name: Some("box1:0".into()),
            raid_disks: 2,
            members: if degraded {
                vec!["/dev/sdc".into()]
            } else {
                vec!["/dev/sdc".into(), "/dev/sda".into()]
            },
            degraded,
            running: vec![("md127".into(), Some("read-auto".into()))],
            assembled: None,
            filesystem: None,
        }
    }

    #[test]
    fn assembly_names_the_uuid_and_exactly_the_verified_members_and_never_forces() {
        let a = assemble_args(&plan(false)).join(" ");
        assert_eq!(
            a,
            "--assemble /dev/md/hamn-0 --uuid=0a1b2c3d:4e5f6071:8293a4b5:c6d7e8f9 /dev/sdc /dev/sda"
        );
        let d = assemble_args(&plan(true)).join(" ");
        assert!(d.contains("--run /dev/sdc"), "{d}");
        assert!(!d.contains("--force") && !a.contains("--force"));
    }
}
