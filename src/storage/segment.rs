//! One segment: the log file `<base-seq>.log` and its two sparse indexes. Reads batches at a
//! position, scans for recovery, seals.
//!
//! ```text
//!  position 0                                   readable_len        file end
//!  │ batch │ batch │ batch │ ... │ batch │ batch │ (being written)    │
//!  ▲ index entry every index_interval_bytes, at a batch boundary
//! ```
//!
//! Invariant: bytes below `readable_len` are whole, written batches; a reader never reads past
//! it, so it never sees a half-written frame. Which of those records may be *served* is decided
//! by the log's durable mark, passed in as `end`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;

use super::error::StorageError;
use super::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use super::mapped::SealedMap;
use super::read_buffer::ReadBufferPool;
use super::record::{self, BatchHeader, FrameError, StoredRecord, HEADER_LEN};
use super::sequence::SequenceNumber;
use super::time::Timestamp;
use crate::fsio::{Io, IoFile};

/// Digits of a segment file name: the 20 of `u64::MAX`.
pub const NAME_DIGITS: usize = 20;
/// Smallest read issued when scanning forward.
const MIN_READ_CHUNK: usize = 64 * 1024;
/// Largest read issued at once when scanning forward.
const MAX_READ_CHUNK: usize = 8 * 1024 * 1024;

/// Stored frames read for a reader that decodes them itself (see
/// [`Segment::read_frames_into`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameRead {
    /// Whole frames, in order, each slice holding frames back to back. The first frame may
    /// begin before the reader's position and the last may end after `next`.
    pub frames: Vec<Bytes>,
    /// Records of the reader's range the frames cover.
    pub records: usize,
    /// Bytes of the frames.
    pub bytes: usize,
    /// One past the last record covered: where the next read starts.
    pub next: SequenceNumber,
    /// Arrival time of the last frame's newest record.
    pub last_timestamp_ms: Timestamp,
}

/// A forward walk over a segment's frames from the one holding a sequence number: reads the
/// file a chunk at a time, checks each header, and steps over a damaged header that lies
/// wholly before the wanted records. The two readers of a segment share it.
struct FrameWalk<'a> {
    segment: &'a Segment,
    /// Bytes of the segment that may be read.
    readable: u64,
    /// Where the next frame starts in the segment.
    pos: u64,
    /// The chunk read last, and where it starts in the segment.
    buf: Bytes,
    buf_pos: u64,
    /// About how many bytes the records wanted take, from the index entry on: a small read
    /// (one queue message) then reads about its frames, not a chunk sized for the whole
    /// byte budget.
    hint: usize,
}

impl<'a> FrameWalk<'a> {
    fn new(segment: &'a Segment, from: SequenceNumber, max_records: usize) -> FrameWalk<'a> {
        let readable = segment.readable_len.load(Ordering::Acquire);
        let relative = from.saturating_distance_from(segment.base);
        let (pos, indexed) = match segment.index.read() {
            Ok(idx) => idx.lookup(relative).map_or((0, 0), |e| {
                (u64::from(e.position), u64::from(e.relative_sequence))
            }),
            Err(_) => (0, 0),
        };
        let stored = segment
            .next_sequence
            .load(Ordering::Acquire)
            .saturating_sub(segment.base.get())
            .max(1);
        let per_record = (readable / stored).max(1) as usize;
        let records_wanted =
            (relative.saturating_sub(indexed) as usize).saturating_add(max_records);
        FrameWalk {
            segment,
            readable,
            pos,
            buf: Bytes::new(),
            buf_pos: pos,
            hint: per_record.saturating_mul(records_wanted),
        }
    }

    /// The header of the next frame and where it starts in `buf`, which holds it whole, or
    /// `None` at the readable end. Frames wholly before `from` are passed over. A read takes
    /// about `budget` bytes ahead when the chunk runs out.
    fn next(
        &mut self,
        from: SequenceNumber,
        budget: usize,
    ) -> Result<Option<(BatchHeader, usize)>, StorageError> {
        let seg = self.segment;
        while self.pos < self.readable {
            let off = (self.pos - self.buf_pos) as usize;
            let decoded = BatchHeader::decode(self.buf.get(off..).unwrap_or(&[]));
            match decoded {
                Ok(h) if off + h.frame_len() <= self.buf.len() => {
                    if h.next_sequence() <= from {
                        self.step(&h);
                        continue;
                    }
                    return Ok(Some((h, off)));
                }
                Ok(_) | Err(FrameError::Torn { .. }) => {
                    let need = match decoded {
                        Ok(h) => h.frame_len(),
                        Err(_) => HEADER_LEN,
                    };
                    let left = self.readable - self.pos;
                    let torn = |available| FrameError::Torn {
                        needed: need,
                        available,
                    };
                    if need as u64 > left {
                        return Err(seg.corrupt(self.pos, torn(left as usize)));
                    }
                    let want = budget
                        .saturating_add(HEADER_LEN)
                        .min(self.hint)
                        .clamp(MIN_READ_CHUNK, MAX_READ_CHUNK)
                        .max(need)
                        .min(left as usize);
                    self.buf = seg.read_chunk(self.pos, want)?;
                    self.buf_pos = self.pos;
                    if self.buf.len() < need {
                        return Err(seg.corrupt(self.pos, torn(self.buf.len())));
                    }
                }
                Err(e) => {
                    // The header itself is damaged, so its length cannot be trusted: find the
                    // next intact header and tell whether `from` fell into the damaged span.
                    match seg.resync(self.pos + 1, self.readable)? {
                        Some((next_pos, next)) if next.base_sequence <= from => {
                            self.pos = next_pos;
                            self.buf = Bytes::new();
                            self.buf_pos = next_pos;
                        }
                        _ => return Err(seg.corrupt(self.pos, e)),
                    }
                }
            }
        }
        Ok(None)
    }

    /// Moves past the frame `next` returned.
    fn step(&mut self, header: &BatchHeader) {
        self.pos += header.frame_len() as u64;
    }
}

/// File name of the segment starting at `base` with extension `ext`.
pub fn file_name(base: SequenceNumber, ext: &str) -> String {
    format!("{:0width$}.{ext}", base.get(), width = NAME_DIGITS)
}

/// The base sequence of a segment log file name, if it is one.
pub fn parse_log_name(name: &str) -> Option<SequenceNumber> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != NAME_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().map(SequenceNumber::new)
}

/// What a scan of a segment's bytes found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanEnd {
    /// Position after the last whole, valid batch.
    pub valid_len: u64,
    /// One past the last sequence of that batch (the segment base when none).
    pub next_sequence: SequenceNumber,
    /// Arrival time of the last batch (the epoch when none).
    pub max_timestamp_ms: Timestamp,
    /// Why the scan stopped before the end of the file, if it did.
    pub stopped_by: Option<FrameError>,
}

/// One segment of a shard's log.
#[derive(Debug)]
pub struct Segment {
    base: SequenceNumber,
    path: PathBuf,
    file: Arc<dyn IoFile>,
    index: RwLock<OffsetIndex>,
    time_index: RwLock<TimeIndex>,
    readable_len: AtomicU64,
    next_sequence: AtomicU64,
    max_timestamp_ms: AtomicU64,
    sealed: AtomicBool,
    /// The file mapped read-only, made on the first read after sealing (`None` inside when
    /// it could not be made: reads then copy the bytes out).
    mapped: OnceLock<Option<Arc<SealedMap>>>,
}

impl Segment {
    /// Creates a new, empty segment starting at `base`; the caller syncs the directory.
    pub fn create(
        io: &dyn Io,
        dir: &Path,
        base: SequenceNumber,
        index_capacity: usize,
    ) -> Result<Segment, StorageError> {
        let path = dir.join(file_name(base, "log"));
        let file = io
            .open(&path, true)
            .map_err(|e| StorageError::io("create segment", &path, e))?;
        let index_path = dir.join(file_name(base, "index"));
        let time_path = dir.join(file_name(base, "timeindex"));
        // A new segment's indexes start empty even if stale files of that name exist: a stale
        // file that cannot be removed would lend the new segment its entries, so that fails.
        remove_if_present(io, &index_path)?;
        remove_if_present(io, &time_path)?;
        let index = OffsetIndex::open_active(io, &index_path, index_capacity)
            .map_err(|e| StorageError::io("create index", &index_path, e))?;
        let time_index = TimeIndex::open_active(io, &time_path, index_capacity)
            .map_err(|e| StorageError::io("create time index", &time_path, e))?;
        Ok(Segment {
            base,
            path,
            file,
            index: RwLock::new(index),
            time_index: RwLock::new(time_index),
            readable_len: AtomicU64::new(0),
            next_sequence: AtomicU64::new(base.get()),
            max_timestamp_ms: AtomicU64::new(0),
            sealed: AtomicBool::new(false),
            mapped: OnceLock::new(),
        })
    }

    /// Opens an existing segment and recovers it: checks the indexes against the log, rebuilds
    /// them where they disagree, and for the last (active) segment checks every batch and
    /// truncates at the first torn or corrupt one. Sealed segments are never truncated: damage
    /// there is reported when read.
    pub fn open(
        io: &dyn Io,
        dir: &Path,
        base: SequenceNumber,
        active: bool,
        index_capacity: usize,
        index_interval: u64,
    ) -> Result<(Segment, Option<u64>), StorageError> {
        let path = dir.join(file_name(base, "log"));
        let file = io
            .open(&path, false)
            .map_err(|e| StorageError::io("open segment", &path, e))?;
        let file_len = file
            .len()
            .map_err(|e| StorageError::io("stat segment", &path, e))?;
        let index_path = dir.join(file_name(base, "index"));
        let time_path = dir.join(file_name(base, "timeindex"));
        let index = OffsetIndex::open_active(io, &index_path, index_capacity)
            .map_err(|e| StorageError::io("open index", &index_path, e))?;
        let time_index = TimeIndex::open_active(io, &time_path, index_capacity)
            .map_err(|e| StorageError::io("open time index", &time_path, e))?;
        let seg = Segment {
            base,
            path,
            file,
            index: RwLock::new(index),
            time_index: RwLock::new(time_index),
            readable_len: AtomicU64::new(file_len),
            next_sequence: AtomicU64::new(base.get()),
            max_timestamp_ms: AtomicU64::new(0),
            sealed: AtomicBool::new(false),
            mapped: OnceLock::new(),
        };
        let truncated = seg.recover(active, file_len, index_interval)?;
        if !active {
            seg.seal_indexes();
        }
        Ok((seg, truncated))
    }

    /// Keeps the index entries that point at real batches (walking back from the last), scans
    /// forward re-adding the missing ones — from the older of the last trusted offset and time
    /// entries in a sealed segment, from the start in the active one — and for the active
    /// segment cuts everything from the first bad batch on. Returns the bytes cut, if any.
    fn recover(
        &self,
        active: bool,
        file_len: u64,
        index_interval: u64,
    ) -> Result<Option<u64>, StorageError> {
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        let mut time_index = self.time_index.write().unwrap_or_else(|p| p.into_inner());
        // Walk back from the last entry to one that points at a whole batch with the sequence
        // it claims: entries past a crash point may reference bytes that never reached disk.
        let mut keep = index.len();
        let mut offset_start = (0u64, self.base);
        while keep > 0 {
            let e = index.get(keep - 1).expect("keep <= len");
            let pos = u64::from(e.position);
            let seq = self.base + u64::from(e.relative_sequence);
            if pos < file_len && self.header_at(pos).is_ok_and(|h| h.base_sequence == seq) {
                offset_start = (pos, seq);
                break;
            }
            keep -= 1;
        }
        index.truncate(keep);
        // Every time entry is written beside an offset entry of the same batch. Walk back to
        // one whose batch, found through that offset entry, has the time the entry claims: a
        // time entry is trusted to say that every record before it is older, so one that lies
        // would make a time seek skip records.
        let mut tkeep = time_index.len();
        let mut time_start = (0u64, self.base);
        while tkeep > 0 {
            let t = time_index.get(tkeep - 1).expect("tkeep <= len");
            let at = index
                .lookup(u64::from(t.relative_sequence))
                .filter(|e| e.relative_sequence == t.relative_sequence)
                .map(|e| u64::from(e.position));
            let seq = self.base + u64::from(t.relative_sequence);
            if let Some(pos) = at.filter(|&pos| {
                self.header_at(pos)
                    .is_ok_and(|h| h.base_sequence == seq && h.first_timestamp_ms == t.timestamp_ms)
            }) {
                time_start = (pos, seq);
                break;
            }
            tkeep -= 1;
        }
        time_index.truncate(tkeep);
        let (mut last_time_rel, mut last_time) = tkeep
            .checked_sub(1)
            .and_then(|i| time_index.get(i))
            .map_or((0, Timestamp::UNIX_EPOCH), |t| {
                (t.relative_sequence, t.timestamp_ms)
            });
        // Scan from the older of the two last trusted entries, so the index that lost more
        // entries is rebuilt too. Below `offset_start` the offset entries are already there:
        // time entries go beside them; past it, both get an entry every `index_interval`.
        // The active segment is scanned whole: its tail was perhaps never synced, and a power
        // loss can keep later pages while losing or garbling earlier ones (and keep index
        // entries, which are never synced, pointing past them), so no batch of it is trusted
        // unchecked. Sealed segments were synced whole before they were sealed.
        let start = if active {
            (0, self.base)
        } else if time_start.0 < offset_start.0 {
            time_start
        } else {
            offset_start
        };
        let mut last_indexed = start.0;
        let end = self.scan(start.0, start.1, file_len, |pos, header| {
            let rel = (header.base_sequence - self.base) as u32;
            let has_entry = if pos <= offset_start.0 {
                rel > 0
                    && index
                        .lookup(u64::from(rel))
                        .is_some_and(|e| e.relative_sequence == rel)
            } else if pos > 0 && pos - last_indexed >= index_interval {
                index.push(OffsetEntry {
                    relative_sequence: rel,
                    position: pos as u32,
                })
            } else {
                false
            };
            if !has_entry {
                return;
            }
            last_indexed = pos;
            if rel > last_time_rel && header.first_timestamp_ms >= last_time {
                let pushed = time_index.push(TimeEntry {
                    timestamp_ms: header.first_timestamp_ms,
                    relative_sequence: rel,
                });
                if pushed {
                    last_time_rel = rel;
                    last_time = header.first_timestamp_ms;
                }
            }
        })?;
        if active && end.valid_len < file_len {
            // The tail is cut below: entries that point into it go too.
            let mut keep = index.len();
            while keep > 0
                && index
                    .get(keep - 1)
                    .is_some_and(|e| u64::from(e.position) >= end.valid_len)
            {
                keep -= 1;
            }
            index.truncate(keep);
            let next_rel = end.next_sequence - self.base;
            let mut tkeep = time_index.len();
            while tkeep > 0
                && time_index
                    .get(tkeep - 1)
                    .is_some_and(|t| u64::from(t.relative_sequence) >= next_rel)
            {
                tkeep -= 1;
            }
            time_index.truncate(tkeep);
        }
        self.next_sequence
            .store(end.next_sequence.get(), Ordering::Release);
        let max_ts = if end.max_timestamp_ms > Timestamp::UNIX_EPOCH {
            end.max_timestamp_ms
        } else {
            last_time
        };
        self.max_timestamp_ms
            .store(max_ts.as_millis(), Ordering::Release);
        if end.valid_len == file_len {
            return Ok(None);
        }
        if !active {
            tracing::error!(
                segment = %self.path.display(),
                position = end.valid_len,
                reason = ?end.stopped_by,
                "sealed segment is damaged after this position; the batches there will be reported as corrupt"
            );
            return Ok(None);
        }
        let cut = file_len - end.valid_len;
        self.file
            .truncate(end.valid_len)
            .and_then(|()| self.file.sync())
            .map_err(|e| StorageError::io("truncate torn tail of", &self.path, e))?;
        self.readable_len.store(end.valid_len, Ordering::Release);
        tracing::warn!(
            segment = %self.path.display(),
            truncated_bytes = cut,
            valid_len = end.valid_len,
            reason = ?end.stopped_by,
            "cut a torn or corrupt tail"
        );
        Ok(Some(cut))
    }

    /// Reads batch headers forward from `pos` (where the batch starting at `expected` is) to
    /// `limit`, checking each payload's CRC, calling `on_batch` for each whole valid batch.
    fn scan(
        &self,
        mut pos: u64,
        mut expected: SequenceNumber,
        limit: u64,
        mut on_batch: impl FnMut(u64, &BatchHeader),
    ) -> Result<ScanEnd, StorageError> {
        let mut max_ts = Timestamp::UNIX_EPOCH;
        let mut buf = Bytes::new();
        let mut buf_pos = pos;
        let stopped_by = loop {
            if pos >= limit {
                break None;
            }
            let off = (pos - buf_pos) as usize;
            let header = match BatchHeader::decode(buf.get(off..).unwrap_or(&[])) {
                Ok(h) if (off + h.frame_len()) <= buf.len() => h,
                Err(FrameError::Torn { .. }) | Ok(_) => {
                    let want = (limit - pos).min(MAX_READ_CHUNK as u64) as usize;
                    let need = match BatchHeader::decode(buf.get(off..).unwrap_or(&[])) {
                        Ok(h) => h.frame_len(),
                        Err(_) => HEADER_LEN,
                    };
                    if need as u64 > limit - pos {
                        break Some(FrameError::Torn {
                            needed: need,
                            available: (limit - pos) as usize,
                        });
                    }
                    buf = self.read_exact(pos, want.max(need))?;
                    buf_pos = pos;
                    if buf.len() < need {
                        break Some(FrameError::Torn {
                            needed: need,
                            available: buf.len(),
                        });
                    }
                    continue;
                }
                Err(e) => break Some(e),
            };
            if header.base_sequence != expected {
                break Some(FrameError::Malformed {
                    count: header.record_count,
                    reason: "batch does not continue the sequence",
                });
            }
            let payload = &buf[off + HEADER_LEN..off + header.frame_len()];
            if let Err(e) = record::verify_payload(&header, payload) {
                break Some(e);
            }
            on_batch(pos, &header);
            max_ts = max_ts.max(header.last_timestamp_ms);
            expected = header.next_sequence();
            pos += header.frame_len() as u64;
        };
        Ok(ScanEnd {
            valid_len: pos,
            next_sequence: expected,
            max_timestamp_ms: max_ts,
            stopped_by,
        })
    }

    fn header_at(&self, pos: u64) -> Result<BatchHeader, FrameError> {
        let mut raw = [0u8; HEADER_LEN];
        match self.file.read_at(&mut raw, pos) {
            Ok(n) => BatchHeader::decode(&raw[..n]),
            Err(_) => Err(FrameError::Torn {
                needed: HEADER_LEN,
                available: 0,
            }),
        }
    }

    /// Reads `len` bytes at `pos` (fewer at the end of the file) into a buffer of the shared
    /// pool: no fresh zeroed allocation per read.
    fn read_exact(&self, pos: u64, len: usize) -> Result<Bytes, StorageError> {
        let mut buf = ReadBufferPool::shared().take(len);
        let dst = buf.as_mut_slice();
        let mut filled = 0;
        while filled < len {
            let n = self
                .file
                .read_at(&mut dst[filled..], pos + filled as u64)
                .map_err(|e| StorageError::io("read segment", &self.path, e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(buf.freeze(filled))
    }

    /// Bytes `[pos, pos + len)` of the segment (fewer at its end): a slice of the mapping of
    /// a sealed segment, read into a pooled buffer otherwise.
    fn read_chunk(&self, pos: u64, len: usize) -> Result<Bytes, StorageError> {
        if let (Some(map), Ok(start)) = (self.sealed_map(), usize::try_from(pos)) {
            let end = start.saturating_add(len).min(map.len());
            if let Some(bytes) = map.slice(start..end.max(start)) {
                return Ok(bytes);
            }
        }
        self.read_exact(pos, len)
    }

    /// The mapping of the sealed segment's whole batches, made on first use.
    fn sealed_map(&self) -> Option<&Arc<SealedMap>> {
        if !self.is_sealed() {
            return None;
        }
        self.mapped
            .get_or_init(|| {
                // Sealed: no batch is added any more, so this length is final.
                let len = self.readable_len.load(Ordering::Acquire);
                match SealedMap::open(&self.path, len) {
                    Ok(map) => map,
                    Err(e) => {
                        tracing::warn!(segment = %self.path.display(), error = %e, "could not map a sealed segment; reading it with copies");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Appends records with sequence numbers in `[from, end)` to `out`, starting from the
    /// batch holding `from`, until `max_records` records or `max_bytes` bytes are in `out`
    /// (always at least one record when there is one). Every batch read is CRC-checked; a
    /// damaged batch holding a wanted record is an error, one before `from` is stepped over.
    pub fn read_into(
        &self,
        from: SequenceNumber,
        end: SequenceNumber,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<StoredRecord>,
        out_bytes: &mut usize,
    ) -> Result<(), StorageError> {
        let mut walk = FrameWalk::new(self, from, max_records);
        while out.len() < max_records && *out_bytes < max_bytes {
            let Some((header, off)) = walk.next(from, max_bytes - *out_bytes)? else {
                break;
            };
            if header.base_sequence >= end {
                break;
            }
            let payload = walk.buf.slice(off + HEADER_LEN..off + header.frame_len());
            record::verify_payload(&header, &payload).map_err(|e| self.corrupt(walk.pos, e))?;
            let want = (max_records - out.len())
                .min(usize::try_from(end - header.base_sequence.max(from)).unwrap_or(usize::MAX));
            let budget = max_bytes - *out_bytes;
            let kept = out.len();
            let decoded = match record::decode_records(&header, &payload, from, want, budget, out) {
                Ok(decoded) => decoded,
                Err(e) => {
                    // No record of a batch that fails to decode is served, not even its first.
                    out.truncate(kept);
                    return Err(self.corrupt(walk.pos, e));
                }
            };
            *out_bytes += decoded.bytes;
            if decoded.budget_reached || header.next_sequence() >= end {
                // Past `end` nothing is wanted: bytes there are not even looked at.
                break;
            }
            walk.step(&header);
        }
        Ok(())
    }

    /// As [`Segment::read_into`], but hands out the stored frames themselves instead of
    /// decoding their records: whole frames, CRC-checked, from the one holding `from`, added
    /// to `out` as slices of what was read (contiguous frames in one slice). Stops after
    /// `max_records` wanted records or once `max_bytes` of frames are in `out` (at least one
    /// frame), or at `end`; `out.next` is then one past the last wanted record covered. The
    /// frames before a damaged one are in `out` when it is reported.
    pub fn read_frames_into(
        &self,
        from: SequenceNumber,
        end: SequenceNumber,
        max_records: usize,
        max_bytes: usize,
        out: &mut FrameRead,
    ) -> Result<(), StorageError> {
        let mut walk = FrameWalk::new(self, from, max_records);
        // The frames gathered and not yet in `out`: a range of one read buffer.
        let mut run: Option<(Bytes, std::ops::Range<usize>)> = None;
        let flush = |run: &mut Option<(Bytes, std::ops::Range<usize>)>, out: &mut FrameRead| {
            if let Some((buf, range)) = run.take() {
                out.frames.push(buf.slice(range));
            }
        };
        while out.records < max_records && out.bytes < max_bytes {
            let next = match walk.next(from, max_bytes - out.bytes) {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(e) => {
                    flush(&mut run, out);
                    return Err(e);
                }
            };
            let (header, off) = next;
            if header.base_sequence >= end {
                break;
            }
            let frame = off..off + header.frame_len();
            if let Err(e) =
                record::verify_payload(&header, &walk.buf[frame.start + HEADER_LEN..frame.end])
            {
                flush(&mut run, out);
                return Err(self.corrupt(walk.pos, e));
            }
            match &mut run {
                Some((buf, range)) if buf.as_ptr() == walk.buf.as_ptr() && range.end == off => {
                    range.end = frame.end;
                }
                _ => {
                    flush(&mut run, out);
                    run = Some((walk.buf.clone(), frame));
                }
            }
            let first = header.base_sequence.max(from).max(out.next);
            let in_frame = header.next_sequence().min(end) - first;
            let taken = in_frame.min((max_records - out.records) as u64);
            out.records += taken as usize;
            out.bytes += header.frame_len();
            out.next = first + taken;
            out.last_timestamp_ms = header.last_timestamp_ms;
            if taken < in_frame {
                break;
            }
            walk.step(&header);
        }
        flush(&mut run, out);
        Ok(())
    }

    /// Finds the first intact header at or after `pos`, below `limit`.
    fn resync(&self, mut pos: u64, limit: u64) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        while pos + HEADER_LEN as u64 <= limit {
            let chunk = self.read_exact(pos, MIN_READ_CHUNK.min((limit - pos) as usize))?;
            for i in 0..chunk.len().saturating_sub(HEADER_LEN - 1) {
                if chunk[i..i + 4] == record::MAGIC {
                    if let Ok(h) = BatchHeader::decode(&chunk[i..]) {
                        return Ok(Some((pos + i as u64, h)));
                    }
                }
            }
            pos += (chunk.len() - (HEADER_LEN - 1)).max(1) as u64;
        }
        Ok(None)
    }

    /// The first sequence at or after `timestamp_ms` in this segment, if any record here is
    /// that recent.
    pub fn seek_time(
        &self,
        timestamp_ms: Timestamp,
        end: SequenceNumber,
    ) -> Result<Option<SequenceNumber>, StorageError> {
        if self.max_timestamp_ms() < timestamp_ms {
            return Ok(None);
        }
        let start = match self.time_index.read() {
            Ok(t) => t
                .last_before(timestamp_ms)
                .map_or(self.base, |e| self.base + u64::from(e.relative_sequence)),
            Err(_) => self.base,
        };
        let readable = self.readable_len.load(Ordering::Acquire);
        let mut pos = match self.index.read() {
            Ok(idx) => idx
                .lookup(start - self.base)
                .map_or(0, |e| u64::from(e.position)),
            Err(_) => 0,
        };
        while pos < readable {
            let header = self.header_at(pos).map_err(|e| self.corrupt(pos, e))?;
            if header.base_sequence >= end {
                return Ok(None);
            }
            if header.last_timestamp_ms >= timestamp_ms && header.next_sequence() > start {
                return Ok(Some(header.base_sequence.max(start)));
            }
            pos += header.frame_len() as u64;
        }
        Ok(None)
    }

    fn corrupt(&self, position: u64, reason: FrameError) -> StorageError {
        StorageError::Corrupt {
            segment: self.path.clone(),
            position,
            reason,
        }
    }

    /// Writes `bytes` at `pos`; the caller then publishes with [`Segment::set_written`].
    pub fn write_at(&self, bytes: &[u8], pos: u64) -> std::io::Result<()> {
        self.file.write_all_at(bytes, pos)
    }

    /// Records that whole batches now end at `len`, the last one ending before `next_sequence`
    /// and arriving at `timestamp_ms`, adding the given index entries.
    pub fn set_written(
        &self,
        len: u64,
        next_sequence: SequenceNumber,
        timestamp_ms: Timestamp,
        entries: &[(u64, SequenceNumber, Timestamp)],
    ) {
        if !entries.is_empty() {
            let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
            let mut time = self.time_index.write().unwrap_or_else(|p| p.into_inner());
            for &(pos, seq, ts) in entries {
                let rel = (seq - self.base) as u32;
                // A time entry always sits beside an offset entry: recovery checks it that way.
                let indexed = index.push(OffsetEntry {
                    relative_sequence: rel,
                    position: pos as u32,
                });
                if indexed {
                    time.push(TimeEntry {
                        timestamp_ms: ts,
                        relative_sequence: rel,
                    });
                }
            }
        }
        self.next_sequence
            .store(next_sequence.get(), Ordering::Release);
        self.max_timestamp_ms
            .fetch_max(timestamp_ms.as_millis(), Ordering::AcqRel);
        self.readable_len.store(len, Ordering::Release);
    }

    /// Cuts the file back to `len` after a failed write.
    pub fn truncate(&self, len: u64) -> std::io::Result<()> {
        self.file.truncate(len)
    }

    /// Makes the segment's bytes durable.
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync()
    }

    /// Marks the segment sealed and trims its indexes; called after its last sync.
    pub fn seal(&self) {
        self.sealed.store(true, Ordering::Release);
        self.seal_indexes();
    }

    fn seal_indexes(&self) {
        self.sealed.store(true, Ordering::Release);
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        let mut time = self.time_index.write().unwrap_or_else(|p| p.into_inner());
        // An index that cannot be trimmed is still correct, only larger: it is a hint.
        if let Err(e) = index.seal().and_then(|()| time.seal()) {
            tracing::warn!(segment = %self.path.display(), error = %e, "could not trim index");
        }
    }

    /// Position of the batch the last offset-index entry points at (0 without entries): the
    /// writer of a reopened segment spaces its next entry from there.
    pub fn last_index_position(&self) -> u64 {
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        index
            .len()
            .checked_sub(1)
            .and_then(|i| index.get(i))
            .map_or(0, |e| u64::from(e.position))
    }

    /// First sequence number of the segment.
    pub fn base(&self) -> SequenceNumber {
        self.base
    }

    /// One past the last sequence written to the segment.
    pub fn next_sequence(&self) -> SequenceNumber {
        SequenceNumber::new(self.next_sequence.load(Ordering::Acquire))
    }

    /// Arrival time of the newest batch (the epoch when empty).
    pub fn max_timestamp_ms(&self) -> Timestamp {
        Timestamp::from_millis(self.max_timestamp_ms.load(Ordering::Acquire))
    }

    /// Bytes of whole batches in the file.
    pub fn len(&self) -> u64 {
        self.readable_len.load(Ordering::Acquire)
    }

    /// True when the segment holds no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once sealed.
    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// True once reads of this sealed segment go through its read-only mapping.
    pub fn is_mapped(&self) -> bool {
        matches!(self.mapped.get(), Some(Some(_)))
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the segment's three files (the caller syncs the directory).
    pub fn remove_files(&self, io: &dyn Io, dir: &Path) -> Result<(), StorageError> {
        remove_files(io, dir, self.base)
    }
}

/// Removes the three files of the segment starting at `base` in `dir`, those that exist (the
/// caller syncs the directory).
pub fn remove_files(io: &dyn Io, dir: &Path, base: SequenceNumber) -> Result<(), StorageError> {
    for ext in ["log", "index", "timeindex"] {
        remove_if_present(io, &dir.join(file_name(base, ext)))?;
    }
    Ok(())
}

/// Removes `path`; a file that is not there is already removed.
fn remove_if_present(io: &dyn Io, path: &Path) -> Result<(), StorageError> {
    match io.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("remove", path, e)),
    }
}
