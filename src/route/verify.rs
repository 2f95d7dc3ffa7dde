//! Judging one candidate conjunction against the event's leaves: which leaves satisfy each
//! clause, whether absent fields are absent, and whether one consistent choice of leaves
//! exists (no two fields taken from different elements of one array).

use super::condition::{needs_fold, Condition};
use super::event::{fold_value, Leaf, Leaves};
use super::machine::{Conj, Machine, Scratch, Sources};
use super::paths::NodeId;

/// How many steps the array-consistency search may take for one candidate; past it the
/// candidate is dropped. Only events with thousands of array elements that each satisfy some
/// of a pattern's clauses, never together, come near it.
const MAX_CONSISTENCY_STEPS: usize = 100_000;

/// Verifies the candidates of one event.
pub(crate) struct Verifier<'m, 's, 'x, 'a> {
    machine: &'m Machine,
    sources: Sources<'x, 'a>,
    s: &'s mut Scratch,
    /// Whether `s.order` lists the leaves by path yet (built on first need).
    ordered: bool,
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

impl<'m, 's, 'x, 'a> Verifier<'m, 's, 'x, 'a> {
    /// Prepares for the candidates of the event whose leaves are in `s.leaves`.
    pub(crate) fn new(machine: &'m Machine, sources: Sources<'x, 'a>, s: &'s mut Scratch) -> Self {
        Verifier {
            machine,
            sources,
            s,
            ordered: false,
        }
    }

    /// Records that a pattern matched.
    pub(crate) fn matched(&mut self, owner: u32) {
        self.s.owners.push(owner);
    }

    /// The range of `order` holding the leaves at `node`.
    fn at(&mut self, node: NodeId) -> (usize, usize) {
        let leaves = &self.s.leaves.leaves;
        if !self.ordered {
            self.s.order.clear();
            self.s.order.extend(0..leaves.len() as u32);
            self.s
                .order
                .sort_unstable_by_key(|&i| (leaves[i as usize].node, i));
            self.ordered = true;
        }
        self.at_ordered(node)
    }

    /// Like [`Verifier::at`], once `order` is built.
    fn at_ordered(&self, node: NodeId) -> (usize, usize) {
        let leaves = &self.s.leaves.leaves;
        let order = &self.s.order;
        let start = order.partition_point(|&i| leaves[i as usize].node < node);
        let len = order[start..].partition_point(|&i| leaves[i as usize].node == node);
        (start, start + len)
    }

    /// Whether leaf `li` satisfies one of `conds`.
    fn satisfies(&mut self, li: u32, conds: &[Condition]) -> bool {
        let Scratch {
            leaves,
            unescaped,
            folded: folded_buf,
            ..
        } = &mut *self.s;
        let leaf = &leaves.leaves[li as usize];
        let bytes = self.sources.get(leaf.src);
        let Some(value) = leaf.value.resolve(bytes, unescaped, true) else {
            return false;
        };
        let fold = fold_value(&value, conds.iter().any(needs_fold), folded_buf);
        conds.iter().any(|c| c.matches(&value, fold))
    }

    /// Whether the conjunction holds; `anchored` are the (conjunction, leaf) pairs of the
    /// leaves that satisfied its anchor clause, already known from the index.
    pub(crate) fn holds(&mut self, conj: &Conj, anchored: &[(u32, u32)]) -> bool {
        if conj.clauses.len() == 1 && !anchored.is_empty() {
            // The anchor was the only clause, and one leaf is always consistent with itself.
            return true;
        }
        self.s.sat.clear();
        self.s.spans.clear();
        for (k, &c) in conj.clauses.iter().enumerate() {
            let Some(info) = self.machine.clause(c) else {
                return false;
            };
            let start = self.s.sat.len() as u32;
            if conj.anchor == Some(c) {
                self.s.sat.extend(anchored.iter().map(|a| a.1));
            } else {
                let (from, to) = self.at(info.node);
                for o in from..to {
                    let li = self.s.order[o];
                    if self.satisfies(li, &info.conditions) {
                        self.s.sat.push(li);
                    }
                }
            }
            let end = self.s.sat.len() as u32;
            if end == start && k < conj.required as usize {
                return false;
            }
            self.s.spans.push((start, end));
        }
        if !self.s.leaves.any_membership() {
            // Without arrays of objects every choice is consistent: an optional clause holds
            // if a leaf satisfies it or its field has no leaf at all.
            for (k, &c) in conj.clauses.iter().enumerate().skip(conj.required as usize) {
                let (start, end) = self.s.spans[k];
                if start == end {
                    let Some(info) = self.machine.clause(c) else {
                        return false;
                    };
                    let (from, to) = self.at(info.node);
                    if from != to {
                        return false;
                    }
                }
            }
            return true;
        }
        self.s.chosen.clear();
        // The search reads the leaves by path; make sure they are ordered.
        let _ = self.at(0);
        let mut steps = 0;
        let mut chosen = std::mem::take(&mut self.s.chosen);
        let ok = self.search(conj, 0, &mut chosen, &mut steps);
        chosen.clear();
        self.s.chosen = chosen;
        ok
    }

    /// Backtracking over one leaf per clause (or absence), keeping the choice consistent.
    fn search(&self, conj: &Conj, k: usize, chosen: &mut Vec<u32>, steps: &mut usize) -> bool {
        let Some(&clause) = conj.clauses.get(k) else {
            return true;
        };
        *steps += 1;
        if *steps > MAX_CONSISTENCY_STEPS {
            return false;
        }
        let leaves = &self.s.leaves;
        let fits = |li: u32, chosen: &[u32]| {
            let leaf = &leaves.leaves[li as usize];
            chosen
                .iter()
                .all(|&o| consistent(leaves, leaf, &leaves.leaves[o as usize]))
        };
        let (start, end) = self.s.spans[k];
        for &li in &self.s.sat[start as usize..end as usize] {
            if fits(li, chosen) {
                chosen.push(li);
                if self.search(conj, k + 1, chosen, steps) {
                    return true;
                }
                chosen.pop();
            }
        }
        let Some(info) = self.machine.clause(clause) else {
            return false;
        };
        if info.absent_ok {
            // Absent for this match: no leaf at the path that could sit beside the others.
            let (from, to) = self.at_ordered(info.node);
            let blocked = self.s.order[from..to].iter().any(|&li| fits(li, chosen));
            if !blocked && self.search(conj, k + 1, chosen, steps) {
                return true;
            }
        }
        false
    }
}
