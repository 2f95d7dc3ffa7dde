//! SubscribeToShard over gRPC: a subscription catches up from its starting position, then is
//! pushed each record as it becomes durable; resuming after the continuation sequence number
//! loses and repeats nothing; a slow or vanished subscriber harms nobody else.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{
    datas, make_stream, named, next_event, put, put_named, receive_records, subscribe, TestServer,
};
use shardlog::broker::BrokerConfig;
use shardlog::proto::v1 as pb;
use shardlog::proto::v1::ShardIteratorType as It;

const SHARD: &str = common::FIRST_SHARD;

#[tokio::test]
async fn a_subscription_catches_up_from_the_start_then_pushes_each_new_record() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    put_named(&mut c, "s", 0..5).await;
    let mut sub = subscribe(&mut c, "s", SHARD, It::TrimHorizon, None)
        .await
        .unwrap();
    let caught_up = receive_records(&mut sub, 5).await;
    assert_eq!(datas(&caught_up), named(0..5));
    for i in 5..10 {
        put(&mut c, "s", "k", format!("r{i}")).await;
        let ev = loop {
            let ev = next_event(&mut sub).await.unwrap().expect("an event");
            if !ev.records.is_empty() {
                break ev;
            }
        };
        assert_eq!(datas(&ev.records), named(i..i + 1), "pushed as it was put");
        assert_eq!(ev.records[0].sequence_number, i as u64);
        assert_eq!(ev.millis_behind_latest, 0, "a pushed record is the newest");
    }
}

#[tokio::test]
async fn every_starting_position_delivers_exactly_the_records_it_names() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    put_named(&mut c, "s", 0..3).await;
    common::wait_until_clock_passes(common::now_ms()).await;
    let t3 = common::now_ms();
    put_named(&mut c, "s", 3..6).await;

    let mut latest = subscribe(&mut c, "s", SHARD, It::Latest, None)
        .await
        .unwrap();
    let mut at = subscribe(&mut c, "s", SHARD, It::AtSequenceNumber, Some(2))
        .await
        .unwrap();
    let mut after = subscribe(&mut c, "s", SHARD, It::AfterSequenceNumber, Some(2))
        .await
        .unwrap();
    let mut at_time = c
        .subscribe_to_shard(pb::SubscribeToShardRequest {
            stream_name: "s".into(),
            shard_id: SHARD.into(),
            starting_position: Some(pb::StartingPosition {
                r#type: It::AtTimestamp as i32,
                sequence_number: None,
                timestamp_ms: Some(t3),
            }),
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    put(&mut c, "s", "k", "r6").await;

    assert_eq!(datas(&receive_records(&mut latest, 1).await), named(6..7));
    assert_eq!(datas(&receive_records(&mut at, 5).await), named(2..7));
    assert_eq!(datas(&receive_records(&mut after, 4).await), named(3..7));
    assert_eq!(datas(&receive_records(&mut at_time, 4).await), named(3..7));
}

#[tokio::test]
async fn resubscribing_after_the_continuation_sequence_number_neither_skips_nor_repeats() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    put_named(&mut c, "s", 0..4).await;
    let mut sub = subscribe(&mut c, "s", SHARD, It::TrimHorizon, None)
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut continuation = None;
    while got.len() < 4 {
        let ev = next_event(&mut sub).await.unwrap().expect("an event");
        if let Some(last) = ev.records.last() {
            continuation = ev.continuation_sequence_number;
            assert_eq!(
                ev.continuation_sequence_number,
                Some(last.sequence_number),
                "the continuation is the last sequence delivered"
            );
        }
        got.extend(ev.records);
    }
    assert_eq!(datas(&got), named(0..4));
    drop(sub);
    put_named(&mut c, "s", 4..7).await;

    // As the contract says: resume after the continuation sequence number.
    let mut resumed = subscribe(&mut c, "s", SHARD, It::AfterSequenceNumber, continuation)
        .await
        .unwrap();
    assert_eq!(datas(&receive_records(&mut resumed, 3).await), named(4..7));
}

#[tokio::test]
async fn an_idle_subscription_sends_keepalives_and_still_gets_the_next_record() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(tmp.path());
    config.subscribe_keepalive = Duration::from_millis(50);
    let server = TestServer::start_with(config).await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    let mut sub = subscribe(&mut c, "s", SHARD, It::TrimHorizon, None)
        .await
        .unwrap();
    for _ in 0..2 {
        let ev = next_event(&mut sub).await.unwrap().expect("a keep-alive");
        assert!(ev.records.is_empty());
        assert_eq!(ev.millis_behind_latest, 0);
        // Nothing precedes sequence 0: "resume after" has no number to name yet (0 would skip
        // the shard's first record).
        assert_eq!(ev.continuation_sequence_number, None);
    }
    put(&mut c, "s", "k", "r0").await;
    assert_eq!(datas(&receive_records(&mut sub, 1).await), named(0..1));
    // Once record 0 is delivered, keep-alives name it.
    let keepalive = loop {
        let ev = next_event(&mut sub).await.unwrap().expect("an event");
        if ev.records.is_empty() {
            break ev;
        }
    };
    assert_eq!(keepalive.continuation_sequence_number, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_subscriber_neither_holds_up_producers_nor_loses_records() {
    const TOTAL: usize = 3000;
    const BATCH: usize = 100;
    let tmp = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(tmp.path());
    // Small events and one buffered event: the slow subscriber's backlog must stay in the log.
    config.subscribe_buffer = 1;
    config.get_records_limit = 10;
    let server = TestServer::start_with(config).await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    let mut slow = subscribe(&mut c, "s", SHARD, It::TrimHorizon, None)
        .await
        .unwrap();
    let mut fast = subscribe(&mut c, "s", SHARD, It::TrimHorizon, None)
        .await
        .unwrap();
    let data = |i: usize| Bytes::from(format!("{i:0>200}"));

    // The fast subscriber reads concurrently; the slow one does not read at all meanwhile.
    let fast_reader = tokio::spawn(async move { receive_records(&mut fast, TOTAL).await });
    let producing = async {
        for start in (0..TOTAL).step_by(BATCH) {
            let records = (start..start + BATCH)
                .map(|i| pb::PutRecordsRequestEntry {
                    partition_key: "k".into(),
                    data: data(i),
                    ..Default::default()
                })
                .collect();
            let res = common::put_records(&mut c, "s", records).await;
            assert_eq!(res.failed_record_count, 0);
        }
    };
    tokio::time::timeout(common::EVENT_TIMEOUT, producing)
        .await
        .expect("producers are not held up by a subscriber that does not read");
    let fast_got = tokio::time::timeout(common::EVENT_TIMEOUT, fast_reader)
        .await
        .expect("the fast subscriber keeps up")
        .unwrap();

    let slow_got = receive_records(&mut slow, TOTAL).await;
    for got in [&fast_got, &slow_got] {
        assert_eq!(got.len(), TOTAL);
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.sequence_number, i as u64);
            assert_eq!(r.data, data(i));
        }
    }
}

#[tokio::test]
async fn a_subscriber_that_goes_away_leaves_the_shard_working() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    put_named(&mut c, "s", 0..2).await;
    let mut gone = subscribe(&mut c, "s", SHARD, It::TrimHorizon, None)
        .await
        .unwrap();
    receive_records(&mut gone, 1).await;
    drop(gone);
    put_named(&mut c, "s", 2..4).await;
    let mut next = subscribe(&mut c, "s", SHARD, It::TrimHorizon, None)
        .await
        .unwrap();
    assert_eq!(datas(&receive_records(&mut next, 4).await), named(0..4));
    assert_eq!(
        datas(&common::read_from_start(&mut c, "s", SHARD).await),
        named(0..4)
    );
}

#[tokio::test]
async fn subscriptions_to_different_shards_each_get_only_their_shard_s_records() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 2).await;
    let shards = common::list_shards(&mut c, "s").await;
    let mut subs = Vec::new();
    for s in &shards {
        subs.push(
            subscribe(&mut c, "s", &s.shard_id, It::Latest, None)
                .await
                .unwrap(),
        );
    }
    let mut expected: Vec<Vec<String>> = vec![Vec::new(); 2];
    for i in 0..20 {
        let key = format!("key-{i}");
        let acked = put(&mut c, "s", &key, key.clone()).await;
        let idx = shards
            .iter()
            .position(|s| s.shard_id == acked.shard_id)
            .unwrap();
        expected[idx].push(key);
    }
    for (sub, want) in subs.iter_mut().zip(&expected) {
        assert_eq!(&datas(&receive_records(sub, want.len()).await), want);
    }
}

#[tokio::test]
async fn a_catching_up_subscription_reports_how_far_behind_the_newest_record_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(tmp.path());
    // One record per event, so the first event is behind the second.
    config.get_records_limit = 1;
    let server = TestServer::start_with(config).await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    put(&mut c, "s", "k", "r0").await;
    let first = common::read_from_start(&mut c, "s", SHARD).await;
    common::wait_until_clock_passes(first[0].approximate_arrival_timestamp_ms + 20).await;
    put(&mut c, "s", "k", "r1").await;
    let all = common::read_from_start(&mut c, "s", SHARD).await;
    let gap = all[1].approximate_arrival_timestamp_ms - all[0].approximate_arrival_timestamp_ms;
    assert!(gap >= 20);

    let mut sub = subscribe(&mut c, "s", SHARD, It::TrimHorizon, None)
        .await
        .unwrap();
    let ev = next_event(&mut sub).await.unwrap().expect("an event");
    assert_eq!(datas(&ev.records), named(0..1));
    assert_eq!(ev.millis_behind_latest, gap);
    let ev = next_event(&mut sub).await.unwrap().expect("an event");
    assert_eq!(datas(&ev.records), named(1..2));
    assert_eq!(ev.millis_behind_latest, 0);
}
