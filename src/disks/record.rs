//! `hamn disks record`: the manifest of this node's disks, built from what is present.
//! Runs on the healthy primary, where the arrays are assembled and the filesystems
//! mounted, so the mount points recorded are the ones the standby will use.

use std::time::SystemTime;

use super::manifest::{
    ArrayRecord, DiskRecord, FsRecord, Manifest, MemberRecord, NicRecord, PartitionRecord, VERSION,
};
use super::model::Filesystem;
use super::present::Present;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(
        "md array {array}: cannot read the superblock of member {member}: {reason}. Without \
         its event count a later verify cannot tell a stale member; check the disk \
         (`mdadm --examine {devnode}`) and record again"
    )]
    Superblock {
        array: String,
        member: String,
        devnode: String,
        reason: String,
    },
}

fn fs_record(fs: &Filesystem) -> Option<FsRecord> {
    let fs_type = fs.fs_type.clone()?;
    if fs_type == "linux_raid_member" {
        return None;
    }
    Some(FsRecord {
        fs_type,
        uuid: fs.uuid.clone(),
        label: fs.label.clone(),
        mountpoint: fs.mountpoints.first().cloned(),
    })
}

/// The manifest for `node`, and notes on what could not be recorded fully.
pub fn record(
    present: &Present,
    node: &str,
    now: SystemTime,
) -> Result<(Manifest, Vec<String>), RecordError> {
    let mut notes = Vec::new();
    let mut member_volumes = std::collections::BTreeSet::new();
    let mut arrays = Vec::new();
    for md in &present.inventory.md {
        let Some(uuid) = md.uuid.clone() else {
            notes.push(format!(
                "md array {}: no MD_UUID from udev; not recorded",
                md.kernel_name
            ));
            continue;
        };
        let label = md.name.clone().unwrap_or_else(|| md.kernel_name.clone());
        let mut members = Vec::new();
        for m in &md.members {
            let found = present.disks.iter().find_map(|d| {
                d.volumes
                    .iter()
                    .find(|v| v.kernel_name == m.kernel_name)
                    .map(|v| (d, v))
            });
            let Some((disk, vol)) = found else {
                notes.push(format!(
                    "md array {label}: member {} is not a local disk; not recorded",
                    m.kernel_name
                ));
                continue;
            };
            member_volumes.insert(vol.kernel_name.clone());
            let sb = match &vol.superblock {
                Some(Ok(sb)) => sb,
                Some(Err(reason)) => {
                    return Err(RecordError::Superblock {
                        array: label,
                        member: vol.kernel_name.clone(),
                        devnode: vol.devnode.display().to_string(),
                        reason: reason.clone(),
                    });
                }
                None => {
                    return Err(RecordError::Superblock {
                        array: label,
                        member: vol.kernel_name.clone(),
                        devnode: vol.devnode.display().to_string(),
                        reason: "not read".into(),
                    });
                }
            };
            members.push(MemberRecord {
                disk: disk.identity.clone(),
                partition: vol.partition,
                device_uuid: sb.device_uuid.clone(),
                events: sb.events,
            });
        }
        let filesystem = md.filesystem.as_ref().and_then(fs_record);
        if let Some(fs) = &filesystem
            && fs.mountpoint.is_none()
        {
            notes.push(format!(
                "md array {label}: {} is not mounted, so no mount point is recorded; \
                 takeover will check it but not mount it",
                fs.fs_type
            ));
        }
        arrays.push(ArrayRecord {
            uuid,
            name: md.name.clone(),
            level: md.level.clone().unwrap_or_else(|| "unknown".into()),
            raid_disks: md
                .raid_disks
                .unwrap_or(u32::try_from(md.members.len()).unwrap_or(u32::MAX)),
            os: Present::is_os(md.filesystem.as_ref()),
            filesystem,
            members,
        });
    }

    let mut disks = Vec::new();
    for d in &present.disks {
        if d.volumes
            .iter()
            .any(|v| member_volumes.contains(&v.kernel_name))
        {
            continue;
        }
        let whole = d.whole().and_then(|v| v.filesystem.as_ref());
        let filesystem = whole.and_then(fs_record);
        let partitions: Vec<PartitionRecord> = d
            .volumes
            .iter()
            .filter_map(|v| {
                Some(PartitionRecord {
                    number: v.partition?,
                    filesystem: fs_record(v.filesystem.as_ref()?)?,
                })
            })
            .collect();
        if d.superblocks().next().is_some() {
            notes.push(format!(
                "disk {} carries an md superblock of an array that is not running; not \
                 recorded (assemble it and record again if it matters)",
                d.kernel_name
            ));
            continue;
        }
        if filesystem.is_none() && partitions.is_empty() {
            continue; // blank or unknown: nothing of xCAT's on it
        }
        let os = d
            .volumes
            .iter()
            .any(|v| Present::is_os(v.filesystem.as_ref()));
        disks.push(DiskRecord {
            disk: d.identity.clone(),
            os,
            filesystem,
            partitions,
        });
    }

    let nics = present
        .nics
        .iter()
        .map(|n| NicRecord {
            name: n.name.clone(),
            mac: n.mac.clone(),
            networks: n.networks.clone(),
        })
        .collect();
    Ok((
        Manifest {
            version: VERSION,
            node: node.to_string(),
            recorded_at: humantime::format_rfc3339_seconds(now).to_string(),
            recorded_by: format!("hamn {}", env!("CARGO_PKG_VERSION")),
            server: present.server.clone(),
            arrays,
            disks,
            nics,
        },
        notes,
    ))
}
