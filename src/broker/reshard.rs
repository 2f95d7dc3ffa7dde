//! Resharding: split a shard, merge two, or rescale the stream, as one atomic switch.
//!
//! ```text
//!  plan (stream model) ─▶ open the new shards' logs ─▶ take the put gate alone
//!    (waits for every put in flight to be acknowledged; new puts wait behind it)
//!  ─▶ each closing shard ends at its next sequence ─▶ one metadata command (the switch)
//!  ─▶ new handle in place (same dedup window, same gate) ─▶ closed shards wake their readers
//!  ─▶ gate released: waiting puts route by the new layout
//! ```
//!
//! A crash before the metadata command leaves the old layout (the new shards' directories are
//! orphans, removed on start); after it, the new one. Puts are never refused because of a
//! reshard: they wait for the switch, which lasts one commit round.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::{blocking, shard_dir, Broker, BrokerError, ShardHandle, StreamHandle};
use crate::meta::MetaCommand;
use crate::storage::{SequenceNumber, ShardLog, Timestamp};
use crate::stream::{HashKey, Reshard, ShardId, StreamDescriptor, StreamName};

/// The window the scalings-per-day limit counts in.
pub const SCALING_PERIOD: Duration = Duration::from_secs(24 * 60 * 60);

/// Environment variable naming a step of a reshard at which the process aborts: a failure
/// point for crash tests (`reshard:children-opened`, `reshard:puts-drained`,
/// `reshard:switched`). Unset in normal operation.
pub const CRASH_AT_ENV: &str = "SHARDLOG_CRASH_AT";

/// Aborts the process, as `kill -9` would, when [`CRASH_AT_ENV`] names this step.
fn failure_point(step: &str) {
    if std::env::var(CRASH_AT_ENV).is_ok_and(|at| at == step) {
        tracing::error!(step, "aborting at the failure point {CRASH_AT_ENV} names");
        std::process::abort();
    }
}

/// Recent scalings per stream, for the per-day limit (kept in memory: a restart forgets them).
#[derive(Default)]
pub(crate) struct ScalingLog {
    calls: Mutex<HashMap<StreamName, VecDeque<Instant>>>,
}

impl ScalingLog {
    /// Counts a scaling of `stream` now, or refuses it when `limit` ran in the last period.
    fn admit(&self, stream: &StreamName, limit: u32) -> Result<(), BrokerError> {
        let now = Instant::now();
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let recent = calls.entry(stream.clone()).or_default();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= SCALING_PERIOD)
        {
            recent.pop_front();
        }
        if recent.len() >= limit as usize {
            return Err(BrokerError::ReshardLimit {
                stream: stream.clone(),
                reason: format!(
                    "UpdateShardCount ran {} times in the last 24 hours, the most allowed",
                    recent.len()
                ),
            });
        }
        recent.push_back(now);
        Ok(())
    }
}

/// Clears a stream's `resharding` flag when the reshard ends, however it ends.
struct Updating<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for Updating<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Broker {
    /// Splits open shard `shard` of `stream` at `new_starting_hash_key` (a decimal 128-bit
    /// key): the shard closes and two children cover its range. Returns the stream after.
    pub async fn split_shard(
        &self,
        stream: &StreamName,
        shard: &str,
        new_starting_hash_key: &str,
    ) -> Result<StreamDescriptor, BrokerError> {
        let key = HashKey::parse(new_starting_hash_key, "new_starting_hash_key")?;
        let id = self.shard_id_of(stream, shard)?;
        self.reshard(stream, false, move |d| Ok(d.plan_split(id, key)?))
            .await
    }

    /// Merges open shards `shard` and `adjacent` of `stream`, whose ranges touch, into one.
    pub async fn merge_shards(
        &self,
        stream: &StreamName,
        shard: &str,
        adjacent: &str,
    ) -> Result<StreamDescriptor, BrokerError> {
        let a = self.shard_id_of(stream, shard)?;
        let b = self.shard_id_of(stream, adjacent)?;
        if a == b {
            return Err(BrokerError::invalid(
                "adjacent_shard_to_merge",
                format!("{b} is the shard to merge itself"),
            ));
        }
        self.reshard(stream, false, move |d| Ok(d.plan_merge(a, b)?))
            .await
    }

    /// Rescales `stream` to `target` open shards of equal ranges (uniform scaling), within
    /// the scaling factor and the scalings-per-day limits.
    pub async fn update_shard_count(
        &self,
        stream: &StreamName,
        target: u32,
    ) -> Result<StreamDescriptor, BrokerError> {
        let limits = self.config().stream_limits;
        let name = stream.clone();
        self.reshard(stream, true, move |d| {
            let open = d.open_shards().count() as u32;
            let factor = limits.max_scaling_factor;
            if target == 0 || target > open.saturating_mul(factor) || target * factor < open {
                return Err(BrokerError::ReshardLimit {
                    stream: name.clone(),
                    reason: format!(
                        "target_shard_count {target} is not within a factor of {factor} of the \
                         {open} open shards"
                    ),
                });
            }
            Ok(d.plan_scale(target)?)
        })
        .await
    }

    /// The shard `text` names, `NOT_FOUND` unless the stream has it.
    fn shard_id_of(&self, stream: &StreamName, text: &str) -> Result<ShardId, BrokerError> {
        let handle = self.stream(stream)?;
        match text.parse::<ShardId>() {
            Ok(id) if handle.shard(id).is_some() => Ok(id),
            _ => Err(BrokerError::ShardNotFound {
                stream: stream.clone(),
                shard: text.to_owned(),
            }),
        }
    }

    /// Plans a reshard against the stream as it stands and makes the switch. A scaling counts
    /// against the scalings-per-day limit. The work runs in a task of its own: a caller that
    /// goes away (a client's deadline) must not leave the metadata switched and the handle not.
    async fn reshard(
        &self,
        stream: &StreamName,
        is_scaling: bool,
        plan: impl FnOnce(&StreamDescriptor) -> Result<Reshard, BrokerError> + Send + 'static,
    ) -> Result<StreamDescriptor, BrokerError> {
        let broker = self.clone();
        let name = stream.clone();
        tokio::spawn(async move { broker.switch(&name, is_scaling, plan).await })
            .await
            .map_err(|source| BrokerError::TaskFailed {
                task: "reshard",
                source,
            })?
    }

    async fn switch(
        &self,
        stream: &StreamName,
        is_scaling: bool,
        plan: impl FnOnce(&StreamDescriptor) -> Result<Reshard, BrokerError>,
    ) -> Result<StreamDescriptor, BrokerError> {
        let handle = self.stream(stream)?;
        let shared = Arc::clone(&handle.shared);
        if shared.resharding.swap(true, Ordering::AcqRel) {
            return Err(BrokerError::StreamUpdating {
                stream: stream.clone(),
            });
        }
        let _updating = Updating(&shared.resharding);
        let _admin = self.inner.admin.lock().await;
        // Deleted (or deleted and made again) while waiting for the admin lock.
        let handle = self.stream(stream)?;
        if !Arc::ptr_eq(&handle.shared, &shared) {
            return Err(BrokerError::StreamNotFound {
                stream: stream.clone(),
            });
        }
        let reshard = plan(&handle.descriptor)?;
        if reshard.opens.is_empty() {
            // Already the layout asked for (a scaling to the uniform count in force).
            return self.describe_stream(stream);
        }
        let open_after =
            handle.descriptor.open_shards().count() + reshard.opens.len() - reshard.closes.len();
        let limits = self.config().stream_limits;
        if open_after > limits.max_shard_count as usize {
            return Err(BrokerError::ReshardLimit {
                stream: stream.clone(),
                reason: format!(
                    "the reshard would leave {open_after} open shards, more than {}",
                    limits.max_shard_count
                ),
            });
        }
        if is_scaling {
            self.inner
                .scalings
                .admit(stream, limits.max_scalings_per_day)?;
        }

        // The new shards' logs exist before the switch names them. Only theirs: the live
        // shards' logs are open already, and a second instance must never recover a log its
        // committer is writing.
        let cfg = self.inner.config.clone();
        let io = Arc::clone(&self.inner.io);
        let new_shards: Vec<ShardId> = reshard.opens.iter().map(|s| s.id).collect();
        let stream_name = stream.clone();
        let retention = handle
            .shards()
            .next()
            .map_or(handle.descriptor.settings.retention, |s| s.log.retention());
        let opened = blocking("open new shards", move || {
            open_new_logs(&cfg, &io, &stream_name, retention, &new_shards)
        })
        .await??;
        failure_point("reshard:children-opened");

        let stall = Instant::now();
        let _gate = shared.put_gate.write().await;
        failure_point("reshard:puts-drained");
        // Every put routed to a closing shard is acknowledged; under `interval` and `never`
        // it may not be synced yet, and the end the switch records must not outlive it. The
        // closing shards' active segments are sealed (and synced) too, so that retention can
        // in time delete all they hold.
        let closing: Vec<Arc<ShardLog>> = reshard
            .closes
            .iter()
            .filter_map(|&id| handle.shard(id).map(|s| Arc::clone(&s.log)))
            .collect();
        blocking("seal closing shards", move || {
            closing.iter().try_for_each(|log| log.seal_active())
        })
        .await??;
        let mut ends = BTreeMap::new();
        for &id in &reshard.closes {
            let end = handle
                .shard(id)
                .map_or(SequenceNumber::ZERO, |s| s.log.next_sequence());
            ends.insert(id, end);
        }
        let mut next = handle
            .descriptor
            .apply_reshard(&reshard, &ends, Timestamp::now())?;
        next.options = handle
            .options
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.execute_meta(MetaCommand::ReshardStream(next.clone()))
            .await?;
        failure_point("reshard:switched");

        let mut slots = handle.slots.clone();
        for (id, log) in opened {
            let ending = ends.get(&id).copied();
            slots.resize(slots.len().max(id.index() as usize + 1), None);
            slots[id.index() as usize] = Some(Arc::new(ShardHandle::new(
                id,
                log,
                &self.inner.config,
                ending,
            )));
        }
        let replacement = Arc::new(StreamHandle {
            descriptor: next.clone(),
            options: RwLock::new(next.options.clone()),
            slots,
            dedup: handle.dedup.clone(),
            dedup_policy: handle.dedup_policy,
            shared: Arc::clone(&shared),
        });
        self.inner
            .streams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stream.clone(), Arc::clone(&replacement));
        self.queues_follow_reshard(&replacement);
        for (id, end) in &ends {
            if let Some(shard) = replacement.shard(*id) {
                shard.closed.send_replace(Some(*end));
            }
        }
        drop(_gate);
        tracing::info!(
            stream = %stream.as_str(),
            closed = reshard.closes.len(),
            opened = reshard.opens.len(),
            open = next.open_shards().count(),
            stall_ms = stall.elapsed().as_millis() as u64,
            "stream resharded"
        );
        Ok(next)
    }
}

/// True when `s` closed before `t` (a shard without a recorded close time never did).
fn closed_before(s: &crate::stream::ShardDescriptor, t: Timestamp) -> bool {
    !s.is_open() && s.closed_at.is_some_and(|c| c < t)
}

/// Most new shard logs created at once: creating one is a few syncs, which the disk can
/// overlap.
const PARALLEL_LOG_OPENS: usize = 8;

/// Creates the logs of a reshard's new shards, several at a time.
fn open_new_logs(
    config: &super::BrokerConfig,
    io: &Arc<dyn crate::fsio::Io>,
    stream: &StreamName,
    retention: Duration,
    ids: &[ShardId],
) -> Result<Vec<(ShardId, Arc<ShardLog>)>, BrokerError> {
    let mut log_config = config.log.clone();
    log_config.retention = retention;
    let mut opened = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(PARALLEL_LOG_OPENS) {
        let results: Vec<Result<(ShardId, Arc<ShardLog>), BrokerError>> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|&id| {
                        let dir = shard_dir(&config.data_dir, stream, id);
                        let io = Arc::clone(io);
                        let log_config = log_config.clone();
                        scope.spawn(move || {
                            let log = ShardLog::open(io, &dir, log_config)?;
                            Ok((id, Arc::new(log)))
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            });
        for result in results {
            opened.push(result?);
        }
    }
    Ok(opened)
}

/// Which shards [`Broker::list_shards`] returns (Kinesis's `ShardFilter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardFilter {
    /// Every shard, open and closed.
    All,
    /// The shards with a higher id.
    AfterShardId(ShardId),
    /// The open shards.
    AtLatest,
    /// The oldest shards still holding records (none of whose parents does), and open shards
    /// without such a parent: where a reader of the whole stream starts.
    AtTrimHorizon,
    /// Open shards and closed ones still holding records.
    FromTrimHorizon,
    /// The shards open at this time: opened at or before it, and open still or closed at or
    /// after it (a time before the stream's creation reads as its creation).
    AtTimestamp(Timestamp),
    /// The shards open at this time and every shard opened since.
    FromTimestamp(Timestamp),
}

impl Broker {
    /// True while a reshard of the stream runs (Kinesis's `UPDATING`).
    pub fn stream_updating(&self, stream: &StreamName) -> Result<bool, BrokerError> {
        Ok(self
            .stream(stream)?
            .shared
            .resharding
            .load(Ordering::Acquire))
    }

    /// The stream's shards that pass `filter`, by increasing id; never a retired one.
    pub fn list_shards(
        &self,
        stream: &StreamName,
        filter: ShardFilter,
    ) -> Result<Vec<crate::stream::ShardDescriptor>, BrokerError> {
        let handle = self.stream(stream)?;
        let shards = handle.descriptor.shards();
        // A closed shard holds records while retention has not passed its end.
        let holds_records = |id: ShardId| {
            handle.shard(id).is_some_and(|s| match s.ending() {
                None => true,
                Some(end) => s.log.first_sequence() < end,
            })
        };
        let live: Vec<bool> = shards.iter().map(|s| holds_records(s.id)).collect();
        let is_live = |id: ShardId| live.get(id.index() as usize).copied().unwrap_or(false);
        // Whether an ancestor still holds records (parents have lower ids: one pass).
        let mut behind_live = vec![false; shards.len()];
        for s in shards {
            let parents = s.parent.into_iter().chain(s.adjacent_parent);
            let covered = parents.into_iter().any(|p| {
                is_live(p)
                    || behind_live
                        .get(p.index() as usize)
                        .copied()
                        .unwrap_or(false)
            });
            if let Some(slot) = behind_live.get_mut(s.id.index() as usize) {
                *slot = covered;
            }
        }
        // When a shard opened: its stream's creation, or when its parents closed. A shard
        // closed before close times were recorded has none: it counts as open at any time.
        let opened_at = |s: &crate::stream::ShardDescriptor| {
            s.parent
                .and_then(|p| handle.descriptor.shard(p))
                .map_or(Some(handle.descriptor.created_at_ms), |p| p.closed_at)
        };
        let open_at = |s: &crate::stream::ShardDescriptor, t: Timestamp| {
            let t = t.max(handle.descriptor.created_at_ms);
            opened_at(s).is_none_or(|o| o <= t) && !closed_before(s, t)
        };
        Ok(shards
            .iter()
            .filter(|s| !s.retired)
            .filter(|s| match filter {
                ShardFilter::AtTimestamp(t) => open_at(s, t),
                ShardFilter::FromTimestamp(t) => !closed_before(s, t),
                ShardFilter::All => true,
                ShardFilter::AfterShardId(after) => s.id > after,
                ShardFilter::AtLatest => s.is_open(),
                ShardFilter::FromTrimHorizon => is_live(s.id),
                ShardFilter::AtTrimHorizon => is_live(s.id) && !behind_live[s.id.index() as usize],
            })
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::BrokerConfig;
    use crate::fsio::RealIo;
    use crate::stream::StreamSettings;

    async fn broker_with_stream(dir: &std::path::Path, shards: u32) -> (Broker, StreamName) {
        let broker = Broker::open(BrokerConfig::new(dir), RealIo::shared())
            .await
            .unwrap();
        let name = StreamName::new("s").unwrap();
        broker
            .create_stream(name.clone(), shards, StreamSettings::default())
            .await
            .unwrap();
        (broker, name)
    }

    #[tokio::test]
    async fn a_second_reshard_while_one_waits_for_the_puts_is_refused_and_the_stream_is_updating() {
        let dir = tempfile::tempdir().unwrap();
        let (broker, name) = broker_with_stream(dir.path(), 2).await;
        // A put in flight holds the gate: the first reshard waits for it.
        let gate = Arc::clone(&broker.stream(&name).unwrap().shared.put_gate);
        let in_flight = gate.read_owned().await;
        let first = tokio::spawn({
            let broker = broker.clone();
            let name = name.clone();
            async move { broker.update_shard_count(&name, 4).await }
        });
        // The first reshard has started once the stream says so (it sets the flag first).
        while !broker.stream_updating(&name).unwrap() {
            tokio::task::yield_now().await;
        }
        let second = broker
            .split_shard(&name, "shardId-000000000000", "1000")
            .await;
        assert!(
            matches!(second, Err(BrokerError::StreamUpdating { .. })),
            "{second:?}"
        );
        drop(in_flight);
        let after = first.await.unwrap().unwrap();
        assert_eq!(after.open_shards().count(), 4);
        assert!(!broker.stream_updating(&name).unwrap());
    }

    #[tokio::test]
    async fn scalings_past_the_daily_limit_are_refused_and_splits_are_not_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig::new(dir.path());
        config.stream_limits.max_scalings_per_day = 2;
        let broker = Broker::open(config, RealIo::shared()).await.unwrap();
        let name = StreamName::new("s").unwrap();
        broker
            .create_stream(name.clone(), 1, StreamSettings::default())
            .await
            .unwrap();
        broker
            .split_shard(&name, "shardId-000000000000", "1000")
            .await
            .unwrap();
        broker.update_shard_count(&name, 4).await.unwrap();
        broker.update_shard_count(&name, 2).await.unwrap();
        let third = broker.update_shard_count(&name, 4).await;
        assert!(
            matches!(&third, Err(BrokerError::ReshardLimit { reason, .. }) if reason.contains("24 hours")),
            "{third:?}"
        );
        assert_eq!(
            broker.describe_stream(&name).unwrap().open_shards().count(),
            2
        );
    }
}
