//! Durability over gRPC: streams, shards and records survive a graceful restart, and every
//! acknowledged record survives `kill -9` of the server process, at its acknowledged sequence
//! number with its data, with no gaps.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{make_stream, put, ChildServer, Streams, TestServer};
use shardlog::broker::BrokerConfig;
use shardlog::proto::v1 as pb;
use shardlog::proto::v1::ShardIteratorType as It;
use tonic::Code;

/// Every stream's description and every shard's records, as a client sees them.
async fn snapshot(
    c: &mut Streams,
) -> BTreeMap<String, (pb::StreamDescription, Vec<Vec<pb::Record>>)> {
    let names = common::list_stream_names(c).await;
    let mut out = BTreeMap::new();
    for name in names {
        let d = common::describe_stream(c, &name).await;
        let mut shards = Vec::new();
        for s in &d.shards {
            shards.push(common::read_from_start(c, &name, &s.shard_id).await);
        }
        out.insert(name, (d, shards));
    }
    out
}

#[tokio::test]
async fn streams_shards_and_records_survive_a_graceful_restart() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    c.create_stream(pb::CreateStreamRequest {
        stream_name: "orders".into(),
        shard_count: 3,
        retention_period_hours: 48,
        content_based_deduplication: true,
        dedup_window_seconds: 120,
        dedup_scope: pb::DedupScope::MessageGroup as i32,
    })
    .await
    .unwrap();
    make_stream(&mut c, "logs", 1).await;
    for i in 0..30 {
        put(&mut c, "orders", &format!("key-{i}"), format!("one-{i}")).await;
    }
    let records = (0..30)
        .map(|i| pb::PutRecordsRequestEntry {
            partition_key: format!("batch-{i}"),
            data: Bytes::from(format!("batch-{i}")),
            explicit_hash_key: if i % 5 == 0 {
                "7".into()
            } else {
                String::new()
            },
            ..Default::default()
        })
        .collect();
    c.put_records(pb::PutRecordsRequest {
        stream_name: "orders".into(),
        records,
    })
    .await
    .unwrap();
    for i in 0..5 {
        put(&mut c, "logs", "k", format!("log-{i}")).await;
    }
    let before = snapshot(&mut c).await;
    assert_eq!(before.len(), 2);
    let stored: usize = before
        .values()
        .flat_map(|(_, shards)| shards.iter().map(Vec::len))
        .sum();
    assert_eq!(stored, 65);

    let server = server.restart().await;
    let mut c = server.streams().await;
    let after = snapshot(&mut c).await;
    assert_eq!(
        after, before,
        "descriptions and records are the same after the restart"
    );

    // Sequence numbers go on from where each shard stopped.
    for (shard_index, records) in before["orders"].1.iter().enumerate() {
        let shard = &before["orders"].0.shards[shard_index];
        let (start, _) = common::hash_range(shard);
        let acked = c
            .put_record(pb::PutRecordRequest {
                stream_name: "orders".into(),
                partition_key: "next".into(),
                data: Bytes::from(format!("next-{shard_index}")),
                explicit_hash_key: start.to_string(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(acked.shard_id, shard.shard_id);
        assert_eq!(acked.sequence_number, records.len() as u64);
    }
    server.stop().await;
}

#[tokio::test]
async fn an_iterator_issued_before_a_restart_still_reads_after_it() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    for i in 0..3 {
        put(&mut c, "s", "k", format!("r{i}")).await;
    }
    let it = common::iterator(
        &mut c,
        "s",
        common::FIRST_SHARD,
        It::AtSequenceNumber,
        Some(1),
        None,
    )
    .await;
    let server = server.restart().await;
    let mut c = server.streams().await;
    let got = common::read_to_end(&mut c, &it).await;
    let seqs: Vec<u64> = got.iter().map(|r| r.sequence_number).collect();
    assert_eq!(seqs, [1, 2]);
    server.stop().await;
}

#[tokio::test]
async fn a_deleted_stream_stays_deleted_after_a_restart() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "gone", 2).await;
    make_stream(&mut c, "kept", 1).await;
    put(&mut c, "gone", "k", "v").await;
    common::delete_stream(&mut c, "gone").await;
    let server = server.restart().await;
    let mut c = server.streams().await;
    let names = common::list_stream_names(&mut c).await;
    assert_eq!(names, ["kept"]);
    let r = c
        .describe_stream(pb::DescribeStreamRequest {
            stream_name: "gone".into(),
        })
        .await;
    common::assert_rejected(r, Code::NotFound, "gone");
    // The name is free again, and the new stream holds none of the old records.
    make_stream(&mut c, "gone", 2).await;
    for shard in ["shardId-000000000000", "shardId-000000000001"] {
        assert!(common::read_from_start(&mut c, "gone", shard)
            .await
            .is_empty());
    }
    server.stop().await;
}

#[tokio::test]
async fn a_graceful_stop_ends_open_subscriptions_even_one_that_stopped_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(tmp.path());
    // One small event buffered: a subscriber that stops reading soon blocks its push loop.
    config.subscribe_buffer = 1;
    config.get_records_limit = 1;
    config.shutdown_grace = Duration::from_millis(300);
    let server = TestServer::start_with(config).await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    let shard = common::FIRST_SHARD;
    let mut idle = common::subscribe(&mut c, "s", shard, It::Latest, None)
        .await
        .unwrap();
    // On its own connection, so what it leaves unread holds up no other stream.
    let stalled = common::subscribe(
        &mut server.streams().await,
        "s",
        shard,
        It::TrimHorizon,
        None,
    )
    .await
    .unwrap();
    // Far more than the transport's windows hold, so the stalled subscription's push loop
    // waits on its full buffer.
    let big = Bytes::from(vec![b'x'; 256 * 1024]);
    for _ in 0..80 {
        put(&mut c, "s", "k", big.clone()).await;
    }
    common::receive_records(&mut idle, 80).await;

    tokio::time::timeout(common::EVENT_TIMEOUT, server.stop())
        .await
        .expect("a graceful stop does not wait on subscribers");
    let ended = loop {
        match common::next_event(&mut idle).await {
            Ok(Some(ev)) => assert!(ev.records.is_empty()),
            Ok(None) => panic!("the subscription ended without a status"),
            Err(s) => break s,
        }
    };
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    drop(stalled);

    // And the data is intact on the next start.
    let server = TestServer::start_with(BrokerConfig::new(tmp.path())).await;
    let mut c = server.streams().await;
    let stored = common::read_from_start(&mut c, "s", shard).await;
    assert_eq!(stored.len(), 80);
    server.stop().await;
}

/// One acknowledged record: where the server said it is, and what was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Acked {
    shard_id: String,
    sequence: u64,
    data: Bytes,
}

/// Puts records until the server stops answering, recording every acknowledgement. Odd
/// producers use PutRecords batches, even ones PutRecord.
async fn produce_until_failure(
    mut c: Streams,
    producer: usize,
    acked_total: Arc<AtomicUsize>,
    progress: Arc<tokio::sync::Notify>,
) -> (Vec<Acked>, Vec<Bytes>) {
    let mut acked = Vec::new();
    let mut sent = Vec::new();
    let payload = |i: usize| Bytes::from(format!("p{producer}-{i:06}-{}", "z".repeat(i % 300)));
    let mut i = 0;
    loop {
        let before = acked.len();
        if producer % 2 == 0 {
            let data = payload(i);
            sent.push(data.clone());
            let r = c
                .put_record(pb::PutRecordRequest {
                    stream_name: "crash".into(),
                    partition_key: format!("p{producer}-{i}"),
                    data: data.clone(),
                    ..Default::default()
                })
                .await;
            let Ok(r) = r else { break };
            let r = r.into_inner();
            acked.push(Acked {
                shard_id: r.shard_id,
                sequence: r.sequence_number,
                data,
            });
            i += 1;
        } else {
            let datas: Vec<Bytes> = (i..i + 8).map(payload).collect();
            sent.extend(datas.iter().cloned());
            let records = datas
                .iter()
                .enumerate()
                .map(|(j, d)| pb::PutRecordsRequestEntry {
                    partition_key: format!("p{producer}-{}", i + j),
                    data: d.clone(),
                    ..Default::default()
                })
                .collect();
            let r = c
                .put_records(pb::PutRecordsRequest {
                    stream_name: "crash".into(),
                    records,
                })
                .await;
            let Ok(r) = r else { break };
            for (res, data) in r.into_inner().records.into_iter().zip(datas) {
                if res.error_code.is_empty() {
                    acked.push(Acked {
                        shard_id: res.shard_id,
                        sequence: res.sequence_number,
                        data,
                    });
                }
            }
            i += 8;
        }
        acked_total.fetch_add(acked.len() - before, Ordering::SeqCst);
        progress.notify_one();
    }
    (acked, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_record_survives_kill_9_at_its_sequence_number() {
    const PRODUCERS: usize = 4;
    const ACKS_BEFORE_KILL: usize = 300;
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let child = ChildServer::spawn(&data_dir, &log).await;
    let mut c = child.streams().await;
    make_stream(&mut c, "crash", 4).await;

    let acked_total = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(tokio::sync::Notify::new());
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let c = child.streams().await;
        producers.push(tokio::spawn(produce_until_failure(
            c,
            p,
            Arc::clone(&acked_total),
            Arc::clone(&progress),
        )));
    }
    // Kill while the producers are mid-flight, once enough has been acknowledged.
    tokio::time::timeout(Duration::from_secs(60), async {
        while acked_total.load(Ordering::SeqCst) < ACKS_BEFORE_KILL {
            progress.notified().await;
        }
    })
    .await
    .expect("the producers made progress");
    child.kill_9();

    let mut acked = Vec::new();
    let mut sent = Vec::new();
    for task in producers {
        let (a, s) = tokio::time::timeout(common::EVENT_TIMEOUT, task)
            .await
            .expect("a producer notices the server is gone")
            .unwrap();
        acked.extend(a);
        sent.extend(s);
    }
    assert!(acked.len() >= ACKS_BEFORE_KILL / 2, "{} acks", acked.len());

    let child = ChildServer::spawn(&data_dir, &log).await;
    let mut c = child.streams().await;
    let mut stored: BTreeMap<(String, u64), Bytes> = BTreeMap::new();
    for shard in common::list_shards(&mut c, "crash").await {
        let records = common::read_from_start(&mut c, "crash", &shard.shard_id).await;
        let seqs: Vec<u64> = records.iter().map(|r| r.sequence_number).collect();
        assert_eq!(
            seqs,
            (0..records.len() as u64).collect::<Vec<_>>(),
            "{}: sequences are contiguous from 0",
            shard.shard_id
        );
        for r in records {
            stored.insert((shard.shard_id.clone(), r.sequence_number), r.data);
        }
    }
    for a in &acked {
        assert_eq!(
            stored.get(&(a.shard_id.clone(), a.sequence)),
            Some(&a.data),
            "acknowledged record {}/{} is back with its data",
            a.shard_id,
            a.sequence
        );
    }
    // Whatever else survived was really sent (an unacknowledged put may or may not be there).
    let sent: std::collections::HashSet<Bytes> = sent.into_iter().collect();
    for ((shard, seq), data) in &stored {
        assert!(sent.contains(data), "{shard}/{seq} holds data nobody sent");
    }
    assert_eq!(
        stored.len(),
        stored
            .values()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        "no record is stored twice"
    );
    child.kill_9();
}
