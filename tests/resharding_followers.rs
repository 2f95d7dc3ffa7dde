//! Queue groups and rules across reshards, over real gRPC: a FIFO queue hands out no message
//! of a group in a child shard while one of the same group in its parent is not done (other
//! groups go on), a standard queue serves children at once, and a rule routes a parent to its
//! end before its children, exactly once and in order per message group, across a restart.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use shardlog::client::Client;
use shardlog::proto::v1 as pb;
use shardlog::proto::v1::router_client::RouterClient;

use common::TestServer;

const NO_WAIT: Duration = Duration::ZERO;
const SHARD_0: &str = "shardId-000000000000";
/// How long a test waits for messages or routed records before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

async fn client(server: &TestServer) -> Client {
    Client::connect(server.url()).await.expect("connect")
}

async fn create_queue(c: &Client, stream: &str, group: &str, kind: pb::GroupType) {
    c.create_group(pb::CreateGroupRequest {
        stream_name: stream.into(),
        group_name: group.into(),
        r#type: kind as i32,
        ..Default::default()
    })
    .await
    .expect("create queue group");
}

/// Puts `(message group, data)` pairs in order, in one request.
async fn put(c: &Client, stream: &str, messages: &[(&str, String)]) {
    let entries = messages
        .iter()
        .map(|(g, d)| pb::PutRecordsRequestEntry {
            data: d.clone().into_bytes().into(),
            partition_key: (*g).into(),
            message_group_id: (*g).into(),
            ..Default::default()
        })
        .collect();
    let out = c.put_records(stream, entries).await.expect("put");
    assert_eq!(out.failed_record_count, 0);
}

fn data(m: &pb::Message) -> String {
    String::from_utf8(m.record.as_ref().unwrap().data.to_vec()).unwrap()
}

fn datas(ms: &[pb::Message]) -> Vec<String> {
    let mut d: Vec<String> = ms.iter().map(data).collect();
    d.sort();
    d
}

async fn receive(c: &Client, stream: &str, group: &str) -> Vec<pb::Message> {
    c.receive_messages(stream, group, 100, None, NO_WAIT)
        .await
        .expect("receive")
}

async fn delete(c: &Client, stream: &str, group: &str, ms: &[pb::Message]) {
    let results = c
        .delete_messages(
            stream,
            group,
            ms.iter().map(|m| m.receipt_handle.clone()).collect(),
        )
        .await
        .expect("delete");
    for r in results {
        assert_eq!(r.error_code, "", "{}", r.error_message);
    }
}

#[tokio::test]
async fn a_fifo_queue_holds_a_childs_message_back_while_its_group_is_undone_in_the_parent() {
    let server = TestServer::start().await;
    let c = client(&server).await;
    c.create_stream("s", 1).await.unwrap();
    create_queue(&c, "s", "work", pb::GroupType::QueueFifo).await;
    put(&c, "s", &[("a", "a1".into()), ("b", "b1".into())]).await;
    let first = receive(&c, "s", "work").await;
    assert_eq!(datas(&first), ["a1", "b1"]);
    // b is done in the parent, a is still in flight there.
    let b1: Vec<pb::Message> = first.iter().filter(|m| data(m) == "b1").cloned().collect();
    delete(&c, "s", "work", &b1).await;

    c.split_shard("s", SHARD_0, &(1u128 << 127).to_string())
        .await
        .unwrap();
    put(
        &c,
        "s",
        &[("a", "a2".into()), ("b", "b2".into()), ("c", "c2".into())],
    )
    .await;
    let children: Vec<String> = c
        .list_shards("s")
        .await
        .unwrap()
        .iter()
        .filter(|s| s.ending_sequence_number.is_none())
        .map(|s| s.shard_id.clone())
        .collect();
    assert_eq!(children.len(), 2);

    // a2 waits for a1; b2 and c2 have nothing before them.
    let second = receive(&c, "s", "work").await;
    assert_eq!(datas(&second), ["b2", "c2"]);
    assert!(second.iter().all(|m| children.contains(&m.shard_id)));
    assert!(receive(&c, "s", "work").await.is_empty());

    // a1 done: a2 comes.
    let a1: Vec<pb::Message> = first.iter().filter(|m| data(m) == "a1").cloned().collect();
    delete(&c, "s", "work", &a1).await;
    let third = receive(&c, "s", "work").await;
    assert_eq!(datas(&third), ["a2"]);
}

#[tokio::test]
async fn a_fifo_queue_created_after_reshards_serves_parents_before_children_and_across_a_restart() {
    let server = TestServer::start().await;
    let c = client(&server).await;
    c.create_stream("s", 1).await.unwrap();
    put(&c, "s", &[("a", "a1".into())]).await;
    c.split_shard("s", SHARD_0, &(1u128 << 127).to_string())
        .await
        .unwrap();
    put(&c, "s", &[("a", "a2".into()), ("b", "b2".into())]).await;
    c.update_shard_count("s", 1).await.unwrap();
    put(&c, "s", &[("a", "a3".into()), ("b", "b3".into())]).await;
    // Made on a stream with two generations of closed shards, from the trim horizon.
    create_queue(&c, "s", "work", pb::GroupType::QueueFifo).await;
    let got = receive(&c, "s", "work").await;
    // a1 holds a2 and a3 back; b2 (in a closed child with nothing of b before it) holds b3.
    assert_eq!(datas(&got), ["a1", "b2"]);
    let server = server.restart().await;
    let c = client(&server).await;
    // Still in flight after the restart: nothing of a or b is ready.
    assert!(receive(&c, "s", "work").await.is_empty());
    delete(&c, "s", "work", &got).await;
    let next = receive(&c, "s", "work").await;
    assert_eq!(datas(&next), ["a2", "b3"]);
    delete(&c, "s", "work", &next).await;
    assert_eq!(datas(&receive(&c, "s", "work").await), ["a3"]);
}

#[tokio::test]
async fn a_standard_queue_serves_children_while_the_parent_has_messages_in_flight() {
    let server = TestServer::start().await;
    let c = client(&server).await;
    c.create_stream("s", 1).await.unwrap();
    create_queue(&c, "s", "work", pb::GroupType::QueueStandard).await;
    put(&c, "s", &[("a", "a1".into())]).await;
    let first = receive(&c, "s", "work").await;
    assert_eq!(datas(&first), ["a1"]);
    c.split_shard("s", SHARD_0, &(1u128 << 127).to_string())
        .await
        .unwrap();
    put(&c, "s", &[("a", "a2".into())]).await;
    assert_eq!(datas(&receive(&c, "s", "work").await), ["a2"]);
}

/// Receives `total` messages and deletes each batch before the next receive; checks that each
/// group's numbers come in order with none twice; returns each group's next number.
fn spawn_consumer(c: Client, total: usize) -> tokio::task::JoinHandle<HashMap<String, usize>> {
    tokio::spawn(async move {
        let mut next: HashMap<String, usize> = HashMap::new();
        let mut received = 0;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while received < total {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{received} messages received in {PATIENCE:?}"
            );
            let ms = c
                .receive_messages("s", "work", 50, None, Duration::from_millis(200))
                .await
                .expect("receive");
            for m in &ms {
                let d = data(m);
                let (group, n) = d.split_once('-').unwrap();
                let n: usize = n.parse().unwrap();
                let expected = next.entry(group.to_owned()).or_default();
                assert_eq!(n, *expected, "group {group}: got {n}, expected {expected}");
                *expected += 1;
            }
            received += ms.len();
            if !ms.is_empty() {
                delete(&c, "s", "work", &ms).await;
            }
        }
        next
    })
}

/// Every group's messages `g<i>-<n>`, n = 0.., are received in order, each exactly once, by
/// one consumer that deletes each batch before the next receive, while the stream is scaled
/// 2 → 4 → 2 between puts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_order_and_exactly_once_hold_per_group_while_the_stream_scales_up_and_down() {
    const GROUPS: usize = 16;
    const ROUNDS: usize = 3;
    const PER_ROUND: usize = 10;
    let server = TestServer::start().await;
    let c = client(&server).await;
    c.create_stream("s", 2).await.unwrap();
    create_queue(&c, "s", "work", pb::GroupType::QueueFifo).await;
    let groups: Vec<String> = (0..GROUPS).map(|g| format!("g{g}")).collect();

    let mut consumer = None;
    for round in 0..ROUNDS {
        // A backlog across two generations of shards first, then consumed while it scales.
        if round == ROUNDS - 1 {
            consumer = Some(spawn_consumer(c.clone(), GROUPS * ROUNDS * PER_ROUND));
        }
        for i in 0..PER_ROUND {
            let n = round * PER_ROUND + i;
            let batch: Vec<(&str, String)> = groups
                .iter()
                .map(|g| (g.as_str(), format!("{g}-{n}")))
                .collect();
            put(&c, "s", &batch).await;
        }
        let target = if round % 2 == 0 { 4 } else { 2 };
        c.update_shard_count("s", target).await.unwrap();
    }
    let next = consumer.expect("started").await.expect("consumer");
    for g in &groups {
        assert_eq!(next.get(g), Some(&(ROUNDS * PER_ROUND)), "group {g}");
    }
    let status = c.describe_group("s", "work").await.unwrap().queue.unwrap();
    assert_eq!((status.messages_visible, status.messages_in_flight), (0, 0));
}

fn rule(
    name: &str,
    source: &str,
    target: &str,
    start: pb::ShardIteratorType,
) -> pb::PutRuleRequest {
    pb::PutRuleRequest {
        rule_name: name.into(),
        source_stream: source.into(),
        targets: vec![pb::RuleTarget {
            stream_name: target.into(),
        }],
        start_position: start as i32,
        state: pb::RuleState::Enabled as i32,
        ..Default::default()
    }
}

/// The records of a one-shard stream, in order, once it holds `count` (polled: a rule routes
/// in a server-side task no client can wait on), bounded by [`PATIENCE`].
async fn wait_for(server: &TestServer, stream: &str, count: usize) -> Vec<String> {
    let deadline = common::Deadline::after(PATIENCE);
    let mut streams = server.streams().await;
    loop {
        let records = common::read_stream(&mut streams, stream).await;
        if records.len() >= count {
            return records
                .into_iter()
                .map(|(_, r)| String::from_utf8(r.data.to_vec()).unwrap())
                .collect();
        }
        assert!(
            deadline.tick().await,
            "{stream} holds {} of {count} records",
            records.len()
        );
    }
}

/// Each key's numbers exactly once and in increasing order.
#[track_caller]
fn assert_once_in_order_per_key(got: &[String], keys: usize, per_key: usize) {
    let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for d in got {
        let (k, n) = d.split_once('-').unwrap();
        by_key
            .entry(k.to_owned())
            .or_default()
            .push(n.parse().unwrap());
    }
    assert_eq!(by_key.len(), keys, "{by_key:?}");
    for (k, numbers) in by_key {
        assert_eq!(numbers, (0..per_key).collect::<Vec<_>>(), "key {k}");
    }
}

/// Puts `<key>-<n>` for the next `per_key` numbers of every key into `s`.
async fn put_step(c: &Client, keys: &[String], n: &mut usize, per_key: usize) {
    let batch: Vec<(&str, String)> = (*n..*n + per_key)
        .flat_map(|i| keys.iter().map(move |k| (k.as_str(), format!("{k}-{i}"))))
        .collect();
    put(c, "s", &batch).await;
    *n += per_key;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_routes_parents_before_children_exactly_once_across_reshards_and_a_restart() {
    const KEYS: usize = 12;
    const PER_STEP: usize = 20;
    let server = TestServer::start().await;
    let c = client(&server).await;
    c.create_stream("s", 2).await.unwrap();
    c.create_stream("t", 1).await.unwrap();
    let keys: Vec<String> = (0..KEYS).map(|k| format!("k{k}")).collect();
    let mut n = 0;
    for target in [4, 8, 4, 3] {
        put_step(&c, &keys, &mut n, PER_STEP).await;
        c.update_shard_count("s", target).await.unwrap();
    }
    // Made over four generations of shards at once, from the trim horizon; stopped by a
    // restart wherever it is.
    let mut router = RouterClient::new(server.channel().await);
    router
        .put_rule(rule("copy", "s", "t", pb::ShardIteratorType::TrimHorizon))
        .await
        .expect("put rule");
    let server = server.restart().await;
    let c = client(&server).await;
    put_step(&c, &keys, &mut n, PER_STEP).await;
    let got = wait_for(&server, "t", KEYS * n).await;
    assert_eq!(got.len(), KEYS * n, "routed twice");
    assert_once_in_order_per_key(&got, KEYS, n);

    // A rule made on the resharded stream from LATEST routes only what comes after it.
    let mut router = RouterClient::new(server.channel().await);
    c.create_stream("u", 1).await.unwrap();
    router
        .put_rule(rule("later", "s", "u", pb::ShardIteratorType::Latest))
        .await
        .expect("put rule");
    put(&c, "s", &[("k0", "k0-late".into())]).await;
    assert_eq!(wait_for(&server, "u", 1).await, ["k0-late"]);
}
