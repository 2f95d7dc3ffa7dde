//! Every broker error becomes a gRPC status here, and only here. The match is exhaustive, so a
//! new error variant does not compile until it is given a code.

use tonic::{Code, Status};

use crate::broker::iterator::IteratorError;
use crate::broker::BrokerError;
use crate::consumer::GroupError;
use crate::fifo::FifoError;
use crate::meta::MetaError;
use crate::storage::StorageError;
use crate::stream::ModelError;

/// The gRPC code of a broker error.
pub fn code_of(e: &BrokerError) -> Code {
    match e {
        BrokerError::StreamNotFound { .. }
        | BrokerError::ShardNotFound { .. }
        | BrokerError::GroupNotFound { .. } => Code::NotFound,
        BrokerError::StreamExists { .. } => Code::AlreadyExists,
        BrokerError::TooMany { .. }
        | BrokerError::ServerLimit { .. }
        | BrokerError::ReshardLimit { .. }
        | BrokerError::Throttled { .. } => Code::ResourceExhausted,
        BrokerError::NotPermitted { .. } => Code::PermissionDenied,
        BrokerError::InvalidArgument { .. }
        | BrokerError::InvalidAttribute { .. }
        | BrokerError::InvalidPattern { .. }
        | BrokerError::Model(ModelError::InvalidField { .. }) => Code::InvalidArgument,
        BrokerError::Iterator(IteratorError::Malformed) => Code::InvalidArgument,
        BrokerError::Iterator(IteratorError::Expired { .. }) => Code::FailedPrecondition,
        BrokerError::Fifo(f) => match f {
            FifoError::IdLength { .. }
            | FifoError::IdCharacter { .. }
            | FifoError::WindowOutOfRange { .. }
            | FifoError::ZeroLiveIdCap => Code::InvalidArgument,
            FifoError::WindowFull { .. } => Code::ResourceExhausted,
        },
        BrokerError::Group(g) => match g {
            GroupError::InvalidMemberId { .. } | GroupError::SessionTimeoutOutOfRange { .. } => {
                Code::InvalidArgument
            }
            GroupError::UnknownMember { .. } => Code::NotFound,
            GroupError::TooManyMembers { .. } => Code::ResourceExhausted,
            GroupError::InvalidConfig { .. } | GroupError::EpochFloorTooHigh { .. } => {
                Code::Internal
            }
        },
        BrokerError::Fence(_)
        | BrokerError::NotAQueueGroup { .. }
        | BrokerError::GroupHasMembers { .. }
        | BrokerError::IsAQueueGroup { .. }
        | BrokerError::ReceiptRefused { .. }
        | BrokerError::StreamUpdating { .. } => Code::FailedPrecondition,
        BrokerError::QueueJournal { source } => meta_code(source),
        BrokerError::Storage(s) => match s {
            StorageError::Corrupt { .. } => Code::DataLoss,
            StorageError::DiskFull { .. } | StorageError::Busy { .. } => Code::ResourceExhausted,
            StorageError::Poisoned { .. } | StorageError::Io { .. } => Code::Internal,
            StorageError::Encode(_) => Code::InvalidArgument,
            StorageError::Closed { .. } => Code::Unavailable,
            StorageError::InvalidConfig { .. } => Code::Internal,
        },
        BrokerError::Meta(m) => meta_code(m),
        BrokerError::ShuttingDown => Code::Unavailable,
        BrokerError::TaskFailed { .. }
        | BrokerError::Unroutable { .. }
        | BrokerError::MissingResult { .. }
        | BrokerError::EarlierEntryFailed { .. }
        | BrokerError::Randomness { .. } => Code::Internal,
    }
}

fn meta_code(e: &MetaError) -> Code {
    match e {
        MetaError::StreamExists { .. }
        | MetaError::GroupExists { .. }
        | MetaError::ConsumerExists { .. } => Code::AlreadyExists,
        MetaError::StreamNotFound { .. }
        | MetaError::ConsumerNotFound { .. }
        | MetaError::GroupNotFound { .. }
        | MetaError::ShardNotFound { .. }
        | MetaError::RuleNotFound { .. } => Code::NotFound,
        MetaError::RuleRefused { .. }
        | MetaError::NotAQueue { .. }
        | MetaError::MoveRefused { .. }
        | MetaError::ReshardRefused { .. } => Code::FailedPrecondition,
        MetaError::CheckpointBackwards { .. } => Code::FailedPrecondition,
        MetaError::CommandTooLarge { .. } => Code::InvalidArgument,
        MetaError::EpochFloorBackwards { .. }
        | MetaError::RuleProgressBackwards { .. }
        | MetaError::Io { .. }
        | MetaError::Corrupt { .. }
        | MetaError::Decode { .. }
        | MetaError::Replay { .. }
        | MetaError::Poisoned { .. } => Code::Internal,
    }
}

/// The status sent for a broker error: its code, and its message (which names the field or
/// the subject).
pub fn to_status(e: BrokerError) -> Status {
    let code = code_of(&e);
    if matches!(code, Code::Internal | Code::DataLoss) {
        tracing::error!(error = %e, "request failed");
    }
    let mut status = Status::new(code, e.to_string());
    if let Some(reason) = throttle_reason(&e) {
        status.metadata_mut().insert(
            THROTTLE_REASON_HEADER,
            tonic::metadata::MetadataValue::from_static(reason),
        );
    }
    status
}

/// Every reason [`throttle_reason`] gives.
pub const THROTTLE_REASONS: [&str; 11] = [
    "commit_queue_full",
    "disk_full",
    "dedup_window_full",
    "scaling_limit",
    "limit",
    "shard_put_records",
    "shard_put_bytes",
    "shard_read_bytes",
    "shard_get_records_calls",
    "principal_requests",
    "principal_bytes",
];

/// The response header naming why a request was refused for a rate or capacity limit.
pub const THROTTLE_REASON_HEADER: &str = "shardlog-throttle-reason";

/// Why a request was refused for a rate or capacity limit, if it was: counted as a throttled
/// request by that reason.
pub fn throttle_reason(e: &BrokerError) -> Option<&'static str> {
    Some(match e {
        BrokerError::Storage(StorageError::Busy { .. }) => "commit_queue_full",
        BrokerError::Storage(StorageError::DiskFull { .. }) => "disk_full",
        BrokerError::Fifo(FifoError::WindowFull { .. }) => "dedup_window_full",
        BrokerError::ReshardLimit { .. } => "scaling_limit",
        BrokerError::Throttled { limit, .. } => limit.reason(),
        _ if code_of(e) == Code::ResourceExhausted => "limit",
        _ => return None,
    })
}

/// The code of a PutRecords entry that failed because the server's disk is full.
pub const DISK_FULL_ENTRY_CODE: &str = "DiskFullException";

/// The error code string for one failed PutRecords entry (the request itself succeeded).
pub fn entry_error_code(e: &BrokerError) -> &'static str {
    // A full disk is not a rate to slow down to: it has a code of its own.
    if matches!(e, BrokerError::Storage(StorageError::DiskFull { .. })) {
        return DISK_FULL_ENTRY_CODE;
    }
    match code_of(e) {
        Code::ResourceExhausted => "ProvisionedThroughputExceededException",
        Code::InvalidArgument => "InvalidArgumentException",
        Code::NotFound => "ResourceNotFoundException",
        _ => "InternalFailure",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io;

    use crate::storage::SequenceNumber;
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::broker::iterator::IteratorError;
    use crate::consumer::{FenceError, MemberId};
    use crate::fifo::IdField;
    use crate::meta::CodecError;
    use crate::storage::record::{EncodeError, FrameError};
    use crate::stream::{GroupName, HashKey, ShardId, StreamName};

    fn stream() -> StreamName {
        StreamName::new("orders").expect("a valid name")
    }

    fn group() -> GroupName {
        GroupName::new("billing").expect("a valid name")
    }

    fn member() -> MemberId {
        MemberId::new("worker-1").expect("a valid id")
    }

    fn path() -> PathBuf {
        PathBuf::from("streams/orders/shardId-000000000000/00000000000000000000.log")
    }

    fn io_error(kind: io::ErrorKind) -> io::Error {
        io::Error::new(kind, "injected")
    }

    /// A task that was cancelled: the error a panicked or aborted blocking task produces.
    async fn join_error() -> tokio::task::JoinError {
        let task = tokio::spawn(std::future::pending::<()>());
        task.abort();
        task.await.expect_err("an aborted task fails")
    }

    fn storage() -> Vec<(StorageError, Code)> {
        vec![
            (
                StorageError::io("write segment", path(), io_error(io::ErrorKind::Other)),
                Code::Internal,
            ),
            (
                StorageError::io(
                    "write segment",
                    path(),
                    io_error(io::ErrorKind::StorageFull),
                ),
                Code::ResourceExhausted,
            ),
            (
                StorageError::Corrupt {
                    segment: path(),
                    position: 4096,
                    reason: FrameError::PayloadCrc {
                        stored: 1,
                        computed: 2,
                    },
                },
                Code::DataLoss,
            ),
            (
                StorageError::Poisoned {
                    dir: path(),
                    op: "sync segment",
                    path: path(),
                    cause: std::sync::Arc::new(io_error(io::ErrorKind::Other)),
                },
                Code::Internal,
            ),
            (StorageError::Busy { dir: path() }, Code::ResourceExhausted),
            (
                StorageError::Encode(EncodeError::BatchTooLarge { len: 2, max: 1 }),
                Code::InvalidArgument,
            ),
            (
                StorageError::InvalidConfig {
                    setting: "segment_max_bytes",
                    reason: "too small".into(),
                },
                Code::Internal,
            ),
            (StorageError::Closed { dir: path() }, Code::Unavailable),
        ]
    }

    fn meta() -> Vec<(MetaError, Code)> {
        let rule = || crate::stream::RuleName::new("r").unwrap();
        vec![
            (MetaError::RuleNotFound { rule: rule() }, Code::NotFound),
            (
                MetaError::RuleRefused {
                    rule: rule(),
                    reason: "it would close a cycle".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                MetaError::RuleProgressBackwards {
                    rule: rule(),
                    shard: crate::stream::ShardId(0),
                    current: crate::storage::SequenceNumber::new(5),
                    requested: crate::storage::SequenceNumber::new(4),
                },
                Code::Internal,
            ),
            (
                MetaError::StreamExists { stream: stream() },
                Code::AlreadyExists,
            ),
            (
                MetaError::ReshardRefused {
                    stream: stream(),
                    reason: "it opens no shard".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                MetaError::ConsumerExists {
                    stream: stream(),
                    consumer: "fan-out".into(),
                },
                Code::AlreadyExists,
            ),
            (
                MetaError::ConsumerNotFound {
                    stream: stream(),
                    consumer: "fan-out".into(),
                },
                Code::NotFound,
            ),
            (
                MetaError::StreamNotFound { stream: stream() },
                Code::NotFound,
            ),
            (
                MetaError::GroupExists {
                    stream: stream(),
                    group: group(),
                },
                Code::AlreadyExists,
            ),
            (
                MetaError::GroupNotFound {
                    stream: stream(),
                    group: group(),
                },
                Code::NotFound,
            ),
            (
                MetaError::ShardNotFound {
                    stream: stream(),
                    shard: ShardId(3),
                },
                Code::NotFound,
            ),
            (
                MetaError::CheckpointBackwards {
                    stream: stream(),
                    group: group(),
                    shard: ShardId(0),
                    current: SequenceNumber::new(10),
                    requested: SequenceNumber::new(9),
                },
                Code::FailedPrecondition,
            ),
            (
                MetaError::EpochFloorBackwards {
                    stream: stream(),
                    group: group(),
                    floor: 5,
                    requested: 4,
                },
                Code::Internal,
            ),
            (
                MetaError::CommandTooLarge { bytes: 2, max: 1 },
                Code::InvalidArgument,
            ),
            (
                MetaError::Io {
                    op: "sync journal",
                    path: path(),
                    source: io_error(io::ErrorKind::Other),
                },
                Code::Internal,
            ),
            (
                MetaError::Corrupt {
                    file: path(),
                    position: 0,
                    reason: "bad CRC".into(),
                },
                Code::Internal,
            ),
            (
                MetaError::Decode {
                    file: path(),
                    position: 0,
                    source: CodecError::Missing { field: "stream" },
                },
                Code::Internal,
            ),
            (
                MetaError::Replay {
                    file: path(),
                    position: 0,
                    source: Box::new(MetaError::StreamNotFound { stream: stream() }),
                },
                Code::Internal,
            ),
            (
                MetaError::Poisoned {
                    cause: std::sync::Arc::new(MetaError::Io {
                        op: "sync journal",
                        path: path(),
                        source: io_error(io::ErrorKind::Other),
                    }),
                },
                Code::Internal,
            ),
        ]
    }

    pub(crate) async fn broker() -> Vec<(BrokerError, Code)> {
        let id_field = IdField::DeduplicationId;
        let mut all = vec![
            (
                BrokerError::StreamNotFound { stream: stream() },
                Code::NotFound,
            ),
            (
                BrokerError::ShardNotFound {
                    stream: stream(),
                    shard: "shardId-000000000009".into(),
                },
                Code::NotFound,
            ),
            (
                BrokerError::StreamExists { stream: stream() },
                Code::AlreadyExists,
            ),
            (
                BrokerError::ReshardLimit {
                    stream: stream(),
                    reason: "10 scalings in 24 hours at most".into(),
                },
                Code::ResourceExhausted,
            ),
            (
                BrokerError::StreamUpdating { stream: stream() },
                Code::FailedPrecondition,
            ),
            (
                BrokerError::TooMany {
                    what: "tags",
                    stream: stream(),
                    limit: 50,
                },
                Code::ResourceExhausted,
            ),
            (
                BrokerError::ServerLimit {
                    what: "streams",
                    limit: 1_000,
                    setting: "--max-streams",
                },
                Code::ResourceExhausted,
            ),
            (
                BrokerError::GroupNotFound {
                    stream: stream(),
                    group: group(),
                },
                Code::NotFound,
            ),
            (
                BrokerError::invalid("limit", "must be at most 10000"),
                Code::InvalidArgument,
            ),
            (
                BrokerError::NotAQueueGroup {
                    stream: stream(),
                    group: group(),
                },
                Code::FailedPrecondition,
            ),
            (
                BrokerError::GroupHasMembers {
                    stream: stream(),
                    group: group(),
                    members: 2,
                },
                Code::FailedPrecondition,
            ),
            (
                BrokerError::IsAQueueGroup {
                    stream: stream(),
                    group: group(),
                },
                Code::FailedPrecondition,
            ),
            (
                BrokerError::ReceiptRefused {
                    reason: "the receipt handle has expired".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                BrokerError::QueueJournal {
                    source: std::sync::Arc::new(MetaError::NotAQueue {
                        stream: stream(),
                        group: group(),
                    }),
                },
                Code::FailedPrecondition,
            ),
            (
                BrokerError::InvalidPattern {
                    field: "filter.pattern",
                    source: crate::route::PatternError {
                        path: "$.price".into(),
                        message: "numeric needs an operator and a number".into(),
                    },
                },
                Code::InvalidArgument,
            ),
            (
                BrokerError::InvalidAttribute {
                    entry: 2,
                    name: "AWS.x".into(),
                    reason: "reserved".into(),
                },
                Code::InvalidArgument,
            ),
            (
                BrokerError::Model(ModelError::InvalidField {
                    field: "stream_name",
                    reason: "empty".into(),
                }),
                Code::InvalidArgument,
            ),
            (
                BrokerError::Iterator(IteratorError::Malformed),
                Code::InvalidArgument,
            ),
            (
                BrokerError::Iterator(IteratorError::Expired {
                    age_ms: 2,
                    ttl_ms: 1,
                }),
                Code::FailedPrecondition,
            ),
            (
                BrokerError::Fifo(FifoError::IdLength {
                    field: id_field,
                    len: 0,
                    max: 128,
                }),
                Code::InvalidArgument,
            ),
            (
                BrokerError::Fifo(FifoError::IdCharacter {
                    field: id_field,
                    character: 'é',
                    position: 0,
                }),
                Code::InvalidArgument,
            ),
            (
                BrokerError::Fifo(FifoError::WindowFull {
                    live_ids: 1,
                    max_live_ids: 1,
                }),
                Code::ResourceExhausted,
            ),
            (
                BrokerError::Fifo(FifoError::WindowOutOfRange {
                    window: Duration::ZERO,
                    max: Duration::from_secs(1),
                }),
                Code::InvalidArgument,
            ),
            (
                BrokerError::Fifo(FifoError::ZeroLiveIdCap),
                Code::InvalidArgument,
            ),
            (
                BrokerError::Group(GroupError::InvalidMemberId { reason: "empty" }),
                Code::InvalidArgument,
            ),
            (
                BrokerError::Group(GroupError::SessionTimeoutOutOfRange {
                    requested: Duration::ZERO,
                    min: Duration::from_secs(1),
                    max: Duration::from_secs(2),
                }),
                Code::InvalidArgument,
            ),
            (
                BrokerError::Group(GroupError::UnknownMember { member: member() }),
                Code::NotFound,
            ),
            (
                BrokerError::Group(GroupError::TooManyMembers { limit: 1 }),
                Code::ResourceExhausted,
            ),
            (
                BrokerError::Group(GroupError::InvalidConfig {
                    setting: "max_members",
                    reason: "zero",
                }),
                Code::Internal,
            ),
            (
                BrokerError::Group(GroupError::EpochFloorTooHigh { floor: 2, max: 1 }),
                Code::Internal,
            ),
            (
                BrokerError::Fence(FenceError::UnknownShard { shard: 9 }),
                Code::FailedPrecondition,
            ),
            (
                BrokerError::Fence(FenceError::NotOwner {
                    member: member(),
                    shard: 0,
                    owner: None,
                    epoch: 1,
                }),
                Code::FailedPrecondition,
            ),
            (
                BrokerError::Fence(FenceError::StaleEpoch {
                    member: member(),
                    shard: 0,
                    presented: 1,
                    current: 2,
                }),
                Code::FailedPrecondition,
            ),
            (
                BrokerError::Fence(FenceError::SessionExpired {
                    member: member(),
                    shard: 0,
                    epoch: 1,
                }),
                Code::FailedPrecondition,
            ),
            (BrokerError::ShuttingDown, Code::Unavailable),
            (
                BrokerError::TaskFailed {
                    task: "read",
                    source: join_error().await,
                },
                Code::Internal,
            ),
            (
                BrokerError::Unroutable {
                    stream: stream(),
                    key: HashKey(7),
                },
                Code::Internal,
            ),
            (BrokerError::MissingResult { entry: 3 }, Code::Internal),
            (
                BrokerError::EarlierEntryFailed {
                    first: 0,
                    reason: "the put task failed".into(),
                },
                Code::Internal,
            ),
            (
                BrokerError::NotPermitted {
                    principal: "router".into(),
                    action: crate::auth::Action::Write,
                    stream: stream(),
                },
                Code::PermissionDenied,
            ),
            (
                BrokerError::Throttled {
                    stream: stream(),
                    shard: ShardId(0),
                    limit: crate::broker::quotas::Limit::PutRecords,
                    retry_after: Duration::from_millis(5),
                },
                Code::ResourceExhausted,
            ),
            (
                BrokerError::Randomness {
                    purpose: "the iterator key",
                    source: getrandom::Error::UNSUPPORTED,
                },
                Code::Internal,
            ),
        ];
        all.extend(storage().into_iter().map(|(e, c)| (e.into(), c)));
        all.extend(meta().into_iter().map(|(e, c)| (e.into(), c)));
        all
    }

    /// Which variant an error is: an exhaustive match, so a new variant does not compile
    /// until it is named here, and the table below must then hold an example of it.
    fn variant(e: &BrokerError) -> &'static str {
        match e {
            BrokerError::StreamNotFound { .. } => "StreamNotFound",
            BrokerError::ShardNotFound { .. } => "ShardNotFound",
            BrokerError::StreamExists { .. } => "StreamExists",
            BrokerError::TooMany { .. } => "TooMany",
            BrokerError::ServerLimit { .. } => "ServerLimit",
            BrokerError::GroupNotFound { .. } => "GroupNotFound",
            BrokerError::InvalidArgument { .. } => "InvalidArgument",
            BrokerError::InvalidAttribute { .. } => "InvalidAttribute",
            BrokerError::InvalidPattern { .. } => "InvalidPattern",
            BrokerError::Model(_) => "Model",
            BrokerError::Iterator(IteratorError::Malformed) => "Iterator::Malformed",
            BrokerError::Iterator(IteratorError::Expired { .. }) => "Iterator::Expired",
            BrokerError::Fifo(_) => "Fifo",
            BrokerError::Group(_) => "Group",
            BrokerError::Fence(_) => "Fence",
            BrokerError::Storage(_) => "Storage",
            BrokerError::Meta(_) => "Meta",
            BrokerError::ShuttingDown => "ShuttingDown",
            BrokerError::TaskFailed { .. } => "TaskFailed",
            BrokerError::Unroutable { .. } => "Unroutable",
            BrokerError::MissingResult { .. } => "MissingResult",
            BrokerError::EarlierEntryFailed { .. } => "EarlierEntryFailed",
            BrokerError::Randomness { .. } => "Randomness",
            BrokerError::NotAQueueGroup { .. } => "NotAQueueGroup",
            BrokerError::GroupHasMembers { .. } => "GroupHasMembers",
            BrokerError::IsAQueueGroup { .. } => "IsAQueueGroup",
            BrokerError::ReceiptRefused { .. } => "ReceiptRefused",
            BrokerError::QueueJournal { .. } => "QueueJournal",
            BrokerError::StreamUpdating { .. } => "StreamUpdating",
            BrokerError::ReshardLimit { .. } => "ReshardLimit",
            BrokerError::Throttled { .. } => "Throttled",
            BrokerError::NotPermitted { .. } => "NotPermitted",
        }
    }

    const VARIANTS: usize = 32;

    #[tokio::test]
    async fn every_error_variant_maps_to_its_grpc_code() {
        let table = broker().await;
        let mut seen = std::collections::BTreeSet::new();
        for code in [Code::DataLoss, Code::Internal, Code::Unavailable] {
            assert!(
                table.iter().any(|(_, c)| *c == code),
                "no case for {code:?}"
            );
        }
        for (error, expected) in table {
            seen.insert(variant(&error));
            assert_eq!(code_of(&error), expected, "{error:?}");
            let message = error.to_string();
            let status = to_status(error);
            assert_eq!(status.code(), expected, "{message}");
            assert_eq!(status.message(), message);
            // A refusal for a limit names its reason for the request metrics.
            let reason = status.metadata().get(THROTTLE_REASON_HEADER);
            if let Some(reason) = reason {
                let reason = reason.to_str().unwrap();
                assert!(THROTTLE_REASONS.contains(&reason), "{reason}");
            }
            assert_eq!(
                reason.is_some(),
                expected == Code::ResourceExhausted,
                "{message}"
            );
        }
        assert_eq!(seen.len(), VARIANTS, "the table misses a variant: {seen:?}");
    }

    #[tokio::test]
    async fn a_failed_entry_gets_the_kinesis_error_code_of_its_status() {
        for (error, code) in broker().await {
            let full = matches!(error, BrokerError::Storage(StorageError::DiskFull { .. }));
            let expected = match code {
                Code::ResourceExhausted if full => "DiskFullException",
                Code::ResourceExhausted => "ProvisionedThroughputExceededException",
                Code::InvalidArgument => "InvalidArgumentException",
                Code::NotFound => "ResourceNotFoundException",
                _ => "InternalFailure",
            };
            assert_eq!(entry_error_code(&error), expected, "{error:?}");
        }
    }
}
