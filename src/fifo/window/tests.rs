//! Unit tests of the dedup window: answers, expiry, the cap, rebuilding from the log, upkeep
//! and the memory each id costs.

use super::super::test_support::*;
use super::super::ticket::Held;
use super::index::MAX_RECENT_IDS;
use super::log::Record;
use super::*;
use crate::stream::DedupScope;

#[test]
fn duplicate_within_the_window_returns_the_first_sequence() {
    let window = window();
    let t0 = Instant::now();
    fresh(window.reserve(key("a"), t0)).commit(3, seq(41), t0);
    let first = first_record(3, 41);
    assert_eq!(duplicate(window.reserve(key("a"), t0)), first);
    let last_moment = t0 + WINDOW - Duration::from_nanos(1);
    assert_eq!(duplicate(window.reserve(key("a"), last_moment)), first);
    assert_eq!(window.len(), 1);
}

#[test]
fn id_is_fresh_again_once_the_window_has_passed() {
    let window = window();
    let t0 = Instant::now();
    fresh(window.reserve(key("a"), t0)).commit(0, seq(1), t0);
    let ticket = fresh(window.reserve(key("a"), t0 + WINDOW));
    ticket.commit(0, seq(7), t0 + WINDOW);
    assert_eq!(
        duplicate(window.reserve(key("a"), t0 + WINDOW)),
        first_record(0, 7)
    );
}

#[test]
fn duplicates_do_not_extend_the_window() {
    let window = window();
    let t0 = Instant::now();
    fresh(window.reserve(key("a"), t0)).commit(0, seq(1), t0);
    duplicate(window.reserve(key("a"), t0 + WINDOW / 2));
    drop(fresh(window.reserve(key("a"), t0 + WINDOW)));
}

#[test]
fn expired_ids_are_evicted_by_later_calls() {
    let window = window();
    let t0 = Instant::now();
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        let at = t0 + Duration::from_secs(i as u64);
        fresh(window.reserve(key(id), at)).commit(0, seq(i as u64), at);
    }
    assert_eq!(window.len(), 3);
    drop(fresh(
        window.reserve(key("z"), t0 + WINDOW + Duration::from_secs(1)),
    ));
    // "a" and "b" expired and were evicted; "c" is still live; "z"'s ticket was dropped.
    assert_eq!(window.len(), 1);
    duplicate(window.reserve(key("c"), t0 + WINDOW + Duration::from_secs(1)));
    drop(fresh(
        window.reserve(key("z"), t0 + WINDOW + Duration::from_secs(2)),
    ));
    assert!(window.is_empty());
}

#[test]
fn group_scope_distinguishes_groups_and_stream_scope_does_not() {
    let window = window();
    let t0 = Instant::now();
    let group = |g: &str| DedupKey::for_id(DedupScope::MessageGroup, Some(g), "x");
    let stream = |g: &str| DedupKey::for_id(DedupScope::Stream, Some(g), "x");
    fresh(window.reserve(group("g1"), t0)).commit(0, seq(1), t0);
    fresh(window.reserve(group("g2"), t0)).commit(1, seq(2), t0);
    fresh(window.reserve(stream("g1"), t0)).commit(0, seq(3), t0);
    assert_eq!(
        duplicate(window.reserve(stream("g2"), t0)),
        first_record(0, 3)
    );
    assert_eq!(duplicate(window.reserve(group("g2"), t0)).sequence, seq(2));
}

#[test]
fn content_keys_of_different_data_are_different_ids() {
    let window = window();
    let t0 = Instant::now();
    let content = |data: &[u8]| DedupKey::for_content(DedupScope::Stream, None, data, &[]);
    fresh(window.reserve(content(b"one"), t0)).commit(0, seq(1), t0);
    drop(fresh(window.reserve(content(b"two"), t0)));
    duplicate(window.reserve(content(b"one"), t0));
}

#[test]
fn cap_refuses_new_ids_but_still_answers_known_ones() {
    let window = window_with_cap(2);
    let t0 = Instant::now();
    fresh(window.reserve(key("a"), t0)).commit(0, seq(1), t0);
    let _held = fresh(window.reserve(key("b"), t0));
    assert_eq!(
        window.reserve(key("c"), t0).unwrap_err(),
        FifoError::WindowFull {
            live_ids: 2,
            max_live_ids: 2
        }
    );
    assert_eq!(duplicate(window.reserve(key("a"), t0)).sequence, seq(1));
    in_flight(window.reserve(key("b"), t0));
    assert_eq!(
        window.insert_committed(key("d"), 0, seq(2), t0),
        Err(FifoError::WindowFull {
            live_ids: 2,
            max_live_ids: 2
        })
    );
    // Once "a" expires its room is free again.
    drop(fresh(window.reserve(key("c"), t0 + WINDOW)));
}

#[test]
fn expired_id_not_yet_evicted_is_fresh_again() {
    let window = window();
    let t0 = Instant::now();
    let t1 = t0 + Duration::from_secs(10);
    // "b" commits first with a later clock reading, so "a"'s queue entry sorts behind it
    // and "a" stays in the map after it expires.
    fresh(window.reserve(key("b"), t1)).commit(0, seq(1), t1);
    fresh(window.reserve(key("a"), t0)).commit(0, seq(2), t0);
    let at = t0 + WINDOW;
    let again = fresh(window.reserve(key("a"), at));
    assert_eq!(window.len(), 2);
    again.commit(0, seq(3), at);
    assert_eq!(duplicate(window.reserve(key("a"), at)).sequence, seq(3));
}

#[test]
fn queue_entries_waiting_for_eviction_count_toward_the_cap() {
    let window = window_with_cap(2);
    let t0 = Instant::now();
    let t1 = t0 + Duration::from_secs(10);
    fresh(window.reserve(key("b"), t1)).commit(0, seq(1), t1);
    fresh(window.reserve(key("a"), t0)).commit(0, seq(2), t0);
    // Re-reserving expired "a" would add a third queue entry while two are still queued.
    assert!(matches!(
        window.reserve(key("a"), t0 + WINDOW),
        Err(FifoError::WindowFull { .. })
    ));
    // Once the front ("b") expires both entries go and the id is taken again.
    drop(fresh(window.reserve(key("a"), t1 + WINDOW)));
    assert!(window.is_empty());
}

#[test]
fn stale_queue_entry_does_not_evict_an_id_committed_again() {
    let window = window();
    let t0 = Instant::now();
    let t5 = t0 + Duration::from_secs(5);
    fresh(window.reserve(key("front"), t5)).commit(0, seq(1), t5);
    fresh(window.reserve(key("a"), t0)).commit(0, seq(2), t0);
    // "a" expired at t0 + WINDOW but its queue entry waits behind "front" until t5 + WINDOW.
    let again_at = t0 + WINDOW;
    fresh(window.reserve(key("a"), again_at)).commit(0, seq(3), again_at);
    let after_front = t5 + WINDOW + Duration::from_secs(1);
    assert_eq!(
        duplicate(window.reserve(key("a"), after_front)).sequence,
        seq(3)
    );
    // "front" is gone; "a" (committed again) remains.
    assert_eq!(window.len(), 1);
}

#[test]
fn commit_times_out_of_order_are_all_evicted() {
    let window = window();
    let t0 = Instant::now();
    for (i, offset) in [10u64, 0, 7, 3].iter().enumerate() {
        let at = t0 + Duration::from_secs(*offset);
        fresh(window.reserve(key(&i.to_string()), at)).commit(0, seq(i as u64), at);
    }
    drop(fresh(window.reserve(
        key("probe"),
        t0 + WINDOW + Duration::from_secs(10),
    )));
    assert!(window.is_empty());
}

#[test]
fn rebuild_keeps_the_first_of_two_overlapping_records() {
    let t0 = Instant::now();
    let later = t0 + Duration::from_secs(10);
    for in_order in [true, false] {
        let window = window();
        let records = [(t0, 5u64), (later, 9)];
        let mut feed = records.to_vec();
        if !in_order {
            feed.reverse();
        }
        for (at, sequence) in feed {
            window
                .insert_committed(key("a"), 0, seq(sequence), at)
                .unwrap();
        }
        assert_eq!(duplicate(window.reserve(key("a"), later)).sequence, seq(5));
        assert_eq!(window.len(), 1);
    }
}

#[test]
fn rebuild_keeps_the_live_record_when_the_first_had_expired() {
    let t0 = Instant::now();
    let reused = t0 + WINDOW + Duration::from_secs(100);
    for in_order in [true, false] {
        let window = window();
        let mut feed = vec![(t0, 5u64), (reused, 9)];
        if !in_order {
            feed.reverse();
        }
        for (at, sequence) in feed {
            window
                .insert_committed(key("a"), 0, seq(sequence), at)
                .unwrap();
        }
        assert_eq!(duplicate(window.reserve(key("a"), reused)).sequence, seq(9));
    }
}

#[test]
fn rebuilt_ids_expire_a_window_after_their_commit() {
    let window = window();
    let t0 = Instant::now();
    window.insert_committed(key("a"), 2, seq(8), t0).unwrap();
    assert_eq!(
        duplicate(window.reserve(key("a"), t0 + WINDOW / 2)),
        first_record(2, 8)
    );
    drop(fresh(window.reserve(key("a"), t0 + WINDOW)));
}

#[test]
fn config_out_of_range_is_rejected_naming_the_setting() {
    let zero = DedupWindowConfig {
        window: Duration::ZERO,
        ..DedupWindowConfig::default()
    };
    let err = DedupWindow::new(zero).unwrap_err();
    assert!(err.to_string().starts_with("dedup_window "), "{err}");
    let long = DedupWindowConfig {
        window: MAX_DEDUP_WINDOW + Duration::from_secs(1),
        ..DedupWindowConfig::default()
    };
    assert!(matches!(
        long.validate(),
        Err(FifoError::WindowOutOfRange { .. })
    ));
    let no_ids = DedupWindowConfig {
        max_live_ids: 0,
        ..DedupWindowConfig::default()
    };
    assert_eq!(no_ids.validate(), Err(FifoError::ZeroLiveIdCap));
    assert_eq!(DedupWindowConfig::default().validate(), Ok(()));
    assert_eq!(window().window(), WINDOW);
}

#[test]
fn id_in_flight_at_the_front_does_not_hold_expired_ids_back() {
    let window = window();
    let t0 = Instant::now();
    let slow = fresh(window.reserve(key("slow"), t0));
    for (i, id) in ["a", "b"].iter().enumerate() {
        fresh(window.reserve(key(id), t0)).commit(0, seq(i as u64), t0);
    }
    let later = t0 + WINDOW;
    drop(fresh(window.reserve(key("probe"), later)));
    // "a" and "b" are gone although "slow", reserved before them, is still in flight.
    assert_eq!(window.len(), 1);
    in_flight(window.reserve(key("slow"), later));
    // Its record moved in the log; the ticket still finds it.
    slow.commit(4, seq(9), later);
    assert_eq!(
        duplicate(window.reserve(key("slow"), later)),
        first_record(4, 9)
    );
}

#[test]
fn one_call_evicts_a_bounded_share_and_later_calls_the_rest() {
    let window = window();
    let t0 = Instant::now();
    let ids = 3 * MIN_EVICTIONS_PER_CALL;
    for i in 0..ids {
        fresh(window.reserve(key(&i.to_string()), t0)).commit(0, seq(i as u64), t0);
    }
    let later = t0 + WINDOW;
    let probe = fresh(window.reserve(key("probe"), later));
    assert_eq!(window.len(), ids - MIN_EVICTIONS_PER_CALL + 1);
    // An expired id not evicted yet is absent all the same.
    let last = key(&(ids - 1).to_string());
    fresh(window.reserve(last, later)).commit(1, seq(99), later);
    assert_eq!(duplicate(window.reserve(last, later)).sequence, seq(99));
    // The calls since evicted the rest: "probe" and "last" remain.
    assert_eq!(window.len(), 2);
    drop(probe);
}

#[tokio::test]
async fn window_at_its_cap_evicts_past_a_long_run_of_ids_in_flight() {
    let in_flight_ids = MIN_EVICTIONS_PER_CALL + 10;
    let committed_ids = MIN_EVICTIONS_PER_CALL;
    let window = window_with_cap(in_flight_ids + committed_ids);
    let t0 = Instant::now();
    let keys: Vec<Option<DedupKey>> = (0..in_flight_ids)
        .map(|i| Some(key(&format!("slow-{i}"))))
        .collect();
    let slow = window.reserve_batch(&keys, || t0).await;
    for i in 0..committed_ids {
        fresh(window.reserve(key(&i.to_string()), t0)).commit(0, seq(i as u64), t0);
    }
    assert!(matches!(
        window.reserve(key("new"), t0),
        Err(FifoError::WindowFull { .. })
    ));
    // The expired ids sit behind more ids in flight than a call looks past; at the cap the
    // call looks past all of them.
    let _new = fresh(window.reserve(key("new"), t0 + WINDOW));
    assert_eq!(window.len(), in_flight_ids + 1);
    drop(slow);
    assert_eq!(window.len(), 1);
}

#[test]
fn settling_changes_no_answer() {
    let window = window();
    let t0 = Instant::now();
    fresh(window.reserve(key("committed"), t0)).commit(0, seq(1), t0);
    let held = fresh(window.reserve(key("held"), t0));
    let released = fresh(window.reserve(key("released"), t0));
    window.settle(t0);
    assert_eq!(window.shared.lock().index.recent.len(), 0);
    assert_eq!(
        duplicate(window.reserve(key("committed"), t0)).sequence,
        seq(1)
    );
    in_flight(window.reserve(key("held"), t0));
    drop(released);
    drop(fresh(window.reserve(key("released"), t0)));
    held.commit(0, seq(2), t0);
    assert_eq!(duplicate(window.reserve(key("held"), t0)).sequence, seq(2));
    // Expiry works the same for keys in either table.
    let later = t0 + WINDOW;
    fresh(window.reserve(key("committed"), later)).commit(0, seq(3), later);
    window.settle(later);
    assert_eq!(
        duplicate(window.reserve(key("committed"), later)).sequence,
        seq(3)
    );
    assert_eq!(window.len(), 1);
}

#[test]
fn recent_keys_move_to_the_main_table_by_themselves_past_the_limit() {
    let window = window();
    let t0 = Instant::now();
    for i in 0..=MAX_RECENT_IDS {
        fresh(window.reserve(key(&i.to_string()), t0)).commit(0, seq(i as u64), t0);
    }
    assert!(window.shared.lock().index.recent.len() <= MAX_RECENT_IDS);
    assert_eq!(window.len(), MAX_RECENT_IDS + 1);
    assert_eq!(duplicate(window.reserve(key("0"), t0)).sequence, seq(0));
}

#[test]
fn log_is_mapped_ahead_no_further_than_the_cap_allows() {
    let window = window_with_cap(10);
    let t0 = Instant::now();
    fresh(window.reserve(key("a"), t0)).commit(0, seq(1), t0);
    window.settle(t0);
    let state = window.shared.lock();
    assert_eq!(state.log.len(), 1);
    assert!(
        state.log.records.capacity() <= 2 * 10,
        "{}",
        state.log.records.capacity()
    );
    assert!(state.log.mapped_until >= 10);
}

/// The arithmetic of the module documentation of `fifo`, checked against the real sizes.
#[test]
fn memory_per_live_id_stays_within_the_documented_bound() {
    use std::mem::size_of;
    assert_eq!(size_of::<DedupKey>(), 16);
    let index_entry = size_of::<(DedupKey, u64)>();
    assert_eq!(index_entry, 24, "index entry is {index_entry} bytes");
    let record = size_of::<Record>();
    assert!(record <= 48, "log record is {record} bytes");
    // hashbrown: one control byte per bucket, at most 7/8 of the buckets full, and the bucket
    // count doubles on growth, so a table holds between 7/16 and 7/8 of its buckets.
    let index_best = (index_entry + 1) * 8 / 7;
    let index_worst = (index_entry + 1) * 16 / 7;
    // VecDeque: capacity doubles, so between half and all of it is used.
    let (log_best, log_worst) = (record, 2 * record);
    assert!(index_best + log_best <= 77, "{}", index_best + log_best);
    assert!(
        index_worst + log_worst <= 153,
        "{}",
        index_worst + log_worst
    );
    let worst_at_default_cap = DEFAULT_MAX_LIVE_IDS * (index_worst + log_worst);
    assert!(
        worst_at_default_cap <= 153_000_000,
        "{worst_at_default_cap}"
    );
    // What an id costs while in flight, on top: its place in the ticket, and the gate of an
    // id someone waits on.
    assert!(size_of::<Held>() <= 32, "{}", size_of::<Held>());
    assert!(size_of::<Gate>() <= 64, "{}", size_of::<Gate>());
}
