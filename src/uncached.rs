//! Reading on-disk metadata (ext superblocks, md superblocks) past this node's page
//! cache. The cache may predate the other node's last writes: udev probed the device at
//! boot, the peer wrote since, md writes its superblocks around the member's cache. So
//! reads use O_DIRECT through a 4 KiB-aligned buffer. Where O_DIRECT is refused (EINVAL:
//! tmpfs before Linux 6.6 at open, some filesystems only at read, a logical block larger
//! than 4 KiB) the read goes through the cache after the range was dropped from it with
//! posix_fadvise(DONTNEED); for a block device a refused drop is an error, since a
//! cached, possibly stale block would be read. For an image file the cache is the truth:
//! no other node writes to a file on this node's own filesystem. BLKFLSBUF would drop the
//! whole device, but needs CAP_SYS_ADMIN and writes back dirty buffers.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

/// The read unit: a whole, aligned block for O_DIRECT on 512-byte and 4Kn devices.
pub const BLOCK: usize = 4096;

#[repr(C, align(4096))]
struct Aligned([u8; BLOCK]);

/// A device or image opened for uncached reads.
#[derive(Debug)]
pub struct Reader {
    path: PathBuf,
    file: File,
    direct: bool,
}

impl Reader {
    pub fn open(path: &Path) -> io::Result<Reader> {
        match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
        {
            Ok(file) => Ok(Reader {
                path: path.to_path_buf(),
                file,
                direct: true,
            }),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Self::buffered(path),
            Err(e) => Err(e),
        }
    }

    fn buffered(path: &Path) -> io::Result<Reader> {
        let file = File::open(path)?;
        if file.metadata()?.file_type().is_block_device() {
            warn!(device = %path.display(), "O_DIRECT refused; reading buffered after dropping each block from the page cache");
        } else {
            debug!(file = %path.display(), "O_DIRECT refused; reading the image file buffered");
        }
        Ok(Reader {
            path: path.to_path_buf(),
            file,
            direct: false,
        })
    }

    /// Whether the reads bypass the page cache (O_DIRECT).
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Up to [`BLOCK`] bytes at `offset` (a multiple of [`BLOCK`]); fewer only at the end.
    pub fn read_block(&mut self, offset: u64) -> io::Result<Vec<u8>> {
        let mut block = Box::new(Aligned([0; BLOCK]));
        let n = if self.direct {
            match read_at_most(&self.file, &mut block.0, offset, true) {
                Ok(n) => n,
                // Some filesystems accept O_DIRECT at open and refuse it at read.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    *self = Self::buffered(&self.path)?;
                    self.read_buffered(&mut block.0, offset)?
                }
                Err(e) => return Err(e),
            }
        } else {
            self.read_buffered(&mut block.0, offset)?
        };
        Ok(block.0.get(..n).unwrap_or(&[]).to_vec())
    }

    fn read_buffered(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        // SAFETY: posix_fadvise only reads its integer arguments; the descriptor is open
        // for the duration of the call.
        let rc = unsafe {
            libc::posix_fadvise(
                self.file.as_raw_fd(),
                offset as libc::off_t,
                BLOCK as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            )
        };
        if rc != 0 && self.file.metadata()?.file_type().is_block_device() {
            return Err(io::Error::from_raw_os_error(rc));
        }
        read_at_most(&self.file, buf, offset, false)
    }
}

fn read_at_most(file: &File, buf: &mut [u8], offset: u64, direct: bool) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let Some(rest) = buf.get_mut(done..) else {
            break;
        };
        match file.read_at(rest, offset + done as u64) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                // A short direct read is the end of the device; continuing would be an
                // unaligned request the kernel refuses.
                if direct {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
