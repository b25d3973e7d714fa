//! The on-disk layout, and nothing that reads or writes it: a record's
//! header words and alignment, how a payload is framed, positions in the
//! log, and the names of segment files. It imports nothing from the rest of
//! the log, which all builds on it.

use std::path::{Path, PathBuf};

/// Marks a committed record. Any nonzero constant works; this one spells
/// "GLET" in a hex dump, which makes segments easy to recognise.
pub(super) const MAGIC: u32 = 0x5445_4C47;
/// Bytes of a record header: magic, length, crc32c, reserved.
pub(super) const HEADER: u64 = 16;
/// Offset of the payload length in a header.
pub(super) const LEN_AT: usize = 4;
/// Offset of the checksum in a header.
pub(super) const CRC_AT: usize = 8;
/// Every record starts and ends on this boundary, which keeps the magic word
/// aligned for atomic access and gives resynchronisation few offsets to try.
pub(super) const ALIGN: u64 = 8;

/// Where a record ends in the log; a later record has a greater position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// Index of the segment holding the record.
    pub segment: u64,
    /// Offset in the segment just past the record (and its padding).
    pub offset: u64,
}

/// A record ready to be written: its header fields, computed before any
/// space is reserved so that an append in flight (which the reader may wait
/// on) only copies.
pub(super) struct Frame<'p> {
    /// The payload length, little-endian.
    pub(super) len: [u8; 4],
    /// crc32c of `len` and the payload, little-endian.
    pub(super) crc: [u8; 4],
    pub(super) payload: &'p [u8],
}

impl<'p> Frame<'p> {
    /// Frames `payload`, which the caller has kept under a quarter segment
    /// (so its length fits the `u32` length word).
    #[inline]
    pub(super) fn new(payload: &'p [u8]) -> Frame<'p> {
        let len = (payload.len() as u32).to_le_bytes();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&len), payload).to_le_bytes();
        Frame { len, crc, payload }
    }

    /// Bytes the record takes in a segment.
    #[inline]
    pub(super) fn size(&self) -> u64 {
        record_size(self.payload.len() as u64)
    }
}

/// Bytes a record of `len` payload bytes takes, header and padding included.
pub(super) fn record_size(len: u64) -> u64 {
    HEADER + len.next_multiple_of(ALIGN)
}

/// The little-endian `u32` at `at` of `b`.
pub(super) fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The file of the segment with this index.
pub(super) fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("seg-{index:020}.log"))
}

/// The index of the segment file named `name`, or `None` when it is not
/// one (the reverse of [`segment_path`]).
pub(super) fn segment_index(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")
        .and_then(|n| n.strip_suffix(".log"))
        .filter(|n| n.len() == 20)
        .and_then(|n| n.parse::<u64>().ok())
}
