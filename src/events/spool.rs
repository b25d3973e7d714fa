//! The disk spool: events ClickHouse could not take yet, as JSON lines.
//!
//! `spool-*.jsonl` files hold events that could not be inserted before
//! shutdown; the flusher replays them at the next start and deletes each
//! file once ClickHouse has acknowledged all of it. `rejected-*.jsonl` files
//! hold rows ClickHouse refused as bad data: kept for an operator, never
//! replayed automatically. A file is written under a temporary name, synced
//! and renamed, so a crash never leaves a half-written spool file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::Event;

/// Files to replay start with this.
pub const REPLAY_PREFIX: &str = "spool-";
/// Files of refused rows start with this.
pub const REJECTED_PREFIX: &str = "rejected-";

/// A spool directory.
pub struct Spool {
    dir: PathBuf,
    /// Tells apart files written in the same millisecond.
    counter: AtomicU64,
}

impl Spool {
    /// Opens (creating it if needed) the spool directory.
    pub fn open(dir: &Path) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        Ok(Spool {
            dir: dir.to_path_buf(),
            counter: AtomicU64::new(0),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `events` durably to a new file named `{prefix}{time}-...jsonl`.
    pub fn write<'a>(
        &self,
        prefix: &str,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> io::Result<PathBuf> {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}{ms:015}-{}-{n:06}.jsonl", std::process::id());
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(&name);
        {
            let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            let mut w = BufWriter::new(file);
            for e in events {
                serde_json::to_writer(&mut w, e)?;
                w.write_all(b"\n")?;
            }
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)?;
        Ok(path)
    }

    /// Files waiting for replay, oldest first.
    pub fn pending(&self) -> io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(REPLAY_PREFIX) && n.ends_with(".jsonl"))
            })
            .collect();
        files.sort();
        Ok(files)
    }

    /// Reads a spool file: its events and the number of lines that did not
    /// decode (kept out, counted by the caller).
    pub fn read(path: &Path) -> io::Result<(Vec<Event>, usize)> {
        let mut events = Vec::new();
        let mut bad = 0;
        for line in BufReader::new(File::open(path)?).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(e) => events.push(e),
                Err(_) => bad += 1,
            }
        }
        Ok((events, bad))
    }

    /// Deletes a replayed file.
    pub fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)?;
        sync_dir(&self.dir)
    }
}

/// Makes a rename or delete in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::OrphanRow;

    fn orphan(code: &str) -> Event {
        Event::Orphan(OrphanRow {
            ts: 1,
            code: code.into(),
            ip: "1.2.3.4".into(),
            user_agent: "ua \"quoted\"\nnewline".into(),
            referer: String::new(),
            is_bot: 0,
            node: "n".into(),
        })
    }

    #[test]
    fn write_read_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let events: Vec<Event> = (0..3).map(|i| orphan(&format!("c{i}"))).collect();
        let a = spool.write(REPLAY_PREFIX, &events).unwrap();
        let b = spool.write(REPLAY_PREFIX, &events[..1]).unwrap();
        spool.write(REJECTED_PREFIX, &events[..1]).unwrap();
        assert_eq!(spool.pending().unwrap(), vec![a.clone(), b.clone()]);
        let (back, bad) = Spool::read(&a).unwrap();
        assert_eq!(back, events);
        assert_eq!(bad, 0);
        spool.remove(&a).unwrap();
        assert_eq!(spool.pending().unwrap(), vec![b]);
    }

    #[test]
    fn undecodable_lines_are_counted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let path = spool
            .write(REPLAY_PREFIX, &[orphan("a"), orphan("b")])
            .unwrap();
        let mut text = fs::read_to_string(&path).unwrap();
        text.insert_str(0, "{not json\n");
        fs::write(&path, text).unwrap();
        let (back, bad) = Spool::read(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(bad, 1);
    }
}
