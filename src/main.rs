//! The `shardlog` binary: `serve` runs the server; every other command is a client of one.

use std::future::Future;
use std::io::{self, BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio::net::TcpListener;

use shardlog::broker::{Broker, DEFAULT_MAX_PUT_ENTRIES, DEFAULT_MAX_PUT_REQUEST_BYTES};
use shardlog::client::{
    random_member_id, Batch, Client, ConsumerConfig, GroupConsumer, Membership, Position,
};
use shardlog::config::{Config, Settings};
use shardlog::fsio::RealIo;
use shardlog::proto::v1::{
    CreateStreamRequest, DedupScope, PutRecordRequest, PutRecordsRequestEntry, Record,
    StreamDescription, StreamStatus,
};

/// Server a client command talks to when neither `--server` nor `SHARDLOG_SERVER` says.
const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";
/// Log filter of client commands when `SHARDLOG_LOG` is unset: only what went wrong.
const CLIENT_LOG: &str = "warn";
/// Records `get` prints when `--limit` is not given.
const DEFAULT_GET_LIMIT: usize = 1000;

/// A durable, shard-partitioned stream log with FIFO message groups, deduplication and
/// consumer groups, served over gRPC.
#[derive(Debug, Parser)]
#[command(name = "shardlog", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server. Every setting is a flag, a SHARDLOG_* environment variable, or a key of
    /// the --config TOML file, in that order of precedence.
    Serve(Settings),
    #[command(flatten)]
    Client(ClientCommand),
    /// Load generator: drive a server (--server URL, or --embedded in this process) with a
    /// produce, consume or e2e workload and report throughput and latency percentiles.
    Bench(shardlog::bench::BenchArgs),
}

/// The commands that talk to a running server.
#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Create, list, describe or delete streams.
    #[command(subcommand)]
    Stream(StreamCommand),
    /// Put one record (DATA), or one record per line of standard input.
    Put(PutArgs),
    /// Read records of one shard from a position.
    Get(GetArgs),
    /// Print records of every shard as they arrive, until Ctrl-C.
    Tail(TailArgs),
    /// List, describe or delete consumer groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Consume a stream as a member of a consumer group, checkpointing as records are printed.
    Consume(ConsumeArgs),
}

/// The server a client command talks to.
#[derive(Debug, Args)]
struct ServerArg {
    /// URL of the shardlog server
    #[arg(long = "server", env = "SHARDLOG_SERVER", default_value = DEFAULT_SERVER, value_name = "URL")]
    url: String,
}

impl ServerArg {
    async fn connect(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(self.url.clone()).await?)
    }
}

#[derive(Debug, Subcommand)]
enum StreamCommand {
    /// Create a stream.
    Create(CreateArgs),
    /// List every stream.
    List {
        #[command(flatten)]
        server: ServerArg,
    },
    /// Show a stream's settings and shards.
    Describe {
        /// Name of the stream
        name: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Delete a stream, its records and its groups.
    Delete {
        /// Name of the stream
        name: String,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// Name of the new stream: [a-zA-Z0-9_.-], 1 to 128 characters
    name: String,
    /// Number of shards
    #[arg(long, value_name = "N")]
    shards: u32,
    /// How long records are kept, in hours [default: the server's, 24]
    #[arg(long, value_name = "H")]
    retention_hours: Option<u32>,
    /// Deduplicate records without a deduplication id by the SHA-256 of their data
    #[arg(long)]
    content_based_dedup: bool,
    /// How long deduplication ids are remembered, in seconds [default: the server's, 300]
    #[arg(long, value_name = "S")]
    dedup_window_secs: Option<u32>,
    /// Which key deduplication ids are unique within
    #[arg(long, value_enum, default_value_t = Scope::Stream)]
    dedup_scope: Scope,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scope {
    /// Unique across the stream
    Stream,
    /// Unique within the record's message group
    MessageGroup,
}

#[derive(Debug, Args)]
struct PutArgs {
    /// Name of the stream
    stream: String,
    /// Partition key: chooses the shard (unless --group is given)
    #[arg(long, value_name = "K")]
    partition_key: String,
    /// FIFO message group: all records of a group go to one shard, in order
    #[arg(long, value_name = "G")]
    group: Option<String>,
    /// Deduplication id; with standard input, line N gets the id D-N
    #[arg(long, value_name = "D")]
    dedup_id: Option<String>,
    /// The record's data; without it, every line of standard input is a record
    data: Option<String>,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Debug, Args)]
struct GetArgs {
    /// Name of the stream
    stream: String,
    /// The shard, e.g. shardId-000000000000
    #[arg(long, value_name = "ID")]
    shard: String,
    /// Where to start: trim-horizon, latest, at:SEQ, after:SEQ or time:MS (ms since the epoch)
    #[arg(long, default_value = "trim-horizon", value_name = "POSITION")]
    from: Position,
    /// Most records to print; reading stops earlier when it reaches the newest record
    #[arg(long, default_value_t = DEFAULT_GET_LIMIT, value_name = "N")]
    limit: usize,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Debug, Args)]
struct TailArgs {
    /// Name of the stream
    stream: String,
    /// Where to start in every shard: trim-horizon, latest, at:SEQ, after:SEQ or time:MS
    #[arg(long, default_value = "latest", value_name = "POSITION")]
    from: Position,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// List a stream's consumer groups.
    List {
        /// Name of the stream
        stream: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Show a group's members and, per shard, owner, epoch, checkpoint and lag.
    Describe {
        /// Name of the stream
        stream: String,
        /// Name of the group
        group: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Delete a group, its checkpoints and its leases.
    Delete {
        /// Name of the stream
        stream: String,
        /// Name of the group
        group: String,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Debug, Args)]
struct ConsumeArgs {
    /// Name of the stream
    stream: String,
    /// Name of the consumer group; created on first join
    #[arg(long, value_name = "G")]
    group: String,
    /// This member's id; give a stable one to get the same shards back after a restart
    /// [default: a random id]
    #[arg(long, value_name = "ID")]
    member_id: Option<String>,
    #[command(flatten)]
    server: ServerArg,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(settings) => serve(settings).await,
        Command::Client(command) => {
            init_client_logging();
            run_client(command).await
        }
        Command::Bench(args) => {
            init_client_logging();
            shardlog::bench::run(args).await.map_err(Into::into)
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            report(&error);
            ExitCode::FAILURE
        }
    }
}

/// Prints an error and its causes on one line. A status is left out: the client error that
/// carries it already says its code and message.
fn report(error: &anyhow::Error) {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause_text = cause.to_string();
        // Transport errors repeat their cause's words in their own message.
        if !cause.is::<tonic::Status>() && !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
    }
    eprintln!("error: {text}");
}

// ----- serve -----------------------------------------------------------------------------------

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let config = Config::load(settings)?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&config.log)?)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
    // Signal handlers first: a SIGTERM during recovery must stop the server, not kill it.
    let shutdown = shutdown_signal()?;
    // Bind before opening the data directory, so a taken port fails fast.
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(
        data_dir = %config.data_dir.display(),
        fsync = ?config.fsync,
        "opening data directory"
    );
    let broker = Broker::open(config.broker_config(), RealIo::shared())
        .await
        .with_context(|| format!("cannot open data directory {}", config.data_dir.display()))?;
    shardlog::server::serve(broker, listener, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C): the server then stops accepting, finishes in-flight
/// requests and syncs every shard.
#[cfg(unix)]
fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "stopping");
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stopping");
    })
}

// ----- client commands -------------------------------------------------------------------------

/// Client commands log to standard error, `warn` and up unless `SHARDLOG_LOG` says otherwise;
/// standard output is theirs.
fn init_client_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHARDLOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(CLIENT_LOG));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
}

async fn run_client(command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Stream(StreamCommand::Create(args)) => create_stream(args).await,
        ClientCommand::Stream(StreamCommand::List { server }) => {
            let names = server.connect().await?.list_streams().await?;
            print_lines(names)
        }
        ClientCommand::Stream(StreamCommand::Describe { name, server }) => {
            let stream = server.connect().await?.describe_stream(&name).await?;
            print_description(&stream)
        }
        ClientCommand::Stream(StreamCommand::Delete { name, server }) => {
            server.connect().await?.delete_stream(&name).await?;
            print_lines([format!("deleted stream {name}")])
        }
        ClientCommand::Put(args) => put(args).await,
        ClientCommand::Get(args) => get(args).await,
        ClientCommand::Tail(args) => tail(args).await,
        ClientCommand::Group(GroupCommand::List { stream, server }) => {
            let names = server.connect().await?.list_groups(&stream).await?;
            print_lines(names)
        }
        ClientCommand::Group(GroupCommand::Describe {
            stream,
            group,
            server,
        }) => describe_group(&server.connect().await?, &stream, &group).await,
        ClientCommand::Group(GroupCommand::Delete {
            stream,
            group,
            server,
        }) => {
            server
                .connect()
                .await?
                .delete_group(&stream, &group)
                .await?;
            print_lines([format!("deleted group {group} of stream {stream}")])
        }
        ClientCommand::Consume(args) => consume(args).await,
    }
}

async fn create_stream(args: CreateArgs) -> anyhow::Result<()> {
    let client = args.server.connect().await?;
    let scope = match args.dedup_scope {
        Scope::Stream => DedupScope::Stream,
        Scope::MessageGroup => DedupScope::MessageGroup,
    };
    let stream = client
        .create_stream_with(CreateStreamRequest {
            stream_name: args.name,
            shard_count: args.shards,
            // 0 asks for the server's default.
            retention_period_hours: args.retention_hours.unwrap_or(0),
            content_based_deduplication: args.content_based_dedup,
            dedup_window_seconds: args.dedup_window_secs.unwrap_or(0),
            dedup_scope: scope as i32,
        })
        .await?;
    print_description(&stream)
}

async fn put(args: PutArgs) -> anyhow::Result<()> {
    let client = args.server.connect().await?;
    let group = args.group.unwrap_or_default();
    if let Some(data) = args.data {
        let put = client
            .put_record_with(PutRecordRequest {
                stream_name: args.stream,
                partition_key: args.partition_key,
                data: data.into(),
                message_group_id: group,
                deduplication_id: args.dedup_id.unwrap_or_default(),
                ..PutRecordRequest::default()
            })
            .await?;
        let duplicate = if put.duplicate { " duplicate" } else { "" };
        return print_lines([format!(
            "{} {}{duplicate}",
            put.shard_id, put.sequence_number
        )]);
    }

    // One record per line, sent in batches that fit the server's default request limits.
    let mut failed = 0usize;
    let mut batch: Vec<PutRecordsRequestEntry> = Vec::new();
    let mut batch_bytes = 0usize;
    let lines = io::stdin().lock().lines();
    for (index, line) in lines.enumerate() {
        let line = line.context("cannot read standard input")?;
        let entry = PutRecordsRequestEntry {
            partition_key: args.partition_key.clone(),
            data: line.into_bytes().into(),
            message_group_id: group.clone(),
            deduplication_id: args
                .dedup_id
                .as_ref()
                .map_or_else(String::new, |id| format!("{id}-{}", index + 1)),
            ..PutRecordsRequestEntry::default()
        };
        let size = entry.data.len() + entry.partition_key.len();
        if !batch.is_empty()
            && (batch.len() == DEFAULT_MAX_PUT_ENTRIES
                || batch_bytes + size > DEFAULT_MAX_PUT_REQUEST_BYTES)
        {
            failed += put_batch(&client, &args.stream, std::mem::take(&mut batch)).await?;
            batch_bytes = 0;
        }
        batch_bytes += size;
        batch.push(entry);
    }
    if !batch.is_empty() {
        failed += put_batch(&client, &args.stream, batch).await?;
    }
    if failed > 0 {
        bail!("{failed} records were not stored");
    }
    Ok(())
}

/// Sends one PutRecords and prints each entry's outcome; returns how many failed.
async fn put_batch(
    client: &Client,
    stream: &str,
    entries: Vec<PutRecordsRequestEntry>,
) -> anyhow::Result<usize> {
    let response = client.put_records(stream, entries).await?;
    let mut out = io::stdout().lock();
    for result in &response.records {
        if result.error_code.is_empty() {
            let duplicate = if result.duplicate { " duplicate" } else { "" };
            writeln!(
                out,
                "{} {}{duplicate}",
                result.shard_id, result.sequence_number
            )?;
        } else {
            writeln!(
                out,
                "failed {}: {}",
                result.error_code, result.error_message
            )?;
        }
    }
    Ok(response.failed_record_count as usize)
}

async fn get(args: GetArgs) -> anyhow::Result<()> {
    let client = args.server.connect().await?;
    let mut iterator = client
        .get_shard_iterator(&args.stream, &args.shard, args.from)
        .await?;
    let mut printed = 0usize;
    while printed < args.limit && !iterator.is_empty() {
        let want = u32::try_from(args.limit - printed).unwrap_or(u32::MAX);
        let read = client.get_records(&iterator, want).await?;
        let mut out = io::stdout().lock();
        for record in &read.records {
            write_record(&mut out, &args.shard, record)?;
        }
        printed += read.records.len();
        // An empty answer at the newest record means we are caught up.
        if read.records.is_empty() && read.millis_behind_latest == 0 {
            break;
        }
        iterator = read.next_shard_iterator;
    }
    Ok(())
}

async fn tail(args: TailArgs) -> anyhow::Result<()> {
    let client = args.server.connect().await?;
    let shards = client.list_shards(&args.stream).await?;
    let mut subscriptions = tokio::task::JoinSet::new();
    for shard in shards {
        let client = client.clone();
        let stream = args.stream.clone();
        let from = args.from;
        subscriptions.spawn(follow_shard(client, stream, shard.shard_id, from));
    }
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            ended = subscriptions.join_next() => match ended {
                None => return Ok(()),
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(e)) => return Err(e.into()),
            },
        }
    }
}

/// Prints one shard's records as they arrive; resubscribes after the last record printed when
/// the server ends the subscription.
async fn follow_shard(
    client: Client,
    stream: String,
    shard_id: String,
    mut from: Position,
) -> anyhow::Result<()> {
    loop {
        let mut events = client.subscribe_to_shard(&stream, &shard_id, from).await?;
        while let Some(event) = events.message().await? {
            let mut out = io::stdout().lock();
            for record in &event.records {
                write_record(&mut out, &shard_id, record)?;
            }
            if let Some(last) = event.records.last() {
                from = Position::AfterSequence(last.sequence_number);
            }
        }
    }
}

async fn describe_group(client: &Client, stream: &str, group: &str) -> anyhow::Result<()> {
    let described = client.describe_group(stream, group).await?;
    let optional = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut members = vec![vec![
        "MEMBER".to_owned(),
        "SESSION_TIMEOUT_MS".to_owned(),
        "SHARDS".to_owned(),
    ]];
    members.extend(described.members.iter().map(|m| {
        vec![
            m.member_id.clone(),
            m.session_timeout_ms.to_string(),
            m.shard_ids.join(","),
        ]
    }));
    let mut shards = vec![[
        "SHARD",
        "OWNER",
        "EPOCH",
        "CHECKPOINT",
        "LATEST",
        "LAG_RECORDS",
        "LAG_MS",
    ]
    .map(str::to_owned)
    .to_vec()];
    shards.extend(described.shards.iter().map(|s| {
        let owner = if s.owner_member_id.is_empty() {
            "-".to_owned()
        } else {
            s.owner_member_id.clone()
        };
        vec![
            s.shard_id.clone(),
            owner,
            s.lease_epoch.to_string(),
            optional(s.checkpoint),
            optional(s.latest_sequence_number),
            s.lag_records.to_string(),
            s.millis_behind_latest.to_string(),
        ]
    }));
    let mut out = io::stdout().lock();
    write_table(&mut out, &members)?;
    writeln!(out)?;
    write_table(&mut out, &shards)?;
    Ok(())
}

async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let client = args.server.connect().await?;
    let member_id = args.member_id.unwrap_or_else(random_member_id);
    tracing::info!(member = %member_id, "consuming");
    let config = ConsumerConfig::new(Membership::new(args.stream, args.group, member_id));
    let stop = shutdown_signal()?;
    // Printing is the processing: a record is checkpointed once its line is written.
    let print = |batch: Batch| async move {
        let mut out = io::stdout().lock();
        for record in &batch.records {
            write_record(&mut out, &batch.shard_id, record)?;
        }
        out.flush()
    };
    GroupConsumer::new(client, config).run(print, stop).await?;
    Ok(())
}

// ----- output ----------------------------------------------------------------------------------

/// One record, one line: `shardId-000000000000 42 key=<pk> [group=<g>] [dedup=<d>] <data>`.
fn write_record(out: &mut impl Write, shard_id: &str, record: &Record) -> io::Result<()> {
    write!(
        out,
        "{shard_id} {} key={}",
        record.sequence_number, record.partition_key
    )?;
    if !record.message_group_id.is_empty() {
        write!(out, " group={}", record.message_group_id)?;
    }
    if !record.deduplication_id.is_empty() {
        write!(out, " dedup={}", record.deduplication_id)?;
    }
    writeln!(out, " {}", String::from_utf8_lossy(&record.data))
}

fn print_lines(lines: impl IntoIterator<Item = String>) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn print_description(stream: &StreamDescription) -> anyhow::Result<()> {
    let status = StreamStatus::try_from(stream.status).map_or("UNKNOWN", |s| match s {
        StreamStatus::Unspecified => "UNSPECIFIED",
        StreamStatus::Creating => "CREATING",
        StreamStatus::Active => "ACTIVE",
        StreamStatus::Deleting => "DELETING",
    });
    let scope = match DedupScope::try_from(stream.dedup_scope) {
        Ok(DedupScope::Stream) => "stream",
        Ok(DedupScope::MessageGroup) => "message-group",
        Err(_) => "unknown",
    };
    let mut out = io::stdout().lock();
    writeln!(out, "stream     {}", stream.stream_name)?;
    writeln!(out, "status     {status}")?;
    writeln!(out, "retention  {} h", stream.retention_period_hours)?;
    writeln!(
        out,
        "dedup      window {} s, scope {scope}, content-based {}",
        stream.dedup_window_seconds,
        if stream.content_based_deduplication {
            "on"
        } else {
            "off"
        }
    )?;
    writeln!(
        out,
        "created    {} ms since the epoch",
        stream.created_at_ms
    )?;
    writeln!(out)?;
    let mut rows = vec![[
        "SHARD",
        "STARTING_HASH_KEY",
        "ENDING_HASH_KEY",
        "FIRST_SEQ",
        "LAST_SEQ",
    ]
    .map(str::to_owned)
    .to_vec()];
    rows.extend(stream.shards.iter().map(|s| {
        vec![
            s.shard_id.clone(),
            s.starting_hash_key.clone(),
            s.ending_hash_key.clone(),
            s.starting_sequence_number.to_string(),
            s.ending_sequence_number
                .map_or_else(|| "open".to_owned(), |v| v.to_string()),
        ]
    }));
    write_table(&mut out, &rows)?;
    Ok(())
}

/// Left-aligned columns two spaces apart; the first row is the header.
fn write_table(out: &mut impl Write, rows: &[Vec<String>]) -> io::Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
