//! Sticky balanced assignment: spreads a group's shards over its members, moving as few as possible.
//!
//! ```text
//!   holdings now          targets (7 shards, 3 members)      holdings after
//!   a: {0,1,2,3,4}        a: 3  (most held -> gets a ceil)     a: {0,1,2}    frees 3,4
//!   b: {5}                b: 2  (next most -> gets a ceil)     b: {5,3}
//!   c: {}                 c: 2                                 c: {4,6}
//!   unowned: {6}
//! ```
//!
//! 1. `base = shards / members`, `extra = shards % members`. Members are ranked by how many open
//!    shards they hold now (most first, ties broken by member id, ascending); the first `extra`
//!    get a target of `base + 1`, the others `base`. Giving the ceil targets to the biggest
//!    holders is what makes the plan move the minimum number of shards.
//! 2. A member above its target keeps its lowest shard indices and frees the rest.
//! 3. Freed and unowned shards, lowest index first, fill members below target in member-id order.
//!
//! The result depends only on its inputs (no randomness, no iteration over hash maps), so the
//! same membership always yields the same assignment.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

/// The new holdings of every member: each open shard held by exactly one member when there is
/// at least one member, counts differing by at most one, and every member keeping as many of
/// the shards in `holdings` as balance allows.
///
/// `holdings` may mention shards that are no longer open (dropped) or a shard under two members
/// (the member first in key order keeps it); neither happens when called by the coordinator.
pub(crate) fn plan<K: Ord + Clone>(
    holdings: &BTreeMap<K, BTreeSet<u32>>,
    open: &BTreeSet<u32>,
) -> BTreeMap<K, BTreeSet<u32>> {
    if holdings.is_empty() {
        return BTreeMap::new();
    }
    let mut claimed = BTreeSet::new();
    let mut kept: BTreeMap<K, BTreeSet<u32>> = holdings
        .iter()
        .map(|(member, shards)| {
            let mine: BTreeSet<u32> = shards
                .iter()
                .copied()
                .filter(|shard| open.contains(shard) && claimed.insert(*shard))
                .collect();
            (member.clone(), mine)
        })
        .collect();

    let base = open.len() / kept.len();
    let extra = open.len() % kept.len();
    let mut ranked: Vec<(&K, usize)> = kept.iter().map(|(m, s)| (m, s.len())).collect();
    ranked.sort_by_key(|(member, held)| (Reverse(*held), *member));
    let targets: BTreeMap<K, usize> = ranked
        .iter()
        .enumerate()
        .map(|(rank, (member, _))| ((*member).clone(), base + usize::from(rank < extra)))
        .collect();

    for (member, shards) in &mut kept {
        let target = targets[member];
        while shards.len() > target {
            shards.pop_last();
        }
    }
    let mut free = open.clone();
    for shards in kept.values() {
        for shard in shards {
            free.remove(shard);
        }
    }
    for (member, shards) in &mut kept {
        let target = targets[member];
        while shards.len() < target {
            // The targets sum to `open.len()` and every member holds at most its target, so the
            // free shards are exactly what the members below target are missing.
            let Some(shard) = free.pop_first() else {
                break;
            };
            shards.insert(shard);
        }
    }
    debug_assert!(free.is_empty(), "every open shard is assigned");
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holdings(spec: &[(&'static str, &[u32])]) -> BTreeMap<&'static str, BTreeSet<u32>> {
        spec.iter()
            .map(|(m, s)| (*m, s.iter().copied().collect()))
            .collect()
    }

    fn open(n: u32) -> BTreeSet<u32> {
        (0..n).collect()
    }

    fn counts(plan: &BTreeMap<&'static str, BTreeSet<u32>>) -> Vec<usize> {
        plan.values().map(BTreeSet::len).collect()
    }

    #[test]
    fn no_members_get_no_assignment() {
        let empty: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
        assert!(plan(&empty, &open(6)).is_empty());
    }

    #[test]
    fn the_biggest_holders_get_the_ceil_targets_so_only_the_excess_moves() {
        let before = holdings(&[("a", &[0, 1, 2, 3, 4]), ("b", &[5]), ("c", &[])]);
        let after = plan(&before, &open(7));
        assert_eq!(after["a"], BTreeSet::from([0, 1, 2]));
        assert_eq!(after["b"], BTreeSet::from([3, 5]));
        assert_eq!(after["c"], BTreeSet::from([4, 6]));
    }

    #[test]
    fn ties_for_a_ceil_target_go_to_the_lower_member_id() {
        let before = holdings(&[("b", &[0, 1]), ("a", &[2, 3]), ("c", &[4])]);
        let after = plan(&before, &open(4));
        assert_eq!(counts(&after), vec![2, 1, 1]);
        assert_eq!(after["a"], BTreeSet::from([2, 3]));
        assert_eq!(after["b"], BTreeSet::from([0]));
        assert_eq!(after["c"], BTreeSet::from([1]));
    }

    #[test]
    fn closed_shards_are_dropped_and_double_claims_resolved() {
        let before = holdings(&[("a", &[0, 9]), ("b", &[0, 1])]);
        let after = plan(&before, &open(2));
        assert_eq!(after["a"], BTreeSet::from([0]));
        assert_eq!(after["b"], BTreeSet::from([1]));
    }

    #[test]
    fn more_members_than_shards_leaves_some_members_idle() {
        let before = holdings(&[("a", &[]), ("b", &[0]), ("c", &[])]);
        let after = plan(&before, &open(2));
        assert_eq!(after["a"], BTreeSet::from([1]));
        assert_eq!(after["b"], BTreeSet::from([0]));
        assert!(after["c"].is_empty());
    }
}
