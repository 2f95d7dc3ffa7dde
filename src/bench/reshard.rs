//! The reshard workload: producers run exactly as in a produce run while the stream is scaled
//! (UpdateShardCount) through the plan's steps — doubling from `--shards` to `--reshard-to`,
//! then halving back — one switch every `duration / (steps + 1)`. A probe producer puts one
//! small record at a time, back to back, so that every switch is overlapped by probe puts:
//! the longest probe put that overlapped a switch is that switch's put stall.
//!
//! ```text
//!  producers ──PutRecords──▶ stream ◀── UpdateShardCount 4→8→…→64→…→4 (evenly spaced)
//!  probe ──PutRecord, back to back──▶ (start, latency) per put
//!  meter's acked count at the first switch's start and the last one's end
//!      ──▶ records/s before, during, after
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::produce::{self, ProducePhase};
use super::report::{group_digits, millis, Json};
use super::stats::Meter;
use super::DEFAULT_RPC_TIMEOUT;
use shardlog::client::Client;

/// Data of the probe's records: small, so its puts time the switch, not the copy.
const PROBE_DATA: &[u8] = b"reshard-probe";

/// One switch of a reshard run.
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchReport {
    /// Open shards before and after.
    pub from: u32,
    pub to: u32,
    /// When the UpdateShardCount call started, from the producers' start.
    pub at: Duration,
    /// How long the call took.
    pub took: Duration,
    /// The longest probe put that overlapped the call.
    pub longest_put: Duration,
    /// The call's error, if it failed.
    pub error: Option<String>,
}

/// What a reshard run measured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReshardReport {
    pub switches: Vec<SwitchReport>,
    /// Acknowledged records per second before the first switch, from its start to the last
    /// one's end, and after it.
    pub before_per_sec: f64,
    pub during_per_sec: f64,
    pub after_per_sec: f64,
    /// The longest probe put of the whole run, and the probe's puts.
    pub longest_probe_put: Duration,
    pub probe_puts: u64,
}

fn per_sec(records: u64, span: Duration) -> f64 {
    records as f64 / span.as_secs_f64().max(f64::EPSILON)
}

impl ReshardReport {
    pub fn to_json(&self) -> Json {
        let switches = self
            .switches
            .iter()
            .map(|s| {
                Json::Object(vec![
                    ("from", Json::Int(u64::from(s.from))),
                    ("to", Json::Int(u64::from(s.to))),
                    ("at_secs", Json::Float(s.at.as_secs_f64())),
                    ("switch_ms", Json::Float(millis(s.took))),
                    ("longest_put_ms", Json::Float(millis(s.longest_put))),
                    ("error", s.error.as_deref().map_or(Json::Null, Json::str)),
                ])
            })
            .collect();
        Json::Object(vec![
            ("switches", Json::Array(switches)),
            ("records_per_sec_before", Json::Float(self.before_per_sec)),
            ("records_per_sec_during", Json::Float(self.during_per_sec)),
            ("records_per_sec_after", Json::Float(self.after_per_sec)),
            (
                "longest_probe_put_ms",
                Json::Float(millis(self.longest_probe_put)),
            ),
            ("probe_puts", Json::Int(self.probe_puts)),
        ])
    }

    /// The reshard lines of the summary table.
    pub fn write_table(&self, out: &mut String) {
        use std::fmt::Write;
        for s in &self.switches {
            let outcome = match &s.error {
                Some(e) => format!("FAILED: {e}"),
                None => format!(
                    "switch {:>8.1} ms · longest put {:>8.1} ms",
                    millis(s.took),
                    millis(s.longest_put)
                ),
            };
            let _ = writeln!(
                out,
                "  {:<18}{:>4} → {:<4} at {:>6.2} s  {outcome}",
                "reshard",
                s.from,
                s.to,
                s.at.as_secs_f64()
            );
        }
        let _ = writeln!(
            out,
            "  {:<18}before {} · during {} · after {} records/s",
            "throughput",
            group_digits(self.before_per_sec.round() as u64),
            group_digits(self.during_per_sec.round() as u64),
            group_digits(self.after_per_sec.round() as u64),
        );
        let _ = writeln!(
            out,
            "  {:<18}{} probe puts, the longest {:.1} ms",
            "probe",
            group_digits(self.probe_puts),
            millis(self.longest_probe_put)
        );
    }
}

/// Runs the producers of `phase` while `admin` scales `stream` through `steps` (open shard
/// counts after each switch, starting from `from`), with `probe` putting one record at a time.
pub async fn run(
    admin: &Client,
    probe: Client,
    stream: &str,
    from: u32,
    steps: &[u32],
    phase: Arc<ProducePhase>,
    clients: Vec<Client>,
) -> (Duration, ReshardReport) {
    let start = phase.start;
    let deadline = phase.deadline;
    let meter: Arc<Meter> = Arc::clone(&phase.meter);
    let producers = tokio::spawn(produce::run_producers(Arc::clone(&phase), clients));
    let probes: Arc<Mutex<Vec<(Duration, Duration)>>> = Arc::default();
    let probe_task = tokio::spawn({
        let probes = Arc::clone(&probes);
        let stream = stream.to_owned();
        async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let begun = Instant::now();
                let key = format!("probe-{n}");
                let put = tokio::time::timeout(
                    DEFAULT_RPC_TIMEOUT,
                    probe.put_record(&stream, &key, PROBE_DATA),
                )
                .await;
                if matches!(put, Ok(Ok(_))) {
                    let at = begun.duration_since(start);
                    probes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((at, begun.elapsed()));
                }
                n += 1;
            }
        }
    });
    let gap = deadline.duration_since(start) / (steps.len() as u32 + 1);
    let mut switches = Vec::new();
    let mut open = from;
    let mut acked_before = 0;
    for (i, &to) in steps.iter().enumerate() {
        tokio::time::sleep_until((start + gap * (i as u32 + 1)).into()).await;
        if i == 0 {
            acked_before = meter.counts().records;
        }
        let begun = Instant::now();
        let call =
            tokio::time::timeout(DEFAULT_RPC_TIMEOUT, admin.update_shard_count(stream, to)).await;
        let took = begun.elapsed();
        let error = match call {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_elapsed) => Some(format!("no answer within {DEFAULT_RPC_TIMEOUT:?}")),
        };
        if let Some(e) = &error {
            meter.add_rpc_error(|| format!("UpdateShardCount {open} → {to}: {e}"));
        }
        switches.push(SwitchReport {
            from: open,
            to,
            at: begun.duration_since(start),
            took,
            longest_put: Duration::ZERO,
            error,
        });
        open = to;
    }
    let last_end = switches.last().map_or(Duration::ZERO, |s| s.at + s.took);
    let acked_at_last_end = meter.counts().records;
    let elapsed = producers.await.unwrap_or_default();
    let _ = probe_task.await;
    let acked = meter.counts().records;
    let probes = std::mem::take(&mut *probes.lock().unwrap_or_else(|p| p.into_inner()));
    for s in &mut switches {
        let (a, b) = (s.at, s.at + s.took);
        s.longest_put = probes
            .iter()
            .filter(|&&(at, latency)| at < b && at + latency > a)
            .map(|&(_, latency)| latency)
            .max()
            .unwrap_or_default();
    }
    let first_at = switches.first().map_or(Duration::ZERO, |s| s.at);
    let report = ReshardReport {
        before_per_sec: per_sec(acked_before, first_at),
        during_per_sec: per_sec(
            acked_at_last_end.saturating_sub(acked_before),
            last_end.saturating_sub(first_at),
        ),
        after_per_sec: per_sec(
            acked.saturating_sub(acked_at_last_end),
            elapsed.saturating_sub(last_end),
        ),
        longest_probe_put: probes.iter().map(|&(_, l)| l).max().unwrap_or_default(),
        probe_puts: probes.len() as u64,
        switches,
    };
    (elapsed, report)
}
