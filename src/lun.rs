//! A LUN as hamn addresses it: a name, its WWID and the device node of each of its paths
//! (each I_T nexus). The disks inventory finds them; the SCSI adapter reserves on them;
//! so the type lives here, below both.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lun {
    pub name: String,
    pub wwid: Option<String>,
    pub paths: Vec<PathBuf>,
}
