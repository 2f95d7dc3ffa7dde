//! `shardlog bench`: a load generator that drives a shardlog server over real gRPC and reports
//! throughput, ack latency and put-to-receive latency from HDR histograms. With `--api kinesis`
//! the produce and consume workloads go over the Kinesis API instead (`kinesis/`).
//!
//! ```text
//!  args ─▶ Plan ─▶ server: --server URL, or --embedded (127.0.0.1:0, temp dir, removed after)
//!                    │
//!   produce ─────────┼─▶ P producers ── PutRecords ──▶ ack latency, records/s, MB/s
//!   consume ─────────┼─▶ fill (unless stored) ─▶ probe shard ends ─▶ C readers catch up
//!                    │      GetRecords polling or SubscribeToShard ──▶ read records/s
//!   e2e ─────────────┼─▶ subscribers at LATEST, then P producers stamping each record with
//!                    │     its send time ──▶ ack latency and put→receive latency
//!   route ───────────┼─▶ rule <stream>-bench → <stream>-routed at LATEST, then P producers;
//!                    │     DescribeRule every 200 ms ──▶ routed/s, lag, drain time
//!   queue ───────────┴─▶ queue group at LATEST ─▶ fill ─▶ C workers: ReceiveMessages then
//!                          DeleteMessages of every handle ──▶ messages/s, receive→delete latency
//!  progress line every second (stderr) ─▶ summary table, or one JSON object (stdout)
//! ```
//!
//! Every phase is bounded by `--duration` and/or `--records` and every call by
//! [`DEFAULT_RPC_TIMEOUT`], so a run always stops by itself. Failed entries and failed calls
//! are counted, not fatal; a run in which nothing succeeded fails with the first error.

pub mod args;
mod consume;
mod e2e;
pub mod embedded;
mod idle;
pub mod kinesis;
mod produce;
mod progress;
mod queue;
pub mod report;
mod reshard;
mod route;
pub mod schedule;
pub mod stats;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;

pub use args::{Api, BenchArgs, Plan, PutApi, Target, Workload, TIMESTAMP_BYTES};
pub use report::{BenchReport, FillReport, RouteReport, RssReport};

use embedded::{EmbeddedServer, EmbeddedSettings};
use produce::{AckedTail, Budget, KindTally, ProducePhase, RecordShape};
use progress::Progress;
use shardlog::broker::BrokerError;
use shardlog::client::{Client, ClientError};
use shardlog::grpc::ServerError;
use stats::Meter;

/// Longest any one call may take before it counts as failed.
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(30);
/// How long e2e subscribers may take, after the producers are done, to receive the last
/// acknowledged records.
pub const DEFAULT_E2E_DRAIN: Duration = Duration::from_secs(10);
/// Longest the store phase before a consume run may take.
pub const MAX_FILL_TIME: Duration = Duration::from_secs(30 * 60);

/// Why a bench run could not be made or measured nothing.
#[derive(Debug, Error)]
pub enum BenchError {
    #[error("invalid --{setting}: {reason}")]
    InvalidArgument {
        setting: &'static str,
        reason: String,
    },
    #[error("when {step}")]
    Client {
        step: &'static str,
        #[source]
        source: ClientError,
    },
    #[error("when {step}: no answer after {after:?}")]
    Timeout { step: &'static str, after: Duration },
    #[error("when {step} over the Kinesis API")]
    Kinesis {
        step: &'static str,
        #[source]
        source: kinesis::CallError,
    },
    #[error("the stream {stream} is still {status}, not ACTIVE, after {after:?}")]
    StreamNotActive {
        stream: String,
        status: String,
        after: Duration,
    },
    #[error("when trying to {action} the embedded data directory {}", dir.display())]
    DataDir {
        action: &'static str,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("when binding the embedded server to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("when opening the embedded server's broker")]
    OpenBroker(#[source] BrokerError),
    #[error("the embedded server failed")]
    Server(#[source] ServerError),
    #[error("the embedded server's task failed: {0}")]
    ServerTask(String),
    /// Not one record went through: the errors are the result.
    #[error("{phase}: nothing succeeded ({errors} errors); the first: {first}")]
    NothingWorked {
        phase: &'static str,
        errors: u64,
        first: String,
    },
}

/// Runs the bench the arguments describe and prints its result: the summary table, or with
/// `--json` one JSON object, on standard output (progress goes to standard error).
pub async fn run(args: BenchArgs) -> Result<(), BenchError> {
    let report = execute(&args).await?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

/// Runs the bench the arguments describe and returns what it measured.
pub async fn execute(args: &BenchArgs) -> Result<BenchReport, BenchError> {
    let plan = Plan::from_args(args)?;
    let rss_before = embedded::process_rss();
    let run_id = run_id();
    let (server, url) = match &plan.target {
        Target::Remote(url) => (None, url.clone()),
        Target::Embedded { parent, fsync } => {
            let settings = EmbeddedSettings {
                fsync: *fsync,
                // A dedup run's ids all stay in the window: room for every one of them.
                max_dedup_ids: if plan.dedup {
                    usize::try_from(plan.records.unwrap_or(0)).unwrap_or(usize::MAX)
                } else {
                    0
                },
                shard_retention_bytes: plan.shard_retention_bytes,
            };
            let server = EmbeddedServer::start(parent, settings).await?;
            let url = match plan.api {
                Api::Grpc => server.url(),
                Api::Kinesis => server.kinesis_url(),
            };
            (Some(server), url)
        }
    };
    let measured = match plan.api {
        Api::Grpc => measure(&plan, &url, &run_id).await,
        Api::Kinesis => kinesis::measure(&plan, &url, &run_id).await,
    };
    let rss_after = embedded::process_rss();
    let stopped = match server {
        Some(server) => server.stop().await,
        None => Ok(()),
    };
    let measured = measured?;
    stopped?;
    let rss = match (&plan.target, rss_before, rss_after) {
        (Target::Embedded { .. }, Some((before, _)), Some((after, peak))) => Some(RssReport {
            before_bytes: before,
            after_bytes: after,
            peak_bytes: peak,
        }),
        _ => None,
    };
    let report = measured.into_report(&plan, rss);
    if report.records == 0 && report.errors() > 0 {
        return Err(BenchError::NothingWorked {
            phase: plan.workload.name(),
            errors: report.errors(),
            first: report.first_error.unwrap_or_default(),
        });
    }
    Ok(report)
}

/// A random id naming this run's dedup ids and probe group, so runs against one server never
/// collide.
fn run_id() -> String {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => format!("{:016x}", u64::from_le_bytes(bytes)),
        // Without an entropy source, the process id and the clock still tell runs apart.
        Err(_) => format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ),
    }
}

/// The process's CPU time from its start to [`CpuClock::stop`].
struct CpuClock(Option<Duration>);

impl CpuClock {
    fn start() -> CpuClock {
        CpuClock(embedded::process_cpu())
    }

    /// CPU time used since the start; `None` where the process's CPU time cannot be read.
    fn stop(self) -> Option<Duration> {
        Some(embedded::process_cpu()?.saturating_sub(self.0?))
    }
}

/// What the measured phase counted.
struct Measured {
    meter: Arc<Meter>,
    elapsed: Duration,
    /// CPU time the process used during the measured phase.
    cpu: Option<Duration>,
    e2e_missing: u64,
    fill: Option<FillReport>,
    route: Option<RouteReport>,
    queue: Option<queue::QueueReport>,
    reshard: Option<reshard::ReshardReport>,
}

impl Measured {
    /// What a phase counted, with nothing workload-specific yet.
    fn new(meter: Arc<Meter>, elapsed: Duration, cpu: Option<Duration>) -> Measured {
        Measured {
            meter,
            elapsed,
            cpu,
            e2e_missing: 0,
            fill: None,
            route: None,
            queue: None,
            reshard: None,
        }
    }

    fn into_report(self, plan: &Plan, rss: Option<RssReport>) -> BenchReport {
        let counts = self.meter.counts();
        BenchReport {
            workload: plan.workload.name(),
            api: plan.api.name(),
            consume_mode: (plan.workload == Workload::Consume).then(|| plan.consume_mode.name()),
            put_api: plan.put_api.name(),
            idle_subscribers: plan.idle_subscribers,
            in_flight: (plan.put_api == PutApi::Stream).then_some(plan.in_flight),
            server: match &plan.target {
                Target::Remote(url) => url.clone(),
                Target::Embedded { .. } => "embedded".to_owned(),
            },
            fsync: plan.fsync().map(args::fsync_name),
            stream: plan.stream.clone(),
            shards: plan.shards,
            producers: plan.producers,
            consumers: plan.consumers,
            record_size: plan.record_size,
            batch_size: plan.batch_size,
            rate: plan.rate,
            key_space: plan.key_space,
            dedup: plan.dedup,
            message_groups: plan.message_groups,
            records: counts.records,
            bytes: counts.bytes,
            elapsed: self.elapsed,
            cpu: self.cpu,
            failed_entries: counts.failed_entries,
            rpc_errors: counts.rpc_errors,
            e2e_missing: self.e2e_missing,
            first_error: self.meter.first_error(),
            latency: self.meter.latency(),
            e2e_latency: self.meter.e2e_latency(),
            fill: self.fill,
            rss,
            route: self.route,
            queue: self.queue,
            reshard: self.reshard,
        }
    }
}

async fn connect(plan: &Plan, url: &str) -> Result<Client, BenchError> {
    Client::connect_with(url.to_owned(), plan.client.clone())
        .await
        .map_err(|source| BenchError::Client {
            step: "connecting to the server",
            source,
        })
}

/// One connection per producer or consumer.
async fn connections(plan: &Plan, url: &str, n: usize) -> Result<Vec<Client>, BenchError> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(connect(plan, url).await?);
    }
    Ok(clients)
}

/// Creates the stream, or takes it as it is when it exists; returns its open shards' ids.
async fn ensure_stream(client: &Client, plan: &Plan) -> Result<Vec<String>, BenchError> {
    match client.create_stream(&plan.stream, plan.shards).await {
        Ok(description) => return Ok(description.shards.into_iter().map(|s| s.shard_id).collect()),
        Err(error) if error.code() == Some(tonic::Code::AlreadyExists) => {}
        Err(source) => {
            return Err(BenchError::Client {
                step: "creating the stream",
                source,
            })
        }
    }
    let shards = client
        .list_shards(&plan.stream)
        .await
        .map_err(|source| BenchError::Client {
            step: "listing the stream's shards",
            source,
        })?;
    Ok(shards
        .into_iter()
        .filter(|s| s.ending_sequence_number.is_none())
        .map(|s| s.shard_id)
        .collect())
}

fn record_shape(plan: &Plan, run_id: &str, stamp_epoch: Option<Instant>) -> RecordShape {
    RecordShape {
        stream: plan.stream.clone(),
        record_size: plan.record_size,
        batch_size: plan.batch_size,
        keys: match plan.queue {
            Some(_) => (0..plan.key_space).map(args::message_group_name).collect(),
            None => (0..plan.key_space).map(args::key_name).collect(),
        },
        message_groups: plan.message_groups,
        dedup_prefix: plan.dedup.then(|| run_id.to_owned()),
        stamp_epoch,
        kinds: plan.route_attributes,
    }
}

async fn measure(plan: &Plan, url: &str, run_id: &str) -> Result<Measured, BenchError> {
    let admin = connect(plan, url).await?;
    let shard_ids = ensure_stream(&admin, plan).await?;
    let idle = match plan.idle_subscribers {
        0 => None,
        n => Some(
            idle::IdleSubscribers::open(
                url,
                &plan.client,
                &idle::idle_stream_name(&plan.stream),
                n,
            )
            .await?,
        ),
    };
    let measured = match plan.workload {
        Workload::Produce => measure_produce(plan, url, run_id).await,
        Workload::Consume => measure_consume(plan, url, run_id, &admin).await,
        Workload::E2e => measure_e2e(plan, url, run_id, &shard_ids).await,
        Workload::Route => measure_route(plan, url, run_id, &admin).await,
        Workload::Queue => measure_queue(plan, url, run_id, &admin).await,
        Workload::Reshard => measure_reshard(plan, url, run_id, &admin).await,
    }?;
    if let Some(idle) = idle {
        for problem in idle.close().await {
            measured.meter.add_rpc_error(|| problem.clone());
        }
    }
    Ok(measured)
}

/// The produce phase `plan` asks for (budget, rate, producers, streaming window, duration),
/// starting now.
fn planned_produce_phase(
    plan: &Plan,
    shape: RecordShape,
    meter: &Arc<Meter>,
    acked: Option<Arc<AckedTail>>,
    kinds: Option<Arc<KindTally>>,
) -> Arc<ProducePhase> {
    let start = Instant::now();
    Arc::new(ProducePhase {
        shape,
        budget: Budget::new(plan.records),
        rate: plan.rate,
        producers: plan.producers,
        in_flight: (plan.put_api == PutApi::Stream).then_some(plan.in_flight),
        start,
        deadline: start + plan.duration,
        meter: Arc::clone(meter),
        acked,
        kinds,
    })
}

async fn measure_produce(plan: &Plan, url: &str, run_id: &str) -> Result<Measured, BenchError> {
    let clients = connections(plan, url, plan.producers).await?;
    let meter = Arc::new(Meter::default());
    let phase = planned_produce_phase(plan, record_shape(plan, run_id, None), &meter, None, None);
    let progress = Progress::start("produce", Arc::clone(&meter), phase.start);
    let cpu = CpuClock::start();
    let elapsed = produce::run_producers(phase, clients).await;
    let cpu = cpu.stop();
    drop(progress);
    Ok(Measured::new(meter, elapsed, cpu))
}

async fn measure_consume(
    plan: &Plan,
    url: &str,
    run_id: &str,
    admin: &Client,
) -> Result<Measured, BenchError> {
    let wanted = plan.records.unwrap_or(args::DEFAULT_CONSUME_RECORDS);
    let mut ends = consume::probe_ends(admin, &plan.stream, run_id).await?;
    let stored: u64 = ends.iter().map(|e| e.records).sum();
    let fill = if stored < wanted {
        let report = fill(plan, url, run_id, wanted - stored).await?;
        ends = consume::probe_ends(admin, &plan.stream, run_id).await?;
        report
    } else {
        FillReport {
            records: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
        }
    };
    let clients = connections(plan, url, plan.consumers).await?;
    let meter = Arc::new(Meter::default());
    let start = Instant::now();
    let progress = Progress::start("consume", Arc::clone(&meter), start);
    let cpu = CpuClock::start();
    let elapsed = consume::read_all(
        clients,
        &plan.stream,
        ends,
        plan.consume_mode,
        start + plan.duration,
        Arc::clone(&meter),
    )
    .await;
    let cpu = cpu.stop();
    drop(progress);
    Ok(Measured {
        fill: Some(fill),
        ..Measured::new(meter, elapsed, cpu)
    })
}

/// Stores `records` records with closed-loop producers, as fast as the server takes them.
async fn fill(
    plan: &Plan,
    url: &str,
    run_id: &str,
    records: u64,
) -> Result<FillReport, BenchError> {
    let clients = connections(plan, url, plan.producers).await?;
    let meter = Arc::new(Meter::default());
    let start = Instant::now();
    let phase = Arc::new(ProducePhase {
        shape: record_shape(plan, run_id, None),
        budget: Budget::new(Some(records)),
        rate: None,
        producers: plan.producers,
        in_flight: (plan.put_api == PutApi::Stream).then_some(plan.in_flight),
        start,
        deadline: start + MAX_FILL_TIME,
        meter: Arc::clone(&meter),
        acked: None,
        kinds: None,
    });
    let progress = Progress::start("fill", Arc::clone(&meter), start);
    let elapsed = produce::run_producers(phase, clients).await;
    drop(progress);
    let counts = meter.counts();
    if counts.records == 0 {
        return Err(BenchError::NothingWorked {
            phase: "fill",
            errors: counts.errors(),
            first: meter.first_error().unwrap_or_default(),
        });
    }
    Ok(FillReport {
        records: counts.records,
        bytes: counts.bytes,
        elapsed,
    })
}

async fn measure_e2e(
    plan: &Plan,
    url: &str,
    run_id: &str,
    shard_ids: &[String],
) -> Result<Measured, BenchError> {
    let producers = connections(plan, url, plan.producers).await?;
    let consumers = connections(plan, url, plan.consumers).await?;
    let meter = Arc::new(Meter::default());
    let acked = Arc::new(AckedTail::default());
    // The process-local epoch of the send times the records carry.
    let epoch = Instant::now();
    let subscribers = e2e::Subscribers::open(
        &consumers,
        &plan.stream,
        shard_ids,
        epoch,
        Arc::clone(&meter),
        Arc::clone(&acked),
    )
    .await?;
    let shape = record_shape(plan, run_id, Some(epoch));
    let phase = planned_produce_phase(plan, shape, &meter, Some(acked), None);
    let progress = Progress::start("e2e", Arc::clone(&meter), phase.start);
    let cpu = CpuClock::start();
    let elapsed = produce::run_producers(phase, producers).await;
    subscribers.finish(DEFAULT_E2E_DRAIN).await;
    let cpu = cpu.stop();
    drop(progress);
    let counts = meter.counts();
    Ok(Measured {
        e2e_missing: counts.records.saturating_sub(counts.received),
        ..Measured::new(meter, elapsed, cpu)
    })
}

/// Producers as in a produce run, with a rule routing what they store (`route.rs`).
async fn measure_route(
    plan: &Plan,
    url: &str,
    run_id: &str,
    admin: &Client,
) -> Result<Measured, BenchError> {
    let clients = connections(plan, url, plan.producers).await?;
    let shape = record_shape(plan, run_id, None);
    let rule = route::RouteRule::put(admin, plan, &shape).await?;
    let meter = Arc::new(Meter::default());
    let kinds = plan
        .route_attributes
        .then(|| Arc::new(KindTally::default()));
    let phase = planned_produce_phase(plan, shape, &meter, None, kinds);
    let progress = Progress::start("route", Arc::clone(&meter), phase.start);
    let cpu = CpuClock::start();
    let (elapsed, report) = route::run(admin, rule, phase, clients, progress).await;
    let cpu = cpu.stop();
    Ok(Measured {
        route: Some(report),
        ..Measured::new(meter, elapsed, cpu)
    })
}

/// Producers as in a produce run while the stream is scaled up and back (`reshard.rs`).
async fn measure_reshard(
    plan: &Plan,
    url: &str,
    run_id: &str,
    admin: &Client,
) -> Result<Measured, BenchError> {
    let clients = connections(plan, url, plan.producers).await?;
    let probe = connect(plan, url).await?;
    let meter = Arc::new(Meter::default());
    let phase = planned_produce_phase(plan, record_shape(plan, run_id, None), &meter, None, None);
    let progress = Progress::start("reshard", Arc::clone(&meter), phase.start);
    let cpu = CpuClock::start();
    let (elapsed, report) = reshard::run(
        admin,
        probe,
        &plan.stream,
        plan.shards,
        &plan.reshard_steps,
        phase,
        clients,
    )
    .await;
    let cpu = cpu.stop();
    drop(progress);
    Ok(Measured {
        reshard: Some(report),
        ..Measured::new(meter, elapsed, cpu)
    })
}

/// A queue group at LATEST, a fill, then workers receiving and deleting every stored record
/// (`queue.rs`); the group is deleted at the end, whatever happened.
async fn measure_queue(
    plan: &Plan,
    url: &str,
    run_id: &str,
    admin: &Client,
) -> Result<Measured, BenchError> {
    // Invariant: `Plan::from_args` sets the queue settings of every queue run.
    let settings = plan.queue.expect("a queue run has queue settings");
    let wanted = plan.records.unwrap_or(args::DEFAULT_QUEUE_RECORDS);
    let group = queue::QueueGroup::create(
        admin,
        &plan.stream,
        &args::queue_group_name(run_id),
        settings.kind,
    )
    .await?;
    let measured = async {
        let fill = fill(plan, url, run_id, wanted).await?;
        let clients = connections(plan, url, plan.consumers).await?;
        let meter = Arc::new(Meter::default());
        let start = Instant::now();
        let progress = Progress::start("queue", Arc::clone(&meter), start);
        let cpu = CpuClock::start();
        // The queue holds what the fill stored: a failed put is not a message to wait for.
        let (elapsed, report) = queue::run(
            clients,
            &group,
            settings,
            fill.records,
            start + plan.duration,
            &meter,
        )
        .await;
        let cpu = cpu.stop();
        drop(progress);
        Ok(Measured {
            fill: Some(fill),
            queue: Some(report),
            ..Measured::new(meter, elapsed, cpu)
        })
    }
    .await;
    group.delete(admin).await;
    measured
}
