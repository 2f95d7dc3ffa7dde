//! Abuse of the listeners at the connection level: slow headers, broken framing, garbage
//! instead of HTTP/2, bodies and messages over the limits. Each ends in a clear error (a 4xx
//! answer, a gRPC status) or a closed connection within its named limit, and the server goes
//! on serving.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::TestServer;
use hyper::StatusCode;
use shardlog::broker::BrokerConfig;
use shardlog::fsio::RealIo;
use shardlog::kinesis::KinesisConfig;
use shardlog::proto::v1 as pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The header timeout the server is started with here, to keep the test short.
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a connection may stay open past its limit before the test calls it held.
const MARGIN: Duration = Duration::from_secs(10);

async fn server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let kinesis = KinesisConfig {
        header_read_timeout: HEADER_TIMEOUT,
        ..KinesisConfig::default()
    };
    let server =
        TestServer::start_full(BrokerConfig::new(dir.path()), RealIo::shared(), kinesis).await;
    (server, dir)
}

/// Sends `bytes` on a new connection, then reads until the server closes it; what it sent
/// back, or `None` when it kept the connection open past `within`.
async fn send_and_wait_for_close(
    addr: SocketAddr,
    bytes: &[u8],
    within: Duration,
) -> Option<Vec<u8>> {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| answer)
}

async fn still_serves(server: &TestServer) {
    assert_eq!(
        common::http::get(server.http_addr, "/healthz").await.0,
        StatusCode::OK
    );
    let listed =
        common::kinesis::json(server.kinesis_addr, "ListStreams", serde_json::json!({})).await;
    assert_eq!(listed.status, StatusCode::OK);
    let mut c = server.streams().await;
    c.list_streams(pb::ListStreamsRequest {}).await.unwrap();
}

#[tokio::test]
async fn slow_headers_are_cut_off_at_the_header_timeout_on_both_http_listeners() {
    let (server, _dir) = server().await;
    for addr in [server.kinesis_addr, server.http_addr] {
        let started = std::time::Instant::now();
        let closed = send_and_wait_for_close(
            addr,
            b"POST / HTTP/1.1\r\nHost: shardlog\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n",
            HEADER_TIMEOUT + MARGIN,
        )
        .await;
        assert!(
            closed.is_some(),
            "{addr}: a client that never finishes its headers is held open"
        );
        assert!(
            started.elapsed() >= HEADER_TIMEOUT,
            "{addr}: closed before the timeout"
        );
    }
    still_serves(&server).await;
}

#[tokio::test]
async fn broken_http_framing_is_a_bad_request_or_a_closed_connection() {
    let (server, _dir) = server().await;
    let cases: [&[u8]; 3] = [
        // A chunk size that is not hexadecimal.
        b"POST / HTTP/1.1\r\nHost: s\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\nContent-Type: application/x-amz-json-1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n",
        // A request line that is not HTTP.
        b"\x16\x03\x01\x00\xff garbage\r\n\r\n",
        // A content length that is not a number.
        b"POST / HTTP/1.1\r\nHost: s\r\nContent-Length: lots\r\n\r\n{}",
    ];
    for addr in [server.kinesis_addr, server.http_addr] {
        for case in cases {
            let answer = send_and_wait_for_close(addr, case, MARGIN)
                .await
                .unwrap_or_else(|| panic!("{addr}: {case:?} held the connection open"));
            let text = String::from_utf8_lossy(&answer);
            assert!(
                answer.is_empty() || text.starts_with("HTTP/1.1 4"),
                "{addr}: {case:?} was answered {text:?}"
            );
        }
    }
    still_serves(&server).await;
}

#[tokio::test]
async fn a_body_over_the_kinesis_limit_is_refused_with_413() {
    let (server, _dir) = server().await;
    let big = "x".repeat(shardlog::kinesis::DEFAULT_MAX_REQUEST_BYTES + 1);
    let answer = common::kinesis::json(
        server.kinesis_addr,
        "PutRecord",
        serde_json::json!({ "StreamName": "s", "PartitionKey": "k", "Data": big }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    still_serves(&server).await;
}

#[tokio::test]
async fn garbage_instead_of_http2_closes_the_grpc_connection_only() {
    let (server, _dir) = server().await;
    let mut junk = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // A frame header announcing a frame larger than any a server accepts, then noise.
    junk.extend_from_slice(&[0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]);
    junk.extend((0..4096u32).map(|i| (i * 7919 % 251) as u8));
    let closed = send_and_wait_for_close(server.addr, &junk, MARGIN).await;
    assert!(
        closed.is_some(),
        "the gRPC listener held a connection speaking garbage"
    );
    let not_http = send_and_wait_for_close(server.addr, b"GET / HTTP/1.1\r\n\r\n", MARGIN).await;
    assert!(
        not_http.is_some(),
        "the gRPC listener held an HTTP/1.1 connection"
    );
    still_serves(&server).await;
}

#[tokio::test]
async fn a_grpc_message_over_the_limit_is_refused_and_stores_nothing() {
    let (server, _dir) = server().await;
    let channel = server.channel().await;
    let mut c =
        pb::stream_log_client::StreamLogClient::new(channel).max_encoding_message_size(usize::MAX);
    common::make_stream(&mut c, "s", 1).await;
    let refused = c
        .put_records(pb::PutRecordsRequest {
            stream_name: "s".into(),
            records: vec![pb::PutRecordsRequestEntry {
                partition_key: "k".into(),
                data: bytes::Bytes::from(vec![0u8; shardlog::grpc::MAX_MESSAGE_BYTES + 1]),
                ..Default::default()
            }],
        })
        .await
        .expect_err("a message over the limit");
    assert_eq!(refused.code(), tonic::Code::OutOfRange, "{refused:?}");
    assert!(
        refused.message().contains("message length too large"),
        "{refused:?}"
    );
    assert!(common::read_shard(&mut c, "s", "shardId-000000000000")
        .await
        .is_empty());
    still_serves(&server).await;
}
