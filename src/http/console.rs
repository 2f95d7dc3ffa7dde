//! The web console on the admin listener: `GET /` serves one page (HTML, CSS and JavaScript
//! embedded in the binary, nothing fetched from elsewhere) that reads the JSON API below and
//! draws its plots as SVG.
//!
//! - `GET /api/overview`: the server and every stream the caller may read, with their latest
//!   rates and lag.
//! - `GET /api/streams/{name}`: shards (ranges, lineage, state), the plotted history, lease
//!   groups, queue groups and rules.
//! - `GET /api/streams/{name}/records?shard=…&from=…&at=…&limit=…&pattern=…&scope=…`: a page
//!   of records from any of the five positions, each marked as matching the pattern or not.
//! - `POST /api/streams` (`{"name", "shards"}`), `DELETE /api/streams/{name}`,
//!   `POST /api/streams/{name}/records` (`{"partition_key", "data", "attributes"}`): admin
//!   actions, allowed as the same requests over gRPC are.
//!
//! With an auth file every API request takes `Authorization: Bearer <token>` (the page asks
//! for it and keeps it for the browser tab), and is allowed as the token's principal is.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::Admin;
use crate::auth::{Action, Caller};
use crate::broker::{Broker, BrokerError, GroupType, IteratorKind, PutAttribute, PutEntry};
use crate::route::{Filter, FilterScope};
use crate::storage::{SequenceNumber, StoredRecord, Timestamp};
use crate::stream::StreamName;

/// Records one page of the record browser shows at most.
pub const CONSOLE_MAX_RECORDS: u32 = 500;
/// Records a page shows when the request names no limit.
pub const CONSOLE_DEFAULT_RECORDS: u32 = 50;
/// Bytes of a record's data shown in hex.
pub const CONSOLE_HEX_BYTES: usize = 4096;

/// The page itself.
const PAGE: &str = include_str!("console.html");

pub(super) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}

/// An answer that is not a success: the status and `{"error": …}`.
#[derive(Debug)]
pub(super) struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal(status, message.into())
}

fn broker_refusal(e: BrokerError) -> Refusal {
    let status = crate::grpc::status::to_status(e);
    let code = match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => StatusCode::BAD_REQUEST,
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::AlreadyExists | tonic::Code::FailedPrecondition | tonic::Code::Aborted => {
            StatusCode::CONFLICT
        }
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    refuse(code, status.message())
}

/// The broker and the caller, or the answer that refuses the request.
fn open(admin: &Admin, headers: &HeaderMap) -> Result<(Broker, Caller), Refusal> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = admin
        .auth
        .bearer(presented)
        .map_err(|why| refuse(StatusCode::UNAUTHORIZED, why))?;
    let broker = admin.broker.get().cloned().ok_or_else(|| {
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "recovering the data directory",
        )
    })?;
    Ok((broker, caller))
}

fn allowed(caller: &Caller, action: Action, stream: &str) -> Result<(), Refusal> {
    if caller.may(action, stream) {
        return Ok(());
    }
    let who = match caller {
        Caller::Principal(p) => p.name.as_str(),
        Caller::Anyone => "anyone",
    };
    Err(refuse(
        StatusCode::FORBIDDEN,
        format!("principal {who} may not {action} stream {stream}"),
    ))
}

fn stream_name(name: &str) -> Result<StreamName, Refusal> {
    StreamName::new(name).map_err(|_| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("invalid name: {name:?} is not a stream name ([a-zA-Z0-9_.-]{{1,128}})"),
        )
    })
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

pub(super) async fn overview(
    State(admin): State<Admin>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let (broker, caller) = open(&admin, &headers)?;
    let latest = admin.history.latest();
    let mut streams = Vec::new();
    for name in broker.list_streams() {
        if !caller.may(Action::Read, &name) {
            continue;
        }
        let Ok(d) = broker.describe_stream(&StreamName::new(&name).expect("a listed name")) else {
            continue;
        };
        let listed: Vec<_> = d.shards().iter().filter(|s| !s.retired).collect();
        let ([records_in, bytes_in, records_out, bytes_out], lag) =
            latest.get(&name).copied().unwrap_or_default();
        let durable: u64 = admin.history.durable(&name).values().sum();
        streams.push(json!({
            "name": name,
            "shards_open": listed.iter().filter(|s| s.is_open()).count(),
            "shards": listed.len(),
            "records_in_per_sec": records_in,
            "bytes_in_per_sec": bytes_in,
            "records_out_per_sec": records_out,
            "bytes_out_per_sec": bytes_out,
            "lag_records": lag,
            "durable_records": durable,
        }));
    }
    let config = broker.config();
    let data_dir = config.data_dir.clone();
    let data_bytes = tokio::task::spawn_blocking(move || dir_bytes(&data_dir))
        .await
        .unwrap_or(0);
    Ok(Json(json!({
        "server": {
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_secs": admin.started.elapsed().as_secs(),
            "data_dir": config.data_dir.display().to_string(),
            "data_bytes": data_bytes,
            "fsync": format!("{:?}", config.commit.policy),
            "auth": admin.auth.is_on(),
        },
        "streams": streams,
    }))
    .into_response())
}

fn series(v: &std::collections::VecDeque<f32>) -> Vec<f32> {
    v.iter().copied().collect()
}

pub(super) async fn stream(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let (broker, caller) = open(&admin, &headers)?;
    allowed(&caller, Action::Read, &name)?;
    let stream = stream_name(&name)?;
    let d = broker.describe_stream(&stream).map_err(broker_refusal)?;
    let durable = admin.history.durable(&name);
    let shards: Vec<Value> = d
        .shards()
        .iter()
        .filter(|s| !s.retired)
        .map(|s| {
            json!({
                "id": s.id.to_string(),
                "open": s.is_open(),
                "parent": s.parent.map(|p| p.to_string()),
                "adjacent_parent": s.adjacent_parent.map(|p| p.to_string()),
                "start_key": s.range.start.to_string(),
                "end_key": s.range.end.to_string(),
                // The range as fractions of the key space, for the picture.
                "from": s.range.start.0 as f64 / u128::MAX as f64,
                "to": s.range.end.0 as f64 / u128::MAX as f64,
                "starting_sequence": s.starting_sequence.get(),
                "ending_sequence": s.ending_sequence.map(|e| e.get()),
                "durable_next": durable.get(&s.id.to_string()),
            })
        })
        .collect();
    let mut groups = Vec::new();
    let mut queues = Vec::new();
    for (group, kind) in broker.list_groups(&stream).unwrap_or_default() {
        if kind == GroupType::ShardLeases {
            let Ok(g) = broker.describe_group(&stream, &group).await else {
                continue;
            };
            groups.push(json!({
                "name": group,
                "members": g.members.iter().map(|m| json!({
                    "id": m.member_id,
                    "shards": m.shards.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "shards": g.shards.iter().map(|s| json!({
                    "shard": s.shard.to_string(),
                    "owner": s.owner,
                    "checkpoint": s.checkpoint.map(|c| c.get()),
                    "lag_records": s.lag_records,
                    "behind_ms": s.behind_latest.as_millis() as u64,
                })).collect::<Vec<_>>(),
            }));
        } else if let Ok(q) = broker.describe_queue(&stream, &group).await {
            queues.push(json!({
                "name": group,
                "fifo": kind == GroupType::QueueFifo,
                "visible": q.visible,
                "in_flight": q.in_flight,
                "oldest_age_ms": q.oldest_age.as_millis() as u64,
                "received": q.counters.received,
                "deleted": q.counters.deleted,
                "dead_lettered": q.counters.dead_lettered,
                "dead_letter_stream": q.definition.dead_letter_stream.as_ref().map(ToString::to_string),
                "dead_letter_error": q.dead_letter_error,
            }));
        }
    }
    let rules: Vec<Value> = broker
        .list_rules(Some(&stream))
        .into_iter()
        .map(|r| {
            json!({
                "name": r.name.to_string(),
                "targets": r.definition.targets.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "status": format!("{:?}", r.status),
                "matched": r.matched,
                "routed": r.routed,
                "lag_records": r.shards.iter().map(|s| s.lag_records).sum::<u64>(),
                "last_error": r.last_error,
            })
        })
        .collect();
    let history = admin.history.stream(&name).unwrap_or_default();
    Ok(Json(json!({
        "name": name,
        "created_at_ms": d.created_at_ms.as_millis(),
        "retention_hours": d.settings.retention.as_secs() / 3600,
        "shards": shards,
        "groups": groups,
        "queues": queues,
        "rules": rules,
        "history": {
            "interval_ms": super::history::HISTORY_INTERVAL.as_millis() as u64,
            "times": history.times.iter().collect::<Vec<_>>(),
            "records_in": series(&history.records_in),
            "bytes_in": series(&history.bytes_in),
            "records_out": series(&history.records_out),
            "bytes_out": series(&history.bytes_out),
            "shards": history.shards.iter().map(|(id, s)| (id.clone(), json!({
                "records_in": series(&s.records_in), "bytes_in": series(&s.bytes_in),
                "records_out": series(&s.records_out), "bytes_out": series(&s.bytes_out),
            }))).collect::<BTreeMap<_, _>>(),
            "groups": history.groups.iter().map(|(g, lag)| (g.clone(), series(lag))).collect::<BTreeMap<_, _>>(),
            "group_shards": history.group_shards.iter().map(|(g, shards)| (g.clone(),
                shards.iter().map(|(id, lag)| (id.clone(), series(lag))).collect::<BTreeMap<_, _>>(),
            )).collect::<BTreeMap<_, _>>(),
        },
    }))
    .into_response())
}

/// The record browser's query.
#[derive(Debug, Deserialize)]
pub(super) struct RecordsQuery {
    shard: String,
    /// trim_horizon (default), latest, at_sequence, after_sequence, at_timestamp.
    from: Option<String>,
    /// The sequence number or the time in ms since the epoch the position needs.
    at: Option<String>,
    limit: Option<u32>,
    /// A filter pattern (the router's syntax); records are marked as matching it or not.
    pattern: Option<String>,
    /// data (default) or attributes.
    scope: Option<String>,
}

fn position(q: &RecordsQuery) -> Result<IteratorKind, String> {
    let at = || -> Result<u64, String> {
        let text = q.at.as_deref().unwrap_or("").trim();
        text.parse()
            .map_err(|_| format!("invalid at: {text:?} is not a whole number"))
    };
    Ok(
        match q
            .from
            .as_deref()
            .unwrap_or("trim_horizon")
            .to_ascii_lowercase()
            .as_str()
        {
            "trim_horizon" => IteratorKind::TrimHorizon,
            "latest" => IteratorKind::Latest,
            "at_sequence" => IteratorKind::AtSequence(SequenceNumber::new(at()?)),
            "after_sequence" => IteratorKind::AfterSequence(SequenceNumber::new(at()?)),
            "at_timestamp" => IteratorKind::AtTimestamp(Timestamp::from_millis(at()?)),
            other => {
                return Err(format!(
                    "invalid from: {other:?} is none of trim_horizon, latest, at_sequence, \
                     after_sequence, at_timestamp"
                ))
            }
        },
    )
}

fn record_json(r: &StoredRecord, matches: Option<bool>) -> Value {
    let text = std::str::from_utf8(&r.data).ok();
    let pretty = text
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .and_then(|v| serde_json::to_string_pretty(&v).ok());
    let shown = &r.data[..r.data.len().min(CONSOLE_HEX_BYTES)];
    let hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
    let utf8 = |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    json!({
        "sequence": r.sequence.get().to_string(),
        "arrival_ms": r.timestamp_ms.as_millis(),
        "partition_key": String::from_utf8_lossy(&r.partition_key),
        "explicit_hash_key": r.explicit_hash_key.map(|k| k.to_string()),
        "message_group_id": utf8(&r.message_group_id),
        "deduplication_id": utf8(&r.deduplication_id),
        "attributes": r.attributes.iter().map(|a| json!({
            "name": a.name,
            "type": a.kind.name(),
            "value": a.text().map_or_else(
                || a.value.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                str::to_owned,
            ),
        })).collect::<Vec<_>>(),
        "size": r.data.len(),
        "text": text,
        "json": pretty,
        "hex": hex,
        "matches": matches,
    })
}

pub(super) async fn records(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    Query(q): Query<RecordsQuery>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let (broker, caller) = open(&admin, &headers)?;
    allowed(&caller, Action::Read, &name)?;
    let stream = stream_name(&name)?;
    let kind = position(&q).map_err(|why| refuse(StatusCode::BAD_REQUEST, why))?;
    let limit = q.limit.unwrap_or(CONSOLE_DEFAULT_RECORDS);
    if limit == 0 || limit > CONSOLE_MAX_RECORDS {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("invalid limit: {limit} is outside [1, {CONSOLE_MAX_RECORDS}]"),
        ));
    }
    let matcher = match q
        .pattern
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        None => None,
        Some(pattern) => {
            let scope = match q.scope.as_deref().unwrap_or("data") {
                "data" => FilterScope::Data,
                "attributes" => FilterScope::Attributes,
                other => {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        format!("invalid scope: {other:?} is neither data nor attributes"),
                    ))
                }
            };
            let filter = Filter {
                pattern: pattern.to_owned(),
                scope,
            };
            Some(broker.matcher(&filter, "pattern").map_err(broker_refusal)?)
        }
    };
    let iterator = broker
        .get_shard_iterator(&stream, &q.shard, kind, None)
        .await
        .map_err(broker_refusal)?;
    let read = broker
        .get_records(&iterator, limit)
        .await
        .map_err(broker_refusal)?;
    let records: Vec<Value> = read
        .records
        .iter()
        .map(|r| {
            let matches = matcher
                .as_ref()
                .map(|m| crate::broker::filter::record_matches(m, r));
            record_json(r, matches)
        })
        .collect();
    Ok(Json(json!({
        "shard": q.shard,
        "records": records,
        "behind_ms": read.behind_latest.as_millis() as u64,
        "more": read.next_shard_iterator.is_some(),
    }))
    .into_response())
}

/// `POST /api/streams`.
#[derive(Debug, Deserialize)]
pub(super) struct CreateStream {
    name: String,
    shards: Option<u32>,
}

/// Shards of a stream the console makes when none is named: what an on-demand Kinesis stream
/// starts with.
pub const CONSOLE_DEFAULT_SHARDS: u32 = 4;

pub(super) async fn create_stream(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Json(body): Json<CreateStream>,
) -> Result<Response, Refusal> {
    let (broker, caller) = open(&admin, &headers)?;
    allowed(&caller, Action::Admin, &body.name)?;
    let stream = stream_name(&body.name)?;
    let shards = body.shards.unwrap_or(CONSOLE_DEFAULT_SHARDS);
    broker
        .create_stream(stream, shards, Default::default())
        .await
        .map_err(broker_refusal)?;
    Ok((StatusCode::CREATED, Json(json!({ "name": body.name }))).into_response())
}

pub(super) async fn delete_stream(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let (broker, caller) = open(&admin, &headers)?;
    allowed(&caller, Action::Admin, &name)?;
    let stream = stream_name(&name)?;
    broker
        .delete_stream(&stream)
        .await
        .map_err(broker_refusal)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/streams/{name}/groups/{group}/reset`: moves a lease group's checkpoint.
#[derive(Debug, Deserialize)]
pub(super) struct ResetCheckpoint {
    shard: String,
    /// The sequence number to go on after (decimal text); absent: start the shard over.
    sequence: Option<String>,
}

pub(super) async fn reset_checkpoint(
    State(admin): State<Admin>,
    Path((name, group)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<ResetCheckpoint>,
) -> Result<Response, Refusal> {
    let (broker, caller) = open(&admin, &headers)?;
    allowed(&caller, Action::Admin, &name)?;
    let stream = stream_name(&name)?;
    let sequence = match body
        .sequence
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(text) => Some(SequenceNumber::new(text.parse().map_err(|_| {
            refuse(
                StatusCode::BAD_REQUEST,
                format!("invalid sequence: {text:?} is not a sequence number"),
            )
        })?)),
    };
    broker
        .reset_checkpoint(&stream, &group, &body.shard, sequence)
        .await
        .map_err(broker_refusal)?;
    Ok(Json(json!({ "group": group, "shard": body.shard })).into_response())
}

/// `POST /api/streams/{name}/redrive`: moves what a dead-letter stream holds back to where
/// each message came from, or into `destination`.
#[derive(Debug, Deserialize)]
pub(super) struct Redrive {
    destination: Option<String>,
    /// Messages moved per second at most; absent: the server's default.
    max_per_second: Option<u32>,
}

pub(super) async fn redrive(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Redrive>,
) -> Result<Response, Refusal> {
    let (broker, caller) = open(&admin, &headers)?;
    allowed(&caller, Action::Admin, &name)?;
    let source = stream_name(&name)?;
    let destination = match body.destination.as_deref().filter(|d| !d.is_empty()) {
        None => None,
        Some(d) => {
            allowed(&caller, Action::Write, d)?;
            Some(stream_name(d)?)
        }
    };
    let task = broker
        .move_messages(&source, destination, body.max_per_second.unwrap_or(0))
        .await
        .map_err(broker_refusal)?;
    Ok(Json(json!({ "task": task })).into_response())
}

/// `POST /api/streams/{name}/records`: a test record.
#[derive(Debug, Deserialize)]
pub(super) struct PutTestRecord {
    partition_key: String,
    data: String,
    #[serde(default)]
    attributes: Vec<TestAttribute>,
}

#[derive(Debug, Deserialize)]
pub(super) struct TestAttribute {
    name: String,
    /// String (default) or Number.
    #[serde(rename = "type")]
    kind: Option<String>,
    value: String,
}

pub(super) async fn put_record(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(body): Json<PutTestRecord>,
) -> Result<Response, Refusal> {
    let (broker, caller) = open(&admin, &headers)?;
    allowed(&caller, Action::Write, &name)?;
    let stream = stream_name(&name)?;
    let mut attributes = Vec::with_capacity(body.attributes.len());
    for a in body.attributes {
        attributes.push(match a.kind.as_deref().unwrap_or("String") {
            "String" => PutAttribute::string(&a.name, &a.value),
            "Number" => PutAttribute::number(&a.name, &a.value),
            other => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!("invalid attributes.type: {other:?} is neither String nor Number"),
                ))
            }
        });
    }
    let entry = PutEntry {
        partition_key: body.partition_key,
        data: Bytes::from(body.data),
        attributes,
        ..PutEntry::default()
    };
    let put = broker
        .put_record(&stream, entry)
        .await
        .map_err(broker_refusal)?;
    Ok(Json(json!({
        "shard": put.shard.to_string(),
        "sequence": put.sequence.get().to_string(),
    }))
    .into_response())
}
