//! A run's result and its two renderings: the summary table for people, one JSON object for
//! machines.
//!
//! JSON fields (times in milliseconds, rates per second, MB = 10^6 bytes of record data):
//!
//! ```text
//! { "workload", "api", "consume_mode", "put_api", "in_flight", "idle_subscribers", "server", "fsync", "stream", "shards", "producers",
//!   "consumers", "record_size", "batch_size", "rate", "key_space", "dedup", "message_groups",
//!   "records", "bytes", "elapsed_secs", "records_per_sec", "mb_per_sec", "cpu_secs",
//!   "cpu_us_per_record",
//!   "errors", "failed_entries", "rpc_errors", "e2e_missing", "first_error",
//!   "latency_ms":     { "count", "p50", "p90", "p99", "p999", "max" },
//!   "e2e_latency_ms": { "count", "p50", "p90", "p99", "p999", "max" },
//!   "fill":  { "records", "records_per_sec", "mb_per_sec" } | null,
//!   "rss_mb": { "before", "after", "peak" } | null,
//!   "queue": { "group", "type", "message_groups", "max_messages", "target", "received",
//!              "redelivered", "deleted", "delete_failures", "drained", "receive_calls",
//!              "empty_receives", "delete_calls",
//!              "receive_call_ms": { "count", "p50", "p90", "p99", "p999", "max" },
//!              "delete_call_ms":  { "count", "p50", "p90", "p99", "p999", "max" } } | null,
//!   "route": { "rule", "target", "filter": { "pattern", "scope" } | null, "attributes",
//!              "expected_records", "routed_records", "routed_records_producing", "count_ok",
//!              "drained", "routed_per_sec", "routed_per_sec_producing", "max_lag_records",
//!              "max_millis_behind_latest", "drain_secs", "rule_error",
//!              "timeline": [ { "secs", "routed", "lag_records", "millis_behind_latest" } ] }
//!            | null }
//! ```
//!
//! A route run's `records` are the records the producers stored; `route` says what the rule
//! did with them. Its timeline has one point a second (fewer on long runs), from the producers'
//! start to the end of the drain.
//!
//! A queue run's `records` are the messages deleted, its `latency_ms` runs from each message's
//! ReceiveMessages answer to its DeleteMessages answer, and `fill` is the store before it.

use std::fmt::{self, Write as _};
use std::time::Duration;

use super::queue::QueueReport;
use super::stats::LatencySummary;

/// Bytes in the MB of every `MB/s` figure (the unit `dd` reports in).
pub const BYTES_PER_MB: f64 = 1_000_000.0;

/// The store phase that came before a consume run's reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FillReport {
    /// Records stored by the bench (0 when the stream held enough already).
    pub records: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Resident memory of the bench process (which, with `--embedded`, includes the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RssReport {
    /// Before the server started.
    pub before_bytes: u64,
    /// At the end, before the server stopped.
    pub after_bytes: u64,
    /// The most the process held at any time (VmHWM).
    pub peak_bytes: u64,
}

/// Most points of a route timeline in the JSON; a longer run's points are further apart.
pub const MAX_JSON_TIMELINE_POINTS: usize = 600;
/// Most rows of a route timeline in the summary table.
pub const MAX_TABLE_TIMELINE_ROWS: usize = 12;
/// Shortest step between two timeline points.
pub const TIMELINE_STEP: Duration = Duration::from_secs(1);

/// One DescribeRule answer of a route run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSample {
    /// Since the producers started.
    pub at: Duration,
    /// Records the rule routed since the run began.
    pub routed: u64,
    /// Records between the rule's positions and the source shards' ends, summed over shards.
    pub lag_records: u64,
    /// How far behind its shard's newest record the furthest-behind shard's last read was.
    pub behind: Duration,
}

/// What a route run's rule did with the records the producers stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteReport {
    pub rule: String,
    /// The stream it routed into.
    pub target: String,
    /// Its pattern and what the pattern applies to (`data`, `attributes`); `None` routes every
    /// record.
    pub filter: Option<(String, &'static str)>,
    /// The producers gave each record a `kind` attribute.
    pub attributes: bool,
    /// Records the rule should route: the acknowledged records its filter matches.
    pub expected: u64,
    /// Records it routed, as DescribeRule counts them (`routed_records`, less what it had
    /// counted before the run).
    pub routed: u64,
    /// Records it had routed when the producers stopped.
    pub routed_producing: u64,
    /// How long the producers ran.
    pub producing: Duration,
    /// From the producers' end until the rule had routed `expected` records and had no lag,
    /// or until the bench stopped waiting.
    pub drain: Duration,
    /// Whether the rule caught up before the bench stopped waiting.
    pub drained: bool,
    /// Most records the rule was behind the source, summed over shards, in any sample.
    pub max_lag_records: u64,
    /// Most any shard's last read was behind its newest record, in any sample.
    pub max_behind: Duration,
    /// The last error DescribeRule reported during the run.
    pub rule_error: Option<String>,
    /// Every sample, in time order.
    pub timeline: Vec<RouteSample>,
}

impl RouteReport {
    /// The rule caught up and routed exactly the records it should have.
    pub fn count_ok(&self) -> bool {
        self.drained && self.routed == self.expected
    }

    /// Records routed per second from the producers' start to the drain's end.
    pub fn routed_per_sec(&self) -> f64 {
        per_sec(self.routed as f64, self.producing + self.drain)
    }

    /// Records routed per second while the producers ran.
    pub fn routed_per_sec_producing(&self) -> f64 {
        per_sec(self.routed_producing as f64, self.producing)
    }

    /// The timeline with at most `max_points` points, at least [`TIMELINE_STEP`] apart: the
    /// first sample at or past each step, and the last sample.
    pub fn timeline_points(&self, max_points: usize) -> Vec<RouteSample> {
        let Some(last) = self.timeline.last() else {
            return Vec::new();
        };
        let steps = u32::try_from(max_points.saturating_sub(1).max(1)).unwrap_or(u32::MAX);
        let step = TIMELINE_STEP.max(last.at / steps);
        let mut points = Vec::new();
        let mut mark = step;
        for sample in &self.timeline {
            if sample.at >= mark && points.len() + 1 < max_points {
                points.push(*sample);
                while mark <= sample.at {
                    mark += step;
                }
            }
        }
        if points.last() != Some(last) {
            points.push(*last);
        }
        points
    }

    fn to_json(&self) -> Json {
        let timeline = self
            .timeline_points(MAX_JSON_TIMELINE_POINTS)
            .iter()
            .map(|p| {
                Json::Object(vec![
                    ("secs", Json::Float(p.at.as_secs_f64())),
                    ("routed", Json::Int(p.routed)),
                    ("lag_records", Json::Int(p.lag_records)),
                    ("millis_behind_latest", Json::Float(millis(p.behind))),
                ])
            })
            .collect();
        Json::Object(vec![
            ("rule", Json::str(&self.rule)),
            ("target", Json::str(&self.target)),
            (
                "filter",
                self.filter.as_ref().map_or(Json::Null, |(pattern, scope)| {
                    Json::Object(vec![
                        ("pattern", Json::str(pattern)),
                        ("scope", Json::str(scope)),
                    ])
                }),
            ),
            ("attributes", Json::Bool(self.attributes)),
            ("expected_records", Json::Int(self.expected)),
            ("routed_records", Json::Int(self.routed)),
            ("routed_records_producing", Json::Int(self.routed_producing)),
            ("count_ok", Json::Bool(self.count_ok())),
            ("drained", Json::Bool(self.drained)),
            ("routed_per_sec", Json::Float(self.routed_per_sec())),
            (
                "routed_per_sec_producing",
                Json::Float(self.routed_per_sec_producing()),
            ),
            ("max_lag_records", Json::Int(self.max_lag_records)),
            (
                "max_millis_behind_latest",
                Json::Float(millis(self.max_behind)),
            ),
            ("drain_secs", Json::Float(self.drain.as_secs_f64())),
            (
                "rule_error",
                self.rule_error.as_deref().map_or(Json::Null, Json::str),
            ),
            ("timeline", Json::Array(timeline)),
        ])
    }

    /// The route lines of the summary table; `source` is the stream the rule read.
    fn write_table(&self, source: &str, out: &mut String) {
        let filter = match &self.filter {
            Some((pattern, scope)) => format!("filter {pattern} on the {scope}"),
            None => "every record".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {:<18}{source} → {} by rule {} · {filter}{}",
            "route",
            self.target,
            self.rule,
            if self.attributes {
                " · 3 of 4 records kind=order"
            } else {
                ""
            },
        );
        let verdict = if self.count_ok() {
            "right"
        } else if !self.drained {
            "unknown: the rule did not catch up"
        } else {
            "WRONG"
        };
        let _ = writeln!(
            out,
            "  {:<18}{} of {} expected (count {verdict})",
            "routed",
            group_digits(self.routed),
            group_digits(self.expected),
        );
        let _ = writeln!(
            out,
            "  {:<18}{} records/s over {:.2} s (producing and drain) · {} records/s while producing",
            "routed rate",
            group_digits(self.routed_per_sec().round() as u64),
            (self.producing + self.drain).as_secs_f64(),
            group_digits(self.routed_per_sec_producing().round() as u64),
        );
        let _ = writeln!(
            out,
            "  {:<18}max {} records · max {:.0} ms behind latest",
            "rule lag",
            group_digits(self.max_lag_records),
            millis(self.max_behind),
        );
        let drain = if self.drained {
            format!(
                "{:.2} s after the producers stopped",
                self.drain.as_secs_f64()
            )
        } else {
            let left = self.timeline.last().map_or(0, |s| s.lag_records);
            format!(
                "gave up after {:.0} s, {} records still behind",
                self.drain.as_secs_f64(),
                group_digits(left)
            )
        };
        let _ = writeln!(out, "  {:<18}{drain}", "caught up");
        if let Some(error) = &self.rule_error {
            let _ = writeln!(out, "  {:<18}{error}", "rule error");
        }
        let points = self.timeline_points(MAX_TABLE_TIMELINE_ROWS);
        if points.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "  {:<18}{:>10}{:>14}{:>14}{:>14}",
            "rule over time", "at (s)", "routed", "routed/s", "lag records"
        );
        let mut before = RouteSample {
            at: Duration::ZERO,
            routed: 0,
            lag_records: 0,
            behind: Duration::ZERO,
        };
        for p in points {
            let rate = per_sec(
                p.routed.saturating_sub(before.routed) as f64,
                p.at - before.at,
            );
            let _ = writeln!(
                out,
                "  {:<18}{:>10.1}{:>14}{:>14}{:>14}",
                "",
                p.at.as_secs_f64(),
                group_digits(p.routed),
                group_digits(rate.round() as u64),
                group_digits(p.lag_records),
            );
            before = p;
        }
    }
}

/// What one run measured, and how it was set up.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    pub workload: &'static str,
    /// `grpc` or `kinesis`: the API the measured traffic went over.
    pub api: &'static str,
    /// `get-records` or `subscribe` for a consume run.
    pub consume_mode: Option<&'static str>,
    /// `stream` or `unary`: how producers put.
    pub put_api: &'static str,
    /// Batches a streaming producer keeps unanswered.
    pub in_flight: Option<usize>,
    /// Subscriptions held open on an idle stream during the run.
    pub idle_subscribers: usize,
    /// `embedded` or the server's URL.
    pub server: String,
    /// The embedded server's fsync policy.
    pub fsync: Option<&'static str>,
    pub stream: String,
    pub shards: u32,
    pub producers: usize,
    pub consumers: usize,
    pub record_size: usize,
    pub batch_size: usize,
    pub rate: Option<u64>,
    pub key_space: u64,
    pub dedup: bool,
    pub message_groups: bool,
    /// Records acknowledged (produce, e2e) or read (consume).
    pub records: u64,
    /// Their data bytes.
    pub bytes: u64,
    /// Length of the measured phase.
    pub elapsed: Duration,
    /// CPU time (user + system) of this process during the measured phase: with `--embedded`,
    /// the server's and the bench's together. Steadier than a rate on a shared machine.
    pub cpu: Option<Duration>,
    pub failed_entries: u64,
    pub rpc_errors: u64,
    /// Acknowledged e2e records no subscriber received before the run's end.
    pub e2e_missing: u64,
    pub first_error: Option<String>,
    /// Ack latency per PutRecords; read latency per GetRecords call or subscription event.
    pub latency: LatencySummary,
    /// Put-to-receive latency per e2e record.
    pub e2e_latency: LatencySummary,
    pub fill: Option<FillReport>,
    pub rss: Option<RssReport>,
    /// What a route run's rule did.
    pub route: Option<RouteReport>,
    /// What a queue run's workers did.
    pub queue: Option<QueueReport>,
    /// What a reshard run's switches did.
    pub reshard: Option<super::reshard::ReshardReport>,
}

fn per_sec(count: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count / secs
    } else {
        0.0
    }
}

impl FillReport {
    pub fn records_per_sec(&self) -> f64 {
        per_sec(self.records as f64, self.elapsed)
    }

    pub fn mb_per_sec(&self) -> f64 {
        per_sec(self.bytes as f64 / BYTES_PER_MB, self.elapsed)
    }
}

impl BenchReport {
    pub fn records_per_sec(&self) -> f64 {
        per_sec(self.records as f64, self.elapsed)
    }

    /// CPU time per record of the measured phase, when both are known.
    pub fn cpu_per_record(&self) -> Option<Duration> {
        let cpu = self.cpu?;
        (self.records > 0).then(|| Duration::from_secs_f64(cpu.as_secs_f64() / self.records as f64))
    }

    pub fn mb_per_sec(&self) -> f64 {
        per_sec(self.bytes as f64 / BYTES_PER_MB, self.elapsed)
    }

    /// Every failure: failed entries, failed calls, e2e records never received.
    pub fn errors(&self) -> u64 {
        self.failed_entries + self.rpc_errors + self.e2e_missing
    }

    /// The one JSON object `--json` prints.
    pub fn to_json(&self) -> Json {
        let optional_str = |s: Option<&str>| s.map_or(Json::Null, Json::str);
        Json::Object(vec![
            ("workload", Json::str(self.workload)),
            ("api", Json::str(self.api)),
            ("consume_mode", optional_str(self.consume_mode)),
            ("put_api", Json::str(self.put_api)),
            (
                "in_flight",
                self.in_flight.map_or(Json::Null, |n| Json::Int(n as u64)),
            ),
            ("idle_subscribers", Json::Int(self.idle_subscribers as u64)),
            ("server", Json::str(&self.server)),
            ("fsync", optional_str(self.fsync)),
            ("stream", Json::str(&self.stream)),
            ("shards", Json::Int(u64::from(self.shards))),
            ("producers", Json::Int(self.producers as u64)),
            ("consumers", Json::Int(self.consumers as u64)),
            ("record_size", Json::Int(self.record_size as u64)),
            ("batch_size", Json::Int(self.batch_size as u64)),
            ("rate", self.rate.map_or(Json::Null, Json::Int)),
            ("key_space", Json::Int(self.key_space)),
            ("dedup", Json::Bool(self.dedup)),
            ("message_groups", Json::Bool(self.message_groups)),
            ("records", Json::Int(self.records)),
            ("bytes", Json::Int(self.bytes)),
            ("elapsed_secs", Json::Float(self.elapsed.as_secs_f64())),
            ("records_per_sec", Json::Float(self.records_per_sec())),
            ("mb_per_sec", Json::Float(self.mb_per_sec())),
            (
                "cpu_secs",
                self.cpu
                    .map_or(Json::Null, |c| Json::Float(c.as_secs_f64())),
            ),
            (
                "cpu_us_per_record",
                self.cpu_per_record()
                    .map_or(Json::Null, |c| Json::Float(c.as_secs_f64() * 1e6)),
            ),
            ("errors", Json::Int(self.errors())),
            ("failed_entries", Json::Int(self.failed_entries)),
            ("rpc_errors", Json::Int(self.rpc_errors)),
            ("e2e_missing", Json::Int(self.e2e_missing)),
            ("first_error", optional_str(self.first_error.as_deref())),
            ("latency_ms", latency_json(&self.latency)),
            ("e2e_latency_ms", latency_json(&self.e2e_latency)),
            (
                "fill",
                self.fill.map_or(Json::Null, |f| {
                    Json::Object(vec![
                        ("records", Json::Int(f.records)),
                        ("records_per_sec", Json::Float(f.records_per_sec())),
                        ("mb_per_sec", Json::Float(f.mb_per_sec())),
                    ])
                }),
            ),
            (
                "rss_mb",
                self.rss.map_or(Json::Null, |r| {
                    Json::Object(vec![
                        ("before", Json::Float(r.before_bytes as f64 / BYTES_PER_MB)),
                        ("after", Json::Float(r.after_bytes as f64 / BYTES_PER_MB)),
                        ("peak", Json::Float(r.peak_bytes as f64 / BYTES_PER_MB)),
                    ])
                }),
            ),
            (
                "queue",
                self.queue.as_ref().map_or(Json::Null, QueueReport::to_json),
            ),
            (
                "route",
                self.route.as_ref().map_or(Json::Null, RouteReport::to_json),
            ),
            (
                "reshard",
                self.reshard
                    .as_ref()
                    .map_or(Json::Null, super::reshard::ReshardReport::to_json),
            ),
        ])
    }

    /// The summary table printed at the end of a run.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; the results of `writeln!` are ignored for that reason.
        let mut setup = format!("{} workload", self.workload);
        if let Some(mode) = self.consume_mode {
            let _ = write!(setup, " ({mode})");
        }
        let _ = write!(
            setup,
            " over {} on {}",
            match self.api {
                "kinesis" => "the Kinesis API (JSON, HTTP/1.1)",
                "grpc" => "gRPC",
                other => other,
            },
            self.server
        );
        if let Some(fsync) = self.fsync {
            let _ = write!(setup, " (fsync {fsync})");
        }
        let _ = writeln!(out, "{setup}");
        let _ = writeln!(
            out,
            "  stream {} · {} shards · {} producers · {} consumers · {} B records · batches of {} · {}{}{}{}",
            self.stream,
            self.shards,
            self.producers,
            self.consumers,
            self.record_size,
            self.batch_size,
            match self.in_flight {
                Some(n) => format!("{} puts, {n} in flight", self.put_api),
                None => format!("{} puts", self.put_api),
            },
            self.rate
                .map(|r| format!(" · open loop at {} records/s", group_digits(r)))
                .unwrap_or_default(),
            if self.dedup { " · dedup ids" } else { "" },
            if self.message_groups {
                " · message groups"
            } else {
                ""
            },
        );
        if self.idle_subscribers > 0 {
            let _ = writeln!(
                out,
                "  {} idle subscriptions held open during the run",
                self.idle_subscribers
            );
        }
        let _ = writeln!(out);
        if let Some(fill) = &self.fill {
            let _ = writeln!(
                out,
                "  {:<18}{} records stored first ({} records/s, {:.1} MB/s)",
                "fill",
                group_digits(fill.records),
                group_digits(fill.records_per_sec().round() as u64),
                fill.mb_per_sec(),
            );
        }
        let _ = writeln!(
            out,
            "  {:<18}{} in {:.2} s",
            "records",
            group_digits(self.records),
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "  {:<18}{} records/s · {:.1} MB/s",
            "throughput",
            group_digits(self.records_per_sec().round() as u64),
            self.mb_per_sec()
        );
        if let (Some(cpu), Some(per_record)) = (self.cpu, self.cpu_per_record()) {
            let _ = writeln!(
                out,
                "  {:<18}{:.2} s of this process ({:.2} µs per record)",
                "cpu",
                cpu.as_secs_f64(),
                per_record.as_secs_f64() * 1e6
            );
        }
        let _ = writeln!(
            out,
            "  {:<18}{} (failed entries {}, failed calls {}, e2e records never received {})",
            "errors",
            group_digits(self.errors()),
            self.failed_entries,
            self.rpc_errors,
            self.e2e_missing
        );
        if let Some(first) = &self.first_error {
            let _ = writeln!(out, "  {:<18}{first}", "first error");
        }
        if let Some(rss) = &self.rss {
            let _ = writeln!(
                out,
                "  {:<18}{:.1} MB before · {:.1} MB after · {:.1} MB peak (server and bench)",
                "rss",
                rss.before_bytes as f64 / BYTES_PER_MB,
                rss.after_bytes as f64 / BYTES_PER_MB,
                rss.peak_bytes as f64 / BYTES_PER_MB,
            );
        }
        if let Some(route) = &self.route {
            let _ = writeln!(out);
            route.write_table(&self.stream, &mut out);
        }
        if let Some(queue) = &self.queue {
            let _ = writeln!(out);
            queue.write_table(&mut out);
        }
        if let Some(reshard) = &self.reshard {
            let _ = writeln!(out);
            reshard.write_table(&mut out);
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  {:<26}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        let label = match (self.workload, self.consume_mode) {
            ("consume", Some("subscribe")) => "wait per event",
            ("consume", _) => "per GetRecords call",
            ("queue", _) => "receive → delete per msg",
            _ => "ack per PutRecords",
        };
        let _ = writeln!(out, "{}", latency_row(label, &self.latency));
        if let Some(queue) = &self.queue {
            let _ = writeln!(
                out,
                "{}",
                latency_row("per ReceiveMessages call", &queue.receive_latency)
            );
            let _ = writeln!(
                out,
                "{}",
                latency_row("per DeleteMessages call", &queue.delete_latency)
            );
        }
        if self.workload == "e2e" {
            let _ = writeln!(
                out,
                "{}",
                latency_row("put → receive per record", &self.e2e_latency)
            );
        }
        out
    }
}

fn latency_row(label: &str, s: &LatencySummary) -> String {
    format!(
        "  {:<26}{:>10}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}",
        label,
        s.count,
        millis(s.p50),
        millis(s.p90),
        millis(s.p99),
        millis(s.p999),
        millis(s.max)
    )
}

pub(super) fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `latency_ms`/`e2e_latency_ms`: percentiles in milliseconds, with the sample count.
pub fn latency_json(s: &LatencySummary) -> Json {
    Json::Object(vec![
        ("count", Json::Int(s.count)),
        ("p50", Json::Float(millis(s.p50))),
        ("p90", Json::Float(millis(s.p90))),
        ("p99", Json::Float(millis(s.p99))),
        ("p999", Json::Float(millis(s.p999))),
        ("max", Json::Float(millis(s.max))),
    ])
}

/// `1234567` → `1,234,567`.
pub fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The little JSON the report needs; `Display` writes it compactly.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(u64),
    /// Written with three decimals; a non-finite value is written as `null`.
    Float(f64),
    Str(String),
    /// Keys in the order given.
    Object(Vec<(&'static str, Json)>),
    Array(Vec<Json>),
}

impl Json {
    pub fn str(s: &str) -> Json {
        Json::Str(s.to_owned())
    }
}

fn write_json_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if u32::from(c) < 0x20 => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Int(n) => write!(f, "{n}"),
            Json::Float(x) if x.is_finite() => write!(f, "{x:.3}"),
            Json::Float(_) => f.write_str("null"),
            Json::Str(s) => write_json_string(f, s),
            Json::Object(fields) => {
                f.write_char('{')?;
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write_json_string(f, key)?;
                    write!(f, ":{value}")?;
                }
                f.write_char('}')
            }
            Json::Array(items) => {
                f.write_char('[')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_char(']')
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> LatencySummary {
        LatencySummary {
            count: 7,
            p50: Duration::from_micros(1_500),
            p90: Duration::from_micros(2_000),
            p99: Duration::from_micros(4_250),
            p999: Duration::from_millis(10),
            max: Duration::from_millis(12),
        }
    }

    fn report() -> BenchReport {
        BenchReport {
            workload: "produce",
            api: "grpc",
            consume_mode: None,
            put_api: "stream",
            in_flight: Some(4),
            idle_subscribers: 0,
            server: "embedded".into(),
            fsync: Some("always"),
            stream: "bench".into(),
            shards: 4,
            producers: 2,
            consumers: 1,
            record_size: 1024,
            batch_size: 500,
            rate: None,
            key_space: 1024,
            dedup: false,
            message_groups: false,
            records: 1_000_000,
            bytes: 1_024_000_000,
            elapsed: Duration::from_secs(2),
            cpu: Some(Duration::from_millis(2500)),
            failed_entries: 2,
            rpc_errors: 1,
            e2e_missing: 0,
            first_error: Some("InternalFailure: \"disk\"".into()),
            latency: summary(),
            e2e_latency: LatencySummary::default(),
            fill: None,
            rss: None,
            route: None,
            queue: None,
            reshard: None,
        }
    }

    fn sample(at_ms: u64, routed: u64, lag_records: u64) -> RouteSample {
        RouteSample {
            at: Duration::from_millis(at_ms),
            routed,
            lag_records,
            behind: Duration::from_millis(lag_records / 100),
        }
    }

    fn route() -> RouteReport {
        RouteReport {
            rule: "bench-bench".into(),
            target: "bench-routed".into(),
            filter: Some((r#"{"kind":["order"]}"#.into(), "attributes")),
            attributes: true,
            expected: 750_000,
            routed: 750_000,
            routed_producing: 600_000,
            producing: Duration::from_secs(2),
            drain: Duration::from_millis(500),
            drained: true,
            max_lag_records: 180_000,
            max_behind: Duration::from_millis(1_250),
            rule_error: None,
            // Every 200 ms: 300,000 routed a second, lag growing while producing.
            timeline: (1..=12)
                .map(|i| sample(i * 200, (i * 60_000).min(750_000), (12 - i) * 10_000))
                .collect(),
        }
    }

    #[test]
    fn latency_json_holds_every_percentile_in_milliseconds() {
        assert_eq!(
            latency_json(&summary()).to_string(),
            r#"{"count":7,"p50":1.500,"p90":2.000,"p99":4.250,"p999":10.000,"max":12.000}"#
        );
    }

    #[test]
    fn report_json_carries_the_rates_errors_and_both_latencies() {
        let json = report().to_json().to_string();
        for expected in [
            r#""workload":"produce","api":"grpc","#,
            r#""records":1000000,"#,
            r#""records_per_sec":500000.000,"#,
            r#""mb_per_sec":512.000,"#,
            r#""errors":3,"#,
            r#""latency_ms":{"count":7,"p50":1.500,"#,
            r#""e2e_latency_ms":{"count":0,"p50":0.000,"p90":0.000,"p99":0.000,"p999":0.000,"max":0.000}"#,
            r#""first_error":"InternalFailure: \"disk\"""#,
            r#""fill":null"#,
            r#""rate":null"#,
        ] {
            assert!(json.contains(expected), "{expected} not in {json}");
        }
        assert!(json.starts_with('{') && json.ends_with('}'));
    }

    #[test]
    fn a_report_without_a_rule_has_a_null_route() {
        let json = report().to_json().to_string();
        assert!(json.ends_with(r#","route":null,"reshard":null}"#), "{json}");
    }

    #[test]
    fn the_route_section_carries_counts_rates_lag_and_the_timeline() {
        let r = BenchReport {
            workload: "route",
            route: Some(route()),
            ..report()
        };
        let json = r.to_json().to_string();
        for expected in [
            r#""route":{"rule":"bench-bench","target":"bench-routed","#,
            r#""filter":{"pattern":"{\"kind\":[\"order\"]}","scope":"attributes"}"#,
            r#""expected_records":750000,"routed_records":750000,"#,
            r#""routed_records_producing":600000,"count_ok":true,"drained":true,"#,
            // 750,000 in 2.5 s; 600,000 in 2 s.
            r#""routed_per_sec":300000.000,"routed_per_sec_producing":300000.000,"#,
            r#""max_lag_records":180000,"max_millis_behind_latest":1250.000,"#,
            r#""drain_secs":0.500,"rule_error":null,"#,
            r#""timeline":[{"secs":1.000,"routed":300000,"lag_records":70000,"millis_behind_latest":700.000},"#,
            r#"{"secs":2.400,"routed":720000,"lag_records":0,"millis_behind_latest":0.000}]},"#,
        ] {
            assert!(json.contains(expected), "{expected} not in {json}");
        }
    }

    #[test]
    fn the_table_shows_what_the_rule_routed_and_how_far_behind_it_was() {
        let r = BenchReport {
            workload: "route",
            route: Some(route()),
            ..report()
        };
        let table = r.to_table();
        for expected in [
            r#"filter {"kind":["order"]} on the attributes · 3 of 4 records kind=order"#,
            "750,000 of 750,000 expected (count right)",
            "300,000 records/s over 2.50 s (producing and drain) · 300,000 records/s while producing",
            "max 180,000 records · max 1250 ms behind latest",
            "0.50 s after the producers stopped",
            "routed/s",
        ] {
            assert!(table.contains(expected), "{expected} not in {table}");
        }
    }

    #[test]
    fn a_rule_that_did_not_catch_up_has_no_verdict_on_its_count() {
        let route = RouteReport {
            routed: 700_000,
            drained: false,
            drain: Duration::from_secs(60),
            ..route()
        };
        assert!(!route.count_ok());
        let r = BenchReport {
            route: Some(route),
            ..report()
        };
        let table = r.to_table();
        assert!(
            table
                .contains("700,000 of 750,000 expected (count unknown: the rule did not catch up)"),
            "{table}"
        );
        assert!(table.contains("gave up after 60 s"), "{table}");
        assert!(r
            .to_json()
            .to_string()
            .contains(r#""count_ok":false,"drained":false"#));
    }

    #[test]
    fn a_caught_up_rule_with_another_count_is_wrong() {
        let route = RouteReport {
            routed: 750_001,
            ..route()
        };
        assert!(!route.count_ok());
        let table = BenchReport {
            route: Some(route),
            ..report()
        }
        .to_table();
        assert!(table.contains("(count WRONG)"), "{table}");
    }

    #[test]
    fn the_timeline_is_thinned_to_steps_of_at_least_a_second_and_keeps_the_last_sample() {
        let route = route();
        let points: Vec<u64> = route
            .timeline_points(100)
            .iter()
            .map(|p| p.at.as_millis() as u64)
            .collect();
        assert_eq!(points, [1_000, 2_000, 2_400]);
        // 10 minutes of samples every 200 ms, at most 11 points: about a minute apart.
        let long = RouteReport {
            timeline: (1..=3_000).map(|i| sample(i * 200, i, 0)).collect(),
            ..route
        };
        let points = long.timeline_points(11);
        assert!(points.len() <= 11, "{points:?}");
        assert_eq!(points[0].at, Duration::from_secs(60));
        assert_eq!(points.last().map(|p| p.at), Some(Duration::from_secs(600)));
        assert!(RouteReport {
            timeline: Vec::new(),
            ..long
        }
        .timeline_points(10)
        .is_empty());
    }

    #[test]
    fn arrays_are_written_compactly() {
        let json = Json::Array(vec![Json::Int(1), Json::Null, Json::Array(Vec::new())]);
        assert_eq!(json.to_string(), "[1,null,[]]");
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(
            Json::str("a\"b\\c\nd\u{1}").to_string(),
            r#""a\"b\\c\nd\u0001""#
        );
    }

    #[test]
    fn non_finite_floats_become_null() {
        assert_eq!(Json::Float(f64::NAN).to_string(), "null");
        assert_eq!(Json::Float(f64::INFINITY).to_string(), "null");
    }

    #[test]
    fn a_zero_length_run_has_zero_rates_not_infinite_ones() {
        let r = BenchReport {
            elapsed: Duration::ZERO,
            ..report()
        };
        assert_eq!(r.records_per_sec(), 0.0);
        assert_eq!(r.mb_per_sec(), 0.0);
    }

    #[test]
    fn digits_are_grouped_by_thousands() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(1_234_567), "1,234,567");
    }

    #[test]
    fn the_table_shows_throughput_errors_and_percentiles() {
        let table = report().to_table();
        assert!(table.contains("500,000 records/s · 512.0 MB/s"), "{table}");
        assert!(
            table.contains("2.50 s of this process (2.50 µs per record)"),
            "{table}"
        );
        assert!(
            table.contains("failed entries 2, failed calls 1"),
            "{table}"
        );
        assert!(table.contains("ack per PutRecords"), "{table}");
        assert!(
            table.starts_with("produce workload over gRPC on embedded (fsync always)"),
            "{table}"
        );
        assert!(table.contains("4.250"), "{table}");
        assert!(!table.contains("put → receive"), "{table}");
    }
}
