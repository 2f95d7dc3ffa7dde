//! [`MetaState`]: the metadata as commands leave it, and the deterministic rules for applying a
//! [`MetaCommand`] to it.

use std::collections::BTreeMap;

use super::command::{RuleDefinition, TargetMark};
use super::queue::{MoveStatus, MoveTaskRecord, QueueRecord, MAX_KEPT_MOVE_TASKS};
use super::{MetaCommand, MetaError};
use crate::storage::{SequenceNumber, Timestamp};
use crate::stream::{GroupName, RuleName, ShardId, StreamChange, StreamDescriptor, StreamName};

/// The durable state of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRecord {
    /// What it does.
    pub definition: RuleDefinition,
    /// When it was first created: with its name, the incarnation its deduplication ids carry.
    pub created_at_ms: Timestamp,
    /// Per source shard, the next sequence number the rule looks at: everything before it is
    /// routed (or did not match).
    pub next: BTreeMap<ShardId, SequenceNumber>,
    /// Per target, how far the target reached when `next` was recorded.
    pub marks: BTreeMap<StreamName, TargetMark>,
}

/// The durable state of one consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupRecord {
    /// Wall-clock creation time.
    pub created_at_ms: Timestamp,
    /// Per shard, the last sequence number the group has processed. A shard without an entry
    /// has no checkpoint: the group starts it from its configured initial position.
    pub checkpoints: BTreeMap<ShardId, SequenceNumber>,
    /// Every lease epoch handed out for this group is at most this; after a restart, epochs are
    /// handed out above it, so they never go back and a fenced member stays fenced.
    pub epoch_floor: u64,
    /// Set for a queue group: its definition and the state of its messages.
    pub queue: Option<QueueRecord>,
}

/// All durable metadata.
///
/// Invariant: every key of `groups` names a stream in `streams`, and every checkpoint names a
/// shard of that stream. [`MetaState::apply`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetaState {
    /// Every stream, by name.
    pub streams: BTreeMap<StreamName, StreamDescriptor>,
    /// Every consumer group, by stream and group name.
    pub groups: BTreeMap<(StreamName, GroupName), GroupRecord>,
    /// Every rule, by name.
    pub rules: BTreeMap<RuleName, RuleRecord>,
    /// Move tasks, running and recently finished, by id.
    pub move_tasks: BTreeMap<String, MoveTaskRecord>,
}

impl MetaState {
    #[cfg(test)]
    /// The stream called `name`.
    pub fn stream(&self, name: &str) -> Option<&StreamDescriptor> {
        self.streams.get(name)
    }

    /// The group `group` of stream `stream`.
    pub fn group(&self, stream: &StreamName, group: &GroupName) -> Option<&GroupRecord> {
        self.groups.get(&(stream.clone(), group.clone()))
    }

    #[cfg(test)]
    /// The groups of one stream, by name.
    pub fn groups_of<'a>(
        &'a self,
        stream: &'a StreamName,
    ) -> impl Iterator<Item = (&'a GroupName, &'a GroupRecord)> + 'a {
        self.groups
            .iter()
            .filter(move |((s, _), _)| s == stream)
            .map(|((_, g), record)| (g, record))
    }

    #[cfg(test)]
    /// The group's checkpoint on a shard, if the group exists and has one.
    pub fn checkpoint(
        &self,
        stream: &StreamName,
        group: &GroupName,
        shard: ShardId,
    ) -> Option<SequenceNumber> {
        self.group(stream, group)?.checkpoints.get(&shard).copied()
    }

    /// Checks that `cmd` applies to this state, without changing anything.
    pub fn validate(&self, cmd: &MetaCommand) -> Result<(), MetaError> {
        match cmd {
            MetaCommand::CreateStream(descriptor) => {
                if self.streams.contains_key(&descriptor.name) {
                    return Err(MetaError::StreamExists {
                        stream: descriptor.name.clone(),
                    });
                }
                Ok(())
            }
            MetaCommand::DeleteStream(stream) => self.existing_stream(stream).map(drop),
            MetaCommand::ReshardStream(next) => {
                let current = self.existing_stream(&next.name)?;
                let refuse = |reason: &str| MetaError::ReshardRefused {
                    stream: next.name.clone(),
                    reason: reason.to_owned(),
                };
                if current.created_at_ms != next.created_at_ms {
                    return Err(refuse("it describes another incarnation of the stream"));
                }
                let (old, new) = (current.shards(), next.shards());
                if new.len() <= old.len() {
                    return Err(refuse("it opens no shard"));
                }
                let kept = old.iter().zip(new).all(|(a, b)| {
                    a.id == b.id
                        && a.range == b.range
                        && a.parent == b.parent
                        && a.adjacent_parent == b.adjacent_parent
                        && (a.ending_sequence.is_none() || a.ending_sequence == b.ending_sequence)
                });
                if !kept {
                    return Err(refuse("it changes a shard other than by closing it"));
                }
                // New shards continue the numbering without gaps, and descend from shards this
                // switch closes (or from new shards it opens and closes).
                let closed_now = |id: ShardId| {
                    old.iter()
                        .zip(new)
                        .any(|(a, b)| a.id == id && a.is_open() && !b.is_open())
                        || new[old.len()..].iter().any(|s| s.id == id)
                };
                for (i, shard) in new.iter().enumerate().skip(old.len()) {
                    if shard.id != ShardId(i as u32) {
                        return Err(refuse("its new shard ids do not continue the numbering"));
                    }
                    let parents = shard.parent.into_iter().chain(shard.adjacent_parent);
                    if shard.parent.is_none() || !parents.into_iter().all(closed_now) {
                        return Err(refuse(
                            "a new shard does not descend from a shard it closes",
                        ));
                    }
                }
                Ok(())
            }
            MetaCommand::RetireShards { stream, shards } => {
                let current = self.existing_stream(stream)?;
                for &id in shards {
                    let reason = match current.shard(id) {
                        None => "no such shard",
                        Some(s) if s.is_open() => "the shard is open",
                        Some(s) if s.retired => "the shard is retired already",
                        Some(_) => continue,
                    };
                    return Err(MetaError::ReshardRefused {
                        stream: stream.clone(),
                        reason: format!("cannot retire {id}: {reason}"),
                    });
                }
                Ok(())
            }
            MetaCommand::UpdateStream { stream, change } => {
                let options = &self.existing_stream(stream)?.options;
                match change {
                    StreamChange::RegisterConsumer(c) if options.consumer(&c.name).is_some() => {
                        Err(MetaError::ConsumerExists {
                            stream: stream.clone(),
                            consumer: c.name.clone(),
                        })
                    }
                    StreamChange::DeregisterConsumer(name) if options.consumer(name).is_none() => {
                        Err(MetaError::ConsumerNotFound {
                            stream: stream.clone(),
                            consumer: name.clone(),
                        })
                    }
                    _ => Ok(()),
                }
            }
            MetaCommand::CreateGroup { stream, group, .. } => {
                self.existing_stream(stream)?;
                if self.group(stream, group).is_some() {
                    return Err(MetaError::GroupExists {
                        stream: stream.clone(),
                        group: group.clone(),
                    });
                }
                Ok(())
            }
            MetaCommand::DeleteGroup { stream, group } => {
                self.existing_group(stream, group).map(drop)
            }
            MetaCommand::StartMoveTask(task) => {
                self.existing_stream(&task.source)?;
                let refuse = |reason: String| MetaError::MoveRefused {
                    task: task.task_id.clone(),
                    reason,
                };
                if self.move_tasks.contains_key(&task.task_id) {
                    return Err(refuse("a task with this id exists".into()));
                }
                if let Some(running) = self
                    .move_tasks
                    .values()
                    .find(|t| t.source == task.source && t.status == MoveStatus::Running)
                {
                    return Err(refuse(format!(
                        "task {} is already moving the messages of {}",
                        running.task_id, task.source
                    )));
                }
                Ok(())
            }
            MetaCommand::MoveProgress { task_id, next, .. } => {
                let task = self
                    .move_tasks
                    .get(task_id)
                    .ok_or_else(|| MetaError::MoveRefused {
                        task: task_id.clone(),
                        reason: "no such task".into(),
                    })?;
                for (shard, n) in next {
                    if task.next.get(shard).is_some_and(|current| n < current) {
                        return Err(MetaError::MoveRefused {
                            task: task_id.clone(),
                            reason: format!("progress on {shard} would go back"),
                        });
                    }
                }
                Ok(())
            }
            MetaCommand::QueueLease {
                stream,
                group,
                incarnation,
                shard,
                ..
            }
            | MetaCommand::QueueDone {
                stream,
                group,
                incarnation,
                shard,
                ..
            } => {
                let record = self.existing_group(stream, group)?;
                if record.created_at_ms != *incarnation {
                    // The group the command was made for was deleted; this is another.
                    return Err(MetaError::GroupNotFound {
                        stream: stream.clone(),
                        group: group.clone(),
                    });
                }
                if record.queue.is_none() {
                    return Err(MetaError::NotAQueue {
                        stream: stream.clone(),
                        group: group.clone(),
                    });
                }
                self.existing_shard(stream, *shard)
            }
            MetaCommand::CommitCheckpoint {
                stream,
                group,
                shard,
                sequence,
            } => {
                let record = self.existing_group(stream, group)?;
                self.existing_shard(stream, *shard)?;
                match record.checkpoints.get(shard) {
                    Some(&current) if *sequence < current => Err(MetaError::CheckpointBackwards {
                        stream: stream.clone(),
                        group: group.clone(),
                        shard: *shard,
                        current,
                        requested: *sequence,
                    }),
                    _ => Ok(()),
                }
            }
            MetaCommand::ResetCheckpoint {
                stream,
                group,
                shard,
                ..
            } => {
                self.existing_group(stream, group)?;
                self.existing_shard(stream, *shard)
            }
            MetaCommand::PutRule {
                rule, definition, ..
            } => self.check_rule(rule, definition),
            MetaCommand::DeleteRule(rule) => self.existing_rule(rule).map(drop),
            MetaCommand::RuleProgress { rule, next, .. } => {
                let record = self.existing_rule(rule)?;
                for (shard, requested) in next {
                    self.existing_shard(&record.definition.source, *shard)?;
                    if let Some(&current) = record.next.get(shard) {
                        if *requested < current {
                            return Err(MetaError::RuleProgressBackwards {
                                rule: rule.clone(),
                                shard: *shard,
                                current,
                                requested: *requested,
                            });
                        }
                    }
                }
                Ok(())
            }
            MetaCommand::RaiseEpochFloor {
                stream,
                group,
                epoch,
            } => {
                let record = self.existing_group(stream, group)?;
                if *epoch < record.epoch_floor {
                    return Err(MetaError::EpochFloorBackwards {
                        stream: stream.clone(),
                        group: group.clone(),
                        floor: record.epoch_floor,
                        requested: *epoch,
                    });
                }
                Ok(())
            }
        }
    }

    /// Applies `cmd`: validates it, then changes the state. A rejected command changes nothing.
    pub fn apply(&mut self, cmd: &MetaCommand) -> Result<(), MetaError> {
        self.validate(cmd)?;
        match cmd {
            MetaCommand::CreateStream(descriptor) => {
                self.streams
                    .insert(descriptor.name.clone(), descriptor.clone());
            }
            MetaCommand::DeleteStream(stream) => {
                self.streams.remove(stream);
                self.groups.retain(|(s, _), _| s != stream);
                self.move_tasks.retain(|_, t| &t.source != stream);
                // A rule reading the stream goes with it; a rule writing to it stays, stuck
                // on the missing target until the target is back or the rule is changed.
                self.rules.retain(|_, r| &r.definition.source != stream);
            }
            MetaCommand::ReshardStream(next) => {
                if let Some(descriptor) = self.streams.get_mut(&next.name) {
                    // Retention and options may have changed since the layout was planned:
                    // the switch carries the shards only.
                    let mut next = next.clone();
                    next.settings = descriptor.settings;
                    next.options = std::mem::take(&mut descriptor.options);
                    *descriptor = next;
                }
            }
            MetaCommand::RetireShards { stream, shards } => {
                if let Some(descriptor) = self.streams.get_mut(stream) {
                    descriptor.retire(shards);
                }
            }
            MetaCommand::UpdateStream { stream, change } => {
                if let Some(descriptor) = self.streams.get_mut(stream) {
                    match change {
                        StreamChange::Retention(retention) => {
                            descriptor.settings.retention = *retention;
                        }
                        other => descriptor.options.apply(other),
                    }
                }
            }
            MetaCommand::PutRule {
                rule,
                definition,
                created_at_ms,
                start,
                marks,
            } => match self.rules.get_mut(rule) {
                Some(record) => {
                    let mut kept = std::mem::take(&mut record.marks);
                    kept.retain(|t, _| definition.targets.contains(t));
                    for (target, mark) in marks {
                        kept.entry(target.clone()).or_insert_with(|| mark.clone());
                    }
                    record.marks = kept;
                    record.definition = definition.clone();
                }
                None => {
                    let mut marks = marks.clone();
                    marks.retain(|t, _| definition.targets.contains(t));
                    self.rules.insert(
                        rule.clone(),
                        RuleRecord {
                            definition: definition.clone(),
                            created_at_ms: *created_at_ms,
                            next: start.clone(),
                            marks,
                        },
                    );
                }
            },
            MetaCommand::DeleteRule(rule) => {
                self.rules.remove(rule);
            }
            MetaCommand::RuleProgress { rule, next, marks } => {
                if let Some(record) = self.rules.get_mut(rule) {
                    record.next.extend(next.iter().map(|(s, n)| (*s, *n)));
                    for (target, mark) in marks {
                        if record.definition.targets.contains(target) {
                            record.marks.insert(target.clone(), mark.clone());
                        }
                    }
                }
            }
            MetaCommand::CreateGroup {
                stream,
                group,
                created_at_ms,
                queue,
            } => {
                self.groups.insert(
                    (stream.clone(), group.clone()),
                    GroupRecord {
                        created_at_ms: *created_at_ms,
                        queue: queue
                            .as_ref()
                            .map(|(definition, start)| QueueRecord::new(definition.clone(), start)),
                        ..GroupRecord::default()
                    },
                );
            }
            MetaCommand::StartMoveTask(task) => {
                self.move_tasks.insert(task.task_id.clone(), task.clone());
                // Keep the newest finished tasks of the source only.
                let mut finished: Vec<(Timestamp, String)> = self
                    .move_tasks
                    .values()
                    .filter(|t| t.source == task.source && t.status != MoveStatus::Running)
                    .map(|t| (t.started_at_ms, t.task_id.clone()))
                    .collect();
                finished.sort();
                let excess = finished.len().saturating_sub(MAX_KEPT_MOVE_TASKS);
                for (_, id) in finished.into_iter().take(excess) {
                    self.move_tasks.remove(&id);
                }
            }
            MetaCommand::MoveProgress {
                task_id,
                next,
                moved,
                status,
                failure_reason,
            } => {
                if let Some(task) = self.move_tasks.get_mut(task_id) {
                    task.next.extend(next.iter().map(|(s, n)| (*s, *n)));
                    task.moved = *moved;
                    task.status = *status;
                    task.failure_reason = failure_reason.clone();
                }
            }
            MetaCommand::QueueLease {
                stream,
                group,
                shard,
                deadline_ms,
                messages,
                received,
                ..
            } => {
                if let Some(queue) = self.group_mut(stream, group)?.queue.as_mut() {
                    queue.lease(*shard, *deadline_ms, messages, *received);
                }
            }
            MetaCommand::QueueDone {
                stream,
                group,
                shard,
                sequences,
                start,
                counts,
                ..
            } => {
                if let Some(queue) = self.group_mut(stream, group)?.queue.as_mut() {
                    queue.done(*shard, sequences, *start, *counts);
                }
            }
            MetaCommand::DeleteGroup { stream, group } => {
                self.groups.remove(&(stream.clone(), group.clone()));
            }
            MetaCommand::CommitCheckpoint {
                stream,
                group,
                shard,
                sequence,
            } => {
                self.group_mut(stream, group)?
                    .checkpoints
                    .insert(*shard, *sequence);
            }
            MetaCommand::ResetCheckpoint {
                stream,
                group,
                shard,
                sequence,
            } => {
                let checkpoints = &mut self.group_mut(stream, group)?.checkpoints;
                match sequence {
                    Some(sequence) => checkpoints.insert(*shard, *sequence),
                    None => checkpoints.remove(shard),
                };
            }
            MetaCommand::RaiseEpochFloor {
                stream,
                group,
                epoch,
            } => {
                self.group_mut(stream, group)?.epoch_floor = *epoch;
            }
        }
        Ok(())
    }

    fn existing_rule(&self, rule: &RuleName) -> Result<&RuleRecord, MetaError> {
        self.rules
            .get(rule)
            .ok_or_else(|| MetaError::RuleNotFound { rule: rule.clone() })
    }

    /// A rule's definition against the others: its streams exist, no target is its source, a
    /// replacement keeps the source, and no chain of rules leads from a target back to the
    /// source (records would circle for ever).
    fn check_rule(&self, rule: &RuleName, definition: &RuleDefinition) -> Result<(), MetaError> {
        let refuse = |reason: String| MetaError::RuleRefused {
            rule: rule.clone(),
            reason,
        };
        self.existing_stream(&definition.source)?;
        if let Some(existing) = self.rules.get(rule) {
            if existing.definition.source != definition.source {
                return Err(refuse(format!(
                    "its source is {}; a rule's source cannot change (delete it and put it again)",
                    existing.definition.source
                )));
            }
        }
        for target in &definition.targets {
            if *target == definition.source {
                return Err(refuse(format!("target {target} is its own source")));
            }
            self.existing_stream(target)?;
        }
        // Streams reachable from the targets through the other rules.
        let mut seen: std::collections::BTreeSet<&StreamName> = std::collections::BTreeSet::new();
        let mut frontier: Vec<(&StreamName, Vec<&RuleName>)> =
            definition.targets.iter().map(|t| (t, vec![rule])).collect();
        while let Some((stream, path)) = frontier.pop() {
            if stream == &definition.source {
                let chain: Vec<&str> = path.iter().map(|r| r.as_str()).collect();
                return Err(refuse(format!(
                    "it would close a cycle: {} leads back to {} through rules {}",
                    definition.source,
                    definition.source,
                    chain.join(" → ")
                )));
            }
            if !seen.insert(stream) {
                continue;
            }
            for (name, other) in &self.rules {
                if name != rule && &other.definition.source == stream {
                    for t in &other.definition.targets {
                        let mut next = path.clone();
                        next.push(name);
                        frontier.push((t, next));
                    }
                }
            }
        }
        Ok(())
    }

    fn existing_stream(&self, stream: &StreamName) -> Result<&StreamDescriptor, MetaError> {
        self.streams
            .get(stream)
            .ok_or_else(|| MetaError::StreamNotFound {
                stream: stream.clone(),
            })
    }

    fn existing_group(
        &self,
        stream: &StreamName,
        group: &GroupName,
    ) -> Result<&GroupRecord, MetaError> {
        self.existing_stream(stream)?;
        self.group(stream, group)
            .ok_or_else(|| MetaError::GroupNotFound {
                stream: stream.clone(),
                group: group.clone(),
            })
    }

    fn existing_shard(&self, stream: &StreamName, shard: ShardId) -> Result<(), MetaError> {
        match self.existing_stream(stream)?.shard(shard) {
            Some(_) => Ok(()),
            None => Err(MetaError::ShardNotFound {
                stream: stream.clone(),
                shard,
            }),
        }
    }

    /// The group, for a command that `validate` has accepted.
    fn group_mut(
        &mut self,
        stream: &StreamName,
        group: &GroupName,
    ) -> Result<&mut GroupRecord, MetaError> {
        self.groups
            .get_mut(&(stream.clone(), group.clone()))
            .ok_or_else(|| MetaError::GroupNotFound {
                stream: stream.clone(),
                group: group.clone(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{StreamLimits, StreamSettings};

    fn name(s: &str) -> StreamName {
        StreamName::new(s).unwrap()
    }

    fn group(s: &str) -> GroupName {
        GroupName::new(s).unwrap()
    }

    fn create(stream: &str, shards: u32) -> MetaCommand {
        MetaCommand::CreateStream(
            StreamDescriptor::create(
                name(stream),
                Timestamp::from_millis(1),
                StreamSettings::default(),
                shards,
                &StreamLimits::default(),
            )
            .unwrap(),
        )
    }

    fn create_group(stream: &str, g: &str) -> MetaCommand {
        MetaCommand::CreateGroup {
            stream: name(stream),
            group: group(g),
            created_at_ms: Timestamp::from_millis(7),
            queue: None,
        }
    }

    fn commit(sequence: u64) -> MetaCommand {
        MetaCommand::CommitCheckpoint {
            stream: name("s"),
            group: group("g"),
            shard: ShardId(1),
            sequence: SequenceNumber::new(sequence),
        }
    }

    fn state_with_group() -> MetaState {
        let mut state = MetaState::default();
        state.apply(&create("s", 2)).unwrap();
        state.apply(&create_group("s", "g")).unwrap();
        state
    }

    #[test]
    fn a_reshard_must_extend_the_layout_and_keeps_the_streams_options() {
        let mut state = MetaState::default();
        state.apply(&create("s", 2)).unwrap();
        state
            .apply(&MetaCommand::UpdateStream {
                stream: name("s"),
                change: StreamChange::AddTags([("team".into(), "data".into())].into()),
            })
            .unwrap();
        let current = state.stream("s").unwrap().clone();
        let split = current
            .plan_split(ShardId(0), crate::stream::HashKey(1 << 100))
            .unwrap();
        let ends = [(ShardId(0), SequenceNumber::new(4))].into();
        // Planned before the tag was added: the switch must not drop it.
        let mut next = current
            .apply_reshard(&split, &ends, Timestamp::from_millis(5))
            .unwrap();
        next.options = Default::default();
        let before = state.clone();
        // New ids must continue the numbering, and new shards descend from closed ones.
        let renumber =
            |d: &StreamDescriptor, f: &dyn Fn(&mut Vec<crate::stream::ShardDescriptor>)| {
                let mut shards = d.shards().to_vec();
                f(&mut shards);
                StreamDescriptor::from_parts(d.name.clone(), d.created_at_ms, d.settings, shards)
                    .unwrap()
            };
        let gap = renumber(&next, &|s| {
            s[2].id = ShardId(7);
            s[3].id = ShardId(8);
        });
        let adopted = renumber(&next, &|s| s[3].parent = Some(ShardId(1)));
        for bad in [gap, adopted] {
            let refused = state.apply(&MetaCommand::ReshardStream(bad));
            assert!(
                matches!(refused, Err(MetaError::ReshardRefused { .. })),
                "{refused:?}"
            );
        }
        // The same layout again opens nothing; another incarnation is not this stream.
        let same = MetaCommand::ReshardStream(current.clone());
        assert!(matches!(
            state.apply(&same),
            Err(MetaError::ReshardRefused { .. })
        ));
        let mut other = next.clone();
        other.created_at_ms = Timestamp::from_millis(2);
        let other = MetaCommand::ReshardStream(other);
        assert!(matches!(
            state.apply(&other),
            Err(MetaError::ReshardRefused { .. })
        ));
        assert_eq!(state, before);
        state.apply(&MetaCommand::ReshardStream(next)).unwrap();
        let after = state.stream("s").unwrap();
        assert_eq!(after.shards().len(), 4);
        assert_eq!(
            after.shards()[0].ending_sequence,
            Some(SequenceNumber::new(4))
        );
        assert_eq!(
            after.options.tags.get("team").map(String::as_str),
            Some("data")
        );
    }

    #[test]
    fn creating_a_taken_stream_is_rejected() {
        let mut state = MetaState::default();
        state.apply(&create("s", 1)).unwrap();
        let before = state.clone();
        assert!(matches!(
            state.apply(&create("s", 3)),
            Err(MetaError::StreamExists { .. })
        ));
        assert_eq!(state, before);
    }

    #[test]
    fn commands_on_missing_streams_groups_or_shards_are_rejected() {
        let mut state = state_with_group();
        assert!(matches!(
            state.apply(&MetaCommand::DeleteStream(name("t"))),
            Err(MetaError::StreamNotFound { .. })
        ));
        assert!(matches!(
            state.apply(&create_group("t", "g")),
            Err(MetaError::StreamNotFound { .. })
        ));
        assert!(matches!(
            state.apply(&create_group("s", "g")),
            Err(MetaError::GroupExists { .. })
        ));
        assert!(matches!(
            state.apply(&MetaCommand::DeleteGroup {
                stream: name("s"),
                group: group("h")
            }),
            Err(MetaError::GroupNotFound { .. })
        ));
        assert!(matches!(
            state.apply(&MetaCommand::CommitCheckpoint {
                stream: name("s"),
                group: group("g"),
                shard: ShardId(2),
                sequence: SequenceNumber::new(1),
            }),
            Err(MetaError::ShardNotFound { .. })
        ));
        assert_eq!(state, state_with_group());
    }

    #[test]
    fn checkpoint_never_moves_backwards_without_reset() {
        let mut state = state_with_group();
        state.apply(&commit(10)).unwrap();
        state.apply(&commit(10)).unwrap();
        let err = state.apply(&commit(9)).unwrap_err();
        assert!(matches!(
            err,
            MetaError::CheckpointBackwards {
                current,
                requested,
                ..
            } if current == SequenceNumber::new(10) && requested == SequenceNumber::new(9)
        ));
        assert!(err.is_rejection());
        assert_eq!(
            state.checkpoint(&name("s"), &group("g"), ShardId(1)),
            Some(SequenceNumber::new(10))
        );

        state
            .apply(&MetaCommand::ResetCheckpoint {
                stream: name("s"),
                group: group("g"),
                shard: ShardId(1),
                sequence: Some(SequenceNumber::new(3)),
            })
            .unwrap();
        assert_eq!(
            state.checkpoint(&name("s"), &group("g"), ShardId(1)),
            Some(SequenceNumber::new(3))
        );
        state.apply(&commit(4)).unwrap();
        assert_eq!(
            state.checkpoint(&name("s"), &group("g"), ShardId(1)),
            Some(SequenceNumber::new(4))
        );
    }

    #[test]
    fn resetting_to_none_clears_the_checkpoint() {
        let mut state = state_with_group();
        state.apply(&commit(10)).unwrap();
        state
            .apply(&MetaCommand::ResetCheckpoint {
                stream: name("s"),
                group: group("g"),
                shard: ShardId(1),
                sequence: None,
            })
            .unwrap();
        assert_eq!(state.checkpoint(&name("s"), &group("g"), ShardId(1)), None);
        state.apply(&commit(0)).unwrap();
    }

    #[test]
    fn epoch_floor_only_rises() {
        let mut state = state_with_group();
        let raise = |epoch| MetaCommand::RaiseEpochFloor {
            stream: name("s"),
            group: group("g"),
            epoch,
        };
        state.apply(&raise(5)).unwrap();
        state.apply(&raise(5)).unwrap();
        assert!(matches!(
            state.apply(&raise(4)),
            Err(MetaError::EpochFloorBackwards {
                floor: 5,
                requested: 4,
                ..
            })
        ));
        assert_eq!(state.group(&name("s"), &group("g")).unwrap().epoch_floor, 5);
    }

    #[test]
    fn deleting_a_stream_deletes_its_groups_only() {
        let mut state = state_with_group();
        state.apply(&create("t", 1)).unwrap();
        state.apply(&create_group("t", "g")).unwrap();
        state.apply(&create_group("s", "h")).unwrap();
        state.apply(&MetaCommand::DeleteStream(name("s"))).unwrap();
        assert!(state.stream("s").is_none());
        assert_eq!(state.groups.len(), 1);
        assert_eq!(state.groups_of(&name("s")).count(), 0);
        assert_eq!(
            state
                .groups_of(&name("t"))
                .map(|(g, _)| g.as_str())
                .collect::<Vec<_>>(),
            ["g"]
        );
        // A stream re-created under the old name starts without groups.
        state.apply(&create("s", 1)).unwrap();
        assert_eq!(state.groups_of(&name("s")).count(), 0);
    }

    #[test]
    fn a_new_group_starts_without_checkpoints_at_epoch_zero() {
        let state = state_with_group();
        let record = state.group(&name("s"), &group("g")).unwrap();
        assert_eq!(record.created_at_ms, Timestamp::from_millis(7));
        assert!(record.checkpoints.is_empty());
        assert_eq!(record.epoch_floor, 0);
    }

    fn rule(name: &str) -> RuleName {
        RuleName::new(name).unwrap()
    }

    fn put_rule(r: &str, source: &str, targets: &[&str], at: u64) -> MetaCommand {
        MetaCommand::PutRule {
            rule: rule(r),
            definition: RuleDefinition {
                source: name(source),
                filter: None,
                targets: targets.iter().map(|t| name(t)).collect(),
                enabled: true,
                owner: None,
            },
            created_at_ms: Timestamp::from_millis(at),
            start: [(ShardId(0), SequenceNumber::new(at))].into(),
            marks: targets
                .iter()
                .map(|t| {
                    (
                        name(t),
                        TargetMark {
                            created_at_ms: Timestamp::from_millis(1),
                            next: [(ShardId(0), SequenceNumber::new(at))].into(),
                        },
                    )
                })
                .collect(),
        }
    }

    fn three_streams() -> MetaState {
        let mut state = MetaState::default();
        for s in ["a", "b", "c"] {
            state.apply(&create(s, 1)).unwrap();
        }
        state
    }

    #[test]
    fn a_rule_closing_a_cycle_is_refused_naming_the_chain() {
        let mut state = three_streams();
        state.apply(&put_rule("ab", "a", &["b"], 1)).unwrap();
        state.apply(&put_rule("bc", "b", &["c"], 1)).unwrap();
        let err = state.apply(&put_rule("ca", "c", &["a"], 1)).unwrap_err();
        assert!(
            matches!(&err, MetaError::RuleRefused { reason, .. } if reason.contains("cycle") && reason.contains("ab")),
            "{err}"
        );
        let own = state.apply(&put_rule("aa", "a", &["a"], 1)).unwrap_err();
        assert!(matches!(own, MetaError::RuleRefused { .. }), "{own}");
        // A chain that does not come back is fine, and so is a second path to one stream.
        state.apply(&put_rule("ac", "a", &["c"], 1)).unwrap();
        assert_eq!(state.rules.len(), 3);
    }

    #[test]
    fn replacing_a_rule_keeps_its_progress_and_the_marks_of_kept_targets() {
        let mut state = three_streams();
        state.apply(&put_rule("r", "a", &["b"], 5)).unwrap();
        state
            .apply(&MetaCommand::RuleProgress {
                rule: rule("r"),
                next: [(ShardId(0), SequenceNumber::new(50))].into(),
                marks: BTreeMap::new(),
            })
            .unwrap();
        state.apply(&put_rule("r", "a", &["b", "c"], 9)).unwrap();
        let r = &state.rules[&rule("r")];
        assert_eq!(r.created_at_ms, Timestamp::from_millis(5));
        assert_eq!(r.next[&ShardId(0)], SequenceNumber::new(50));
        assert_eq!(
            r.marks[&name("b")].next[&ShardId(0)],
            SequenceNumber::new(5)
        );
        assert_eq!(
            r.marks[&name("c")].next[&ShardId(0)],
            SequenceNumber::new(9)
        );
        let moved = state.apply(&put_rule("r", "b", &["c"], 9)).unwrap_err();
        assert!(matches!(moved, MetaError::RuleRefused { .. }), "{moved}");
    }

    #[test]
    fn rule_progress_never_goes_back() {
        let mut state = three_streams();
        state.apply(&put_rule("r", "a", &["b"], 5)).unwrap();
        let back = MetaCommand::RuleProgress {
            rule: rule("r"),
            next: [(ShardId(0), SequenceNumber::new(4))].into(),
            marks: BTreeMap::new(),
        };
        assert!(matches!(
            state.apply(&back),
            Err(MetaError::RuleProgressBackwards { .. })
        ));
    }

    #[test]
    fn deleting_a_source_stream_deletes_its_rules_but_not_those_writing_to_it() {
        let mut state = three_streams();
        state.apply(&put_rule("from-a", "a", &["b"], 1)).unwrap();
        state.apply(&put_rule("to-a", "c", &["a"], 1)).unwrap();
        state.apply(&MetaCommand::DeleteStream(name("a"))).unwrap();
        assert!(!state.rules.contains_key(&rule("from-a")));
        assert!(state.rules.contains_key(&rule("to-a")));
    }

    #[test]
    fn a_queue_command_of_a_group_deleted_and_made_again_is_refused() {
        use crate::meta::{DoneCounts, QueueDefinition, QueueKind};
        let mut state = MetaState::default();
        state.apply(&create("s", 1)).unwrap();
        let queue_group = |at: u64| MetaCommand::CreateGroup {
            stream: name("s"),
            group: group("q"),
            created_at_ms: Timestamp::from_millis(at),
            queue: Some((
                QueueDefinition {
                    kind: QueueKind::Fifo,
                    visibility_timeout: std::time::Duration::from_secs(30),
                    max_receive_count: 0,
                    dead_letter_stream: None,
                    filter: None,
                    owner: None,
                },
                [(ShardId(0), SequenceNumber::new(0))].into(),
            )),
        };
        let done = |incarnation: u64| MetaCommand::QueueDone {
            stream: name("s"),
            group: group("q"),
            incarnation: Timestamp::from_millis(incarnation),
            shard: ShardId(0),
            sequences: vec![SequenceNumber::new(0)],
            start: SequenceNumber::new(1),
            counts: DoneCounts::default(),
        };
        state.apply(&queue_group(1)).unwrap();
        state.apply(&done(1)).unwrap();
        state
            .apply(&MetaCommand::DeleteGroup {
                stream: name("s"),
                group: group("q"),
            })
            .unwrap();
        state.apply(&queue_group(2)).unwrap();
        assert!(matches!(
            state.apply(&done(1)),
            Err(MetaError::GroupNotFound { .. })
        ));
        let q = state
            .group(&name("s"), &group("q"))
            .unwrap()
            .queue
            .as_ref()
            .unwrap();
        assert_eq!(q.shards[&ShardId(0)].start, SequenceNumber::new(0));
    }
}
