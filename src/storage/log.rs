//! `ShardLog`: one shard's ordered segments. Appends batches, reads from a sequence number or a
//! time, applies retention; opening it recovers its segments (`storage::recovery`).
//!
//! ```text
//!   segments (by base sequence)      writer (one at a time: the shard's committer)
//!   ┌──────┬──────┬──────────────┐   write(batches): stamp → one write → [sync] → publish
//!   │ 0    │ 1200 │ 2600 active  │   publish: durable_next = next sequence, watchers woken
//!   └──────┴──────┴──────────────┘
//!     ▲ first_sequence        durable_next ▲ (readers never pass it)
//! ```
//!
//! The log has one write entry point ([`ShardLog::write`]) and one sync entry point
//! ([`ShardLog::sync`]); when to sync — the fsync policy — is the group committer's
//! (`storage::commit`) decision alone.
//!
//! Invariant: `first_sequence <= durable_next <= written next sequence`; records below
//! `durable_next` survive a crash under the fsync policy in force (with `always`, a power loss).
//!
//! A segment sealed by an unsynced append is not synced then (that would stall the append for
//! a whole segment's writeback); the `recovery-point` file names it until the next sync, and
//! recovery checks every segment from there on whole, ending the log at the first bad batch.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::error::{copy_io_error, StorageError};
use super::record::{EncodedBatch, StoredRecord};
use super::recovery::{self, clear_recovery_point, write_recovery_point, RECOVERY_POINT_FILE};
use super::segment::{FrameRead, Segment};
use super::sequence::SequenceNumber;
use super::time::Timestamp;
use crate::fsio::Io;

/// Default size at which a segment is sealed and a new one started.
pub const DEFAULT_SEGMENT_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Largest allowed segment size: positions in the index are 32-bit.
pub const MAX_SEGMENT_MAX_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Default age at which a non-empty segment is sealed, so retention can delete it.
pub const DEFAULT_SEGMENT_MAX_AGE: Duration = Duration::from_secs(60 * 60);
/// Default bytes of log between two sparse index entries.
pub const DEFAULT_INDEX_INTERVAL_BYTES: u64 = 4096;
/// Batches of at least this many bytes are written from their own buffers instead of being
/// copied into the round's buffer first.
pub const DIRECT_WRITE_MIN_BATCH: usize = 64 * 1024;
/// Default retention: sealed segments whose newest record is older are deleted.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// Settings of one shard log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Bytes at which the active segment is sealed (default 256 MiB, at most 2 GiB). A round
    /// of group commit is never split, so a segment may pass this by one round.
    pub segment_max_bytes: u64,
    /// Age at which a non-empty active segment is sealed (default 1 h).
    pub segment_max_age: Duration,
    /// Bytes of log between sparse index entries (default 4 KiB).
    pub index_interval_bytes: u64,
    /// Sealed segments whose newest record is older than this are deleted (default 24 h).
    pub retention: Duration,
    /// When set, the oldest sealed segments are deleted while the log is larger (bytes).
    pub retention_bytes: Option<u64>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_max_bytes: DEFAULT_SEGMENT_MAX_BYTES,
            segment_max_age: DEFAULT_SEGMENT_MAX_AGE,
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
            retention: DEFAULT_RETENTION,
            retention_bytes: None,
        }
    }
}

impl LogConfig {
    /// Checks every setting, naming the one out of range.
    pub fn validate(&self) -> Result<(), StorageError> {
        let bad = |setting, reason: String| Err(StorageError::InvalidConfig { setting, reason });
        if self.segment_max_bytes < 4096 || self.segment_max_bytes > MAX_SEGMENT_MAX_BYTES {
            return bad(
                "segment_max_bytes",
                format!(
                    "{} is outside 4096..={MAX_SEGMENT_MAX_BYTES}",
                    self.segment_max_bytes
                ),
            );
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes", "must be at least 1".into());
        }
        if self.segment_max_age.is_zero() {
            return bad("segment_max_age", "must be positive".into());
        }
        Ok(())
    }

    pub(super) fn index_capacity(&self) -> usize {
        // One entry per interval, plus slack for the round that may overshoot the size.
        (self.segment_max_bytes / self.index_interval_bytes) as usize + 1024
    }
}

/// When the records of a [`ShardLog::write`] become readable (and may be acknowledged): the
/// group committer chooses from its fsync policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// After a [`ShardLog::sync`] that covers them: nothing is readable before it is durable
    /// (`always`, and `interval` when a sync is due). A segment the write seals is synced.
    AfterSync,
    /// At once, before any sync (`never`, and `interval` between syncs). A segment the write
    /// seals is left unsynced, and the recovery point names it.
    Now,
}

/// What an append of one batch was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendAck {
    /// Sequence number of the batch's first record; the others follow by one.
    pub base_sequence: SequenceNumber,
    /// Records in the batch.
    pub record_count: u32,
    /// Arrival time stamped on the batch.
    pub timestamp_ms: Timestamp,
}

impl AppendAck {
    /// One past the batch's last record: where the next batch starts, and the durable mark
    /// that covers the whole batch.
    #[inline]
    pub fn next_sequence(&self) -> SequenceNumber {
        self.base_sequence + u64::from(self.record_count)
    }
}

/// Records read, and where to continue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadBatch {
    /// The records, in sequence order without gaps, each CRC-checked; empty at the durable end.
    pub records: Vec<StoredRecord>,
    /// The sequence to read from next: one past the last record returned, or the (clamped)
    /// start when nothing was returned.
    pub next_sequence: SequenceNumber,
}

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Sealed segments whose files were removed.
    pub segments_deleted: usize,
    /// Bytes of log those segments held (their indexes not counted).
    pub bytes_deleted: u64,
    /// The trim horizon after the pass: reads from earlier start here.
    pub first_sequence: SequenceNumber,
}

/// Upper bounds of the sync duration histogram, in seconds: 100 µs doubling to about 3.3 s
/// (a last bucket takes everything longer).
pub const SYNC_SECONDS_BOUNDS: [f64; 16] = [
    0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512, 0.1024, 0.2048,
    0.4096, 0.8192, 1.6384, 3.2768,
];
/// Upper bounds of the bytes-per-sync histogram: 4 KiB, times four up to 1 GiB.
pub const SYNC_BYTES_BOUNDS: [f64; 10] = [
    4096.0,
    16384.0,
    65536.0,
    262144.0,
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
    1073741824.0,
];

/// A histogram of fixed bounds kept in atomics: counts per bucket (the last one past every
/// bound) and the sum of what was observed.
#[derive(Debug)]
pub struct BucketCounts<const N: usize> {
    counts: [AtomicU64; N],
    over: AtomicU64,
    sum: AtomicU64,
}

impl<const N: usize> Default for BucketCounts<N> {
    fn default() -> Self {
        BucketCounts {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            over: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }
}

impl<const N: usize> BucketCounts<N> {
    /// Counts `value` (in the histogram's unit, scaled by `scale` into the integer sum).
    pub fn observe(&self, bounds: &[f64; N], value: f64, scaled: u64) {
        match bounds.iter().position(|&b| value <= b) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        self.sum.fetch_add(scaled, Ordering::Relaxed);
    }

    /// The counts as they stand.
    pub fn snapshot(&self) -> Buckets<N> {
        Buckets {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            over: self.over.load(Ordering::Relaxed),
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's counts at one moment: per bucket (not cumulative), past the last bound, and
/// the sum (in the unit its producer names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets<const N: usize> {
    /// Observations at or under each bound, and over the one before.
    pub counts: [u64; N],
    /// Observations over the last bound.
    pub over: u64,
    /// The sum of the observations.
    pub sum: u64,
}

impl<const N: usize> Default for Buckets<N> {
    fn default() -> Self {
        Buckets {
            counts: [0; N],
            over: 0,
            sum: 0,
        }
    }
}

impl<const N: usize> Buckets<N> {
    /// Adds another histogram's counts (of the same bounds).
    pub fn add(&mut self, other: &Buckets<N>) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.over += other.over;
        self.sum += other.sum;
    }
}

/// Counters of one shard log, read without locks.
#[derive(Debug, Default)]
struct Counters {
    bytes_appended: AtomicU64,
    records_appended: AtomicU64,
    batches_appended: AtomicU64,
    writes: AtomicU64,
    syncs: AtomicU64,
    sync_nanos_total: AtomicU64,
    sync_nanos_max: AtomicU64,
    /// Sync durations (sum in nanoseconds).
    sync_seconds: BucketCounts<16>,
    /// Bytes appended between one sync and the next (sum in bytes).
    sync_bytes: BucketCounts<10>,
    /// `bytes_appended` as the last sync counted it.
    bytes_at_last_sync: AtomicU64,
}

/// A snapshot of a shard log's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Frame bytes written by appends since the log was opened.
    pub bytes_appended: u64,
    /// Records appended since the log was opened.
    pub records_appended: u64,
    /// Batches (frames) appended since the log was opened.
    pub batches_appended: u64,
    /// `write` calls issued (group commit makes this smaller than `batches_appended`).
    pub writes: u64,
    /// Syncs of segment files that completed (a round's sync may cover several batches).
    pub syncs: u64,
    /// Time spent in those syncs, summed: with `syncs`, the mean cost of durability.
    pub sync_time_total: Duration,
    /// The longest single sync: the worst stall an `always` append saw from the disk.
    pub sync_time_max: Duration,
    /// Sync durations by [`SYNC_SECONDS_BOUNDS`], their sum in nanoseconds.
    pub sync_seconds: Buckets<16>,
    /// Bytes each sync made durable by [`SYNC_BYTES_BOUNDS`], their sum in bytes.
    pub sync_bytes: Buckets<10>,
    /// Segment files the log holds, the active one included.
    pub segments: usize,
    /// Bytes of whole batches in those segments: what retention by size counts.
    pub size_bytes: u64,
    /// The trim horizon: the first readable sequence.
    pub first_sequence: SequenceNumber,
    /// One past the last durable sequence.
    pub next_sequence: SequenceNumber,
}

#[derive(Debug)]
struct Writer {
    active: Arc<Segment>,
    active_opened: Instant,
    /// Bytes of the active segment written so far.
    write_pos: u64,
    next_sequence: SequenceNumber,
    last_timestamp_ms: Timestamp,
    last_indexed_pos: u64,
    buf: Vec<u8>,
    /// Segments sealed without a sync, oldest first; the next sync syncs them before the
    /// active one. While it is non-empty the recovery-point file exists (it may outlive it
    /// when retention deleted them all; recovery then only checks more than it must).
    unsynced_sealed: Vec<Arc<Segment>>,
    /// Set once a write or sync failed in a way that leaves the durable state unknown.
    poisoned: Option<Poison>,
    closed: bool,
}

/// Why a shard refuses writes: the call that failed, on which file, and its I/O error.
#[derive(Debug, Clone)]
struct Poison {
    op: &'static str,
    path: PathBuf,
    cause: Arc<std::io::Error>,
}

impl Poison {
    /// The error every refused write or sync of the shard in `dir` reports.
    fn error(&self, dir: &Path) -> StorageError {
        StorageError::Poisoned {
            dir: dir.to_owned(),
            op: self.op,
            path: self.path.clone(),
            cause: Arc::clone(&self.cause),
        }
    }
}

/// One shard's append-only log. Blocking: call it from a committer thread or `spawn_blocking`.
#[derive(Debug)]
pub struct ShardLog {
    dir: PathBuf,
    io: Arc<dyn Io>,
    config: LogConfig,
    segments: RwLock<Vec<Arc<Segment>>>,
    writer: Mutex<Writer>,
    /// Held by [`ShardLog::sync`] for its whole sync (the writer's lock is only ever
    /// taken inside it, never the other way round): syncs take turns, so one never publishes
    /// past a failure of an earlier one.
    sync_turn: Mutex<()>,
    durable_next: watch::Sender<SequenceNumber>,
    durable_next_fast: AtomicU64,
    last_timestamp_ms: AtomicU64,
    first_sequence: AtomicU64,
    /// Retention in ms: the config's at first, changed by [`ShardLog::set_retention`].
    retention_ms: AtomicU64,
    counters: Counters,
}

impl ShardLog {
    /// Opens the log in `dir` (creating it), recovering its segments first; see
    /// `storage::recovery`.
    pub fn open(io: Arc<dyn Io>, dir: &Path, config: LogConfig) -> Result<ShardLog, StorageError> {
        config.validate()?;
        let segments = recovery::recover(io.as_ref(), dir, &config)?;
        let active = Arc::clone(segments.last().expect("at least one segment"));
        let next = active.next_sequence();
        // The active segment may be empty (a crash right after a roll): the newest arrival
        // time is then in an older segment, and new batches must not be stamped before it.
        let last_ts = segments
            .iter()
            .map(|s| s.max_timestamp_ms())
            .max()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let first = segments[0].base();
        let write_pos = active.len();
        let last_indexed_pos = active.last_index_position();
        let writer = Writer {
            active,
            active_opened: Instant::now(),
            write_pos,
            next_sequence: next,
            last_timestamp_ms: last_ts,
            last_indexed_pos,
            buf: Vec::new(),
            unsynced_sealed: Vec::new(),
            poisoned: None,
            closed: false,
        };
        let (durable_next, _) = watch::channel(next);
        let retention_ms = u64::try_from(config.retention.as_millis()).unwrap_or(u64::MAX);
        Ok(ShardLog {
            dir: dir.to_owned(),
            io,
            config,
            segments: RwLock::new(segments),
            writer: Mutex::new(writer),
            sync_turn: Mutex::new(()),
            durable_next,
            durable_next_fast: AtomicU64::new(next.get()),
            last_timestamp_ms: AtomicU64::new(last_ts.as_millis()),
            first_sequence: AtomicU64::new(first.get()),
            retention_ms: AtomicU64::new(retention_ms),
            counters: Counters::default(),
        })
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the writer leaves its state unknown: treat as poisoned below.
        match self.writer.lock() {
            Ok(w) => w,
            Err(p) => {
                let mut w = p.into_inner();
                let dir = self.dir.clone();
                w.poisoned.get_or_insert_with(|| Poison {
                    op: "write to (a writer panicked)",
                    path: dir,
                    cause: Arc::new(std::io::Error::other("a writer panicked")),
                });
                w
            }
        }
    }

    /// Stamps `batches` with their sequence numbers and one arrival time (`now`, or the previous
    /// round's time when that is later, so times never go backwards) and writes them in order
    /// with one `write`. Returns one ack per batch. `publish` says when readers
    /// see them: the committer chooses it from its fsync policy. On a failed write the file is
    /// cut back and the call fails as a whole (no sequence numbers are used).
    pub fn write(
        &self,
        batches: &mut [EncodedBatch],
        now: Timestamp,
        publish: Publish,
    ) -> Result<Vec<AppendAck>, StorageError> {
        let mut w = self.writer();
        // Batches published only after their sync are to be synced anyway: a segment they
        // seal is synced with them.
        let sync_old = publish == Publish::AfterSync;
        let acks = self.write_locked(&mut w, batches, sync_old, now)?;
        if publish == Publish::Now && !acks.is_empty() {
            let (next, ts) = (w.next_sequence, w.last_timestamp_ms);
            self.publish(next, ts);
        }
        Ok(acks)
    }

    /// Seals the active segment, synced, and starts an empty one at the next sequence number:
    /// for a shard that takes no more records (closed by a reshard), so that retention, which
    /// never deletes the active segment, can in time delete every record it holds. Nothing to
    /// do when the active segment holds no record.
    pub fn seal_active(&self) -> Result<(), StorageError> {
        let mut w = self.writer();
        if w.active.base() == w.next_sequence {
            return Ok(());
        }
        self.roll(&mut w, true)
    }

    /// Makes records durable and readable: syncs everything written so far (outside the
    /// writer's lock, so the next round can be written meanwhile), then publishes it. With
    /// `through: Some(end)` (the records of one group-commit round), a sync that finds `end`
    /// already published by another returns at once; with `None` (the `interval` timer, a
    /// caller that wants everything durable) it always syncs. Syncs take turns. On a failed
    /// sync the log is poisoned.
    pub fn sync(&self, through: Option<SequenceNumber>) -> Result<(), StorageError> {
        let _turn = self.sync_turn.lock().unwrap_or_else(|p| p.into_inner());
        if through.is_some_and(|end| self.next_sequence() >= end) {
            return Ok(());
        }
        let (pending, active, next, ts) = {
            let w = self.writer();
            if let Some(poison) = &w.poisoned {
                return Err(poison.error(&self.dir));
            }
            (
                w.unsynced_sealed.clone(),
                Arc::clone(&w.active),
                w.next_sequence,
                w.last_timestamp_ms,
            )
        };
        debug_assert!(
            through.is_none_or(|end| next >= end),
            "sync past what was written"
        );
        let started = Instant::now();
        let failed = pending
            .iter()
            .chain(std::iter::once(&active))
            .find_map(|seg| seg.sync().err().map(|e| (seg.path().to_owned(), e)));
        let mut w = self.writer();
        if let Some((path, e)) = failed {
            return Err(self.poison(&mut w, "sync segment", path, e));
        }
        // A sync that failed meanwhile (sealing a segment) may have reported the loss of pages
        // this one then found clean: nothing is promised after it.
        if let Some(poison) = &w.poisoned {
            return Err(poison.error(&self.dir));
        }
        if !pending.is_empty() {
            w.unsynced_sealed
                .retain(|s| !pending.iter().any(|p| Arc::ptr_eq(p, s)));
            if w.unsynced_sealed.is_empty() {
                if let Err(e) = clear_recovery_point(self.io.as_ref(), &self.dir) {
                    let path = self.dir.join(RECOVERY_POINT_FILE);
                    return Err(self.poison(&mut w, "remove recovery point", path, e));
                }
            }
        }
        self.count_sync(started);
        self.publish(next, ts);
        Ok(())
    }

    /// Stamps and writes `batches` (sealing the active segment first when it is full, syncing
    /// it when `sync_old`), and makes them readable below `readable_len` — but neither syncs
    /// nor publishes them. Returns no ack for no batch.
    fn write_locked(
        &self,
        w: &mut Writer,
        batches: &mut [EncodedBatch],
        sync_old: bool,
        now: Timestamp,
    ) -> Result<Vec<AppendAck>, StorageError> {
        if w.closed {
            return Err(StorageError::Closed {
                dir: self.dir.clone(),
            });
        }
        if let Some(poison) = &w.poisoned {
            return Err(poison.error(&self.dir));
        }
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        let round_bytes: u64 = batches.iter().map(|b| b.frame_len() as u64).sum();
        if w.write_pos > 0
            && (w.write_pos + round_bytes > self.config.segment_max_bytes
                || w.active_opened.elapsed() >= self.config.segment_max_age)
        {
            self.roll(w, sync_old)?;
        }
        let start_pos = w.write_pos;
        let mut acks = Vec::with_capacity(batches.len());
        let mut entries = Vec::new();
        // Small batches are copied into one buffer and written with one call; batches of
        // `DIRECT_WRITE_MIN_BATCH` bytes and more are written from their own buffers, since
        // copying them would cost more than the extra calls.
        let coalesce = batches.len() > 1
            && round_bytes / (batches.len() as u64) < DIRECT_WRITE_MIN_BATCH as u64;
        let mut buf = std::mem::take(&mut w.buf);
        buf.clear();
        // One arrival time for the round, never before the previous round's: time indexes and
        // retention rely on timestamps that do not go backwards within a shard.
        let ts = w.last_timestamp_ms.max(now);
        let (mut seq, mut last_indexed) = (w.next_sequence, w.last_indexed_pos);
        let mut records = 0u64;
        let mut round_len = 0u64;
        for batch in batches.iter_mut() {
            let pos = start_pos + round_len;
            if pos > 0 && pos - last_indexed >= self.config.index_interval_bytes {
                entries.push((pos, seq, ts));
                last_indexed = pos;
            }
            let frame = batch.stamp(seq, ts);
            if coalesce {
                buf.extend_from_slice(frame);
            }
            round_len += frame.len() as u64;
            acks.push(AppendAck {
                base_sequence: seq,
                record_count: batch.record_count(),
                timestamp_ms: ts,
            });
            seq += u64::from(batch.record_count());
            records += u64::from(batch.record_count());
        }
        debug_assert_eq!(round_len, round_bytes);
        let active = Arc::clone(&w.active);
        let written = if coalesce {
            active.write_at(&buf, start_pos).map(|()| 1)
        } else {
            let mut pos = start_pos;
            batches.iter().try_fold(0u64, |calls, batch| {
                active.write_at(batch.frame(), pos)?;
                pos += batch.frame_len() as u64;
                Ok(calls + 1)
            })
        };
        w.buf = buf;
        let calls = match written {
            Ok(calls) => calls,
            Err(e) => {
                let err = StorageError::io("write segment", active.path(), e);
                // Cut the partial write so the next batch starts on a frame boundary; if even
                // that fails, the file's tail is unknown and the shard must stop.
                if let Err(te) = active.truncate(start_pos) {
                    tracing::error!(shard = %self.dir.display(), error = %err, truncate_error = %te, "cutting back a failed write failed; the shard refuses writes until reopened");
                    w.poisoned = Some(Poison {
                        op: "cut back a failed write of",
                        path: active.path().to_owned(),
                        cause: Arc::new(te),
                    });
                }
                return Err(err);
            }
        };
        self.counters.writes.fetch_add(calls, Ordering::Relaxed);
        let end_pos = start_pos + round_len;
        active.set_written(end_pos, seq, ts, &entries);
        w.write_pos = end_pos;
        w.next_sequence = seq;
        w.last_timestamp_ms = ts;
        w.last_indexed_pos = last_indexed;
        self.counters
            .bytes_appended
            .fetch_add(round_len, Ordering::Relaxed);
        self.counters
            .records_appended
            .fetch_add(records, Ordering::Relaxed);
        self.counters
            .batches_appended
            .fetch_add(batches.len() as u64, Ordering::Relaxed);
        Ok(acks)
    }

    /// Records why the shard stops taking writes (`op` on `path` failed with `e`), and returns
    /// the error of that call.
    fn poison(
        &self,
        w: &mut Writer,
        op: &'static str,
        path: impl Into<PathBuf>,
        e: std::io::Error,
    ) -> StorageError {
        let path = path.into();
        let err = StorageError::io(op, path.clone(), copy_io_error(&e));
        tracing::error!(shard = %self.dir.display(), error = %err, "durable state unknown; the shard refuses writes until reopened");
        w.poisoned = Some(Poison {
            op,
            path,
            cause: Arc::new(e),
        });
        err
    }

    /// Syncs the segments sealed without a sync, then the active one, then clears the recovery
    /// point: a sync promises every record written before it.
    fn sync_locked(&self, w: &mut Writer) -> Result<(), StorageError> {
        let started = Instant::now();
        let pending = std::mem::take(&mut w.unsynced_sealed);
        let failed = pending
            .iter()
            .chain(std::iter::once(&w.active))
            .find_map(|seg| seg.sync().err().map(|e| (seg.path().to_owned(), e)));
        if let Some((path, e)) = failed {
            w.unsynced_sealed = pending;
            return Err(self.poison(w, "sync segment", path, e));
        }
        if !pending.is_empty() {
            if let Err(e) = clear_recovery_point(self.io.as_ref(), &self.dir) {
                let path = self.dir.join(RECOVERY_POINT_FILE);
                return Err(self.poison(w, "remove recovery point", path, e));
            }
        }
        self.count_sync(started);
        Ok(())
    }

    fn count_sync(&self, started: Instant) {
        let elapsed = started.elapsed();
        let nanos = elapsed.as_nanos() as u64;
        let c = &self.counters;
        c.sync_seconds
            .observe(&SYNC_SECONDS_BOUNDS, elapsed.as_secs_f64(), nanos);
        let appended = c.bytes_appended.load(Ordering::Relaxed);
        let before = c.bytes_at_last_sync.swap(appended, Ordering::Relaxed);
        let bytes = appended.saturating_sub(before);
        c.sync_bytes
            .observe(&SYNC_BYTES_BOUNDS, bytes as f64, bytes);
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        self.counters
            .sync_nanos_total
            .fetch_add(nanos, Ordering::Relaxed);
        self.counters
            .sync_nanos_max
            .fetch_max(nanos, Ordering::Relaxed);
    }

    /// Moves the durable mark to `next`. Called with the writer's lock held, so the check
    /// and the store cannot interleave with another publish; the mark never goes back (a sync
    /// that started before an unsynced append published more would otherwise lower it).
    fn publish(&self, next: SequenceNumber, last_ts: Timestamp) {
        if next < self.next_sequence() {
            return;
        }
        self.last_timestamp_ms
            .store(last_ts.as_millis(), Ordering::Release);
        self.durable_next_fast.store(next.get(), Ordering::Release);
        self.durable_next.send_replace(next);
    }

    /// Seals the active segment and starts a new one at the next sequence. With `sync_old`
    /// (the round being appended is synced anyway) the old segment is synced first. Without
    /// it the old segment is left to the OS like the rest of an unsynced append — syncing a
    /// whole segment would stall every `never` append for as long as the disk takes — and the
    /// recovery point is made durable first, so recovery checks it whole.
    fn roll(&self, w: &mut Writer, sync_old: bool) -> Result<(), StorageError> {
        let base = w.next_sequence;
        if !sync_old && w.unsynced_sealed.is_empty() {
            // Before the next segment can durably exist, recovery must know this one may hold
            // bytes that never reached the disk.
            if let Err(e) = write_recovery_point(self.io.as_ref(), &self.dir, w.active.base()) {
                let path = self.dir.join(RECOVERY_POINT_FILE);
                return Err(self.poison(w, "write recovery point", path, e));
            }
        }
        let seg = Segment::create(
            self.io.as_ref(),
            &self.dir,
            base,
            self.config.index_capacity(),
        )?;
        if sync_old {
            // On failure the new file is empty and harmless; the failed sync poisoned the shard.
            self.sync_locked(w)?;
        }
        if let Err(e) = self.io.sync_dir(&self.dir) {
            // Whether the new segment's name is durable is unknown, and retrying an fsync is
            // as unsafe for a directory as for a file: the shard stops like on a failed sync.
            return Err(self.poison(w, "sync shard directory", &self.dir, e));
        }
        w.active.seal();
        if !sync_old {
            w.unsynced_sealed.push(Arc::clone(&w.active));
        }
        let seg = Arc::new(seg);
        self.segments
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::clone(&seg));
        w.active = seg;
        w.active_opened = Instant::now();
        w.write_pos = 0;
        w.last_indexed_pos = 0;
        Ok(())
    }

    /// Reads records from `from` on (clamped to the trim horizon) up to the durable mark,
    /// at most `max_records` and about `max_bytes` (at least one record when there is one).
    pub fn read(
        &self,
        from: SequenceNumber,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<ReadBatch, StorageError> {
        let end = self.next_sequence();
        let from = from.max(self.first_sequence());
        let mut out = ReadBatch {
            records: Vec::new(),
            next_sequence: from,
        };
        if from >= end || max_records == 0 {
            return Ok(out);
        }
        let segments: Vec<Arc<Segment>> = {
            let segs = self.segments.read().unwrap_or_else(|p| p.into_inner());
            let i = segs.partition_point(|s| s.base() <= from).saturating_sub(1);
            segs[i..].to_vec()
        };
        let mut bytes = 0usize;
        for (i, seg) in segments.iter().enumerate() {
            if seg.base() >= end || out.records.len() >= max_records || bytes >= max_bytes {
                break;
            }
            // A segment's records end where the next segment's begin: whatever a sealed
            // segment holds past that (damage after its last batch) is never read.
            let seg_end = segments.get(i + 1).map_or(end, |next| next.base().min(end));
            let cursor = match out.records.last() {
                None => from,
                Some(last) if last.sequence.next() == seg.base() => last.sequence.next(),
                // The previous segment stopped before its end (the byte budget was reached
                // inside a batch): going on here would skip the records in between.
                Some(_) => break,
            };
            match seg.read_into(
                cursor,
                seg_end,
                max_records,
                max_bytes,
                &mut out.records,
                &mut bytes,
            ) {
                Ok(()) => {}
                // Serve what precedes a damaged batch; the next read, starting at it, reports it.
                Err(StorageError::Corrupt { .. }) if !out.records.is_empty() => break,
                Err(e) => return Err(e),
            }
        }
        if let Some(last) = out.records.last() {
            out.next_sequence = last.sequence.next();
        }
        Ok(out)
    }

    /// As [`ShardLog::read`], for a reader that decodes the stored frames itself: the whole
    /// frames holding the records from `from` on (clamped to the trim horizon, and stopping
    /// at `end` when given), CRC-checked, as they are stored. Covers at most `max_records`
    /// records and about `max_bytes` of frames (at least one frame when there is a record).
    /// Returns the frames and the range `[first, next)` of sequence numbers they are read for.
    pub fn read_frames(
        &self,
        from: SequenceNumber,
        end: Option<SequenceNumber>,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<(SequenceNumber, FrameRead), StorageError> {
        let durable = self.next_sequence();
        let end = end.map_or(durable, |e| e.min(durable));
        let from = from.max(self.first_sequence());
        let mut out = FrameRead {
            next: from,
            ..FrameRead::default()
        };
        if from >= end || max_records == 0 {
            return Ok((from, out));
        }
        let segments: Vec<Arc<Segment>> = {
            let segs = self.segments.read().unwrap_or_else(|p| p.into_inner());
            let i = segs.partition_point(|s| s.base() <= from).saturating_sub(1);
            segs[i..].to_vec()
        };
        for (i, seg) in segments.iter().enumerate() {
            if seg.base() >= end || out.records >= max_records || out.bytes >= max_bytes {
                break;
            }
            let seg_end = segments.get(i + 1).map_or(end, |next| next.base().min(end));
            // Only a segment read to its end is continued by the next one.
            if out.records > 0 && out.next != seg.base() {
                break;
            }
            match seg.read_frames_into(out.next, seg_end, max_records, max_bytes, &mut out) {
                Ok(()) => {}
                // Serve what precedes a damaged frame; the next read, starting at it, reports it.
                Err(StorageError::Corrupt { .. }) if out.records > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok((from, out))
    }

    /// The first durable sequence whose arrival time is at or after `timestamp_ms`; the
    /// durable end when every record is older.
    pub fn seek_time(&self, timestamp_ms: Timestamp) -> Result<SequenceNumber, StorageError> {
        let end = self.next_sequence();
        let segments: Vec<Arc<Segment>> = self
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // An empty segment (only ever the last) has no time: it must not count as older, or
        // the predicate would not be partitioned and the search could skip segments.
        let i = segments.partition_point(|s| !s.is_empty() && s.max_timestamp_ms() < timestamp_ms);
        for seg in &segments[i..] {
            if let Some(seq) = seg.seek_time(timestamp_ms, end)? {
                return Ok(seq.max(self.first_sequence()));
            }
        }
        Ok(end)
    }

    /// Deletes whole sealed segments older than the retention or past the size limit, oldest
    /// first; the trim horizon moves to the first remaining record.
    pub fn apply_retention(&self, now: Timestamp) -> Result<RetentionOutcome, StorageError> {
        let cutoff = now.saturating_sub(self.retention());
        let mut segs = self.segments.write().unwrap_or_else(|p| p.into_inner());
        let mut total: u64 = segs.iter().map(|s| s.len()).sum();
        let mut outcome = RetentionOutcome::default();
        let mut drop_count = 0;
        for seg in segs.iter() {
            if !seg.is_sealed() {
                break;
            }
            let too_old = seg.max_timestamp_ms() < cutoff;
            let too_big = self.config.retention_bytes.is_some_and(|max| total > max);
            if !(too_old || too_big) {
                break;
            }
            total -= seg.len();
            outcome.bytes_deleted += seg.len();
            drop_count += 1;
        }
        let dropped: Vec<Arc<Segment>> = segs.drain(..drop_count).collect();
        let first = segs[0].base();
        self.first_sequence.store(first.get(), Ordering::Release);
        drop(segs);
        if !dropped.is_empty() {
            // A deleted segment still waiting for its sync is not synced any more: holding it
            // would keep the file, and its pages, until a sync that may never come.
            self.writer().unsynced_sealed.retain(|s| s.base() >= first);
        }
        for seg in &dropped {
            seg.remove_files(self.io.as_ref(), &self.dir)?;
        }
        if !dropped.is_empty() {
            self.io
                .sync_dir(&self.dir)
                .map_err(|e| StorageError::io("sync shard directory", &self.dir, e))?;
            tracing::info!(shard = %self.dir.display(), segments = dropped.len(), bytes = outcome.bytes_deleted, first_sequence = first.get(), "retention deleted segments");
        }
        outcome.segments_deleted = dropped.len();
        outcome.first_sequence = first;
        Ok(outcome)
    }

    /// Syncs and refuses further appends.
    pub fn close(&self) -> Result<(), StorageError> {
        let mut w = self.writer();
        if w.closed {
            return Ok(());
        }
        w.closed = true;
        if w.poisoned.is_none() {
            self.sync_locked(&mut w)?;
            let (next, ts) = (w.next_sequence, w.last_timestamp_ms);
            self.publish(next, ts);
        }
        Ok(())
    }

    /// The first readable sequence (the trim horizon).
    pub fn first_sequence(&self) -> SequenceNumber {
        SequenceNumber::new(self.first_sequence.load(Ordering::Acquire))
    }

    /// One past the last durable (readable) sequence.
    pub fn next_sequence(&self) -> SequenceNumber {
        SequenceNumber::new(self.durable_next_fast.load(Ordering::Acquire))
    }

    /// Arrival time of the newest durable record (the epoch when empty).
    pub fn last_timestamp_ms(&self) -> Timestamp {
        Timestamp::from_millis(self.last_timestamp_ms.load(Ordering::Acquire))
    }

    /// A receiver that changes whenever the durable mark advances.
    pub fn subscribe(&self) -> watch::Receiver<SequenceNumber> {
        self.durable_next.subscribe()
    }

    /// Why writes are refused, if they are: the [`StorageError::Poisoned`] they fail with,
    /// whose source is the I/O error that poisoned the shard.
    pub fn poisoned(&self) -> Option<StorageError> {
        self.writer().poisoned.as_ref().map(|p| p.error(&self.dir))
    }

    /// The shard's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How old a sealed segment's newest record must be before retention deletes it.
    pub fn retention(&self) -> Duration {
        Duration::from_millis(self.retention_ms.load(Ordering::Relaxed))
    }

    /// Changes how old a sealed segment's newest record must be before retention deletes it;
    /// the next retention pass uses it.
    pub fn set_retention(&self, retention: Duration) {
        let ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
        self.retention_ms.store(ms, Ordering::Relaxed);
    }

    /// The log's configuration as opened (its retention may have changed since: see
    /// [`ShardLog::retention`]).
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> LogStats {
        let c = &self.counters;
        let segs = self.segments.read().unwrap_or_else(|p| p.into_inner());
        LogStats {
            bytes_appended: c.bytes_appended.load(Ordering::Relaxed),
            records_appended: c.records_appended.load(Ordering::Relaxed),
            batches_appended: c.batches_appended.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            sync_time_total: Duration::from_nanos(c.sync_nanos_total.load(Ordering::Relaxed)),
            sync_time_max: Duration::from_nanos(c.sync_nanos_max.load(Ordering::Relaxed)),
            sync_seconds: c.sync_seconds.snapshot(),
            sync_bytes: c.sync_bytes.snapshot(),
            segments: segs.len(),
            size_bytes: segs.iter().map(|s| s.len()).sum(),
            first_sequence: self.first_sequence(),
            next_sequence: self.next_sequence(),
        }
    }
}
