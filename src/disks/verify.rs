//! `hamn disks verify`: are the disks in this box the ones the manifest recorded, are the
//! arrays whole, and is every member fresh? Device by device, and one verdict.
//!
//! Disks are matched by WWN, else by serial; never by slot, because a moved disk rarely
//! lands in the same slot. A recorded disk that is not found, but whose recorded slot now
//! holds another disk, is "wrong" (somebody pushed the wrong disk into that bay).
//! A member is stale when its md event count is more than one behind its freshest twin or
//! behind the manifest, or when the freshest twin's superblock no longer lists it as
//! active: it was pulled before the last writes. md itself tolerates a difference of one
//! (a clean/dirty transition may roll the count back by one), so hamn does too.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use super::manifest::{DiskIdentity, FsRecord, Manifest, same_uuid};
use super::mdsb::{Role, Superblock};
use super::present::{LocalDisk, Present, Volume};
use crate::profiles::ServerProfile;

/// md tolerates this many events of difference between fresh members.
const EVENT_MARGIN: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Everything matches the manifest.
    Good,
    /// Only changes that do not endanger data: slots, NIC names/MACs, an accepted
    /// degraded array.
    Acceptable,
    /// A wrong, stale, missing or unreadable disk: do not use these disks.
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Matched,
    SlotChanged,
    Missing,
    /// A member of an array that is otherwise here (degraded).
    MemberMissing,
    /// The old box's OS disk (or OS array), not here: it stays behind when only the data
    /// disks move to a standby with its own OS. Informational.
    NotMoved,
    Wrong,
    Stale,
    Unreadable,
    Unexpected,
    ArrayWhole,
    ArrayDegraded,
    ArrayRunning,
    NicMatched,
    NicRenamed,
    NicMacChanged,
    NicNetworksChanged,
    NicMissing,
}

impl Status {
    fn weight(self, accept_degraded: bool) -> Verdict {
        match self {
            Status::Matched
            | Status::ArrayWhole
            | Status::NicMatched
            | Status::Unexpected
            | Status::NotMoved
            | Status::ArrayRunning => Verdict::Good,
            Status::SlotChanged
            | Status::NicRenamed
            | Status::NicMacChanged
            | Status::NicNetworksChanged
            | Status::NicMissing => Verdict::Acceptable,
            Status::ArrayDegraded | Status::MemberMissing if accept_degraded => Verdict::Acceptable,
            Status::ArrayDegraded
            | Status::MemberMissing
            | Status::Missing
            | Status::Wrong
            | Status::Stale
            | Status::Unreadable => Verdict::Refuse,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What the manifest calls it: "member raid-b of array box1:0", "disk xfs-1", "nic eth0".
    pub subject: String,
    pub status: Status,
    /// The device found for it, e.g. "sdb".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub message: String,
    /// A stale member that takeover leaves out, untouched, assembling its array from the
    /// fresh members: acceptable with --accept-degraded, like the degraded array it leaves.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub left_out: bool,
}

impl Finding {
    pub fn weight(&self, accept_degraded: bool) -> Verdict {
        if self.left_out && accept_degraded {
            Verdict::Acceptable
        } else {
            self.status.weight(accept_degraded)
        }
    }
}

/// An array as takeover will assemble it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ArrayPlan {
    pub uuid: String,
    pub name: Option<String>,
    pub raid_disks: u32,
    /// The verified, fresh members, by device node.
    pub members: Vec<PathBuf>,
    pub degraded: bool,
    /// Arrays already running with this UUID or with one of the members (udev's
    /// auto-assembly, md127): kernel name and array_state.
    pub running: Vec<(String, Option<String>)>,
    /// The running array already assembled from exactly the verified members (and not
    /// merely auto-read-only): used as it is, e.g. when the OS booted from these disks.
    pub assembled: Option<String>,
    pub filesystem: Option<FsRecord>,
}

/// A filesystem outside any array, on a verified disk.
#[derive(Debug, Clone, Serialize)]
pub struct VolumePlan {
    pub devnode: PathBuf,
    pub filesystem: FsRecord,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub node: String,
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
    pub arrays: Vec<ArrayPlan>,
    pub volumes: Vec<VolumePlan>,
}

impl Verification {
    pub fn refusals(&self, accept_degraded: bool) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(move |f| f.weight(accept_degraded) == Verdict::Refuse)
    }
}

/// Slot names for messages: "bay 2 (pci-...)" where a server profile knows the bay.
pub struct Bays<'a> {
    pub recorded: Option<&'a ServerProfile>,
    pub present: Option<&'a ServerProfile>,
}

impl Bays<'_> {
    fn name(profile: Option<&ServerProfile>, slot: Option<&str>) -> String {
        match slot {
            None => "an unknown slot".into(),
            Some(s) => match profile.and_then(|p| p.bay(s)) {
                Some(bay) => format!("{bay} ({s})"),
                None => format!("slot {s}"),
            },
        }
    }
    fn was(&self, slot: Option<&str>) -> String {
        Self::name(self.recorded, slot)
    }
    fn now(&self, slot: Option<&str>) -> String {
        Self::name(self.present, slot)
    }
}

fn same_opt(a: &Option<String>, b: &Option<String>) -> Option<bool> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.trim().eq_ignore_ascii_case(b.trim())),
        _ => None,
    }
}

/// Finds the present disk for a recorded identity: WWN first, then serial. Returns the
/// index and, if the other identifier contradicts, why it is the wrong disk.
fn find_disk(
    id: &DiskIdentity,
    disks: &[LocalDisk],
    used: &BTreeSet<usize>,
) -> Option<(usize, Option<String>)> {
    let by = |f: &dyn Fn(&DiskIdentity) -> Option<bool>| {
        disks
            .iter()
            .enumerate()
            .find(|(i, d)| !used.contains(i) && f(&d.identity) == Some(true))
            .map(|(i, _)| i)
    };
    let i = by(&|d| {
        same_opt(&id.wwn, &d.wwn).map(|s| {
            s && id
                .wwn
                .as_deref()
                .zip(d.wwn.as_deref())
                .is_some_and(|(a, b)| super::inventory::same_wwid(a, b))
        })
    })
    .or_else(|| by(&|d| same_opt(&id.serial, &d.serial)))?;
    let found = &disks[i].identity;
    let mut why = Vec::new();
    if same_opt(&id.serial, &found.serial) == Some(false) {
        why.push(format!(
            "serial {} where the manifest has {}",
            found.serial.as_deref().unwrap_or("?"),
            id.serial.as_deref().unwrap_or("?")
        ));
    }
    if let (Some(a), Some(b)) = (&id.wwn, &found.wwn)
        && !super::inventory::same_wwid(a, b)
    {
        why.push(format!("WWN {b} where the manifest has {a}"));
    }
    if let (Some(a), Some(b)) = (id.size_bytes, found.size_bytes)
        && a != b
    {
        why.push(format!("{b} bytes where the manifest has {a}"));
    }
    Some((i, (!why.is_empty()).then(|| why.join(", "))))
}

struct Ctx<'a> {
    present: &'a Present,
    bays: &'a Bays<'a>,
    used: BTreeSet<usize>,
    /// Present disks that some recorded identity names: never taken for a squatter.
    recorded: BTreeSet<usize>,
    findings: Vec<Finding>,
}

impl Ctx<'_> {
    fn add(&mut self, subject: &str, status: Status, device: Option<&str>, message: String) {
        // A disk found, then judged stale or wrong, is not also "ok".
        if matches!(status, Status::Stale | Status::Wrong | Status::Unreadable) {
            self.findings
                .retain(|f| !(f.subject == subject && f.status == Status::Matched));
        }
        self.findings.push(Finding {
            subject: subject.to_string(),
            status,
            device: device.map(str::to_string),
            message,
            left_out: false,
        });
    }

    /// Match one recorded disk; Some(index) if it is here and the right disk.
    fn locate(&mut self, subject: &str, id: &DiskIdentity, member: bool) -> Option<usize> {
        let disks = &self.present.disks;
        match find_disk(id, disks, &self.used) {
            Some((i, Some(why))) => {
                self.used.insert(i);
                let d = &disks[i];
                let msg = format!(
                    "{} in {} is not the recorded disk: {why}. Take it out and find the \
                     disk with {}",
                    d.kernel_name,
                    self.bays.now(d.identity.slot.as_deref()),
                    id.describe()
                );
                self.add(subject, Status::Wrong, Some(&d.kernel_name.clone()), msg);
                None
            }
            Some((i, None)) => {
                self.used.insert(i);
                let d = &disks[i];
                let (was, now) = (id.slot.as_deref(), d.identity.slot.as_deref());
                if was.is_some() && now.is_some() && was != now {
                    let msg = format!(
                        "{} ({}) found as {}, moved from {} to {}: fine for hamn, which \
                         identifies disks by serial and WWN",
                        id.describe(),
                        d.identity.model.as_deref().unwrap_or("disk"),
                        d.kernel_name,
                        self.bays.was(was),
                        self.bays.now(now)
                    );
                    self.add(
                        subject,
                        Status::SlotChanged,
                        Some(&d.kernel_name.clone()),
                        msg,
                    );
                } else {
                    let msg = format!(
                        "{} found as {} in {}",
                        id.describe(),
                        d.kernel_name,
                        self.bays.now(now)
                    );
                    self.add(subject, Status::Matched, Some(&d.kernel_name.clone()), msg);
                }
                Some(i)
            }
            None => {
                // Not here. If its recorded slot holds a disk nobody claims, that disk
                // was pushed in instead of it.
                let squatter = id.slot.as_ref().and_then(|slot| {
                    disks.iter().enumerate().find(|(i, d)| {
                        !self.used.contains(i)
                            && !self.recorded.contains(i)
                            && d.identity.slot.as_ref() == Some(slot)
                    })
                });
                if let Some((i, d)) = squatter {
                    self.used.insert(i);
                    let msg = format!(
                        "{} holds {} ({}), but the manifest expects {} there: wrong disk. \
                         Find the disk with {} and put it in",
                        self.bays.now(d.identity.slot.as_deref()),
                        d.identity.describe(),
                        d.kernel_name,
                        id.describe(),
                        id.describe()
                    );
                    self.add(subject, Status::Wrong, Some(&d.kernel_name.clone()), msg);
                } else {
                    let msg = format!(
                        "{} (was in {}) is not in this box",
                        id.describe(),
                        self.bays.was(id.slot.as_deref())
                    );
                    let status = if member {
                        Status::MemberMissing
                    } else {
                        Status::Missing
                    };
                    self.add(subject, status, None, msg);
                }
                None
            }
        }
    }
}

fn role_text(r: Role) -> String {
    match r {
        Role::Active(n) => format!("active (slot {n})"),
        Role::Spare => "spare".into(),
        Role::Faulty => "faulty".into(),
        Role::Journal => "journal".into(),
        Role::Unused => "not a member".into(),
    }
}

/// Compare what is present with the manifest.
pub fn verify(
    manifest: &Manifest,
    present: &Present,
    bays: &Bays,
    accept_degraded: bool,
) -> Verification {
    let identities = manifest
        .arrays
        .iter()
        .flat_map(|a| a.members.iter().map(|m| &m.disk))
        .chain(manifest.disks.iter().map(|d| &d.disk));
    let mut recorded = BTreeSet::new();
    for id in identities {
        let mut taken = BTreeSet::new();
        while let Some((i, _)) = find_disk(id, &present.disks, &taken) {
            taken.insert(i);
            recorded.insert(i);
        }
    }
    let mut cx = Ctx {
        present,
        bays,
        used: BTreeSet::new(),
        recorded,
        findings: Vec::new(),
    };
    let mut arrays = Vec::new();
    let mut volumes = Vec::new();

    for a in &manifest.arrays {
        let label = a.name.clone().unwrap_or_else(|| a.uuid.clone());
        if a.os
            && a.members
                .iter()
                .all(|m| find_disk(&m.disk, &present.disks, &cx.used).is_none())
        {
            let msg = format!(
                "{label} held {}'s OS and none of its members is here: it stayed in the old \
                 box, as it does when only the data disks move. hamn does not assemble it",
                manifest.node
            );
            cx.add(&format!("array {label}"), Status::NotMoved, None, msg);
            continue;
        }
        // Members found and carrying this array's superblock: (subject, disk, volume, sb).
        let mut candidates: Vec<(String, String, &Volume, &Superblock, u64)> = Vec::new();
        for m in &a.members {
            let subject = format!("member {} of array {label}", m.disk.short_name());
            let Some(i) = cx.locate(&subject, &m.disk, true) else {
                continue;
            };
            let disk = &present.disks[i];
            let Some(vol) = disk.volume(m.partition) else {
                let msg = format!(
                    "{} has no partition {} (the member was {}{})",
                    disk.kernel_name,
                    m.partition.unwrap_or(0),
                    disk.kernel_name,
                    m.partition.unwrap_or(0)
                );
                cx.add(&subject, Status::Wrong, Some(&disk.kernel_name), msg);
                continue;
            };
            match &vol.superblock {
                Some(Ok(sb)) if same_uuid(&sb.array_uuid, &a.uuid) => {
                    candidates.push((subject, vol.kernel_name.clone(), vol, sb, m.events));
                }
                Some(Ok(sb)) => {
                    let msg = format!(
                        "{} carries md array {} ({}), not {label} ({}): the disk was \
                         reused. Do not assemble it",
                        vol.kernel_name,
                        sb.name.as_deref().unwrap_or("?"),
                        sb.array_uuid,
                        a.uuid
                    );
                    cx.add(&subject, Status::Wrong, Some(&vol.kernel_name.clone()), msg);
                }
                Some(Err(e)) => {
                    let msg = format!(
                        "cannot read the md superblock of {}: {e}. Check it with `mdadm \
                         --examine {}`",
                        vol.kernel_name,
                        vol.devnode.display()
                    );
                    cx.add(
                        &subject,
                        Status::Unreadable,
                        Some(&vol.kernel_name.clone()),
                        msg,
                    );
                }
                None => {
                    let msg = format!(
                        "{} has no md superblock: not a member of {label} any more (wiped \
                         or repartitioned?)",
                        vol.kernel_name
                    );
                    cx.add(&subject, Status::Wrong, Some(&vol.kernel_name.clone()), msg);
                }
            }
        }

        // Freshness: against the freshest twin, its view of each member, and the manifest.
        let top = candidates.iter().max_by_key(|c| c.3.events);
        let mut fresh = Vec::new();
        let mut stale = Vec::new();
        for (i, (_, _, vol, sb, recorded_events)) in candidates.iter().enumerate() {
            let behind_twin = top.is_some_and(|t| sb.events + EVENT_MARGIN < t.3.events);
            let seen = top.map_or(Role::Active(0), |t| t.3.role_of(sb.dev_number));
            let behind_manifest = sb.events + EVENT_MARGIN < *recorded_events;
            if behind_twin || !matches!(seen, Role::Active(_)) || behind_manifest {
                stale.push((i, seen, behind_twin, behind_manifest));
            } else {
                fresh.push(vol.devnode.clone());
            }
        }

        let running: Vec<(String, Option<String>)> = present
            .inventory
            .md
            .iter()
            .filter(|md| {
                md.uuid.as_deref().is_some_and(|u| same_uuid(u, &a.uuid))
                    || md
                        .members
                        .iter()
                        .any(|m| candidates.iter().any(|c| c.1 == m.kernel_name))
            })
            .map(|md| (md.kernel_name.clone(), md.state.clone()))
            .collect();
        let fresh_names: BTreeSet<String> = fresh
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        // The running array already assembled from exactly the verified members, and
        // writable (as md::assemble reuses it).
        let assembled = running
            .iter()
            .find(|(k, state)| {
                !matches!(state.as_deref(), None | Some("read-auto" | "inactive"))
                    && present.inventory.md.iter().any(|md| {
                        md.kernel_name == *k
                            && md
                                .members
                                .iter()
                                .map(|m| m.kernel_name.clone())
                                .collect::<BTreeSet<_>>()
                                == fresh_names
                    })
            })
            .map(|(k, _)| k.clone());
        // The device takeover assembles the array as, or uses: what add-back commands name.
        let array_dev = assembled.as_ref().map_or_else(
            || super::md::label(a.name.as_deref(), &a.uuid),
            |k| format!("/dev/{k}"),
        );
        let fresh_list = fresh
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ");

        for (i, seen, behind_twin, behind_manifest) in stale {
            let (subject, kname, vol, sb, recorded_events) = &candidates[i];
            let top_name = top.map_or("?", |t| t.1.as_str());
            let twin = if candidates.len() == 2 {
                "the other member's".to_string()
            } else {
                format!("the freshest member's ({top_name})")
            };
            let mut why = Vec::new();
            if behind_twin {
                let top_events = top.map_or(0, |t| t.3.events);
                why.push(format!(
                    "its event count {} is behind {twin} {top_events}",
                    sb.events
                ));
            }
            match seen {
                Role::Active(_) => {}
                Role::Faulty => why.push(format!("{top_name}'s superblock marks it faulty")),
                Role::Spare | Role::Unused => why.push(format!(
                    "{top_name}'s superblock no longer lists it as a member"
                )),
                r => why.push(format!(
                    "{top_name}'s superblock lists it as {}",
                    role_text(r)
                )),
            }
            if behind_manifest {
                why.push(format!(
                    "its md event count {} is behind the {} recorded in the manifest",
                    sb.events, recorded_events
                ));
            }
            let what = match seen {
                Role::Faulty => format!("{kname} failed in {label} on the primary"),
                Role::Spare | Role::Unused => {
                    format!("{kname} was failed and removed from {label} on the primary")
                }
                _ => format!("{kname} is a stale member of {label}"),
            };
            // Its own superblock still counts the fresh members as active: it left the
            // array while they were in sync. Otherwise it was used apart from them (each
            // half run alone), and which half holds the wanted data is the admin's call.
            let apart: Vec<&str> = candidates
                .iter()
                .filter(|c| fresh.contains(&c.2.devnode))
                .filter(|c| !matches!(sb.role_of(c.3.dev_number), Role::Active(_)))
                .map(|c| c.1.as_str())
                .collect();
            if fresh.is_empty() {
                let msg = format!(
                    "{kname} is a stale member of {label}: {}. It was pulled before the \
                     last writes (an earlier move?): hamn will not assemble with it. Take \
                     it out; assemble from the fresh member{}",
                    why.join("; "),
                    if candidates.len() > 1 { "s" } else { "" }
                );
                cx.add(subject, Status::Stale, Some(kname), msg);
            } else if !apart.is_empty() {
                let msg = format!(
                    "{what}: {}; but its own superblock does not count {} as active: the \
                     members were used apart from each other, and hamn cannot tell which \
                     holds the data you want. Compare them (`mdadm --examine`) and decide \
                     by hand",
                    why.join("; "),
                    apart.join(" and ")
                );
                cx.add(subject, Status::Stale, Some(kname), msg);
            } else {
                let now = if accept_degraded {
                    format!(
                        "Takeover leaves it out, untouched, and assembles {label} from \
                         {fresh_list}, degraded"
                    )
                } else {
                    format!(
                        "Takeover can leave it out, untouched, and assemble {label} from \
                         {fresh_list}, degraded: give --accept-degraded"
                    )
                };
                let msg = format!(
                    "{what}: {}. {now}. After the takeover, check that it is the disk that \
                     failed (`mdadm --examine {dev}` shows {label}, events {}), then add it \
                     back, a full resync: `mdadm {array_dev} --add {dev}`",
                    why.join("; "),
                    sb.events,
                    dev = vol.devnode.display()
                );
                cx.add(subject, Status::Stale, Some(kname), msg);
                if let Some(f) = cx.findings.last_mut() {
                    f.left_out = true;
                }
            }
        }

        let assembles_as = super::md::label(a.name.as_deref(), &a.uuid);
        for (k, state) in &running {
            let members = present
                .inventory
                .md
                .iter()
                .find(|md| md.kernel_name == *k)
                .map(|md| {
                    md.members
                        .iter()
                        .map(|m| m.kernel_name.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .filter(|m| !m.is_empty())
                .map_or_else(String::new, |m| format!(" with {m}"));
            let then = format!(
                "takeover stops /dev/{k} first, then assembles {label} as {assembles_as} \
                 from {fresh_list}"
            );
            let msg = match state.as_deref() {
                _ if assembled.as_deref() == Some(k.as_str()) => format!(
                    "{label} is already assembled as /dev/{k} from exactly the verified \
                     members ({}): takeover uses it as it is",
                    state.as_deref().unwrap_or("state unknown")
                ),
                Some("inactive") => format!(
                    "/dev/{k}{members} is assembled but inactive (udev's incremental \
                     assembly, waiting for members): {then}"
                ),
                Some("read-auto") => format!(
                    "/dev/{k}{members} is assembled read-only, not yet written (read-auto, \
                     udev's incremental assembly): {then}"
                ),
                s => format!(
                    "/dev/{k}{members} is already assembled ({}): {then}",
                    s.unwrap_or("state unknown")
                ),
            };
            cx.add(
                &format!("array {label}"),
                Status::ArrayRunning,
                Some(k),
                msg,
            );
        }

        let n = u32::try_from(fresh.len()).unwrap_or(u32::MAX);
        let degraded = n < a.raid_disks;
        if n == 0 {
            let msg = format!("no fresh member of {label} is here: it cannot be assembled");
            cx.add(&format!("array {label}"), Status::Missing, None, msg);
        } else if degraded {
            let msg = format!(
                "{label} ({}) would be assembled from {n} of {} members: degraded, \
                 no redundancy until a member is added back{}",
                a.level,
                a.raid_disks,
                if accept_degraded {
                    " (accepted with --accept-degraded)"
                } else {
                    ". Find the missing member, or accept it with --accept-degraded"
                }
            );
            cx.add(&format!("array {label}"), Status::ArrayDegraded, None, msg);
        } else {
            let msg = format!("{label} ({}): all {n} members here and fresh", a.level);
            cx.add(&format!("array {label}"), Status::ArrayWhole, None, msg);
        }
        if n > 0 {
            arrays.push(ArrayPlan {
                uuid: a.uuid.clone(),
                name: a.name.clone(),
                raid_disks: a.raid_disks,
                members: fresh,
                degraded,
                running,
                assembled,
                filesystem: a.filesystem.clone(),
            });
        }
    }

    for d in &manifest.disks {
        if d.os && find_disk(&d.disk, &present.disks, &cx.used).is_none() {
            let msg = format!(
                "{}'s OS disk ({}) is not here: it stayed in the old box, as it does when \
                 only the data disks move",
                manifest.node,
                d.disk.describe()
            );
            cx.add(
                &format!("disk {}", d.disk.describe()),
                Status::NotMoved,
                None,
                msg,
            );
            continue;
        }
        let subject = format!("disk {}", d.disk.short_name());
        let Some(i) = cx.locate(&subject, &d.disk, false) else {
            continue;
        };
        let disk = &present.disks[i];
        let mut wanted: Vec<(Option<u32>, &FsRecord)> = Vec::new();
        if let Some(fs) = &d.filesystem {
            wanted.push((None, fs));
        }
        wanted.extend(d.partitions.iter().map(|p| (Some(p.number), &p.filesystem)));
        for (part, fs) in wanted {
            let found = disk.volume(part);
            let have = found.and_then(|v| v.filesystem.as_ref());
            let uuid_ok = match (&fs.uuid, have.and_then(|h| h.uuid.as_ref())) {
                (Some(want), Some(got)) => same_uuid(want, got),
                (None, _) => true,
                (Some(_), None) => false,
            };
            match found {
                Some(v) if uuid_ok => volumes.push(VolumePlan {
                    devnode: v.devnode.clone(),
                    filesystem: fs.clone(),
                }),
                _ => {
                    let where_ = match part {
                        Some(n) => format!("partition {n} of {}", disk.kernel_name),
                        None => disk.kernel_name.clone(),
                    };
                    let got = have.map_or("no filesystem udev knows of".into(), |h| {
                        format!(
                            "{} {}",
                            h.fs_type.as_deref().unwrap_or("?"),
                            h.uuid.as_deref().unwrap_or("without UUID")
                        )
                    });
                    let msg = format!(
                        "{where_} has {got}, the manifest expects {} {}: reformatted or a \
                         different disk. Do not mount it",
                        fs.fs_type,
                        fs.uuid.as_deref().unwrap_or("")
                    );
                    cx.add(
                        &subject,
                        Status::Wrong,
                        Some(&disk.kernel_name.clone()),
                        msg,
                    );
                }
            }
        }
    }

    // Disks nobody recorded: harmless, unless they carry a recorded array's superblock.
    for (i, d) in present.disks.iter().enumerate() {
        if cx.used.contains(&i) {
            continue;
        }
        let claims = d.superblocks().find_map(|(v, sb)| {
            manifest
                .arrays
                .iter()
                .find(|a| same_uuid(&a.uuid, &sb.array_uuid))
                .map(|a| (v, a))
        });
        match claims {
            Some((v, a)) => {
                let label = a.name.clone().unwrap_or_else(|| a.uuid.clone());
                let msg = format!(
                    "{} ({}, in {}) carries array {label} but is not a recorded member: a \
                     member from an earlier move or a replaced disk. Take it out, or \
                     re-record the manifest on the primary if it was legitimately replaced",
                    v.kernel_name,
                    d.identity.describe(),
                    cx.bays.now(d.identity.slot.as_deref())
                );
                cx.add(
                    &format!("disk {}", d.kernel_name),
                    Status::Stale,
                    Some(&v.kernel_name.clone()),
                    msg,
                );
            }
            None => {
                let msg = format!(
                    "{} ({}, in {}) is not in the manifest: hamn will not touch it",
                    d.kernel_name,
                    d.identity.describe(),
                    cx.bays.now(d.identity.slot.as_deref())
                );
                cx.add(
                    &format!("disk {}", d.kernel_name),
                    Status::Unexpected,
                    Some(&d.kernel_name.clone()),
                    msg,
                );
            }
        }
    }

    nics(manifest, present, &mut cx);

    let verdict = cx
        .findings
        .iter()
        .map(|f| f.weight(accept_degraded))
        .max()
        .unwrap_or(Verdict::Good);
    Verification {
        node: manifest.node.clone(),
        verdict,
        findings: cx.findings,
        arrays,
        volumes,
    }
}

/// NICs: matched by MAC first (a renamed NIC), then by name (new hardware, new MAC).
fn nics(manifest: &Manifest, present: &Present, cx: &mut Ctx) {
    for n in &manifest.nics {
        let subject = format!("nic {}", n.name);
        let by_mac = present
            .nics
            .iter()
            .find(|p| p.mac.eq_ignore_ascii_case(&n.mac));
        let by_name = present.nics.iter().find(|p| p.name == n.name);
        let Some(p) = by_mac.or(by_name) else {
            let msg = format!(
                "{} ({}, on {}) is not here: nothing on this node answers on {}",
                n.name,
                n.mac,
                nets(&n.networks),
                nets(&n.networks)
            );
            cx.add(&subject, Status::NicMissing, None, msg);
            continue;
        };
        let networks_ok =
            n.networks.is_empty() || n.networks.iter().all(|w| p.networks.contains(w));
        if !networks_ok {
            let msg = format!(
                "{} was on {}; {} is on {} here: connect it to the right network, or fix \
                 the interface configuration before xCAT serves on it",
                n.name,
                nets(&n.networks),
                p.name,
                nets(&p.networks)
            );
            cx.add(&subject, Status::NicNetworksChanged, Some(&p.name), msg);
        }
        if p.mac.eq_ignore_ascii_case(&n.mac) && p.name != n.name {
            let msg = format!(
                "{} ({}) is now named {}: interface configuration and xCAT's networks \
                 table refer to {}; rename it back (a udev rule or .link file matching the \
                 MAC) or update them",
                n.name, n.mac, p.name, n.name
            );
            cx.add(&subject, Status::NicRenamed, Some(&p.name), msg);
        } else if !p.mac.eq_ignore_ascii_case(&n.mac) {
            let msg = format!(
                "{} has MAC {} here, {} when recorded (other hardware): if the interface \
                 configuration pins HWADDR/MACADDR, update it; DHCP reservations for this \
                 node's own address may need it too",
                n.name, p.mac, n.mac
            );
            cx.add(&subject, Status::NicMacChanged, Some(&p.name), msg);
        } else if networks_ok {
            let msg = format!("{} ({}) on {}", n.name, n.mac, nets(&p.networks));
            cx.add(&subject, Status::NicMatched, Some(&p.name), msg);
        }
    }
}

fn nets(n: &[String]) -> String {
    if n.is_empty() {
        "no network".into()
    } else {
        n.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disks::manifest::{ArrayRecord, DiskRecord, MemberRecord, NicRecord};
    use crate::disks::model::{Filesystem, Inventory, MdArray, MdMember};
    use crate::disks::nics::Nic;

    const UUID: &str = "0a1b2c3d:4e5f6071:8293a4b5:c6d7e8f9";

    fn id(serial: &str, slot: &str) -> DiskIdentity {
        DiskIdentity {
            serial: Some(serial.into()),
            wwn: None,
            model: Some("QEMU HARDDISK".into()),
            size_bytes: Some(64 << 20),
            slot: Some(slot.into()),
        }
    }

    fn sb(dev_number: u32, events: u64, roles: Vec<Role>) -> Superblock {
        Superblock {
            version: "1.2".into(),
            array_uuid: UUID.into(),
            name: Some("box1:0".into()),
            level: 1,
            raid_disks: 2,
            dev_number,
            device_uuid: None,
            events,
            update_time: 0,
            roles,
            data_offset_bytes: 1 << 20,
        }
    }

    fn both_active() -> Vec<Role> {
        vec![Role::Active(0), Role::Active(1)]
    }

    fn disk(kname: &str, identity: DiskIdentity, sb: Option<Superblock>) -> LocalDisk {
        LocalDisk {
            kernel_name: kname.into(),
            identity,
            volumes: vec![Volume {
                kernel_name: kname.into(),
                devnode: format!("/dev/{kname}").into(),
                partition: None,
                filesystem: sb.as_ref().map(|_| Filesystem {
                    fs_type: Some("linux_raid_member".into()),
                    ..Filesystem::default()
                }),
                superblock: sb.map(Ok),
            }],
        }
    }

    fn manifest() -> Manifest {
        let member = |serial: &str, slot: &str| MemberRecord {
            disk: id(serial, slot),
            partition: None,
            device_uuid: None,
            events: 20,
        };
        Manifest {
            version: 1,
            node: "box1".into(),
            recorded_at: "2026-11-25T19:00:00Z".into(),
            recorded_by: "hamn".into(),
            server: None,
            arrays: vec![ArrayRecord {
                uuid: UUID.into(),
                name: Some("box1:0".into()),
                level: "raid1".into(),
                raid_disks: 2,
                os: false,
                filesystem: None,
                members: vec![member("raid-a", "s0"), member("raid-b", "s1")],
            }],
            disks: Vec::<DiskRecord>::new(),
            nics: vec![NicRecord {
                name: "eth0".into(),
                mac: "52:54:00:00:00:01".into(),
                networks: vec!["192.168.50.0/24".into()],
            }],
        }
    }

    fn present(disks: Vec<LocalDisk>, nics: Vec<Nic>) -> Present {
        Present {
            inventory: Inventory::default(),
            disks,
            nics,
            server: None,
        }
    }

    fn eth0(mac: &str) -> Nic {
        Nic {
            name: "eth0".into(),
            mac: mac.into(),
            networks: vec!["192.168.50.0/24".into()],
        }
    }

    fn run(p: &Present, accept: bool) -> Verification {
        let bays = Bays {
            recorded: None,
            present: None,
        };
        verify(&manifest(), p, &bays, accept)
    }

    fn statuses(v: &Verification) -> Vec<(String, Status)> {
        v.findings
            .iter()
            .map(|f| (f.subject.clone(), f.status))
            .collect()
    }

    #[test]
    fn the_same_disks_in_the_same_slots_are_all_good() {
        let p = present(
            vec![
                disk("sda", id("raid-a", "s0"), Some(sb(0, 21, both_active()))),
                disk("sdb", id("raid-b", "s1"), Some(sb(1, 21, both_active()))),
            ],
            vec![eth0("52:54:00:00:00:01")],
        );
        let v = run(&p, false);
        assert_eq!(v.verdict, Verdict::Good, "{:#?}", v.findings);
        assert_eq!(v.arrays.len(), 1);
        assert!(!v.arrays[0].degraded);
    }

    #[test]
    fn swapped_slots_and_a_new_mac_are_acceptable_changes() {
        let p = present(
            vec![
                disk("sda", id("raid-b", "s0"), Some(sb(1, 20, both_active()))),
                disk("sdb", id("raid-a", "s1"), Some(sb(0, 20, both_active()))),
                disk("sdc", id("foreign", "s2"), None),
            ],
            vec![eth0("52:54:00:00:00:99")],
        );
        let v = run(&p, false);
        assert_eq!(v.verdict, Verdict::Acceptable, "{:#?}", v.findings);
        let s = statuses(&v);
        assert!(s.contains(&("member raid-a of array box1:0".into(), Status::SlotChanged)));
        assert!(s.contains(&("disk sdc".into(), Status::Unexpected)));
        assert!(s.contains(&("nic eth0".into(), Status::NicMacChanged)));
    }

    #[test]
    fn a_disk_with_another_serial_in_a_members_bay_is_wrong_and_named() {
        let p = present(
            vec![
                disk("sda", id("raid-a", "s0"), Some(sb(0, 20, both_active()))),
                disk("sdb", id("raid-w", "s1"), None),
            ],
            vec![],
        );
        let v = run(&p, true);
        assert_eq!(v.verdict, Verdict::Refuse);
        let f = v
            .findings
            .iter()
            .find(|f| f.status == Status::Wrong)
            .expect("a wrong disk");
        assert!(f.message.contains("slot s1"), "{}", f.message);
        assert!(
            f.message.contains("raid-w") && f.message.contains("raid-b"),
            "{}",
            f.message
        );
    }

    /// box1 failed raid-b and removed it (`mdadm --fail`, `--remove`), then wrote on: raid-a
    /// is at event 40 and no longer lists raid-b; raid-b still says 22, both active. Both
    /// disks were moved into the standby, raid-b included.
    fn stale_member_still_in_the_box(twin_sees_it_as: Role) -> Present {
        present(
            vec![
                disk(
                    "sda",
                    id("raid-a", "s0"),
                    Some(sb(0, 40, vec![Role::Active(0), twin_sees_it_as])),
                ),
                disk("sdb", id("raid-b", "s1"), Some(sb(1, 22, both_active()))),
            ],
            vec![eth0("52:54:00:00:00:01")],
        )
    }

    fn stale_finding(v: &Verification) -> &Finding {
        v.findings
            .iter()
            .find(|f| f.status == Status::Stale)
            .expect("a stale member")
    }

    #[test]
    fn a_stale_member_still_in_the_box_is_left_out_with_accept_degraded_and_refused_without() {
        let p = stale_member_still_in_the_box(Role::Spare);

        // With --accept-degraded: assembled from the fresh member only, raid-b untouched.
        let v = run(&p, true);
        assert_eq!(v.verdict, Verdict::Acceptable, "{:#?}", v.findings);
        assert_eq!(v.refusals(true).count(), 0);
        assert_eq!(v.arrays[0].members, vec![PathBuf::from("/dev/sda")]);
        assert!(v.arrays[0].degraded);
        let f = stale_finding(&v);
        assert_eq!(f.device.as_deref(), Some("sdb"));
        assert!(f.left_out);
        // Says what happened to it, not mdadm's word for an empty slot.
        assert!(
            f.message
                .contains("failed and removed from box1:0 on the primary")
                && f.message
                    .contains("its event count 22 is behind the other member's 40"),
            "{}",
            f.message
        );
        assert!(!f.message.contains("spare"), "{}", f.message);
        // How to add it back after the takeover, once it is known to be the failed disk.
        assert!(
            f.message.contains("leaves it out, untouched"),
            "{}",
            f.message
        );
        assert!(
            f.message.contains("mdadm --examine /dev/sdb")
                && f.message.contains("mdadm /dev/md/hamn-0 --add /dev/sdb")
                && f.message.contains("full resync"),
            "{}",
            f.message
        );

        // Without it: refused, the stale member and the degraded array both named.
        let v = run(&p, false);
        assert_eq!(v.verdict, Verdict::Refuse);
        let refused: Vec<Status> = v.refusals(false).map(|f| f.status).collect();
        assert!(refused.contains(&Status::Stale), "{refused:?}");
        assert!(refused.contains(&Status::ArrayDegraded), "{refused:?}");
        assert!(
            stale_finding(&v).message.contains("--accept-degraded"),
            "{}",
            stale_finding(&v).message
        );
    }

    #[test]
    fn a_member_failed_but_not_yet_removed_on_the_primary_is_left_out_the_same_way() {
        let v = run(&stale_member_still_in_the_box(Role::Faulty), true);
        assert_eq!(v.verdict, Verdict::Acceptable, "{:#?}", v.findings);
        let f = stale_finding(&v);
        assert!(f.left_out);
        assert!(
            f.message.contains("behind the other member's 40") && f.message.contains("faulty"),
            "{}",
            f.message
        );
        assert_eq!(v.arrays[0].members, vec![PathBuf::from("/dev/sda")]);
        assert_eq!(
            run(&stale_member_still_in_the_box(Role::Faulty), false).verdict,
            Verdict::Refuse
        );
    }

    #[test]
    fn members_used_apart_from_each_other_are_refused_even_when_degraded_is_accepted() {
        // Each half was run without the other: raid-b's own superblock counts raid-a out.
        let p = present(
            vec![
                disk(
                    "sda",
                    id("raid-a", "s0"),
                    Some(sb(0, 40, vec![Role::Active(0), Role::Faulty])),
                ),
                disk(
                    "sdb",
                    id("raid-b", "s1"),
                    Some(sb(1, 30, vec![Role::Faulty, Role::Active(1)])),
                ),
            ],
            vec![],
        );
        let v = run(&p, true);
        assert_eq!(v.verdict, Verdict::Refuse);
        let f = stale_finding(&v);
        assert!(!f.left_out);
        assert!(f.message.contains("used apart"), "{}", f.message);
    }

    fn md(kernel_name: &str, state: &str, uuid: Option<&str>, members: &[&str]) -> MdArray {
        MdArray {
            kernel_name: kernel_name.into(),
            devnode: Some(format!("/dev/{kernel_name}")),
            name: uuid.map(|_| "box1:0".into()),
            uuid: uuid.map(str::to_string),
            level: None,
            state: Some(state.into()),
            raid_disks: None,
            degraded: None,
            members: members
                .iter()
                .map(|m| MdMember {
                    kernel_name: (*m).into(),
                    state: None,
                })
                .collect(),
            size_bytes: None,
            filesystem: None,
        }
    }

    #[test]
    fn an_inactive_array_udev_started_is_assembled_but_not_running_and_stopped_first() {
        // udev's incremental assembly took the stale member into an inactive md127.
        let mut p = stale_member_still_in_the_box(Role::Spare);
        p.inventory.md.push(md("md127", "inactive", None, &["sdb"]));
        let v = run(&p, true);
        assert_eq!(v.verdict, Verdict::Acceptable, "{:#?}", v.findings);
        let f = v
            .findings
            .iter()
            .find(|f| f.status == Status::ArrayRunning)
            .expect("md127 reported");
        assert!(
            f.message
                .contains("/dev/md127 with sdb is assembled but inactive"),
            "{}",
            f.message
        );
        assert!(!f.message.contains("running"), "{}", f.message);
        assert!(
            f.message.contains("stops /dev/md127 first")
                && f.message
                    .contains("assembles box1:0 as /dev/md/hamn-0 from /dev/sda"),
            "{}",
            f.message
        );
        // Takeover stops every array in `running` before it assembles; md127 is not reused.
        let a = &v.arrays[0];
        assert_eq!(a.running, vec![("md127".into(), Some("inactive".into()))]);
        assert_eq!(a.assembled, None);
        assert_eq!(crate::disks::md::device_name(a), "/dev/md/hamn-0");
    }

    #[test]
    fn an_array_already_assembled_from_the_verified_members_is_named_by_its_kernel_device() {
        let mut p = stale_member_still_in_the_box(Role::Spare);
        p.inventory
            .md
            .push(md("md127", "clean", Some(UUID), &["sda"]));
        let v = run(&p, true);
        let a = &v.arrays[0];
        assert_eq!(a.assembled.as_deref(), Some("md127"));
        assert_eq!(crate::disks::md::device_name(a), "/dev/md127");
        let f = v
            .findings
            .iter()
            .find(|f| f.status == Status::ArrayRunning)
            .expect("md127 reported");
        assert!(
            f.message.contains("already assembled as /dev/md127"),
            "{}",
            f.message
        );
        // The add-back command names the array where it is.
        assert!(
            stale_finding(&v)
                .message
                .contains("mdadm /dev/md127 --add /dev/sdb"),
            "{}",
            stale_finding(&v).message
        );
    }

    #[test]
    fn a_lone_member_older_than_the_manifest_is_stale() {
        let p = present(
            vec![disk(
                "sda",
                id("raid-a", "s0"),
                Some(sb(0, 5, both_active())),
            )],
            vec![],
        );
        let v = run(&p, true);
        assert!(
            v.findings
                .iter()
                .any(|f| f.status == Status::Stale && f.message.contains("behind the 20 recorded"))
        );
    }

    #[test]
    fn one_member_missing_is_refused_unless_degraded_is_accepted() {
        let p = present(
            vec![disk(
                "sda",
                id("raid-a", "s0"),
                Some(sb(0, 20, both_active())),
            )],
            vec![],
        );
        let v = run(&p, false);
        assert_eq!(v.verdict, Verdict::Refuse);
        assert!(statuses(&v).contains(&(
            "member raid-b of array box1:0".into(),
            Status::MemberMissing
        )));
        let v = run(&p, true);
        assert_eq!(v.verdict, Verdict::Acceptable, "{:#?}", v.findings);
        assert!(v.arrays[0].degraded);
    }

    #[test]
    fn a_member_event_count_one_behind_is_still_fresh() {
        // md rolls the count back by one on a clean/dirty transition.
        let p = present(
            vec![
                disk("sda", id("raid-a", "s0"), Some(sb(0, 21, both_active()))),
                disk("sdb", id("raid-b", "s1"), Some(sb(1, 20, both_active()))),
            ],
            vec![eth0("52:54:00:00:00:01")],
        );
        assert_eq!(run(&p, false).verdict, Verdict::Good);
    }

    #[test]
    fn a_disk_reused_for_another_array_is_wrong() {
        let mut other = sb(1, 20, both_active());
        other.array_uuid = "ffffffff:00000000:00000000:00000001".into();
        let p = present(
            vec![
                disk("sda", id("raid-a", "s0"), Some(sb(0, 20, both_active()))),
                disk("sdb", id("raid-b", "s1"), Some(other)),
            ],
            vec![],
        );
        let v = run(&p, true);
        assert!(
            v.findings
                .iter()
                .any(|f| f.status == Status::Wrong && f.message.contains("disk was reused"))
        );
    }

    #[test]
    fn os_disks_that_stayed_behind_are_noted_not_refused() {
        let mut m = manifest();
        m.arrays[0].os = true;
        m.disks.push(DiskRecord {
            disk: id("os-1", "s9"),
            os: true,
            filesystem: None,
            partitions: Vec::new(),
        });
        let p = present(
            vec![disk("sdc", id("foreign", "s0"), None)],
            vec![eth0("52:54:00:00:00:01")],
        );
        let v = verify(
            &m,
            &p,
            &Bays {
                recorded: None,
                present: None,
            },
            false,
        );
        assert_eq!(v.verdict, Verdict::Good, "{:#?}", v.findings);
        assert_eq!(
            v.findings
                .iter()
                .filter(|f| f.status == Status::NotMoved)
                .count(),
            2,
            "{:#?}",
            v.findings
        );
        // Half an OS array is still a degraded array, not "stayed behind".
        let p = present(
            vec![disk(
                "sda",
                id("raid-a", "s0"),
                Some(sb(0, 20, both_active())),
            )],
            vec![],
        );
        let v = verify(
            &m,
            &p,
            &Bays {
                recorded: None,
                present: None,
            },
            false,
        );
        assert_eq!(v.verdict, Verdict::Refuse);
    }

    #[test]
    fn a_renamed_nic_is_found_by_its_mac() {
        let p = present(
            vec![
                disk("sda", id("raid-a", "s0"), Some(sb(0, 20, both_active()))),
                disk("sdb", id("raid-b", "s1"), Some(sb(1, 20, both_active()))),
            ],
            vec![Nic {
                name: "ens3".into(),
                mac: "52:54:00:00:00:01".into(),
                networks: vec!["192.168.50.0/24".into()],
            }],
        );
        let v = run(&p, false);
        assert_eq!(v.verdict, Verdict::Acceptable);
        let f = v
            .findings
            .iter()
            .find(|f| f.status == Status::NicRenamed)
            .expect("renamed");
        assert!(f.message.contains("now named ens3"), "{}", f.message);
    }
}
