//! Resharding as data: a [`Reshard`] names the open shards a switch closes and the shards it
//! opens, with their ranges and lineage. Split, merge and uniform scaling each plan one; the
//! broker makes the switch atomic (one metadata command) and fills in where each closed shard
//! ended. Pure rules, no I/O.
//!
//! ```text
//!  split shard 1 at k:      [ 0 ][    1    ][ 2 ]  →  [ 0 ][ 3 ][ 4 ][ 2 ]   (3, 4: parent 1)
//!  merge shards 3 and 4:    [ 0 ][ 3 ][ 4 ][ 2 ]  →  [ 0 ][   5   ][ 2 ]   (5: parent 3, adjacent 4)
//! ```

use std::collections::BTreeMap;

use super::{
    split_evenly, HashKey, HashKeyRange, ModelError, ShardDescriptor, ShardId, StreamDescriptor,
};
use crate::storage::{SequenceNumber, Timestamp};

/// One atomic change of a stream's shards.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reshard {
    /// The shards it closes, by increasing id: open ones, and for a scaling the intermediate
    /// shards it opens and closes again (which hold no records).
    pub closes: Vec<ShardId>,
    /// The shards it opens (or opens and closes again, as steps of a scaling), by increasing
    /// id, continuing the stream's numbering.
    pub opens: Vec<ShardDescriptor>,
}

/// A shard that continues another: what a reader at the end of a closed shard reads next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildShard {
    /// The child's id.
    pub id: ShardId,
    /// Its parents: one after a split, two after a merge.
    pub parents: Vec<ShardId>,
    /// The hash keys it owns.
    pub range: HashKeyRange,
}

impl StreamDescriptor {
    /// The shards that continue `id`, by increasing id: none while it is open.
    pub fn children_of(&self, id: ShardId) -> Vec<ChildShard> {
        self.shards()
            .iter()
            .filter(|s| s.parent == Some(id) || s.adjacent_parent == Some(id))
            .map(|s| ChildShard {
                id: s.id,
                parents: s.parent.into_iter().chain(s.adjacent_parent).collect(),
                range: s.range,
            })
            .collect()
    }

    /// The id the next new shard gets.
    pub fn next_shard_id(&self) -> ShardId {
        ShardId(self.shards().last().map_or(0, |s| s.id.index() + 1))
    }

    fn open_shard(&self, id: ShardId, field: &'static str) -> Result<&ShardDescriptor, ModelError> {
        let shard = self.shard(id).ok_or_else(|| {
            ModelError::invalid(
                field,
                format!("{id} does not exist in stream {}", self.name),
            )
        })?;
        if !shard.is_open() {
            return Err(ModelError::invalid(
                field,
                format!(
                    "Shard {id} in stream {} has already been merged or split, and thus is not \
                     eligible for merging or splitting.",
                    self.name
                ),
            ));
        }
        Ok(shard)
    }

    /// Splits open shard `parent` at `key`: two children, `[start, key − 1]` and `[key, end]`.
    /// `key` must be above the parent's starting key plus one and below its ending key, so
    /// each child owns at least two keys.
    pub fn plan_split(&self, parent: ShardId, key: HashKey) -> Result<Reshard, ModelError> {
        let shard = self.open_shard(parent, "shard_to_split")?;
        let range = shard.range;
        let above_start = range.start.0.checked_add(1).is_some_and(|s1| key.0 > s1);
        if !(above_start && key < range.end) {
            return Err(ModelError::invalid(
                "new_starting_hash_key",
                format!(
                    "NewStartingHashKey {key} used in SplitShard on shard {parent} in stream {} \
                     is not both greater than one plus the shard's StartingHashKey {} and less \
                     than the shard's EndingHashKey {}.",
                    self.name, range.start, range.end
                ),
            ));
        }
        let first = self.next_shard_id();
        let child = |id: u32, start: HashKey, end: HashKey| ShardDescriptor {
            id: ShardId(id),
            parent: Some(parent),
            adjacent_parent: None,
            range: HashKeyRange { start, end },
            starting_sequence: SequenceNumber::ZERO,
            ending_sequence: None,
            closed_at: None,
            retired: false,
        };
        Ok(Reshard {
            closes: vec![parent],
            opens: vec![
                child(first.index(), range.start, HashKey(key.0 - 1)),
                child(first.index() + 1, key, range.end),
            ],
        })
    }

    /// Merges open shards `shard` and `adjacent`, whose ranges must touch, into one child that
    /// covers both. The child's parent is `shard`, its adjacent parent `adjacent`.
    pub fn plan_merge(&self, shard: ShardId, adjacent: ShardId) -> Result<Reshard, ModelError> {
        let a = self.open_shard(shard, "shard_to_merge")?;
        let b = self.open_shard(adjacent, "adjacent_shard_to_merge")?;
        let (low, high) = if a.range.start < b.range.start {
            (a, b)
        } else {
            (b, a)
        };
        if low.range.end.0.checked_add(1) != Some(high.range.start.0) {
            return Err(ModelError::invalid(
                "adjacent_shard_to_merge",
                format!(
                    "Shards {shard} and {adjacent} in stream {} are not an adjacent pair of \
                     shards eligible for merging",
                    self.name
                ),
            ));
        }
        let mut closes = vec![shard, adjacent];
        closes.sort_unstable();
        Ok(Reshard {
            closes,
            opens: vec![ShardDescriptor {
                id: self.next_shard_id(),
                parent: Some(shard),
                adjacent_parent: Some(adjacent),
                range: HashKeyRange {
                    start: low.range.start,
                    end: high.range.end,
                },
                starting_sequence: SequenceNumber::ZERO,
                ending_sequence: None,
                closed_at: None,
                retired: false,
            }],
        })
    }

    /// Rescales the stream to `target` open shards of equal ranges (Kinesis's
    /// `UNIFORM_SCALING`), by splits at the target boundaries, then pairwise merges inside each
    /// target range, so every shard has at most two parents. The intermediate shards are opened
    /// and closed within the same switch: they hold no records.
    pub fn plan_scale(&self, target: u32) -> Result<Reshard, ModelError> {
        if target == 0 {
            return Err(ModelError::invalid(
                "target_shard_count",
                "must be at least 1",
            ));
        }
        let boundaries: Vec<HashKey> = split_evenly(target)
            .iter()
            .skip(1)
            .map(|r| r.start)
            .collect();
        let mut plan = Planner::new(self);
        // Splits: every target boundary strictly inside an open shard cuts it.
        for &key in &boundaries {
            let holder = plan
                .open
                .iter()
                .find(|s| s.range.start < key && key <= s.range.end)
                .map(|s| s.id);
            if let Some(id) = holder {
                plan.split(id, key);
            }
        }
        // Merges: inside each target range, neighbours merge pairwise until one is left.
        for range in split_evenly(target) {
            loop {
                let mut inside: Vec<&ShardDescriptor> = plan
                    .open
                    .iter()
                    .filter(|s| range.start <= s.range.start && s.range.end <= range.end)
                    .collect();
                if inside.len() < 2 {
                    break;
                }
                inside.sort_by_key(|s| s.range.start);
                let pairs: Vec<(ShardId, ShardId)> = inside
                    .chunks(2)
                    .filter(|c| c.len() == 2)
                    .map(|c| (c[0].id, c[1].id))
                    .collect();
                for (a, b) in pairs {
                    plan.merge(a, b);
                }
            }
        }
        Ok(plan.finish())
    }

    /// The stream after `reshard`, each closed shard ending at `ends[id]` (its next sequence
    /// number when it closed: every record it holds is below it). Checks the result's
    /// invariants: the open shards still cover the key space exactly once.
    pub fn apply_reshard(
        &self,
        reshard: &Reshard,
        ends: &BTreeMap<ShardId, SequenceNumber>,
        closed_at: Timestamp,
    ) -> Result<StreamDescriptor, ModelError> {
        let mut shards: Vec<ShardDescriptor> = self.shards().to_vec();
        shards.extend(reshard.opens.iter().cloned());
        for shard in &mut shards {
            if reshard.closes.contains(&shard.id) {
                let end = ends.get(&shard.id).copied().ok_or_else(|| {
                    ModelError::invalid("shards", format!("{} closes without an end", shard.id))
                })?;
                shard.ending_sequence = Some(end);
                shard.closed_at = Some(closed_at);
            }
        }
        let mut next = StreamDescriptor::from_parts(
            self.name.clone(),
            self.created_at_ms,
            self.settings,
            shards,
        )?;
        next.options = self.options.clone();
        Ok(next)
    }
}

/// Builds a scaling plan step by step over the open shards as they would stand.
struct Planner {
    open: Vec<ShardDescriptor>,
    next_id: u32,
    reshard: Reshard,
}

impl Planner {
    fn new(d: &StreamDescriptor) -> Planner {
        Planner {
            open: d.open_shards().cloned().collect(),
            next_id: d.next_shard_id().index(),
            reshard: Reshard::default(),
        }
    }

    fn take(&mut self, id: ShardId) -> ShardDescriptor {
        let at = self
            .open
            .iter()
            .position(|s| s.id == id)
            .expect("an open shard");
        self.reshard.closes.push(id);
        self.open.remove(at)
    }

    fn open(&mut self, parent: ShardId, adjacent: Option<ShardId>, start: HashKey, end: HashKey) {
        let shard = ShardDescriptor {
            id: ShardId(self.next_id),
            parent: Some(parent),
            adjacent_parent: adjacent,
            range: HashKeyRange { start, end },
            starting_sequence: SequenceNumber::ZERO,
            ending_sequence: None,
            closed_at: None,
            retired: false,
        };
        self.next_id += 1;
        self.reshard.opens.push(shard.clone());
        self.open.push(shard);
    }

    fn split(&mut self, id: ShardId, key: HashKey) {
        let shard = self.take(id);
        self.open(id, None, shard.range.start, HashKey(key.0 - 1));
        self.open(id, None, key, shard.range.end);
    }

    fn merge(&mut self, a: ShardId, b: ShardId) {
        let low = self.take(a);
        let high = self.take(b);
        self.open(a, Some(b), low.range.start, high.range.end);
    }

    fn finish(mut self) -> Reshard {
        self.reshard.closes.sort_unstable();
        self.reshard
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Timestamp;
    use crate::stream::{StreamLimits, StreamName, StreamSettings};
    use proptest::prelude::*;

    fn stream(shards: u32) -> StreamDescriptor {
        StreamDescriptor::create(
            StreamName::new("s").unwrap(),
            Timestamp::from_millis(1),
            StreamSettings::default(),
            shards,
            &StreamLimits::default(),
        )
        .unwrap()
    }

    /// Applies a plan, ending every closed shard (intermediates included) at 0.
    fn applied(d: &StreamDescriptor, plan: &Reshard) -> StreamDescriptor {
        let ends = plan
            .closes
            .iter()
            .map(|&id| (id, SequenceNumber::ZERO))
            .collect();
        d.apply_reshard(plan, &ends, Timestamp::from_millis(1))
            .unwrap()
    }

    #[test]
    fn a_split_closes_the_parent_and_opens_two_children_continuing_the_ids() {
        let d = stream(2);
        let parent = d.shard(ShardId(1)).unwrap().clone();
        let key = HashKey(parent.range.start.0 + 1000);
        let plan = d.plan_split(ShardId(1), key).unwrap();
        assert_eq!(plan.closes, [ShardId(1)]);
        let after = applied(&d, &plan);
        let ids: Vec<u32> = after.open_shards().map(|s| s.id.index()).collect();
        assert_eq!(ids, [0, 2, 3]);
        let low = after.shard(ShardId(2)).unwrap();
        assert_eq!(
            (low.range.start, low.range.end),
            (parent.range.start, HashKey(key.0 - 1))
        );
        assert_eq!(low.parent, Some(ShardId(1)));
        assert_eq!(after.route(key), Some(ShardId(3)));
        assert!(!after.shard(ShardId(1)).unwrap().is_open());
    }

    #[test]
    fn a_split_key_must_leave_each_child_two_keys() {
        let d = stream(1);
        for key in [HashKey(0), HashKey(1), HashKey::MAX] {
            let e = d.plan_split(ShardId(0), key).unwrap_err();
            assert_eq!(e.field(), "new_starting_hash_key");
        }
        assert!(d.plan_split(ShardId(0), HashKey(2)).is_ok());
    }

    #[test]
    fn only_adjacent_open_shards_merge() {
        let d = stream(3);
        assert_eq!(
            d.plan_merge(ShardId(0), ShardId(2)).unwrap_err().field(),
            "adjacent_shard_to_merge"
        );
        let plan = d.plan_merge(ShardId(2), ShardId(1)).unwrap();
        let after = applied(&d, &plan);
        let child = after.shard(ShardId(3)).unwrap();
        assert_eq!(child.parent, Some(ShardId(2)));
        assert_eq!(child.adjacent_parent, Some(ShardId(1)));
        let again = after.plan_merge(ShardId(1), ShardId(0)).unwrap_err();
        assert!(
            again.to_string().contains("already been merged or split"),
            "{again}"
        );
    }

    proptest! {
        #[test]
        fn scaling_ends_with_equal_ranges_and_at_most_two_parents(from in 1u32..20, to in 1u32..40) {
            let d = stream(from);
            let after = applied(&d, &d.plan_scale(to).unwrap());
            let open: Vec<HashKeyRange> = after.open_shards().map(|s| s.range).collect();
            let mut sorted = open.clone();
            sorted.sort_by_key(|r| r.start);
            prop_assert_eq!(sorted, split_evenly(to));
            for s in after.shards() {
                if let Some(p) = s.parent {
                    prop_assert!(p < s.id);
                }
            }
        }
    }
}
