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
//!
//! # Files
//!
//! One role per file: `segment.rs` the mapped segment file (every `unsafe`
//! block of the log lives there and only there); `record.rs` the record
//! framing, its checksum, scanning and recovery; `append.rs` appends,
//! rotation and the spare segment; `reader.rs` the consumer and its
//! cursor; `dir.rs` the directory: its lock, the cursor file, segment file
//! names. Tests sit beside the role they test, `tests.rs` holds the shared
//! helpers and the tests that cross roles.

mod append;
mod dir;
mod reader;
mod record;
mod segment;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use tracing::warn;

pub use self::append::AppendError;
pub use self::reader::{LogReader, Record};
use self::record::ALIGN;
use self::segment::Segment;

/// Smallest segment: one page, which also leaves a quarter segment of room
/// for a payload well above a record header.
const MIN_SEGMENT_BYTES: u64 = 4096;
/// Largest segment: its quarter, the largest payload, must fit a record's
/// `u32` length word, and mapping more than this per file buys nothing.
const MAX_SEGMENT_BYTES: u64 = 1 << 30;
/// Largest budget, 1 PiB: far beyond any disk, and far enough from
/// `u64::MAX` that the budget arithmetic cannot overflow.
const MAX_LOG_BYTES: u64 = 1 << 50;

/// Sizes of an [`EventLog`], valid by construction: [`LogConfig::new`] is
/// the one place their bounds are checked (the config file's
/// `spool.segment_bytes` and `spool.max_bytes` go through it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    segment_bytes: u64,
    max_bytes: u64,
}

/// Why [`LogConfig::new`] refused its sizes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogConfigError {
    /// `segment_bytes` is out of bounds or not a multiple of 8.
    #[error(
        "segment_bytes must be a multiple of {ALIGN} from {MIN_SEGMENT_BYTES} to \
         {MAX_SEGMENT_BYTES}, got {0}"
    )]
    SegmentBytes(u64),
    /// `max_bytes` is under two segments or over the largest budget.
    #[error("max_bytes must be from {min} (two segments) to {MAX_LOG_BYTES}, got {got}")]
    MaxBytes {
        /// The value given.
        got: u64,
        /// Twice `segment_bytes`.
        min: u64,
    },
}

impl LogConfigError {
    /// What is wrong, without the name of the field: for callers that name
    /// it their own way (the config file's `spool.` keys).
    pub fn problem(&self) -> String {
        let message = self.to_string();
        match message.split_once(' ') {
            Some((_, problem)) => problem.to_string(),
            None => message,
        }
    }
}

impl LogConfig {
    /// Checks the sizes against what the log needs.
    ///
    /// `segment_bytes` is the size of every segment file, allocated when the
    /// file is created: a multiple of 8 from 4 KiB to 1 GiB; one payload may
    /// take at most a quarter of it. `max_bytes` is the most bytes of
    /// segment files on disk, the spare included: an append that would need
    /// a segment beyond it fails with [`AppendError::Full`]. It must hold at
    /// least two segments: acknowledging never deletes the segment being
    /// written, so with one the log could fill for good.
    pub fn new(segment_bytes: u64, max_bytes: u64) -> Result<LogConfig, LogConfigError> {
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&segment_bytes)
            || !segment_bytes.is_multiple_of(ALIGN)
        {
            return Err(LogConfigError::SegmentBytes(segment_bytes));
        }
        let min = 2 * segment_bytes;
        if !(min..=MAX_LOG_BYTES).contains(&max_bytes) {
            return Err(LogConfigError::MaxBytes {
                got: max_bytes,
                min,
            });
        }
        Ok(LogConfig {
            segment_bytes,
            max_bytes,
        })
    }

    /// Size of every segment file.
    pub fn segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// Most bytes of segment files on disk, the spare included.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
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

/// The append side of the log, shared by every thread that records events.
/// The directory stays locked until both it and its reader are dropped.
pub struct EventLog {
    shared: Arc<Shared>,
}

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

impl EventLog {
    /// Opens the log in `dir` (created if missing): recovers the cursor and
    /// every segment after it, then starts a new segment for appends.
    pub fn open(dir: &Path, config: LogConfig) -> io::Result<EventLog> {
        let lock = dir::lock(dir)?;
        let (cursor, cursor_damaged) = dir::read_cursor(dir)?;
        let start = cursor.unwrap_or(Pos {
            segment: 0,
            offset: 0,
        });
        let found = dir::list_segments(dir)?;
        let mut next_index = match (found.last(), cursor) {
            (Some(&(last, _)), Some(c)) => last.max(c.segment) + 1,
            (Some(&(last, _)), None) => last + 1,
            // Never reuse the cursor's index: a new segment under it would
            // have its first records taken as already acknowledged.
            (None, Some(c)) => c.segment + 1,
            (None, None) => 0,
        };

        let recovered = record::recover(found, start)?;
        let corrupt = recovered.damaged + u64::from(cursor_damaged);
        if corrupt > 0 {
            warn!(
                dir = %dir.display(),
                corrupt,
                "event log recovered with damaged records skipped"
            );
        }
        let mut segments = recovered.segments;
        let mut disk_bytes = recovered.disk_bytes;

        let current = Arc::new(Segment::create(dir, next_index, config.segment_bytes)?);
        next_index += 1;
        disk_bytes += current.file_bytes();
        segments.push_back(Arc::clone(&current));
        dir::sync_dir(dir)?;

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
    #[inline]
    pub fn append(&self, payload: &[u8]) -> Result<(), AppendError> {
        self.shared.append(payload)
    }

    /// The consumer of this log. Panics when called a second time: two
    /// consumers would acknowledge each other's records.
    pub fn reader(&self) -> LogReader {
        LogReader::new(Arc::clone(&self.shared))
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

impl Shared {
    /// Syncs the directory if segments came or went, then msyncs every
    /// segment that has bytes not yet known to be on disk.
    fn flush_dirty(&self) -> io::Result<()> {
        if self.dir_dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = dir::sync_dir(&self.dir) {
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
}

/// Every critical section of the log leaves its data consistent, so a panic
/// in another thread holding the lock is no reason to stop logging.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod config_tests {
    use super::*;

    fn check(segment_bytes: u64, max_bytes: u64, expected: Result<(), LogConfigError>) {
        let got = LogConfig::new(segment_bytes, max_bytes).map(|c| {
            assert_eq!(
                (c.segment_bytes(), c.max_bytes()),
                (segment_bytes, max_bytes)
            );
        });
        assert_eq!(
            got, expected,
            "segment_bytes {segment_bytes}, max_bytes {max_bytes}"
        );
    }

    #[test]
    fn config_is_validated() {
        use LogConfigError::{MaxBytes, SegmentBytes};
        check(4096, 8192, Ok(()));
        check(
            4096,
            8191,
            Err(MaxBytes {
                got: 8191,
                min: 8192,
            }),
        );
        check(64 << 20, 4 << 30, Ok(()));
        check(16 << 20, 10 << 30, Ok(()));
        check(4088, 1 << 20, Err(SegmentBytes(4088)));
        check(4100, 1 << 20, Err(SegmentBytes(4100)));
        check(2 << 30, 4 << 30, Err(SegmentBytes(2 << 30)));
        check(
            8192,
            4096,
            Err(MaxBytes {
                got: 4096,
                min: 16384,
            }),
        );
        check(1 << 30, 1 << 50, Ok(()));
        check(
            1 << 30,
            (1 << 50) + 8,
            Err(MaxBytes {
                got: (1 << 50) + 8,
                min: 2 << 30,
            }),
        );
    }

    #[test]
    fn problems_leave_out_the_field() {
        let e = LogConfig::new(1000, 1 << 20).unwrap_err();
        assert_eq!(
            e.to_string(),
            "segment_bytes must be a multiple of 8 from 4096 to 1073741824, got 1000"
        );
        assert_eq!(
            e.problem(),
            "must be a multiple of 8 from 4096 to 1073741824, got 1000"
        );
    }
}
