//! Eviction: records leave the window's log from its front once they have expired (or are gone),
//! a bounded number per call; a run of ids in flight at the front is moved out of the way.

use std::time::Instant;

use super::log::RecordState;
use super::state::State;

/// Log records a call evicts at most, at the least: with [`EVICTIONS_PER_ID`] per id the call
/// reserves or commits on top, eviction keeps pace with arrivals (every id adds one record),
/// while the first call after a quiet spell does not empty a whole window under the lock that
/// every put of the stream waits on. Only the timing of eviction depends on it, never an
/// answer: an expired id is treated as absent whether or not it was evicted yet, and a call at
/// the cap evicts everything it can before it refuses an id.
pub(super) const MIN_EVICTIONS_PER_CALL: usize = 64;
/// See [`MIN_EVICTIONS_PER_CALL`].
pub(super) const EVICTIONS_PER_ID: usize = 2;
/// Expired records whose keys are looked up together before they are removed (see
/// `State::evict_expired`).
const EVICTION_CHUNK: usize = 16;

impl RecordState {
    /// Whether the record can leave the log at `now`; `None` for one in flight.
    pub(super) fn may_leave(&self, now: Instant) -> Option<bool> {
        match self {
            RecordState::Gone => Some(true),
            RecordState::Committed { expires_at, .. } => Some(*expires_at <= now),
            RecordState::InFlight { .. } => None,
        }
    }
}

impl State {
    /// Removes up to `budget` records from the front of the log that can leave (expired or
    /// gone), and their keys from the index; moves in-flight records at the front out of the way
    /// when something behind them can leave.
    pub(super) fn evict_expired(&mut self, now: Instant, budget: usize) {
        let mut left = budget;
        while left > 0 {
            // The records that can leave now, from the front: up to a chunk.
            let ready = self
                .log
                .records
                .iter()
                .take(left.min(EVICTION_CHUNK))
                .take_while(|record| record.state.may_leave(now) == Some(true))
                .count();
            if ready == 0 {
                match self.relocate_in_flight_front(now, left) {
                    0 => return,
                    moved => {
                        left = left.saturating_sub(moved);
                        continue;
                    }
                }
            }
            // Every key of the chunk is looked up before any is removed: independent lookups,
            // whose cache misses (old ids are long out of the cache) the processor overlaps
            // instead of waiting for one after the other. Removing a key changes no other
            // key's entry, so the answers hold for the whole chunk.
            let mut indexed = [false; EVICTION_CHUNK];
            let first = self.log.start;
            for (offset, (flag, record)) in indexed.iter_mut().zip(&self.log.records).enumerate() {
                if offset == ready {
                    break;
                }
                *flag = matches!(record.state, RecordState::Committed { .. })
                    && self.index.get(&record.key) == Some(first + offset as u64);
            }
            for (offset, &flag) in indexed[..ready].iter().enumerate() {
                if let Some(record) = self.log.pop_front() {
                    if flag {
                        self.index.remove_at(&record.key, first + offset as u64);
                    }
                }
            }
            left -= ready;
        }
    }

    /// When the front of the log is a run of in-flight records (their requests are still
    /// storing) followed, within `budget` records, by one that can leave, moves that run to the
    /// back of the log, so that eviction goes on; returns how many records it moved. A moved
    /// id's ticket finds it again through the index.
    fn relocate_in_flight_front(&mut self, now: Instant, budget: usize) -> usize {
        let run = self
            .log
            .records
            .iter()
            .take(budget)
            .take_while(|record| matches!(record.state, RecordState::InFlight { .. }))
            .count();
        let behind = self
            .log
            .records
            .get(run)
            .and_then(|record| record.state.may_leave(now));
        if run == 0 || behind != Some(true) {
            return 0;
        }
        for _ in 0..run {
            let Some(record) = self.log.pop_front() else {
                break;
            };
            let from = self.log.start - 1;
            let key = record.key;
            let to = self.log.push(key, record.state);
            if let Some(at) = self.index.get_mut(&key) {
                if *at == from {
                    *at = to;
                }
            }
        }
        run
    }

    /// At the cap, evicts everything that can go, so that only live ids can make a new one
    /// refused.
    // `#[inline]`: checked on every reservation, from `state.rs` and `mod.rs`.
    #[inline]
    pub(super) fn make_room(&mut self, now: Instant, max_live_ids: usize) {
        if self.index.len() >= max_live_ids || self.log.len() >= max_live_ids {
            self.evict_expired(now, usize::MAX);
        }
    }
}
