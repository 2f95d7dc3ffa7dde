//! FIFO over real gRPC: message groups route and order records, deduplication ids make retries
//! no-ops (inside one request, across concurrent requests, by content, per scope, until the
//! window ends), and the FIFO settings and id rules of the contract.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use shardlog::proto::v1 as pb;
use tokio_stream::StreamExt;
use tonic::Code;

use common::fifo::{create, entry, put, put_one};
use common::{read_shard, read_stream, Deadline, TestServer};

/// The shard whose hash key range holds the MD5 of `key`, computed here from the described
/// ranges — an oracle independent of the server's routing code.
fn shard_of(description: &pb::StreamDescription, key: &str) -> String {
    common::shard_holding(&description.shards, common::md5_hash_key(key))
}

/// Group names `prefix-0`, `prefix-1`, ... until one lands in each of two different shards.
fn two_groups_in_different_shards(d: &pb::StreamDescription, prefix: &str) -> (String, String) {
    let first = format!("{prefix}-0");
    let home = shard_of(d, &first);
    let other = (1..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|g| shard_of(d, g) != home)
        .expect("some group lands elsewhere");
    (first, other)
}

fn assert_invalid_naming(status: &tonic::Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains(field),
        "the message should name {field}: {:?}",
        status.message()
    );
}

#[tokio::test]
async fn describe_stream_shows_the_fifo_settings_given_at_creation() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let created = create(&mut c, "fifo", 2, true, 60, pb::DedupScope::MessageGroup).await;
    assert!(created.content_based_deduplication);
    assert_eq!(created.dedup_window_seconds, 60);
    assert_eq!(created.dedup_scope, pb::DedupScope::MessageGroup as i32);

    let described = common::describe_stream(&mut c, "fifo").await;
    assert!(described.content_based_deduplication);
    assert_eq!(described.dedup_window_seconds, 60);
    assert_eq!(described.dedup_scope, pb::DedupScope::MessageGroup as i32);

    common::make_stream(&mut c, "plain", 1).await;
    let plain = common::describe_stream(&mut c, "plain").await;
    assert!(!plain.content_based_deduplication);
    assert_eq!(
        plain.dedup_window_seconds, 300,
        "0 means the default of 300"
    );
    assert_eq!(plain.dedup_scope, pb::DedupScope::Stream as i32);
    server.stop().await;
}

#[tokio::test]
async fn a_dedup_window_above_the_cap_is_rejected_naming_the_field() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let cap = shardlog::stream::DEFAULT_MAX_DEDUP_WINDOW.as_secs() as u32;
    let err = c
        .create_stream(pb::CreateStreamRequest {
            stream_name: "too-long".into(),
            shard_count: 1,
            dedup_window_seconds: cap + 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid_naming(&err, "dedup_window_seconds");
    let streams = common::list_stream_names(&mut c).await;
    assert!(streams.is_empty(), "nothing was created: {streams:?}");

    let at_cap = create(&mut c, "at-cap", 1, false, cap, pb::DedupScope::Stream).await;
    assert_eq!(at_cap.dedup_window_seconds, cap);
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_dedup_scope_is_rejected_naming_the_field() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let err = c
        .create_stream(pb::CreateStreamRequest {
            stream_name: "s".into(),
            shard_count: 1,
            dedup_scope: 7,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid_naming(&err, "dedup_scope");
    server.stop().await;
}

#[tokio::test]
async fn invalid_group_and_deduplication_ids_are_rejected_naming_the_field() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    common::make_stream(&mut c, "ids", 2).await;
    let too_long = "a".repeat(129);
    let bad = [
        too_long.as_str(),
        "has space",
        "caf\u{e9}",
        "tab\there",
        "nul\0",
    ];
    for id in bad {
        let err = c
            .put_record(put("ids", "k", "x", id, ""))
            .await
            .unwrap_err();
        assert_invalid_naming(&err, "message_group_id");
        let err = c
            .put_record(put("ids", "k", "x", "", id))
            .await
            .unwrap_err();
        assert_invalid_naming(&err, "deduplication_id");
        // One bad entry rejects the whole PutRecords: nothing of it is stored.
        let err = c
            .put_records(pb::PutRecordsRequest {
                stream_name: "ids".into(),
                records: vec![entry("k", "ok", "", "fine"), entry("k", "x", "", id)],
            })
            .await
            .unwrap_err();
        assert_invalid_naming(&err, "deduplication_id");
        let err = c
            .put_records(pb::PutRecordsRequest {
                stream_name: "ids".into(),
                records: vec![entry("k", "ok", "", ""), entry("k", "x", id, "")],
            })
            .await
            .unwrap_err();
        assert_invalid_naming(&err, "message_group_id");
    }
    assert!(read_stream(&mut c, "ids").await.is_empty());

    // The edges that are allowed: 128 characters, every ASCII punctuation character.
    let longest = "z".repeat(128);
    let punctuation = r##"!"#$%&'()*+,./:;<=>?@[\]^_`{|}~-"##;
    for id in [longest.as_str(), punctuation, "A1"] {
        let out = put_one(&mut c, put("ids", "", "x", id, id)).await;
        assert!(!out.duplicate);
        let back = read_shard(&mut c, "ids", &out.shard_id).await;
        let stored = back
            .iter()
            .find(|r| r.sequence_number == out.sequence_number)
            .expect("stored");
        assert_eq!(stored.message_group_id, id);
        assert_eq!(stored.deduplication_id, id);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_message_group_id_routes_the_record_whatever_its_partition_key() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let d = common::make_stream(&mut c, "routed", 4).await;
    let home = shard_of(&d, "orders-42");
    // Partition keys that would spread over the shards on their own.
    let keys: Vec<String> = (0..24).map(|i| format!("key-{i}")).collect();
    assert!(
        keys.iter()
            .map(|k| shard_of(&d, k))
            .collect::<BTreeSet<_>>()
            .len()
            > 1
    );
    for (i, k) in keys.iter().enumerate() {
        let out = put_one(&mut c, put("routed", k, &format!("m{i}"), "orders-42", "")).await;
        assert_eq!(out.shard_id, home, "record {i} with partition key {k}");
    }
    let back = read_shard(&mut c, "routed", &home).await;
    assert_eq!(back.len(), keys.len());
    for (i, r) in back.iter().enumerate() {
        assert_eq!(r.message_group_id, "orders-42");
        assert_eq!(
            r.partition_key, keys[i],
            "the partition key is kept as given"
        );
        assert_eq!(r.data, format!("m{i}").as_bytes());
    }
    server.stop().await;
}

#[tokio::test]
async fn a_message_group_id_makes_the_partition_key_optional() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let d = common::make_stream(&mut c, "opt", 3).await;
    let out = put_one(&mut c, put("opt", "", "no key", "g-1", "")).await;
    assert_eq!(out.shard_id, shard_of(&d, "g-1"));
    let results =
        common::put_records(&mut c, "opt", vec![entry("", "no key either", "g-1", "")]).await;
    assert_eq!(results.failed_record_count, 0);
    assert_eq!(results.records[0].shard_id, out.shard_id);
    assert!(results.records[0].sequence_number > out.sequence_number);

    let err = c.put_record(put("opt", "", "x", "", "")).await.unwrap_err();
    assert_invalid_naming(&err, "partition_key");
    server.stop().await;
}

#[tokio::test]
async fn each_group_keeps_its_ack_order_while_groups_are_put_concurrently() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let d = common::make_stream(&mut c, "order", 3).await;
    const GROUPS: usize = 6;
    const PER_GROUP: usize = 30;
    let mut producers = Vec::new();
    for g in 0..GROUPS {
        let mut c = c.clone();
        producers.push(tokio::spawn(async move {
            let group = format!("group-{g}");
            let mut acks = Vec::new();
            for i in 0..PER_GROUP {
                // Each put is acknowledged before the next one is sent: that is the group's order.
                let out = put_one(&mut c, put("order", "", &format!("{g}:{i}"), &group, "")).await;
                acks.push(out);
            }
            (group, acks)
        }));
    }
    for p in producers {
        let (group, acks) = p.await.unwrap();
        let home = shard_of(&d, &group);
        assert!(
            acks.iter().all(|a| a.shard_id == home),
            "{group} stays in {home}"
        );
        assert!(
            acks.windows(2)
                .all(|w| w[0].sequence_number < w[1].sequence_number),
            "{group}: sequence numbers rise in ack order"
        );
        let back: Vec<pb::Record> = read_shard(&mut c, "order", &home)
            .await
            .into_iter()
            .filter(|r| r.message_group_id == group)
            .collect();
        let data: Vec<String> = back
            .iter()
            .map(|r| String::from_utf8(r.data.to_vec()).unwrap())
            .collect();
        let g = group.trim_start_matches("group-");
        let expected: Vec<String> = (0..PER_GROUP).map(|i| format!("{g}:{i}")).collect();
        assert_eq!(data, expected, "{group} is read back in ack order");
        let seqs: Vec<u64> = back.iter().map(|r| r.sequence_number).collect();
        let acked: Vec<u64> = acks.iter().map(|a| a.sequence_number).collect();
        assert_eq!(seqs, acked);
    }
    server.stop().await;
}

#[tokio::test]
async fn readers_and_subscribers_get_the_group_and_deduplication_ids_back() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    common::make_stream(&mut c, "ids-back", 1).await;
    let a = put_one(&mut c, put("ids-back", "pk", "a", "grp", "d-1")).await;
    let b = put_one(&mut c, put("ids-back", "pk", "b", "", "")).await;

    let back = read_shard(&mut c, "ids-back", &a.shard_id).await;
    assert_eq!(back.len(), 2);
    assert_eq!(back[0].sequence_number, a.sequence_number);
    assert_eq!(back[0].message_group_id, "grp");
    assert_eq!(back[0].deduplication_id, "d-1");
    assert_eq!(back[0].partition_key, "pk");
    assert_eq!(back[1].sequence_number, b.sequence_number);
    assert_eq!(back[1].message_group_id, "");
    assert_eq!(back[1].deduplication_id, "");

    let mut events = c
        .subscribe_to_shard(pb::SubscribeToShardRequest {
            stream_name: "ids-back".into(),
            shard_id: a.shard_id.clone(),
            starting_position: Some(pb::StartingPosition {
                r#type: pb::ShardIteratorType::TrimHorizon as i32,
                ..Default::default()
            }),
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    let mut pushed = Vec::new();
    while pushed.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .expect("stream open")
            .expect("event");
        pushed.extend(ev.records);
    }
    assert_eq!(pushed[0].message_group_id, "grp");
    assert_eq!(pushed[0].deduplication_id, "d-1");
    assert_eq!(pushed[1].message_group_id, "");
    server.stop().await;
}

#[tokio::test]
async fn a_repeated_deduplication_id_answers_with_the_first_records_shard_and_sequence() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let d = common::make_stream(&mut c, "dedup", 4).await;
    let first = put_one(&mut c, put("dedup", "key-a", "first", "", "order-1")).await;
    assert!(!first.duplicate);
    // The retry routes elsewhere and carries other data; it is still the first record's retry.
    let other_key = (0..)
        .map(|i| format!("key-{i}"))
        .find(|k| shard_of(&d, k) != first.shard_id)
        .unwrap();
    for (key, data) in [("key-a", "first"), (other_key.as_str(), "changed")] {
        let retry = put_one(&mut c, put("dedup", key, data, "", "order-1")).await;
        assert!(retry.duplicate);
        assert_eq!(retry.shard_id, first.shard_id);
        assert_eq!(retry.sequence_number, first.sequence_number);
    }
    let stored = read_stream(&mut c, "dedup").await;
    assert_eq!(stored.len(), 1, "nothing is stored for a duplicate");
    assert_eq!(stored[0].1.data, "first".as_bytes());

    // PutRecords sees the same window.
    let res = common::put_records(
        &mut c,
        "dedup",
        vec![entry("key-b", "again", "", "order-1")],
    )
    .await;
    assert!(res.records[0].duplicate);
    assert_eq!(res.records[0].shard_id, first.shard_id);
    assert_eq!(res.records[0].sequence_number, first.sequence_number);
    assert_eq!(read_stream(&mut c, "dedup").await.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn repeats_inside_one_put_records_are_stored_once() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    common::make_stream(&mut c, "batch", 3).await;
    let ids = ["a", "b", "a", "c", "b", "a", ""];
    let records = ids
        .iter()
        .enumerate()
        .map(|(i, id)| entry(&format!("key-{i}"), &format!("data-{i}"), "", id))
        .collect();
    let res = common::put_records(&mut c, "batch", records).await;
    assert_eq!(res.failed_record_count, 0);
    let r = &res.records;
    let fresh: Vec<bool> = r.iter().map(|e| !e.duplicate).collect();
    assert_eq!(fresh, [true, true, false, true, false, false, true]);
    for (dup, first) in [(2, 0), (4, 1), (5, 0)] {
        assert_eq!(r[dup].shard_id, r[first].shard_id, "entry {dup}");
        assert_eq!(
            r[dup].sequence_number, r[first].sequence_number,
            "entry {dup}"
        );
    }
    let stored = read_stream(&mut c, "batch").await;
    let mut data: Vec<String> = stored
        .iter()
        .map(|(_, r)| String::from_utf8(r.data.to_vec()).unwrap())
        .collect();
    data.sort();
    assert_eq!(data, ["data-0", "data-1", "data-3", "data-6"]);
    for (shard, rec) in &stored {
        let i: usize = String::from_utf8(rec.data.to_vec()).unwrap()[5..]
            .parse()
            .unwrap();
        assert_eq!(shard, &r[i].shard_id);
        assert_eq!(rec.sequence_number, r[i].sequence_number);
    }
    server.stop().await;
}

#[tokio::test]
async fn concurrent_puts_of_one_deduplication_id_store_exactly_one_record() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    common::make_stream(&mut c, "race", 4).await;
    const PUTTERS: usize = 48;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(PUTTERS));
    let mut tasks = Vec::new();
    for i in 0..PUTTERS {
        // Separate connections, so the requests really overlap on the server.
        let mut c = server.streams().await;
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            if i % 2 == 0 {
                let out = put_one(&mut c, put("race", &format!("k{i}"), "x", "", "the-one")).await;
                (out.shard_id, out.sequence_number, out.duplicate)
            } else {
                let res = common::put_records(
                    &mut c,
                    "race",
                    vec![
                        entry(&format!("k{i}"), "x", "", "the-one"),
                        entry(&format!("k{i}"), "y", "", &format!("own-{i}")),
                    ],
                )
                .await;
                let e = &res.records[0];
                assert!(!res.records[1].duplicate);
                (e.shard_id.clone(), e.sequence_number, e.duplicate)
            }
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let stored_once = outcomes.iter().filter(|o| !o.2).count();
    assert_eq!(
        stored_once, 1,
        "exactly one put stores the id: {outcomes:?}"
    );
    let places: BTreeSet<(String, u64)> = outcomes.iter().map(|o| (o.0.clone(), o.1)).collect();
    assert_eq!(places.len(), 1, "every put answers with the same record");
    let stored = read_stream(&mut c, "race").await;
    let with_id: Vec<_> = stored
        .iter()
        .filter(|(_, r)| r.deduplication_id == "the-one")
        .collect();
    assert_eq!(with_id.len(), 1);
    let (shard, seq) = places.into_iter().next().unwrap();
    assert_eq!(with_id[0].0, shard);
    assert_eq!(with_id[0].1.sequence_number, seq);
    assert_eq!(
        stored.len(),
        1 + PUTTERS / 2,
        "plus one own id per PutRecords"
    );
    server.stop().await;
}

#[tokio::test]
async fn content_based_dedup_treats_the_same_data_as_a_duplicate() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    create(&mut c, "content", 2, true, 0, pb::DedupScope::Stream).await;
    let first = put_one(&mut c, put("content", "k1", "payload", "", "")).await;
    assert!(!first.duplicate);
    let again = put_one(&mut c, put("content", "k2", "payload", "", "")).await;
    assert!(again.duplicate);
    assert_eq!(
        (again.shard_id.as_str(), again.sequence_number),
        (first.shard_id.as_str(), first.sequence_number)
    );
    let different = put_one(&mut c, put("content", "k1", "payload!", "", "")).await;
    assert!(!different.duplicate);
    // An explicit id wins over the content: the same data under an id is a new record.
    let explicit = put_one(&mut c, put("content", "k1", "payload", "", "id-1")).await;
    assert!(!explicit.duplicate);
    assert_eq!(read_stream(&mut c, "content").await.len(), 3);

    // Without content-based dedup, equal data is stored every time.
    common::make_stream(&mut c, "no-content", 1).await;
    for _ in 0..2 {
        let out = put_one(&mut c, put("no-content", "k", "payload", "", "")).await;
        assert!(!out.duplicate);
    }
    assert_eq!(read_stream(&mut c, "no-content").await.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn message_group_scope_keeps_one_id_apart_in_two_groups() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let d = create(
        &mut c,
        "per-group",
        4,
        false,
        0,
        pb::DedupScope::MessageGroup,
    )
    .await;
    let (g1, g2) = two_groups_in_different_shards(&d, "g");
    let a = put_one(&mut c, put("per-group", "", "a", &g1, "same-id")).await;
    let b = put_one(&mut c, put("per-group", "", "b", &g2, "same-id")).await;
    assert!(
        !a.duplicate && !b.duplicate,
        "one id in two groups is two records"
    );
    assert_ne!(a.shard_id, b.shard_id);
    let a2 = put_one(&mut c, put("per-group", "", "a", &g1, "same-id")).await;
    assert!(
        a2.duplicate,
        "within its group the id is still deduplicated"
    );
    assert_eq!(
        (a2.shard_id, a2.sequence_number),
        (a.shard_id, a.sequence_number)
    );
    let b2 = put_one(&mut c, put("per-group", "", "b", &g2, "same-id")).await;
    assert!(b2.duplicate);
    assert_eq!(b2.sequence_number, b.sequence_number);
    // Inside one PutRecords too.
    let res = common::put_records(
        &mut c,
        "per-group",
        vec![
            entry("", "c", &g1, "batch-id"),
            entry("", "d", &g2, "batch-id"),
            entry("", "e", &g1, "batch-id"),
        ],
    )
    .await;
    let dups: Vec<bool> = res.records.iter().map(|r| r.duplicate).collect();
    assert_eq!(dups, [false, false, true]);
    assert_eq!(
        res.records[2].sequence_number,
        res.records[0].sequence_number
    );
    assert_eq!(read_stream(&mut c, "per-group").await.len(), 4);
    server.stop().await;
}

#[tokio::test]
async fn stream_scope_makes_one_id_in_another_group_a_duplicate() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let d = create(&mut c, "per-stream", 4, false, 0, pb::DedupScope::Stream).await;
    let (g1, g2) = two_groups_in_different_shards(&d, "g");
    let a = put_one(&mut c, put("per-stream", "", "a", &g1, "same-id")).await;
    let b = put_one(&mut c, put("per-stream", "", "b", &g2, "same-id")).await;
    assert!(!a.duplicate);
    assert!(b.duplicate, "the id is unique across the stream");
    assert_eq!(
        b.shard_id, a.shard_id,
        "the answer names the first record's shard"
    );
    assert_eq!(b.sequence_number, a.sequence_number);
    let stored = read_stream(&mut c, "per-stream").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1.message_group_id, g1);
    server.stop().await;
}

#[tokio::test]
async fn an_id_is_stored_again_once_its_dedup_window_has_passed() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    create(&mut c, "short", 1, false, 1, pb::DedupScope::Stream).await;
    let window = Duration::from_secs(1);
    let sent = Instant::now();
    let first = put_one(&mut c, put("short", "k", "one", "", "ttl")).await;
    assert!(!first.duplicate);
    let soon = put_one(&mut c, put("short", "k", "one", "", "ttl")).await;
    assert!(soon.duplicate, "inside the window the retry is a duplicate");

    // Retry until the id is fresh again; every retry before that must be a duplicate.
    let deadline = Deadline::after(window + Duration::from_secs(10));
    let second = loop {
        let out = put_one(&mut c, put("short", "k", "two", "", "ttl")).await;
        if !out.duplicate {
            break out;
        }
        assert_eq!(out.sequence_number, first.sequence_number);
        assert!(deadline.tick().await, "the id never expired");
    };
    assert!(
        sent.elapsed() >= window,
        "the id expired after {:?}, before its window of {window:?}",
        sent.elapsed()
    );
    assert!(second.sequence_number > first.sequence_number);
    let third = put_one(&mut c, put("short", "k", "three", "", "ttl")).await;
    assert!(third.duplicate, "the new record opens a new window");
    assert_eq!(third.sequence_number, second.sequence_number);

    let data: Vec<Bytes> = read_stream(&mut c, "short")
        .await
        .into_iter()
        .map(|(_, r)| r.data)
        .collect();
    assert_eq!(data, [Bytes::from("one"), Bytes::from("two")]);
    server.stop().await;
}

#[tokio::test]
async fn duplicates_across_streams_do_not_meet() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    common::make_stream(&mut c, "left", 1).await;
    common::make_stream(&mut c, "right", 1).await;
    let mut seen = BTreeMap::new();
    for s in ["left", "right"] {
        let out = put_one(&mut c, put(s, "k", "x", "", "shared")).await;
        assert!(!out.duplicate, "{s}: each stream has its own window");
        seen.insert(s, out.sequence_number);
    }
    assert_eq!(read_stream(&mut c, "left").await.len(), 1);
    assert_eq!(read_stream(&mut c, "right").await.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_message_group_stays_in_one_shard_whatever_explicit_hash_key_its_records_carry() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let d = common::make_stream(&mut c, "pinned", 4).await;
    let home = shard_of(&d, "pinned-group");
    for (i, shard) in d.shards.iter().enumerate() {
        let out = c
            .put_record(pb::PutRecordRequest {
                stream_name: "pinned".into(),
                partition_key: "k".into(),
                data: Bytes::from(format!("m{i}")),
                explicit_hash_key: shard.starting_hash_key.clone(),
                message_group_id: "pinned-group".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            out.shard_id, home,
            "a hash key of {} must not split the group",
            shard.shard_id
        );
    }
    let back = read_shard(&mut c, "pinned", &home).await;
    assert_eq!(back.len(), d.shards.len());
    for (r, shard) in back.iter().zip(&d.shards) {
        assert_eq!(
            r.explicit_hash_key, shard.starting_hash_key,
            "kept as given"
        );
    }
    // Without a group the explicit hash key still picks the shard.
    let last = d.shards.last().unwrap();
    let out = c
        .put_record(pb::PutRecordRequest {
            stream_name: "pinned".into(),
            partition_key: "k".into(),
            data: Bytes::from_static(b"plain"),
            explicit_hash_key: last.starting_hash_key.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.shard_id, last.shard_id);
    server.stop().await;
}

#[tokio::test]
async fn a_full_dedup_window_throttles_new_ids_and_still_answers_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = shardlog::broker::BrokerConfig::new(dir.path());
    config.max_dedup_ids = 3;
    let server = TestServer::start_with(config).await;
    let mut c = server.streams().await;
    common::make_stream(&mut c, "full", 2).await;
    let mut first = BTreeMap::new();
    for id in ["a", "b", "c"] {
        let out = put_one(&mut c, put("full", id, id, "", id)).await;
        first.insert(id, out.sequence_number);
    }
    let err = c
        .put_record(put("full", "d", "d", "", "d"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let known = put_one(&mut c, put("full", "a", "a", "", "a")).await;
    assert!(known.duplicate);
    assert_eq!(known.sequence_number, first["a"]);

    let res = common::put_records(
        &mut c,
        "full",
        vec![
            entry("b", "b", "", "b"),
            entry("e", "e", "", "e"),
            entry("e", "e", "", "e"),
            entry("plain", "no id", "", ""),
        ],
    )
    .await;
    let r = &res.records;
    assert!(r[0].duplicate && r[0].error_code.is_empty());
    assert_eq!(r[0].sequence_number, first["b"]);
    for (i, e) in r[1..3].iter().enumerate() {
        assert_eq!(
            e.error_code,
            "ProvisionedThroughputExceededException",
            "entry {}: a repeat of a throttled id is throttled too: {e:?}",
            i + 1
        );
        assert!(e.shard_id.is_empty());
    }
    assert!(
        r[3].error_code.is_empty() && !r[3].duplicate,
        "ids are not needed to put"
    );
    assert_eq!(res.failed_record_count, 2);
    assert_eq!(read_stream(&mut c, "full").await.len(), 4);
    server.stop().await;
}

#[tokio::test]
async fn a_recreated_stream_does_not_remember_the_old_streams_ids() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    create(&mut c, "again", 1, true, 0, pb::DedupScope::Stream).await;
    put_one(&mut c, put("again", "k", "same data", "", "id")).await;
    put_one(&mut c, put("again", "k", "same data", "", "")).await;
    common::delete_stream(&mut c, "again").await;
    create(&mut c, "again", 1, true, 0, pb::DedupScope::Stream).await;
    let by_id = put_one(&mut c, put("again", "k", "same data", "", "id")).await;
    let by_content = put_one(&mut c, put("again", "k", "same data", "", "")).await;
    assert!(!by_id.duplicate && !by_content.duplicate);
    assert_eq!(read_stream(&mut c, "again").await.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn content_based_dedup_under_message_group_scope_keeps_groups_apart() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    create(&mut c, "cg", 2, true, 0, pb::DedupScope::MessageGroup).await;
    let a = put_one(&mut c, put("cg", "", "same", "g1", "")).await;
    let b = put_one(&mut c, put("cg", "", "same", "g2", "")).await;
    let a2 = put_one(&mut c, put("cg", "", "same", "g1", "")).await;
    assert!(!a.duplicate && !b.duplicate);
    assert!(a2.duplicate);
    assert_eq!(a2.sequence_number, a.sequence_number);
    assert_eq!(read_stream(&mut c, "cg").await.len(), 2);
    server.stop().await;
}
