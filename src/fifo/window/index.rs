//! The window's index: each tracked key's place in the log, in a small table of the keys reserved
//! lately and a main table of the rest.

use std::collections::HashMap;

use super::super::hasher::KeyHashState;
use super::super::key::DedupKey;

/// Keys reserved since the last settle that the window holds in its small table before it
/// moves them to the main one by itself (see `Index`): about 100 KB, which stays in the cache.
pub(super) const MAX_RECENT_IDS: usize = 4096;

/// Key to log index, in two tables: `recent` takes the keys reserved since the last
/// [`settle`](Index::settle), and is small enough to stay in the cache, so a reservation
/// writes there; `main` holds the rest. A key is in at most one of them. Moving keys from
/// `recent` to `main` — a write to a random place of a large table, per key — is work a caller
/// can do while it waits for something else (see
/// [`DedupWindow::settle`](super::DedupWindow::settle)); it happens anyway once `recent` holds
/// [`MAX_RECENT_IDS`].
pub(super) struct Index {
    pub(super) main: HashMap<DedupKey, u64, KeyHashState>,
    pub(super) recent: HashMap<DedupKey, u64, KeyHashState>,
}

// `#[inline]` on the helpers the window's other files call for every id: code is split into
// codegen units by module, and these were inlinable into their callers when one file held
// them all.
impl Index {
    pub(super) fn new() -> Self {
        let seeded = KeyHashState::random();
        Self {
            main: HashMap::with_hasher(seeded),
            recent: HashMap::with_hasher(seeded),
        }
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        self.main.len() + self.recent.len()
    }

    /// The log index of `key`'s record.
    #[inline]
    pub(super) fn get(&self, key: &DedupKey) -> Option<u64> {
        self.recent.get(key).or_else(|| self.main.get(key)).copied()
    }

    #[inline]
    pub(super) fn get_mut(&mut self, key: &DedupKey) -> Option<&mut u64> {
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
    #[inline]
    pub(super) fn look_ahead(&mut self, keys: impl Iterator<Item = DedupKey>) {
        let new = keys.filter(|key| !self.main.contains_key(key)).count();
        self.recent
            .reserve(new.min(MAX_RECENT_IDS.saturating_sub(self.recent.len())));
    }

    /// Adds a key the index does not hold.
    #[inline]
    pub(super) fn insert_new(&mut self, key: DedupKey, at: u64) {
        if self.recent.len() >= MAX_RECENT_IDS {
            self.settle();
        }
        self.recent.insert(key, at);
    }

    /// Forgets `key` if it maps to `at`.
    #[inline]
    pub(super) fn remove_at(&mut self, key: &DedupKey, at: u64) {
        if self.recent.get(key) == Some(&at) {
            self.recent.remove(key);
        } else if self.main.get(key) == Some(&at) {
            self.main.remove(key);
        }
    }

    /// Moves every recent key into the main table.
    pub(super) fn settle(&mut self) {
        self.main.extend(self.recent.drain());
    }
}
