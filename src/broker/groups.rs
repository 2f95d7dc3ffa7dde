//! Consumer groups in the broker: one `GroupCoordinator` per (stream, group) for membership and
//! leases, the metadata store for what must survive (the group, its checkpoints, the epoch
//! floor), and a timer task that expires silent members on time.
//!
//! Every call that may hand out a new lease epoch persists the raised floor *before* its answer
//! leaves, so epochs keep rising across a crash. A checkpoint is fenced and made durable while
//! the group is locked, so no rebalance can slip between the ownership check and the write.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Notify};

use super::{blocking, Broker, BrokerError, StreamHandle};
use crate::consumer::{GroupConfig, GroupCoordinator, GroupError, Lease, MemberId};
use crate::meta::{MetaCommand, MetaState};
use crate::storage::{SequenceNumber, Timestamp};
use crate::stream::{GroupName, ShardId, StreamName};

/// A group of a stream: the key of its live coordinator and its epoch floor.
type GroupKey = (StreamName, GroupName);

/// One lease as a member sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The leased shard.
    pub shard: ShardId,
    /// The lease's fencing epoch: checkpoints must present it.
    pub epoch: u64,
    /// The group's checkpoint on the shard: the last sequence number processed.
    pub checkpoint: Option<SequenceNumber>,
}

/// What join and heartbeat return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAssignments {
    /// The member's leases after the rebalance.
    pub leases: Vec<LeaseInfo>,
    /// How often the member should heartbeat.
    pub heartbeat_interval: Duration,
    /// How long the member's session lasts without a heartbeat.
    pub session_timeout: Duration,
}

/// A member as DescribeGroup shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberInfo {
    /// The member's id.
    pub member_id: String,
    /// Its session timeout.
    pub session_timeout: Duration,
    /// The shards it leases.
    pub shards: Vec<ShardId>,
}

/// One shard's progress in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardProgressInfo {
    /// The shard.
    pub shard: ShardId,
    /// The member leasing it, if any.
    pub owner: Option<String>,
    /// The lease's current epoch.
    pub epoch: u64,
    /// The group's checkpoint on the shard, if one was committed.
    pub checkpoint: Option<SequenceNumber>,
    /// The newest stored sequence number, `None` when the shard is empty.
    pub latest_sequence: Option<SequenceNumber>,
    /// Stored records after the checkpoint (all stored records without one).
    pub lag_records: u64,
    /// Arrival-time distance from the checkpointed record (the oldest retained one without a
    /// checkpoint) to the newest, in whole ms; zero when nothing lags.
    pub behind_latest: Duration,
}

/// DescribeGroup's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The live members.
    pub members: Vec<GroupMemberInfo>,
    /// Every open shard's owner and progress.
    pub shards: Vec<ShardProgressInfo>,
}

pub(crate) struct Groups {
    config: GroupConfig,
    coordinators: Mutex<HashMap<GroupKey, GroupCoordinator>>,
    /// Epoch floors persisted before this process started.
    floors: std::sync::Mutex<HashMap<GroupKey, u64>>,
    /// Groups whose last floor write failed: their coordinator may hold epochs above the
    /// durable floor, so no answer may show an epoch until its reserved floor is durable.
    unpersisted: std::sync::Mutex<HashSet<GroupKey>>,
    wake: Notify,
}

/// The persisted epoch floor of every group, read from the metadata on start.
pub(crate) fn floors_from(state: &MetaState) -> HashMap<GroupKey, u64> {
    state
        .groups
        .iter()
        .map(|(key, rec)| (key.clone(), rec.epoch_floor))
        .collect()
}

impl Groups {
    pub(crate) fn new(default_session_timeout: Duration, floors: HashMap<GroupKey, u64>) -> Self {
        Groups {
            config: GroupConfig {
                default_session_timeout,
                ..GroupConfig::default()
            },
            coordinators: Mutex::new(HashMap::new()),
            floors: std::sync::Mutex::new(floors),
            unpersisted: std::sync::Mutex::new(HashSet::new()),
            wake: Notify::new(),
        }
    }

    /// The coordinator's own rule for a requested session timeout (`None` or zero: the
    /// default), checked up front so a join that will be refused changes nothing durable.
    fn check_session_timeout(&self, requested: Option<Duration>) -> Result<(), GroupError> {
        let (min, max) = (
            self.config.min_session_timeout,
            self.config.max_session_timeout,
        );
        match requested {
            Some(t) if !t.is_zero() && (t < min || t > max) => {
                Err(GroupError::SessionTimeoutOutOfRange {
                    requested: t,
                    min,
                    max,
                })
            }
            _ => Ok(()),
        }
    }

    /// Forgets the live state of every group of a deleted stream.
    pub(crate) async fn remove_stream(&self, stream: &StreamName) {
        self.coordinators
            .lock()
            .await
            .retain(|(s, _), _| s != stream);
        self.floors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(s, _), _| s != stream);
        self.unpersisted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(s, _)| s != stream);
        self.wake.notify_one();
    }

    /// Expires silent members when their sessions end, without waiting for a request.
    pub(crate) fn spawn_expiry(&self, broker: Broker) {
        tokio::spawn(async move {
            let mut shutdown = broker.shutdown_signal();
            loop {
                let groups = &broker.inner.groups;
                let deadline = {
                    let c = groups.coordinators.lock().await;
                    c.values().filter_map(GroupCoordinator::next_deadline).min()
                };
                let sleep = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = sleep => {}
                    _ = groups.wake.notified() => continue,
                    _ = shutdown.changed() => return,
                }
                let mut c = groups.coordinators.lock().await;
                let now = Instant::now();
                for ((stream, group), coordinator) in c.iter_mut() {
                    let outcome = coordinator.expire(now);
                    if !outcome.value.is_empty() {
                        tracing::info!(stream = stream.as_str(), group = group.as_str(), expired = ?outcome.value.iter().map(MemberId::as_str).collect::<Vec<_>>(), "members expired");
                    }
                    let key = (stream.clone(), group.clone());
                    let floor = outcome.persist_epoch_floor;
                    if let Err(e) = broker.persist_before_answer(&key, coordinator, floor).await {
                        tracing::error!(stream = stream.as_str(), group = group.as_str(), error = %e, "could not persist the epoch floor");
                    }
                }
            }
        });
    }
}

/// A member the group's coordinator does not know (it never joined, left, or expired).
fn unknown_member(member: &MemberId) -> BrokerError {
    BrokerError::Group(GroupError::UnknownMember {
        member: member.clone(),
    })
}

/// Per shard (by index), whether the group is done with it: it is closed, the group's
/// checkpoint reached its end (or it never held a record, or retention removed all it held),
/// and the group is done with its parents. The last part matters for the empty intermediate
/// shards of a scaling: done with nothing of their own, they are done only once their parents
/// are. Parents have lower ids, so one pass in id order decides every shard.
fn finished_shards(
    handle: &StreamHandle,
    checkpoints: &BTreeMap<ShardId, SequenceNumber>,
) -> Vec<bool> {
    let mut finished = Vec::with_capacity(handle.slots.len());
    for shard in handle.descriptor.shards() {
        let own = handle.shard(shard.id).is_none_or(|sh| match sh.ending() {
            None => false,
            Some(end) => match end.checked_sub(1) {
                None => true,
                Some(last) => {
                    sh.log.first_sequence() >= end
                        || checkpoints.get(&shard.id).is_some_and(|&c| c >= last)
                }
            },
        });
        let parents_done = parents(shard).all(|p| finished.get(p.index() as usize) == Some(&true));
        finished.push(own && parents_done);
    }
    finished
}

fn parents(shard: &crate::stream::ShardDescriptor) -> impl Iterator<Item = ShardId> {
    shard.parent.into_iter().chain(shard.adjacent_parent)
}

/// The shards a group leases now, following lineage as the KCL does: a shard the group is not
/// done with, whose parents (both, after a merge) it is done with. So a child is read only
/// after its parents have been read to their ends, and order per key holds across a reshard.
fn leasable_shards(
    handle: &StreamHandle,
    checkpoints: &BTreeMap<ShardId, SequenceNumber>,
) -> Vec<u32> {
    let finished = finished_shards(handle, checkpoints);
    let done = |id: ShardId| finished.get(id.index() as usize) == Some(&true);
    handle
        .descriptor
        .shards()
        .iter()
        .filter(|s| !done(s.id) && parents(s).all(done))
        .map(|s| s.id.index())
        .collect()
}

impl Broker {
    /// Makes the group's epoch floor durable before an answer that may show epochs leaves:
    /// the floor this call raised, or — once a floor write has failed — the coordinator's whole
    /// reserved floor, as the coordinator requires. Until that succeeds every such answer
    /// fails, so no client sees an epoch that a restart could hand out again.
    async fn persist_before_answer(
        &self,
        key: &GroupKey,
        coordinator: &GroupCoordinator,
        raised: Option<u64>,
    ) -> Result<(), BrokerError> {
        let unpersisted = &self.inner.groups.unpersisted;
        let pending = unpersisted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key);
        let floor = if pending {
            Some(coordinator.reserved_epoch_floor())
        } else {
            raised
        };
        let Some(floor) = floor else {
            return Ok(());
        };
        let result = self.persist_floor(&key.0, &key.1, floor).await;
        let mut unpersisted = unpersisted.lock().unwrap_or_else(|p| p.into_inner());
        if result.is_ok() {
            unpersisted.remove(key);
        } else {
            unpersisted.insert(key.clone());
        }
        result
    }

    async fn persist_floor(
        &self,
        stream: &StreamName,
        group: &GroupName,
        floor: u64,
    ) -> Result<(), BrokerError> {
        self.execute_meta(MetaCommand::RaiseEpochFloor {
            stream: stream.clone(),
            group: group.clone(),
            epoch: floor,
        })
        .await
    }

    fn checkpoints(
        &self,
        stream: &StreamName,
        group: &GroupName,
    ) -> Option<BTreeMap<ShardId, SequenceNumber>> {
        let meta = self.inner.meta.lock().unwrap_or_else(|p| p.into_inner());
        meta.state()
            .groups
            .get(&(stream.clone(), group.clone()))
            .map(|g| g.checkpoints.clone())
    }

    fn assignments(
        &self,
        stream: &StreamName,
        group: &GroupName,
        leases: &[Lease],
        session_timeout: Duration,
        heartbeat_interval: Duration,
    ) -> MemberAssignments {
        let checkpoints = self.checkpoints(stream, group).unwrap_or_default();
        MemberAssignments {
            leases: leases
                .iter()
                .map(|l| LeaseInfo {
                    shard: ShardId(l.shard),
                    epoch: l.epoch,
                    checkpoint: checkpoints.get(&ShardId(l.shard)).copied(),
                })
                .collect(),
            heartbeat_interval,
            session_timeout,
        }
    }

    /// The group and member a membership call names, validated.
    fn member_of(
        &self,
        stream: &StreamName,
        group: &str,
        member_id: &str,
    ) -> Result<(GroupKey, MemberId), BrokerError> {
        let (handle, group) = self.group_names(stream, group)?;
        let member = MemberId::new(member_id)?;
        Ok(((handle.descriptor.name.clone(), group), member))
    }

    /// Refuses a group that does not exist yet once its stream holds `max_groups`. Called
    /// under the admin lock, before the group is made durable.
    pub(crate) fn check_group_room(
        &self,
        stream: &StreamName,
        group: &GroupName,
    ) -> Result<(), BrokerError> {
        let limit = self.inner.config.stream_limits.max_groups;
        let meta = self.inner.meta.lock().unwrap_or_else(|p| p.into_inner());
        let groups = &meta.state().groups;
        if groups.contains_key(&(stream.clone(), group.clone())) {
            return Ok(());
        }
        let held = groups.keys().filter(|(s, _)| s == stream).count();
        if held >= limit {
            return Err(BrokerError::TooMany {
                what: "groups",
                stream: stream.clone(),
                limit,
            });
        }
        Ok(())
    }

    pub(crate) fn group_names(
        &self,
        stream: &StreamName,
        group: &str,
    ) -> Result<(Arc<StreamHandle>, GroupName), BrokerError> {
        let handle = self.stream(stream)?;
        let group = GroupName::new(group)?;
        Ok((handle, group))
    }

    /// Joins (or re-joins) `member_id` to the group, creating the group on first use, and
    /// returns the member's leases after the rebalance this causes.
    pub async fn join_group(
        &self,
        stream: &StreamName,
        group: &str,
        member_id: &str,
        session_timeout: Option<Duration>,
    ) -> Result<MemberAssignments, BrokerError> {
        let (handle, group) = self.group_names(stream, group)?;
        let member = MemberId::new(member_id)?;
        // Refused before the group is made durable: a rejected first join must not create it.
        self.inner.groups.check_session_timeout(session_timeout)?;
        let stream = handle.descriptor.name.clone();
        self.refuse_queue_group(&stream, &group)?;
        if self.checkpoints(&stream, &group).is_none() {
            // Counted and made under the admin lock: concurrent first joins of many groups
            // cannot pass the limit together.
            let _admin = self.inner.admin.lock().await;
            self.check_group_room(&stream, &group)?;
            let created = self
                .execute_meta(MetaCommand::CreateGroup {
                    stream: stream.clone(),
                    group: group.clone(),
                    created_at_ms: Timestamp::now(),
                    queue: None,
                })
                .await;
            match created {
                // A concurrent first join created it: fine.
                Ok(()) | Err(BrokerError::Meta(crate::meta::MetaError::GroupExists { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        let key = (stream.clone(), group.clone());
        let groups = &self.inner.groups;
        let mut coordinators = groups.coordinators.lock().await;
        let coordinator = match coordinators.entry(key.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let floor = groups
                    .floors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&key)
                    .copied()
                    .unwrap_or(0);
                v.insert(GroupCoordinator::new(floor, groups.config.clone())?)
            }
        };
        let now = Instant::now();
        // Under the coordinators' lock, where checkpoints are committed: the layout and the
        // checkpoints as they stand now.
        let handle = self.stream(&stream)?;
        let checkpoints = self.checkpoints(&stream, &group).unwrap_or_default();
        let set = coordinator.set_shards(&leasable_shards(&handle, &checkpoints), now);
        let outcome = coordinator.join(&member, session_timeout, now)?;
        let floor = [set.persist_epoch_floor, outcome.persist_epoch_floor]
            .into_iter()
            .flatten()
            .max();
        let view = outcome.value;
        self.persist_before_answer(&key, coordinator, floor).await?;
        drop(coordinators);
        groups.wake.notify_one();
        Ok(self.assignments(
            &stream,
            &group,
            &view.leases,
            view.session_timeout,
            view.heartbeat_interval(),
        ))
    }

    /// Keeps a member alive and returns its current leases.
    pub async fn heartbeat(
        &self,
        stream: &StreamName,
        group: &str,
        member_id: &str,
    ) -> Result<MemberAssignments, BrokerError> {
        let (key, member) = self.member_of(stream, group, member_id)?;
        let mut coordinators = self.inner.groups.coordinators.lock().await;
        let coordinator = coordinators
            .get_mut(&key)
            .ok_or_else(|| unknown_member(&member))?;
        // Read under the lock, where checkpoints are committed (see `join_group`).
        let handle = self.stream(stream)?;
        let checkpoints = self.checkpoints(&key.0, &key.1).unwrap_or_default();
        // A reshard or a checkpoint at the end of a parent changes what the group leases.
        let now = Instant::now();
        let set = coordinator.set_shards(&leasable_shards(&handle, &checkpoints), now);
        let outcome = coordinator.heartbeat(&member, now)?;
        let floor = [set.persist_epoch_floor, outcome.persist_epoch_floor]
            .into_iter()
            .flatten()
            .max();
        self.persist_before_answer(&key, coordinator, floor).await?;
        drop(coordinators);
        let view = outcome.value;
        let (stream, group) = &key;
        Ok(self.assignments(
            stream,
            group,
            &view.leases,
            view.session_timeout,
            view.heartbeat_interval(),
        ))
    }

    /// Removes a member at once; its shards go to the others.
    pub async fn leave_group(
        &self,
        stream: &StreamName,
        group: &str,
        member_id: &str,
    ) -> Result<(), BrokerError> {
        let (key, member) = self.member_of(stream, group, member_id)?;
        let mut coordinators = self.inner.groups.coordinators.lock().await;
        let coordinator = coordinators
            .get_mut(&key)
            .ok_or_else(|| unknown_member(&member))?;
        let outcome = coordinator.leave(&member, Instant::now())?;
        self.persist_before_answer(&key, coordinator, outcome.persist_epoch_floor)
            .await?;
        drop(coordinators);
        self.inner.groups.wake.notify_one();
        Ok(())
    }

    /// Records how far `shard` has been processed. Only the lease's current owner with its
    /// current epoch may commit; the checkpoint is durable before this returns and never moves
    /// backwards unless `reset` is set.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_checkpoint(
        &self,
        stream: &StreamName,
        group: &str,
        member_id: &str,
        shard_id: &str,
        lease_epoch: u64,
        sequence: SequenceNumber,
        reset: bool,
    ) -> Result<(), BrokerError> {
        let (handle, group) = self.group_names(stream, group)?;
        let member = MemberId::new(member_id)?;
        let stream = handle.descriptor.name.clone();
        let shard: ShardId =
            shard_id
                .parse()
                .map_err(|_parse_error| BrokerError::ShardNotFound {
                    stream: stream.clone(),
                    shard: shard_id.to_owned(),
                })?;
        let log = handle
            .shard(shard)
            .map(|s| Arc::clone(&s.log))
            .ok_or_else(|| BrokerError::ShardNotFound {
                stream: stream.clone(),
                shard: shard_id.to_owned(),
            })?;
        let next = log.next_sequence();
        if sequence >= next {
            return Err(BrokerError::invalid(
                "sequence_number",
                format!("{sequence} is not a stored sequence number of {shard} (next is {next})"),
            ));
        }
        self.refuse_queue_group(&stream, &group)?;
        let key = (stream.clone(), group.clone());
        let coordinators = self.inner.groups.coordinators.lock().await;
        let coordinator = coordinators
            .get(&key)
            .ok_or_else(|| unknown_member(&member))?;
        coordinator.check_owner(&member, shard.index(), lease_epoch, Instant::now())?;
        let cmd = if reset {
            MetaCommand::ResetCheckpoint {
                stream,
                group,
                shard,
                sequence: Some(sequence),
            }
        } else {
            MetaCommand::CommitCheckpoint {
                stream,
                group,
                shard,
                sequence,
            }
        };
        self.execute_meta(cmd).await?;
        drop(coordinators);
        Ok(())
    }

    /// Moves a lease group's checkpoint of one shard by hand: to `sequence` (the group goes on
    /// after it), or to none (the group starts the shard over). An operator's tool, with the
    /// rule of Kafka's offset reset: refused while the group has live members, whose leases
    /// would fight it.
    pub async fn reset_checkpoint(
        &self,
        stream: &StreamName,
        group: &str,
        shard_id: &str,
        sequence: Option<SequenceNumber>,
    ) -> Result<(), BrokerError> {
        let (handle, group) = self.group_names(stream, group)?;
        let stream = handle.descriptor.name.clone();
        self.refuse_queue_group(&stream, &group)?;
        if self.checkpoints(&stream, &group).is_none() {
            return Err(BrokerError::GroupNotFound { stream, group });
        }
        let not_found = || BrokerError::ShardNotFound {
            stream: stream.clone(),
            shard: shard_id.to_owned(),
        };
        let shard: ShardId = shard_id.parse().map_err(|_parse_error| not_found())?;
        let log = handle
            .shard(shard)
            .map(|s| Arc::clone(&s.log))
            .ok_or_else(not_found)?;
        if let Some(sequence) = sequence {
            let next = log.next_sequence();
            if sequence >= next {
                return Err(BrokerError::invalid(
                    "sequence_number",
                    format!(
                        "{sequence} is not a stored sequence number of {shard} (next is {next})"
                    ),
                ));
            }
        }
        let key = (stream.clone(), group.clone());
        // Held across the change: no member joins meanwhile.
        let mut coordinators = self.inner.groups.coordinators.lock().await;
        if let Some(c) = coordinators.get_mut(&key) {
            let outcome = c.expire(Instant::now());
            self.persist_before_answer(&key, c, outcome.persist_epoch_floor)
                .await?;
            let members = c.members().len();
            if members > 0 {
                return Err(BrokerError::GroupHasMembers {
                    stream,
                    group,
                    members,
                });
            }
        }
        self.execute_meta(MetaCommand::ResetCheckpoint {
            stream,
            group,
            shard,
            sequence,
        })
        .await?;
        drop(coordinators);
        Ok(())
    }

    /// Members, owners, checkpoints and lag of a group.
    pub async fn describe_group(
        &self,
        stream: &StreamName,
        group: &str,
    ) -> Result<GroupDescription, BrokerError> {
        let (handle, group) = self.group_names(stream, group)?;
        let stream = handle.descriptor.name.clone();
        let checkpoints =
            self.checkpoints(&stream, &group)
                .ok_or_else(|| BrokerError::GroupNotFound {
                    stream: stream.clone(),
                    group: group.clone(),
                })?;
        let key = (stream.clone(), group.clone());
        let (members, ownership) = {
            let mut coordinators = self.inner.groups.coordinators.lock().await;
            match coordinators.get_mut(&key) {
                Some(c) => {
                    let outcome = c.expire(Instant::now());
                    self.persist_before_answer(&key, c, outcome.persist_epoch_floor)
                        .await?;
                    (c.members(), c.ownership())
                }
                None => (Vec::new(), Vec::new()),
            }
        };
        let mut shards = Vec::new();
        let finished = finished_shards(&handle, &checkpoints);
        for shard in handle.descriptor.shards() {
            let Some(sh) = handle.shard(shard.id) else {
                continue;
            };
            // A closed shard shows until the group is done with it; the empty intermediate
            // shards of a scaling never do.
            let empty_closed = shard.ending_sequence == Some(SequenceNumber::ZERO);
            if finished[shard.id.index() as usize] || empty_closed {
                continue;
            }
            let log = Arc::clone(&sh.log);
            let own = ownership.iter().find(|o| o.shard == shard.id.index());
            let checkpoint = checkpoints.get(&shard.id).copied();
            let next = log.next_sequence();
            let first = log.first_sequence();
            let start = checkpoint.map_or(first, |c| c.next().max(first));
            let lag_records = next.saturating_distance_from(start);
            let behind_latest = if lag_records == 0 {
                Duration::ZERO
            } else {
                // From the checkpointed record (the last one processed) to the newest, as the
                // contract defines it; without a checkpoint, or once retention dropped the
                // checkpointed record, from the oldest record still retained.
                let from = checkpoint.filter(|&c| c >= first).unwrap_or(first);
                let l = Arc::clone(&log);
                let oldest = blocking("read oldest", move || l.read(from, 1, 1)).await??;
                oldest.records.first().map_or(Duration::ZERO, |r| {
                    log.last_timestamp_ms()
                        .saturating_duration_since(r.timestamp_ms)
                })
            };
            shards.push(ShardProgressInfo {
                shard: shard.id,
                owner: own.and_then(|o| o.owner.as_ref().map(|m| m.as_str().to_owned())),
                epoch: own.map_or(0, |o| o.epoch),
                checkpoint,
                latest_sequence: next.checked_sub(1).filter(|_| next > first),
                lag_records,
                behind_latest,
            });
        }
        Ok(GroupDescription {
            members: members
                .into_iter()
                .map(|m| GroupMemberInfo {
                    member_id: m.member_id.as_str().to_owned(),
                    session_timeout: m.session_timeout,
                    shards: m.leases.iter().map(|l| ShardId(l.shard)).collect(),
                })
                .collect(),
            shards,
        })
    }

    /// The stream's groups with their kinds, sorted by name.
    pub fn list_groups(
        &self,
        stream: &StreamName,
    ) -> Result<Vec<(String, super::GroupType)>, BrokerError> {
        let handle = self.stream(stream)?;
        let meta = self.inner.meta.lock().unwrap_or_else(|p| p.into_inner());
        Ok(meta
            .state()
            .groups
            .iter()
            .filter(|((s, _), _)| *s == handle.descriptor.name)
            .map(|((_, g), record)| {
                let kind = match record.queue.as_ref().map(|q| q.definition.kind) {
                    None => super::GroupType::ShardLeases,
                    Some(crate::meta::QueueKind::Fifo) => super::GroupType::QueueFifo,
                    Some(crate::meta::QueueKind::Standard) => super::GroupType::QueueStandard,
                };
                (g.as_str().to_owned(), kind)
            })
            .collect())
    }

    /// Lease calls on a queue group are refused: it has no leases to hand out. Asks the live
    /// queue groups, not the metadata, whose lock the queue journal holds while it syncs.
    fn refuse_queue_group(
        &self,
        stream: &StreamName,
        group: &GroupName,
    ) -> Result<(), BrokerError> {
        if self.queue_kind(stream, group.as_str()).is_some() {
            return Err(BrokerError::IsAQueueGroup {
                stream: stream.clone(),
                group: group.clone(),
            });
        }
        Ok(())
    }

    /// Deletes a group: its checkpoints and its live membership.
    pub async fn delete_group(&self, stream: &StreamName, group: &str) -> Result<(), BrokerError> {
        let (handle, group) = self.group_names(stream, group)?;
        let stream = handle.descriptor.name.clone();
        if self.checkpoints(&stream, &group).is_none() {
            return Err(BrokerError::GroupNotFound {
                stream: stream.clone(),
                group: group.clone(),
            });
        }
        let key = (stream.clone(), group.clone());
        let mut coordinators = self.inner.groups.coordinators.lock().await;
        self.execute_meta(MetaCommand::DeleteGroup { stream, group })
            .await?;
        coordinators.remove(&key);
        self.inner.queues.remove(&key);
        self.inner
            .groups
            .floors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        self.inner
            .groups
            .unpersisted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        Ok(())
    }
}
