//! The read path: shard iterators, GetRecords, and SubscribeToShard's push loop.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::iterator::IteratorPosition;
use super::{blocking, filter, Broker, BrokerError, ShardHandle, StreamHandle};
use crate::route::Filter;
use crate::storage::{FrameRead, ReadBatch, ShardLog, StoredRecord};
use crate::storage::{SequenceNumber, Timestamp};
use crate::stream::{ChildShard, ShardId, StreamName};

/// Where an iterator or a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IteratorKind {
    /// The oldest record still stored.
    TrimHorizon,
    /// Just after the newest record: only records put from now on.
    Latest,
    /// At this sequence number.
    AtSequence(SequenceNumber),
    /// Just after this sequence number.
    AfterSequence(SequenceNumber),
    /// At the first record that arrived at or after this time.
    AtTimestamp(Timestamp),
}

/// The starting position of a subscription.
pub type StartPosition = IteratorKind;

/// What GetRecords returns.
#[derive(Debug, Clone)]
pub struct GetRecordsOutput {
    /// The records read, in sequence order.
    pub records: Vec<StoredRecord>,
    /// Where the next read continues; `None` once the reader has reached the end of a closed
    /// shard, which is then continued by `child_shards`.
    pub next_shard_iterator: Option<String>,
    /// The shards that continue a closed shard, given with the read that reaches its end.
    pub child_shards: Vec<ChildShard>,
    /// How far the last record returned is behind the newest record of the shard, in whole ms
    /// (zero when the reader is at the end).
    pub behind_latest: Duration,
}

/// An event on its way to a subscriber, with the share of the subscription's buffer budget
/// its records hold.
type Pushed = (
    Result<SubscribeEvent, BrokerError>,
    Option<OwnedSemaphorePermit>,
);

/// The receiving end of a subscription: its events, in order. The records of an event count
/// against the subscription's buffer (`subscribe_buffer_bytes`) until the next event is asked
/// for, so what a subscriber has not taken yet, and the event it is still sending on, are
/// bounded together; the push loop reads no further ahead than that. Dropping it ends the
/// push loop.
#[derive(Debug)]
pub struct Subscription {
    events: mpsc::Receiver<Pushed>,
    /// The budget of the event handed out last.
    held: Option<OwnedSemaphorePermit>,
}

impl Subscription {
    /// The next event; `None` once the push loop has ended (after its last event or error).
    pub async fn recv(&mut self) -> Option<Result<SubscribeEvent, BrokerError>> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<SubscribeEvent, BrokerError>>> {
        // Asking for the next event means the last one is done with.
        self.held = None;
        self.events.poll_recv(cx).map(|pushed| {
            pushed.map(|(event, budget)| {
                self.held = budget;
                event
            })
        })
    }
}

impl tokio_stream::Stream for Subscription {
    type Item = Result<SubscribeEvent, BrokerError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_event(cx)
    }
}

/// Bytes of a record as a subscription's buffer budget counts them: its data and key.
fn budget_bytes(records: &[StoredRecord]) -> usize {
    records
        .iter()
        .map(|r| r.data.len() + r.partition_key.len())
        .sum()
}

/// One push of a subscription.
#[derive(Debug, Clone)]
pub struct SubscribeEvent {
    /// The records of this push, in sequence order (none in a keep-alive).
    pub records: Vec<StoredRecord>,
    /// The last sequence number the subscription has covered: resubscribe `AfterSequence` this
    /// to resume without gaps, as the contract says. `None` while the subscription's position
    /// is sequence 0 (nothing precedes it): resume at the trim horizon then.
    pub continuation_sequence: Option<SequenceNumber>,
    /// How far the last record pushed is behind the shard's newest, in whole ms.
    pub behind_latest: Duration,
    /// Set on the last event of a subscription to a closed shard: the shards that continue
    /// it. The subscription ends after it.
    pub child_shards: Vec<ChildShard>,
}

/// How far `batch`'s last record is behind the shard's newest one, by arrival time: zero when
/// the batch reaches the end of the shard (or holds nothing).
fn lag(log: &ShardLog, batch: &ReadBatch) -> Duration {
    if batch.next_sequence >= log.next_sequence() {
        return Duration::ZERO;
    }
    match batch.records.last() {
        Some(r) => log
            .last_timestamp_ms()
            .saturating_duration_since(r.timestamp_ms),
        None => Duration::ZERO,
    }
}

/// How far a frame read leaves its reader behind the shard's newest record.
fn frames_lag(log: &ShardLog, read: &FrameRead) -> Duration {
    if read.records == 0 || read.next >= log.next_sequence() {
        return Duration::ZERO;
    }
    log.last_timestamp_ms()
        .saturating_duration_since(read.last_timestamp_ms)
}

/// A read at an iterator, checked: see [`Broker::iterator_read`].
struct IteratorRead {
    pos: IteratorPosition,
    handle: Arc<StreamHandle>,
    shard: Arc<ShardHandle>,
    limit: u32,
}

/// The error of a read over one of its shard's quotas.
fn throttled(
    pos: &IteratorPosition,
    shard: &ShardHandle,
    (limit, retry_after): (super::quotas::Limit, Duration),
) -> BrokerError {
    BrokerError::Throttled {
        stream: pos.stream.clone(),
        shard: shard.id,
        limit,
        retry_after,
    }
}

/// What GetRecords returns in its frame form.
#[derive(Debug, Clone)]
pub struct GetFramesOutput {
    /// The stored frames, whole and CRC-checked, holding every record of `[first, end)`;
    /// the first may begin before `first` and the last may end past `end`.
    pub frames: Vec<Bytes>,
    /// The first sequence number the frames are read for.
    pub first: SequenceNumber,
    /// One past the last: the records of the answer are exactly `[first, end)`.
    pub end: SequenceNumber,
    /// As in [`GetRecordsOutput`].
    pub next_shard_iterator: Option<String>,
    /// As in [`GetRecordsOutput`].
    pub child_shards: Vec<ChildShard>,
    /// As in [`GetRecordsOutput`].
    pub behind_latest: Duration,
}

/// A closed shard holds nothing at or past its end: a batch written but never acknowledged
/// (its sync failed) that recovery kept there is not served as the parent's.
fn clamp_to_end(batch: &mut ReadBatch, end: Option<SequenceNumber>) {
    if let Some(end) = end {
        batch.records.retain(|r| r.sequence < end);
        batch.next_sequence = batch.next_sequence.min(end);
    }
}

impl Broker {
    fn shard_log(
        &self,
        handle: &StreamHandle,
        shard_id: &str,
    ) -> Result<Arc<ShardHandle>, BrokerError> {
        let not_found = || BrokerError::ShardNotFound {
            stream: handle.descriptor.name.clone(),
            shard: shard_id.to_owned(),
        };
        let id: ShardId = shard_id.parse().map_err(|_parse_error| not_found())?;
        handle
            .slots
            .get(id.index() as usize)
            .and_then(Option::as_ref)
            .filter(|s| s.id == id)
            .cloned()
            .ok_or_else(not_found)
    }

    /// Resolves a starting position to a sequence number in the shard.
    async fn resolve(
        &self,
        log: &Arc<ShardLog>,
        kind: IteratorKind,
        field: &'static str,
    ) -> Result<SequenceNumber, BrokerError> {
        let next = log.next_sequence();
        Ok(match kind {
            IteratorKind::TrimHorizon => log.first_sequence(),
            IteratorKind::Latest => next,
            IteratorKind::AtSequence(seq) => {
                if seq > next {
                    return Err(BrokerError::invalid(
                        field,
                        format!("{seq} is past the end of the shard (next sequence {next})"),
                    ));
                }
                seq
            }
            IteratorKind::AfterSequence(seq) => {
                if seq >= next {
                    return Err(BrokerError::invalid(
                        field,
                        format!("{seq} is not a stored sequence number (next sequence {next})"),
                    ));
                }
                seq.next()
            }
            IteratorKind::AtTimestamp(ts) => {
                let log = Arc::clone(log);
                blocking("seek time", move || log.seek_time(ts)).await??
            }
        })
    }

    /// Returns an iterator for reading `shard_id` of `stream` from the given position; with a
    /// filter, the reads through it return only the records that match.
    pub async fn get_shard_iterator(
        &self,
        stream: &StreamName,
        shard_id: &str,
        kind: IteratorKind,
        filter: Option<Filter>,
    ) -> Result<String, BrokerError> {
        if let Some(f) = &filter {
            self.matcher(f, "filter.pattern")?;
        }
        let handle = self.stream(stream)?;
        let shard = self.shard_log(&handle, shard_id)?;
        let id = shard.id;
        if kind == IteratorKind::Latest && shard.ending().is_some() {
            return Err(BrokerError::invalid(
                "shard_iterator_type",
                format!(
                    "shard {id} is closed: LATEST would never see a record; read it from another \
                     position, or read its child shards"
                ),
            ));
        }
        let sequence = self
            .resolve(&shard.log, kind, "starting_sequence_number")
            .await?;
        Ok(self.inner.iterators.encode(&IteratorPosition {
            stream: handle.descriptor.name.clone(),
            stream_created_at_ms: handle.descriptor.created_at_ms,
            shard: id.index(),
            sequence,
            issued_at_ms: Timestamp::now(),
            filter,
        }))
    }

    /// The stream a shard iterator reads (for checking who may use it); fails as GetRecords
    /// would for an iterator that is malformed, forged or expired.
    pub fn iterator_stream(&self, shard_iterator: &str) -> Result<StreamName, BrokerError> {
        Ok(self
            .inner
            .iterators
            .decode(shard_iterator, Timestamp::now())?
            .stream)
    }

    /// What a read at an iterator reads: its position, stream and shard, and the record limit
    /// (0 = the configured maximum), checked, with the shard's call rate counted.
    fn iterator_read(&self, shard_iterator: &str, limit: u32) -> Result<IteratorRead, BrokerError> {
        let max = self.config().get_records_limit;
        let limit = match limit {
            0 => max,
            n if n <= max => n,
            n => {
                return Err(BrokerError::invalid(
                    "limit",
                    format!("{n} is outside [1, {max}]"),
                ))
            }
        };
        let pos = self
            .inner
            .iterators
            .decode(shard_iterator, Timestamp::now())?;
        let handle = self.stream(&pos.stream)?;
        if handle.descriptor.created_at_ms != pos.stream_created_at_ms {
            return Err(BrokerError::StreamNotFound { stream: pos.stream });
        }
        let shard = handle
            .slots
            .get(pos.shard as usize)
            .and_then(Option::as_ref)
            .filter(|s| s.id == ShardId(pos.shard))
            .cloned()
            .ok_or_else(|| BrokerError::ShardNotFound {
                stream: pos.stream.clone(),
                shard: ShardId(pos.shard).to_string(),
            })?;
        shard
            .limits
            .get_records()
            .map_err(|quota| throttled(&pos, &shard, quota))?;
        Ok(IteratorRead {
            pos,
            handle,
            shard,
            limit,
        })
    }

    /// Where a read that stopped before `next` continues: a new iterator, or, once it has
    /// reached the end of a closed shard, the shards that continue it.
    fn continuation(
        &self,
        read: &IteratorRead,
        next: SequenceNumber,
    ) -> (Option<String>, Vec<ChildShard>) {
        let ended = read.shard.ending().is_some_and(|end| next >= end);
        if ended {
            (None, read.handle.descriptor.children_of(read.shard.id))
        } else {
            let next = self.inner.iterators.encode(&IteratorPosition {
                sequence: next,
                issued_at_ms: Timestamp::now(),
                ..read.pos.clone()
            });
            (Some(next), Vec::new())
        }
    }

    /// GetRecords in its frame form: the same read as [`Broker::get_records`], answered with
    /// the stored frames that hold the records instead of the records, for a client that
    /// checks and decodes frames itself. A filtered iterator reads records only.
    pub async fn get_records_frames(
        &self,
        shard_iterator: &str,
        limit: u32,
    ) -> Result<GetFramesOutput, BrokerError> {
        let read = self.iterator_read(shard_iterator, limit)?;
        if read.pos.filter.is_some() {
            return Err(BrokerError::invalid(
                "as_frames",
                "a filtered iterator returns the matching records, not frames",
            ));
        }
        let shard = Arc::clone(&read.shard);
        let max_bytes = shard.limits.read_budget(self.config().max_read_bytes);
        let (log, from, end, limit) = (
            Arc::clone(&shard.log),
            read.pos.sequence,
            shard.ending(),
            read.limit as usize,
        );
        let (first, frames, behind_latest) = blocking("read", move || {
            let (first, frames) = log.read_frames(from, end, limit, max_bytes)?;
            let behind = frames_lag(&log, &frames);
            Ok::<_, crate::storage::StorageError>((first, frames, behind))
        })
        .await??;
        // Over the read limit: the iterator stays where it was, so the retry reads them again.
        shard
            .limits
            .read(frames.bytes)
            .map_err(|quota| throttled(&read.pos, &shard, quota))?;
        shard.reads.count(frames.records, frames.bytes);
        let (next_shard_iterator, child_shards) = self.continuation(&read, frames.next);
        Ok(GetFramesOutput {
            frames: frames.frames,
            first,
            end: frames.next,
            next_shard_iterator,
            child_shards,
            behind_latest,
        })
    }

    /// Reads up to `limit` records (0 = the configured maximum) at the iterator's position.
    pub async fn get_records(
        &self,
        shard_iterator: &str,
        limit: u32,
    ) -> Result<GetRecordsOutput, BrokerError> {
        let read = self.iterator_read(shard_iterator, limit)?;
        let IteratorRead {
            pos, shard, limit, ..
        } = &read;
        let (shard, limit) = (Arc::clone(shard), *limit);
        let log = Arc::clone(&shard.log);
        let matcher = match &pos.filter {
            Some(f) => Some(self.matcher(f, "shard_iterator")?),
            None => None,
        };
        let max_bytes = shard.limits.read_budget(self.config().max_read_bytes);
        let l = Arc::clone(&log);
        let from = pos.sequence;
        let end = shard.ending();
        let (batch, behind_latest) = blocking("read", move || {
            let mut batch = l.read(from, limit as usize, max_bytes)?;
            clamp_to_end(&mut batch, end);
            // The lag is the reader's, whether or not the records match.
            let behind = lag(&l, &batch);
            filter::retain_matching(matcher.as_deref(), &mut batch.records);
            Ok::<_, crate::storage::StorageError>((batch, behind))
        })
        .await??;
        // A closed shard ends at its ending sequence: the read that reaches it names the
        // children instead of a next iterator.
        let bytes_read: usize = batch.records.iter().map(|r| r.data.len()).sum();
        // Over the read limit: the iterator stays where it was, so the retry reads them again.
        shard
            .limits
            .read(bytes_read)
            .map_err(|quota| throttled(pos, &shard, quota))?;
        shard.reads.count(batch.records.len(), bytes_read);
        let (next_shard_iterator, child_shards) = self.continuation(&read, batch.next_sequence);
        Ok(GetRecordsOutput {
            records: batch.records,
            next_shard_iterator,
            child_shards,
            behind_latest,
        })
    }

    /// Starts pushing the shard's records from `start`: first what is stored, then each record
    /// as it becomes durable. What the push loop has read and the subscriber has not taken is
    /// bounded, in events (`subscribe_buffer`) and in bytes (`subscribe_buffer_bytes`), so a
    /// slow reader slows the push loop instead of growing the server's memory; dropping the
    /// [`Subscription`] ends the loop. With a filter, only
    /// matching records are pushed; a read whose records all fail it pushes nothing, and the
    /// next push (or keep-alive) carries the continuation past them.
    pub async fn subscribe(
        &self,
        stream: &StreamName,
        shard_id: &str,
        start: StartPosition,
        filter: Option<Filter>,
    ) -> Result<Subscription, BrokerError> {
        let matcher = match &filter {
            Some(f) => Some(self.matcher(f, "filter.pattern")?),
            None => None,
        };
        let handle = self.stream(stream)?;
        let shard = self.shard_log(&handle, shard_id)?;
        let log = Arc::clone(&shard.log);
        let mut closed = shard.closed.subscribe();
        let mut position = self
            .resolve(&log, start, "starting_position.sequence_number")
            .await?;
        let cfg = self.config();
        let (tx, rx) = mpsc::channel(cfg.subscribe_buffer.max(1));
        let (limit, keepalive) = (cfg.get_records_limit as usize, cfg.subscribe_keepalive);
        let budget = Arc::new(Semaphore::new(cfg.subscribe_buffer_bytes));
        // An event never takes more than the whole buffer.
        let event_bytes = cfg
            .subscribe_event_bytes
            .min(cfg.subscribe_buffer_bytes)
            .clamp(1, u32::MAX as usize);
        let mut durable = log.subscribe();
        let mut deleted = handle.shared.deleted.subscribe();
        let mut shutdown = self.shutdown_signal();
        let stream_name = handle.descriptor.name.clone();
        let shard_id = shard.id;
        let broker = self.clone();
        let open = OpenSubscription::new(
            Arc::clone(&shard),
            self.inner.next_subscription.fetch_add(1, Ordering::Relaxed),
        );
        drop((handle, shard));
        tokio::spawn(async move {
            let open = open;
            loop {
                durable.borrow_and_update();
                if *deleted.borrow() {
                    let gone = Err(BrokerError::StreamNotFound {
                        stream: stream_name,
                    });
                    push(&tx, (gone, None), &mut shutdown).await;
                    return;
                }
                if *shutdown.borrow() {
                    let _ = tx.try_send((Err(BrokerError::ShuttingDown), None));
                    return;
                }
                // Room in the buffer first: nothing is read ahead of a subscriber that has not
                // taken what it was sent.
                let mut room = tokio::select! {
                    room = Arc::clone(&budget).acquire_many_owned(event_bytes as u32) => {
                        room.expect("a subscription's budget is never closed")
                    }
                    _ = tx.closed() => return,
                    _ = shutdown.wait_for(|stopping| *stopping) => {
                        let _ = tx.try_send((Err(BrokerError::ShuttingDown), None));
                        return;
                    }
                };
                let l = Arc::clone(&log);
                let m = matcher.clone();
                let end = *closed.borrow();
                let read = tokio::task::spawn_blocking(move || {
                    let mut batch = l.read(position, limit, event_bytes)?;
                    clamp_to_end(&mut batch, end);
                    let behind = lag(&l, &batch);
                    let read_any = !batch.records.is_empty();
                    filter::retain_matching(m.as_deref(), &mut batch.records);
                    Ok::<_, crate::storage::StorageError>((batch, behind, read_any))
                })
                .await;
                let (batch, behind_latest, read_any) = match read {
                    Ok(Ok(read)) => read,
                    Ok(Err(e)) => {
                        push(&tx, (Err(e.into()), None), &mut shutdown).await;
                        return;
                    }
                    Err(source) => {
                        let failed = Err(BrokerError::TaskFailed {
                            task: "subscription read",
                            source,
                        });
                        push(&tx, (failed, None), &mut shutdown).await;
                        return;
                    }
                };
                open.read(&batch.records, behind_latest);
                // The event keeps what its records take (a record larger than an event is
                // still sent whole, within one event's share); the rest goes back.
                let held = room.split(budget_bytes(&batch.records).min(event_bytes));
                drop(room);
                if !batch.records.is_empty() {
                    position = batch.next_sequence;
                    let event = SubscribeEvent {
                        records: batch.records,
                        // The batch is not empty, so `position` (its last sequence + 1) is >= 1.
                        continuation_sequence: position.checked_sub(1),
                        behind_latest,
                        child_shards: Vec::new(),
                    };
                    if !push(&tx, (Ok(event), held), &mut shutdown).await {
                        return;
                    }
                    continue;
                }
                position = batch.next_sequence;
                if read_any {
                    // Every record read failed the filter: read on without waiting.
                    continue;
                }
                let ending = *closed.borrow_and_update();
                if ending.is_some_and(|end| position >= end) {
                    // The end of a closed shard: a last event names its children.
                    let child_shards = broker
                        .stream(&stream_name)
                        .map(|h| h.descriptor.children_of(shard_id))
                        .unwrap_or_default();
                    let event = SubscribeEvent {
                        records: Vec::new(),
                        continuation_sequence: position.checked_sub(1),
                        behind_latest: Duration::ZERO,
                        child_shards,
                    };
                    push(&tx, (Ok(event), None), &mut shutdown).await;
                    return;
                }
                tokio::select! {
                    changed = durable.changed() => if changed.is_err() { return },
                    _ = closed.changed() => {}
                    _ = deleted.changed() => {}
                    _ = shutdown.changed() => {
                        let _ = tx.try_send((Err(BrokerError::ShuttingDown), None));
                        return;
                    }
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(keepalive) => {
                        let event = SubscribeEvent {
                            records: Vec::new(),
                            // Nothing precedes sequence 0: no continuation to name.
                            continuation_sequence: position.checked_sub(1),
                            behind_latest: Duration::ZERO,
                            child_shards: Vec::new(),
                        };
                        if !push(&tx, (Ok(event), None), &mut shutdown).await {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Subscription {
            events: rx,
            held: None,
        })
    }
}

/// A subscription as its shard's metrics see it: open until dropped (when the push loop ends).
struct OpenSubscription {
    shard: Arc<ShardHandle>,
    id: u64,
}

impl OpenSubscription {
    fn new(shard: Arc<ShardHandle>, id: u64) -> OpenSubscription {
        shard.reads.subscription_at(id, Duration::ZERO);
        OpenSubscription { shard, id }
    }

    /// Counts what a read hands out, and how far behind it left the subscription.
    fn read(&self, records: &[StoredRecord], behind: Duration) {
        self.shard
            .reads
            .count(records.len(), records.iter().map(|r| r.data.len()).sum());
        self.shard.reads.subscription_at(self.id, behind);
    }
}

impl Drop for OpenSubscription {
    fn drop(&mut self) {
        self.shard.reads.close(self.id);
    }
}

/// Hands `item` to a subscriber unless the server starts stopping first. False when the push
/// loop must end: the subscriber is gone, or shutdown began while its buffer was full (a
/// subscriber that stopped reading must not hold up a graceful stop). On shutdown the
/// subscriber is told `ShuttingDown` if its buffer has room.
async fn push(
    tx: &mpsc::Sender<Pushed>,
    item: Pushed,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        sent = tx.send(item) => sent.is_ok(),
        _ = shutdown.wait_for(|stopping| *stopping) => {
            let _ = tx.try_send((Err(BrokerError::ShuttingDown), None));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::broker::{BrokerConfig, PutEntry};
    use crate::fsio::RealIo;
    use crate::stream::StreamSettings;

    const RECORD: usize = 1000;
    /// A record's data and its one-byte key, as the budget counts them.
    const COUNTED: usize = RECORD + 1;

    fn read_so_far(broker: &Broker) -> u64 {
        let handles = broker.stream_handles();
        handles
            .iter()
            .flat_map(|h| h.shards().map(|s| s.reads.totals().0))
            .sum()
    }

    // Paused time: the runtime moves the clock only once every task waits (blocking reads
    // included), so each `settle` returns when the push loop can go no further.
    #[tokio::test(start_paused = true)]
    async fn a_subscriber_that_takes_nothing_costs_no_more_than_the_buffer_budget() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig::new(dir.path());
        config.subscribe_buffer = 64;
        config.subscribe_buffer_bytes = 4 * 2 * COUNTED;
        config.subscribe_event_bytes = 2 * COUNTED;
        let broker = Broker::open(config, RealIo::shared()).await.unwrap();
        let name = StreamName::new("s").unwrap();
        broker
            .create_stream(name.clone(), 1, StreamSettings::default())
            .await
            .unwrap();
        let entries = (0..100)
            .map(|_| PutEntry {
                partition_key: "k".to_owned(),
                data: Bytes::from(vec![7; RECORD]),
                ..Default::default()
            })
            .collect();
        broker.put_records(&name, entries).await.unwrap();
        let settle = || tokio::time::sleep(Duration::from_millis(100));

        let mut sub = broker
            .subscribe(
                &name,
                "shardId-000000000000",
                IteratorKind::TrimHorizon,
                None,
            )
            .await
            .unwrap();
        settle().await;
        let ahead = read_so_far(&broker);
        assert!(
            (1..=8).contains(&ahead),
            "{ahead} records read ahead of a subscriber that took none; the budget holds 8"
        );
        // Taking an event keeps its budget until the next is asked for.
        let first = sub.recv().await.unwrap().unwrap();
        assert!(budget_bytes(&first.records) <= 2 * COUNTED);
        settle().await;
        assert_eq!(
            read_so_far(&broker),
            ahead,
            "the taken event still holds its share"
        );
        let mut got = first.records.len();
        while got < 100 {
            let event = sub.recv().await.unwrap().unwrap();
            assert!(budget_bytes(&event.records) <= 2 * COUNTED);
            got += event.records.len();
            settle().await;
            let read = read_so_far(&broker) as usize;
            assert!(
                read - got <= 8,
                "{read} records read, {got} taken: more than the budget ahead"
            );
        }
        assert_eq!(got, 100);
    }
}
