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
//!
//! One file per part:
//!
//! ```text
//!   DedupWindow (this file): the API; Arc<Shared> = config + ticket numbers + Mutex<State>
//!        │ reserve · reserve_batch (../batch.rs) · insert_committed · settle
//!        ▼
//!   State (state.rs): reserve-or-resolve, commit and release of a ticket's ids
//!        ├── Index (index.rs): key ──▶ log index, recent + main tables
//!        ├── Log (log.rs): Record { key, InFlight | Committed | Gone } in reservation order,
//!        │                 memory mapped ahead in `settle`
//!        └── eviction (evict.rs): expired and gone records leave from the log's front,
//!                                 a bounded number per call, all of them at the cap
//!   DedupTicket / Waiter (../ticket.rs) ──commit_held / release_held──▶ State
//! ```

mod evict;
mod index;
mod log;
mod state;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::mem;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use self::evict::{EVICTIONS_PER_ID, MIN_EVICTIONS_PER_CALL};
use self::index::Index;
use self::log::{Log, RecordState, MAP_AHEAD_BATCHES};
pub(super) use self::state::{Attempt, State};
use super::error::FifoError;
use super::key::DedupKey;
#[cfg(test)]
use super::ticket::Waiter;
use super::ticket::{DedupTicket, Gate};
use crate::storage::SequenceNumber;
// The stream model owns the default; the window's settings start from it.
pub use crate::stream::DEFAULT_DEDUP_WINDOW;

/// The longest window a stream may configure; keeps `now + window` far from overflowing and
/// the memory a stream can pin bounded in time.
pub const MAX_DEDUP_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// Ids (committed and in flight) one stream's window tracks before refusing new ones: about
/// 3,300 deduplicated puts per second sustained over the default window, and at most about
/// 153 MB (typically 77 MB) of window memory; see the module documentation of `fifo`.
pub const DEFAULT_MAX_LIVE_IDS: usize = 1_000_000;

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
    pub sequence: SequenceNumber,
}

#[cfg(test)]
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

#[cfg(test)]
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

    #[cfg(test)]
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

    #[cfg(test)]
    /// True when no id is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[cfg(test)]
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

    #[cfg(test)]
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
        sequence: SequenceNumber,
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

/// Opens the gates collected under the lock, after it is released: the woken requests go
/// straight for that lock.
pub(super) fn open_all(gates: Vec<Arc<Gate>>) {
    for gate in gates {
        gate.open();
    }
}
