//! `GroupCoordinator`: membership, session expiry, lease assignment and fencing for one group.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::assign;
use super::error::{FenceError, GroupError};
use super::member::MemberId;

/// Session timeout of a member that does not ask for one.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest session timeout a member may ask for.
pub const MIN_SESSION_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest session timeout a member may ask for.
pub const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Most members one group accepts; bounds the memory a misbehaving client can pin.
pub const DEFAULT_MAX_MEMBERS: usize = 1024;
/// Epochs reserved per durable write of the epoch floor.
pub const DEFAULT_EPOCH_BLOCK: u64 = 1000;
/// Highest epoch floor accepted at construction. Half of `u64` leaves more room than a group
/// can ever use (one owner change per nanosecond for centuries), so a floor above this is not a
/// real history but corrupt metadata, and refusing it keeps epoch arithmetic free of overflow.
pub const MAX_EPOCH_FLOOR: u64 = u64::MAX / 2;

/// Settings of a group coordinator. Every field has a named default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// Session timeout given to a member that asks for none (or for zero). Default
    /// [`DEFAULT_SESSION_TIMEOUT`], 10 s.
    pub default_session_timeout: Duration,
    /// Shortest session timeout accepted. Default [`MIN_SESSION_TIMEOUT`], 1 s.
    pub min_session_timeout: Duration,
    /// Longest session timeout accepted. Default [`MAX_SESSION_TIMEOUT`], 5 min.
    pub max_session_timeout: Duration,
    /// Most members at once. Default [`DEFAULT_MAX_MEMBERS`].
    pub max_members: usize,
    /// How many epochs one persisted floor covers. Larger means fewer durable writes and bigger
    /// jumps in epoch numbers after a restart. Default [`DEFAULT_EPOCH_BLOCK`].
    pub epoch_block: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            default_session_timeout: DEFAULT_SESSION_TIMEOUT,
            min_session_timeout: MIN_SESSION_TIMEOUT,
            max_session_timeout: MAX_SESSION_TIMEOUT,
            max_members: DEFAULT_MAX_MEMBERS,
            epoch_block: DEFAULT_EPOCH_BLOCK,
        }
    }
}

impl GroupConfig {
    /// Checks the settings against each other; the error names the offending one.
    pub fn validate(&self) -> Result<(), GroupError> {
        let invalid = |setting, reason| Err(GroupError::InvalidConfig { setting, reason });
        if self.min_session_timeout < Duration::from_millis(3) {
            return invalid(
                "min_session_timeout",
                "must be at least 3 ms so the heartbeat interval (a third of it) is not zero",
            );
        }
        if self.max_session_timeout < self.min_session_timeout {
            return invalid(
                "max_session_timeout",
                "must not be below min_session_timeout",
            );
        }
        if self.default_session_timeout < self.min_session_timeout
            || self.default_session_timeout > self.max_session_timeout
        {
            return invalid(
                "default_session_timeout",
                "must lie within [min_session_timeout, max_session_timeout]",
            );
        }
        if self.max_members == 0 {
            return invalid("max_members", "must be at least 1");
        }
        if self.epoch_block == 0 || self.epoch_block > MAX_EPOCH_FLOOR {
            return invalid("epoch_block", "must be between 1 and MAX_EPOCH_FLOOR");
        }
        Ok(())
    }
}

/// A shard's lease as its owner sees it: the shard index and the fencing token that every
/// checkpoint for the shard must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lease {
    /// The shard index.
    pub shard: u32,
    /// The lease epoch; rises every time the shard changes owner.
    pub epoch: u64,
}

/// A live member and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// The member.
    pub member_id: MemberId,
    /// The session timeout the group applies to it.
    pub session_timeout: Duration,
    /// Its leases, by shard index.
    pub leases: Vec<Lease>,
}

impl MemberView {
    /// How often the member should heartbeat: a third of its session timeout, so two lost
    /// heartbeats in a row still do not expire it.
    pub fn heartbeat_interval(&self) -> Duration {
        self.session_timeout / 3
    }
}

/// Who holds one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardOwnership {
    /// The shard index.
    pub shard: u32,
    /// The owner; `None` only while the group has no live member.
    pub owner: Option<MemberId>,
    /// The current lease epoch (of the last owner when unowned; 0 if never owned).
    pub epoch: u64,
}

/// The result of a call that may have changed ownership, with the epoch floor to persist.
///
/// When `persist_epoch_floor` is `Some(floor)`, the coordinator has begun handing out epochs
/// above the floor persisted so far. The caller must durably store `floor` for this group
/// **before** any result of this call, or of any later call, reaches a client (see
/// [`GroupCoordinator`] for the invariant). If that write fails, persist
/// [`GroupCoordinator::reserved_epoch_floor`] successfully before answering anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a raised epoch floor must be persisted before the result is shown to a client"]
pub struct Outcome<T> {
    /// What the call returns.
    pub value: T,
    /// The new epoch floor to persist, if the call reserved a new block of epochs.
    pub persist_epoch_floor: Option<u64>,
}

#[derive(Debug, Clone)]
struct Member {
    session_timeout: Duration,
    /// Latest join or heartbeat; never moves backwards.
    last_seen: Instant,
    /// Shards whose `ShardState::owner` is this member, kept in step with `shards`.
    leases: BTreeSet<u32>,
}

impl Member {
    /// The instant from which the member counts as expired; `None` if beyond `Instant`'s range.
    fn deadline(&self) -> Option<Instant> {
        self.last_seen.checked_add(self.session_timeout)
    }

    fn expired_at(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|deadline| now >= deadline)
    }
}

#[derive(Debug, Clone)]
struct ShardState {
    owner: Option<MemberId>,
    epoch: u64,
}

/// The server-side coordinator of one consumer group of one stream.
///
/// Pure and deterministic: it never reads a clock (every call takes `now`) and touches no
/// file; the caller serialises calls (one lock per group) and persists the epoch floor.
///
/// ```text
///  join / heartbeat / leave / set_shards / expire(now)
///        │  1. validate (an Err changes nothing)
///        │  2. drop members whose deadline (last_seen + session_timeout) is <= now
///        │  3. apply the change; if members or shards changed, rebalance once (assign.rs)
///        │  4. every shard whose owner changed gets a fresh epoch
///        ▼
///  Outcome { value, persist_epoch_floor }  ──► caller persists the floor, then replies
/// ```
///
/// Epochs come from one counter per group, so they are strictly increasing per shard and
/// across the whole group. Invariants:
/// - `epoch_floor_at_construction <= max_epoch() <= reserved_epoch_floor()`;
/// - every epoch handed out is `<= reserved_epoch_floor()`, and the caller persists the reserved
///   floor (reported in [`Outcome::persist_epoch_floor`]) before showing any epoch above the
///   previously persisted one; hence every epoch a client has ever seen is `<=` the persisted
///   floor, and a coordinator rebuilt from that floor after a restart hands out only larger
///   epochs — a lease from before the restart can never match a lease issued after it;
/// - each open shard has exactly one owner while at least one member is live, only live members
///   own shards, and owners' lease counts differ by at most one.
///
/// Epochs are reserved [`GroupConfig::epoch_block`] at a time, so a durable write is needed once
/// per block of owner changes (and once after each restart), not once per rebalance.
#[derive(Debug, Clone)]
pub struct GroupCoordinator {
    config: GroupConfig,
    members: BTreeMap<MemberId, Member>,
    shards: BTreeMap<u32, ShardState>,
    /// Highest epoch handed out (the construction floor until the first owner change).
    max_epoch: u64,
    /// Highest epoch that may be handed out before the caller persists a new floor.
    reserved_floor: u64,
    /// A floor raised during the current call, not yet reported in an `Outcome`.
    floor_to_report: Option<u64>,
}

impl GroupCoordinator {
    /// A coordinator with no members and no shards. `epoch_floor` is the floor the caller last
    /// persisted for this group (0 for a new group); every epoch handed out will be above it.
    pub fn new(epoch_floor: u64, config: GroupConfig) -> Result<Self, GroupError> {
        config.validate()?;
        if epoch_floor > MAX_EPOCH_FLOOR {
            return Err(GroupError::EpochFloorTooHigh {
                floor: epoch_floor,
                max: MAX_EPOCH_FLOOR,
            });
        }
        Ok(Self {
            config,
            members: BTreeMap::new(),
            shards: BTreeMap::new(),
            max_epoch: epoch_floor,
            reserved_floor: epoch_floor,
            floor_to_report: None,
        })
    }

    /// Replaces the set of shards the group consumes (duplicates are ignored) and rebalances.
    /// Keep a closed shard in the set until its checkpoint has reached the shard's end: a shard
    /// not in the set has no owner, so checkpoints for it are fenced.
    pub fn set_shards(&mut self, shards: &[u32], now: Instant) -> Outcome<()> {
        let expired = self.remove_expired(now);
        let open: BTreeSet<u32> = shards.iter().copied().collect();
        let unchanged =
            open.len() == self.shards.len() && open.iter().all(|s| self.shards.contains_key(s));
        if !unchanged {
            self.shards.retain(|shard, _| open.contains(shard));
            for member in self.members.values_mut() {
                member.leases.retain(|shard| open.contains(shard));
            }
            for shard in open {
                self.shards.entry(shard).or_insert(ShardState {
                    owner: None,
                    epoch: 0,
                });
            }
        }
        if !unchanged || !expired.is_empty() {
            self.rebalance();
        }
        self.finish(())
    }

    /// Adds a member, or refreshes a live one (a re-join is a heartbeat that also sets the
    /// timeout). `session_timeout` of `None` or zero means the configured default; the timeout
    /// applies from this call on, also to a re-joining member. A member whose session has
    /// already run out is expired first and joins afresh, with new epochs for what it gets.
    pub fn join(
        &mut self,
        member: &MemberId,
        session_timeout: Option<Duration>,
        now: Instant,
    ) -> Result<Outcome<MemberView>, GroupError> {
        let session_timeout = self.session_timeout(session_timeout)?;
        let rejoin = self.members.get(member).is_some_and(|m| !m.expired_at(now));
        if !rejoin {
            let live = self.members.values().filter(|m| !m.expired_at(now)).count();
            if live >= self.config.max_members {
                return Err(GroupError::TooManyMembers {
                    limit: self.config.max_members,
                });
            }
        }
        let expired = self.remove_expired(now);
        match self.members.get_mut(member) {
            Some(live) => {
                live.session_timeout = session_timeout;
                live.last_seen = live.last_seen.max(now);
                if !expired.is_empty() {
                    self.rebalance();
                }
            }
            None => {
                self.members.insert(
                    member.clone(),
                    Member {
                        session_timeout,
                        last_seen: now,
                        leases: BTreeSet::new(),
                    },
                );
                tracing::debug!(member = %member, "consumer group member joined");
                self.rebalance();
            }
        }
        Ok(self.finish(self.view(member)))
    }

    /// Keeps a live member's session alive and returns its current leases. A member that is
    /// unknown, left, or whose session has run out gets [`GroupError::UnknownMember`].
    pub fn heartbeat(
        &mut self,
        member: &MemberId,
        now: Instant,
    ) -> Result<Outcome<MemberView>, GroupError> {
        self.require_live(member, now)?;
        if !self.remove_expired(now).is_empty() {
            self.rebalance();
        }
        if let Some(live) = self.members.get_mut(member) {
            live.last_seen = live.last_seen.max(now);
        }
        Ok(self.finish(self.view(member)))
    }

    /// Removes a live member at once; its shards go to the others in the same call.
    pub fn leave(&mut self, member: &MemberId, now: Instant) -> Result<Outcome<()>, GroupError> {
        self.require_live(member, now)?;
        self.remove_expired(now);
        self.members.remove(member);
        self.release_all_of(member);
        tracing::debug!(member = %member, "consumer group member left");
        self.rebalance();
        Ok(self.finish(()))
    }

    /// Removes every member whose session has run out at `now` (deadline `<= now`) and hands
    /// its shards to the others. Returns the expired members in id order. Every other mutating
    /// call does this first, so the caller needs it only to expire members on time while no
    /// request arrives (sleep until [`Self::next_deadline`]).
    pub fn expire(&mut self, now: Instant) -> Outcome<Vec<MemberId>> {
        let expired = self.remove_expired(now);
        if !expired.is_empty() {
            self.rebalance();
        }
        self.finish(expired)
    }

    /// Whether `member` may act on `shard` as holder of the lease `epoch`: it must be the
    /// current owner, present the current epoch, and still be within its session at `now`.
    pub fn check_owner(
        &self,
        member: &MemberId,
        shard: u32,
        epoch: u64,
        now: Instant,
    ) -> Result<(), FenceError> {
        let state = self
            .shards
            .get(&shard)
            .ok_or(FenceError::UnknownShard { shard })?;
        if state.owner.as_ref() != Some(member) {
            return Err(FenceError::NotOwner {
                member: member.clone(),
                shard,
                owner: state.owner.clone(),
                epoch: state.epoch,
            });
        }
        if epoch != state.epoch {
            return Err(FenceError::StaleEpoch {
                member: member.clone(),
                shard,
                presented: epoch,
                current: state.epoch,
            });
        }
        if self.members.get(member).is_none_or(|m| m.expired_at(now)) {
            return Err(FenceError::SessionExpired {
                member: member.clone(),
                shard,
                epoch,
            });
        }
        Ok(())
    }

    /// Every member (including any whose session ran out but that no call has expired yet), in
    /// id order.
    pub fn members(&self) -> Vec<MemberView> {
        self.members.keys().map(|id| self.view(id)).collect()
    }

    /// Every shard the group consumes, by shard index.
    pub fn ownership(&self) -> Vec<ShardOwnership> {
        self.shards
            .iter()
            .map(|(shard, state)| ShardOwnership {
                shard: *shard,
                owner: state.owner.clone(),
                epoch: state.epoch,
            })
            .collect()
    }

    /// The earliest instant at which [`Self::expire`] will remove a member, if any member is
    /// live; a timer task sleeps until then instead of polling.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.members.values().filter_map(Member::deadline).min()
    }

    #[cfg(test)]
    /// The highest lease epoch handed out so far (the construction floor if none).
    pub fn max_epoch(&self) -> u64 {
        self.max_epoch
    }

    /// The floor that covers every epoch handed out and those reserved next; what the caller
    /// persists (and passes to [`Self::new`] after a restart).
    pub fn reserved_epoch_floor(&self) -> u64 {
        self.reserved_floor
    }

    fn session_timeout(&self, requested: Option<Duration>) -> Result<Duration, GroupError> {
        match requested {
            None | Some(Duration::ZERO) => Ok(self.config.default_session_timeout),
            Some(requested)
                if requested < self.config.min_session_timeout
                    || requested > self.config.max_session_timeout =>
            {
                Err(GroupError::SessionTimeoutOutOfRange {
                    requested,
                    min: self.config.min_session_timeout,
                    max: self.config.max_session_timeout,
                })
            }
            Some(requested) => Ok(requested),
        }
    }

    fn require_live(&self, member: &MemberId, now: Instant) -> Result<(), GroupError> {
        match self.members.get(member) {
            Some(live) if !live.expired_at(now) => Ok(()),
            _ => Err(GroupError::UnknownMember {
                member: member.clone(),
            }),
        }
    }

    /// Removes the members whose session has run out and frees their shards, without
    /// rebalancing: the caller applies its own change first, so one call costs one rebalance
    /// and a freed shard moves once, straight to its next owner.
    fn remove_expired(&mut self, now: Instant) -> Vec<MemberId> {
        let expired: Vec<MemberId> = self
            .members
            .iter()
            .filter(|(_, m)| m.expired_at(now))
            .map(|(id, _)| id.clone())
            .collect();
        if expired.is_empty() {
            return expired;
        }
        for id in &expired {
            self.members.remove(id);
            self.release_all_of(id);
            tracing::debug!(member = %id, "consumer group member session expired");
        }
        expired
    }

    /// Clears the owner of every shard `member` held; the epochs stay, the next owner bumps them.
    fn release_all_of(&mut self, member: &MemberId) {
        for state in self.shards.values_mut() {
            if state.owner.as_ref() == Some(member) {
                state.owner = None;
            }
        }
    }

    /// Recomputes the assignment and gives every shard that changed owner a fresh epoch.
    fn rebalance(&mut self) {
        let holdings: BTreeMap<MemberId, BTreeSet<u32>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.leases.clone()))
            .collect();
        let open: BTreeSet<u32> = self.shards.keys().copied().collect();
        let plan = assign::plan(&holdings, &open);

        let mut moved = 0usize;
        let mut new_owner: BTreeMap<u32, &MemberId> = BTreeMap::new();
        for (id, shards) in &plan {
            for shard in shards {
                new_owner.insert(*shard, id);
            }
        }
        let shard_ids: Vec<u32> = self.shards.keys().copied().collect();
        for shard in shard_ids {
            let owner = new_owner.get(&shard).map(|id| (*id).clone());
            let changed = match (&self.shards[&shard].owner, &owner) {
                (current, Some(next)) => current.as_ref() != Some(next),
                (_, None) => false,
            };
            let epoch = if changed {
                moved += 1;
                Some(self.next_epoch())
            } else {
                None
            };
            if let Some(state) = self.shards.get_mut(&shard) {
                state.owner = owner;
                if let Some(epoch) = epoch {
                    state.epoch = epoch;
                }
            }
        }
        for (id, member) in &mut self.members {
            member.leases = plan.get(id).cloned().unwrap_or_default();
        }
        if moved > 0 {
            tracing::debug!(
                moved,
                members = self.members.len(),
                shards = self.shards.len(),
                "consumer group rebalanced"
            );
        }
        self.debug_check();
    }

    /// Takes the next epoch, reserving a new block (to be persisted) when the current one is
    /// used up.
    fn next_epoch(&mut self) -> u64 {
        // Cannot overflow: the floor starts at most at MAX_EPOCH_FLOOR (u64::MAX / 2) and grows
        // by one per owner change.
        self.max_epoch += 1;
        if self.max_epoch > self.reserved_floor {
            self.reserved_floor += self.config.epoch_block;
            self.floor_to_report = Some(self.reserved_floor);
        }
        debug_assert!(self.max_epoch <= self.reserved_floor);
        self.max_epoch
    }

    fn finish<T>(&mut self, value: T) -> Outcome<T> {
        Outcome {
            value,
            persist_epoch_floor: self.floor_to_report.take(),
        }
    }

    fn view(&self, id: &MemberId) -> MemberView {
        let member = self.members.get(id);
        MemberView {
            member_id: id.clone(),
            session_timeout: member.map_or(Duration::ZERO, |m| m.session_timeout),
            leases: member
                .map(|m| {
                    m.leases
                        .iter()
                        .map(|shard| Lease {
                            shard: *shard,
                            epoch: self.shards.get(shard).map_or(0, |s| s.epoch),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Checks the ownership invariants (debug builds and tests).
    fn debug_check(&self) {
        if cfg!(debug_assertions) {
            if let Err(broken) = self.invariants() {
                panic!("consumer group invariant broken: {broken}");
            }
        }
    }

    /// The ownership invariants, as text naming the first one broken.
    pub(super) fn invariants(&self) -> Result<(), String> {
        for (shard, state) in &self.shards {
            match &state.owner {
                Some(owner) => match self.members.get(owner) {
                    Some(m) if m.leases.contains(shard) => {}
                    Some(_) => {
                        return Err(format!("shard {shard}: owner {owner} does not list it"))
                    }
                    None => return Err(format!("shard {shard}: owner {owner} is not a member")),
                },
                None if !self.members.is_empty() => {
                    return Err(format!("shard {shard} unowned with members live"));
                }
                None => {}
            }
            if state.epoch > self.max_epoch {
                return Err(format!("shard {shard}: epoch above max_epoch"));
            }
        }
        for (id, m) in &self.members {
            for shard in &m.leases {
                let owner = self.shards.get(shard).and_then(|s| s.owner.as_ref());
                if owner != Some(id) {
                    return Err(format!("member {id} lists shard {shard} it does not own"));
                }
            }
        }
        let counts: Vec<usize> = self.members.values().map(|m| m.leases.len()).collect();
        if let (Some(min), Some(max)) = (counts.iter().min(), counts.iter().max()) {
            if max - min > 1 {
                return Err(format!("unbalanced: {min} to {max} leases per member"));
            }
        }
        if self.max_epoch > self.reserved_floor {
            return Err("max_epoch above the reserved floor".to_owned());
        }
        Ok(())
    }
}
