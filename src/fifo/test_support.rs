//! Helpers shared by the FIFO layer's unit tests: a window with a known length, keys, and
//! unwrapping of reservations.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::key::DedupKey;
use super::ticket::{DedupTicket, Waiter};
use super::window::{Committed, DedupWindow, DedupWindowConfig, Reservation, DEFAULT_MAX_LIVE_IDS};
use super::FifoError;
use crate::storage::SequenceNumber;
use crate::stream::DedupScope;

pub(super) const WINDOW: Duration = Duration::from_secs(300);

pub(super) fn window_with_cap(max_live_ids: usize) -> DedupWindow {
    DedupWindow::new(DedupWindowConfig {
        window: WINDOW,
        max_live_ids,
    })
    .unwrap()
}

pub(super) fn window() -> DedupWindow {
    window_with_cap(DEFAULT_MAX_LIVE_IDS)
}

pub(super) fn key(id: &str) -> DedupKey {
    DedupKey::for_id(DedupScope::Stream, None, id)
}

pub(super) fn fresh(reservation: Result<Reservation, FifoError>) -> DedupTicket {
    match reservation {
        Ok(Reservation::Fresh(ticket)) => ticket,
        other => panic!("expected a fresh reservation, got {other:?}"),
    }
}

pub(super) fn duplicate(reservation: Result<Reservation, FifoError>) -> Committed {
    match reservation {
        Ok(Reservation::Duplicate(committed)) => committed,
        other => panic!("expected a duplicate, got {other:?}"),
    }
}

pub(super) fn in_flight(reservation: Result<Reservation, FifoError>) -> Waiter {
    match reservation {
        Ok(Reservation::InFlight(waiter)) => waiter,
        other => panic!("expected an in-flight id, got {other:?}"),
    }
}

/// What a duplicate answers: the first record of its id, at `sequence` in `shard`.
pub(super) fn first_record(shard: u32, sequence: u64) -> Committed {
    Committed {
        shard,
        sequence: seq(sequence),
    }
}

/// Sequence number `n`: the tests name records by their plain numbers.
pub(super) fn seq(n: u64) -> SequenceNumber {
    SequenceNumber::new(n)
}

/// `key` reserved by one request and then by a second, which finds it in flight: the first
/// request's ticket and the second one's waiter.
pub(super) fn held_and_waited_on(
    window: &DedupWindow,
    key: DedupKey,
    now: Instant,
) -> (DedupTicket, Waiter) {
    let ticket = fresh(window.reserve(key, now));
    (ticket, in_flight(window.reserve(key, now)))
}

/// Polls a future once without a runtime: tells whether it is parked waiting for an event.
pub(super) fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}
