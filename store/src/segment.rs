//! Segment files and their memory mappings: the only module with `unsafe`.
//!
//! Mapping policy (why `munmap`, not `madvise(MADV_DONTNEED)`): a mapping that is not
//! needed is dropped (munmap). Both give the touched pages back from the process's RSS
//! while the data stays in the page cache, but dropping the mapping also frees the VMA.
//! A broker with thousands of queues times hundreds of segments would otherwise run into
//! `vm.max_map_count` (65530 by default) long before it runs out of address space, and
//! re-mapping a segment costs one `mmap` syscall, which is noise next to the page faults
//! of reading it. So at any time a queue holds: the write mapping of its current
//! segment, the read mapping of the segment under its read cursor, and read mappings of
//! older segments only while a redelivery reads them (dropped when the cursor moves on).
//!
//! Invariants that make the mappings sound (referenced by the SAFETY comments):
//! - (I1) the queue directory belongs to one `QueueStore` (the broker takes a lock on
//!   the data directory); no other process truncates or writes these files;
//! - (I2) a file is only shrunk (`set_len`) after every mapping of it is dropped: the
//!   write mapping in [`WriteSegment::finish`], read mappings in recovery before the
//!   tail is cut, and closed segments are never resized again;
//! - (I3) mappings never extend past the file's length at mapping time, and by (I2) the
//!   file never gets shorter while mapped, so no access can raise SIGBUS;
//! - (I4) disk blocks of a write segment are reserved with `fallocate` before mapping,
//!   so a store through the mapping cannot hit ENOSPC (which would be a SIGBUS).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Advice, Mmap, MmapMut, MmapOptions};
use zerocopy::IntoBytes;

use crate::record::{self, MessageRef, SEGMENT_HEADER_BYTES};
use crate::SegmentId;

/// `msgs.NNNNNNNNNN` in `dir`.
pub fn segment_path(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(format!("msgs.{:010}", id.0))
}

/// `acks.NNNNNNNNNN` in `dir`.
pub fn ack_path(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(format!("acks.{:010}", id.0))
}

/// Parses `prefix.NNNNNNNNNN` file names.
pub fn parse_file_name(name: &str, prefix: &str) -> Option<SegmentId> {
    let digits = name.strip_prefix(prefix)?.strip_prefix('.')?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(SegmentId)
}

/// Reserves `len` bytes of disk for `file` (and sets its length), so that writes
/// through a mapping cannot fail with ENOSPC (I4). Falls back to a sparse `set_len` on
/// file systems without fallocate; there a full disk is a SIGBUS, as with any mmap
/// writer, which is why we try fallocate first.
fn preallocate(file: &File, len: u64) -> io::Result<()> {
    // SAFETY: plain syscall on a file descriptor we own; no memory is passed.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => file.set_len(len),
        _ => Err(err),
    }
}

/// Records at least this large are written with `pwritev` rather than through the
/// mapping: a write fault on a fresh page makes the kernel zero it first, which
/// for large bodies costs as much as the copy itself; `pwritev` of whole pages
/// skips that. Small records stay on the mapping, where the zeroing of one page
/// is shared by many records and a syscall per record would cost more.
pub const PWRITE_RECORD_BYTES_MIN: u32 = 16 * 1024;

/// Writes all of `parts` at `offset` with as few `pwritev` calls as it takes.
fn pwrite_all(file: &File, parts: &[&[u8]], mut offset: u64) -> io::Result<()> {
    let mut parts: Vec<&[u8]> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    while !parts.is_empty() {
        let iov: Vec<libc::iovec> = parts
            .iter()
            .map(|p| libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            })
            .collect();
        // SAFETY: every iovec points into a slice borrowed for this whole call (the
        // `parts` of the caller), with its exact length; pwritev only reads them.
        // The fd is a file we own, open for writing.
        let n = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                offset as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "pwritev wrote nothing"));
        }
        offset += n as u64;
        let mut n = n as usize;
        while n > 0 {
            if n >= parts[0].len() {
                n -= parts[0].len();
                parts.remove(0);
            } else {
                parts[0] = &parts[0][n..];
                n = 0;
            }
        }
    }
    Ok(())
}

/// The segment being appended to: preallocated, mapped writable (MAP_SHARED).
pub struct WriteSegment {
    id: SegmentId,
    file: Arc<File>,
    map: MmapMut,
    /// End of written data; the next record goes here.
    end: u32,
}

impl WriteSegment {
    /// Creates `msgs.<id>` of `capacity` bytes and writes the segment header.
    pub fn create(dir: &Path, id: SegmentId, capacity: u32) -> io::Result<Self> {
        assert!(capacity >= SEGMENT_HEADER_BYTES, "segment capacity below header size");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(segment_path(dir, id))?;
        preallocate(&file, u64::from(capacity))?;
        // SAFETY: (I1) we created the file with create_new, nobody else has it; (I3/I4)
        // it is exactly `capacity` long and its blocks are reserved; (I2) it is only
        // shrunk in `finish`, which consumes `self` and drops this mapping first. The
        // MmapMut lives inside `self`, so borrows of it cannot outlive the mapping.
        // No MAP_POPULATE: populating zero-fills all 8 MiB of page cache up front on
        // the event loop, and large records are written with pwritev below, which
        // fills whole pages straight from the caller's buffers without zeroing them
        // first (the 64 KiB profile had kernel memset at 39% of broker CPU).
        let map = unsafe { MmapOptions::new().len(capacity as usize).map_mut(&file)? };
        // A write fault on this mapping would make the kernel read ahead (zero-fill)
        // many pages at once, including ones that pwritev would fill without
        // zeroing; fault one page at a time instead.
        map.advise(Advice::Random)?;
        std::os::unix::fs::FileExt::write_all_at(&file, record::segment_header().as_bytes(), 0)?;
        Ok(Self {
            id,
            file: Arc::new(file),
            map,
            end: SEGMENT_HEADER_BYTES,
        })
    }

    /// Which segment this is.
    pub fn id(&self) -> SegmentId {
        self.id
    }

    /// Offset of the end of the data.
    pub fn end(&self) -> u32 {
        self.end
    }

    /// Bytes still free.
    pub fn remaining(&self) -> u32 {
        self.map.len() as u32 - self.end
    }

    /// The file handle, for group commit (stays valid if the segment is later deleted).
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Appends a record of `len` bytes (from [`record::encoded_len`]); returns its
    /// offset. Panics if it does not fit: the caller rolls over first.
    pub fn append(&mut self, msg: &MessageRef<'_>, len: u32) -> io::Result<u32> {
        assert!(len <= self.remaining(), "record does not fit the write segment");
        let offset = self.end;
        if len >= PWRITE_RECORD_BYTES_MIN {
            let header = record::encode_header(len, msg);
            let parts = [
                header.as_bytes(),
                msg.exchange,
                msg.routing_key,
                msg.properties,
                msg.body,
            ];
            pwrite_all(&self.file, &parts, u64::from(offset))?;
        } else {
            record::encode_into(&mut self.map[offset as usize..(offset + len) as usize], msg);
        }
        self.end += len;
        Ok(offset)
    }

    /// The written data, `0..end`.
    pub fn data(&self) -> &[u8] {
        &self.map[..self.end as usize]
    }

    /// Unmaps, then truncates the file to the written length so recovery (and readers)
    /// see exactly the data; returns the file for the next group commit.
    pub fn finish(self) -> io::Result<Arc<File>> {
        let Self { file, map, end, .. } = self;
        drop(map); // (I2): no mapping may exist while the file shrinks
        file.set_len(u64::from(end))?;
        Ok(file)
    }
}

/// A read-only mapping of a closed segment. The file descriptor is closed right after
/// mapping (the mapping keeps the file alive), so idle queues hold no descriptors.
pub struct ReadMap {
    map: Option<Mmap>,
}

impl ReadMap {
    /// Maps `msgs.<id>` read-only, whole file.
    pub fn open(dir: &Path, id: SegmentId) -> io::Result<Self> {
        let file = File::open(segment_path(dir, id))?;
        Self::of_file(&file)
    }

    /// Maps an open file read-only.
    pub fn of_file(file: &File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        if len == 0 {
            // mmap of length 0 is EINVAL; an empty segment has no data to read.
            return Ok(Self { map: None });
        }
        // SAFETY: (I1) the file is ours alone; (I3) we map its current length; (I2) a
        // closed segment is only shrunk by recovery, which drops this map first; the
        // Mmap is owned by `self` and slices handed out borrow `self`, so they cannot
        // outlive the mapping. Read-only: no aliasing &mut exists.
        let map = unsafe { Mmap::map(file)? };
        // Readahead helps the cursor; failure to advise is harmless.
        let _ = map.advise(Advice::Sequential);
        Ok(Self { map: Some(map) })
    }

    /// The mapped bytes.
    pub fn data(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}
