//! Reserving all the dedup keys of one PutRecords request: repeats inside the request, and an
//! acquisition order that keeps crossed requests from waiting on each other forever.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::time::Instant;

use super::error::FifoError;
use super::key::DedupKey;
use super::ticket::DedupTicket;
use super::window::{Committed, DedupWindow, Reserved};

/// What one entry of a batch gets from [`DedupWindow::reserve_batch`].
#[derive(Debug)]
pub enum BatchEntry {
    /// The entry has no dedup key: store it as usual.
    NotDeduplicated,
    /// Store the record, then commit the ticket.
    Fresh(DedupTicket),
    /// Answer with the first record, store nothing.
    Duplicate(Committed),
    /// An earlier entry of the same batch (this index) has the same key: store nothing and
    /// answer with whatever that entry gets (its sequence number with `duplicate = true`, or its
    /// failure).
    SameAs(usize),
    /// The window is full; this entry fails, the others are unaffected.
    Refused(FifoError),
}

impl DedupWindow {
    /// Reserves every key of one request's entries (`None`: the entry is not deduplicated) and
    /// returns one [`BatchEntry`] per entry, in entry order.
    ///
    /// A key repeated inside the batch is reserved once and the later entries point at the first
    /// ([`BatchEntry::SameAs`]); waiting on its own ticket would never end. Distinct keys are
    /// reserved in ascending key order, so two requests that share keys cannot each hold a
    /// ticket the other waits for: the one waiting holds only smaller keys than the one it waits
    /// on, and every chain of waits ends at a request that holds all its keys.
    pub async fn reserve_batch(
        &self,
        keys: &[Option<DedupKey>],
        clock: impl Fn() -> Instant,
    ) -> Vec<BatchEntry> {
        let mut first_index: HashMap<DedupKey, usize> = HashMap::with_capacity(keys.len());
        let mut entries: Vec<BatchEntry> = Vec::with_capacity(keys.len());
        for (index, key) in keys.iter().enumerate() {
            entries.push(match key {
                None => BatchEntry::NotDeduplicated,
                Some(key) => match first_index.entry(*key) {
                    Entry::Occupied(first) => BatchEntry::SameAs(*first.get()),
                    Entry::Vacant(slot) => {
                        slot.insert(index);
                        // Placeholder, replaced below once the key is reserved.
                        BatchEntry::NotDeduplicated
                    }
                },
            });
        }
        let mut order: Vec<(DedupKey, usize)> = first_index.into_iter().collect();
        order.sort_unstable();
        for (key, index) in order {
            entries[index] = match self.reserve_or_wait(key, &clock).await {
                Ok(Reserved::Fresh(ticket)) => BatchEntry::Fresh(ticket),
                Ok(Reserved::Duplicate(committed)) => BatchEntry::Duplicate(committed),
                Err(error) => BatchEntry::Refused(error),
            };
        }
        entries
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
        let entries = window
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
        assert!(matches!(entries[0], BatchEntry::Fresh(_)));
        assert!(matches!(entries[1], BatchEntry::NotDeduplicated));
        assert!(matches!(entries[2], BatchEntry::SameAs(0)));
        assert!(matches!(
            entries[3],
            BatchEntry::Duplicate(Committed {
                shard: 0,
                sequence: 1
            })
        ));
        assert!(matches!(entries[4], BatchEntry::Fresh(_)));
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
        let entries = batch.await;
        assert!(matches!(entries[0], BatchEntry::Fresh(_)));
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
        let entries =
            runtime.block_on(window.reserve_batch(&[Some(key("a")), Some(key("b"))], || t0));
        let refused = entries
            .iter()
            .filter(|e| matches!(e, BatchEntry::Refused(FifoError::WindowFull { .. })))
            .count();
        let fresh = entries
            .iter()
            .filter(|e| matches!(e, BatchEntry::Fresh(_)))
            .count();
        assert_eq!((refused, fresh), (1, 1));
    }
}
