//! Moving dead letters back over real gRPC: each message returns to the stream it came from (or
//! goes to another stream) once, as a new message, by a durable task that a restart resumes.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shardlog::client::Client;
use shardlog::proto::v1 as pb;
use tonic::Code;

use common::TestServer;

const NO_WAIT: Duration = Duration::ZERO;

async fn client(url: String) -> Client {
    Client::connect(url).await.expect("connect")
}

fn data(m: &pb::Message) -> String {
    String::from_utf8(m.record.as_ref().unwrap().data.to_vec()).unwrap()
}

/// A stream `stream` with a standard queue group `q` that dead-letters into `dead` after one
/// receive, holding `n` messages named `{stream}-{i}`, all of them already dead-lettered.
async fn dead_lettered(c: &Client, stream: &str, n: usize) -> Vec<String> {
    c.create_stream(stream, 2).await.unwrap();
    c.create_group(pb::CreateGroupRequest {
        stream_name: stream.into(),
        group_name: "q".into(),
        r#type: pb::GroupType::QueueStandard as i32,
        max_receive_count: 1,
        dead_letter_stream: "dead".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let names: Vec<String> = (0..n).map(|i| format!("{stream}-{i}")).collect();
    for chunk in names.chunks(500) {
        let entries = chunk
            .iter()
            .map(|d| pb::PutRecordsRequestEntry {
                data: d.clone().into_bytes().into(),
                partition_key: d.clone(),
                attributes: [(
                    "kind".to_owned(),
                    pb::AttributeValue {
                        data_type: "String".into(),
                        string_value: "order".into(),
                        ..Default::default()
                    },
                )]
                .into(),
                ..Default::default()
            })
            .collect();
        c.put_records(stream, entries).await.unwrap();
    }
    // Received once and failed: given back at once.
    let mut received = 0;
    while received < n {
        let got = c
            .receive_messages(stream, "q", 1_000, None, NO_WAIT)
            .await
            .unwrap();
        assert!(!got.is_empty());
        received += got.len();
        for m in &got {
            c.change_message_visibility(stream, "q", &m.receipt_handle, Duration::ZERO)
                .await
                .unwrap();
        }
    }
    // The next receives take them past their limit: into the dead-letter stream.
    for _ in 0..n.div_ceil(1_000) {
        let none = c
            .receive_messages(stream, "q", 1_000, None, NO_WAIT)
            .await
            .unwrap();
        assert!(none.is_empty());
    }
    // The group reports them once they are there.
    let deadline = Instant::now() + common::EVENT_TIMEOUT;
    loop {
        let described = c.describe_group(stream, "q").await.unwrap();
        if described.queue.unwrap().messages_dead_lettered == n as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the messages never reached the dead letters"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    names
}

async fn wait_for_task(c: &Client, source: &str, task: &str) -> pb::MoveTask {
    let deadline = Instant::now() + common::EVENT_TIMEOUT;
    loop {
        let t = c
            .list_move_tasks(source)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.task_id == task)
            .expect("the task is listed");
        if t.status != pb::MoveTaskStatus::Running as i32 {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "the task is still running: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Receives and deletes everything the group holds now; returns data → receive count.
async fn drain(c: &Client, stream: &str) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    loop {
        let got = c
            .receive_messages(stream, "q", 1_000, None, Duration::from_millis(300))
            .await
            .unwrap();
        if got.is_empty() {
            return out;
        }
        for m in &got {
            let attrs = &m.record.as_ref().unwrap().attributes;
            assert_eq!(attrs["kind"].string_value, "order", "attributes kept");
            assert!(
                attrs.keys().all(|k| !k.starts_with("shardlog.")),
                "dead-letter attributes dropped: {attrs:?}"
            );
            assert!(
                out.insert(data(m), m.receive_count).is_none(),
                "{} twice",
                data(m)
            );
        }
        c.delete_messages(
            stream,
            "q",
            got.iter().map(|m| m.receipt_handle.clone()).collect(),
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn moved_dead_letters_return_to_their_own_sources_once_with_a_fresh_receive_count() {
    let server = TestServer::start().await;
    let c = client(server.url()).await;
    c.create_stream("dead", 1).await.unwrap();
    let a = dead_lettered(&c, "a", 30).await;
    let b = dead_lettered(&c, "b", 20).await;
    let task = c.move_messages("dead", None, 0).await.unwrap();
    let done = wait_for_task(&c, "dead", &task).await;
    assert_eq!(
        done.status,
        pb::MoveTaskStatus::Completed as i32,
        "{done:?}"
    );
    assert_eq!((done.messages_moved, done.messages_to_move), (50, 50));
    for (stream, names) in [("a", &a), ("b", &b)] {
        let got = drain(&c, stream).await;
        assert_eq!(got.keys().cloned().collect::<Vec<_>>(), {
            let mut n = names.clone();
            n.sort();
            n
        });
        assert!(
            got.values().all(|&count| count == 1),
            "fresh receive counts: {got:?}"
        );
    }
    // A second task starts where the first stopped: nothing is moved twice.
    let again = c.move_messages("dead", None, 0).await.unwrap();
    let second = wait_for_task(&c, "dead", &again).await;
    assert_eq!((second.messages_moved, second.messages_to_move), (0, 0));
    assert!(drain(&c, "a").await.is_empty());
    let tasks = c.list_move_tasks("dead").await.unwrap();
    assert_eq!(
        tasks.iter().map(|t| t.task_id.clone()).collect::<Vec<_>>(),
        [again, task]
    );
}

#[tokio::test]
async fn dead_letters_can_move_into_another_stream_at_a_bounded_rate() {
    let server = TestServer::start().await;
    let c = client(server.url()).await;
    c.create_stream("dead", 1).await.unwrap();
    c.create_stream("retry", 1).await.unwrap();
    dead_lettered(&c, "a", 10).await;
    let started = Instant::now();
    let task = c.move_messages("dead", Some("retry"), 20).await.unwrap();
    let done = wait_for_task(&c, "dead", &task).await;
    assert_eq!(done.status, pb::MoveTaskStatus::Completed as i32);
    assert_eq!(done.destination_stream, "retry");
    assert_eq!(done.max_messages_per_second, 20);
    // Ten messages at twenty per second take at least half a second.
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    let mut streams = server.streams().await;
    let moved = common::read_stream(&mut streams, "retry").await;
    assert_eq!(moved.len(), 10);
}

#[tokio::test]
async fn a_move_task_interrupted_by_a_restart_finishes_and_moves_each_message_once() {
    let server = TestServer::start().await;
    let c = client(server.url()).await;
    c.create_stream("dead", 1).await.unwrap();
    let names = dead_lettered(&c, "a", 1_200).await;
    // 1,200 messages at 1,000 per second: still running when the server stops.
    let task = c.move_messages("dead", None, 1_000).await.unwrap();
    let server = server.restart().await;
    let c = client(server.url()).await;
    let done = wait_for_task(&c, "dead", &task).await;
    assert_eq!(
        done.status,
        pb::MoveTaskStatus::Completed as i32,
        "{done:?}"
    );
    assert_eq!(done.messages_moved, 1_200);
    let got = drain(&c, "a").await;
    assert_eq!(got.len(), names.len());
}

#[tokio::test]
async fn bad_move_requests_are_refused_naming_the_field() {
    let server = TestServer::start().await;
    let c = client(server.url()).await;
    c.create_stream("dead", 1).await.unwrap();
    c.create_stream("plain", 1).await.unwrap();
    dead_lettered(&c, "a", 5).await;
    let refused = |e: shardlog::client::ClientError, code: Code, field: &str| {
        assert_eq!(e.code(), Some(code), "{e}");
        assert!(e.to_string().contains(field), "{e} does not name {field}");
    };
    refused(
        c.move_messages("plain", None, 0).await.unwrap_err(),
        Code::InvalidArgument,
        "source_stream",
    );
    refused(
        c.move_messages("missing", None, 0).await.unwrap_err(),
        Code::NotFound,
        "missing",
    );
    refused(
        c.move_messages("dead", Some("missing"), 0)
            .await
            .unwrap_err(),
        Code::NotFound,
        "missing",
    );
    refused(
        c.move_messages("dead", Some("dead"), 0).await.unwrap_err(),
        Code::InvalidArgument,
        "destination_stream",
    );
    refused(
        c.move_messages("dead", None, 10_001).await.unwrap_err(),
        Code::InvalidArgument,
        "max_messages_per_second",
    );
    refused(
        c.move_messages("bad name", None, 0).await.unwrap_err(),
        Code::InvalidArgument,
        "source_stream",
    );
    // One task per source at a time.
    let slow = c.move_messages("dead", None, 1).await.unwrap();
    refused(
        c.move_messages("dead", None, 0).await.unwrap_err(),
        Code::FailedPrecondition,
        &slow,
    );
}

#[tokio::test]
async fn a_move_task_cut_by_kill_9_resumes_and_moves_each_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let log = dir.path().join("server.log");
    let server = common::ChildServer::spawn(&data_dir, &log).await;
    let c = client(server.url()).await;
    c.create_stream("dead", 1).await.unwrap();
    let names = dead_lettered(&c, "a", 1_500).await;
    let task = c.move_messages("dead", None, 1_000).await.unwrap();
    // Killed once the task has moved some of its messages, not all.
    let deadline = Instant::now() + common::EVENT_TIMEOUT;
    loop {
        let t = c.list_move_tasks("dead").await.unwrap().remove(0);
        assert_eq!(t.status, pb::MoveTaskStatus::Running as i32, "{t:?}");
        if t.messages_moved > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the task never moved anything");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill_9();
    let server = common::ChildServer::spawn(&data_dir, &log).await;
    let c = client(server.url()).await;
    let done = wait_for_task(&c, "dead", &task).await;
    assert_eq!(
        done.status,
        pb::MoveTaskStatus::Completed as i32,
        "{done:?}"
    );
    assert_eq!(done.messages_moved, 1_500);
    let got = drain(&c, "a").await;
    assert_eq!(got.len(), names.len(), "each message back once");
}
