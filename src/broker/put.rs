//! The put pipeline: validate, route each entry to its shard, reserve dedup ids, build one
//! batch per shard, hand the batches to the shards' committers in parallel, gather the acks
//! back into request order.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::OwnedRwLockReadGuard;
use tokio::task::JoinHandle;

use super::attributes::{self, PutAttribute};
use super::{Broker, BrokerError, StreamHandle};
use crate::fifo::{self, BatchEntry, Committed};
use crate::storage::SequenceNumber;
use crate::storage::{
    AppendAck, AttributeType, Attributes, BatchBuilder, RecordRef, StorageError, StoredRecord,
};
use crate::stream::{HashKey, ShardId, StreamName};

/// One record to put, as the adapter received it (empty strings already mapped to `None`).
#[derive(Debug, Clone, Default)]
pub struct PutEntry {
    /// Chooses the shard, unless a message group or an explicit hash key does.
    pub partition_key: String,
    /// The record's data.
    pub data: Bytes,
    /// A decimal 128-bit hash key that overrides the partition key's hash.
    pub explicit_hash_key: Option<String>,
    /// The FIFO message group: every record of a group goes to one shard, in order.
    pub message_group_id: Option<String>,
    /// The deduplication id: a repeat within the stream's window is not stored again.
    pub deduplication_id: Option<String>,
    /// Message attributes, as the producer sent them; checked and stored with the record.
    pub attributes: Vec<PutAttribute>,
}

impl PutEntry {
    /// The put of a stored record again: its keys, group, data and attributes, without its
    /// deduplication id (the caller gives the one that names the copy).
    pub fn from_stored(r: &StoredRecord) -> PutEntry {
        let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
        PutEntry {
            partition_key: text(&r.partition_key),
            data: r.data.clone(),
            explicit_hash_key: r.explicit_hash_key.map(|k| HashKey(k).to_string()),
            message_group_id: r.message_group_id.as_ref().map(text),
            deduplication_id: None,
            attributes: r
                .attributes
                .iter()
                .map(|a| match a.kind {
                    AttributeType::Binary => {
                        PutAttribute::binary(a.name, Bytes::copy_from_slice(a.value))
                    }
                    kind => PutAttribute::text(a.name, kind, a.text().unwrap_or_default()),
                })
                .collect(),
        }
    }
}

/// Who puts: a producer's ids are reserved in the dedup window; a rule's are not (see
/// [`Broker::put_routed`]); the server's own copies (dead letters, moves) are reserved and may
/// carry [`SYSTEM_ATTRIBUTES`] more attributes than a producer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Producer,
    Rule,
    System,
}

/// Attributes the server adds to a record it copies (a dead letter's source), on top of the
/// producer's limit.
pub const SYSTEM_ATTRIBUTES: usize = 5;
/// Bytes the server's own attributes may add to a record it copies, on top of the record size
/// limit: names and values of [`SYSTEM_ATTRIBUTES`] attributes, with room to spare.
pub const SYSTEM_ATTRIBUTE_BYTES: usize = 2048;

/// Where a put record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutOutcome {
    /// The shard the record is in.
    pub shard: ShardId,
    /// Its sequence number in that shard.
    pub sequence: SequenceNumber,
    /// True when the record was a duplicate within the dedup window: nothing was stored and
    /// `shard`/`sequence` name the first record.
    pub duplicate: bool,
}

/// The result of one entry of a PutRecords: entries fail independently.
pub type PutResult = Result<PutOutcome, BrokerError>;

/// An entry after validation and routing.
struct Routed<'a> {
    entry: &'a PutEntry,
    shard: ShardId,
    hash_key: Option<u128>,
    attributes: Attributes,
}

impl Routed<'_> {
    /// The record as it is stored.
    fn record(&self) -> RecordRef<'_> {
        RecordRef {
            partition_key: &self.entry.partition_key,
            data: &self.entry.data,
            explicit_hash_key: self.hash_key,
            message_group_id: self.entry.message_group_id.as_deref(),
            deduplication_id: self.entry.deduplication_id.as_deref(),
            attributes: self.attributes.as_bytes(),
        }
    }
}

impl Broker {
    /// Puts one record. Errors of the record itself are returned as the call's error.
    pub async fn put_record(
        &self,
        stream: &StreamName,
        entry: PutEntry,
    ) -> Result<PutOutcome, BrokerError> {
        let mut results = self.put_records(stream, vec![entry]).await?;
        results
            .pop()
            .unwrap_or(Err(BrokerError::MissingResult { entry: 0 }))
    }

    /// Puts records; returns one result per entry, in request order. The call fails as a whole
    /// only for request-level problems (unknown stream, bad entry count or size, any entry
    /// failing validation — so a rejected request stores nothing); storage failures fail the
    /// entries of the shard concerned.
    pub async fn put_records(
        &self,
        stream: &StreamName,
        entries: Vec<PutEntry>,
    ) -> Result<Vec<PutResult>, BrokerError> {
        Ok(self.begin_put(stream, entries).await?.finish().await)
    }

    /// The first half of [`Broker::put_records`]: validates, routes, reserves dedup ids and
    /// queues one batch per shard at the shards' committers, then returns without waiting for
    /// the appends. Puts begun one after another are appended in that order in every shard
    /// they share, so a caller may keep several in flight and still keep its order.
    pub async fn begin_put(
        &self,
        stream: &StreamName,
        entries: Vec<PutEntry>,
    ) -> Result<PendingPut, BrokerError> {
        self.begin_put_as(stream, entries, Origin::Producer).await
    }

    /// Puts records routed by a rule: their ids (`rule/…`) are stored but not reserved in the
    /// target's dedup window, which the rule's own scan makes unnecessary and which a fast
    /// rule would fill; and the request limits of clients do not apply, as the records come
    /// from one bounded read.
    pub(crate) async fn put_routed(
        &self,
        stream: &StreamName,
        entries: Vec<PutEntry>,
    ) -> Result<Vec<PutResult>, BrokerError> {
        Ok(self
            .begin_put_as(stream, entries, Origin::Rule)
            .await?
            .finish()
            .await)
    }

    pub(crate) async fn begin_put_as(
        &self,
        stream: &StreamName,
        entries: Vec<PutEntry>,
        origin: Origin,
    ) -> Result<PendingPut, BrokerError> {
        let cfg = self.config();
        // A rule's put is bounded by the read it comes from (`get_records_limit` records,
        // `subscribe_event_bytes`), not by the limits of a client's request.
        let bounded = origin == Origin::Producer;
        if entries.is_empty() || (bounded && entries.len() > cfg.max_put_entries) {
            return Err(BrokerError::invalid(
                "records",
                format!(
                    "{} entries; a request holds 1 to {}",
                    entries.len(),
                    cfg.max_put_entries
                ),
            ));
        }
        // The put routes by the layout in force once it holds the stream's put gate, and its
        // appends hold the gate until acknowledged: a reshard, which takes the gate alone,
        // sees every put either wholly before its switch or wholly after.
        let (handle, pass) = self.enter_put_gate(stream).await?;
        let mut total = 0usize;
        let mut routed = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            if origin == Origin::Producer
                && entry
                    .deduplication_id
                    .as_deref()
                    .is_some_and(|id| id.starts_with(super::rules::ROUTED_ID_PREFIX))
            {
                return Err(BrokerError::invalid(
                    "deduplication_id",
                    format!(
                        "entry {i}: ids starting with {:?} are reserved for records that rules route",
                        super::rules::ROUTED_ID_PREFIX
                    ),
                ));
            }
            let r = self.route(&handle, i, entry, origin)?;
            total += entry.data.len() + entry.partition_key.len() + r.attributes.as_bytes().len();
            routed.push(r);
        }
        if bounded && total > cfg.max_put_request_bytes {
            return Err(BrokerError::invalid(
                "records",
                format!(
                    "request holds {total} bytes of data, keys and attributes, more than {}",
                    cfg.max_put_request_bytes
                ),
            ));
        }

        // Each entry against its shard's limits (producers only: a rule's routing is bounded
        // by its source). An entry over a limit fails alone and reserves no id.
        let mut throttled: Vec<Option<BrokerError>> = Vec::new();
        if origin == Origin::Producer && !cfg.shard_quotas.is_off() {
            throttled = routed
                .iter()
                .map(|r| {
                    let shard = handle.shard(r.shard)?;
                    let bytes = r.entry.data.len()
                        + r.entry.partition_key.len()
                        + r.attributes.as_bytes().len();
                    let (limit, retry_after) = shard.limits.put(bytes).err()?;
                    self.inner.requests.throttled("any", limit.reason());
                    Some(BrokerError::Throttled {
                        stream: handle.descriptor.name.clone(),
                        shard: r.shard,
                        limit,
                        retry_after,
                    })
                })
                .collect();
        }
        let is_throttled = |i: usize| throttled.get(i).is_some_and(Option::is_some);
        let keys: Vec<_> = routed
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if origin == Origin::Rule || is_throttled(i) {
                    return None;
                }
                handle.dedup_policy.key_for(
                    r.entry.message_group_id.as_deref(),
                    r.entry.deduplication_id.as_deref(),
                    &r.entry.data,
                    r.attributes.as_bytes(),
                )
            })
            .collect();
        let dedup = if keys.iter().any(Option::is_some) {
            Some(handle.dedup.reserve_batch(&keys, Instant::now).await)
        } else {
            None
        };

        // One batch per shard, records in request order; `members[shard]` maps batch position
        // back to the entry. Each batch is sized for its records up front, so building it
        // never reallocates.
        let shard_count = handle.slots.len();
        let mut frame_bytes = vec![0usize; shard_count];
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); shard_count];
        let mut results: Vec<Option<PutResult>> = (0..entries.len()).map(|_| None).collect();
        for (i, r) in routed.iter().enumerate() {
            if let Some(e) = throttled.get_mut(i).and_then(Option::take) {
                results[i] = Some(Err(e));
                continue;
            }
            if let Some(d) = &dedup {
                match &d.entries[i] {
                    BatchEntry::Duplicate(first) => {
                        results[i] = Some(Ok(duplicate_of(*first)));
                        continue;
                    }
                    BatchEntry::Refused(e) => {
                        results[i] = Some(Err(BrokerError::Fifo(e.clone())));
                        continue;
                    }
                    BatchEntry::SameAs(_) => continue,
                    BatchEntry::Fresh | BatchEntry::NotDeduplicated => {}
                }
            }
            let s = r.shard.index() as usize;
            frame_bytes[s] += BatchBuilder::encoded_len(&r.record());
            members[s].push(i);
        }
        let mut builders: Vec<Option<BatchBuilder>> = frame_bytes
            .iter()
            .map(|&bytes| (bytes > 0).then(|| BatchBuilder::with_capacity(bytes)))
            .collect();
        // Where each stored deduplicated entry sits: (shard, position in its batch).
        let mut placement: Vec<Option<(usize, usize)>> = match &dedup {
            Some(_) => vec![None; entries.len()],
            None => Vec::new(),
        };
        for (s, idxs) in members.iter().enumerate() {
            let Some(builder) = builders[s].as_mut() else {
                continue;
            };
            for (pos, &i) in idxs.iter().enumerate() {
                builder
                    .push(&routed[i].record())
                    .map_err(StorageError::from)?;
                if let Some(place) = placement.get_mut(i) {
                    *place = Some((s, pos));
                }
            }
        }

        // One ticket per shard, numbered by position in that shard's batch.
        let (dedup_entries, mut shard_tickets) = match dedup {
            Some(d) => (
                d.entries,
                d.ticket
                    .split(shard_count, |i| placement.get(i).copied().flatten())
                    .into_iter()
                    .map(Some)
                    .collect(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let mut appends = Vec::new();
        for (s, builder) in builders.into_iter().enumerate() {
            if let Some(batch) = builder.and_then(BatchBuilder::finish) {
                // Routes name open shards only, never a retired one.
                let Some(target) = handle.slot(s) else {
                    continue;
                };
                let shard = target.id;
                // The ids of the batch's records travel with it, in one ticket numbered by
                // position in the batch. Once queued, the batch belongs to the committer and
                // the spawned task, not this request, owns the append's outcome: if the append
                // fails the ticket drops there, releasing the ids; once it is acknowledged the
                // task turns it into a stored ticket, which can only end committed — by
                // `finish`, all shards under one lock, or by being dropped if the request was
                // cancelled meanwhile. So a cancelled request can neither tear the write nor
                // release an id whose record is stored. Nothing is awaited between queueing
                // and spawning, so the task always exists for a queued batch.
                let shard_ticket = shard_tickets.get_mut(s).and_then(Option::take);
                let queued = target.committer.submit(batch).await;
                let pass = Arc::clone(&pass);
                appends.push((
                    s,
                    tokio::spawn(async move {
                        let _pass = pass;
                        let ack = match queued {
                            Ok(pending) => pending.acked().await,
                            Err(e) => Err(e),
                        };
                        let stored = match (&ack, shard_ticket) {
                            (Ok(a), Some(t)) => {
                                Some(t.stored(shard.index(), a.base_sequence, Instant::now()))
                            }
                            _ => None,
                        };
                        (ack, stored)
                    }),
                ));
            }
        }
        Ok(PendingPut {
            handle,
            members,
            results,
            dedup_entries,
            appends,
        })
    }

    /// The stream's handle as it stands once the put holds the stream's put gate (shared), and
    /// that hold. A stream deleted and made again meanwhile is looked up afresh.
    async fn enter_put_gate(
        &self,
        stream: &StreamName,
    ) -> Result<(Arc<StreamHandle>, Arc<OwnedRwLockReadGuard<()>>), BrokerError> {
        loop {
            let seen = self.stream(stream)?;
            let pass = Arc::clone(&seen.shared.put_gate).read_owned().await;
            let handle = self.stream(stream)?;
            if Arc::ptr_eq(&handle.shared, &seen.shared) {
                return Ok((handle, Arc::new(pass)));
            }
        }
    }

    /// Validates an entry and picks its shard: the message group id wins over both the
    /// partition key and an explicit hash key (every record of a group must land in one shard,
    /// or the group's order is lost); an explicit hash key wins over the partition key.
    fn route<'a>(
        &self,
        handle: &StreamHandle,
        index: usize,
        entry: &'a PutEntry,
        origin: Origin,
    ) -> Result<Routed<'a>, BrokerError> {
        let cfg = self.config();
        let mut limits = cfg.attribute_limits;
        if origin == Origin::System {
            limits.max_attributes += SYSTEM_ATTRIBUTES;
        }
        if entry.data.len() > cfg.max_record_bytes {
            return Err(BrokerError::invalid(
                "data",
                format!(
                    "record data is {} bytes, more than {}",
                    entry.data.len(),
                    cfg.max_record_bytes
                ),
            ));
        }
        let attributes = attributes::check(index, &entry.attributes, &limits)?;
        // Attributes count against the record's size, as SNS counts them against a message's.
        let size = entry.data.len() + attributes.as_bytes().len();
        let max_size = match origin {
            // A copy's own attributes must not make a record that fit too big to copy.
            Origin::System => cfg.max_record_bytes + SYSTEM_ATTRIBUTE_BYTES,
            Origin::Producer | Origin::Rule => cfg.max_record_bytes,
        };
        if size > max_size {
            return Err(BrokerError::invalid(
                "attributes",
                format!(
                    "record data and attributes are {size} bytes, more than {}",
                    cfg.max_record_bytes
                ),
            ));
        }
        if let Some(g) = &entry.message_group_id {
            fifo::validate_message_group_id(g)?;
        }
        if let Some(d) = &entry.deduplication_id {
            fifo::validate_deduplication_id(d)?;
        }
        let key_chars = entry.partition_key.chars().count();
        if entry.message_group_id.is_none() && key_chars == 0 {
            return Err(BrokerError::invalid(
                "partition_key",
                "must not be empty (give a partition key or a message group id)",
            ));
        }
        if key_chars > super::MAX_PARTITION_KEY_CHARS {
            return Err(BrokerError::invalid(
                "partition_key",
                format!(
                    "{key_chars} characters, more than {}",
                    super::MAX_PARTITION_KEY_CHARS
                ),
            ));
        }
        let explicit = match &entry.explicit_hash_key {
            Some(s) => Some(HashKey::parse(s, "explicit_hash_key")?),
            None => None,
        };
        let key = match (&entry.message_group_id, &explicit) {
            (Some(group), _) => HashKey::of_partition_key(group),
            (None, Some(k)) => *k,
            (None, None) => HashKey::of_partition_key(&entry.partition_key),
        };
        let shard = handle
            .descriptor
            .route(key)
            .ok_or_else(|| BrokerError::Unroutable {
                stream: handle.descriptor.name.clone(),
                key,
            })?;
        Ok(Routed {
            entry,
            shard,
            hash_key: explicit.map(HashKey::value),
            attributes,
        })
    }
}

/// A put whose batches are queued at their shards' committers (see [`Broker::begin_put`]).
/// Dropping it does not undo anything: the queued batches are appended regardless.
pub struct PendingPut {
    handle: Arc<StreamHandle>,
    /// `members[shard]`: the request positions of the entries in that shard's batch.
    members: Vec<Vec<usize>>,
    /// Entries answered without an append (duplicates, refused ids).
    results: Vec<Option<PutResult>>,
    dedup_entries: Vec<BatchEntry>,
    appends: Vec<(usize, JoinHandle<AppendOutcome>)>,
}

impl std::fmt::Debug for PendingPut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingPut")
            .field("stream", &self.handle.descriptor.name)
            .field("entries", &self.results.len())
            .field("appends", &self.appends.len())
            .finish()
    }
}

/// What the task owning one shard's append hands back.
type AppendOutcome = (Result<AppendAck, StorageError>, Option<fifo::StoredTicket>);

impl PendingPut {
    /// Waits for every shard's append and answers each entry, in request order.
    pub async fn finish(self) -> Vec<PutResult> {
        let PendingPut {
            handle,
            members,
            mut results,
            dedup_entries,
            appends,
        } = self;
        if !dedup_entries.is_empty() {
            // While the records are being stored: the window's upkeep, off the next
            // reservation's way.
            handle.dedup.settle(Instant::now());
        }
        let shard_count = handle.slots.len();
        let mut acks: Vec<Option<Result<AppendAck, StorageError>>> =
            (0..shard_count).map(|_| None).collect();
        let mut stored = Vec::new();
        for (s, task) in appends {
            let ack = match task.await {
                Ok((r, ids)) => {
                    stored.extend(ids);
                    r
                }
                Err(e) => Err(StorageError::Poisoned {
                    dir: shard_dir(&handle, s),
                    op: "run the append task of",
                    path: shard_dir(&handle, s),
                    cause: std::sync::Arc::new(std::io::Error::other(e)),
                }),
            };
            acks[s] = Some(ack);
        }
        fifo::StoredTicket::commit_all(stored);

        for (s, idxs) in members.iter().enumerate() {
            let Some(ack) = &acks[s] else { continue };
            for (pos, &i) in idxs.iter().enumerate() {
                results[i] = Some(match ack {
                    Ok(a) => Ok(PutOutcome {
                        shard: ShardId(s as u32),
                        sequence: a.base_sequence + pos as u64,
                        duplicate: false,
                    }),
                    Err(e) => Err(BrokerError::Storage(e.duplicate())),
                });
            }
        }
        let mut out = Vec::with_capacity(results.len());
        for (i, result) in results.iter_mut().enumerate() {
            let r = match result.take() {
                Some(r) => r,
                None => match dedup_entries.get(i) {
                    Some(&BatchEntry::SameAs(first)) => match &out.get(first) {
                        Some(Ok(PutOutcome {
                            shard, sequence, ..
                        })) => Ok(PutOutcome {
                            shard: *shard,
                            sequence: *sequence,
                            duplicate: true,
                        }),
                        Some(Err(e)) => Err(repeat_failure(first, e)),
                        None => Err(BrokerError::MissingResult { entry: i }),
                    },
                    _ => Err(BrokerError::MissingResult { entry: i }),
                },
            };
            out.push(r);
        }
        let duplicates = out
            .iter()
            .filter(|r| {
                matches!(
                    r,
                    Ok(PutOutcome {
                        duplicate: true,
                        ..
                    })
                )
            })
            .count();
        if duplicates > 0 {
            handle
                .shared
                .dedup_hits
                .fetch_add(duplicates as u64, std::sync::atomic::Ordering::Relaxed);
        }
        out
    }
}

fn duplicate_of(first: Committed) -> PutOutcome {
    PutOutcome {
        shard: ShardId(first.shard),
        sequence: first.sequence,
        duplicate: true,
    }
}

/// The failure of an entry that repeats an earlier entry's dedup key: the earlier entry's own
/// failure, so both report the same code (a throttled id stays a throttle, not an internal
/// error, for every repeat).
fn repeat_failure(first: usize, e: &BrokerError) -> BrokerError {
    match e {
        BrokerError::Fifo(f) => BrokerError::Fifo(f.clone()),
        BrokerError::Storage(s) => BrokerError::Storage(s.duplicate()),
        other => BrokerError::EarlierEntryFailed {
            first,
            reason: other.to_string(),
        },
    }
}

/// The directory of the shard at index `s`, for an error naming it.
fn shard_dir(handle: &StreamHandle, s: usize) -> std::path::PathBuf {
    handle
        .slot(s)
        .map_or_else(Default::default, |sh| sh.log.dir().to_owned())
}
