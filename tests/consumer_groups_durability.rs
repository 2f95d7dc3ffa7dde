//! Consumer groups survive the server going away: checkpoints are durable before CommitCheckpoint
//! answers, and lease epochs handed out after a restart are above every epoch handed out before
//! it — after a graceful restart and after a real `kill -9` of the server process.

mod common;

use std::collections::BTreeMap;

use shardlog::proto::v1 as pb;
use tonic::Code;

use common::groups::{self, Groups};
use common::{ChildServer, Streams, TestServer};

const STREAM: &str = "durable";
const GROUP: &str = "workers";
/// Records put into each of the stream's four shards.
const PER_SHARD: u64 = 8;

/// What the first server life left behind.
#[derive(Debug)]
struct Before {
    /// Checkpoint committed per shard.
    checkpoints: BTreeMap<String, u64>,
    /// The lease each shard was last handed out under, with its owner.
    leases: BTreeMap<String, (String, u64)>,
    max_epoch: u64,
}

async fn join(g: &mut Groups, member: &str) -> Vec<pb::ShardLease> {
    groups::join(g, STREAM, GROUP, member, 0).await.assignments
}

async fn heartbeat(g: &mut Groups, member: &str) -> Result<Vec<pb::ShardLease>, tonic::Status> {
    groups::heartbeat(g, STREAM, GROUP, member)
        .await
        .map(|r| r.assignments)
}

async fn commit(
    g: &mut Groups,
    member: &str,
    shard: &str,
    epoch: u64,
    sequence: u64,
) -> Result<(), tonic::Status> {
    groups::commit(g, STREAM, GROUP, member, shard, epoch, sequence, false).await
}

async fn progress(g: &mut Groups) -> (Vec<pb::GroupMember>, BTreeMap<String, pb::ShardProgress>) {
    let d = groups::describe(g, STREAM, GROUP)
        .await
        .expect("describe group");
    let shards = d
        .shards
        .into_iter()
        .map(|p| (p.shard_id.clone(), p))
        .collect();
    (d.members, shards)
}

/// A stream of four shards with records, a group of two members that rebalanced a few times,
/// and a checkpoint on every shard.
async fn first_life(s: &mut Streams, g: &mut Groups) -> Before {
    groups::stream_with_records(s, STREAM, 4, &[PER_SHARD; 4]).await;
    // Owners change a few times, so epochs have moved on from their first values.
    join(g, "a").await;
    join(g, "b").await;
    join(g, "c").await;
    groups::leave_group(g, STREAM, GROUP, "c")
        .await
        .expect("leave");
    let mut leases = BTreeMap::new();
    let mut checkpoints = BTreeMap::new();
    for member in ["a", "b"] {
        for (i, l) in heartbeat(g, member)
            .await
            .expect("heartbeat")
            .into_iter()
            .enumerate()
        {
            let k = 2 + i as u64;
            commit(g, member, &l.shard_id, l.lease_epoch, k)
                .await
                .expect("commit");
            checkpoints.insert(l.shard_id.clone(), k);
            leases.insert(l.shard_id, (member.to_owned(), l.lease_epoch));
        }
    }
    assert_eq!(leases.len(), 4);
    let (_, shards) = progress(g).await;
    let max_epoch = shards
        .values()
        .map(|p| p.lease_epoch)
        .max()
        .expect("shards");
    assert!(leases.values().all(|(_, e)| *e <= max_epoch));
    Before {
        checkpoints,
        leases,
        max_epoch,
    }
}

/// Checks what a new server life must show, then moves on from it.
async fn second_life(s: &mut Streams, g: &mut Groups, before: &Before) -> u64 {
    let names = groups::list_groups(g, STREAM).await.expect("list groups");
    assert_eq!(names, [GROUP], "the group itself is durable");
    let (members, shards) = progress(g).await;
    assert!(
        members.is_empty(),
        "memberships are not durable: {members:?}"
    );
    for (shard, &k) in &before.checkpoints {
        let p = &shards[shard];
        assert_eq!(p.checkpoint, Some(k), "{shard}");
        assert_eq!(p.latest_sequence_number, Some(PER_SHARD - 1), "{shard}");
        assert_eq!(p.lag_records, PER_SHARD - 1 - k, "{shard}");
    }
    // A member from before must join again; its old leases are dead.
    assert_eq!(heartbeat(g, "a").await.unwrap_err().code(), Code::NotFound);

    let leases = join(g, "a").await;
    assert_eq!(leases.len(), 4);
    for l in &leases {
        assert!(
            l.lease_epoch > before.max_epoch,
            "{}: epoch {} after the restart is not above {} from before it",
            l.shard_id,
            l.lease_epoch,
            before.max_epoch
        );
        assert_eq!(l.checkpoint, before.checkpoints.get(&l.shard_id).copied());
    }
    for (shard, (member, epoch)) in &before.leases {
        if member == "a" {
            let r = commit(g, "a", shard, *epoch, PER_SHARD - 1).await;
            assert_eq!(
                r.unwrap_err().code(),
                Code::FailedPrecondition,
                "a lease from before the restart is fenced"
            );
        }
    }
    let (_, shards) = progress(g).await;
    for (shard, &k) in &before.checkpoints {
        assert_eq!(
            shards[shard].checkpoint,
            Some(k),
            "{shard} unchanged by a fenced commit"
        );
    }
    // Checkpoints still only move forward, and the new leases work.
    let first = &leases[0];
    let k = before.checkpoints[&first.shard_id];
    assert!(commit(g, "a", &first.shard_id, first.lease_epoch, k - 1)
        .await
        .is_err());
    commit(g, "a", &first.shard_id, first.lease_epoch, PER_SHARD - 1)
        .await
        .expect("the new lease commits");
    let (_, shards) = progress(g).await;
    assert_eq!(shards[&first.shard_id].checkpoint, Some(PER_SHARD - 1));
    assert_eq!(shards[&first.shard_id].lag_records, 0);
    // The stream is usable as before.
    common::put(s, STREAM, "after", "after").await;
    leases.iter().map(|l| l.lease_epoch).max().unwrap_or(0)
}

#[tokio::test]
async fn checkpoints_survive_a_graceful_restart_and_epochs_rise_past_it() {
    let server = TestServer::start().await;
    let (mut s, mut g) = (server.streams().await, server.groups().await);
    let before = first_life(&mut s, &mut g).await;

    let server = server.restart().await;
    let (mut s, mut g) = (server.streams().await, server.groups().await);
    let max_epoch = second_life(&mut s, &mut g, &before).await;

    // And once more: epochs keep rising over every restart, not just the first.
    let server = server.restart().await;
    let mut g = server.groups().await;
    let leases = join(&mut g, "b").await;
    assert!(
        leases.iter().all(|l| l.lease_epoch > max_epoch),
        "{leases:?} vs {max_epoch}"
    );
    server.stop().await;
}

#[tokio::test]
async fn checkpoints_survive_a_kill_9_of_the_server_process_and_epochs_rise_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let server = ChildServer::spawn(&data, &log).await;
    let (mut s, mut g) = (server.streams().await, server.groups().await);
    let before = first_life(&mut s, &mut g).await;
    server.kill_9();

    let server = ChildServer::spawn(&data, &log).await;
    let (mut s, mut g) = (server.streams().await, server.groups().await);
    let max_epoch = second_life(&mut s, &mut g, &before).await;
    server.kill_9();

    let server = ChildServer::spawn(&data, &log).await;
    let mut g = server.groups().await;
    let leases = join(&mut g, "b").await;
    assert!(
        leases.iter().all(|l| l.lease_epoch > max_epoch),
        "{leases:?} vs {max_epoch}"
    );
    server.kill_9();
}

#[tokio::test]
async fn no_lease_epoch_is_shown_before_the_floor_covering_it_is_durable() {
    use shardlog::fsio::faulty::{FaultyIo, Loss};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let start = || {
        TestServer::start_with_io(
            shardlog::broker::BrokerConfig::new(dir.path()),
            Arc::new(io.clone()),
        )
    };
    let server = start().await;
    let (mut s, mut g) = (server.streams().await, server.groups().await);
    common::make_stream(&mut s, STREAM, 4).await;
    let mut seen: u64 = join(&mut g, "a")
        .await
        .iter()
        .map(|l| l.lease_epoch)
        .max()
        .unwrap();
    server.stop().await;

    // The next life cannot make its metadata durable.
    let server = start().await;
    let mut g = server.groups().await;
    io.fail_syncs(true);
    for member in ["a", "b", "c"] {
        let joined = groups::try_join(&mut g, STREAM, GROUP, member, 0).await;
        if let Ok(r) = joined {
            seen = seen.max(
                r.assignments
                    .iter()
                    .map(|l| l.lease_epoch)
                    .max()
                    .unwrap_or(0),
            );
        }
        for m in ["a", "b", "c"] {
            if let Ok(leases) = heartbeat(&mut g, m).await {
                seen = seen.max(leases.iter().map(|l| l.lease_epoch).max().unwrap_or(0));
            }
        }
        let described = groups::describe(&mut g, STREAM, GROUP).await;
        if let Ok(d) = described {
            seen = seen.max(d.shards.iter().map(|p| p.lease_epoch).max().unwrap_or(0));
        }
    }
    io.fail_syncs(false);
    server.stop().await;
    // A power cut takes whatever was not synced.
    io.power_loss(Loss::UnsyncedGone);

    let server = start().await;
    let mut g = server.groups().await;
    let leases = join(&mut g, "d").await;
    assert!(
        leases.iter().all(|l| l.lease_epoch > seen),
        "an epoch shown before the power cut ({seen}) is handed out again: {leases:?}"
    );
    server.stop().await;
}
