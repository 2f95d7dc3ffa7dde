//! Helpers shared by the storage tests: records that remember what was appended, batch
//! encoding, whole-log reads, file surgery and the small settings that make many segments.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use shardlog::fsio::{Io, RealIo};
use shardlog::storage::segment::{file_name, parse_log_name};
use shardlog::storage::{
    AppendAck, BatchBuilder, EncodedBatch, LogConfig, Publish, RecordRef, SequenceNumber, ShardLog,
    StorageError, StoredRecord, Timestamp,
};

/// Sequence number `n`: tests name positions by their plain numbers.
pub fn seq(n: u64) -> SequenceNumber {
    SequenceNumber::new(n)
}

/// The instant `ms` milliseconds after the Unix epoch.
pub fn at_ms(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// A record as a test appends it and expects it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub key: String,
    pub data: Vec<u8>,
    pub hash_key: Option<u128>,
    pub group: Option<String>,
    pub dedup: Option<String>,
}

impl Rec {
    /// A record with only a partition key and data.
    pub fn plain(key: &str, data: &[u8]) -> Rec {
        Rec {
            key: key.to_owned(),
            data: data.to_vec(),
            hash_key: None,
            group: None,
            dedup: None,
        }
    }

    /// True when `stored` holds exactly this record's fields.
    pub fn is_stored_as(&self, stored: &StoredRecord) -> bool {
        stored.partition_key[..] == *self.key.as_bytes()
            && stored.data[..] == self.data[..]
            && stored.explicit_hash_key == self.hash_key
            && stored.message_group_id.as_deref() == self.group.as_deref().map(str::as_bytes)
            && stored.deduplication_id.as_deref() == self.dedup.as_deref().map(str::as_bytes)
    }
}

/// Frames `records` as one batch.
pub fn encode(records: &[Rec]) -> EncodedBatch {
    let mut builder = BatchBuilder::default();
    for r in records {
        builder
            .push(&RecordRef {
                partition_key: &r.key,
                data: &r.data,
                explicit_hash_key: r.hash_key,
                message_group_id: r.group.as_deref(),
                deduplication_id: r.dedup.as_deref(),
                attributes: &[],
            })
            .expect("test records fit a frame");
    }
    builder
        .finish()
        .expect("test batches hold at least one record")
}

/// A batch of `count` records whose data names `tag` and the record's place, `size` bytes each.
pub fn tagged_batch(tag: &str, count: usize, size: usize) -> Vec<Rec> {
    (0..count)
        .map(|i| {
            let mut data = format!("{tag}/{i}/").into_bytes();
            data.resize(size.max(data.len()), b'.');
            Rec::plain(tag, &data)
        })
        .collect()
}

/// Settings that seal a segment every 4 KiB and index every 128 bytes, so a few dozen small
/// batches span several segments with many index entries.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_max_bytes: 4096,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

/// A temporary directory in memory (`/dev/shm`) where there is one: for tests that reopen a
/// log hundreds of times, where every recovery's fsync would otherwise dominate. What is
/// tested there is the recovery logic on bytes the test places; durability is modelled.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().expect("create a temporary directory")
}

/// Opens the log in `dir` on the real file system.
pub fn open_real(dir: &Path, config: LogConfig) -> ShardLog {
    ShardLog::open(RealIo::shared(), dir, config).expect("open shard log")
}

/// Opens the log in `dir` through `io`.
pub fn open_with(io: Arc<dyn Io>, dir: &Path, config: LogConfig) -> ShardLog {
    ShardLog::open(io, dir, config).expect("open shard log")
}

/// Reads every record from the trim horizon to the durable end in small steps, checking that
/// each step continues exactly where the previous one said it would.
pub fn read_all(log: &ShardLog) -> Result<Vec<StoredRecord>, StorageError> {
    read_from(log, log.first_sequence())
}

/// Reads every record from `from` to the durable end in small steps.
pub fn read_from(log: &ShardLog, from: SequenceNumber) -> Result<Vec<StoredRecord>, StorageError> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let batch = log.read(next, 7, 700)?;
        if batch.records.is_empty() {
            assert_eq!(batch.next_sequence, next.max(log.first_sequence()));
            break;
        }
        for (i, r) in batch.records.iter().enumerate() {
            assert_eq!(
                r.sequence,
                batch.records[0].sequence + i as u64,
                "a read returns contiguous sequences"
            );
        }
        assert_eq!(
            batch.next_sequence,
            batch.records.last().unwrap().sequence.next()
        );
        next = batch.next_sequence;
        out.extend(batch.records);
    }
    Ok(out)
}

/// Asserts that `stored` are exactly `expected`, numbered from `first`.
pub fn assert_records(stored: &[StoredRecord], expected: &[Rec], first: SequenceNumber) {
    assert_eq!(stored.len(), expected.len(), "record count");
    for (i, (s, e)) in stored.iter().zip(expected).enumerate() {
        assert_eq!(s.sequence, first + i as u64, "sequence of record {i}");
        assert!(
            e.is_stored_as(s),
            "record {} differs: stored {s:?}, expected {e:?}",
            s.sequence
        );
    }
}

/// Base sequences of the segment files in `dir`, ascending.
pub fn segment_bases(dir: &Path) -> Vec<SequenceNumber> {
    let mut bases: Vec<SequenceNumber> = std::fs::read_dir(dir)
        .expect("list shard directory")
        .filter_map(|e| e.ok()?.file_name().to_str().and_then(parse_log_name))
        .collect();
    bases.sort_unstable();
    bases
}

/// Path of the file of segment `base` with extension `ext` in `dir`.
pub fn segment_file(dir: &Path, base: SequenceNumber, ext: &str) -> PathBuf {
    dir.join(file_name(base, ext))
}

/// Copies every file of `from` into the empty directory `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("list directory") {
        let entry = entry.expect("directory entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy file");
    }
}

/// A record with every field drawn at random, kept small so segments fill in a few batches.
pub fn rec_strategy() -> impl Strategy<Value = Rec> {
    (
        "[a-z0-9]{0,12}",
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::option::of(any::<u128>()),
        proptest::option::of("[a-z]{1,8}"),
        proptest::option::of("[a-z0-9]{1,16}"),
    )
        .prop_map(|(key, data, hash_key, group, dedup)| Rec {
            key,
            data,
            hash_key,
            group,
            dedup,
        })
}

/// Between 1 and `max_batches` batches of 1 to `max_records` random records.
pub fn batches_strategy(
    max_batches: usize,
    max_records: usize,
) -> impl Strategy<Value = Vec<Vec<Rec>>> {
    proptest::collection::vec(
        proptest::collection::vec(rec_strategy(), 1..=max_records),
        1..=max_batches,
    )
}

/// The storage tests' shorthand for appending straight to a log: a write, then (with `sync`) a
/// sync through it before it is readable — what the group committer does under `always`, or
/// without `sync`, readable at once as under `never`.
pub trait AppendExt {
    /// Appends `batches` stamped with the current time.
    fn append(
        &self,
        batches: &mut [EncodedBatch],
        sync: bool,
    ) -> Result<Vec<AppendAck>, StorageError>;
    /// Appends `batches` stamped with `now`.
    fn append_at(
        &self,
        batches: &mut [EncodedBatch],
        sync: bool,
        now: Timestamp,
    ) -> Result<Vec<AppendAck>, StorageError>;
}

impl AppendExt for ShardLog {
    fn append(
        &self,
        batches: &mut [EncodedBatch],
        sync: bool,
    ) -> Result<Vec<AppendAck>, StorageError> {
        self.append_at(batches, sync, Timestamp::now())
    }

    fn append_at(
        &self,
        batches: &mut [EncodedBatch],
        sync: bool,
        now: Timestamp,
    ) -> Result<Vec<AppendAck>, StorageError> {
        if !sync {
            return self.write(batches, now, Publish::Now);
        }
        let acks = self.write(batches, now, Publish::AfterSync)?;
        if let Some(last) = acks.last() {
            self.sync(Some(last.next_sequence()))?;
        }
        Ok(acks)
    }
}
