//! The takeover engine. It knows the order and the gates; the fence module makes the
//! proofs and the adapters (disks, md, scsi, fs, svc) know their hardware.
//!
//! - `step`: every step of every flow, with its exact commands for `--dry-run`;
//! - `run`: the one executor (journal, progress events, gates, resume, interruption);
//! - `lock`: one takeover or giveback at a time on a node;
//! - `flows`: each of xCAT's recipes as a plan of steps (`san`, `moved`);
//! - `giveback`: the reverse plan; `status`: what is where; `journal`, `events`;
//! - `preflight`: what would make a takeover fail, found ahead of time, changing nothing.

pub mod events;
pub mod flows;
pub mod giveback;
pub mod held;
pub mod journal;
pub mod lock;
pub mod preflight;
pub mod run;
pub mod status;
pub mod step;
