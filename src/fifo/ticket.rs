//! The two handles a reservation hands out: the ticket of the request that stores the record,
//! and the waiter of a request that must wait for it.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::key::DedupKey;
use super::window::{Committed, Shared};

/// The right, and the duty, to store the record of a fresh id.
///
/// Commit it with the record's shard and sequence once the record is durable; drop it if storing
/// failed or the request was abandoned, and the next waiting request takes the id over. The
/// ticket must live with whatever owns the append's outcome: dropping it while the append may
/// still succeed lets a retry store the record twice.
#[must_use = "dropping a ticket releases the id; commit it once the record is stored"]
pub struct DedupTicket {
    shared: Arc<Shared>,
    key: DedupKey,
    ticket: u64,
    committed: bool,
    /// Closed when the ticket goes away, which wakes every [`Waiter`] of the id.
    _done: watch::Sender<()>,
}

impl DedupTicket {
    pub(super) fn new(
        shared: Arc<Shared>,
        key: DedupKey,
        ticket: u64,
        done: watch::Sender<()>,
    ) -> Self {
        Self {
            shared,
            key,
            ticket,
            committed: false,
            _done: done,
        }
    }

    /// The reserved key.
    pub fn key(&self) -> DedupKey {
        self.key
    }

    /// Marks the id committed at (`shard`, `sequence`) until `now + window` and wakes the
    /// waiters, who then see a duplicate.
    pub fn commit(mut self, shard: u32, sequence: u64, now: Instant) {
        let expires_at = now + self.shared.config.window;
        let mut state = self.shared.lock();
        state.evict_expired(now);
        if state.holds(self.key, self.ticket) {
            state.commit_slot(self.key, Committed { shard, sequence }, expires_at);
        }
        // Otherwise the slot was replaced by a record found in the log, which came first.
        drop(state);
        self.committed = true;
    }
}

impl Drop for DedupTicket {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        self.shared.lock().release(self.key, self.ticket);
        // `_done` drops after this body, outside the lock, and wakes the waiters.
    }
}

impl fmt::Debug for DedupTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DedupTicket")
            .field("key", &self.key)
            .field("ticket", &self.ticket)
            .finish()
    }
}

/// A handle on an id another request holds; resolves when that request commits or gives up.
pub struct Waiter {
    done: watch::Receiver<()>,
}

impl Waiter {
    pub(super) fn new(done: watch::Receiver<()>) -> Self {
        Self { done }
    }

    /// Waits until the holding ticket is committed or dropped. Returns at once if that already
    /// happened. Reserve again afterwards: the id is then a duplicate, or free to take over.
    pub async fn wait(mut self) {
        // Nothing is ever sent: the ticket's sender closing is the only event, so `changed`
        // ends with the "closed" error, which here means "resolved".
        let _closed = self.done.changed().await;
    }
}

impl fmt::Debug for Waiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::super::test_support::*;
    use super::super::window::Reserved;
    use super::*;

    #[test]
    fn second_reservation_of_an_id_in_flight_gets_a_waiter() {
        let window = window();
        let t0 = Instant::now();
        let _ticket = fresh(window.reserve(key("a"), t0));
        in_flight(window.reserve(key("a"), t0));
    }

    #[tokio::test]
    async fn dropped_ticket_lets_a_waiter_take_over() {
        let window = window();
        let t0 = Instant::now();
        let ticket = fresh(window.reserve(key("a"), t0));
        let waiter = in_flight(window.reserve(key("a"), t0));
        let mut wait = pin!(waiter.wait());
        assert!(poll_once(wait.as_mut()).is_pending());
        drop(ticket);
        wait.await;
        let taken_over = fresh(window.reserve(key("a"), t0));
        taken_over.commit(2, 9, t0);
        assert_eq!(duplicate(window.reserve(key("a"), t0)).sequence, 9);
    }

    #[tokio::test]
    async fn waiter_of_an_already_resolved_ticket_returns_at_once() {
        let window = window();
        let t0 = Instant::now();
        let ticket = fresh(window.reserve(key("a"), t0));
        let waiter = in_flight(window.reserve(key("a"), t0));
        ticket.commit(0, 1, t0);
        assert!(poll_once(pin!(waiter.wait())).is_ready());
    }

    #[tokio::test]
    async fn later_request_waits_for_the_first_and_gets_its_sequence() {
        let window = window();
        let t0 = Instant::now();
        let first = match window.reserve_or_wait(key("a"), || t0).await.unwrap() {
            Reserved::Fresh(ticket) => ticket,
            other => panic!("expected fresh, got {other:?}"),
        };
        let mut second = pin!(window.reserve_or_wait(key("a"), || t0));
        assert!(poll_once(second.as_mut()).is_pending());
        first.commit(4, 77, t0);
        match second.await.unwrap() {
            Reserved::Duplicate(committed) => assert_eq!(
                committed,
                Committed {
                    shard: 4,
                    sequence: 77
                }
            ),
            other => panic!("expected duplicate, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_puts_of_one_id_store_exactly_one_record() {
        const REQUESTS: usize = 16;
        let window = window();
        let t0 = Instant::now();
        let stored = Arc::new(AtomicU64::new(0));
        let start = Arc::new(tokio::sync::Barrier::new(REQUESTS));
        let mut requests = Vec::new();
        for _ in 0..REQUESTS {
            let (window, stored, start) = (window.clone(), stored.clone(), start.clone());
            requests.push(tokio::spawn(async move {
                start.wait().await;
                match window.reserve_or_wait(key("a"), || t0).await.unwrap() {
                    Reserved::Fresh(ticket) => {
                        // "Store" the record: the count of stores is its sequence number.
                        let sequence = 100 + stored.fetch_add(1, Ordering::SeqCst);
                        ticket.commit(0, sequence, t0);
                        (true, sequence)
                    }
                    Reserved::Duplicate(committed) => (false, committed.sequence),
                }
            }));
        }
        let mut fresh_count = 0;
        for request in requests {
            let (was_fresh, sequence) = request.await.unwrap();
            fresh_count += usize::from(was_fresh);
            assert_eq!(sequence, 100);
        }
        assert_eq!(fresh_count, 1);
        assert_eq!(stored.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn failed_first_put_hands_the_id_to_exactly_one_waiter() {
        const WAITERS: usize = 8;
        let window = window();
        let t0 = Instant::now();
        let failing = fresh(window.reserve(key("a"), t0));
        let stored = Arc::new(AtomicU64::new(0));
        let mut requests = Vec::new();
        for _ in 0..WAITERS {
            let (window, stored) = (window.clone(), stored.clone());
            requests.push(tokio::spawn(async move {
                match window.reserve_or_wait(key("a"), || t0).await.unwrap() {
                    Reserved::Fresh(ticket) => {
                        let sequence = 500 + stored.fetch_add(1, Ordering::SeqCst);
                        ticket.commit(1, sequence, t0);
                        sequence
                    }
                    Reserved::Duplicate(committed) => committed.sequence,
                }
            }));
        }
        drop(failing);
        for request in requests {
            assert_eq!(request.await.unwrap(), 500);
        }
        assert_eq!(stored.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn futures_and_tickets_can_move_between_threads() {
        fn assert_send<T: Send>(_: &T) {}
        let window = window();
        let t0 = Instant::now();
        assert_send(&window.reserve_or_wait(key("a"), || t0));
        assert_send(&window.reserve_batch(&[], || t0));
        assert_send(&fresh(window.reserve(key("b"), t0)));
    }

    #[tokio::test]
    async fn record_found_in_the_log_overrides_an_in_flight_reservation() {
        let window = window();
        let t0 = Instant::now();
        let ticket = fresh(window.reserve(key("a"), t0));
        let waiter = in_flight(window.reserve(key("a"), t0));
        window.insert_committed(key("a"), 1, 3, t0).unwrap();
        assert_eq!(duplicate(window.reserve(key("a"), t0)).sequence, 3);
        ticket.commit(1, 4, t0);
        waiter.wait().await;
        assert_eq!(duplicate(window.reserve(key("a"), t0)).sequence, 3);
    }
}
