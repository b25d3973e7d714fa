//! One segment file, mapped shared into memory. This is the only code of the
//! log that touches the mapping's raw memory: every `unsafe` block of the
//! log is in this file, and what it offers the rest is safe.
//!
//! - Writers go through a [`Reservation`]: the bytes it holds were handed
//!   to it alone by one `fetch_add` on the tail, so it may write them.
//! - Readers go through a [`View`]: it reads a record only once its magic
//!   was loaded committed (with acquire; nothing writes a committed record
//!   again), or any byte once the segment is settled (sealed with no append
//!   in flight; nothing writes it again at all).
//!
//! The mapping stays valid for as long as the `Segment` lives, and every
//! pointer into it is used only while a borrow of the segment is held.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use memmap2::MmapRaw;

use super::format::{le_u32, segment_path, Frame, ALIGN, CRC_AT, HEADER, LEN_AT, MAGIC};

/// Set in a segment's tail when it is rotated away. No reservation can
/// succeed after it, which is what lets the reader trust a zero `inflight`.
const SEALED: u64 = 1 << 63;

/// How much of a mapping one `madvise` call covers when zapping a dropped
/// segment: about a millisecond of kernel work.
const ZAP_CHUNK: usize = 1 << 20;

/// The most bytes of a segment one step of [`paced`] work covers; the
/// least is a page.
const PACED_CHUNK: usize = 256 << 10;

/// The longest one step of [`paced`] work should take. The kernel of the
/// machines measured runs without preemption inside system calls
/// (`PREEMPT_NONE`): a request worker on the same CPU waits out whatever
/// part of a step is kernel work, and one 256 KiB prefault step of a fresh
/// ext4 file there took 1.5 ms (a 7.8 ms latency stall in the load test's
/// kernel trace, the worker preempted in `writev` while the upkeep thread
/// ran `faultin_page_range`).
const PACED_STEP: std::time::Duration = std::time::Duration::from_micros(100);

/// Runs `step(offset, len)` over `[0, total)` in steps of at most
/// [`PACED_CHUNK`], sized as it goes to take at most about [`PACED_STEP`] each
/// ([`next_chunk`]), sleeping after each step [`PACED_REST`] times as long
/// as it took (at least 50 µs), until a step fails. Offsets stay multiples
/// of a page.
///
/// For the log's background work on a CPU the request workers share: a
/// thread that yields stays runnable, and the kernel may well pick it
/// again; one that sleeps leaves the CPU to whatever is waiting, so no
/// worker waits longer than one step, and this work takes at most a fifth
/// of the CPU while it lasts. At half (sleeping as long as each step took)
/// a worker serving redirects at 70 % of its CPU fell behind while a
/// segment was let go, 9 ms of latency in the load test.
fn paced(total: usize, mut step: impl FnMut(usize, usize) -> bool) {
    let mut chunk = PACED_CHUNK;
    let mut off = 0;
    while off < total {
        let len = chunk.min(total - off);
        let started = std::time::Instant::now();
        if !step(off, len) {
            return;
        }
        let took = started.elapsed();
        chunk = next_chunk(chunk, took);
        off += len;
        std::thread::sleep((took * PACED_REST).max(std::time::Duration::from_micros(50)));
    }
}

/// The next step's size after a step of `chunk` bytes took `took`: half
/// when it ran over [`PACED_STEP`], double when it took under half of it,
/// within a page and [`PACED_CHUNK`].
///
/// Growing back soon matters too: the spare segment's prefault should
/// finish before the appends reach it, and each step pays a sleep and a
/// wake-up whatever its size. A 250 µs target left longer waits behind
/// each step: a worse p99 in two of three fixed-rate rounds of the load
/// test.
fn next_chunk(chunk: usize, took: std::time::Duration) -> usize {
    if took > PACED_STEP {
        (chunk / 2).max(PAGE)
    } else if took < PACED_STEP / 2 {
        (chunk * 2).min(PACED_CHUNK)
    } else {
        chunk
    }
}

/// The page size [`paced`] steps keep to (the smallest on x86-64 and
/// arm64; a larger page only makes the kernel round a step's range).
const PAGE: usize = 4096;

/// How many times as long as a step of [`paced`] work its pause lasts.
const PACED_REST: u32 = 4;

/// One segment file, mapped.
pub(super) struct Segment {
    pub(super) index: u64,
    pub(super) path: PathBuf,
    /// The shared file mapping records are written into. Raw, because many
    /// threads write disjoint parts of it at once, which a `&mut [u8]` (or
    /// even a `&[u8]` over the whole of it) would forbid. It is unmapped only
    /// when the last `Arc<Segment>` goes, so a pointer derived from it is
    /// valid for as long as its user holds the segment. Segment files are
    /// never truncated while mapped (the `lock` file keeps other logs out of
    /// the directory), so every byte of the mapping stays accessible.
    map: MmapRaw,
    /// Usable bytes: the mapping's length rounded down to `ALIGN`.
    pub(super) cap: u64,
    /// Offset of the next reservation; past `cap` once full (a reservation
    /// that did not fit still moved it), with `SEALED` set once rotated away.
    tail: AtomicU64,
    /// Appends that have loaded this segment and not yet committed or given
    /// up. Zero on a sealed segment means no write into it can still happen.
    inflight: AtomicU64,
    /// Bytes below which everything is known to be on disk.
    synced: AtomicU64,
    /// Found at open, which counted its damage; reading must not count again.
    pub(super) recovered: bool,
}

/// Bytes of a segment reserved for one record, by one appender alone. It
/// counts in the segment's `inflight` until committed or dropped: a reader
/// does not pass a sealed segment while one is alive.
pub(super) struct Reservation<'s, 'p> {
    seg: &'s Segment,
    /// Start of the reserved bytes, 8-aligned; `frame.size()` of them fit
    /// inside `cap`.
    at: u64,
    frame: &'p Frame<'p>,
}

/// A reader's look at a segment, taken before it reads any byte of it.
pub(super) struct View<'s> {
    seg: &'s Segment,
    /// The segment was settled when the view was taken: nothing writes to
    /// it again, so every byte may be read.
    settled: bool,
}

impl Segment {
    /// Creates, sizes and maps a new, zero-filled segment file.
    pub(super) fn create(dir: &Path, index: u64, bytes: u64) -> io::Result<Segment> {
        let path = segment_path(dir, index);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let mapped = allocate(&file, bytes).and_then(|()| map(&file));
        match mapped {
            Ok(map) => Ok(Segment::new(index, path, map, false)),
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Maps a segment left by an earlier run, sealed: it is read, never
    /// written. `None` when the file is too small to hold a record.
    pub(super) fn recover(index: u64, path: PathBuf) -> io::Result<Option<Segment>> {
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        if file.metadata()?.len() < HEADER {
            return Ok(None);
        }
        let seg = Segment::new(index, path, map(&file)?, true);
        seg.tail.store(SEALED | seg.cap, Ordering::Relaxed);
        Ok(Some(seg))
    }

    fn new(index: u64, path: PathBuf, map: MmapRaw, recovered: bool) -> Segment {
        let cap = map.len() as u64 / ALIGN * ALIGN;
        Segment {
            index,
            path,
            map,
            cap,
            tail: AtomicU64::new(0),
            inflight: AtomicU64::new(0),
            // A recovered segment starts unsynced: the run that wrote it may
            // have died before its msync, leaving dirty pages in the cache.
            synced: AtomicU64::new(0),
            recovered,
        }
    }

    /// Bytes of the file on disk.
    pub(super) fn file_bytes(&self) -> u64 {
        self.map.len() as u64
    }

    /// Reserves room for `frame`, or `None` when the segment is sealed or
    /// too full for it (the appender must move on to the next segment).
    #[inline]
    pub(super) fn reserve<'s, 'p>(&'s self, frame: &'p Frame<'p>) -> Option<Reservation<'s, 'p>> {
        let size = frame.size();
        // SeqCst on both, and on the seal: an appender whose reservation
        // precedes the seal is then visible in `inflight` to a reader that
        // has seen the seal. See `Segment::settled`.
        self.inflight.fetch_add(1, Ordering::SeqCst);
        let at = self.tail.fetch_add(size, Ordering::SeqCst);
        if at & SEALED == 0 && at + size <= self.cap {
            Some(Reservation {
                seg: self,
                at,
                frame,
            })
        } else {
            self.inflight.fetch_sub(1, Ordering::Release);
            None
        }
    }

    /// Makes every later reservation fail; for rotation, once the next
    /// segment is listed and current.
    pub(super) fn seal(&self) {
        self.tail.fetch_or(SEALED, Ordering::SeqCst);
    }

    /// Sealed: rotated away, or found at open.
    #[cfg(test)]
    pub(super) fn is_sealed(&self) -> bool {
        self.tail.load(Ordering::SeqCst) & SEALED != 0
    }

    /// A reader's look at the segment, to take before reading any byte of
    /// it (see [`View`]).
    pub(super) fn view(&self) -> View<'_> {
        View {
            seg: self,
            settled: self.settled(),
        }
    }

    /// Sealed with no append in flight: from here on nothing writes to it.
    ///
    /// An append raises `inflight` before reserving, and the seal makes every
    /// later reservation fail. With all three SeqCst, an append whose
    /// reservation came before the seal raised `inflight` before the seal
    /// too, so a zero read after seeing the seal means it has committed.
    fn settled(&self) -> bool {
        self.tail.load(Ordering::SeqCst) & SEALED != 0 && self.inflight.load(Ordering::SeqCst) == 0
    }

    /// Bytes reserved so far (every one of them inside `cap`).
    fn reserved(&self) -> u64 {
        (self.tail.load(Ordering::SeqCst) & !SEALED).min(self.cap)
    }

    /// Nothing left for `flush` to do, ever.
    pub(super) fn clean(&self) -> bool {
        self.tail.load(Ordering::SeqCst) & SEALED != 0
            && self.synced.load(Ordering::Acquire) >= self.reserved()
    }

    /// Msyncs the bytes reserved since the last flush that covered them all.
    pub(super) fn flush(&self) -> io::Result<()> {
        let end = self.reserved();
        // Loaded after the tail: zero means every reservation below `end`
        // has been written, so `synced` may move up to it after the msync.
        let quiet = self.inflight.load(Ordering::SeqCst) == 0;
        let from = self.synced.load(Ordering::Acquire);
        if end > from {
            // Paced: writing back a second of clicks (megabytes) in one
            // msync took 1.5 to 2.5 ms of CPU in one step, a request
            // worker on the same CPU waiting (kernel traces of the load
            // test).
            let mut failed = None;
            paced((end - from) as usize, |off, len| {
                match self.map.flush_range(from as usize + off, len) {
                    Ok(()) => true,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
        }
        if quiet {
            self.synced.fetch_max(end, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Faults every page in, so appends into this segment (the spare) do
    /// not stop for page faults. Best effort: an old kernel without
    /// MADV_POPULATE_WRITE faults pages in on first write. An append may
    /// already be writing into the segment: faulting a page in never
    /// changes its bytes.
    ///
    /// [`paced`]: kernel traces of the load test caught a 16 MiB prefault
    /// holding the request CPU for 4 to 7 ms in one go.
    ///
    /// Readahead is off meanwhile (`MADV_RANDOM`): the first fault of a
    /// fresh file otherwise reads megabytes ahead (zeroing pages of the
    /// sparse file), 3 to 4 ms in one step, which pacing cannot split.
    pub(super) fn prefault(&self) {
        let _ = self.map.advise(memmap2::Advice::Random);
        paced(self.map.len(), |off, len| {
            self.map
                .advise_range(memmap2::Advice::PopulateWrite, off, len)
                .is_ok()
        });
        let _ = self.map.advise(memmap2::Advice::Normal);
    }

    /// Lets go of a segment about to be deleted, [`paced`]: its page tables
    /// (`MADV_DONTNEED`), then its pages in the page cache
    /// (`POSIX_FADV_DONTNEED`, clean after the msync that preceded its
    /// acknowledgement). Otherwise the unmap and the deletion that follow
    /// drop 16 MiB of pages in one go, 3 ms in which a request worker on
    /// the same CPU waits (seen in kernel traces of the load test). Nothing
    /// is lost either way: a shared file mapping re-reads what it forgot.
    pub(super) fn retire(&self) {
        let base = self.map.as_mut_ptr();
        paced(self.map.len(), |off, len| {
            // SAFETY: the range lies inside the mapping; on a shared file
            // mapping MADV_DONTNEED only drops page tables, never bytes.
            unsafe { libc::madvise(base.add(off).cast(), len, libc::MADV_DONTNEED) == 0 }
        });
        if let Ok(file) = fs::File::open(&self.path) {
            use std::os::fd::AsRawFd;
            paced(self.map.len(), |off, len| {
                // SAFETY: an advisory call on an open descriptor.
                unsafe {
                    libc::posix_fadvise(
                        file.as_raw_fd(),
                        off as libc::off_t,
                        len as libc::off_t,
                        libc::POSIX_FADV_DONTNEED,
                    ) == 0
                }
            });
        }
    }

    /// The mapped bytes `[off, off + len)`.
    ///
    /// # Safety
    ///
    /// The range lies within `cap`, and nothing writes to it while the slice
    /// lives: it is a committed record, or the segment is settled.
    unsafe fn bytes(&self, off: u64, len: u64) -> &[u8] {
        debug_assert!(off + len <= self.cap);
        // SAFETY: in bounds and not written concurrently, by the caller's
        // promise; the mapping lives as long as `&self`.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(off as usize), len as usize) }
    }
}

impl Drop for Segment {
    /// Unmapping megabytes of written pages takes milliseconds, all of them
    /// with the process's mmap lock held for writing, and every page fault
    /// of every thread waits for it meanwhile (an append touching a fresh
    /// log page is one: a redirect stalls). `MADV_DONTNEED`, a megabyte at a
    /// time, drops the same pages under the lock held for reading only, so
    /// the unmap that follows has nothing left to do. The file keeps every
    /// byte: on a shared file mapping this only forgets the page tables.
    fn drop(&mut self) {
        let len = self.map.len();
        let base = self.map.as_mut_ptr();
        for off in (0..len).step_by(ZAP_CHUNK) {
            // SAFETY: the last `Arc<Segment>` is going, so nothing reads or
            // writes the mapping any more; the range lies inside it.
            unsafe {
                libc::madvise(
                    base.add(off).cast(),
                    ZAP_CHUNK.min(len - off),
                    libc::MADV_DONTNEED,
                );
            }
        }
    }
}

impl Reservation<'_, '_> {
    /// Writes the record, magic last, which commits it; the append is then
    /// no longer in flight.
    #[inline]
    pub(super) fn commit(self) {
        let Frame { len, crc, payload } = self.frame;
        // SAFETY: `reserve` handed `[at, at + frame.size())` to this
        // reservation alone, inside `cap`, and `frame.size()` covers the
        // header and the payload; the borrow of the segment keeps the
        // mapping alive. Until the magic is set, readers touch only the
        // magic word, atomically. The mapping starts on a page boundary and
        // `at` is 8-aligned, so the magic word is 4-aligned as `AtomicU32`
        // needs.
        unsafe {
            let p = self.seg.map.as_mut_ptr().add(self.at as usize);
            ptr::copy_nonoverlapping(len.as_ptr(), p.add(LEN_AT), 4);
            ptr::copy_nonoverlapping(crc.as_ptr(), p.add(CRC_AT), 4);
            ptr::copy_nonoverlapping(payload.as_ptr(), p.add(HEADER as usize), payload.len());
            // Release: a reader that loads this magic sees every byte above.
            AtomicU32::from_ptr(p.cast::<u32>()).store(MAGIC.to_le(), Ordering::Release);
        }
        // Dropping `self` ends the append.
    }
}

impl Drop for Reservation<'_, '_> {
    fn drop(&mut self) {
        // Release: a reader that sees `inflight` fall sees the record.
        self.seg.inflight.fetch_sub(1, Ordering::Release);
    }
}

impl<'s> View<'s> {
    /// The segment was settled when the view was taken.
    pub(super) fn settled(&self) -> bool {
        self.settled
    }

    /// Usable bytes of the segment.
    pub(super) fn cap(&self) -> u64 {
        self.seg.cap
    }

    /// The magic word at `off`, which must be 8-aligned with a whole header
    /// inside `cap`.
    pub(super) fn magic(&self, off: u64) -> u32 {
        assert!(
            off.is_multiple_of(ALIGN) && off + HEADER <= self.seg.cap,
            "magic word at {off} outside a segment of {}",
            self.seg.cap
        );
        // SAFETY: in bounds of the mapping (checked above), which lives as
        // long as the borrowed segment; 4-aligned (page-aligned base,
        // 8-aligned offset); magic words are only ever written atomically,
        // so this load races with nothing.
        let word =
            unsafe { AtomicU32::from_ptr(self.seg.map.as_mut_ptr().add(off as usize).cast()) };
        // Acquire: pairs with the writer's release, making its record visible.
        u32::from_le(word.load(Ordering::Acquire))
    }

    /// The record at `off` (8-aligned, a whole header inside `cap`) as its
    /// header describes it: the header and the payload its length word
    /// claims. `None` when that length runs past `cap`, or when the record
    /// may still be being written: its magic (loaded here) is not committed
    /// and the view is not settled.
    pub(super) fn record(&self, off: u64) -> Option<(&'s [u8], &'s [u8])> {
        if self.magic(off) != MAGIC && !self.settled {
            return None;
        }
        // SAFETY: a whole header lies at `off` inside `cap` (`magic`
        // checked); its magic was loaded committed with acquire, so the
        // record is never written again, or the segment is settled.
        let header = unsafe { self.seg.bytes(off, HEADER) };
        let len = u64::from(le_u32(header, LEN_AT));
        if len > self.seg.cap - off - HEADER {
            return None;
        }
        // SAFETY: inside `cap` by the test above. Not written any more: the
        // segment is settled, or the record is committed, and a committed
        // record's length word was written by the appender that reserved
        // the header and those `len` bytes (an unsettled segment was
        // written by this process alone).
        let payload = unsafe { self.seg.bytes(off + HEADER, len) };
        Some((header, payload))
    }

    /// The bytes from `off` to `cap` when the view is settled (`None`
    /// otherwise: some of them may still be being written).
    pub(super) fn rest(&self, off: u64) -> Option<&'s [u8]> {
        if !self.settled || off > self.seg.cap {
            return None;
        }
        // SAFETY: inside `cap`; the segment is settled.
        Some(unsafe { self.seg.bytes(off, self.seg.cap - off) })
    }
}

/// Sizes a new segment file and gives it its disk blocks now. `set_len`
/// alone leaves a sparse file, whose blocks the filesystem would allocate
/// when a page is first written through the mapping: on the request path,
/// and on a full disk as a SIGBUS that kills the process instead of an error.
fn allocate(file: &File, bytes: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on a descriptor that `file` keeps open; it
        // touches no memory of ours.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, bytes as libc::off_t) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        // A filesystem without fallocate gets a sparse file, as elsewhere.
        if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(e);
        }
    }
    file.set_len(bytes)
}

/// Maps a whole segment file shared, read-write: stores land in the page
/// cache, so they outlive the process.
fn map(file: &File) -> io::Result<MmapRaw> {
    MmapRaw::map_raw(file)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config, open, SEG};
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn segment_blocks_are_allocated_up_front() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let (_log, _reader) = open(dir.path(), config(4));
        let meta = fs::metadata(segment_path(dir.path(), 0)).unwrap();
        assert_eq!(meta.len(), SEG);
        assert!(meta.blocks() * 512 >= SEG, "{} blocks", meta.blocks());
    }

    #[test]
    fn paced_steps_shrink_when_slow_and_grow_when_quick() {
        use std::time::Duration;
        let us = Duration::from_micros;
        // (chunk, took) → next chunk
        let cases = [
            (PACED_CHUNK, us(1500), PACED_CHUNK / 2),
            (PACED_CHUNK, us(80), PACED_CHUNK),
            (PACED_CHUNK, us(5), PACED_CHUNK),
            (64 << 10, us(101), 32 << 10),
            (64 << 10, us(100), 64 << 10),
            (64 << 10, us(50), 64 << 10),
            (64 << 10, us(49), 128 << 10),
            (PAGE, us(900), PAGE),
            (PAGE * 2, us(900), PAGE),
        ];
        for (chunk, took, want) in cases {
            assert_eq!(next_chunk(chunk, took), want, "{chunk} bytes in {took:?}");
        }
    }

    #[test]
    fn paced_covers_every_byte_once_in_page_aligned_steps() {
        let total = PACED_CHUNK * 3 + 3 * PAGE + 17;
        let mut covered = 0;
        let mut calls = 0;
        paced(total, |off, len| {
            assert_eq!(off, covered, "steps follow each other");
            assert_eq!(off % PAGE, 0, "offset {off} is page aligned");
            covered += len;
            calls += 1;
            true
        });
        assert_eq!(covered, total);
        assert!(calls >= 4, "{calls} steps");
        let mut seen = 0;
        paced(total, |_, _| {
            seen += 1;
            seen < 2
        });
        assert_eq!(seen, 2, "a failed step ends the work");
    }
}
