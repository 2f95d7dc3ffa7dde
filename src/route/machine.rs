//! The automaton: every pattern of one scope, compiled together so that matching an event
//! costs lookups per leaf of the event, not a test per pattern.
//!
//! ```text
//!  event bytes ──scan (paths some pattern names, nothing else)──▶ leaves (path, value, arrays)
//!     each leaf ──its path's index (index.rs)──▶ candidate conjunctions
//!       (each conjunction is indexed by one *anchor* clause: its tightest required clause,
//!        of equally tight ones the one fewest other patterns share)
//!     candidates + conjunctions with no required clause
//!       ──verify.rs: every clause against the leaves of its path, absence, array consistency──▶
//!     owners of the conjunctions that hold
//! ```
//!
//! A conjunction is one `$or` branch of one pattern; a clause is one field of it. A clause that
//! lists `exists:false` can hold by absence, so it is not *required*; the others are. Indexing
//! one clause per conjunction keeps a clause that thousands of patterns share (`region` prefix
//! `us-`) from making every one of them a candidate on every event.

use super::condition::Condition;
use super::event::{fold_value, Leaves};
use super::index::{looseness, ClauseId, PathIndex};
use super::parse::Conjunction;
use super::paths::{NodeId, PathTrie};
use super::verify::Verifier;
use super::AttrValue;

/// Identifies a conjunction.
pub(crate) type ConjId = u32;

/// One field of one conjunction.
#[derive(Clone, Debug)]
pub(crate) struct ClauseInfo {
    /// The field's path.
    pub(crate) node: NodeId,
    /// The clause lists `exists:false`, so the field's absence satisfies it.
    pub(crate) absent_ok: bool,
    /// ORed conditions.
    pub(crate) conditions: Vec<Condition>,
}

/// One `$or` branch of one pattern.
#[derive(Clone, Debug)]
pub(crate) struct Conj {
    /// The pattern (the set's slot) the conjunction belongs to.
    pub(crate) owner: u32,
    /// Required clauses first, then those absence can satisfy.
    pub(crate) clauses: Vec<ClauseId>,
    /// How many clauses are required.
    pub(crate) required: u32,
    /// The clause indexed for it, if it has a required one.
    pub(crate) anchor: Option<ClauseId>,
}

/// Where a leaf's positions point: the record's data, or one of its attributes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Sources<'s, 'a> {
    /// Data scope: one JSON document (source 0).
    Data(&'s [u8]),
    /// Attribute scope: source `i` is attribute `i`'s value.
    Attributes(&'s [(&'a str, AttrValue<'a>)]),
}

impl Sources<'_, '_> {
    /// The bytes of source `src`.
    pub(crate) fn get(&self, src: u32) -> &[u8] {
        match self {
            Sources::Data(d) => d,
            Sources::Attributes(a) => match a.get(src as usize) {
                Some((
                    _,
                    AttrValue::String(s) | AttrValue::Number(s) | AttrValue::StringArray(s),
                )) => s.as_bytes(),
                Some((_, AttrValue::Binary(b))) => b,
                None => &[],
            },
        }
    }
}

/// Buffers one thread reuses from event to event.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub(crate) leaves: Leaves,
    /// (conjunction, leaf) for every anchor the event's leaves satisfy.
    candidates: Vec<(ConjId, u32)>,
    pub(crate) order: Vec<u32>,
    pub(crate) sat: Vec<u32>,
    pub(crate) spans: Vec<(u32, u32)>,
    pub(crate) chosen: Vec<u32>,
    pub(crate) unescaped: Vec<u8>,
    pub(crate) folded: Vec<u8>,
    /// Owners (set slots) of the conjunctions that matched, possibly repeated.
    pub(crate) owners: Vec<u32>,
}

impl Scratch {
    /// Gives back memory an unusually large event made the buffers take.
    pub(crate) fn trim(&mut self) {
        const KEEP: usize = 1 << 16;
        if self.leaves.leaves.capacity() > KEEP {
            self.leaves = Leaves::default();
        }
        for v in [&mut self.unescaped, &mut self.folded] {
            if v.capacity() > KEEP * 16 {
                *v = Vec::new();
            }
        }
        for v in [&mut self.order, &mut self.sat] {
            if v.capacity() > KEEP {
                *v = Vec::new();
            }
        }
        if self.candidates.capacity() > KEEP {
            self.candidates = Vec::new();
        }
    }
}

/// One scope's patterns compiled together.
#[derive(Clone, Debug, Default)]
pub(crate) struct Machine {
    trie: PathTrie,
    /// By trie node.
    index: Vec<PathIndex>,
    clauses: Vec<Option<ClauseInfo>>,
    free_clauses: Vec<ClauseId>,
    conjs: Vec<Option<Conj>>,
    free_conjs: Vec<ConjId>,
    /// Conjunctions with no required clause: candidates for every event.
    unrequired: Vec<ConjId>,
    /// By clause id: the conjunction an anchor clause stands for.
    anchor_conj: Vec<ConjId>,
    live: usize,
}

fn alloc<T>(items: &mut Vec<Option<T>>, free: &mut Vec<u32>, item: T) -> u32 {
    match free.pop() {
        Some(id) => {
            items[id as usize] = Some(item);
            id
        }
        None => {
            items.push(Some(item));
            (items.len() - 1) as u32
        }
    }
}

impl Machine {
    /// Whether no pattern is compiled in.
    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The paths the patterns name.
    pub(crate) fn trie(&self) -> &PathTrie {
        &self.trie
    }

    /// A clause, if live.
    pub(crate) fn clause(&self, c: ClauseId) -> Option<&ClauseInfo> {
        self.clauses.get(c as usize)?.as_ref()
    }

    /// Adds one pattern's conjunctions for `owner`; returns their ids, for [`Machine::remove`].
    pub(crate) fn insert(&mut self, owner: u32, conjunctions: Vec<Conjunction>) -> Vec<ConjId> {
        let mut ids = Vec::with_capacity(conjunctions.len());
        for conjunction in conjunctions {
            let mut required = Vec::new();
            let mut optional = Vec::new();
            for clause in conjunction {
                let node = self.trie.add(&clause.path);
                if self.index.len() < self.trie.len() {
                    self.index.resize_with(self.trie.len(), PathIndex::default);
                }
                let absent_ok = clause.conditions.contains(&Condition::Exists(false));
                let info = ClauseInfo {
                    node,
                    absent_ok,
                    conditions: clause.conditions,
                };
                let id = alloc(&mut self.clauses, &mut self.free_clauses, info);
                if absent_ok {
                    optional.push(id)
                } else {
                    required.push(id)
                }
            }
            debug_assert!(
                self.index.len() >= self.trie.len(),
                "every trie node has an index"
            );
            let anchor = required.iter().copied().min_by_key(|&c| self.rank(c));
            if let Some(a) = anchor {
                if let Some(info) = &self.clauses[a as usize] {
                    self.index[info.node as usize].add_clause(&info.conditions, a);
                }
            }
            let conj = Conj {
                owner,
                required: required.len() as u32,
                clauses: required.into_iter().chain(optional).collect(),
                anchor,
            };
            let id = alloc(&mut self.conjs, &mut self.free_conjs, conj);
            // Clause ids map back to their conjunction through the anchor only.
            if let Some(a) = anchor {
                self.anchor_owner(a, id);
            } else {
                self.unrequired.push(id);
            }
            ids.push(id);
        }
        self.live += 1;
        ids
    }

    fn anchor_owner(&mut self, clause: ClauseId, conj: ConjId) {
        if self.anchor_conj.len() <= clause as usize {
            self.anchor_conj.resize(clause as usize + 1, ConjId::MAX);
        }
        self.anchor_conj[clause as usize] = conj;
    }

    /// How good an anchor a clause makes: tightest first, then least shared.
    fn rank(&self, c: ClauseId) -> (u32, usize) {
        let Some(info) = &self.clauses[c as usize] else {
            return (u32::MAX, usize::MAX);
        };
        let index = &self.index[info.node as usize];
        let loosest = info
            .conditions
            .iter()
            .map(looseness)
            .max()
            .unwrap_or(u32::MAX);
        let shared = info.conditions.iter().map(|x| index.crowding(x)).sum();
        (loosest, shared)
    }

    /// Removes the conjunctions of one pattern.
    pub(crate) fn remove(&mut self, ids: &[ConjId]) {
        for &id in ids {
            let Some(conj) = self.conjs.get_mut(id as usize).and_then(Option::take) else {
                continue;
            };
            for c in conj.clauses {
                if let Some(info) = self.clauses.get_mut(c as usize).and_then(Option::take) {
                    if conj.anchor == Some(c) {
                        self.index[info.node as usize].remove(&info.conditions, c);
                    }
                    self.trie.release(info.node);
                    self.free_clauses.push(c);
                }
            }
            if conj.anchor.is_none() {
                self.unrequired.retain(|&x| x != id);
            }
            self.free_conjs.push(id);
        }
        self.live = self.live.saturating_sub(1);
    }

    /// Scans a data-scope event into `s.leaves`; `false` when it matches nothing.
    pub(crate) fn scan_data(&self, data: &[u8], s: &mut Scratch) -> bool {
        s.leaves.clear();
        s.leaves.scan_document(data, &self.trie, 0)
    }

    /// Matches the leaves already in `s.leaves` (from `sources`), pushing the owners of the
    /// conjunctions that hold into `s.owners`.
    pub(crate) fn run(&self, sources: Sources<'_, '_>, s: &mut Scratch) {
        s.candidates.clear();
        for (li, leaf) in s.leaves.leaves.iter().enumerate() {
            let idx = &self.index[leaf.node as usize];
            if idx.is_empty() {
                continue;
            }
            let bytes = sources.get(leaf.src);
            let Some(value) = leaf
                .value
                .resolve(bytes, &mut s.unescaped, idx.number_users > 0)
            else {
                continue;
            };
            let folded = fold_value(&value, idx.fold_users > 0, &mut s.folded);
            let anchor_conj = &self.anchor_conj;
            let candidates = &mut s.candidates;
            idx.visit(&value, folded, &mut |c| {
                if let Some(&conj) = anchor_conj.get(c as usize) {
                    candidates.push((conj, li as u32));
                }
            });
        }
        if s.candidates.is_empty() && self.unrequired.is_empty() {
            return;
        }
        s.candidates.sort_unstable();
        s.candidates.dedup();
        let mut candidates = std::mem::take(&mut s.candidates);
        let mut v = Verifier::new(self, sources, s);
        for group in candidates.chunk_by(|a, b| a.0 == b.0) {
            if let Some(c) = self.conjs.get(group[0].0 as usize).and_then(Option::as_ref) {
                if v.holds(c, group) {
                    v.matched(c.owner);
                }
            }
        }
        for &conj in &self.unrequired {
            if let Some(c) = self.conjs.get(conj as usize).and_then(Option::as_ref) {
                if v.holds(c, &[]) {
                    v.matched(c.owner);
                }
            }
        }
        candidates.clear();
        s.candidates = candidates;
    }
}
