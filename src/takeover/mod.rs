//! `hamn takeover`: the orchestrator. It knows the order and the gates; the adapters
//! (fence, disks, scsi, fs) know their hardware. `moved` is xCAT's recipe 1 (the failed
//! node's disks moved into this box), `san` recipes 2 and 5 (shared LUNs), `giveback` the
//! planned reverse, `status` what is where.

pub mod giveback;
pub mod journal;
pub mod moved;
pub mod san;
pub mod status;
