//! GetShardIterator and GetRecords over gRPC: every iterator type returns exactly the records it
//! names; `limit` and the next iterator chain without gaps; `millis_behind_latest` measures the
//! distance to the newest record.

mod common;

use bytes::Bytes;
use common::{
    datas, get_records, iterator, make_stream, named, put, put_named, read_to_end, Streams,
    TestServer,
};
use shardlog::broker::BrokerConfig;
use shardlog::proto::v1 as pb;
use shardlog::proto::v1::ShardIteratorType as It;
use tonic::Code;

const SHARD: &str = common::FIRST_SHARD;

/// A one-shard stream holding `r0`..`r{n-1}` at sequences 0..n.
async fn stream_with_records(c: &mut Streams, name: &str, n: usize) {
    make_stream(c, name, 1).await;
    put_named(c, name, 0..n).await;
}

#[tokio::test]
async fn trim_horizon_reads_every_record_from_the_first() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let before = common::now_ms();
    stream_with_records(&mut c, "s", 10).await;
    let after = common::now_ms();
    let it = common::trim_horizon(&mut c, "s", SHARD).await;
    let records = read_to_end(&mut c, &it).await;
    assert_eq!(datas(&records), named(0..10));
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.sequence_number, i as u64);
        assert_eq!(r.partition_key, "k");
        assert_eq!(r.explicit_hash_key, "");
        assert_eq!(r.message_group_id, "");
        assert_eq!(r.deduplication_id, "");
        assert!(
            (before..=after).contains(&r.approximate_arrival_timestamp_ms),
            "arrival {} outside [{before}, {after}]",
            r.approximate_arrival_timestamp_ms
        );
    }
    let stamps: Vec<i64> = records
        .iter()
        .map(|r| r.approximate_arrival_timestamp_ms)
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
}

#[tokio::test]
async fn latest_reads_only_records_put_after_it_was_issued() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    stream_with_records(&mut c, "s", 5).await;
    let it = iterator(&mut c, "s", SHARD, It::Latest, None, None).await;
    let first = get_records(&mut c, &it, 0).await;
    assert!(first.records.is_empty());
    assert_eq!(first.millis_behind_latest, 0);
    put(&mut c, "s", "k", "r5").await;
    put(&mut c, "s", "k", "r6").await;
    // The iterator from before the puts and the one GetRecords handed back both see them.
    assert_eq!(datas(&read_to_end(&mut c, &it).await), named(5..7));
    assert_eq!(
        datas(&read_to_end(&mut c, &first.next_shard_iterator).await),
        named(5..7)
    );
}

#[tokio::test]
async fn latest_on_an_empty_shard_reads_the_first_record_put() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    let it = iterator(&mut c, "s", SHARD, It::Latest, None, None).await;
    put(&mut c, "s", "k", "r0").await;
    assert_eq!(datas(&read_to_end(&mut c, &it).await), named(0..1));
}

#[tokio::test]
async fn at_sequence_number_starts_at_that_record() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    stream_with_records(&mut c, "s", 10).await;
    for at in [0usize, 4, 9] {
        let it = iterator(
            &mut c,
            "s",
            SHARD,
            It::AtSequenceNumber,
            Some(at as u64),
            None,
        )
        .await;
        assert_eq!(
            datas(&read_to_end(&mut c, &it).await),
            named(at..10),
            "at {at}"
        );
    }
    // At the next sequence number: nothing yet, then the next record put.
    let it = iterator(&mut c, "s", SHARD, It::AtSequenceNumber, Some(10), None).await;
    assert!(read_to_end(&mut c, &it).await.is_empty());
    put(&mut c, "s", "k", "r10").await;
    assert_eq!(datas(&read_to_end(&mut c, &it).await), named(10..11));
}

#[tokio::test]
async fn after_sequence_number_starts_at_the_record_after_it() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    stream_with_records(&mut c, "s", 10).await;
    for after in [0usize, 4, 8] {
        let it = iterator(
            &mut c,
            "s",
            SHARD,
            It::AfterSequenceNumber,
            Some(after as u64),
            None,
        )
        .await;
        assert_eq!(
            datas(&read_to_end(&mut c, &it).await),
            named(after + 1..10),
            "after {after}"
        );
    }
    let it = iterator(&mut c, "s", SHARD, It::AfterSequenceNumber, Some(9), None).await;
    assert!(read_to_end(&mut c, &it).await.is_empty());
    put(&mut c, "s", "k", "r10").await;
    assert_eq!(datas(&read_to_end(&mut c, &it).await), named(10..11));
}

#[tokio::test]
async fn sequence_numbers_past_the_end_of_the_shard_are_rejected() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    stream_with_records(&mut c, "s", 3).await;
    for (kind, seq) in [(It::AtSequenceNumber, 4), (It::AfterSequenceNumber, 3)] {
        let r = c
            .get_shard_iterator(pb::GetShardIteratorRequest {
                stream_name: "s".into(),
                shard_id: SHARD.into(),
                shard_iterator_type: kind as i32,
                starting_sequence_number: Some(seq),
                timestamp_ms: None,
                filter: None,
            })
            .await;
        common::assert_rejected(r, Code::InvalidArgument, "starting_sequence_number");
    }
}

#[tokio::test]
async fn at_timestamp_starts_at_the_first_record_that_arrived_at_or_after_it() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    // Three groups of records, with the clock moving on between the groups.
    let mut group_start = Vec::new();
    for g in 0..3 {
        if g > 0 {
            common::wait_until_clock_passes(common::now_ms()).await;
        }
        group_start.push(common::now_ms());
        for i in 0..3 {
            put(&mut c, "s", "k", format!("r{}", g * 3 + i)).await;
        }
    }
    let all = common::read_from_start(&mut c, "s", SHARD).await;
    for (g, &t) in group_start.iter().enumerate() {
        let it = iterator(&mut c, "s", SHARD, It::AtTimestamp, None, Some(t)).await;
        assert_eq!(
            datas(&read_to_end(&mut c, &it).await),
            named(g * 3..9),
            "from {t}"
        );
    }
    // At a record's own arrival time: that record is the first one returned (the earlier
    // groups arrived strictly before, as the clock moved on between them).
    let t4 = all[3].approximate_arrival_timestamp_ms;
    let it = iterator(&mut c, "s", SHARD, It::AtTimestamp, None, Some(t4)).await;
    assert_eq!(datas(&read_to_end(&mut c, &it).await), named(3..9));
    // Before everything: all of it. After everything: nothing, then what comes next.
    let it = iterator(&mut c, "s", SHARD, It::AtTimestamp, None, Some(0)).await;
    assert_eq!(datas(&read_to_end(&mut c, &it).await), named(0..9));
    let last = all[8].approximate_arrival_timestamp_ms;
    let it = iterator(&mut c, "s", SHARD, It::AtTimestamp, None, Some(last + 1)).await;
    assert!(read_to_end(&mut c, &it).await.is_empty());
    common::wait_until_clock_passes(last + 1).await;
    put(&mut c, "s", "k", "r9").await;
    assert_eq!(datas(&read_to_end(&mut c, &it).await), named(9..10));
}

#[tokio::test]
async fn get_records_honours_the_limit_and_the_next_iterator_continues_without_gaps() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    stream_with_records(&mut c, "s", 10).await;
    let mut it = common::trim_horizon(&mut c, "s", SHARD).await;
    let mut pages = Vec::new();
    for _ in 0..5 {
        let got = get_records(&mut c, &it, 3).await;
        assert!(
            !got.next_shard_iterator.is_empty(),
            "an open shard always continues"
        );
        pages.push(datas(&got.records));
        it = got.next_shard_iterator;
    }
    assert_eq!(
        pages,
        [
            named(0..3),
            named(3..6),
            named(6..9),
            named(9..10),
            Vec::new()
        ]
    );
    // The last iterator, at the end, picks up records put later.
    put(&mut c, "s", "k", "r10").await;
    let got = get_records(&mut c, &it, 3).await;
    assert_eq!(datas(&got.records), named(10..11));
}

#[tokio::test]
async fn limit_zero_means_the_configured_default() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(tmp.path());
    config.get_records_limit = 4;
    let server = TestServer::start_with(config).await;
    let mut c = server.streams().await;
    stream_with_records(&mut c, "s", 10).await;
    let it = common::trim_horizon(&mut c, "s", SHARD).await;
    let got = get_records(&mut c, &it, 0).await;
    assert_eq!(datas(&got.records), named(0..4));
    let too_many = c
        .get_records(pb::GetRecordsRequest {
            shard_iterator: got.next_shard_iterator,
            limit: 5,
            as_frames: false,
        })
        .await;
    common::assert_rejected(too_many, Code::InvalidArgument, "limit");
}

#[tokio::test]
async fn a_read_cut_short_by_the_byte_budget_continues_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(tmp.path());
    config.max_read_bytes = 2500;
    let server = TestServer::start_with(config).await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    // Records of 1000 bytes, some put one by one and some as one batch, so the budget ends
    // both between and inside stored batches.
    let data = |i: usize| Bytes::from(vec![b'a' + (i % 26) as u8; 1000]);
    for i in 0..5 {
        put(&mut c, "s", "k", data(i)).await;
    }
    let records: Vec<pb::PutRecordsRequestEntry> = (5..20)
        .map(|i| pb::PutRecordsRequestEntry {
            partition_key: "k".into(),
            data: data(i),
            ..Default::default()
        })
        .collect();
    c.put_records(pb::PutRecordsRequest {
        stream_name: "s".into(),
        records,
    })
    .await
    .unwrap();
    let mut it = common::trim_horizon(&mut c, "s", SHARD).await;
    let mut seen = Vec::new();
    for _ in 0..40 {
        let got = get_records(&mut c, &it, 0).await;
        if got.records.is_empty() {
            break;
        }
        assert!(
            got.records.len() <= 3,
            "{} records past a 2500-byte budget",
            got.records.len()
        );
        seen.extend(got.records);
        it = got.next_shard_iterator;
    }
    let seqs: Vec<u64> = seen.iter().map(|r| r.sequence_number).collect();
    assert_eq!(seqs, (0..20).collect::<Vec<u64>>());
    for (i, r) in seen.iter().enumerate() {
        assert_eq!(r.data, data(i));
    }
}

#[tokio::test]
async fn millis_behind_latest_is_the_arrival_distance_to_the_newest_record() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    put(&mut c, "s", "k", "r0").await;
    put(&mut c, "s", "k", "r1").await;
    let first = common::read_from_start(&mut c, "s", SHARD).await;
    // Let the clock move on well past the first records, then put the newest.
    common::wait_until_clock_passes(first[1].approximate_arrival_timestamp_ms + 20).await;
    put(&mut c, "s", "k", "r2").await;
    let all = common::read_from_start(&mut c, "s", SHARD).await;
    let newest = all[2].approximate_arrival_timestamp_ms;

    let it = common::trim_horizon(&mut c, "s", SHARD).await;
    let page = get_records(&mut c, &it, 1).await;
    assert_eq!(datas(&page.records), named(0..1));
    assert_eq!(
        page.millis_behind_latest,
        newest - all[0].approximate_arrival_timestamp_ms
    );
    assert!(page.millis_behind_latest >= 20);
    let page = get_records(&mut c, &page.next_shard_iterator, 1).await;
    assert_eq!(
        page.millis_behind_latest,
        newest - all[1].approximate_arrival_timestamp_ms
    );
    let page = get_records(&mut c, &page.next_shard_iterator, 1).await;
    assert_eq!(datas(&page.records), named(2..3));
    assert_eq!(page.millis_behind_latest, 0, "caught up");
    let page = get_records(&mut c, &page.next_shard_iterator, 1).await;
    assert!(page.records.is_empty());
    assert_eq!(page.millis_behind_latest, 0, "still caught up");
}

#[tokio::test]
async fn an_iterator_may_be_used_again_and_reads_the_same_records() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    stream_with_records(&mut c, "s", 4).await;
    let it = iterator(&mut c, "s", SHARD, It::AtSequenceNumber, Some(1), None).await;
    let once = get_records(&mut c, &it, 2).await;
    let twice = get_records(&mut c, &it, 2).await;
    assert_eq!(once.records, twice.records);
    assert_eq!(datas(&once.records), named(1..3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_following_a_shard_during_concurrent_writes_see_every_record_once_in_order() {
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 60;
    const TOTAL: usize = PRODUCERS * PER_PRODUCER;
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    let start = common::trim_horizon(&mut c, "s", SHARD).await;
    let mut sub = common::subscribe(&mut c, "s", SHARD, It::TrimHorizon, None)
        .await
        .unwrap();
    let mut poller = server.streams().await;
    let polling = tokio::spawn(async move {
        let mut it = start;
        let mut seen: Vec<pb::Record> = Vec::new();
        let deadline = tokio::time::Instant::now() + common::EVENT_TIMEOUT;
        while seen.len() < TOTAL {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {TOTAL} read",
                seen.len()
            );
            let got = get_records(&mut poller, &it, 7).await;
            seen.extend(got.records);
            it = got.next_shard_iterator;
        }
        seen
    });
    let subscribing = tokio::spawn(async move { common::receive_records(&mut sub, TOTAL).await });
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let mut c = server.streams().await;
        producers.push(tokio::spawn(async move {
            for i in 0..PER_PRODUCER {
                put(&mut c, "s", &format!("p{p}"), format!("{p}:{i}")).await;
            }
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    let polled = polling.await.unwrap();
    let pushed = subscribing.await.unwrap();
    let stored = common::read_from_start(&mut c, "s", SHARD).await;
    assert_eq!(stored.len(), TOTAL);
    for (name, seen) in [("GetRecords", &polled), ("SubscribeToShard", &pushed)] {
        assert_eq!(seen.len(), TOTAL, "{name}");
        for (i, r) in seen.iter().enumerate() {
            assert_eq!(r.sequence_number, i as u64, "{name}: no gap, no repeat");
        }
        assert_eq!(seen, &stored, "{name}: the same records as stored");
    }
}

/// What a producer puts, with every optional field in use on some records.
fn full_entries(round: usize) -> Vec<pb::PutRecordsRequestEntry> {
    (0..40)
        .map(|i| pb::PutRecordsRequestEntry {
            partition_key: format!("clé-{round}-{i}-✓"),
            data: Bytes::from(vec![(round * 40 + i) as u8; 100 + i]),
            explicit_hash_key: if i % 3 == 0 {
                (u128::MAX / 7 * (i as u128 % 5)).to_string()
            } else {
                String::new()
            },
            message_group_id: if i % 4 == 1 {
                format!("grp-{}", i % 3)
            } else {
                String::new()
            },
            deduplication_id: if i % 5 != 2 {
                format!("dd-{round}-{i}")
            } else {
                String::new()
            },
            attributes: attributes_of(i),
        })
        .collect()
}

/// Attributes of every type on some records, none on others.
fn attributes_of(i: usize) -> std::collections::HashMap<String, pb::AttributeValue> {
    let text = |data_type: &str, value: String| pb::AttributeValue {
        data_type: data_type.into(),
        string_value: value,
        ..Default::default()
    };
    let mut map = std::collections::HashMap::new();
    if i % 2 == 0 {
        map.insert("store".into(), text("String", format!("shop-{i}-ü")));
        map.insert("price.usd".into(), text("Number", format!("{i}.5e1")));
    }
    if i % 3 == 0 {
        map.insert(
            "tags".into(),
            text("String.Array", format!("[\"t{i}\", {i}, null]")),
        );
        map.insert(
            "blob".into(),
            pb::AttributeValue {
                data_type: "Binary".into(),
                binary_value: Bytes::from(vec![i as u8, 0, 255]),
                ..Default::default()
            },
        );
    }
    map
}

fn assert_same_fields(read: &[pb::Record], put: &[pb::PutRecordsRequestEntry]) {
    assert_eq!(read.len(), put.len(), "record count");
    for (i, (r, p)) in read.iter().zip(put).enumerate() {
        assert_eq!(r.sequence_number, i as u64);
        assert_eq!(r.partition_key, p.partition_key, "record {i}");
        assert_eq!(r.data, p.data, "record {i}");
        assert_eq!(r.explicit_hash_key, p.explicit_hash_key, "record {i}");
        assert_eq!(r.message_group_id, p.message_group_id, "record {i}");
        assert_eq!(r.deduplication_id, p.deduplication_id, "record {i}");
        assert_eq!(r.attributes, p.attributes, "record {i}");
        assert!(r.approximate_arrival_timestamp_ms > 0, "record {i}");
    }
}

#[tokio::test]
async fn records_read_back_carry_every_field_they_were_put_with_from_sealed_and_active_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(tmp.path());
    // Small segments: most records are read from sealed (mapped) segments, the last ones
    // from the active segment.
    config.log.segment_max_bytes = 4096;
    let server = common::TestServer::start_with(config).await;
    let mut c = server.streams().await;
    common::make_stream(&mut c, "s", 1).await;
    let mut all = Vec::new();
    for round in 0..4 {
        let entries = full_entries(round);
        let out = common::put_records(&mut c, "s", entries.clone()).await;
        assert_eq!(out.failed_record_count, 0, "{out:?}");
        all.extend(entries);
    }
    let it = common::trim_horizon(&mut c, "s", SHARD).await;
    assert_same_fields(&read_to_end(&mut c, &it).await, &all);
    let mut events = common::subscribe(&mut c, "s", SHARD, It::TrimHorizon, None)
        .await
        .expect("subscribe");
    assert_same_fields(&common::receive_records(&mut events, all.len()).await, &all);
}
