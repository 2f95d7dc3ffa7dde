//! The consumer-group layer's errors: failed membership requests and fenced lease holders.

use std::time::Duration;

use super::member::MemberId;

/// A membership request the coordinator refused. A call that returns one changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The client's member id is not acceptable (maps to `INVALID_ARGUMENT`).
    #[error("invalid member_id: {reason}")]
    InvalidMemberId {
        /// What is wrong with it; the id itself is not echoed back.
        reason: &'static str,
    },
    /// The requested session timeout is outside the configured bounds (`INVALID_ARGUMENT`).
    #[error(
        "session_timeout_ms {} is outside the allowed range [{}, {}]",
        .requested.as_millis(),
        .min.as_millis(),
        .max.as_millis()
    )]
    SessionTimeoutOutOfRange {
        /// What the member asked for.
        requested: Duration,
        /// Shortest timeout the group accepts.
        min: Duration,
        /// Longest timeout the group accepts.
        max: Duration,
    },
    /// The member never joined, left, or missed its session timeout (`NOT_FOUND`): it holds no
    /// leases any more and must join again.
    #[error("unknown member {member}: it never joined, left, or its session expired; join again")]
    UnknownMember {
        /// The member that called.
        member: MemberId,
    },
    /// A new member would exceed the group's member limit (`RESOURCE_EXHAUSTED`).
    #[error("consumer group is full: it already has {limit} members")]
    TooManyMembers {
        /// The configured `max_members`.
        limit: usize,
    },
    /// A [`super::GroupConfig`] setting is unusable (a server configuration error).
    #[error("invalid consumer group setting {setting}: {reason}")]
    InvalidConfig {
        /// The setting's name.
        setting: &'static str,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The persisted epoch floor is so high that epochs could wrap; the metadata that holds it
    /// is most likely corrupt (a server error, `DATA_LOSS` or `INTERNAL`).
    #[error(
        "epoch floor {floor} is above the maximum {max}; the persisted group metadata is suspect"
    )]
    EpochFloorTooHigh {
        /// The floor given at construction.
        floor: u64,
        /// [`super::MAX_EPOCH_FLOOR`].
        max: u64,
    },
}

impl GroupError {
    /// The request field an `INVALID_ARGUMENT` error is about, for field-violation details.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::InvalidMemberId { .. } => Some("member_id"),
            Self::SessionTimeoutOutOfRange { .. } => Some("session_timeout_ms"),
            Self::UnknownMember { .. }
            | Self::TooManyMembers { .. }
            | Self::InvalidConfig { .. }
            | Self::EpochFloorTooHigh { .. } => None,
        }
    }
}

/// Why a lease holder may not act on a shard (checkpoint, read as owner). Every variant maps to
/// `FAILED_PRECONDITION`: the caller is a zombie or is behind, and must stop working on the shard
/// until its next heartbeat tells it what it owns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    /// The group does not consume this shard (never given, or no longer in the shard list).
    #[error("shard {shard} is not assigned by this consumer group")]
    UnknownShard {
        /// The shard index presented.
        shard: u32,
    },
    /// Another member (or nobody) holds the shard's lease.
    #[error(
        "member {member} does not own shard {shard}: it is owned by {} at lease epoch {epoch}",
        owner_name(.owner)
    )]
    NotOwner {
        /// The member that presented the lease.
        member: MemberId,
        /// The shard index.
        shard: u32,
        /// The current owner, `None` while the group has no live member.
        owner: Option<MemberId>,
        /// The shard's current lease epoch.
        epoch: u64,
    },
    /// The member owns the shard, but under a different lease epoch: the lease it presents is
    /// from an earlier ownership (or was never handed out).
    #[error(
        "stale lease epoch {presented} for shard {shard} held by {member}: the current epoch is {current}"
    )]
    StaleEpoch {
        /// The member, which is the current owner.
        member: MemberId,
        /// The shard index.
        shard: u32,
        /// The epoch the member presented.
        presented: u64,
        /// The shard's current lease epoch.
        current: u64,
    },
    /// The member owns the shard with this epoch, but its session has run out; the shard is
    /// about to be handed to another member.
    #[error("session of member {member} has expired; shard {shard} (lease epoch {epoch}) is being reassigned")]
    SessionExpired {
        /// The member.
        member: MemberId,
        /// The shard index.
        shard: u32,
        /// The epoch it presented, which is still the current one.
        epoch: u64,
    },
}

fn owner_name(owner: &Option<MemberId>) -> String {
    match owner {
        Some(member) => format!("member {member}"),
        None => "nobody".to_owned(),
    }
}
