//! Resharding over real gRPC: SplitShard, MergeShards and UpdateShardCount, what readers see
//! at the end of a closed shard, lease groups following lineage, puts and deduplication across
//! the switch, and ListShards' filters.

mod common;

use std::collections::BTreeMap;

use common::{get_records, list_shards, make_stream, put, trim_horizon, Streams, TestServer};
use shardlog::proto::v1 as pb;
use shardlog::proto::v1::consumer_groups_client::ConsumerGroupsClient;
use tonic::transport::Channel;
use tonic::Code;

const SHARD_0: &str = "shardId-000000000000";
const SHARD_1: &str = "shardId-000000000001";
const SHARD_2: &str = "shardId-000000000002";

fn id(n: u32) -> String {
    format!("shardId-{n:012}")
}

async fn split(
    c: &mut Streams,
    stream: &str,
    shard: &str,
    key: u128,
) -> Result<pb::StreamDescription, tonic::Status> {
    c.split_shard(pb::SplitShardRequest {
        stream_name: stream.into(),
        shard_to_split: shard.into(),
        new_starting_hash_key: key.to_string(),
    })
    .await
    .map(|r| r.into_inner().stream.expect("a described stream"))
}

async fn merge(
    c: &mut Streams,
    stream: &str,
    shard: &str,
    adjacent: &str,
) -> Result<pb::StreamDescription, tonic::Status> {
    c.merge_shards(pb::MergeShardsRequest {
        stream_name: stream.into(),
        shard_to_merge: shard.into(),
        adjacent_shard_to_merge: adjacent.into(),
    })
    .await
    .map(|r| r.into_inner().stream.expect("a described stream"))
}

async fn scale(
    c: &mut Streams,
    stream: &str,
    target: u32,
) -> Result<pb::UpdateShardCountResponse, tonic::Status> {
    c.update_shard_count(pb::UpdateShardCountRequest {
        stream_name: stream.into(),
        target_shard_count: target,
        scaling_type: pb::ScalingType::UniformScaling as i32,
    })
    .await
    .map(tonic::Response::into_inner)
}

/// ListShards of stream `s` through a filter.
async fn filtered(
    c: &mut Streams,
    kind: pb::ShardFilterType,
    shard_id: Option<String>,
    timestamp_ms: Option<i64>,
) -> Result<Vec<pb::Shard>, tonic::Status> {
    c.list_shards(pb::ListShardsRequest {
        stream_name: "s".into(),
        shard_filter: Some(pb::ShardFilter {
            r#type: kind as i32,
            shard_id,
            timestamp_ms,
        }),
    })
    .await
    .map(|r| r.into_inner().shards)
}

fn ids(shards: &[pb::Shard]) -> Vec<String> {
    shards.iter().map(|s| s.shard_id.clone()).collect()
}

fn open(shards: &[pb::Shard]) -> Vec<&pb::Shard> {
    shards
        .iter()
        .filter(|s| s.ending_sequence_number.is_none())
        .collect()
}

/// Every GetRecords answer of a shard from its trim horizon until the read that ends it (a
/// closed shard) or catches up (an open one).
async fn read_closed_shard(
    c: &mut Streams,
    stream: &str,
    shard: &str,
) -> Vec<pb::GetRecordsResponse> {
    let mut it = trim_horizon(c, stream, shard).await;
    let mut answers = Vec::new();
    for _ in 0..1000 {
        let got = get_records(c, &it, 0).await;
        let next = got.next_shard_iterator.clone();
        let empty = got.records.is_empty();
        answers.push(got);
        if next.is_empty() || empty {
            return answers;
        }
        it = next;
    }
    panic!("reading {shard} did not end");
}

#[tokio::test]
async fn a_split_closes_the_parent_at_its_end_and_routes_later_puts_to_the_children() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    let mut before = Vec::new();
    for i in 0..20 {
        before.push(put(&mut c, "s", &format!("k{i}"), format!("before-{i}")).await);
    }
    let middle = 1u128 << 127;
    let after = split(&mut c, "s", SHARD_0, middle).await.unwrap();
    assert_eq!(after.status, pb::StreamStatus::Active as i32);
    let ids: Vec<&str> = after.shards.iter().map(|s| s.shard_id.as_str()).collect();
    assert_eq!(ids, [SHARD_0, SHARD_1, SHARD_2]);
    assert_eq!(after.shards[0].ending_sequence_number, Some(20));
    for (child, (start, end)) in [(1, (0, middle - 1)), (2, (middle, u128::MAX))] {
        let s = &after.shards[child];
        assert_eq!(s.parent_shard_id.as_deref(), Some(SHARD_0));
        assert_eq!(s.adjacent_parent_shard_id, None);
        assert_eq!(common::hash_range(s), (start, end));
        assert_eq!(s.ending_sequence_number, None);
    }
    assert!(before.iter().all(|r| r.shard_id == SHARD_0));
    // Every later put lands in the child whose range holds its key.
    for i in 0..40 {
        let key = format!("k{i}");
        let r = put(&mut c, "s", &key, format!("after-{i}")).await;
        let expected = if common::md5_hash_key(&key) < middle {
            SHARD_1
        } else {
            SHARD_2
        };
        assert_eq!(r.shard_id, expected, "{key}");
    }
    // The parent keeps its records; the read that reaches its end names the children and
    // gives no next iterator.
    let answers = read_closed_shard(&mut c, "s", SHARD_0).await;
    let records: Vec<_> = answers.iter().flat_map(|a| a.records.iter()).collect();
    assert_eq!(records.len(), 20);
    let last = answers.last().unwrap();
    assert!(last.next_shard_iterator.is_empty());
    let children: Vec<(&str, &[String])> = last
        .child_shards
        .iter()
        .map(|c| (c.shard_id.as_str(), c.parent_shards.as_slice()))
        .collect();
    assert_eq!(
        children,
        [
            (SHARD_1, &[SHARD_0.to_owned()][..]),
            (SHARD_2, &[SHARD_0.to_owned()][..])
        ]
    );
    // LATEST on a closed shard would never see a record: refused.
    let latest = c
        .get_shard_iterator(pb::GetShardIteratorRequest {
            stream_name: "s".into(),
            shard_id: SHARD_0.into(),
            shard_iterator_type: pb::ShardIteratorType::Latest as i32,
            ..Default::default()
        })
        .await;
    common::assert_rejected(latest, Code::InvalidArgument, "shard_iterator_type");
    // A closed shard cannot be split again.
    let again = split(&mut c, "s", SHARD_0, middle).await;
    common::assert_rejected(again, Code::InvalidArgument, "shard_to_split");
}

#[tokio::test]
async fn a_subscription_to_a_closed_shard_delivers_the_rest_then_the_children_then_ends() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    for i in 0..5 {
        put(&mut c, "s", &format!("k{i}"), format!("r{i}")).await;
    }
    // Subscribed while the shard is open and caught up: the close must wake it.
    let mut events = common::subscribe(
        &mut c,
        "s",
        SHARD_0,
        pb::ShardIteratorType::TrimHorizon,
        None,
    )
    .await
    .unwrap();
    let first = common::next_event(&mut events)
        .await
        .unwrap()
        .expect("records");
    assert_eq!(first.records.len(), 5);
    split(&mut c, "s", SHARD_0, 1u128 << 127).await.unwrap();
    let last = common::next_event(&mut events)
        .await
        .unwrap()
        .expect("a last event");
    assert!(last.records.is_empty());
    let children: Vec<&str> = last
        .child_shards
        .iter()
        .map(|c| c.shard_id.as_str())
        .collect();
    assert_eq!(children, [SHARD_1, SHARD_2]);
    assert_eq!(last.continuation_sequence_number, Some(4));
    assert!(
        common::next_event(&mut events).await.unwrap().is_none(),
        "the call ends"
    );
}

#[tokio::test]
async fn a_merge_joins_adjacent_shards_and_refuses_others_naming_the_field() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 3).await;
    let apart = merge(&mut c, "s", SHARD_0, SHARD_2).await;
    common::assert_rejected(apart, Code::InvalidArgument, "adjacent_shard_to_merge");
    let itself = merge(&mut c, "s", SHARD_1, SHARD_1).await;
    common::assert_rejected(itself, Code::InvalidArgument, "adjacent_shard_to_merge");
    let missing = merge(&mut c, "s", SHARD_1, "shardId-000000000009").await;
    common::assert_rejected(missing, Code::NotFound, "shardId-000000000009");
    put(&mut c, "s", "x", "in a parent").await;
    let after = merge(&mut c, "s", SHARD_2, SHARD_1).await.unwrap();
    let child = after.shards.last().unwrap();
    assert_eq!(child.shard_id, id(3));
    assert_eq!(child.parent_shard_id.as_deref(), Some(SHARD_2));
    assert_eq!(child.adjacent_parent_shard_id.as_deref(), Some(SHARD_1));
    let (s1, _) = common::hash_range(&after.shards[1]);
    let (_, e2) = common::hash_range(&after.shards[2]);
    assert_eq!(common::hash_range(child), (s1, e2));
    assert_eq!(open(&after.shards).len(), 2);
    // The merged parents are closed: merging one again is refused.
    let closed = merge(&mut c, "s", SHARD_1, SHARD_0).await;
    common::assert_rejected(closed, Code::InvalidArgument, "shard_to_merge");
}

#[tokio::test]
async fn scaling_2_4_8_then_3_keeps_to_the_factor_and_ends_with_equal_ranges() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 2).await;
    for (target, before) in [(4, 2), (8, 4)] {
        let r = scale(&mut c, "s", target).await.unwrap();
        assert_eq!(
            (r.current_shard_count, r.target_shard_count),
            (before, target)
        );
    }
    // 8 → 3 divides by more than the factor of 2: refused, nothing changed.
    let too_far = scale(&mut c, "s", 3).await;
    common::assert_rejected(too_far, Code::ResourceExhausted, "factor");
    assert_eq!(open(&list_shards(&mut c, "s").await).len(), 8);
    scale(&mut c, "s", 4).await.unwrap();
    let r = scale(&mut c, "s", 3).await.unwrap();
    assert_eq!((r.current_shard_count, r.target_shard_count), (4, 3));
    let shards = list_shards(&mut c, "s").await;
    let open_now = open(&shards);
    let ranges: Vec<(u128, u128)> = open_now.iter().map(|s| common::hash_range(s)).collect();
    let step = u128::MAX / 3;
    assert_eq!(
        ranges,
        [(0, step - 1), (step, 2 * step - 1), (2 * step, u128::MAX)]
    );
    // Ids continue the numbering, every shard's parents precede it, and ListShards filters.
    for (i, s) in shards.iter().enumerate() {
        assert_eq!(s.shard_id, id(i as u32));
        for p in s.parent_shard_id.iter().chain(&s.adjacent_parent_shard_id) {
            assert!(p < &s.shard_id, "{p} before {}", s.shard_id);
        }
    }
    let latest = filtered(&mut c, pb::ShardFilterType::AtLatest, None, None)
        .await
        .unwrap();
    assert_eq!(latest.len(), 3);
    // No records anywhere: the trim horizon starts at the open shards.
    let horizon = filtered(&mut c, pb::ShardFilterType::AtTrimHorizon, None, None)
        .await
        .unwrap();
    assert_eq!(horizon, latest);
    let after = filtered(&mut c, pb::ShardFilterType::AfterShardId, Some(id(2)), None)
        .await
        .unwrap();
    assert_eq!(after.first().map(|s| s.shard_id.clone()), Some(id(3)));
    assert_eq!(after.len(), shards.len() - 3);
    // Scaling to the layout in force changes nothing.
    let same = scale(&mut c, "s", 3).await.unwrap();
    assert_eq!((same.current_shard_count, same.target_shard_count), (3, 3));
    assert_eq!(list_shards(&mut c, "s").await, shards);
}

#[tokio::test]
async fn producers_running_through_a_scaling_lose_nothing_and_keep_order_per_key() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 2).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut producers = Vec::new();
    for p in 0..4 {
        let mut c = server.streams().await;
        let stop = stop_rx.clone();
        producers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0u32;
            // Puts until told to stop, and at least 50.
            while i < 50 || !*stop.borrow() {
                let entries = (0..5)
                    .map(|j| pb::PutRecordsRequestEntry {
                        partition_key: format!("key-{p}-{}", j % 2),
                        data: format!("{p}:{}:{}", j % 2, i * 5 + j).into(),
                        ..Default::default()
                    })
                    .collect();
                let answer = c
                    .put_records(pb::PutRecordsRequest {
                        stream_name: "s".into(),
                        records: entries,
                    })
                    .await
                    .expect("no put fails because of a reshard")
                    .into_inner();
                for r in answer.records {
                    assert!(r.error_code.is_empty(), "entry failed: {}", r.error_message);
                    acked.push((r.shard_id, r.sequence_number));
                }
                i += 1;
            }
            acked
        }));
    }
    for target in [4, 8, 4, 2] {
        scale(&mut c, "s", target).await.unwrap();
    }
    stop_tx.send_replace(true);
    let mut acked = Vec::new();
    for p in producers {
        acked.extend(p.await.unwrap());
    }
    // Read every shard by increasing id (parents before children): per key, the records
    // must come in the order they were put, each exactly once.
    let shards = list_shards(&mut c, "s").await;
    let mut stored = Vec::new();
    let mut per_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for s in &shards {
        for r in common::read_shard(&mut c, "s", &s.shard_id).await {
            stored.push((s.shard_id.clone(), r.sequence_number));
            let text = String::from_utf8(r.data.to_vec()).unwrap();
            let mut parts = text.split(':');
            let key = format!("{}:{}", parts.next().unwrap(), parts.next().unwrap());
            per_key
                .entry(key)
                .or_default()
                .push(parts.next().unwrap().parse().unwrap());
        }
    }
    acked.sort();
    stored.sort();
    assert_eq!(
        stored, acked,
        "every acknowledged put stored once, nothing else"
    );
    assert_eq!(per_key.len(), 8);
    for (key, order) in per_key {
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{key}: {order:?}");
    }
}

#[tokio::test]
async fn a_retried_put_after_a_split_is_answered_as_the_duplicate_of_the_parents_record() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    let request = pb::PutRecordRequest {
        stream_name: "s".into(),
        partition_key: "order-7".into(),
        data: "paid".into(),
        deduplication_id: "order-7-paid".into(),
        ..Default::default()
    };
    let first = c.put_record(request.clone()).await.unwrap().into_inner();
    split(&mut c, "s", SHARD_0, 1u128 << 127).await.unwrap();
    let retry = c.put_record(request).await.unwrap().into_inner();
    assert!(retry.duplicate);
    assert_eq!(
        (retry.shard_id, retry.sequence_number),
        (first.shard_id, first.sequence_number)
    );
    for child in [SHARD_1, SHARD_2] {
        assert!(
            common::read_shard(&mut c, "s", child).await.is_empty(),
            "{child}"
        );
    }
}

#[tokio::test]
async fn a_lease_group_reads_a_child_only_after_its_parent_is_checkpointed_to_its_end() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let mut g = server.groups().await;
    make_stream(&mut c, "s", 1).await;
    for i in 0..3 {
        put(&mut c, "s", &format!("k{i}"), "x").await;
    }
    split(&mut c, "s", SHARD_0, 1u128 << 127).await.unwrap();
    let joined = g
        .join_group(pb::JoinGroupRequest {
            stream_name: "s".into(),
            group_name: "g".into(),
            member_id: "m".into(),
            session_timeout_ms: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let leased: Vec<&str> = joined
        .assignments
        .iter()
        .map(|l| l.shard_id.as_str())
        .collect();
    assert_eq!(leased, [SHARD_0], "the children wait for their parent");
    let describe = |g: &mut ConsumerGroupsClient<Channel>| {
        let mut g = g.clone();
        async move {
            g.describe_group(pb::DescribeGroupRequest {
                stream_name: "s".into(),
                group_name: "g".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .shards
            .into_iter()
            .map(|s| s.shard_id)
            .collect::<Vec<_>>()
        }
    };
    assert_eq!(describe(&mut g).await, [SHARD_0, SHARD_1, SHARD_2]);
    // Checkpointed short of the end: still the parent only.
    let commit = |seq: u64, epoch: u64| pb::CommitCheckpointRequest {
        stream_name: "s".into(),
        group_name: "g".into(),
        member_id: "m".into(),
        shard_id: SHARD_0.into(),
        lease_epoch: epoch,
        sequence_number: seq,
        ..Default::default()
    };
    let epoch = joined.assignments[0].lease_epoch;
    g.commit_checkpoint(commit(1, epoch)).await.unwrap();
    let heartbeat = pb::HeartbeatRequest {
        stream_name: "s".into(),
        group_name: "g".into(),
        member_id: "m".into(),
    };
    let beat = g.heartbeat(heartbeat.clone()).await.unwrap().into_inner();
    let leased: Vec<&str> = beat
        .assignments
        .iter()
        .map(|l| l.shard_id.as_str())
        .collect();
    assert_eq!(leased, [SHARD_0]);
    // At its last record: the parent is done, the children are leased, the parent is gone
    // from the group's view.
    g.commit_checkpoint(commit(2, epoch)).await.unwrap();
    let beat = g.heartbeat(heartbeat).await.unwrap().into_inner();
    let leased: Vec<&str> = beat
        .assignments
        .iter()
        .map(|l| l.shard_id.as_str())
        .collect();
    assert_eq!(leased, [SHARD_1, SHARD_2]);
    assert_eq!(describe(&mut g).await, [SHARD_1, SHARD_2]);
}

// The CLI blocks its thread while it runs: the server needs a thread of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_splits_at_the_middle_merges_and_scales() {
    use common::cli::shardlog;
    let server = TestServer::start().await;
    shardlog(&server, &["stream", "create", "orders", "--shards", "2"]);
    let split = shardlog(&server, &["stream", "split", "orders", SHARD_0]);
    assert!(split.contains(&id(3)), "{split}");
    let mut c = server.streams().await;
    let shards = list_shards(&mut c, "orders").await;
    let (start, end) = common::hash_range(&shards[0]);
    let middle = start + (end - start) / 2 + 1;
    assert_eq!(common::hash_range(&shards[3]), (middle, end));
    let merged = shardlog(&server, &["stream", "merge", "orders", &id(2), &id(3)]);
    assert!(merged.contains(&id(4)), "{merged}");
    shardlog(&server, &["stream", "scale", "orders", "--shards", "4"]);
    let shards = list_shards(&mut c, "orders").await;
    assert_eq!(open(&shards).len(), 4);
    let refused = common::cli::run(&server, &["stream", "scale", "orders", "--shards", "9"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("factor"));
}

#[tokio::test]
async fn after_a_scaling_a_child_waits_for_every_ancestor_behind_its_empty_intermediates() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let mut g = server.groups().await;
    make_stream(&mut c, "s", 3).await;
    // One record in each shard.
    for key in [0u128, u128::MAX / 3 + 5, u128::MAX] {
        common::put_at_hash_key(&mut c, "s", "k", "x", key.to_string()).await;
    }
    // 3 → 2: shard 1 splits into empty intermediates 3 and 4 at 2^127; 0+3 merge into 5 and
    // 4+2 into 6.
    scale(&mut c, "s", 2).await.unwrap();
    let shards = list_shards(&mut c, "s").await;
    assert_eq!(shards[5].parent_shard_id.as_deref(), Some(SHARD_0));
    assert_eq!(shards[5].adjacent_parent_shard_id, Some(id(3)));
    assert_eq!(shards[3].parent_shard_id.as_deref(), Some(SHARD_1));
    let join = pb::JoinGroupRequest {
        stream_name: "s".into(),
        group_name: "g".into(),
        member_id: "m".into(),
        session_timeout_ms: 0,
    };
    let leases = |r: &[pb::ShardLease]| -> Vec<(String, u64)> {
        r.iter()
            .map(|l| (l.shard_id.clone(), l.lease_epoch))
            .collect()
    };
    let joined = leases(
        &g.join_group(join.clone())
            .await
            .unwrap()
            .into_inner()
            .assignments,
    );
    let ids: Vec<&str> = joined.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(ids, [SHARD_0, SHARD_1, SHARD_2]);
    let commit = |shard: &str, epoch: u64| pb::CommitCheckpointRequest {
        stream_name: "s".into(),
        group_name: "g".into(),
        member_id: "m".into(),
        shard_id: shard.into(),
        lease_epoch: epoch,
        sequence_number: 0,
        ..Default::default()
    };
    // Shard 0 done: 5 still waits for shard 1, behind the empty intermediate 3.
    g.commit_checkpoint(commit(SHARD_0, joined[0].1))
        .await
        .unwrap();
    let beat = g.join_group(join.clone()).await.unwrap().into_inner();
    let ids: Vec<String> = leases(&beat.assignments).into_iter().map(|l| l.0).collect();
    assert_eq!(ids, [SHARD_1, SHARD_2]);
    // Shard 1 done too: 5 is leased; 6 still waits for shard 2.
    g.commit_checkpoint(commit(SHARD_1, joined[1].1))
        .await
        .unwrap();
    let beat = g.join_group(join).await.unwrap().into_inner();
    let ids: Vec<String> = leases(&beat.assignments).into_iter().map(|l| l.0).collect();
    assert_eq!(ids, [SHARD_2.to_owned(), id(5)]);
}

#[tokio::test]
async fn list_shards_at_and_from_a_timestamp_follows_when_shards_opened_and_closed() {
    use pb::ShardFilterType::{AtTimestamp, FromTimestamp};
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    let t1 = common::now_ms();
    common::wait_until_clock_passes(t1).await;
    split(&mut c, "s", SHARD_0, 1u128 << 127).await.unwrap();
    common::wait_until_clock_passes(common::now_ms()).await;
    let t2 = common::now_ms();
    common::wait_until_clock_passes(t2).await;
    split(&mut c, "s", SHARD_1, 1u128 << 126).await.unwrap();
    common::wait_until_clock_passes(common::now_ms()).await;
    let t3 = common::now_ms();

    for (t, expected) in [
        (t1, vec![id(0)]),
        // Before the stream: its first shards.
        (0, vec![id(0)]),
        (t2, vec![id(1), id(2)]),
        (t3, vec![id(2), id(3), id(4)]),
    ] {
        let at = filtered(&mut c, AtTimestamp, None, Some(t)).await.unwrap();
        assert_eq!(ids(&at), expected, "at {t}");
    }
    let from = filtered(&mut c, FromTimestamp, None, Some(t1))
        .await
        .unwrap();
    assert_eq!(from.len(), 5);
    let from = filtered(&mut c, FromTimestamp, None, Some(t2))
        .await
        .unwrap();
    assert_eq!(ids(&from), [id(1), id(2), id(3), id(4)]);
    let missing = filtered(&mut c, AtTimestamp, None, None).await;
    common::assert_rejected(missing, Code::InvalidArgument, "shard_filter.timestamp_ms");
}
