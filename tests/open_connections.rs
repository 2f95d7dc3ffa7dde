//! `shardlog_open_connections` counts the connections of each listener as they open and close.
//! Alone in its test binary: the count is the process's, and other servers would add theirs.

mod common;

use std::time::Duration;

use common::http::Scrape;
use common::{Deadline, TestServer};

async fn open(server: &TestServer, listener: &str) -> f64 {
    Scrape::of(server.http_addr)
        .await
        .get("shardlog_open_connections", &[("listener", listener)])
        .expect("the gauge is there")
}

async fn until(server: &TestServer, listener: &str, wanted: f64) {
    let deadline = Deadline::after(Duration::from_secs(10));
    loop {
        let now = open(server, listener).await;
        if now == wanted {
            return;
        }
        assert!(
            deadline.tick().await,
            "{listener}: {now} open, not {wanted}"
        );
    }
}

#[tokio::test]
async fn open_connections_are_counted_per_listener_as_they_come_and_go() {
    let server = TestServer::start().await;
    let grpc = open(&server, "grpc").await;
    let kinesis = open(&server, "kinesis").await;
    let mut channels = Vec::new();
    for _ in 0..3 {
        channels.push(server.channel().await);
    }
    let raw = tokio::net::TcpStream::connect(server.kinesis_addr)
        .await
        .unwrap();
    until(&server, "grpc", grpc + 3.0).await;
    until(&server, "kinesis", kinesis + 1.0).await;
    drop(channels);
    drop(raw);
    until(&server, "grpc", grpc).await;
    until(&server, "kinesis", kinesis).await;
    server.stop().await;
}
