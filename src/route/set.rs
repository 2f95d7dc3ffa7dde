//! Many filters compiled into one structure, matched in one pass over a record, answering the
//! keys of those that match.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;

use super::attributes::scan_attributes;
use super::machine::{ConjId, Machine, Scratch, Sources};
use super::{parse, AttrValue, Filter, FilterScope, PatternError, PatternLimits};

thread_local! {
    /// Per-thread buffers, so that matching allocates nothing once they have grown.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

#[derive(Clone, Debug)]
struct Slot<K> {
    key: K,
    scope: FilterScope,
    conjs: Vec<ConjId>,
}

/// Filters under keys, compiled together: matching costs about the same for ten filters as
/// for ten thousand that test the same fields.
#[derive(Clone, Debug)]
pub struct MatcherSet<K> {
    slots: Vec<Option<Slot<K>>>,
    free: Vec<u32>,
    by_key: HashMap<K, u32>,
    data: Machine,
    attributes: Machine,
}

impl<K: Clone + Eq + Hash> Default for MatcherSet<K> {
    fn default() -> Self {
        MatcherSet {
            slots: Vec::new(),
            free: Vec::new(),
            by_key: HashMap::new(),
            data: Machine::default(),
            attributes: Machine::default(),
        }
    }
}

impl<K: Clone + Eq + Hash> MatcherSet<K> {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compiles `filter` under `key`, replacing the filter the key had. On error the set is
    /// unchanged.
    pub fn insert(
        &mut self,
        key: K,
        filter: &Filter,
        limits: &PatternLimits,
    ) -> Result<(), PatternError> {
        let conjunctions = parse::compile(filter, limits)?;
        self.remove(&key);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        let conjs = self.machine_mut(filter.scope).insert(slot, conjunctions);
        self.slots[slot as usize] = Some(Slot {
            key: key.clone(),
            scope: filter.scope,
            conjs,
        });
        self.by_key.insert(key, slot);
        Ok(())
    }

    /// Removes the filter under `key`; `false` when there was none.
    pub fn remove(&mut self, key: &K) -> bool {
        let Some(slot) = self.by_key.remove(key) else {
            return false;
        };
        if let Some(s) = self.slots.get_mut(slot as usize).and_then(Option::take) {
            self.machine_mut(s.scope).remove(&s.conjs);
        }
        self.free.push(slot);
        true
    }

    /// Number of filters.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether there is no filter.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Pushes the key of every filter that matches the record (each once, in no particular
    /// order) into `out`. Data-scope filters see `data`, attribute-scope ones `attributes`.
    pub fn matches_into<'a>(
        &self,
        data: &[u8],
        attributes: &[(&'a str, AttrValue<'a>)],
        out: &mut Vec<K>,
    ) {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut s) => self.collect(data, attributes, &mut s, out),
            // Only reachable if a key's `Clone` matched re-entrantly; fresh buffers serve.
            Err(_) => self.collect(data, attributes, &mut Scratch::default(), out),
        });
    }

    fn collect<'a>(
        &self,
        data: &[u8],
        attributes: &[(&'a str, AttrValue<'a>)],
        s: &mut Scratch,
        out: &mut Vec<K>,
    ) {
        s.owners.clear();
        if !self.data.is_empty() && self.data.scan_data(data, s) {
            self.data.run(Sources::Data(data), s);
        }
        if !self.attributes.is_empty() && !attributes.is_empty() {
            scan_attributes(attributes, self.attributes.trie(), &mut s.leaves);
            self.attributes.run(Sources::Attributes(attributes), s);
        }
        s.owners.sort_unstable();
        s.owners.dedup();
        for &o in &s.owners {
            if let Some(Some(slot)) = self.slots.get(o as usize) {
                out.push(slot.key.clone());
            }
        }
        s.trim();
    }

    fn machine_mut(&mut self, scope: FilterScope) -> &mut Machine {
        match scope {
            FilterScope::Data => &mut self.data,
            FilterScope::Attributes => &mut self.attributes,
        }
    }
}
