//! The automaton: every clause of every pattern, indexed by field path and then by value, so
//! that matching an event costs a lookup per leaf, not a test per pattern.
//!
//! ```text
//!  event bytes ──scan (paths named by some pattern only)──▶ leaves (path node, value, arrays)
//!     each leaf ──its path's index──▶ hits (conjunction, clause, leaf)
//!       exact strings, numbers (by double), literals   hash lookups
//!       prefixes / suffixes (and folded)               one lookup per distinct length
//!       numeric ranges                                 sorted by lower bound, scan stops early
//!       anything-but, wildcard, cidr                   tested for that path's leaves only
//!     hits sorted ──▶ conjunctions with all required clauses hit (+ those needing none)
//!       ──▶ absence (exists:false) and array consistency checked for these candidates only
//! ```
//!
//! A conjunction is one `$or` branch of one pattern; a clause is one field of it. A clause that
//! lists `exists:false` can hold by absence, so it is not *required*; the others are.

use super::condition::{needs_fold, Condition, ValueRef};
use super::event::{Leaf, LeafValue, Leaves};
use super::fold::fold_into;
use super::hash::FxHashMap;
use super::json::unescape;
use super::numeric::{exact_f64, NumKey, Range};
use super::parse::Conjunction;
use super::paths::{NodeId, PathTrie};
use super::AttrValue;

/// Identifies a clause.
type ClauseId = u32;
/// Identifies a conjunction.
pub(crate) type ConjId = u32;

/// How many steps the array-consistency search may take for one candidate; past it the
/// candidate is dropped. Only events with thousands of array elements that all satisfy a
/// pattern's clauses in inconsistent ways come near it.
const MAX_CONSISTENCY_STEPS: usize = 100_000;

/// Affixes of one kind on one path, looked up by the value's prefixes (or suffixes) of each
/// length some affix has.
#[derive(Clone, Debug, Default)]
struct Affixes {
    map: FxHashMap<Box<[u8]>, Vec<ClauseId>>,
    /// Distinct affix lengths, ascending, with how many affixes have each.
    lens: Vec<(usize, u32)>,
}

impl Affixes {
    fn add(&mut self, affix: &[u8], c: ClauseId) {
        let list = self.map.entry(affix.into()).or_default();
        if list.is_empty() {
            match self.lens.binary_search_by_key(&affix.len(), |l| l.0) {
                Ok(i) => self.lens[i].1 += 1,
                Err(i) => self.lens.insert(i, (affix.len(), 1)),
            }
        }
        list.push(c);
    }

    fn remove(&mut self, c: ClauseId) {
        let lens = &mut self.lens;
        self.map.retain(|k, list| {
            list.retain(|&x| x != c);
            if list.is_empty() {
                if let Ok(i) = lens.binary_search_by_key(&k.len(), |l| l.0) {
                    lens[i].1 -= 1;
                    if lens[i].1 == 0 {
                        lens.remove(i);
                    }
                }
            }
            !list.is_empty()
        });
    }

    #[inline]
    fn each(&self, v: &[u8], suffix: bool, hit: &mut impl FnMut(ClauseId)) {
        for &(len, _) in &self.lens {
            if len > v.len() {
                break;
            }
            let key = if suffix {
                &v[v.len() - len..]
            } else {
                &v[..len]
            };
            if let Some(list) = self.map.get(key) {
                list.iter().for_each(|&c| hit(c));
            }
        }
    }
}

/// Every condition on one path.
#[derive(Clone, Debug, Default)]
struct PathIndex {
    strings: FxHashMap<Box<[u8]>, Vec<ClauseId>>,
    floats: FxHashMap<u64, Vec<ClauseId>>,
    literals: FxHashMap<Box<[u8]>, Vec<ClauseId>>,
    trues: Vec<ClauseId>,
    falses: Vec<ClauseId>,
    nulls: Vec<ClauseId>,
    prefixes: Affixes,
    suffixes: Affixes,
    prefixes_folded: Affixes,
    suffixes_folded: Affixes,
    folded: FxHashMap<Box<[u8]>, Vec<ClauseId>>,
    exists: Vec<ClauseId>,
    /// Sorted by lower bound.
    ranges: Vec<(Range, ClauseId)>,
    others: Vec<(Condition, ClauseId)>,
    /// Conditions that read the folded string.
    fold_users: u32,
    /// Conditions that read a number's double.
    number_users: u32,
}

fn retain_map<K: Eq + std::hash::Hash>(m: &mut FxHashMap<K, Vec<ClauseId>>, c: ClauseId) {
    m.retain(|_, list| {
        list.retain(|&x| x != c);
        !list.is_empty()
    });
}

impl PathIndex {
    fn add(&mut self, cond: &Condition, c: ClauseId) {
        if needs_fold(cond) {
            self.fold_users += 1;
        }
        if matches!(
            cond,
            Condition::Numeric(_) | Condition::Num(_) | Condition::AnythingBut(_)
        ) {
            self.number_users += 1;
        }
        match cond {
            Condition::Str(s) => self.strings.entry(s.clone()).or_default().push(c),
            Condition::Num(NumKey::Float(bits)) => self.floats.entry(*bits).or_default().push(c),
            Condition::Num(NumKey::Literal(l)) => {
                self.literals.entry(l.clone()).or_default().push(c)
            }
            Condition::Bool(true) => self.trues.push(c),
            Condition::Bool(false) => self.falses.push(c),
            Condition::Null => self.nulls.push(c),
            Condition::Prefix(p) => self.prefixes.add(p, c),
            Condition::Suffix(p) => self.suffixes.add(p, c),
            Condition::PrefixFold(p) => self.prefixes_folded.add(p, c),
            Condition::SuffixFold(p) => self.suffixes_folded.add(p, c),
            Condition::EqualsFold(p) => self.folded.entry(p.clone()).or_default().push(c),
            Condition::Exists(true) => self.exists.push(c),
            // Absence is judged per candidate, from the clause's flag.
            Condition::Exists(false) => {}
            Condition::Numeric(r) => {
                let at = self
                    .ranges
                    .partition_point(|(x, _)| x.low_value() <= r.low_value());
                self.ranges.insert(at, (*r, c));
            }
            Condition::Wildcard(_) | Condition::AnythingBut(_) | Condition::Cidr(_) => {
                self.others.push((cond.clone(), c))
            }
        }
    }

    fn remove(&mut self, conds: &[Condition], c: ClauseId) {
        for cond in conds {
            if needs_fold(cond) {
                self.fold_users -= 1;
            }
            if matches!(
                cond,
                Condition::Numeric(_) | Condition::Num(_) | Condition::AnythingBut(_)
            ) {
                self.number_users -= 1;
            }
        }
        retain_map(&mut self.strings, c);
        retain_map(&mut self.floats, c);
        retain_map(&mut self.literals, c);
        retain_map(&mut self.folded, c);
        for list in [
            &mut self.trues,
            &mut self.falses,
            &mut self.nulls,
            &mut self.exists,
        ] {
            list.retain(|&x| x != c);
        }
        for a in [
            &mut self.prefixes,
            &mut self.suffixes,
            &mut self.prefixes_folded,
            &mut self.suffixes_folded,
        ] {
            a.remove(c);
        }
        self.ranges.retain(|(_, x)| *x != c);
        self.others.retain(|(_, x)| *x != c);
    }

    /// Calls `hit` with every clause some condition of which `v` satisfies.
    #[inline]
    fn visit(&self, v: &ValueRef<'_>, folded: Option<&[u8]>, hit: &mut impl FnMut(ClauseId)) {
        let each =
            |list: &Vec<ClauseId>, hit: &mut dyn FnMut(ClauseId)| list.iter().for_each(|&c| hit(c));
        match *v {
            ValueRef::Str(s) => {
                if let Some(list) = self.strings.get(s) {
                    each(list, hit);
                }
                self.prefixes.each(s, false, hit);
                self.suffixes.each(s, true, hit);
                if let Some(f) = folded {
                    if let Some(list) = self.folded.get(f) {
                        each(list, hit);
                    }
                    self.prefixes_folded.each(f, false, hit);
                    self.suffixes_folded.each(f, true, hit);
                }
            }
            ValueRef::Num { text, exact } => {
                if let Some(e) = exact {
                    if let Some(list) = self.floats.get(&e.to_bits()) {
                        each(list, hit);
                    }
                    for (r, c) in &self.ranges {
                        if r.low_value() > e {
                            break;
                        }
                        if r.contains(e) {
                            hit(*c);
                        }
                    }
                }
                if !self.literals.is_empty() {
                    if let Some(list) = self.literals.get(text) {
                        each(list, hit);
                    }
                }
            }
            ValueRef::Bool(true) => each(&self.trues, hit),
            ValueRef::Bool(false) => each(&self.falses, hit),
            ValueRef::Null => each(&self.nulls, hit),
        }
        each(&self.exists, hit);
        for (cond, c) in &self.others {
            if cond.matches(v, folded) {
                hit(*c);
            }
        }
    }
}

#[derive(Clone, Debug)]
struct ClauseInfo {
    conj: ConjId,
    node: NodeId,
    /// The clause lists `exists:false`, so the field's absence satisfies it.
    absent_ok: bool,
    conditions: Vec<Condition>,
}

#[derive(Clone, Debug)]
struct Conj {
    /// The pattern (the set's slot) the conjunction belongs to.
    owner: u32,
    /// Required clauses first, then those absence can satisfy.
    clauses: Vec<ClauseId>,
    required: u32,
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
    fn get(&self, src: u32) -> &[u8] {
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
    leaves: Leaves,
    hits: Vec<(ConjId, ClauseId, u32)>,
    unescaped: Vec<u8>,
    folded: Vec<u8>,
    present: Vec<NodeId>,
    chosen: Vec<u32>,
    /// Owners (set slots) of the conjunctions that matched, possibly repeated.
    pub(crate) owners: Vec<u32>,
}

impl Scratch {
    /// Gives back memory an unusually large event made the buffers take.
    pub(crate) fn trim(&mut self) {
        const KEEP: usize = 4096;
        if self.leaves.leaves.capacity() > KEEP * 16 {
            self.leaves = Leaves::default();
        }
        for v in [&mut self.unescaped, &mut self.folded] {
            if v.capacity() > KEEP * 64 {
                *v = Vec::new();
            }
        }
        if self.hits.capacity() > KEEP * 16 {
            self.hits = Vec::new();
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

    /// The attribute scanner's view of the paths.
    pub(crate) fn trie(&self) -> &PathTrie {
        &self.trie
    }

    /// Adds one pattern's conjunctions for `owner`; returns their ids, for [`Machine::remove`].
    pub(crate) fn insert(&mut self, owner: u32, conjunctions: Vec<Conjunction>) -> Vec<ConjId> {
        let mut ids = Vec::with_capacity(conjunctions.len());
        for conjunction in conjunctions {
            let conj_id = alloc(
                &mut self.conjs,
                &mut self.free_conjs,
                Conj {
                    owner,
                    clauses: Vec::new(),
                    required: 0,
                },
            );
            let mut required = Vec::new();
            let mut optional = Vec::new();
            for clause in conjunction {
                let node = self.trie.add(&clause.path);
                if self.index.len() < self.trie.len() {
                    self.index.resize_with(self.trie.len(), PathIndex::default);
                }
                let absent_ok = clause.conditions.contains(&Condition::Exists(false));
                let info = ClauseInfo {
                    conj: conj_id,
                    node,
                    absent_ok,
                    conditions: clause.conditions,
                };
                let id = alloc(&mut self.clauses, &mut self.free_clauses, info.clone());
                for cond in &info.conditions {
                    self.index[node as usize].add(cond, id);
                }
                if absent_ok {
                    optional.push(id)
                } else {
                    required.push(id)
                }
            }
            let conj = Conj {
                owner,
                required: required.len() as u32,
                clauses: required.into_iter().chain(optional).collect(),
            };
            if conj.required == 0 {
                self.unrequired.push(conj_id);
            }
            self.conjs[conj_id as usize] = Some(conj);
            ids.push(conj_id);
        }
        self.live += 1;
        ids
    }

    /// Removes the conjunctions of one pattern.
    pub(crate) fn remove(&mut self, ids: &[ConjId]) {
        for &id in ids {
            let Some(conj) = self.conjs.get_mut(id as usize).and_then(Option::take) else {
                continue;
            };
            for c in conj.clauses {
                if let Some(info) = self.clauses.get_mut(c as usize).and_then(Option::take) {
                    self.index[info.node as usize].remove(&info.conditions, c);
                    self.trie.release(info.node);
                    self.free_clauses.push(c);
                }
            }
            self.unrequired.retain(|&x| x != id);
            self.free_conjs.push(id);
        }
        self.live = self.live.saturating_sub(1);
    }

    /// Scans a data-scope event into `s.leaves`; `false` when it matches nothing.
    pub(crate) fn scan_data(&self, data: &[u8], s: &mut Scratch) -> bool {
        s.leaves.clear();
        s.leaves.scan_document(data, &self.trie, 0)
    }

    /// The leaves of an attribute-scope event go straight into `s.leaves` (see `attributes`).
    pub(crate) fn leaves_mut(s: &mut Scratch) -> &mut Leaves {
        &mut s.leaves
    }

    /// Matches the leaves already in `s.leaves` (from `sources`), pushing owners into
    /// `s.owners`.
    pub(crate) fn run(&self, sources: Sources<'_, '_>, s: &mut Scratch) {
        let Scratch {
            leaves,
            hits,
            unescaped,
            folded,
            present,
            chosen,
            owners,
        } = s;
        hits.clear();
        for (li, leaf) in leaves.leaves.iter().enumerate() {
            let idx = &self.index[leaf.node as usize];
            let bytes = sources.get(leaf.src);
            let value = match leaf.value {
                LeafValue::Str {
                    start,
                    end,
                    escaped,
                } => {
                    let Some(raw) = bytes.get(start as usize..end as usize) else {
                        continue;
                    };
                    let text = if escaped {
                        if unescape(raw, unescaped).is_none() {
                            continue;
                        }
                        &unescaped[..]
                    } else {
                        raw
                    };
                    ValueRef::Str(text)
                }
                LeafValue::Num { start, end } => {
                    let Some(text) = bytes.get(start as usize..end as usize) else {
                        continue;
                    };
                    let exact = if idx.number_users > 0 {
                        std::str::from_utf8(text).ok().and_then(exact_f64)
                    } else {
                        None
                    };
                    ValueRef::Num { text, exact }
                }
                LeafValue::Bool(b) => ValueRef::Bool(b),
                LeafValue::Null => ValueRef::Null,
            };
            let fold = match value {
                ValueRef::Str(text) if idx.fold_users > 0 => match std::str::from_utf8(text) {
                    Ok(t) => {
                        folded.clear();
                        fold_into(t, folded);
                        Some(&folded[..])
                    }
                    Err(_) => None,
                },
                _ => None,
            };
            let clauses = &self.clauses;
            idx.visit(&value, fold, &mut |c| {
                if let Some(info) = &clauses[c as usize] {
                    hits.push((info.conj, c, li as u32));
                }
            });
        }
        if hits.is_empty() && self.unrequired.is_empty() {
            return;
        }
        hits.sort_unstable();
        hits.dedup();
        present.clear();
        present.extend(leaves.leaves.iter().map(|l| l.node));
        present.sort_unstable();
        present.dedup();
        let cx = Candidate {
            machine: self,
            leaves,
            present,
        };
        let mut i = 0;
        while i < hits.len() {
            let conj = hits[i].0;
            let end = i + hits[i..].partition_point(|h| h.0 == conj);
            if let Some(c) = &self.conjs[conj as usize] {
                if c.required > 0 && cx.holds(c, &hits[i..end], chosen) {
                    owners.push(c.owner);
                }
            }
            i = end;
        }
        for &conj in &self.unrequired {
            let start = hits.partition_point(|h| h.0 < conj);
            let end = start + hits[start..].partition_point(|h| h.0 == conj);
            if let Some(c) = &self.conjs[conj as usize] {
                if cx.holds(c, &hits[start..end], chosen) {
                    owners.push(c.owner);
                }
            }
        }
    }
}

/// What judging one candidate conjunction needs.
struct Candidate<'m> {
    machine: &'m Machine,
    leaves: &'m Leaves,
    /// The nodes that have at least one leaf, sorted.
    present: &'m [NodeId],
}

/// Whether two leaves may be used by one match: not from different elements of one array.
/// Memberships are listed outermost first, so the arrays two leaves share come first.
fn consistent(leaves: &Leaves, a: &Leaf, b: &Leaf) -> bool {
    for (x, y) in leaves
        .memberships_of(a)
        .iter()
        .zip(leaves.memberships_of(b))
    {
        if x.0 != y.0 {
            return true;
        }
        if x.1 != y.1 {
            return false;
        }
    }
    true
}

impl Candidate<'_> {
    /// Whether the conjunction holds, given its hits (sorted by clause).
    fn holds(&self, conj: &Conj, hits: &[(ConjId, ClauseId, u32)], chosen: &mut Vec<u32>) -> bool {
        let mut required = 0;
        let mut last = None;
        for h in hits {
            if last != Some(h.1) {
                last = Some(h.1);
                if self.info(h.1).is_some_and(|i| !i.absent_ok) {
                    required += 1;
                }
            }
        }
        if required < conj.required {
            return false;
        }
        if !self.leaves.any_membership() {
            return conj.clauses[conj.required as usize..].iter().all(|&c| {
                hits.binary_search_by_key(&c, |h| h.1).is_ok()
                    || self
                        .info(c)
                        .is_some_and(|i| self.present.binary_search(&i.node).is_err())
            });
        }
        chosen.clear();
        let mut steps = 0;
        self.search(conj, 0, hits, chosen, &mut steps)
    }

    fn info(&self, c: ClauseId) -> Option<&ClauseInfo> {
        self.machine.clauses.get(c as usize)?.as_ref()
    }

    /// Backtracking over one leaf per clause (or absence), keeping the choice consistent.
    fn search(
        &self,
        conj: &Conj,
        k: usize,
        hits: &[(ConjId, ClauseId, u32)],
        chosen: &mut Vec<u32>,
        steps: &mut usize,
    ) -> bool {
        let Some(&clause) = conj.clauses.get(k) else {
            return true;
        };
        *steps += 1;
        if *steps > MAX_CONSISTENCY_STEPS {
            return false;
        }
        let all = &self.leaves.leaves;
        let fits = |li: u32, chosen: &[u32]| {
            let leaf = &all[li as usize];
            chosen
                .iter()
                .all(|&o| consistent(self.leaves, leaf, &all[o as usize]))
        };
        let start = hits.partition_point(|h| h.1 < clause);
        for h in hits[start..].iter().take_while(|h| h.1 == clause) {
            if fits(h.2, chosen) {
                chosen.push(h.2);
                if self.search(conj, k + 1, hits, chosen, steps) {
                    return true;
                }
                chosen.pop();
            }
        }
        let Some(info) = self.info(clause) else {
            return false;
        };
        if info.absent_ok {
            // Absent for this match: no leaf at the path that could sit beside the others.
            let blocked = all
                .iter()
                .enumerate()
                .any(|(li, l)| l.node == info.node && fits(li as u32, chosen));
            if !blocked && self.search(conj, k + 1, hits, chosen, steps) {
                return true;
            }
        }
        false
    }
}
