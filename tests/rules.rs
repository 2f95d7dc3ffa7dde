//! Rules over real gRPC: fan-out to several targets keeping each message group's order, only
//! matching records routed, exactly once across restarts and `kill -9` mid-routing, cycles
//! refused, a missing target reported and caught up when it is back.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use shardlog::proto::v1 as pb;
use shardlog::proto::v1::router_client::RouterClient;
use tonic::transport::Channel;
use tonic::Code;

type Router = RouterClient<Channel>;

/// How long a test waits for a rule to catch up before it fails.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(30);

fn rule_request(name: &str, source: &str, targets: &[&str]) -> pb::PutRuleRequest {
    pb::PutRuleRequest {
        rule_name: name.into(),
        source_stream: source.into(),
        targets: targets
            .iter()
            .map(|t| pb::RuleTarget {
                stream_name: (*t).into(),
            })
            .collect(),
        start_position: pb::ShardIteratorType::TrimHorizon as i32,
        ..Default::default()
    }
}

async fn put_rule(router: &mut Router, request: pb::PutRuleRequest) -> pb::Rule {
    let name = request.rule_name.clone();
    router
        .put_rule(request)
        .await
        .unwrap_or_else(|s| panic!("put rule {name}: {s}"))
        .into_inner()
        .rule
        .expect("the rule")
}

async fn describe(router: &mut Router, name: &str) -> pb::Rule {
    router
        .describe_rule(pb::DescribeRuleRequest {
            rule_name: name.into(),
        })
        .await
        .unwrap_or_else(|s| panic!("describe rule {name}: {s}"))
        .into_inner()
        .rule
        .expect("the rule")
}

/// Record `i`: data `i`, partition key `k<i>`, group `g<i % 10>`, attribute `kind`.
fn entry(i: usize, kind: &str) -> pb::PutRecordsRequestEntry {
    let mut attributes = HashMap::new();
    attributes.insert(
        "kind".to_owned(),
        pb::AttributeValue {
            data_type: "String".into(),
            string_value: kind.into(),
            ..Default::default()
        },
    );
    pb::PutRecordsRequestEntry {
        partition_key: format!("k{i}"),
        data: Bytes::from(i.to_string()),
        message_group_id: format!("g{}", i % 10),
        attributes,
        ..Default::default()
    }
}

fn number(r: &pb::Record) -> usize {
    String::from_utf8_lossy(&r.data)
        .parse()
        .expect("records hold their number")
}

/// Polls the stream until it holds `count` records (a rule routing is a server-side task with
/// no event a client can wait on), bounded by [`ROUTE_TIMEOUT`]; returns them.
async fn wait_for_records(c: &mut common::Streams, stream: &str, count: usize) -> Vec<pb::Record> {
    let deadline = common::Deadline::after(ROUTE_TIMEOUT);
    loop {
        let records: Vec<pb::Record> = common::read_stream(c, stream)
            .await
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        if records.len() >= count {
            return records;
        }
        assert!(
            deadline.tick().await,
            "{stream} holds {} of {count} records after {ROUTE_TIMEOUT:?}",
            records.len()
        );
    }
}

/// Each number of `expected` exactly once, and within each message group in increasing order
/// (the order they were put in).
#[track_caller]
fn assert_exactly_once_in_group_order(
    stream: &str,
    got: &[(String, pb::Record)],
    expected: &[usize],
) {
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for (_, r) in got {
        *counts.entry(number(r)).or_default() += 1;
    }
    let twice: Vec<_> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(i, _)| *i)
        .collect();
    let lost: Vec<_> = expected
        .iter()
        .filter(|i| !counts.contains_key(i))
        .collect();
    let extra: Vec<_> = counts.keys().filter(|i| !expected.contains(i)).collect();
    assert!(
        twice.is_empty() && lost.is_empty() && extra.is_empty(),
        "{stream}: {} stored twice (first {:?}), {} lost (first {:?}), {} unexpected (first {:?})",
        twice.len(),
        &twice[..twice.len().min(5)],
        lost.len(),
        &lost[..lost.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)]
    );
    let mut by_group: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (shard, r) in got {
        by_group
            .entry((shard.clone(), r.message_group_id.clone()))
            .or_default()
            .push(number(r));
    }
    let groups: std::collections::BTreeSet<&String> = by_group.keys().map(|(_, g)| g).collect();
    assert_eq!(
        groups.len(),
        by_group.len(),
        "{stream}: a group spans two shards"
    );
    for ((_, group), numbers) in by_group {
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "{stream}: group {group} out of order: {numbers:?}"
        );
    }
}

#[tokio::test]
async fn a_rule_fans_matching_records_out_to_three_targets_in_group_order_with_keys_and_attributes()
{
    let server = common::TestServer::start().await;
    let mut c = server.streams().await;
    let mut router = RouterClient::new(server.channel().await);
    common::make_stream(&mut c, "orders", 2).await;
    for t in ["t1", "t2", "t3"] {
        common::make_stream(&mut c, t, 3).await;
    }
    // Records put before the rule: a TRIM_HORIZON rule routes them too.
    let before: Vec<_> = (0..100)
        .map(|i| entry(i, if i % 4 == 3 { "noise" } else { "order" }))
        .collect();
    common::put_records(&mut c, "orders", before).await;
    let mut request = rule_request("fan", "orders", &["t1", "t2", "t3"]);
    request.filter = Some(pb::Filter {
        pattern: r#"{"kind":["order"]}"#.into(),
        scope: pb::FilterScope::Attributes as i32,
    });
    let created = put_rule(&mut router, request).await;
    assert_eq!(created.status, pb::RuleStatus::Running as i32);
    let after: Vec<_> = (100..200)
        .map(|i| entry(i, if i % 4 == 3 { "noise" } else { "order" }))
        .collect();
    common::put_records(&mut c, "orders", after).await;
    let expected: Vec<usize> = (0..200).filter(|i| i % 4 != 3).collect();
    for t in ["t1", "t2", "t3"] {
        wait_for_records(&mut c, t, expected.len()).await;
    }
    let rule = describe(&mut router, "fan").await;
    assert_eq!(rule.matched_records, 150);
    assert_eq!(rule.routed_records, 450);
    assert!(rule.shards.iter().all(|s| s.lag_records == 0), "{rule:?}");
    for t in ["t1", "t2", "t3"] {
        let got = common::read_stream(&mut c, t).await;
        assert_exactly_once_in_group_order(t, &got, &expected);
        for (_, r) in &got {
            let i = number(r);
            assert_eq!(r.partition_key, format!("k{i}"));
            assert_eq!(r.message_group_id, format!("g{}", i % 10));
            assert_eq!(r.attributes["kind"].string_value, "order");
            assert!(
                r.deduplication_id.starts_with("rule/fan/"),
                "{}",
                r.deduplication_id
            );
        }
    }
}

/// A server with streams `a`, `b`, `c` of one shard and rules `ab` (a → b) and `bc` (b → c).
async fn chain_a_b_c() -> (common::TestServer, common::Streams, Router) {
    let server = common::TestServer::start().await;
    let mut c = server.streams().await;
    let mut router = RouterClient::new(server.channel().await);
    for s in ["a", "b", "c"] {
        common::make_stream(&mut c, s, 1).await;
    }
    put_rule(&mut router, rule_request("ab", "a", &["b"])).await;
    put_rule(&mut router, rule_request("bc", "b", &["c"])).await;
    (server, c, router)
}

#[tokio::test]
async fn rules_that_would_close_a_cycle_or_are_malformed_are_refused() {
    let (_server, mut c, mut router) = chain_a_b_c().await;
    let cycle = router.put_rule(rule_request("ca", "c", &["a"])).await;
    common::assert_rejected(cycle, Code::FailedPrecondition, "cycle");
    let own = router.put_rule(rule_request("aa", "a", &["a"])).await;
    common::assert_rejected(own, Code::FailedPrecondition, "its own source");
    let missing = router.put_rule(rule_request("ax", "a", &["nope"])).await;
    common::assert_rejected(missing, Code::NotFound, "nope");
    let none = router.put_rule(rule_request("a0", "a", &[])).await;
    common::assert_rejected(none, Code::InvalidArgument, "targets");
    let six = router
        .put_rule(rule_request("a6", "b", &["c", "c", "c", "c", "c", "c"]))
        .await;
    common::assert_rejected(six, Code::InvalidArgument, "targets");
    let twice = router.put_rule(rule_request("a2", "a", &["c", "c"])).await;
    common::assert_rejected(twice, Code::InvalidArgument, "twice");
    let bad_name = router
        .put_rule(rule_request("no spaces", "a", &["c"]))
        .await;
    common::assert_rejected(bad_name, Code::InvalidArgument, "rule_name");
    let mut bad_pattern = rule_request("ac", "a", &["c"]);
    bad_pattern.filter = Some(pb::Filter {
        pattern: r#"{"price":[{"numeric":[">",5,">",6]}]}"#.into(),
        scope: pb::FilterScope::Data as i32,
    });
    let refused = router.put_rule(bad_pattern).await;
    common::assert_rejected(refused, Code::InvalidArgument, "$.price");
    let unknown = router
        .describe_rule(pb::DescribeRuleRequest {
            rule_name: "ghost".into(),
        })
        .await;
    common::assert_rejected(unknown, Code::NotFound, "ghost");
    // A producer may not pass its records off as routed ones.
    let forged = c
        .put_record(pb::PutRecordRequest {
            stream_name: "b".into(),
            partition_key: "k".into(),
            data: Bytes::from_static(b"x"),
            deduplication_id: "rule/ab/1/0/0".into(),
            ..Default::default()
        })
        .await;
    common::assert_rejected(forged, Code::InvalidArgument, "reserved");
    let listed = router
        .list_rules(pb::ListRulesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .rules;
    let names: Vec<_> = listed.iter().map(|r| r.rule_name.as_str()).collect();
    assert_eq!(names, ["ab", "bc"]);
}

#[tokio::test]
async fn a_missing_target_is_reported_and_caught_up_once_it_is_back() {
    let server = common::TestServer::start().await;
    let mut c = server.streams().await;
    let mut router = RouterClient::new(server.channel().await);
    common::make_stream(&mut c, "src", 1).await;
    common::make_stream(&mut c, "dst", 1).await;
    put_rule(&mut router, rule_request("r", "src", &["dst"])).await;
    common::delete_stream(&mut c, "dst").await;
    common::put_records(&mut c, "src", (0..5).map(|i| entry(i, "x")).collect()).await;
    let deadline = common::Deadline::after(ROUTE_TIMEOUT);
    loop {
        let rule = describe(&mut router, "r").await;
        if rule.status == pb::RuleStatus::Error as i32 {
            assert!(rule.last_error.contains("dst"), "{}", rule.last_error);
            break;
        }
        assert!(
            deadline.tick().await,
            "the rule never reported the missing target: {rule:?}"
        );
    }
    common::make_stream(&mut c, "dst", 1).await;
    let got = wait_for_records(&mut c, "dst", 5).await;
    assert_eq!(got.iter().map(number).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    let deadline = common::Deadline::after(ROUTE_TIMEOUT);
    while describe(&mut router, "r").await.status != pb::RuleStatus::Running as i32 {
        assert!(deadline.tick().await, "the rule stayed in error");
    }
    // Deleting the source deletes the rule.
    common::delete_stream(&mut c, "src").await;
    let gone = router
        .describe_rule(pb::DescribeRuleRequest {
            rule_name: "r".into(),
        })
        .await;
    common::assert_rejected(gone, Code::NotFound, "r");
}

#[tokio::test]
async fn a_rule_resumes_after_a_restart_without_routing_anything_twice() {
    let server = common::TestServer::start().await;
    let mut c = server.streams().await;
    let mut router = RouterClient::new(server.channel().await);
    common::make_stream(&mut c, "src", 2).await;
    common::make_stream(&mut c, "dst", 2).await;
    put_rule(&mut router, rule_request("r", "src", &["dst"])).await;
    common::put_records(&mut c, "src", (0..50).map(|i| entry(i, "x")).collect()).await;
    wait_for_records(&mut c, "dst", 50).await;
    let server = server.restart().await;
    let mut c = server.streams().await;
    common::put_records(&mut c, "src", (50..100).map(|i| entry(i, "x")).collect()).await;
    wait_for_records(&mut c, "dst", 100).await;
    let got = common::read_stream(&mut c, "dst").await;
    assert_exactly_once_in_group_order("dst", &got, &(0..100).collect::<Vec<_>>());
}

#[tokio::test]
async fn routing_is_exactly_once_across_kill_9_mid_routing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let mut server = common::ChildServer::spawn(&data, &log).await;
    let mut c = server.streams().await;
    let mut router = RouterClient::new(server.channel().await);
    common::make_stream(&mut c, "src", 2).await;
    common::make_stream(&mut c, "b", 2).await;
    common::make_stream(&mut c, "c", 1).await;
    put_rule(&mut router, rule_request("r", "src", &["b", "c"])).await;
    let mut acked = Vec::new();
    for round in 0..3 {
        for batch in 0..4 {
            let from = (round * 4 + batch) * 500;
            let out = common::put_records(
                &mut c,
                "src",
                (from..from + 500).map(|i| entry(i, "x")).collect(),
            )
            .await;
            assert_eq!(out.failed_record_count, 0);
            acked.extend(from..from + 500);
        }
        // The rule is still routing what was just acknowledged.
        server.kill_9();
        server = common::ChildServer::spawn(&data, &log).await;
        c = server.streams().await;
    }
    for t in ["b", "c"] {
        wait_for_records(&mut c, t, acked.len()).await;
        let got = common::read_stream(&mut c, t).await;
        assert_exactly_once_in_group_order(t, &got, &acked);
    }
}

#[tokio::test]
async fn rules_chain_through_streams_that_other_rules_read() {
    let (_server, mut c, _router) = chain_a_b_c().await;
    common::put_records(&mut c, "a", (0..20).map(|i| entry(i, "x")).collect()).await;
    wait_for_records(&mut c, "c", 20).await;
    let got = common::read_stream(&mut c, "c").await;
    assert_exactly_once_in_group_order("c", &got, &(0..20).collect::<Vec<_>>());
    assert!(got
        .iter()
        .all(|(_, r)| r.deduplication_id.starts_with("rule/bc/")));
}
