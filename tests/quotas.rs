//! Per-shard throughput limits over real gRPC and the Kinesis API: puts pass at the configured
//! rate (within 10%), a throttled entry fails alone while the rest of its request is stored,
//! GetRecords over its call or byte rate fails whole and loses nothing, and throttles show in
//! `/metrics`.

mod common;

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use common::http::Scrape;
use common::{get_records, make_stream, put_records, trim_horizon, TestServer};
use serde_json::json;
use shardlog::broker::quotas::ShardQuotas;
use shardlog::proto::v1 as pb;
use shardlog::BrokerConfig;
use tonic::Code;

const SHARD: &str = "shardId-000000000000";

async fn server_with(quotas: ShardQuotas) -> (TestServer, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(tmp.path());
    config.shard_quotas = quotas;
    (TestServer::start_with(config).await, tmp)
}

fn entries(n: usize, start: usize) -> Vec<pb::PutRecordsRequestEntry> {
    (start..start + n)
        .map(|i| pb::PutRecordsRequestEntry {
            partition_key: "k".into(),
            data: format!("r{i}").into_bytes().into(),
            ..Default::default()
        })
        .collect()
}

#[tokio::test]
async fn puts_pass_at_the_configured_rate_and_a_throttled_entry_fails_alone() {
    const RATE: u32 = 200;
    let (server, _tmp) = server_with(ShardQuotas {
        put_records_per_sec: NonZeroU32::new(RATE),
        ..ShardQuotas::default()
    })
    .await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;

    // One request past a fresh shard's burst: the first second's worth is stored, the rest
    // fail alone with Kinesis's code, in request order.
    let first = put_records(&mut c, "s", entries(RATE as usize + 50, 0)).await;
    let stored: Vec<bool> = first
        .records
        .iter()
        .map(|r| r.error_code.is_empty())
        .collect();
    let passed = stored.iter().filter(|s| **s).count();
    assert!(
        (RATE as usize..=RATE as usize + 5).contains(&passed),
        "{passed} of a fresh shard's burst of {RATE}"
    );
    assert_eq!(first.failed_record_count as usize, stored.len() - passed);
    let refused = first
        .records
        .iter()
        .find(|r| !r.error_code.is_empty())
        .unwrap();
    assert_eq!(refused.error_code, "ProvisionedThroughputExceededException");
    assert!(
        refused.error_message.contains("records put"),
        "{}",
        refused.error_message
    );

    // Then, for a bounded time, as fast as the client goes: what passes follows the rate.
    let started = Instant::now();
    let mut accepted = 0usize;
    let mut next = RATE as usize + 50;
    while started.elapsed() < Duration::from_secs(2) {
        let out = put_records(&mut c, "s", entries(20, next)).await;
        next += 20;
        accepted += out
            .records
            .iter()
            .filter(|r| r.error_code.is_empty())
            .count();
    }
    let expected = RATE as f64 * started.elapsed().as_secs_f64();
    let ratio = accepted as f64 / expected;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "{accepted} records passed in {:?}, {expected:.0} expected at {RATE}/s",
        started.elapsed()
    );

    // Exactly what was acknowledged is stored.
    let stored_records = common::read_shard(&mut c, "s", SHARD).await;
    assert_eq!(stored_records.len(), passed + accepted);

    let scrape = Scrape::of(server.http_addr).await;
    let throttled = scrape
        .get(
            "shardlog_throttled_requests_total",
            &[("api", "any"), ("reason", "shard_put_records")],
        )
        .unwrap_or(0.0);
    assert!(throttled >= 50.0, "{throttled}");
}

#[tokio::test]
async fn get_records_over_its_call_or_byte_rate_fails_whole_and_the_retry_loses_nothing() {
    let (server, _tmp) = server_with(ShardQuotas {
        get_records_per_sec: NonZeroU32::new(5),
        read_bytes_per_sec: NonZeroU32::new(1_000),
        ..ShardQuotas::default()
    })
    .await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 1).await;
    let big = |i: usize| pb::PutRecordsRequestEntry {
        partition_key: "k".into(),
        data: vec![b'a' + i as u8; 300].into(),
        ..Default::default()
    };
    put_records(&mut c, "s", (0..10).map(big).collect()).await;

    // A read returns at most a second's worth of bytes.
    let iterator = trim_horizon(&mut c, "s", SHARD).await;
    let first = get_records(&mut c, &iterator, 0).await;
    let first_bytes: usize = first.records.iter().map(|r| r.data.len()).sum();
    assert!(
        !first.records.is_empty() && first_bytes <= 1_000,
        "{first_bytes}"
    );
    let next = first.next_shard_iterator.clone();
    // The next read would take the bytes rate past its limit: refused whole.
    let refused = c
        .get_records(pb::GetRecordsRequest {
            shard_iterator: next.clone(),
            limit: 0,
            as_frames: false,
        })
        .await;
    common::assert_rejected(refused, Code::ResourceExhausted, "bytes read");

    // The same iterator, once the rate allows, reads on from where it was.
    let mut got = first.records;
    let deadline = common::Deadline::after(Duration::from_secs(30));
    let mut at = next;
    while got.len() < 10 {
        match c
            .get_records(pb::GetRecordsRequest {
                shard_iterator: at.clone(),
                limit: 0,
                as_frames: false,
            })
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                got.extend(r.records);
                at = r.next_shard_iterator;
            }
            Err(s) => assert_eq!(s.code(), Code::ResourceExhausted, "{s}"),
        }
        assert!(deadline.tick().await, "read {} of 10", got.len());
    }
    let seqs: Vec<u64> = got.iter().map(|r| r.sequence_number).collect();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>());

    // Calls: more than five at once are refused, whatever they read.
    let empty = trim_horizon(&mut c, "s", SHARD).await;
    let mut refused_calls = 0;
    for _ in 0..8 {
        let r = c
            .get_records(pb::GetRecordsRequest {
                shard_iterator: empty.clone(),
                limit: 1,
                as_frames: false,
            })
            .await;
        if let Err(s) = r {
            assert_eq!(s.code(), Code::ResourceExhausted);
            refused_calls += 1;
        }
    }
    assert!(
        refused_calls >= 3,
        "{refused_calls} of 8 calls refused at 5/s"
    );
    let scrape = Scrape::of(server.http_addr).await;
    assert!(
        scrape
            .get(
                "shardlog_throttled_requests_total",
                &[("api", "grpc"), ("reason", "shard_get_records_calls")],
            )
            .unwrap_or(0.0)
            >= 1.0
    );
}

#[tokio::test]
async fn the_kinesis_api_answers_a_throttled_entry_as_kinesis_does() {
    let (server, _tmp) = server_with(ShardQuotas {
        put_bytes_per_sec: NonZeroU32::new(100),
        ..ShardQuotas::default()
    })
    .await;
    let addr = server.kinesis_addr;
    common::kinesis::ok(
        addr,
        "CreateStream",
        json!({"StreamName": "s", "ShardCount": 1}),
    )
    .await;
    let record = |d: &str| json!({"Data": base64(d), "PartitionKey": "k"});
    let body = json!({
        "StreamName": "s",
        "Records": [record(&"a".repeat(60)), record(&"b".repeat(60)), record("c")],
    });
    let out = common::kinesis::ok(addr, "PutRecords", body).await;
    assert_eq!(out["FailedRecordCount"], 1);
    let records = out["Records"].as_array().unwrap();
    assert!(records[0]["SequenceNumber"].is_string());
    assert_eq!(
        records[1]["ErrorCode"],
        "ProvisionedThroughputExceededException"
    );
    assert_eq!(
        records[1]["ErrorMessage"],
        "Rate exceeded for shard shardId-000000000000 in stream s under account 000000000000."
    );
    // A small entry after the refused one still fits: it fails or passes on its own.
    assert!(records[2]["SequenceNumber"].is_string());
}

fn base64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
