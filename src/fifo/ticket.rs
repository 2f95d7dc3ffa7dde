//! The two handles a reservation hands out: the ticket of the request that stores the records,
//! and the waiter of a request that must wait for one of them.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Notify;

use super::key::DedupKey;
use super::window::{open_all, Shared, State};
use crate::storage::SequenceNumber;

/// The right, and the duty, to store the records of fresh ids: one ticket holds every id one
/// request reserved, so committing or releasing them takes the window's lock once.
///
/// Commit it with the records' shard and sequence numbers once they are durable; drop it if
/// storing failed or the request was abandoned, and the next waiting request takes each id over.
/// A request whose records go to several shards splits the ticket, one part per shard
/// ([`split`](Self::split)), so that each part commits or fails with its own append. A
/// ticket must live with whatever owns the append's outcome: dropping it while the append may
/// still succeed lets a retry store a record twice.
#[must_use = "dropping a ticket releases its ids; commit it once the records are stored"]
pub struct DedupTicket {
    shared: Arc<Shared>,
    /// The number the records of the held ids carry.
    number: u64,
    /// The held ids, ascending by position.
    held: Vec<Held>,
}

/// One id a ticket holds, and where its record sits: the entry index given to
/// [`reserve_batch`](super::DedupWindow::reserve_batch), or, after
/// [`split`](DedupTicket::split), the record's position in its shard's batch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Held {
    pub(super) key: DedupKey,
    pub(super) position: usize,
    /// The log index of the id's record when it was reserved (eviction may move a record that
    /// stays in flight for long; the window then finds it through its index).
    pub(super) at: u64,
}

impl DedupTicket {
    pub(super) fn new(shared: Arc<Shared>, number: u64, capacity: usize) -> Self {
        Self {
            shared,
            number,
            held: Vec::with_capacity(capacity),
        }
    }

    pub(super) fn number(&self) -> u64 {
        self.number
    }

    /// Adds an id the window has just marked as held by this ticket, at `position`. Called in
    /// ascending position order, or followed by [`sort_by_position`](Self::sort_by_position).
    pub(super) fn hold(&mut self, key: DedupKey, position: usize, at: u64) {
        self.held.push(Held { key, position, at });
    }

    pub(super) fn sort_by_position(&mut self) {
        self.held.sort_unstable_by_key(|id| id.position);
    }

    /// Gives back the ids added to the held list from its index `since` on whose key is above
    /// `lowest`, and reports each to `back`. Called in the critical section that took them, so
    /// the window forgets them as if they had never been taken: no other request saw them.
    pub(super) fn give_back_above(
        &mut self,
        state: &mut State,
        lowest: DedupKey,
        since: usize,
        mut back: impl FnMut(DedupKey, usize),
    ) {
        let mut given_back = Vec::new();
        let mut index = 0;
        self.held.retain(|id| {
            let keep = index < since || id.key < lowest;
            index += 1;
            if !keep {
                given_back.push(*id);
            }
            keep
        });
        let mut gates = Vec::new();
        state.release_held(self.number, &given_back, &mut gates);
        debug_assert!(gates.is_empty(), "nobody can wait on an id taken just now");
        for id in given_back {
            back(id.key, id.position);
        }
    }

    #[cfg(test)]
    /// The reserved keys, by position.
    pub fn keys(&self) -> impl Iterator<Item = DedupKey> + '_ {
        self.held.iter().map(|id| id.key)
    }

    /// How many ids the ticket holds.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Splits the ticket into `parts` tickets, one per batch the request's records are stored
    /// in (one per shard). `place(position)` names, for the id at that position (the entry
    /// index given to `reserve_batch`), the part it goes to and its new position there — the
    /// offset of its record from that batch's first sequence number, distinct within a part —
    /// or `None` when its record is not stored; such ids are released.
    pub fn split(
        mut self,
        parts: usize,
        place: impl Fn(usize) -> Option<(usize, usize)>,
    ) -> Vec<DedupTicket> {
        let mut sizes = vec![0usize; parts];
        for id in &self.held {
            if let Some((part, _)) = place(id.position) {
                if let Some(size) = sizes.get_mut(part) {
                    *size += 1;
                }
            }
        }
        let mut split: Vec<DedupTicket> = sizes
            .iter()
            .map(|&size| DedupTicket::new(Arc::clone(&self.shared), self.number, size))
            .collect();
        // Ids without a (valid) place stay here, and are released when `self` drops below.
        self.held.retain(|id| match place(id.position) {
            Some((part, position)) if part < parts => {
                split[part].hold(id.key, position, id.at);
                false
            }
            _ => true,
        });
        for part in &mut split {
            if !part.held.is_sorted_by_key(|id| id.position) {
                part.sort_by_position();
            }
        }
        split
    }

    #[cfg(test)]
    /// Marks each held id committed at (`shard`, `first_sequence + position`) until
    /// `now + window`, and wakes its waiters, who then see a duplicate. For a ticket from
    /// [`reserve`](super::DedupWindow::reserve), the one id's position is 0, so
    /// `first_sequence` is its sequence number.
    pub fn commit(self, shard: u32, first_sequence: SequenceNumber, now: Instant) {
        self.stored(shard, first_sequence, now).commit();
    }

    /// Records that the held ids' records are stored at (`shard`, `first_sequence +
    /// position`) as of `now`, without taking the window's lock yet. From here on the ids can
    /// only end committed: the returned [`StoredTicket`] commits them when it is committed or
    /// dropped, so that several of them can be committed under one lock acquisition
    /// ([`StoredTicket::commit_all`]) by whoever gathers them, and still none is lost if that
    /// gatherer goes away.
    pub fn stored(
        mut self,
        shard: u32,
        first_sequence: SequenceNumber,
        now: Instant,
    ) -> StoredTicket {
        StoredTicket {
            shared: Arc::clone(&self.shared),
            number: self.number,
            held: std::mem::take(&mut self.held),
            shard,
            first_sequence,
            stored_at: now,
        }
    }
}

impl Drop for DedupTicket {
    fn drop(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let mut gates = Vec::new();
        self.shared
            .lock()
            .release_held(self.number, &self.held, &mut gates);
        open_all(gates);
    }
}

impl fmt::Debug for DedupTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DedupTicket")
            .field("number", &self.number)
            .field("held", &self.held)
            .finish()
    }
}

/// Ids whose records are stored, waiting to be marked committed: see [`DedupTicket::stored`].
/// Dropping it commits them.
#[must_use = "a stored ticket commits when dropped; commit it (or several at once) explicitly"]
pub struct StoredTicket {
    shared: Arc<Shared>,
    number: u64,
    /// Ascending by position.
    held: Vec<Held>,
    shard: u32,
    first_sequence: SequenceNumber,
    stored_at: Instant,
}

impl StoredTicket {
    #[cfg(test)]
    /// Commits the ids now (see [`DedupTicket::commit`]).
    pub fn commit(self) {
        Self::commit_all([self]);
    }

    /// Commits the ids of every ticket, under one lock acquisition per window (one, when they
    /// come from one request), and then wakes their waiters.
    pub fn commit_all(tickets: impl IntoIterator<Item = StoredTicket>) {
        let mut tickets: Vec<StoredTicket> = tickets
            .into_iter()
            .filter(|ticket| !ticket.held.is_empty())
            .collect();
        let mut gates = Vec::new();
        while let Some(first) = tickets.first() {
            let shared = Arc::clone(&first.shared);
            let (mut ids, mut latest) = (0, first.stored_at);
            for ticket in tickets.iter().filter(|t| Arc::ptr_eq(&t.shared, &shared)) {
                ids += ticket.held.len();
                latest = latest.max(ticket.stored_at);
            }
            // Every ticket was stored at or before `latest`, and the clock only moves on:
            // whatever has expired at `latest` has expired now.
            let mut state = shared.lock_evicting(latest, ids);
            tickets.retain_mut(|ticket| {
                if !Arc::ptr_eq(&ticket.shared, &shared) {
                    return true;
                }
                let held = std::mem::take(&mut ticket.held);
                state.commit_held(
                    ticket.number,
                    &held,
                    ticket.shard,
                    ticket.first_sequence,
                    ticket.stored_at + shared.config.window,
                    &mut gates,
                );
                false
            });
        }
        open_all(gates);
    }
}

impl Drop for StoredTicket {
    fn drop(&mut self) {
        if self.held.is_empty() {
            return;
        }
        // The records exist: releasing the ids would let a retry store them again.
        let held = std::mem::take(&mut self.held);
        Self::commit_all([StoredTicket {
            shared: Arc::clone(&self.shared),
            number: self.number,
            held,
            shard: self.shard,
            first_sequence: self.first_sequence,
            stored_at: self.stored_at,
        }]);
    }
}

impl fmt::Debug for StoredTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredTicket")
            .field("number", &self.number)
            .field("held", &self.held)
            .field("shard", &self.shard)
            .field("first_sequence", &self.first_sequence)
            .finish()
    }
}

/// The wake-up of the requests waiting on one id in flight: created by the first of them,
/// opened once, when the id is committed, released or replaced by a record found in the log.
#[derive(Default)]
pub(super) struct Gate {
    open: AtomicBool,
    notify: Notify,
}

impl Gate {
    /// Opens the gate for good and wakes everyone waiting on it.
    pub(super) fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    async fn wait(&self) {
        loop {
            // A `Notified` receives `notify_waiters` from its creation on, so an `open` between
            // the check below and the `await` still wakes it.
            let notified = self.notify.notified();
            if self.open.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

/// A handle on an id another request holds; resolves when that request commits or gives up.
pub struct Waiter {
    gate: Arc<Gate>,
}

impl Waiter {
    pub(super) fn new(gate: Arc<Gate>) -> Self {
        Self { gate }
    }

    /// Waits until the holding ticket is committed or dropped. Returns at once if that already
    /// happened. Reserve again afterwards: the id is then a duplicate, or free to take over.
    pub async fn wait(self) {
        self.gate.wait().await;
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
        let (ticket, waiter) = held_and_waited_on(&window, key("a"), t0);
        let mut wait = pin!(waiter.wait());
        assert!(poll_once(wait.as_mut()).is_pending());
        drop(ticket);
        wait.await;
        let taken_over = fresh(window.reserve(key("a"), t0));
        taken_over.commit(2, seq(9), t0);
        assert_eq!(duplicate(window.reserve(key("a"), t0)).sequence, seq(9));
    }

    #[tokio::test]
    async fn waiter_of_an_already_resolved_ticket_returns_at_once() {
        let window = window();
        let t0 = Instant::now();
        let (ticket, waiter) = held_and_waited_on(&window, key("a"), t0);
        ticket.commit(0, seq(1), t0);
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
        first.commit(4, seq(77), t0);
        match second.await.unwrap() {
            Reserved::Duplicate(committed) => assert_eq!(committed, first_record(4, 77)),
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
                        ticket.commit(0, seq(sequence), t0);
                        (true, sequence)
                    }
                    Reserved::Duplicate(committed) => (false, committed.sequence.get()),
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
                        ticket.commit(1, seq(sequence), t0);
                        sequence
                    }
                    Reserved::Duplicate(committed) => committed.sequence.get(),
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
        let (ticket, waiter) = held_and_waited_on(&window, key("a"), t0);
        window.insert_committed(key("a"), 1, seq(3), t0).unwrap();
        assert_eq!(duplicate(window.reserve(key("a"), t0)).sequence, seq(3));
        ticket.commit(1, seq(4), t0);
        waiter.wait().await;
        assert_eq!(duplicate(window.reserve(key("a"), t0)).sequence, seq(3));
    }

    #[tokio::test]
    async fn stored_ticket_dropped_unread_still_commits_and_wakes_waiters() {
        let window = window();
        let t0 = Instant::now();
        let (ticket, waiter) = held_and_waited_on(&window, key("a"), t0);
        // The append succeeded, but whoever was to commit the ids went away.
        drop(ticket.stored(3, seq(30), t0));
        waiter.wait().await;
        assert_eq!(duplicate(window.reserve(key("a"), t0)), first_record(3, 30));
    }

    #[test]
    fn stored_tickets_of_two_windows_commit_together() {
        let (one, other) = (window(), window());
        let t0 = Instant::now();
        let stored = [
            fresh(one.reserve(key("a"), t0)).stored(0, seq(1), t0),
            fresh(other.reserve(key("a"), t0)).stored(1, seq(2), t0),
            fresh(one.reserve(key("b"), t0)).stored(0, seq(3), t0),
        ];
        StoredTicket::commit_all(stored);
        assert_eq!(duplicate(one.reserve(key("a"), t0)).sequence, seq(1));
        assert_eq!(duplicate(one.reserve(key("b"), t0)).sequence, seq(3));
        assert_eq!(duplicate(other.reserve(key("a"), t0)).sequence, seq(2));
    }

    #[tokio::test]
    async fn record_found_in_the_log_wakes_the_waiters_of_an_id_in_flight() {
        let window = window();
        let t0 = Instant::now();
        let (_ticket, waiter) = held_and_waited_on(&window, key("a"), t0);
        let mut wait = pin!(waiter.wait());
        assert!(poll_once(wait.as_mut()).is_pending());
        window.insert_committed(key("a"), 2, seq(7), t0).unwrap();
        wait.await;
        assert_eq!(duplicate(window.reserve(key("a"), t0)).sequence, seq(7));
    }

    #[test]
    fn only_an_id_someone_waits_on_gets_a_gate() {
        let window = window();
        let t0 = Instant::now();
        let (ticket, first) = held_and_waited_on(&window, key("a"), t0);
        let second = in_flight(window.reserve(key("a"), t0));
        // Both waiters share the one gate the first of them created.
        assert!(Arc::ptr_eq(&first.gate, &second.gate));
        assert_eq!(Arc::strong_count(&first.gate), 3);
        ticket.commit(0, seq(1), t0);
        assert_eq!(Arc::strong_count(&first.gate), 2);
    }
}
