//! hamn: safe takeover for the standby xCAT management node.
//!
//! The gates, in order: fence the peer and prove it is off (`fence`), and only then
//! touch storage. Adapters talk to hardware (`bmc`, `scsi`, `disks`, `fs`, `net`, `svc`)
//! and never to each other; what they share is the ground floor: `config` and `profiles`
//! hold what the admin and the hardware vendors tell us, `exec` runs every external
//! program, `mountinfo` reads the mount table, `uncached` reads on-disk metadata past
//! the page cache.

// Nothing that came from outside the process may panic the safety code.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// Errors travel once, on the failure path of a short-lived command; their size does not
// matter, and boxing them would only obscure the types.
#![allow(clippy::result_large_err)]

pub mod app;
pub mod audit;
pub mod bmc;
pub mod cli;
pub mod config;
pub mod disks;
pub mod drbd;
pub mod exec;
pub mod fence;
pub mod fs;
pub mod logging;
pub mod lun;
pub mod mountinfo;
pub mod net;
pub mod profiles;
pub mod scsi;
pub mod secret;
pub mod svc;
pub mod takeover;
pub mod uncached;
