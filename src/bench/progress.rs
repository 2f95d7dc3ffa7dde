//! The live progress line: once a second on standard error, the last second's records/s, MB/s
//! and p99 latency of a running phase, and the process's resident memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::report::{group_digits, BYTES_PER_MB};
use super::stats::{Counts, LatencySummary, Meter};

/// How often the line is printed.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Prints progress until dropped.
#[derive(Debug)]
pub struct Progress(JoinHandle<()>);

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Progress {
    /// Starts printing the progress of the phase `label`, which began at `start`.
    pub fn start(label: &'static str, meter: Arc<Meter>, start: Instant) -> Progress {
        Progress(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(PROGRESS_INTERVAL);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticks.tick().await; // The first tick is immediate.
            let mut before = meter.counts();
            let mut then = Instant::now();
            loop {
                ticks.tick().await;
                let now = Instant::now();
                let counts = meter.counts();
                let (latency, e2e) = meter.take_intervals();
                let mut text = line(
                    label,
                    now - start,
                    now - then,
                    &before,
                    &counts,
                    &latency,
                    &e2e,
                );
                // The whole process's resident memory: with --embedded, the server's too, so
                // the lines show whether it stays flat over a long run.
                if let Some((rss, _peak)) = super::embedded::process_rss() {
                    text.push_str(&format!("   rss {:.0} MB", rss as f64 / BYTES_PER_MB));
                }
                eprintln!("{text}");
                before = counts;
                then = now;
            }
        }))
    }
}

/// One progress line: `label elapsed  N rec/s  M MB/s  p99 X ms  [e2e p99 Y ms]  errors E`.
pub fn line(
    label: &str,
    elapsed: Duration,
    interval: Duration,
    before: &Counts,
    now: &Counts,
    latency: &LatencySummary,
    e2e: &LatencySummary,
) -> String {
    let secs = interval.as_secs_f64().max(f64::EPSILON);
    let records = now.records.saturating_sub(before.records) as f64 / secs;
    let mb = now.bytes.saturating_sub(before.bytes) as f64 / BYTES_PER_MB / secs;
    let mut text = format!(
        "{label:>8} {:>5.0}s {:>12} rec/s {:>9.1} MB/s   p99 {:>8.3} ms",
        elapsed.as_secs_f64(),
        group_digits(records.round() as u64),
        mb,
        latency.p99.as_secs_f64() * 1000.0,
    );
    if e2e.count > 0 {
        text.push_str(&format!(
            "   e2e p99 {:>8.3} ms",
            e2e.p99.as_secs_f64() * 1000.0
        ));
    }
    text.push_str(&format!("   errors {}", group_digits(now.errors())));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_the_intervals_rates_and_the_total_errors() {
        let before = Counts {
            records: 1_000,
            bytes: 1_000_000,
            ..Counts::default()
        };
        let now = Counts {
            records: 501_000,
            bytes: 501_000_000,
            rpc_errors: 2,
            ..Counts::default()
        };
        let latency = LatencySummary {
            count: 10,
            p99: Duration::from_micros(4_200),
            ..LatencySummary::default()
        };
        let text = line(
            "produce",
            Duration::from_secs(3),
            Duration::from_millis(500),
            &before,
            &now,
            &latency,
            &LatencySummary::default(),
        );
        assert!(text.contains("1,000,000 rec/s"), "{text}");
        assert!(text.contains("1000.0 MB/s"), "{text}");
        assert!(text.contains("p99    4.200 ms"), "{text}");
        assert!(text.contains("errors 2"), "{text}");
        assert!(!text.contains("e2e"), "{text}");
    }
}
