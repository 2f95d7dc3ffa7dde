//! `shardlog bench --embedded`: tiny produce, e2e and route runs against a server started in
//! process, checked through the JSON the command prints.

use std::time::Duration;

use super::{execute, BenchArgs, PutApi, Workload};
use crate::bench::args::DEFAULT_ROUTE_ATTRIBUTES_PATTERN;

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
        consumers: 2,
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
