//! One stream's deduplication window: reserve-or-resolve in one step, waiting on ids in flight,
//! expiry in commit order, and a hard cap on tracked ids.
//!
//! Every id is in one of three states, changed only under the window's mutex:
//!
//! ```text
//!   absent ──reserve──▶ in flight ──ticket.commit──▶ committed ──now ≥ expires_at──▶ absent
//!     ▲                     │                                    (evicted or replaced)
//!     └─────ticket dropped──┘  (request failed or was cancelled; waiters wake and retry)
//! ```
//!
//! A second `reserve` of an in-flight id gets a [`Waiter`] instead of a ticket, so exactly one
//! request stores the record and every other one answers with its sequence number. The wake-up
//! `Gate` of an id is created only when someone first waits on it, and opened when the id
//! leaves the in-flight state; an id nobody waits on costs no allocation.
//!
//! Time is always a parameter (`now: Instant`) so that tests move it by hand.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::mem;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::error::FifoError;
use super::hasher::KeyHashState;
use super::key::DedupKey;
use super::ticket::{DedupTicket, Gate, Held, Waiter};

/// How long a committed id keeps making puts duplicates (SQS's fixed interval).
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(300);
/// The longest window a stream may configure; keeps `now + window` far from overflowing and
/// the memory a stream can pin bounded in time.
pub const MAX_DEDUP_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// Ids (committed and in flight) one stream's window tracks before refusing new ones: about
/// 3,300 deduplicated puts per second sustained over the default window, and at most about
/// 176 MB (typically 88 MB) of window memory; see the module documentation of `fifo`.
pub const DEFAULT_MAX_LIVE_IDS: usize = 1_000_000;

/// Expired ids a call evicts at most, at the least: with [`EVICTIONS_PER_ID`] per id the call
/// reserves or commits on top, eviction keeps pace with arrivals (every id is queued once per
/// commit), while the first call after a quiet spell does not empty a whole window under the
/// lock that every put of the stream waits on. Only the timing of eviction depends on it, never
/// an answer: an expired id is treated as absent whether or not it was evicted yet, and a call
/// at the cap evicts everything expired before it refuses an id.
const MIN_EVICTIONS_PER_CALL: usize = 64;
/// See [`MIN_EVICTIONS_PER_CALL`].
const EVICTIONS_PER_ID: usize = 2;
/// Expired ids looked up together before they are removed (see `State::evict_expired`).
const EVICTION_CHUNK: usize = 16;

/// The settings of one stream's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupWindowConfig {
    /// How long after its commit an id stays a duplicate. Default [`DEFAULT_DEDUP_WINDOW`], at
    /// most [`MAX_DEDUP_WINDOW`].
    pub window: Duration,
    /// The most ids tracked at once; past it `reserve` fails with [`FifoError::WindowFull`].
    /// Default [`DEFAULT_MAX_LIVE_IDS`].
    pub max_live_ids: usize,
}

impl Default for DedupWindowConfig {
    fn default() -> Self {
        Self {
            window: DEFAULT_DEDUP_WINDOW,
            max_live_ids: DEFAULT_MAX_LIVE_IDS,
        }
    }
}

impl DedupWindowConfig {
    /// Checks the settings; the error names the one that is out of range.
    pub fn validate(&self) -> Result<(), FifoError> {
        if self.window.is_zero() || self.window > MAX_DEDUP_WINDOW {
            return Err(FifoError::WindowOutOfRange {
                window: self.window,
                max: MAX_DEDUP_WINDOW,
            });
        }
        if self.max_live_ids == 0 {
            return Err(FifoError::ZeroLiveIdCap);
        }
        Ok(())
    }
}

/// Where the first record of an id was stored: the answer every duplicate gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Committed {
    /// The shard that holds the record.
    pub shard: u32,
    /// The record's sequence number in that shard.
    pub sequence: u64,
}

/// The outcome of [`DedupWindow::reserve`].
#[derive(Debug)]
pub enum Reservation {
    /// The id is new (or its last use has expired): the caller must store the record and then
    /// commit the ticket, or drop it if storing failed.
    Fresh(DedupTicket),
    /// The id was committed within the window: answer with the first record, store nothing.
    Duplicate(Committed),
    /// Another request holds the id and has not finished: wait, then reserve again.
    InFlight(Waiter),
}

/// The outcome of [`DedupWindow::reserve_or_wait`]: an in-flight id has been waited out.
#[derive(Debug)]
pub enum Reserved {
    /// Store the record, then commit the ticket.
    Fresh(DedupTicket),
    /// Answer with the first record, store nothing.
    Duplicate(Committed),
}

/// One stream's deduplication window. Cloning shares the same window.
///
/// Internally a `std::sync::Mutex` guards a map and a queue; it is never held across an
/// `.await`, and every operation under it is O(1) amortised per id.
#[derive(Clone)]
pub struct DedupWindow {
    shared: Arc<Shared>,
}

/// What the window and its tickets share.
pub(super) struct Shared {
    pub(super) config: DedupWindowConfig,
    /// Numbers tickets: an id's slot names the ticket that holds it, so a ticket whose id was
    /// taken from it (by a record found in the log) leaves the new owner alone.
    next_ticket: AtomicU64,
    state: Mutex<State>,
}

/// The tracked ids.
///
/// Invariants: every `Slot::Committed` has at least one `QueueEntry` with the same key and
/// `not_before >= expires_at`; `queue` is sorted by `not_before`; every `Slot::InFlight` is in
/// the `held` list of exactly one live ticket with the slot's ticket number.
///
/// An id whose expiry has passed but whose queue entry waits behind a later one (commit times
/// out of order), or that no call has evicted yet, is treated as absent and may be reserved
/// again; its old queue entry then stays behind as a stale one, removed when it reaches the
/// front. New ids are refused once either `slots` or `queue` holds `max_live_ids` entries (after
/// evicting everything expired), so `slots` never exceeds the cap and `queue` never exceeds it
/// by more than the ids in flight: memory stays bounded by the cap.
pub(super) struct State {
    slots: HashMap<DedupKey, Slot, KeyHashState>,
    queue: VecDeque<QueueEntry>,
}

/// What the window knows about one id.
enum Slot {
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
}

impl Slot {
    /// True for a committed id whose window has passed: it counts as absent.
    fn expired(&self, now: Instant) -> bool {
        matches!(self, Slot::Committed { expires_at, .. } if now >= *expires_at)
    }

    /// The attempt of the ticket numbered `ticket` on a known id: a duplicate while committed
    /// within the window, a wait while in flight, and taken afresh once expired. The map
    /// does not grow for the last, but the id is queued again while its old entry still waits
    /// in the queue, so the caller checks the queue's cap first.
    fn try_take(&mut self, ticket: u64, now: Instant) -> Attempt {
        match self {
            Slot::Committed {
                committed,
                expires_at,
            } if now < *expires_at => Attempt::Duplicate(*committed),
            Slot::InFlight { ticket: holder, .. } if *holder == ticket => Attempt::Held,
            Slot::InFlight { gate, .. } => {
                Attempt::InFlight(Arc::clone(gate.get_or_insert_with(Default::default)))
            }
            Slot::Committed { .. } => {
                *self = Slot::InFlight { ticket, gate: None };
                Attempt::Fresh
            }
        }
    }
}

/// A committed id in commit order. `not_before` is the id's expiry raised to its predecessor's,
/// so the queue stays sorted even when commit times arrive slightly out of order.
struct QueueEntry {
    key: DedupKey,
    not_before: Instant,
}

/// What one reservation attempt found, under the lock.
pub(super) enum Attempt {
    /// The id is now held by the ticket that asked.
    Fresh,
    /// The id was committed within the window.
    Duplicate(Committed),
    /// Another ticket holds the id; the gate opens when it lets go.
    InFlight(Arc<Gate>),
    /// The ticket that asked already holds the id (a repeat inside one batch).
    Held,
    /// The id is new and the window is at its cap.
    Refused(FifoError),
}

impl DedupWindow {
    /// An empty window with `config`, after checking it.
    pub fn new(config: DedupWindowConfig) -> Result<Self, FifoError> {
        config.validate()?;
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                next_ticket: AtomicU64::new(0),
                state: Mutex::new(State {
                    slots: HashMap::with_hasher(KeyHashState::random()),
                    queue: VecDeque::new(),
                }),
            }),
        })
    }

    /// How long a committed id stays a duplicate.
    pub fn window(&self) -> Duration {
        self.shared.config.window
    }

    /// The window's settings.
    pub fn config(&self) -> DedupWindowConfig {
        self.shared.config
    }

    /// Ids tracked right now, committed and in flight. Expired ids count until a call evicts
    /// them.
    pub fn len(&self) -> usize {
        self.shared.lock().slots.len()
    }

    /// True when no id is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks `key` and, if it is new, reserves it — in one step, so two concurrent puts of one
    /// id can never both be told to store it.
    ///
    /// Fails with [`FifoError::WindowFull`] only when the id is new and the window is at its cap;
    /// duplicates and in-flight ids are answered even then.
    pub fn reserve(&self, key: DedupKey, now: Instant) -> Result<Reservation, FifoError> {
        let mut ticket = self.new_ticket(1);
        let attempt = self.lock_evicting(now, 1).try_reserve(
            key,
            ticket.number(),
            now,
            self.shared.config.max_live_ids,
        );
        match attempt {
            Attempt::Fresh => {
                ticket.hold(key, 0);
                Ok(Reservation::Fresh(ticket))
            }
            Attempt::Duplicate(committed) => Ok(Reservation::Duplicate(committed)),
            Attempt::InFlight(gate) => Ok(Reservation::InFlight(Waiter::new(gate))),
            Attempt::Refused(error) => Err(error),
            // Numbered just now: no slot can name this ticket yet.
            Attempt::Held => unreachable!("a new ticket already holds an id"),
        }
    }

    /// [`reserve`](Self::reserve), waiting out ids in flight: returns a ticket or the committed
    /// first record. `clock` is read afresh for every attempt.
    ///
    /// Never call this while holding a ticket of the same window for another key that a
    /// concurrent request might wait on in the opposite order; use
    /// [`reserve_batch`](Self::reserve_batch) for several keys.
    pub async fn reserve_or_wait(
        &self,
        key: DedupKey,
        clock: impl Fn() -> Instant,
    ) -> Result<Reserved, FifoError> {
        loop {
            match self.reserve(key, clock())? {
                Reservation::Fresh(ticket) => return Ok(Reserved::Fresh(ticket)),
                Reservation::Duplicate(committed) => return Ok(Reserved::Duplicate(committed)),
                Reservation::InFlight(waiter) => waiter.wait().await,
            }
        }
    }

    /// Records an id found in the log on start (the log stores the id with its record).
    ///
    /// If the key is already known, the FIRST record wins: of two records whose windows
    /// overlap, the earlier one is kept; a record stored after the other had expired replaces
    /// it. `committed_at` must not be later than the clock the window is next called with; feed
    /// records roughly in commit order (older ones still work, but are evicted later).
    /// Fails with [`FifoError::WindowFull`] when the key is new and the window is at its cap.
    pub fn insert_committed(
        &self,
        key: DedupKey,
        shard: u32,
        sequence: u64,
        committed_at: Instant,
    ) -> Result<(), FifoError> {
        let window = self.shared.config.window;
        let max_live_ids = self.shared.config.max_live_ids;
        let expires_at = committed_at + window;
        let committed = Committed { shard, sequence };
        let mut gates = Vec::new();
        {
            // Anything expired at `committed_at` is expired now too: evicting there is safe.
            let mut state = self.lock_evicting(committed_at, 1);
            state.make_room(committed_at, max_live_ids);
            let keep_new = match state.slots.get(&key) {
                None => {
                    let live_ids = state.slots.len();
                    if live_ids >= max_live_ids || state.queue.len() >= max_live_ids {
                        return Err(FifoError::WindowFull {
                            live_ids,
                            max_live_ids,
                        });
                    }
                    true
                }
                // The log is the truth: the record is stored; the ticket's later commit or drop
                // finds its slot gone and leaves this one alone. Its waiters wake (below) and see
                // this record.
                Some(Slot::InFlight { .. }) => true,
                Some(Slot::Committed {
                    expires_at: old, ..
                }) => {
                    let old = *old;
                    if expires_at >= old + window {
                        // The old record had expired before the new one was stored.
                        true
                    } else if expires_at + window <= old {
                        // The new record had expired before the old one was stored.
                        false
                    } else {
                        // Windows overlap: the earlier record is the first, the later a
                        // duplicate.
                        expires_at < old
                    }
                }
            };
            if keep_new {
                if let Some(Slot::InFlight {
                    gate: Some(gate), ..
                }) = state.slots.insert(
                    key,
                    Slot::Committed {
                        committed,
                        expires_at,
                    },
                ) {
                    gates.push(gate);
                }
                state.enqueue(key, expires_at);
            }
        }
        open_all(gates);
        Ok(())
    }

    /// A ticket with a fresh number and no ids yet, with room for `ids` of them.
    pub(super) fn new_ticket(&self, ids: usize) -> DedupTicket {
        let number = self.shared.next_ticket.fetch_add(1, Ordering::Relaxed);
        DedupTicket::new(Arc::clone(&self.shared), number, ids)
    }

    /// Locks the state for a call that is about to handle `ids` ids, after evicting its share of
    /// expired ones.
    pub(super) fn lock_evicting(&self, now: Instant, ids: usize) -> MutexGuard<'_, State> {
        self.shared.lock_evicting(now, ids)
    }
}

impl fmt::Debug for DedupWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DedupWindow")
            .field("config", &self.shared.config)
            .field("live_ids", &self.len())
            .finish()
    }
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic under the lock can only come from an allocation inside a map or queue call,
        // which leaves both structures valid; the state stays usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// [`lock`](Self::lock), then evicts the share of expired ids of a call handling `ids` ids.
    pub(super) fn lock_evicting(&self, now: Instant, ids: usize) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        let budget = MIN_EVICTIONS_PER_CALL.max(ids.saturating_mul(EVICTIONS_PER_ID));
        state.evict_expired(now, budget);
        state
    }
}

impl State {
    /// Pops up to `budget` queue entries whose time has come and drops their ids if still
    /// expired committed (a stale entry of an id that was reserved again finds an in-flight or
    /// newer slot).
    fn evict_expired(&mut self, now: Instant, budget: usize) {
        let mut left = budget;
        while left > 0 {
            // The queue is sorted by `not_before`: the due entries are a prefix.
            let due = self
                .queue
                .iter()
                .take(left.min(EVICTION_CHUNK))
                .take_while(|entry| entry.not_before <= now)
                .count();
            if due == 0 {
                return;
            }
            // Every key of the chunk is looked up before any is removed: independent lookups,
            // whose cache misses (old ids are long out of the cache) the processor overlaps
            // instead of waiting for one after the other. Removing a key changes no other
            // key's state, so the answers hold for the whole chunk.
            let mut expired = [false; EVICTION_CHUNK];
            for (flag, entry) in expired.iter_mut().zip(&self.queue).take(due) {
                *flag = self
                    .slots
                    .get(&entry.key)
                    .is_some_and(|slot| slot.expired(now));
            }
            for &flag in &expired[..due] {
                if let Some(entry) = self.queue.pop_front() {
                    if flag {
                        self.slots.remove(&entry.key);
                    }
                }
            }
            left -= due;
        }
    }

    /// At the cap, evicts every expired id, so that only live ids can make a new one refused.
    fn make_room(&mut self, now: Instant, max_live_ids: usize) {
        if self.slots.len() >= max_live_ids || self.queue.len() >= max_live_ids {
            self.evict_expired(now, usize::MAX);
        }
    }

    /// Checks `key` and, if it is absent or expired, hands it to the ticket numbered `ticket`:
    /// the one atomic step of a reservation. The caller records a `Fresh` key in that ticket
    /// before it lets go of the lock.
    pub(super) fn try_reserve(
        &mut self,
        key: DedupKey,
        ticket: u64,
        now: Instant,
        max_live_ids: usize,
    ) -> Attempt {
        self.make_room(now, max_live_ids);
        let live_ids = self.slots.len();
        let queue_full = self.queue.len() >= max_live_ids;
        if live_ids < max_live_ids && !queue_full {
            // Room for a new id: one lookup finds the key or the place to put it.
            return match self.slots.entry(key) {
                Entry::Occupied(mut slot) => slot.get_mut().try_take(ticket, now),
                Entry::Vacant(slot) => {
                    slot.insert(Slot::InFlight { ticket, gate: None });
                    Attempt::Fresh
                }
            };
        }
        // At the cap only known ids are answered; `entry` could grow the table for a new one.
        match self.slots.get_mut(&key) {
            Some(slot) if !queue_full => slot.try_take(ticket, now),
            Some(slot @ Slot::Committed { .. }) if slot.expired(now) => {
                Attempt::Refused(FifoError::WindowFull {
                    live_ids,
                    max_live_ids,
                })
            }
            Some(slot) => slot.try_take(ticket, now),
            None => Attempt::Refused(FifoError::WindowFull {
                live_ids,
                max_live_ids,
            }),
        }
    }

    /// Commits the ids of `held` still held by the ticket numbered `ticket`, each at
    /// `first_sequence + position` in `shard`, until `expires_at`; collects the gates to open.
    pub(super) fn commit_held(
        &mut self,
        ticket: u64,
        held: &[Held],
        shard: u32,
        first_sequence: u64,
        expires_at: Instant,
        gates: &mut Vec<Arc<Gate>>,
    ) {
        for id in held {
            let Some(slot) = self.slots.get_mut(&id.key) else {
                continue;
            };
            if !matches!(slot, Slot::InFlight { ticket: holder, .. } if *holder == ticket) {
                // Replaced by a record found in the log, which came first.
                continue;
            }
            let committed = Committed {
                shard,
                sequence: first_sequence + id.position as u64,
            };
            let held_slot = mem::replace(
                slot,
                Slot::Committed {
                    committed,
                    expires_at,
                },
            );
            if let Slot::InFlight {
                gate: Some(gate), ..
            } = held_slot
            {
                gates.push(gate);
            }
            self.enqueue(id.key, expires_at);
        }
    }

    /// Forgets the ids of `held` still held by the ticket numbered `ticket` (its request failed
    /// or was abandoned); collects the gates to open.
    pub(super) fn release_held(&mut self, ticket: u64, held: &[Held], gates: &mut Vec<Arc<Gate>>) {
        for id in held {
            if matches!(
                self.slots.get(&id.key),
                Some(Slot::InFlight { ticket: holder, .. }) if *holder == ticket
            ) {
                if let Some(Slot::InFlight {
                    gate: Some(gate), ..
                }) = self.slots.remove(&id.key)
                {
                    gates.push(gate);
                }
            }
        }
    }

    /// Queues a committed id for eviction at `expires_at` (or its predecessor's time, if later).
    fn enqueue(&mut self, key: DedupKey, expires_at: Instant) {
        let not_before = match self.queue.back() {
            Some(back) => back.not_before.max(expires_at),
            None => expires_at,
        };
        debug_assert!(
            not_before >= expires_at,
            "queue entry must not expire before its id"
        );
        self.queue.push_back(QueueEntry { key, not_before });
    }
}

/// Opens the gates collected under the lock, after it is released: the woken requests go
/// straight for that lock.
pub(super) fn open_all(gates: Vec<Arc<Gate>>) {
    for gate in gates {
        gate.open();
    }
}

#[cfg(test)]
mod tests {
    use super::super::key::DedupScope;
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn duplicate_within_the_window_returns_the_first_sequence() {
        let window = window();
        let t0 = Instant::now();
        fresh(window.reserve(key("a"), t0)).commit(3, 41, t0);
        let first = Committed {
            shard: 3,
            sequence: 41,
        };
        assert_eq!(duplicate(window.reserve(key("a"), t0)), first);
        let last_moment = t0 + WINDOW - Duration::from_nanos(1);
        assert_eq!(duplicate(window.reserve(key("a"), last_moment)), first);
        assert_eq!(window.len(), 1);
    }

    #[test]
    fn id_is_fresh_again_once_the_window_has_passed() {
        let window = window();
        let t0 = Instant::now();
        fresh(window.reserve(key("a"), t0)).commit(0, 1, t0);
        let ticket = fresh(window.reserve(key("a"), t0 + WINDOW));
        ticket.commit(0, 7, t0 + WINDOW);
        assert_eq!(
            duplicate(window.reserve(key("a"), t0 + WINDOW)),
            Committed {
                shard: 0,
                sequence: 7
            }
        );
    }

    #[test]
    fn duplicates_do_not_extend_the_window() {
        let window = window();
        let t0 = Instant::now();
        fresh(window.reserve(key("a"), t0)).commit(0, 1, t0);
        duplicate(window.reserve(key("a"), t0 + WINDOW / 2));
        drop(fresh(window.reserve(key("a"), t0 + WINDOW)));
    }

    #[test]
    fn expired_ids_are_evicted_by_later_calls() {
        let window = window();
        let t0 = Instant::now();
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            let at = t0 + Duration::from_secs(i as u64);
            fresh(window.reserve(key(id), at)).commit(0, i as u64, at);
        }
        assert_eq!(window.len(), 3);
        drop(fresh(
            window.reserve(key("z"), t0 + WINDOW + Duration::from_secs(1)),
        ));
        // "a" and "b" expired and were evicted; "c" is still live; "z"'s ticket was dropped.
        assert_eq!(window.len(), 1);
        duplicate(window.reserve(key("c"), t0 + WINDOW + Duration::from_secs(1)));
        drop(fresh(
            window.reserve(key("z"), t0 + WINDOW + Duration::from_secs(2)),
        ));
        assert!(window.is_empty());
    }

    #[test]
    fn group_scope_distinguishes_groups_and_stream_scope_does_not() {
        let window = window();
        let t0 = Instant::now();
        let group = |g: &str| DedupKey::for_id(DedupScope::MessageGroup, Some(g), "x");
        let stream = |g: &str| DedupKey::for_id(DedupScope::Stream, Some(g), "x");
        fresh(window.reserve(group("g1"), t0)).commit(0, 1, t0);
        fresh(window.reserve(group("g2"), t0)).commit(1, 2, t0);
        fresh(window.reserve(stream("g1"), t0)).commit(0, 3, t0);
        assert_eq!(
            duplicate(window.reserve(stream("g2"), t0)),
            Committed {
                shard: 0,
                sequence: 3
            }
        );
        assert_eq!(duplicate(window.reserve(group("g2"), t0)).sequence, 2);
    }

    #[test]
    fn content_keys_of_different_data_are_different_ids() {
        let window = window();
        let t0 = Instant::now();
        let content = |data: &[u8]| DedupKey::for_content(DedupScope::Stream, None, data);
        fresh(window.reserve(content(b"one"), t0)).commit(0, 1, t0);
        drop(fresh(window.reserve(content(b"two"), t0)));
        duplicate(window.reserve(content(b"one"), t0));
    }

    #[test]
    fn cap_refuses_new_ids_but_still_answers_known_ones() {
        let window = window_with_cap(2);
        let t0 = Instant::now();
        fresh(window.reserve(key("a"), t0)).commit(0, 1, t0);
        let _held = fresh(window.reserve(key("b"), t0));
        assert_eq!(
            window.reserve(key("c"), t0).unwrap_err(),
            FifoError::WindowFull {
                live_ids: 2,
                max_live_ids: 2
            }
        );
        assert_eq!(duplicate(window.reserve(key("a"), t0)).sequence, 1);
        in_flight(window.reserve(key("b"), t0));
        assert_eq!(
            window.insert_committed(key("d"), 0, 2, t0),
            Err(FifoError::WindowFull {
                live_ids: 2,
                max_live_ids: 2
            })
        );
        // Once "a" expires its room is free again.
        drop(fresh(window.reserve(key("c"), t0 + WINDOW)));
    }

    #[test]
    fn expired_id_not_yet_evicted_is_fresh_again() {
        let window = window();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(10);
        // "b" commits first with a later clock reading, so "a"'s queue entry sorts behind it
        // and "a" stays in the map after it expires.
        fresh(window.reserve(key("b"), t1)).commit(0, 1, t1);
        fresh(window.reserve(key("a"), t0)).commit(0, 2, t0);
        let at = t0 + WINDOW;
        let again = fresh(window.reserve(key("a"), at));
        assert_eq!(window.len(), 2);
        again.commit(0, 3, at);
        assert_eq!(duplicate(window.reserve(key("a"), at)).sequence, 3);
    }

    #[test]
    fn queue_entries_waiting_for_eviction_count_toward_the_cap() {
        let window = window_with_cap(2);
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(10);
        fresh(window.reserve(key("b"), t1)).commit(0, 1, t1);
        fresh(window.reserve(key("a"), t0)).commit(0, 2, t0);
        // Re-reserving expired "a" would add a third queue entry while two are still queued.
        assert!(matches!(
            window.reserve(key("a"), t0 + WINDOW),
            Err(FifoError::WindowFull { .. })
        ));
        // Once the front ("b") expires both entries go and the id is taken again.
        drop(fresh(window.reserve(key("a"), t1 + WINDOW)));
        assert!(window.is_empty());
    }

    #[test]
    fn stale_queue_entry_does_not_evict_an_id_committed_again() {
        let window = window();
        let t0 = Instant::now();
        let t5 = t0 + Duration::from_secs(5);
        fresh(window.reserve(key("front"), t5)).commit(0, 1, t5);
        fresh(window.reserve(key("a"), t0)).commit(0, 2, t0);
        // "a" expired at t0 + WINDOW but its queue entry waits behind "front" until t5 + WINDOW.
        let again_at = t0 + WINDOW;
        fresh(window.reserve(key("a"), again_at)).commit(0, 3, again_at);
        let after_front = t5 + WINDOW + Duration::from_secs(1);
        assert_eq!(duplicate(window.reserve(key("a"), after_front)).sequence, 3);
        // "front" is gone; "a" (committed again) remains.
        assert_eq!(window.len(), 1);
    }

    #[test]
    fn commit_times_out_of_order_are_all_evicted() {
        let window = window();
        let t0 = Instant::now();
        for (i, offset) in [10u64, 0, 7, 3].iter().enumerate() {
            let at = t0 + Duration::from_secs(*offset);
            fresh(window.reserve(key(&i.to_string()), at)).commit(0, i as u64, at);
        }
        drop(fresh(window.reserve(
            key("probe"),
            t0 + WINDOW + Duration::from_secs(10),
        )));
        assert!(window.is_empty());
    }

    #[test]
    fn rebuild_keeps_the_first_of_two_overlapping_records() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(10);
        for in_order in [true, false] {
            let window = window();
            let records = [(t0, 5u64), (later, 9)];
            let mut feed = records.to_vec();
            if !in_order {
                feed.reverse();
            }
            for (at, sequence) in feed {
                window.insert_committed(key("a"), 0, sequence, at).unwrap();
            }
            assert_eq!(duplicate(window.reserve(key("a"), later)).sequence, 5);
            assert_eq!(window.len(), 1);
        }
    }

    #[test]
    fn rebuild_keeps_the_live_record_when_the_first_had_expired() {
        let t0 = Instant::now();
        let reused = t0 + WINDOW + Duration::from_secs(100);
        for in_order in [true, false] {
            let window = window();
            let mut feed = vec![(t0, 5u64), (reused, 9)];
            if !in_order {
                feed.reverse();
            }
            for (at, sequence) in feed {
                window.insert_committed(key("a"), 0, sequence, at).unwrap();
            }
            assert_eq!(duplicate(window.reserve(key("a"), reused)).sequence, 9);
        }
    }

    #[test]
    fn rebuilt_ids_expire_a_window_after_their_commit() {
        let window = window();
        let t0 = Instant::now();
        window.insert_committed(key("a"), 2, 8, t0).unwrap();
        assert_eq!(
            duplicate(window.reserve(key("a"), t0 + WINDOW / 2)),
            Committed {
                shard: 2,
                sequence: 8
            }
        );
        drop(fresh(window.reserve(key("a"), t0 + WINDOW)));
    }

    #[test]
    fn config_out_of_range_is_rejected_naming_the_setting() {
        let zero = DedupWindowConfig {
            window: Duration::ZERO,
            ..DedupWindowConfig::default()
        };
        let err = DedupWindow::new(zero).unwrap_err();
        assert!(err.to_string().starts_with("dedup_window "), "{err}");
        let long = DedupWindowConfig {
            window: MAX_DEDUP_WINDOW + Duration::from_secs(1),
            ..DedupWindowConfig::default()
        };
        assert!(matches!(
            long.validate(),
            Err(FifoError::WindowOutOfRange { .. })
        ));
        let no_ids = DedupWindowConfig {
            max_live_ids: 0,
            ..DedupWindowConfig::default()
        };
        assert_eq!(no_ids.validate(), Err(FifoError::ZeroLiveIdCap));
        assert_eq!(DedupWindowConfig::default().validate(), Ok(()));
        assert_eq!(window().window(), WINDOW);
    }

    /// The arithmetic of the module documentation of `fifo`, checked against the real sizes.
    #[test]
    fn memory_per_live_id_stays_within_the_documented_bound() {
        use std::mem::size_of;
        assert_eq!(size_of::<DedupKey>(), 16);
        assert!(
            size_of::<Slot>() <= 32,
            "Slot is {} bytes",
            size_of::<Slot>()
        );
        let map_entry = size_of::<(DedupKey, Slot)>();
        assert!(map_entry <= 48, "map entry is {map_entry} bytes");
        let queue_entry = size_of::<QueueEntry>();
        assert!(queue_entry <= 32, "queue entry is {queue_entry} bytes");
        // hashbrown: one control byte per bucket, at most 7/8 of the buckets full, and the bucket
        // count doubles on growth, so a table holds between 7/16 and 7/8 of its buckets.
        let map_best = (map_entry + 1) * 8 / 7;
        let map_worst = (map_entry + 1) * 16 / 7;
        // VecDeque: capacity doubles, so between half and all of it is used.
        let (queue_best, queue_worst) = (queue_entry, 2 * queue_entry);
        assert!(map_best + queue_best <= 88, "{}", map_best + queue_best);
        assert!(
            map_worst + queue_worst <= 176,
            "{}",
            map_worst + queue_worst
        );
        let worst_at_default_cap = DEFAULT_MAX_LIVE_IDS * (map_worst + queue_worst);
        assert!(
            worst_at_default_cap <= 176_000_000,
            "{worst_at_default_cap}"
        );
    }
}
