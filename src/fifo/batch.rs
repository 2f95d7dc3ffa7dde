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
                state.look_ahead(pending.iter().map(|&(key, _)| key));
                let taken_before = ticket.len();
                // In flight elsewhere, with the gate of the smallest such key.
                let mut in_flight: Vec<(DedupKey, usize)> = Vec::new();
                let mut lowest: Option<(DedupKey, Arc<Gate>)> = None;
                for &(key, index) in &pending {
                    entries[index] =
                        match state.try_reserve(key, ticket.number(), now, max_live_ids) {
                            Attempt::Fresh(at) => {
                                ticket.hold(key, index, at);
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
    use std::task::Poll;
    use std::time::Instant;

    use super::super::test_support::*;
    use super::*;

    /// The keys of `a` and `b`, the lower first.
    fn ordered(a: &str, b: &str) -> (DedupKey, DedupKey) {
        let (x, y) = (key(a), key(b));
        (x.min(y), x.max(y))
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[tokio::test]
    async fn batch_repeats_point_at_the_first_entry_with_that_key() {
        let window = window();
        let t0 = Instant::now();
        fresh(window.reserve(key("old"), t0)).commit(0, seq(1), t0);
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
                sequence,
            }) if sequence == seq(1)
        ));
        assert!(matches!(entries[4], BatchEntry::Fresh));
        assert_eq!(window.len(), 3);
    }

    #[tokio::test]
    async fn batch_reserves_in_key_order_so_crossed_batches_cannot_deadlock() {
        let window = window();
        let t0 = Instant::now();
        let (low, high) = ordered("x", "y");
        // Another request holds the lower key. A batch listing the higher key first must not
        // take it while waiting, or that request could wait on it in turn.
        let other = fresh(window.reserve(low, t0));
        let keys = [Some(high), Some(low)];
        let mut batch = pin!(window.reserve_batch(&keys, || t0));
        assert!(poll_once(batch.as_mut()).is_pending());
        assert_eq!(window.len(), 1);
        drop(fresh(window.reserve(high, t0)));
        other.commit(0, seq(12), t0);
        let entries = batch.await.entries;
        assert!(matches!(entries[0], BatchEntry::Fresh));
        assert!(matches!(
            entries[1],
            BatchEntry::Duplicate(Committed {
                shard: 0,
                sequence,
            }) if sequence == seq(12)
        ));
    }

    #[test]
    fn batch_entry_past_the_cap_is_refused_alone() {
        let window = window_with_cap(1);
        let t0 = Instant::now();
        let reserved = block_on(window.reserve_batch(&[Some(key("a")), Some(key("b"))], || t0));
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

    #[test]
    fn split_ticket_commits_each_shard_at_its_own_positions() {
        let window = window();
        let t0 = Instant::now();
        let keys: Vec<Option<DedupKey>> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|id| Some(key(id)))
            .collect();
        let reserved = block_on(window.reserve_batch(&keys, || t0));
        assert_eq!(reserved.ticket.len(), 5);
        // Entries 0, 2, 4 go to shard 7 at positions 0, 1, 2; entries 1, 3 to shard 9 at 0, 1.
        let parts = reserved.ticket.split(2, |i| Some((i % 2, i / 2)));
        assert_eq!(
            parts.iter().map(DedupTicket::len).collect::<Vec<_>>(),
            [3, 2]
        );
        let mut parts = parts.into_iter();
        let (even, odd) = (parts.next().unwrap(), parts.next().unwrap());
        even.commit(7, seq(100), t0);
        odd.commit(9, seq(200), t0);
        let expected = [(7, 100), (9, 200), (7, 101), (9, 201), (7, 102)];
        for (id, (shard, sequence)) in ["a", "b", "c", "d", "e"].iter().zip(expected) {
            assert_eq!(
                duplicate(window.reserve(key(id), t0)),
                Committed {
                    shard,
                    sequence: seq(sequence)
                },
                "{id}"
            );
        }
    }

    #[test]
    fn ids_without_a_place_are_released_by_the_split() {
        let window = window();
        let t0 = Instant::now();
        let reserved = block_on(window.reserve_batch(&[Some(key("a")), Some(key("b"))], || t0));
        let parts = reserved.ticket.split(1, |i| (i == 0).then_some((0, 0)));
        assert_eq!(window.len(), 1);
        drop(fresh(window.reserve(key("b"), t0)));
        assert_eq!(parts[0].keys().collect::<Vec<_>>(), [key("a")]);
    }

    #[tokio::test]
    async fn failed_shard_releases_only_its_ids_and_a_waiter_takes_them_over() {
        let window = window();
        let t0 = Instant::now();
        let keys = [Some(key("a")), Some(key("b"))];
        let reserved = window.reserve_batch(&keys, || t0).await;
        let mut parts = reserved.ticket.split(2, |i| Some((i, 0))).into_iter();
        let (stored, failed) = (parts.next().unwrap(), parts.next().unwrap());
        let waiter = in_flight(window.reserve(key("b"), t0));
        let mut wait = pin!(waiter.wait());
        assert!(poll_once(wait.as_mut()).is_pending());
        drop(failed);
        wait.await;
        stored.commit(0, seq(5), t0);
        assert_eq!(duplicate(window.reserve(key("a"), t0)).sequence, seq(5));
        fresh(window.reserve(key("b"), t0)).commit(1, seq(6), t0);
        assert_eq!(duplicate(window.reserve(key("b"), t0)).sequence, seq(6));
    }

    #[test]
    fn cancelled_batch_releases_the_keys_it_held_while_waiting() {
        let window = window();
        let t0 = Instant::now();
        let (low, high) = ordered("p", "q");
        // Another request holds the higher key: the batch takes the lower one and waits.
        let other = fresh(window.reserve(high, t0));
        let keys = [Some(low), Some(high)];
        {
            let mut batch = pin!(window.reserve_batch(&keys, || t0));
            assert!(poll_once(batch.as_mut()).is_pending());
            assert_eq!(window.len(), 2);
            in_flight(window.reserve(low, t0));
        }
        // The batch future is gone: the lower key is free again, the other request unaffected.
        assert_eq!(window.len(), 1);
        drop(fresh(window.reserve(low, t0)));
        other.commit(0, seq(1), t0);
    }

    #[tokio::test]
    async fn repeat_of_a_key_given_back_follows_its_first_entry() {
        let window = window();
        let t0 = Instant::now();
        let (low, high) = ordered("m", "n");
        let other = fresh(window.reserve(low, t0));
        // High is taken, then repeated, then given back because low is in flight elsewhere.
        let keys = [Some(high), Some(high), Some(low)];
        let mut batch = pin!(window.reserve_batch(&keys, || t0));
        assert!(poll_once(batch.as_mut()).is_pending());
        assert_eq!(window.len(), 1);
        other.commit(0, seq(3), t0);
        let reserved = batch.await;
        assert!(matches!(reserved.entries[0], BatchEntry::Fresh));
        assert!(matches!(reserved.entries[1], BatchEntry::SameAs(0)));
        assert!(matches!(
            reserved.entries[2],
            BatchEntry::Duplicate(Committed {
                shard: 0,
                sequence,
            }) if sequence == seq(3)
        ));
        assert_eq!(reserved.ticket.keys().collect::<Vec<_>>(), [high]);
    }

    /// The deadlock the ordering rule prevents: were a waiting batch to keep a larger key, a
    /// second batch taking the smaller key once it is free would wait on the first forever,
    /// and the first on it.
    #[tokio::test]
    async fn crossed_batches_cannot_deadlock_through_a_third_request() {
        let window = window();
        let t0 = Instant::now();
        let (low, high) = ordered("u", "v");
        let third = fresh(window.reserve(low, t0));
        let keys = [Some(high), Some(low)];
        let mut first = pin!(window.reserve_batch(&keys, || t0));
        assert!(poll_once(first.as_mut()).is_pending());
        drop(third);
        // The second batch runs before the first is woken: both keys must be free for it.
        let mut second = pin!(window.reserve_batch(&keys, || t0));
        let Poll::Ready(second) = poll_once(second.as_mut()) else {
            panic!("the second batch waits on a key the waiting first batch holds");
        };
        assert!(second
            .entries
            .iter()
            .all(|entry| matches!(entry, BatchEntry::Fresh)));
        assert!(poll_once(first.as_mut()).is_pending());
        second
            .ticket
            .split(1, |i| Some((0, i)))
            .into_iter()
            .for_each(|part| part.commit(0, seq(40), t0));
        let first = first.await;
        assert!(matches!(
            first.entries[..],
            [BatchEntry::Duplicate(_), BatchEntry::Duplicate(_)]
        ));
    }

    /// Requests that share keys, each listing them in its own order, all finish (a deadlock
    /// would hang the test), and every key is stored exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn crossed_batches_all_finish_and_store_each_key_once() {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;

        const REQUESTS: u64 = 64;
        const KEYS: u64 = 12;
        let window = window();
        let stored = Arc::new(AtomicU64::new(0));
        let mut requests = Vec::new();
        for request in 0..REQUESTS {
            let (window, stored) = (window.clone(), stored.clone());
            requests.push(tokio::spawn(async move {
                // A different rotation and direction of the same keys per request.
                let mut keys: Vec<Option<DedupKey>> = (0..KEYS)
                    .map(|i| Some(key(&((i + request) % KEYS).to_string())))
                    .collect();
                if request % 2 == 1 {
                    keys.reverse();
                }
                let reserved = window.reserve_batch(&keys, Instant::now).await;
                // Hold the ids for a while, so that other requests find them in flight.
                for _ in 0..request % 5 {
                    tokio::task::yield_now().await;
                }
                let fresh = reserved.ticket.len() as u64;
                let first = stored.fetch_add(fresh, Ordering::SeqCst);
                let parts = reserved.ticket.split(1, |i| Some((0, i)));
                for part in parts {
                    part.commit(0, seq(first), Instant::now());
                }
                fresh
            }));
        }
        let mut fresh = 0;
        for request in requests {
            fresh += tokio::time::timeout(std::time::Duration::from_secs(30), request)
                .await
                .expect("a batch is stuck")
                .unwrap();
        }
        assert_eq!(fresh, KEYS);
        assert_eq!(window.len(), KEYS as usize);
    }
}
