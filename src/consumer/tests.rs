//! Behaviour tests of the consumer-group coordinator, with a fake clock, and a model-based property test.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn id(name: &str) -> MemberId {
    MemberId::new(name).expect("test member ids are valid")
}

fn coordinator(floor: u64) -> GroupCoordinator {
    GroupCoordinator::new(floor, GroupConfig::default()).expect("default config is valid")
}

fn shards(n: u32) -> Vec<u32> {
    (0..n).collect()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Lease counts per member, in member-id order.
fn counts(group: &GroupCoordinator) -> Vec<usize> {
    group.members().iter().map(|m| m.leases.len()).collect()
}

fn owners(group: &GroupCoordinator) -> BTreeMap<u32, (Option<MemberId>, u64)> {
    group
        .ownership()
        .into_iter()
        .map(|o| (o.shard, (o.owner, o.epoch)))
        .collect()
}

fn join(group: &mut GroupCoordinator, name: &str, now: Instant) -> MemberView {
    group
        .join(&id(name), None, now)
        .expect("join succeeds")
        .value
}

#[test]
fn one_two_and_three_members_over_six_shards_hold_six_three_and_two_each() {
    let t0 = Instant::now();
    let mut group = coordinator(0);
    let _ = group.set_shards(&shards(6), t0);
    assert_eq!(join(&mut group, "a", t0).leases.len(), 6);
    assert_eq!(counts(&group), vec![6]);
    let _ = join(&mut group, "b", t0);
    assert_eq!(counts(&group), vec![3, 3]);
    let _ = join(&mut group, "c", t0);
    assert_eq!(counts(&group), vec![2, 2, 2]);
    assert!(group.ownership().iter().all(|o| o.owner.is_some()));
    assert_eq!(group.invariants(), Ok(()));
}

#[test]
fn a_fourth_member_over_six_shards_gets_two_two_one_one_moving_only_one_shard() {
    let t0 = Instant::now();
    let mut group = coordinator(0);
    let _ = group.set_shards(&shards(6), t0);
    for name in ["a", "b", "c"] {
        let _ = join(&mut group, name, t0);
    }
    let before = owners(&group);
    let d = join(&mut group, "d", t0);
    let after = owners(&group);

    let mut sorted = counts(&group);
    sorted.sort_unstable();
    assert_eq!(sorted, vec![1, 1, 2, 2]);
    let moved: Vec<u32> = (0..6).filter(|s| before[s].0 != after[s].0).collect();
    assert_eq!(moved.len(), 1, "only the new member's one shard moves");
    assert_eq!(d.leases.len(), 1);
    assert_eq!(d.leases[0].shard, moved[0]);
}

#[test]
fn a_member_that_stops_heartbeating_loses_its_shards_after_its_timeout_and_its_late_commit_is_fenced(
) {
    let t0 = Instant::now();
    let mut group = coordinator(0);
    let _ = group.set_shards(&shards(4), t0);
    let a = id("a");
    let b = id("b");
    let a_leases = group
        .join(&a, Some(secs(3)), t0)
        .expect("join")
        .value
        .leases;
    let _ = group.join(&b, Some(secs(10)), t0).expect("join");
    let a_leases_now = group.heartbeat(&a, t0).expect("heartbeat").value.leases;
    assert_eq!(a_leases_now.len(), 2);
    assert_ne!(a_leases, a_leases_now, "b's join took half of a's shards");
    let held = a_leases_now[0];
    assert_eq!(group.check_owner(&a, held.shard, held.epoch, t0), Ok(()));

    // b keeps heartbeating, a goes silent.
    let _ = group.heartbeat(&b, t0 + secs(2)).expect("heartbeat");
    assert_eq!(group.next_deadline(), Some(t0 + secs(3)));
    let expired = group.expire(t0 + secs(3)).value;
    assert_eq!(expired, vec![a.clone()]);
    let b_view = group.heartbeat(&b, t0 + secs(4)).expect("heartbeat").value;
    assert_eq!(b_view.leases.len(), 4);

    let err = group
        .check_owner(&a, held.shard, held.epoch, t0 + secs(4))
        .unwrap_err();
    let taken = b_view
        .leases
        .iter()
        .find(|l| l.shard == held.shard)
        .expect("b holds a's old shard");
    assert!(taken.epoch > held.epoch);
    assert_eq!(
        err,
        FenceError::NotOwner {
            member: a.clone(),
            shard: held.shard,
            owner: Some(b.clone()),
            epoch: taken.epoch,
        }
    );
    assert!(err.to_string().contains("member b"), "{err}");
}

#[test]
fn a_silent_owner_is_fenced_at_its_deadline_even_before_expiry_runs() {
    let t0 = Instant::now();
    let mut group = coordinator(0);
    let _ = group.set_shards(&shards(1), t0);
    let a = id("a");
    let lease = group
        .join(&a, Some(secs(1)), t0)
        .expect("join")
        .value
        .leases[0];
    let just_before = t0 + secs(1) - Duration::from_nanos(1);
    assert_eq!(group.check_owner(&a, 0, lease.epoch, just_before), Ok(()));
    assert_eq!(
        group.check_owner(&a, 0, lease.epoch, t0 + secs(1)),
        Err(FenceError::SessionExpired {
            member: a.clone(),
            shard: 0,
            epoch: lease.epoch
        })
    );
}

#[test]
fn next_deadline_is_the_instant_expire_removes_the_member() {
    let t0 = Instant::now();
    let mut group = coordinator(0);
    assert_eq!(group.next_deadline(), None);
    let _ = group.join(&id("a"), Some(secs(2)), t0).expect("join");
    let _ = group.join(&id("b"), Some(secs(5)), t0).expect("join");
    let deadline = group.next_deadline().expect("members are live");
    assert_eq!(deadline, t0 + secs(2));
    assert!(group
        .expire(deadline - Duration::from_nanos(1))
        .value
        .is_empty());
    assert_eq!(group.expire(deadline).value, vec![id("a")]);
    assert_eq!(group.next_deadline(), Some(t0 + secs(5)));
}

#[test]
fn a_leave_hands_its_shards_over_at_once() {
    let t0 = Instant::now();
    let mut group = coordinator(0);
    let _ = group.set_shards(&shards(6), t0);
    for name in ["a", "b", "c"] {
        let _ = join(&mut group, name, t0);
    }
    let gone = group
        .heartbeat(&id("b"), t0)
        .expect("heartbeat")
        .value
        .leases;
    let _ = group.leave(&id("b"), t0).expect("leave");
    assert_eq!(counts(&group), vec![3, 3]);
    for lease in gone {
        let (owner, epoch) = owners(&group)[&lease.shard].clone();
        assert!(matches!(owner, Some(ref o) if *o != id("b")));
        assert!(epoch > lease.epoch);
        assert!(matches!(
            group.check_owner(&id("b"), lease.shard, lease.epoch, t0),
            Err(FenceError::NotOwner { .. })
        ));
    }
    assert!(matches!(
        group.heartbeat(&id("b"), t0),
        Err(GroupError::UnknownMember { .. })
    ));
}

/// What the metadata store does with an [`Outcome::persist_epoch_floor`].
fn persist(persisted: &mut u64, floor: Option<u64>) {
    if let Some(floor) = floor {
        *persisted = floor;
    }
}

#[test]
fn every_owner_change_bumps_the_epoch_and_epochs_never_go_back_across_a_restart() {
    let t0 = Instant::now();
    let mut persisted = 0;
    let mut group = coordinator(persisted);
    persist(
        &mut persisted,
        group.set_shards(&shards(4), t0).persist_epoch_floor,
    );
    let a = group.join(&id("a"), None, t0).expect("join");
    persist(&mut persisted, a.persist_epoch_floor);
    let first: Vec<u64> = a.value.leases.iter().map(|l| l.epoch).collect();
    assert_eq!(first, vec![1, 2, 3, 4], "each shard got its first owner");

    let b = group.join(&id("b"), None, t0).expect("join");
    persist(&mut persisted, b.persist_epoch_floor);
    let after_b = owners(&group);
    for lease in &b.value.leases {
        assert!(
            lease.epoch > 4,
            "a moved shard gets an epoch above all before"
        );
    }
    let _ = group.heartbeat(&id("a"), t0).expect("heartbeat");
    assert_eq!(owners(&group), after_b, "no owner change, no new epoch");
    let highest_before_restart = group.max_epoch();
    assert!(highest_before_restart <= persisted);

    // Restart: members are gone, only the persisted floor survives.
    let mut group = coordinator(persisted);
    persist(
        &mut persisted,
        group.set_shards(&shards(4), t0).persist_epoch_floor,
    );
    let a = group.join(&id("a"), None, t0).expect("join");
    persist(&mut persisted, a.persist_epoch_floor);
    for lease in &a.value.leases {
        assert!(lease.epoch > highest_before_restart);
        assert!(lease.epoch <= persisted);
    }
}

#[test]
fn the_epoch_floor_is_asked_to_be_persisted_once_per_block() {
    let t0 = Instant::now();
    let config = GroupConfig {
        epoch_block: 3,
        ..GroupConfig::default()
    };
    let mut group = GroupCoordinator::new(10, config).expect("valid");
    assert_eq!(group.reserved_epoch_floor(), 10);
    assert_eq!(group.set_shards(&shards(2), t0).persist_epoch_floor, None);
    let first = group.join(&id("a"), None, t0).expect("join");
    assert_eq!(
        first.persist_epoch_floor,
        Some(13),
        "epochs 11 and 12 handed out"
    );
    assert_eq!(group.max_epoch(), 12);
    let second = group.join(&id("b"), None, t0).expect("join");
    assert_eq!(
        second.persist_epoch_floor, None,
        "epoch 13 is within the block"
    );
    assert_eq!(group.max_epoch(), 13);
    let third = group.leave(&id("b"), t0).expect("leave");
    assert_eq!(third.persist_epoch_floor, Some(16));
    assert_eq!(group.max_epoch(), 14);
    assert_eq!(group.reserved_epoch_floor(), 16);
}

#[test]
fn heartbeat_of_an_expired_or_unknown_member_is_unknown_member() {
    let t0 = Instant::now();
    let mut group = coordinator(0);
    let _ = group.set_shards(&shards(2), t0);
    assert_eq!(
        group.heartbeat(&id("ghost"), t0).map(|o| o.value),
        Err(GroupError::UnknownMember {
            member: id("ghost")
        })
    );
    let _ = group.join(&id("a"), Some(secs(1)), t0).expect("join");
    let _ = group
        .heartbeat(&id("a"), t0 + Duration::from_millis(900))
        .expect("in time");
    let late = group.heartbeat(&id("a"), t0 + Duration::from_millis(1900));
    assert!(matches!(late, Err(GroupError::UnknownMember { ref member }) if *member == id("a")));
    assert!(matches!(
        group.leave(&id("a"), t0 + secs(2)),
        Err(GroupError::UnknownMember { .. })
    ));
    // Joining again is the way back, with fresh epochs.
    let back = group.join(&id("a"), None, t0 + secs(2)).expect("join");
    assert_eq!(back.value.leases.len(), 2);
    assert!(back.value.leases.iter().all(|l| l.epoch > 2));
}

#[test]
fn a_refused_call_changes_nothing_not_even_expiry() {
    let t0 = Instant::now();
    let mut group = coordinator(0);
    let _ = group.set_shards(&shards(2), t0);
    let _ = group.join(&id("a"), Some(secs(1)), t0).expect("join");
    let later = t0 + secs(5);
    assert!(group.heartbeat(&id("ghost"), later).is_err());
    assert!(group.join(&id("b"), Some(secs(3600)), later).is_err());
    assert_eq!(
        group.members().len(),
        1,
        "a is expired only by a successful call"
    );
    assert_eq!(group.expire(later).value, vec![id("a")]);
}

#[test]
fn a_rejoin_of_a_live_member_keeps_its_leases_and_takes_the_new_timeout() {
    let t0 = Instant::now();
    let mut group = coordinator(0);
    let _ = group.set_shards(&shards(3), t0);
    let first = group.join(&id("a"), Some(secs(2)), t0).expect("join").value;
    let again = group
        .join(&id("a"), Some(secs(30)), t0 + secs(1))
        .expect("rejoin")
        .value;
    assert_eq!(first.leases, again.leases);
    assert_eq!(again.session_timeout, secs(30));
    assert_eq!(again.heartbeat_interval(), secs(10));
    assert_eq!(group.next_deadline(), Some(t0 + secs(31)));
}

#[test]
fn no_or_zero_session_timeout_means_the_default_and_the_heartbeat_interval_is_a_third() {
    let t0 = Instant::now();
    let mut group = coordinator(0);
    for requested in [None, Some(Duration::ZERO)] {
        let view = group.join(&id("a"), requested, t0).expect("join").value;
        assert_eq!(view.session_timeout, DEFAULT_SESSION_TIMEOUT);
        assert_eq!(view.heartbeat_interval(), DEFAULT_SESSION_TIMEOUT / 3);
    }
}

#[test]
fn a_session_timeout_out_of_range_is_refused_naming_session_timeout_ms() {
    let t0 = Instant::now();
    let mut group = coordinator(0);
    for requested in [
        MIN_SESSION_TIMEOUT - Duration::from_millis(1),
        MAX_SESSION_TIMEOUT + Duration::from_millis(1),
    ] {
        let err = group.join(&id("a"), Some(requested), t0).unwrap_err();
        assert_eq!(
            err,
            GroupError::SessionTimeoutOutOfRange {
                requested,
                min: MIN_SESSION_TIMEOUT,
                max: MAX_SESSION_TIMEOUT
            }
        );
        assert_eq!(err.field(), Some("session_timeout_ms"));
        assert!(err.to_string().contains("session_timeout_ms"), "{err}");
    }
    assert!(group.join(&id("a"), Some(MIN_SESSION_TIMEOUT), t0).is_ok());
    assert!(group.join(&id("a"), Some(MAX_SESSION_TIMEOUT), t0).is_ok());
}

#[test]
fn check_owner_says_who_owns_the_shard_and_with_which_epoch() {
    let t0 = Instant::now();
    let mut group = coordinator(0);
    let _ = group.set_shards(&shards(2), t0);
    let a = group.join(&id("a"), None, t0).expect("join").value;
    let lease = a.leases[0];
    assert_eq!(
        group.check_owner(&id("a"), lease.shard, lease.epoch + 1, t0),
        Err(FenceError::StaleEpoch {
            member: id("a"),
            shard: lease.shard,
            presented: lease.epoch + 1,
            current: lease.epoch,
        })
    );
    assert_eq!(
        group.check_owner(&id("x"), lease.shard, lease.epoch, t0),
        Err(FenceError::NotOwner {
            member: id("x"),
            shard: lease.shard,
            owner: Some(id("a")),
            epoch: lease.epoch,
        })
    );
    assert_eq!(
        group.check_owner(&id("a"), 7, 1, t0),
        Err(FenceError::UnknownShard { shard: 7 })
    );
}

#[test]
fn new_shards_are_spread_and_closed_shards_are_no_longer_leased() {
    let t0 = Instant::now();
    let mut group = coordinator(0);
    let _ = group.set_shards(&shards(2), t0);
    let _ = join(&mut group, "a", t0);
    let _ = join(&mut group, "b", t0);
    let before = owners(&group);
    let _ = group.set_shards(&[0, 1, 2, 3, 3], t0);
    assert_eq!(counts(&group), vec![2, 2]);
    let after = owners(&group);
    assert_eq!(after[&0], before[&0], "kept shards keep owner and epoch");
    assert_eq!(after[&1], before[&1]);

    let (owner, epoch) = after[&0].clone();
    let owner = owner.expect("owned");
    let _ = group.set_shards(&[1, 2, 3], t0);
    assert_eq!(
        group.check_owner(&owner, 0, epoch, t0),
        Err(FenceError::UnknownShard { shard: 0 })
    );
    assert_eq!(group.ownership().len(), 3);
}

#[test]
fn shards_of_an_empty_group_are_unowned_and_taken_by_the_next_member() {
    let t0 = Instant::now();
    let mut group = coordinator(0);
    let _ = group.set_shards(&shards(2), t0);
    assert!(group.ownership().iter().all(|o| o.owner.is_none()));
    let _ = join(&mut group, "a", t0);
    let _ = group.leave(&id("a"), t0).expect("leave");
    assert!(group.ownership().iter().all(|o| o.owner.is_none()));
    let b = join(&mut group, "b", t0);
    assert_eq!(b.leases.len(), 2);
    assert!(b.leases.iter().all(|l| l.epoch > 2));
}

#[test]
fn a_full_group_refuses_new_members_but_not_rejoins() {
    let t0 = Instant::now();
    let config = GroupConfig {
        max_members: 2,
        ..GroupConfig::default()
    };
    let mut group = GroupCoordinator::new(0, config).expect("valid");
    let _ = join(&mut group, "a", t0);
    let _ = join(&mut group, "b", t0);
    assert_eq!(
        group.join(&id("c"), None, t0).map(|o| o.value),
        Err(GroupError::TooManyMembers { limit: 2 })
    );
    assert!(group.join(&id("a"), None, t0).is_ok());
    // Once a member's session has run out its place is free.
    let later = t0 + DEFAULT_SESSION_TIMEOUT;
    assert!(group.join(&id("c"), None, later).is_ok());
}

#[test]
fn unusable_settings_and_a_corrupt_floor_are_refused_by_name() {
    let bad = [
        (
            GroupConfig {
                min_session_timeout: Duration::ZERO,
                ..GroupConfig::default()
            },
            "min_session_timeout",
        ),
        (
            GroupConfig {
                max_session_timeout: Duration::from_millis(500),
                ..GroupConfig::default()
            },
            "max_session_timeout",
        ),
        (
            GroupConfig {
                default_session_timeout: secs(3600),
                ..GroupConfig::default()
            },
            "default_session_timeout",
        ),
        (
            GroupConfig {
                max_members: 0,
                ..GroupConfig::default()
            },
            "max_members",
        ),
        (
            GroupConfig {
                epoch_block: 0,
                ..GroupConfig::default()
            },
            "epoch_block",
        ),
    ];
    for (config, setting) in bad {
        assert!(
            matches!(config.validate(), Err(GroupError::InvalidConfig { setting: s, .. }) if s == setting),
            "{setting}"
        );
    }
    assert!(matches!(
        GroupCoordinator::new(MAX_EPOCH_FLOOR + 1, GroupConfig::default()),
        Err(GroupError::EpochFloorTooHigh { .. })
    ));
    assert!(GroupCoordinator::new(MAX_EPOCH_FLOOR, GroupConfig::default()).is_ok());
}

/// One step of the model-based test.
#[derive(Debug, Clone)]
enum Op {
    Join(usize, Option<u64>),
    Heartbeat(usize),
    Leave(usize),
    Advance(u64),
    SetShards(Vec<u32>),
    Expire,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..6usize, prop_oneof![Just(None), Just(Some(1_000)), Just(Some(3_000)), Just(Some(10_000))])
            .prop_map(|(m, t)| Op::Join(m, t)),
        4 => (0..6usize).prop_map(Op::Heartbeat),
        2 => (0..6usize).prop_map(Op::Leave),
        3 => (0..4_000u64).prop_map(Op::Advance),
        1 => proptest::collection::vec(0..12u32, 0..12).prop_map(Op::SetShards),
        1 => Just(Op::Expire),
        1 => Just(Op::Restart),
    ]
}

type Snapshot = BTreeMap<u32, (Option<MemberId>, u64)>;

fn member_set(group: &GroupCoordinator) -> BTreeSet<MemberId> {
    group.members().into_iter().map(|m| m.member_id).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_membership_histories_keep_every_invariant(ops in proptest::collection::vec(op(), 1..80)) {
        let names: Vec<MemberId> = (0..6).map(|i| id(&format!("member-{i}"))).collect();
        let t0 = Instant::now();
        let mut now = t0;
        let config = GroupConfig { epoch_block: 4, ..GroupConfig::default() };
        let mut persisted = 0u64;
        let mut open: Vec<u32> = shards(6);
        let mut group = GroupCoordinator::new(persisted, config.clone()).expect("valid");
        let _ = group.set_shards(&open, now);
        // Highest epoch any client could have seen, over every incarnation of the coordinator.
        let mut highest_seen = 0u64;

        for op in ops {
            let before: Snapshot = owners(&group);
            let members_before = member_set(&group);
            let views_before = group.members();
            // Members whose session has run out: any successful call expires them first.
            let mut expired_now: BTreeSet<MemberId> = group.clone().expire(now).value.into_iter().collect();
            let mut succeeded = true;
            let mut waited = false;
            let mut restarted = false;
            let floor = match &op {
                Op::Join(m, t) => match group.join(&names[*m], t.map(Duration::from_millis), now) {
                    Ok(o) => o.persist_epoch_floor,
                    Err(_) => { succeeded = false; None }
                },
                Op::Heartbeat(m) => match group.heartbeat(&names[*m], now) {
                    Ok(o) => o.persist_epoch_floor,
                    Err(e) => {
                        let unknown = matches!(e, GroupError::UnknownMember { .. });
                        prop_assert!(unknown, "heartbeat refused with {}", e);
                        succeeded = false;
                        None
                    }
                },
                Op::Leave(m) => match group.leave(&names[*m], now) {
                    Ok(o) => o.persist_epoch_floor,
                    Err(_) => { succeeded = false; None }
                },
                Op::Advance(ms) => { now += Duration::from_millis(*ms); succeeded = false; waited = true; None }
                Op::SetShards(list) => { open = list.clone(); group.set_shards(&open, now).persist_epoch_floor }
                Op::Expire => group.expire(now).persist_epoch_floor,
                Op::Restart => {
                    group = GroupCoordinator::new(persisted, config.clone()).expect("valid");
                    restarted = true;
                    group.set_shards(&open, now).persist_epoch_floor
                }
            };
            if !succeeded {
                expired_now.clear();
            }
            if let Some(floor) = floor {
                prop_assert!(floor > persisted, "the floor only rises");
                persisted = floor;
            }

            prop_assert_eq!(group.invariants(), Ok(()));
            let after: Snapshot = owners(&group);
            let members_after = member_set(&group);
            prop_assert!(group.max_epoch() <= persisted, "every epoch handed out is persisted");

            // Only members own shards, at most one each (a map), counts differ by at most one.
            for (shard, (owner, _)) in &after {
                if let Some(owner) = owner {
                    prop_assert!(members_after.contains(owner), "shard {} owned by non-member", shard);
                }
                prop_assert!(owner.is_some() || members_after.is_empty(), "shard {} unowned", shard);
            }
            let counts = counts(&group);
            if let (Some(min), Some(max)) = (counts.iter().min(), counts.iter().max()) {
                prop_assert!(max - min <= 1, "unbalanced {:?}", counts);
            }
            if succeeded {
                prop_assert!(group.next_deadline().is_none_or(|d| d > now), "a dead member survived");
            }

            // Epochs: a new owner, or an owner back after its session ran out, means an epoch
            // above everything ever handed out; otherwise the epoch stays.
            let mut moved = 0usize;
            for (shard, (owner, epoch)) in &after {
                let previous = if restarted { None } else { before.get(shard) };
                match (previous, owner) {
                    (Some((Some(old_owner), old_epoch)), Some(new_owner))
                        if old_owner == new_owner && !expired_now.contains(old_owner) =>
                    {
                        prop_assert_eq!(epoch, old_epoch, "shard {} epoch changed without a move", shard);
                    }
                    (_, Some(_)) => {
                        prop_assert!(*epoch > highest_seen, "shard {} epoch {} not above {}", shard, epoch, highest_seen);
                        moved += 1;
                    }
                    (_, None) => {}
                }
            }
            for (_, epoch) in after.values() {
                highest_seen = highest_seen.max(*epoch);
            }

            // Sticky: with the shard list unchanged, a plain join moves only what the newcomer
            // gets, and departures (leave, expiry) move only what the departed held.
            let mut gone = expired_now.clone();
            if let (Op::Leave(m), true) = (&op, succeeded) {
                gone.insert(names[*m].clone());
            }
            let same_shards = before.keys().eq(after.keys()) && !restarted;
            if same_shards && gone.is_empty() && members_after.len() == members_before.len() + 1 {
                let newcomer = members_after.difference(&members_before).next().expect("one new member");
                let got = group.members().into_iter().find(|m| &m.member_id == newcomer).map_or(0, |m| m.leases.len());
                prop_assert_eq!(moved, got, "a join moved more than the newcomer's share");
            }
            if same_shards && !gone.is_empty() && gone.is_disjoint(&members_after) && members_after.len() + gone.len() == members_before.len() && !members_after.is_empty() {
                let freed: usize = views_before
                    .iter()
                    .filter(|m| gone.contains(&m.member_id))
                    .map(|m| m.leases.len())
                    .sum();
                prop_assert_eq!(moved, freed, "a departure moved more than the departed held");
            }
            // Sticky, per member: a survivor only loses or only gains (shards it keeps stay put),
            // and one that had to give shards up ends with at least as many as any that gained.
            if !restarted {
                let held_before: BTreeMap<&MemberId, BTreeSet<u32>> = views_before
                    .iter()
                    .map(|m| (&m.member_id, m.leases.iter().map(|l| l.shard).filter(|s| after.contains_key(s)).collect()))
                    .collect();
                let mut losers_min = usize::MAX;
                let mut gainers_max = 0usize;
                for view in group.members() {
                    // A member back after its session ran out is a new incarnation, not a survivor.
                    if expired_now.contains(&view.member_id) {
                        continue;
                    }
                    let Some(old) = held_before.get(&view.member_id) else { continue };
                    let new: BTreeSet<u32> = view.leases.iter().map(|l| l.shard).collect();
                    prop_assert!(new.is_subset(old) || new.is_superset(old), "{} both lost and gained", view.member_id);
                    if new.len() < old.len() {
                        losers_min = losers_min.min(new.len());
                    }
                    if new.len() > old.len() {
                        gainers_max = gainers_max.max(new.len());
                    }
                }
                prop_assert!(losers_min >= gainers_max || losers_min == usize::MAX, "a member gave up shards it could have kept");
            }
            if !succeeded && !waited {
                prop_assert_eq!(&before, &after, "a refused call changed ownership");
                prop_assert_eq!(&views_before, &group.members(), "a refused call changed members");
            }
        }
    }
}
