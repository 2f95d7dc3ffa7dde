//! Reserving all the dedup keys of one PutRecords request: repeats inside the request, one lock
//! acquisition for the whole batch, and an acquisition order that keeps crossed requests from
//! waiting on each other forever.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::error::FifoError;
use super::hasher::KeyHashState;
use super::key::DedupKey;
use super::ticket::{DedupTicket, Gate, Waiter};
use super::window::{Attempt, Committed, DedupWindow};

/// What one entry of a batch gets from [`DedupWindow::reserve_batch`].
#[derive(Debug, Clone)]
pub enum BatchEntry {
    /// The entry has no dedup key: store it as usual.
    NotDeduplicated,
    /// The batch's ticket holds the entry's id: store the record, then commit the ticket.
    Fresh,
    /// Answer with the first record, store nothing.
    Duplicate(Committed),
    /// An earlier entry of the same batch (this index) has the same key: store nothing and
    /// answer with whatever that entry gets (its sequence number with `duplicate = true`, or its
    /// failure).
    SameAs(usize),
    /// The window is full; this entry fails, the others are unaffected.
    Refused(FifoError),
}

/// The answer of [`DedupWindow::reserve_batch`].
#[derive(Debug)]
pub struct ReservedBatch {
    /// One per entry, in entry order.
    pub entries: Vec<BatchEntry>,
    /// Holds the id of every [`BatchEntry::Fresh`] entry, at that entry's index. Split it per
    /// shard with [`DedupTicket::split`], and commit each part once its batch is stored.
    pub ticket: DedupTicket,
}

impl DedupWindow {
    /// Reserves every key of one request's entries (`None`: the entry is not deduplicated) and
    /// returns one [`BatchEntry`] per entry, in entry order, and the ticket of the fresh ones.
    ///
    /// All keys are tried under one lock acquisition. A key repeated inside the batch is
    /// reserved once and the later entries point at the first ([`BatchEntry::SameAs`]); waiting
    /// on its own ticket would never end. (A repeat of a duplicate or refused key gets the same
    /// answer as the first directly.)
    ///
    /// When keys are in flight in other requests, the batch must not wait while holding a
    /// larger key than the one it waits on: it gives back, in the same critical section (so no
    /// other request saw them), the keys it just took that are larger than the smallest key in
    /// flight, waits for that one, and then tries the rest again. So a waiting request holds
    /// only keys smaller than the one it waits on, and every chain of waits ends at a request
    /// that holds all its keys: crossed requests cannot deadlock. It is the order argument of
    /// reserving keys one by one in ascending order, without sorting when nothing is in flight.
    ///
    /// Dropping the future while it waits releases every id reserved so far.
    pub async fn reserve_batch(
        &self,
        keys: &[Option<DedupKey>],
        clock: impl Fn() -> Instant,
    ) -> ReservedBatch {
        let mut entries = vec![BatchEntry::NotDeduplicated; keys.len()];
        // Entries still to try, in entry order: the first entry of a key comes before its
        // repeats, so the repeats find it held.
        let mut pending: Vec<(DedupKey, usize)> = Vec::with_capacity(keys.len());
        pending.extend(
            keys.iter()
                .enumerate()
                .filter_map(|(index, key)| key.map(|key| (key, index))),
        );
        let mut repeats: Vec<usize> = Vec::new();
        let max_live_ids = self.config().max_live_ids;
        // Created before the first reservation, so that a cancelled call releases what it holds.
        let mut ticket = self.new_ticket(pending.len());
        while !pending.is_empty() {
            let now = clock();
            let waiter = {
                let mut state = self.lock_evicting(now, pending.len());
                let taken_before = ticket.len();
                // In flight elsewhere, with the gate of the smallest such key.
                let mut in_flight: Vec<(DedupKey, usize)> = Vec::new();
                let mut lowest: Option<(DedupKey, Arc<Gate>)> = None;
                for &(key, index) in &pending {
                    entries[index] =
                        match state.try_reserve(key, ticket.number(), now, max_live_ids) {
                            Attempt::Fresh => {
                                ticket.hold(key, index);
                                BatchEntry::Fresh
                            }
                            Attempt::Duplicate(committed) => BatchEntry::Duplicate(committed),
                            Attempt::Refused(error) => BatchEntry::Refused(error),
                            Attempt::Held => {
                                repeats.push(index);
                                BatchEntry::NotDeduplicated
                            }
                            Attempt::InFlight(gate) => {
                                in_flight.push((key, index));
                                if lowest.as_ref().is_none_or(|(low, _)| key < *low) {
                                    lowest = Some((key, gate));
                                }
                                BatchEntry::NotDeduplicated
                            }
                        };
                }
                match lowest {
                    None => {
                        pending.clear();
                        None
                    }
                    Some((lowest, gate)) => {
                        ticket.give_back_above(&mut state, lowest, taken_before, |key, index| {
                            in_flight.push((key, index));
                        });
                        in_flight.sort_unstable_by_key(|&(_, index)| index);
                        pending = in_flight;
                        Some(Waiter::new(gate))
                    }
                }
            };
            if let Some(waiter) = waiter {
                waiter.wait().await;
            }
        }
        if !repeats.is_empty() {
            point_repeats_at_their_first(keys, &repeats, &mut entries);
        }
        // Ids given back and taken again sit after the others.
        ticket.sort_by_position();
        ReservedBatch { entries, ticket }
    }
}

/// Marks each entry of `repeats` as [`BatchEntry::SameAs`] the first entry with its key.
fn point_repeats_at_their_first(
    keys: &[Option<DedupKey>],
    repeats: &[usize],
    entries: &mut [BatchEntry],
) {
    let mut first: HashMap<DedupKey, usize, KeyHashState> =
        HashMap::with_capacity_and_hasher(keys.len(), KeyHashState::random());
    for (index, key) in keys.iter().enumerate() {
        if let Some(key) = key {
            first.entry(*key).or_insert(index);
        }
    }
    for &index in repeats {
        if let Some(&leader) = keys[index].as_ref().and_then(|key| first.get(key)) {
            entries[index] = BatchEntry::SameAs(leader);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::time::Instant;

    use super::super::test_support::*;
    use super::*;

    #[tokio::test]
    async fn batch_repeats_point_at_the_first_entry_with_that_key() {
        let window = window();
        let t0 = Instant::now();
        fresh(window.reserve(key("old"), t0)).commit(0, 1, t0);
        let ReservedBatch {
            entries,
            ticket: _ticket,
        } = window
            .reserve_batch(
                &[
                    Some(key("a")),
                    None,
                    Some(key("a")),
                    Some(key("old")),
                    Some(key("b")),
                ],
                || t0,
            )
            .await;
        assert!(matches!(entries[0], BatchEntry::Fresh));
        assert!(matches!(entries[1], BatchEntry::NotDeduplicated));
        assert!(matches!(entries[2], BatchEntry::SameAs(0)));
        assert!(matches!(
            entries[3],
            BatchEntry::Duplicate(Committed {
                shard: 0,
                sequence: 1
            })
        ));
        assert!(matches!(entries[4], BatchEntry::Fresh));
        assert_eq!(window.len(), 3);
    }

    #[tokio::test]
    async fn batch_reserves_in_key_order_so_crossed_batches_cannot_deadlock() {
        let window = window();
        let t0 = Instant::now();
        let (low, high) = {
            let (x, y) = (key("x"), key("y"));
            (x.min(y), x.max(y))
        };
        // Another request holds the lower key. A batch listing the higher key first must not
        // take it while waiting, or that request could wait on it in turn.
        let other = fresh(window.reserve(low, t0));
        let keys = [Some(high), Some(low)];
        let mut batch = pin!(window.reserve_batch(&keys, || t0));
        assert!(poll_once(batch.as_mut()).is_pending());
        assert_eq!(window.len(), 1);
        drop(fresh(window.reserve(high, t0)));
        other.commit(0, 12, t0);
        let entries = batch.await.entries;
        assert!(matches!(entries[0], BatchEntry::Fresh));
        assert!(matches!(
            entries[1],
            BatchEntry::Duplicate(Committed {
                shard: 0,
                sequence: 12
            })
        ));
    }

    #[test]
    fn batch_entry_past_the_cap_is_refused_alone() {
        let window = window_with_cap(1);
        let t0 = Instant::now();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let reserved =
            runtime.block_on(window.reserve_batch(&[Some(key("a")), Some(key("b"))], || t0));
        let refused = reserved
            .entries
            .iter()
            .filter(|e| matches!(e, BatchEntry::Refused(FifoError::WindowFull { .. })))
            .count();
        let fresh = reserved
            .entries
            .iter()
            .filter(|e| matches!(e, BatchEntry::Fresh))
            .count();
        assert_eq!((refused, fresh), (1, 1));
    }
}
