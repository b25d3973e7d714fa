//! Appending: the lock-free path every recording thread takes, rotation to
//! the next segment when one fills, and the spare segment that upkeep
//! prepares so rotation does not create a file on the request path.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::format::Frame;
use super::segment::Segment;
use super::shared::{lock, Rotation, Shared};

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

impl Shared {
    /// See [`super::EventLog::append`].
    #[inline]
    pub(super) fn append(&self, payload: &[u8]) -> Result<(), AppendError> {
        if payload.len() > self.max_payload {
            return Err(AppendError::TooLarge {
                len: payload.len(),
                max: self.max_payload,
            });
        }
        // The checksum is computed before reserving, to keep the time spent
        // in flight (which the reader may wait on) to a copy.
        let frame = Frame::new(payload);
        loop {
            let seg = self.current.load();
            // `seg` (the guard) keeps the segment mapped until the write is
            // done.
            if let Some(reservation) = seg.reserve(&frame) {
                reservation.commit();
                self.appended.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            if !self.spare_ready.load(Ordering::Acquire) && self.over_budget() {
                if Arc::ptr_eq(&self.current.load(), &seg) {
                    return Err(AppendError::Full {
                        max_bytes: self.config.max_bytes(),
                    });
                }
                continue;
            }
            self.rotate(&seg)?;
        }
    }

    /// True when one more segment would take the disk past `max_bytes`.
    fn over_budget(&self) -> bool {
        self.disk_bytes.load(Ordering::Relaxed) + self.config.segment_bytes()
            > self.config.max_bytes()
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
                        max_bytes: self.config.max_bytes(),
                    });
                }
                self.create_segment(&mut rot)?
            }
        };
        // Listed before it is current, and both before the seal: a reader
        // that sees the seal finds the next segment.
        lock(&self.segments).push_back(Arc::clone(&next));
        self.current.store(next);
        full.seal();
        Ok(())
    }

    /// Creates the next segment file. Runs under the rotation lock, which
    /// orders indices as segments become current.
    fn create_segment(&self, rot: &mut Rotation) -> io::Result<Arc<Segment>> {
        let index = rot.next_index;
        // Spent even on failure: a half-created file would block a retry
        // under the same name.
        rot.next_index += 1;
        let seg = Segment::create(&self.dir, index, self.config.segment_bytes())?;
        self.disk_bytes
            .fetch_add(seg.file_bytes(), Ordering::Relaxed);
        self.segment_count.fetch_add(1, Ordering::Relaxed);
        self.dir_dirty.store(true, Ordering::Release);
        Ok(Arc::new(seg))
    }

    /// Creates the spare segment if there is none and the budget allows,
    /// and faults its pages in.
    pub(super) fn prepare_spare(&self) -> io::Result<()> {
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
        // Now, on this background thread, so appends into the spare do not
        // stop for page faults; outside the rotation lock, which an append
        // that must rotate meanwhile would wait on (or, behind a waiting
        // mmap, on the process's mmap lock).
        spare.prefault();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config, open, payloads, read_all, segment_files, SEG};
    use super::*;

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
}
