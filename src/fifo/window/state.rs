//! The window's state under its lock, and the steps that change an id's state: the atomic
//! reserve-or-resolve, committing and releasing the ids a ticket holds.

use std::mem;
use std::sync::Arc;
use std::time::Instant;

use super::super::error::FifoError;
use super::super::key::DedupKey;
use super::super::ticket::{Gate, Held};
use super::index::Index;
use super::log::{Log, Record, RecordState};
use super::Committed;
use crate::storage::SequenceNumber;

/// The tracked ids.
///
/// Invariants: the index maps every tracked key to the log index of a record with that key
/// that is in flight or committed, and no other record is in flight or committed (the rest are
/// gone); every in-flight record is held by exactly one live ticket with the record's ticket
/// number; the log never holds more than `max_live_ids` records.
///
/// Records leave the log from its front only. A committed record leaves once it has expired,
/// a gone one at once; one that has not expired yet holds the records behind it back, and an
/// in-flight one at the front moves to the back when something behind it can go. An expired id
/// is treated as absent whether or not its record has left, and may be reserved again: its old
/// record is then gone, and a new one appended. New ids are refused once the index or the log
/// holds `max_live_ids` entries, after evicting all it can: memory stays bounded by the cap.
pub(in crate::fifo) struct State {
    /// Where each tracked key's record is, as a log index.
    pub(super) index: Index,
    /// The records of the tracked ids (and of ids gone, until they leave), in reservation order.
    pub(super) log: Log,
}

/// What one reservation attempt found, under the lock.
pub(in crate::fifo) enum Attempt {
    /// The id is now held by the ticket that asked; its record is at this log index.
    Fresh(u64),
    /// The id was committed within the window.
    Duplicate(Committed),
    /// Another ticket holds the id; the gate opens when it lets go.
    InFlight(Arc<Gate>),
    /// The ticket that asked already holds the id (a repeat inside one batch).
    Held,
    /// The id is new and the window is at its cap.
    Refused(FifoError),
}

impl RecordState {
    /// The attempt of the ticket numbered `ticket` on an id with this record: a duplicate while
    /// committed within the window, a wait while in flight; `None` once expired (or gone): the
    /// id may be taken afresh.
    pub(super) fn attempt(&mut self, ticket: u64, now: Instant) -> Option<Attempt> {
        match self {
            RecordState::Committed {
                committed,
                expires_at,
            } if now < *expires_at => Some(Attempt::Duplicate(*committed)),
            RecordState::InFlight { ticket: holder, .. } if *holder == ticket => {
                Some(Attempt::Held)
            }
            RecordState::InFlight { gate, .. } => Some(Attempt::InFlight(Arc::clone(
                gate.get_or_insert_with(Default::default),
            ))),
            RecordState::Committed { .. } | RecordState::Gone => None,
        }
    }
}

impl State {
    /// Prepares the reservation of `keys` (see `Index::look_ahead`).
    pub(in crate::fifo) fn look_ahead(&mut self, keys: impl Iterator<Item = DedupKey>) {
        self.index.look_ahead(keys);
    }

    /// Checks `key` and, if it is absent or expired, hands it to the ticket numbered `ticket`:
    /// the one atomic step of a reservation. The caller records a `Fresh` key in that ticket
    /// before it lets go of the lock.
    pub(in crate::fifo) fn try_reserve(
        &mut self,
        key: DedupKey,
        ticket: u64,
        now: Instant,
        max_live_ids: usize,
    ) -> Attempt {
        self.make_room(now, max_live_ids);
        let live_ids = self.index.len();
        let room = live_ids < max_live_ids && self.log.len() < max_live_ids;
        let State { index, log } = self;
        let Some(at) = index.get_mut(&key) else {
            if !room {
                return Attempt::Refused(FifoError::WindowFull {
                    live_ids,
                    max_live_ids,
                });
            }
            let at = log.push(key, RecordState::InFlight { ticket, gate: None });
            index.insert_new(key, at);
            return Attempt::Fresh(at);
        };
        let old = *at;
        if let Some(attempt) = log.get_mut(old).and_then(|r| r.state.attempt(ticket, now)) {
            return attempt;
        }
        // Expired: at the cap it stays so (taking it afresh appends a record); below it, the old
        // record is gone and the new one appended, in the index entry just found.
        if !room {
            return Attempt::Refused(FifoError::WindowFull {
                live_ids,
                max_live_ids,
            });
        }
        if let Some(record) = log.get_mut(old) {
            record.state = RecordState::Gone;
        }
        *at = log.push(key, RecordState::InFlight { ticket, gate: None });
        Attempt::Fresh(*at)
    }

    /// Finds the record of `id` if the ticket numbered `ticket` still holds it: where the ticket
    /// left it, or (if eviction moved it) where the index says it is.
    fn held_record(&mut self, id: &Held, ticket: u64) -> Option<(u64, &mut Record)> {
        let at = if self.log.held_mut(id.at, id.key, ticket).is_some() {
            id.at
        } else {
            self.index.get(&id.key)?
        };
        Some((at, self.log.held_mut(at, id.key, ticket)?))
    }

    /// Commits the ids of `held` still held by the ticket numbered `ticket`, each at
    /// `first_sequence + position` in `shard`, until `expires_at`; collects the gates to open.
    pub(in crate::fifo) fn commit_held(
        &mut self,
        ticket: u64,
        held: &[Held],
        shard: u32,
        first_sequence: SequenceNumber,
        expires_at: Instant,
        gates: &mut Vec<Arc<Gate>>,
    ) {
        for id in held {
            // Not held any more: replaced by a record found in the log, which came first.
            let Some((_, record)) = self.held_record(id, ticket) else {
                continue;
            };
            let committed = Committed {
                shard,
                sequence: first_sequence + id.position as u64,
            };
            let was = mem::replace(
                &mut record.state,
                RecordState::Committed {
                    committed,
                    expires_at,
                },
            );
            if let RecordState::InFlight {
                gate: Some(gate), ..
            } = was
            {
                gates.push(gate);
            }
        }
    }

    /// Forgets the ids of `held` still held by the ticket numbered `ticket` (its request failed
    /// or was abandoned); collects the gates to open.
    pub(in crate::fifo) fn release_held(
        &mut self,
        ticket: u64,
        held: &[Held],
        gates: &mut Vec<Arc<Gate>>,
    ) {
        for id in held {
            let Some((at, record)) = self.held_record(id, ticket) else {
                continue;
            };
            if let RecordState::InFlight {
                gate: Some(gate), ..
            } = mem::replace(&mut record.state, RecordState::Gone)
            {
                gates.push(gate);
            }
            self.index.remove_at(&id.key, at);
        }
    }
}
