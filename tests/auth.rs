//! Authentication and authorisation over real gRPC and HTTP: a request without a token or with
//! an unknown one is `UNAUTHENTICATED`; one the principal's grants do not cover is
//! `PERMISSION_DENIED` naming the stream and the action, and changes nothing; an allowed one
//! passes. Listing shows only readable streams; `/metrics` takes a token; a reload changes the
//! grants in force.

mod common;

use std::path::Path;

use common::http::get;
use common::TestServer;
use hyper::StatusCode;
use shardlog::auth::Auth;
use shardlog::client::{Client, ClientOptions};
use shardlog::proto::v1 as pb;
use shardlog::BrokerConfig;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request};

const ADMIN: &str = "admin-token";
const ADMIN_NAME: &str = "admin";
const WRITER: &str = "writer-token";
const READER: &str = "reader-token";

use common::auth::{principal, sha, ALL};

/// An auth file: an admin of everything, a writer and a reader of `orders*`.
fn auth_file(dir: &Path, reader_actions: &str) -> std::path::PathBuf {
    let path = dir.join("auth.toml");
    let text = format!(
        r#"
[[principal]]
name = "admin"
tokens_sha256 = ["{}"]
[[principal.allow]]
streams = "*"
actions = ["read", "write", "admin"]

[[principal]]
name = "writer"
tokens_sha256 = ["{}"]
[[principal.allow]]
streams = "orders*"
actions = ["write"]

[[principal]]
name = "reader"
tokens_sha256 = ["{}"]
[[principal.allow]]
streams = "orders*"
actions = [{reader_actions}]
"#,
        sha(ADMIN),
        sha(WRITER),
        sha(READER)
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn server() -> (TestServer, Auth, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let auth = Auth::from_file(&auth_file(tmp.path(), r#""read""#)).unwrap();
    let config = BrokerConfig::new(tmp.path().join("data"));
    let server = TestServer::start_with_auth(config, auth.clone()).await;
    (server, auth, tmp)
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    r
}

fn create(name: &str) -> pb::CreateStreamRequest {
    pb::CreateStreamRequest {
        stream_name: name.into(),
        shard_count: 1,
        ..Default::default()
    }
}

fn put(stream: &str) -> pb::PutRecordRequest {
    pb::PutRecordRequest {
        stream_name: stream.into(),
        partition_key: "k".into(),
        data: b"x".to_vec().into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_call_needs_a_known_token_and_grants_decide_per_stream_and_action() {
    let (server, _auth, _tmp) = server().await;
    let mut c = server.streams().await;

    // No token, a wrong one, another scheme: unauthenticated, nothing created.
    let none = c.create_stream(create("orders")).await;
    common::assert_rejected(none, Code::Unauthenticated, "credentials");
    let wrong = c.create_stream(with_token(create("orders"), "guess")).await;
    common::assert_rejected(wrong, Code::Unauthenticated, "not known");
    let mut basic = Request::new(pb::ListStreamsRequest {});
    basic
        .metadata_mut()
        .insert("authorization", MetadataValue::from_static("Basic YTpi"));
    common::assert_rejected(c.list_streams(basic).await, Code::Unauthenticated, "bearer");

    // The admin may do anything.
    c.create_stream(with_token(create("orders"), ADMIN))
        .await
        .unwrap();
    c.create_stream(with_token(create("billing"), ADMIN))
        .await
        .unwrap();

    // The writer writes orders, not billing; it may neither read nor administer.
    c.put_record(with_token(put("orders"), WRITER))
        .await
        .unwrap();
    let denied = c.put_record(with_token(put("billing"), WRITER)).await;
    common::assert_rejected(
        denied,
        Code::PermissionDenied,
        "may not write stream billing",
    );
    let iterator = pb::GetShardIteratorRequest {
        stream_name: "orders".into(),
        shard_id: "shardId-000000000000".into(),
        shard_iterator_type: pb::ShardIteratorType::TrimHorizon as i32,
        ..Default::default()
    };
    let denied = c
        .get_shard_iterator(with_token(iterator.clone(), WRITER))
        .await;
    common::assert_rejected(denied, Code::PermissionDenied, "may not read stream orders");
    let denied = c
        .create_stream(with_token(create("orders-2"), WRITER))
        .await;
    common::assert_rejected(
        denied,
        Code::PermissionDenied,
        "may not admin stream orders-2",
    );

    // The reader reads orders, sees only it, and cannot use an iterator of billing.
    let it = c
        .get_shard_iterator(with_token(iterator.clone(), READER))
        .await
        .unwrap()
        .into_inner()
        .shard_iterator;
    let read = c
        .get_records(with_token(
            pb::GetRecordsRequest {
                shard_iterator: it,
                limit: 0,
                as_frames: false,
            },
            READER,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!read.next_shard_iterator.is_empty());
    let listed = c
        .list_streams(with_token(pb::ListStreamsRequest {}, READER))
        .await
        .unwrap()
        .into_inner()
        .stream_names;
    assert_eq!(listed, ["orders"]);
    let billing_iterator = c
        .get_shard_iterator(with_token(
            pb::GetShardIteratorRequest {
                stream_name: "billing".into(),
                ..iterator.clone()
            },
            ADMIN,
        ))
        .await
        .unwrap()
        .into_inner()
        .shard_iterator;
    let denied = c
        .get_records(with_token(
            pb::GetRecordsRequest {
                shard_iterator: billing_iterator,
                limit: 0,
                as_frames: false,
            },
            READER,
        ))
        .await;
    common::assert_rejected(
        denied,
        Code::PermissionDenied,
        "may not read stream billing",
    );

    // Nothing refused was stored: billing holds nothing, orders-2 does not exist.
    let all = c
        .list_streams(with_token(pb::ListStreamsRequest {}, ADMIN))
        .await
        .unwrap()
        .into_inner()
        .stream_names;
    assert_eq!(all, ["billing", "orders"]);

    // Groups and rules: administering them takes admin; consuming takes read.
    let mut g = shardlog::proto::v1::consumer_groups_client::ConsumerGroupsClient::new(
        server.channel().await,
    );
    let group = pb::CreateGroupRequest {
        stream_name: "orders".into(),
        group_name: "work".into(),
        r#type: pb::GroupType::QueueStandard as i32,
        ..Default::default()
    };
    let denied = g.create_group(with_token(group.clone(), READER)).await;
    common::assert_rejected(denied, Code::PermissionDenied, "admin");
    g.create_group(with_token(group, ADMIN)).await.unwrap();
    let mut q = pb::queues_client::QueuesClient::new(server.channel().await);
    let received = q
        .receive_messages(with_token(
            pb::ReceiveMessagesRequest {
                stream_name: "orders".into(),
                group_name: "work".into(),
                max_messages: 10,
                ..Default::default()
            },
            READER,
        ))
        .await
        .unwrap()
        .into_inner()
        .messages;
    assert_eq!(received.len(), 1);
    let mut router = pb::router_client::RouterClient::new(server.channel().await);
    let rule = pb::PutRuleRequest {
        rule_name: "copy".into(),
        source_stream: "orders".into(),
        targets: vec![pb::RuleTarget {
            stream_name: "billing".into(),
        }],
        ..Default::default()
    };
    let denied = router.put_rule(with_token(rule, READER)).await;
    common::assert_rejected(denied, Code::PermissionDenied, "admin");
}

#[tokio::test]
async fn metrics_take_a_token_health_does_not_and_a_reload_changes_the_grants() {
    let (server, auth, tmp) = server().await;
    assert_eq!(get(server.http_addr, "/healthz").await.0, StatusCode::OK);
    assert_eq!(get(server.http_addr, "/readyz").await.0, StatusCode::OK);
    let (status, _, body) = get(server.http_addr, "/metrics").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // The Rust client sends its token with every call.
    let options = ClientOptions {
        token: Some(ADMIN.to_owned()),
        ..ClientOptions::default()
    };
    let admin = Client::connect_with(server.url(), options).await.unwrap();
    admin.create_stream("orders", 1).await.unwrap();
    let anonymous = Client::connect(server.url()).await.unwrap();
    let refused = anonymous.create_stream("orders-9", 1).await.unwrap_err();
    assert_eq!(refused.code(), Some(Code::Unauthenticated));

    // The reader may read orders; after a reload that takes read away, it may not.
    let reader = Client::connect_with(
        server.url(),
        ClientOptions {
            token: Some(READER.to_owned()),
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap();
    reader.list_shards("orders").await.unwrap();
    auth_file(tmp.path(), "");
    auth.reload().unwrap();
    let refused = reader.list_shards("orders").await.unwrap_err();
    assert_eq!(refused.code(), Some(Code::PermissionDenied));
    // A broken file leaves the grants in force.
    std::fs::write(tmp.path().join("auth.toml"), "not toml [").unwrap();
    assert!(auth.reload().is_err());
    admin.list_shards("orders").await.unwrap();
}

#[tokio::test]
async fn a_principal_over_its_request_or_byte_rate_is_refused_and_nothing_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("auth.toml");
    std::fs::write(
        &path,
        format!(
            r#"
open_metrics = true

[[principal]]
name = "chatty"
tokens_sha256 = ["{}"]
requests_per_second = 5
[[principal.allow]]
streams = "*"
actions = ["read"]

[[principal]]
name = "narrow"
tokens_sha256 = ["{}"]
bytes_per_second = 100
[[principal.allow]]
streams = "*"
actions = ["read", "write", "admin"]
"#,
            sha("chatty"),
            sha("narrow")
        ),
    )
    .unwrap();
    let auth = Auth::from_file(&path).unwrap();
    let server =
        TestServer::start_with_auth(BrokerConfig::new(tmp.path().join("data")), auth).await;
    let mut c = server.streams().await;

    let mut refused = 0;
    for _ in 0..10 {
        if let Err(s) = c
            .list_streams(with_token(pb::ListStreamsRequest {}, "chatty"))
            .await
        {
            assert_eq!(s.code(), Code::ResourceExhausted, "{s}");
            assert!(
                s.message().contains("requests per second"),
                "{}",
                s.message()
            );
            refused += 1;
        }
    }
    assert!(
        refused >= 4,
        "{refused} of 10 requests refused at 5 per second"
    );

    c.create_stream(with_token(create("s"), "narrow"))
        .await
        .unwrap();
    let sixty = |tag: &str| pb::PutRecordRequest {
        stream_name: "s".into(),
        partition_key: tag.into(),
        data: vec![b'x'; 59].into(),
        ..Default::default()
    };
    c.put_record(with_token(sixty("a"), "narrow"))
        .await
        .unwrap();
    let over = c.put_record(with_token(sixty("b"), "narrow")).await;
    common::assert_rejected(over, Code::ResourceExhausted, "bytes put per second");
    let narrow = Client::connect_with(
        server.url(),
        ClientOptions {
            token: Some("narrow".to_owned()),
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap();
    let it = narrow
        .get_shard_iterator(
            "s",
            "shardId-000000000000",
            shardlog::client::Position::TrimHorizon,
        )
        .await
        .unwrap();
    let stored = narrow.get_records(&it, 100).await.unwrap();
    assert_eq!(stored.records.len(), 1, "the refused put stored nothing");

    let scrape = common::http::Scrape::of(server.http_addr).await;
    for reason in ["principal_requests", "principal_bytes"] {
        assert!(
            scrape
                .get(
                    "shardlog_throttled_requests_total",
                    &[("api", "grpc"), ("reason", reason)],
                )
                .unwrap_or(0.0)
                >= 1.0,
            "{reason}"
        );
    }
}

#[tokio::test]
async fn a_rule_routes_with_its_makers_rights_as_they_stand_and_stops_when_they_are_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("auth.toml");
    let file = |router_actions: &[&str]| {
        principal(ADMIN_NAME, ADMIN, &[ALL])
            + &principal(
                "router",
                "router",
                &[("src", &["read", "admin"]), ("dst", router_actions)],
            )
    };
    std::fs::write(&path, file(&["write"])).unwrap();
    let auth = Auth::from_file(&path).unwrap();
    let server =
        TestServer::start_with_auth(BrokerConfig::new(tmp.path().join("data")), auth.clone()).await;
    let mut c = server.streams().await;
    c.create_stream(with_token(create("src"), ADMIN))
        .await
        .unwrap();
    c.create_stream(with_token(create("dst"), ADMIN))
        .await
        .unwrap();
    let mut router = pb::router_client::RouterClient::new(server.channel().await);
    let rule = pb::PutRuleRequest {
        rule_name: "copy".into(),
        source_stream: "src".into(),
        targets: vec![pb::RuleTarget {
            stream_name: "dst".into(),
        }],
        start_position: pb::ShardIteratorType::TrimHorizon as i32,
        ..Default::default()
    };
    router.put_rule(with_token(rule, "router")).await.unwrap();

    let admin = Client::connect_with(
        server.url(),
        ClientOptions {
            token: Some(ADMIN.to_owned()),
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap();
    let count = |stream: &'static str| {
        let admin = admin.clone();
        async move {
            let it = admin
                .get_shard_iterator(
                    stream,
                    "shardId-000000000000",
                    shardlog::client::Position::TrimHorizon,
                )
                .await
                .unwrap();
            admin.get_records(&it, 100).await.unwrap().records.len()
        }
    };
    c.put_record(with_token(put("src"), ADMIN)).await.unwrap();
    let deadline = common::Deadline::after(std::time::Duration::from_secs(30));
    while count("dst").await < 1 {
        assert!(
            deadline.tick().await,
            "the rule did not route with its maker's rights"
        );
    }

    // The maker loses write on the target: the rule stops with the refusal, routing nothing.
    std::fs::write(&path, file(&[])).unwrap();
    auth.reload().unwrap();
    c.put_record(with_token(put("src"), ADMIN)).await.unwrap();
    let deadline = common::Deadline::after(std::time::Duration::from_secs(30));
    loop {
        let described = router
            .describe_rule(with_token(
                pb::DescribeRuleRequest {
                    rule_name: "copy".into(),
                },
                ADMIN,
            ))
            .await
            .unwrap()
            .into_inner()
            .rule
            .unwrap();
        if described
            .last_error
            .contains("principal router may not write stream dst")
        {
            break;
        }
        assert!(deadline.tick().await, "no refusal: {described:?}");
    }
    assert_eq!(count("dst").await, 1, "the refused rule routed");
}

#[tokio::test]
async fn dead_letters_move_with_the_group_makers_rights_as_they_stand() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("auth.toml");
    let file = |dead_actions: &[&str]| {
        principal(ADMIN_NAME, ADMIN, &[ALL])
            + &principal(
                "queuer",
                "queuer",
                &[("jobs", &["read", "admin"]), ("jobs-dead", dead_actions)],
            )
    };
    std::fs::write(&path, file(&["write"])).unwrap();
    let auth = Auth::from_file(&path).unwrap();
    let server =
        TestServer::start_with_auth(BrokerConfig::new(tmp.path().join("data")), auth.clone()).await;
    let as_ = |token: &str| {
        Client::connect_with(
            server.url(),
            ClientOptions {
                token: Some(token.to_owned()),
                ..ClientOptions::default()
            },
        )
    };
    let admin = as_(ADMIN).await.unwrap();
    let queuer = as_("queuer").await.unwrap();
    admin.create_stream("jobs", 1).await.unwrap();
    admin.create_stream("jobs-dead", 1).await.unwrap();
    queuer
        .create_group(pb::CreateGroupRequest {
            stream_name: "jobs".into(),
            group_name: "workers".into(),
            r#type: pb::GroupType::QueueStandard as i32,
            max_receive_count: 1,
            dead_letter_stream: "jobs-dead".into(),
            ..Default::default()
        })
        .await
        .expect("the maker may write the dead-letter stream");
    let status = || async {
        admin
            .describe_group("jobs", "workers")
            .await
            .unwrap()
            .queue
            .expect("a queue group")
    };
    let dead_count = || async {
        let it = admin
            .get_shard_iterator(
                "jobs-dead",
                "shardId-000000000000",
                shardlog::client::Position::TrimHorizon,
            )
            .await
            .unwrap();
        admin.get_records(&it, 100).await.unwrap().records.len()
    };
    // Receives the one message once and lets it go: the next receive finds it over its count.
    let fail_once = || async {
        let got = admin
            .receive_messages(
                "jobs",
                "workers",
                10,
                None,
                std::time::Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        admin
            .change_message_visibility(
                "jobs",
                "workers",
                &got[0].receipt_handle,
                Default::default(),
            )
            .await
            .unwrap();
        let again = admin
            .receive_messages("jobs", "workers", 10, None, Default::default())
            .await
            .unwrap();
        assert!(again.is_empty(), "received past its count: {again:?}");
    };

    admin.put_record("jobs", "k", "first").await.unwrap();
    fail_once().await;
    let deadline = common::Deadline::after(std::time::Duration::from_secs(30));
    while status().await.messages_dead_lettered < 1 {
        assert!(
            deadline.tick().await,
            "the first message was not dead-lettered"
        );
    }
    assert_eq!(dead_count().await, 1);
    assert_eq!(status().await.dead_letter_error, "");

    // The maker loses write on the dead-letter stream: the next message stays in the queue.
    std::fs::write(&path, file(&[])).unwrap();
    auth.reload().unwrap();
    admin.put_record("jobs", "k", "second").await.unwrap();
    fail_once().await;
    let deadline = common::Deadline::after(std::time::Duration::from_secs(30));
    loop {
        let s = status().await;
        if s.dead_letter_error
            .contains("principal queuer may not write stream jobs-dead")
        {
            assert_eq!(s.messages_dead_lettered, 1, "{s:?}");
            break;
        }
        assert!(deadline.tick().await, "no refusal: {s:?}");
    }
    assert_eq!(dead_count().await, 1, "moved without the maker's rights");

    // The rights come back: a later receive moves it, and the refusal is history.
    std::fs::write(&path, file(&["write"])).unwrap();
    auth.reload().unwrap();
    let deadline = common::Deadline::after(std::time::Duration::from_secs(30));
    loop {
        let got = admin
            .receive_messages("jobs", "workers", 10, None, Default::default())
            .await
            .unwrap();
        assert!(
            got.is_empty(),
            "a message past its count was handed out: {got:?}"
        );
        let s = status().await;
        if s.messages_dead_lettered == 2 {
            assert_eq!(s.dead_letter_error, "", "{s:?}");
            break;
        }
        assert!(deadline.tick().await, "not moved once allowed: {s:?}");
    }
    assert_eq!(dead_count().await, 2);
}
