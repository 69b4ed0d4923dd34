//! The disk identity manifest: what `hamn disks record` writes on the healthy primary and
//! `hamn disks verify` compares after the disks were moved. A versioned TOML file
//! (documented in hamn(8)); this module owns its format, reading, writing and diff.
//!
//! Only identity is compared by the diff: serials, WWNs, slots, array and filesystem
//! UUIDs, mount points, NIC names, MACs and networks. Event counts and the time of
//! recording change on every run, so a rerun on an unchanged node shows no difference.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The format version this hamn writes and the newest it reads.
pub const VERSION: u32 = 1;

/// Where record writes and verify reads when neither --output/--manifest nor hamn.toml
/// says otherwise.
pub const DEFAULT_PATH: &str = "/etc/hamn/disks.toml";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "cannot read the disk manifest {path}: {source}. Record one on the primary with \
         `hamn disks record` and copy it here, or name it with --manifest"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("disk manifest {path} is not valid: {message}. Re-record it on the primary")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "disk manifest {path} is format version {found}, newer than this hamn reads (up to \
         {VERSION}): upgrade hamn on this node, or re-record the manifest with this version"
    )]
    Newer { path: PathBuf, found: u32 },
    #[error("cannot write the disk manifest {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version (see `VERSION`).
    pub version: u32,
    /// The node whose disks these are (its hostname when recorded).
    pub node: String,
    /// RFC 3339 UTC time of recording.
    pub recorded_at: String,
    /// "hamn <version>".
    pub recorded_by: String,
    /// DMI product name of the server the disks were in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, rename = "array", skip_serializing_if = "Vec::is_empty")]
    pub arrays: Vec<ArrayRecord>,
    #[serde(default, rename = "disk", skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskRecord>,
    #[serde(default, rename = "nic", skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<NicRecord>,
}

/// An md array (RAID1 for xCAT's recipe; other levels are recorded the same way).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArrayRecord {
    /// Array UUID as mdadm prints it (xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx).
    pub uuid: String,
    /// Name in the superblock, e.g. "box1:0".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// "raid1", ...
    pub level: String,
    pub raid_disks: u32,
    /// Holds the OS or boot filesystem (/, /boot, /boot/efi, /usr, /var).
    #[serde(default)]
    pub os: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FsRecord>,
    #[serde(rename = "member")]
    pub members: Vec<MemberRecord>,
}

/// One member of an array: the disk it is on, and its superblock facts when recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRecord {
    #[serde(flatten)]
    pub disk: DiskIdentity,
    /// Partition number when the member is a partition (sda2 -> 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// Member (device) UUID from its superblock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_uuid: Option<String>,
    /// md event count when recorded: a member found later with fewer events is older than
    /// this manifest (a stale member from an earlier move).
    pub events: u64,
}

/// What identifies a physical disk, and where it sat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskIdentity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wwn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Slot as udev's ID_PATH (its /dev/disk/by-path name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
}

impl DiskIdentity {
    /// The serial, else the WWN: how the admin names the disk.
    pub fn short_name(&self) -> String {
        self.serial
            .clone()
            .or_else(|| self.wwn.clone())
            .unwrap_or_else(|| "?".into())
    }

    /// "serial S (WWN W)", for messages.
    pub fn describe(&self) -> String {
        match (&self.serial, &self.wwn) {
            (Some(s), Some(w)) => format!("serial {s} (WWN {w})"),
            (Some(s), None) => format!("serial {s}"),
            (None, Some(w)) => format!("WWN {w}"),
            (None, None) => "a disk without serial or WWN".into(),
        }
    }
}

/// A disk outside any array that carries a filesystem (a data disk, or the OS disk).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskRecord {
    #[serde(flatten)]
    pub disk: DiskIdentity,
    #[serde(default)]
    pub os: bool,
    /// A filesystem on the whole disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FsRecord>,
    #[serde(default, rename = "partition", skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionRecord {
    pub number: u32,
    pub filesystem: FsRecord,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsRecord {
    #[serde(rename = "type")]
    pub fs_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Where it belongs: where it was mounted when recorded. takeover mounts it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mountpoint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicRecord {
    pub name: String,
    pub mac: String,
    /// IPv4/IPv6 networks (CIDR) the NIC was on, e.g. "172.20.0.0/16".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Reads the version first, so a newer manifest is reported as newer and not as a
    /// list of unknown fields.
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let invalid = |message: String| ManifestError::Invalid {
            path: path.into(),
            message,
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let version = match table.get("version") {
            Some(toml::Value::Integer(v)) => u32::try_from(*v)
                .map_err(|_| invalid(format!("version {v} is not a format version")))?,
            Some(other) => return Err(invalid(format!("version is {other}, not a number"))),
            None => {
                return Err(invalid(
                    "no `version` key: not a hamn disk manifest?".into(),
                ));
            }
        };
        if version > VERSION {
            return Err(ManifestError::Newer {
                path: path.into(),
                found: version,
            });
        }
        if version == 0 {
            return Err(invalid("version 0 does not exist".into()));
        }
        toml::from_str(text).map_err(|e| invalid(e.to_string()))
    }

    /// The file text: a header saying what this is, then the TOML.
    pub fn to_text(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_default();
        format!(
            "# hamn disk manifest: the identity of {node}'s disks, written by `hamn disks record`.\n\
             # Copy it to the standby (see hamn(8)); `hamn disks verify` reads it there.\n\
             # Do not edit by hand: re-record instead.\n{body}",
            node = self.node
        )
    }

    /// Writes atomically (temporary file, then rename), so a verify on a copy being
    /// synced never reads half a manifest.
    pub fn write(&self, path: &Path) -> Result<(), ManifestError> {
        let err = |source| ManifestError::Write {
            path: path.into(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, self.to_text()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

/// One line of identity: a stable key and its value.
type Facts = BTreeMap<String, String>;

fn fs_facts(facts: &mut Facts, prefix: &str, fs: &FsRecord) {
    facts.insert(format!("{prefix} filesystem type"), fs.fs_type.clone());
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    facts.insert(format!("{prefix} filesystem uuid"), opt(&fs.uuid));
    facts.insert(format!("{prefix} filesystem label"), opt(&fs.label));
    facts.insert(format!("{prefix} mount point"), opt(&fs.mountpoint));
}

fn disk_facts(facts: &mut Facts, prefix: &str, d: &DiskIdentity) {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    facts.insert(format!("{prefix} wwn"), opt(&d.wwn));
    facts.insert(format!("{prefix} model"), opt(&d.model));
    facts.insert(
        format!("{prefix} size"),
        d.size_bytes.map_or("-".into(), |s| s.to_string()),
    );
    facts.insert(format!("{prefix} slot"), opt(&d.slot));
}

fn disk_key(d: &DiskIdentity) -> String {
    d.serial
        .clone()
        .or_else(|| d.wwn.clone())
        .unwrap_or_else(|| format!("at {}", d.slot.as_deref().unwrap_or("?")))
}

/// The identity facts of a manifest, keyed so that order in the file does not matter.
fn facts(m: &Manifest) -> Facts {
    let mut f = Facts::new();
    f.insert("node".into(), m.node.clone());
    f.insert(
        "server".into(),
        m.server.clone().unwrap_or_else(|| "-".into()),
    );
    for a in &m.arrays {
        let p = format!("array {}", a.name.as_deref().unwrap_or(&a.uuid));
        f.insert(format!("{p} uuid"), a.uuid.clone());
        f.insert(format!("{p} level"), a.level.clone());
        f.insert(format!("{p} raid disks"), a.raid_disks.to_string());
        f.insert(format!("{p} os"), a.os.to_string());
        if let Some(fs) = &a.filesystem {
            fs_facts(&mut f, &p, fs);
        }
        for mem in &a.members {
            let mp = format!("{p} member {}", disk_key(&mem.disk));
            f.insert(
                format!("{mp} partition"),
                mem.partition.map_or("-".into(), |n| n.to_string()),
            );
            disk_facts(&mut f, &mp, &mem.disk);
        }
    }
    for d in &m.disks {
        let p = format!("disk {}", disk_key(&d.disk));
        disk_facts(&mut f, &p, &d.disk);
        f.insert(format!("{p} os"), d.os.to_string());
        if let Some(fs) = &d.filesystem {
            fs_facts(&mut f, &p, fs);
        }
        for part in &d.partitions {
            fs_facts(
                &mut f,
                &format!("{p} partition {}", part.number),
                &part.filesystem,
            );
        }
    }
    for n in &m.nics {
        let p = format!("nic {}", n.name);
        f.insert(format!("{p} mac"), n.mac.clone());
        f.insert(format!("{p} networks"), n.networks.join(" "));
    }
    f
}

/// One difference between two manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "change")]
pub enum Change {
    Added {
        fact: String,
        now: String,
    },
    Removed {
        fact: String,
        was: String,
    },
    Changed {
        fact: String,
        was: String,
        now: String,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Added { fact, now } => write!(f, "+ {fact}: {now}"),
            Change::Removed { fact, was } => write!(f, "- {fact}: {was}"),
            Change::Changed { fact, was, now } => write!(f, "~ {fact}: {was} -> {now}"),
        }
    }
}

/// What changed from `old` to `new`, identity only (see the module documentation).
pub fn diff(old: &Manifest, new: &Manifest) -> Vec<Change> {
    let (a, b) = (facts(old), facts(new));
    let mut out = Vec::new();
    for (fact, was) in &a {
        match b.get(fact) {
            None => out.push(Change::Removed {
                fact: fact.clone(),
                was: was.clone(),
            }),
            Some(now) if now != was => out.push(Change::Changed {
                fact: fact.clone(),
                was: was.clone(),
                now: now.clone(),
            }),
            Some(_) => {}
        }
    }
    for (fact, now) in &b {
        if !a.contains_key(fact) {
            out.push(Change::Added {
                fact: fact.clone(),
                now: now.clone(),
            });
        }
    }
    out
}

/// UUIDs compared in any spelling: mdadm's colons, blkid's dashes, any case.
pub fn same_uuid(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(char::is_ascii_hexdigit)
            .map(|c| c.to_ascii_lowercase())
            .collect::<String>()
    };
    let (a, b) = (norm(a), norm(b));
    !a.is_empty() && a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        let member = |serial: &str, slot: &str, events: u64| MemberRecord {
            disk: DiskIdentity {
                serial: Some(serial.into()),
                wwn: None,
                model: Some("QEMU HARDDISK".into()),
                size_bytes: Some(64 << 20),
                slot: Some(slot.into()),
            },
            partition: None,
            device_uuid: None,
            events,
        };
        Manifest {
            version: VERSION,
            node: "box1".into(),
            recorded_at: "2026-11-25T19:00:00Z".into(),
            recorded_by: "hamn 0.1.0".into(),
            server: Some("hamn lab box".into()),
            arrays: vec![ArrayRecord {
                uuid: "0a1b2c3d:4e5f6071:8293a4b5:c6d7e8f9".into(),
                name: Some("box1:0".into()),
                level: "raid1".into(),
                raid_disks: 2,
                os: false,
                filesystem: Some(FsRecord {
                    fs_type: "ext4".into(),
                    uuid: Some("1111-2222".into()),
                    label: Some("xcatdata".into()),
                    mountpoint: Some("/install".into()),
                }),
                members: vec![member("raid-a", "s0", 20), member("raid-b", "s1", 20)],
            }],
            disks: vec![],
            nics: vec![NicRecord {
                name: "eth0".into(),
                mac: "52:54:00:00:00:01".into(),
                networks: vec!["192.168.50.0/24".into()],
            }],
        }
    }

    #[test]
    fn a_manifest_survives_writing_and_reading_back() {
        let m = sample();
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("sub/disks.toml");
        m.write(&path).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("# hamn disk manifest"), "{text}");
        assert!(text.contains("[[array.member]]"), "{text}");
        assert_eq!(Manifest::load(&path).expect("load"), m);
    }

    #[test]
    fn rerecording_an_unchanged_node_shows_no_difference() {
        let old = sample();
        let mut new = sample();
        new.recorded_at = "2026-11-26T08:00:00Z".into();
        new.arrays[0].members[0].events = 9999; // writes happened: not an identity change
        new.arrays[0].members.reverse(); // scan order is not identity either
        assert_eq!(diff(&old, &new), vec![]);
    }

    #[test]
    fn a_replaced_member_and_a_renamed_nic_show_up_in_the_diff() {
        let old = sample();
        let mut new = sample();
        new.arrays[0].members[1].disk.serial = Some("raid-c".into());
        new.nics[0].mac = "52:54:00:00:00:09".into();
        let lines: Vec<String> = diff(&old, &new).iter().map(|c| c.to_string()).collect();
        let text = lines.join("\n");
        assert!(
            text.contains("- array box1:0 member raid-b slot: s1"),
            "{text}"
        );
        assert!(
            text.contains("+ array box1:0 member raid-c slot: s1"),
            "{text}"
        );
        assert!(
            text.contains("~ nic eth0 mac: 52:54:00:00:00:01 -> 52:54:00:00:00:09"),
            "{text}"
        );
    }

    #[test]
    fn a_newer_manifest_is_refused_as_newer() {
        let text = sample()
            .to_text()
            .replace("version = 1", "version = 7\nfuture = true");
        let err = Manifest::parse(Path::new("m.toml"), &text).expect_err("newer");
        let msg = err.to_string();
        assert!(
            msg.contains("version 7, newer than this hamn reads"),
            "{msg}"
        );
        assert!(msg.contains("upgrade hamn"), "{msg}");
    }

    #[test]
    fn malformed_manifests_are_refused_with_the_reason() {
        let cases = [
            ("node = \"x\"\n", "no `version` key"),
            ("version = \"one\"\n", "not a number"),
            ("version = 1\nnode = \"x\"\n", "missing field"),
            ("version = 1\n[[[", "parse error"),
            (
                &sample()
                    .to_text()
                    .replace("raid_disks = 2", "raid_disks = 2\ncolour = 1"),
                "unknown field",
            ),
        ];
        for (text, want) in cases {
            let err = Manifest::parse(Path::new("m.toml"), text).expect_err(text);
            let msg = err.to_string();
            assert!(msg.contains("m.toml"), "{msg}");
            assert!(msg.to_lowercase().contains(want), "{text:?}: {msg}");
        }
    }

    #[test]
    fn uuids_compare_in_any_spelling() {
        assert!(same_uuid(
            "0a1b2c3d:4e5f6071:8293a4b5:c6d7e8f9",
            "0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9"
        ));
        assert!(!same_uuid("", ""));
        assert!(!same_uuid("0a1b", "0a1c"));
    }
}
