//! [`QueueShard`]: the live state of one shard of a queue group — which messages are visible,
//! in flight or done, the FIFO message groups and their heads, and the visibility timers.
//! Pure logic with wall-clock time passed in; the broker reads the log, journals what this
//! decides, and answers.
//!
//! ```text
//!             start                                   fetched             log end
//!  … done ──────┤ done │ in flight │ visible │ done │ … ┤ not yet looked at ┤
//!               └──────────── slots (the window, bounded) ┘
//!  receive:  visible ─▶ in flight (count + 1, deadline)      or ─▶ moving to the dead letters
//!  delete:   in flight ─▶ done; the low-water mark `start` passes every done prefix
//!  expiry:   in flight ─▶ visible at its deadline
//! ```
//!
//! FIFO: a message group's head is its oldest message not done. A group is *ready* when its
//! head is visible; a receive takes consecutive visible messages of a ready group from its
//! head and stops at the first that is not, so no message of a group is handed out while an
//! earlier one is in flight. Standard: every visible message is ready.
//!
//! Invariant: `slots[i]` is sequence `start + i`, `slots` never starts with a done slot, and
//! `in_flight` counts the slots in flight or moving plus the restored leases not yet fetched
//! whose deadline has not passed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use crate::meta::{QueueKind, QueueLeaseRecord, QueueShardRecord};
use crate::storage::{SequenceNumber, StoredRecord, Timestamp};

/// Longest a message may stay in flight, counted from its receive (SQS's 12 hours).
pub const MAX_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
/// How long a message taken for the dead letters stays leased while it moves: should the move
/// be abandoned (its receive cancelled), it comes back after this.
pub const DEAD_LETTER_LEASE: Duration = Duration::from_secs(60);

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Visible,
    InFlight,
    /// Taken by a receive to go to the dead-letter stream; done once it is there.
    Moving,
    Done,
}

#[derive(Debug, Clone)]
struct Slot {
    state: State,
    receive_count: u32,
    /// Hash of the message group (FIFO), or of the partition key when it has none.
    group: u64,
    deadline_ms: u64,
    received_at_ms: u64,
    /// Bytes of the record's data, key and attributes: what it adds to an answer.
    bytes: u32,
}

/// A message a receive hands out (or moves to the dead letters).
#[derive(Debug, Clone)]
pub struct Taken {
    /// Its sequence number.
    pub sequence: SequenceNumber,
    /// Its receive count after this receive (unchanged for a message moving to the dead
    /// letters: it was not received again).
    pub receive_count: u32,
    /// The record, when the window still holds it; otherwise the caller reads it.
    pub record: Option<StoredRecord>,
}

/// What one receive took from a shard.
#[derive(Debug, Default)]
pub struct Selection {
    /// Messages to hand out, in sequence order per message group.
    pub delivered: Vec<Taken>,
    /// Messages past their receive limit, to move to the dead-letter stream.
    pub dead_letters: Vec<Taken>,
    /// Bytes of the messages handed out.
    pub delivered_bytes: usize,
    /// True when the byte budget, not the count or a lack of ready messages, ended it.
    pub stopped_at_budget: bool,
}

impl Selection {
    /// Bytes of the messages handed out.
    pub fn bytes(&self) -> usize {
        self.delivered_bytes
    }

    /// Adds what a later receive of the same shard took.
    pub fn extend(&mut self, other: Selection) {
        self.delivered.extend(other.delivered);
        self.dead_letters.extend(other.dead_letters);
        self.delivered_bytes += other.delivered_bytes;
        self.stopped_at_budget |= other.stopped_at_budget;
    }
}

/// Why a receipt handle does not act on its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleRefusal {
    /// The message was received again since, or (FIFO) its visibility ran out.
    Expired,
    /// The message is done (deleted, dead-lettered or removed by retention).
    Gone,
    /// A visibility past [`MAX_VISIBILITY_TIMEOUT`] from the receive.
    TooLong {
        /// The most that is left.
        left: Duration,
    },
}

/// How a delete went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The message is now done: journal it.
    Now,
    /// It was done already: nothing to journal.
    Already,
}

/// Limits of one shard's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimits {
    /// Most messages between the low-water mark and the fetch position.
    pub max_messages: usize,
    /// Most bytes of record data the window keeps ready to hand out.
    pub max_cached_bytes: usize,
}

/// The live state of one shard of a queue group. See the module doc.
#[derive(Debug)]
pub struct QueueShard {
    kind: QueueKind,
    limits: WindowLimits,
    start: u64,
    fetched: u64,
    slots: VecDeque<Slot>,
    /// Records of visible slots not handed out yet, while they fit `max_cached_bytes`.
    cache: HashMap<u64, StoredRecord>,
    cached_bytes: usize,
    /// What the journal says about messages not fetched yet (after a restart).
    restored_done: BTreeSet<u64>,
    restored_leases: BTreeMap<u64, QueueLeaseRecord>,
    /// Standard: the visible messages. FIFO: the visible heads of message groups.
    ready: BTreeSet<u64>,
    /// FIFO: each message group's messages in the window that are not done, in order.
    groups: HashMap<u64, VecDeque<u64>>,
    expiries: BinaryHeap<Reverse<(u64, u64)>>,
    in_flight: usize,
    /// Messages done by retention since the last [`QueueShard::take_expired`].
    expired: u64,
}

/// The message group a record belongs to, as a hash: its group id, or its partition key.
pub fn group_of(record: &StoredRecord) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    match &record.message_group_id {
        Some(g) => (0u8, g.as_ref()).hash(&mut h),
        None => (1u8, record.partition_key.as_ref()).hash(&mut h),
    }
    h.finish()
}

impl QueueShard {
    /// The shard as the journal left it, starting at its low-water mark.
    pub fn restore(kind: QueueKind, limits: WindowLimits, record: &QueueShardRecord) -> Self {
        let start = record.start.get();
        let mut shard = QueueShard {
            kind,
            limits,
            start,
            fetched: start,
            slots: VecDeque::new(),
            cache: HashMap::new(),
            cached_bytes: 0,
            restored_done: record.done.iter().map(|s| s.get()).collect(),
            restored_leases: record.leased.iter().map(|(s, l)| (s.get(), *l)).collect(),
            ready: BTreeSet::new(),
            groups: HashMap::new(),
            expiries: BinaryHeap::new(),
            in_flight: 0,
            expired: 0,
        };
        shard.in_flight = shard.restored_leases.len();
        for (&seq, lease) in &shard.restored_leases {
            shard
                .expiries
                .push(Reverse((lease.deadline_ms.as_millis(), seq)));
        }
        shard
    }

    /// The low-water mark: every message before it is done.
    pub fn start(&self) -> SequenceNumber {
        SequenceNumber::new(self.start)
    }

    /// Where the next fetch reads.
    pub fn fetched(&self) -> SequenceNumber {
        SequenceNumber::new(self.fetched)
    }

    /// Messages in flight (or moving to the dead letters).
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Messages in the window that are done but not yet below the low-water mark.
    pub fn done_in_window(&self) -> usize {
        self.slots.iter().filter(|s| s.state == State::Done).count() + self.restored_done.len()
    }

    /// How many more messages the window can fetch.
    pub fn room(&self) -> usize {
        self.limits.max_messages.saturating_sub(self.slots.len())
    }

    /// The earliest visibility deadline, if any message is in flight.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.expiries
            .peek()
            .map(|Reverse((d, _))| Timestamp::from_millis(*d))
    }

    /// Messages retention removed since the last call, and forgets them.
    pub fn take_expired(&mut self) -> u64 {
        std::mem::take(&mut self.expired)
    }

    /// Retention removed everything before `first`: what was not done there is lost, counted
    /// as expired, and the window restarts at `first`.
    pub fn skip_to(&mut self, first: SequenceNumber) {
        let first = first.get();
        if first <= self.start {
            return;
        }
        // The fetched slots below `first`, one by one (at most the window)…
        while self.start < first {
            let Some(slot) = self.slots.pop_front() else {
                break;
            };
            let seq = self.start;
            if slot.state != State::Done {
                self.expired += 1;
            }
            if matches!(slot.state, State::InFlight | State::Moving) {
                self.in_flight -= 1;
            }
            self.forget(seq, &slot);
            self.start += 1;
        }
        // …then the rest of the gap at once: what the journal says of it, and the count.
        if self.start < first {
            let gap = first - self.start;
            let kept_done = self.restored_done.split_off(&first);
            let done_in_gap = self.restored_done.len() as u64;
            self.restored_done = kept_done;
            let kept_leases = self.restored_leases.split_off(&first);
            let live_in_gap = self.restored_leases.values().filter(|l| live(l)).count();
            self.restored_leases = kept_leases;
            self.in_flight -= live_in_gap;
            self.expired += gap - done_in_gap;
            self.start = first;
        }
        self.fetched = self.fetched.max(first);
        // FIFO heads may have moved; recompute readiness of the groups touched.
        if self.kind == QueueKind::Fifo {
            let groups: Vec<u64> = self.groups.keys().copied().collect();
            for g in groups {
                self.refresh_group(g);
            }
        }
    }

    fn forget(&mut self, seq: u64, slot: &Slot) {
        self.ready.remove(&seq);
        if let Some(r) = self.cache.remove(&seq) {
            self.cached_bytes -= r.data.len();
        }
        if self.kind == QueueKind::Fifo {
            if let Some(members) = self.groups.get_mut(&slot.group) {
                members.retain(|&s| s != seq);
                if members.is_empty() {
                    self.groups.remove(&slot.group);
                }
            }
        }
    }

    /// Adds records read from the log at the fetch position. `matches` says which enter the
    /// queue; the others are done at once. Records must continue the fetch position without
    /// a gap (retention gaps go through [`QueueShard::skip_to`] first).
    pub fn admit(&mut self, records: Vec<StoredRecord>, matches: impl Fn(&StoredRecord) -> bool) {
        for record in records {
            let seq = record.sequence.get();
            if seq < self.fetched {
                continue;
            }
            if seq > self.fetched {
                // Retention removed records between the fetch position and this one (a read
                // starts at the oldest stored record).
                self.skip_to(record.sequence);
            }
            self.fetched += 1;
            let group = if self.kind == QueueKind::Fifo {
                group_of(&record)
            } else {
                0
            };
            let mut slot = Slot {
                state: State::Visible,
                receive_count: 0,
                group,
                deadline_ms: 0,
                received_at_ms: 0,
                bytes: u32::try_from(
                    record.data.len()
                        + record.partition_key.len()
                        + record.attributes.as_bytes().len(),
                )
                .unwrap_or(u32::MAX),
            };
            if self.restored_done.remove(&seq) || !matches(&record) {
                slot.state = State::Done;
            } else if let Some(lease) = self.restored_leases.remove(&seq) {
                slot.receive_count = lease.receive_count;
                if live(&lease) {
                    // Counted in flight since the restore; its expiry entry is in the heap,
                    // and `expire` makes it visible at its deadline.
                    slot.state = State::InFlight;
                    slot.deadline_ms = lease.deadline_ms.as_millis();
                    slot.received_at_ms = slot.deadline_ms;
                }
            }
            if slot.state != State::Done && self.kind == QueueKind::Fifo {
                self.groups.entry(group).or_default().push_back(seq);
            }
            let visible = slot.state == State::Visible;
            self.slots.push_back(slot);
            if visible {
                if self.cached_bytes + record.data.len() <= self.limits.max_cached_bytes {
                    self.cached_bytes += record.data.len();
                    self.cache.insert(seq, record);
                }
                self.mark_ready(seq);
            }
        }
        self.advance_start();
    }

    fn slot(&self, seq: u64) -> Option<&Slot> {
        seq.checked_sub(self.start)
            .and_then(|i| self.slots.get(i as usize))
    }

    fn slot_mut(&mut self, seq: u64) -> Option<&mut Slot> {
        seq.checked_sub(self.start)
            .and_then(|i| self.slots.get_mut(i as usize))
    }

    /// Makes a visible message ready if its group lets it be.
    fn mark_ready(&mut self, seq: u64) {
        match self.kind {
            QueueKind::Standard => {
                self.ready.insert(seq);
            }
            QueueKind::Fifo => {
                if let Some(group) = self.slot(seq).map(|s| s.group) {
                    self.refresh_group(group);
                }
            }
        }
    }

    /// Drops the group's done messages from its front and marks its head ready if visible.
    fn refresh_group(&mut self, group: u64) {
        let Some(members) = self.groups.get(&group) else {
            return;
        };
        let mut drop_front = 0;
        let mut head = None;
        for &seq in members {
            match self.slot(seq).map(|s| s.state) {
                Some(State::Done) | None => drop_front += 1,
                Some(state) => {
                    head = Some((seq, state));
                    break;
                }
            }
        }
        if let Some(members) = self.groups.get_mut(&group) {
            members.drain(..drop_front);
            if members.is_empty() {
                self.groups.remove(&group);
            }
        }
        if let Some((seq, State::Visible)) = head {
            self.ready.insert(seq);
        }
    }

    fn advance_start(&mut self) {
        while self.slots.front().is_some_and(|s| s.state == State::Done) {
            self.slots.pop_front();
            self.start += 1;
        }
    }

    /// Makes every message whose visibility ran out by `now` visible again.
    pub fn expire(&mut self, now: Timestamp) {
        let now = now.as_millis();
        while let Some(&Reverse((deadline, seq))) = self.expiries.peek() {
            if deadline > now {
                break;
            }
            self.expiries.pop();
            if seq >= self.fetched {
                // A restored lease not fetched yet: it counts as visible from now on.
                if let Some(l) = self.restored_leases.get_mut(&seq) {
                    if live(l) && l.deadline_ms.as_millis() == deadline {
                        // Kept (with its count) until fetched, but no longer in flight.
                        l.deadline_ms = EXPIRED_LEASE;
                        self.in_flight -= 1;
                    }
                }
                continue;
            }
            let expired = match self.slot_mut(seq) {
                Some(slot)
                    if matches!(slot.state, State::InFlight | State::Moving)
                        && slot.deadline_ms == deadline =>
                {
                    slot.state = State::Visible;
                    true
                }
                _ => false,
            };
            if expired {
                self.in_flight -= 1;
                self.mark_ready(seq);
            }
        }
    }

    /// FIFO: the message groups with a message in the window not done yet. Once the whole
    /// shard is fetched, these are every group a child shard must hold back.
    pub fn undone_groups(&self) -> impl Iterator<Item = u64> + '_ {
        self.groups
            .iter()
            .filter(|(_, members)| {
                members
                    .iter()
                    .any(|&seq| self.slot(seq).is_some_and(|s| s.state != State::Done))
            })
            .map(|(&group, _)| group)
    }

    /// Takes up to `max` ready messages, and no more than `max_bytes` of records (at least
    /// one): each becomes in flight until `now + visibility` with its receive count one higher
    /// — or, when that would exceed `max_receive_count` (0: no limit), is taken to move to the
    /// dead letters instead, leased for [`DEAD_LETTER_LEASE`] while it moves. FIFO message
    /// groups in `held` (those a parent shard has not finished) are passed over.
    pub fn receive(
        &mut self,
        max: usize,
        max_bytes: usize,
        now: Timestamp,
        visibility: Duration,
        max_receive_count: u32,
        held: Option<&HashSet<u64>>,
    ) -> Selection {
        let now_ms = now.as_millis();
        let deadline = now_ms.saturating_add(duration_ms(visibility));
        let moving_deadline = now_ms.saturating_add(duration_ms(DEAD_LETTER_LEASE));
        let mut out = Selection::default();
        let mut taken = 0;
        let mut bytes = 0usize;
        let fits = |bytes: usize, taken: usize, slot: Option<&Slot>| {
            taken == 0 || bytes + slot.map_or(0, |s| s.bytes as usize) <= max_bytes
        };
        // A receive only takes from `ready`: every head before the cursor is held.
        let mut cursor = 0u64;
        'groups: while taken < max {
            let is_held = |seq: u64| {
                held.is_some_and(|h| self.slot(seq).is_some_and(|s| h.contains(&s.group)))
            };
            let Some(first) = self.ready.range(cursor..).copied().find(|&s| !is_held(s)) else {
                break;
            };
            cursor = first + 1;
            if !fits(bytes, taken, self.slot(first)) {
                out.stopped_at_budget = true;
                break;
            }
            self.ready.remove(&first);
            // Standard: the message alone. FIFO: its group from the head, while visible.
            let run: Vec<u64> = match self.kind {
                QueueKind::Standard => vec![first],
                QueueKind::Fifo => {
                    let group = self.slot(first).map_or(0, |s| s.group);
                    let members = self.groups.get(&group);
                    // Done members (deleted out of order) are passed over; the first in flight
                    // ends the run.
                    members
                        .into_iter()
                        .flatten()
                        .copied()
                        .skip_while(|&s| s != first)
                        .map(|s| (s, self.slot(s).map_or(State::Done, |x| x.state)))
                        .take_while(|&(_, state)| matches!(state, State::Visible | State::Done))
                        .filter(|&(_, state)| state == State::Visible)
                        .map(|(s, _)| s)
                        .take(max - taken)
                        .collect()
                }
            };
            for seq in run {
                if !fits(bytes, taken, self.slot(seq)) {
                    out.stopped_at_budget = true;
                    break 'groups;
                }
                let record = self.cache.remove(&seq).inspect(|r| {
                    self.cached_bytes -= r.data.len();
                });
                let Some(slot) = self.slot_mut(seq) else {
                    continue;
                };
                let size = slot.bytes as usize;
                bytes += size;
                taken += 1;
                if max_receive_count > 0 && slot.receive_count >= max_receive_count {
                    slot.state = State::Moving;
                    slot.deadline_ms = moving_deadline;
                    let receive_count = slot.receive_count;
                    self.expiries.push(Reverse((moving_deadline, seq)));
                    self.in_flight += 1;
                    out.dead_letters.push(Taken {
                        sequence: SequenceNumber::new(seq),
                        receive_count,
                        record,
                    });
                    // The rest of a FIFO group waits until the head is in the dead letters.
                    break;
                }
                slot.state = State::InFlight;
                slot.deadline_ms = deadline;
                slot.receive_count += 1;
                slot.received_at_ms = now_ms;
                let receive_count = slot.receive_count;
                self.expiries.push(Reverse((deadline, seq)));
                self.in_flight += 1;
                out.delivered_bytes += size;
                out.delivered.push(Taken {
                    sequence: SequenceNumber::new(seq),
                    receive_count,
                    record,
                });
            }
        }
        out
    }

    /// Checks a receipt for `seq` received as its `receive_count`-th receive.
    fn check(&self, seq: u64, receive_count: u32) -> Result<State, HandleRefusal> {
        if seq < self.start {
            return Err(HandleRefusal::Gone);
        }
        if seq >= self.fetched {
            if self.restored_done.contains(&seq) {
                return Err(HandleRefusal::Gone);
            }
            return match self.restored_leases.get(&seq) {
                Some(l) if l.receive_count == receive_count && live(l) => Ok(State::InFlight),
                Some(l) if l.receive_count == receive_count => Ok(State::Visible),
                _ => Err(HandleRefusal::Expired),
            };
        }
        let slot = self.slot(seq).ok_or(HandleRefusal::Gone)?;
        match slot.state {
            State::Done => Err(HandleRefusal::Gone),
            State::Moving => Err(HandleRefusal::Expired),
            _ if slot.receive_count != receive_count => Err(HandleRefusal::Expired),
            state => Ok(state),
        }
    }

    /// Deletes a message by the receipt of its `receive_count`-th receive. A receipt whose
    /// visibility ran out still deletes in a standard queue (the message was not received
    /// again), not in a FIFO queue (its group may have moved on), as SQS does.
    pub fn delete(
        &mut self,
        seq: SequenceNumber,
        receive_count: u32,
    ) -> Result<Deleted, HandleRefusal> {
        let seq = seq.get();
        let state = match self.check(seq, receive_count) {
            Ok(state) => state,
            Err(HandleRefusal::Gone) => return Ok(Deleted::Already),
            Err(e) => return Err(e),
        };
        if state == State::Visible && self.kind == QueueKind::Fifo {
            return Err(HandleRefusal::Expired);
        }
        self.finish(seq);
        Ok(Deleted::Now)
    }

    /// A message taken for the dead letters is there now; false when it was no longer
    /// moving (its move lease ran out and it was taken again, or it is done).
    pub fn dead_lettered(&mut self, seq: SequenceNumber) -> bool {
        let seq = seq.get();
        if self.slot(seq).is_some_and(|s| s.state == State::Moving) {
            self.finish(seq);
            return true;
        }
        false
    }

    /// A message taken for the dead letters could not be stored there: visible again, to be
    /// taken again by a later receive.
    pub fn dead_letter_failed(&mut self, seq: SequenceNumber) {
        let seq = seq.get();
        if let Some(slot) = self.slot_mut(seq).filter(|s| s.state == State::Moving) {
            slot.state = State::Visible;
            self.in_flight -= 1;
            self.mark_ready(seq);
        }
    }

    /// Marks `seq` done and moves everything that depends on it.
    fn finish(&mut self, seq: u64) {
        if seq >= self.fetched {
            if self.restored_leases.remove(&seq).is_some_and(|l| live(&l)) {
                self.in_flight -= 1;
            }
            self.restored_done.insert(seq);
            return;
        }
        let Some(slot) = self.slot_mut(seq) else {
            return;
        };
        let before = slot.state;
        slot.state = State::Done;
        let group = slot.group;
        if matches!(before, State::InFlight | State::Moving) {
            self.in_flight -= 1;
        }
        self.ready.remove(&seq);
        if let Some(r) = self.cache.remove(&seq) {
            self.cached_bytes -= r.data.len();
        }
        if self.kind == QueueKind::Fifo {
            self.refresh_group(group);
        }
        self.advance_start();
    }

    /// Changes the visibility of a message in flight to `now + timeout`; zero makes it
    /// visible at once. The total since its receive may not pass [`MAX_VISIBILITY_TIMEOUT`].
    /// Returns the new deadline to journal, or `None` when nothing changed (a message already
    /// visible made visible).
    pub fn change_visibility(
        &mut self,
        seq: SequenceNumber,
        receive_count: u32,
        timeout: Duration,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, HandleRefusal> {
        let seq = seq.get();
        let state = self.check(seq, receive_count)?;
        let now_ms = now.as_millis();
        let deadline = now_ms.saturating_add(duration_ms(timeout));
        if seq >= self.fetched {
            // A restored lease: its receive time is unknown, its deadline is the bound.
            if let Some(l) = self.restored_leases.get_mut(&seq) {
                if !live(l) || l.deadline_ms.as_millis() <= now_ms {
                    return Err(HandleRefusal::Expired);
                }
                // Never the "expired" marker, even for a time of 0.
                l.deadline_ms = Timestamp::from_millis(deadline.max(1));
                self.expiries
                    .push(Reverse((l.deadline_ms.as_millis(), seq)));
            }
            return Ok(Some(Timestamp::from_millis(deadline)));
        }
        if state == State::Visible {
            // Its visibility ran out and nobody received it again: SQS acts on it in a
            // standard queue; in a FIFO queue its group may have moved on.
            if self.kind == QueueKind::Fifo || timeout.is_zero() {
                return if timeout.is_zero() {
                    Ok(None)
                } else {
                    Err(HandleRefusal::Expired)
                };
            }
        }
        let slot = self.slot(seq).expect("checked above");
        let limit = slot
            .received_at_ms
            .saturating_add(duration_ms(MAX_VISIBILITY_TIMEOUT));
        if deadline > limit {
            return Err(HandleRefusal::TooLong {
                left: Duration::from_millis(limit.saturating_sub(now_ms)),
            });
        }
        if timeout.is_zero() {
            let slot = self.slot_mut(seq).expect("checked above");
            slot.state = State::Visible;
            self.in_flight -= 1;
            self.mark_ready(seq);
            return Ok(Some(now));
        }
        if state == State::Visible {
            self.ready.remove(&seq);
            self.in_flight += 1;
        }
        let slot = self.slot_mut(seq).expect("checked above");
        slot.state = State::InFlight;
        slot.deadline_ms = deadline;
        self.expiries.push(Reverse((deadline, seq)));
        Ok(Some(Timestamp::from_millis(deadline)))
    }
}

/// The deadline a restored lease gets once its visibility ran out before it was fetched: it
/// keeps its receive count but is no longer in flight.
const EXPIRED_LEASE: Timestamp = Timestamp::from_millis(0);

fn live(lease: &QueueLeaseRecord) -> bool {
    lease.deadline_ms != EXPIRED_LEASE
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
