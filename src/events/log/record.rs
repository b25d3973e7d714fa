//! Scanning records: the scan that finds whole records in a segment, checks
//! their checksums, skips damage and recovers a directory at open.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::dir::remove_if_present;
use super::format::{le_u32, record_size, Pos, ALIGN, CRC_AT, HEADER, LEN_AT, MAGIC};
use super::segment::{Segment, View};

/// What lies at an offset of a segment.
pub(super) enum Step<'a> {
    /// A whole record with this payload; the next begins at `end`.
    Record { payload: &'a [u8], end: u64 },
    /// Damage from the offset up to `to`, where a valid record starts.
    Skip { to: u64 },
    /// Nothing more in this segment; `damaged` when the rest is not all zero.
    End { damaged: bool },
    /// The next record is not committed yet, or the segment is still being
    /// written and damage can only be judged once it is not.
    Pending,
}

/// The payload of a whole, valid record at `off`, whose magic has already
/// been seen (or the view is settled).
fn check<'a>(view: &View<'a>, off: u64) -> Option<&'a [u8]> {
    let (header, payload) = view.record(off)?;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[LEN_AT..LEN_AT + 4]), payload);
    (crc == le_u32(header, CRC_AT)).then_some(payload)
}

/// What lies at `off` of the segment `view` looks at.
pub(super) fn step<'a>(view: &View<'a>, off: u64) -> Step<'a> {
    let (cap, settled) = (view.cap(), view.settled());
    if off + HEADER > cap {
        return if settled {
            Step::End { damaged: false }
        } else {
            Step::Pending
        };
    }
    match view.magic(off) {
        0 if !settled => return Step::Pending,
        MAGIC => {
            if let Some(payload) = check(view, off) {
                let end = off + record_size(payload.len() as u64);
                return Step::Record { payload, end };
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
    while at + HEADER <= cap {
        if view.magic(at) == MAGIC && check(view, at).is_some() {
            return Step::Skip { to: at };
        }
        at += ALIGN;
    }
    let rest = view.rest(off).expect("a settled view reads to the end");
    Step::End {
        damaged: rest.iter().any(|&b| b != 0),
    }
}

/// Records and damaged runs of a sealed segment from `from` to the end.
fn survey(seg: &Segment, from: u64) -> (u64, u64) {
    let view = seg.view();
    let (mut records, mut damaged) = (0, 0);
    let mut off = from;
    loop {
        match step(&view, off) {
            Step::Record { end, .. } => {
                records += 1;
                off = end;
            }
            Step::Skip { to } => {
                damaged += 1;
                off = to;
            }
            Step::End { damaged: d } => return (records, damaged + u64::from(d)),
            Step::Pending => unreachable!("a recovered segment is settled, never pending"),
        }
    }
}

/// What an earlier run left in the directory, as [`recover`] found it.
pub(super) struct Recovered {
    /// Segments holding records not yet acknowledged, oldest first.
    pub(super) segments: VecDeque<Arc<Segment>>,
    /// Damaged runs skipped.
    pub(super) damaged: u64,
    /// Bytes of the segment files kept.
    pub(super) disk_bytes: u64,
}

/// Scans the segment files `found` (by index) from the cursor `start` on,
/// counting damage, and deletes those with nothing left to deliver.
pub(super) fn recover(found: Vec<(u64, PathBuf)>, start: Pos) -> io::Result<Recovered> {
    let mut out = Recovered {
        segments: VecDeque::new(),
        damaged: 0,
        disk_bytes: 0,
    };
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
        let (records, damaged) = survey(&seg, from);
        out.damaged += damaged;
        if records == 0 {
            // Nothing to deliver (typically last run's spare); keeping it
            // would only take disk budget.
            remove_if_present(&path)?;
            continue;
        }
        out.disk_bytes += seg.file_bytes();
        out.segments.push_back(Arc::new(seg));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config, harm, open, payloads, read_all, Harm};

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
}
