//! Which shared LUNs this node has held (taken over, reserved or preempted), kept beside
//! the journal. It is how a returning node is told from a first-time standby: a node
//! that held a LUN and finds its key gone while another node holds the reservation was
//! fenced, and must not register again on its own (a boot script, the OCF start) — the
//! admin lets it back with `--rejoin`. A standby that never held the LUN registers as
//! documented. A clean giveback or release forgets the LUN: leaving voluntarily is not
//! being fenced.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::scsi::reserve::LunReport;

#[derive(Debug, thiserror::Error)]
pub enum HeldError {
    #[error(
        "cannot record which LUNs this node holds in {path}: {source}. The storage step \
         itself was done"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is unreadable ({message}): hamn cannot tell whether this node was fenced. \
         Look at `hamn pr status --all-shared`, then move the file aside and register \
         with --rejoin if this node may write again"
    )]
    Invalid { path: PathBuf, message: String },
}

/// The LUNs (by WWID, else name) this node has held.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Held {
    pub luns: BTreeSet<String>,
}

/// The file beside the takeover journal.
pub fn path_beside(journal: &Path) -> PathBuf {
    journal.with_file_name("held-luns.json")
}

/// The identity a LUN is remembered by: its WWID where known.
pub fn id_of(name: &str, wwid: Option<&str>) -> String {
    wwid.unwrap_or(name).to_string()
}

impl Held {
    pub fn load(path: &Path) -> Result<Held, HeldError> {
        match std::fs::read_to_string(path) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| HeldError::Invalid {
                path: path.into(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Held::default()),
            Err(e) => Err(HeldError::Invalid {
                path: path.into(),
                message: e.to_string(),
            }),
        }
    }

    /// Add or forget `ids` and write through (fsync, rename).
    pub fn update(path: &Path, add: &[String], forget: &[String]) -> Result<(), HeldError> {
        use std::io::Write;
        let mut h = Held::load(path)?;
        h.luns.extend(add.iter().cloned());
        for f in forget {
            h.luns.remove(f);
        }
        let err = |source| HeldError::Write {
            path: path.into(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(
            serde_json::to_string_pretty(&h)
                .unwrap_or_default()
                .as_bytes(),
        )
        .map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

/// What a registration at boot may do on one LUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejoin {
    /// A first-time standby, a node whose key is still there, or a LUN nobody holds.
    Register,
    /// This node held the LUN, its key is on no path and `holder` holds it now: it was
    /// fenced.
    Refuse { holder: String },
}

/// The rule, on what every path of the LUN reads now.
pub fn decide(own_key: &str, held_before: bool, now: &LunReport) -> Rejoin {
    let readable: Vec<_> = now.paths.iter().filter(|p| p.ok).collect();
    let own_present = readable.iter().any(|p| p.keys.iter().any(|k| k == own_key));
    let other_holder = readable
        .iter()
        .find_map(|p| p.holder.clone().filter(|h| h != own_key));
    match other_holder {
        Some(holder) if held_before && !own_present => Rejoin::Refuse { holder },
        _ => Rejoin::Register,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::reserve::PathReport;

    fn lun(keys: &[&str], holder: Option<&str>) -> LunReport {
        let path = |p: &str| PathReport {
            path: p.into(),
            ok: true,
            error: None,
            generation: Some(7),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            holder: holder.map(str::to_string),
            reservation_type: None,
            registrants: Vec::new(),
        };
        LunReport {
            lun: "mpatha".into(),
            wwid: Some("36001405aa".into()),
            paths: vec![path("/dev/sdb"), path("/dev/sdc")],
            notes: Vec::new(),
        }
    }

    const MN1: &str = "0x000000000000000a";
    const MN2: &str = "0x000000000000000b";

    #[test]
    fn the_returning_primary_whose_key_was_preempted_does_not_register_by_itself() {
        // mn1 held the LUN; mn2 took over (preempted mn1's key and holds it).
        assert_eq!(
            decide(MN1, true, &lun(&[MN2], Some(MN2))),
            Rejoin::Refuse { holder: MN2.into() }
        );
    }

    #[test]
    fn a_first_time_standby_registers_while_the_primary_holds_the_lun() {
        assert_eq!(
            decide(MN2, false, &lun(&[MN1], Some(MN1))),
            Rejoin::Register
        );
    }

    #[test]
    fn a_node_whose_key_is_still_there_or_a_free_lun_registers() {
        // Rebooted without being fenced: its key is still registered.
        assert_eq!(
            decide(MN1, true, &lun(&[MN1, MN2], Some(MN2))),
            Rejoin::Register
        );
        // Nobody holds it (the other node gave it back): nothing to protect.
        assert_eq!(decide(MN1, true, &lun(&[], None)), Rejoin::Register);
    }

    #[test]
    fn held_luns_are_remembered_and_forgotten_on_disk() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = path_beside(&dir.path().join("takeover.json"));
        assert!(Held::load(&p).expect("none").luns.is_empty());
        Held::update(&p, &["36001405aa".into(), "36001405bb".into()], &[]).expect("add");
        Held::update(&p, &[], &["36001405aa".into()]).expect("forget");
        let back = Held::load(&p).expect("read");
        assert_eq!(back.luns.into_iter().collect::<Vec<_>>(), ["36001405bb"]);
    }
}
