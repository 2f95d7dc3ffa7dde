//! Sparse, memory-mapped indexes of one segment: sequence → file position (`.index`) and
//! arrival time → sequence (`.timeindex`). With `mapped`, one of the two modules of the crate
//! with `unsafe`.
//!
//! Both are tables of fixed-width little-endian entries, one added every
//! `index_interval_bytes` of log written, at a batch boundary:
//!
//! | file         | entry                                         | width |
//! |--------------|-----------------------------------------------|------:|
//! | `.index`     | relative sequence u32, file position u32      |     8 |
//! | `.timeindex` | timestamp ms u64, relative sequence u32       |    12 |
//!
//! The relative sequence of an entry is never 0 (the batch at position 0 needs no entry), so a
//! zero relative sequence marks the end of the entries in a pre-sized file. An active segment's
//! index files are pre-sized to their capacity and mapped read-write; sealing trims them to
//! their entries and maps them read-only. Indexes are hints: they are not synced with the log,
//! and recovery checks them against the log and rebuilds them when they disagree.
//!
//! Both are one [`SparseIndex`], generic over its [`IndexEntry`]: the entry type defines its
//! width, its encoding, the key lookups search, and which entry may follow which.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapMut};

use super::time::Timestamp;
use crate::fsio::Io;

/// Width of a `.index` entry.
pub const OFFSET_ENTRY_LEN: usize = 8;
/// Width of a `.timeindex` entry.
pub const TIME_ENTRY_LEN: usize = 12;

/// An entry of a [`SparseIndex`]: its fixed-width little-endian encoding and its order.
pub trait IndexEntry: Copy + std::fmt::Debug {
    /// Bytes of one entry in the file.
    const LEN: usize;
    /// Writes the entry into `out` (exactly [`IndexEntry::LEN`] bytes).
    fn encode(&self, out: &mut [u8]);
    /// Reads an entry from `raw` (exactly [`IndexEntry::LEN`] bytes).
    fn decode(raw: &[u8]) -> Self;
    /// The key entries ascend by, which [`SparseIndex::floor`] searches.
    fn key(&self) -> u64;
    /// Whether the entry may follow `prev` (`None`: it is the first). The entries of a file end
    /// at the first that may not: zeros (the end marker of a pre-sized file), or damage.
    fn may_follow(&self, prev: Option<&Self>) -> bool;
}

#[derive(Debug)]
enum Mapping {
    /// No bytes mapped (a sealed, empty index: zero-length files cannot be mapped).
    None,
    Writable(MmapMut),
    ReadOnly(Mmap),
}

impl Mapping {
    fn bytes(&self) -> &[u8] {
        match self {
            Mapping::None => &[],
            Mapping::Writable(m) => m,
            Mapping::ReadOnly(m) => m,
        }
    }
}

/// A sparse index of one segment: a table of fixed-width entries of type `E` in a
/// memory-mapped file, ascending by key.
#[derive(Debug)]
pub struct SparseIndex<E: IndexEntry> {
    path: PathBuf,
    file: File,
    map: Mapping,
    entries: usize,
    capacity: usize,
    entry: PhantomData<E>,
}

impl<E: IndexEntry> SparseIndex<E> {
    /// Opens (creating if needed) the index of an active segment, mapped read-write and
    /// pre-sized to `capacity` entries. Existing entries are kept up to the first one that may
    /// not follow the one before it.
    pub fn open_active(io: &dyn Io, path: &Path, capacity: usize) -> io::Result<Self> {
        let file = io.open_mapped(path, true)?;
        let len = file.metadata()?.len() as usize;
        let capacity = capacity.max(len / E::LEN).max(1);
        if len != capacity * E::LEN {
            // A trimmed file (the segment was sealed before a crash) grows back; the new
            // bytes are zeros, which read as the end marker.
            file.set_len((capacity * E::LEN) as u64)?;
        }
        // SAFETY: the file was just sized to `capacity * E::LEN` bytes and is owned by this
        // index: shardlog never shrinks an index file while a mapping of it is alive (`seal`
        // drops the mapping before trimming, and `Drop` unmaps before anything else touches
        // the file). Another process truncating the data directory is outside what any
        // mmap-based store can defend against.
        let map = unsafe { MmapMut::map_mut(&file)? };
        let mut index = SparseIndex {
            path: path.to_owned(),
            file,
            map: Mapping::Writable(map),
            entries: 0,
            capacity,
            entry: PhantomData,
        };
        index.entries = index.count_valid(capacity);
        // Past the valid entries a pre-sized table holds zeros, the end marker. A damaged
        // file may hold anything there; left in place, it would be read as entries once new
        // ones were written up to it.
        if let Mapping::Writable(m) = &mut index.map {
            let tail = &mut m[index.entries * E::LEN..];
            if tail.iter().any(|&b| b != 0) {
                tail.fill(0);
            }
        }
        Ok(index)
    }

    /// Opens the index of a sealed segment read-only: every whole entry up to the first that
    /// may not follow the one before it counts.
    pub fn open_sealed(io: &dyn Io, path: &Path) -> io::Result<Self> {
        let file = io.open_mapped(path, false)?;
        let len = file.metadata()?.len() as usize;
        let map = if len == 0 {
            Mapping::None
        } else {
            // SAFETY: as in `open_active`: this index owns the file and nothing in shardlog
            // changes a sealed index while it is mapped.
            Mapping::ReadOnly(unsafe { Mmap::map(&file)? })
        };
        let mut index = SparseIndex {
            path: path.to_owned(),
            file,
            map,
            entries: 0,
            capacity: len / E::LEN,
            entry: PhantomData,
        };
        index.entries = index.count_valid(len / E::LEN);
        Ok(index)
    }

    fn count_valid(&self, limit: usize) -> usize {
        let mut prev: Option<E> = None;
        for i in 0..limit {
            let e = self.decode_at(i);
            if !e.may_follow(prev.as_ref()) {
                return i;
            }
            prev = Some(e);
        }
        limit
    }

    fn decode_at(&self, i: usize) -> E {
        E::decode(&self.map.bytes()[i * E::LEN..(i + 1) * E::LEN])
    }

    /// Adds an entry; false when the index is full or sealed (the index is sparse: a missing
    /// entry only means a longer scan).
    pub fn push(&mut self, entry: E) -> bool {
        if self.entries >= self.capacity {
            return false;
        }
        let at = self.entries * E::LEN;
        match &mut self.map {
            Mapping::Writable(m) => {
                entry.encode(&mut m[at..at + E::LEN]);
                self.entries += 1;
                true
            }
            Mapping::None | Mapping::ReadOnly(_) => false,
        }
    }

    /// The entry at `i`.
    pub fn get(&self, i: usize) -> Option<E> {
        (i < self.entries).then(|| self.decode_at(i))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// True without entries.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The last entry whose key is at or below `target`.
    pub fn floor(&self, target: u64) -> Option<E> {
        let (mut lo, mut hi) = (0usize, self.entries);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.decode_at(mid).key() <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1).and_then(|i| self.get(i))
    }

    /// Keeps the first `keep` entries, zeroing the others so the end marker is where it
    /// should be.
    pub fn truncate(&mut self, keep: usize) {
        if keep >= self.entries {
            return;
        }
        if let Mapping::Writable(m) = &mut self.map {
            m[keep * E::LEN..self.entries * E::LEN].fill(0);
        }
        self.entries = keep;
    }

    /// Trims the file to its entries and maps it read-only.
    pub fn seal(&mut self) -> io::Result<()> {
        if let Mapping::Writable(m) = &self.map {
            m.flush()?;
        }
        self.map = Mapping::None;
        let len = self.entries * E::LEN;
        self.file.set_len(len as u64)?;
        self.capacity = self.entries;
        if len > 0 {
            // SAFETY: the file was trimmed above while no mapping was alive; from here on it is
            // only read.
            self.map = Mapping::ReadOnly(unsafe { Mmap::map(&self.file)? });
        }
        Ok(())
    }

    /// The file behind the index.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// One `.index` entry: the batch starting at `relative_sequence` begins at `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    /// The batch's first sequence number minus the segment's base: 32 bits keep the entry at
    /// 8 bytes, and never 0 (0 marks the end of the entries).
    pub relative_sequence: u32,
    /// Byte offset of the batch's frame in the segment file (segments are at most 2 GiB).
    pub position: u32,
}

impl IndexEntry for OffsetEntry {
    const LEN: usize = OFFSET_ENTRY_LEN;

    fn encode(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.relative_sequence.to_le_bytes());
        out[4..8].copy_from_slice(&self.position.to_le_bytes());
    }

    fn decode(raw: &[u8]) -> Self {
        OffsetEntry {
            relative_sequence: u32_at(raw, 0),
            position: u32_at(raw, 4),
        }
    }

    fn key(&self) -> u64 {
        u64::from(self.relative_sequence)
    }

    fn may_follow(&self, prev: Option<&Self>) -> bool {
        self.relative_sequence > 0
            && self.position > 0
            && prev.is_none_or(|p| {
                self.relative_sequence > p.relative_sequence && self.position > p.position
            })
    }
}

/// Sequence → position index of one segment.
pub type OffsetIndex = SparseIndex<OffsetEntry>;

impl SparseIndex<OffsetEntry> {
    /// The last entry at or before `relative_sequence`.
    pub fn lookup(&self, relative_sequence: u64) -> Option<OffsetEntry> {
        self.floor(relative_sequence)
    }
}

/// One `.timeindex` entry: records from `relative_sequence` on arrived at or after `timestamp_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// The batch's first arrival time: every record before `relative_sequence` is older, so a
    /// time seek may start at that batch.
    pub timestamp_ms: Timestamp,
    /// The batch's first sequence number minus the segment's base; it always has an
    /// [`OffsetEntry`] beside it, through which recovery checks this entry.
    pub relative_sequence: u32,
}

impl IndexEntry for TimeEntry {
    const LEN: usize = TIME_ENTRY_LEN;

    fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.timestamp_ms.as_millis().to_le_bytes());
        out[8..12].copy_from_slice(&self.relative_sequence.to_le_bytes());
    }

    fn decode(raw: &[u8]) -> Self {
        TimeEntry {
            timestamp_ms: Timestamp::from_millis(u64_at(raw, 0)),
            relative_sequence: u32_at(raw, 8),
        }
    }

    fn key(&self) -> u64 {
        self.timestamp_ms.as_millis()
    }

    fn may_follow(&self, prev: Option<&Self>) -> bool {
        self.relative_sequence > 0
            && prev.is_none_or(|p| {
                self.relative_sequence > p.relative_sequence && self.timestamp_ms >= p.timestamp_ms
            })
    }
}

/// Time → sequence index of one segment.
pub type TimeIndex = SparseIndex<TimeEntry>;

impl SparseIndex<TimeEntry> {
    /// The last entry whose timestamp is strictly before `timestamp_ms`: records before it are
    /// all older, so a search for the first record at or after `timestamp_ms` may start there.
    pub fn last_before(&self, timestamp_ms: Timestamp) -> Option<TimeEntry> {
        let ms = timestamp_ms.as_millis().checked_sub(1)?;
        self.floor(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsio::RealIo;

    fn entry(seq: u32, pos: u32) -> OffsetEntry {
        OffsetEntry {
            relative_sequence: seq,
            position: pos,
        }
    }

    #[test]
    fn lookup_finds_the_last_entry_at_or_before_the_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::open_active(&RealIo, &dir.path().join("0.index"), 16).unwrap();
        for (s, p) in [(10, 4096), (20, 8192), (30, 12288)] {
            assert!(idx.push(entry(s, p)));
        }
        assert_eq!(idx.lookup(5), None);
        assert_eq!(idx.lookup(10), Some(entry(10, 4096)));
        assert_eq!(idx.lookup(29), Some(entry(20, 8192)));
        assert_eq!(idx.lookup(1000), Some(entry(30, 12288)));
    }

    #[test]
    fn a_reopened_active_index_keeps_its_entries_and_room() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        {
            let mut idx = OffsetIndex::open_active(&RealIo, &path, 8).unwrap();
            idx.push(entry(1, 100));
            idx.push(entry(2, 200));
        }
        let mut idx = OffsetIndex::open_active(&RealIo, &path, 8).unwrap();
        assert_eq!(idx.len(), 2);
        assert!(idx.push(entry(3, 300)));
        assert_eq!(idx.get(2), Some(entry(3, 300)));
    }

    #[test]
    fn sealing_trims_the_file_to_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::open_active(&RealIo, &path, 100).unwrap();
        idx.push(entry(1, 100));
        idx.seal().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
        assert!(!idx.push(entry(2, 200)));
        drop(idx);
        let idx = OffsetIndex::open_sealed(&RealIo, &path).unwrap();
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.lookup(7), Some(entry(1, 100)));
    }

    #[test]
    fn entries_that_go_backwards_end_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut raw = Vec::new();
        for (s, p) in [(5u32, 50u32), (9, 90), (7, 95), (12, 120)] {
            raw.extend_from_slice(&s.to_le_bytes());
            raw.extend_from_slice(&p.to_le_bytes());
        }
        std::fs::write(&path, &raw).unwrap();
        let idx = OffsetIndex::open_sealed(&RealIo, &path).unwrap();
        assert_eq!(idx.len(), 2);
    }

    #[test]
    fn a_full_index_refuses_more_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::open_active(&RealIo, &dir.path().join("0.index"), 1).unwrap();
        assert!(idx.push(entry(1, 1)));
        assert!(!idx.push(entry(2, 2)));
    }

    #[test]
    fn truncation_zeroes_the_dropped_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        {
            let mut idx = OffsetIndex::open_active(&RealIo, &path, 4).unwrap();
            idx.push(entry(1, 10));
            idx.push(entry(2, 20));
            idx.truncate(1);
        }
        assert_eq!(
            OffsetIndex::open_active(&RealIo, &path, 4).unwrap().len(),
            1
        );
    }

    #[test]
    fn bytes_after_the_valid_entries_of_an_active_index_are_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut raw = Vec::new();
        // One valid entry, one that goes backwards (the end), then junk that would read as
        // valid entries once the gap before it were filled.
        for (s, p) in [(5u32, 50u32), (1, 1), (7, 70), (8, 80)] {
            raw.extend_from_slice(&s.to_le_bytes());
            raw.extend_from_slice(&p.to_le_bytes());
        }
        std::fs::write(&path, &raw).unwrap();
        {
            let mut idx = OffsetIndex::open_active(&RealIo, &path, 8).unwrap();
            assert_eq!(idx.len(), 1);
            assert!(idx.push(entry(6, 60)));
        }
        let idx = OffsetIndex::open_active(&RealIo, &path, 8).unwrap();
        assert_eq!(idx.len(), 2, "junk past the entries was taken for entries");
    }

    #[test]
    fn time_lookup_finds_the_last_entry_strictly_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TimeIndex::open_active(&RealIo, &dir.path().join("0.timeindex"), 8).unwrap();
        for (ts, seq) in [(100, 1), (200, 5), (200, 9), (300, 12)] {
            assert!(idx.push(TimeEntry {
                timestamp_ms: Timestamp::from_millis(ts),
                relative_sequence: seq
            }));
        }
        let at = Timestamp::from_millis;
        assert_eq!(idx.last_before(at(100)), None);
        assert_eq!(idx.last_before(at(200)).unwrap().relative_sequence, 1);
        assert_eq!(idx.last_before(at(250)).unwrap().relative_sequence, 9);
    }

    #[test]
    fn entries_are_stored_in_the_documented_byte_layout() {
        let dir = tempfile::tempdir().unwrap();
        let (ipath, tpath) = (dir.path().join("0.index"), dir.path().join("0.timeindex"));
        let mut idx = OffsetIndex::open_active(&RealIo, &ipath, 4).unwrap();
        assert!(idx.push(entry(0x0102_0304, 0x0a0b_0c0d)));
        idx.seal().unwrap();
        assert_eq!(
            std::fs::read(&ipath).unwrap(),
            [4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a]
        );
        let mut time = TimeIndex::open_active(&RealIo, &tpath, 4).unwrap();
        assert!(time.push(TimeEntry {
            timestamp_ms: Timestamp::from_millis(0x0102_0304_0506_0708),
            relative_sequence: 0x0a0b_0c0d,
        }));
        time.seal().unwrap();
        assert_eq!(
            std::fs::read(&tpath).unwrap(),
            [8, 7, 6, 5, 4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a]
        );
    }
}
