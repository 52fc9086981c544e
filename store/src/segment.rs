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
//! And up to `SPARES_MAX` write mappings of segments a reader was in (their spares',
//! or waiting for their last acks): a recycled file is written through its old
//! mapping, whose pages are still mapped, instead of faulting a new one's in
//! (`QueueStore::retire_segment`).
//!
//! Invariants that make the mappings sound (referenced by the SAFETY comments):
//! - (I1) the queue directory belongs to one `QueueStore` (the broker takes a lock on
//!   the data directory); no other process truncates or writes these files;
//! - (I2) a file is only shrunk (`set_len`) past the end of its data: the write
//!   segment in [`WriteSegment::finish`] (mappings of it may live on, and are only
//!   ever read below that end), and in recovery, before anything is mapped at run
//!   time; closed segments are never resized again;
//! - (I3) a read mapping never extends past the file's length at mapping time; the
//!   write mapping spans the segment's capacity but is only touched below its
//!   `allocated` bytes, which the file's length covers (it only grows while
//!   written, [`WriteSegment::reserve`]); every read is bounded by the segment's
//!   end of data, and by (I2) the file never gets shorter than that, so no access
//!   can raise SIGBUS;
//! - (I4) disk blocks of a write segment are reserved with `fallocate` before the
//!   mapping is written there (a segment starts with a few KiB and grows, so a
//!   queue with few messages takes little disk: issue 15, defect 10), so a store
//!   through the mapping cannot hit ENOSPC (which would be a SIGBUS): a full disk
//!   is an `Err` from `reserve`, before anything is written;
//! - (I5) bytes below a segment's end of data are never written again while any
//!   mapping of the file lives: the one [`WriteSegment`] only writes at or past its
//!   `end`, and a file is recycled (overwritten as a later segment) only when its
//!   [`MapLease`] shows no mapping of it alive. So a slice of written bytes stays
//!   valid and unchanged for as long as its [`SegmentMap`] lives, which is what lets
//!   [`SharedBytes`] be handed to the kernel by a send that completes later. The
//!   one exception is the file's own write mapping, kept by its spare: it is
//!   reused for the next life ([`WriteSegment::recycle`]) only once the queue
//!   holds the sole reference to it (no `SharedBytes`, no other mapping: the
//!   lease's count shows only the spare and that mapping), and nothing is read
//!   through it between the file's truncation at `finish` and its preallocation
//!   back to full length at `recycle` (I2, I3).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Advice, Mmap, MmapOptions, MmapRaw};
use zerocopy::IntoBytes;

use crate::changes;
use crate::record::{self, BodyCrc, CrcSeed, MessageRef, END_MARK_BYTES, SEGMENT_HEADER_BYTES};
use crate::SegmentId;

/// `msgs.NNNNNNNNNN` in `dir`.
pub fn segment_path(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(format!("msgs.{:010}", id.0))
}

/// `spare.NNNNNNNNNN` in `dir`: what was segment `id`, fully acked, kept for reuse.
pub fn spare_path(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(format!("spare.{:010}", id.0))
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

/// Reserves disk for bytes `from..len` of `file` (and sets its length to at least
/// `len`), so that writes through a mapping cannot fail with ENOSPC (I4). Falls back
/// to a sparse `set_len` on file systems without fallocate; there a full disk is a
/// SIGBUS, as with any mmap writer, which is why we try fallocate first.
fn preallocate(file: &File, from: u64, len: u64) -> io::Result<()> {
    debug_assert!(from < len);
    // SAFETY: plain syscall on a file descriptor we own; no memory is passed.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, from as libc::off_t, (len - from) as libc::off_t) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => file.set_len(len),
        _ => Err(err),
    }
}

/// Free bytes for unprivileged users on the file system of `file` (fstatvfs).
pub fn free_bytes(file: &File) -> io::Result<u64> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `st` points to writable memory of the right size, which fstatvfs
    // only writes into; the descriptor is one we own.
    let rc = unsafe { libc::fstatvfs(file.as_raw_fd(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatvfs returned 0, so it initialised the whole struct.
    let st = unsafe { st.assume_init() };
    // The field types differ between platforms (u32 on some 32-bit targets).
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// A new segment file starts with this much disk and doubles as it fills, up to the
/// segment size: 1,000 queues of 10 small messages took 8 GiB of preallocated
/// segments before (issue 15, defect 10), now 4 KiB each. Doubling keeps the
/// fallocate calls to ~12 per 8 MiB segment.
pub const SEGMENT_GROW_MIN_BYTES: u32 = 4096;

/// Records at least this large are written with `pwritev` rather than through the
/// mapping: a write fault on a fresh page makes the kernel zero it first, which
/// for large bodies costs as much as the copy itself; `pwritev` of whole pages
/// skips that. Small records stay on the mapping, where the zeroing of one page
/// is shared by many records and a syscall per record would cost more.
pub const PWRITE_RECORD_BYTES_MIN: u32 = 16 * 1024;

/// Writes all of `parts` at `offset` with as few `pwritev` calls as it takes.
fn pwrite_all(file: &File, parts: &[&[u8]], mut offset: u64) -> io::Result<()> {
    let mut parts: Vec<&[u8]> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    debug_assert!(parts.len() <= 8, "few parts: one pwritev (IOV_MAX is 1024)");
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

/// Held by every mapping of one segment file (and by the store's record of the
/// segment): while anything but the store holds it, the file must not be recycled
/// (I5). A send in flight holds it through its [`SharedBytes`].
#[derive(Debug, Default)]
pub struct MapLease(());

/// One mapping of a segment file, shared (`Arc`) by the store and by sends in flight.
/// Written only by the [`WriteSegment`] that made it, only past its end of data (I5),
/// through raw pointers: no `&mut` to the mapping exists, so handing out `&[u8]` of
/// written bytes while appending further on aliases nothing.
pub struct SegmentMap {
    raw: Option<MmapRaw>,
    _lease: Arc<MapLease>,
    /// Made by a [`WriteSegment`] (read-write, the segment's whole capacity).
    writable: bool,
}

impl SegmentMap {
    /// Maps `msgs.<id>` read-only, whole file. The file descriptor is closed right
    /// after mapping (the mapping keeps the file alive), so idle queues hold no
    /// descriptors.
    pub fn open_read(dir: &Path, id: SegmentId, lease: Arc<MapLease>) -> io::Result<Self> {
        let file = File::open(segment_path(dir, id))?;
        let len = file.metadata()?.len();
        if len == 0 {
            // mmap of length 0 is EINVAL; an empty segment has no data to read.
            return Ok(Self {
                raw: None,
                _lease: lease,
                writable: false,
            });
        }
        // Mapping raw memory is safe; reading it is what `bytes` (unsafe) argues for:
        // (I1) the file is ours alone; (I3) we map its current length and every read
        // is bounded by the segment's end; (I2) it never gets shorter than that end
        // while mapped; (I5) those bytes do not change.
        let raw = MmapOptions::new().map_raw_read_only(&file)?;
        // Readahead helps the cursor; failure to advise is harmless.
        let _ = raw.advise(Advice::Sequential);
        Ok(Self {
            raw: Some(raw),
            _lease: lease,
            writable: false,
        })
    }

    /// Whether a [`WriteSegment`] made it (read-write, of its whole capacity).
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    fn len(&self) -> usize {
        self.raw.as_ref().map_or(0, MmapRaw::len)
    }

    /// Length of the mapping (at most u32: segments are).
    pub fn bytes_len(&self) -> u32 {
        self.len() as u32
    }

    /// The first `end` bytes of the mapping. `end` must not pass the segment's end
    /// of data (the caller's bound: the writer's `end` or the segment's recorded end).
    pub fn bytes(&self, end: u32) -> &[u8] {
        let end = end as usize;
        assert!(end <= self.len(), "read past the mapping");
        match &self.raw {
            // SAFETY: `end` is inside the mapping (checked above), which lives as long
            // as `self` and so as long as the returned borrow. The bytes below the end
            // of data are never written again while the mapping exists (I5), and the
            // file is never shorter than that (I2/I3), so the slice is valid and
            // immutable for its whole life.
            Some(raw) => unsafe { std::slice::from_raw_parts(raw.as_ptr(), end) },
            None => &[],
        }
    }
}

/// Written bytes of a segment (a message body) that keep their mapping, and so the
/// pages, alive and unchanged (I5) for as long as this value lives: a send can point
/// the kernel at them and drop this only when its completion arrives.
#[derive(Clone)]
pub struct SharedBytes {
    map: Arc<SegmentMap>,
    offset: u32,
    len: u32,
}

impl SharedBytes {
    pub(crate) fn new(map: Arc<SegmentMap>, offset: u32, len: u32) -> Self {
        // Checks the range once, here (it panics past the mapping).
        let _ = &map.bytes(offset + len)[offset as usize..];
        Self { map, offset, len }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.map.bytes(self.offset + self.len)[self.offset as usize..]
    }

    /// Their length.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A sub-range (`start..start + len` of these bytes).
    pub fn slice(&self, start: usize, len: usize) -> SharedBytes {
        assert!(start + len <= self.len as usize, "slice past the shared bytes");
        SharedBytes {
            map: Arc::clone(&self.map),
            offset: self.offset + start as u32,
            len: len as u32,
        }
    }
}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBytes")
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

/// The segment being appended to: preallocated, mapped writable (MAP_SHARED).
pub struct WriteSegment {
    id: SegmentId,
    /// Its file's path, to tell its changes by (`changes`).
    path: PathBuf,
    file: Arc<File>,
    map: Arc<SegmentMap>,
    /// End of written data; the next record goes here.
    end: u32,
    /// Bytes of the file with disk reserved (its length); the mapping is only
    /// written below this (I3, I4).
    allocated: u32,
    /// End of the range prefaulted for small records (`populate_ahead`); `u32::MAX`
    /// once the kernel refused `MADV_POPULATE_WRITE` (before Linux 5.14), and for a
    /// reused mapping (`recycle`).
    populated: u32,
    seed: CrcSeed,
}

/// Small records are written through the mapping; its pages are faulted in this
/// many bytes ahead of the writer with one `madvise(MADV_POPULATE_WRITE)` instead
/// of one write fault per 4 KiB page (1p1c 1 KiB: the faults and ext4's
/// `page_mkwrite` under them were ~10% of the broker's CPU).
pub const POPULATE_AHEAD_BYTES: u32 = 256 * 1024;

/// Zeros for the end mark after each record (see record.rs, version 2).
const END_MARK: [u8; END_MARK_BYTES as usize] = [0; END_MARK_BYTES as usize];

impl WriteSegment {
    /// Creates `msgs.<id>` for up to `capacity` bytes with disk for the first
    /// `first` of them, and writes the segment header. On any failure (ENOSPC) the
    /// file is removed again, so the same id can be created later (a file left
    /// behind made every later rollover fail with EEXIST: issue 15, defect 4).
    pub fn create(dir: &Path, id: SegmentId, capacity: u32, first: u32, lease: Arc<MapLease>) -> io::Result<Self> {
        assert!(capacity >= SEGMENT_HEADER_BYTES, "segment capacity below header size");
        let path = segment_path(dir, id);
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
        let allocated = first.max(SEGMENT_GROW_MIN_BYTES).min(capacity);
        let made = preallocate(&file, 0, u64::from(allocated))
            .and_then(|()| std::os::unix::fs::FileExt::write_all_at(&file, record::segment_header(false).as_bytes(), 0))
            .and_then(|()| Self::mapped(file, &path, id, capacity, allocated, lease));
        if made.is_ok() {
            changes::set_len(&path, u64::from(allocated));
            changes::wrote_bytes(&path, 0, record::segment_header(false).as_bytes());
        }
        if made.is_err() {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a segment whose creation failed");
            }
        }
        made
    }

    /// Makes the spare file at `spare` (a fully acked segment of this queue, see
    /// `QueueStore`) segment `id`: its page-cache pages are reused instead of
    /// allocating fresh ones. The new header and an end mark go in before the rename,
    /// so `msgs.<id>` never shows the old life's records as data; those that remain
    /// behind the mark fail their CRC under the new id's seed (record.rs).
    ///
    /// `map`: the spare's write mapping from its last life, if kept and no longer
    /// shared (the queue checked: I5); reused when it is `capacity` long.
    pub fn recycle(
        dir: &Path,
        spare: &Path,
        id: SegmentId,
        capacity: u32,
        map: Option<SegmentMap>,
        lease: Arc<MapLease>,
    ) -> io::Result<Self> {
        assert!(capacity >= SEGMENT_HEADER_BYTES, "segment capacity below header size");
        let file = OpenOptions::new().read(true).write(true).open(spare)?;
        if file.metadata()?.len() > u64::from(capacity) {
            // Only ever-ordinary segments are kept as spares; shrinking one would
            // drop the pages we keep it for.
            return Err(io::Error::new(io::ErrorKind::InvalidData, "spare segment is too large"));
        }
        // Blocks already allocated keep their data and cached pages; only the tail
        // cut off at rollover is allocated again (I4).
        let len = file.metadata()?.len();
        if len < u64::from(capacity) {
            preallocate(&file, len, u64::from(capacity))?;
            changes::set_len(spare, u64::from(capacity));
        }
        let mut head = [0u8; (SEGMENT_HEADER_BYTES + END_MARK_BYTES) as usize];
        head[..SEGMENT_HEADER_BYTES as usize].copy_from_slice(record::segment_header(true).as_bytes());
        std::os::unix::fs::FileExt::write_all_at(&file, &head, 0)?;
        changes::wrote_bytes(spare, 0, &head);
        let path = segment_path(dir, id);
        changes::rename(spare, &path)?;
        let raw = map
            .filter(|m| m.writable && m.len() == capacity as usize)
            .and_then(|mut m| m.raw.take());
        let w = match raw {
            // The same file (the spare was renamed, not copied), now again `capacity`
            // long with its blocks reserved (above: I3, I4); only this queue maps it
            // (I1), and no reference into the old life's bytes is left: the mapping
            // was the spare's alone (I5), so `append` may write it from the header on.
            Some(raw) => {
                let mut w = Self::with_map(file, path, id, capacity, capacity, raw, lease);
                // Its pages are mapped and writable already: populating would only
                // walk them (`follow_page_pte`, 4% of the broker's CPU at 1p1c
                // 1 KiB). The few that are not (past the last life's end, or
                // write-protected by a writeback since) fault one by one.
                w.populated = u32::MAX;
                w
            }
            None => Self::mapped(file, &path, id, capacity, capacity, lease)?,
        };
        Ok(w)
    }

    fn mapped(
        file: File,
        path: &Path,
        id: SegmentId,
        capacity: u32,
        allocated: u32,
        lease: Arc<MapLease>,
    ) -> io::Result<Self> {
        // Mapping raw memory is safe; what makes the accesses in `append` and
        // `SegmentMap::bytes` sound: (I1) the file is this queue's alone (created with
        // create_new, or our own spare, which no mapping uses any more: (I5)); (I3/I4) it is exactly
        // `capacity` long (preallocated by the caller) and its blocks are reserved;
        // (I2) it is only shrunk past the data in `finish`. `MmapRaw` gives out no
        // references: writes go through `append` (past `end` only), reads through
        // `SegmentMap::bytes` (below it).
        // No MAP_POPULATE: populating zero-fills all 8 MiB of page cache up front on
        // the event loop, and large records are written with pwritev below, which
        // fills whole pages straight from the caller's buffers without zeroing them
        // first (the 64 KiB profile had kernel memset at 39% of broker CPU).
        let raw = MmapOptions::new().len(capacity as usize).map_raw(&file)?;
        // A write fault on this mapping would make the kernel read ahead (zero-fill)
        // many pages at once, including ones that pwritev would fill without
        // zeroing; fault one page at a time instead.
        raw.advise(Advice::Random)?;
        Ok(Self::with_map(
            file,
            path.to_path_buf(),
            id,
            capacity,
            allocated,
            raw,
            lease,
        ))
    }

    fn with_map(
        file: File,
        path: PathBuf,
        id: SegmentId,
        capacity: u32,
        allocated: u32,
        raw: MmapRaw,
        lease: Arc<MapLease>,
    ) -> Self {
        debug_assert_eq!(raw.len(), capacity as usize);
        Self {
            id,
            path,
            file: Arc::new(file),
            map: Arc::new(SegmentMap {
                raw: Some(raw),
                _lease: lease,
                writable: true,
            }),
            end: SEGMENT_HEADER_BYTES,
            allocated,
            populated: 0,
            seed: CrcSeed::for_segment(id),
        }
    }

    /// Bytes of the file with disk reserved.
    pub fn allocated(&self) -> u32 {
        self.allocated
    }

    /// Makes sure disk is reserved for the first `upto` bytes (at most the
    /// capacity), growing the file by doubling; an `Err` (ENOSPC) changes nothing.
    pub fn reserve(&mut self, upto: u32) -> io::Result<()> {
        let capacity = self.map.len() as u32;
        let upto = upto.min(capacity);
        if upto <= self.allocated {
            return Ok(());
        }
        let grown = upto
            .max(self.allocated.saturating_mul(2))
            .max(SEGMENT_GROW_MIN_BYTES)
            .min(capacity);
        preallocate(&self.file, u64::from(self.allocated), u64::from(grown))?;
        self.allocated = grown;
        changes::set_len(&self.path, u64::from(grown));
        Ok(())
    }

    /// Prefaults the next [`POPULATE_AHEAD_BYTES`] of the mapping once the writer
    /// (at `at`) is within half of that of the prefaulted end. Only pages with
    /// disk reserved (I4), whole pages; large records never come here, so their
    /// pages are still filled by `pwritev` without being zeroed first.
    fn populate_ahead(&mut self, at: u32) {
        const PAGE: u32 = 4096;
        if self.populated == u32::MAX || at + POPULATE_AHEAD_BYTES / 2 <= self.populated {
            return;
        }
        let from = self.populated.max(at) / PAGE * PAGE;
        let to = (from + POPULATE_AHEAD_BYTES).min(self.allocated) / PAGE * PAGE;
        if to <= from {
            return;
        }
        let raw = self.map.raw.as_ref().expect("a write segment is mapped");
        // Populating does not write the bytes or hand out references; the range is
        // inside the mapping and below the reserved disk, so no fault can SIGBUS.
        match raw.advise_range(Advice::PopulateWrite, from as usize, (to - from) as usize) {
            Ok(()) => self.populated = to,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.populated = u32::MAX,
            // ENOMEM or EFAULT under memory pressure: the writes fault as before.
            Err(_) => self.populated = to,
        }
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
    pub fn append(&mut self, msg: &MessageRef<'_>, len: u32, body: BodyCrc) -> io::Result<u32> {
        assert!(len <= self.remaining(), "record does not fit the write segment");
        let offset = self.end;
        // The end mark after the record, where it fits (record.rs, version 2): over a
        // recycled file's stale bytes it is what ends the data.
        let mark: &[u8] = if self.remaining() - len >= END_MARK_BYTES {
            &END_MARK
        } else {
            &[]
        };
        // Disk for the record and its mark before anything is written (I4): on
        // ENOSPC nothing changed and the append can be tried again.
        self.reserve(offset + len + mark.len() as u32)?;
        if len >= PWRITE_RECORD_BYTES_MIN {
            let header = record::encode_header(len, msg, self.seed, body);
            let parts = [
                header.as_bytes(),
                msg.exchange,
                msg.routing_key,
                msg.properties,
                msg.body,
                mark,
            ];
            pwrite_all(&self.file, &parts, u64::from(offset))?;
        } else {
            let raw = self.map.raw.as_ref().expect("a write segment is mapped");
            let total = (len + mark.len() as u32) as usize;
            assert!(offset as usize + total <= raw.len(), "append past the mapping");
            assert!(
                offset as usize + total <= self.allocated as usize,
                "append past the reserved disk"
            );
            // SAFETY: the range is inside the mapping (checked above) and at or past
            // `end`: no `&[u8]` handed out by `SegmentMap::bytes` reaches it (they
            // stop at an end of data, I5), and only this `WriteSegment` writes (it is
            // borrowed `&mut`), so this is the only reference to these bytes while it
            // lives. The blocks are reserved and the file covers them (`reserve`
            // above, checked: I3, I4).
            let dst = unsafe { std::slice::from_raw_parts_mut(raw.as_mut_ptr().add(offset as usize), total) };
            let (rec, tail) = dst.split_at_mut(len as usize);
            record::encode_into(rec, msg, self.seed, body);
            tail.copy_from_slice(mark);
            self.populate_ahead(offset + len);
        }
        self.end += len;
        if changes::recording() {
            // The bytes stay in the file: the recorder reads them from there.
            changes::tell(changes::Change::Wrote {
                path: &self.path,
                offset: u64::from(offset),
                len: u64::from(len) + mark.len() as u64,
            });
        }
        Ok(offset)
    }

    /// The mapping (read it below `end` only).
    pub fn map(&self) -> &Arc<SegmentMap> {
        &self.map
    }

    /// Truncates the file to the written length so recovery (and readers) see exactly
    /// the data; returns the file for the next group commit, and the mapping, which
    /// stays valid below the end (I2) and serves reads of the now closed segment.
    pub fn finish(self) -> io::Result<(Arc<File>, Arc<SegmentMap>)> {
        let Self {
            file, map, end, path, ..
        } = self;
        changes::barrier();
        file.set_len(u64::from(end))?;
        changes::set_len(&path, u64::from(end));
        Ok((file, map))
    }
}

/// A read-only mapping of a closed segment. The file descriptor is closed right after
/// mapping (the mapping keeps the file alive), so idle queues hold no descriptors.
pub struct ReadMap {
    map: Option<Mmap>,
}

impl ReadMap {
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
