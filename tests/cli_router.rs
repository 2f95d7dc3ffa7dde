//! The router from the command line, as people script it: `pattern test`, `rule put` and
//! `rule describe`, `put --attribute` and `get --filter`, run as the real binary against a
//! real server.

mod common;

use common::cli::shardlog;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_rules_and_filtered_reads_work_from_the_command_line() {
    let server = common::TestServer::start().await;
    let pattern = r#"{"price":[{"numeric":[">",10]}]}"#;
    assert_eq!(
        shardlog(&server, &["pattern", "test", pattern, r#"{"price":11}"#]),
        "match\n"
    );
    assert_eq!(
        shardlog(&server, &["pattern", "test", pattern, r#"{"price":10}"#]),
        "no match\n"
    );
    assert_eq!(
        shardlog(
            &server,
            &[
                "pattern",
                "test",
                r#"{"store":[{"prefix":"ex"}]}"#,
                "--scope",
                "attributes",
                "-a",
                "store=example",
            ]
        ),
        "match\n"
    );

    for stream in ["src", "dst"] {
        shardlog(&server, &["stream", "create", stream, "--shards", "1"]);
    }
    let described = shardlog(
        &server,
        &[
            "rule",
            "put",
            "big",
            "--source",
            "src",
            "--target",
            "dst",
            "--filter",
            r#"{"size":["big"]}"#,
            "--filter-scope",
            "attributes",
        ],
    );
    assert!(described.contains("status   running"), "{described}");
    for (data, size) in [("one", "small"), ("two", "big"), ("three", "big")] {
        let attribute = format!("size={size}");
        shardlog(
            &server,
            &["put", "src", "--partition-key", "k", "-a", &attribute, data],
        );
    }
    let listed = shardlog(&server, &["rule", "list", "--source", "src"]);
    assert!(listed.starts_with("big  src -> dst"), "{listed}");

    let filtered = shardlog(
        &server,
        &[
            "get",
            "src",
            "--shard",
            "shardId-000000000000",
            "--filter",
            r#"{"size":["big"]}"#,
            "--filter-scope",
            "attributes",
        ],
    );
    let lines: Vec<&str> = filtered.lines().collect();
    assert_eq!(lines.len(), 2, "{filtered}");
    assert!(lines[0].ends_with("@size=big two"), "{filtered}");
    assert!(lines[1].ends_with("@size=big three"), "{filtered}");

    // The rule routes the two big ones; wait (bounded) for it, then read the target.
    let deadline = common::Deadline::after(std::time::Duration::from_secs(30));
    loop {
        let routed = shardlog(&server, &["get", "dst", "--shard", "shardId-000000000000"]);
        if routed.lines().count() == 2 {
            assert!(
                routed.contains(" two\n") && routed.contains(" three\n"),
                "{routed}"
            );
            break;
        }
        assert!(deadline.tick().await, "the rule did not route: {routed}");
    }
    shardlog(&server, &["rule", "delete", "big"]);
    assert_eq!(shardlog(&server, &["rule", "list"]), "");
}
