//! The typed client against a real server on 127.0.0.1:0: every call with plain arguments,
//! errors as statuses, and the `GroupConsumer` sharing, fencing and checkpointing.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::TestServer;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use tonic::Code;

use shardlog::client::{
    Batch, Client, ConsumerConfig, ConsumerError, GroupConsumer, HandlerError, Membership, Position,
};
use shardlog::proto::v1::{
    CreateStreamRequest, DedupScope, PutRecordRequest, PutRecordsRequestEntry,
};

/// A failsafe bound on waits for events, so a broken consumer fails the test instead of
/// hanging it. Never reached when things work.
const PATIENCE: Duration = Duration::from_secs(30);

/// The shared harness's server, with the typed client connected to it.
struct Server(TestServer);

impl Server {
    async fn start() -> Server {
        Server(TestServer::start().await)
    }

    async fn client(&self) -> Client {
        Client::connect(self.0.url()).await.expect("connect")
    }

    async fn stop(self) {
        self.0.stop().await;
    }
}

/// `n` entries: partition key `{key}{i}` and data `{data}{i}` for each `i` below `n`.
fn numbered_entries(n: usize, key: &str, data: &str) -> Vec<PutRecordsRequestEntry> {
    (0..n)
        .map(|i| entry(&format!("{key}{i}"), &format!("{data}{i}")))
        .collect()
}

fn entry(key: &str, data: &str) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry {
        partition_key: key.to_owned(),
        data: data.to_owned().into(),
        ..PutRecordsRequestEntry::default()
    }
}

#[tokio::test]
async fn every_stream_call_round_trips_with_plain_arguments() {
    let server = Server::start().await;
    let client = server.client().await;

    let created = client.create_stream("orders", 2).await.expect("create");
    assert_eq!(
        (created.stream_name.as_str(), created.shards.len()),
        ("orders", 2)
    );
    assert_eq!(client.list_streams().await.expect("list"), vec!["orders"]);
    assert_eq!(client.list_shards("orders").await.expect("shards").len(), 2);
    assert_eq!(
        client.describe_stream("orders").await.expect("describe"),
        created
    );

    let one = client
        .put_record("orders", "k", "first")
        .await
        .expect("put");
    let many = client
        .put_records("orders", vec![entry("k", "second"), entry("k", "third")])
        .await
        .expect("put many");
    assert_eq!(many.failed_record_count, 0);
    assert!(many.records.iter().all(|r| r.shard_id == one.shard_id));

    let iterator = client
        .get_shard_iterator(
            "orders",
            &one.shard_id,
            Position::AtSequence(one.sequence_number),
        )
        .await
        .expect("iterator");
    let read = client.get_records(&iterator, 10).await.expect("read");
    let data: Vec<_> = read.records.iter().map(|r| r.data.clone()).collect();
    assert_eq!(data, ["first", "second", "third"]);

    let mut events = client
        .subscribe_to_shard(
            "orders",
            &one.shard_id,
            Position::AfterSequence(one.sequence_number),
        )
        .await
        .expect("subscribe");
    let event = timeout(PATIENCE, events.message())
        .await
        .expect("an event in time")
        .expect("a healthy subscription")
        .expect("an open subscription");
    assert_eq!(event.records[0].data, "second");

    client.delete_stream("orders").await.expect("delete");
    let gone = client.describe_stream("orders").await.expect_err("deleted");
    assert_eq!(gone.code(), Some(Code::NotFound));
    server.stop().await;
}

#[tokio::test]
async fn create_stream_with_and_put_record_with_carry_every_option() {
    let server = Server::start().await;
    let client = server.client().await;
    let created = client
        .create_stream_with(CreateStreamRequest {
            stream_name: "fifo".to_owned(),
            shard_count: 1,
            retention_period_hours: 48,
            content_based_deduplication: true,
            dedup_window_seconds: 60,
            dedup_scope: DedupScope::MessageGroup as i32,
        })
        .await
        .expect("create");
    assert_eq!(created.retention_period_hours, 48);
    assert!(created.content_based_deduplication);
    assert_eq!(created.dedup_window_seconds, 60);
    assert_eq!(created.dedup_scope, DedupScope::MessageGroup as i32);

    let put = |dedup: &str| PutRecordRequest {
        stream_name: "fifo".to_owned(),
        partition_key: "k".to_owned(),
        data: "payload".into(),
        message_group_id: "g".to_owned(),
        deduplication_id: dedup.to_owned(),
        ..PutRecordRequest::default()
    };
    let first = client.put_record_with(put("d-1")).await.expect("put");
    let again = client.put_record_with(put("d-1")).await.expect("retry");
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(again.sequence_number, first.sequence_number);
    server.stop().await;
}

#[tokio::test]
async fn a_read_larger_than_tonics_default_message_limit_arrives() {
    let server = Server::start().await;
    let client = server.client().await;
    client.create_stream("big", 1).await.expect("create");
    // Six records of 1 MiB: the answer is past tonic's 4 MiB default decode limit.
    let megabyte = "x".repeat(1024 * 1024);
    // Two requests, each under the 5 MiB request limit.
    let mut puts = Vec::new();
    for count in [4, 2] {
        let entries = (0..count).map(|_| entry("k", &megabyte)).collect();
        let put = client.put_records("big", entries).await.expect("put");
        assert_eq!(put.failed_record_count, 0);
        puts.push(put);
    }
    let put = &puts[0];
    let iterator = client
        .get_shard_iterator("big", &put.records[0].shard_id, Position::TrimHorizon)
        .await
        .expect("iterator");
    let read = client.get_records(&iterator, 0).await.expect("read 6 MiB");
    assert_eq!(read.records.len(), 6);
    server.stop().await;
}

#[tokio::test]
async fn group_calls_round_trip_and_fencing_shows_as_failed_precondition() {
    let server = Server::start().await;
    let client = server.client().await;
    client.create_stream("s", 1).await.expect("create");
    let put = client.put_record("s", "k", "v").await.expect("put");
    let member = Membership::new("s", "g", "m-1");
    let joined = client
        .join_group(&member, Some(Duration::from_secs(5)))
        .await
        .expect("join");
    assert_eq!(joined.session_timeout_ms, 5000);
    let lease = joined.assignments[0].clone();
    client
        .commit_checkpoint(
            &member,
            &lease.shard_id,
            lease.lease_epoch,
            put.sequence_number,
        )
        .await
        .expect("commit");
    let stale = client
        .commit_checkpoint(
            &member,
            &lease.shard_id,
            lease.lease_epoch + 1,
            put.sequence_number,
        )
        .await
        .expect_err("wrong epoch");
    assert_eq!(stale.code(), Some(Code::FailedPrecondition));

    let beat = client.heartbeat(&member).await.expect("heartbeat");
    assert_eq!(beat.assignments[0].checkpoint, Some(put.sequence_number));
    assert_eq!(client.list_groups("s").await.expect("groups"), vec!["g"]);
    let described = client.describe_group("s", "g").await.expect("describe");
    assert_eq!(described.shards[0].owner_member_id, "m-1");
    client.leave_group(&member).await.expect("leave");
    let expired = client.heartbeat(&member).await.expect_err("left");
    assert_eq!(expired.code(), Some(Code::NotFound));
    client.delete_group("s", "g").await.expect("delete group");
    assert!(client.list_groups("s").await.expect("groups").is_empty());
    server.stop().await;
}

/// A consumer started by [`spawn_consumer`]: the batches its handler was given, and the means
/// to stop it.
struct RunningConsumer {
    batches: mpsc::UnboundedReceiver<Batch>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ConsumerError>>,
}

impl RunningConsumer {
    /// Asks the consumer to stop, and checks that it does within [`PATIENCE`], without a panic
    /// or an error.
    async fn stop(self) {
        self.stop.send(()).expect("consumer still running");
        timeout(PATIENCE, self.task)
            .await
            .expect("stops")
            .expect("no panic")
            .expect("no error");
    }
}

/// Runs a consumer whose handler forwards every batch to its `batches` channel; the consumer
/// stops when told to (or when dropped).
fn spawn_consumer(client: Client, member_id: &str) -> RunningConsumer {
    spawn_filtered_consumer(client, member_id, None)
}

/// [`spawn_consumer`], with only the records matching `filter` handed to the handler.
fn spawn_filtered_consumer(
    client: Client,
    member_id: &str,
    filter: Option<shardlog::proto::v1::Filter>,
) -> RunningConsumer {
    let (batches, received) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let mut config = ConsumerConfig::new(Membership::new("s", "g", member_id));
    config.filter = filter;
    config.session_timeout = Some(Duration::from_secs(1));
    config.idle_wait = Duration::from_millis(20);
    let consumer = GroupConsumer::new(client, config);
    let task = tokio::spawn(consumer.run(
        move |batch| {
            let batches = batches.clone();
            async move {
                let _ = batches.send(batch);
                Ok::<(), HandlerError>(())
            }
        },
        async {
            let _ = stopped.await;
        },
    ));
    RunningConsumer {
        batches: received,
        stop,
        task,
    }
}

/// Collects batches until `count` records arrived; returns data per record.
async fn receive(batches: &mut mpsc::UnboundedReceiver<Batch>, count: usize) -> Vec<String> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let batch = timeout(PATIENCE, batches.recv())
            .await
            .expect("records in time")
            .expect("consumer running");
        seen.extend(
            batch
                .records
                .iter()
                .map(|r| String::from_utf8_lossy(&r.data).into_owned()),
        );
    }
    seen
}

#[tokio::test]
async fn a_group_consumer_reads_every_shard_and_checkpoints_what_it_handled() {
    let server = Server::start().await;
    let client = server.client().await;
    client.create_stream("s", 3).await.expect("create");
    let entries = numbered_entries(30, "key-", "r");
    let put = client.put_records("s", entries).await.expect("put");
    let mut last_per_shard = BTreeMap::new();
    for r in &put.records {
        last_per_shard.insert(r.shard_id.clone(), r.sequence_number);
    }

    let mut consumer = spawn_consumer(client.clone(), "m-1");
    let mut seen = receive(&mut consumer.batches, 30).await;
    seen.sort();
    let mut expected: Vec<_> = (0..30).map(|i| format!("r{i}")).collect();
    expected.sort();
    assert_eq!(seen, expected);
    consumer.stop().await;

    let group = client.describe_group("s", "g").await.expect("describe");
    assert!(group.members.is_empty(), "the consumer left: {group:?}");
    for shard in group.shards {
        if let Some(last) = last_per_shard.get(&shard.shard_id) {
            assert_eq!(shard.checkpoint, Some(*last), "{}", shard.shard_id);
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_filtered_group_consumer_handles_only_matching_records() {
    let server = Server::start().await;
    let client = server.client().await;
    client.create_stream("s", 2).await.expect("create");
    let entries = (0..40)
        .map(|i| PutRecordsRequestEntry {
            partition_key: format!("key-{i}"),
            data: format!(r#"{{"n":{i},"even":{}}}"#, i % 2 == 0).into(),
            ..Default::default()
        })
        .collect();
    client.put_records("s", entries).await.expect("put");
    let filter = shardlog::proto::v1::Filter {
        pattern: r#"{"even":[true]}"#.into(),
        scope: shardlog::proto::v1::FilterScope::Data as i32,
    };
    let mut consumer = spawn_filtered_consumer(client.clone(), "m-1", Some(filter));
    // A last even record after all the others: once it is handled, any odd record handed
    // out would have been handled before it.
    client
        .put_record("s", "key-last", r#"{"n":100,"even":true}"#)
        .await
        .expect("put");
    let mut seen = receive(&mut consumer.batches, 21).await;
    assert!(
        seen.contains(&r#"{"n":100,"even":true}"#.to_owned()),
        "{seen:?}"
    );
    seen.retain(|d| !d.contains("100"));
    seen.sort();
    let mut expected: Vec<_> = (0..40)
        .step_by(2)
        .map(|i| format!(r#"{{"n":{i},"even":true}}"#))
        .collect();
    expected.sort();
    assert_eq!(seen, expected);
    consumer.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn a_filtered_group_consumer_goes_on_to_the_children_of_a_shard_whose_last_records_do_not_match(
) {
    let server = Server::start().await;
    let client = server.client().await;
    client.create_stream("s", 1).await.expect("create");
    let put = |n: usize, even: bool| {
        let client = client.clone();
        async move {
            client
                .put_record(
                    "s",
                    &format!("key-{n}"),
                    format!(r#"{{"n":{n},"even":{even}}}"#),
                )
                .await
                .expect("put");
        }
    };
    put(0, true).await;
    put(1, false).await;
    put(3, false).await;
    let filter = shardlog::proto::v1::Filter {
        pattern: r#"{"even":[true]}"#.into(),
        scope: shardlog::proto::v1::FilterScope::Data as i32,
    };
    let mut consumer = spawn_filtered_consumer(client.clone(), "m-1", Some(filter));
    assert_eq!(
        receive(&mut consumer.batches, 1).await,
        [r#"{"n":0,"even":true}"#]
    );
    // The parent closes with two records the filter passes over.
    client
        .split_shard("s", "shardId-000000000000", &(1u128 << 127).to_string())
        .await
        .expect("split");
    put(4, true).await;
    assert_eq!(
        receive(&mut consumer.batches, 1).await,
        [r#"{"n":4,"even":true}"#]
    );
    consumer.stop().await;
    let group = client.describe_group("s", "g").await.expect("describe");
    assert!(
        group
            .shards
            .iter()
            .all(|s| s.shard_id != "shardId-000000000000"),
        "the group is done with the parent: {group:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_new_member_resumes_after_the_groups_checkpoints() {
    let server = Server::start().await;
    let client = server.client().await;
    client.create_stream("s", 2).await.expect("create");
    let first = numbered_entries(10, "k", "old");
    client.put_records("s", first).await.expect("put");
    let mut consumer = spawn_consumer(client.clone(), "m-1");
    receive(&mut consumer.batches, 10).await;
    consumer.stop().await;

    let second = numbered_entries(5, "k", "new");
    client.put_records("s", second).await.expect("put");
    let mut consumer = spawn_consumer(client.clone(), "m-2");
    let seen = receive(&mut consumer.batches, 5).await;
    assert!(
        seen.iter().all(|d| d.starts_with("new")),
        "re-read checkpointed records: {seen:?}"
    );
    assert_eq!(seen.len(), 5);
    consumer.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn shards_are_shared_with_a_member_that_joins_later() {
    let server = Server::start().await;
    let client = server.client().await;
    client.create_stream("s", 4).await.expect("create");
    let mut a = spawn_consumer(client.clone(), "m-a");
    let mut b = spawn_consumer(client.clone(), "m-b");

    // Wait until the group settled with two shards each: B got its share at join, A gives
    // its surplus up at its next heartbeat.
    let settled = async {
        loop {
            // NOT_FOUND until the first member has joined.
            let Ok(group) = client.describe_group("s", "g").await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let owners: Vec<_> = group
                .shards
                .iter()
                .map(|s| s.owner_member_id.clone())
                .collect();
            let of = |m: &str| owners.iter().filter(|o| *o == m).count();
            if of("m-a") == 2 && of("m-b") == 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    timeout(PATIENCE, settled).await.expect("the group settles");

    let entries = numbered_entries(40, "key-", "r");
    client.put_records("s", entries).await.expect("put");
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    let distinct = |a: &[bytes::Bytes], b: &[bytes::Bytes]| {
        a.iter()
            .chain(b)
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    // Counted as distinct records: delivery is at least once, and until A's next heartbeat
    // tells it about the move, A may still hand over a record of a shard B already owns —
    // possibly all 40 before B reads. B still reads its own shards from the start (A
    // cannot checkpoint a shard it lost), so the loop also waits for B's first batch.
    while distinct(&seen_a, &seen_b) < 40 || seen_a.is_empty() || seen_b.is_empty() {
        tokio::select! {
            Some(batch) = a.batches.recv() => seen_a.extend(batch.records.into_iter().map(|r| r.data)),
            Some(batch) = b.batches.recv() => seen_b.extend(batch.records.into_iter().map(|r| r.data)),
            () = tokio::time::sleep(PATIENCE) => panic!("records stopped arriving"),
        }
    }
    assert!(
        !seen_a.is_empty() && !seen_b.is_empty(),
        "a: {}, b: {}",
        seen_a.len(),
        seen_b.len()
    );
    a.stop().await;
    b.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn a_failing_handler_stops_the_consumer_without_checkpointing() {
    let server = Server::start().await;
    let client = server.client().await;
    client.create_stream("s", 1).await.expect("create");
    client.put_record("s", "k", "poison").await.expect("put");
    let consumer = GroupConsumer::new(
        client.clone(),
        ConsumerConfig::new(Membership::new("s", "g", "m-1")),
    );
    let outcome = timeout(
        PATIENCE,
        consumer.run(
            |_batch| async { Err::<(), HandlerError>("cannot handle this".into()) },
            std::future::pending(),
        ),
    )
    .await
    .expect("the consumer stops on its own");
    assert!(
        matches!(outcome, Err(ConsumerError::Handler { .. })),
        "{outcome:?}"
    );
    let group = client.describe_group("s", "g").await.expect("describe");
    assert_eq!(group.shards[0].checkpoint, None);
    assert!(group.members.is_empty(), "the consumer left");
    server.stop().await;
}
