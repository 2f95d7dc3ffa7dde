//! Server-wide limits, each a named setting: connections per listener, streams, and consumer
//! groups per stream. Past a limit the client gets `RESOURCE_EXHAUSTED` naming it, nothing
//! stored changes, and room made again is usable without a restart.

mod common;

use std::time::Duration;

use common::TestServer;
use shardlog::broker::BrokerConfig;
use shardlog::client::{Client, ClientError, Membership};
use shardlog::proto::v1 as pb;
use tonic::Code;

fn refused(result: Result<impl std::fmt::Debug, ClientError>, naming: &str) {
    let e = result.expect_err("past the limit");
    assert_eq!(e.code(), Some(Code::ResourceExhausted), "{e}");
    assert!(e.to_string().contains(naming), "{e} does not name {naming}");
}

/// gRPC connections the server holds open now (this test binary runs one server at a time).
fn open_grpc_connections() -> u64 {
    shardlog::tls::open_connections()
        .into_iter()
        .find(|(name, _)| *name == "grpc")
        .map(|(_, n)| n)
        .unwrap()
}

/// Waits until the server holds `open` gRPC connections (it learns of a close a moment later).
async fn until_open(open: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while open_grpc_connections() != open {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server still holds {} connections, not {open}",
            open_grpc_connections()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn past_each_limit_a_clear_error_and_room_made_again_is_usable() {
    const CONNECTIONS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(dir.path());
    config.max_streams = 2;
    config.stream_limits.max_groups = 2;
    let server = TestServer::start_with_connection_limit(config, CONNECTIONS).await;
    let url = server.url();

    // Connections: the limit's worth serve; the next is refused, naming the setting.
    let mut held = Vec::new();
    for _ in 0..CONNECTIONS {
        let client = Client::connect(url.clone()).await.unwrap();
        client.list_streams().await.unwrap();
        held.push(client);
    }
    until_open(CONNECTIONS as u64).await;
    let extra = Client::connect(url.clone()).await.unwrap();
    refused(extra.list_streams().await, "--max-connections");
    let counted = shardlog::tls::refused_connections()
        .into_iter()
        .find(|(name, _)| *name == "grpc")
        .map(|(_, n)| n);
    assert!(counted >= Some(1), "refusals are counted: {counted:?}");
    refused(extra.create_stream("never", 1).await, "--max-connections");
    drop(extra);
    let client = held.pop().unwrap();
    // The held connections still serve.
    for c in &held {
        c.list_streams().await.unwrap();
    }
    drop(client);
    until_open(CONNECTIONS as u64 - 1).await;
    let client = Client::connect(url.clone()).await.unwrap();
    client.list_streams().await.unwrap();
    assert!(
        client.list_streams().await.unwrap().is_empty(),
        "a refused call stored nothing"
    );

    // Streams: two, then the third is refused until one is deleted.
    client.create_stream("a", 1).await.unwrap();
    client.create_stream("b", 1).await.unwrap();
    refused(client.create_stream("c", 1).await, "--max-streams");
    assert_eq!(client.list_streams().await.unwrap().len(), 2);
    client.delete_stream("b").await.unwrap();
    client.create_stream("c", 1).await.unwrap();

    // Groups of a stream: lease groups made by a first join and queue groups made by
    // CreateGroup count together.
    let member = |group: &str| Membership {
        stream: "a".to_owned(),
        group: group.to_owned(),
        member_id: "m".to_owned(),
    };
    client.join_group(&member("g1"), None).await.unwrap();
    let queue = |group: &str| pb::CreateGroupRequest {
        stream_name: "a".to_owned(),
        group_name: group.to_owned(),
        r#type: pb::GroupType::QueueStandard as i32,
        ..Default::default()
    };
    client.create_group(queue("q1")).await.unwrap();
    refused(client.join_group(&member("g2"), None).await, "2 groups");
    refused(client.create_group(queue("q2")).await, "2 groups");
    // A member joining a group that exists is not a new group.
    client.join_group(&member("g1"), None).await.unwrap();
    // Another stream has its own room.
    client
        .join_group(
            &Membership {
                stream: "c".to_owned(),
                group: "g2".to_owned(),
                member_id: "m".to_owned(),
            },
            None,
        )
        .await
        .unwrap();
    client.delete_group("a", "q1").await.unwrap();
    client.join_group(&member("g2"), None).await.unwrap();
    assert_eq!(client.list_groups("a").await.unwrap(), ["g1", "g2"]);
}
