//! The storage layer's error type: what failed, on which file, and why.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

use super::record::{EncodeError, FrameError};

/// Errors of the storage layer. A failed *request* (`DiskFull`, `Busy`, `Encode`) leaves the
/// shard usable; a broken *shard* (`Poisoned`) refuses writes until it is reopened.
#[derive(Debug, Error)]
pub enum StorageError {
    /// An I/O call failed.
    #[error("when {op} {}: {source}", path.display())]
    Io {
        /// The call that failed, as a verb phrase ("write segment", "sync shard directory"),
        /// so the message names what was being done.
        op: &'static str,
        /// The file or directory it failed on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The disk (or quota) is full. Nothing durable was touched; writes resume once there is
    /// space.
    #[error("when {op} {}: no space left on device", path.display())]
    DiskFull {
        /// The call that found the disk full, as in [`StorageError::Io`].
        op: &'static str,
        /// The file it was writing.
        path: PathBuf,
        /// The operating system's error (`StorageFull` or `QuotaExceeded`).
        #[source]
        source: io::Error,
    },
    /// A stored batch failed its checks: never served as data.
    #[error("corrupt batch in {} at position {position}: {reason}", segment.display())]
    Corrupt {
        /// The segment file holding the batch.
        segment: PathBuf,
        /// Byte offset of the batch's frame in that file, to find it with a hex dump.
        position: u64,
        /// Which check failed: torn, bad magic, a CRC, or a malformed payload.
        #[source]
        reason: FrameError,
    },
    /// An earlier write or sync failed in a way that leaves the durable state unknown; the
    /// shard refuses writes until it is reopened (retrying an fsync is unsafe: the kernel may
    /// already have dropped the dirty pages it failed to write).
    #[error("shard log {} refuses writes since {op} {} failed: {cause}", dir.display(), path.display())]
    Poisoned {
        /// The shard's directory: which shard is broken.
        dir: PathBuf,
        /// The call that failed, as in [`StorageError::Io`].
        op: &'static str,
        /// The file (or directory) it failed on.
        path: PathBuf,
        /// The I/O error that poisoned the shard, shared by every error reporting it.
        #[source]
        cause: Arc<io::Error>,
    },
    /// The shard's append queue stayed full past the enqueue deadline.
    #[error("append queue of {} is full", dir.display())]
    Busy {
        /// The shard's directory: which shard is overloaded.
        dir: PathBuf,
    },
    /// A record could not be framed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A setting is out of range.
    #[error("invalid storage setting {setting}: {reason}")]
    InvalidConfig {
        /// The [`LogConfig`](super::LogConfig) field at fault, as named in the configuration.
        setting: &'static str,
        /// What is wrong with its value, with the value.
        reason: String,
    },
    /// The shard log was closed (its stream was deleted or the server is stopping).
    #[error("shard log {} is closed", dir.display())]
    Closed {
        /// The shard's directory.
        dir: PathBuf,
    },
}

impl StorageError {
    /// Wraps an I/O error with the verb and the file, telling disk-full apart.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> StorageError {
        let path = path.into();
        if matches!(
            source.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        ) {
            StorageError::DiskFull { op, path, source }
        } else {
            StorageError::Io { op, path, source }
        }
    }

    /// A copy for each waiter of a failed group-commit round (`io::Error` is not `Clone`): the
    /// kind, the verb, the file and the message are kept.
    pub fn duplicate(&self) -> StorageError {
        match self {
            StorageError::Io { op, path, source } => StorageError::Io {
                op,
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            StorageError::DiskFull { op, path, source } => StorageError::DiskFull {
                op,
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            StorageError::Corrupt {
                segment,
                position,
                reason,
            } => StorageError::Corrupt {
                segment: segment.clone(),
                position: *position,
                reason: reason.clone(),
            },
            StorageError::Poisoned {
                dir,
                op,
                path,
                cause,
            } => StorageError::Poisoned {
                dir: dir.clone(),
                op,
                path: path.clone(),
                cause: Arc::clone(cause),
            },
            StorageError::Busy { dir } => StorageError::Busy { dir: dir.clone() },
            StorageError::Encode(e) => StorageError::Encode(e.clone()),
            StorageError::InvalidConfig { setting, reason } => StorageError::InvalidConfig {
                setting,
                reason: reason.clone(),
            },
            StorageError::Closed { dir } => StorageError::Closed { dir: dir.clone() },
        }
    }
}

/// An equal copy of an I/O error (`io::Error` is not `Clone`): an OS error keeps its code, any
/// other its kind and message.
pub fn copy_io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}
