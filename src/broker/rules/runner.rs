//! A rule's runner: one worker per source shard routes matching records into the targets, in
//! source order; the runner records their progress and restarts them after an error.
//!
//! Exactly once, in three moves: a worker puts a batch into every target and waits for the
//! answers before it reads on, so at the points between batches nothing of the rule is in
//! flight; only at those points does it publish its progress together with the targets' ends
//! (`Quiet`); and a runner always stops its workers at such points (never mid-put) before the
//! next one scans the targets from the recorded ends (`recover.rs`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::recover::{routed_id, Routed};
use super::RuleStats;
use crate::broker::{Broker, BrokerError, IteratorKind, PutEntry};
use crate::meta::{MetaCommand, RuleRecord, TargetMark};
use crate::storage::{SequenceNumber, StoredRecord};
use crate::stream::{RuleName, ShardId, StreamName};

/// A worker's state at its last point with nothing in flight.
#[derive(Debug, Clone)]
struct Quiet {
    next: SequenceNumber,
    marks: BTreeMap<StreamName, TargetMark>,
    /// The shard is closed and routed to its end: its children may start, and its marks no
    /// longer hold anything back.
    finished: bool,
}

/// How a worker ended.
enum WorkerEnd {
    /// Asked to halt, between two batches.
    Halted,
    /// Its shard is closed and every record of it is routed.
    Finished(ShardId),
}

/// Runs rule `name` until it is stopped, deleted or the server stops; after an error it waits
/// and starts again from its recorded progress.
pub(super) async fn run(
    broker: Broker,
    name: RuleName,
    stats: Arc<RuleStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut shutdown = broker.shutdown_signal();
    loop {
        if *stop.borrow() || *shutdown.borrow() {
            return;
        }
        let Some(record) = broker.rule_record(&name) else {
            return;
        };
        if !record.definition.enabled {
            stats.set_error(None);
            tokio::select! {
                _ = stop.changed() => {}
                _ = shutdown.changed() => {}
            }
            return;
        }
        match route(&broker, &name, &record, &stats, &stop).await {
            Ok(()) => return,
            Err(e) => {
                if *stop.borrow() || *shutdown.borrow() {
                    return;
                }
                tracing::warn!(rule = %name, error = %e, "rule stopped on an error; retrying");
                stats.set_error(Some(e.to_string()));
                tokio::select! {
                    _ = tokio::time::sleep(broker.config().rules.retry) => {}
                    _ = stop.changed() => return,
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// One life of a rule: recover, route until stopped or failed, record the progress.
async fn route(
    broker: &Broker,
    name: &RuleName,
    record: &RuleRecord,
    stats: &Arc<RuleStats>,
    stop: &watch::Receiver<bool>,
) -> Result<(), BrokerError> {
    let definition = &record.definition;
    let routed = broker
        .scan_routed(
            name,
            record.created_at_ms,
            &definition.targets,
            &record.marks,
        )
        .await?;
    if routed.len() > 0 {
        tracing::info!(rule = %name, records = routed.len(), "found records routed after the last progress");
    }
    let routed = Arc::new(routed);
    let quiet: Arc<Mutex<BTreeMap<ShardId, Quiet>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let (halt, halted) = watch::channel(false);
    let mut workers = JoinSet::new();
    let start_ready = |workers: &mut JoinSet<Result<WorkerEnd, BrokerError>>| {
        start_ready_shards(
            broker, name, record, stats, &routed, &quiet, workers, &halted,
        )
    };
    start_ready(&mut workers)?;
    let mut stop = stop.clone();
    let mut shutdown = broker.shutdown_signal();
    let mut tick = tokio::time::interval(broker.config().rules.checkpoint_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut written: Option<MetaCommand> = None;
    let mut outcome = Ok(());
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = record_progress(broker, name, record, &quiet, &mut written).await {
                    outcome = Err(e);
                    break;
                }
                // A rule that routes again after an error is well again.
                if stats.error().is_some() && workers.len() == routing(&quiet) {
                    stats.set_error(None);
                }
            }
            joined = workers.join_next() => match joined {
                // Every shard finished and none to start: a stream keeps an open shard, so
                // this is only a stream deleted under the rule.
                None => break,
                Some(Ok(Ok(WorkerEnd::Finished(shard)))) => {
                    tracing::debug!(rule = %name, shard = %shard, "closed shard routed to its end");
                    // Its children may be ready now (a merge's child waits for both parents).
                    if let Err(e) = start_ready(&mut workers) {
                        outcome = Err(e);
                        break;
                    }
                }
                Some(Ok(Ok(WorkerEnd::Halted))) => {}
                Some(Ok(Err(e))) => {
                    outcome = Err(e);
                    break;
                }
                Some(Err(source)) => {
                    outcome = Err(BrokerError::TaskFailed { task: "rule worker", source });
                    break;
                }
            },
            _ = stop.changed() => break,
            _ = shutdown.changed() => break,
        }
    }
    // Every worker stops between two batches, never in the middle of a put: then the progress
    // and marks are exact, and the next life's scan sees every put this one made.
    halt.send_replace(true);
    while let Some(joined) = workers.join_next().await {
        if let Ok(Err(e)) = joined {
            if outcome.is_ok() && !matches!(e, BrokerError::ShuttingDown) {
                outcome = Err(e);
            }
        }
    }
    if !*broker.shutdown_signal().borrow() {
        record_progress(broker, name, record, &quiet, &mut written).await?;
    }
    outcome
}

/// How many shards are being routed (started, not finished).
fn routing(quiet: &Mutex<BTreeMap<ShardId, Quiet>>) -> usize {
    quiet
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .filter(|q| !q.finished)
        .count()
}

/// Starts a worker for every shard of the source not started yet whose ancestors are all
/// routed to their ends, so that a child's records follow its parents' in every target
/// (per partition key and message group, order holds across a reshard). A shard closed and
/// routed to its end already (by the recorded progress) counts as finished without a worker.
#[allow(clippy::too_many_arguments)]
fn start_ready_shards(
    broker: &Broker,
    name: &RuleName,
    record: &RuleRecord,
    stats: &Arc<RuleStats>,
    routed: &Arc<Routed>,
    quiet: &Arc<Mutex<BTreeMap<ShardId, Quiet>>>,
    workers: &mut JoinSet<Result<WorkerEnd, BrokerError>>,
    halted: &watch::Receiver<bool>,
) -> Result<(), BrokerError> {
    let source = broker.stream(&record.definition.source)?;
    let mut started = Vec::new();
    {
        let mut quiet = quiet.lock().unwrap_or_else(|p| p.into_inner());
        // Shards in id order: a parent's id is below its children's, so one pass settles a
        // whole lineage whose recorded progress is at its ends.
        for desc in source.descriptor.shards() {
            if quiet.contains_key(&desc.id) {
                continue;
            }
            let Some(shard) = source.shard(desc.id) else {
                continue;
            };
            // A retired parent (no log left) had nothing left to route.
            let parents_done = desc
                .parent
                .into_iter()
                .chain(desc.adjacent_parent)
                .all(|p| source.shard(p).is_none() || quiet.get(&p).is_some_and(|q| q.finished));
            if !parents_done {
                continue;
            }
            let first = shard.log.first_sequence();
            let next = record
                .next
                .get(&desc.id)
                .copied()
                .unwrap_or(first)
                .max(first);
            let finished = shard.ending().is_some_and(|end| next >= end);
            quiet.insert(
                desc.id,
                Quiet {
                    next,
                    // What the recorded marks say, until the worker publishes its own: the
                    // worker has put nothing yet.
                    marks: record.marks.clone(),
                    finished,
                },
            );
            if !finished {
                started.push((desc.id, next));
            }
        }
    }
    for (shard, start) in started {
        let ctx = Worker {
            broker: broker.clone(),
            rule: name.clone(),
            record: record.clone(),
            shard,
            routed: Arc::clone(routed),
            quiet: Arc::clone(quiet),
            stats: Arc::clone(stats),
        };
        workers.spawn(ctx.run(start, halted.clone()));
    }
    Ok(())
}

/// Writes the workers' last quiet points as the rule's progress, unless nothing moved. A
/// target's mark is the lowest end any worker saw, so the scan after a crash starts below
/// everything any worker put since its own point.
async fn record_progress(
    broker: &Broker,
    name: &RuleName,
    record: &RuleRecord,
    quiet: &Mutex<BTreeMap<ShardId, Quiet>>,
    written: &mut Option<MetaCommand>,
) -> Result<(), BrokerError> {
    let cmd = {
        let quiet = quiet.lock().unwrap_or_else(|p| p.into_inner());
        let next = quiet.iter().map(|(s, q)| (*s, q.next)).collect();
        let mut marks: BTreeMap<StreamName, TargetMark> = BTreeMap::new();
        // A finished shard has nothing in flight, and never will again.
        let routing: Vec<&Quiet> = quiet.values().filter(|q| !q.finished).collect();
        for target in &record.definition.targets {
            let seen: Vec<&TargetMark> =
                routing.iter().filter_map(|q| q.marks.get(target)).collect();
            // A worker without a mark for the target keeps the target's recorded one.
            if seen.len() != routing.len() || seen.is_empty() {
                continue;
            }
            let created = seen[0].created_at_ms;
            if seen.iter().any(|m| m.created_at_ms != created) {
                continue;
            }
            let mut lowest: BTreeMap<ShardId, SequenceNumber> = BTreeMap::new();
            for m in &seen {
                for (shard, at) in &m.next {
                    lowest
                        .entry(*shard)
                        .and_modify(|l| *l = (*l).min(*at))
                        .or_insert(*at);
                }
            }
            marks.insert(
                target.clone(),
                TargetMark {
                    created_at_ms: created,
                    next: lowest,
                },
            );
        }
        MetaCommand::RuleProgress {
            rule: name.clone(),
            next,
            marks,
        }
    };
    if written.as_ref() == Some(&cmd) {
        return Ok(());
    }
    broker.execute_meta(cmd.clone()).await?;
    *written = Some(cmd);
    Ok(())
}

/// One source shard's worker.
struct Worker {
    broker: Broker,
    rule: RuleName,
    record: RuleRecord,
    shard: ShardId,
    routed: Arc<Routed>,
    quiet: Arc<Mutex<BTreeMap<ShardId, Quiet>>>,
    stats: Arc<RuleStats>,
}

impl Worker {
    async fn run(
        self,
        start: SequenceNumber,
        mut halt: watch::Receiver<bool>,
    ) -> Result<WorkerEnd, BrokerError> {
        let definition = &self.record.definition;
        let start = {
            let source = self.broker.stream(&definition.source)?;
            let first = source
                .shard(self.shard)
                .map_or(start, |s| s.log.first_sequence());
            start.max(first)
        };
        let mut events = self
            .broker
            .subscribe(
                &definition.source,
                &self.shard.to_string(),
                IteratorKind::AtSequence(start),
                definition.filter.clone(),
            )
            .await?;
        let mut next = start;
        loop {
            let event = tokio::select! {
                biased;
                _ = halt.wait_for(|h| *h) => return Ok(WorkerEnd::Halted),
                event = events.recv() => event,
            };
            let Some(event) = event else {
                // The push loop ended without a word: the server is stopping.
                return Err(BrokerError::ShuttingDown);
            };
            let event = event?;
            if let Some(c) = event.continuation_sequence {
                next = c.next();
            }
            if !event.records.is_empty() {
                self.stats
                    .matched
                    .fetch_add(event.records.len() as u64, Ordering::Relaxed);
                // Every target at once; each gets this shard's records in order.
                let puts = definition
                    .targets
                    .iter()
                    .map(|target| self.put(target, &event.records));
                for result in join_all(puts).await {
                    result?;
                }
            }
            // Nothing of this worker is in flight: a point to publish. The last event of a
            // closed shard names its children: the shard is routed to its end.
            let finished = !event.child_shards.is_empty();
            let marks = self.broker.target_marks(&definition.targets);
            self.quiet.lock().unwrap_or_else(|p| p.into_inner()).insert(
                self.shard,
                Quiet {
                    next,
                    marks,
                    finished,
                },
            );
            self.stats
                .progress
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(self.shard, (next, event.behind_latest));
            if finished {
                return Ok(WorkerEnd::Finished(self.shard));
            }
        }
    }

    /// Puts `records` (those the target does not hold yet) into `target`, in order, in one
    /// request; fails on the first entry that fails.
    async fn put(&self, target: &StreamName, records: &[StoredRecord]) -> Result<(), BrokerError> {
        // The rule routes with its maker's rights as they stand now (an auth file may have
        // been reloaded since): it stops, with the refusal as its error, when they are gone.
        if let Some(owner) = &self.record.definition.owner {
            let source = &self.record.definition.source;
            self.broker
                .permitted(owner, crate::auth::Action::Read, source)?;
            self.broker
                .permitted(owner, crate::auth::Action::Write, target)?;
        }
        let batch: Vec<PutEntry> = records
            .iter()
            .filter(|r| !self.routed.contains(target, self.shard, r.sequence))
            .map(|r| self.entry(r))
            .collect();
        if batch.is_empty() {
            return Ok(());
        }
        let count = batch.len() as u64;
        for result in self.broker.put_routed(target, batch).await? {
            result?;
        }
        self.stats.routed.fetch_add(count, Ordering::Relaxed);
        Ok(())
    }

    /// The put of a routed record: its keys, group and attributes as stored, and the id that
    /// names where it came from.
    fn entry(&self, r: &StoredRecord) -> PutEntry {
        PutEntry {
            deduplication_id: Some(routed_id(
                &self.rule,
                self.record.created_at_ms,
                self.shard,
                r.sequence,
            )),
            ..PutEntry::from_stored(r)
        }
    }
}
