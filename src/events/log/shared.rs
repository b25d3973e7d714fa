//! The state the log, its reader and every appender share, and the upkeep
//! that makes it durable.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;

use super::config::LogConfig;
use super::dir::sync_dir;
use super::format::Pos;
use super::segment::Segment;

/// State shared by the log, its reader and every appender.
pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) config: LogConfig,
    /// Largest payload accepted: a quarter of a segment, so a segment that
    /// fills wastes at most a quarter of itself.
    pub(super) max_payload: usize,
    /// The segment appends go to.
    pub(super) current: ArcSwap<Segment>,
    /// Serialises rotation and spare creation so segment indices are handed
    /// out in the order segments become current. Taken only when a segment
    /// fills, and by `maintain`.
    pub(super) rotation: Mutex<Rotation>,
    /// Mirrors `rotation.spare.is_some()` so appends can see they are full
    /// without queueing on the lock.
    pub(super) spare_ready: AtomicBool,
    /// Segments on disk that hold or may receive records, oldest first; the
    /// spare is not here until it becomes current. Locked by rotation, the
    /// reader and `maintain`, never by an append that fits.
    pub(super) segments: Mutex<VecDeque<Arc<Segment>>>,
    /// Where the reader starts: the cursor found at open.
    pub(super) start: Pos,
    /// The log has one consumer; a second would ack the first one's records.
    pub(super) reader_taken: AtomicBool,
    /// A segment file was created or deleted without syncing the directory
    /// yet; `maintain` and `sync` do it.
    pub(super) dir_dirty: AtomicBool,
    /// Held (with an exclusive file lock) for the life of the log: two logs
    /// on one directory would write over each other's segments.
    pub(super) _lock: File,
    pub(super) corrupt: AtomicU64,
    pub(super) disk_bytes: AtomicU64,
    pub(super) segment_count: AtomicU64,
    pub(super) appended: AtomicU64,
}

/// What the rotation lock guards.
pub(super) struct Rotation {
    /// Index of the next segment to create.
    pub(super) next_index: u64,
    /// A segment created ahead of need by `maintain`, counted on disk.
    pub(super) spare: Option<Arc<Segment>>,
}

impl Shared {
    /// Syncs the directory if segments came or went, then msyncs every
    /// segment that has bytes not yet known to be on disk.
    pub(super) fn flush_dirty(&self) -> io::Result<()> {
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
}

/// Every critical section of the log leaves its data consistent, so a panic
/// in another thread holding the lock is no reason to stop logging.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
