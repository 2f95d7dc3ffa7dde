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
        BrokerError::InvalidArgument { .. }
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
        BrokerError::Fence(_) => Code::FailedPrecondition,
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
        BrokerError::Internal(_) => Code::Internal,
    }
}

fn meta_code(e: &MetaError) -> Code {
    match e {
        MetaError::StreamExists { .. } | MetaError::GroupExists { .. } => Code::AlreadyExists,
        MetaError::StreamNotFound { .. }
        | MetaError::GroupNotFound { .. }
        | MetaError::ShardNotFound { .. } => Code::NotFound,
        MetaError::CheckpointBackwards { .. } => Code::FailedPrecondition,
        MetaError::CommandTooLarge { .. } => Code::InvalidArgument,
        MetaError::EpochFloorBackwards { .. }
        | MetaError::Io { .. }
        | MetaError::Corrupt { .. }
        | MetaError::Decode { .. }
        | MetaError::Replay { .. }
        | MetaError::Poisoned => Code::Internal,
    }
}

/// The status sent for a broker error: its code, and its message (which names the field or
/// the subject).
pub fn to_status(e: BrokerError) -> Status {
    let code = code_of(&e);
    if matches!(code, Code::Internal | Code::DataLoss) {
        tracing::error!(error = %e, "request failed");
    }
    Status::new(code, e.to_string())
}

/// The error code string for one failed PutRecords entry (the request itself succeeded).
pub fn entry_error_code(e: &BrokerError) -> &'static str {
    match code_of(e) {
        Code::ResourceExhausted => "ProvisionedThroughputExceededException",
        Code::InvalidArgument => "InvalidArgumentException",
        Code::NotFound => "ResourceNotFoundException",
        _ => "InternalFailure",
    }
}
