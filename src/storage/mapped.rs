//! Read-only memory maps of sealed segment files: a read of a sealed segment hands out record
//! slices that point into the page cache, with no copy into a read buffer.
//!
//! ```text
//!  sealed segment file ──mmap (once, lazily)──▶ SealedMap
//!      read [pos, pos+len) ──▶ Bytes owned by a MappedRange ──slices──▶ records
//!      last slice dropped ──▶ the range's page-table entries are dropped (MADV_DONTNEED),
//!                              so the pages read stop counting in the process's memory
//! ```
//!
//! Why the mapping cannot change underneath a reader: a segment is sealed after its last
//! write, and shardlog never writes to, nor shrinks, a sealed segment file. Recovery truncates
//! only the active segment, at open, before any reader exists; a failed write truncates only
//! the active segment; retention deletes whole files, and on Linux a deleted file's mapped
//! pages stay valid until the mapping goes. A mapping is only made of bytes the file holds
//! (its length is checked first). Another process truncating files in the data directory is
//! outside what any memory-mapped store can defend against (the indexes have the same limit).
//! The CRC of every batch is still checked on every read, as for bytes read with `pread`.
//!
//! With `index`, one of the two modules of the crate with `unsafe`.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use memmap2::{Advice, Mmap, MmapOptions, UncheckedAdvice};

/// Smallest span whose pages are released when its last slice is dropped: below that the
/// system call costs more than the memory it gives back is worth.
pub const MIN_RELEASED_BYTES: usize = 64 * 1024;

/// A read-only mapping of the first `len` bytes of a sealed segment file.
#[derive(Debug)]
pub struct SealedMap {
    map: Mmap,
}

impl SealedMap {
    /// Maps the first `len` bytes of the sealed segment at `path`. `None` when `len` is 0 (an
    /// empty mapping cannot be made) or the file holds fewer bytes than that.
    pub fn open(path: &Path, len: u64) -> io::Result<Option<Arc<SealedMap>>> {
        if len == 0 {
            return Ok(None);
        }
        let Ok(map_len) = usize::try_from(len) else {
            return Ok(None);
        };
        let file = File::open(path)?;
        if file.metadata()?.len() < len {
            return Ok(None);
        }
        // SAFETY: the file holds at least `map_len` bytes (checked just above), and the segment
        // is sealed: shardlog never writes to it again nor makes it shorter (see the module
        // doc), so every mapped byte stays backed by the file and unchanged for as long as
        // the mapping lives, even after retention deletes the file.
        let map = unsafe { MmapOptions::new().len(map_len).map(&file)? };
        // Reads walk a segment forward; a hint only, so a refusal changes nothing.
        let _ = map.advise(Advice::Sequential);
        Ok(Some(Arc::new(SealedMap { map })))
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is mapped (never, as made by [`SealedMap::open`]).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The bytes of `range` as shareable bytes pointing into the mapping; `None` when the range
    /// is not inside the mapping.
    pub fn slice(self: &Arc<Self>, range: Range<usize>) -> Option<Bytes> {
        if range.start > range.end || range.end > self.map.len() {
            return None;
        }
        if range.is_empty() {
            return Some(Bytes::new());
        }
        // Fault the range in with one call rather than page by page; a hint only.
        let _ = self
            .map
            .advise_range(Advice::PopulateRead, range.start, range.len());
        Some(Bytes::from_owner(MappedRange {
            map: Arc::clone(self),
            range,
        }))
    }
}

/// A range of a mapping, owning a reference to it; see [`SealedMap::slice`].
#[derive(Debug)]
struct MappedRange {
    map: Arc<SealedMap>,
    range: Range<usize>,
}

impl AsRef<[u8]> for MappedRange {
    fn as_ref(&self) -> &[u8] {
        &self.map.map[self.range.clone()]
    }
}

impl Drop for MappedRange {
    fn drop(&mut self) {
        let page = page_size();
        let start = self.range.start.div_ceil(page) * page;
        let end = self.range.end / page * page;
        if end <= start || end - start < MIN_RELEASED_BYTES {
            return;
        }
        // SAFETY: the mapping is a shared, read-only mapping of a file. MADV_DONTNEED on such
        // a mapping only drops page-table entries: the next access to those pages (by another
        // range of the same mapping still in use) faults them in again from the page cache
        // with the same contents, since the file does not change (see the module doc). No
        // byte any slice can observe is lost or altered. A refusal is harmless.
        let _ = unsafe {
            self.map
                .map
                .unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start)
        };
    }
}

fn page_size() -> usize {
    // A page size is always a power of two of at least 4096; 4096 divides every one, so it is
    // a safe alignment when the real size is larger (the call then only fails, harmlessly).
    4096
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_reads_the_file_bytes_and_outlives_the_mapping_handle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.log");
        let data: Vec<u8> = (0..3 * MIN_RELEASED_BYTES)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let map = SealedMap::open(&path, data.len() as u64)
            .unwrap()
            .expect("mapped");
        let bytes = map.slice(10..2 * MIN_RELEASED_BYTES + 20).expect("inside");
        drop(map);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(&bytes[..], &data[10..2 * MIN_RELEASED_BYTES + 20]);
        let part = bytes.slice(5..9);
        drop(bytes);
        assert_eq!(&part[..], &data[15..19]);
    }

    #[test]
    fn released_pages_read_back_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.log");
        let data: Vec<u8> = (0..4 * MIN_RELEASED_BYTES)
            .map(|i| (i % 253) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let map = SealedMap::open(&path, data.len() as u64)
            .unwrap()
            .expect("mapped");
        let held = map.slice(0..data.len()).expect("inside");
        drop(map.slice(100..3 * MIN_RELEASED_BYTES).expect("inside"));
        assert_eq!(&held[..], &data[..]);
    }

    #[test]
    fn ranges_outside_the_mapping_and_short_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.log");
        std::fs::write(&path, b"0123456789").unwrap();
        assert!(SealedMap::open(&path, 11).unwrap().is_none());
        assert!(SealedMap::open(&path, 0).unwrap().is_none());
        let map = SealedMap::open(&path, 8).unwrap().expect("mapped");
        assert_eq!(map.len(), 8);
        assert!(map.slice(4..9).is_none());
        assert_eq!(&map.slice(4..8).expect("inside")[..], b"4567");
    }
}
