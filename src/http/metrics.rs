//! `GET /metrics`: the broker's counters in the Prometheus (OpenMetrics) text format, taken at
//! scrape time, so the label sets are exactly the streams, shards, groups and rules that exist.
//! Names follow Prometheus conventions: base units, `_total` on counters, `_seconds` and
//! `_bytes` suffixes.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::broker::stats::{Snapshot, REQUEST_SECONDS_BOUNDS};
use crate::storage::{Buckets, SYNC_BYTES_BOUNDS, SYNC_SECONDS_BOUNDS};

/// The content type of the answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// What one scrape encodes: the broker's snapshot and the process's figures.
#[derive(Debug)]
struct Scrape {
    snapshot: Snapshot,
    process: Option<Process>,
}

/// Encodes a scrape in the text format.
pub fn encode(snapshot: Snapshot) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        snapshot,
        process: Process::read(),
    }));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// One metric family with its rows.
fn family<V>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Labels, V)>,
) -> fmt::Result
where
    V: Into<Value>,
{
    let mut metric = encoder.encode_descriptor(name, help, unit, kind)?;
    for (labels, value) in rows {
        let mut row = metric.encode_family(&labels)?;
        match value.into() {
            Value::Count(v) => row.encode_counter::<NoLabelSet, u64, u64>(&v, None)?,
            Value::Level(v) => row.encode_gauge(&v)?,
            Value::Real(v) => row.encode_gauge(&v)?,
        }
    }
    Ok(())
}

/// A row's value.
enum Value {
    Count(u64),
    Level(i64),
    Real(f64),
}

/// A counter's value.
struct Count(u64);
/// A gauge's value.
struct Level(u64);

impl From<Count> for Value {
    fn from(c: Count) -> Value {
        Value::Count(c.0)
    }
}

impl From<Level> for Value {
    fn from(l: Level) -> Value {
        Value::Level(i64::try_from(l.0).unwrap_or(i64::MAX))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Real(v)
    }
}

/// One histogram family: per row, counts over `bounds` and the sum scaled by `sum_scale`
/// into the family's unit.
fn histogram<const N: usize>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: &Unit,
    bounds: &[f64; N],
    sum_scale: f64,
    rows: impl IntoIterator<Item = (Labels, Buckets<N>)>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, Some(unit), MetricType::Histogram)?;
    for (labels, b) in rows {
        let mut buckets: Vec<(f64, u64)> = bounds.iter().copied().zip(b.counts).collect();
        buckets.push((f64::MAX, b.over));
        let count = b.counts.iter().sum::<u64>() + b.over;
        let mut row = metric.encode_family(&labels)?;
        row.encode_histogram::<NoLabelSet>(b.sum as f64 * sum_scale, count, &buckets, None)?;
    }
    Ok(())
}

fn labels<const N: usize>(pairs: [(&'static str, &str); N]) -> Labels {
    pairs.iter().map(|&(k, v)| (k, v.to_owned())).collect()
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        let s = &self.snapshot;
        let shards = || {
            s.streams.iter().flat_map(|st| {
                st.shards
                    .iter()
                    .map(move |sh| (labels([("stream", &st.stream), ("shard", &sh.shard)]), sh))
            })
        };
        use MetricType::{Counter, Gauge};
        family(
            &mut e,
            "shardlog_records_put",
            "Records stored, per shard (Kinesis IncomingRecords).",
            None,
            Counter,
            shards().map(|(l, sh)| (l, Count(sh.records_put))),
        )?;
        family(
            &mut e,
            "shardlog_put",
            "Bytes stored, record frames with their headers, per shard (Kinesis IncomingBytes).",
            Some(&Unit::Bytes),
            Counter,
            shards().map(|(l, sh)| (l, Count(sh.bytes_put))),
        )?;
        family(
            &mut e,
            "shardlog_records_read",
            "Records handed to readers, GetRecords and subscriptions, per shard \
             (Kinesis GetRecords.Records).",
            None,
            Counter,
            shards().map(|(l, sh)| (l, Count(sh.records_read))),
        )?;
        family(
            &mut e,
            "shardlog_read",
            "Bytes of record data handed to readers, per shard (Kinesis GetRecords.Bytes).",
            Some(&Unit::Bytes),
            Counter,
            shards().map(|(l, sh)| (l, Count(sh.bytes_read))),
        )?;
        family(
            &mut e,
            "shardlog_commit_queue_depth",
            "Batches waiting for the shard's committer.",
            None,
            Gauge,
            shards().map(|(l, sh)| (l, Level(sh.commit_queue_depth))),
        )?;
        family(
            &mut e,
            "shardlog_open_connections",
            "Client connections open now, per listener (grpc, kinesis, http).",
            None,
            Gauge,
            crate::tls::open_connections()
                .into_iter()
                .map(|(listener, n)| (labels([("listener", listener)]), Level(n))),
        )?;
        family(
            &mut e,
            "shardlog_refused_connections",
            "Client connections refused past --max-connections, per listener.",
            None,
            Counter,
            crate::tls::refused_connections()
                .into_iter()
                .map(|(listener, n)| (labels([("listener", listener)]), Count(n))),
        )?;
        family(
            &mut e,
            "shardlog_subscriptions",
            "Open SubscribeToShard subscriptions, per shard.",
            None,
            Gauge,
            shards().map(|(l, sh)| (l, Level(sh.subscriptions))),
        )?;
        family(
            &mut e,
            "shardlog_subscription_behind_latest",
            "How far the furthest-behind subscription of the shard is behind its newest record \
             (millis_behind_latest).",
            Some(&Unit::Seconds),
            Gauge,
            shards().map(|(l, sh)| (l, sh.subscription_behind_ms as f64 / 1000.0)),
        )?;
        let mut syncs = Buckets::<16>::default();
        let mut synced = Buckets::<10>::default();
        for (_, sh) in shards() {
            syncs.add(&sh.sync_seconds);
            synced.add(&sh.sync_bytes);
        }
        histogram(
            &mut e,
            "shardlog_fsync_duration",
            "Duration of the syncs that make appends durable, over every shard.",
            &Unit::Seconds,
            &SYNC_SECONDS_BOUNDS,
            1e-9,
            [(Labels::new(), syncs)],
        )?;
        histogram(
            &mut e,
            "shardlog_sync",
            "Bytes each sync made durable, over every shard.",
            &Unit::Bytes,
            &SYNC_BYTES_BOUNDS,
            1.0,
            [(Labels::new(), synced)],
        )?;
        family(
            &mut e,
            "shardlog_dedup_hits",
            "Puts answered as duplicates of a stored record, per stream.",
            None,
            Counter,
            s.streams
                .iter()
                .map(|st| (labels([("stream", &st.stream)]), Count(st.dedup_hits))),
        )?;
        family(
            &mut e,
            "shardlog_dedup_ids",
            "Deduplication ids tracked in the stream's window.",
            None,
            Gauge,
            s.streams
                .iter()
                .map(|st| (labels([("stream", &st.stream)]), Level(st.dedup_ids))),
        )?;
        let group_rows = || {
            s.groups.iter().map(|g| {
                (
                    labels([
                        ("stream", &g.stream),
                        ("group", &g.group),
                        ("shard", &g.shard),
                    ]),
                    g,
                )
            })
        };
        family(
            &mut e,
            "shardlog_group_lag_records",
            "Records after a lease group's checkpoint, per shard.",
            None,
            Gauge,
            group_rows().map(|(l, g)| (l, Level(g.lag_records))),
        )?;
        family(
            &mut e,
            "shardlog_group_behind_latest",
            "Arrival-time distance from a lease group's checkpoint to the shard's newest record.",
            Some(&Unit::Seconds),
            Gauge,
            group_rows().map(|(l, g)| (l, g.behind_ms as f64 / 1000.0)),
        )?;
        let queue_rows = || {
            s.queues
                .iter()
                .map(|q| (labels([("stream", &q.stream), ("group", &q.group)]), q))
        };
        family(
            &mut e,
            "shardlog_queue_messages_visible",
            "Messages of a queue group visible now.",
            None,
            Gauge,
            queue_rows().map(|(l, q)| (l, Level(q.visible))),
        )?;
        family(
            &mut e,
            "shardlog_queue_messages_in_flight",
            "Messages of a queue group received and not yet deleted or visible again.",
            None,
            Gauge,
            queue_rows().map(|(l, q)| (l, Level(q.in_flight))),
        )?;
        family(
            &mut e,
            "shardlog_queue_oldest_message_age",
            "Age of a queue group's oldest message not done.",
            Some(&Unit::Seconds),
            Gauge,
            queue_rows().map(|(l, q)| (l, q.oldest_age_ms as f64 / 1000.0)),
        )?;
        family(
            &mut e,
            "shardlog_queue_messages_received",
            "Receives of a queue group's messages.",
            None,
            Counter,
            queue_rows().map(|(l, q)| (l, Count(q.received))),
        )?;
        family(
            &mut e,
            "shardlog_queue_messages_deleted",
            "Deletes of a queue group's messages.",
            None,
            Counter,
            queue_rows().map(|(l, q)| (l, Count(q.deleted))),
        )?;
        family(
            &mut e,
            "shardlog_queue_messages_dead_lettered",
            "Messages a queue group moved to its dead-letter stream.",
            None,
            Counter,
            queue_rows().map(|(l, q)| (l, Count(q.dead_lettered))),
        )?;
        let rule_rows = || s.rules.iter().map(|r| (labels([("rule", &r.rule)]), r));
        family(
            &mut e,
            "shardlog_rule_records_matched",
            "Source records a rule matched.",
            None,
            Counter,
            rule_rows().map(|(l, r)| (l, Count(r.matched))),
        )?;
        family(
            &mut e,
            "shardlog_rule_records_routed",
            "Records a rule put into its targets.",
            None,
            Counter,
            rule_rows().map(|(l, r)| (l, Count(r.routed))),
        )?;
        family(
            &mut e,
            "shardlog_rule_lag_records",
            "Source records a rule has not looked at yet.",
            None,
            Gauge,
            rule_rows().map(|(l, r)| (l, Level(r.lag_records))),
        )?;
        family(
            &mut e,
            "shardlog_rule_behind_latest",
            "How far behind its source's newest record a rule's furthest-behind shard is.",
            Some(&Unit::Seconds),
            Gauge,
            rule_rows().map(|(l, r)| (l, r.behind_ms as f64 / 1000.0)),
        )?;
        let op_labels = |api: &str, op: &str| labels([("api", api), ("operation", op)]);
        family(
            &mut e,
            "shardlog_requests",
            "Requests by API, operation and outcome (OK or the error's code).",
            None,
            Counter,
            s.requests.iter().flat_map(|o| {
                o.outcomes.iter().map(move |(outcome, n)| {
                    let mut l = op_labels(o.api, o.operation);
                    l.push(("code", (*outcome).to_owned()));
                    (l, Count(*n))
                })
            }),
        )?;
        histogram(
            &mut e,
            "shardlog_request_duration",
            "Request durations by API and operation, from the request to its answer (for a \
             stream, to its headers).",
            &Unit::Seconds,
            &REQUEST_SECONDS_BOUNDS,
            1e-9,
            s.requests
                .iter()
                .map(|o| (op_labels(o.api, o.operation), o.seconds)),
        )?;
        family(
            &mut e,
            "shardlog_throttled_requests",
            "Requests refused for a rate or capacity limit, by API and reason.",
            None,
            Counter,
            s.throttled
                .iter()
                .map(|(&(api, reason), &n)| (labels([("api", api), ("reason", reason)]), Count(n))),
        )?;
        if let Some(p) = &self.process {
            p.encode(&mut e)?;
        }
        Ok(())
    }
}

/// The process's own figures, from `/proc/self` (Linux).
#[derive(Debug, Clone, Copy)]
struct Process {
    resident_bytes: u64,
    virtual_bytes: u64,
    open_fds: u64,
    cpu_seconds: f64,
    start_seconds: f64,
}

/// Clock ticks per second of `/proc` times: 100 on every Linux this runs on.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;
/// Bytes per page of `/proc/self/statm`.
const PAGE_BYTES: u64 = 4096;

impl Process {
    fn read() -> Option<Process> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let mut pages = statm.split_whitespace().map(|v| v.parse::<u64>().ok());
        let virtual_pages = pages.next()??;
        let resident_pages = pages.next()??;
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command (which may hold spaces) in parentheses.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // utime, stime and starttime are fields 14, 15 and 22; `fields` starts at field 3.
        let tick = |i: usize| fields.get(i - 3)?.parse::<u64>().ok();
        let cpu_ticks = tick(14)? + tick(15)?;
        let start_ticks = tick(22)?;
        let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
        let uptime: f64 = uptime.split_whitespace().next()?.parse().ok()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        let boot = now - uptime;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        Some(Process {
            resident_bytes: resident_pages * PAGE_BYTES,
            virtual_bytes: virtual_pages * PAGE_BYTES,
            open_fds,
            cpu_seconds: cpu_ticks as f64 / CLOCK_TICKS_PER_SECOND,
            start_seconds: boot + start_ticks as f64 / CLOCK_TICKS_PER_SECOND,
        })
    }

    fn encode(&self, e: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let one = |v| [(Labels::new(), v)];
        family(
            e,
            "process_resident_memory",
            "Resident memory size.",
            Some(&Unit::Bytes),
            MetricType::Gauge,
            one(Value::Level(self.resident_bytes as i64)),
        )?;
        family(
            e,
            "process_virtual_memory",
            "Virtual memory size.",
            Some(&Unit::Bytes),
            MetricType::Gauge,
            one(Value::Level(self.virtual_bytes as i64)),
        )?;
        family(
            e,
            "process_open_fds",
            "Open file descriptors.",
            None,
            MetricType::Gauge,
            one(Value::Level(self.open_fds as i64)),
        )?;
        let mut cpu = e.encode_descriptor(
            "process_cpu",
            "User and system CPU time spent.",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        cpu.encode_counter::<NoLabelSet, f64, f64>(&self.cpu_seconds, None)?;
        family(
            e,
            "process_start_time",
            "Start time of the process since the Unix epoch.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            one(Value::Real(self.start_seconds)),
        )
    }
}
