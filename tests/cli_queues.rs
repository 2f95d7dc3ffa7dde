//! Queue groups from the command line, as people script them: `group create --type`,
//! `receive`, `delete`, `visibility`, `group list` and `group describe`, run as the real binary
//! against a real server.

mod common;

use common::cli::{run, shardlog};

/// The value of `field` in a `group describe` table of a queue group.
fn field<'a>(described: &'a str, field: &str) -> Option<&'a str> {
    described.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(field))
            .then(|| words.next())
            .flatten()
    })
}

/// The receipt handles `receive` printed, in order.
fn handles(received: &str) -> Vec<String> {
    received
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("receipt_handle="))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_queue_is_created_received_from_and_deleted_from_the_command_line() {
    let server = common::TestServer::start().await;
    shardlog(&server, &["stream", "create", "orders", "--shards", "1"]);
    for data in ["one", "two", "three"] {
        shardlog(
            &server,
            &[
                "put",
                "orders",
                "--partition-key",
                "k",
                "--group",
                "g",
                data,
            ],
        );
    }
    let created = shardlog(
        &server,
        &[
            "group",
            "create",
            "orders",
            "workers",
            "--type",
            "queue-fifo",
            "--visibility-timeout",
            "60",
        ],
    );
    assert_eq!(field(&created, "type"), Some("queue-fifo"), "{created}");
    assert_eq!(
        field(&created, "visibility_timeout_seconds"),
        Some("60"),
        "{created}"
    );
    assert_eq!(field(&created, "messages_visible"), Some("3"), "{created}");
    shardlog(
        &server,
        &["group", "create", "orders", "auditors", "--type", "lease"],
    );
    let listed = shardlog(&server, &["group", "list", "orders"]);
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["GROUP", "TYPE"],
            vec!["auditors", "lease"],
            vec!["workers", "queue-fifo"]
        ],
        "{listed}"
    );

    let received = shardlog(
        &server,
        &[
            "receive",
            "orders",
            "workers",
            "--max",
            "10",
            "--wait-ms",
            "5000",
        ],
    );
    let lines: Vec<&str> = received.lines().collect();
    assert_eq!(lines.len(), 6, "{received}");
    for (i, data) in ["one", "two", "three"].iter().enumerate() {
        let record = lines[2 * i];
        assert!(
            record.starts_with(common::FIRST_SHARD) && record.ends_with(&format!(" {data}")),
            "{received}"
        );
        assert!(record.contains(" group=g "), "{received}");
        assert!(
            lines[2 * i + 1].contains("receive_count=1 receipt_handle="),
            "{received}"
        );
    }
    let handles = handles(&received);
    assert_eq!(handles.len(), 3, "{received}");

    // In flight now: another receive finds nothing.
    assert_eq!(shardlog(&server, &["receive", "orders", "workers"]), "");

    let mut args = vec!["delete", "orders", "workers"];
    args.extend(handles.iter().map(String::as_str));
    let deleted = shardlog(&server, &args);
    let expected: Vec<String> = handles.iter().map(|h| format!("{h}  ok")).collect();
    assert_eq!(deleted.lines().collect::<Vec<_>>(), expected, "{deleted}");

    let described = shardlog(&server, &["group", "describe", "orders", "workers"]);
    assert_eq!(
        field(&described, "messages_deleted"),
        Some("3"),
        "{described}"
    );
    assert_eq!(
        field(&described, "messages_received"),
        Some("3"),
        "{described}"
    );
    assert_eq!(
        field(&described, "messages_in_flight"),
        Some("0"),
        "{described}"
    );
    assert_eq!(
        field(&described, "messages_visible"),
        Some("0"),
        "{described}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_with_delete_leaves_nothing_and_visibility_zero_hands_a_message_out_again() {
    let server = common::TestServer::start().await;
    shardlog(&server, &["stream", "create", "jobs", "--shards", "2"]);
    shardlog(
        &server,
        &[
            "group",
            "create",
            "jobs",
            "pool",
            "--type",
            "queue-standard",
        ],
    );
    shardlog(&server, &["put", "jobs", "--partition-key", "a", "first"]);

    let received = shardlog(&server, &["receive", "jobs", "pool", "--wait-ms", "5000"]);
    let handle = handles(&received).pop().expect("a receipt handle");
    assert_eq!(
        shardlog(&server, &["visibility", "jobs", "pool", &handle, "0"]),
        "the message is visible again now\n"
    );
    let again = shardlog(
        &server,
        &["receive", "jobs", "pool", "--wait-ms", "5000", "--delete"],
    );
    assert!(again.contains(" first\n"), "{again}");
    assert!(again.contains("receive_count=2 "), "{again}");

    let described = shardlog(&server, &["group", "describe", "jobs", "pool"]);
    assert_eq!(
        field(&described, "messages_deleted"),
        Some("1"),
        "{described}"
    );
    assert_eq!(
        field(&described, "messages_in_flight"),
        Some("0"),
        "{described}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_group_type_is_refused_with_the_types_named() {
    let server = common::TestServer::start().await;
    shardlog(&server, &["stream", "create", "orders", "--shards", "1"]);
    let out = run(
        &server,
        &["group", "create", "orders", "workers", "--type", "queue"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid value 'queue'"), "{stderr}");
    for name in ["lease", "queue-fifo", "queue-standard"] {
        assert!(stderr.contains(name), "{stderr}");
    }
    assert_eq!(
        shardlog(&server, &["group", "list", "orders"]),
        "GROUP  TYPE\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_settings_on_a_lease_group_are_refused_before_anything_is_created() {
    let server = common::TestServer::start().await;
    shardlog(&server, &["stream", "create", "orders", "--shards", "1"]);
    let out = run(
        &server,
        &[
            "group",
            "create",
            "orders",
            "auditors",
            "--type",
            "lease",
            "--visibility-timeout",
            "5",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--visibility-timeout belong to queue groups"),
        "{stderr}"
    );
    assert_eq!(
        shardlog(&server, &["group", "list", "orders"]),
        "GROUP  TYPE\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_garbage_handle_fails_and_names_the_error_code() {
    let server = common::TestServer::start().await;
    shardlog(&server, &["stream", "create", "orders", "--shards", "1"]);
    shardlog(
        &server,
        &[
            "group",
            "create",
            "orders",
            "workers",
            "--type",
            "queue-fifo",
        ],
    );
    let out = run(&server, &["delete", "orders", "workers", "not-a-handle"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("not-a-handle  RECEIPT_HANDLE_INVALID: "),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 of 1 messages were not deleted"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_moved_back_and_the_move_is_listed_from_the_command_line() {
    let server = common::TestServer::start().await;
    shardlog(&server, &["stream", "create", "jobs", "--shards", "1"]);
    shardlog(&server, &["stream", "create", "dead", "--shards", "1"]);
    shardlog(
        &server,
        &[
            "group",
            "create",
            "jobs",
            "w",
            "--type",
            "queue-standard",
            "--max-receive-count",
            "1",
            "--dead-letter-stream",
            "dead",
        ],
    );
    shardlog(&server, &["put", "jobs", "--partition-key", "k", "poison"]);
    let first = shardlog(&server, &["receive", "jobs", "w"]);
    let handle = &handles(&first)[0];
    shardlog(&server, &["visibility", "jobs", "w", handle, "0"]);
    // Past its one receive: into the dead-letter stream, not handed out; the group reports
    // it once it is there.
    assert_eq!(shardlog(&server, &["receive", "jobs", "w"]), "");
    let deadline = std::time::Instant::now() + common::EVENT_TIMEOUT;
    while field(
        &shardlog(&server, &["group", "describe", "jobs", "w"]),
        "messages_dead_lettered",
    ) != Some("1")
    {
        assert!(std::time::Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let task = shardlog(&server, &["dlq", "move", "dead"]);
    let task = task.trim();
    assert_eq!(task.len(), 16, "a task id: {task}");
    let back = shardlog(&server, &["receive", "jobs", "w", "--wait-ms", "10000"]);
    assert!(back.contains("poison"), "{back}");
    assert!(back.contains("receive_count=1"), "{back}");
    let tasks = shardlog(&server, &["dlq", "tasks", "dead"]);
    assert!(
        tasks.lines().nth(1).is_some_and(|l| l.starts_with(task)),
        "{tasks}"
    );
    let refused = run(&server, &["dlq", "move", "jobs"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("source_stream"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
