//! Helpers the log's tests share, and the tests that cross roles: round
//! trips, concurrent appenders, crash and reopen, and a property test that
//! drives appends, reads, acks, upkeep, crashes and disk damage at random.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use proptest::prelude::*;

use super::dir::list_segments;
use super::format::{le_u32, record_size, MAGIC};
use super::*;

/// Small segments, so a few hundred records cross several of them.
pub(super) const SEG: u64 = 4096;

/// Segments of `SEG` bytes, at most `segments` of them on disk.
pub(super) fn config(segments: u64) -> LogConfig {
    LogConfig::new(SEG, segments * SEG).unwrap()
}

pub(super) fn open(dir: &Path, config: LogConfig) -> (EventLog, LogReader) {
    let log = EventLog::open(dir, config).unwrap();
    let reader = log.reader();
    (log, reader)
}

pub(super) fn read_all(reader: &mut LogReader) -> Vec<Record> {
    reader.read(usize::MAX).unwrap()
}

pub(super) fn payloads(records: &[Record]) -> Vec<Vec<u8>> {
    records.iter().map(|r| r.payload.to_vec()).collect()
}

pub(super) fn segment_files(dir: &Path) -> Vec<u64> {
    list_segments(dir)
        .unwrap()
        .into_iter()
        .map(|(i, _)| i)
        .collect()
}

/// Where whole, valid records sit in a segment file, as (start, payload
/// length). Written apart from `record::step` so that the tests do not
/// check the scanner against itself.
pub(super) fn records_in(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut off = 0;
    while off + 16 <= bytes.len() {
        let len = le_u32(bytes, off + 4) as usize;
        let whole = le_u32(bytes, off) == MAGIC
            && len <= bytes.len() - off - 16
            && crc32c::crc32c_append(
                crc32c::crc32c(&bytes[off + 4..off + 8]),
                &bytes[off + 16..off + 16 + len],
            ) == le_u32(bytes, off + 8);
        if whole {
            found.push((off, len));
            off += 16 + len.next_multiple_of(8);
        } else {
            off += 8;
        }
    }
    found
}

/// Ways to damage a segment file, as a crash or a bad disk would.
#[derive(Debug, Clone, Copy)]
pub(super) enum Harm {
    /// Flips bits of one byte of a record's header or payload.
    Flip { record: usize, byte: usize, xor: u8 },
    /// Clears a record's magic: its writer died before committing.
    Torn { record: usize },
    /// Clears a whole record: its writer died right after reserving.
    Unwritten { record: usize },
    /// Sets a record's length past the end of the segment.
    ImpossibleLen { record: usize },
    /// Writes a torn record after the last one.
    TornTail,
}

/// Damages the newest segment file that holds records; returns the first
/// 8 payload bytes of the record it ruined, if it ruined one.
pub(super) fn harm(dir: &Path, how: Harm) -> Option<[u8; 8]> {
    let (path, mut bytes, recs) =
        list_segments(dir)
            .unwrap()
            .into_iter()
            .rev()
            .find_map(|(_, path)| {
                let bytes = fs::read(&path).unwrap();
                let recs = records_in(&bytes);
                (!recs.is_empty()).then_some((path, bytes, recs))
            })?;
    let pick = |record: usize| recs[record % recs.len()];
    let ruined = |start: usize, len: usize| {
        let mut id = [0; 8];
        let n = len.min(8);
        id[..n].copy_from_slice(&bytes[start + 16..start + 16 + n]);
        id
    };
    let id = match how {
        Harm::Flip { record, byte, xor } => {
            let (start, len) = pick(record);
            let id = ruined(start, len);
            // Header bytes 0..12, then the payload: the reserved word and
            // the padding are not covered by the checksum.
            let i = byte % (12 + len);
            bytes[start + if i < 12 { i } else { i + 4 }] ^= xor;
            Some(id)
        }
        Harm::Torn { record } => {
            let (start, len) = pick(record);
            let id = ruined(start, len);
            bytes[start..start + 4].fill(0);
            Some(id)
        }
        Harm::Unwritten { record } => {
            let (start, len) = pick(record);
            let id = ruined(start, len);
            bytes[start..start + record_size(len as u64) as usize].fill(0);
            Some(id)
        }
        Harm::ImpossibleLen { record } => {
            let (start, len) = pick(record);
            let id = ruined(start, len);
            bytes[start + 4..start + 8].copy_from_slice(&u32::MAX.to_le_bytes());
            Some(id)
        }
        Harm::TornTail => {
            let (start, len) = recs[recs.len() - 1];
            let at = start + record_size(len as u64) as usize;
            let payload = [0xAB; 20];
            if at + 16 + payload.len() <= bytes.len() {
                let len = (payload.len() as u32).to_le_bytes();
                let crc = crc32c::crc32c_append(crc32c::crc32c(&len), &payload);
                // Past the last whole record may lie a ruined one; the
                // writer that died never got to its magic.
                bytes[at..at + 4].fill(0);
                bytes[at + 4..at + 8].copy_from_slice(&len);
                bytes[at + 8..at + 12].copy_from_slice(&crc.to_le_bytes());
                bytes[at + 16..at + 36].copy_from_slice(&payload);
            }
            None
        }
    };
    fs::write(&path, bytes).unwrap();
    id
}

#[test]
fn append_read_ack_round_trip() {
    let max = (SEG / 4) as usize;
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("nothing", vec![]),
        ("one empty payload", vec![vec![]]),
        (
            "sizes around the padding",
            vec![vec![1], vec![2; 7], vec![3; 8], vec![4; 9], vec![5; 16]],
        ),
        ("the largest payload", vec![vec![6; max], vec![7; max]]),
        (
            "enough to fill several segments",
            (0..100u8).map(|i| vec![i; 100]).collect(),
        ),
    ];
    for (name, input) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (log, mut reader) = open(dir.path(), config(64));
        for p in &input {
            log.append(p).unwrap();
        }
        assert_eq!(log.appended(), input.len() as u64, "{name}");
        let mut got = Vec::new();
        loop {
            let batch = reader.read(3).unwrap();
            assert!(batch.len() <= 3, "{name}: read more than asked");
            if batch.is_empty() {
                break;
            }
            got.extend(batch);
        }
        assert_eq!(payloads(&got), input, "{name}");
        assert!(
            got.windows(2).all(|w| w[0].pos < w[1].pos),
            "{name}: positions increase"
        );
        if let Some(last) = got.last() {
            reader.ack(last.pos).unwrap();
        }
        assert!(read_all(&mut reader).is_empty(), "{name}: read again");
        assert_eq!(log.corrupt_records(), 0, "{name}");
        assert_eq!(
            segment_files(dir.path()).len() as u64,
            log.segments(),
            "{name}"
        );
        assert_eq!(log.disk_bytes(), log.segments() * SEG, "{name}");
    }
}

#[test]
fn concurrent_appenders_across_rotations() {
    const THREADS: usize = 4;
    const PER_THREAD: u32 = 2000;
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EventLog::open(dir.path(), config(1 << 16)).unwrap());
    let mut reader = log.reader();
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                for seq in 0..PER_THREAD {
                    let mut p = vec![t as u8];
                    p.extend(seq.to_le_bytes());
                    p.resize(5 + (seq % 40) as usize, t as u8);
                    log.append(&p).unwrap();
                }
            })
        })
        .collect();
    let mut next = [0u32; THREADS];
    let mut total = 0;
    while total < THREADS as u32 * PER_THREAD {
        // Checked before reading: once every writer is done, everything
        // is committed and one read must return the rest.
        let finished = writers.iter().all(|w| w.is_finished());
        let batch = reader.read(500).unwrap();
        assert!(
            !(batch.is_empty() && finished),
            "reader stalled after {total} records"
        );
        for r in &batch {
            let t = r.payload[0] as usize;
            let seq = u32::from_le_bytes([r.payload[1], r.payload[2], r.payload[3], r.payload[4]]);
            assert_eq!(seq, next[t], "thread {t}: records in append order, once");
            next[t] += 1;
            total += 1;
        }
        match batch.last() {
            Some(last) => {
                reader.ack(last.pos).unwrap();
                log.maintain().unwrap();
            }
            None => thread::yield_now(),
        }
    }
    for w in writers {
        w.join().unwrap();
    }
    assert!(read_all(&mut reader).is_empty());
    assert_eq!(log.appended(), u64::from(total));
    assert_eq!(log.corrupt_records(), 0);
    assert_eq!(segment_files(dir.path()).len() as u64, log.segments());
    log.sync().unwrap();
}

#[test]
fn reopen_returns_what_was_not_acked() {
    let all: Vec<Vec<u8>> = (0..200)
        .map(|i| format!("event-{i}-{}", "x".repeat(i % 50)).into_bytes())
        .collect();
    // (name, index of the last record acked before the crash, whether
    // the crash came after the cursor was written but before the acked
    // segments were deleted)
    let cases = [
        ("nothing acked", None, false),
        ("first acked", Some(0), false),
        ("half acked", Some(99), false),
        ("all acked", Some(199), false),
        ("crash before the deletes", Some(150), true),
    ];
    for (name, acked, undelete) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut acked_pos = None;
        {
            let (log, mut reader) = open(dir.path(), config(64));
            for p in &all {
                log.append(p).unwrap();
            }
            let got = read_all(&mut reader);
            assert_eq!(payloads(&got), all, "{name}");
            if let Some(k) = acked {
                let pos = got[k].pos;
                let before: Vec<(PathBuf, Vec<u8>)> = list_segments(dir.path())
                    .unwrap()
                    .into_iter()
                    .map(|(_, path)| (path.clone(), fs::read(path).unwrap()))
                    .collect();
                reader.ack(pos).unwrap();
                acked_pos = Some(pos);
                assert!(
                    segment_files(dir.path()).iter().all(|&i| i >= pos.segment),
                    "{name}: segments before the ack deleted"
                );
                if undelete {
                    for (path, bytes) in before {
                        if !path.exists() {
                            fs::write(path, bytes).unwrap();
                        }
                    }
                }
            }
            // Dropped with no sync or shutdown: as a crash leaves it.
        }
        let rest = &all[acked.map_or(0, |k| k + 1)..];
        // Twice: reading again without an ack changes nothing.
        for round in 0..2 {
            let (log, mut reader) = open(dir.path(), config(64));
            let got = read_all(&mut reader);
            assert_eq!(payloads(&got), rest, "{name}, reopen {round}");
            assert_eq!(log.corrupt_records(), 0, "{name}, reopen {round}");
            let files = segment_files(dir.path());
            if let Some(pos) = acked_pos {
                assert!(files.iter().all(|&i| i >= pos.segment), "{name}");
            }
            assert_eq!(files.len() as u64, log.segments(), "{name}");
        }
    }
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Op {
    /// Appends a record with this many bytes after its 8-byte id.
    Append(usize),
    /// Reads up to `max` records, then acks the `ack`th one not acked.
    Read {
        max: usize,
        ack: usize,
    },
    Maintain,
    /// Drops log and reader with no cleanup, maybe damages the disk,
    /// reopens.
    Crash(Option<Harm>),
}

fn op() -> impl Strategy<Value = Op> {
    let harm =
        prop_oneof![
            (any::<usize>(), any::<usize>(), 1..=255u8)
                .prop_map(|(record, byte, xor)| Harm::Flip { record, byte, xor }),
            any::<usize>().prop_map(|record| Harm::Torn { record }),
            any::<usize>().prop_map(|record| Harm::Unwritten { record }),
            Just(Harm::TornTail),
        ];
    prop_oneof![
        20 => (0..300usize).prop_map(Op::Append),
        2 => (0..30usize, 0..20usize).prop_map(|(max, ack)| Op::Read { max, ack }),
        1 => Just(Op::Maintain),
        1 => proptest::option::of(harm).prop_map(Op::Crash),
    ]
}

fn event(id: u64, filler: usize) -> Vec<u8> {
    let mut p = id.to_le_bytes().to_vec();
    p.extend((0..filler).map(|i| (id as usize * 7 + i) as u8));
    p
}

/// What the property test knows of the log it drives.
struct Model {
    dir: tempfile::TempDir,
    open: Option<(EventLog, LogReader)>,
    next_id: u64,
    /// Appended successfully: id → filler length.
    appended: BTreeMap<u64, usize>,
    /// Ruined by the test itself.
    harmed: HashSet<u64>,
    delivered: HashSet<u64>,
    acked: HashSet<u64>,
    /// Read since the last open and not acked, in order.
    unacked: Vec<(Pos, u64)>,
    /// The last id read since the last open.
    last_read: Option<u64>,
}

impl Model {
    /// Two segments: the least a log may have, where it fills soonest.
    fn config() -> LogConfig {
        config(2)
    }

    fn new() -> Model {
        let dir = tempfile::tempdir().unwrap();
        let open = Some(open(dir.path(), Model::config()));
        Model {
            dir,
            open,
            next_id: 0,
            appended: BTreeMap::new(),
            harmed: HashSet::new(),
            delivered: HashSet::new(),
            acked: HashSet::new(),
            unacked: Vec::new(),
            last_read: None,
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Append(filler) => {
                let id = self.next_id;
                self.next_id += 1;
                let (log, _) = self.open.as_ref().unwrap();
                match log.append(&event(id, filler)) {
                    Ok(()) => {
                        self.appended.insert(id, filler);
                    }
                    Err(AppendError::Full { .. }) => {}
                    Err(e) => panic!("append: {e}"),
                }
            }
            Op::Read { max, ack } => {
                self.read(max);
                if ack > 0 && !self.unacked.is_empty() {
                    let n = ack.min(self.unacked.len());
                    let (_, reader) = self.open.as_mut().unwrap();
                    reader.ack(self.unacked[n - 1].0).unwrap();
                    for (_, id) in self.unacked.drain(..n) {
                        self.acked.insert(id);
                    }
                }
            }
            Op::Maintain => self.open.as_ref().unwrap().0.maintain().unwrap(),
            Op::Crash(how) => {
                drop(self.open.take());
                if let Some(how) = how {
                    if let Some(id) = harm(self.dir.path(), how) {
                        self.harmed.insert(u64::from_le_bytes(id));
                    }
                }
                self.open = Some(open(self.dir.path(), Model::config()));
                self.unacked.clear();
                self.last_read = None;
            }
        }
    }

    fn read(&mut self, max: usize) {
        let (_, reader) = self.open.as_mut().unwrap();
        let records = reader.read(max).unwrap();
        assert!(records.len() <= max);
        for r in records {
            let id = u64::from_le_bytes(r.payload[..8].try_into().unwrap());
            let filler = *self
                .appended
                .get(&id)
                .unwrap_or_else(|| panic!("record {id} was never appended"));
            assert_eq!(r.payload, event(id, filler), "record {id} intact");
            assert!(!self.acked.contains(&id), "record {id} read after its ack");
            assert!(self.last_read < Some(id), "record {id} out of order");
            self.last_read = Some(id);
            self.delivered.insert(id);
            self.unacked.push((r.pos, id));
        }
    }

    /// Reopens and reads everything: every record appended and not
    /// ruined by the test must have arrived once by then.
    fn finish(mut self) {
        self.apply(Op::Crash(None));
        self.read(usize::MAX);
        for id in self.appended.keys() {
            assert!(
                self.delivered.contains(id) || self.harmed.contains(id),
                "record {id} lost"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn survives_crashes_and_damage(ops in proptest::collection::vec(op(), 1..200)) {
        let mut model = Model::new();
        for op in ops {
            model.apply(op);
        }
        model.finish();
    }
}
