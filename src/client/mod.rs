//! A typed Rust client for shardlog's gRPC API: one connection, plain Rust arguments, one error type.
//!
//! ```no_run
//! # async fn demo() -> Result<(), shardlog::client::ClientError> {
//! use shardlog::client::{Client, Position};
//!
//! let client = Client::connect("http://127.0.0.1:50051").await?;
//! client.create_stream("orders", 4).await?;
//! let put = client.put_record("orders", "customer-7", "hello").await?;
//! let iterator = client
//!     .get_shard_iterator("orders", &put.shard_id, Position::AtSequence(put.sequence_number))
//!     .await?;
//! let read = client.get_records(&iterator, 100).await?;
//! assert_eq!(read.records[0].data, "hello");
//! # Ok(())
//! # }
//! ```
//!
//! Both services share one HTTP/2 connection (a `tonic` [`Channel`]); [`Client`] is cheap to
//! clone and every clone multiplexes over that connection. [`GroupConsumer`] builds the usual
//! consumer-group loop (join, heartbeat, read, checkpoint, follow rebalances) on top of it;
//! [`QueueWorker`] the loop of a queue group's worker (receive, handle, delete, extend the
//! visibility of a message while it is handled).

mod consumer;
mod put_stream;
mod queue_worker;

use std::fmt;
use std::num::ParseIntError;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

use crate::proto::v1::consumer_groups_client::ConsumerGroupsClient;
use crate::proto::v1::queues_client::QueuesClient;
use crate::proto::v1::router_client::RouterClient;
use crate::proto::v1::stream_log_client::StreamLogClient;
use crate::proto::v1::ChildShard;
use crate::proto::v1::{
    ChangeMessageVisibilityRequest, CreateGroupRequest, DeleteMessageResult, DeleteMessagesRequest,
    GroupSummary, ListMoveTasksRequest, Message, MoveMessagesRequest, MoveTask,
    ReceiveMessagesRequest,
};
use crate::proto::v1::{
    CommitCheckpointRequest, CreateStreamRequest, DeleteGroupRequest, DeleteStreamRequest,
    DescribeGroupRequest, DescribeGroupResponse, DescribeStreamRequest, Filter, GetRecordsRequest,
    GetRecordsResponse, GetShardIteratorRequest, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, ListGroupsRequest, ListShardsRequest,
    ListStreamsRequest, PutRecordRequest, PutRecordResponse, PutRecordsRequest,
    PutRecordsRequestEntry, PutRecordsResponse, Shard, ShardIteratorType, StartingPosition,
    StreamDescription, SubscribeToShardEvent, SubscribeToShardRequest,
};
use crate::proto::v1::{
    DeleteRuleRequest, DescribeRuleRequest, ListRulesRequest, PutRuleRequest, Rule,
    TestPatternRequest,
};
use crate::proto::v1::{
    MergeShardsRequest, ScalingType, ShardFilter, SplitShardRequest, UpdateShardCountRequest,
};
use crate::storage::{SequenceNumber, StoredRecord};

pub use put_stream::{PutStreamAnswers, PutStreamSender};

pub use consumer::{
    random_member_id, Batch, ConsumerConfig, ConsumerError, GroupConsumer, HandlerError,
    DEFAULT_IDLE_WAIT, DEFAULT_POLL_LIMIT, MIN_HEARTBEAT_INTERVAL,
};

pub use queue_worker::{
    QueueWorker, QueueWorkerConfig, QueueWorkerError, QueueWorkerStats,
    DEFAULT_HANDLER_CONCURRENCY, DEFAULT_RECEIVE_MAX_MESSAGES, DEFAULT_RECEIVE_RETRY_BACKOFF,
    DEFAULT_RECEIVE_WAIT, DEFAULT_VISIBILITY_EXTENSION,
};

/// Default HTTP/2 flow-control window of one request stream, in bytes. The HTTP/2 default
/// (64 KiB) caps a single 10 MiB `GetRecords` answer at one window per round trip.
pub const DEFAULT_STREAM_WINDOW_BYTES: u32 = 16 * 1024 * 1024;
/// Default HTTP/2 flow-control window of the whole connection, in bytes.
pub const DEFAULT_CONNECTION_WINDOW_BYTES: u32 = 16 * 1024 * 1024;
/// Default largest message the client sends or accepts, in bytes: room for a full `PutRecords`
/// batch (500 × 1 MiB records) and a 10 MiB `GetRecords` answer, well past tonic's 4 MiB default.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Default time allowed to open the TCP connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the connection is set up. Every field has a `DEFAULT_*` constant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// HTTP/2 window of one request stream, in bytes (default 16 MiB).
    pub stream_window_bytes: u32,
    /// HTTP/2 window of the connection, in bytes (default 16 MiB).
    pub connection_window_bytes: u32,
    /// Largest message sent or accepted, in bytes (default 64 MiB).
    pub max_message_bytes: usize,
    /// Time allowed to open the connection (default 5 s).
    pub connect_timeout: Duration,
    /// Bearer token sent with every call, for a server with an auth file (default none).
    pub token: Option<String>,
    /// How an `https://` server is trusted, and the certificate shown to one that asks
    /// (default: the system's CA certificates, no client certificate).
    pub tls: ClientTls,
}

/// TLS settings of a connection to an `https://` URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// PEM CA certificates the server's certificate must chain to; `None`: the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM certificate chain and private key shown to a server that asks for one (mutual TLS).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Name the server's certificate must carry; `None`: the URL's host.
    pub domain: Option<String>,
}

impl ClientTls {
    /// Reads the CA and the client certificate and key from PEM files (`--ca-cert`,
    /// `--client-cert`, `--client-key`); a certificate needs its key.
    pub fn from_files(
        ca: Option<&std::path::Path>,
        cert: Option<&std::path::Path>,
        key: Option<&std::path::Path>,
    ) -> Result<ClientTls, ClientError> {
        let read = |what: &'static str, path: &std::path::Path| {
            std::fs::read(path).map_err(|source| ClientError::TlsFile {
                what,
                path: path.to_owned(),
                source,
            })
        };
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some((read("certificate", cert)?, read("key", key)?)),
            (None, None) => None,
            _ => {
                return Err(ClientError::Tls {
                    reason: "a client certificate and its key go together: give both".into(),
                })
            }
        };
        Ok(ClientTls {
            ca_pem: ca.map(|path| read("CA certificate", path)).transpose()?,
            identity,
            domain: None,
        })
    }

    fn is_set(&self) -> bool {
        self.ca_pem.is_some() || self.identity.is_some() || self.domain.is_some()
    }

    fn config(&self) -> tonic::transport::ClientTlsConfig {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let mut config = ClientTlsConfig::new();
        config = match &self.ca_pem {
            Some(pem) => config.ca_certificate(Certificate::from_pem(pem)),
            None => config.with_native_roots(),
        };
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        if let Some(domain) = &self.domain {
            config = config.domain_name(domain.clone());
        }
        config
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            stream_window_bytes: DEFAULT_STREAM_WINDOW_BYTES,
            connection_window_bytes: DEFAULT_CONNECTION_WINDOW_BYTES,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            token: None,
            tls: ClientTls::default(),
        }
    }
}

/// The channel every typed client calls through: adds the bearer token, if any, to each call.
#[derive(Debug, Clone)]
pub struct Authorized {
    inner: Channel,
    token: Option<tonic::codegen::http::HeaderValue>,
}

impl tower_service::Service<tonic::codegen::http::Request<tonic::body::Body>> for Authorized {
    type Response = tonic::codegen::http::Response<tonic::body::Body>;
    type Error = tonic::transport::Error;
    type Future = <Channel as tower_service::Service<
        tonic::codegen::http::Request<tonic::body::Body>,
    >>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower_service::Service::poll_ready(&mut self.inner, cx)
    }

    fn call(
        &mut self,
        mut request: tonic::codegen::http::Request<tonic::body::Body>,
    ) -> Self::Future {
        if let Some(token) = &self.token {
            request
                .headers_mut()
                .insert(tonic::codegen::http::header::AUTHORIZATION, token.clone());
        }
        tower_service::Service::call(&mut self.inner, request)
    }
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server address is not a valid URI.
    #[error("invalid server address {url:?}")]
    InvalidAddress {
        /// The address given.
        url: String,
        /// Why it is not a URI.
        #[source]
        source: tonic::transport::Error,
    },
    /// The TLS settings are not usable.
    #[error("TLS: {reason}")]
    Tls {
        /// What is wrong.
        reason: String,
    },
    /// A certificate or key file could not be read.
    #[error("cannot read the {what} {}: {source}", path.display())]
    TlsFile {
        /// Which file.
        what: &'static str,
        /// Where.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The connection could not be opened.
    #[error("cannot connect to {url}")]
    Connect {
        /// The server's address.
        url: String,
        /// Why the connection failed.
        #[source]
        source: tonic::transport::Error,
    },
    /// The server (or the transport) answered the call with a non-OK status.
    #[error("{rpc} failed: {code:?}: {message}", code = .source.code(), message = .source.message())]
    Rpc {
        /// The method called, e.g. `PutRecords`.
        rpc: &'static str,
        /// The status: its code says whether a retry can help.
        #[source]
        source: Status,
    },
    /// Stored frames the server sent failed their checks: damaged on the way, or not what
    /// the answer says they hold. Nothing of them is returned.
    #[error("{rpc}: the frames received do not check: {reason}")]
    Frames {
        /// The method called.
        rpc: &'static str,
        /// What failed.
        #[source]
        reason: crate::storage::record::FrameError,
    },
    /// A request was sent on a streaming call that has already ended; the call's answers say
    /// why.
    #[error("the {rpc} call has ended")]
    CallEnded {
        /// The method called, e.g. `PutRecordsStream`.
        rpc: &'static str,
    },
}

impl ClientError {
    /// The gRPC status code, when the server (or the transport) answered a call.
    pub fn code(&self) -> Option<Code> {
        self.status().map(Status::code)
    }

    /// The full status, when the server (or the transport) answered a call.
    pub fn status(&self) -> Option<&Status> {
        match self {
            ClientError::Rpc { source, .. } => Some(source),
            ClientError::InvalidAddress { .. }
            | ClientError::Connect { .. }
            | ClientError::Tls { .. }
            | ClientError::TlsFile { .. }
            | ClientError::Frames { .. }
            | ClientError::CallEnded { .. } => None,
        }
    }
}

/// Wraps a failed call's status with the method's name.
fn failed(rpc: &'static str) -> impl FnOnce(Status) -> ClientError {
    move |source| ClientError::Rpc { rpc, source }
}

/// Where in a shard a read or a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The oldest record still retained.
    TrimHorizon,
    /// Just after the newest record: only records appended later.
    Latest,
    /// The record with this sequence number (or the next one after it).
    AtSequence(u64),
    /// The record right after this sequence number: where a checkpoint resumes.
    AfterSequence(u64),
    /// The first record that arrived at or after this time.
    AtTimestamp(SystemTime),
}

impl Position {
    fn iterator_type(self) -> ShardIteratorType {
        match self {
            Position::TrimHorizon => ShardIteratorType::TrimHorizon,
            Position::Latest => ShardIteratorType::Latest,
            Position::AtSequence(_) => ShardIteratorType::AtSequenceNumber,
            Position::AfterSequence(_) => ShardIteratorType::AfterSequenceNumber,
            Position::AtTimestamp(_) => ShardIteratorType::AtTimestamp,
        }
    }

    fn sequence_number(self) -> Option<u64> {
        match self {
            Position::AtSequence(seq) | Position::AfterSequence(seq) => Some(seq),
            Position::TrimHorizon | Position::Latest | Position::AtTimestamp(_) => None,
        }
    }

    /// The wire form of a timestamp: ms since the Unix epoch. A time before the epoch means
    /// "from the oldest record", which 0 already does.
    fn timestamp_ms(self) -> Option<i64> {
        match self {
            Position::AtTimestamp(time) => Some(
                time.duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            ),
            Position::TrimHorizon
            | Position::Latest
            | Position::AtSequence(_)
            | Position::AfterSequence(_) => None,
        }
    }

    /// The position as a `SubscribeToShard` starting position.
    pub fn to_starting_position(self) -> StartingPosition {
        StartingPosition {
            r#type: self.iterator_type() as i32,
            sequence_number: self.sequence_number(),
            timestamp_ms: self.timestamp_ms(),
        }
    }
}

/// A position string that is none of `trim-horizon`, `latest`, `at:SEQ`, `after:SEQ`, `time:MS`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid position {input:?}: expected trim-horizon, latest, at:SEQ, after:SEQ or time:MS")]
pub struct ParsePositionError {
    input: String,
    #[source]
    source: Option<ParseIntError>,
}

impl FromStr for Position {
    type Err = ParsePositionError;

    /// Parses the command-line form: `trim-horizon`, `latest`, `at:SEQ`, `after:SEQ`, or
    /// `time:MS` (ms since the Unix epoch).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = |source| ParsePositionError {
            input: s.to_owned(),
            source,
        };
        match s {
            "trim-horizon" => return Ok(Position::TrimHorizon),
            "latest" => return Ok(Position::Latest),
            _ => {}
        }
        let (kind, number) = s.split_once(':').ok_or_else(|| error(None))?;
        let number: u64 = number.parse().map_err(|e| error(Some(e)))?;
        match kind {
            "at" => Ok(Position::AtSequence(number)),
            "after" => Ok(Position::AfterSequence(number)),
            "time" => Ok(Position::AtTimestamp(
                UNIX_EPOCH + Duration::from_millis(number),
            )),
            _ => Err(error(None)),
        }
    }
}

impl fmt::Display for Position {
    /// The command-line form, the inverse of [`FromStr`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::TrimHorizon => f.write_str("trim-horizon"),
            Position::Latest => f.write_str("latest"),
            Position::AtSequence(seq) => write!(f, "at:{seq}"),
            Position::AfterSequence(seq) => write!(f, "after:{seq}"),
            Position::AtTimestamp(_) => write!(f, "time:{}", self.timestamp_ms().unwrap_or(0)),
        }
    }
}

/// A GetRecords answer in the frame form, checked and decoded (see
/// [`Client::get_stored_records`]).
#[derive(Debug, Clone, Default)]
pub struct StoredRecords {
    /// The records, in sequence order; may be empty even when more follow.
    pub records: Vec<StoredRecord>,
    /// Token to continue from; empty once a closed shard has been read to its end.
    pub next_shard_iterator: String,
    /// How far the read position is behind the shard's newest record, in milliseconds.
    pub millis_behind_latest: i64,
    /// With the read that reaches the end of a closed shard: the shards that continue it.
    pub child_shards: Vec<ChildShard>,
}

/// Who a group call is made for: a member of a consumer group on a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The stream the group reads.
    pub stream: String,
    /// The group's name.
    pub group: String,
    /// The member's id, stable across its reconnects.
    pub member_id: String,
}

impl Membership {
    /// The member `member_id` of `group` on `stream`.
    pub fn new(
        stream: impl Into<String>,
        group: impl Into<String>,
        member_id: impl Into<String>,
    ) -> Self {
        Membership {
            stream: stream.into(),
            group: group.into(),
            member_id: member_id.into(),
        }
    }
}

/// A connection to a shardlog server, with one typed method per RPC. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    streams: StreamLogClient<Authorized>,
    groups: ConsumerGroupsClient<Authorized>,
    router: RouterClient<Authorized>,
    queues: QueuesClient<Authorized>,
}

impl Client {
    /// Connects to `url` (e.g. `http://127.0.0.1:50051`) with the default [`ClientOptions`].
    pub async fn connect(url: impl Into<String>) -> Result<Client, ClientError> {
        Client::connect_with(url, ClientOptions::default()).await
    }

    /// Connects to `url` with explicit options.
    pub async fn connect_with(
        url: impl Into<String>,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let url = url.into();
        let mut endpoint = match Endpoint::from_shared(url.clone()) {
            Ok(endpoint) => endpoint,
            Err(source) => return Err(ClientError::InvalidAddress { url, source }),
        };
        if endpoint.uri().scheme_str() == Some("https") {
            endpoint = endpoint
                .tls_config(options.tls.config())
                .map_err(|e| ClientError::Tls {
                    reason: format!("{url}: {e}"),
                })?;
        } else if options.tls.is_set() {
            return Err(ClientError::Tls {
                reason: format!("TLS settings are given but {url} is not an https:// URL"),
            });
        }
        let channel = endpoint
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true)
            .initial_stream_window_size(options.stream_window_bytes)
            .initial_connection_window_size(options.connection_window_bytes)
            .connect()
            .await;
        match channel {
            Ok(channel) => Ok(Client::from_channel(channel, options)),
            Err(source) => Err(ClientError::Connect { url, source }),
        }
    }

    /// Wraps an existing channel; only `options.max_message_bytes` applies (the rest configures
    /// the channel itself).
    pub fn from_channel(channel: Channel, options: ClientOptions) -> Client {
        let limit = options.max_message_bytes;
        // A token that is not a valid header value is sent as none: the server then answers
        // UNAUTHENTICATED, which names the problem.
        let token = options
            .token
            .as_deref()
            .and_then(|t| tonic::codegen::http::HeaderValue::try_from(format!("Bearer {t}")).ok());
        let channel = Authorized {
            inner: channel,
            token,
        };
        Client {
            streams: StreamLogClient::new(channel.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            groups: ConsumerGroupsClient::new(channel.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            router: RouterClient::new(channel.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            queues: QueuesClient::new(channel)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        }
    }

    // A tonic client takes `&mut self` per call; cloning it is a cheap handle copy onto the
    // shared channel, which lets every method take `&self` and run concurrently.
    fn streams(&self) -> StreamLogClient<Authorized> {
        self.streams.clone()
    }

    fn groups(&self) -> ConsumerGroupsClient<Authorized> {
        self.groups.clone()
    }

    fn router(&self) -> RouterClient<Authorized> {
        self.router.clone()
    }

    fn queues(&self) -> QueuesClient<Authorized> {
        self.queues.clone()
    }

    // ----- streams -----------------------------------------------------------------------------

    /// Creates a stream of `shard_count` shards with the server's default settings.
    pub async fn create_stream(
        &self,
        name: &str,
        shard_count: u32,
    ) -> Result<StreamDescription, ClientError> {
        self.create_stream_with(CreateStreamRequest {
            stream_name: name.to_owned(),
            shard_count,
            ..CreateStreamRequest::default()
        })
        .await
    }

    /// Creates a stream with every setting of the request (retention, dedup window and scope,
    /// content-based deduplication).
    pub async fn create_stream_with(
        &self,
        request: CreateStreamRequest,
    ) -> Result<StreamDescription, ClientError> {
        let response = self
            .streams()
            .create_stream(request)
            .await
            .map_err(failed("CreateStream"))?;
        description(response.into_inner().stream, "CreateStream")
    }

    /// Deletes a stream, its records and its groups.
    pub async fn delete_stream(&self, name: &str) -> Result<(), ClientError> {
        self.streams()
            .delete_stream(DeleteStreamRequest {
                stream_name: name.to_owned(),
            })
            .await
            .map_err(failed("DeleteStream"))?;
        Ok(())
    }

    /// A stream's settings, status and shards.
    pub async fn describe_stream(&self, name: &str) -> Result<StreamDescription, ClientError> {
        let response = self
            .streams()
            .describe_stream(DescribeStreamRequest {
                stream_name: name.to_owned(),
            })
            .await
            .map_err(failed("DescribeStream"))?;
        description(response.into_inner().stream, "DescribeStream")
    }

    /// Every stream's name, sorted.
    pub async fn list_streams(&self) -> Result<Vec<String>, ClientError> {
        let response = self
            .streams()
            .list_streams(ListStreamsRequest {})
            .await
            .map_err(failed("ListStreams"))?;
        Ok(response.into_inner().stream_names)
    }

    /// Every shard of a stream, open and closed.
    pub async fn list_shards(&self, stream: &str) -> Result<Vec<Shard>, ClientError> {
        self.list_shards_filtered(stream, None).await
    }

    /// The shards of a stream that pass `filter` (every shard without one).
    pub async fn list_shards_filtered(
        &self,
        stream: &str,
        filter: Option<ShardFilter>,
    ) -> Result<Vec<Shard>, ClientError> {
        let response = self
            .streams()
            .list_shards(ListShardsRequest {
                stream_name: stream.to_owned(),
                shard_filter: filter,
            })
            .await
            .map_err(failed("ListShards"))?;
        Ok(response.into_inner().shards)
    }

    /// Splits open shard `shard` at `new_starting_hash_key` (decimal); returns the stream after.
    pub async fn split_shard(
        &self,
        stream: &str,
        shard: &str,
        new_starting_hash_key: &str,
    ) -> Result<StreamDescription, ClientError> {
        let response = self
            .streams()
            .split_shard(SplitShardRequest {
                stream_name: stream.to_owned(),
                shard_to_split: shard.to_owned(),
                new_starting_hash_key: new_starting_hash_key.to_owned(),
            })
            .await
            .map_err(failed("SplitShard"))?;
        description(response.into_inner().stream, "SplitShard")
    }

    /// Merges open shards `shard` and `adjacent` (adjacent ranges); returns the stream after.
    pub async fn merge_shards(
        &self,
        stream: &str,
        shard: &str,
        adjacent: &str,
    ) -> Result<StreamDescription, ClientError> {
        let response = self
            .streams()
            .merge_shards(MergeShardsRequest {
                stream_name: stream.to_owned(),
                shard_to_merge: shard.to_owned(),
                adjacent_shard_to_merge: adjacent.to_owned(),
            })
            .await
            .map_err(failed("MergeShards"))?;
        description(response.into_inner().stream, "MergeShards")
    }

    /// Rescales the stream to `target` open shards of equal ranges; returns the stream after.
    pub async fn update_shard_count(
        &self,
        stream: &str,
        target: u32,
    ) -> Result<StreamDescription, ClientError> {
        let response = self
            .streams()
            .update_shard_count(UpdateShardCountRequest {
                stream_name: stream.to_owned(),
                target_shard_count: target,
                scaling_type: ScalingType::UniformScaling as i32,
            })
            .await
            .map_err(failed("UpdateShardCount"))?;
        description(response.into_inner().stream, "UpdateShardCount")
    }

    // ----- records -----------------------------------------------------------------------------

    /// Appends one record routed by its partition key; returns once it is durable.
    pub async fn put_record(
        &self,
        stream: &str,
        partition_key: &str,
        data: impl Into<Bytes>,
    ) -> Result<PutRecordResponse, ClientError> {
        self.put_record_with(PutRecordRequest {
            stream_name: stream.to_owned(),
            partition_key: partition_key.to_owned(),
            data: data.into(),
            ..PutRecordRequest::default()
        })
        .await
    }

    /// Appends one record with every option of the request (explicit hash key, message group,
    /// deduplication id).
    pub async fn put_record_with(
        &self,
        request: PutRecordRequest,
    ) -> Result<PutRecordResponse, ClientError> {
        let response = self
            .streams()
            .put_record(request)
            .await
            .map_err(failed("PutRecord"))?;
        Ok(response.into_inner())
    }

    /// Appends many records in one request. Entries succeed or fail on their own: check
    /// `failed_record_count` and each result's `error_code`.
    pub async fn put_records(
        &self,
        stream: &str,
        entries: Vec<PutRecordsRequestEntry>,
    ) -> Result<PutRecordsResponse, ClientError> {
        let response = self
            .streams()
            .put_records(PutRecordsRequest {
                stream_name: stream.to_owned(),
                records: entries,
            })
            .await
            .map_err(failed("PutRecords"))?;
        Ok(response.into_inner())
    }

    /// An iterator at `position` in one shard, for [`Client::get_records`].
    pub async fn get_shard_iterator(
        &self,
        stream: &str,
        shard_id: &str,
        position: Position,
    ) -> Result<String, ClientError> {
        self.get_shard_iterator_filtered(stream, shard_id, position, None)
            .await
    }

    /// An iterator whose reads return only the records matching `filter` (all with `None`).
    pub async fn get_shard_iterator_filtered(
        &self,
        stream: &str,
        shard_id: &str,
        position: Position,
        filter: Option<Filter>,
    ) -> Result<String, ClientError> {
        let response = self
            .streams()
            .get_shard_iterator(GetShardIteratorRequest {
                stream_name: stream.to_owned(),
                shard_id: shard_id.to_owned(),
                shard_iterator_type: position.iterator_type() as i32,
                starting_sequence_number: position.sequence_number(),
                timestamp_ms: position.timestamp_ms(),
                filter,
            })
            .await
            .map_err(failed("GetShardIterator"))?;
        Ok(response.into_inner().shard_iterator)
    }

    /// Up to `limit` records at an iterator (0: the server's default), and the iterator to
    /// continue from (empty once a closed shard is read to its end).
    pub async fn get_records(
        &self,
        shard_iterator: &str,
        limit: u32,
    ) -> Result<GetRecordsResponse, ClientError> {
        let response = self
            .streams()
            .get_records(GetRecordsRequest {
                shard_iterator: shard_iterator.to_owned(),
                limit,
                as_frames: false,
            })
            .await
            .map_err(failed("GetRecords"))?;
        Ok(response.into_inner())
    }

    /// [`Client::get_records`] in the frame form: the server sends the stored frames as they
    /// are, and they are checked (each frame's CRCs, and that they hold exactly the records
    /// of the answer's range) and decoded here. The records' fields are slices of the
    /// received message: no copy per record on either side. Not for a filtered iterator.
    pub async fn get_stored_records(
        &self,
        shard_iterator: &str,
        limit: u32,
    ) -> Result<StoredRecords, ClientError> {
        let response = self
            .streams()
            .get_records(GetRecordsRequest {
                shard_iterator: shard_iterator.to_owned(),
                limit,
                as_frames: true,
            })
            .await
            .map_err(failed("GetRecords"))?
            .into_inner();
        let frames = match response.frames.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            more => more.concat().into(),
        };
        let mut records = Vec::new();
        crate::storage::record::decode_frames(
            &frames,
            SequenceNumber::new(response.frames_first_sequence),
            SequenceNumber::new(response.frames_end_sequence),
            &mut records,
        )
        .map_err(|reason| ClientError::Frames {
            rpc: "GetRecords",
            reason,
        })?;
        Ok(StoredRecords {
            records,
            next_shard_iterator: response.next_shard_iterator,
            millis_behind_latest: response.millis_behind_latest,
            child_shards: response.child_shards,
        })
    }

    /// Subscribes to a shard from `position`: the server pushes batches as records become
    /// durable. Read with `stream.message().await`; after a reconnect, resume with
    /// `Position::AfterSequence` of the last record received.
    ///
    /// Subscriptions made through one `Client` share its connection and its HTTP/2
    /// flow-control window: what one of them leaves unread holds room the others need. Give a
    /// subscription that may be read slowly (or not at all for a while) a `Client` of its own.
    pub async fn subscribe_to_shard(
        &self,
        stream: &str,
        shard_id: &str,
        position: Position,
    ) -> Result<Streaming<SubscribeToShardEvent>, ClientError> {
        self.subscribe_to_shard_filtered(stream, shard_id, position, None)
            .await
    }

    /// A subscription that pushes only the records matching `filter` (all with `None`).
    pub async fn subscribe_to_shard_filtered(
        &self,
        stream: &str,
        shard_id: &str,
        position: Position,
        filter: Option<Filter>,
    ) -> Result<Streaming<SubscribeToShardEvent>, ClientError> {
        let response = self
            .streams()
            .subscribe_to_shard(SubscribeToShardRequest {
                stream_name: stream.to_owned(),
                shard_id: shard_id.to_owned(),
                starting_position: Some(position.to_starting_position()),
                filter,
            })
            .await
            .map_err(failed("SubscribeToShard"))?;
        Ok(response.into_inner())
    }

    // ----- consumer groups ---------------------------------------------------------------------

    /// Joins a group (creating it on first join) and returns the member's leases and timing.
    /// `session_timeout` of `None` takes the server's default.
    pub async fn join_group(
        &self,
        member: &Membership,
        session_timeout: Option<Duration>,
    ) -> Result<JoinGroupResponse, ClientError> {
        let session_timeout_ms =
            session_timeout.map_or(0, |t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX));
        let response = self
            .groups()
            .join_group(JoinGroupRequest {
                stream_name: member.stream.clone(),
                group_name: member.group.clone(),
                member_id: member.member_id.clone(),
                session_timeout_ms,
            })
            .await
            .map_err(failed("JoinGroup"))?;
        Ok(response.into_inner())
    }

    /// Keeps the membership alive; returns the member's current leases. `NOT_FOUND` means the
    /// session expired: join again.
    pub async fn heartbeat(&self, member: &Membership) -> Result<HeartbeatResponse, ClientError> {
        let response = self
            .groups()
            .heartbeat(HeartbeatRequest {
                stream_name: member.stream.clone(),
                group_name: member.group.clone(),
                member_id: member.member_id.clone(),
            })
            .await
            .map_err(failed("Heartbeat"))?;
        Ok(response.into_inner())
    }

    /// Leaves the group at once; the member's shards go to the others.
    pub async fn leave_group(&self, member: &Membership) -> Result<(), ClientError> {
        self.groups()
            .leave_group(LeaveGroupRequest {
                stream_name: member.stream.clone(),
                group_name: member.group.clone(),
                member_id: member.member_id.clone(),
            })
            .await
            .map_err(failed("LeaveGroup"))?;
        Ok(())
    }

    /// Durably records that `shard_id` has been processed up to `sequence_number`, under the
    /// lease `lease_epoch`. `FAILED_PRECONDITION` means the lease was lost.
    pub async fn commit_checkpoint(
        &self,
        member: &Membership,
        shard_id: &str,
        lease_epoch: u64,
        sequence_number: u64,
    ) -> Result<(), ClientError> {
        self.commit_checkpoint_with(CommitCheckpointRequest {
            stream_name: member.stream.clone(),
            group_name: member.group.clone(),
            member_id: member.member_id.clone(),
            shard_id: shard_id.to_owned(),
            lease_epoch,
            sequence_number,
            reset: false,
        })
        .await
    }

    /// Commits a checkpoint with every option of the request (`reset` moves it backwards).
    pub async fn commit_checkpoint_with(
        &self,
        request: CommitCheckpointRequest,
    ) -> Result<(), ClientError> {
        self.groups()
            .commit_checkpoint(request)
            .await
            .map_err(failed("CommitCheckpoint"))?;
        Ok(())
    }

    /// A group's members and, per shard, owner, epoch, checkpoint and lag.
    pub async fn describe_group(
        &self,
        stream: &str,
        group: &str,
    ) -> Result<DescribeGroupResponse, ClientError> {
        let response = self
            .groups()
            .describe_group(DescribeGroupRequest {
                stream_name: stream.to_owned(),
                group_name: group.to_owned(),
            })
            .await
            .map_err(failed("DescribeGroup"))?;
        Ok(response.into_inner())
    }

    /// The names of a stream's groups, sorted.
    pub async fn list_groups(&self, stream: &str) -> Result<Vec<String>, ClientError> {
        let response = self
            .groups()
            .list_groups(ListGroupsRequest {
                stream_name: stream.to_owned(),
            })
            .await
            .map_err(failed("ListGroups"))?;
        Ok(response.into_inner().group_names)
    }

    /// A stream's groups with their types, sorted by name.
    pub async fn list_groups_typed(&self, stream: &str) -> Result<Vec<GroupSummary>, ClientError> {
        let response = self
            .groups()
            .list_groups(ListGroupsRequest {
                stream_name: stream.to_owned(),
            })
            .await
            .map_err(failed("ListGroups"))?;
        Ok(response.into_inner().groups)
    }

    /// Creates a group of any type (a queue group, or a lease group ahead of its first join).
    pub async fn create_group(&self, request: CreateGroupRequest) -> Result<(), ClientError> {
        self.groups()
            .create_group(request)
            .await
            .map_err(failed("CreateGroup"))?;
        Ok(())
    }

    // ----- queues ------------------------------------------------------------------------------

    /// Receives up to `max_messages` messages of a queue group; waits up to `wait` for the
    /// first when none is available (empty answer after it). `visibility` overrides the
    /// group's visibility timeout, rounded up to whole seconds.
    pub async fn receive_messages(
        &self,
        stream: &str,
        group: &str,
        max_messages: u32,
        visibility: Option<Duration>,
        wait: Duration,
    ) -> Result<Vec<Message>, ClientError> {
        let response = self
            .queues()
            .receive_messages(ReceiveMessagesRequest {
                stream_name: stream.to_owned(),
                group_name: group.to_owned(),
                max_messages,
                visibility_timeout_seconds: visibility.map(whole_seconds),
                wait_time_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
            })
            .await
            .map_err(failed("ReceiveMessages"))?;
        Ok(response.into_inner().messages)
    }

    /// Deletes messages by their receipt handles; one result per handle, in order (a failed
    /// handle has a non-empty `error_code`).
    pub async fn delete_messages(
        &self,
        stream: &str,
        group: &str,
        receipt_handles: Vec<String>,
    ) -> Result<Vec<DeleteMessageResult>, ClientError> {
        let response = self
            .queues()
            .delete_messages(DeleteMessagesRequest {
                stream_name: stream.to_owned(),
                group_name: group.to_owned(),
                receipt_handles,
            })
            .await
            .map_err(failed("DeleteMessages"))?;
        Ok(response.into_inner().results)
    }

    /// Makes a received message invisible for `timeout` from now, rounded up to whole seconds
    /// (zero: visible at once).
    pub async fn change_message_visibility(
        &self,
        stream: &str,
        group: &str,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        self.queues()
            .change_message_visibility(ChangeMessageVisibilityRequest {
                stream_name: stream.to_owned(),
                group_name: group.to_owned(),
                receipt_handle: receipt_handle.to_owned(),
                visibility_timeout_seconds: whole_seconds(timeout),
            })
            .await
            .map_err(failed("ChangeMessageVisibility"))?;
        Ok(())
    }

    /// Starts moving what the dead-letter stream `source` holds back to where each message
    /// came from (`destination` `None`) or into `destination`; returns the task's id.
    pub async fn move_messages(
        &self,
        source: &str,
        destination: Option<&str>,
        max_messages_per_second: u32,
    ) -> Result<String, ClientError> {
        let response = self
            .queues()
            .move_messages(MoveMessagesRequest {
                source_stream: source.to_owned(),
                destination_stream: destination.unwrap_or_default().to_owned(),
                max_messages_per_second,
            })
            .await
            .map_err(failed("MoveMessages"))?;
        Ok(response.into_inner().task_id)
    }

    /// The move tasks of a dead-letter stream, newest first.
    pub async fn list_move_tasks(&self, source: &str) -> Result<Vec<MoveTask>, ClientError> {
        let response = self
            .queues()
            .list_move_tasks(ListMoveTasksRequest {
                source_stream: source.to_owned(),
            })
            .await
            .map_err(failed("ListMoveTasks"))?;
        Ok(response.into_inner().tasks)
    }

    /// Deletes a group, its checkpoints and its leases.
    pub async fn delete_group(&self, stream: &str, group: &str) -> Result<(), ClientError> {
        self.groups()
            .delete_group(DeleteGroupRequest {
                stream_name: stream.to_owned(),
                group_name: group.to_owned(),
            })
            .await
            .map_err(failed("DeleteGroup"))?;
        Ok(())
    }

    // ----- router ------------------------------------------------------------------------------

    /// Whether a record of `data` and `attributes` matches `filter`; an invalid pattern is an
    /// `INVALID_ARGUMENT` naming where it is wrong.
    pub async fn test_pattern(&self, request: TestPatternRequest) -> Result<bool, ClientError> {
        let response = self
            .router()
            .test_pattern(request)
            .await
            .map_err(failed("TestPattern"))?;
        Ok(response.into_inner().matches)
    }

    /// Creates or replaces a rule; returns it as stored.
    pub async fn put_rule(&self, request: PutRuleRequest) -> Result<Rule, ClientError> {
        let response = self
            .router()
            .put_rule(request)
            .await
            .map_err(failed("PutRule"))?;
        rule(response.into_inner().rule, "PutRule")
    }

    /// A rule's definition, status, counters and progress.
    pub async fn describe_rule(&self, name: &str) -> Result<Rule, ClientError> {
        let response = self
            .router()
            .describe_rule(DescribeRuleRequest {
                rule_name: name.to_owned(),
            })
            .await
            .map_err(failed("DescribeRule"))?;
        rule(response.into_inner().rule, "DescribeRule")
    }

    /// Every rule, or those reading `source_stream`, by name.
    pub async fn list_rules(&self, source_stream: Option<&str>) -> Result<Vec<Rule>, ClientError> {
        let response = self
            .router()
            .list_rules(ListRulesRequest {
                source_stream: source_stream.unwrap_or_default().to_owned(),
            })
            .await
            .map_err(failed("ListRules"))?;
        Ok(response.into_inner().rules)
    }

    /// Deletes a rule.
    pub async fn delete_rule(&self, name: &str) -> Result<(), ClientError> {
        self.router()
            .delete_rule(DeleteRuleRequest {
                rule_name: name.to_owned(),
            })
            .await
            .map_err(failed("DeleteRule"))?;
        Ok(())
    }
}

/// A visibility timeout in the wire's whole seconds, rounded up: a part of a second asked for
/// must not become zero, which means "visible at once".
fn whole_seconds(d: Duration) -> u32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// The contract says a rule call answers with the rule.
fn rule(rule: Option<Rule>, rpc: &'static str) -> Result<Rule, ClientError> {
    rule.ok_or_else(|| failed(rpc)(Status::internal("the response carries no rule")))
}

/// The contract says a successful stream call carries the description; a server that leaves it
/// out broke the contract, reported as the `INTERNAL` status it amounts to.
fn description(
    stream: Option<StreamDescription>,
    rpc: &'static str,
) -> Result<StreamDescription, ClientError> {
    stream.ok_or_else(|| {
        failed(rpc)(Status::internal(
            "the response carries no stream description",
        ))
    })
}

#[cfg(test)]
mod tests;
