//! `--api kinesis`: the produce and consume workloads over the Kinesis Data Streams API —
//! JSON 1.1 over keep-alive HTTP/1.1 — against any Kinesis endpoint: shardlog's
//! (`--kinesis-listen`, or the embedded server's), or an emulator such as kinesalite. The
//! setup goes over the same API, so no gRPC endpoint is needed.
//!
//! ```text
//!  DescribeStreamSummary ─▶ (not found) CreateStream ─▶ DescribeStreamSummary until ACTIVE
//!   produce ─▶ P producers, one connection each ── PutRecords (closed loop) ─▶ ack latency
//!   consume ─▶ fill: P producers store --records, noting each shard's newest sequence number
//!            ─▶ a reader per shard, one connection each: GetShardIterator (TRIM_HORIZON),
//!               GetRecords … until that number ─▶ read records/s
//! ```
//!
//! A Kinesis consume run always stores its records first: the API has no call that says how
//! many records a shard holds, or where it ends. Its reads start at TRIM_HORIZON, so records
//! already in the stream are read (and counted) too.

mod consume;
mod http;
mod produce;
mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use http::{CallError, KinesisEndpoint};

use self::consume::ShardEnd;
use self::http::Connection;
use self::produce::StoredTail;
use self::wire::DescribeStreamSummaryOutput;
use super::args::{self, Plan, Workload};
use super::produce::{Budget, ProducePhase};
use super::progress::Progress;
use super::stats::Meter;
use super::{
    planned_produce_phase, record_shape, BenchError, CpuClock, FillReport, Measured, MAX_FILL_TIME,
};

/// Longest a stream the bench created may take to become ACTIVE.
pub const STREAM_ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the setup asks whether the stream is ACTIVE yet.
const STREAM_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Measures the plan's workload against the Kinesis endpoint at `url`.
pub(super) async fn measure(plan: &Plan, url: &str, run_id: &str) -> Result<Measured, BenchError> {
    let endpoint = KinesisEndpoint::parse(url).map_err(|reason| BenchError::InvalidArgument {
        setting: "kinesis-endpoint",
        reason,
    })?;
    let endpoint = Arc::new(endpoint);
    let mut admin = open(&endpoint, "connecting to the Kinesis endpoint").await?;
    ensure_stream(&mut admin, plan).await?;
    drop(admin);
    match plan.workload {
        Workload::Produce => measure_produce(plan, &endpoint, run_id).await,
        Workload::Consume => measure_consume(plan, &endpoint, run_id).await,
        // `Plan::from_args` refuses these with `--api kinesis`.
        Workload::E2e | Workload::Route | Workload::Queue | Workload::Reshard => {
            Err(BenchError::InvalidArgument {
                setting: "api",
                reason: format!(
                    "kinesis applies to the produce and consume workloads, not {}",
                    plan.workload.name()
                ),
            })
        }
    }
}

async fn open(endpoint: &KinesisEndpoint, step: &'static str) -> Result<Connection, BenchError> {
    Connection::open(endpoint)
        .await
        .map_err(|source| BenchError::Kinesis { step, source })
}

/// `n` connections, one per producer.
async fn connections(
    endpoint: &KinesisEndpoint,
    n: usize,
    step: &'static str,
) -> Result<Vec<Connection>, BenchError> {
    let mut connections = Vec::with_capacity(n);
    for _ in 0..n {
        connections.push(open(endpoint, step).await?);
    }
    Ok(connections)
}

/// Takes the stream as it is when it exists, or creates it with the plan's shards; then waits
/// until it is ACTIVE.
async fn ensure_stream(admin: &mut Connection, plan: &Plan) -> Result<(), BenchError> {
    let describe = serde_json::json!({ "StreamName": &plan.stream }).to_string();
    let started = Instant::now();
    let mut created = false;
    loop {
        let status = match admin
            .call("DescribeStreamSummary", describe.clone().into())
            .await
        {
            Ok(answer) => {
                let out: DescribeStreamSummaryOutput =
                    serde_json::from_slice(&answer).map_err(|source| BenchError::Kinesis {
                        step: "describing the stream",
                        source: CallError::Decode {
                            operation: "DescribeStreamSummary",
                            source,
                        },
                    })?;
                out.summary.status
            }
            Err(error) if error.error_type() == Some("ResourceNotFoundException") && !created => {
                create_stream(admin, plan).await?;
                created = true;
                continue;
            }
            Err(source) => {
                return Err(BenchError::Kinesis {
                    step: "describing the stream",
                    source,
                })
            }
        };
        // UPDATING streams take reads and writes.
        if status == "ACTIVE" || status == "UPDATING" {
            return Ok(());
        }
        if started.elapsed() >= STREAM_ACTIVE_TIMEOUT {
            return Err(BenchError::StreamNotActive {
                stream: plan.stream.clone(),
                status,
                after: STREAM_ACTIVE_TIMEOUT,
            });
        }
        tokio::time::sleep(STREAM_POLL_INTERVAL).await;
    }
}

async fn create_stream(admin: &mut Connection, plan: &Plan) -> Result<(), BenchError> {
    let request = serde_json::json!({ "StreamName": &plan.stream, "ShardCount": plan.shards });
    match admin.call("CreateStream", request.to_string().into()).await {
        Ok(_) => Ok(()),
        // Created meanwhile by someone else: taken as it is.
        Err(error) if error.error_type() == Some("ResourceInUseException") => Ok(()),
        Err(source) => Err(BenchError::Kinesis {
            step: "creating the stream",
            source,
        }),
    }
}

async fn measure_produce(
    plan: &Plan,
    endpoint: &Arc<KinesisEndpoint>,
    run_id: &str,
) -> Result<Measured, BenchError> {
    let producers = connections(endpoint, plan.producers, "connecting the producers").await?;
    let meter = Arc::new(Meter::default());
    let phase = planned_produce_phase(plan, record_shape(plan, run_id, None), &meter, None, None);
    let progress = Progress::start("produce", Arc::clone(&meter), phase.start);
    let cpu = CpuClock::start();
    let elapsed = produce::run_producers(phase, producers, Arc::clone(endpoint), None).await;
    let cpu = cpu.stop();
    drop(progress);
    Ok(Measured::new(meter, elapsed, cpu))
}

async fn measure_consume(
    plan: &Plan,
    endpoint: &Arc<KinesisEndpoint>,
    run_id: &str,
) -> Result<Measured, BenchError> {
    let wanted = plan.records.unwrap_or(args::DEFAULT_CONSUME_RECORDS);
    let tail = Arc::new(StoredTail::default());
    let fill = fill(plan, endpoint, run_id, wanted, &tail).await?;
    let ends = tail
        .ends()
        .into_iter()
        .map(|(shard_id, last)| ShardEnd { shard_id, last })
        .collect();
    let readers = consume::open_readers(endpoint, ends)
        .await
        .map_err(|source| BenchError::Kinesis {
            step: "connecting the readers",
            source,
        })?;
    let meter = Arc::new(Meter::default());
    let start = Instant::now();
    let progress = Progress::start("consume", Arc::clone(&meter), start);
    let cpu = CpuClock::start();
    let elapsed = consume::read_all(
        readers,
        Arc::clone(endpoint),
        &plan.stream,
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

/// Stores `records` records with closed-loop producers, as fast as the endpoint takes them,
/// noting in `tail` where each shard's records end.
async fn fill(
    plan: &Plan,
    endpoint: &Arc<KinesisEndpoint>,
    run_id: &str,
    records: u64,
    tail: &Arc<StoredTail>,
) -> Result<FillReport, BenchError> {
    let producers =
        connections(endpoint, plan.producers, "connecting the fill's producers").await?;
    let meter = Arc::new(Meter::default());
    let start = Instant::now();
    let phase = Arc::new(ProducePhase {
        shape: record_shape(plan, run_id, None),
        budget: Budget::new(Some(records)),
        rate: None,
        producers: plan.producers,
        in_flight: None,
        start,
        deadline: start + MAX_FILL_TIME,
        meter: Arc::clone(&meter),
        acked: None,
        kinds: None,
    });
    let progress = Progress::start("fill", Arc::clone(&meter), start);
    let elapsed = produce::run_producers(
        phase,
        producers,
        Arc::clone(endpoint),
        Some(Arc::clone(tail)),
    )
    .await;
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
