//! The queue workload: a queue group of the run's own is created at LATEST, the stream is
//! filled with `--records` records cycling through `--queue-groups` message groups, then
//! `--consumers` workers, each on its own connection, receive and delete until every stored
//! record was deleted once (or `--duration` ends).
//!
//! ```text
//!  CreateGroup bench-queue-<run> (fifo | standard, LATEST)
//!  fill: N records, message group id = partition key = g0, g1, … g(G-1), g0, …
//!  C workers:  ReceiveMessages (≤ --queue-batch, wait 100 ms) ──answer at t0──┐
//!              DeleteMessages (every handle received) ◀────────────────────────┘
//!              ──answer at t1──▶ t1 - t0 for each message deleted
//!  until N deleted ──▶ DeleteGroup
//! ```
//!
//! The group starts at LATEST before the fill, so that it holds exactly the records this run
//! stored even on a stream that already had some. A run's `records` are the messages deleted,
//! its latency is receive-to-delete per message, and its CPU time covers the receives and
//! deletes (with `--embedded`, the server's work for them too), not the fill.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::args::{QueueSettings, QueueType};
use super::consume::{within_timeout, MAX_CONSECUTIVE_ERRORS};
use super::report::{group_digits, latency_json, Json};
use super::stats::{LatencyRecorder, LatencySummary, Meter};
use super::BenchError;
use shardlog::client::Client;
use shardlog::proto::v1::{CreateGroupRequest, GroupType, QueueStartPosition};

/// How long a receive waits for a message when none is ready.
pub const RECEIVE_WAIT: Duration = Duration::from_millis(100);

/// A queue run's group, created and not yet deleted.
#[derive(Debug)]
pub struct QueueGroup {
    stream: Arc<str>,
    name: Arc<str>,
    kind: QueueType,
}

impl QueueGroup {
    /// Creates the group `name` on `stream`, starting after the stream's newest record, with
    /// the server's default visibility timeout.
    pub async fn create(
        client: &Client,
        stream: &str,
        name: &str,
        kind: QueueType,
    ) -> Result<QueueGroup, BenchError> {
        let r#type = match kind {
            QueueType::Fifo => GroupType::QueueFifo,
            QueueType::Standard => GroupType::QueueStandard,
        };
        client
            .create_group(CreateGroupRequest {
                stream_name: stream.to_owned(),
                group_name: name.to_owned(),
                r#type: r#type as i32,
                start_position: QueueStartPosition::Latest as i32,
                ..CreateGroupRequest::default()
            })
            .await
            .map_err(|source| BenchError::Client {
                step: "creating the queue group",
                source,
            })?;
        Ok(QueueGroup {
            stream: Arc::from(stream),
            name: Arc::from(name),
            kind,
        })
    }

    /// Deletes the group; a group left behind is harmless but untidy, so failing only warns.
    pub async fn delete(self, client: &Client) {
        if let Err(error) = client.delete_group(&self.stream, &self.name).await {
            tracing::warn!(%error, group = %self.name, "cannot delete the bench's queue group");
        }
    }
}

/// What the workers counted beyond the meter's records (messages deleted), bytes and
/// receive-to-delete latency.
#[derive(Debug, Default)]
struct Tally {
    received: AtomicU64,
    redelivered: AtomicU64,
    deleted: AtomicU64,
    delete_failures: AtomicU64,
    receive_calls: AtomicU64,
    empty_receives: AtomicU64,
    delete_calls: AtomicU64,
    /// When the delete that reached the target answered.
    reached: Mutex<Option<Instant>>,
    receive_latency: Mutex<LatencyRecorder>,
    delete_latency: Mutex<LatencyRecorder>,
}

// A panic in another worker while it held one of these locks leaves a whole histogram or
// instant behind, so a poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One queue run, shared by its workers.
#[derive(Debug)]
struct QueueRun {
    stream: Arc<str>,
    group: Arc<str>,
    batch: u32,
    /// Messages to delete: the records the fill stored.
    target: u64,
    /// No receive starts at or after this instant.
    deadline: Instant,
    meter: Arc<Meter>,
    tally: Tally,
}

impl QueueRun {
    fn done(&self) -> bool {
        self.tally.deleted.load(Ordering::Relaxed) >= self.target
    }

    /// Counts `n` messages deleted at `at`; notes `at` when they reach the target.
    fn add_deleted(&self, n: u64, at: Instant) {
        let before = self.tally.deleted.fetch_add(n, Ordering::Relaxed);
        if before < self.target && before + n >= self.target {
            *lock(&self.tally.reached) = Some(at);
        }
    }
}

/// Runs one worker per client until `target` messages are deleted or `deadline` passes;
/// returns how long that took and what the workers counted.
pub async fn run(
    clients: Vec<Client>,
    group: &QueueGroup,
    settings: QueueSettings,
    target: u64,
    deadline: Instant,
    meter: &Arc<Meter>,
) -> (Duration, QueueReport) {
    let start = Instant::now();
    let run = Arc::new(QueueRun {
        stream: Arc::clone(&group.stream),
        group: Arc::clone(&group.name),
        batch: settings.batch,
        target,
        deadline,
        meter: Arc::clone(meter),
        tally: Tally::default(),
    });
    let mut workers = JoinSet::new();
    for client in clients {
        workers.spawn(work(Arc::clone(&run), client));
    }
    while let Some(joined) = workers.join_next().await {
        if let Err(error) = joined {
            meter.add_rpc_error(|| format!("a queue worker failed: {error}"));
        }
    }
    // Workers waiting on an empty queue answer up to a receive wait after the last delete:
    // a run that reached its target ends at that delete.
    let end = lock(&run.tally.reached).unwrap_or_else(Instant::now);
    let tally = &run.tally;
    let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let report = QueueReport {
        group: group.name.to_string(),
        kind: group.kind.name(),
        message_groups: settings.groups,
        batch: settings.batch,
        target,
        received: count(&tally.received),
        redelivered: count(&tally.redelivered),
        deleted: count(&tally.deleted),
        delete_failures: count(&tally.delete_failures),
        receive_calls: count(&tally.receive_calls),
        empty_receives: count(&tally.empty_receives),
        delete_calls: count(&tally.delete_calls),
        receive_latency: lock(&tally.receive_latency).summary(),
        delete_latency: lock(&tally.delete_latency).summary(),
    };
    (end.saturating_duration_since(start), report)
}

/// One worker: receive, delete every handle received in one call, repeat. Messages whose
/// delete failed come back after the visibility timeout and are received again.
async fn work(run: Arc<QueueRun>, client: Client) {
    let (meter, tally) = (&run.meter, &run.tally);
    let mut failures = 0;
    while !run.done() && Instant::now() < run.deadline && failures < MAX_CONSECUTIVE_ERRORS {
        let asked = Instant::now();
        let receive =
            client.receive_messages(&run.stream, &run.group, run.batch, None, RECEIVE_WAIT);
        let Some(messages) = within_timeout(meter, "ReceiveMessages", receive).await else {
            failures += 1;
            continue;
        };
        let received_at = Instant::now();
        tally.receive_calls.fetch_add(1, Ordering::Relaxed);
        lock(&tally.receive_latency).record(received_at - asked);
        if messages.is_empty() {
            tally.empty_receives.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let received = messages.len() as u64;
        tally.received.fetch_add(received, Ordering::Relaxed);
        let again = messages.iter().filter(|m| m.receive_count > 1).count() as u64;
        tally.redelivered.fetch_add(again, Ordering::Relaxed);
        let mut sizes = Vec::with_capacity(messages.len());
        let mut handles = Vec::with_capacity(messages.len());
        for message in messages {
            sizes.push(message.record.map_or(0, |r| r.data.len() as u64));
            handles.push(message.receipt_handle);
        }
        let delete = client.delete_messages(&run.stream, &run.group, handles);
        let Some(results) = within_timeout(meter, "DeleteMessages", delete).await else {
            failures += 1;
            continue;
        };
        failures = 0;
        let deleted_at = Instant::now();
        tally.delete_calls.fetch_add(1, Ordering::Relaxed);
        lock(&tally.delete_latency).record(deleted_at - received_at);
        let (mut ok, mut bytes, mut first) = (0u64, 0u64, None);
        for (result, size) in results.iter().zip(&sizes) {
            if result.error_code.is_empty() {
                ok += 1;
                bytes += size;
            } else if first.is_none() {
                first = Some(format!("{}: {}", result.error_code, result.error_message));
            }
        }
        // A result missing for a handle counts as a failed delete.
        let failed = received - ok;
        tally.delete_failures.fetch_add(failed, Ordering::Relaxed);
        meter.add_failed_entries(failed, || {
            first.unwrap_or_else(|| {
                format!(
                    "DeleteMessages answered {} results for {received} handles",
                    results.len()
                )
            })
        });
        meter.add_records(ok, bytes);
        meter.record_latency_n(deleted_at - received_at, ok);
        run.add_deleted(ok, deleted_at);
    }
}

/// What a queue run's workers did.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueReport {
    pub group: String,
    /// `fifo` or `standard`.
    pub kind: &'static str,
    /// Message groups the records cycled through.
    pub message_groups: u64,
    /// Most messages per receive.
    pub batch: u32,
    /// Messages to delete: the records stored for the run.
    pub target: u64,
    /// Messages received, those received again included.
    pub received: u64,
    /// Messages received more than once (a delete failed or came too late).
    pub redelivered: u64,
    /// Messages deleted.
    pub deleted: u64,
    /// Receipt handles a delete refused or did not answer for.
    pub delete_failures: u64,
    pub receive_calls: u64,
    /// Receives that waited [`RECEIVE_WAIT`] and got nothing.
    pub empty_receives: u64,
    pub delete_calls: u64,
    /// Per ReceiveMessages call, empty ones included.
    pub receive_latency: LatencySummary,
    /// Per DeleteMessages call.
    pub delete_latency: LatencySummary,
}

impl QueueReport {
    /// Every stored message was deleted.
    pub fn drained(&self) -> bool {
        self.deleted >= self.target
    }

    /// The `queue` object of the JSON report.
    pub fn to_json(&self) -> Json {
        Json::Object(vec![
            ("group", Json::str(&self.group)),
            ("type", Json::str(self.kind)),
            ("message_groups", Json::Int(self.message_groups)),
            ("max_messages", Json::Int(u64::from(self.batch))),
            ("target", Json::Int(self.target)),
            ("received", Json::Int(self.received)),
            ("redelivered", Json::Int(self.redelivered)),
            ("deleted", Json::Int(self.deleted)),
            ("delete_failures", Json::Int(self.delete_failures)),
            ("drained", Json::Bool(self.drained())),
            ("receive_calls", Json::Int(self.receive_calls)),
            ("empty_receives", Json::Int(self.empty_receives)),
            ("delete_calls", Json::Int(self.delete_calls)),
            ("receive_call_ms", latency_json(&self.receive_latency)),
            ("delete_call_ms", latency_json(&self.delete_latency)),
        ])
    }

    /// The queue lines of the summary table.
    pub fn write_table(&self, out: &mut String) {
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "  {:<18}{} group {} · {} message groups · up to {} messages per receive",
            "queue",
            self.kind,
            self.group,
            group_digits(self.message_groups),
            self.batch,
        );
        let _ = writeln!(
            out,
            "  {:<18}{} of {} deleted{} · {} received ({} more than once) · {} deletes refused",
            "messages",
            group_digits(self.deleted),
            group_digits(self.target),
            if self.drained() {
                ""
            } else {
                " (stopped before the end)"
            },
            group_digits(self.received),
            group_digits(self.redelivered),
            group_digits(self.delete_failures),
        );
        let _ = writeln!(
            out,
            "  {:<18}{} ReceiveMessages ({} empty) · {} DeleteMessages",
            "calls",
            group_digits(self.receive_calls),
            group_digits(self.empty_receives),
            group_digits(self.delete_calls),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> QueueReport {
        QueueReport {
            group: "bench-queue-1".into(),
            kind: "fifo",
            message_groups: 1_000,
            batch: 500,
            target: 2_000,
            received: 2_010,
            redelivered: 10,
            deleted: 2_000,
            delete_failures: 10,
            receive_calls: 6,
            empty_receives: 1,
            delete_calls: 5,
            receive_latency: LatencySummary::default(),
            delete_latency: LatencySummary::default(),
        }
    }

    #[test]
    fn the_queue_json_carries_the_counts_and_both_call_latencies() {
        let json = report().to_json().to_string();
        for expected in [
            r#""group":"bench-queue-1","type":"fifo","message_groups":1000,"max_messages":500,"#,
            r#""target":2000,"received":2010,"redelivered":10,"deleted":2000,"#,
            r#""delete_failures":10,"drained":true,"#,
            r#""receive_calls":6,"empty_receives":1,"delete_calls":5,"#,
            r#""receive_call_ms":{"count":0,"#,
            r#""delete_call_ms":{"count":0,"#,
        ] {
            assert!(json.contains(expected), "{expected} not in {json}");
        }
    }

    #[test]
    fn the_table_says_whether_every_message_was_deleted() {
        let mut table = String::new();
        report().write_table(&mut table);
        assert!(
            table.contains("2,000 of 2,000 deleted · 2,010 received"),
            "{table}"
        );
        assert!(
            table.contains("6 ReceiveMessages (1 empty) · 5 DeleteMessages"),
            "{table}"
        );
        let short = QueueReport {
            deleted: 1_500,
            ..report()
        };
        assert!(!short.drained());
        let mut table = String::new();
        short.write_table(&mut table);
        assert!(
            table.contains("1,500 of 2,000 deleted (stopped before the end)"),
            "{table}"
        );
    }
}
