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
//! One role per file; each imports only from the files listed before it.
//! Files, bottom up:
//!
//! - `format.rs`: the on-disk layout (header words, alignment, framing a
//!   payload, [`Pos`], segment file names); imports no sibling.
//! - `config.rs`: [`LogConfig`], the sizes and their bounds.
//! - `dir.rs`: the directory: its lock, listing segment files, the cursor
//!   file, syncing the directory.
//! - `segment.rs`: the mapped segment file; every `unsafe` block of the log
//!   lives there and only there.
//! - `record.rs`: scanning a segment's records, checking them, skipping
//!   damage, and recovering a directory at open.
//! - `shared.rs`: the state the log, its reader and its appenders share,
//!   and syncing it to disk.
//! - `append.rs`: appends, rotation and the spare segment.
//! - `reader.rs`: the consumer and its cursor.
//! - `mod.rs` (this file): declares the files, re-exports the public types
//!   and holds the [`EventLog`] facade.
//!
//! Tests sit beside the role they test, `tests.rs` holds the shared
//! helpers and the tests that cross roles.

mod append;
mod config;
mod dir;
mod format;
mod reader;
mod record;
mod segment;
mod shared;
#[cfg(test)]
mod tests;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tracing::warn;

pub use self::append::AppendError;
pub use self::config::{LogConfig, LogConfigError};
pub use self::format::Pos;
pub use self::reader::{LogReader, Record};
use self::segment::Segment;
use self::shared::{Rotation, Shared};

/// The append side of the log, shared by every thread that records events.
/// The directory stays locked until both it and its reader are dropped.
pub struct EventLog {
    shared: Arc<Shared>,
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

        let current = Arc::new(Segment::create(dir, next_index, config.segment_bytes())?);
        next_index += 1;
        disk_bytes += current.file_bytes();
        segments.push_back(Arc::clone(&current));
        dir::sync_dir(dir)?;

        let segment_count = segments.len() as u64;
        Ok(EventLog {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                config,
                max_payload: (config.segment_bytes() / 4) as usize,
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
