//! The log's sizes and the one place their bounds are checked.

use super::format::ALIGN;

/// Smallest segment: one page, which also leaves a quarter segment of room
/// for a payload well above a record header.
const MIN_SEGMENT_BYTES: u64 = 4096;
/// Largest segment: its quarter, the largest payload, must fit a record's
/// `u32` length word, and mapping more than this per file buys nothing.
const MAX_SEGMENT_BYTES: u64 = 1 << 30;
/// Largest budget, 1 PiB: far beyond any disk, and far enough from
/// `u64::MAX` that the budget arithmetic cannot overflow.
const MAX_LOG_BYTES: u64 = 1 << 50;

/// Sizes of an [`super::EventLog`], valid by construction:
/// [`LogConfig::new`] is the one place their bounds are checked (the config
/// file's `spool.segment_bytes` and `spool.max_bytes` go through it too).
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
    /// a segment beyond it fails with [`super::AppendError::Full`]. It must
    /// hold at least two segments: acknowledging never deletes the segment
    /// being written, so with one the log could fill for good.
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

#[cfg(test)]
mod tests {
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
