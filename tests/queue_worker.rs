//! `QueueWorker` against a real server: every message handled once and in order per message
//! group, a failed message handed again and then deleted, and a slow handler's message kept
//! invisible by extensions until it is deleted.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shardlog::client::{Client, QueueWorker, QueueWorkerConfig, QueueWorkerStats};
use shardlog::proto::v1 as pb;
use tokio::sync::{oneshot, Notify};
use tokio::time::{interval, timeout, Instant};

use common::{TestServer, EVENT_TIMEOUT};

/// Longest a worker test may run before it fails instead of hanging.
const WORKER_TIMEOUT: Duration = Duration::from_secs(60);

async fn connect(server: &TestServer) -> Client {
    Client::connect(server.url()).await.expect("connect")
}

/// Creates a FIFO queue group; `visibility_timeout_seconds` of `None` takes the server's.
async fn create_fifo(client: &Client, stream: &str, group: &str, visibility: Option<u32>) {
    client
        .create_group(pb::CreateGroupRequest {
            stream_name: stream.into(),
            group_name: group.into(),
            r#type: pb::GroupType::QueueFifo as i32,
            visibility_timeout_seconds: visibility,
            ..Default::default()
        })
        .await
        .expect("create the queue group");
}

/// Puts `(message group, data)` pairs in order, in one request.
async fn put(client: &Client, stream: &str, messages: &[(String, String)]) {
    let entries = messages
        .iter()
        .map(|(group, data)| pb::PutRecordsRequestEntry {
            partition_key: group.clone(),
            message_group_id: group.clone(),
            data: data.clone().into_bytes().into(),
            ..Default::default()
        })
        .collect();
    let put = client.put_records(stream, entries).await.expect("put");
    assert_eq!(put.failed_record_count, 0);
}

fn data_of(message: &pb::Message) -> String {
    let record = message
        .record
        .as_ref()
        .expect("a message carries its record");
    String::from_utf8_lossy(&record.data).into_owned()
}

fn group_of(message: &pb::Message) -> String {
    let record = message
        .record
        .as_ref()
        .expect("a message carries its record");
    record.message_group_id.clone()
}

async fn queue_status(client: &Client, stream: &str, group: &str) -> pb::QueueStatus {
    client
        .describe_group(stream, group)
        .await
        .expect("describe")
        .queue
        .expect("a queue group has a queue status")
}

async fn run_worker<F, Fut>(
    worker: QueueWorker,
    handler: F,
    stop: impl std::future::Future<Output = ()>,
) -> QueueWorkerStats
where
    F: Fn(pb::Message) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), std::io::Error>> + Send + 'static,
{
    timeout(WORKER_TIMEOUT, worker.run(handler, stop))
        .await
        .expect("the worker stops in time")
        .expect("the worker runs without error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_handled_once_and_in_order_within_its_message_group() {
    let server = TestServer::start().await;
    let client = connect(&server).await;
    client.create_stream("orders", 2).await.expect("stream");
    create_fifo(&client, "orders", "workers", None).await;
    let messages: Vec<(String, String)> = (0..20)
        .map(|i| (format!("g{}", i % 4), format!("m{i:02}")))
        .collect();
    put(&client, "orders", &messages).await;

    let total = messages.len();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let all_handled = Arc::new(Notify::new());
    let handler = {
        let seen = Arc::clone(&seen);
        let all_handled = Arc::clone(&all_handled);
        move |message: pb::Message| {
            let seen = Arc::clone(&seen);
            let all_handled = Arc::clone(&all_handled);
            async move {
                let mut seen = seen.lock().expect("no handler panicked");
                seen.push((group_of(&message), data_of(&message)));
                if seen.len() == total {
                    all_handled.notify_one();
                }
                Ok(())
            }
        }
    };
    let config = QueueWorkerConfig {
        concurrency: 4,
        wait: Duration::from_secs(1),
        ..QueueWorkerConfig::new("orders", "workers")
    };
    let stop = {
        let all_handled = Arc::clone(&all_handled);
        async move { all_handled.notified().await }
    };
    let stats = run_worker(QueueWorker::new(client.clone(), config), handler, stop).await;

    assert_eq!(stats.handled, 20, "{stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert_eq!(stats.not_deleted, 0, "{stats:?}");
    let seen = seen.lock().expect("no handler panicked").clone();
    let mut per_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (group, data) in seen {
        per_group.entry(group).or_default().push(data);
    }
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (group, data) in messages {
        expected.entry(group).or_default().push(data);
    }
    assert_eq!(per_group, expected);
    let status = queue_status(&client, "orders", "workers").await;
    assert_eq!(status.messages_deleted, 20, "{status:?}");
    assert_eq!(status.messages_received, 20, "{status:?}");
    assert_eq!(status.messages_in_flight, 0, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_handler_failed_comes_back_and_is_deleted_once_handled() {
    let server = TestServer::start().await;
    let client = connect(&server).await;
    client.create_stream("orders", 1).await.expect("stream");
    create_fifo(&client, "orders", "workers", None).await;
    let messages: Vec<(String, String)> = ["a", "b", "c"]
        .iter()
        .map(|d| ("g".to_owned(), (*d).to_owned()))
        .collect();
    put(&client, "orders", &messages).await;

    // Every call: (data, receive count, succeeded).
    let calls = Arc::new(Mutex::new(Vec::new()));
    let all_handled = Arc::new(Notify::new());
    let handler = {
        let calls = Arc::clone(&calls);
        let all_handled = Arc::clone(&all_handled);
        move |message: pb::Message| {
            let calls = Arc::clone(&calls);
            let all_handled = Arc::clone(&all_handled);
            async move {
                let data = data_of(&message);
                let fails = data == "b" && message.receive_count == 1;
                let mut calls = calls.lock().expect("no handler panicked");
                calls.push((data, message.receive_count, !fails));
                if fails {
                    return Err(std::io::Error::other("b fails the first time"));
                }
                if calls.iter().filter(|(_, _, ok)| *ok).count() == 3 {
                    all_handled.notify_one();
                }
                Ok(())
            }
        }
    };
    let config = QueueWorkerConfig {
        wait: Duration::from_secs(1),
        ..QueueWorkerConfig::new("orders", "workers")
    };
    let stop = {
        let all_handled = Arc::clone(&all_handled);
        async move { all_handled.notified().await }
    };
    let stats = run_worker(QueueWorker::new(client.clone(), config), handler, stop).await;

    let calls = calls.lock().expect("no handler panicked").clone();
    let b: Vec<(u32, bool)> = calls
        .iter()
        .filter(|(data, _, _)| data == "b")
        .map(|(_, count, ok)| (*count, *ok))
        .collect();
    assert_eq!(b, [(1, false), (2, true)], "{calls:?}");
    let succeeded: Vec<&str> = calls
        .iter()
        .filter(|(_, _, ok)| *ok)
        .map(|(data, _, _)| data.as_str())
        .collect();
    assert_eq!(succeeded, ["a", "b", "c"], "{calls:?}");
    assert_eq!(stats.handled, 3, "{stats:?}");
    assert_eq!(stats.failed, 1, "{stats:?}");
    // c came in the same receive as b and went back unhandled when b failed.
    assert_eq!(stats.released, 1, "{stats:?}");
    let status = queue_status(&client, "orders", "workers").await;
    assert_eq!(status.messages_deleted, 3, "{status:?}");
    assert_eq!(status.messages_in_flight, 0, "{status:?}");
    assert_eq!(status.messages_visible, 0, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_keeps_its_message_invisible_past_the_visibility_timeout() {
    let server = TestServer::start().await;
    let client = connect(&server).await;
    client.create_stream("orders", 1).await.expect("stream");
    create_fifo(&client, "orders", "workers", Some(1)).await;
    put(&client, "orders", &[("g".to_owned(), "slow".to_owned())]).await;

    let started = Arc::new(Notify::new());
    let (finish, finished) = oneshot::channel::<()>();
    let finished = Arc::new(Mutex::new(Some(finished)));
    let handler = {
        let started = Arc::clone(&started);
        move |_message: pb::Message| {
            let started = Arc::clone(&started);
            let finished = finished.lock().expect("no handler panicked").take();
            async move {
                started.notify_one();
                if let Some(finished) = finished {
                    // The test lets the handler end once the visibility timeout has long passed.
                    let _ = finished.await;
                }
                Ok::<(), std::io::Error>(())
            }
        }
    };
    let config = QueueWorkerConfig {
        wait: Duration::from_secs(1),
        extend_every: Some(Duration::from_millis(500)),
        extend_by: Duration::from_secs(1),
        ..QueueWorkerConfig::new("orders", "workers")
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = tokio::spawn(
        QueueWorker::new(client.clone(), config).run(handler, async move {
            let _ = stopped.await;
        }),
    );
    timeout(EVENT_TIMEOUT, started.notified())
        .await
        .expect("the handler starts");

    // For 2.5 visibility timeouts, another consumer finds nothing: the worker keeps extending.
    let until = Instant::now() + Duration::from_millis(2500);
    let mut every = interval(Duration::from_millis(100));
    while Instant::now() < until {
        every.tick().await;
        let stolen = client
            .receive_messages("orders", "workers", 10, None, Duration::ZERO)
            .await
            .expect("receive");
        assert!(stolen.is_empty(), "received while in hand: {stolen:?}");
    }
    // Stop first, then let the handler end: the worker finishes it and deletes the message.
    stop.send(()).expect("the worker is running");
    finish.send(()).expect("the handler is waiting");
    let stats = timeout(WORKER_TIMEOUT, worker)
        .await
        .expect("the worker stops in time")
        .expect("the worker task did not panic")
        .expect("the worker runs without error");

    assert_eq!(stats.handled, 1, "{stats:?}");
    assert_eq!(stats.not_deleted, 0, "{stats:?}");
    let status = queue_status(&client, "orders", "workers").await;
    assert_eq!(status.messages_received, 1, "{status:?}");
    assert_eq!(status.messages_deleted, 1, "{status:?}");
    assert_eq!(status.messages_in_flight, 0, "{status:?}");
}
