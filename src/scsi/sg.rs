//! SG_IO pass-through: one SCSI command to one device node (a path such as /dev/sdb, or
//! its sg node), with a timeout, returning the data or a typed error decoded from the
//! status, host/driver status and sense data.
//!
//! Unit attentions are consumed and the command retried a bounded number of times: after
//! another node changes the reservations, the first command of every other I_T nexus
//! gets "reservations preempted" or "registrations preempted" (SPC-4 §5.14.11), which
//! says nothing about the command itself.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::debug;

use super::sense::{self, ScsiError};

const SG_IO: libc::c_ulong = 0x2285;
const SG_DXFER_NONE: libc::c_int = -1;
const SG_DXFER_TO_DEV: libc::c_int = -2;
const SG_DXFER_FROM_DEV: libc::c_int = -3;
const SENSE_LEN: usize = 64;

/// How many unit attentions one command may meet before the caller hears about it.
pub const UNIT_ATTENTION_RETRIES: u32 = 3;

/// `struct sg_io_hdr` from <scsi/sg.h>.
#[repr(C)]
struct SgIoHdr {
    interface_id: libc::c_int,
    dxfer_direction: libc::c_int,
    cmd_len: libc::c_uchar,
    mx_sb_len: libc::c_uchar,
    iovec_count: libc::c_ushort,
    dxfer_len: libc::c_uint,
    dxferp: *mut libc::c_void,
    cmdp: *const libc::c_uchar,
    sbp: *mut libc::c_uchar,
    timeout: libc::c_uint,
    flags: libc::c_uint,
    pack_id: libc::c_int,
    usr_ptr: *mut libc::c_void,
    status: libc::c_uchar,
    masked_status: libc::c_uchar,
    msg_status: libc::c_uchar,
    sb_len_wr: libc::c_uchar,
    host_status: libc::c_ushort,
    driver_status: libc::c_ushort,
    resid: libc::c_int,
    duration: libc::c_uint,
    info: libc::c_uint,
}

/// Data phase of a command.
pub enum Data<'a> {
    None,
    In(usize),
    Out(&'a [u8]),
}

#[derive(Debug, thiserror::Error)]
pub enum SgError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("SG_IO on {path} failed: {source} (is it a SCSI device?)")]
    Ioctl {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Scsi { path: PathBuf, source: ScsiError },
    #[error("{path}: the device returned data hamn cannot decode: {detail}")]
    Decode { path: PathBuf, detail: String },
}

impl SgError {
    pub fn scsi(&self) -> Option<&ScsiError> {
        match self {
            SgError::Scsi { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// An open SCSI device node.
pub struct ScsiDevice {
    path: PathBuf,
    file: File,
    timeout: Duration,
}

impl ScsiDevice {
    /// Open read-only: SG_IO needs no write access for PERSISTENT RESERVE commands, and
    /// a read-only open cannot disturb the filesystem on the device.
    pub fn open(path: &Path, timeout: Duration) -> Result<Self, SgError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|source| SgError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(ScsiDevice {
            path: path.to_path_buf(),
            file,
            timeout,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One command, without retries.
    pub fn execute_once(&self, cdb: &[u8], data: Data) -> Result<Vec<u8>, SgError> {
        let mut sense_buf = [0u8; SENSE_LEN];
        let mut in_buf: Vec<u8> = match data {
            Data::In(n) => vec![0u8; n],
            _ => Vec::new(),
        };
        let (direction, ptr, len) = match data {
            Data::None => (SG_DXFER_NONE, std::ptr::null_mut(), 0),
            Data::In(n) => (SG_DXFER_FROM_DEV, in_buf.as_mut_ptr().cast(), n),
            // The kernel only reads from a TO_DEV buffer.
            Data::Out(b) => (SG_DXFER_TO_DEV, b.as_ptr().cast_mut().cast(), b.len()),
        };
        let mut hdr = SgIoHdr {
            interface_id: b'S' as libc::c_int,
            dxfer_direction: direction,
            cmd_len: cdb.len().min(255) as libc::c_uchar,
            mx_sb_len: SENSE_LEN as libc::c_uchar,
            iovec_count: 0,
            dxfer_len: len as libc::c_uint,
            dxferp: ptr,
            cmdp: cdb.as_ptr(),
            sbp: sense_buf.as_mut_ptr(),
            timeout: self.timeout.as_millis().min(u32::MAX as u128) as libc::c_uint,
            flags: 0,
            pack_id: 0,
            usr_ptr: std::ptr::null_mut(),
            status: 0,
            masked_status: 0,
            msg_status: 0,
            sb_len_wr: 0,
            host_status: 0,
            driver_status: 0,
            resid: 0,
            duration: 0,
            info: 0,
        };
        // SAFETY: `hdr` points at `cdb`, `sense_buf` and the data buffer, all of which
        // outlive the synchronous ioctl and have the lengths given in `hdr`.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), SG_IO, &mut hdr as *mut SgIoHdr) };
        if rc < 0 {
            return Err(SgError::Ioctl {
                path: self.path.clone(),
                source: std::io::Error::last_os_error(),
            });
        }
        let sense_len = (hdr.sb_len_wr as usize).min(SENSE_LEN);
        sense::classify(
            hdr.status,
            hdr.host_status,
            hdr.driver_status,
            &sense_buf[..sense_len],
        )
        .map_err(|source| SgError::Scsi {
            path: self.path.clone(),
            source,
        })?;
        if let Data::In(n) = data {
            let got = n.saturating_sub(hdr.resid.max(0) as usize);
            in_buf.truncate(got);
        }
        Ok(in_buf)
    }

    /// One command, retried after each unit attention up to `UNIT_ATTENTION_RETRIES`.
    pub fn execute(&self, cdb: &[u8], data: Data) -> Result<Vec<u8>, SgError> {
        let mut attempt = 0;
        loop {
            let d = match &data {
                Data::None => Data::None,
                Data::In(n) => Data::In(*n),
                Data::Out(b) => Data::Out(b),
            };
            match self.execute_once(cdb, d) {
                Err(SgError::Scsi {
                    source: ScsiError::UnitAttention { asc, ascq, .. },
                    ..
                }) if attempt < UNIT_ATTENTION_RETRIES => {
                    attempt += 1;
                    debug!(path = %self.path.display(), asc, ascq, "unit attention consumed; retrying");
                }
                other => return other,
            }
        }
    }
}
