//! The window's log: one record per reservation of an id, in reservation order, with the state
//! of that reservation; memory for the records to come is mapped ahead of time.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::super::key::DedupKey;
use super::super::ticket::Gate;
use super::Committed;

/// How many times the ids of the last settle's batch
/// [`DedupWindow::settle`](super::DedupWindow::settle) makes room for in the log ahead of time
/// (see [`Log::map_ahead`]).
pub(super) const MAP_AHEAD_BATCHES: usize = 4;

/// Records in reservation order: `records[i]` has the log index `start + i`. Log indexes are
/// never reused.
pub(super) struct Log {
    pub(super) records: VecDeque<Record>,
    pub(super) start: u64,
    /// Memory of `records` known to be mapped: the slots of log indexes up to `mapped_until`
    /// in the buffer of capacity `mapped_capacity`, counted from `mapped_from` (see
    /// [`Log::map_ahead`]).
    pub(super) mapped_from: u64,
    pub(super) mapped_until: u64,
    pub(super) mapped_capacity: usize,
}

/// What the window knows about one reservation of an id.
pub(super) struct Record {
    pub(super) key: DedupKey,
    pub(super) state: RecordState,
}

/// Where one reservation of an id stands.
pub(super) enum RecordState {
    /// The ticket numbered `ticket` holds the id. `gate` exists once someone waits on the id,
    /// and is opened when the id leaves this state.
    InFlight {
        ticket: u64,
        gate: Option<Arc<Gate>>,
    },
    /// The id's first record, a duplicate while `now < expires_at`.
    Committed {
        committed: Committed,
        expires_at: Instant,
    },
    /// Released, given back, or replaced by a later reservation of its id: nothing refers to
    /// it any more, and it leaves when it reaches the front.
    Gone,
}

// `#[inline]` on the helpers the window's other files call for every id: code is split into
// codegen units by module, and these were inlinable into their callers when one file held
// them all.
impl Log {
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    #[inline]
    pub(super) fn get_mut(&mut self, at: u64) -> Option<&mut Record> {
        let offset = usize::try_from(at.checked_sub(self.start)?).ok()?;
        self.records.get_mut(offset)
    }

    /// Appends a record; returns its log index.
    #[inline]
    pub(super) fn push(&mut self, key: DedupKey, state: RecordState) -> u64 {
        let at = self.start + self.records.len() as u64;
        self.records.push_back(Record { key, state });
        at
    }

    /// Makes sure the memory of the next `ahead` records is mapped, by writing placeholder
    /// records there and removing them again: the first write to a fresh page of memory costs a
    /// page fault, better taken here (in `settle`, while the caller waits anyway) than by the
    /// reservations that append those records. It only writes while the buffer has slots it has
    /// not written yet: a buffer the log has gone round once is mapped whole.
    pub(super) fn map_ahead(&mut self, ahead: usize) {
        let end = self.start + self.records.len() as u64;
        if self.records.capacity() != self.mapped_capacity {
            // A new buffer: only what was copied into it is known to be mapped.
            self.mapped_from = self.start;
            self.mapped_until = end;
            self.mapped_capacity = self.records.capacity();
        }
        let whole = self.mapped_until - self.mapped_from >= self.mapped_capacity as u64;
        if whole || end + ahead as u64 / 2 <= self.mapped_until {
            return;
        }
        let len = self.records.len();
        for _ in 0..ahead {
            self.records.push_back(Record {
                key: DedupKey::PLACEHOLDER,
                state: RecordState::Gone,
            });
        }
        self.records.truncate(len);
        if self.records.capacity() != self.mapped_capacity {
            // Writing ahead grew the buffer: its slots up to here are mapped now.
            self.mapped_from = self.start;
            self.mapped_capacity = self.records.capacity();
        }
        self.mapped_until = end + ahead as u64;
    }

    #[inline]
    pub(super) fn pop_front(&mut self) -> Option<Record> {
        let record = self.records.pop_front()?;
        self.start += 1;
        Some(record)
    }

    /// The record at `at` if it is in flight for the ticket numbered `ticket` and has `key`.
    #[inline]
    pub(super) fn held_mut(&mut self, at: u64, key: DedupKey, ticket: u64) -> Option<&mut Record> {
        self.get_mut(at).filter(|record| {
            record.key == key
                && matches!(record.state, RecordState::InFlight { ticket: holder, .. } if holder == ticket)
        })
    }
}
