//! PutRecord and PutRecords over gRPC: routing by the MD5 of the partition key (computed here,
//! independently of the server) or by an explicit hash key, per-shard sequence numbers from 0 in
//! acknowledgement order, results in request order, and ordering under concurrent producers.

mod common;

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use common::{hash_range, list_shards, make_stream, md5_hash_key, put, shard_holding, TestServer};
use shardlog::proto::v1 as pb;

fn entry(partition_key: &str, data: impl Into<Bytes>) -> pb::PutRecordsRequestEntry {
    pb::PutRecordsRequestEntry {
        partition_key: partition_key.into(),
        data: data.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_record_lands_in_the_shard_whose_range_holds_the_md5_of_its_partition_key() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "routed", 5).await;
    let shards = list_shards(&mut c, "routed").await;
    let mut expected: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    for i in 0..120 {
        let key = format!("customer-{i}");
        let acked = put(&mut c, "routed", &key, key.clone()).await;
        assert_eq!(
            acked.shard_id,
            shard_holding(&shards, md5_hash_key(&key)),
            "{key} was routed by its MD5"
        );
        assert!(!acked.duplicate);
        expected
            .entry(acked.shard_id)
            .or_default()
            .push((acked.sequence_number, key));
    }
    assert!(expected.len() > 1, "120 keys spread over several shards");
    // The records really are stored in those shards, under the acknowledged sequence numbers.
    for shard in &shards {
        let stored: Vec<(u64, String)> = common::read_from_start(&mut c, "routed", &shard.shard_id)
            .await
            .into_iter()
            .map(|r| {
                assert_eq!(r.data, Bytes::from(r.partition_key.clone()));
                assert_eq!(r.explicit_hash_key, "", "no explicit hash key was given");
                (r.sequence_number, r.partition_key)
            })
            .collect();
        let want = expected.remove(&shard.shard_id).unwrap_or_default();
        assert_eq!(stored, want, "contents of {}", shard.shard_id);
    }
}

#[tokio::test]
async fn an_explicit_hash_key_chooses_the_shard_instead_of_the_partition_key() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "explicit", 4).await;
    let shards = list_shards(&mut c, "explicit").await;
    // The edges of every range, and the extremes of the key space.
    let mut keys: Vec<u128> = shards
        .iter()
        .flat_map(|s| {
            let (start, end) = hash_range(s);
            [start, end]
        })
        .collect();
    keys.extend([0, u128::MAX, 1 << 127, (1 << 127) - 1]);
    for key in keys {
        let want = shard_holding(&shards, key);
        // A partition key whose own MD5 would route elsewhere, so the test tells the two apart.
        let partition_key = (0..)
            .map(|i| format!("elsewhere-{i}"))
            .find(|k| shard_holding(&shards, md5_hash_key(k)) != want)
            .expect("some key routes elsewhere");
        let acked = c
            .put_record(pb::PutRecordRequest {
                stream_name: "explicit".into(),
                partition_key: partition_key.clone(),
                data: Bytes::from(key.to_string()),
                explicit_hash_key: key.to_string(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(acked.shard_id, want, "explicit hash key {key}");
        let it = common::iterator(
            &mut c,
            "explicit",
            &acked.shard_id,
            pb::ShardIteratorType::AtSequenceNumber,
            Some(acked.sequence_number),
            None,
        )
        .await;
        let got = common::get_records(&mut c, &it, 1).await;
        assert_eq!(got.records.len(), 1);
        assert_eq!(got.records[0].explicit_hash_key, key.to_string());
        assert_eq!(got.records[0].partition_key, partition_key);
        assert_eq!(got.records[0].data, Bytes::from(key.to_string()));
    }
}

#[tokio::test]
async fn put_records_answers_in_request_order_with_each_entry_s_shard_and_sequence() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "batched", 4).await;
    let shards = list_shards(&mut c, "batched").await;
    // One explicit-hash-key entry in the middle, aimed at the last shard.
    let mut entries: Vec<pb::PutRecordsRequestEntry> = (0..100)
        .map(|i| entry(&format!("key-{i}"), format!("data-{i}")))
        .collect();
    entries[50].explicit_hash_key = u128::MAX.to_string();
    let res = common::put_records(&mut c, "batched", entries.clone()).await;
    assert_eq!(res.failed_record_count, 0);
    assert_eq!(res.records.len(), entries.len());
    let mut next_per_shard: HashMap<String, u64> = HashMap::new();
    for (i, (e, r)) in entries.iter().zip(&res.records).enumerate() {
        assert_eq!(r.error_code, "", "entry {i}");
        assert_eq!(r.error_message, "", "entry {i}");
        assert!(!r.duplicate);
        let key = if e.explicit_hash_key.is_empty() {
            md5_hash_key(&e.partition_key)
        } else {
            u128::MAX
        };
        assert_eq!(r.shard_id, shard_holding(&shards, key), "entry {i}");
        // Within a shard, entries take consecutive sequence numbers in request order.
        let next = next_per_shard.entry(r.shard_id.clone()).or_insert(0);
        assert_eq!(r.sequence_number, *next, "entry {i} in {}", r.shard_id);
        *next += 1;
    }
    assert_eq!(res.records[50].shard_id, "shardId-000000000003");
    // Reading each shard gives back the entries routed to it, in request order.
    for shard in &shards {
        let stored: Vec<(u64, Bytes)> = common::read_from_start(&mut c, "batched", &shard.shard_id)
            .await
            .into_iter()
            .map(|r| (r.sequence_number, r.data))
            .collect();
        let want: Vec<(u64, Bytes)> = entries
            .iter()
            .zip(&res.records)
            .filter(|(_, r)| r.shard_id == shard.shard_id)
            .map(|(e, r)| (r.sequence_number, e.data.clone()))
            .collect();
        assert_eq!(stored, want, "contents of {}", shard.shard_id);
    }
}

#[tokio::test]
async fn sequence_numbers_count_from_zero_per_shard_in_acknowledgement_order() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "counted", 2).await;
    let shards = list_shards(&mut c, "counted").await;
    let targets: Vec<String> = shards.iter().map(|s| hash_range(s).0.to_string()).collect();
    let mut acks: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    // Alternate between the shards with PutRecord, then a PutRecords spanning both.
    for i in 0..10 {
        let acked = c
            .put_record(pb::PutRecordRequest {
                stream_name: "counted".into(),
                partition_key: "p".into(),
                data: Bytes::from(format!("{i}")),
                explicit_hash_key: targets[i % 2].clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        acks.entry(acked.shard_id)
            .or_default()
            .push(acked.sequence_number);
    }
    let batch: Vec<pb::PutRecordsRequestEntry> = (0..6)
        .map(|i| pb::PutRecordsRequestEntry {
            explicit_hash_key: targets[i % 2].clone(),
            ..entry("p", format!("b{i}"))
        })
        .collect();
    let res = common::put_records(&mut c, "counted", batch).await;
    for r in res.records {
        acks.entry(r.shard_id).or_default().push(r.sequence_number);
    }
    let want: Vec<u64> = (0..8).collect();
    assert_eq!(acks.get("shardId-000000000000"), Some(&want));
    assert_eq!(acks.get("shardId-000000000001"), Some(&want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_producers_keep_their_own_order_with_contiguous_sequences() {
    const PRODUCERS: usize = 8;
    const PER_PRODUCER: usize = 40;
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "contended", 3).await;
    let shards = list_shards(&mut c, "contended").await;
    // Every producer aims at the middle shard, half with PutRecord and half with PutRecords.
    let target = hash_range(&shards[1]).0 + 12_345;
    let mut tasks = Vec::new();
    for p in 0..PRODUCERS {
        let mut c = server.streams().await;
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::with_capacity(PER_PRODUCER);
            let mut i = 0;
            while i < PER_PRODUCER {
                if p % 2 == 0 {
                    let r = c
                        .put_record(pb::PutRecordRequest {
                            stream_name: "contended".into(),
                            partition_key: format!("producer-{p}"),
                            data: Bytes::from(format!("{p}:{i}")),
                            explicit_hash_key: target.to_string(),
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .into_inner();
                    acked.push((r.shard_id, r.sequence_number, format!("{p}:{i}")));
                    i += 1;
                } else {
                    let records: Vec<pb::PutRecordsRequestEntry> = (i..i + 4)
                        .map(|j| pb::PutRecordsRequestEntry {
                            explicit_hash_key: target.to_string(),
                            ..entry(&format!("producer-{p}"), format!("{p}:{j}"))
                        })
                        .collect();
                    let res = common::put_records(&mut c, "contended", records).await;
                    assert_eq!(res.failed_record_count, 0);
                    for (j, r) in (i..).zip(res.records) {
                        acked.push((r.shard_id, r.sequence_number, format!("{p}:{j}")));
                    }
                    i += 4;
                }
            }
            acked
        }));
    }
    let mut by_sequence: BTreeMap<u64, String> = BTreeMap::new();
    for (p, task) in tasks.into_iter().enumerate() {
        let acked = task.await.unwrap();
        assert_eq!(acked.len(), PER_PRODUCER);
        let mut last = None;
        for (shard, seq, data) in acked {
            assert_eq!(shard, "shardId-000000000001");
            assert!(
                last.is_none_or(|l| seq > l),
                "producer {p}: sequence {seq} after {last:?}"
            );
            last = Some(seq);
            assert!(
                by_sequence.insert(seq, data).is_none(),
                "sequence {seq} acknowledged twice"
            );
        }
    }
    let total = (PRODUCERS * PER_PRODUCER) as u64;
    assert_eq!(
        by_sequence.keys().copied().collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>(),
        "sequences are contiguous from 0"
    );
    // The shard holds exactly what was acknowledged, each record at its acknowledged number,
    // so each producer's records appear in its send order.
    let stored = common::read_from_start(&mut c, "contended", "shardId-000000000001").await;
    let stored: BTreeMap<u64, String> = stored
        .into_iter()
        .map(|r| {
            (
                r.sequence_number,
                String::from_utf8(r.data.to_vec()).unwrap(),
            )
        })
        .collect();
    assert_eq!(stored, by_sequence);
    for other in ["shardId-000000000000", "shardId-000000000002"] {
        assert!(common::read_from_start(&mut c, "contended", other)
            .await
            .is_empty());
    }
}
