//! Queue groups over real gRPC: single messages with visibility timeouts, FIFO message groups
//! across many workers, stale receipt handles, dead letters, long polling, durability across
//! `kill -9`, and bad input.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardlog::client::{Client, Membership};
use shardlog::proto::v1 as pb;
use tonic::Code;

use common::TestServer;

const NO_WAIT: Duration = Duration::ZERO;

async fn client(url: String) -> Client {
    Client::connect(url).await.expect("connect")
}

fn queue(stream: &str, group: &str, t: pb::GroupType) -> pb::CreateGroupRequest {
    pb::CreateGroupRequest {
        stream_name: stream.into(),
        group_name: group.into(),
        r#type: t as i32,
        ..Default::default()
    }
}

fn fifo(stream: &str, group: &str) -> pb::CreateGroupRequest {
    queue(stream, group, pb::GroupType::QueueFifo)
}

/// Puts `(message group, data)` pairs in order, in batches.
async fn put(c: &Client, stream: &str, messages: &[(String, String)]) {
    for chunk in messages.chunks(500) {
        let entries = chunk
            .iter()
            .map(|(g, d)| pb::PutRecordsRequestEntry {
                data: d.clone().into_bytes().into(),
                partition_key: g.clone(),
                message_group_id: g.clone(),
                ..Default::default()
            })
            .collect();
        let out = c.put_records(stream, entries).await.expect("put");
        assert_eq!(out.failed_record_count, 0);
    }
}

fn data(m: &pb::Message) -> String {
    String::from_utf8(m.record.as_ref().unwrap().data.to_vec()).unwrap()
}

fn code(e: &shardlog::client::ClientError) -> Option<Code> {
    e.code()
}

async fn delete_all(c: &Client, stream: &str, group: &str, ms: &[pb::Message]) {
    let results = c
        .delete_messages(
            stream,
            group,
            ms.iter().map(|m| m.receipt_handle.clone()).collect(),
        )
        .await
        .expect("delete");
    for r in results {
        assert_eq!(r.error_code, "", "{}", r.error_message);
    }
}

async fn status(c: &Client, stream: &str, group: &str) -> pb::QueueStatus {
    c.describe_group(stream, group)
        .await
        .expect("describe")
        .queue
        .expect("a queue group reports its queue")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifo_order_holds_with_fifty_workers_and_a_thousand_groups_on_two_shards() {
    const GROUPS: usize = 1_000;
    const PER_GROUP: usize = 5;
    const WORKERS: usize = 50;
    let server = TestServer::start().await;
    let c = client(server.url()).await;
    c.create_stream("orders", 2).await.unwrap();
    // Messages of a group interleave with the others: group g's k-th is "g/k".
    let messages: Vec<(String, String)> = (0..PER_GROUP)
        .flat_map(|k| (0..GROUPS).map(move |g| (format!("g{g}"), format!("g{g}/{k}"))))
        .collect();
    put(&c, "orders", &messages).await;
    c.create_group(fifo("orders", "work")).await.unwrap();

    // Per message group: who holds one of its messages now, and what was received, in order.
    let holders: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let received: Arc<Mutex<BTreeMap<String, Vec<usize>>>> = Arc::default();
    let busy_workers: Arc<Mutex<HashSet<usize>>> = Arc::default();
    let total = GROUPS * PER_GROUP;
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let c = c.clone();
        let (holders, received, busy, done) = (
            Arc::clone(&holders),
            Arc::clone(&received),
            Arc::clone(&busy_workers),
            Arc::clone(&done),
        );
        tasks.push(tokio::spawn(async move {
            while done.load(std::sync::atomic::Ordering::SeqCst) < total {
                let ms = c
                    .receive_messages("orders", "work", 10, None, Duration::from_millis(200))
                    .await
                    .expect("receive");
                if ms.is_empty() {
                    continue;
                }
                busy.lock().unwrap().insert(w);
                {
                    let mut h = holders.lock().unwrap();
                    let mut r = received.lock().unwrap();
                    for m in &ms {
                        assert_eq!(m.receive_count, 1, "nothing expires in this test");
                        let d = data(m);
                        let (g, k) = d.split_once('/').unwrap();
                        // No message of a group is handed out while another worker holds one.
                        if let Some(other) = h.insert(g.to_owned(), w) {
                            assert_eq!(
                                other, w,
                                "group {g} handed to worker {w} while {other} holds it"
                            );
                        }
                        r.entry(g.to_owned()).or_default().push(k.parse().unwrap());
                    }
                }
                // Hold the groups a while, letting the other workers receive meanwhile: a
                // group handed to two workers at once shows up above.
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                // Let go of the groups before the delete that unblocks them.
                {
                    let mut h = holders.lock().unwrap();
                    for m in &ms {
                        let d = data(m);
                        h.remove(d.split_once('/').unwrap().0);
                    }
                }
                delete_all(&c, "orders", "work", &ms).await;
                done.fetch_add(ms.len(), std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("the workers finish")
            .expect("a worker failed");
    }
    {
        let received = received.lock().unwrap();
        assert_eq!(received.len(), GROUPS);
        for (g, ks) in received.iter() {
            assert_eq!(ks, &(0..PER_GROUP).collect::<Vec<_>>(), "group {g}");
        }
    }
    let busy = busy_workers.lock().unwrap().len();
    assert!(
        busy >= WORKERS / 2,
        "only {busy} of {WORKERS} workers got messages"
    );
    let s = status(&c, "orders", "work").await;
    assert_eq!(s.messages_deleted, total as u64);
    assert_eq!(s.messages_visible + s.messages_in_flight, 0);
}

#[tokio::test]
async fn a_message_not_deleted_in_time_comes_back_with_a_new_handle_and_the_old_one_expires() {
    let server = TestServer::start().await;
    let c = client(server.url()).await;
    c.create_stream("s", 1).await.unwrap();
    put(&c, "s", &[("a".into(), "m".into())]).await;
    let mut req = queue("s", "q", pb::GroupType::QueueStandard);
    req.visibility_timeout_seconds = Some(1);
    c.create_group(req).await.unwrap();
    let first = c
        .receive_messages("s", "q", 10, None, NO_WAIT)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].receive_count, 1);
    assert!(c
        .receive_messages("s", "q", 10, None, NO_WAIT)
        .await
        .unwrap()
        .is_empty());
    // Long polling answers when the visibility runs out.
    let again = c
        .receive_messages("s", "q", 10, None, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(data(&again[0]), "m");
    assert_eq!(again[0].receive_count, 2);
    assert_ne!(again[0].receipt_handle, first[0].receipt_handle);
    let stale = c
        .delete_messages("s", "q", vec![first[0].receipt_handle.clone()])
        .await
        .unwrap();
    assert_eq!(stale[0].error_code, "RECEIPT_HANDLE_EXPIRED");
    let stale_visibility = c
        .change_message_visibility("s", "q", &first[0].receipt_handle, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(code(&stale_visibility), Some(Code::FailedPrecondition));
    delete_all(&c, "s", "q", &again).await;
    // Deleting again with the same handle succeeds: the message is gone either way.
    delete_all(&c, "s", "q", &again).await;
    let s = status(&c, "s", "q").await;
    assert_eq!((s.messages_received, s.messages_deleted), (2, 1));
}

#[tokio::test]
async fn an_expired_handle_deletes_in_a_standard_queue_but_not_in_a_fifo_queue() {
    let server = TestServer::start().await;
    let c = client(server.url()).await;
    c.create_stream("s", 1).await.unwrap();
    put(&c, "s", &[("a".into(), "m".into())]).await;
    for (group, t, expected) in [
        ("std", pb::GroupType::QueueStandard, ""),
        ("fifo", pb::GroupType::QueueFifo, "RECEIPT_HANDLE_EXPIRED"),
    ] {
        c.create_group(queue("s", group, t)).await.unwrap();
        let got = c
            .receive_messages("s", group, 1, Some(Duration::from_secs(1)), NO_WAIT)
            .await
            .unwrap();
        // The visibility runs out; nobody receives the message again before the delete.
        wait_until_visible_again(&c, "s", group).await;
        let out = c
            .delete_messages("s", group, vec![got[0].receipt_handle.clone()])
            .await
            .unwrap();
        assert_eq!(out[0].error_code, expected, "{group}");
    }
}

/// Waits (bounded) until the group reports nothing in flight: the visibility of what it handed
/// out ran out.
async fn wait_until_visible_again(c: &Client, stream: &str, group: &str) {
    let deadline = Instant::now() + common::EVENT_TIMEOUT;
    while status(c, stream, group).await.messages_in_flight > 0 {
        assert!(Instant::now() < deadline, "the visibility never ran out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn visibility_zero_makes_a_message_visible_at_once_and_twelve_hours_is_the_limit() {
    let server = TestServer::start().await;
    let c = client(server.url()).await;
    c.create_stream("s", 1).await.unwrap();
    put(
        &c,
        "s",
        &[("a".into(), "m1".into()), ("a".into(), "m2".into())],
    )
    .await;
    c.create_group(fifo("s", "q")).await.unwrap();
    let got = c
        .receive_messages("s", "q", 1, None, NO_WAIT)
        .await
        .unwrap();
    assert_eq!(data(&got[0]), "m1");
    let too_long = c
        .change_message_visibility(
            "s",
            "q",
            &got[0].receipt_handle,
            Duration::from_secs(43_200),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&too_long), Some(Code::InvalidArgument));
    assert!(
        too_long.to_string().contains("visibility_timeout_seconds"),
        "{too_long}"
    );
    // The group is blocked behind m1 until it is given back.
    assert!(c
        .receive_messages("s", "q", 10, None, NO_WAIT)
        .await
        .unwrap()
        .is_empty());
    c.change_message_visibility("s", "q", &got[0].receipt_handle, Duration::ZERO)
        .await
        .unwrap();
    let again = c
        .receive_messages("s", "q", 10, None, NO_WAIT)
        .await
        .unwrap();
    let datas: Vec<String> = again.iter().map(data).collect();
    assert_eq!(datas, ["m1", "m2"]);
    assert_eq!(again[0].receive_count, 2);
    assert_eq!(again[1].receive_count, 1);
}

#[tokio::test]
async fn a_poison_message_goes_to_the_dead_letter_stream_after_max_receive_count_and_its_group_proceeds(
) {
    let server = TestServer::start().await;
    let c = client(server.url()).await;
    // One shard: the oldest ready group comes first, so a receive of one takes the poison.
    c.create_stream("s", 1).await.unwrap();
    c.create_stream("dead", 1).await.unwrap();
    put(
        &c,
        "s",
        &[
            ("g".into(), "poison".into()),
            ("g".into(), "next".into()),
            ("h".into(), "other".into()),
        ],
    )
    .await;
    let mut req = fifo("s", "q");
    req.max_receive_count = 2;
    req.dead_letter_stream = "dead".into();
    c.create_group(req).await.unwrap();
    for attempt in 1..=2 {
        let got = c
            .receive_messages("s", "q", 1, None, NO_WAIT)
            .await
            .unwrap();
        assert_eq!(got.iter().map(data).collect::<Vec<_>>(), ["poison"]);
        assert_eq!(got[0].receive_count, attempt);
        // The group is blocked behind its head meanwhile; the other group is not.
        let other = c
            .receive_messages("s", "q", 10, None, NO_WAIT)
            .await
            .unwrap();
        assert!(
            other.iter().all(|m| data(m) != "next"),
            "next waits behind poison"
        );
        c.change_message_visibility("s", "q", &other[0].receipt_handle, Duration::ZERO)
            .await
            .unwrap();
        // The worker fails the poison and gives it back.
        c.change_message_visibility("s", "q", &got[0].receipt_handle, Duration::ZERO)
            .await
            .unwrap();
    }
    // The third receive would exceed the limit: the message moves, and the group moves on.
    let rest = c
        .receive_messages("s", "q", 1, None, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(rest.iter().map(data).collect::<Vec<_>>(), ["next"]);
    assert_eq!(rest[0].receive_count, 1);
    let mut streams = server.streams().await;
    let dead = common::read_stream(&mut streams, "dead").await;
    assert_eq!(dead.len(), 1, "stored once");
    let record = &dead[0].1;
    assert_eq!(record.data.as_ref(), b"poison");
    assert_eq!(record.message_group_id, "g");
    let attr = |name: &str| {
        record
            .attributes
            .get(name)
            .unwrap_or_else(|| panic!("attribute {name}"))
            .string_value
            .clone()
    };
    assert_eq!(attr("shardlog.source.stream"), "s");
    assert_eq!(attr("shardlog.source.group"), "q");
    assert_eq!(attr("shardlog.receive.count"), "2");
    assert!(attr("shardlog.source.shard").starts_with("shardId-"));
    let s = status(&c, "s", "q").await;
    assert_eq!(s.messages_dead_lettered, 1);
    assert_eq!(s.max_receive_count, 2);
    assert_eq!(s.dead_letter_stream, "dead");
}

#[tokio::test]
async fn long_polling_answers_soon_after_a_put_not_at_the_end_of_the_wait() {
    let server = TestServer::start().await;
    let c = client(server.url()).await;
    c.create_stream("s", 2).await.unwrap();
    c.create_group(fifo("s", "q")).await.unwrap();
    let waiting = {
        let c = c.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let got = c
                .receive_messages("s", "q", 10, None, Duration::from_secs(20))
                .await
                .unwrap();
            (got, started.elapsed())
        })
    };
    // The receive is parked on the server when the group reports nothing in flight and the
    // poll has not answered; a put then wakes it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "an empty queue answers only at the end of the wait"
    );
    let put_at = Instant::now();
    put(&c, "s", &[("k".into(), "hello".into())]).await;
    let (got, _) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the poll answers")
        .unwrap();
    assert_eq!(got.iter().map(data).collect::<Vec<_>>(), ["hello"]);
    let latency = put_at.elapsed();
    assert!(
        latency < Duration::from_secs(2),
        "answered {latency:?} after the put"
    );
    // An empty wait answers empty, not with an error.
    let empty = c
        .receive_messages("s", "q", 10, None, Duration::from_millis(50))
        .await
        .unwrap();
    assert!(empty.is_empty());
}

#[tokio::test]
async fn a_filtered_queue_group_receives_only_matching_records() {
    let server = TestServer::start().await;
    let c = client(server.url()).await;
    c.create_stream("s", 1).await.unwrap();
    let mut req = queue("s", "big", pb::GroupType::QueueStandard);
    req.filter = Some(pb::Filter {
        pattern: r#"{"size":["big"]}"#.into(),
        scope: pb::FilterScope::Data as i32,
    });
    c.create_group(req).await.unwrap();
    put(
        &c,
        "s",
        &[
            ("a".into(), r#"{"size":"big","n":1}"#.into()),
            ("a".into(), r#"{"size":"small","n":2}"#.into()),
            ("a".into(), r#"{"size":"big","n":3}"#.into()),
        ],
    )
    .await;
    let got = c
        .receive_messages("s", "big", 10, None, NO_WAIT)
        .await
        .unwrap();
    let ns: Vec<String> = got.iter().map(data).collect();
    assert_eq!(ns, [r#"{"size":"big","n":1}"#, r#"{"size":"big","n":3}"#]);
}

#[tokio::test]
async fn deletes_and_receive_counts_survive_a_restart_and_in_flight_messages_keep_their_deadline() {
    let server = TestServer::start().await;
    let c = client(server.url()).await;
    c.create_stream("s", 2).await.unwrap();
    let messages: Vec<(String, String)> = (0..40)
        .map(|i| (format!("k{i}"), format!("m{i}")))
        .collect();
    put(&c, "s", &messages).await;
    c.create_group(queue("s", "q", pb::GroupType::QueueStandard))
        .await
        .unwrap();
    let got = c
        .receive_messages("s", "q", 30, Some(Duration::from_secs(600)), NO_WAIT)
        .await
        .unwrap();
    assert_eq!(got.len(), 30);
    delete_all(&c, "s", "q", &got[..10]).await;
    let server = server.restart().await;
    let c = client(server.url()).await;
    // The 20 in flight stay invisible; the 10 never received come; the 10 deleted never.
    let rest = c
        .receive_messages("s", "q", 100, None, NO_WAIT)
        .await
        .unwrap();
    assert_eq!(rest.len(), 10);
    let deleted: HashSet<String> = got[..10].iter().map(data).collect();
    let in_flight: HashSet<String> = got[10..].iter().map(data).collect();
    for m in &rest {
        assert!(!deleted.contains(&data(m)) && !in_flight.contains(&data(m)));
        assert_eq!(m.receive_count, 1);
    }
    // The handles given before the restart still act.
    c.change_message_visibility("s", "q", &got[10].receipt_handle, Duration::ZERO)
        .await
        .unwrap();
    let back = c
        .receive_messages("s", "q", 100, None, NO_WAIT)
        .await
        .unwrap();
    assert_eq!(back.iter().map(data).collect::<Vec<_>>(), [data(&got[10])]);
    assert_eq!(back[0].receive_count, 2);
    delete_all(&c, "s", "q", &got[11..]).await;
    let s = status(&c, "s", "q").await;
    assert_eq!(s.messages_deleted, 29);
    assert_eq!(s.messages_received, 30 + 10 + 1);
}

#[tokio::test]
async fn after_kill_9_no_deleted_message_comes_back_and_every_other_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let log = dir.path().join("server.log");
    let server = common::ChildServer::spawn(&data_dir, &log).await;
    let c = client(server.url()).await;
    c.create_stream("s", 2).await.unwrap();
    let messages: Vec<(String, String)> = (0..300)
        .map(|i| (format!("g{}", i % 7), format!("m{i}")))
        .collect();
    put(&c, "s", &messages).await;
    c.create_group(queue("s", "q", pb::GroupType::QueueStandard))
        .await
        .unwrap();
    let mut deleted = HashSet::new();
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..4 {
        let got = c
            .receive_messages("s", "q", 50, Some(Duration::from_secs(1)), NO_WAIT)
            .await
            .unwrap();
        for m in &got {
            counts.insert(data(m), m.receive_count);
        }
        // Delete every other one; the rest stay in flight and come back.
        let (del, _keep): (Vec<_>, Vec<_>) = got
            .iter()
            .cloned()
            .enumerate()
            .partition(|(i, _)| i % 2 == 0);
        let del: Vec<pb::Message> = del.into_iter().map(|(_, m)| m).collect();
        delete_all(&c, "s", "q", &del).await;
        deleted.extend(del.iter().map(data));
    }
    server.kill_9();
    let server = common::ChildServer::spawn(&data_dir, &log).await;
    let c = client(server.url()).await;
    let mut seen = HashSet::new();
    while seen.len() < 300 - deleted.len() {
        let got = c
            .receive_messages("s", "q", 100, None, Duration::from_secs(3))
            .await
            .unwrap();
        assert!(!got.is_empty(), "messages not deleted are delivered again");
        for m in &got {
            let d = data(m);
            assert!(!deleted.contains(&d), "{d} was deleted before the crash");
            assert!(seen.insert(d.clone()), "{d} delivered twice");
            let before = counts.get(&d).copied().unwrap_or(0);
            assert_eq!(
                m.receive_count,
                before + 1,
                "{d}: receive counts never go back"
            );
        }
        delete_all(&c, "s", "q", &got).await;
    }
}

#[tokio::test]
async fn bad_queue_requests_are_refused_naming_the_field() {
    let server = TestServer::start().await;
    let c = client(server.url()).await;
    c.create_stream("s", 1).await.unwrap();
    c.create_group(fifo("s", "q")).await.unwrap();
    let refused = |e: shardlog::client::ClientError, code: Code, field: &str| {
        assert_eq!(e.code(), Some(code), "{e}");
        assert!(e.to_string().contains(field), "{e} does not name {field}");
    };
    for max in [0, 1_001] {
        let e = c
            .receive_messages("s", "q", max, None, NO_WAIT)
            .await
            .unwrap_err();
        refused(e, Code::InvalidArgument, "max_messages");
    }
    let e = c
        .receive_messages("s", "q", 1, None, Duration::from_millis(20_001))
        .await
        .unwrap_err();
    refused(e, Code::InvalidArgument, "wait_time_ms");
    let e = c
        .receive_messages("s", "q", 1, Some(Duration::from_secs(43_201)), NO_WAIT)
        .await
        .unwrap_err();
    refused(e, Code::InvalidArgument, "visibility_timeout_seconds");
    let e = c
        .receive_messages("s", "nope", 1, None, NO_WAIT)
        .await
        .unwrap_err();
    refused(e, Code::NotFound, "nope");
    let e = c.delete_messages("s", "q", Vec::new()).await.unwrap_err();
    refused(e, Code::InvalidArgument, "receipt_handles");
    let out = c
        .delete_messages("s", "q", vec!["garbage".into()])
        .await
        .unwrap();
    assert_eq!(out[0].error_code, "RECEIPT_HANDLE_INVALID");
    assert!(out[0].error_message.contains("garbage"));
    let e = c
        .change_message_visibility("s", "q", "garbage", Duration::ZERO)
        .await
        .unwrap_err();
    refused(e, Code::InvalidArgument, "receipt_handle");

    let mut no_dlq = fifo("s", "r");
    no_dlq.max_receive_count = 3;
    refused(
        c.create_group(no_dlq).await.unwrap_err(),
        Code::InvalidArgument,
        "max_receive_count",
    );
    let mut missing_dlq = fifo("s", "r");
    missing_dlq.dead_letter_stream = "missing".into();
    refused(
        c.create_group(missing_dlq).await.unwrap_err(),
        Code::InvalidArgument,
        "dead_letter_stream",
    );
    let mut bad_name = fifo("s", "r");
    bad_name.dead_letter_stream = "bad name".into();
    refused(
        c.create_group(bad_name).await.unwrap_err(),
        Code::InvalidArgument,
        "dead_letter_stream",
    );
    let mut long = fifo("s", "r");
    long.visibility_timeout_seconds = Some(43_201);
    refused(
        c.create_group(long).await.unwrap_err(),
        Code::InvalidArgument,
        "visibility_timeout_seconds",
    );
    let mut bad_filter = fifo("s", "r");
    bad_filter.filter = Some(pb::Filter {
        pattern: "{".into(),
        scope: 0,
    });
    refused(
        c.create_group(bad_filter).await.unwrap_err(),
        Code::InvalidArgument,
        "filter",
    );
    let mut bad_type = fifo("s", "r");
    bad_type.r#type = 9;
    refused(
        c.create_group(bad_type).await.unwrap_err(),
        Code::InvalidArgument,
        "type",
    );
    refused(
        c.create_group(fifo("s", "q")).await.unwrap_err(),
        Code::AlreadyExists,
        "q",
    );

    // Leases and messages do not mix.
    let e = c
        .join_group(&Membership::new("s", "q", "m1"), None)
        .await
        .unwrap_err();
    refused(e, Code::FailedPrecondition, "queue group");
    c.join_group(&Membership::new("s", "leases", "m1"), None)
        .await
        .unwrap();
    let e = c
        .receive_messages("s", "leases", 1, None, NO_WAIT)
        .await
        .unwrap_err();
    refused(e, Code::FailedPrecondition, "not a queue group");
    let types: Vec<(String, i32)> = c
        .list_groups_typed("s")
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.group_name, g.r#type))
        .collect();
    assert_eq!(
        types,
        [
            ("leases".to_owned(), pb::GroupType::ShardLeases as i32),
            ("q".to_owned(), pb::GroupType::QueueFifo as i32)
        ]
    );
    // Nothing refused was created.
    assert!(matches!(
        c.describe_group("s", "r").await.unwrap_err().code(),
        Some(Code::NotFound)
    ));
}

#[tokio::test]
async fn a_group_deleted_and_made_again_refuses_the_old_handles() {
    let server = TestServer::start().await;
    let c = client(server.url()).await;
    c.create_stream("s", 1).await.unwrap();
    put(&c, "s", &[("a".into(), "m".into())]).await;
    c.create_group(fifo("s", "q")).await.unwrap();
    let got = c
        .receive_messages("s", "q", 1, None, NO_WAIT)
        .await
        .unwrap();
    c.delete_group("s", "q").await.unwrap();
    c.create_group(fifo("s", "q")).await.unwrap();
    let out = c
        .delete_messages("s", "q", vec![got[0].receipt_handle.clone()])
        .await
        .unwrap();
    assert_eq!(out[0].error_code, "RECEIPT_HANDLE_INVALID");
    // The new group starts afresh.
    let again = c
        .receive_messages("s", "q", 1, None, NO_WAIT)
        .await
        .unwrap();
    assert_eq!(again[0].receive_count, 1);
}

#[tokio::test]
async fn past_the_in_flight_cap_receives_return_nothing_until_messages_come_back() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = shardlog::broker::BrokerConfig::new(tmp.path());
    config.queues.max_in_flight = 5;
    let server = TestServer::start_with(config).await;
    let c = client(server.url()).await;
    c.create_stream("s", 2).await.unwrap();
    let messages: Vec<(String, String)> = (0..20)
        .map(|i| (format!("k{i}"), format!("m{i}")))
        .collect();
    put(&c, "s", &messages).await;
    let mut req = queue("s", "q", pb::GroupType::QueueStandard);
    req.visibility_timeout_seconds = Some(1);
    c.create_group(req).await.unwrap();
    let first = c
        .receive_messages("s", "q", 10, None, NO_WAIT)
        .await
        .unwrap();
    assert_eq!(first.len(), 5, "no more than the cap in flight");
    assert!(c
        .receive_messages("s", "q", 10, None, NO_WAIT)
        .await
        .unwrap()
        .is_empty());
    // Their visibility runs out: the cap lets go, and a long poll answers with them.
    let again = c
        .receive_messages("s", "q", 10, None, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(again.len(), 5);
    assert!(again
        .iter()
        .all(|m| m.receive_count == 2 || m.receive_count == 1));
    // Deleting frees the budget at once.
    delete_all(&c, "s", "q", &again).await;
    let more = c
        .receive_messages("s", "q", 10, None, NO_WAIT)
        .await
        .unwrap();
    assert_eq!(more.len(), 5);
}
