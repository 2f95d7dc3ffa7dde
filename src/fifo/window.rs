//! One stream's deduplication window: reserve-or-resolve in one step, waiting on ids in flight,
//! expiry in reservation order, and a hard cap on tracked ids.
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
//! The state of each id lives in a record of the window's log, which holds records in the order
//! their ids were reserved; an index maps each tracked key to its record:
//!
//! ```text
//!   index: key ──▶ log index          log: [start] [start+1] ... [start+len-1]
//!                                           oldest ──── evicted from here     newest ◀── reserve
//! ```
//!
//! A ticket remembers where its ids' records are, so committing them writes records a request
//! reserved together — neighbours in the log — and never searches the index; eviction reads the
//! log from its front and only touches the index to drop the key.
//!
//! The index keeps the keys reserved lately in a small table of their own, which stays in the
//! cache, and moves them into its main table in [`DedupWindow::settle`] — upkeep the put path
//! does while its records are being stored, together with eviction and mapping the log's next
//! pages. A reservation then only looks its keys up in the main table (all of a batch's at once,
//! so that the cache misses overlap) and writes to cached memory.
//!
//! Time is always a parameter (`now: Instant`) so that tests move it by hand.

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
/// 153 MB (typically 77 MB) of window memory; see the module documentation of `fifo`.
pub const DEFAULT_MAX_LIVE_IDS: usize = 1_000_000;

/// Log records a call evicts at most, at the least: with [`EVICTIONS_PER_ID`] per id the call
/// reserves or commits on top, eviction keeps pace with arrivals (every id adds one record),
/// while the first call after a quiet spell does not empty a whole window under the lock that
/// every put of the stream waits on. Only the timing of eviction depends on it, never an
/// answer: an expired id is treated as absent whether or not it was evicted yet, and a call at
/// the cap evicts everything it can before it refuses an id.
const MIN_EVICTIONS_PER_CALL: usize = 64;
/// See [`MIN_EVICTIONS_PER_CALL`].
const EVICTIONS_PER_ID: usize = 2;
/// Expired records whose keys are looked up together before they are removed (see
/// `State::evict_expired`).
const EVICTION_CHUNK: usize = 16;
/// How many times the ids of the last settle's batch [`DedupWindow::settle`] makes room for in
/// the log ahead of time (see `Log::map_ahead`).
const MAP_AHEAD_BATCHES: usize = 4;
/// Keys reserved since the last settle that the window holds in its small table before it
/// moves them to the main one by itself (see `Index`): about 100 KB, which stays in the cache.
const MAX_RECENT_IDS: usize = 4096;

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
/// Internally a `std::sync::Mutex` guards an index and a log; it is never held across an
/// `.await`, and every operation under it is O(1) amortised per id.
#[derive(Clone)]
pub struct DedupWindow {
    shared: Arc<Shared>,
}

/// What the window and its tickets share.
pub(super) struct Shared {
    pub(super) config: DedupWindowConfig,
    /// Numbers tickets: a record names the ticket that holds its id, so a ticket whose id was
    /// taken from it (by a record found in the log) leaves the new owner alone.
    next_ticket: AtomicU64,
    state: Mutex<State>,
}

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
pub(super) struct State {
    /// Where each tracked key's record is, as a log index.
    index: Index,
    log: Log,
}

/// Key to log index, in two tables: `recent` takes the keys reserved since the last
/// [`settle`](Index::settle), and is small enough to stay in the cache, so a reservation
/// writes there; `main` holds the rest. A key is in at most one of them. Moving keys from
/// `recent` to `main` — a write to a random place of a large table, per key — is work a caller
/// can do while it waits for something else (see [`DedupWindow::settle`]); it happens anyway
/// once `recent` holds [`MAX_RECENT_IDS`].
struct Index {
    main: HashMap<DedupKey, u64, KeyHashState>,
    recent: HashMap<DedupKey, u64, KeyHashState>,
}

/// Records in reservation order: `records[i]` has the log index `start + i`. Log indexes are
/// never reused.
struct Log {
    records: VecDeque<Record>,
    start: u64,
    /// Memory of `records` known to be mapped: the slots of log indexes up to `mapped_until`
    /// in the buffer of capacity `mapped_capacity`, counted from `mapped_from` (see
    /// [`Log::map_ahead`]).
    mapped_from: u64,
    mapped_until: u64,
    mapped_capacity: usize,
}

/// What the window knows about one reservation of an id.
struct Record {
    key: DedupKey,
    state: RecordState,
}

enum RecordState {
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

/// What one reservation attempt found, under the lock.
pub(super) enum Attempt {
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

impl DedupWindow {
    /// An empty window with `config`, after checking it.
    pub fn new(config: DedupWindowConfig) -> Result<Self, FifoError> {
        config.validate()?;
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                next_ticket: AtomicU64::new(0),
                state: Mutex::new(State {
                    index: Index::new(),
                    log: Log {
                        records: VecDeque::new(),
                        start: 0,
                        mapped_from: 0,
                        mapped_until: 0,
                        mapped_capacity: 0,
                    },
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
        self.shared.lock().index.len()
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
            Attempt::Fresh(at) => {
                ticket.hold(key, 0, at);
                Ok(Reservation::Fresh(ticket))
            }
            Attempt::Duplicate(committed) => Ok(Reservation::Duplicate(committed)),
            Attempt::InFlight(gate) => Ok(Reservation::InFlight(Waiter::new(gate))),
            Attempt::Refused(error) => Err(error),
            // Numbered just now: no record can name this ticket yet.
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
        let found = RecordState::Committed {
            committed: Committed { shard, sequence },
            expires_at,
        };
        let mut gates = Vec::new();
        {
            // Anything expired at `committed_at` is expired now too: evicting there is safe.
            let mut state = self.lock_evicting(committed_at, 1);
            state.make_room(committed_at, max_live_ids);
            let State { index, log } = &mut *state;
            match index.get(&key).and_then(|at| Some((at, log.get_mut(at)?))) {
                None => {
                    let live_ids = index.len();
                    if live_ids >= max_live_ids || log.len() >= max_live_ids {
                        return Err(FifoError::WindowFull {
                            live_ids,
                            max_live_ids,
                        });
                    }
                    let at = log.push(key, found);
                    index.insert_new(key, at);
                }
                Some((_, record)) => {
                    let keep_new = match &record.state {
                        // The log is the truth: the record is stored; the ticket's later commit
                        // or drop finds its record taken and leaves it alone. Its waiters wake
                        // (below) and see this record.
                        RecordState::InFlight { .. } | RecordState::Gone => true,
                        RecordState::Committed {
                            expires_at: old, ..
                        } => {
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
                    // Replaced in place: the log does not grow, and the record leaves when its
                    // place in the log reaches the front and it has expired.
                    if keep_new {
                        if let RecordState::InFlight {
                            gate: Some(gate), ..
                        } = mem::replace(&mut record.state, found)
                        {
                            gates.push(gate);
                        }
                    }
                }
            }
        }
        open_all(gates);
        Ok(())
    }

    /// Does the window's upkeep now: moves the keys reserved since the last call into the main
    /// table and evicts the ids expired at `now`. Every answer stays the same whether or not
    /// this is called — the window does the same work within later calls otherwise — but a
    /// caller that is about to wait anyway (the put path, while its records are stored) takes
    /// that work off the next reservation's way.
    pub fn settle(&self, now: Instant) {
        let mut state = self.shared.lock();
        let moved = state.index.recent.len();
        state.index.settle();
        let ids = moved.max(MIN_EVICTIONS_PER_CALL);
        state.evict_expired(now, ids.saturating_mul(EVICTIONS_PER_ID));
        // Never past what the cap lets the log hold anyway.
        let room = self
            .shared
            .config
            .max_live_ids
            .saturating_sub(state.log.len());
        state
            .log
            .map_ahead(ids.saturating_mul(MAP_AHEAD_BATCHES).min(room));
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
        // A panic under the lock can only come from an allocation inside an index or log call,
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

impl Index {
    fn new() -> Self {
        let seeded = KeyHashState::random();
        Self {
            main: HashMap::with_hasher(seeded),
            recent: HashMap::with_hasher(seeded),
        }
    }

    fn len(&self) -> usize {
        self.main.len() + self.recent.len()
    }

    /// The log index of `key`'s record.
    fn get(&self, key: &DedupKey) -> Option<u64> {
        self.recent.get(key).or_else(|| self.main.get(key)).copied()
    }

    fn get_mut(&mut self, key: &DedupKey) -> Option<&mut u64> {
        match self.recent.get_mut(key) {
            Some(at) => Some(at),
            None => self.main.get_mut(key),
        }
    }

    /// Looks each of `keys` up in the main table, all before any is changed, and makes room in
    /// the recent table for the ones it lacks. The lookups do not depend on each other, so the
    /// processor overlaps their cache misses (the main table is mostly out of the cache when a
    /// batch comes) instead of taking them one after the other; the reservations that follow
    /// find those lines cached.
    fn look_ahead(&mut self, keys: impl Iterator<Item = DedupKey>) {
        let new = keys.filter(|key| !self.main.contains_key(key)).count();
        self.recent
            .reserve(new.min(MAX_RECENT_IDS.saturating_sub(self.recent.len())));
    }

    /// Adds a key the index does not hold.
    fn insert_new(&mut self, key: DedupKey, at: u64) {
        if self.recent.len() >= MAX_RECENT_IDS {
            self.settle();
        }
        self.recent.insert(key, at);
    }

    /// Forgets `key` if it maps to `at`.
    fn remove_at(&mut self, key: &DedupKey, at: u64) {
        if self.recent.get(key) == Some(&at) {
            self.recent.remove(key);
        } else if self.main.get(key) == Some(&at) {
            self.main.remove(key);
        }
    }

    /// Moves every recent key into the main table.
    fn settle(&mut self) {
        self.main.extend(self.recent.drain());
    }
}

impl Log {
    fn len(&self) -> usize {
        self.records.len()
    }

    fn get_mut(&mut self, at: u64) -> Option<&mut Record> {
        let offset = usize::try_from(at.checked_sub(self.start)?).ok()?;
        self.records.get_mut(offset)
    }

    /// Appends a record; returns its log index.
    fn push(&mut self, key: DedupKey, state: RecordState) -> u64 {
        let at = self.start + self.records.len() as u64;
        self.records.push_back(Record { key, state });
        at
    }

    /// Makes sure the memory of the next `ahead` records is mapped, by writing placeholder
    /// records there and removing them again: the first write to a fresh page of memory costs a
    /// page fault, better taken here (in `settle`, while the caller waits anyway) than by the
    /// reservations that append those records. It only writes while the buffer has slots it has
    /// not written yet: a buffer the log has gone round once is mapped whole.
    fn map_ahead(&mut self, ahead: usize) {
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

    fn pop_front(&mut self) -> Option<Record> {
        let record = self.records.pop_front()?;
        self.start += 1;
        Some(record)
    }

    /// The record at `at` if it is in flight for the ticket numbered `ticket` and has `key`.
    fn held_mut(&mut self, at: u64, key: DedupKey, ticket: u64) -> Option<&mut Record> {
        self.get_mut(at).filter(|record| {
            record.key == key
                && matches!(record.state, RecordState::InFlight { ticket: holder, .. } if holder == ticket)
        })
    }
}

impl RecordState {
    /// Whether the record can leave the log at `now`; `None` for one in flight.
    fn may_leave(&self, now: Instant) -> Option<bool> {
        match self {
            RecordState::Gone => Some(true),
            RecordState::Committed { expires_at, .. } => Some(*expires_at <= now),
            RecordState::InFlight { .. } => None,
        }
    }

    /// The attempt of the ticket numbered `ticket` on an id with this record: a duplicate while
    /// committed within the window, a wait while in flight; `None` once expired (or gone): the
    /// id may be taken afresh.
    fn attempt(&mut self, ticket: u64, now: Instant) -> Option<Attempt> {
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
    /// Removes up to `budget` records from the front of the log that can leave (expired or
    /// gone), and their keys from the index; moves in-flight records at the front out of the way
    /// when something behind them can leave.
    fn evict_expired(&mut self, now: Instant, budget: usize) {
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
    fn make_room(&mut self, now: Instant, max_live_ids: usize) {
        if self.index.len() >= max_live_ids || self.log.len() >= max_live_ids {
            self.evict_expired(now, usize::MAX);
        }
    }

    /// Prepares the reservation of `keys` (see `Index::look_ahead`).
    pub(super) fn look_ahead(&mut self, keys: impl Iterator<Item = DedupKey>) {
        self.index.look_ahead(keys);
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
    pub(super) fn release_held(&mut self, ticket: u64, held: &[Held], gates: &mut Vec<Arc<Gate>>) {
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

    #[test]
    fn id_in_flight_at_the_front_does_not_hold_expired_ids_back() {
        let window = window();
        let t0 = Instant::now();
        let slow = fresh(window.reserve(key("slow"), t0));
        for (i, id) in ["a", "b"].iter().enumerate() {
            fresh(window.reserve(key(id), t0)).commit(0, i as u64, t0);
        }
        let later = t0 + WINDOW;
        drop(fresh(window.reserve(key("probe"), later)));
        // "a" and "b" are gone although "slow", reserved before them, is still in flight.
        assert_eq!(window.len(), 1);
        in_flight(window.reserve(key("slow"), later));
        // Its record moved in the log; the ticket still finds it.
        slow.commit(4, 9, later);
        assert_eq!(
            duplicate(window.reserve(key("slow"), later)),
            Committed {
                shard: 4,
                sequence: 9
            }
        );
    }

    #[test]
    fn one_call_evicts_a_bounded_share_and_later_calls_the_rest() {
        let window = window();
        let t0 = Instant::now();
        let ids = 3 * MIN_EVICTIONS_PER_CALL;
        for i in 0..ids {
            fresh(window.reserve(key(&i.to_string()), t0)).commit(0, i as u64, t0);
        }
        let later = t0 + WINDOW;
        let probe = fresh(window.reserve(key("probe"), later));
        assert_eq!(window.len(), ids - MIN_EVICTIONS_PER_CALL + 1);
        // An expired id not evicted yet is absent all the same.
        let last = key(&(ids - 1).to_string());
        fresh(window.reserve(last, later)).commit(1, 99, later);
        assert_eq!(duplicate(window.reserve(last, later)).sequence, 99);
        // The calls since evicted the rest: "probe" and "last" remain.
        assert_eq!(window.len(), 2);
        drop(probe);
    }

    #[tokio::test]
    async fn window_at_its_cap_evicts_past_a_long_run_of_ids_in_flight() {
        let in_flight_ids = MIN_EVICTIONS_PER_CALL + 10;
        let committed_ids = MIN_EVICTIONS_PER_CALL;
        let window = window_with_cap(in_flight_ids + committed_ids);
        let t0 = Instant::now();
        let keys: Vec<Option<DedupKey>> = (0..in_flight_ids)
            .map(|i| Some(key(&format!("slow-{i}"))))
            .collect();
        let slow = window.reserve_batch(&keys, || t0).await;
        for i in 0..committed_ids {
            fresh(window.reserve(key(&i.to_string()), t0)).commit(0, i as u64, t0);
        }
        assert!(matches!(
            window.reserve(key("new"), t0),
            Err(FifoError::WindowFull { .. })
        ));
        // The expired ids sit behind more ids in flight than a call looks past; at the cap the
        // call looks past all of them.
        let _new = fresh(window.reserve(key("new"), t0 + WINDOW));
        assert_eq!(window.len(), in_flight_ids + 1);
        drop(slow);
        assert_eq!(window.len(), 1);
    }

    #[test]
    fn settling_changes_no_answer() {
        let window = window();
        let t0 = Instant::now();
        fresh(window.reserve(key("committed"), t0)).commit(0, 1, t0);
        let held = fresh(window.reserve(key("held"), t0));
        let released = fresh(window.reserve(key("released"), t0));
        window.settle(t0);
        assert_eq!(window.shared.lock().index.recent.len(), 0);
        assert_eq!(duplicate(window.reserve(key("committed"), t0)).sequence, 1);
        in_flight(window.reserve(key("held"), t0));
        drop(released);
        drop(fresh(window.reserve(key("released"), t0)));
        held.commit(0, 2, t0);
        assert_eq!(duplicate(window.reserve(key("held"), t0)).sequence, 2);
        // Expiry works the same for keys in either table.
        let later = t0 + WINDOW;
        fresh(window.reserve(key("committed"), later)).commit(0, 3, later);
        window.settle(later);
        assert_eq!(
            duplicate(window.reserve(key("committed"), later)).sequence,
            3
        );
        assert_eq!(window.len(), 1);
    }

    #[test]
    fn recent_keys_move_to_the_main_table_by_themselves_past_the_limit() {
        let window = window();
        let t0 = Instant::now();
        for i in 0..=MAX_RECENT_IDS {
            fresh(window.reserve(key(&i.to_string()), t0)).commit(0, i as u64, t0);
        }
        assert!(window.shared.lock().index.recent.len() <= MAX_RECENT_IDS);
        assert_eq!(window.len(), MAX_RECENT_IDS + 1);
        assert_eq!(duplicate(window.reserve(key("0"), t0)).sequence, 0);
    }

    #[test]
    fn log_is_mapped_ahead_no_further_than_the_cap_allows() {
        let window = window_with_cap(10);
        let t0 = Instant::now();
        fresh(window.reserve(key("a"), t0)).commit(0, 1, t0);
        window.settle(t0);
        let state = window.shared.lock();
        assert_eq!(state.log.len(), 1);
        assert!(
            state.log.records.capacity() <= 2 * 10,
            "{}",
            state.log.records.capacity()
        );
        assert!(state.log.mapped_until >= 10);
    }

    /// The arithmetic of the module documentation of `fifo`, checked against the real sizes.
    #[test]
    fn memory_per_live_id_stays_within_the_documented_bound() {
        use std::mem::size_of;
        assert_eq!(size_of::<DedupKey>(), 16);
        let index_entry = size_of::<(DedupKey, u64)>();
        assert_eq!(index_entry, 24, "index entry is {index_entry} bytes");
        let record = size_of::<Record>();
        assert!(record <= 48, "log record is {record} bytes");
        // hashbrown: one control byte per bucket, at most 7/8 of the buckets full, and the bucket
        // count doubles on growth, so a table holds between 7/16 and 7/8 of its buckets.
        let index_best = (index_entry + 1) * 8 / 7;
        let index_worst = (index_entry + 1) * 16 / 7;
        // VecDeque: capacity doubles, so between half and all of it is used.
        let (log_best, log_worst) = (record, 2 * record);
        assert!(index_best + log_best <= 77, "{}", index_best + log_best);
        assert!(
            index_worst + log_worst <= 153,
            "{}",
            index_worst + log_worst
        );
        let worst_at_default_cap = DEFAULT_MAX_LIVE_IDS * (index_worst + log_worst);
        assert!(
            worst_at_default_cap <= 153_000_000,
            "{worst_at_default_cap}"
        );
        // What an id costs while in flight, on top: its place in the ticket, and the gate of an
        // id someone waits on.
        assert!(size_of::<Held>() <= 32, "{}", size_of::<Held>());
        assert!(size_of::<Gate>() <= 64, "{}", size_of::<Gate>());
    }
}
