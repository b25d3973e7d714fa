//! The segment log: a crash-safe append log of events on disk that many
//! threads append to without a lock or a syscall, read by one consumer.
//!
//! # Format
//!
//! A directory holds `seg-{index:020}.log` files of
//! [`LogConfig::segment_bytes`] each, created at full size with their disk
//! blocks allocated (zero-filled) and mapped shared into memory, plus
//! `cursor` (how far the consumer has acknowledged) and `lock`. A segment is
//! a run of 8-aligned records:
//!
//! ```text
//! [magic: u32][len: u32][crc32c: u32][reserved: u32][payload: len bytes][zero padding to 8]
//! ```
//!
//! All integers are little-endian. `crc32c` covers the `len` bytes and the
//! payload; `reserved` is written zero and ignored. The magic
//! (`0x5445_4C47`) is the commit word: a writer stores it last, with
//! release ordering, after everything else, so reading the magic means the
//! whole record is in place and zero means "not written (yet)". A segment
//! index is never reused, and a segment is never written again once the
//! process that wrote it has gone: [`EventLog::open`] always starts a new one.
//!
//! # Durability
//!
//! A record is copied into a shared, file-backed mapping, so it sits in the
//! kernel's page cache the moment [`EventLog::append`] returns: if the
//! process dies (panic, OOM kill, SIGKILL), nothing appended is lost. A power
//! loss or kernel crash can take what was appended since the last msync,
//! which [`EventLog::maintain`] does on every call: the caller's interval
//! bounds that loss. (Linux ignores an asynchronous msync, so `maintain`
//! syncs for real, only the bytes written since its previous call; it blocks
//! on the disk and belongs on a background thread.)
//!
//! # Appending without a lock
//!
//! An append loads the current segment (an [`ArcSwap`]), counts itself in the
//! segment's `inflight`, reserves its bytes with one `fetch_add` on the
//! segment's tail, copies the record and stores the magic. The one lock,
//! taken only when a reservation does not fit, rotates to the next segment:
//! normally a spare that `maintain` created beforehand, so the request path
//! does not even create a file. The old segment is then sealed, so any
//! appender still holding it fails its reservation and retries on the new one.
//! (The first write to each page of a segment still takes a minor page
//! fault; the file's blocks are allocated up front, so it does no I/O.)
//!
//! # One consumer
//!
//! A single [`LogReader`] reads records in order and acknowledges them; it
//! leaves a segment only once it is sealed and no append into it is in
//! flight, so nothing can land behind it. Acknowledging persists the cursor
//! and deletes whole segments behind it. Delivery is at least once:
//! whatever was read but not acknowledged comes back after a restart.
//!
//! # Recovery
//!
//! `open` scans every segment from the cursor on. A record whose magic is
//! zero although later ones are committed (its writer died mid-write), or
//! whose length or checksum is wrong (torn or damaged bytes), is skipped and
//! counted in [`EventLog::corrupt_records`]; the scan resynchronises on the
//! next 8-aligned offset holding a whole valid record and keeps everything
//! from there. Zeros at the end of a segment are unused space, not damage.
//! (Damage in a segment still being written is skipped once it is sealed:
//! before that, a zero magic may just be a write in progress.) A damaged
//! `cursor`, which only a bad disk can cause as it is replaced by rename, is
//! counted and ignored: the oldest remaining segment is read again, which
//! repeats records but loses none.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use memmap2::MmapRaw;
use tracing::warn;

/// Sizes of an [`EventLog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Size of every segment file, allocated when the file is created. A
    /// multiple of 8 from 4 KiB to 1 GiB; one payload may take at most a
    /// quarter of it. Default 64 MiB.
    pub segment_bytes: u64,
    /// Most bytes of segment files on disk, the spare included: an append
    /// that would need a segment beyond this fails with
    /// [`AppendError::Full`]. At least two segments: acknowledging never
    /// deletes the segment being written, so with one the log could fill for
    /// good. Default 4 GiB.
    pub max_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 64 << 20,
            max_bytes: 4 << 30,
        }
    }
}

/// Where a record ends in the log; a later record has a greater position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// Index of the segment holding the record.
    pub segment: u64,
    /// Offset in the segment just past the record (and its padding).
    pub offset: u64,
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where the record ends: pass it to [`LogReader::ack`] once the record
    /// (and every one before it) is safe elsewhere.
    pub pos: Pos,
    /// The bytes given to [`EventLog::append`]; the records of one `read`
    /// share one buffer, so a large batch costs one allocation.
    pub payload: Bytes,
}

/// Why an append failed; the event was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The segments on disk already take `max_bytes`: the consumer is behind.
    #[error("event log full: segments on disk would exceed {max_bytes} bytes")]
    Full {
        /// The configured bound.
        max_bytes: u64,
    },
    /// The payload is over a quarter of a segment.
    #[error("event of {len} bytes is over the event log's limit of {max} bytes")]
    TooLarge {
        /// The payload's size.
        len: usize,
        /// The largest payload accepted.
        max: usize,
    },
    /// Creating the next segment failed.
    #[error("event log rotation failed: {0}")]
    Io(#[from] io::Error),
}

/// The append side of the log, shared by every thread that records events.
/// The directory stays locked until both it and its reader are dropped.
pub struct EventLog {
    shared: Arc<Shared>,
}

/// The single consumer of an [`EventLog`]; see [`EventLog::reader`].
pub struct LogReader {
    shared: Arc<Shared>,
    /// The segment being read; held so its mapping outlives our reads even
    /// after an ack deleted its file.
    seg: Arc<Segment>,
    /// Offset of the next record in `seg`.
    off: u64,
    /// The last position made durable in the cursor file.
    acked: Pos,
    /// The position of the last record returned by `read`.
    last: Pos,
}

/// Marks a committed record. Any nonzero constant works; this one spells
/// "GLET" in a hex dump, which makes segments easy to recognise.
const MAGIC: u32 = 0x5445_4C47;
/// Bytes of a record header.
const HEADER: u64 = 16;
/// Every record starts and ends on this boundary, which keeps the magic word
/// aligned for atomic access and gives resynchronisation few offsets to try.
const ALIGN: u64 = 8;
/// Set in a segment's tail when it is rotated away. No reservation can
/// succeed after it, which is what lets the reader trust a zero `inflight`.
const SEALED: u64 = 1 << 63;
const MIN_SEGMENT_BYTES: u64 = 4096;
const MAX_SEGMENT_BYTES: u64 = 1 << 30;
const CURSOR: &str = "cursor";
const CURSOR_TMP: &str = "cursor.tmp";
const LOCK: &str = "lock";
/// Bytes of the cursor file: segment, offset, crc32c of both.
const CURSOR_BYTES: usize = 20;

/// State shared by the log, its reader and every appender.
struct Shared {
    dir: PathBuf,
    config: LogConfig,
    /// Largest payload accepted: a quarter of a segment, so a segment that
    /// fills wastes at most a quarter of itself.
    max_payload: usize,
    /// The segment appends go to.
    current: ArcSwap<Segment>,
    /// Serialises rotation and spare creation so segment indices are handed
    /// out in the order segments become current. Taken only when a segment
    /// fills, and by `maintain`.
    rotation: Mutex<Rotation>,
    /// Mirrors `rotation.spare.is_some()` so appends can see they are full
    /// without queueing on the lock.
    spare_ready: AtomicBool,
    /// Segments on disk that hold or may receive records, oldest first; the
    /// spare is not here until it becomes current. Locked by rotation, the
    /// reader and `maintain`, never by an append that fits.
    segments: Mutex<VecDeque<Arc<Segment>>>,
    /// Where the reader starts: the cursor found at open.
    start: Pos,
    /// The log has one consumer; a second would ack the first one's records.
    reader_taken: AtomicBool,
    /// A segment file was created or deleted without syncing the directory
    /// yet; `maintain` and `sync` do it.
    dir_dirty: AtomicBool,
    /// Held (with an exclusive file lock) for the life of the log: two logs
    /// on one directory would write over each other's segments.
    _lock: File,
    corrupt: AtomicU64,
    disk_bytes: AtomicU64,
    segment_count: AtomicU64,
    appended: AtomicU64,
}

/// What the rotation lock guards.
struct Rotation {
    /// Index of the next segment to create.
    next_index: u64,
    /// A segment created ahead of need by `maintain`, counted on disk.
    spare: Option<Arc<Segment>>,
}

/// One segment file, mapped.
struct Segment {
    index: u64,
    path: PathBuf,
    /// The shared file mapping records are written into. Raw, because many
    /// threads write disjoint parts of it at once, which a `&mut [u8]` (or
    /// even a `&[u8]` over the whole of it) would forbid. It is unmapped only
    /// when the last `Arc<Segment>` goes, so a pointer derived from it is
    /// valid for as long as its user holds the segment. Segment files are
    /// never truncated while mapped (the `lock` file keeps other logs out of
    /// the directory), so every byte of the mapping stays accessible.
    map: MmapRaw,
    /// Usable bytes: the mapping's length rounded down to `ALIGN`.
    cap: u64,
    /// Offset of the next reservation; past `cap` once full (a reservation
    /// that did not fit still moved it), with `SEALED` set once rotated away.
    tail: AtomicU64,
    /// Appends that have loaded this segment and not yet committed or given
    /// up. Zero on a sealed segment means no write into it can still happen.
    inflight: AtomicU64,
    /// Bytes below which everything is known to be on disk.
    synced: AtomicU64,
    /// Found at open, which counted its damage; reading must not count again.
    recovered: bool,
}

/// What lies at an offset of a segment.
enum Step {
    /// A whole record of `len` payload bytes starting at `start`; the next
    /// begins at `end`.
    Record { start: u64, len: u64, end: u64 },
    /// Damage from the offset up to `to`, where a valid record starts.
    Skip { to: u64 },
    /// Nothing more in this segment; `damaged` when the rest is not all zero.
    End { damaged: bool },
    /// The next record is not committed yet, or the segment is still being
    /// written and damage can only be judged once it is not.
    Pending,
}

impl EventLog {
    /// Opens the log in `dir` (created if missing): recovers the cursor and
    /// every segment after it, then starts a new segment for appends.
    pub fn open(dir: &Path, config: LogConfig) -> io::Result<EventLog> {
        config.validate()?;
        fs::create_dir_all(dir)?;
        let lock = File::create(dir.join(LOCK))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("event log {} is in use by another process", dir.display()),
                ))
            }
            Err(TryLockError::Error(e)) => return Err(e),
        }
        let (cursor, cursor_damaged) = read_cursor(dir)?;
        // A crash during ack can leave it; the cursor it was to replace stands.
        remove_if_present(&dir.join(CURSOR_TMP))?;
        let start = cursor.unwrap_or(Pos {
            segment: 0,
            offset: 0,
        });
        let found = list_segments(dir)?;
        let mut next_index = match (found.last(), cursor) {
            (Some(&(last, _)), Some(c)) => last.max(c.segment) + 1,
            (Some(&(last, _)), None) => last + 1,
            // Never reuse the cursor's index: a new segment under it would
            // have its first records taken as already acknowledged.
            (None, Some(c)) => c.segment + 1,
            (None, None) => 0,
        };

        let mut corrupt = u64::from(cursor_damaged);
        let mut segments = VecDeque::new();
        let mut disk_bytes = 0;
        for (index, path) in found {
            if index < start.segment {
                // Acknowledged; the crash came before ack could delete it.
                remove_if_present(&path)?;
                continue;
            }
            let Some(seg) = Segment::recover(index, path.clone())? else {
                // Smaller than a header: created but never sized.
                remove_if_present(&path)?;
                continue;
            };
            let from = if index == start.segment {
                start.offset
            } else {
                0
            };
            let (records, damaged) = seg.survey(from);
            corrupt += damaged;
            if records == 0 {
                // Nothing to deliver (typically last run's spare); keeping it
                // would only take disk budget.
                remove_if_present(&path)?;
                continue;
            }
            disk_bytes += seg.file_bytes();
            segments.push_back(Arc::new(seg));
        }
        if corrupt > 0 {
            warn!(
                dir = %dir.display(),
                corrupt,
                "event log recovered with damaged records skipped"
            );
        }

        let current = Arc::new(Segment::create(dir, next_index, config.segment_bytes)?);
        next_index += 1;
        disk_bytes += current.file_bytes();
        segments.push_back(Arc::clone(&current));
        sync_dir(dir)?;

        let segment_count = segments.len() as u64;
        Ok(EventLog {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                config,
                max_payload: (config.segment_bytes / 4) as usize,
                current: ArcSwap::new(current),
                rotation: Mutex::new(Rotation {
                    next_index,
                    spare: None,
                }),
                spare_ready: AtomicBool::new(false),
                segments: Mutex::new(segments),
                start,
                reader_taken: AtomicBool::new(false),
                dir_dirty: AtomicBool::new(false),
                _lock: lock,
                corrupt: AtomicU64::new(corrupt),
                disk_bytes: AtomicU64::new(disk_bytes),
                segment_count: AtomicU64::new(segment_count),
                appended: AtomicU64::new(0),
            }),
        })
    }

    /// Appends one record. Survives a crash of this process as soon as this
    /// returns `Ok`; takes no lock and makes no syscall unless the current
    /// segment is full.
    pub fn append(&self, payload: &[u8]) -> Result<(), AppendError> {
        let shared = &*self.shared;
        if payload.len() > shared.max_payload {
            return Err(AppendError::TooLarge {
                len: payload.len(),
                max: shared.max_payload,
            });
        }
        // The checksum is computed before reserving, to keep the time spent
        // in flight (which the reader may wait on) to a copy.
        let len = (payload.len() as u32).to_le_bytes();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&len), payload).to_le_bytes();
        let size = record_size(payload.len() as u64);
        loop {
            let seg = shared.current.load();
            // SeqCst on both, and on the seal: an appender whose reservation
            // precedes the seal is then visible in `inflight` to a reader that
            // has seen the seal. See `Segment::settled`.
            seg.inflight.fetch_add(1, Ordering::SeqCst);
            let at = seg.tail.fetch_add(size, Ordering::SeqCst);
            if at & SEALED == 0 && at + size <= seg.cap {
                // SAFETY: the fetch_add gave this call alone the bytes
                // [at, at + size), inside `cap`; `seg` (the guard) keeps the
                // mapping alive until the write is done.
                unsafe { seg.write_record(at, len, crc, payload) };
                seg.inflight.fetch_sub(1, Ordering::Release);
                shared.appended.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            seg.inflight.fetch_sub(1, Ordering::Release);
            if !shared.spare_ready.load(Ordering::Acquire) && shared.over_budget() {
                if Arc::ptr_eq(&shared.current.load(), &seg) {
                    return Err(AppendError::Full {
                        max_bytes: shared.config.max_bytes,
                    });
                }
                continue;
            }
            shared.rotate(&seg)?;
        }
    }

    /// The consumer of this log. Panics when called a second time: two
    /// consumers would acknowledge each other's records.
    pub fn reader(&self) -> LogReader {
        let first = !self.shared.reader_taken.swap(true, Ordering::Relaxed);
        assert!(
            first,
            "EventLog::reader called twice: the log has one consumer"
        );
        let start = self.shared.start;
        let seg = self
            .shared
            .segment_from(start.segment)
            .expect("open lists the current segment, whose index is past the cursor's");
        let off = if seg.index == start.segment {
            start.offset
        } else {
            0
        };
        LogReader {
            shared: Arc::clone(&self.shared),
            seg,
            off,
            acked: start,
            last: start,
        }
    }

    /// Background upkeep, to call every 100 ms to 1 s from a thread that may
    /// block on the disk: creates a spare segment if there is none and the
    /// budget allows, then msyncs what was appended since the last call.
    /// The interval bounds what a power loss can take.
    pub fn maintain(&self) -> io::Result<()> {
        let spare = self.shared.prepare_spare();
        // Sync even when the spare failed: that is when the disk is in trouble.
        self.shared.flush_dirty()?;
        spare
    }

    /// Makes everything appended so far durable against power loss; for
    /// shutdown.
    pub fn sync(&self) -> io::Result<()> {
        self.shared.flush_dirty()
    }

    /// Damaged records skipped, at open and while reading; a run of damage
    /// that resynchronisation skips at once counts one.
    pub fn corrupt_records(&self) -> u64 {
        self.shared.corrupt.load(Ordering::Relaxed)
    }

    /// Bytes of segment files on disk, the spare included.
    pub fn disk_bytes(&self) -> u64 {
        self.shared.disk_bytes.load(Ordering::Relaxed)
    }

    /// Segment files on disk, the spare included.
    pub fn segments(&self) -> u64 {
        self.shared.segment_count.load(Ordering::Relaxed)
    }

    /// Records appended since open.
    pub fn appended(&self) -> u64 {
        self.shared.appended.load(Ordering::Relaxed)
    }
}

impl LogReader {
    /// Up to `max_records` committed records after the last one returned,
    /// in append order. Returns fewer (or none) when it reaches a record not
    /// yet committed, or the end of the log.
    pub fn read(&mut self, max_records: usize) -> io::Result<Vec<Record>> {
        // (end position, start in `buf`, length) of each record.
        let mut spans: Vec<(Pos, usize, usize)> = Vec::new();
        let mut buf = BytesMut::new();
        while spans.len() < max_records {
            // Read before any byte of the segment: once settled, nothing
            // writes to it again, so the scan below may read it freely.
            let settled = self.seg.settled();
            match self.seg.step(self.off, settled) {
                Step::Record { start, len, end } => {
                    // SAFETY: `step` found the record committed (or the
                    // segment settled): its bytes are never written again.
                    let payload = unsafe { self.seg.bytes(start + HEADER, len) };
                    self.last = Pos {
                        segment: self.seg.index,
                        offset: end,
                    };
                    spans.push((self.last, buf.len(), payload.len()));
                    buf.extend_from_slice(payload);
                    self.off = end;
                }
                Step::Skip { to } => {
                    self.count_damage();
                    self.off = to;
                }
                Step::End { damaged } => {
                    if damaged {
                        self.count_damage();
                    }
                    // So that coming back here finds the end at once.
                    self.off = self.seg.cap;
                    match self.shared.segment_from(self.seg.index + 1) {
                        Some(next) => {
                            self.seg = next;
                            self.off = 0;
                        }
                        None => break,
                    }
                }
                Step::Pending => break,
            }
        }
        let all = buf.freeze();
        Ok(spans
            .into_iter()
            .map(|(pos, at, len)| Record {
                pos,
                payload: all.slice(at..at + len),
            })
            .collect())
    }

    /// Acknowledges every record up to and including `upto` (a position
    /// returned by [`LogReader::read`]): persists the cursor, so they are
    /// never read again, even after a restart, and deletes the segment files
    /// before `upto`'s. Acknowledging an earlier position than before does
    /// nothing.
    pub fn ack(&mut self, upto: Pos) -> io::Result<()> {
        if upto <= self.acked {
            return Ok(());
        }
        let read_to = Pos {
            segment: self.seg.index,
            offset: self.off,
        };
        if upto > read_to || !upto.offset.is_multiple_of(ALIGN) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "event log ack at {upto:?} is not a position read (read up to {read_to:?})"
                ),
            ));
        }
        write_cursor(&self.shared.dir, upto)?;
        self.acked = upto;
        self.delete_before(upto.segment)?;
        self.release()
    }

    /// Once everything read is acknowledged and the reader has moved on to
    /// a newer segment, moves the cursor to that segment's start and deletes
    /// the older files: a fully shipped segment goes even when no record
    /// follows it yet. Cheap when there is nothing to do; call it whenever
    /// reading comes up empty.
    pub fn release(&mut self) -> io::Result<()> {
        if self.acked < self.last || self.seg.index <= self.acked.segment {
            return Ok(());
        }
        let upto = Pos {
            segment: self.seg.index,
            offset: 0,
        };
        write_cursor(&self.shared.dir, upto)?;
        self.acked = upto;
        self.last = upto;
        self.delete_before(upto.segment)
    }

    /// Deletes the segment files before `index` (already acknowledged).
    fn delete_before(&mut self, index: u64) -> io::Result<()> {
        let dir = &self.shared.dir;
        let doomed: Vec<Arc<Segment>> = {
            let mut list = lock(&self.shared.segments);
            let n = list.partition_point(|s| s.index < index);
            list.drain(..n).collect()
        };
        if doomed.is_empty() {
            return Ok(());
        }
        // Out of the list already: one that fails to go now is deleted by
        // the next open, as it lies before the cursor.
        let mut failed = Ok(());
        for seg in &doomed {
            match remove_if_present(&seg.path) {
                Ok(()) => {
                    self.shared
                        .disk_bytes
                        .fetch_sub(seg.file_bytes(), Ordering::Relaxed);
                    self.shared.segment_count.fetch_sub(1, Ordering::Relaxed);
                }
                Err(e) => failed = failed.and(Err(e)),
            }
        }
        failed.and(sync_dir(dir))
    }

    fn count_damage(&self) {
        // A recovered segment's damage was counted by the scan at open.
        if !self.seg.recovered {
            self.shared.corrupt.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl LogConfig {
    fn validate(&self) -> io::Result<()> {
        let seg = self.segment_bytes;
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&seg) || !seg.is_multiple_of(ALIGN) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "event log segment_bytes must be a multiple of {ALIGN} from \
                     {MIN_SEGMENT_BYTES} to {MAX_SEGMENT_BYTES}, not {seg}"
                ),
            ));
        }
        if self.max_bytes / 2 < seg {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "event log max_bytes ({}) must be at least twice segment_bytes ({seg})",
                    self.max_bytes
                ),
            ));
        }
        Ok(())
    }
}

impl Shared {
    /// True when one more segment would take the disk past `max_bytes`.
    fn over_budget(&self) -> bool {
        self.disk_bytes.load(Ordering::Relaxed) + self.config.segment_bytes > self.config.max_bytes
    }

    /// Replaces `full` as the current segment, unless another appender
    /// already did.
    fn rotate(&self, full: &Arc<Segment>) -> Result<(), AppendError> {
        let mut rot = lock(&self.rotation);
        if !Arc::ptr_eq(&self.current.load(), full) {
            return Ok(());
        }
        let next = match rot.spare.take() {
            Some(spare) => {
                self.spare_ready.store(false, Ordering::Release);
                spare
            }
            None => {
                if self.over_budget() {
                    return Err(AppendError::Full {
                        max_bytes: self.config.max_bytes,
                    });
                }
                self.create_segment(&mut rot)?
            }
        };
        // Listed before it is current, and both before the seal: a reader
        // that sees the seal finds the next segment.
        lock(&self.segments).push_back(Arc::clone(&next));
        self.current.store(next);
        full.tail.fetch_or(SEALED, Ordering::SeqCst);
        Ok(())
    }

    /// Creates the next segment file. Runs under the rotation lock, which
    /// orders indices as segments become current.
    fn create_segment(&self, rot: &mut Rotation) -> io::Result<Arc<Segment>> {
        let index = rot.next_index;
        // Spent even on failure: a half-created file would block a retry
        // under the same name.
        rot.next_index += 1;
        let seg = Segment::create(&self.dir, index, self.config.segment_bytes)?;
        self.disk_bytes
            .fetch_add(seg.file_bytes(), Ordering::Relaxed);
        self.segment_count.fetch_add(1, Ordering::Relaxed);
        self.dir_dirty.store(true, Ordering::Release);
        Ok(Arc::new(seg))
    }

    fn prepare_spare(&self) -> io::Result<()> {
        let spare = {
            let mut rot = lock(&self.rotation);
            if rot.spare.is_some() || self.over_budget() {
                return Ok(());
            }
            let spare = self.create_segment(&mut rot)?;
            rot.spare = Some(Arc::clone(&spare));
            self.spare_ready.store(true, Ordering::Release);
            spare
        };
        // Fault every page in now, on this background thread, so appends
        // into the spare do not stop for page faults. Outside the rotation
        // lock, and a chunk at a time: faulting 16 MiB in takes tens of
        // milliseconds, and an append that must rotate meanwhile would wait
        // on the lock, or, behind a waiting mmap, on the process's mmap lock.
        // An append may already be writing into the spare: faulting a page
        // in never changes its bytes. Best effort: an old kernel without
        // MADV_POPULATE_WRITE faults pages in on first write.
        let len = spare.map.len();
        for off in (0..len).step_by(ZAP_CHUNK) {
            if spare
                .map
                .advise_range(
                    memmap2::Advice::PopulateWrite,
                    off,
                    ZAP_CHUNK.min(len - off),
                )
                .is_err()
            {
                break;
            }
        }
        Ok(())
    }

    /// Syncs the directory if segments came or went, then msyncs every
    /// segment that has bytes not yet known to be on disk.
    fn flush_dirty(&self) -> io::Result<()> {
        if self.dir_dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = sync_dir(&self.dir) {
                self.dir_dirty.store(true, Ordering::Release);
                return Err(e);
            }
        }
        // Cloned out so the msyncs do not hold up rotation or the reader.
        let dirty: Vec<Arc<Segment>> = lock(&self.segments)
            .iter()
            .filter(|s| !s.clean())
            .cloned()
            .collect();
        for seg in dirty {
            seg.flush()?;
        }
        Ok(())
    }

    /// The oldest listed segment whose index is at least `index`.
    fn segment_from(&self, index: u64) -> Option<Arc<Segment>> {
        lock(&self.segments)
            .iter()
            .find(|s| s.index >= index)
            .cloned()
    }
}

/// How much of a mapping one `madvise` call covers when faulting a spare
/// in or zapping a dropped segment: about a millisecond of kernel work.
const ZAP_CHUNK: usize = 1 << 20;

impl Drop for Segment {
    /// Unmapping megabytes of written pages takes milliseconds, all of them
    /// with the process's mmap lock held for writing, and every page fault
    /// of every thread waits for it meanwhile (an append touching a fresh
    /// log page is one: a redirect stalls). `MADV_DONTNEED`, a megabyte at a
    /// time, drops the same pages under the lock held for reading only, so
    /// the unmap that follows has nothing left to do. The file keeps every
    /// byte: on a shared file mapping this only forgets the page tables.
    fn drop(&mut self) {
        let len = self.map.len();
        let base = self.map.as_mut_ptr();
        for off in (0..len).step_by(ZAP_CHUNK) {
            // SAFETY: the last `Arc<Segment>` is going, so nothing reads or
            // writes the mapping any more; the range lies inside it.
            unsafe {
                libc::madvise(
                    base.add(off).cast(),
                    ZAP_CHUNK.min(len - off),
                    libc::MADV_DONTNEED,
                );
            }
        }
    }
}

impl Segment {
    /// Creates, sizes and maps a new, zero-filled segment file.
    fn create(dir: &Path, index: u64, bytes: u64) -> io::Result<Segment> {
        let path = segment_path(dir, index);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let mapped = allocate(&file, bytes).and_then(|()| map(&file));
        match mapped {
            Ok(map) => Ok(Segment::new(index, path, map, false)),
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Maps a segment left by an earlier run, sealed: it is read, never
    /// written. `None` when the file is too small to hold a record.
    fn recover(index: u64, path: PathBuf) -> io::Result<Option<Segment>> {
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        if file.metadata()?.len() < HEADER {
            return Ok(None);
        }
        let seg = Segment::new(index, path, map(&file)?, true);
        seg.tail.store(SEALED | seg.cap, Ordering::Relaxed);
        Ok(Some(seg))
    }

    fn new(index: u64, path: PathBuf, map: MmapRaw, recovered: bool) -> Segment {
        let cap = map.len() as u64 / ALIGN * ALIGN;
        Segment {
            index,
            path,
            map,
            cap,
            tail: AtomicU64::new(0),
            inflight: AtomicU64::new(0),
            // A recovered segment starts unsynced: the run that wrote it may
            // have died before its msync, leaving dirty pages in the cache.
            synced: AtomicU64::new(0),
            recovered,
        }
    }

    fn file_bytes(&self) -> u64 {
        self.map.len() as u64
    }

    /// Sealed with no append in flight: from here on nothing writes to it.
    ///
    /// An append raises `inflight` before reserving, and the seal makes every
    /// later reservation fail. With all three SeqCst, an append whose
    /// reservation came before the seal raised `inflight` before the seal
    /// too, so a zero read after seeing the seal means it has committed.
    fn settled(&self) -> bool {
        self.tail.load(Ordering::SeqCst) & SEALED != 0 && self.inflight.load(Ordering::SeqCst) == 0
    }

    /// Bytes reserved so far (every one of them inside `cap`).
    fn reserved(&self) -> u64 {
        (self.tail.load(Ordering::SeqCst) & !SEALED).min(self.cap)
    }

    /// Nothing left for `flush` to do, ever.
    fn clean(&self) -> bool {
        self.tail.load(Ordering::SeqCst) & SEALED != 0
            && self.synced.load(Ordering::Acquire) >= self.reserved()
    }

    /// Msyncs the bytes reserved since the last flush that covered them all.
    fn flush(&self) -> io::Result<()> {
        let end = self.reserved();
        // Loaded after the tail: zero means every reservation below `end`
        // has been written, so `synced` may move up to it after the msync.
        let quiet = self.inflight.load(Ordering::SeqCst) == 0;
        let from = self.synced.load(Ordering::Acquire);
        if end > from {
            self.map.flush_range(from as usize, (end - from) as usize)?;
        }
        if quiet {
            self.synced.fetch_max(end, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Writes a record into space reserved for it, magic last.
    ///
    /// # Safety
    ///
    /// `[off, off + record_size(payload.len()))` lies within `cap` and was
    /// reserved by the caller alone, and `off` is a multiple of `ALIGN`.
    unsafe fn write_record(&self, off: u64, len: [u8; 4], crc: [u8; 4], payload: &[u8]) {
        // SAFETY: by the caller's promise the range is in bounds of the
        // mapping (alive while `&self` is) and nobody else writes it; until
        // the magic is set, readers touch only the magic word, atomically.
        // The mapping starts on a page boundary and `off` is 8-aligned, so
        // the magic word is 4-aligned as `AtomicU32` needs.
        unsafe {
            let p = self.map.as_mut_ptr().add(off as usize);
            ptr::copy_nonoverlapping(len.as_ptr(), p.add(4), 4);
            ptr::copy_nonoverlapping(crc.as_ptr(), p.add(8), 4);
            ptr::copy_nonoverlapping(payload.as_ptr(), p.add(HEADER as usize), payload.len());
            // Release: a reader that loads this magic sees every byte above.
            AtomicU32::from_ptr(p.cast::<u32>()).store(MAGIC.to_le(), Ordering::Release);
        }
    }

    /// The magic word at `off` (8-aligned, with a whole header inside `cap`).
    fn magic(&self, off: u64) -> u32 {
        debug_assert!(off.is_multiple_of(ALIGN) && off + HEADER <= self.cap);
        // SAFETY: in bounds of the mapping, which lives as long as `&self`;
        // 4-aligned (page-aligned base, 8-aligned offset); magic words are
        // only ever written atomically, so this load races with nothing.
        let word = unsafe { AtomicU32::from_ptr(self.map.as_mut_ptr().add(off as usize).cast()) };
        // Acquire: pairs with the writer's release, making its record visible.
        u32::from_le(word.load(Ordering::Acquire))
    }

    /// The mapped bytes `[off, off + len)`.
    ///
    /// # Safety
    ///
    /// The range lies within `cap`, and nothing writes to it while the slice
    /// lives: it is a committed record, or the segment is settled.
    unsafe fn bytes(&self, off: u64, len: u64) -> &[u8] {
        debug_assert!(off + len <= self.cap);
        // SAFETY: in bounds and not written concurrently, by the caller's
        // promise; the mapping lives as long as `&self`.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(off as usize), len as usize) }
    }

    /// The payload length of a whole, valid record at `off`, whose magic has
    /// already been seen.
    fn check(&self, off: u64) -> Option<u64> {
        // SAFETY: a whole header fits at `off` (callers check), and its magic
        // was seen with acquire (so it is committed and never written again)
        // or the segment is settled.
        let header = unsafe { self.bytes(off, HEADER) };
        let len = u64::from(le_u32(header, 4));
        if len > self.cap - off - HEADER {
            return None;
        }
        // SAFETY: inside `cap` by the test above; not written, as the header.
        let payload = unsafe { self.bytes(off + HEADER, len) };
        let crc = crc32c::crc32c_append(crc32c::crc32c(&header[4..8]), payload);
        (crc == le_u32(header, 8)).then_some(len)
    }

    /// What lies at `off`. `settled` must come from [`Segment::settled`],
    /// read before this call.
    fn step(&self, off: u64, settled: bool) -> Step {
        if off + HEADER > self.cap {
            return if settled {
                Step::End { damaged: false }
            } else {
                Step::Pending
            };
        }
        match self.magic(off) {
            0 if !settled => return Step::Pending,
            MAGIC => {
                if let Some(len) = self.check(off) {
                    let end = off + record_size(len);
                    return Step::Record {
                        start: off,
                        len,
                        end,
                    };
                }
            }
            _ => {}
        }
        if !settled {
            // Damage in a segment still being written cannot be skipped yet:
            // the resync below would read records as they are written.
            return Step::Pending;
        }
        let mut at = off + ALIGN;
        while at + HEADER <= self.cap {
            if self.magic(at) == MAGIC && self.check(at).is_some() {
                return Step::Skip { to: at };
            }
            at += ALIGN;
        }
        // SAFETY: inside `cap`; the segment is settled.
        let rest = unsafe { self.bytes(off, self.cap - off) };
        Step::End {
            damaged: rest.iter().any(|&b| b != 0),
        }
    }

    /// Records and damaged runs from `from` to the end, for recovery.
    fn survey(&self, from: u64) -> (u64, u64) {
        let (mut records, mut damaged) = (0, 0);
        let mut off = from;
        loop {
            match self.step(off, true) {
                Step::Record { end, .. } => {
                    records += 1;
                    off = end;
                }
                Step::Skip { to } => {
                    damaged += 1;
                    off = to;
                }
                Step::End { damaged: d } => return (records, damaged + u64::from(d)),
                Step::Pending => unreachable!("a settled segment is never pending"),
            }
        }
    }
}

/// Bytes a record of `len` payload bytes takes, header and padding included.
fn record_size(len: u64) -> u64 {
    HEADER + len.next_multiple_of(ALIGN)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Sizes a new segment file and gives it its disk blocks now. `set_len`
/// alone leaves a sparse file, whose blocks the filesystem would allocate
/// when a page is first written through the mapping: on the request path,
/// and on a full disk as a SIGBUS that kills the process instead of an error.
fn allocate(file: &File, bytes: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on a descriptor that `file` keeps open; it
        // touches no memory of ours.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, bytes as libc::off_t) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        // A filesystem without fallocate gets a sparse file, as elsewhere.
        if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(e);
        }
    }
    file.set_len(bytes)
}

/// Maps a whole segment file shared, read-write: stores land in the page
/// cache, so they outlive the process.
fn map(file: &File) -> io::Result<MmapRaw> {
    MmapRaw::map_raw(file)
}

fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("seg-{index:020}.log"))
}

/// Segment files in `dir`, by index.
fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let index = name
            .to_str()
            .and_then(|n| n.strip_prefix("seg-"))
            .and_then(|n| n.strip_suffix(".log"))
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(index) = index {
            found.push((index, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// The cursor, if any, and whether a damaged one was found (and ignored:
/// replaying from the oldest segment only repeats records, the caller
/// dedups, and refusing to start would lose new ones).
fn read_cursor(dir: &Path) -> io::Result<(Option<Pos>, bool)> {
    let path = dir.join(CURSOR);
    let mut buf = Vec::new();
    match File::open(&path) {
        Ok(mut f) => f.read_to_end(&mut buf)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((None, false)),
        Err(e) => return Err(e),
    };
    if buf.len() == CURSOR_BYTES && crc32c::crc32c(&buf[..16]) == le_u32(&buf, 16) {
        let u64_at = |at: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&buf[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let pos = Pos {
            segment: u64_at(0),
            offset: u64_at(8),
        };
        // Scanning from an unaligned offset would load the magic unaligned.
        if pos.offset.is_multiple_of(ALIGN) {
            return Ok((Some(pos), false));
        }
    }
    warn!(path = %path.display(), "event log cursor damaged; replaying from the oldest segment");
    Ok((None, true))
}

/// Replaces the cursor atomically and durably.
fn write_cursor(dir: &Path, pos: Pos) -> io::Result<()> {
    let mut buf = [0u8; CURSOR_BYTES];
    buf[..8].copy_from_slice(&pos.segment.to_le_bytes());
    buf[8..16].copy_from_slice(&pos.offset.to_le_bytes());
    let crc = crc32c::crc32c(&buf[..16]);
    buf[16..].copy_from_slice(&crc.to_le_bytes());
    let tmp = dir.join(CURSOR_TMP);
    let mut file = File::create(&tmp)?;
    file.write_all(&buf)?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(CURSOR))?;
    sync_dir(dir)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes a create, rename or delete in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Every critical section here leaves its data consistent, so a panic in
/// another thread holding the lock is no reason to stop logging.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};
    use std::thread;

    use proptest::prelude::*;

    use super::*;

    /// Small segments, so a few hundred records cross several of them.
    const SEG: u64 = 4096;

    fn config(segments: u64) -> LogConfig {
        LogConfig {
            segment_bytes: SEG,
            max_bytes: segments * SEG,
        }
    }

    fn open(dir: &Path, config: LogConfig) -> (EventLog, LogReader) {
        let log = EventLog::open(dir, config).unwrap();
        let reader = log.reader();
        (log, reader)
    }

    fn read_all(reader: &mut LogReader) -> Vec<Record> {
        reader.read(usize::MAX).unwrap()
    }

    fn payloads(records: &[Record]) -> Vec<Vec<u8>> {
        records.iter().map(|r| r.payload.to_vec()).collect()
    }

    fn segment_files(dir: &Path) -> Vec<u64> {
        list_segments(dir)
            .unwrap()
            .into_iter()
            .map(|(i, _)| i)
            .collect()
    }

    /// Where whole, valid records sit in a segment file, as (start, payload
    /// length). Written apart from `Segment::step` so that the tests do not
    /// check the scanner against itself.
    fn records_in(bytes: &[u8]) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        let mut off = 0;
        while off + 16 <= bytes.len() {
            let len = le_u32(bytes, off + 4) as usize;
            let whole = le_u32(bytes, off) == MAGIC
                && len <= bytes.len() - off - 16
                && crc32c::crc32c_append(
                    crc32c::crc32c(&bytes[off + 4..off + 8]),
                    &bytes[off + 16..off + 16 + len],
                ) == le_u32(bytes, off + 8);
            if whole {
                found.push((off, len));
                off += 16 + len.next_multiple_of(8);
            } else {
                off += 8;
            }
        }
        found
    }

    /// Ways to damage a segment file, as a crash or a bad disk would.
    #[derive(Debug, Clone, Copy)]
    enum Harm {
        /// Flips bits of one byte of a record's header or payload.
        Flip { record: usize, byte: usize, xor: u8 },
        /// Clears a record's magic: its writer died before committing.
        Torn { record: usize },
        /// Clears a whole record: its writer died right after reserving.
        Unwritten { record: usize },
        /// Sets a record's length past the end of the segment.
        ImpossibleLen { record: usize },
        /// Writes a torn record after the last one.
        TornTail,
    }

    /// Damages the newest segment file that holds records; returns the first
    /// 8 payload bytes of the record it ruined, if it ruined one.
    fn harm(dir: &Path, how: Harm) -> Option<[u8; 8]> {
        let (path, mut bytes, recs) =
            list_segments(dir)
                .unwrap()
                .into_iter()
                .rev()
                .find_map(|(_, path)| {
                    let bytes = fs::read(&path).unwrap();
                    let recs = records_in(&bytes);
                    (!recs.is_empty()).then_some((path, bytes, recs))
                })?;
        let pick = |record: usize| recs[record % recs.len()];
        let ruined = |start: usize, len: usize| {
            let mut id = [0; 8];
            let n = len.min(8);
            id[..n].copy_from_slice(&bytes[start + 16..start + 16 + n]);
            id
        };
        let id = match how {
            Harm::Flip { record, byte, xor } => {
                let (start, len) = pick(record);
                let id = ruined(start, len);
                // Header bytes 0..12, then the payload: the reserved word and
                // the padding are not covered by the checksum.
                let i = byte % (12 + len);
                bytes[start + if i < 12 { i } else { i + 4 }] ^= xor;
                Some(id)
            }
            Harm::Torn { record } => {
                let (start, len) = pick(record);
                let id = ruined(start, len);
                bytes[start..start + 4].fill(0);
                Some(id)
            }
            Harm::Unwritten { record } => {
                let (start, len) = pick(record);
                let id = ruined(start, len);
                bytes[start..start + record_size(len as u64) as usize].fill(0);
                Some(id)
            }
            Harm::ImpossibleLen { record } => {
                let (start, len) = pick(record);
                let id = ruined(start, len);
                bytes[start + 4..start + 8].copy_from_slice(&u32::MAX.to_le_bytes());
                Some(id)
            }
            Harm::TornTail => {
                let (start, len) = recs[recs.len() - 1];
                let at = start + record_size(len as u64) as usize;
                let payload = [0xAB; 20];
                if at + 16 + payload.len() <= bytes.len() {
                    let len = (payload.len() as u32).to_le_bytes();
                    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), &payload);
                    // Past the last whole record may lie a ruined one; the
                    // writer that died never got to its magic.
                    bytes[at..at + 4].fill(0);
                    bytes[at + 4..at + 8].copy_from_slice(&len);
                    bytes[at + 8..at + 12].copy_from_slice(&crc.to_le_bytes());
                    bytes[at + 16..at + 36].copy_from_slice(&payload);
                }
                None
            }
        };
        fs::write(&path, bytes).unwrap();
        id
    }

    #[test]
    fn append_read_ack_round_trip() {
        let max = (SEG / 4) as usize;
        let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
            ("nothing", vec![]),
            ("one empty payload", vec![vec![]]),
            (
                "sizes around the padding",
                vec![vec![1], vec![2; 7], vec![3; 8], vec![4; 9], vec![5; 16]],
            ),
            ("the largest payload", vec![vec![6; max], vec![7; max]]),
            (
                "enough to fill several segments",
                (0..100u8).map(|i| vec![i; 100]).collect(),
            ),
        ];
        for (name, input) in cases {
            let dir = tempfile::tempdir().unwrap();
            let (log, mut reader) = open(dir.path(), config(64));
            for p in &input {
                log.append(p).unwrap();
            }
            assert_eq!(log.appended(), input.len() as u64, "{name}");
            let mut got = Vec::new();
            loop {
                let batch = reader.read(3).unwrap();
                assert!(batch.len() <= 3, "{name}: read more than asked");
                if batch.is_empty() {
                    break;
                }
                got.extend(batch);
            }
            assert_eq!(payloads(&got), input, "{name}");
            assert!(
                got.windows(2).all(|w| w[0].pos < w[1].pos),
                "{name}: positions increase"
            );
            if let Some(last) = got.last() {
                reader.ack(last.pos).unwrap();
            }
            assert!(read_all(&mut reader).is_empty(), "{name}: read again");
            assert_eq!(log.corrupt_records(), 0, "{name}");
            assert_eq!(
                segment_files(dir.path()).len() as u64,
                log.segments(),
                "{name}"
            );
            assert_eq!(log.disk_bytes(), log.segments() * SEG, "{name}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn segment_blocks_are_allocated_up_front() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let (_log, _reader) = open(dir.path(), config(4));
        let meta = fs::metadata(segment_path(dir.path(), 0)).unwrap();
        assert_eq!(meta.len(), SEG);
        assert!(meta.blocks() * 512 >= SEG, "{} blocks", meta.blocks());
    }

    #[test]
    fn rejects_payloads_over_a_quarter_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _reader) = open(dir.path(), config(4));
        let max = (SEG / 4) as usize;
        let err = log.append(&vec![0; max + 1]).unwrap_err();
        assert!(
            matches!(err, AppendError::TooLarge { len, max: m } if len == max + 1 && m == max),
            "{err}"
        );
        log.append(&vec![0; max]).unwrap();
    }

    #[test]
    fn concurrent_appenders_across_rotations() {
        const THREADS: usize = 4;
        const PER_THREAD: u32 = 2000;
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EventLog::open(dir.path(), config(1 << 16)).unwrap());
        let mut reader = log.reader();
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let log = Arc::clone(&log);
                thread::spawn(move || {
                    for seq in 0..PER_THREAD {
                        let mut p = vec![t as u8];
                        p.extend(seq.to_le_bytes());
                        p.resize(5 + (seq % 40) as usize, t as u8);
                        log.append(&p).unwrap();
                    }
                })
            })
            .collect();
        let mut next = [0u32; THREADS];
        let mut total = 0;
        while total < THREADS as u32 * PER_THREAD {
            // Checked before reading: once every writer is done, everything
            // is committed and one read must return the rest.
            let finished = writers.iter().all(|w| w.is_finished());
            let batch = reader.read(500).unwrap();
            assert!(
                !(batch.is_empty() && finished),
                "reader stalled after {total} records"
            );
            for r in &batch {
                let t = r.payload[0] as usize;
                let seq =
                    u32::from_le_bytes([r.payload[1], r.payload[2], r.payload[3], r.payload[4]]);
                assert_eq!(seq, next[t], "thread {t}: records in append order, once");
                next[t] += 1;
                total += 1;
            }
            match batch.last() {
                Some(last) => {
                    reader.ack(last.pos).unwrap();
                    log.maintain().unwrap();
                }
                None => thread::yield_now(),
            }
        }
        for w in writers {
            w.join().unwrap();
        }
        assert!(read_all(&mut reader).is_empty());
        assert_eq!(log.appended(), u64::from(total));
        assert_eq!(log.corrupt_records(), 0);
        assert_eq!(segment_files(dir.path()).len() as u64, log.segments());
        log.sync().unwrap();
    }

    #[test]
    fn reopen_returns_what_was_not_acked() {
        let all: Vec<Vec<u8>> = (0..200)
            .map(|i| format!("event-{i}-{}", "x".repeat(i % 50)).into_bytes())
            .collect();
        // (name, index of the last record acked before the crash, whether
        // the crash came after the cursor was written but before the acked
        // segments were deleted)
        let cases = [
            ("nothing acked", None, false),
            ("first acked", Some(0), false),
            ("half acked", Some(99), false),
            ("all acked", Some(199), false),
            ("crash before the deletes", Some(150), true),
        ];
        for (name, acked, undelete) in cases {
            let dir = tempfile::tempdir().unwrap();
            let mut acked_pos = None;
            {
                let (log, mut reader) = open(dir.path(), config(64));
                for p in &all {
                    log.append(p).unwrap();
                }
                let got = read_all(&mut reader);
                assert_eq!(payloads(&got), all, "{name}");
                if let Some(k) = acked {
                    let pos = got[k].pos;
                    let before: Vec<(PathBuf, Vec<u8>)> = list_segments(dir.path())
                        .unwrap()
                        .into_iter()
                        .map(|(_, path)| (path.clone(), fs::read(path).unwrap()))
                        .collect();
                    reader.ack(pos).unwrap();
                    acked_pos = Some(pos);
                    assert!(
                        segment_files(dir.path()).iter().all(|&i| i >= pos.segment),
                        "{name}: segments before the ack deleted"
                    );
                    if undelete {
                        for (path, bytes) in before {
                            if !path.exists() {
                                fs::write(path, bytes).unwrap();
                            }
                        }
                    }
                }
                // Dropped with no sync or shutdown: as a crash leaves it.
            }
            let rest = &all[acked.map_or(0, |k| k + 1)..];
            // Twice: reading again without an ack changes nothing.
            for round in 0..2 {
                let (log, mut reader) = open(dir.path(), config(64));
                let got = read_all(&mut reader);
                assert_eq!(payloads(&got), rest, "{name}, reopen {round}");
                assert_eq!(log.corrupt_records(), 0, "{name}, reopen {round}");
                let files = segment_files(dir.path());
                if let Some(pos) = acked_pos {
                    assert!(files.iter().all(|&i| i >= pos.segment), "{name}");
                }
                assert_eq!(files.len() as u64, log.segments(), "{name}");
            }
        }
    }

    #[test]
    fn damaged_records_are_skipped_and_counted() {
        // (name, damage, index of the record it ruins, damage counted)
        let cases = [
            ("no damage", None, None, 0),
            (
                "payload byte flipped",
                Some(Harm::Flip {
                    record: 3,
                    byte: 20,
                    xor: 0x40,
                }),
                Some(3),
                1,
            ),
            (
                "crc byte flipped",
                Some(Harm::Flip {
                    record: 3,
                    byte: 9,
                    xor: 1,
                }),
                Some(3),
                1,
            ),
            (
                "torn: written but for the magic",
                Some(Harm::Torn { record: 3 }),
                Some(3),
                1,
            ),
            (
                "reserved, never written",
                Some(Harm::Unwritten { record: 3 }),
                Some(3),
                1,
            ),
            (
                "impossible length",
                Some(Harm::ImpossibleLen { record: 3 }),
                Some(3),
                1,
            ),
            (
                "first record torn",
                Some(Harm::Torn { record: 0 }),
                Some(0),
                1,
            ),
            (
                "last record flipped",
                Some(Harm::Flip {
                    record: 7,
                    byte: 30,
                    xor: 0xFF,
                }),
                Some(7),
                1,
            ),
            ("torn record at the tail", Some(Harm::TornTail), None, 1),
        ];
        for (name, how, ruined, counted) in cases {
            let dir = tempfile::tempdir().unwrap();
            let all: Vec<Vec<u8>> = (0..8)
                .map(|i| format!("record {i} {}", "p".repeat(i * 5)).into_bytes())
                .collect();
            {
                let (log, _reader) = open(dir.path(), config(16));
                for p in &all {
                    log.append(p).unwrap();
                }
            }
            if let Some(how) = how {
                let hit = harm(dir.path(), how);
                assert_eq!(hit.is_some(), ruined.is_some(), "{name}");
            }
            let (log, mut reader) = open(dir.path(), config(16));
            let mut want = all.clone();
            if let Some(i) = ruined {
                want.remove(i);
            }
            assert_eq!(log.corrupt_records(), counted, "{name}: counted at open");
            assert_eq!(payloads(&read_all(&mut reader)), want, "{name}");
            assert_eq!(
                log.corrupt_records(),
                counted,
                "{name}: not counted again by the reader"
            );
            // New appends come after what was recovered.
            log.append(b"after").unwrap();
            assert_eq!(
                payloads(&read_all(&mut reader)),
                vec![b"after".to_vec()],
                "{name}"
            );
        }
    }

    #[test]
    fn reader_waits_for_appends_in_flight_in_a_sealed_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (log, mut reader) = open(dir.path(), config(64));
        log.append(b"first").unwrap();
        // An append that has reserved its bytes and not yet written them,
        // done by hand to stop it there.
        let seg = log.shared.current.load_full();
        seg.inflight.fetch_add(1, Ordering::SeqCst);
        let at = seg.tail.fetch_add(record_size(4), Ordering::SeqCst);
        // Other appends fill the segment and rotate past it.
        let mut filler = 0;
        while log.shared.current.load().index == seg.index {
            log.append(&[9; 200]).unwrap();
            filler += 1;
        }
        assert!(seg.tail.load(Ordering::SeqCst) & SEALED != 0);
        assert_eq!(
            payloads(&read_all(&mut reader)),
            vec![b"first".to_vec()],
            "stops at the record in flight"
        );
        let len = 4u32.to_le_bytes();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&len), b"late");
        // SAFETY: the bytes at `at` were reserved above, by this test alone.
        unsafe { seg.write_record(at, len, crc.to_le_bytes(), b"late") };
        seg.inflight.fetch_sub(1, Ordering::Release);
        let got = read_all(&mut reader);
        assert_eq!(&got[0].payload[..], b"late");
        assert_eq!(got.len(), 1 + filler);
        assert_eq!(log.corrupt_records(), 0);
    }

    #[test]
    fn full_until_ack_frees_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (log, mut reader) = open(dir.path(), config(3));
        let payload = [7u8; 200];
        let mut appended = 0;
        let err = loop {
            match log.append(&payload) {
                Ok(()) => appended += 1,
                Err(e) => break e,
            }
        };
        assert!(
            matches!(err, AppendError::Full { max_bytes } if max_bytes == 3 * SEG),
            "{err}"
        );
        assert_eq!((log.segments(), log.disk_bytes()), (3, 3 * SEG));
        assert!(matches!(
            log.append(&payload),
            Err(AppendError::Full { .. })
        ));
        log.maintain().unwrap();
        assert_eq!(log.segments(), 3, "no spare past the budget");

        let got = read_all(&mut reader);
        assert_eq!(got.len(), appended);
        reader.ack(got[got.len() - 1].pos).unwrap();
        assert_eq!(log.segments(), 1, "the two older segments deleted");
        log.maintain().unwrap();
        assert_eq!(log.segments(), 2, "a spare, now there is room");
        log.append(&payload).unwrap();
        let got = read_all(&mut reader);
        assert_eq!(payloads(&got), vec![payload.to_vec()]);
        assert_eq!(got[0].pos.segment, 3, "written into the spare");
        assert_eq!(segment_files(dir.path()), vec![2, 3]);
    }

    #[test]
    fn ack_must_not_pass_what_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let (log, mut reader) = open(dir.path(), config(4));
        log.append(b"a").unwrap();
        log.append(b"b").unwrap();
        let first = reader.read(1).unwrap()[0].pos;
        let beyond = Pos {
            segment: first.segment,
            offset: first.offset + 24,
        };
        let unaligned = Pos {
            segment: first.segment,
            offset: first.offset - 4,
        };
        for bad in [beyond, unaligned] {
            let err = reader.ack(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        reader.ack(first).unwrap();
    }

    #[test]
    #[should_panic(expected = "one consumer")]
    fn one_reader_only() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path(), config(4)).unwrap();
        let _first = log.reader();
        let _second = log.reader();
    }

    #[test]
    fn one_log_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let _log = EventLog::open(dir.path(), config(4)).unwrap();
        let err = EventLog::open(dir.path(), config(4)).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn config_is_validated() {
        let cases = [
            (4096, 8192, true),
            (4096, 8191, false),
            (64 << 20, 4 << 30, true),
            (4088, 1 << 20, false),
            (4100, 1 << 20, false),
            (2 << 30, 4 << 30, false),
            (8192, 4096, false),
        ];
        for (segment_bytes, max_bytes, ok) in cases {
            let config = LogConfig {
                segment_bytes,
                max_bytes,
            };
            assert_eq!(config.validate().is_ok(), ok, "{config:?}");
        }
    }

    /// One step of the property test.
    #[derive(Debug, Clone)]
    enum Op {
        /// Appends a record with this many bytes after its 8-byte id.
        Append(usize),
        /// Reads up to `max` records, then acks the `ack`th one not acked.
        Read {
            max: usize,
            ack: usize,
        },
        Maintain,
        /// Drops log and reader with no cleanup, maybe damages the disk,
        /// reopens.
        Crash(Option<Harm>),
    }

    fn op() -> impl Strategy<Value = Op> {
        let harm = prop_oneof![
            (any::<usize>(), any::<usize>(), 1..=255u8)
                .prop_map(|(record, byte, xor)| Harm::Flip { record, byte, xor }),
            any::<usize>().prop_map(|record| Harm::Torn { record }),
            any::<usize>().prop_map(|record| Harm::Unwritten { record }),
            Just(Harm::TornTail),
        ];
        prop_oneof![
            20 => (0..300usize).prop_map(Op::Append),
            2 => (0..30usize, 0..20usize).prop_map(|(max, ack)| Op::Read { max, ack }),
            1 => Just(Op::Maintain),
            1 => proptest::option::of(harm).prop_map(Op::Crash),
        ]
    }

    fn event(id: u64, filler: usize) -> Vec<u8> {
        let mut p = id.to_le_bytes().to_vec();
        p.extend((0..filler).map(|i| (id as usize * 7 + i) as u8));
        p
    }

    /// What the property test knows of the log it drives.
    struct Model {
        dir: tempfile::TempDir,
        open: Option<(EventLog, LogReader)>,
        next_id: u64,
        /// Appended successfully: id → filler length.
        appended: BTreeMap<u64, usize>,
        /// Ruined by the test itself.
        harmed: HashSet<u64>,
        delivered: HashSet<u64>,
        acked: HashSet<u64>,
        /// Read since the last open and not acked, in order.
        unacked: Vec<(Pos, u64)>,
        /// The last id read since the last open.
        last_read: Option<u64>,
    }

    impl Model {
        const CONFIG: LogConfig = LogConfig {
            segment_bytes: SEG,
            max_bytes: 2 * SEG,
        };

        fn new() -> Model {
            let dir = tempfile::tempdir().unwrap();
            let open = Some(open(dir.path(), Model::CONFIG));
            Model {
                dir,
                open,
                next_id: 0,
                appended: BTreeMap::new(),
                harmed: HashSet::new(),
                delivered: HashSet::new(),
                acked: HashSet::new(),
                unacked: Vec::new(),
                last_read: None,
            }
        }

        fn apply(&mut self, op: Op) {
            match op {
                Op::Append(filler) => {
                    let id = self.next_id;
                    self.next_id += 1;
                    let (log, _) = self.open.as_ref().unwrap();
                    match log.append(&event(id, filler)) {
                        Ok(()) => {
                            self.appended.insert(id, filler);
                        }
                        Err(AppendError::Full { .. }) => {}
                        Err(e) => panic!("append: {e}"),
                    }
                }
                Op::Read { max, ack } => {
                    self.read(max);
                    if ack > 0 && !self.unacked.is_empty() {
                        let n = ack.min(self.unacked.len());
                        let (_, reader) = self.open.as_mut().unwrap();
                        reader.ack(self.unacked[n - 1].0).unwrap();
                        for (_, id) in self.unacked.drain(..n) {
                            self.acked.insert(id);
                        }
                    }
                }
                Op::Maintain => self.open.as_ref().unwrap().0.maintain().unwrap(),
                Op::Crash(how) => {
                    drop(self.open.take());
                    if let Some(how) = how {
                        if let Some(id) = harm(self.dir.path(), how) {
                            self.harmed.insert(u64::from_le_bytes(id));
                        }
                    }
                    self.open = Some(open(self.dir.path(), Model::CONFIG));
                    self.unacked.clear();
                    self.last_read = None;
                }
            }
        }

        fn read(&mut self, max: usize) {
            let (_, reader) = self.open.as_mut().unwrap();
            let records = reader.read(max).unwrap();
            assert!(records.len() <= max);
            for r in records {
                let id = u64::from_le_bytes(r.payload[..8].try_into().unwrap());
                let filler = *self
                    .appended
                    .get(&id)
                    .unwrap_or_else(|| panic!("record {id} was never appended"));
                assert_eq!(r.payload, event(id, filler), "record {id} intact");
                assert!(!self.acked.contains(&id), "record {id} read after its ack");
                assert!(self.last_read < Some(id), "record {id} out of order");
                self.last_read = Some(id);
                self.delivered.insert(id);
                self.unacked.push((r.pos, id));
            }
        }

        /// Reopens and reads everything: every record appended and not
        /// ruined by the test must have arrived once by then.
        fn finish(mut self) {
            self.apply(Op::Crash(None));
            self.read(usize::MAX);
            for id in self.appended.keys() {
                assert!(
                    self.delivered.contains(id) || self.harmed.contains(id),
                    "record {id} lost"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 128,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn survives_crashes_and_damage(ops in proptest::collection::vec(op(), 1..200)) {
            let mut model = Model::new();
            for op in ops {
                model.apply(op);
            }
            model.finish();
        }
    }
}
