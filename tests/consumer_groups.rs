//! Consumer groups over real gRPC: balanced leases as members join, expire and leave, fencing
//! of checkpoints by owner and epoch, checkpoints that only move forward, exact lag, groups
//! independent of each other and deleted with their stream, and the errors of the contract.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use shardlog::proto::v1 as pb;
use tonic::{Code, Status};

use common::groups::{
    commit, delete_group, describe, heartbeat, join, leave_group, list_groups, put_into,
    stream_with_records, try_join, Groups,
};
use common::{Deadline, TestServer};

/// The member's leases from a heartbeat, by shard id.
async fn leases(
    g: &mut Groups,
    stream: &str,
    group: &str,
    member: &str,
) -> BTreeMap<String, pb::ShardLease> {
    heartbeat(g, stream, group, member)
        .await
        .unwrap_or_else(|e| panic!("{member} heartbeats: {e:?}"))
        .assignments
        .into_iter()
        .map(|l| (l.shard_id.clone(), l))
        .collect()
}

async fn progress(
    g: &mut Groups,
    stream: &str,
    group: &str,
) -> BTreeMap<String, pb::ShardProgress> {
    describe(g, stream, group)
        .await
        .expect("describe group")
        .shards
        .into_iter()
        .map(|s| (s.shard_id.clone(), s))
        .collect()
}

fn assert_code<T: std::fmt::Debug>(r: Result<T, Status>, code: Code) -> Status {
    match r {
        Ok(v) => panic!("expected {code:?}, got Ok({v:?})"),
        Err(s) => {
            assert_eq!(s.code(), code, "{s:?}");
            s
        }
    }
}

fn assert_invalid_naming<T: std::fmt::Debug>(r: Result<T, Status>, field: &str) {
    let s = assert_code(r, Code::InvalidArgument);
    assert!(
        s.message().contains(field),
        "the message should name {field}: {:?}",
        s.message()
    );
}

/// Checks that the members' leases partition `shards` and returns each member's count.
fn partition(shards: &[String], owned: &[&BTreeMap<String, pb::ShardLease>]) -> Vec<usize> {
    let mut all = BTreeSet::new();
    for o in owned {
        for s in o.keys() {
            assert!(all.insert(s.clone()), "{s} is leased twice");
        }
    }
    let expected: BTreeSet<String> = shards.iter().cloned().collect();
    assert_eq!(all, expected, "every shard is leased to exactly one member");
    owned.iter().map(|o| o.len()).collect()
}

#[tokio::test]
async fn six_shards_balance_as_six_then_three_three_then_two_two_two() {
    let server = TestServer::start().await;
    let mut s = server.streams().await;
    let mut g = server.groups().await;
    let shards = stream_with_records(&mut s, "six", 6, &[]).await;

    let a = join(&mut g, "six", "workers", "a", 0).await;
    assert_eq!(a.assignments.len(), 6);
    let la = leases(&mut g, "six", "workers", "a").await;
    assert_eq!(partition(&shards, &[&la]), [6]);

    let b = join(&mut g, "six", "workers", "b", 0).await;
    assert_eq!(b.assignments.len(), 3);
    let la = leases(&mut g, "six", "workers", "a").await;
    let lb = leases(&mut g, "six", "workers", "b").await;
    assert_eq!(partition(&shards, &[&la, &lb]), [3, 3]);

    join(&mut g, "six", "workers", "c", 0).await;
    let la2 = leases(&mut g, "six", "workers", "a").await;
    let lb2 = leases(&mut g, "six", "workers", "b").await;
    let lc = leases(&mut g, "six", "workers", "c").await;
    assert_eq!(partition(&shards, &[&la2, &lb2, &lc]), [2, 2, 2]);
    // Sticky: a member keeps what it had and only gives up the surplus.
    assert!(
        la2.keys().all(|s| la.contains_key(s)),
        "a keeps its shards: {la:?} -> {la2:?}"
    );
    assert!(lb2.keys().all(|s| lb.contains_key(s)), "b keeps its shards");
    // A kept shard keeps its epoch; a moved one gets a higher one.
    for (shard, lease) in &lc {
        let before = la
            .get(shard)
            .or_else(|| lb.get(shard))
            .expect("held before");
        assert!(
            lease.lease_epoch > before.lease_epoch,
            "{shard} changed owner"
        );
    }
    for (shard, lease) in la2.iter().chain(&lb2) {
        let before = la.get(shard).or_else(|| lb.get(shard)).unwrap();
        assert_eq!(lease.lease_epoch, before.lease_epoch, "{shard} stayed");
    }

    // DescribeGroup agrees with the heartbeats.
    let d = describe(&mut g, "six", "workers").await.unwrap();
    let members: BTreeMap<String, BTreeSet<String>> = d
        .members
        .iter()
        .map(|m| (m.member_id.clone(), m.shard_ids.iter().cloned().collect()))
        .collect();
    assert_eq!(members.len(), 3);
    for (m, l) in [("a", &la2), ("b", &lb2), ("c", &lc)] {
        assert_eq!(
            members[m],
            l.keys().cloned().collect::<BTreeSet<_>>(),
            "{m}"
        );
        for (shard, lease) in l {
            let p = d.shards.iter().find(|p| &p.shard_id == shard).unwrap();
            assert_eq!(p.owner_member_id, m);
            assert_eq!(p.lease_epoch, lease.lease_epoch);
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn join_reports_the_session_timeout_in_force_and_a_heartbeat_interval_below_it() {
    let server = TestServer::start().await;
    let mut s = server.streams().await;
    let mut g = server.groups().await;
    stream_with_records(&mut s, "t", 2, &[]).await;
    let d = join(&mut g, "t", "g", "default", 0).await;
    assert_eq!(d.session_timeout_ms, 10_000, "0 means the server default");
    assert!(d.heartbeat_interval_ms > 0 && d.heartbeat_interval_ms < d.session_timeout_ms);
    let own = join(&mut g, "t", "g", "own", 1500).await;
    assert_eq!(own.session_timeout_ms, 1500);
    assert!(own.heartbeat_interval_ms > 0 && own.heartbeat_interval_ms < 1500);
    let hb = heartbeat(&mut g, "t", "g", "own").await.unwrap();
    assert_eq!(hb.session_timeout_ms, 1500);
    let members = describe(&mut g, "t", "g").await.unwrap().members;
    let timeouts: BTreeMap<String, u32> = members
        .into_iter()
        .map(|m| (m.member_id, m.session_timeout_ms))
        .collect();
    assert_eq!(
        timeouts,
        BTreeMap::from([("default".into(), 10_000), ("own".into(), 1500)])
    );
    server.stop().await;
}

#[tokio::test]
async fn a_silent_member_loses_its_shards_after_its_session_timeout_and_is_fenced() {
    let server = TestServer::start().await;
    let mut s = server.streams().await;
    let mut g = server.groups().await;
    let shards = stream_with_records(&mut s, "exp", 6, &[5, 5, 5, 5, 5, 5]).await;
    join(&mut g, "exp", "g", "quiet", 1000).await;
    join(&mut g, "exp", "g", "busy", 1000).await;
    let quiet = leases(&mut g, "exp", "g", "quiet").await;
    let busy = leases(&mut g, "exp", "g", "busy").await;
    assert_eq!(partition(&shards, &[&quiet, &busy]), [3, 3]);
    let (victim, old) = quiet
        .iter()
        .next()
        .map(|(s, l)| (s.clone(), l.clone()))
        .unwrap();
    commit(
        &mut g,
        "exp",
        "g",
        "quiet",
        &victim,
        old.lease_epoch,
        1,
        false,
    )
    .await
    .expect("the owner commits");
    // `quiet` is silent from here on; `busy` keeps heartbeating until it holds every shard.
    let silent_since = Instant::now();
    heartbeat(&mut g, "exp", "g", "quiet").await.unwrap();
    let deadline = Deadline::after(Duration::from_millis(1000) + Duration::from_secs(5));
    let taken = loop {
        let l = leases(&mut g, "exp", "g", "busy").await;
        if l.len() == 6 {
            break l;
        }
        assert_eq!(l.len(), 3, "no partial handover");
        assert!(deadline.tick().await, "the silent member kept its shards");
    };
    assert!(
        silent_since.elapsed() >= Duration::from_millis(1000),
        "shards moved after {:?}, before the session timeout",
        silent_since.elapsed()
    );
    for (shard, lease) in &quiet {
        assert!(
            taken[shard].lease_epoch > lease.lease_epoch,
            "{shard} has a new epoch"
        );
    }
    assert_eq!(
        taken[&victim].checkpoint,
        Some(1),
        "the checkpoint travels with the shard"
    );

    // The late commit of the expired member is fenced and changes nothing.
    let late = commit(
        &mut g,
        "exp",
        "g",
        "quiet",
        &victim,
        old.lease_epoch,
        3,
        false,
    )
    .await;
    assert_code(late, Code::FailedPrecondition);
    let p = progress(&mut g, "exp", "g").await;
    assert_eq!(p[&victim].checkpoint, Some(1));
    assert_eq!(p[&victim].owner_member_id, "busy");
    assert_code(heartbeat(&mut g, "exp", "g", "quiet").await, Code::NotFound);
    let members: Vec<String> = describe(&mut g, "exp", "g")
        .await
        .unwrap()
        .members
        .into_iter()
        .map(|m| m.member_id)
        .collect();
    assert_eq!(members, ["busy"]);

    // The new owner commits with its own epoch.
    commit(
        &mut g,
        "exp",
        "g",
        "busy",
        &victim,
        taken[&victim].lease_epoch,
        4,
        false,
    )
    .await
    .expect("the new owner commits");
    assert_eq!(
        progress(&mut g, "exp", "g").await[&victim].checkpoint,
        Some(4)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_member_that_leaves_hands_its_shards_over_at_once() {
    let server = TestServer::start().await;
    let mut s = server.streams().await;
    let mut g = server.groups().await;
    let shards = stream_with_records(&mut s, "leave", 6, &[2, 2, 2, 2, 2, 2]).await;
    join(&mut g, "leave", "g", "a", 0).await;
    join(&mut g, "leave", "g", "b", 0).await;
    let la = leases(&mut g, "leave", "g", "a").await;
    let lb = leases(&mut g, "leave", "g", "b").await;
    assert_eq!(partition(&shards, &[&la, &lb]), [3, 3]);
    leave_group(&mut g, "leave", "g", "a").await.expect("leave");
    // No waiting: the very next heartbeat shows the handover.
    let lb2 = leases(&mut g, "leave", "g", "b").await;
    assert_eq!(partition(&shards, &[&lb2]), [6]);
    for (shard, lease) in &la {
        assert!(
            lb2[shard].lease_epoch > lease.lease_epoch,
            "{shard} has a new epoch"
        );
    }
    let (shard, old) = la.iter().next().unwrap();
    assert_code(
        commit(&mut g, "leave", "g", "a", shard, old.lease_epoch, 0, false).await,
        Code::FailedPrecondition,
    );
    assert_eq!(progress(&mut g, "leave", "g").await[shard].checkpoint, None);
    assert_code(heartbeat(&mut g, "leave", "g", "a").await, Code::NotFound);
    let again = leave_group(&mut g, "leave", "g", "a").await;
    assert_code(again, Code::NotFound);
    server.stop().await;
}

#[tokio::test]
async fn only_the_current_owner_with_the_current_epoch_may_commit() {
    let server = TestServer::start().await;
    let mut s = server.streams().await;
    let mut g = server.groups().await;
    let shards = stream_with_records(&mut s, "fence", 2, &[10, 10]).await;
    join(&mut g, "fence", "g", "a", 0).await;
    join(&mut g, "fence", "g", "b", 0).await;
    let la = leases(&mut g, "fence", "g", "a").await;
    let lb = leases(&mut g, "fence", "g", "b").await;
    assert_eq!(partition(&shards, &[&la, &lb]), [1, 1]);
    let (shard, lease) = la.iter().next().unwrap();
    let epoch = lease.lease_epoch;
    let b_epoch = lb.values().next().unwrap().lease_epoch;

    let refused = [
        ("b", epoch, "a non-owner with the owner's epoch"),
        ("b", b_epoch, "a non-owner with its own epoch"),
        ("a", epoch + 1, "the owner with a future epoch"),
        ("a", epoch - 1, "the owner with an older epoch"),
        ("a", 0, "the owner with epoch 0"),
    ];
    for (member, e, what) in refused {
        let r = commit(&mut g, "fence", "g", member, shard, e, 5, false).await;
        let s = assert_code(r, Code::FailedPrecondition);
        assert!(!s.message().is_empty(), "{what}");
        assert_eq!(
            progress(&mut g, "fence", "g").await[shard].checkpoint,
            None,
            "{what}"
        );
    }
    commit(&mut g, "fence", "g", "a", shard, epoch, 5, false)
        .await
        .expect("the owner with its epoch commits");
    let p = progress(&mut g, "fence", "g").await;
    assert_eq!(p[shard].checkpoint, Some(5));
    assert_eq!(
        leases(&mut g, "fence", "g", "a").await[shard].checkpoint,
        Some(5)
    );

    // A shard the stream does not have, and a sequence number it does not hold.
    assert_code(
        commit(
            &mut g,
            "fence",
            "g",
            "a",
            "shardId-000000000099",
            epoch,
            0,
            false,
        )
        .await,
        Code::NotFound,
    );
    assert_invalid_naming(
        commit(&mut g, "fence", "g", "a", shard, epoch, 10, false).await,
        "sequence_number",
    );
    assert_eq!(
        progress(&mut g, "fence", "g").await[shard].checkpoint,
        Some(5)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_checkpoint_never_moves_backwards_unless_reset() {
    let server = TestServer::start().await;
    let mut s = server.streams().await;
    let mut g = server.groups().await;
    let shards = stream_with_records(&mut s, "fwd", 1, &[10]).await;
    let shard = &shards[0];
    let epoch = join(&mut g, "fwd", "g", "a", 0).await.assignments[0].lease_epoch;
    commit(&mut g, "fwd", "g", "a", shard, epoch, 5, false)
        .await
        .unwrap();
    assert!(
        commit(&mut g, "fwd", "g", "a", shard, epoch, 3, false)
            .await
            .is_err(),
        "a checkpoint must not move backwards"
    );
    assert_eq!(
        progress(&mut g, "fwd", "g").await[shard].checkpoint,
        Some(5)
    );
    commit(&mut g, "fwd", "g", "a", shard, epoch, 7, false)
        .await
        .unwrap();
    assert_eq!(
        progress(&mut g, "fwd", "g").await[shard].checkpoint,
        Some(7)
    );
    commit(&mut g, "fwd", "g", "a", shard, epoch, 2, true)
        .await
        .expect("reset moves it back");
    assert_eq!(
        progress(&mut g, "fwd", "g").await[shard].checkpoint,
        Some(2)
    );
    assert_eq!(
        leases(&mut g, "fwd", "g", "a").await[shard].checkpoint,
        Some(2)
    );
    // A reset is still fenced.
    assert_code(
        commit(&mut g, "fwd", "g", "a", shard, epoch + 1, 0, true).await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        progress(&mut g, "fwd", "g").await[shard].checkpoint,
        Some(2)
    );
    server.stop().await;
}

#[tokio::test]
async fn lag_counts_exactly_the_records_after_the_checkpoint() {
    let server = TestServer::start().await;
    let mut s = server.streams().await;
    let mut g = server.groups().await;
    const N: [u64; 3] = [10, 7, 0];
    let shards = stream_with_records(&mut s, "lag", 3, &N).await;
    let assignments = join(&mut g, "lag", "g", "a", 0).await.assignments;
    let epoch: BTreeMap<String, u64> = assignments
        .into_iter()
        .map(|l| (l.shard_id, l.lease_epoch))
        .collect();

    let p = progress(&mut g, "lag", "g").await;
    assert_eq!(p.len(), 3);
    for (i, shard) in shards.iter().enumerate() {
        let n = N[i];
        assert_eq!(p[shard].checkpoint, None);
        assert_eq!(
            p[shard].lag_records, n,
            "{shard}: without a checkpoint all records lag"
        );
        assert_eq!(p[shard].latest_sequence_number, n.checked_sub(1), "{shard}");
        assert_eq!(p[shard].owner_member_id, "a");
    }
    assert_eq!(p[&shards[2]].millis_behind_latest, 0);

    for k in [0, 3, 8, 9] {
        commit(
            &mut g,
            "lag",
            "g",
            "a",
            &shards[0],
            epoch[&shards[0]],
            k,
            k < 3,
        )
        .await
        .unwrap();
        let p = progress(&mut g, "lag", "g").await;
        assert_eq!(p[&shards[0]].checkpoint, Some(k));
        assert_eq!(p[&shards[0]].lag_records, N[0] - 1 - k, "checkpoint at {k}");
        assert_eq!(p[&shards[0]].latest_sequence_number, Some(N[0] - 1));
    }
    assert_eq!(
        progress(&mut g, "lag", "g").await[&shards[0]].millis_behind_latest,
        0
    );
    commit(
        &mut g,
        "lag",
        "g",
        "a",
        &shards[1],
        epoch[&shards[1]],
        2,
        false,
    )
    .await
    .unwrap();
    let p = progress(&mut g, "lag", "g").await;
    assert_eq!(p[&shards[1]].lag_records, N[1] - 1 - 2);
    assert!(p[&shards[1]].millis_behind_latest >= 0);
    // Other shards are untouched by one shard's checkpoint.
    assert_eq!(p[&shards[2]].lag_records, 0);
    assert_eq!(p[&shards[2]].latest_sequence_number, None);

    // New records raise the lag one for one.
    let d = common::describe_stream(&mut s, "lag").await;
    put_into(&mut s, "lag", &d.shards[1], 5).await;
    put_into(&mut s, "lag", &d.shards[2], 4).await;
    let p = progress(&mut g, "lag", "g").await;
    assert_eq!(p[&shards[1]].lag_records, N[1] + 5 - 1 - 2);
    assert_eq!(p[&shards[1]].latest_sequence_number, Some(N[1] + 5 - 1));
    assert_eq!(p[&shards[2]].lag_records, 4);
    assert_eq!(p[&shards[2]].latest_sequence_number, Some(3));
    server.stop().await;
}

#[tokio::test]
async fn two_groups_on_one_stream_are_independent() {
    let server = TestServer::start().await;
    let mut s = server.streams().await;
    let mut g = server.groups().await;
    let shards = stream_with_records(&mut s, "two", 6, &[3, 3, 3, 3, 3, 3]).await;
    join(&mut g, "two", "blue", "a", 0).await;
    join(&mut g, "two", "blue", "b", 0).await;
    join(&mut g, "two", "red", "a", 0).await;
    let blue_a = leases(&mut g, "two", "blue", "a").await;
    let red_a = leases(&mut g, "two", "red", "a").await;
    assert_eq!(blue_a.len(), 3);
    assert_eq!(
        red_a.len(),
        6,
        "the same member id in another group is another member"
    );
    assert_code(heartbeat(&mut g, "two", "red", "b").await, Code::NotFound);

    let shard = blue_a.keys().next().unwrap().clone();
    commit(
        &mut g,
        "two",
        "blue",
        "a",
        &shard,
        blue_a[&shard].lease_epoch,
        2,
        false,
    )
    .await
    .unwrap();
    // A blue lease does not work in red, and the checkpoint stays in blue.
    if red_a[&shard].lease_epoch != blue_a[&shard].lease_epoch {
        assert_code(
            commit(
                &mut g,
                "two",
                "red",
                "a",
                &shard,
                blue_a[&shard].lease_epoch,
                1,
                false,
            )
            .await,
            Code::FailedPrecondition,
        );
    }
    assert_eq!(
        progress(&mut g, "two", "blue").await[&shard].checkpoint,
        Some(2)
    );
    assert_eq!(
        progress(&mut g, "two", "red").await[&shard].checkpoint,
        None
    );
    assert_eq!(progress(&mut g, "two", "red").await[&shard].lag_records, 3);
    assert_eq!(progress(&mut g, "two", "blue").await[&shard].lag_records, 0);

    // Leaving and deleting one group leaves the other alone.
    leave_group(&mut g, "two", "blue", "a").await.unwrap();
    assert_eq!(leases(&mut g, "two", "red", "a").await.len(), 6);
    assert_eq!(leases(&mut g, "two", "blue", "b").await.len(), 6);
    assert_eq!(list_groups(&mut g, "two").await.unwrap(), ["blue", "red"]);
    delete_group(&mut g, "two", "blue").await.unwrap();
    assert_eq!(list_groups(&mut g, "two").await.unwrap(), ["red"]);
    assert_eq!(
        partition(&shards, &[&leases(&mut g, "two", "red", "a").await]),
        [6]
    );
    server.stop().await;
}

#[tokio::test]
async fn deleting_a_group_forgets_its_members_and_checkpoints() {
    let server = TestServer::start().await;
    let mut s = server.streams().await;
    let mut g = server.groups().await;
    let shards = stream_with_records(&mut s, "del", 1, &[4]).await;
    let epoch = join(&mut g, "del", "g", "a", 0).await.assignments[0].lease_epoch;
    commit(&mut g, "del", "g", "a", &shards[0], epoch, 2, false)
        .await
        .unwrap();
    delete_group(&mut g, "del", "g").await.unwrap();
    assert!(list_groups(&mut g, "del").await.unwrap().is_empty());
    assert_code(describe(&mut g, "del", "g").await, Code::NotFound);
    assert_code(heartbeat(&mut g, "del", "g", "a").await, Code::NotFound);
    assert_code(
        commit(&mut g, "del", "g", "a", &shards[0], epoch, 3, false).await,
        Code::NotFound,
    );
    let again = delete_group(&mut g, "del", "g").await;
    assert_code(again, Code::NotFound);

    let rejoined = join(&mut g, "del", "g", "a", 0).await;
    assert_eq!(
        rejoined.assignments[0].checkpoint, None,
        "a new group starts without checkpoints"
    );
    assert_eq!(
        progress(&mut g, "del", "g").await[&shards[0]].lag_records,
        4
    );
    server.stop().await;
}

#[tokio::test]
async fn deleting_a_stream_deletes_its_groups() {
    let server = TestServer::start().await;
    let mut s = server.streams().await;
    let mut g = server.groups().await;
    let shards = stream_with_records(&mut s, "gone", 2, &[3, 3]).await;
    let a = join(&mut g, "gone", "one", "a", 0).await;
    join(&mut g, "gone", "two", "a", 0).await;
    let lease = &a.assignments[0];
    commit(
        &mut g,
        "gone",
        "one",
        "a",
        &lease.shard_id,
        lease.lease_epoch,
        1,
        false,
    )
    .await
    .unwrap();
    assert_eq!(list_groups(&mut g, "gone").await.unwrap(), ["one", "two"]);
    common::delete_stream(&mut s, "gone").await;
    assert_code(list_groups(&mut g, "gone").await, Code::NotFound);
    assert_code(heartbeat(&mut g, "gone", "one", "a").await, Code::NotFound);

    stream_with_records(&mut s, "gone", 2, &[]).await;
    assert!(
        list_groups(&mut g, "gone").await.unwrap().is_empty(),
        "a recreated stream starts without groups"
    );
    assert_code(describe(&mut g, "gone", "one").await, Code::NotFound);
    assert_code(heartbeat(&mut g, "gone", "one", "a").await, Code::NotFound);
    let rejoined = join(&mut g, "gone", "one", "a", 0).await;
    assert!(rejoined.assignments.iter().all(|l| l.checkpoint.is_none()));
    let p = progress(&mut g, "gone", "one").await;
    assert!(shards
        .iter()
        .all(|s| p[s].checkpoint.is_none() && p[s].lag_records == 0));
    server.stop().await;
}

#[tokio::test]
async fn unknown_members_groups_and_streams_are_not_found() {
    let server = TestServer::start().await;
    let mut s = server.streams().await;
    let mut g = server.groups().await;
    stream_with_records(&mut s, "here", 1, &[1]).await;
    join(&mut g, "here", "g", "a", 0).await;
    assert_code(
        heartbeat(&mut g, "here", "g", "stranger").await,
        Code::NotFound,
    );
    assert_code(
        heartbeat(&mut g, "here", "no-such-group", "a").await,
        Code::NotFound,
    );
    assert_code(heartbeat(&mut g, "nowhere", "g", "a").await, Code::NotFound);
    let leave = leave_group(&mut g, "here", "g", "stranger").await;
    assert_code(leave, Code::NotFound);
    assert_code(
        describe(&mut g, "here", "no-such-group").await,
        Code::NotFound,
    );
    assert_code(list_groups(&mut g, "nowhere").await, Code::NotFound);
    let join_nowhere = try_join(&mut g, "nowhere", "g", "a", 0).await;
    assert_code(join_nowhere, Code::NotFound);
    assert_code(
        commit(
            &mut g,
            "here",
            "g",
            "stranger",
            "shardId-000000000000",
            1,
            0,
            false,
        )
        .await,
        Code::FailedPrecondition,
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_names_and_timeouts_are_invalid_arguments_naming_the_field() {
    let server = TestServer::start().await;
    let mut s = server.streams().await;
    let mut g = server.groups().await;
    stream_with_records(&mut s, "ok", 1, &[1]).await;
    let long = "g".repeat(129);
    for bad_group in ["", "has space", "a/b", "..", long.as_str()] {
        let r = try_join(&mut g, "ok", bad_group, "a", 0).await;
        assert_invalid_naming(r, "group_name");
        assert_invalid_naming(heartbeat(&mut g, "ok", bad_group, "a").await, "group_name");
        assert_invalid_naming(describe(&mut g, "ok", bad_group).await, "group_name");
        let del = delete_group(&mut g, "ok", bad_group).await;
        assert_invalid_naming(del, "group_name");
    }
    for bad_stream in ["", "a/b", "sp ace"] {
        let r = try_join(&mut g, bad_stream, "g", "a", 0).await;
        assert_invalid_naming(r, "stream_name");
        assert_invalid_naming(list_groups(&mut g, bad_stream).await, "stream_name");
    }
    let long_member = "m".repeat(257);
    for bad_member in ["", "tab\there", long_member.as_str()] {
        let r = try_join(&mut g, "ok", "g", bad_member, 0).await;
        assert_invalid_naming(r, "member_id");
    }
    for bad_timeout in [1, 999, 5 * 60 * 1000 + 1] {
        let r = try_join(&mut g, "ok", "g", "a", bad_timeout).await;
        assert_invalid_naming(r, "session_timeout_ms");
    }
    assert!(
        list_groups(&mut g, "ok").await.unwrap().is_empty(),
        "no rejected join created a group"
    );
    server.stop().await;
}

#[tokio::test]
async fn millis_behind_latest_is_the_arrival_distance_from_the_checkpointed_record_to_the_newest() {
    let server = TestServer::start().await;
    let mut s = server.streams().await;
    let mut g = server.groups().await;
    let shards = stream_with_records(&mut s, "behind", 1, &[]).await;
    let shard = &shards[0];
    // Three records whose arrival times differ: time itself is the subject, so wait for the
    // clock to move past each one before the next put.
    let mut arrivals = Vec::new();
    for i in 0..3 {
        common::put(&mut s, "behind", "k", format!("r{i}")).await;
        let records = common::read_shard(&mut s, "behind", shard).await;
        let ts = records[i].approximate_arrival_timestamp_ms;
        arrivals.push(ts);
        let deadline = Deadline::after(Duration::from_secs(5));
        while common::now_ms() <= ts + 20 {
            assert!(deadline.tick().await, "the clock did not move");
        }
    }
    let epoch = join(&mut g, "behind", "g", "a", 0).await.assignments[0].lease_epoch;
    let p = progress(&mut g, "behind", "g").await;
    assert_eq!(
        p[shard].millis_behind_latest,
        arrivals[2] - arrivals[0],
        "no checkpoint"
    );
    for k in 0..3u64 {
        commit(&mut g, "behind", "g", "a", shard, epoch, k, false)
            .await
            .unwrap();
        let p = progress(&mut g, "behind", "g").await;
        assert_eq!(
            p[shard].millis_behind_latest,
            arrivals[2] - arrivals[k as usize],
            "checkpoint at {k}"
        );
        assert_eq!(p[shard].lag_records, 2 - k);
    }
    server.stop().await;
}

#[tokio::test]
async fn members_joining_a_new_group_at_once_create_it_once_and_share_the_shards() {
    let server = TestServer::start().await;
    let mut s = server.streams().await;
    let shards = stream_with_records(&mut s, "rush", 6, &[]).await;
    let mut joins = Vec::new();
    for m in 0..6 {
        let mut g = server.groups().await;
        joins.push(tokio::spawn(async move {
            join(&mut g, "rush", "g", &format!("m{m}"), 0).await;
        }));
    }
    for j in joins {
        j.await.unwrap();
    }
    let mut g = server.groups().await;
    assert_eq!(list_groups(&mut g, "rush").await.unwrap(), ["g"]);
    let mut owned = Vec::new();
    for m in 0..6 {
        owned.push(leases(&mut g, "rush", "g", &format!("m{m}")).await);
    }
    let refs: Vec<&BTreeMap<String, pb::ShardLease>> = owned.iter().collect();
    assert_eq!(partition(&shards, &refs), [1; 6]);
    server.stop().await;
}

#[tokio::test]
async fn an_expired_member_may_join_again_and_gets_fresh_leases() {
    let server = TestServer::start().await;
    let mut s = server.streams().await;
    let mut g = server.groups().await;
    let shards = stream_with_records(&mut s, "back", 4, &[]).await;
    join(&mut g, "back", "g", "gone", 1000).await;
    join(&mut g, "back", "g", "stays", 1000).await;
    let old = leases(&mut g, "back", "g", "gone").await;
    let deadline = Deadline::after(Duration::from_secs(6));
    while leases(&mut g, "back", "g", "stays").await.len() < 4 {
        assert!(deadline.tick().await, "the silent member kept its shards");
    }
    assert_code(heartbeat(&mut g, "back", "g", "gone").await, Code::NotFound);
    join(&mut g, "back", "g", "gone", 1000).await;
    let again = leases(&mut g, "back", "g", "gone").await;
    let stays = leases(&mut g, "back", "g", "stays").await;
    assert_eq!(partition(&shards, &[&again, &stays]), [2, 2]);
    let highest_before = old.values().map(|l| l.lease_epoch).max().unwrap();
    assert!(again.values().all(|l| l.lease_epoch > highest_before));
    server.stop().await;
}
