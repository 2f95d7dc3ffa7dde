//! The HTTP admin listener over real HTTP: `/metrics` moves as the work done says (records put
//! and read, requests by outcome, syncs, dedup hits, subscriptions, queue groups, lease groups,
//! rules), a deleted stream takes its series with it, `/healthz` and `/readyz` tell a starting
//! server from a ready one, and gRPC reflection answers in v1 and v1alpha.

mod common;

use std::time::Duration;

use common::http::{get, Scrape};
use common::{make_stream, put_records, read_stream, Deadline, TestServer};
use hyper::StatusCode;
use shardlog::proto::v1 as pb;

/// Requests counted for a gRPC method and outcome.
fn calls(s: &Scrape, method: &str, code: &str) -> f64 {
    s.get(
        "shardlog_requests_total",
        &[("api", "grpc"), ("operation", method), ("code", code)],
    )
    .unwrap_or(0.0)
}

fn entries(n: usize, prefix: &str) -> Vec<pb::PutRecordsRequestEntry> {
    (0..n)
        .map(|i| pb::PutRecordsRequestEntry {
            partition_key: format!("{prefix}{i}"),
            data: format!("data-{i}").into_bytes().into(),
            ..Default::default()
        })
        .collect()
}

#[tokio::test]
async fn metrics_move_as_records_are_put_and_read_and_a_deleted_stream_takes_its_series() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "s", 2).await;
    let before = Scrape::of(server.http_addr).await;
    let labels = [("stream", "s")];
    assert_eq!(before.count("shardlog_records_put_total", &labels), 2);
    assert_eq!(before.sum("shardlog_records_put_total", &labels), 0.0);

    let put = put_records(&mut c, "s", entries(30, "k")).await;
    assert_eq!(put.failed_record_count, 0);
    let data_bytes: usize = (0..30).map(|i| format!("data-{i}").len()).sum();
    let after_put = Scrape::of(server.http_addr).await;
    assert_eq!(after_put.sum("shardlog_records_put_total", &labels), 30.0);
    assert!(after_put.sum("shardlog_put_bytes_total", &labels) > data_bytes as f64);
    assert_eq!(
        calls(&after_put, "StreamLog/PutRecords", "OK")
            - calls(&before, "StreamLog/PutRecords", "OK"),
        1.0
    );
    // fsync `always`: the put was synced before its answer.
    assert!(
        after_put
            .get("shardlog_fsync_duration_seconds_count", &[])
            .unwrap()
            >= 1.0
    );
    assert!(after_put.get("shardlog_sync_bytes_count", &[]).unwrap() >= 1.0);
    let took = after_put
        .get(
            "shardlog_request_duration_seconds_count",
            &[("api", "grpc"), ("operation", "StreamLog/PutRecords")],
        )
        .unwrap();
    assert!(took >= 1.0);

    let read = read_stream(&mut c, "s").await;
    assert_eq!(read.len(), 30);
    let after_read = Scrape::of(server.http_addr).await;
    assert_eq!(after_read.sum("shardlog_records_read_total", &labels), 30.0);
    assert_eq!(
        after_read.sum("shardlog_read_bytes_total", &labels),
        data_bytes as f64
    );

    // An error is counted under its code.
    let missing = c
        .describe_stream(pb::DescribeStreamRequest {
            stream_name: "nope".into(),
        })
        .await;
    assert!(missing.is_err());
    let after_error = Scrape::of(server.http_addr).await;
    assert_eq!(
        calls(&after_error, "StreamLog/DescribeStream", "NotFound")
            - calls(&after_read, "StreamLog/DescribeStream", "NotFound"),
        1.0
    );

    // A put repeating a deduplication id is a hit.
    let with_id = |id: &str| pb::PutRecordsRequestEntry {
        partition_key: "k".into(),
        data: b"once".to_vec().into(),
        deduplication_id: id.into(),
        ..Default::default()
    };
    put_records(&mut c, "s", vec![with_id("a")]).await;
    let dup = put_records(&mut c, "s", vec![with_id("a")]).await;
    assert!(dup.records[0].duplicate);
    let after_dup = Scrape::of(server.http_addr).await;
    assert_eq!(
        after_dup.get("shardlog_dedup_hits_total", &labels),
        Some(1.0)
    );
    assert!(after_dup.get("shardlog_dedup_ids", &labels).unwrap() >= 1.0);
    assert!(after_dup.get("process_resident_memory_bytes", &[]).unwrap() > 0.0);
    assert!(after_dup.get("process_open_fds", &[]).unwrap() > 0.0);

    common::delete_stream(&mut c, "s").await;
    let after_delete = Scrape::of(server.http_addr).await;
    assert!(
        !after_delete.mentions("stream", "s"),
        "a deleted stream keeps series"
    );
}

#[tokio::test]
async fn subscriptions_queue_groups_lease_groups_and_rules_show_what_they_hold() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    let mut g = server.groups().await;
    make_stream(&mut c, "s", 1).await;
    make_stream(&mut c, "t", 1).await;
    let shard = "shardId-000000000000";

    let mut sub = common::subscribe(&mut c, "s", shard, pb::ShardIteratorType::Latest, None)
        .await
        .unwrap();
    let open = [("stream", "s"), ("shard", shard)];
    assert_eq!(
        Scrape::of(server.http_addr)
            .await
            .get("shardlog_subscriptions", &open),
        Some(1.0)
    );

    g.create_group(pb::CreateGroupRequest {
        stream_name: "s".into(),
        group_name: "work".into(),
        r#type: pb::GroupType::QueueStandard as i32,
        ..Default::default()
    })
    .await
    .unwrap();
    g.join_group(pb::JoinGroupRequest {
        stream_name: "s".into(),
        group_name: "leases".into(),
        member_id: "m".into(),
        session_timeout_ms: 0,
    })
    .await
    .unwrap();
    let mut router = pb::router_client::RouterClient::new(server.channel().await);
    router
        .put_rule(pb::PutRuleRequest {
            rule_name: "copy".into(),
            source_stream: "s".into(),
            targets: vec![pb::RuleTarget {
                stream_name: "t".into(),
            }],
            state: pb::RuleState::Enabled as i32,
            start_position: pb::ShardIteratorType::TrimHorizon as i32,
            ..Default::default()
        })
        .await
        .unwrap();

    put_records(&mut c, "s", entries(5, "k")).await;
    common::receive_records(&mut sub, 5).await;
    let mut q = pb::queues_client::QueuesClient::new(server.channel().await);
    let got = q
        .receive_messages(pb::ReceiveMessagesRequest {
            stream_name: "s".into(),
            group_name: "work".into(),
            max_messages: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .messages;
    assert_eq!(got.len(), 2);

    // The rule routes in a task of its own: wait until the scrape shows it done.
    let deadline = Deadline::after(Duration::from_secs(30));
    let scrape = loop {
        let s = Scrape::of(server.http_addr).await;
        if s.get("shardlog_rule_records_routed_total", &[("rule", "copy")]) == Some(5.0) {
            break s;
        }
        assert!(deadline.tick().await, "the rule did not route 5 records");
    };
    assert_eq!(
        scrape.get("shardlog_rule_records_matched_total", &[("rule", "copy")]),
        Some(5.0)
    );
    let queue = [("stream", "s"), ("group", "work")];
    assert_eq!(
        scrape.get("shardlog_queue_messages_visible", &queue),
        Some(3.0)
    );
    assert_eq!(
        scrape.get("shardlog_queue_messages_in_flight", &queue),
        Some(2.0)
    );
    assert_eq!(
        scrape.get("shardlog_queue_messages_received_total", &queue),
        Some(2.0)
    );
    assert_eq!(
        scrape.get(
            "shardlog_group_lag_records",
            &[("stream", "s"), ("group", "leases"), ("shard", shard)]
        ),
        Some(5.0)
    );
    assert!(scrape.sum("shardlog_records_read_total", &[("stream", "s")]) >= 5.0);

    // A subscription that ends (its shard closed by a split) no longer counts.
    c.split_shard(pb::SplitShardRequest {
        stream_name: "s".into(),
        shard_to_split: shard.into(),
        new_starting_hash_key: (1u128 << 127).to_string(),
    })
    .await
    .unwrap();
    while let Some(event) = sub.message().await.unwrap() {
        if !event.child_shards.is_empty() {
            break;
        }
    }
    let deadline = Deadline::after(Duration::from_secs(30));
    while Scrape::of(server.http_addr)
        .await
        .get("shardlog_subscriptions", &open)
        != Some(0.0)
    {
        assert!(deadline.tick().await, "the ended subscription still counts");
    }
}

#[tokio::test]
async fn health_answers_while_recovering_and_ready_only_once_the_broker_is_open() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let admin = shardlog::http::Admin::starting();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let incoming = shardlog::tls::Incoming::new(
        listener,
        None,
        shardlog::tls::Listener::Http,
        shardlog::tls::DEFAULT_MAX_CONNECTIONS,
    )
    .unwrap();
    let serving = tokio::spawn(shardlog::http::serve(
        incoming,
        admin.clone(),
        shardlog::http::DEFAULT_HEADER_READ_TIMEOUT,
        async {
            let _ = stopped.await;
        },
    ));
    assert_eq!(get(addr, "/healthz").await.0, StatusCode::OK);
    assert_eq!(
        get(addr, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(addr, "/metrics").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let dir = tempfile::tempdir().unwrap();
    let broker = shardlog::Broker::open(
        shardlog::BrokerConfig::new(dir.path()),
        shardlog::fsio::RealIo::shared(),
    )
    .await
    .unwrap();
    admin.open(broker.clone());
    assert_eq!(get(addr, "/readyz").await.0, StatusCode::OK);
    let (status, content_type, text) = get(addr, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(get(addr, "/nowhere").await.0, StatusCode::NOT_FOUND);

    // A stopping server is alive and not ready.
    broker.begin_shutdown();
    assert_eq!(
        get(addr, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get(addr, "/healthz").await.0, StatusCode::OK);
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn reflection_lists_the_services_in_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};
    let server = TestServer::start().await;
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut old =
        v1alpha::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    let mut answers = old
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().expect("an answer");
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("not a service list: {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "shardlog.v1.StreamLog"),
        "{names:?}"
    );

    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut new = v1::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    let answer = new
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .expect("an answer");
    assert!(matches!(
        answer.message_response,
        Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(_))
    ));
}
