//! Enhanced fan-out: registered consumers, and SubscribeToShard's push of a shard's records as
//! an `application/vnd.amazon.eventstream` body (HTTP/2 for the SDKs that insist, HTTP/1.1
//! chunked for the ones that do not), for one subscription lifetime.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;

use super::error::{ErrorKind, KinesisError};
use super::eventstream::Message;
use super::records::{position, record_out};
use super::schema::{is_consumer_arn, is_name, member, Member, Rule, Ty, SHARD_ID};
use super::token::PageToken;
use super::value::{Encoding, Out, Value};
use super::{arn, Kinesis, Reply, Subscription};
use crate::broker::{self, SubscribeEvent};
use crate::storage::{SequenceNumber, Timestamp};
use crate::stream::{StreamChange, StreamConsumer, StreamName};

/// Consumers one ListStreamConsumers page holds by default (Kinesis: 100).
pub const LIST_CONSUMERS_PAGE: usize = 100;
/// Events a subscription may have encoded ahead of a slow reader.
const SUBSCRIPTION_BUFFER: usize = 1;

const CONSUMER_NAME: Member = member(
    "ConsumerName",
    Ty::Str,
    &[
        Rule::MinLen(1),
        Rule::MaxLen(128),
        Rule::Pattern("[a-zA-Z0-9_.-]+", is_name),
    ],
);
const CONSUMER_ARN: Member = member(
    "ConsumerARN",
    Ty::Str,
    &[
        Rule::MinLen(1),
        Rule::MaxLen(2048),
        Rule::Pattern(
            "^(arn):aws.*:kinesis:.*:\\d{12}:.*stream\\/[a-zA-Z0-9_.-]+\\/consumer\\/[a-zA-Z0-9_.-]+:[0-9]+",
            is_consumer_arn,
        ),
    ],
);
const STREAM_ARN_REQUIRED: Member = member(
    "StreamARN",
    Ty::Str,
    &[
        Rule::Required,
        Rule::MinLen(1),
        Rule::MaxLen(2048),
        Rule::Pattern(
            "arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+",
            super::schema::is_stream_arn,
        ),
    ],
);
const POSITION_TYPES: &[&str] = &[
    "AT_SEQUENCE_NUMBER",
    "AFTER_SEQUENCE_NUMBER",
    "TRIM_HORIZON",
    "LATEST",
    "AT_TIMESTAMP",
];
const STARTING_POSITION: &[Member] = &[
    member(
        "Type",
        Ty::Str,
        &[Rule::Required, Rule::OneOf(POSITION_TYPES)],
    ),
    member(
        "SequenceNumber",
        Ty::Str,
        &[Rule::Pattern(
            "0|([1-9]\\d{0,128})",
            super::schema::is_sequence_number,
        )],
    ),
    member("Timestamp", Ty::Time, &[]),
];

pub(super) const REGISTER: &[Member] = &[
    STREAM_ARN_REQUIRED,
    member(
        "ConsumerName",
        Ty::Str,
        &[
            Rule::Required,
            Rule::MinLen(1),
            Rule::MaxLen(128),
            Rule::Pattern("[a-zA-Z0-9_.-]+", is_name),
        ],
    ),
];
pub(super) const DESCRIBE: &[Member] = &[
    member(
        "StreamARN",
        Ty::Str,
        &[
            Rule::MinLen(1),
            Rule::MaxLen(2048),
            Rule::Pattern(
                "arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+",
                super::schema::is_stream_arn,
            ),
        ],
    ),
    CONSUMER_NAME,
    CONSUMER_ARN,
];
pub(super) const LIST: &[Member] = &[
    STREAM_ARN_REQUIRED,
    member(
        "NextToken",
        Ty::Str,
        &[Rule::MinLen(1), Rule::MaxLen(1_048_576)],
    ),
    member("MaxResults", Ty::Int, &[Rule::Min(1), Rule::Max(10_000)]),
    member("StreamCreationTimestamp", Ty::Time, &[]),
];
pub(super) const SUBSCRIBE: &[Member] = &[
    member(
        "ConsumerARN",
        Ty::Str,
        &[
            Rule::Required,
            Rule::MinLen(1),
            Rule::MaxLen(2048),
            Rule::Pattern(
                "^(arn):aws.*:kinesis:.*:\\d{12}:.*stream\\/[a-zA-Z0-9_.-]+\\/consumer\\/[a-zA-Z0-9_.-]+:[0-9]+",
                is_consumer_arn,
            ),
        ],
    ),
    SHARD_ID,
    member(
        "StartingPosition",
        Ty::Struct(STARTING_POSITION),
        &[Rule::Required],
    ),
];

fn consumer_out(k: &Kinesis, stream: &str, c: &StreamConsumer) -> Vec<(&'static str, Out)> {
    vec![
        ("ConsumerName", Out::str(c.name.as_str())),
        (
            "ConsumerARN",
            Out::str(arn::consumer(
                &k.config.region,
                &k.config.account,
                stream,
                &c.name,
                c.created_at_ms,
            )),
        ),
        ("ConsumerStatus", Out::str("ACTIVE")),
        ("ConsumerCreationTimestamp", Out::Time(c.created_at_ms)),
    ]
}

fn stream_named(text: &str) -> Result<StreamName, KinesisError> {
    StreamName::new(text).map_err(|e| KinesisError::invalid(e.to_string()))
}

fn not_found(k: &Kinesis, stream: &str, consumer: &str) -> KinesisError {
    KinesisError::new(
        ErrorKind::ResourceNotFound,
        format!(
            "Consumer {consumer} under stream {stream} not found for account {}.",
            k.config.account
        ),
    )
}

/// The consumer a request names: by `ConsumerARN` (whose registration time must match), or by
/// `StreamARN` and `ConsumerName`.
fn named_consumer(
    k: &Kinesis,
    r: &Value<'_>,
) -> Result<(StreamName, StreamConsumer), KinesisError> {
    let (stream, name, epoch) = match (
        r.str("ConsumerARN"),
        r.str("StreamARN"),
        r.str("ConsumerName"),
    ) {
        (Some(consumer_arn), _, _) => {
            let (stream, name, epoch) = arn::parse_consumer(consumer_arn).ok_or_else(|| {
                KinesisError::invalid(format!("Invalid ConsumerARN {consumer_arn}"))
            })?;
            (stream, name, Some(epoch))
        }
        (None, Some(stream_arn), Some(name)) => {
            let stream = arn::parse_stream(stream_arn)
                .ok_or_else(|| KinesisError::invalid(format!("Invalid StreamARN {stream_arn}")))?;
            (stream, name, None)
        }
        _ => {
            return Err(KinesisError::invalid(
                "Either ConsumerARN or both StreamARN and ConsumerName must be given.",
            ))
        }
    };
    let stream_name = stream_named(stream)?;
    let d = k
        .broker
        .describe_stream(&stream_name)
        .map_err(|e| k.broker_error(&e))?;
    let consumer = d
        .options
        .consumer(name)
        .filter(|c| epoch.is_none_or(|e| c.created_at_ms.as_millis() / 1000 == e))
        .cloned()
        .ok_or_else(|| not_found(k, stream, name))?;
    Ok((stream_name, consumer))
}

pub(super) async fn register(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let stream = stream_named(
        arn::parse_stream(r.str("StreamARN").unwrap_or_default()).unwrap_or_default(),
    )?;
    let consumer = StreamConsumer {
        name: r.str("ConsumerName").unwrap_or_default().to_owned(),
        created_at_ms: Timestamp::now(),
    };
    k.broker
        .update_stream(&stream, StreamChange::RegisterConsumer(consumer.clone()))
        .await
        .map_err(|e| k.broker_error(&e))?;
    Ok(Out::Struct(vec![(
        "Consumer",
        Out::Struct(consumer_out(k, stream.as_str(), &consumer)),
    )]))
}

pub(super) fn describe(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let (stream, consumer) = named_consumer(k, &r)?;
    let mut description = consumer_out(k, stream.as_str(), &consumer);
    description.push(("StreamARN", Out::str(k.stream_arn(stream.as_str()))));
    Ok(Out::Struct(vec![(
        "ConsumerDescription",
        Out::Struct(description),
    )]))
}

pub(super) fn list(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let stream = stream_named(
        arn::parse_stream(r.str("StreamARN").unwrap_or_default()).unwrap_or_default(),
    )?;
    let (after, limit) = match r.str("NextToken") {
        Some(text) => {
            let t =
                PageToken::decode(text, "consumers", Timestamp::now(), k.config.next_token_ttl)?;
            if t.stream != stream.as_str() {
                return Err(KinesisError::invalid(format!("Invalid NextToken: {text}")));
            }
            (
                Some(t.after),
                r.int("MaxResults").map_or(t.limit, |n| n as usize),
            )
        }
        None => (
            None,
            r.int("MaxResults")
                .map_or(LIST_CONSUMERS_PAGE, |n| n as usize),
        ),
    };
    let d = k
        .broker
        .describe_stream(&stream)
        .map_err(|e| k.broker_error(&e))?;
    let mut consumers: Vec<&StreamConsumer> = d.options.consumers.iter().collect();
    consumers.sort_by(|a, b| a.name.cmp(&b.name));
    let mut rest = consumers
        .into_iter()
        .filter(|c| after.as_deref().is_none_or(|a| c.name.as_str() > a));
    let chosen: Vec<&StreamConsumer> = rest.by_ref().take(limit).collect();
    let next = match (rest.next().is_some(), chosen.last()) {
        (true, Some(last)) => Out::str(
            PageToken {
                kind: "consumers".into(),
                stream: stream.to_string(),
                after: last.name.clone(),
                limit,
                issued_at: Timestamp::now(),
            }
            .encode(),
        ),
        _ => Out::Null,
    };
    Ok(Out::Struct(vec![
        (
            "Consumers",
            Out::List(
                chosen
                    .into_iter()
                    .map(|c| Out::Struct(consumer_out(k, stream.as_str(), c)))
                    .collect(),
            ),
        ),
        ("NextToken", next),
    ]))
}

pub(super) async fn deregister(k: &Kinesis, r: Value<'_>) -> Result<Out, KinesisError> {
    let (stream, consumer) = named_consumer(k, &r)?;
    k.broker
        .update_stream(&stream, StreamChange::DeregisterConsumer(consumer.name))
        .await
        .map_err(|e| k.broker_error(&e))?;
    Ok(Out::Struct(vec![]))
}

/// A SubscribeToShardEvent's payload.
fn event_out(ev: SubscribeEvent) -> Out {
    Out::Struct(vec![
        (
            "Records",
            Out::List(ev.records.into_iter().map(record_out).collect()),
        ),
        (
            "ContinuationSequenceNumber",
            ev.continuation_sequence
                .map_or(Out::Null, |s: SequenceNumber| Out::str(s.get().to_string())),
        ),
        (
            "MillisBehindLatest",
            Out::Int(i64::try_from(ev.behind_latest.as_millis()).unwrap_or(i64::MAX)),
        ),
        (
            "ChildShards",
            super::records::child_shards_out(&ev.child_shards),
        ),
    ])
}

pub(super) async fn subscribe(
    k: &Kinesis,
    r: Value<'_>,
    encoding: Encoding,
) -> Result<Reply, KinesisError> {
    let consumer_arn = r.str("ConsumerARN").unwrap_or_default().to_owned();
    let (stream, _consumer) = named_consumer(k, &r)?;
    let shard = super::records::resolve_shard(k, &stream, r.str("ShardId").unwrap_or_default())?;
    let start = r.get("StartingPosition");
    let kind = position(
        start.and_then(|p| p.str("Type")).unwrap_or_default(),
        start.and_then(|p| p.str("SequenceNumber")),
        start.and_then(|p| p.time("Timestamp")),
        &shard,
        stream.as_str(),
        &k.config.account,
    )?;
    let key = (consumer_arn.clone(), shard.clone());
    let taken_over = Arc::new(Notify::new());
    {
        let mut live = k.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if let Some(previous) = live.get(&key) {
            let interval = k.config.resubscribe_interval;
            if now.duration_since(previous.started) < interval {
                return Err(KinesisError::new(
                    ErrorKind::ResourceInUse,
                    format!(
                        "Another active subscription exists for consumer {consumer_arn} and \
                         shard {shard}; a new one may take it over {} seconds after it started.",
                        interval.as_secs_f64()
                    ),
                ));
            }
            // A later call takes the subscription over: the earlier one ends.
            previous.taken_over.notify_one();
        }
        live.insert(
            key.clone(),
            Subscription {
                started: now,
                taken_over: Arc::clone(&taken_over),
            },
        );
    }
    let live = Arc::clone(&k.subscriptions);
    let taken_over_mine = Arc::clone(&taken_over);
    let forget = move || {
        let mut live = live.lock().unwrap_or_else(|p| p.into_inner());
        if live
            .get(&key)
            .is_some_and(|s| Arc::ptr_eq(&s.taken_over, &taken_over_mine))
        {
            live.remove(&key);
        }
    };
    let mut events = match k.broker.subscribe(&stream, &shard, kind, None).await {
        Ok(events) => events,
        Err(e) => {
            forget();
            return Err(k.broker_error(&e));
        }
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(SUBSCRIPTION_BUFFER);
    let initial = Message::event(
        "initial-response",
        encoding.content_type(),
        Out::Struct(vec![]).encode(encoding),
    );
    let lifetime = k.config.subscription_lifetime;
    let account = k.config.account.clone();
    tokio::spawn(async move {
        forward(
            tx,
            initial,
            &mut events,
            lifetime,
            &taken_over,
            encoding,
            &account,
        )
        .await;
        forget();
    });
    Ok(Reply::Stream(Body::from_stream(ReceiverStream::new(rx))))
}

/// Sends the initial response, then every event, until the lifetime is over, the subscription
/// is taken over, the reader goes away or the subscription fails (its error is the last
/// message).
async fn forward(
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    initial: Message,
    events: &mut broker::Subscription,
    lifetime: std::time::Duration,
    taken_over: &Notify,
    encoding: Encoding,
    account: &str,
) {
    let content_type = encoding.content_type();
    if tx.send(Ok(initial.encode())).await.is_err() {
        return;
    }
    let end = tokio::time::sleep(lifetime);
    tokio::pin!(end);
    loop {
        let item = tokio::select! {
            () = &mut end => return,
            () = taken_over.notified() => return,
            () = tx.closed() => return,
            item = events.recv() => item,
        };
        let message = match item {
            Some(Ok(ev)) => Message::event(
                "SubscribeToShardEvent",
                content_type,
                event_out(ev).encode(encoding),
            ),
            Some(Err(e)) => {
                let e = super::error::Account { id: account }.error(&e);
                let m = Message::exception(e.kind.type_name(), content_type, e.body(encoding));
                let _ = tx.send(Ok(m.encode())).await;
                return;
            }
            None => return,
        };
        if tx.send(Ok(message.encode())).await.is_err() {
            return;
        }
    }
}
