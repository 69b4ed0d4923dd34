//! `hamn takeover`: the orchestrator. It knows the order and the gates; the adapters
//! (fence, disks, scsi, fs) know their hardware. `moved` is xCAT's recipe 1 (the failed
//! node's disks moved into this box).

pub mod journal;
pub mod moved;
pub mod san;
