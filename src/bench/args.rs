//! The `shardlog bench` command line, and its validation into a [`Plan`] the workloads run.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::kinesis::KinesisEndpoint;
use super::BenchError;
use shardlog::broker::queues::{DEFAULT_MAX_DELETE_HANDLES, DEFAULT_MAX_RECEIVE_MESSAGES};
use shardlog::broker::{
    DEFAULT_MAX_PUT_ENTRIES, DEFAULT_MAX_PUT_REQUEST_BYTES, DEFAULT_MAX_RECORD_BYTES,
};
use shardlog::storage::FsyncPolicy;
use shardlog::stream::{RuleName, StreamName};

/// Server driven when neither `--server` nor `--embedded` is given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";
/// Kinesis endpoint driven with `--api kinesis` when neither `--kinesis-endpoint` nor
/// `--embedded` is given: the server's default `--kinesis-listen`.
pub const DEFAULT_KINESIS_ENDPOINT: &str = "http://127.0.0.1:4567";
/// Stream the bench writes and reads when `--stream` is not given.
pub const DEFAULT_STREAM: &str = "bench";
/// Default shards of the stream the bench creates.
pub const DEFAULT_SHARDS: u32 = 4;
/// Default concurrent producers, each on its own connection.
pub const DEFAULT_PRODUCERS: usize = 2;
/// Default concurrent consumers, each on its own connection, sharing the shards.
pub const DEFAULT_CONSUMERS: usize = 1;
/// Default concurrent workers of a queue run, each on its own connection, sharing the queue
/// group.
pub const DEFAULT_QUEUE_CONSUMERS: usize = 2;
/// Default bytes of data per record.
pub const DEFAULT_RECORD_BYTES: usize = 1024;
/// Default open shard count a reshard run scales up to.
pub const DEFAULT_RESHARD_TO: u32 = 64;
/// Default records per PutRecords request.
pub const DEFAULT_BATCH_SIZE: usize = 500;
/// Default batches a streaming producer keeps unanswered: enough to keep the server's put
/// pipeline busy while one answer travels back.
pub const DEFAULT_IN_FLIGHT: usize = 4;
/// Default length of a run.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Longest run accepted: the bench must always stop by itself.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
/// Default distinct partition keys (or message groups).
pub const DEFAULT_KEY_SPACE: u64 = 1024;
/// Most distinct keys: they are built once up front and cycled through.
pub const MAX_KEY_SPACE: u64 = 1_000_000;
/// Records a consume run stores first when `--records` is not given.
pub const DEFAULT_CONSUME_RECORDS: u64 = 100_000;
/// Records a queue run stores, then receives and deletes, when `--records` is not given.
pub const DEFAULT_QUEUE_RECORDS: u64 = 100_000;
/// Default message groups the records of a queue run cycle through.
pub const DEFAULT_QUEUE_GROUPS: u64 = 1_000;
/// Default most messages one ReceiveMessages of a queue run asks for.
pub const DEFAULT_QUEUE_BATCH: u32 = 500;
/// Bytes at the head of every e2e record: its send time in nanoseconds since the run's epoch.
pub const TIMESTAMP_BYTES: usize = 8;
/// The route rule's filter with `--route-attributes` and no `--route-filter`: the records whose
/// `kind` attribute is `order`, three of every four.
pub const DEFAULT_ROUTE_ATTRIBUTES_PATTERN: &str = r#"{"kind":["order"]}"#;
/// Most bytes the `kind` attribute adds to a record, as the server counts a request's size.
pub const KIND_ATTRIBUTE_BYTES: usize = 64;

/// What the bench does to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// PutRecords as fast as allowed (or at --rate): ack latency and throughput.
    Produce,
    /// Store --records records (unless already there), then read them all back: catch-up reads.
    Consume,
    /// Producers and subscribers at once: put-to-receive latency.
    E2e,
    /// Producers and a rule routing the stream into `<stream>-routed`: routed records/s, the
    /// rule's lag, and how long it takes to catch up once the producers stop.
    Route,
    /// Store --records records, then receive and delete each through a queue group:
    /// messages/s and receive-to-delete latency.
    Queue,
    /// Producers at full speed while the stream is scaled from --shards to --reshard-to and
    /// back, doubling and halving: the longest put stall of each switch, and throughput
    /// before, during and after.
    Reshard,
}

impl Workload {
    /// The name used on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Produce => "produce",
            Workload::Consume => "consume",
            Workload::E2e => "e2e",
            Workload::Route => "route",
            Workload::Queue => "queue",
            Workload::Reshard => "reshard",
        }
    }

    /// Whether the workload runs producers (and takes --rate).
    pub fn produces(self) -> bool {
        match self {
            Workload::Produce | Workload::E2e | Workload::Route | Workload::Reshard => true,
            Workload::Consume | Workload::Queue => false,
        }
    }
}

/// What a route filter's pattern is applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RouteScope {
    /// The record's data, parsed as JSON (the bench's data is not JSON: no pattern matches it).
    Data,
    /// The record's message attributes.
    Attributes,
}

impl RouteScope {
    /// The name used on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            RouteScope::Data => "data",
            RouteScope::Attributes => "attributes",
        }
    }
}

/// The pattern a route run's rule filters with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteFilter {
    /// An EventBridge pattern, as JSON text.
    pub pattern: String,
    pub scope: RouteScope,
}

/// The kind of queue group a queue run creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueueType {
    /// In order per message group: a group's next message waits for the one before it.
    Fifo,
    /// Any order.
    Standard,
}

impl QueueType {
    /// The name used on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            QueueType::Fifo => "fifo",
            QueueType::Standard => "standard",
        }
    }
}

/// How a queue run is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    pub kind: QueueType,
    /// Message groups the records cycle through (`g0`, `g1`, …).
    pub groups: u64,
    /// Most messages per ReceiveMessages; every one received is deleted in one DeleteMessages.
    pub batch: u32,
}

/// How a consume run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConsumeMode {
    /// GetShardIterator at TRIM_HORIZON, then GetRecords until the shard's end.
    GetRecords,
    /// As `get-records`, in GetRecords' frame form: the server sends the stored frames and
    /// the bench checks and decodes them.
    GetRecordsFrames,
    /// SubscribeToShard from TRIM_HORIZON until the shard's last record arrives.
    Subscribe,
}

impl ConsumeMode {
    /// The name used on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            ConsumeMode::GetRecords => "get-records",
            ConsumeMode::GetRecordsFrames => "get-records-frames",
            ConsumeMode::Subscribe => "subscribe",
        }
    }
}

/// The API the measured traffic goes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Api {
    /// shardlog's gRPC API (HTTP/2, protobuf).
    Grpc,
    /// The Kinesis Data Streams API: PutRecords and GetRecords in JSON over keep-alive
    /// HTTP/1.1 connections. Produce and consume workloads only.
    Kinesis,
}

impl Api {
    /// The name used on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Api::Grpc => "grpc",
            Api::Kinesis => "kinesis",
        }
    }
}

/// How producers put their batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PutApi {
    /// One PutRecordsStream call per producer, with up to --in-flight batches unanswered.
    Stream,
    /// One PutRecords call per batch (closed loop: the next after the last one's answer).
    Unary,
}

impl PutApi {
    /// The name used on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            PutApi::Stream => "stream",
            PutApi::Unary => "unary",
        }
    }
}

/// Load generator: drives a shardlog server over gRPC (or the Kinesis API) and reports
/// throughput and latency.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// URL of a running server to drive [default: http://127.0.0.1:50051]
    #[arg(long = "server", value_name = "URL", conflicts_with = "embedded")]
    pub server: Option<String>,
    /// The API the measured traffic goes over: gRPC, or the Kinesis Data Streams API (JSON
    /// over HTTP/1.1; produce and consume workloads; the run's setup goes over it too, so any
    /// Kinesis endpoint can be driven)
    #[arg(long, value_enum, default_value_t = Api::Grpc)]
    pub api: Api,
    /// With --api kinesis: URL of the Kinesis endpoint to drive (plain http) [default:
    /// http://127.0.0.1:4567; with --embedded, the embedded server's own]
    #[arg(long, value_name = "URL")]
    pub kinesis_endpoint: Option<String>,
    /// Bearer token, for a server with an auth file
    #[arg(
        long,
        env = "SHARDLOG_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// PEM CA certificate an https:// server's certificate must chain to [default: the
    /// system's]
    #[arg(long, value_name = "FILE", conflicts_with = "embedded")]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate, for a server that asks for one (mutual TLS)
    #[arg(
        long,
        value_name = "FILE",
        requires = "client_key",
        conflicts_with = "embedded"
    )]
    pub client_cert: Option<PathBuf>,
    /// PEM key of --client-cert
    #[arg(
        long,
        value_name = "FILE",
        requires = "client_cert",
        conflicts_with = "embedded"
    )]
    pub client_key: Option<PathBuf>,
    /// Start a server in this process on a temporary directory, removed at the end
    #[arg(long)]
    pub embedded: bool,
    /// Where the embedded server's temporary directory is made [default: the system's temp dir]
    #[arg(long, value_name = "DIR", requires = "embedded")]
    pub data_dir: Option<PathBuf>,
    /// Fsync policy of the embedded server: always, interval or never [default: always]
    #[arg(long, value_name = "POLICY", value_parser = parse_fsync, requires = "embedded")]
    pub fsync: Option<FsyncPolicy>,
    /// What to measure
    #[arg(long, value_enum, default_value_t = Workload::Produce)]
    pub workload: Workload,
    /// How the consume workload reads
    #[arg(long, value_enum, default_value_t = ConsumeMode::GetRecords)]
    pub consume_mode: ConsumeMode,
    /// How gRPC producers put their batches (Kinesis producers send one PutRecords per batch)
    #[arg(long, value_enum, default_value_t = PutApi::Stream)]
    pub put_api: PutApi,
    /// With --put-api stream: batches each producer keeps unanswered
    #[arg(long, default_value_t = DEFAULT_IN_FLIGHT, value_name = "N")]
    pub in_flight: usize,
    /// Stream to use; created with --shards shards when it does not exist
    #[arg(long, default_value = DEFAULT_STREAM, value_name = "NAME")]
    pub stream: String,
    /// Shards of the stream when the bench creates it
    #[arg(long, default_value_t = DEFAULT_SHARDS, value_name = "N")]
    pub shards: u32,
    /// Concurrent producers, each on its own connection
    #[arg(long, default_value_t = DEFAULT_PRODUCERS, value_name = "N")]
    pub producers: usize,
    /// Concurrent consumers, each on its own connection; the shards are divided between them
    /// (queue: workers sharing the queue group) [default: 1; queue: 2]
    #[arg(long, value_name = "N")]
    pub consumers: Option<usize>,
    /// Bytes of data per record
    #[arg(long, default_value_t = DEFAULT_RECORD_BYTES, value_name = "BYTES")]
    pub record_size: usize,
    /// Records per PutRecords request
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE, value_name = "N")]
    pub batch_size: usize,
    /// Longest time the measured phase runs: 30, 30s, 500ms, 2m
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "TIME")]
    pub duration: Duration,
    /// Records to put (produce, e2e), to have stored before reading (consume), or to store and
    /// then receive and delete (queue)
    #[arg(long, value_name = "N")]
    pub records: Option<u64>,
    /// Open loop: records per second in total, sent on a fixed schedule; latency counts from
    /// each batch's intended send time
    #[arg(long, value_name = "RECORDS_PER_SEC")]
    pub rate: Option<u64>,
    /// Distinct partition keys (or message groups with --message-groups), used in turn
    #[arg(long, default_value_t = DEFAULT_KEY_SPACE, value_name = "N")]
    pub key_space: u64,
    /// Send the keys as FIFO message group ids instead of plain partition keys
    #[arg(long)]
    pub message_groups: bool,
    /// Give every record a unique deduplication id
    #[arg(long)]
    pub dedup: bool,
    /// Subscriptions held open on an idle stream (`<stream>-idle`) during the whole run
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub idle_subscribers: usize,
    /// Embedded server: bytes of log each shard keeps; older sealed segments are deleted
    /// (checked every second), so that long runs fit on the disk [default: no limit]
    #[arg(long, value_name = "BYTES", requires = "embedded")]
    pub shard_retention_bytes: Option<u64>,
    /// Route workload: the rule routes only the records matching this EventBridge pattern
    /// [default: every record; with --route-attributes '{"kind":["order"]}' on the attributes]
    #[arg(long, value_name = "PATTERN")]
    pub route_filter: Option<String>,
    /// Route workload: what --route-filter applies to
    #[arg(long, value_enum, default_value_t = RouteScope::Data, requires = "route_filter")]
    pub route_filter_scope: RouteScope,
    /// Route workload: producers give 3 records of 4 the attribute kind=order and the 4th
    /// kind=noise
    #[arg(long)]
    pub route_attributes: bool,
    /// Reshard workload: the open shard count the stream is doubled up to, then halved back
    /// from, in steps the server's scaling factor of 2 allows [default: 64]
    #[arg(long, value_name = "N")]
    pub reshard_to: Option<u32>,
    /// Queue workload: the kind of queue group [default: fifo]
    #[arg(long, value_enum, value_name = "TYPE")]
    pub queue_type: Option<QueueType>,
    /// Queue workload: message groups the records cycle through, as ids g0, g1, …; they take
    /// the place of --key-space [default: 1000]
    #[arg(long, value_name = "N")]
    pub queue_groups: Option<u64>,
    /// Queue workload: most messages per ReceiveMessages, all deleted by one DeleteMessages
    /// [default: 500]
    #[arg(long, value_name = "N")]
    pub queue_batch: Option<u32>,
    /// Print the result as one JSON object on standard output
    #[arg(long)]
    pub json: bool,
}

impl Default for BenchArgs {
    /// The command's defaults with `--embedded`: what `shardlog bench --embedded` runs.
    fn default() -> Self {
        BenchArgs {
            server: None,
            api: Api::Grpc,
            kinesis_endpoint: None,
            token: None,
            ca_cert: None,
            client_cert: None,
            client_key: None,
            embedded: true,
            data_dir: None,
            fsync: None,
            workload: Workload::Produce,
            consume_mode: ConsumeMode::GetRecords,
            put_api: PutApi::Stream,
            in_flight: DEFAULT_IN_FLIGHT,
            stream: DEFAULT_STREAM.to_owned(),
            shards: DEFAULT_SHARDS,
            producers: DEFAULT_PRODUCERS,
            consumers: None,
            record_size: DEFAULT_RECORD_BYTES,
            batch_size: DEFAULT_BATCH_SIZE,
            duration: DEFAULT_DURATION,
            records: None,
            rate: None,
            key_space: DEFAULT_KEY_SPACE,
            message_groups: false,
            dedup: false,
            idle_subscribers: 0,
            shard_retention_bytes: None,
            route_filter: None,
            route_filter_scope: RouteScope::Data,
            route_attributes: false,
            reshard_to: None,
            queue_type: None,
            queue_groups: None,
            queue_batch: None,
            json: false,
        }
    }
}

fn parse_fsync(s: &str) -> Result<FsyncPolicy, String> {
    s.parse()
}

/// Parses a duration: a number of seconds (`30`, `0.5`) or a number with a unit (`500ms`,
/// `30s`, `2m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|e| format!("invalid duration {s:?}: {e}"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "invalid duration {s:?}: unknown unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Where the bench's server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A server already running at this URL: its gRPC URL, or with `--api kinesis` its Kinesis
    /// endpoint's.
    Remote(String),
    /// A server started in this process for the run.
    Embedded {
        /// Parent of the temporary data directory.
        parent: PathBuf,
        fsync: FsyncPolicy,
    },
}

/// A validated run: every setting checked, defaults resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target: Target,
    /// How the gRPC clients connect: token and TLS.
    pub client: shardlog::client::ClientOptions,
    /// The API of the measured traffic (and, for Kinesis, of the setup).
    pub api: Api,
    pub workload: Workload,
    pub consume_mode: ConsumeMode,
    pub put_api: PutApi,
    /// Batches a streaming producer keeps unanswered.
    pub in_flight: usize,
    pub stream: String,
    pub shards: u32,
    pub producers: usize,
    pub consumers: usize,
    pub record_size: usize,
    pub batch_size: usize,
    pub duration: Duration,
    /// Records to put (produce, e2e: `None` = until the duration ends) or to store first
    /// (consume: always set).
    pub records: Option<u64>,
    pub rate: Option<u64>,
    pub key_space: u64,
    pub message_groups: bool,
    pub dedup: bool,
    pub idle_subscribers: usize,
    pub shard_retention_bytes: Option<u64>,
    /// Route: the rule's filter; `None` routes every record.
    pub route_filter: Option<RouteFilter>,
    /// Route: producers give records a `kind` attribute.
    pub route_attributes: bool,
    /// Queue: the queue group and how it is used; `None` for the other workloads.
    pub queue: Option<QueueSettings>,
    /// Reshard: the open shard count after each switch, in order; empty for the others.
    pub reshard_steps: Vec<u32>,
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> BenchError {
    BenchError::InvalidArgument {
        setting,
        reason: reason.into(),
    }
}

impl Plan {
    /// Checks every setting against the others and against the server's default limits (a
    /// batch the server would reject whole measures nothing).
    pub fn from_args(args: &BenchArgs) -> Result<Plan, BenchError> {
        let target = match (&args.server, args.embedded) {
            (Some(_), true) => return Err(invalid("server", "give either --server or --embedded")),
            (Some(url), false) => Target::Remote(url.clone()),
            (None, false) => Target::Remote(DEFAULT_SERVER.to_owned()),
            (None, true) => Target::Embedded {
                parent: args.data_dir.clone().unwrap_or_else(std::env::temp_dir),
                fsync: args.fsync.unwrap_or_default(),
            },
        };
        let target = kinesis_target(args, target)?;
        if matches!(target, Target::Remote(_)) && args.fsync.is_some() {
            return Err(invalid("fsync", "applies only to --embedded"));
        }
        if args.stream.is_empty() {
            return Err(invalid("stream", "must not be empty"));
        }
        if args.shards == 0 {
            return Err(invalid("shards", "must be at least 1"));
        }
        let produces = args.workload.produces();
        let reads_shards = matches!(args.workload, Workload::Consume | Workload::E2e);
        if args.producers == 0 {
            return Err(invalid("producers", "must be at least 1"));
        }
        let consumers = args.consumers.unwrap_or(match args.workload {
            Workload::Queue => DEFAULT_QUEUE_CONSUMERS,
            Workload::Produce
            | Workload::Consume
            | Workload::E2e
            | Workload::Route
            | Workload::Reshard => DEFAULT_CONSUMERS,
        });
        if (reads_shards || args.workload == Workload::Queue) && consumers == 0 {
            return Err(invalid("consumers", "must be at least 1"));
        }
        if reads_shards && consumers > args.shards as usize {
            return Err(invalid(
                "consumers",
                format!(
                    "{consumers} consumers for {} shards: each shard is read by one consumer",
                    args.shards
                ),
            ));
        }
        let min_record = if args.workload == Workload::E2e {
            TIMESTAMP_BYTES
        } else {
            1
        };
        if args.record_size < min_record || args.record_size > DEFAULT_MAX_RECORD_BYTES {
            return Err(invalid(
                "record-size",
                format!(
                    "{} is outside [{min_record}, {DEFAULT_MAX_RECORD_BYTES}]{}",
                    args.record_size,
                    if min_record > 1 {
                        " (an e2e record carries its 8-byte send time)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        if args.batch_size == 0 || args.batch_size > DEFAULT_MAX_PUT_ENTRIES {
            return Err(invalid(
                "batch-size",
                format!(
                    "{} is outside [1, {DEFAULT_MAX_PUT_ENTRIES}]",
                    args.batch_size
                ),
            ));
        }
        if args.key_space == 0 || args.key_space > MAX_KEY_SPACE {
            return Err(invalid(
                "key-space",
                format!("{} is outside [1, {MAX_KEY_SPACE}]", args.key_space),
            ));
        }
        let queue = queue_settings(args)?;
        // A queue run's records carry their message group as partition key and group id.
        let (key_space, message_groups) = match &queue {
            Some(queue) => (queue.groups, true),
            None => (args.key_space, args.message_groups),
        };
        let key_bytes = match &queue {
            Some(_) => message_group_name(key_space - 1).len(),
            None => key_name(key_space - 1).len(),
        };
        let attribute_bytes = if args.route_attributes {
            KIND_ATTRIBUTE_BYTES
        } else {
            0
        };
        // The server counts a request's data, partition keys and attributes against its size
        // limit.
        let request_bytes = args.batch_size * (args.record_size + key_bytes + attribute_bytes);
        if request_bytes > DEFAULT_MAX_PUT_REQUEST_BYTES {
            return Err(invalid(
                "batch-size",
                format!(
                    "{} records of {} bytes make {request_bytes} bytes per request, past the \
                     server's default limit of {DEFAULT_MAX_PUT_REQUEST_BYTES}",
                    args.batch_size, args.record_size
                ),
            ));
        }
        if args.duration.is_zero() || args.duration > MAX_DURATION {
            return Err(invalid(
                "duration",
                format!(
                    "{:?} is outside (0, {} h]",
                    args.duration,
                    MAX_DURATION.as_secs() / 3600
                ),
            ));
        }
        if args.in_flight == 0 {
            return Err(invalid("in_flight", "must be at least 1"));
        }
        if args.records == Some(0) {
            return Err(invalid("records", "must be at least 1"));
        }
        match args.rate {
            Some(0) => return Err(invalid("rate", "must be at least 1 record per second")),
            Some(_) if !produces => {
                return Err(invalid(
                    "rate",
                    "applies to the produce, e2e and route workloads",
                ))
            }
            _ => {}
        }
        let route_filter = route_filter(args)?;
        let records = match args.workload {
            Workload::Consume => Some(args.records.unwrap_or(DEFAULT_CONSUME_RECORDS)),
            Workload::Queue => Some(args.records.unwrap_or(DEFAULT_QUEUE_RECORDS)),
            Workload::Produce | Workload::E2e | Workload::Route | Workload::Reshard => args.records,
        };
        let reshard_steps = reshard_steps(args)?;
        let tls = shardlog::client::ClientTls::from_files(
            args.ca_cert.as_deref(),
            args.client_cert.as_deref(),
            args.client_key.as_deref(),
        )
        .map_err(|e| BenchError::InvalidArgument {
            setting: "ca-cert",
            reason: e.to_string(),
        })?;
        let client = shardlog::client::ClientOptions {
            token: args.token.clone(),
            tls,
            ..Default::default()
        };
        Ok(Plan {
            target,
            client,
            api: args.api,
            workload: args.workload,
            consume_mode: args.consume_mode,
            // A Kinesis producer sends one PutRecords per batch and waits for its answer.
            put_api: match args.api {
                Api::Grpc => args.put_api,
                Api::Kinesis => PutApi::Unary,
            },
            in_flight: args.in_flight,
            stream: args.stream.clone(),
            shards: args.shards,
            producers: args.producers,
            consumers,
            record_size: args.record_size,
            batch_size: args.batch_size,
            duration: args.duration,
            records,
            rate: args.rate,
            key_space,
            message_groups,
            dedup: args.dedup,
            idle_subscribers: args.idle_subscribers,
            shard_retention_bytes: args.shard_retention_bytes,
            route_filter,
            route_attributes: args.route_attributes,
            queue,
            reshard_steps,
        })
    }

    /// The fsync policy in force, when the bench runs the server.
    pub fn fsync(&self) -> Option<FsyncPolicy> {
        match &self.target {
            Target::Embedded { fsync, .. } => Some(*fsync),
            Target::Remote(_) => None,
        }
    }
}

/// Checks the settings of `--api` against the rest, and returns where a Kinesis run goes:
/// `target` unchanged for a gRPC run or an embedded one, `--kinesis-endpoint` (or its default)
/// for any other.
fn kinesis_target(args: &BenchArgs, target: Target) -> Result<Target, BenchError> {
    if args.api == Api::Grpc {
        return match args.kinesis_endpoint {
            Some(_) => Err(invalid("kinesis-endpoint", "applies with --api kinesis")),
            None => Ok(target),
        };
    }
    match args.workload {
        Workload::Produce | Workload::Consume => {}
        Workload::E2e | Workload::Route | Workload::Queue | Workload::Reshard => {
            return Err(invalid(
                "api",
                format!(
                    "kinesis applies to the produce and consume workloads, not {}",
                    args.workload.name()
                ),
            ))
        }
    }
    // Each of these needs a gRPC call the Kinesis API does not have.
    let refused = [
        (
            "server",
            args.server.is_some(),
            "a Kinesis run drives --kinesis-endpoint (or --embedded)",
        ),
        (
            "rate",
            args.rate.is_some(),
            "an open loop needs several requests in flight on one connection, which HTTP/1.1 \
             does not do: a Kinesis run is closed loop",
        ),
        (
            "dedup",
            args.dedup,
            "the Kinesis API has no deduplication ids",
        ),
        (
            "message-groups",
            args.message_groups,
            "the Kinesis API has no message groups",
        ),
        (
            "idle-subscribers",
            args.idle_subscribers > 0,
            "the idle subscriptions are gRPC ones",
        ),
        (
            "consume-mode",
            args.consume_mode != ConsumeMode::GetRecords,
            "a Kinesis consume run reads with GetRecords as records (SubscribeToShard needs \
             HTTP/2 event streams, which the bench does not drive; frames are gRPC's)",
        ),
    ];
    if let Some((setting, _, reason)) = refused.into_iter().find(|(_, given, _)| *given) {
        return Err(invalid(setting, reason));
    }
    match (&args.kinesis_endpoint, target) {
        (Some(_), Target::Embedded { .. }) => Err(invalid(
            "kinesis-endpoint",
            "give either --kinesis-endpoint or --embedded (the embedded server serves the \
             Kinesis API on an address of its own)",
        )),
        (None, target @ Target::Embedded { .. }) => Ok(target),
        (endpoint, Target::Remote(_)) => {
            let url = endpoint.as_deref().unwrap_or(DEFAULT_KINESIS_ENDPOINT);
            KinesisEndpoint::parse(url).map_err(|reason| invalid("kinesis-endpoint", reason))?;
            Ok(Target::Remote(url.to_owned()))
        }
    }
}

/// Checks `--reshard-to` and returns the shard counts a reshard run switches through: doubling
/// from `--shards` up to it, then halving back (the last step of each way may be smaller).
fn reshard_steps(args: &BenchArgs) -> Result<Vec<u32>, BenchError> {
    if args.workload != Workload::Reshard {
        return match args.reshard_to {
            Some(_) => Err(invalid("reshard-to", "applies to the reshard workload")),
            None => Ok(Vec::new()),
        };
    }
    let top = args.reshard_to.unwrap_or(DEFAULT_RESHARD_TO);
    if top <= args.shards || top > shardlog::stream::DEFAULT_MAX_SHARD_COUNT {
        return Err(invalid(
            "reshard-to",
            format!(
                "{top} must be above --shards ({}) and at most {}",
                args.shards,
                shardlog::stream::DEFAULT_MAX_SHARD_COUNT
            ),
        ));
    }
    let mut up = vec![args.shards];
    while *up.last().unwrap_or(&top) < top {
        let next = (up[up.len() - 1] * 2).min(top);
        up.push(next);
    }
    let mut steps: Vec<u32> = up[1..].to_vec();
    steps.extend(up[..up.len() - 1].iter().rev());
    Ok(steps)
}

/// Checks the route settings: they apply to the route workload only, and the names the run
/// derives from the stream's must be valid. Returns the rule's filter.
fn route_filter(args: &BenchArgs) -> Result<Option<RouteFilter>, BenchError> {
    if args.workload != Workload::Route {
        if args.route_filter.is_some() {
            return Err(invalid("route-filter", "applies to the route workload"));
        }
        if args.route_attributes {
            return Err(invalid("route-attributes", "applies to the route workload"));
        }
        return Ok(None);
    }
    let target = routed_stream_name(&args.stream);
    if let Err(e) = StreamName::new(target.as_str()) {
        return Err(invalid(
            "stream",
            format!("the route target {target:?} is not a valid stream name: {e}"),
        ));
    }
    let rule = route_rule_name(&args.stream);
    if let Err(e) = RuleName::new(rule.as_str()) {
        return Err(invalid(
            "stream",
            format!("the route rule {rule:?} is not a valid rule name: {e}"),
        ));
    }
    Ok(match &args.route_filter {
        Some(pattern) if pattern.trim().is_empty() => {
            return Err(invalid("route-filter", "must not be empty"))
        }
        Some(pattern) => Some(RouteFilter {
            pattern: pattern.clone(),
            scope: args.route_filter_scope,
        }),
        None if args.route_attributes => Some(RouteFilter {
            pattern: DEFAULT_ROUTE_ATTRIBUTES_PATTERN.to_owned(),
            scope: RouteScope::Attributes,
        }),
        None => None,
    })
}

/// Checks the queue settings: they apply to the queue workload only, within the server's
/// default limits. Returns them with their defaults for a queue run.
fn queue_settings(args: &BenchArgs) -> Result<Option<QueueSettings>, BenchError> {
    if args.workload != Workload::Queue {
        let given = [
            ("queue-type", args.queue_type.is_some()),
            ("queue-groups", args.queue_groups.is_some()),
            ("queue-batch", args.queue_batch.is_some()),
        ];
        return match given.into_iter().find(|(_, given)| *given) {
            Some((setting, _)) => Err(invalid(setting, "applies to the queue workload")),
            None => Ok(None),
        };
    }
    if args.message_groups {
        return Err(invalid(
            "message-groups",
            "a queue run's records always carry a message group id (see --queue-groups)",
        ));
    }
    let groups = args.queue_groups.unwrap_or(DEFAULT_QUEUE_GROUPS);
    if groups == 0 || groups > MAX_KEY_SPACE {
        return Err(invalid(
            "queue-groups",
            format!("{groups} is outside [1, {MAX_KEY_SPACE}]"),
        ));
    }
    // One receive's handles go out in one delete: both limits apply.
    let max_batch = DEFAULT_MAX_RECEIVE_MESSAGES.min(DEFAULT_MAX_DELETE_HANDLES);
    let batch = args.queue_batch.unwrap_or(DEFAULT_QUEUE_BATCH);
    if batch == 0 || batch as usize > max_batch {
        return Err(invalid(
            "queue-batch",
            format!("{batch} is outside [1, {max_batch}]"),
        ));
    }
    Ok(Some(QueueSettings {
        kind: args.queue_type.unwrap_or(QueueType::Fifo),
        groups,
        batch,
    }))
}

/// The queue group of a queue run: the run's own, so that runs against one server never share
/// one.
pub fn queue_group_name(run_id: &str) -> String {
    format!("bench-queue-{run_id}")
}

/// The stream a route run's rule routes `stream` into.
pub fn routed_stream_name(stream: &str) -> String {
    format!("{stream}-routed")
}

/// The rule of a route run on `stream`.
pub fn route_rule_name(stream: &str) -> String {
    format!("{stream}-bench")
}

/// The `n`-th partition key (or message group id).
pub fn key_name(n: u64) -> String {
    format!("k{n}")
}

/// The `n`-th message group id of a queue run (its partition key as well).
pub fn message_group_name(n: u64) -> String {
    format!("g{n}")
}

/// The command-line name of a fsync policy.
pub fn fsync_name(policy: FsyncPolicy) -> &'static str {
    match policy {
        FsyncPolicy::Always => "always",
        FsyncPolicy::Interval(_) => "interval",
        FsyncPolicy::Never => "never",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(line: &[&str]) -> Result<BenchArgs, clap::Error> {
        let mut argv = vec!["bench"];
        argv.extend_from_slice(line);
        Cli::try_parse_from(argv).map(|cli| cli.args)
    }

    fn plan(line: &[&str]) -> Result<Plan, BenchError> {
        Plan::from_args(&parse(line).expect("the line parses"))
    }

    fn rejected_setting(line: &[&str]) -> &'static str {
        match plan(line) {
            Err(BenchError::InvalidArgument { setting, .. }) => setting,
            other => panic!("expected an invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn defaults_drive_the_default_server_with_a_produce_run() {
        let plan = plan(&[]).expect("defaults are valid");
        assert_eq!(plan.target, Target::Remote(DEFAULT_SERVER.to_owned()));
        assert_eq!(plan.workload, Workload::Produce);
        assert_eq!(plan.duration, DEFAULT_DURATION);
        assert_eq!(plan.records, None);
        assert_eq!(plan.fsync(), None);
    }

    #[test]
    fn embedded_takes_the_fsync_policy_and_defaults_to_always() {
        let never = plan(&["--embedded", "--fsync", "never"]).expect("valid");
        assert_eq!(never.fsync(), Some(FsyncPolicy::Never));
        let default = plan(&["--embedded"]).expect("valid");
        assert_eq!(default.fsync(), Some(FsyncPolicy::Always));
    }

    #[test]
    fn fsync_without_embedded_is_refused_by_the_parser() {
        assert!(parse(&["--fsync", "never"]).is_err());
        assert!(parse(&["--embedded", "--fsync", "sometimes"]).is_err());
    }

    #[test]
    fn server_and_embedded_together_are_refused() {
        assert!(parse(&["--embedded", "--server", "http://127.0.0.1:1"]).is_err());
        let args = BenchArgs {
            server: Some("http://127.0.0.1:1".into()),
            ..BenchArgs::default()
        };
        assert!(matches!(
            Plan::from_args(&args),
            Err(BenchError::InvalidArgument {
                setting: "server",
                ..
            })
        ));
    }

    #[test]
    fn out_of_range_settings_name_the_flag() {
        assert_eq!(rejected_setting(&["--shards", "0"]), "shards");
        assert_eq!(rejected_setting(&["--producers", "0"]), "producers");
        assert_eq!(rejected_setting(&["--record-size", "0"]), "record-size");
        assert_eq!(
            rejected_setting(&["--record-size", "2000000"]),
            "record-size"
        );
        assert_eq!(rejected_setting(&["--batch-size", "0"]), "batch-size");
        assert_eq!(rejected_setting(&["--batch-size", "501"]), "batch-size");
        assert_eq!(rejected_setting(&["--duration", "0"]), "duration");
        assert_eq!(rejected_setting(&["--duration", "25h"]), "duration");
        assert_eq!(rejected_setting(&["--records", "0"]), "records");
        assert_eq!(rejected_setting(&["--rate", "0"]), "rate");
        assert_eq!(rejected_setting(&["--key-space", "0"]), "key-space");
        assert_eq!(rejected_setting(&["--key-space", "1000001"]), "key-space");
    }

    #[test]
    fn a_batch_past_the_request_size_limit_is_refused() {
        // 500 records of 16 KiB are 8 MiB, past the 5 MiB request limit.
        assert_eq!(
            rejected_setting(&["--record-size", "16384", "--batch-size", "500"]),
            "batch-size"
        );
        assert!(plan(&["--record-size", "8192", "--batch-size", "500"]).is_ok());
    }

    #[test]
    fn e2e_records_must_hold_the_send_time() {
        assert_eq!(
            rejected_setting(&["--workload", "e2e", "--record-size", "7"]),
            "record-size"
        );
        assert!(plan(&["--workload", "e2e", "--record-size", "8"]).is_ok());
        assert!(plan(&["--workload", "produce", "--record-size", "1"]).is_ok());
    }

    #[test]
    fn readers_may_not_outnumber_shards() {
        assert_eq!(
            rejected_setting(&["--workload", "consume", "--shards", "2", "--consumers", "3"]),
            "consumers"
        );
        assert_eq!(
            rejected_setting(&["--workload", "e2e", "--consumers", "0"]),
            "consumers"
        );
        // A produce run has no readers to count.
        assert!(plan(&["--shards", "2", "--consumers", "3"]).is_ok());
    }

    #[test]
    fn rate_is_refused_for_a_consume_run() {
        assert_eq!(
            rejected_setting(&["--workload", "consume", "--rate", "1000"]),
            "rate"
        );
        assert!(plan(&["--workload", "e2e", "--rate", "1000"]).is_ok());
    }

    #[test]
    fn a_consume_run_always_has_a_record_count() {
        let default = plan(&["--workload", "consume"]).expect("valid");
        assert_eq!(default.records, Some(DEFAULT_CONSUME_RECORDS));
        let given = plan(&["--workload", "consume", "--records", "7"]).expect("valid");
        assert_eq!(given.records, Some(7));
    }

    #[test]
    fn a_route_run_routes_every_record_unless_filtered() {
        let route = plan(&["--workload", "route"]).expect("valid");
        assert_eq!(route.workload, Workload::Route);
        assert_eq!(route.route_filter, None);
        assert!(!route.route_attributes);
        assert!(plan(&["--workload", "route", "--rate", "1000"]).is_ok());
    }

    #[test]
    fn route_attributes_filter_on_the_kind_attribute_by_default() {
        let route = plan(&["--workload", "route", "--route-attributes"]).expect("valid");
        assert!(route.route_attributes);
        assert_eq!(
            route.route_filter,
            Some(RouteFilter {
                pattern: r#"{"kind":["order"]}"#.to_owned(),
                scope: RouteScope::Attributes,
            })
        );
    }

    #[test]
    fn a_route_filter_applies_to_the_data_unless_a_scope_is_given() {
        let data = plan(&["--workload", "route", "--route-filter", r#"{"a":[1]}"#]).expect("valid");
        assert_eq!(
            data.route_filter,
            Some(RouteFilter {
                pattern: r#"{"a":[1]}"#.to_owned(),
                scope: RouteScope::Data,
            })
        );
        let attributes = plan(&[
            "--workload",
            "route",
            "--route-attributes",
            "--route-filter",
            r#"{"kind":["noise"]}"#,
            "--route-filter-scope",
            "attributes",
        ])
        .expect("valid");
        assert_eq!(
            attributes.route_filter,
            Some(RouteFilter {
                pattern: r#"{"kind":["noise"]}"#.to_owned(),
                scope: RouteScope::Attributes,
            })
        );
        assert!(parse(&["--workload", "route", "--route-filter-scope", "attributes"]).is_err());
        assert!(parse(&["--route-filter", "{}", "--route-filter-scope", "body"]).is_err());
    }

    #[test]
    fn route_settings_are_refused_outside_a_route_run() {
        assert_eq!(
            rejected_setting(&["--route-filter", r#"{"a":[1]}"#]),
            "route-filter"
        );
        assert_eq!(
            rejected_setting(&["--workload", "e2e", "--route-attributes"]),
            "route-attributes"
        );
        assert_eq!(
            rejected_setting(&["--workload", "route", "--route-filter", " "]),
            "route-filter"
        );
    }

    #[test]
    fn a_route_run_needs_names_it_can_derive_from_the_stream() {
        assert_eq!(routed_stream_name("orders"), "orders-routed");
        assert_eq!(route_rule_name("orders"), "orders-bench");
        // A rule name holds at most 64 bytes: `<stream>-bench` must fit.
        let long = "s".repeat(60);
        assert_eq!(
            rejected_setting(&["--workload", "route", "--stream", &long]),
            "stream"
        );
        assert!(plan(&["--stream", &long]).is_ok());
    }

    #[test]
    fn route_attributes_count_against_the_request_size_limit() {
        // 500 records of 10,420 bytes and keys fit 5 MiB; with the kind attribute they do not.
        let line = [
            "--workload",
            "route",
            "--record-size",
            "10420",
            "--batch-size",
            "500",
        ];
        assert!(plan(&line).is_ok());
        let mut with_attributes = line.to_vec();
        with_attributes.push("--route-attributes");
        assert_eq!(rejected_setting(&with_attributes), "batch-size");
    }

    #[test]
    fn a_queue_run_defaults_to_a_fifo_group_over_a_thousand_message_groups_and_two_workers() {
        let queue = plan(&["--workload", "queue"]).expect("valid");
        assert_eq!(
            queue.queue,
            Some(QueueSettings {
                kind: QueueType::Fifo,
                groups: DEFAULT_QUEUE_GROUPS,
                batch: DEFAULT_QUEUE_BATCH,
            })
        );
        assert_eq!(queue.consumers, DEFAULT_QUEUE_CONSUMERS);
        assert_eq!(queue.records, Some(DEFAULT_QUEUE_RECORDS));
        // The records' keys are the message groups.
        assert_eq!(queue.key_space, DEFAULT_QUEUE_GROUPS);
        assert!(queue.message_groups);
        assert_eq!(plan(&[]).expect("valid").consumers, DEFAULT_CONSUMERS);
        assert_eq!(plan(&[]).expect("valid").queue, None);
    }

    #[test]
    fn a_queue_run_takes_its_type_groups_batch_and_more_workers_than_shards() {
        let queue = plan(&[
            "--workload",
            "queue",
            "--queue-type",
            "standard",
            "--queue-groups",
            "7",
            "--queue-batch",
            "1000",
            "--shards",
            "2",
            "--consumers",
            "4",
            "--records",
            "9",
        ])
        .expect("valid");
        assert_eq!(
            queue.queue,
            Some(QueueSettings {
                kind: QueueType::Standard,
                groups: 7,
                batch: 1000,
            })
        );
        assert_eq!((queue.consumers, queue.records), (4, Some(9)));
        assert_eq!(message_group_name(6), "g6");
        assert!(parse(&["--workload", "queue", "--queue-type", "lifo"]).is_err());
    }

    #[test]
    fn queue_settings_out_of_range_or_outside_a_queue_run_name_the_flag() {
        let queue = |extra: &[&str]| {
            let mut line = vec!["--workload", "queue"];
            line.extend_from_slice(extra);
            rejected_setting(&line)
        };
        assert_eq!(queue(&["--queue-batch", "0"]), "queue-batch");
        assert_eq!(queue(&["--queue-batch", "1001"]), "queue-batch");
        assert_eq!(queue(&["--queue-groups", "0"]), "queue-groups");
        assert_eq!(queue(&["--queue-groups", "1000001"]), "queue-groups");
        assert_eq!(queue(&["--consumers", "0"]), "consumers");
        assert_eq!(queue(&["--message-groups"]), "message-groups");
        assert_eq!(queue(&["--rate", "1000"]), "rate");
        assert_eq!(rejected_setting(&["--queue-type", "fifo"]), "queue-type");
        assert_eq!(
            rejected_setting(&["--workload", "consume", "--queue-groups", "5"]),
            "queue-groups"
        );
        assert_eq!(
            rejected_setting(&["--workload", "e2e", "--queue-batch", "5"]),
            "queue-batch"
        );
    }

    #[test]
    fn the_api_is_grpc_unless_kinesis_is_asked_for() {
        assert_eq!(plan(&[]).expect("valid").api, Api::Grpc);
        let kinesis = plan(&["--api", "kinesis"]).expect("valid");
        assert_eq!(kinesis.api, Api::Kinesis);
        // The server's default --kinesis-listen, not the gRPC default.
        assert_eq!(
            kinesis.target,
            Target::Remote(DEFAULT_KINESIS_ENDPOINT.to_owned())
        );
        // One PutRecords per batch, closed loop: nothing streams over HTTP/1.1.
        assert_eq!(kinesis.put_api, PutApi::Unary);
        assert!(parse(&["--api", "rest"]).is_err());
    }

    #[test]
    fn a_kinesis_run_drives_the_endpoint_given_or_the_embedded_servers() {
        let given = plan(&[
            "--api",
            "kinesis",
            "--kinesis-endpoint",
            "http://127.0.0.1:4569",
            "--workload",
            "consume",
        ])
        .expect("valid");
        assert_eq!(
            given.target,
            Target::Remote("http://127.0.0.1:4569".to_owned())
        );
        let embedded =
            plan(&["--api", "kinesis", "--embedded", "--fsync", "never"]).expect("valid");
        assert!(matches!(embedded.target, Target::Embedded { .. }));
        assert_eq!(embedded.fsync(), Some(FsyncPolicy::Never));
    }

    #[test]
    fn kinesis_is_refused_outside_the_produce_and_consume_workloads() {
        for workload in ["e2e", "route", "queue"] {
            assert_eq!(
                rejected_setting(&["--api", "kinesis", "--workload", workload]),
                "api",
                "{workload}"
            );
        }
        match plan(&["--api", "kinesis", "--workload", "e2e"]) {
            Err(e) => assert_eq!(
                e.to_string(),
                "invalid --api: kinesis applies to the produce and consume workloads, not e2e"
            ),
            Ok(plan) => panic!("accepted: {plan:?}"),
        }
    }

    #[test]
    fn a_kinesis_endpoint_needs_the_kinesis_api_no_embedded_server_and_a_plain_http_url() {
        let endpoint = ["--kinesis-endpoint", "http://127.0.0.1:4569"];
        assert_eq!(rejected_setting(&endpoint), "kinesis-endpoint");
        let mut embedded = vec!["--api", "kinesis", "--embedded"];
        embedded.extend_from_slice(&endpoint);
        assert_eq!(rejected_setting(&embedded), "kinesis-endpoint");
        for url in [
            "https://127.0.0.1:4567",
            "127.0.0.1:4567",
            "http://h:1/path",
        ] {
            assert_eq!(
                rejected_setting(&["--api", "kinesis", "--kinesis-endpoint", url]),
                "kinesis-endpoint",
                "{url}"
            );
        }
    }

    #[test]
    fn settings_the_kinesis_api_has_no_call_for_are_refused_by_name() {
        let kinesis = |extra: &[&str]| {
            let mut line = vec!["--api", "kinesis"];
            line.extend_from_slice(extra);
            rejected_setting(&line)
        };
        assert_eq!(kinesis(&["--server", "http://127.0.0.1:50051"]), "server");
        assert_eq!(kinesis(&["--rate", "1000"]), "rate");
        assert_eq!(kinesis(&["--dedup"]), "dedup");
        assert_eq!(kinesis(&["--message-groups"]), "message-groups");
        assert_eq!(kinesis(&["--idle-subscribers", "2"]), "idle-subscribers");
        assert_eq!(
            kinesis(&["--workload", "consume", "--consume-mode", "subscribe"]),
            "consume-mode"
        );
        // The limits of a batch are the same as over gRPC.
        assert_eq!(kinesis(&["--batch-size", "501"]), "batch-size");
        assert!(plan(&[
            "--api",
            "kinesis",
            "--batch-size",
            "500",
            "--workload",
            "consume"
        ])
        .is_ok());
    }

    #[test]
    fn durations_take_seconds_or_a_unit() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("-1").is_err());
    }
}
