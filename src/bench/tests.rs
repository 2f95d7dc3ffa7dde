//! `shardlog bench --embedded`: tiny produce, e2e, route and queue runs against a server
//! started in process, over gRPC and over the Kinesis API, checked through the JSON the
//! command prints.

use std::time::Duration;

use super::embedded::{EmbeddedServer, EmbeddedSettings};
use super::{execute, Api, BenchArgs, BenchError, PutApi, Workload};
use crate::bench::args::{QueueType, DEFAULT_ROUTE_ATTRIBUTES_PATTERN};
use shardlog::storage::FsyncPolicy;

/// The number at `path` (keys separated by `.`) of a JSON object without arrays, such as the
/// bench prints; `None` when the key is missing or not a number.
fn number_at(json: &str, path: &str) -> Option<f64> {
    let mut rest = json;
    for key in path.split('.') {
        let at = rest.find(&format!("\"{key}\":"))?;
        rest = &rest[at + key.len() + 3..];
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn tiny(workload: Workload) -> BenchArgs {
    BenchArgs {
        embedded: true,
        workload,
        shards: 2,
        producers: 2,
        consumers: Some(2),
        record_size: 64,
        batch_size: 50,
        records: Some(2_000),
        duration: Duration::from_secs(1),
        json: true,
        ..BenchArgs::default()
    }
}

/// Runs the bench as `args` say and returns its JSON report.
async fn run_json(args: &BenchArgs) -> String {
    execute(args)
        .await
        .expect("bench ran")
        .to_json()
        .to_string()
}

fn assert_latency_object(json: &str, name: &str) {
    for field in ["p50", "p90", "p99", "p999", "max"] {
        let value = number_at(json, &format!("{name}.{field}"))
            .unwrap_or_else(|| panic!("{name}.{field} missing in {json}"));
        assert!(value >= 0.0, "{name}.{field} = {value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_embedded_produce_run_reports_records_and_no_errors() {
    let json = run_json(&tiny(Workload::Produce)).await;
    let records = number_at(&json, "records").expect("records");
    assert!(records > 0.0, "{json}");
    assert!(records <= 2_000.0, "{json}");
    assert_eq!(number_at(&json, "errors"), Some(0.0), "{json}");
    assert!(number_at(&json, "records_per_sec").expect("records_per_sec") > 0.0);
    assert!(number_at(&json, "mb_per_sec").expect("mb_per_sec") > 0.0);
    assert_latency_object(&json, "latency_ms");
    assert_latency_object(&json, "e2e_latency_ms");
    assert!(number_at(&json, "latency_ms.count").expect("count") > 0.0);
    assert!(
        number_at(&json, "rss_mb.peak").expect("rss") > 0.0,
        "{json}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_embedded_e2e_run_receives_every_acknowledged_record() {
    let json = run_json(&tiny(Workload::E2e)).await;
    let records = number_at(&json, "records").expect("records");
    assert!(records > 0.0, "{json}");
    assert_eq!(number_at(&json, "errors"), Some(0.0), "{json}");
    assert_latency_object(&json, "e2e_latency_ms");
    // Every acknowledged record was received and timed.
    assert_eq!(
        number_at(&json, "e2e_latency_ms.count"),
        Some(records),
        "{json}"
    );
    assert!(
        number_at(&json, "e2e_latency_ms.max").expect("max") > 0.0,
        "{json}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_and_streaming_producers_both_store_every_record_of_the_budget() {
    for put_api in [PutApi::Unary, PutApi::Stream] {
        let args = BenchArgs {
            put_api,
            // Past the server's window: the call must still answer every batch.
            in_flight: 12,
            duration: Duration::from_secs(30),
            ..tiny(Workload::Produce)
        };
        let json = run_json(&args).await;
        assert_eq!(number_at(&json, "records"), Some(2_000.0), "{json}");
        assert_eq!(number_at(&json, "errors"), Some(0.0), "{json}");
        assert_eq!(
            number_at(&json, "latency_ms.count"),
            Some(40.0),
            "one ack per batch of 50: {json}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_subscribers_stay_open_and_receive_nothing_during_a_run() {
    let args = BenchArgs {
        idle_subscribers: 10,
        ..tiny(Workload::Produce)
    };
    let json = run_json(&args).await;
    assert_eq!(number_at(&json, "idle_subscribers"), Some(10.0), "{json}");
    assert_eq!(number_at(&json, "errors"), Some(0.0), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_embedded_route_run_routes_every_acknowledged_record_once() {
    let json = run_json(&tiny(Workload::Route)).await;
    assert_eq!(number_at(&json, "records"), Some(2_000.0), "{json}");
    assert_eq!(number_at(&json, "errors"), Some(0.0), "{json}");
    assert_eq!(
        number_at(&json, "route.expected_records"),
        Some(2_000.0),
        "{json}"
    );
    assert_eq!(
        number_at(&json, "route.routed_records"),
        Some(2_000.0),
        "{json}"
    );
    assert!(json.contains(r#""count_ok":true,"drained":true"#), "{json}");
    assert!(json.contains(r#""filter":null"#), "{json}");
    assert!(number_at(&json, "route.routed_per_sec").expect("rate") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_run_with_attributes_routes_only_the_orders() {
    let args = BenchArgs {
        route_attributes: true,
        ..tiny(Workload::Route)
    };
    let json = run_json(&args).await;
    assert_eq!(number_at(&json, "records"), Some(2_000.0), "{json}");
    // Batches of 50 hold 12 noise records (positions 3, 7, .., 47) and 38 orders.
    assert_eq!(
        number_at(&json, "route.expected_records"),
        Some(40.0 * 38.0),
        "{json}"
    );
    assert_eq!(
        number_at(&json, "route.routed_records"),
        Some(40.0 * 38.0),
        "{json}"
    );
    assert!(json.contains(r#""count_ok":true"#), "{json}");
    assert!(json.contains(r#""scope":"attributes""#), "{json}");
    assert!(
        json.contains(&super::report::Json::str(DEFAULT_ROUTE_ATTRIBUTES_PATTERN).to_string()),
        "{json}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_filter_matches_none_of_the_binary_records_and_the_rule_still_catches_up() {
    let args = BenchArgs {
        route_filter: Some(r#"{"kind":["order"]}"#.to_owned()),
        ..tiny(Workload::Route)
    };
    let json = run_json(&args).await;
    assert_eq!(number_at(&json, "records"), Some(2_000.0), "{json}");
    assert_eq!(
        number_at(&json, "route.expected_records"),
        Some(0.0),
        "{json}"
    );
    assert_eq!(
        number_at(&json, "route.routed_records"),
        Some(0.0),
        "{json}"
    );
    assert!(json.contains(r#""count_ok":true,"drained":true"#), "{json}");
}

/// A tiny queue run: 2,000 records over 50 message groups, batches of 100 messages.
fn tiny_queue(kind: QueueType) -> BenchArgs {
    BenchArgs {
        queue_type: Some(kind),
        queue_groups: Some(50),
        queue_batch: Some(100),
        // Bounds the run only if it hangs: it ends when every message is deleted.
        duration: Duration::from_secs(60),
        ..tiny(Workload::Queue)
    }
}

/// Checks that a queue run's JSON says every one of 2,000 messages was received and deleted
/// exactly once, with a receive-to-delete latency for each.
fn assert_every_message_deleted_once(json: &str) {
    assert_eq!(number_at(json, "records"), Some(2_000.0), "{json}");
    assert_eq!(number_at(json, "errors"), Some(0.0), "{json}");
    assert_eq!(number_at(json, "fill.records"), Some(2_000.0), "{json}");
    assert_eq!(number_at(json, "queue.target"), Some(2_000.0), "{json}");
    assert_eq!(number_at(json, "queue.received"), Some(2_000.0), "{json}");
    assert_eq!(number_at(json, "queue.redelivered"), Some(0.0), "{json}");
    assert_eq!(number_at(json, "queue.deleted"), Some(2_000.0), "{json}");
    assert_eq!(
        number_at(json, "queue.delete_failures"),
        Some(0.0),
        "{json}"
    );
    assert!(json.contains(r#""drained":true"#), "{json}");
    assert_latency_object(json, "latency_ms");
    assert_eq!(number_at(json, "latency_ms.count"), Some(2_000.0), "{json}");
    assert!(
        number_at(json, "records_per_sec").expect("rate") > 0.0,
        "{json}"
    );
    // At least one receive per 100 messages, and a delete for each receive that got any.
    assert!(
        number_at(json, "queue.receive_calls").expect("receives") >= 20.0,
        "{json}"
    );
    assert!(
        number_at(json, "queue.delete_calls").expect("deletes") >= 20.0,
        "{json}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_embedded_queue_run_deletes_every_message_once_in_either_queue_type() {
    for kind in [QueueType::Fifo, QueueType::Standard] {
        let json = run_json(&tiny_queue(kind)).await;
        assert!(
            json.contains(&format!(r#""type":"{}""#, kind.name())),
            "{json}"
        );
        assert_every_message_deleted_once(&json);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_run_against_a_server_holds_only_its_own_records_and_leaves_no_group() {
    let parent = std::env::temp_dir();
    let settings = EmbeddedSettings {
        fsync: FsyncPolicy::Never,
        max_dedup_ids: 0,
        shard_retention_bytes: None,
    };
    let server = EmbeddedServer::start(&parent, settings)
        .await
        .expect("server started");
    let remote = |workload| BenchArgs {
        embedded: false,
        server: Some(server.url()),
        ..tiny(workload)
    };
    // Records already in the stream are not the queue run's: its group starts after them.
    let produce = BenchArgs {
        duration: Duration::from_secs(30),
        ..remote(Workload::Produce)
    };
    let json = run_json(&produce).await;
    assert_eq!(number_at(&json, "records"), Some(2_000.0), "{json}");
    for kind in [QueueType::Fifo, QueueType::Standard] {
        let args = BenchArgs {
            embedded: false,
            server: Some(server.url()),
            ..tiny_queue(kind)
        };
        let json = run_json(&args).await;
        assert!(
            json.contains(&format!(r#""server":"{}""#, server.url())),
            "{json}"
        );
        assert_every_message_deleted_once(&json);
    }
    let client = shardlog::client::Client::connect(server.url())
        .await
        .expect("connected");
    let groups = client.list_groups("bench").await.expect("groups listed");
    assert!(groups.is_empty(), "queue groups left behind: {groups:?}");
    server.stop().await.expect("server stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kinesis_produce_run_stores_the_whole_budget_one_put_records_per_batch() {
    let args = BenchArgs {
        api: Api::Kinesis,
        duration: Duration::from_secs(30),
        ..tiny(Workload::Produce)
    };
    let json = run_json(&args).await;
    assert!(json.contains(r#""api":"kinesis""#), "{json}");
    assert_eq!(number_at(&json, "records"), Some(2_000.0), "{json}");
    assert_eq!(number_at(&json, "bytes"), Some(2_000.0 * 64.0), "{json}");
    assert_eq!(number_at(&json, "errors"), Some(0.0), "{json}");
    assert_eq!(
        number_at(&json, "latency_ms.count"),
        Some(40.0),
        "one ack per batch of 50: {json}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kinesis_consume_run_reads_back_every_record_it_stored() {
    let args = BenchArgs {
        api: Api::Kinesis,
        duration: Duration::from_secs(30),
        ..tiny(Workload::Consume)
    };
    let json = run_json(&args).await;
    assert!(json.contains(r#""consume_mode":"get-records""#), "{json}");
    assert_eq!(number_at(&json, "fill.records"), Some(2_000.0), "{json}");
    assert_eq!(number_at(&json, "records"), Some(2_000.0), "{json}");
    // The data decoded from base64: 64 bytes a record.
    assert_eq!(number_at(&json, "bytes"), Some(2_000.0 * 64.0), "{json}");
    assert_eq!(number_at(&json, "errors"), Some(0.0), "{json}");
    assert!(
        number_at(&json, "latency_ms.count").expect("count") >= 2.0,
        "a GetRecords at least per shard: {json}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kinesis_run_on_a_server_takes_the_stream_it_finds() {
    let settings = EmbeddedSettings {
        fsync: FsyncPolicy::Never,
        max_dedup_ids: 0,
        shard_retention_bytes: None,
    };
    let server = EmbeddedServer::start(&std::env::temp_dir(), settings)
        .await
        .expect("server started");
    let remote = |workload| BenchArgs {
        embedded: false,
        api: Api::Kinesis,
        kinesis_endpoint: Some(server.kinesis_url()),
        stream: "kinesis-bench".to_owned(),
        duration: Duration::from_secs(30),
        ..tiny(workload)
    };
    // The first run creates the stream; the second finds it with the first run's records,
    // and reads them as well as its own.
    let json = run_json(&remote(Workload::Produce)).await;
    assert_eq!(number_at(&json, "records"), Some(2_000.0), "{json}");
    let json = run_json(&remote(Workload::Consume)).await;
    assert!(
        json.contains(&format!(r#""server":"{}""#, server.kinesis_url())),
        "{json}"
    );
    assert_eq!(number_at(&json, "fill.records"), Some(2_000.0), "{json}");
    assert_eq!(number_at(&json, "records"), Some(4_000.0), "{json}");
    assert_eq!(number_at(&json, "errors"), Some(0.0), "{json}");
    server.stop().await.expect("server stopped");
}

#[tokio::test]
async fn a_kinesis_run_of_another_workload_is_refused_before_any_server_starts() {
    let args = BenchArgs {
        api: Api::Kinesis,
        ..tiny(Workload::E2e)
    };
    assert!(matches!(
        execute(&args).await,
        Err(BenchError::InvalidArgument { setting: "api", .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_reshard_run_doubles_up_halves_back_and_times_every_switch() {
    let args = BenchArgs {
        shards: 1,
        reshard_to: Some(4),
        records: None,
        ..tiny(Workload::Reshard)
    };
    let json = run_json(&args).await;
    assert_eq!(number_at(&json, "errors"), Some(0.0), "{json}");
    assert!(
        number_at(&json, "records").expect("records") > 0.0,
        "{json}"
    );
    let steps: Vec<(u64, u64)> = json
        .match_indices(r#"{"from":"#)
        .map(|(at, _)| {
            let rest = &json[at..];
            (
                number_at(rest, "from").expect("from") as u64,
                number_at(rest, "to").expect("to") as u64,
            )
        })
        .collect();
    assert_eq!(steps, [(1, 2), (2, 4), (4, 2), (2, 1)], "{json}");
    assert_eq!(json.matches(r#""error":null"#).count(), 4, "{json}");
    assert!(
        number_at(&json, "reshard.probe_puts").expect("probe") > 0.0,
        "{json}"
    );
    assert!(
        number_at(&json, "reshard.records_per_sec_during").expect("during") > 0.0,
        "{json}"
    );
}

#[test]
fn reshard_steps_double_to_the_top_and_halve_back() {
    let args = |shards, top| BenchArgs {
        shards,
        reshard_to: Some(top),
        ..tiny(Workload::Reshard)
    };
    let plan = super::Plan::from_args(&args(4, 64)).unwrap();
    assert_eq!(plan.reshard_steps, [8, 16, 32, 64, 32, 16, 8, 4]);
    let plan = super::Plan::from_args(&args(3, 10)).unwrap();
    assert_eq!(plan.reshard_steps, [6, 10, 6, 3]);
    assert!(super::Plan::from_args(&args(4, 4)).is_err());
    let produce = BenchArgs {
        reshard_to: Some(8),
        ..tiny(Workload::Produce)
    };
    assert!(matches!(
        super::Plan::from_args(&produce),
        Err(BenchError::InvalidArgument {
            setting: "reshard-to",
            ..
        })
    ));
}
