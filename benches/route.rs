//! What routing costs per record: `MatcherSet::matches_into` over ~1 KiB JSON events against
//! 1, 100 and 10,000 exact/prefix patterns, against 100 numeric ranges, and against 100
//! attribute-scope policies. Throughput is in events; one core (the matcher is single-threaded
//! per call). The cost should stay nearly flat from 100 to 10,000 patterns: matching looks
//! each of the event's values up in the patterns' indexes rather than testing every pattern.
//!
//! Run: `cargo bench --bench route -- --warm-up-time 1 --measurement-time 3`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shardlog::route::{AttrValue, Filter, FilterScope, MatcherSet, PatternLimits};
use std::hint::black_box;

/// Distinct events cycled through per iteration.
const EVENTS: usize = 256;

/// An EventBridge-style event of about 1 KiB; `i` varies the source, state, id and price.
fn event(i: usize) -> String {
    let states = ["pending", "running", "stopping", "stopped"];
    let padding: String = (0..12)
        .map(|k| format!(r#""field-{k}":"value number {k} of event {i:06}","#))
        .collect();
    format!(
        r#"{{"version":"0","id":"6a7e8feb-b491-4cf7-a9f1-bf3703{i:06}","detail-type":"EC2 Instance State-change Notification","source":"svc-{src}","account":"123456789012","time":"2026-12-07T00:00:00Z","region":"us-east-1","resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-{i:08x}"],"detail":{{{padding}"instance-id":"i-{i:08x}","state":"{state}","price":{price}.25,"tags":[{{"key":"team","value":"t{team}"}},{{"key":"env","value":"prod"}}]}}}}"#,
        src = i % 150,
        state = states[i % 4],
        price = i % 97,
        team = i % 7,
    )
}

fn filter(pattern: String, scope: FilterScope) -> Filter {
    Filter { pattern, scope }
}

/// `n` exact/prefix patterns on a few fields, some of which the events match.
fn exact_prefix(n: usize) -> MatcherSet<usize> {
    let mut set = MatcherSet::new();
    for i in 0..n {
        let p = match i % 3 {
            0 => format!(r#"{{"source":["svc-{i}"],"detail":{{"state":["running"]}}}}"#),
            1 => format!(
                r#"{{"detail":{{"instance-id":[{{"prefix":"i-{:06x}"}}]}}}}"#,
                i
            ),
            _ => format!(r#"{{"detail-type":["Type {i}"],"region":[{{"prefix":"us-"}}]}}"#),
        };
        set.insert(i, &filter(p, FilterScope::Data), &PatternLimits::default())
            .expect("a valid pattern");
    }
    set
}

fn numeric(n: usize) -> MatcherSet<usize> {
    let mut set = MatcherSet::new();
    for i in 0..n {
        let p = format!(
            r#"{{"detail":{{"price":[{{"numeric":[">",{i},"<=",{}]}}]}}}}"#,
            i + 10
        );
        set.insert(i, &filter(p, FilterScope::Data), &PatternLimits::default())
            .expect("a valid pattern");
    }
    set
}

fn attribute_policies(n: usize) -> MatcherSet<usize> {
    let mut set = MatcherSet::new();
    for i in 0..n {
        let p = format!(
            r#"{{"source":["svc-{i}"],"price":[{{"numeric":[">=",{}]}}]}}"#,
            i % 50
        );
        set.insert(
            i,
            &filter(p, FilterScope::Attributes),
            &PatternLimits::default(),
        )
        .expect("a valid policy");
    }
    set
}

fn bench(c: &mut Criterion) {
    let events: Vec<String> = (0..EVENTS).map(event).collect();
    let mut group = c.benchmark_group("route");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for n in [1, 100, 10_000] {
        let set = exact_prefix(n);
        group.bench_with_input(BenchmarkId::new("exact_prefix", n), &set, |b, set| {
            let mut out = Vec::new();
            b.iter(|| {
                for e in &events {
                    out.clear();
                    set.matches_into(black_box(e.as_bytes()), &[], &mut out);
                }
                black_box(out.len())
            })
        });
    }
    let set = numeric(100);
    group.bench_with_input(BenchmarkId::new("numeric", 100), &set, |b, set| {
        let mut out = Vec::new();
        b.iter(|| {
            for e in &events {
                out.clear();
                set.matches_into(black_box(e.as_bytes()), &[], &mut out);
            }
            black_box(out.len())
        })
    });
    let attrs: Vec<(String, String)> = (0..EVENTS)
        .map(|i| (format!("svc-{}", i % 150), format!("{}.25", i % 97)))
        .collect();
    let set = attribute_policies(100);
    group.bench_with_input(BenchmarkId::new("attributes", 100), &set, |b, set| {
        let mut out = Vec::new();
        b.iter(|| {
            for (source, price) in &attrs {
                let a = [
                    ("source", AttrValue::String(source)),
                    ("price", AttrValue::Number(price)),
                    ("team", AttrValue::StringArray(r#"["a","b"]"#)),
                ];
                out.clear();
                set.matches_into(&[], black_box(&a), &mut out);
            }
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
