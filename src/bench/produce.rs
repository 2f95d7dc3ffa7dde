//! Producers: PutRecords in a closed loop (next batch after the last ack) or an open loop
//! (batches due on a fixed timetable, latency from the intended send time), each producer on
//! its own connection; used by the produce, e2e and route workloads and to fill a stream for a
//! consume run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::schedule::OpenLoopSchedule;
use super::stats::Meter;
use super::DEFAULT_RPC_TIMEOUT;
use shardlog::client::{Client, ClientError};
use shardlog::proto::v1::{
    AttributeValue, PutRecordsRequestEntry, PutRecordsResponse, PutRecordsStreamResult,
};

/// Most PutRecords one open-loop producer keeps in flight; past it the producer waits, falls
/// behind its timetable, and the delay shows in the latency of every late batch.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// How records are made: shared by every producer of a run.
#[derive(Debug, Clone)]
pub struct RecordShape {
    pub stream: String,
    /// Bytes of data per record (at least [`TIMESTAMP_BYTES`](super::TIMESTAMP_BYTES) with
    /// `stamp_epoch`).
    pub record_size: usize,
    pub batch_size: usize,
    /// The distinct partition keys, used in turn.
    pub keys: Arc<[String]>,
    /// Send each key as the message group id as well.
    pub message_groups: bool,
    /// Give each record a unique deduplication id, prefixed with this run's id.
    pub dedup_prefix: Option<String>,
    /// e2e: the first 8 bytes of each record's data carry its send time, in nanoseconds since
    /// this instant (little-endian).
    pub stamp_epoch: Option<Instant>,
    /// route: each record carries the attribute [`KIND_ATTRIBUTE`], its [`RecordKind`].
    pub kinds: bool,
}

/// Name of the attribute `--route-attributes` gives every record.
pub const KIND_ATTRIBUTE: &str = "kind";

/// What a record's [`KIND_ATTRIBUTE`] says, decided by its position in its batch so that the
/// answer to a batch tells how many of each kind were stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Three records of every four (positions 0, 1, 2 of each four).
    Order,
    /// The fourth.
    Noise,
}

impl RecordKind {
    /// The kind of the record at `index` of a batch.
    pub fn at(index: usize) -> RecordKind {
        if index % 4 == 3 {
            RecordKind::Noise
        } else {
            RecordKind::Order
        }
    }

    /// The first position in a batch holding this kind.
    fn first_index(self) -> usize {
        match self {
            RecordKind::Order => 0,
            RecordKind::Noise => 3,
        }
    }

    /// The attribute's value.
    pub fn value(self) -> &'static str {
        match self {
            RecordKind::Order => "order",
            RecordKind::Noise => "noise",
        }
    }

    fn attributes(self) -> HashMap<String, AttributeValue> {
        HashMap::from([(
            KIND_ATTRIBUTE.to_owned(),
            AttributeValue {
                data_type: "String".to_owned(),
                string_value: self.value().to_owned(),
                binary_value: Bytes::new(),
            },
        )])
    }
}

/// Acknowledged records of each [`RecordKind`].
#[derive(Debug, Default)]
pub struct KindTally {
    order: AtomicU64,
    noise: AtomicU64,
}

impl KindTally {
    fn counter(&self, kind: RecordKind) -> &AtomicU64 {
        match kind {
            RecordKind::Order => &self.order,
            RecordKind::Noise => &self.noise,
        }
    }

    pub fn add(&self, kind: RecordKind, records: u64) {
        self.counter(kind).fetch_add(records, Ordering::Relaxed);
    }

    pub fn get(&self, kind: RecordKind) -> u64 {
        self.counter(kind).load(Ordering::Relaxed)
    }
}

/// What one producer has used so far: where it is in the key cycle and the dedup ids.
#[derive(Debug)]
pub(super) struct Cursor {
    producer: usize,
    next_key: usize,
    next_id: u64,
}

impl Cursor {
    /// Producer `producer`'s: it starts its key cycle at its own index, so that producers
    /// spread over the keys from the first batch.
    pub(super) fn new(producer: usize) -> Cursor {
        Cursor {
            producer,
            next_key: producer,
            next_id: 0,
        }
    }

    /// The next partition key of `shape`'s cycle.
    pub(super) fn next_key<'a>(&mut self, shape: &'a RecordShape) -> &'a str {
        let key = &shape.keys[self.next_key % shape.keys.len()];
        self.next_key = self.next_key.wrapping_add(1);
        key
    }
}

impl RecordShape {
    /// The data of a record sent at `sent`: a fixed filler, preceded by the send time in e2e.
    pub(super) fn data(&self, sent: Instant) -> Bytes {
        let mut data = BytesMut::with_capacity(self.record_size);
        if let Some(epoch) = self.stamp_epoch {
            data.put_u64_le(nanos_since(epoch, sent));
        }
        data.resize(self.record_size, b'x');
        data.freeze()
    }

    /// The next `n` entries of a producer. Every record of a batch carries the same data (one
    /// shared buffer): the send time is the batch's.
    fn entries(&self, cursor: &mut Cursor, n: u64, sent: Instant) -> Vec<PutRecordsRequestEntry> {
        let data = self.data(sent);
        (0..n as usize)
            .map(|index| self.entry(cursor, index, data.clone()))
            .collect()
    }

    /// The entry at `index` of a batch.
    fn entry(&self, cursor: &mut Cursor, index: usize, data: Bytes) -> PutRecordsRequestEntry {
        let key = cursor.next_key(self);
        let deduplication_id = match &self.dedup_prefix {
            Some(prefix) => {
                cursor.next_id += 1;
                format!("{prefix}-{}-{}", cursor.producer, cursor.next_id)
            }
            None => String::new(),
        };
        PutRecordsRequestEntry {
            partition_key: key.to_owned(),
            data,
            explicit_hash_key: String::new(),
            message_group_id: if self.message_groups {
                key.to_owned()
            } else {
                String::new()
            },
            deduplication_id,
            attributes: if self.kinds {
                RecordKind::at(index).attributes()
            } else {
                HashMap::new()
            },
        }
    }

    /// A record as the producers make them, at the first position of `kind` in a batch (the
    /// first position for `None`): what a route run tries its filter on.
    pub fn sample(&self, kind: Option<RecordKind>) -> PutRecordsRequestEntry {
        let mut cursor = Cursor::new(0);
        let index = kind.map_or(0, RecordKind::first_index);
        self.entry(&mut cursor, index, self.data(Instant::now()))
    }
}

/// Nanoseconds from `epoch` to `at` (0 when `at` is earlier).
pub fn nanos_since(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// Records still to be put, shared by the producers; `None` = no limit.
#[derive(Debug)]
pub struct Budget(Option<AtomicU64>);

impl Budget {
    pub fn new(records: Option<u64>) -> Budget {
        Budget(records.map(AtomicU64::new))
    }

    /// Takes up to `want` records; 0 once the budget is spent.
    pub fn claim(&self, want: u64) -> u64 {
        match &self.0 {
            None => want,
            Some(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                    (l > 0).then(|| l.saturating_sub(want))
                })
                .map_or(0, |before| before.min(want)),
        }
    }
}

/// The highest acknowledged sequence number of each shard: where e2e subscribers may stop.
#[derive(Debug, Default)]
pub struct AckedTail(Mutex<HashMap<String, u64>>);

impl AckedTail {
    fn note(&self, answer: &impl PutAnswer) {
        let mut tail = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        answer.for_each_stored(|shard_id, sequence| match tail.get_mut(shard_id) {
            Some(seq) => *seq = (*seq).max(sequence),
            None => {
                tail.insert(shard_id.to_owned(), sequence);
            }
        });
    }

    /// The highest acknowledged sequence number of `shard_id`, if any record went there.
    pub fn get(&self, shard_id: &str) -> Option<u64> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(shard_id)
            .copied()
    }
}

/// What the bench reads from the answer to a batch, whichever call gave it.
pub(super) trait PutAnswer {
    /// Entries the answer has a result for.
    fn answered(&self) -> u64;
    /// Error code and message of every failed entry.
    fn failed(&self) -> impl Iterator<Item = (&str, &str)>;
    /// Calls `f` with the shard id and sequence number of every stored entry.
    fn for_each_stored(&self, f: impl FnMut(&str, u64));
    /// Whether each entry the answer covers was stored, in request order.
    fn stored(&self) -> impl Iterator<Item = bool>;

    /// How many entries failed, and the first failure.
    fn failures(&self) -> (u64, Option<String>) {
        let mut failed = self.failed();
        let first = failed
            .next()
            .map(|(code, message)| format!("{code}: {message}"));
        let rest = failed.count() as u64;
        (u64::from(first.is_some()) + rest, first)
    }
}

impl PutAnswer for PutRecordsResponse {
    fn answered(&self) -> u64 {
        self.records.len() as u64
    }

    fn failed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.records
            .iter()
            .filter(|e| !e.error_code.is_empty())
            .map(|e| (e.error_code.as_str(), e.error_message.as_str()))
    }

    fn for_each_stored(&self, mut f: impl FnMut(&str, u64)) {
        for e in self.records.iter().filter(|e| e.error_code.is_empty()) {
            f(&e.shard_id, e.sequence_number);
        }
    }

    fn stored(&self) -> impl Iterator<Item = bool> {
        self.records.iter().map(|e| e.error_code.is_empty())
    }
}

impl PutAnswer for PutRecordsStreamResult {
    fn answered(&self) -> u64 {
        self.records.len() as u64
    }

    fn failed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.records
            .iter()
            .filter(|e| !e.error_code.is_empty())
            .map(|e| (e.error_code.as_str(), e.error_message.as_str()))
    }

    fn for_each_stored(&self, mut f: impl FnMut(&str, u64)) {
        for e in &self.records {
            if let Some(shard_id) = self.shard_id(e) {
                f(shard_id, e.sequence_number);
            }
        }
    }

    fn stored(&self) -> impl Iterator<Item = bool> {
        self.records.iter().map(|e| e.error_code.is_empty())
    }
}

/// One produce phase: shared by its producers.
#[derive(Debug)]
pub struct ProducePhase {
    pub shape: RecordShape,
    pub budget: Budget,
    /// Open loop at this many records per second in total; closed loop when `None`.
    pub rate: Option<u64>,
    pub producers: usize,
    /// Put over one PutRecordsStream call per producer with this many batches unanswered;
    /// one PutRecords call per batch when `None`.
    pub in_flight: Option<usize>,
    pub start: Instant,
    /// No batch is sent (or due) at or after this instant.
    pub deadline: Instant,
    pub meter: Arc<Meter>,
    /// e2e: where each shard's acknowledged records end.
    pub acked: Option<Arc<AckedTail>>,
    /// route with record kinds: the acknowledged records of each kind.
    pub kinds: Option<Arc<KindTally>>,
}

/// A batch's answer, its call's failure, or no answer in time.
pub(super) type PutOutcome<A = PutRecordsResponse, E = ClientError> =
    Result<Result<A, E>, tokio::time::error::Elapsed>;

impl ProducePhase {
    /// Counts what the answer to a batch of `sent` records says: its latency, the records
    /// stored and the entries failed, or the call's failure.
    pub(super) fn account<A: PutAnswer, E: std::fmt::Display>(
        &self,
        outcome: PutOutcome<A, E>,
        latency: Duration,
        sent: u64,
    ) {
        match outcome {
            Ok(Ok(answer)) => {
                self.meter.record_latency(latency);
                let (failed, first) = answer.failures();
                // An answer with fewer results than entries leaves the rest unaccounted for:
                // count them as failed too.
                let missing = sent.saturating_sub(answer.answered());
                let ok = sent.saturating_sub(failed + missing);
                self.meter
                    .add_records(ok, ok * self.shape.record_size as u64);
                self.meter.add_failed_entries(failed + missing, || {
                    first.unwrap_or_else(|| format!("the answer has {missing} results too few"))
                });
                if let Some(acked) = &self.acked {
                    acked.note(&answer);
                }
                if let Some(kinds) = &self.kinds {
                    let (mut order, mut noise) = (0, 0);
                    let stored = answer.stored().take(sent as usize).enumerate();
                    for (index, _) in stored.filter(|(_, stored)| *stored) {
                        match RecordKind::at(index) {
                            RecordKind::Order => order += 1,
                            RecordKind::Noise => noise += 1,
                        }
                    }
                    kinds.add(RecordKind::Order, order);
                    kinds.add(RecordKind::Noise, noise);
                }
            }
            Ok(Err(error)) => self.meter.add_rpc_error(|| error.to_string()),
            Err(_elapsed) => self
                .meter
                .add_rpc_error(|| format!("PutRecords timed out after {DEFAULT_RPC_TIMEOUT:?}")),
        }
    }

    async fn put(&self, client: &Client, entries: Vec<PutRecordsRequestEntry>) -> PutOutcome {
        tokio::time::timeout(
            DEFAULT_RPC_TIMEOUT,
            client.put_records(&self.shape.stream, entries),
        )
        .await
    }
}

/// Runs one producer per client until the deadline or the budget ends the phase, then waits
/// for the calls in flight; returns how long the phase took.
pub async fn run_producers(phase: Arc<ProducePhase>, clients: Vec<Client>) -> Duration {
    let mut producers = JoinSet::new();
    for (index, client) in clients.into_iter().enumerate() {
        let phase = Arc::clone(&phase);
        let cursor = Cursor::new(index);
        let schedule = phase.rate.map(|rate| {
            OpenLoopSchedule::new(rate, phase.shape.batch_size, phase.producers, index)
        });
        match (phase.in_flight, schedule) {
            (Some(in_flight), schedule) => {
                producers.spawn(streaming(phase, client, cursor, schedule, in_flight));
            }
            (None, Some(schedule)) => {
                producers.spawn(open_loop(phase, client, cursor, schedule));
            }
            (None, None) => {
                producers.spawn(closed_loop(phase, client, cursor));
            }
        }
    }
    while let Some(joined) = producers.join_next().await {
        if let Err(error) = joined {
            phase
                .meter
                .add_rpc_error(|| format!("a producer task failed: {error}"));
        }
    }
    phase.start.elapsed()
}

async fn closed_loop(phase: Arc<ProducePhase>, client: Client, mut cursor: Cursor) {
    let batch = phase.shape.batch_size as u64;
    while Instant::now() < phase.deadline {
        let n = phase.budget.claim(batch);
        if n == 0 {
            break;
        }
        let sent = Instant::now();
        let entries = phase.shape.entries(&mut cursor, n, sent);
        let outcome = phase.put(&client, entries).await;
        phase.account(outcome, sent.elapsed(), n);
    }
}

/// A producer on one PutRecordsStream call: batches go out on the schedule (open loop) or as
/// soon as fewer than `in_flight` are unanswered (closed loop); a second task reads the
/// answers, which come in send order, and times each from its batch's send (or due) time.
async fn streaming(
    phase: Arc<ProducePhase>,
    client: Client,
    mut cursor: Cursor,
    schedule: Option<OpenLoopSchedule>,
    in_flight: usize,
) {
    let opened = tokio::time::timeout(
        DEFAULT_RPC_TIMEOUT,
        client.put_records_stream(&phase.shape.stream, in_flight),
    )
    .await;
    let (sender, mut answers) = match opened {
        Ok(Ok(call)) => call,
        Ok(Err(error)) => return phase.meter.add_rpc_error(|| error.to_string()),
        Err(_elapsed) => {
            return phase.meter.add_rpc_error(|| {
                format!("PutRecordsStream did not open within {DEFAULT_RPC_TIMEOUT:?}")
            })
        }
    };
    // Send times of the unanswered batches, in send order; in the closed loop a permit per
    // unanswered batch, given back by the reader.
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, u64)>();
    let permits = Arc::new(Semaphore::new(in_flight));
    let reader = {
        let (phase, permits) = (Arc::clone(&phase), Arc::clone(&permits));
        tokio::spawn(async move {
            while let Some((sent, n)) = sent_rx.recv().await {
                let outcome = tokio::time::timeout(DEFAULT_RPC_TIMEOUT, answers.next()).await;
                let outcome = match outcome {
                    Ok(Some(answer)) => Ok(answer),
                    Ok(None) => Ok(Err(ClientError::CallEnded {
                        rpc: "PutRecordsStream",
                    })),
                    Err(elapsed) => Err(elapsed),
                };
                let broken = !matches!(outcome, Ok(Ok(_)));
                phase.account(outcome, sent.elapsed(), n);
                permits.add_permits(1);
                if broken {
                    // The call is over or stuck: the batches still unanswered are lost too.
                    sent_rx.close();
                    while sent_rx.recv().await.is_some() {
                        phase
                            .meter
                            .add_rpc_error(|| "PutRecordsStream ended before answering".to_owned());
                    }
                    return;
                }
            }
        })
    };
    let batch = phase.shape.batch_size as u64;
    for k in 0.. {
        let due = match &schedule {
            Some(schedule) => {
                let due = phase.start + schedule.due(k);
                if due >= phase.deadline {
                    break;
                }
                due
            }
            None => {
                // The semaphore is never closed, so acquiring only waits.
                match permits.acquire().await {
                    Ok(permit) => permit.forget(),
                    Err(_) => break,
                }
                Instant::now()
            }
        };
        if Instant::now() >= phase.deadline {
            break;
        }
        let n = phase.budget.claim(batch);
        if n == 0 {
            break;
        }
        if schedule.is_some() {
            tokio::time::sleep_until(due.into()).await;
        }
        let entries = phase.shape.entries(&mut cursor, n, due);
        if sent_tx.send((due, n)).is_err() {
            // The reader saw the call end.
            break;
        }
        if sender.send(entries).await.is_err() {
            break;
        }
    }
    // No more batches: the call ends once the last is answered.
    drop((sender, sent_tx));
    if let Err(error) = reader.await {
        phase
            .meter
            .add_rpc_error(|| format!("a PutRecordsStream reader failed: {error}"));
    }
}

async fn open_loop(
    phase: Arc<ProducePhase>,
    client: Client,
    mut cursor: Cursor,
    schedule: OpenLoopSchedule,
) {
    let batch = phase.shape.batch_size as u64;
    let permits = Arc::new(Semaphore::new(DEFAULT_MAX_IN_FLIGHT));
    let mut in_flight = JoinSet::new();
    for k in 0.. {
        let due = phase.start + schedule.due(k);
        if due >= phase.deadline {
            break;
        }
        let n = phase.budget.claim(batch);
        if n == 0 {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        // The semaphore is never closed, so acquiring only waits.
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let entries = phase.shape.entries(&mut cursor, n, due);
        let (phase, client) = (Arc::clone(&phase), client.clone());
        in_flight.spawn(async move {
            let outcome = phase.put(&client, entries).await;
            // From the intended send time: a batch the producer could only send late counts
            // its wait.
            phase.account(outcome, due.elapsed(), n);
            drop(permit);
        });
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(stamp: bool, dedup: bool, groups: bool) -> RecordShape {
        RecordShape {
            stream: "s".into(),
            record_size: 16,
            batch_size: 3,
            keys: vec!["k0".to_owned(), "k1".to_owned()].into(),
            message_groups: groups,
            dedup_prefix: dedup.then(|| "run".to_owned()),
            stamp_epoch: stamp.then(Instant::now),
            kinds: false,
        }
    }

    fn cursor() -> Cursor {
        Cursor {
            producer: 1,
            next_key: 1,
            next_id: 0,
        }
    }

    #[test]
    fn a_limited_budget_hands_out_exactly_its_records() {
        let budget = Budget::new(Some(7));
        assert_eq!(budget.claim(3), 3);
        assert_eq!(budget.claim(3), 3);
        assert_eq!(budget.claim(3), 1);
        assert_eq!(budget.claim(3), 0);
    }

    #[test]
    fn an_unlimited_budget_never_runs_out() {
        let budget = Budget::new(None);
        assert_eq!(budget.claim(500), 500);
        assert_eq!(budget.claim(500), 500);
    }

    #[test]
    fn entries_cycle_through_the_keys_from_the_producers_offset() {
        let shape = shape(false, false, false);
        let entries = shape.entries(&mut cursor(), 3, Instant::now());
        let keys: Vec<_> = entries.iter().map(|e| e.partition_key.as_str()).collect();
        assert_eq!(keys, ["k1", "k0", "k1"]);
        assert!(entries.iter().all(|e| e.data.len() == 16));
        assert!(entries
            .iter()
            .all(|e| e.message_group_id.is_empty() && e.deduplication_id.is_empty()));
    }

    #[test]
    fn dedup_ids_are_unique_and_groups_follow_the_key() {
        let shape = shape(false, true, true);
        let mut cursor = cursor();
        let mut entries = shape.entries(&mut cursor, 3, Instant::now());
        entries.extend(shape.entries(&mut cursor, 3, Instant::now()));
        let mut ids: Vec<_> = entries.iter().map(|e| e.deduplication_id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 6);
        assert!(ids.iter().all(|id| id.starts_with("run-1-")));
        assert!(entries
            .iter()
            .all(|e| e.message_group_id == e.partition_key));
    }

    #[test]
    fn three_records_of_four_are_orders_and_the_fourth_is_noise() {
        let shape = RecordShape {
            kinds: true,
            ..shape(false, false, false)
        };
        let entries = shape.entries(&mut cursor(), 8, Instant::now());
        let kinds: Vec<_> = entries
            .iter()
            .map(|e| e.attributes[KIND_ATTRIBUTE].string_value.as_str())
            .collect();
        assert_eq!(
            kinds,
            ["order", "order", "order", "noise", "order", "order", "order", "noise"]
        );
        assert!(entries
            .iter()
            .all(|e| e.attributes[KIND_ATTRIBUTE].data_type == "String"));
        for kind in [RecordKind::Order, RecordKind::Noise] {
            let sample = shape.sample(Some(kind));
            assert_eq!(sample.attributes[KIND_ATTRIBUTE].string_value, kind.value());
        }
    }

    #[test]
    fn records_have_no_attributes_unless_asked() {
        let shape = shape(false, false, false);
        assert!(shape
            .entries(&mut cursor(), 4, Instant::now())
            .iter()
            .all(|e| e.attributes.is_empty()));
        assert!(shape.sample(Some(RecordKind::Order)).attributes.is_empty());
    }

    #[test]
    fn stored_entries_are_tallied_by_the_kind_of_their_position() {
        let entry = |error: &str| shardlog::proto::v1::PutRecordsResultEntry {
            error_code: error.to_owned(),
            ..Default::default()
        };
        // Positions 0..=4: order, order (failed), order, noise, order.
        let answer = PutRecordsResponse {
            failed_record_count: 1,
            records: vec![
                entry(""),
                entry("InternalFailure"),
                entry(""),
                entry(""),
                entry(""),
            ],
        };
        let meter = Arc::new(Meter::default());
        let kinds = Arc::new(KindTally::default());
        let start = Instant::now();
        let phase = ProducePhase {
            shape: shape(false, false, false),
            budget: Budget::new(None),
            rate: None,
            producers: 1,
            in_flight: None,
            start,
            deadline: start,
            meter: Arc::clone(&meter),
            acked: None,
            kinds: Some(Arc::clone(&kinds)),
        };
        phase.account::<_, ClientError>(Ok(Ok(answer)), Duration::from_millis(1), 5);
        assert_eq!(kinds.get(RecordKind::Order), 3);
        assert_eq!(kinds.get(RecordKind::Noise), 1);
        assert_eq!(meter.counts().records, 4);
    }

    #[test]
    fn e2e_data_starts_with_the_send_time_since_the_epoch() {
        let shape = shape(true, false, false);
        let epoch = shape.stamp_epoch.expect("stamped shape");
        let sent = epoch + Duration::from_millis(1500);
        let entries = shape.entries(&mut cursor(), 1, sent);
        let data = &entries[0].data;
        assert_eq!(data.len(), 16);
        let stamp = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
        assert_eq!(stamp, 1_500_000_000);
    }
}
