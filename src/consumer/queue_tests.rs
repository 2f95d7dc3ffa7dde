use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::meta::QueueShardRecord;

const LIMITS: WindowLimits = WindowLimits {
    max_messages: 1_000,
    max_cached_bytes: 1 << 20,
};
const VIS: Duration = Duration::from_secs(30);

fn record(seq: u64, group: &str) -> StoredRecord {
    StoredRecord {
        sequence: SequenceNumber::new(seq),
        timestamp_ms: Timestamp::from_millis(1),
        partition_key: Bytes::from_static(b"pk"),
        data: Bytes::from(format!("{group}-{seq}")),
        explicit_hash_key: None,
        message_group_id: Some(Bytes::from(group.to_owned())),
        deduplication_id: None,
        attributes: Default::default(),
    }
}

/// A shard with messages of the given groups at sequences 0, 1, 2, …
fn shard(kind: QueueKind, groups: &[&str]) -> QueueShard {
    let mut q = QueueShard::restore(kind, LIMITS, &QueueShardRecord::default());
    let records = groups
        .iter()
        .enumerate()
        .map(|(i, g)| record(i as u64, g))
        .collect();
    q.admit(records, |_| true);
    q
}

fn at(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn seqs(taken: &[Taken]) -> Vec<u64> {
    taken.iter().map(|t| t.sequence.get()).collect()
}

fn receive(q: &mut QueueShard, max: usize, now: u64) -> Vec<u64> {
    q.expire(at(now));
    seqs(&q.receive(max, usize::MAX, at(now), VIS, 0, None).delivered)
}

#[test]
fn one_receive_returns_a_group_whole_before_the_next_group() {
    let mut q = shard(QueueKind::Fifo, &["g1", "g2", "g1", "g1"]);
    assert_eq!(receive(&mut q, 10, 0), [0, 2, 3, 1]);
}

#[test]
fn a_group_with_its_head_in_flight_is_skipped_and_others_are_served() {
    let mut q = shard(QueueKind::Fifo, &["a", "a", "b", "b"]);
    assert_eq!(receive(&mut q, 1, 0), [0]);
    assert_eq!(receive(&mut q, 10, 0), [2, 3]);
    assert!(receive(&mut q, 10, 0).is_empty());
    assert_eq!(q.in_flight(), 3);
}

#[test]
fn after_expiry_only_the_visible_prefix_of_a_group_is_returned() {
    let mut q = shard(QueueKind::Fifo, &["g", "g", "g"]);
    assert_eq!(receive(&mut q, 10, 0), [0, 1, 2]);
    q.change_visibility(
        SequenceNumber::new(1),
        1,
        Duration::from_secs(100),
        at(1_000),
    )
    .unwrap();
    assert_eq!(receive(&mut q, 10, 31_000), [0]);
}

#[test]
fn a_head_made_visible_while_the_next_is_in_flight_comes_alone() {
    let mut q = shard(QueueKind::Fifo, &["g", "g", "h"]);
    assert_eq!(receive(&mut q, 2, 0), [0, 1]);
    q.change_visibility(SequenceNumber::new(0), 1, Duration::ZERO, at(10))
        .unwrap();
    assert_eq!(receive(&mut q, 10, 20), [0, 2]);
}

#[test]
fn deleting_part_of_a_group_keeps_it_blocked_until_the_head_is_done() {
    let mut q = shard(QueueKind::Fifo, &["g", "g", "g"]);
    assert_eq!(receive(&mut q, 2, 0), [0, 1]);
    assert_eq!(q.delete(SequenceNumber::new(1), 1), Ok(Deleted::Now));
    assert!(receive(&mut q, 10, 10).is_empty());
    assert_eq!(q.delete(SequenceNumber::new(0), 1), Ok(Deleted::Now));
    assert_eq!(receive(&mut q, 10, 20), [2]);
    assert_eq!(q.start(), SequenceNumber::new(2));
}

#[test]
fn each_receive_counts_and_an_old_receipt_no_longer_acts() {
    let mut q = shard(QueueKind::Standard, &["x"]);
    for count in 1..=3 {
        q.expire(at(count * 40_000));
        let got = q
            .receive(1, usize::MAX, at(count * 40_000), VIS, 0, None)
            .delivered;
        assert_eq!(got[0].receive_count, count as u32);
    }
    assert_eq!(
        q.delete(SequenceNumber::new(0), 2),
        Err(HandleRefusal::Expired)
    );
    assert_eq!(q.delete(SequenceNumber::new(0), 3), Ok(Deleted::Now));
    assert_eq!(q.delete(SequenceNumber::new(0), 3), Ok(Deleted::Already));
}

#[test]
fn an_expired_receipt_deletes_in_a_standard_queue_but_not_in_a_fifo_queue() {
    let mut standard = shard(QueueKind::Standard, &["x"]);
    receive(&mut standard, 1, 0);
    standard.expire(at(60_000));
    assert_eq!(standard.delete(SequenceNumber::new(0), 1), Ok(Deleted::Now));

    let mut fifo = shard(QueueKind::Fifo, &["x"]);
    receive(&mut fifo, 1, 0);
    fifo.expire(at(60_000));
    assert_eq!(
        fifo.delete(SequenceNumber::new(0), 1),
        Err(HandleRefusal::Expired)
    );
}

#[test]
fn a_message_past_its_receive_limit_goes_to_the_dead_letters_and_its_group_moves_on() {
    let mut q = shard(QueueKind::Fifo, &["g", "g"]);
    for round in 0..2u64 {
        let now = at(round * 40_000);
        q.expire(now);
        let s = q.receive(1, usize::MAX, now, VIS, 2, None);
        assert_eq!(seqs(&s.delivered), [0]);
    }
    let now = at(80_000);
    q.expire(now);
    let s = q.receive(10, usize::MAX, now, VIS, 2, None);
    assert!(s.delivered.is_empty(), "the group waits for its head");
    assert_eq!(seqs(&s.dead_letters), [0]);
    assert_eq!(s.dead_letters[0].receive_count, 2);
    q.dead_lettered(SequenceNumber::new(0));
    assert_eq!(
        seqs(&q.receive(10, usize::MAX, now, VIS, 2, None).delivered),
        [1]
    );
}

#[test]
fn visibility_cannot_pass_twelve_hours_from_the_receive() {
    let mut q = shard(QueueKind::Standard, &["x"]);
    receive(&mut q, 1, 0);
    let err = q
        .change_visibility(SequenceNumber::new(0), 1, MAX_VISIBILITY_TIMEOUT, at(5_000))
        .unwrap_err();
    assert_eq!(
        err,
        HandleRefusal::TooLong {
            left: MAX_VISIBILITY_TIMEOUT - Duration::from_secs(5)
        }
    );
    q.change_visibility(
        SequenceNumber::new(0),
        1,
        MAX_VISIBILITY_TIMEOUT - Duration::from_secs(5),
        at(5_000),
    )
    .unwrap();
}

#[test]
fn a_restored_shard_keeps_deletes_counts_and_deadlines() {
    let mut record = QueueShardRecord {
        start: SequenceNumber::new(1),
        ..QueueShardRecord::default()
    };
    record.done.insert(SequenceNumber::new(2));
    record.leased.insert(
        SequenceNumber::new(3),
        QueueLeaseRecord {
            receive_count: 4,
            deadline_ms: at(50_000),
        },
    );
    let mut q = QueueShard::restore(QueueKind::Standard, LIMITS, &record);
    assert_eq!(q.in_flight(), 1);
    q.expire(at(10_000));
    q.admit((1..5).map(record_at).collect(), |_| true);
    let got = q
        .receive(10, usize::MAX, at(10_000), VIS, 0, None)
        .delivered;
    assert_eq!(seqs(&got), [1, 4]);
    // The restored receipt still deletes until its deadline.
    assert_eq!(q.delete(SequenceNumber::new(3), 4), Ok(Deleted::Now));
    assert_eq!(q.in_flight(), 2);
    q.expire(at(60_000));
    assert_eq!(q.in_flight(), 0);
    assert_eq!(q.start(), SequenceNumber::new(1));
}

fn record_at(seq: u64) -> StoredRecord {
    record(seq, "g")
}

#[test]
fn a_restored_lease_whose_deadline_passed_comes_back_with_its_count() {
    let mut record = QueueShardRecord::default();
    record.leased.insert(
        SequenceNumber::new(0),
        QueueLeaseRecord {
            receive_count: 2,
            deadline_ms: at(1_000),
        },
    );
    let mut q = QueueShard::restore(QueueKind::Fifo, LIMITS, &record);
    q.expire(at(2_000));
    assert_eq!(q.in_flight(), 0);
    q.admit(vec![record_at(0), record_at(1)], |_| true);
    let got = q.receive(10, usize::MAX, at(2_000), VIS, 0, None).delivered;
    assert_eq!(seqs(&got), [0, 1]);
    assert_eq!(got[0].receive_count, 3);
    assert_eq!(got[1].receive_count, 1);
}

#[test]
fn records_that_do_not_match_are_done_at_once() {
    let mut q = QueueShard::restore(QueueKind::Standard, LIMITS, &QueueShardRecord::default());
    q.admit((0..4).map(record_at).collect(), |r| {
        r.sequence.get() % 2 == 1
    });
    assert_eq!(receive(&mut q, 10, 0), [1, 3]);
    assert_eq!(q.start(), SequenceNumber::new(1));
    q.delete(SequenceNumber::new(1), 1).unwrap();
    assert_eq!(q.start(), SequenceNumber::new(3));
}

#[test]
fn retention_past_the_low_water_mark_counts_what_was_lost() {
    let mut q = shard(QueueKind::Fifo, &["a", "a", "b", "c"]);
    assert_eq!(receive(&mut q, 1, 0), [0]);
    q.delete(SequenceNumber::new(0), 1).unwrap();
    assert_eq!(receive(&mut q, 1, 0), [1]);
    q.skip_to(SequenceNumber::new(3));
    assert_eq!(q.take_expired(), 2);
    assert_eq!(q.in_flight(), 0);
    assert_eq!(receive(&mut q, 10, 0), [3]);
    assert_eq!(
        q.delete(SequenceNumber::new(1), 1),
        Ok(Deleted::Already),
        "a message retention removed is gone"
    );
}

#[test]
fn the_window_stops_fetching_at_its_limit() {
    let limits = WindowLimits {
        max_messages: 3,
        max_cached_bytes: 0,
    };
    let mut q = QueueShard::restore(QueueKind::Standard, limits, &QueueShardRecord::default());
    assert_eq!(q.room(), 3);
    q.admit((0..3).map(record_at).collect(), |_| true);
    assert_eq!(q.room(), 0);
    let got = q.receive(10, usize::MAX, at(0), VIS, 0, None).delivered;
    assert!(got.iter().all(|t| t.record.is_none()), "nothing was cached");
    q.delete(SequenceNumber::new(0), 1).unwrap();
    assert_eq!(q.room(), 1);
}

#[test]
fn the_rest_of_a_group_received_as_often_as_its_head_goes_to_the_dead_letters_too() {
    let mut q = shard(QueueKind::Fifo, &["g", "g", "g"]);
    for attempt in 1..=2u32 {
        let s = q.receive(2, usize::MAX, at(0), VIS, 2, None);
        assert_eq!(seqs(&s.delivered), [0, 1]);
        for seq in [0, 1] {
            q.change_visibility(SequenceNumber::new(seq), attempt, Duration::ZERO, at(0))
                .unwrap();
        }
    }
    for seq in [0, 1] {
        let s = q.receive(10, usize::MAX, at(0), VIS, 2, None);
        assert_eq!(seqs(&s.dead_letters), [seq]);
        assert!(s.delivered.is_empty());
        q.dead_lettered(SequenceNumber::new(seq));
    }
    let s = q.receive(10, usize::MAX, at(0), VIS, 2, None);
    assert_eq!(seqs(&s.delivered), [2]);
    assert_eq!(s.delivered[0].receive_count, 1);
}

#[test]
fn a_receive_stops_at_its_byte_budget_but_always_takes_one() {
    let mut q = shard(QueueKind::Standard, &["a", "b", "c"]);
    let per = q.slot(0).map(|s| s.bytes as usize).unwrap();
    let s = q.receive(10, per * 2, at(0), VIS, 0, None);
    assert_eq!(seqs(&s.delivered), [0, 1]);
    let s = q.receive(10, 1, at(0), VIS, 0, None);
    assert_eq!(seqs(&s.delivered), [2], "one message even past the budget");
}

#[test]
fn a_dead_letter_that_could_not_be_stored_is_visible_again_and_counts_once_when_stored() {
    let mut q = shard(QueueKind::Fifo, &["g", "g"]);
    q.receive(1, usize::MAX, at(0), VIS, 1, None);
    q.change_visibility(SequenceNumber::new(0), 1, Duration::ZERO, at(0))
        .unwrap();
    let s = q.receive(10, usize::MAX, at(0), VIS, 1, None);
    assert_eq!(seqs(&s.dead_letters), [0]);
    q.dead_letter_failed(SequenceNumber::new(0));
    assert_eq!(q.in_flight(), 0);
    let s = q.receive(10, usize::MAX, at(0), VIS, 1, None);
    assert_eq!(seqs(&s.dead_letters), [0], "taken again");
    assert!(q.dead_lettered(SequenceNumber::new(0)));
    assert!(!q.dead_lettered(SequenceNumber::new(0)), "counted once");
}

#[test]
fn retention_far_past_the_window_skips_in_one_step() {
    let mut record = QueueShardRecord::default();
    record.done.insert(SequenceNumber::new(5));
    record.leased.insert(
        SequenceNumber::new(7),
        QueueLeaseRecord {
            receive_count: 1,
            deadline_ms: at(u64::MAX / 2),
        },
    );
    let mut q = QueueShard::restore(QueueKind::Standard, LIMITS, &record);
    assert_eq!(q.in_flight(), 1);
    q.skip_to(SequenceNumber::new(1 << 40));
    assert_eq!(q.in_flight(), 0);
    assert_eq!(q.take_expired(), (1 << 40) - 1);
    assert_eq!(q.start(), SequenceNumber::new(1 << 40));
}

#[test]
fn a_fetch_that_starts_past_the_window_after_retention_skips_the_gap() {
    let mut q = QueueShard::restore(QueueKind::Standard, LIMITS, &QueueShardRecord::default());
    q.admit(vec![record_at(5), record_at(6)], |_| true);
    assert_eq!(q.take_expired(), 5);
    assert_eq!(receive(&mut q, 10, 0), [5, 6]);
}

#[test]
fn held_groups_are_passed_over_and_served_once_released() {
    // A parent shard with group a undone; its child holds a's messages back, serves b's.
    let mut parent = shard(QueueKind::Fifo, &["a", "b"]);
    let mut child = shard(QueueKind::Fifo, &["a", "b", "a", "c"]);
    let taken = seqs(&parent.receive(1, usize::MAX, at(0), VIS, 0, None).delivered);
    assert_eq!(taken, [0]);
    let mut undone: Vec<u64> = parent.undone_groups().collect();
    undone.sort_unstable();
    let mut both = vec![group_of(&record(0, "a")), group_of(&record(1, "b"))];
    both.sort_unstable();
    assert_eq!(undone, both);

    let held: HashSet<u64> = [group_of(&record(0, "a"))].into();
    let got = child.receive(10, usize::MAX, at(0), VIS, 0, Some(&held));
    assert_eq!(seqs(&got.delivered), [1, 3]);
    // a's messages stay visible, in order, for when the parent is done with a.
    assert_eq!(
        seqs(
            &child
                .receive(10, usize::MAX, at(0), VIS, 0, Some(&held))
                .delivered
        ),
        Vec::<u64>::new()
    );
    assert_eq!(parent.delete(SequenceNumber::new(0), 1), Ok(Deleted::Now));
    assert_eq!(
        parent.undone_groups().collect::<Vec<_>>(),
        [group_of(&record(1, "b"))]
    );
    assert_eq!(
        seqs(&child.receive(10, usize::MAX, at(0), VIS, 0, None).delivered),
        [0, 2]
    );
}
