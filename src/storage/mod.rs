//! Per-shard append-only log: segments, sparse indexes, group commit, recovery, retention.
//! Knows nothing of gRPC, streams or consumers.
//!
//! | module      | job                                                                 |
//! |-------------|---------------------------------------------------------------------|
//! | `sequence`  | `SequenceNumber`: a record's dense position in its shard             |
//! | `time`      | `Timestamp`: wall-clock ms since the Unix epoch, as stored in frames |
//! | `record`    | the on-disk batch frame: encode, decode, CRC                         |
//! | `attributes` | a record's message attributes in their canonical encoding           |
//! | `index`     | memory-mapped sparse sequence → position and time → sequence indexes |
//! | `segment`   | one segment file and its indexes: write, read, scan, seal            |
//! | `read_buffer` | reusable read buffers that return to a pool with their last slice  |
//! | `mapped`    | read-only maps of sealed segments: reads without a copy            |
//! | `log`       | `ShardLog`: ordered segments, write, sync, read, retention           |
//! | `recovery`  | open on start: scan, cut a torn tail, rebuild indexes, recovery point |
//! | `commit`    | group commit: many waiting appends → one write + one sync            |
//!
//! Every file is opened, written, synced, renamed and removed through the `crate::fsio` seam.

pub mod attributes;
pub mod commit;
pub mod error;
pub mod index;
pub mod log;
pub mod mapped;
pub mod read_buffer;
pub mod record;
pub mod recovery;
pub mod segment;
pub mod sequence;
pub mod time;

pub use attributes::{Attribute, AttributeType, Attributes};
pub use commit::{Committer, FsyncPolicy, PendingAppend};
pub use error::StorageError;
pub use log::{
    AppendAck, BucketCounts, Buckets, LogConfig, LogStats, Publish, ReadBatch, ShardLog,
    SYNC_BYTES_BOUNDS, SYNC_SECONDS_BOUNDS,
};
pub use record::{BatchBuilder, EncodedBatch, RecordRef, StoredRecord};
pub use segment::FrameRead;
pub use sequence::SequenceNumber;
pub use time::Timestamp;
