//! Reusable read buffers: a segment read fills a buffer taken from a small shared pool, hands
//! out record slices of it, and the buffer goes back to the pool when its last slice is dropped.
//!
//! A fresh buffer per read costs more than the read itself: an allocation of several MiB is a
//! new anonymous mapping that is zeroed, faulted in page by page and unmapped again when freed.
//! A pooled buffer's bytes are already initialised (the read overwrites them), so taking one
//! costs a lock and no page fault.
//!
//! ```text
//!  take(len) ──▶ PooledBuf ──read_at──▶ freeze(filled) ──▶ Bytes ──slices──▶ records
//!      ▲                                                                         │
//!      └──────────────── back to the pool when the last slice is dropped ◀──────┘
//! ```

use std::sync::Mutex;

use bytes::{Bytes, BytesMut};

/// Buffers the shared pool keeps for reuse; reads in flight beyond that allocate as usual.
/// Reads are at most 8 MiB, so an idle server keeps at most 64 MiB here.
pub const DEFAULT_POOLED_READ_BUFFERS: usize = 8;
/// Largest buffer the shared pool keeps.
pub const MAX_POOLED_READ_BUFFER_BYTES: usize = 16 * 1024 * 1024;
/// Reads smaller than this use a plain allocation: it comes from the heap, not a new mapping,
/// and holding a large pooled buffer for a few records would waste it.
pub const MIN_POOLED_READ_BYTES: usize = 256 * 1024;

static SHARED: ReadBufferPool =
    ReadBufferPool::new(DEFAULT_POOLED_READ_BUFFERS, MAX_POOLED_READ_BUFFER_BYTES);

/// A bounded set of initialised byte buffers waiting to be reused.
#[derive(Debug)]
pub struct ReadBufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    max_buffers: usize,
    max_buffer_bytes: usize,
}

impl ReadBufferPool {
    /// A pool keeping at most `max_buffers` buffers of at most `max_buffer_bytes` each.
    pub const fn new(max_buffers: usize, max_buffer_bytes: usize) -> ReadBufferPool {
        ReadBufferPool {
            free: Mutex::new(Vec::new()),
            max_buffers,
            max_buffer_bytes,
        }
    }

    /// The pool every segment read shares: the buffers follow the reads, whichever shard
    /// they are for, so idle shards hold no memory.
    pub fn shared() -> &'static ReadBufferPool {
        &SHARED
    }

    /// A buffer of `len` initialised bytes: the smallest pooled one that is large enough, or a
    /// new one.
    pub fn take(&'static self, len: usize) -> ReadBuf {
        if len < MIN_POOLED_READ_BYTES || len > self.max_buffer_bytes {
            return ReadBuf::Plain(BytesMut::zeroed(len));
        }
        let reused = {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= len)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            best.map(|i| free.swap_remove(i))
        };
        let mut buf = match reused {
            Some(buf) => buf,
            // `vec![0; n]` of this size is a fresh zero mapping: no memset, and only the pages
            // the read writes are ever faulted in.
            None => vec![0u8; len],
        };
        if buf.len() < len {
            // Within the capacity: zeroes only the part never initialised, no reallocation.
            buf.resize(len, 0);
        }
        ReadBuf::Pooled(PooledBuf {
            buf,
            len,
            pool: self,
        })
    }

    fn give_back(&self, buf: Vec<u8>) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < self.max_buffers {
            free.push(buf);
            return;
        }
        // Full: keep the larger buffers, which are the ones a fresh allocation costs most for.
        if let Some(smallest) = free.iter_mut().min_by_key(|b| b.capacity()) {
            if smallest.capacity() < buf.capacity() {
                *smallest = buf;
            }
        }
    }

    /// Buffers waiting in the pool.
    pub fn pooled(&self) -> usize {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A buffer being filled by a read.
#[derive(Debug)]
pub enum ReadBuf {
    /// A small read's own allocation.
    Plain(BytesMut),
    /// A buffer that returns to its pool.
    Pooled(PooledBuf),
}

impl ReadBuf {
    /// The bytes to read into.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        match self {
            ReadBuf::Plain(b) => b,
            ReadBuf::Pooled(p) => &mut p.buf[..p.len],
        }
    }

    /// The first `filled` bytes as shareable bytes; the rest is not exposed.
    pub fn freeze(self, filled: usize) -> Bytes {
        match self {
            ReadBuf::Plain(mut b) => {
                b.truncate(filled);
                b.freeze()
            }
            ReadBuf::Pooled(mut p) => {
                p.len = p.len.min(filled);
                Bytes::from_owner(p)
            }
        }
    }
}

/// A pooled buffer: `buf[..len]` is what it exposes; all of `buf` is initialised.
#[derive(Debug)]
pub struct PooledBuf {
    buf: Vec<u8>,
    len: usize,
    pool: &'static ReadBufferPool,
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaked_pool(max_buffers: usize) -> &'static ReadBufferPool {
        Box::leak(Box::new(ReadBufferPool::new(
            max_buffers,
            8 * MIN_POOLED_READ_BYTES,
        )))
    }

    #[test]
    fn a_buffer_returns_to_the_pool_when_its_last_slice_is_dropped() {
        let pool = leaked_pool(4);
        let mut buf = pool.take(MIN_POOLED_READ_BYTES);
        buf.as_mut_slice()[..3].copy_from_slice(b"abc");
        let bytes = buf.freeze(3);
        let slice = bytes.slice(1..3);
        drop(bytes);
        assert_eq!(pool.pooled(), 0);
        assert_eq!(&slice[..], b"bc");
        drop(slice);
        assert_eq!(pool.pooled(), 1);
    }

    #[test]
    fn a_reused_buffer_exposes_only_what_the_new_read_filled() {
        let pool = leaked_pool(4);
        let mut first = pool.take(MIN_POOLED_READ_BYTES);
        first.as_mut_slice().fill(7);
        drop(first.freeze(MIN_POOLED_READ_BYTES));
        let mut second = pool.take(MIN_POOLED_READ_BYTES);
        second.as_mut_slice()[..2].copy_from_slice(b"xy");
        let bytes = second.freeze(2);
        assert_eq!(&bytes[..], b"xy");
        assert_eq!(pool.pooled(), 0, "the one pooled buffer was reused");
    }

    #[test]
    fn the_smallest_large_enough_buffer_is_taken() {
        let pool = leaked_pool(4);
        let big = pool.take(4 * MIN_POOLED_READ_BYTES);
        let small = pool.take(MIN_POOLED_READ_BYTES);
        drop(big.freeze(0));
        drop(small.freeze(0));
        let mut again = pool.take(MIN_POOLED_READ_BYTES);
        assert_eq!(again.as_mut_slice().len(), MIN_POOLED_READ_BYTES);
        match &again {
            ReadBuf::Pooled(p) => assert!(p.buf.capacity() < 4 * MIN_POOLED_READ_BYTES),
            ReadBuf::Plain(_) => panic!("a pooled size must come from the pool"),
        }
    }

    #[test]
    fn a_full_pool_keeps_its_largest_buffers() {
        let pool = leaked_pool(1);
        let small = pool.take(MIN_POOLED_READ_BYTES);
        let big = pool.take(2 * MIN_POOLED_READ_BYTES);
        drop(small.freeze(0));
        drop(big.freeze(0));
        assert_eq!(pool.pooled(), 1);
        let mut again = pool.take(2 * MIN_POOLED_READ_BYTES);
        assert_eq!(pool.pooled(), 0, "the larger buffer was kept and reused");
        assert_eq!(again.as_mut_slice().len(), 2 * MIN_POOLED_READ_BYTES);
    }

    #[test]
    fn small_and_oversized_reads_bypass_the_pool() {
        let pool = leaked_pool(4);
        drop(pool.take(16).freeze(16));
        drop(pool.take(9 * MIN_POOLED_READ_BYTES).freeze(1));
        assert_eq!(pool.pooled(), 0);
    }
}
