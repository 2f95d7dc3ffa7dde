//! The Kinesis Data Streams API over HTTP: `POST /` with `X-Amz-Target:
//! Kinesis_20131202.<Operation>`, in JSON 1.1 or CBOR 1.1, HTTP/1.1 or HTTP/2 (h2c), so that
//! the AWS SDKs, the aws CLI and KCL-style consumers work by changing only their endpoint.
//!
//! A thin adapter over the broker, like `grpc/`: each request is decoded ([`value`]), checked
//! against its operation's shape ([`schema`]), run by the operation's module (`streams`,
//! `records`, `consumers`), and answered in the request's encoding; every broker error is
//! mapped in one place ([`error`]). Records put here are read by gRPC and the other way round:
//! the same log, the same sequence numbers (as decimal strings).

pub mod arn;
mod consumers;
pub mod error;
pub mod eventstream;
mod records;
mod reshard;
pub use records::record_out;
pub mod schema;
pub mod sigv4;
mod streams;
pub mod token;
pub mod value;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;

use self::error::{Account, ErrorKind, KinesisError};
use self::schema::{check_types, validate, Member};
use self::value::{Encoding, Out, Value};
use crate::auth::{Action, Auth, Caller};
use crate::broker::{Broker, BrokerError};
use crate::stream::StreamName;

/// Default address: kinesalite's port, so tools that assume it find the server.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4567";
/// Region named in ARNs by default.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Account id named in ARNs and messages by default.
pub const DEFAULT_ACCOUNT: &str = "000000000000";
/// Largest request body: a full PutRecords (5 MiB of data, base64 in JSON) with room to spare.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;
/// How long one SubscribeToShard call streams before it ends (Kinesis: 5 minutes).
pub const DEFAULT_SUBSCRIPTION_LIFETIME: Duration = Duration::from_secs(300);
/// A second SubscribeToShard for the same consumer and shard within this time of a successful
/// one is refused with `ResourceInUseException` (Kinesis: 5 seconds).
pub const RESUBSCRIBE_INTERVAL: Duration = Duration::from_secs(5);
/// Shortest retention the Kinesis API sets, in hours (Kinesis's own minimum).
pub const DEFAULT_MIN_RETENTION_HOURS: u32 = 24;
/// Shards a stream created in on-demand mode starts with (Kinesis: 4).
pub const DEFAULT_ON_DEMAND_SHARDS: u32 = 4;
/// The target prefix of every operation.
const TARGET_PREFIX: &str = "Kinesis_20131202.";

/// The Kinesis endpoint's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisConfig {
    /// Region named in ARNs.
    pub region: String,
    /// Account id named in ARNs and messages.
    pub account: String,
    /// Largest request body; a larger one is refused with 413.
    pub max_request_bytes: usize,
    /// How long one SubscribeToShard call streams.
    pub subscription_lifetime: Duration,
    /// How long a pagination token is honoured.
    pub next_token_ttl: Duration,
    /// Shortest retention the Kinesis API sets, in hours (Kinesis: 24; gRPC allows less).
    pub min_retention_hours: u32,
    /// How long after a SubscribeToShard call another for the same consumer and shard is
    /// refused; after it, a new call takes the subscription over.
    pub resubscribe_interval: Duration,
    /// How long a client of this listener, and of the admin listener, may take to send a
    /// request's headers before its connection is closed.
    pub header_read_timeout: Duration,
}

impl Default for KinesisConfig {
    fn default() -> Self {
        KinesisConfig {
            region: DEFAULT_REGION.into(),
            account: DEFAULT_ACCOUNT.into(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            subscription_lifetime: DEFAULT_SUBSCRIPTION_LIFETIME,
            next_token_ttl: token::DEFAULT_NEXT_TOKEN_TTL,
            min_retention_hours: DEFAULT_MIN_RETENTION_HOURS,
            resubscribe_interval: RESUBSCRIBE_INTERVAL,
            header_read_timeout: crate::http::DEFAULT_HEADER_READ_TIMEOUT,
        }
    }
}

/// A running SubscribeToShard call.
struct Subscription {
    /// When it started.
    started: Instant,
    /// Told when a later call takes it over.
    taken_over: Arc<tokio::sync::Notify>,
}

/// What every request handler shares.
#[derive(Clone)]
pub(crate) struct Kinesis {
    broker: Broker,
    config: Arc<KinesisConfig>,
    /// Who may do what; with an auth file every request is signed (SigV4).
    auth: Auth,
    /// The live subscription of each consumer to each shard: (consumer ARN, shard) → it.
    subscriptions: Arc<Mutex<HashMap<(String, String), Subscription>>>,
}

impl Kinesis {
    fn account(&self) -> Account<'_> {
        Account {
            id: &self.config.account,
        }
    }

    fn broker_error(&self, e: &BrokerError) -> KinesisError {
        self.account().error(e)
    }

    fn stream_arn(&self, name: &str) -> String {
        arn::stream(&self.config.region, &self.config.account, name)
    }

    /// The stream a request addresses, by `StreamName` or `StreamARN` (both must agree when
    /// both are given).
    fn stream_of(&self, body: &Value<'_>) -> Result<StreamName, KinesisError> {
        let by_arn = body.str("StreamARN").and_then(arn::parse_stream);
        let name =
            match (body.str("StreamName"), by_arn) {
                (Some(name), Some(from_arn)) if name != from_arn => {
                    return Err(KinesisError::invalid(format!(
                        "StreamName {name} and StreamARN {} name different streams.",
                        body.str("StreamARN").unwrap_or_default()
                    )))
                }
                (Some(name), _) => name,
                (None, Some(from_arn)) => from_arn,
                (None, None) => return Err(KinesisError::new(
                    ErrorKind::Validation,
                    "1 validation error detected: Value null at 'streamName' failed to satisfy \
                     constraint: Member must not be null",
                )),
            };
        StreamName::new(name).map_err(|e| KinesisError::invalid(e.to_string()))
    }
}

/// Serves the Kinesis API on `listener` until `shutdown` resolves; then stops accepting and
/// lets requests in flight finish.
pub async fn serve(
    broker: Broker,
    listener: crate::tls::Incoming,
    config: KinesisConfig,
    auth: Auth,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max_body = config.max_request_bytes;
    let header_timeout = config.header_read_timeout;
    let state = Kinesis {
        broker,
        config: Arc::new(config),
        auth,
        subscriptions: Arc::default(),
    };
    let app = Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state);
    tracing::info!(addr = %listener.local_addr(), "serving the Kinesis API");
    crate::http::serve_router(listener, app, header_timeout, shutdown).await
}

/// An answer: a body in the request's encoding, or an event stream.
enum Reply {
    Body(Out),
    Stream(Body),
}

async fn handle(
    State(kinesis): State<Kinesis>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let encoding = header_text(header::CONTENT_TYPE.as_str())
        .and_then(Encoding::of_content_type)
        .unwrap_or(Encoding::Json);
    if method != Method::POST {
        return error_response(
            &KinesisError::new(
                ErrorKind::AccessDenied,
                "Unable to determine service/operation name to be authorized",
            ),
            encoding,
        );
    }
    let operation = header_text("x-amz-target").and_then(|t| t.strip_prefix(TARGET_PREFIX));
    let (Some(operation), Some(_)) = (
        operation,
        header_text(header::CONTENT_TYPE.as_str()).and_then(Encoding::of_content_type),
    ) else {
        return error_response(
            &KinesisError::new(
                ErrorKind::UnknownOperation,
                "The operation is missing from X-Amz-Target, or the content type is not \
                 application/x-amz-json-1.1 or application/x-amz-cbor-1.1",
            ),
            encoding,
        );
    };
    let started = std::time::Instant::now();
    let answer = match kinesis.auth.current() {
        None => Ok(Caller::Anyone),
        Some(auth) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            sigv4::verify(&auth, &method, &uri, &headers, &body, now)
        }
    };
    let answer = match answer.and_then(|caller| {
        caller
            .admit_request()
            .map(|()| caller)
            .map_err(|over| KinesisError::new(ErrorKind::LimitExceeded, over.message))
    }) {
        Ok(caller) => run(&kinesis, operation, &body, encoding, &caller).await,
        Err(e) => Err(e),
    };
    let name = if operation_of(operation).is_some() {
        crate::broker::stats::intern(operation)
    } else {
        "unknown"
    };
    let stats = kinesis.broker.request_stats();
    match &answer {
        Ok(_) => stats.record("kinesis", name, crate::broker::stats::OK, started.elapsed()),
        Err(e) => {
            stats.record("kinesis", name, e.kind.type_name(), started.elapsed());
            if matches!(
                e.kind,
                ErrorKind::ProvisionedThroughputExceeded | ErrorKind::LimitExceeded
            ) {
                stats.throttled("kinesis", "limit");
            }
        }
    }
    match answer {
        // An operation without output answers with an empty body, as Kinesis does.
        Ok(Reply::Body(Out::Struct(members))) if members.is_empty() => {
            respond(StatusCode::OK, encoding, Vec::new())
        }
        Ok(Reply::Body(out)) => respond(StatusCode::OK, encoding, out.encode(encoding)),
        Ok(Reply::Stream(stream)) => {
            let mut response = Response::new(stream);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.amazon.eventstream"),
            );
            add_request_ids(response.headers_mut());
            response
        }
        Err(e) => error_response(&e, encoding),
    }
}

async fn run(
    kinesis: &Kinesis,
    operation: &str,
    body: &[u8],
    encoding: Encoding,
    caller: &Caller,
) -> Result<Reply, KinesisError> {
    let Some((shape, op)) = operation_of(operation) else {
        return Err(KinesisError::new(
            ErrorKind::UnknownOperation,
            format!("Operation {operation} is not known to this server"),
        ));
    };
    let mut request = value::decode(body, encoding)
        .map_err(|e| KinesisError::new(ErrorKind::Serialization, e.0))?;
    check_types(&mut request, shape, encoding)?;
    validate(&request, shape)?;
    authorize(kinesis, caller, operation, op, &request)?;
    let k = kinesis;
    let r = request;
    let out = match op {
        Op::CreateStream => streams::create_stream(k, r).await,
        Op::DeleteStream => streams::delete_stream(k, r).await,
        Op::DescribeStream => streams::describe_stream(k, r),
        Op::DescribeStreamSummary => streams::describe_stream_summary(k, r),
        Op::ListStreams => streams::list_streams(k, r, caller),
        Op::ListShards => streams::list_shards(k, r),
        Op::IncreaseRetention => streams::change_retention(k, r, true).await,
        Op::DecreaseRetention => streams::change_retention(k, r, false).await,
        Op::UpdateStreamMode => streams::update_stream_mode(k, r).await,
        Op::DescribeLimits => streams::describe_limits(k),
        Op::AddTagsToStream => streams::add_tags(k, r).await,
        Op::RemoveTagsFromStream => streams::remove_tags(k, r).await,
        Op::ListTagsForStream => streams::list_tags_for_stream(k, r),
        Op::TagResource => streams::tag_resource(k, r).await,
        Op::UntagResource => streams::untag_resource(k, r).await,
        Op::ListTagsForResource => streams::list_tags_for_resource(k, r),
        Op::EnableMonitoring => streams::set_monitoring(k, r, true).await,
        Op::DisableMonitoring => streams::set_monitoring(k, r, false).await,
        Op::StartEncryption => streams::start_encryption(k, r),
        Op::StopEncryption => streams::stop_encryption(k, r),
        Op::ResourcePolicy => Err(streams::no_resource_policies()),
        Op::UpdateMaxRecordSize => streams::update_max_record_size(k, r),
        Op::SplitShard => reshard::split_shard(k, r).await,
        Op::MergeShards => reshard::merge_shards(k, r).await,
        Op::UpdateShardCount => reshard::update_shard_count(k, r).await,
        Op::PutRecord => records::put_record(k, r).await,
        Op::PutRecords => records::put_records(k, r).await,
        Op::GetShardIterator => records::get_shard_iterator(k, r).await,
        Op::GetRecords => records::get_records(k, r).await,
        Op::RegisterConsumer => consumers::register(k, r).await,
        Op::DescribeConsumer => consumers::describe(k, r),
        Op::ListConsumers => consumers::list(k, r),
        Op::DeregisterConsumer => consumers::deregister(k, r).await,
        Op::SubscribeToShard => return consumers::subscribe(k, r, encoding).await,
    }?;
    Ok(Reply::Body(out))
}

/// Allows the operation for the caller: what it does (`read`, `write`, `admin`) to the stream
/// it names, or `AccessDeniedException` as Kinesis words it. Listing streams and limits needs
/// no grant (the list shows only readable streams).
fn authorize(
    k: &Kinesis,
    caller: &Caller,
    operation: &str,
    op: Op,
    r: &Value<'_>,
) -> Result<(), KinesisError> {
    let Caller::Principal(principal) = caller else {
        return Ok(());
    };
    let action = match op {
        Op::ListStreams | Op::DescribeLimits => return Ok(()),
        Op::PutRecord | Op::PutRecords => Action::Write,
        Op::DescribeStream
        | Op::DescribeStreamSummary
        | Op::ListShards
        | Op::ListTagsForStream
        | Op::ListTagsForResource
        | Op::GetShardIterator
        | Op::GetRecords
        | Op::DescribeConsumer
        | Op::ListConsumers
        | Op::SubscribeToShard => Action::Read,
        _ => Action::Admin,
    };
    let consumer_stream = |field: &str| {
        r.str(field)
            .and_then(|a| arn::parse_consumer(a).map(|(s, _, _)| s.to_owned()))
    };
    let stream = match op {
        Op::GetRecords => k
            .broker
            .iterator_stream(r.str("ShardIterator").unwrap_or_default())
            .map_err(|e| k.broker_error(&e))?
            .to_string(),
        Op::TagResource | Op::UntagResource | Op::ListTagsForResource => {
            let arn = r.str("ResourceARN").unwrap_or_default();
            arn::parse_stream(arn)
                .map(str::to_owned)
                .or_else(|| consumer_stream("ResourceARN"))
                .unwrap_or_default()
        }
        _ => match consumer_stream("ConsumerARN") {
            Some(stream) => stream,
            None => k.stream_of(r)?.to_string(),
        },
    };
    if principal.may(action, &stream) {
        if action == Action::Write {
            let bytes = match r.list("Records") {
                Some(records) => records.iter().map(put_bytes).sum(),
                None => put_bytes(r),
            };
            principal
                .admit_bytes(bytes)
                .map_err(|over| KinesisError::new(ErrorKind::LimitExceeded, over.message))?;
        }
        return Ok(());
    }
    Err(KinesisError::new(
        ErrorKind::AccessDenied,
        format!(
            "User: arn:aws:iam::{}:user/{} is not authorized to perform: kinesis:{operation} on              resource: {} because no identity-based policy allows the kinesis:{operation} action              ({action} on stream {stream})",
            k.config.account,
            principal.name,
            k.stream_arn(&stream),
        ),
    ))
}

/// Bytes of data and partition key of one put entry (a PutRecord request or a PutRecords
/// entry), as a principal's byte rate counts them.
fn put_bytes(entry: &Value<'_>) -> usize {
    entry.bytes("Data").map_or(0, <[u8]>::len) + entry.str("PartitionKey").map_or(0, str::len)
}

/// The operations served.
#[derive(Debug, Clone, Copy)]
enum Op {
    CreateStream,
    DeleteStream,
    DescribeStream,
    DescribeStreamSummary,
    ListStreams,
    ListShards,
    IncreaseRetention,
    DecreaseRetention,
    UpdateStreamMode,
    DescribeLimits,
    AddTagsToStream,
    RemoveTagsFromStream,
    ListTagsForStream,
    TagResource,
    UntagResource,
    ListTagsForResource,
    EnableMonitoring,
    DisableMonitoring,
    StartEncryption,
    StopEncryption,
    ResourcePolicy,
    UpdateMaxRecordSize,
    SplitShard,
    MergeShards,
    UpdateShardCount,
    PutRecord,
    PutRecords,
    GetShardIterator,
    GetRecords,
    RegisterConsumer,
    DescribeConsumer,
    ListConsumers,
    DeregisterConsumer,
    SubscribeToShard,
}

/// The input shape of an operation, by its name in `X-Amz-Target`; `None` for one not served.
pub fn request_shape(operation: &str) -> Option<&'static [Member]> {
    operation_of(operation).map(|(shape, _)| shape)
}

/// An operation's input shape and handler, by its name in `X-Amz-Target`.
fn operation_of(name: &str) -> Option<(&'static [Member], Op)> {
    Some(match name {
        "CreateStream" => (streams::CREATE_STREAM, Op::CreateStream),
        "DeleteStream" => (streams::DELETE_STREAM, Op::DeleteStream),
        "DescribeStream" => (streams::DESCRIBE_STREAM, Op::DescribeStream),
        "DescribeStreamSummary" => (streams::STREAM_ONLY, Op::DescribeStreamSummary),
        "ListStreams" => (streams::LIST_STREAMS, Op::ListStreams),
        "ListShards" => (streams::LIST_SHARDS, Op::ListShards),
        "IncreaseStreamRetentionPeriod" => (streams::RETENTION, Op::IncreaseRetention),
        "DecreaseStreamRetentionPeriod" => (streams::RETENTION, Op::DecreaseRetention),
        "UpdateStreamMode" => (streams::UPDATE_STREAM_MODE, Op::UpdateStreamMode),
        "DescribeLimits" => (&[], Op::DescribeLimits),
        "AddTagsToStream" => (streams::ADD_TAGS, Op::AddTagsToStream),
        "RemoveTagsFromStream" => (streams::REMOVE_TAGS, Op::RemoveTagsFromStream),
        "ListTagsForStream" => (streams::LIST_TAGS_FOR_STREAM, Op::ListTagsForStream),
        "TagResource" => (streams::TAG_RESOURCE, Op::TagResource),
        "UntagResource" => (streams::UNTAG_RESOURCE, Op::UntagResource),
        "ListTagsForResource" => (streams::RESOURCE_ONLY, Op::ListTagsForResource),
        "EnableEnhancedMonitoring" => (streams::MONITORING, Op::EnableMonitoring),
        "DisableEnhancedMonitoring" => (streams::MONITORING, Op::DisableMonitoring),
        "StartStreamEncryption" => (streams::ENCRYPTION, Op::StartEncryption),
        "StopStreamEncryption" => (streams::ENCRYPTION, Op::StopEncryption),
        "PutResourcePolicy" | "GetResourcePolicy" | "DeleteResourcePolicy" => {
            (&[], Op::ResourcePolicy)
        }
        "UpdateMaxRecordSize" => (streams::STREAM_ONLY, Op::UpdateMaxRecordSize),
        "SplitShard" => (reshard::SPLIT_SHARD, Op::SplitShard),
        "MergeShards" => (reshard::MERGE_SHARDS, Op::MergeShards),
        "UpdateShardCount" => (reshard::UPDATE_SHARD_COUNT, Op::UpdateShardCount),
        "PutRecord" => (records::PUT_RECORD, Op::PutRecord),
        "PutRecords" => (records::PUT_RECORDS, Op::PutRecords),
        "GetShardIterator" => (records::GET_SHARD_ITERATOR, Op::GetShardIterator),
        "GetRecords" => (records::GET_RECORDS, Op::GetRecords),
        "RegisterStreamConsumer" => (consumers::REGISTER, Op::RegisterConsumer),
        "DescribeStreamConsumer" => (consumers::DESCRIBE, Op::DescribeConsumer),
        "ListStreamConsumers" => (consumers::LIST, Op::ListConsumers),
        "DeregisterStreamConsumer" => (consumers::DESCRIBE, Op::DeregisterConsumer),
        "SubscribeToShard" => (consumers::SUBSCRIBE, Op::SubscribeToShard),
        _ => return None,
    })
}

fn respond(status: StatusCode, encoding: Encoding, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    add_request_ids(response.headers_mut());
    response
}

fn error_response(e: &KinesisError, encoding: Encoding) -> Response {
    let mut response = respond(e.kind.status(), encoding, e.body(encoding));
    if let Ok(v) = HeaderValue::from_str(e.kind.type_name()) {
        response.headers_mut().insert("x-amzn-errortype", v);
    }
    response
}

/// `x-amzn-RequestId` (a UUID) and `x-amz-id-2`, as Kinesis sends them.
fn add_request_ids(headers: &mut HeaderMap) {
    let mut id = [0u8; 16];
    // Request ids only need to differ; without randomness, time and a counter do.
    if getrandom::fill(&mut id).is_err() {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        id[..8].copy_from_slice(&n.to_be_bytes());
    }
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    if let Ok(v) = HeaderValue::from_str(&uuid) {
        headers.insert("x-amzn-requestid", v.clone());
        headers.insert("x-amz-id-2", v);
    }
}
