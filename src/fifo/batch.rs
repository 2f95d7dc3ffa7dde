//! Reserving all the dedup keys of one PutRecords request: repeats inside the request, one lock
//! acquisition for the whole batch, and an acquisition order that keeps crossed requests from
//! waiting on each other forever.

use std::time::Instant;

use super::error::FifoError;
use super::key::DedupKey;
use super::ticket::{DedupTicket, Waiter};
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
    /// shard with [`DedupTicket::split_off`], and commit each part once its batch is stored.
    pub ticket: DedupTicket,
}

impl DedupWindow {
    /// Reserves every key of one request's entries (`None`: the entry is not deduplicated) and
    /// returns one [`BatchEntry`] per entry, in entry order, and the ticket of the fresh ones.
    ///
    /// A key repeated inside the batch is reserved once and the later entries point at the first
    /// ([`BatchEntry::SameAs`]); waiting on its own ticket would never end. Distinct keys are
    /// reserved in ascending key order, as many as possible under one lock acquisition: when a
    /// key is in flight in another request, the batch keeps the smaller keys it already holds,
    /// waits for that one, and goes on from it. So two requests that share keys cannot each hold
    /// a key the other waits for: the one waiting holds only smaller keys than the one it waits
    /// on, and every chain of waits ends at a request that holds all its keys.
    ///
    /// Dropping the future while it waits releases every id reserved so far.
    pub async fn reserve_batch(
        &self,
        keys: &[Option<DedupKey>],
        clock: impl Fn() -> Instant,
    ) -> ReservedBatch {
        let mut entries = vec![BatchEntry::NotDeduplicated; keys.len()];
        // Ascending by key, and entries of one key by index: the first entry of a key leads.
        let mut order: Vec<(DedupKey, usize)> = keys
            .iter()
            .enumerate()
            .filter_map(|(index, key)| key.map(|key| (key, index)))
            .collect();
        order.sort_unstable();
        let mut leader: Option<(DedupKey, usize)> = None;
        order.retain(|&(key, index)| match leader {
            Some((leading, first)) if leading == key => {
                entries[index] = BatchEntry::SameAs(first);
                false
            }
            _ => {
                leader = Some((key, index));
                true
            }
        });

        let max_live_ids = self.config().max_live_ids;
        // Created before the first reservation, so that a cancelled call releases what it holds.
        let mut ticket = self.new_ticket(order.len());
        let mut next = 0;
        while next < order.len() {
            let now = clock();
            let blocked = {
                let mut state = self.lock_evicting(now, order.len() - next);
                loop {
                    let Some(&(key, index)) = order.get(next) else {
                        break None;
                    };
                    entries[index] =
                        match state.try_reserve(key, ticket.number(), now, max_live_ids) {
                            Attempt::Fresh => {
                                ticket.hold(key, index);
                                BatchEntry::Fresh
                            }
                            Attempt::Duplicate(committed) => BatchEntry::Duplicate(committed),
                            Attempt::Refused(error) => BatchEntry::Refused(error),
                            // Not taken: this key is tried again once its holder lets go.
                            Attempt::InFlight(gate) => break Some(Waiter::new(gate)),
                        };
                    next += 1;
                }
            };
            if let Some(waiter) = blocked {
                waiter.wait().await;
            }
        }
        // Held in key order; splitting per shard walks them in entry order.
        ticket.sort_by_position();
        ReservedBatch { entries, ticket }
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
