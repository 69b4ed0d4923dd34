//! SCSI for shared-storage fencing: SG_IO pass-through (`sg`), sense and status decoding
//! (`sense`), PERSISTENT RESERVE IN/OUT encoding and decoding (`pr`), and reservations
//! applied on every path of a LUN (`reserve`).

pub mod pr;
pub mod reserve;
pub mod sense;
pub mod sg;
