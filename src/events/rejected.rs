//! Rejected rows: events ClickHouse refused as bad data, kept as JSON lines
//! in `spool.dir/rejected/rejected-*.jsonl` files for an operator instead of
//! being retried forever. (Events waiting for ClickHouse live in the segment
//! log, the spool, not here.) A file is written under a temporary name,
//! synced and renamed, so a crash never leaves half of one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::Event;

/// Files of refused rows start with this.
pub const REJECTED_PREFIX: &str = "rejected-";

/// The directory of rejected files.
pub struct Rejected {
    dir: PathBuf,
    /// Tells apart files written in the same millisecond.
    counter: AtomicU64,
}

impl Rejected {
    /// Opens (creating it if needed) the directory.
    pub fn open(dir: &Path) -> io::Result<Rejected> {
        fs::create_dir_all(dir)?;
        Ok(Rejected {
            dir: dir.to_path_buf(),
            counter: AtomicU64::new(0),
        })
    }

    /// Writes `events` durably to a new `rejected-{time}-...jsonl` file.
    pub fn write<'a, 'e: 'a>(
        &self,
        events: impl IntoIterator<Item = &'a Event<'e>>,
    ) -> io::Result<PathBuf> {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "{REJECTED_PREFIX}{ms:015}-{}-{n:06}.jsonl",
            std::process::id()
        );
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(&name);
        {
            let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            let mut w = BufWriter::new(file);
            for e in events {
                serde_json::to_writer(&mut w, e)?;
                w.write_all(b"\n")?;
            }
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        File::open(&self.dir)?.sync_all()?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::OrphanRow;

    #[test]
    fn rejected_rows_are_kept_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let r = Rejected::open(&dir.path().join("sub")).unwrap();
        let events: Vec<Event> = ["a", "b\n\"c\""]
            .iter()
            .map(|code| {
                Event::Orphan(OrphanRow {
                    ts: 1,
                    code,
                    ip: "1.2.3.4",
                    user_agent: "ua",
                    referer: "",
                    is_bot: 0,
                    node: "n",
                })
            })
            .collect();
        let a = r.write(&events).unwrap();
        let b = r.write(&events[..1]).unwrap();
        assert_ne!(a, b);
        let text = fs::read_to_string(&a).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["Orphan"]["code"], "b\n\"c\"");
        assert!(a
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(REJECTED_PREFIX));
    }
}
