//! What the broker counts for its operators: per shard, records and bytes read and the
//! subscriptions reading it; per stream, deduplication hits; per API operation, requests by
//! outcome and their durations. Plain atomics, bounded by what exists (shards, streams, the
//! operations of each API): the HTTP adapter turns a snapshot of them into Prometheus metrics
//! at scrape time, so a stream deleted takes its series with it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::storage::{BucketCounts, Buckets};

/// Upper bounds of the request duration histogram, in seconds: 50 µs doubling to about 6.5 s.
pub const REQUEST_SECONDS_BOUNDS: [f64; 18] = [
    0.00005, 0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512,
    0.1024, 0.2048, 0.4096, 0.8192, 1.6384, 3.2768, 6.5536,
];

/// The outcome a request is counted under when it succeeded.
pub const OK: &str = "OK";

/// Most distinct operation names ever kept; any further ones are counted as `other` (a client
/// sending made-up names must not grow the server's memory).
pub const MAX_OPERATION_NAMES: usize = 256;

/// The name an operation is counted under, kept for the life of the process: at most
/// [`MAX_OPERATION_NAMES`] are ever kept.
pub fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashMap<String, &'static str>>> = Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    let names = names.get_or_insert_with(HashMap::new);
    if let Some(kept) = names.get(name) {
        return kept;
    }
    if names.len() >= MAX_OPERATION_NAMES {
        return "other";
    }
    let kept: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(name.to_owned(), kept);
    kept
}

/// Counters of one shard that its log does not keep: what readers took from it.
#[derive(Debug, Default)]
pub(crate) struct ShardReads {
    records: AtomicU64,
    bytes: AtomicU64,
    /// Open subscriptions by id, with how far each last was behind the newest record (ms).
    subscriptions: Mutex<HashMap<u64, u64>>,
}

impl ShardReads {
    /// Counts records handed to a reader.
    pub(crate) fn count(&self, records: usize, bytes: usize) {
        self.records.fetch_add(records as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Records and bytes read since the server started.
    pub(crate) fn totals(&self) -> (u64, u64) {
        (
            self.records.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// Notes how far subscription `id` is behind; it counts as open until [`Self::close`].
    pub(crate) fn subscription_at(&self, id: u64, behind: Duration) {
        let ms = u64::try_from(behind.as_millis()).unwrap_or(u64::MAX);
        self.subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, ms);
    }

    /// Forgets subscription `id`.
    pub(crate) fn close(&self, id: u64) {
        self.subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Open subscriptions, and the furthest behind of them (ms).
    pub(crate) fn subscriptions(&self) -> (usize, u64) {
        let subs = self.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
        (subs.len(), subs.values().copied().max().unwrap_or(0))
    }
}

/// Requests of one operation of one API.
#[derive(Debug, Default)]
struct OperationStats {
    seconds: BucketCounts<18>,
    /// Requests by outcome: [`OK`] or the error's code.
    outcomes: Mutex<BTreeMap<&'static str, u64>>,
}

/// One operation's requests at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationSnapshot {
    /// The API: `grpc`, `kinesis`, `http`.
    pub api: &'static str,
    /// The operation (a gRPC method, a Kinesis target).
    pub operation: &'static str,
    /// Durations by [`REQUEST_SECONDS_BOUNDS`], their sum in nanoseconds.
    pub seconds: Buckets<18>,
    /// Requests by outcome.
    pub outcomes: BTreeMap<&'static str, u64>,
}

/// Requests by API and operation. The operations are a fixed set per API (names the adapters
/// pass as `'static` strings), so the map stays bounded.
#[derive(Debug, Default)]
pub struct RequestStats {
    operations: RwLock<HashMap<(&'static str, &'static str), Arc<OperationStats>>>,
    /// Requests refused for a rate or capacity limit, by API and reason.
    throttled: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl RequestStats {
    /// Counts one request of `operation` on `api`, its duration and its outcome ([`OK`] or an
    /// error code).
    pub fn record(
        &self,
        api: &'static str,
        operation: &'static str,
        outcome: &'static str,
        took: Duration,
    ) {
        let stats = self.operation(api, operation);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        stats
            .seconds
            .observe(&REQUEST_SECONDS_BOUNDS, took.as_secs_f64(), nanos);
        *stats
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(outcome)
            .or_default() += 1;
    }

    /// Counts a request refused for a limit: `reason` names which (`busy`, `disk_full`, …).
    pub fn throttled(&self, api: &'static str, reason: &'static str) {
        *self
            .throttled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((api, reason))
            .or_default() += 1;
    }

    fn operation(&self, api: &'static str, operation: &'static str) -> Arc<OperationStats> {
        if let Some(s) = self
            .operations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(api, operation))
        {
            return Arc::clone(s);
        }
        Arc::clone(
            self.operations
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .entry((api, operation))
                .or_default(),
        )
    }

    /// Every operation seen, by API and name.
    pub fn operations(&self) -> Vec<OperationSnapshot> {
        let mut out: Vec<OperationSnapshot> = self
            .operations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(&(api, operation), s)| OperationSnapshot {
                api,
                operation,
                seconds: s.seconds.snapshot(),
                outcomes: s.outcomes.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            })
            .collect();
        out.sort_by_key(|o| (o.api, o.operation));
        out
    }

    /// Throttled requests by API and reason.
    pub fn throttled_counts(&self) -> BTreeMap<(&'static str, &'static str), u64> {
        self.throttled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// One shard's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardSnapshot {
    /// The shard.
    pub shard: String,
    /// Records appended since the server started.
    pub records_put: u64,
    /// The durable high-water mark: the sequence number the next record will get, every one
    /// below it synced as the fsync policy says.
    pub durable_next: u64,
    /// Bytes appended (stored frames: records with their headers) since the server started.
    pub bytes_put: u64,
    /// Records handed to readers (GetRecords and subscriptions).
    pub records_read: u64,
    /// Bytes of record data handed to readers.
    pub bytes_read: u64,
    /// Batches waiting for the shard's committer.
    pub commit_queue_depth: u64,
    /// Open subscriptions.
    pub subscriptions: u64,
    /// How far the furthest-behind subscription was behind the newest record, ms.
    pub subscription_behind_ms: u64,
    /// Sync durations.
    pub sync_seconds: Buckets<16>,
    /// Bytes per sync.
    pub sync_bytes: Buckets<10>,
}

/// One stream's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamSnapshot {
    /// The stream.
    pub stream: String,
    /// Its shards not retired.
    pub shards: Vec<ShardSnapshot>,
    /// Puts answered as duplicates.
    pub dedup_hits: u64,
    /// Deduplication ids tracked in its window.
    pub dedup_ids: u64,
}

/// One shard of a lease group at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupShardSnapshot {
    /// The stream.
    pub stream: String,
    /// The group.
    pub group: String,
    /// The shard.
    pub shard: String,
    /// Records after the group's checkpoint.
    pub lag_records: u64,
    /// Arrival-time distance from the checkpoint to the newest record, ms.
    pub behind_ms: u64,
}

/// One queue group at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// The stream.
    pub stream: String,
    /// The group.
    pub group: String,
    /// Messages visible.
    pub visible: u64,
    /// Messages in flight.
    pub in_flight: u64,
    /// Age of the oldest message not done, ms.
    pub oldest_age_ms: u64,
    /// Receives since the group was made.
    pub received: u64,
    /// Deletes.
    pub deleted: u64,
    /// Messages moved to the dead-letter stream.
    pub dead_lettered: u64,
}

/// One rule at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSnapshot {
    /// The rule.
    pub rule: String,
    /// Records that matched since the server started.
    pub matched: u64,
    /// Records put into targets since the server started.
    pub routed: u64,
    /// Source records not yet looked at, over its shards.
    pub lag_records: u64,
    /// How far behind the newest source record its furthest-behind shard is, ms.
    pub behind_ms: u64,
}

/// Everything the broker counts, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Streams, by name.
    pub streams: Vec<StreamSnapshot>,
    /// Lease groups' shards.
    pub groups: Vec<GroupShardSnapshot>,
    /// Queue groups.
    pub queues: Vec<QueueSnapshot>,
    /// Rules.
    pub rules: Vec<RuleSnapshot>,
    /// Requests by API and operation.
    pub requests: Vec<OperationSnapshot>,
    /// Throttled requests by API and reason.
    pub throttled: BTreeMap<(&'static str, &'static str), u64>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl super::Broker {
    /// The requests counted so far; adapters record into it.
    pub fn request_stats(&self) -> &RequestStats {
        &self.inner.requests
    }

    /// Everything the broker counts, for a scrape. Groups, queues and rules are described as
    /// their own calls would; one that goes away meanwhile is left out.
    pub async fn stats_snapshot(&self) -> Snapshot {
        let mut handles = self.stream_handles();
        handles.sort_by(|a, b| a.descriptor.name.cmp(&b.descriptor.name));
        let mut streams = Vec::with_capacity(handles.len());
        let mut groups = Vec::new();
        let mut queues = Vec::new();
        for handle in &handles {
            let name = handle.descriptor.name.to_string();
            let shards = handle
                .shards()
                .map(|sh| {
                    let log = sh.log.stats();
                    let (records_read, bytes_read) = sh.reads.totals();
                    let (subscriptions, behind) = sh.reads.subscriptions();
                    ShardSnapshot {
                        shard: sh.id.to_string(),
                        records_put: log.records_appended,
                        durable_next: sh.log.next_sequence().get(),
                        bytes_put: log.bytes_appended,
                        records_read,
                        bytes_read,
                        commit_queue_depth: sh.committer.queue_depth() as u64,
                        subscriptions: subscriptions as u64,
                        subscription_behind_ms: behind,
                        sync_seconds: log.sync_seconds,
                        sync_bytes: log.sync_bytes,
                    }
                })
                .collect();
            streams.push(StreamSnapshot {
                stream: name.clone(),
                shards,
                dedup_hits: handle.shared.dedup_hits.load(Ordering::Relaxed),
                dedup_ids: handle.dedup.len() as u64,
            });
            let Ok(kinds) = self.list_groups(&handle.descriptor.name) else {
                continue;
            };
            for (group, kind) in kinds {
                if kind == super::GroupType::ShardLeases {
                    let Ok(d) = self.describe_group(&handle.descriptor.name, &group).await else {
                        continue;
                    };
                    groups.extend(d.shards.iter().map(|s| GroupShardSnapshot {
                        stream: name.clone(),
                        group: group.clone(),
                        shard: s.shard.to_string(),
                        lag_records: s.lag_records,
                        behind_ms: ms(s.behind_latest),
                    }));
                } else if let Ok(q) = self.describe_queue(&handle.descriptor.name, &group).await {
                    queues.push(QueueSnapshot {
                        stream: name.clone(),
                        group,
                        visible: q.visible,
                        in_flight: q.in_flight,
                        oldest_age_ms: ms(q.oldest_age),
                        received: q.counters.received,
                        deleted: q.counters.deleted,
                        dead_lettered: q.counters.dead_lettered,
                    });
                }
            }
        }
        let rules = self
            .list_rules(None)
            .into_iter()
            .map(|r| RuleSnapshot {
                rule: r.name.to_string(),
                matched: r.matched,
                routed: r.routed,
                lag_records: r.shards.iter().map(|s| s.lag_records).sum(),
                behind_ms: r
                    .shards
                    .iter()
                    .map(|s| ms(s.behind_latest))
                    .max()
                    .unwrap_or(0),
            })
            .collect();
        Snapshot {
            streams,
            groups,
            queues,
            rules,
            requests: self.inner.requests.operations(),
            throttled: self.inner.requests.throttled_counts(),
        }
    }
}
