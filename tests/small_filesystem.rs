//! A full disk for real: the server process on a 64 MiB tmpfs the test mounts, filled by puts.
//! Puts then fail with the disk-full code naming the cause; reads, subscriptions and consumer
//! group checkpoints keep working; nothing stored is damaged; and once a file is removed to
//! free space, puts succeed again without a restart. Mounting needs root (or the right
//! capability); where the machine does not allow it the test says so and stops, and
//! `tests/disk_full.rs` covers the same through the I/O seam's `ENOSPC`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::ChildServer;
use shardlog::client::{Client, Membership, Position};
use shardlog::proto::v1 as pb;

/// The size of the filesystem the server fills.
const FS_SIZE: &str = "64m";
/// Bytes of each record put, and records per PutRecords call.
const RECORD_BYTES: usize = 1024;
const BATCH: usize = 200;
/// A file written beside the data directory before the server starts, removed to free space.
const BALLAST_BYTES: usize = 8 << 20;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path) -> Option<Mount> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={FS_SIZE}"), "tmpfs"])
            .arg(at)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "skipped: this machine does not let the test mount a tmpfs ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Mount(at.to_owned()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn batch(from: usize) -> Vec<pb::PutRecordsRequestEntry> {
    (from..from + BATCH)
        .map(|i| {
            let mut data = format!("{i:08}").into_bytes();
            data.resize(RECORD_BYTES, b'.');
            pb::PutRecordsRequestEntry {
                partition_key: format!("k{i}"),
                data: Bytes::from(data),
                ..Default::default()
            }
        })
        .collect()
}

fn number(r: &pb::Record) -> usize {
    std::str::from_utf8(&r.data[..8]).unwrap().parse().unwrap()
}

/// Every record of the stream, shard by shard.
async fn read_all(client: &Client, shards: &[String]) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    for shard in shards {
        let mut it = client
            .get_shard_iterator("logs", shard, Position::TrimHorizon)
            .await
            .unwrap();
        let mut numbers = Vec::new();
        loop {
            let got = client.get_records(&it, 10_000).await.unwrap();
            let done = got.records.is_empty() && got.millis_behind_latest == 0;
            numbers.extend(got.records.iter().map(number));
            if done {
                break;
            }
            it = got.next_shard_iterator;
        }
        out.push(numbers);
    }
    out
}

// The server is a child process; the test waits on it from a runtime with threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_full_disk_refuses_puts_only_and_they_resume_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_mount) = Mount::tmpfs(dir.path()) else {
        return;
    };
    let ballast = dir.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; BALLAST_BYTES]).unwrap();
    let data = dir.path().join("data");
    let log = tempfile::NamedTempFile::new().unwrap();
    let server = ChildServer::spawn(&data, log.path()).await;
    let client = Client::connect(server.url()).await.unwrap();
    client.create_stream("logs", 2).await.unwrap();
    let shards: Vec<String> = client
        .list_shards("logs")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.shard_id)
        .collect();
    let member = Membership {
        stream: "logs".into(),
        group: "readers".into(),
        member_id: "m".into(),
    };
    let leases = client.join_group(&member, None).await.unwrap().assignments;

    // Fill the disk.
    let mut acked = Vec::new();
    let mut next = 0;
    let refusal = loop {
        let answer = client.put_records("logs", batch(next)).await.unwrap();
        for (i, r) in answer.records.iter().enumerate() {
            if r.error_code.is_empty() {
                acked.push(next + i);
            }
        }
        next += BATCH;
        if let Some(failed) = answer.records.iter().find(|r| !r.error_code.is_empty()) {
            break failed.clone();
        }
        assert!(next < 200_000, "64 MiB never filled up");
    };
    assert_eq!(refusal.error_code, "DiskFullException", "{refusal:?}");
    assert!(
        refusal.error_message.contains("No space left on device")
            || refusal.error_message.contains("no space left on device"),
        "{refusal:?}"
    );
    assert!(acked.len() > 1000, "only {} records fit", acked.len());
    // A single put says the same.
    let single = client.put_record("logs", "k", vec![b'x'; 64 * 1024]).await;
    let status = single
        .expect_err("the disk is full")
        .status()
        .cloned()
        .unwrap();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");

    // Reads: every acknowledged record, whole, in order.
    let stored = read_all(&client, &shards).await;
    let mut all: Vec<usize> = stored.iter().flatten().copied().collect();
    for shard in &stored {
        assert!(shard.windows(2).all(|w| w[0] < w[1]), "out of order");
    }
    all.sort_unstable();
    for n in &acked {
        assert!(
            all.binary_search(n).is_ok(),
            "acknowledged record {n} is missing"
        );
    }
    // A subscription still serves.
    let mut events = client
        .subscribe_to_shard("logs", &shards[0], Position::TrimHorizon)
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .expect("a subscription event")
        .unwrap()
        .unwrap();
    assert_eq!(
        event.records.first().map(number),
        stored[0].first().copied(),
        "the subscription does not start at the first record"
    );
    // The consumer group checkpoints.
    for lease in &leases {
        let shard = shards.iter().position(|s| *s == lease.shard_id).unwrap();
        let last = client
            .describe_group("logs", "readers")
            .await
            .unwrap()
            .shards
            .iter()
            .find(|p| p.shard_id == lease.shard_id)
            .and_then(|p| p.latest_sequence_number)
            .unwrap();
        let committed = client
            .commit_checkpoint(&member, &lease.shard_id, lease.lease_epoch, last)
            .await;
        assert!(
            committed.is_ok(),
            "checkpointing {} on a full disk: {committed:?}",
            shards[shard]
        );
    }

    // Space is freed: puts succeed again, without a restart.
    std::fs::remove_file(&ballast).unwrap();
    let answer = client.put_records("logs", batch(next)).await.unwrap();
    assert_eq!(answer.failed_record_count, 0, "{:?}", answer.records[0]);
    acked.extend(next..next + BATCH);
    let mut stored: Vec<usize> = read_all(&client, &shards).await.concat();
    stored.sort_unstable();
    for n in &acked {
        assert!(
            stored.binary_search(n).is_ok(),
            "acknowledged record {n} is missing"
        );
    }
    // And a restart finds everything whole.
    server.kill_9();
    let server = ChildServer::spawn(&data, log.path()).await;
    let client = Client::connect(server.url()).await.unwrap();
    let after: Vec<usize> = read_all(&client, &shards).await.concat();
    assert_eq!(
        after.len(),
        stored.len(),
        "records changed across the restart"
    );
    let progress = client.describe_group("logs", "readers").await.unwrap();
    assert!(progress.shards.iter().all(|p| p.checkpoint.is_some()));
}
