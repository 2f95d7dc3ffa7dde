//! The value index of one field path: the anchor conditions of the patterns that test it,
//! arranged so that a value finds the clauses it satisfies with a few lookups — hash maps for
//! exact values, one lookup per distinct length for prefixes and suffixes, ranges sorted by
//! lower bound, and a list of the conditions that can only be tested one by one.

use super::condition::{needs_fold, Condition, ValueRef};
use super::hash::FxHashMap;
use super::key::Key;
use super::numeric::{NumKey, Range};

/// Identifies a clause.
pub(crate) type ClauseId = u32;

/// Affixes of one kind on one path, looked up by the value's prefixes (or suffixes) of each
/// length some affix has.
#[derive(Clone, Debug, Default)]
pub(crate) struct Affixes {
    map: FxHashMap<Key, Vec<ClauseId>>,
    /// Distinct affix lengths, ascending, with how many affixes have each.
    lens: Vec<(usize, u32)>,
}

impl Affixes {
    fn add(&mut self, affix: &[u8], c: ClauseId) {
        let list = self.map.entry(Key::from(affix)).or_default();
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
                if let Ok(i) = lens.binary_search_by_key(&k.as_bytes().len(), |l| l.0) {
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
pub(crate) struct PathIndex {
    strings: FxHashMap<Key, Vec<ClauseId>>,
    floats: FxHashMap<u64, Vec<ClauseId>>,
    literals: FxHashMap<Key, Vec<ClauseId>>,
    trues: Vec<ClauseId>,
    falses: Vec<ClauseId>,
    nulls: Vec<ClauseId>,
    prefixes: Affixes,
    suffixes: Affixes,
    prefixes_folded: Affixes,
    suffixes_folded: Affixes,
    folded: FxHashMap<Key, Vec<ClauseId>>,
    exists: Vec<ClauseId>,
    /// Sorted by lower bound.
    ranges: Vec<(Range, ClauseId)>,
    others: Vec<(Condition, ClauseId)>,
    /// Clauses anchored here.
    anchors: u32,
    /// Conditions that read the folded string.
    pub(crate) fold_users: u32,
    /// Conditions that read a number's double.
    pub(crate) number_users: u32,
}

fn retain_map<K: Eq + std::hash::Hash>(m: &mut FxHashMap<K, Vec<ClauseId>>, c: ClauseId) {
    m.retain(|_, list| {
        list.retain(|&x| x != c);
        !list.is_empty()
    });
}

impl PathIndex {
    /// Indexes clause `c`, whose conditions are `conds`.
    pub(crate) fn add_clause(&mut self, conds: &[Condition], c: ClauseId) {
        self.anchors += 1;
        for cond in conds {
            self.add(cond, c);
        }
    }

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
            Condition::Str(s) => self.strings.entry(Key::from(&s[..])).or_default().push(c),
            Condition::Num(NumKey::Float(bits)) => self.floats.entry(*bits).or_default().push(c),
            Condition::Num(NumKey::Literal(l)) => {
                self.literals.entry(Key::from(&l[..])).or_default().push(c)
            }
            Condition::Bool(true) => self.trues.push(c),
            Condition::Bool(false) => self.falses.push(c),
            Condition::Null => self.nulls.push(c),
            Condition::Prefix(p) => self.prefixes.add(p, c),
            Condition::Suffix(p) => self.suffixes.add(p, c),
            Condition::PrefixFold(p) => self.prefixes_folded.add(p, c),
            Condition::SuffixFold(p) => self.suffixes_folded.add(p, c),
            Condition::EqualsFold(p) => self.folded.entry(Key::from(&p[..])).or_default().push(c),
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

    /// Forgets clause `c`, whose conditions are `conds`.
    pub(crate) fn remove(&mut self, conds: &[Condition], c: ClauseId) {
        self.anchors = self.anchors.saturating_sub(1);
        for cond in conds {
            if needs_fold(cond) {
                self.fold_users = self.fold_users.saturating_sub(1);
            }
            if matches!(
                cond,
                Condition::Numeric(_) | Condition::Num(_) | Condition::AnythingBut(_)
            ) {
                self.number_users = self.number_users.saturating_sub(1);
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
    pub(crate) fn visit(
        &self,
        v: &ValueRef<'_>,
        folded: Option<&[u8]>,
        hit: &mut impl FnMut(ClauseId),
    ) {
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

/// How little a condition lets through, for choosing a conjunction's anchor: 0 for exact
/// values, up to 4 for conditions most values satisfy. A clause ranks as its loosest condition.
pub(crate) fn looseness(c: &Condition) -> u32 {
    match c {
        Condition::Str(_)
        | Condition::Num(_)
        | Condition::Bool(_)
        | Condition::Null
        | Condition::EqualsFold(_) => 0,
        Condition::Prefix(p)
        | Condition::Suffix(p)
        | Condition::PrefixFold(p)
        | Condition::SuffixFold(p) => {
            if p.len() >= 4 {
                1
            } else {
                2
            }
        }
        Condition::Cidr(_) | Condition::Numeric(_) | Condition::Wildcard(_) => 3,
        Condition::AnythingBut(_) | Condition::Exists(_) => 4,
    }
}

impl PathIndex {
    /// Whether no condition is indexed here (the path is only tested by verification).
    pub(crate) fn is_empty(&self) -> bool {
        self.anchors == 0
    }

    /// How many clauses already share the slot `c` would go into: of two equally tight
    /// clauses, the one fewer patterns share makes the better anchor.
    pub(crate) fn crowding(&self, c: &Condition) -> usize {
        let len = |l: Option<&Vec<ClauseId>>| l.map_or(0, Vec::len);
        match c {
            Condition::Str(s) => len(self.strings.get(&s[..])),
            Condition::Num(NumKey::Float(b)) => len(self.floats.get(b)),
            Condition::Num(NumKey::Literal(l)) => len(self.literals.get(&l[..])),
            Condition::Bool(true) => self.trues.len(),
            Condition::Bool(false) => self.falses.len(),
            Condition::Null => self.nulls.len(),
            Condition::EqualsFold(s) => len(self.folded.get(&s[..])),
            Condition::Prefix(p) => len(self.prefixes.map.get(&p[..])),
            Condition::Suffix(p) => len(self.suffixes.map.get(&p[..])),
            Condition::PrefixFold(p) => len(self.prefixes_folded.map.get(&p[..])),
            Condition::SuffixFold(p) => len(self.suffixes_folded.map.get(&p[..])),
            Condition::Numeric(_) => self.ranges.len(),
            Condition::Exists(_) => self.exists.len(),
            Condition::Cidr(_) | Condition::Wildcard(_) | Condition::AnythingBut(_) => {
                self.others.len()
            }
        }
    }
}
