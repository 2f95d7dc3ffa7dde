//! Test harness: a real shardlog server on 127.0.0.1:0, talked to over real gRPC.
#![allow(dead_code)]

pub mod cli;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use shardlog::broker::{Broker, BrokerConfig};
use shardlog::fsio::RealIo;
use shardlog::proto::v1::consumer_groups_client::ConsumerGroupsClient;
use shardlog::proto::v1::stream_log_client::StreamLogClient;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// A server running in this process on its own data directory.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Where the Kinesis API listens.
    pub kinesis_addr: SocketAddr,
    /// Where the HTTP admin endpoints (metrics, health) listen.
    pub http_addr: SocketAddr,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    /// The server's run; its error when it ended in one.
    task: Option<JoinHandle<Result<(), String>>>,
    _tmp: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server with default settings on a fresh temporary directory.
    pub async fn start() -> TestServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_owned();
        let mut s = Self::start_with(BrokerConfig::new(&dir)).await;
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server with the given settings (its `data_dir` is used as is).
    pub async fn start_with(config: BrokerConfig) -> TestServer {
        Self::start_with_io(config, RealIo::shared()).await
    }

    /// Stops the server gracefully and waits until every shard is synced and closed. The data
    /// directory is kept (when the server owns a temporary one, it is handed back).
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Err(e) = self.stop_as_it_may().await {
            panic!("server ran: {e}");
        }
        self._tmp.take()
    }

    /// Stops the server and waits for it; how its run ended. A server whose disk failed ends
    /// with that error (its last syncs fail).
    pub async fn stop_as_it_may(&mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("server task"),
            None => Ok(()),
        }
    }

    /// Stops this server and starts a new one on the same data directory.
    pub async fn restart(self) -> TestServer {
        let dir = self.data_dir.clone();
        let tmp = self.stop().await;
        let mut s = Self::start_with(BrokerConfig::new(&dir)).await;
        s._tmp = tmp;
        s
    }

    pub fn url(&self) -> String {
        url_of(self.addr)
    }

    /// The Kinesis API's endpoint URL.
    pub fn kinesis_url(&self) -> String {
        url_of(self.kinesis_addr)
    }

    pub async fn channel(&self) -> Channel {
        connect(self.addr).await
    }

    /// A `StreamLog` client.
    pub async fn streams(&self) -> StreamLogClient<Channel> {
        StreamLogClient::new(self.channel().await)
            .max_decoding_message_size(64 * 1024 * 1024)
            .max_encoding_message_size(64 * 1024 * 1024)
    }

    /// A `ConsumerGroups` client.
    pub async fn groups(&self) -> ConsumerGroupsClient<Channel> {
        ConsumerGroupsClient::new(self.channel().await)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

/// The URL a client dials to reach a server listening on `addr`.
fn url_of(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// A channel connected to the server listening on `addr`.
async fn connect(addr: SocketAddr) -> Channel {
    Channel::from_shared(url_of(addr))
        .expect("url")
        .connect()
        .await
        .expect("connect")
}

// ---------------------------------------------------------------------------------------------
// StreamLog helpers: thin wrappers over the generated client, so tests read as what they check.
// ---------------------------------------------------------------------------------------------

/// The generated `StreamLog` client over a plain channel.
pub type Streams = StreamLogClient<Channel>;

/// How long a test waits for an event (a pushed batch, a server accepting connections) before
/// it fails instead of hanging.
pub const EVENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Creates a stream with `shard_count` shards and default settings; returns its description.
pub async fn make_stream(
    c: &mut Streams,
    name: &str,
    shard_count: u32,
) -> shardlog::proto::v1::StreamDescription {
    make_stream_with(
        c,
        shardlog::proto::v1::CreateStreamRequest {
            stream_name: name.into(),
            shard_count,
            ..Default::default()
        },
    )
    .await
}

/// Creates a stream as `request` asks; returns its description.
pub async fn make_stream_with(
    c: &mut Streams,
    request: shardlog::proto::v1::CreateStreamRequest,
) -> shardlog::proto::v1::StreamDescription {
    let name = request.stream_name.clone();
    c.create_stream(request)
        .await
        .unwrap_or_else(|s| panic!("create stream {name}: {s}"))
        .into_inner()
        .stream
        .expect("a created stream is described")
}

/// Puts one record routed by `partition_key`.
pub async fn put(
    c: &mut Streams,
    stream: &str,
    partition_key: &str,
    data: impl Into<bytes::Bytes>,
) -> shardlog::proto::v1::PutRecordResponse {
    c.put_record(shardlog::proto::v1::PutRecordRequest {
        stream_name: stream.into(),
        partition_key: partition_key.into(),
        data: data.into(),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|s| panic!("put to {stream}: {s}"))
    .into_inner()
}

/// The shards of a stream, as ListShards returns them.
pub async fn list_shards(c: &mut Streams, stream: &str) -> Vec<shardlog::proto::v1::Shard> {
    c.list_shards(shardlog::proto::v1::ListShardsRequest {
        stream_name: stream.into(),
        shard_filter: None,
    })
    .await
    .unwrap_or_else(|s| panic!("list shards of {stream}: {s}"))
    .into_inner()
    .shards
}

/// An iterator of the given type; `sequence` and `timestamp_ms` are passed as given.
pub async fn iterator(
    c: &mut Streams,
    stream: &str,
    shard_id: &str,
    kind: shardlog::proto::v1::ShardIteratorType,
    sequence: Option<u64>,
    timestamp_ms: Option<i64>,
) -> String {
    c.get_shard_iterator(shardlog::proto::v1::GetShardIteratorRequest {
        stream_name: stream.into(),
        shard_id: shard_id.into(),
        shard_iterator_type: kind as i32,
        starting_sequence_number: sequence,
        timestamp_ms,
        filter: None,
    })
    .await
    .unwrap_or_else(|s| panic!("iterator for {stream}/{shard_id}: {s}"))
    .into_inner()
    .shard_iterator
}

/// One GetRecords call.
pub async fn get_records(
    c: &mut Streams,
    shard_iterator: &str,
    limit: u32,
) -> shardlog::proto::v1::GetRecordsResponse {
    c.get_records(shardlog::proto::v1::GetRecordsRequest {
        shard_iterator: shard_iterator.into(),
        limit,
        as_frames: false,
    })
    .await
    .unwrap_or_else(|s| panic!("get records: {s}"))
    .into_inner()
}

/// Reads from `shard_iterator` until the reader is caught up (an empty answer), following the
/// next iterators. Bounded: a reader that never catches up fails the test.
pub async fn read_to_end(
    c: &mut Streams,
    shard_iterator: &str,
) -> Vec<shardlog::proto::v1::Record> {
    let mut out = Vec::new();
    let mut it = shard_iterator.to_owned();
    for _ in 0..10_000 {
        let got = get_records(c, &it, 0).await;
        if got.records.is_empty() {
            return out;
        }
        out.extend(got.records);
        it = got.next_shard_iterator;
    }
    panic!("a shard read did not catch up after 10000 calls");
}

/// Every record of a shard, from the trim horizon.
pub async fn read_from_start(
    c: &mut Streams,
    stream: &str,
    shard_id: &str,
) -> Vec<shardlog::proto::v1::Record> {
    let it = trim_horizon(c, stream, shard_id).await;
    read_to_end(c, &it).await
}

/// An iterator at the oldest record of a shard.
pub async fn trim_horizon(c: &mut Streams, stream: &str, shard_id: &str) -> String {
    use shardlog::proto::v1::ShardIteratorType::TrimHorizon;
    iterator(c, stream, shard_id, TrimHorizon, None, None).await
}

/// The id of a stream's first shard (every stream has one).
pub const FIRST_SHARD: &str = "shardId-000000000000";

/// The names of every stream, as ListStreams returns them.
pub async fn list_stream_names(c: &mut Streams) -> Vec<String> {
    c.list_streams(shardlog::proto::v1::ListStreamsRequest {})
        .await
        .unwrap_or_else(|s| panic!("list streams: {s}"))
        .into_inner()
        .stream_names
}

/// A stream's description, as DescribeStream returns it.
pub async fn describe_stream(
    c: &mut Streams,
    name: &str,
) -> shardlog::proto::v1::StreamDescription {
    c.describe_stream(shardlog::proto::v1::DescribeStreamRequest {
        stream_name: name.into(),
    })
    .await
    .unwrap_or_else(|s| panic!("describe stream {name}: {s}"))
    .into_inner()
    .stream
    .expect("a described stream is described")
}

/// Deletes a stream.
pub async fn delete_stream(c: &mut Streams, name: &str) {
    c.delete_stream(shardlog::proto::v1::DeleteStreamRequest {
        stream_name: name.into(),
    })
    .await
    .unwrap_or_else(|s| panic!("delete stream {name}: {s}"));
}

/// Puts one record whose explicit hash key picks the shard.
pub async fn put_at_hash_key(
    c: &mut Streams,
    stream: &str,
    partition_key: &str,
    data: impl Into<bytes::Bytes>,
    explicit_hash_key: impl Into<String>,
) -> shardlog::proto::v1::PutRecordResponse {
    c.put_record(shardlog::proto::v1::PutRecordRequest {
        stream_name: stream.into(),
        partition_key: partition_key.into(),
        data: data.into(),
        explicit_hash_key: explicit_hash_key.into(),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|s| panic!("put to {stream}: {s}"))
    .into_inner()
}

/// One PutRecords call; fails the test only if the whole call is refused (entries may fail).
pub async fn put_records(
    c: &mut Streams,
    stream: &str,
    records: Vec<shardlog::proto::v1::PutRecordsRequestEntry>,
) -> shardlog::proto::v1::PutRecordsResponse {
    c.put_records(shardlog::proto::v1::PutRecordsRequest {
        stream_name: stream.into(),
        records,
    })
    .await
    .unwrap_or_else(|s| panic!("put records to {stream}: {s}"))
    .into_inner()
}

/// Puts `r{i}` for every `i` in `range` under partition key `k`, and checks that each lands at
/// sequence number `i` (so `range` must start at the shard's next sequence number).
pub async fn put_named(c: &mut Streams, stream: &str, range: std::ops::Range<usize>) {
    for i in range {
        let acked = put(c, stream, "k", format!("r{i}")).await;
        assert_eq!(acked.sequence_number, i as u64);
    }
}

/// The records' data, as UTF-8 strings.
pub fn datas(records: &[shardlog::proto::v1::Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.data.to_vec()).expect("UTF-8 record data"))
        .collect()
}

/// The data [`put_named`] puts for `range`: `r{i}` for each `i`.
pub fn named(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("r{i}")).collect()
}

/// The MD5 of a partition key read as a big-endian u128: the hash key Kinesis routes it by.
pub fn md5_hash_key(partition_key: &str) -> u128 {
    use md5::{Digest, Md5};
    let digest: [u8; 16] = Md5::digest(partition_key.as_bytes()).into();
    u128::from_be_bytes(digest)
}

/// A shard's inclusive hash key range, parsed from its decimal strings.
pub fn hash_range(shard: &shardlog::proto::v1::Shard) -> (u128, u128) {
    let start = shard
        .starting_hash_key
        .parse()
        .expect("decimal starting hash key");
    let end = shard
        .ending_hash_key
        .parse()
        .expect("decimal ending hash key");
    (start, end)
}

/// The id of the one shard whose range holds `key`.
pub fn shard_holding(shards: &[shardlog::proto::v1::Shard], key: u128) -> String {
    let holding: Vec<&shardlog::proto::v1::Shard> = shards
        .iter()
        .filter(|s| {
            let (start, end) = hash_range(s);
            start <= key && key <= end
        })
        .collect();
    assert_eq!(holding.len(), 1, "exactly one shard holds hash key {key}");
    holding[0].shard_id.clone()
}

/// Asserts that a call failed with `code` and a message naming `field`.
#[track_caller]
pub fn assert_rejected<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    field: &str,
) {
    match result {
        Ok(v) => panic!("expected {code:?} naming {field:?}, got success: {v:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "status {s:?}");
            assert!(
                s.message().contains(field),
                "message {:?} does not name {field:?}",
                s.message()
            );
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch, as the server stamps records.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Waits until the wall clock has moved past `ms`: for tests whose subject is time (arrival
/// stamps, iterator expiry), where the event waited for is the clock itself. Bounded.
pub async fn wait_until_clock_passes(ms: i64) {
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    while now_ms() <= ms {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the wall clock did not pass {ms}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// The next event of a subscription, waited for at most [`EVENT_TIMEOUT`].
pub async fn next_event(
    s: &mut tonic::Streaming<shardlog::proto::v1::SubscribeToShardEvent>,
) -> Result<Option<shardlog::proto::v1::SubscribeToShardEvent>, tonic::Status> {
    tokio::time::timeout(EVENT_TIMEOUT, s.message())
        .await
        .expect("a subscription event within the timeout")
}

/// Subscribes to a shard from the given position.
pub async fn subscribe(
    c: &mut Streams,
    stream: &str,
    shard_id: &str,
    kind: shardlog::proto::v1::ShardIteratorType,
    sequence_number: Option<u64>,
) -> Result<tonic::Streaming<shardlog::proto::v1::SubscribeToShardEvent>, tonic::Status> {
    c.subscribe_to_shard(shardlog::proto::v1::SubscribeToShardRequest {
        stream_name: stream.into(),
        shard_id: shard_id.into(),
        starting_position: Some(shardlog::proto::v1::StartingPosition {
            r#type: kind as i32,
            sequence_number,
            timestamp_ms: None,
        }),
        filter: None,
    })
    .await
    .map(tonic::Response::into_inner)
}

/// Receives events until `count` records have arrived (keep-alives are skipped); fails if the
/// subscription ends, or if the records have not all arrived within [`EVENT_TIMEOUT`] (keep-alives
/// do not extend it).
pub async fn receive_records(
    s: &mut tonic::Streaming<shardlog::proto::v1::SubscribeToShardEvent>,
    count: usize,
) -> Vec<shardlog::proto::v1::Record> {
    let mut out = Vec::new();
    let receiving = async {
        while out.len() < count {
            match s.message().await {
                Ok(Some(ev)) => out.extend(ev.records),
                Ok(None) => panic!("subscription ended after {} of {count} records", out.len()),
                Err(e) => panic!(
                    "subscription failed after {} of {count} records: {e}",
                    out.len()
                ),
            }
        }
    };
    if tokio::time::timeout(EVENT_TIMEOUT, receiving)
        .await
        .is_err()
    {
        panic!(
            "only {} of {count} records arrived within {EVENT_TIMEOUT:?}",
            out.len()
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Bounded waiting, reading back, and a server running as a separate process.
// ---------------------------------------------------------------------------------------------

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shardlog::proto::v1 as pb;

/// A bounded polling loop for waits where time itself is the subject (session expiry, window
/// expiry): check the observable state, then `tick()`; `tick()` returns false once the deadline
/// has passed, so every wait ends.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    until: Instant,
    every: Duration,
}

impl Deadline {
    /// A deadline `within` from now, polled every 10 ms.
    pub fn after(within: Duration) -> Deadline {
        Deadline {
            until: Instant::now() + within,
            every: Duration::from_millis(10),
        }
    }

    /// Waits one polling step. False once the deadline has passed.
    pub async fn tick(&self) -> bool {
        if Instant::now() >= self.until {
            return false;
        }
        tokio::time::sleep(self.every).await;
        true
    }
}

/// Creates a stream with `shard_count` shards and default settings.
pub async fn create_stream(c: &mut StreamLogClient<Channel>, name: &str, shard_count: u32) {
    make_stream(c, name, shard_count).await;
}

/// Every record of one shard, from the trim horizon to the end, read with GetRecords.
pub async fn read_shard(
    c: &mut StreamLogClient<Channel>,
    stream: &str,
    shard_id: &str,
) -> Vec<pb::Record> {
    let mut iterator = trim_horizon(c, stream, shard_id).await;
    let mut out = Vec::new();
    loop {
        let got = get_records(c, &iterator, 0).await;
        let done = got.records.is_empty() && got.millis_behind_latest == 0;
        out.extend(got.records);
        if done || got.next_shard_iterator.is_empty() {
            return out;
        }
        iterator = got.next_shard_iterator;
    }
}

/// Every record of every shard of a stream, as `(shard_id, record)` in shard order.
pub async fn read_stream(
    c: &mut StreamLogClient<Channel>,
    stream: &str,
) -> Vec<(String, pb::Record)> {
    let mut out = Vec::new();
    for shard in list_shards(c, stream).await {
        for r in read_shard(c, stream, &shard.shard_id).await {
            out.push((shard.shard_id.clone(), r));
        }
    }
    out
}

/// How long a server process may take to start accepting requests (recovery included).
pub const CHILD_START_TIMEOUT: Duration = Duration::from_secs(30);

/// The `shardlog` binary serving a data directory as a separate process, so a test can kill it
/// with SIGKILL (`kill -9`): no destructor, no final sync, only what was durable survives.
pub struct ChildServer {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    child: Child,
    log: PathBuf,
}

impl ChildServer {
    /// Starts `shardlog serve --data-dir DIR --listen 127.0.0.1:PORT --fsync always` on a free
    /// port and waits (bounded) until it answers a request. Its output goes to `log`.
    pub async fn spawn(data_dir: &Path, log: &Path) -> ChildServer {
        Self::spawn_with_env(data_dir, log, &[]).await
    }

    /// As [`ChildServer::spawn`], with extra environment variables (a failure point).
    pub async fn spawn_with_env(data_dir: &Path, log: &Path, env: &[(&str, &str)]) -> ChildServer {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
            probe.local_addr().expect("probe addr").port()
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open child log");
        let err = out.try_clone().expect("clone child log");
        let child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--kinesis-listen")
            .arg("127.0.0.1:0")
            .arg("--http-listen")
            .arg("127.0.0.1:0")
            .arg("--fsync")
            .arg("always")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn the shardlog binary");
        let mut server = ChildServer {
            addr,
            data_dir: data_dir.to_owned(),
            child,
            log: log.to_owned(),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let deadline = Deadline::after(CHILD_START_TIMEOUT);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the server process exited with {status} before serving; its output:\n{}",
                    self.output()
                );
            }
            if let Ok(channel) = Channel::from_shared(self.url())
                .expect("url")
                .connect()
                .await
            {
                let mut c = StreamLogClient::new(channel);
                if c.list_streams(pb::ListStreamsRequest {}).await.is_ok() {
                    return;
                }
            }
            assert!(
                deadline.tick().await,
                "the server process did not serve within {CHILD_START_TIMEOUT:?}; its output:\n{}",
                self.output()
            );
        }
    }

    /// The server's process id, to read its memory and open files from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process wrote so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        url_of(self.addr)
    }

    pub async fn channel(&self) -> Channel {
        connect(self.addr).await
    }

    /// A `StreamLog` client.
    pub async fn streams(&self) -> StreamLogClient<Channel> {
        StreamLogClient::new(self.channel().await)
    }

    /// A `ConsumerGroups` client.
    pub async fn groups(&self) -> ConsumerGroupsClient<Channel> {
        ConsumerGroupsClient::new(self.channel().await)
    }

    /// Waits (bounded) for the process to end by itself, as at a failure point; its status.
    pub async fn wait_exit(mut self) -> std::process::ExitStatus {
        let deadline = Deadline::after(CHILD_START_TIMEOUT);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server process") {
                return status;
            }
            assert!(
                deadline.tick().await,
                "the server process did not end; its output:\n{}",
                self.output()
            );
        }
    }

    /// Kills the process with SIGKILL and waits for it to be gone.
    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL the server process");
        self.child.wait().expect("reap the server process");
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        // A test that failed midway must not leave a server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestServer {
    /// Starts a server with the given settings over the given file system seam (for example a
    /// `FaultyIo` that fails syncs or loses power).
    pub async fn start_with_io(
        config: BrokerConfig,
        io: std::sync::Arc<dyn shardlog::fsio::Io>,
    ) -> TestServer {
        Self::start_full(config, io, shardlog::kinesis::KinesisConfig::default()).await
    }

    /// Starts a server with the given engine and Kinesis API settings.
    pub async fn start_full(
        config: BrokerConfig,
        io: std::sync::Arc<dyn shardlog::fsio::Io>,
        kinesis: shardlog::kinesis::KinesisConfig,
    ) -> TestServer {
        let auth = shardlog::auth::Auth::open();
        Self::start_all(
            config,
            io,
            kinesis,
            auth,
            None,
            shardlog::tls::DEFAULT_MAX_CONNECTIONS,
        )
        .await
    }

    /// Starts a server that checks every request against `auth`.
    pub async fn start_with_auth(config: BrokerConfig, auth: shardlog::auth::Auth) -> TestServer {
        let io = RealIo::shared();
        Self::start_all(
            config,
            io,
            Default::default(),
            auth,
            None,
            shardlog::tls::DEFAULT_MAX_CONNECTIONS,
        )
        .await
    }

    /// Starts a server with TLS on every listener (and `auth`, open or not).
    pub async fn start_with_tls(
        config: BrokerConfig,
        auth: shardlog::auth::Auth,
        tls: shardlog::tls::Tls,
    ) -> TestServer {
        let io = RealIo::shared();
        Self::start_all(
            config,
            io,
            Default::default(),
            auth,
            Some(tls),
            shardlog::tls::DEFAULT_MAX_CONNECTIONS,
        )
        .await
    }

    /// Starts a server whose every listener holds at most `max_connections` at once.
    pub async fn start_with_connection_limit(
        config: BrokerConfig,
        max_connections: usize,
    ) -> TestServer {
        let io = RealIo::shared();
        let auth = shardlog::auth::Auth::open();
        Self::start_all(config, io, Default::default(), auth, None, max_connections).await
    }

    async fn start_all(
        config: BrokerConfig,
        io: std::sync::Arc<dyn shardlog::fsio::Io>,
        kinesis: shardlog::kinesis::KinesisConfig,
        auth: shardlog::auth::Auth,
        tls: Option<shardlog::tls::Tls>,
        max_connections: usize,
    ) -> TestServer {
        let data_dir = config.data_dir.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let kinesis_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let kinesis_addr = kinesis_listener.local_addr().expect("local addr");
        let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let http_addr = http_listener.local_addr().expect("local addr");
        let broker = Broker::open(config, io).await.expect("open broker");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let listeners = shardlog::grpc::Listeners {
                grpc: listener,
                kinesis: Some((kinesis_listener, kinesis)),
                http: Some(http_listener),
                auth,
                tls,
                max_connections,
            };
            shardlog::grpc::serve_listeners(broker, listeners, async {
                let _ = stopped.await;
            })
            .await
            .map_err(|e| format!("{e:?}"))
        });
        TestServer {
            addr,
            kinesis_addr,
            http_addr,
            data_dir,
            stop: Some(stop),
            task: Some(task),
            _tmp: None,
        }
    }
}

pub mod auth;
pub mod campaign;
pub mod fifo;
pub mod groups;
pub mod http;
pub mod kinesis;
pub mod tls;
