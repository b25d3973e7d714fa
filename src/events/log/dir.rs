//! The log's directory: its lock, listing segment files, the cursor file,
//! and making creates, renames and deletes durable.

use std::fs::{self, File, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use super::format::{le_u32, segment_index, Pos, ALIGN};

const CURSOR: &str = "cursor";
const CURSOR_TMP: &str = "cursor.tmp";
const LOCK: &str = "lock";
/// Bytes of the cursor file: segment, offset, crc32c of both.
const CURSOR_BYTES: usize = 20;

/// Creates `dir` if missing and takes its lock: the file returned holds an
/// exclusive lock for as long as it is open. Also clears a cursor file left
/// half-written by a crash.
pub(super) fn lock(dir: &Path) -> io::Result<File> {
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
    // A crash during ack can leave it; the cursor it was to replace stands.
    remove_if_present(&dir.join(CURSOR_TMP))?;
    Ok(lock)
}

/// Segment files in `dir`, by index.
pub(super) fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let index = name.to_str().and_then(segment_index);
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
pub(super) fn read_cursor(dir: &Path) -> io::Result<(Option<Pos>, bool)> {
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
pub(super) fn write_cursor(dir: &Path, pos: Pos) -> io::Result<()> {
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

/// Deletes `path`; one already gone is fine.
pub(super) fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes a create, rename or delete in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::super::tests::config;
    use super::super::EventLog;
    use super::*;

    #[test]
    fn one_log_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let _log = EventLog::open(dir.path(), config(4)).unwrap();
        let err = EventLog::open(dir.path(), config(4)).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }
}
