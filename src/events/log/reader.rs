//! The log's single consumer: reads records in order, acknowledges them
//! through the durable cursor, and deletes segments read in full.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::dir::{remove_if_present, sync_dir, write_cursor};
use super::format::{Pos, ALIGN};
use super::record::{step, Step};
use super::segment::Segment;
use super::shared::{lock, Shared};

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where the record ends: pass it to [`LogReader::ack`] once the record
    /// (and every one before it) is safe elsewhere.
    pub pos: Pos,
    /// The bytes given to [`super::EventLog::append`]; the records of one
    /// `read` share one buffer, so a large batch costs one allocation.
    pub payload: Bytes,
}

/// The single consumer of an [`super::EventLog`]; see
/// [`super::EventLog::reader`].
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

impl LogReader {
    /// The reader of `shared`, from the cursor found at open. Panics when
    /// the log already has one.
    pub(super) fn new(shared: Arc<Shared>) -> LogReader {
        let first = !shared.reader_taken.swap(true, Ordering::Relaxed);
        assert!(
            first,
            "EventLog::reader called twice: the log has one consumer"
        );
        let start = shared.start;
        let seg = shared
            .segment_from(start.segment)
            .expect("open lists the current segment, whose index is past the cursor's");
        let off = if seg.index == start.segment {
            start.offset
        } else {
            0
        };
        LogReader {
            shared,
            seg,
            off,
            acked: start,
            last: start,
        }
    }

    /// Up to `max_records` committed records after the last one returned,
    /// in append order. Returns fewer (or none) when it reaches a record not
    /// yet committed, or the end of the log.
    pub fn read(&mut self, max_records: usize) -> io::Result<Vec<Record>> {
        // (end position, start in `buf`, length) of each record.
        let mut spans: Vec<(Pos, usize, usize)> = Vec::new();
        let mut buf = BytesMut::new();
        while spans.len() < max_records {
            // Taken before any byte of the segment is read: once settled,
            // nothing writes to it again, so the scan may read it freely.
            let view = self.seg.view();
            match step(&view, self.off) {
                Step::Record { payload, end } => {
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
            seg.retire();
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

impl Shared {
    /// The oldest listed segment whose index is at least `index`.
    fn segment_from(&self, index: u64) -> Option<Arc<Segment>> {
        lock(&self.segments)
            .iter()
            .find(|s| s.index >= index)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::Frame;
    use super::super::tests::{config, open, payloads, read_all};
    use super::super::EventLog;
    use super::*;

    #[test]
    fn reader_waits_for_appends_in_flight_in_a_sealed_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (log, mut reader) = open(dir.path(), config(64));
        log.append(b"first").unwrap();
        // An append that has reserved its bytes and not yet written them,
        // done by hand to stop it there.
        let seg = log.shared.current.load_full();
        let frame = Frame::new(b"late");
        let late = seg.reserve(&frame).expect("room in a fresh segment");
        // Other appends fill the segment and rotate past it.
        let mut filler = 0;
        while log.shared.current.load().index == seg.index {
            log.append(&[9; 200]).unwrap();
            filler += 1;
        }
        assert!(seg.is_sealed());
        assert_eq!(
            payloads(&read_all(&mut reader)),
            vec![b"first".to_vec()],
            "stops at the record in flight"
        );
        late.commit();
        let got = read_all(&mut reader);
        assert_eq!(&got[0].payload[..], b"late");
        assert_eq!(got.len(), 1 + filler);
        assert_eq!(log.corrupt_records(), 0);
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
}
