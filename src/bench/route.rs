//! The route workload: a rule routes the bench's stream into `<stream>-routed` while the
//! producers run exactly as in a produce run, and DescribeRule, asked every 200 ms, tells how
//! many records the rule has routed and how far behind the source it is. Once the producers
//! stop, the bench waits (at most [`DEFAULT_ROUTE_DRAIN`]) until the rule has no lag and has
//! routed every acknowledged record its filter matches; then it deletes the rule.
//!
//! ```text
//!  setup: source and <stream>-routed (same shard count) · TestPattern on each kind of record
//!         · DeleteRule of a rule left behind · PutRule <stream>-bench at LATEST
//!  producers ──PutRecords──▶ source ──rule──▶ <stream>-routed
//!      │          DescribeRule every 200 ms: routed, lag, ms behind ──▶ timeline, maxima
//!      ▼
//!  producers done ──▶ DescribeRule every 50 ms until lag 0 and routed = expected ──▶ drain
//!  DeleteRule (the streams stay, as after the other workloads)
//! ```
//!
//! The expected count needs no reading back: every record of one kind carries the same data
//! and attributes, so one TestPattern per kind says whether the filter matches all of them or
//! none, and the producers count the acknowledged records of each kind. The run's CPU time
//! covers the drain too: with `--embedded` it is the cost of storing and routing the records.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;

use super::args::{self, Plan, RouteFilter, RouteScope};
use super::produce::{self, ProducePhase, RecordKind, RecordShape};
use super::progress::{Progress, PROGRESS_INTERVAL};
use super::report::{group_digits, RouteReport, RouteSample};
use super::stats::Meter;
use super::{BenchError, DEFAULT_RPC_TIMEOUT};
use shardlog::client::{Client, ClientError};
use shardlog::proto::v1::{
    Filter, FilterScope, PutRuleRequest, Rule, RuleState, RuleTarget, ShardIteratorType,
    TestPatternRequest,
};

/// How often DescribeRule is asked while the producers run.
pub const ROUTE_SAMPLE_INTERVAL: Duration = Duration::from_millis(200);
/// How often DescribeRule is asked once the producers are done: finer, as it times the drain.
pub const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Longest the bench waits, after the producers stop, for the rule to catch up.
pub const DEFAULT_ROUTE_DRAIN: Duration = Duration::from_secs(60);

/// Whether the rule's filter matches each kind of record the producers make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matches {
    /// Records without a kind: the filter matches every one or none.
    All(bool),
    /// Records with a kind attribute: per kind.
    Kinds { order: bool, noise: bool },
}

impl Matches {
    /// Records the rule should route: the acknowledged records of the kinds it matches.
    pub fn expected(self, acked: u64, order: u64, noise: u64) -> u64 {
        match self {
            Matches::All(all) => {
                if all {
                    acked
                } else {
                    0
                }
            }
            Matches::Kinds { order: o, noise: n } => u64::from(o) * order + u64::from(n) * noise,
        }
    }
}

/// A route run's rule, put and not yet deleted.
#[derive(Debug)]
pub struct RouteRule {
    name: String,
    target: String,
    filter: Option<RouteFilter>,
    attributes: bool,
    matches: Matches,
    /// `routed_records` when the run began.
    baseline: u64,
}

fn client_error(step: &'static str) -> impl FnOnce(ClientError) -> BenchError {
    move |source| BenchError::Client { step, source }
}

/// Runs `call` with [`DEFAULT_RPC_TIMEOUT`], naming `step` if it fails.
async fn within<T>(
    step: &'static str,
    call: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<Result<T, ClientError>, BenchError> {
    tokio::time::timeout(DEFAULT_RPC_TIMEOUT, call)
        .await
        .map_err(|_elapsed| BenchError::Timeout {
            step,
            after: DEFAULT_RPC_TIMEOUT,
        })
}

fn proto_filter(filter: &RouteFilter) -> Filter {
    Filter {
        pattern: filter.pattern.clone(),
        scope: match filter.scope {
            RouteScope::Data => FilterScope::Data,
            RouteScope::Attributes => FilterScope::Attributes,
        } as i32,
    }
}

impl RouteRule {
    /// Creates the target stream unless it exists, asks the server what the filter matches,
    /// and puts the rule at LATEST. A rule an earlier run left behind is deleted first: put
    /// again, it would keep its old position and counters.
    pub async fn put(
        admin: &Client,
        plan: &Plan,
        shape: &RecordShape,
    ) -> Result<RouteRule, BenchError> {
        let target = args::routed_stream_name(&plan.stream);
        let name = args::route_rule_name(&plan.stream);
        match within(
            "creating the route target",
            admin.create_stream(&target, plan.shards),
        )
        .await?
        {
            Ok(_) => {}
            Err(e) if e.code() == Some(tonic::Code::AlreadyExists) => {}
            Err(source) => return Err(client_error("creating the route target")(source)),
        }
        let matches = match &plan.route_filter {
            None => Matches::All(true),
            Some(filter) if shape.kinds => Matches::Kinds {
                order: test(admin, filter, shape, Some(RecordKind::Order)).await?,
                noise: test(admin, filter, shape, Some(RecordKind::Noise)).await?,
            },
            Some(filter) => Matches::All(test(admin, filter, shape, None).await?),
        };
        match within(
            "deleting the route rule left behind",
            admin.delete_rule(&name),
        )
        .await?
        {
            Ok(()) => {}
            Err(e) if e.code() == Some(tonic::Code::NotFound) => {}
            Err(source) => return Err(client_error("deleting the route rule left behind")(source)),
        }
        let request = PutRuleRequest {
            rule_name: name.clone(),
            source_stream: plan.stream.clone(),
            filter: plan.route_filter.as_ref().map(proto_filter),
            targets: vec![RuleTarget {
                stream_name: target.clone(),
            }],
            state: RuleState::Enabled as i32,
            start_position: ShardIteratorType::Latest as i32,
        };
        let rule = within("putting the route rule", admin.put_rule(request))
            .await?
            .map_err(client_error("putting the route rule"))?;
        Ok(RouteRule {
            name,
            target,
            filter: plan.route_filter.clone(),
            attributes: shape.kinds,
            matches,
            baseline: rule.routed_records,
        })
    }
}

/// Whether `filter` matches the records of `kind` the producers make.
async fn test(
    admin: &Client,
    filter: &RouteFilter,
    shape: &RecordShape,
    kind: Option<RecordKind>,
) -> Result<bool, BenchError> {
    let sample = shape.sample(kind);
    let request = TestPatternRequest {
        filter: Some(proto_filter(filter)),
        data: sample.data,
        attributes: sample.attributes,
    };
    within("testing the route filter", admin.test_pattern(request))
        .await?
        .map_err(client_error("testing the route filter"))
}

/// The samples so far, and what they showed.
struct Watch<'a> {
    admin: &'a Client,
    rule: &'a RouteRule,
    meter: &'a Meter,
    /// The producers' start, which sample times count from.
    start: Instant,
    timeline: Vec<RouteSample>,
    max_lag_records: u64,
    max_behind: Duration,
    rule_error: Option<String>,
}

/// A sample from a DescribeRule answer received `at` after the start.
pub fn sample_of(rule: &Rule, baseline: u64, at: Duration) -> RouteSample {
    RouteSample {
        at,
        routed: rule.routed_records.saturating_sub(baseline),
        lag_records: rule.shards.iter().map(|s| s.lag_records).sum(),
        behind: rule
            .shards
            .iter()
            .map(|s| Duration::from_millis(u64::try_from(s.millis_behind_latest).unwrap_or(0)))
            .max()
            .unwrap_or_default(),
    }
}

impl Watch<'_> {
    /// Asks DescribeRule and keeps what it says; `None` (and a counted error) when it failed.
    async fn sample(&mut self) -> Option<RouteSample> {
        let described = tokio::time::timeout(
            DEFAULT_RPC_TIMEOUT,
            self.admin.describe_rule(&self.rule.name),
        )
        .await;
        let rule = match described {
            Ok(Ok(rule)) => rule,
            Ok(Err(error)) => {
                self.meter.add_rpc_error(|| error.to_string());
                return None;
            }
            Err(_elapsed) => {
                self.meter.add_rpc_error(|| {
                    format!("DescribeRule timed out after {DEFAULT_RPC_TIMEOUT:?}")
                });
                return None;
            }
        };
        let sample = sample_of(&rule, self.rule.baseline, self.start.elapsed());
        if !rule.last_error.is_empty() {
            self.rule_error = Some(rule.last_error);
        }
        self.max_lag_records = self.max_lag_records.max(sample.lag_records);
        self.max_behind = self.max_behind.max(sample.behind);
        self.timeline.push(sample);
        Some(sample)
    }

    fn last_routed(&self) -> u64 {
        self.timeline.last().map_or(0, |s| s.routed)
    }
}

/// One route progress line: `route elapsed  N routed/s  lag L records  M ms behind`.
pub fn progress_line(before: &RouteSample, now: &RouteSample) -> String {
    let secs = now
        .at
        .saturating_sub(before.at)
        .as_secs_f64()
        .max(f64::EPSILON);
    let routed = now.routed.saturating_sub(before.routed) as f64 / secs;
    format!(
        "{:>8} {:>5.0}s {:>12} routed/s   lag {:>12} records {:>8} ms behind",
        "rule",
        now.at.as_secs_f64(),
        group_digits(routed.round() as u64),
        group_digits(now.lag_records),
        group_digits(now.behind.as_millis() as u64),
    )
}

/// Runs the producers of `phase` with the rule routing behind them, then waits for the rule
/// to catch up and deletes it. Returns how long the producers ran and what the rule did.
/// Failed DescribeRule and DeleteRule calls are counted in the phase's meter.
pub async fn run(
    admin: &Client,
    rule: RouteRule,
    phase: Arc<ProducePhase>,
    clients: Vec<Client>,
    progress: Progress,
) -> (Duration, RouteReport) {
    let mut watch = Watch {
        admin,
        rule: &rule,
        meter: &phase.meter,
        start: phase.start,
        timeline: Vec::new(),
        max_lag_records: 0,
        max_behind: Duration::ZERO,
        rule_error: None,
    };
    let mut producers = tokio::spawn(produce::run_producers(Arc::clone(&phase), clients));
    let mut ticks = tokio::time::interval(ROUTE_SAMPLE_INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut printed = RouteSample {
        at: Duration::ZERO,
        routed: 0,
        lag_records: 0,
        behind: Duration::ZERO,
    };
    let producing = loop {
        tokio::select! {
            joined = &mut producers => break match joined {
                Ok(elapsed) => elapsed,
                Err(error) => {
                    phase.meter.add_rpc_error(|| format!("the producers' task failed: {error}"));
                    phase.start.elapsed()
                }
            },
            _ = ticks.tick() => {
                if let Some(sample) = watch.sample().await {
                    if sample.at.saturating_sub(printed.at) >= PROGRESS_INTERVAL {
                        eprintln!("{}", progress_line(&printed, &sample));
                        printed = sample;
                    }
                }
            }
        }
    };
    drop(progress);
    let counts = phase.meter.counts();
    let (order, noise) = phase.kinds.as_ref().map_or((0, 0), |k| {
        (k.get(RecordKind::Order), k.get(RecordKind::Noise))
    });
    let expected = rule.matches.expected(counts.records, order, noise);

    // The first answer after the producers' end tells what was routed while they ran.
    let routed_producing = match watch.sample().await {
        Some(sample) => sample.routed,
        None => watch.last_routed(),
    };
    let mut drained = false;
    let drain = loop {
        if let Some(sample) = watch.timeline.last() {
            if sample.at >= producing && sample.lag_records == 0 && sample.routed >= expected {
                drained = true;
                break sample.at - producing;
            }
        }
        let waited = phase.start.elapsed().saturating_sub(producing);
        if waited >= DEFAULT_ROUTE_DRAIN {
            break waited;
        }
        tokio::time::sleep(DRAIN_POLL_INTERVAL).await;
        if let Some(sample) = watch.sample().await {
            if sample.at.saturating_sub(printed.at) >= PROGRESS_INTERVAL {
                eprintln!("{}", progress_line(&printed, &sample));
                printed = sample;
            }
        }
    };
    let report = RouteReport {
        rule: rule.name.clone(),
        target: rule.target.clone(),
        filter: rule
            .filter
            .as_ref()
            .map(|f| (f.pattern.clone(), f.scope.name())),
        attributes: rule.attributes,
        expected,
        routed: watch.last_routed(),
        routed_producing,
        producing,
        drain,
        drained,
        max_lag_records: watch.max_lag_records,
        max_behind: watch.max_behind,
        rule_error: watch.rule_error,
        timeline: watch.timeline,
    };
    match tokio::time::timeout(DEFAULT_RPC_TIMEOUT, admin.delete_rule(&rule.name)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => phase.meter.add_rpc_error(|| error.to_string()),
        Err(_elapsed) => phase
            .meter
            .add_rpc_error(|| format!("DeleteRule timed out after {DEFAULT_RPC_TIMEOUT:?}")),
    }
    (producing, report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardlog::proto::v1::RuleShardProgress;

    #[test]
    fn without_kinds_the_rule_routes_every_acknowledged_record_or_none() {
        assert_eq!(Matches::All(true).expected(1_000, 0, 0), 1_000);
        assert_eq!(Matches::All(false).expected(1_000, 0, 0), 0);
    }

    #[test]
    fn with_kinds_the_rule_routes_the_acknowledged_records_of_the_kinds_it_matches() {
        let orders = Matches::Kinds {
            order: true,
            noise: false,
        };
        assert_eq!(orders.expected(1_000, 750, 250), 750);
        let both = Matches::Kinds {
            order: true,
            noise: true,
        };
        assert_eq!(both.expected(1_000, 750, 250), 1_000);
        let noise = Matches::Kinds {
            order: false,
            noise: true,
        };
        assert_eq!(noise.expected(1_000, 750, 250), 250);
    }

    fn shard(lag_records: u64, millis_behind_latest: i64) -> RuleShardProgress {
        RuleShardProgress {
            lag_records,
            millis_behind_latest,
            ..RuleShardProgress::default()
        }
    }

    #[test]
    fn a_sample_sums_the_lag_and_keeps_the_furthest_behind_shard() {
        let rule = Rule {
            routed_records: 1_500,
            shards: vec![shard(10, 40), shard(0, -5), shard(32, 250)],
            ..Rule::default()
        };
        let s = sample_of(&rule, 500, Duration::from_secs(3));
        assert_eq!(s.routed, 1_000);
        assert_eq!(s.lag_records, 42);
        assert_eq!(s.behind, Duration::from_millis(250));
        assert_eq!(s.at, Duration::from_secs(3));
        // Counters that went down (a restarted server) read as nothing routed.
        assert_eq!(sample_of(&rule, 2_000, Duration::ZERO).routed, 0);
        assert_eq!(
            sample_of(&Rule::default(), 0, Duration::ZERO).behind,
            Duration::ZERO
        );
    }

    #[test]
    fn the_progress_line_shows_the_routed_rate_since_the_last_line() {
        let before = RouteSample {
            at: Duration::from_secs(1),
            routed: 100_000,
            lag_records: 0,
            behind: Duration::ZERO,
        };
        let now = RouteSample {
            at: Duration::from_millis(1_500),
            routed: 160_000,
            lag_records: 12_345,
            behind: Duration::from_millis(1_234),
        };
        let line = progress_line(&before, &now);
        assert!(line.contains("120,000 routed/s"), "{line}");
        assert!(line.contains("12,345 records"), "{line}");
        assert!(line.contains("1,234 ms behind"), "{line}");
    }
}
