//! The FIFO layer: validation of message group and deduplication ids, and each stream's
//! deduplication window.
//!
//! A record may carry a `message_group_id` (it picks the shard; the broker routes on it) and a
//! `deduplication_id`. With content-based deduplication on, a record without an id is keyed by
//! the SHA-256 of its data. [`DedupPolicy::key_for`] turns those into a fixed-size [`DedupKey`];
//! the stream's [`DedupWindow`] then decides, in one step under one lock, whether the record is
//! new (store it, [`DedupTicket::commit`] the result), a duplicate (answer with the first
//! record's shard and sequence, `duplicate = true`), or held by a request still in flight (wait
//! for it, then ask again — and take the id over if that request failed):
//!
//! ```text
//!  PutRecords entries ──key_for──▶ keys ──reserve_batch──▶ Fresh: held by the request's ticket
//!     (one lock for the whole batch)                   ├─▶ Duplicate(first) ──▶ duplicate=true
//!                                                      └─▶ SameAs(i): answer like entry i
//!  ticket ──split per shard──▶ append ──ack──▶ stored ──StoredTicket::commit_all──▶ committed
//!                                    └─failed──▶ dropped: ids released, a waiter takes over
//!  start: log tail (id stored with each record) ──insert_committed──▶ window
//! ```
//!
//! # Memory per tracked id
//!
//! The window stores a 16-byte key, never the id, so the cost per id is fixed. Each id has a
//! record in the window's log (records in reservation order) and an entry in its index (key to
//! log index). On 64-bit Linux:
//!
//! | part | bytes |
//! | --- | --- |
//! | key (`DedupKey`, truncated SHA-256) | 16 |
//! | log record: key + state (`Committed` = shard u32 + sequence u64, padded to 16; expiry `Instant`, 16) | 48 |
//! | index entry: key + log index (u64) | 24 |
//! | index control byte | 1 |
//! | index at its 7/8 maximum load: 25 × 8/7 | 29 |
//! | **total, tables full** | **77** |
//! | **total, just after both tables doubled** (index 7/16 full: 57; log half full: 96) | **153** |
//!
//! So [`DEFAULT_MAX_LIVE_IDS`] (one million) ids cost 77–153 MB for one stream at the cap (the
//! log, whose length the cap also bounds, holds records that have not left yet too), and a
//! stream putting 1,000 deduplicated records per second holds 300,000 ids over the default
//! window: 23–46 MB. On top of that, per window: the index's table of recently reserved keys (at
//! most 4,096 of them, about 200 KB once grown), and log capacity grown ahead of need by at most
//! four batches (never past what the cap lets the log hold). An id in flight additionally takes
//! 32 bytes in its request's ticket and, only while another request waits on it, a shared
//! wake-up gate of under 64 bytes; those are bounded by the requests in flight. The test
//! `memory_per_live_id_stays_within_the_documented_bound` checks these sizes with
//! `std::mem::size_of`.
//!
//! Memory is bounded in time and count: records leave the log from its front once expired
//! (amortised O(1), a bounded number per call; a record not yet expired holds the ones behind
//! it back until it expires), and a new id past the cap fails with [`FifoError::WindowFull`]
//! (`RESOURCE_EXHAUSTED` at the edge) — after evicting all that can go — while known ids are
//! still answered.

mod batch;
mod error;
mod hasher;
mod id;
mod key;
mod ticket;
mod window;

#[cfg(test)]
mod test_support;

pub use batch::BatchEntry;
pub use error::{FifoError, IdField};
pub use id::{validate_deduplication_id, validate_message_group_id, MAX_ID_LEN};
pub use key::{DedupKey, DedupPolicy};
pub use ticket::StoredTicket;
pub use window::{
    Committed, DedupWindow, DedupWindowConfig, DEFAULT_MAX_LIVE_IDS, MAX_DEDUP_WINDOW,
};
