//! Rules: durable server-side consumers that put every matching record of a source stream into
//! their target streams, exactly once, keeping each record's keys, group and attributes.
//!
//! ```text
//!  PutRule ─► metadata (definition, start) ─► runner: one task per source shard
//!                                                 │ subscribe(source shard, filter)
//!                                                 ▼
//!                      PutRecords into each target, ids rule/<rule>/<incarnation>/<shard>/<seq>
//!                                                 │ acked, nothing in flight: progress + marks
//!                                                 ▼
//!                         RuleProgress in the metadata, every `checkpoint_interval`
//! ```
//!
//! On start (server start, a replaced definition, after an error) a rule reads its targets
//! from their marks for its own ids (`recover.rs`) and skips what they hold: exactly once does
//! not lean on the targets' dedup windows, and routed puts do not fill them.

mod recover;
mod runner;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::{Broker, BrokerError, IteratorKind};
use crate::meta::{MetaCommand, RuleDefinition, RuleRecord};
use crate::route::Filter;
use crate::storage::{SequenceNumber, Timestamp};
use crate::stream::{RuleName, ShardId, StreamName};

pub use recover::{routed_id, ROUTED_ID_PREFIX};

/// Most targets of one rule (EventBridge: 5).
pub const DEFAULT_MAX_RULE_TARGETS: usize = 5;
/// Most rules on one server (EventBridge: 300 per event bus).
pub const DEFAULT_MAX_RULES: usize = 300;
/// How often a running rule records its progress. A crash costs a rescan of what was routed
/// since (never a duplicate), so this trades metadata writes against restart work.
pub const DEFAULT_RULE_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// How long a rule that met an error waits before it tries again.
pub const DEFAULT_RULE_RETRY: Duration = Duration::from_millis(500);

/// Limits and timing of rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleConfig {
    /// Most targets of one rule.
    pub max_targets: usize,
    /// Most rules on the server.
    pub max_rules: usize,
    /// How often a running rule records its progress.
    pub checkpoint_interval: Duration,
    /// Wait before a rule retries after an error.
    pub retry: Duration,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            max_targets: DEFAULT_MAX_RULE_TARGETS,
            max_rules: DEFAULT_MAX_RULES,
            checkpoint_interval: DEFAULT_RULE_CHECKPOINT_INTERVAL,
            retry: DEFAULT_RULE_RETRY,
        }
    }
}

/// A rule as PutRule asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// Its name.
    pub name: RuleName,
    /// The stream it reads.
    pub source: StreamName,
    /// Which records it routes; `None` routes all.
    pub filter: Option<Filter>,
    /// Where to.
    pub targets: Vec<StreamName>,
    /// False: keeps its position, routes nothing.
    pub enabled: bool,
    /// Where a new rule starts: `TrimHorizon` or `Latest`.
    pub start: IteratorKind,
    /// The principal making it (with an auth file), whose rights it routes with.
    pub owner: Option<String>,
}

/// How a rule is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleStatus {
    /// Routing, or waiting for records.
    Running,
    /// Disabled by its definition.
    Disabled,
    /// Stuck on an error, retrying; see [`RuleDescription::last_error`].
    Error,
}

/// A rule's progress in one source shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleShardProgress {
    /// The source shard.
    pub shard: ShardId,
    /// The next sequence number the rule looks at.
    pub next: SequenceNumber,
    /// Records from there to the shard's end.
    pub lag_records: u64,
    /// How far behind the shard's newest record the rule's last read was.
    pub behind_latest: Duration,
}

/// A rule's definition, state and progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDescription {
    /// Its name.
    pub name: RuleName,
    /// What it does.
    pub definition: RuleDefinition,
    /// When it was first created.
    pub created_at_ms: Timestamp,
    /// How it is doing.
    pub status: RuleStatus,
    /// The error it is stuck on, while it lasts.
    pub last_error: Option<String>,
    /// Records that matched since the server started.
    pub matched: u64,
    /// Records put into targets since the server started (one per record and target).
    pub routed: u64,
    /// Progress per source shard.
    pub shards: Vec<RuleShardProgress>,
}

/// What a running rule reports, shared between its runner and DescribeRule.
#[derive(Debug, Default)]
pub(crate) struct RuleStats {
    matched: AtomicU64,
    routed: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Per source shard: the next sequence and the lag of the last read.
    progress: Mutex<BTreeMap<ShardId, (SequenceNumber, Duration)>>,
}

impl RuleStats {
    fn set_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    fn error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A rule's runner, as the registry holds it.
#[derive(Debug)]
struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    stats: Arc<RuleStats>,
}

/// The running rules.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    running: tokio::sync::Mutex<HashMap<RuleName, Running>>,
    /// Stats outlive a runner restart (a replaced definition), so counters keep counting.
    stats: Mutex<HashMap<RuleName, Arc<RuleStats>>>,
    /// The rules as the metadata last left them. Readers (DescribeRule, ListRules, runners)
    /// take this copy instead of the metadata store's lock, which a command holds across its
    /// journal fsync: a read never waits for a disk.
    records: std::sync::RwLock<BTreeMap<RuleName, RuleRecord>>,
}

impl Rules {
    /// Replaces the readers' copy; called after every metadata command, under the store's lock,
    /// so copies are published in command order.
    pub(crate) fn publish(&self, rules: &BTreeMap<RuleName, RuleRecord>) {
        let mut records = self.records.write().unwrap_or_else(|p| p.into_inner());
        if *records != *rules {
            *records = rules.clone();
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<RuleName, RuleRecord>> {
        self.records.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl Broker {
    /// Creates or replaces a rule. A new rule starts at each source shard's end (`Latest`) or
    /// its oldest record (`TrimHorizon`); a replaced one keeps its position. Refused when a
    /// name, stream, target count or pattern is wrong, a target is missing or the source, or
    /// the rule would close a cycle of rules.
    pub async fn put_rule(&self, spec: RuleSpec) -> Result<RuleDescription, BrokerError> {
        let cfg = self.config().rules;
        if spec.targets.is_empty() || spec.targets.len() > cfg.max_targets {
            return Err(BrokerError::invalid(
                "targets",
                format!(
                    "{} targets; a rule has 1 to {}",
                    spec.targets.len(),
                    cfg.max_targets
                ),
            ));
        }
        let mut unique = spec.targets.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != spec.targets.len() {
            return Err(BrokerError::invalid("targets", "a target is named twice"));
        }
        if let Some(f) = &spec.filter {
            self.matcher(f, "filter.pattern")?;
        }
        let _admin = self.inner.admin.lock().await;
        // Under the admin lock no reshard runs: the layout read here is the one in force. A
        // closed shard starts at its end with LATEST, so the rule begins at its children.
        let source = self.stream(&spec.source)?;
        let start: BTreeMap<ShardId, SequenceNumber> = source
            .shards()
            .map(|s| {
                let at = match spec.start {
                    IteratorKind::TrimHorizon => Ok(s.log.first_sequence()),
                    IteratorKind::Latest => Ok(s.log.next_sequence()),
                    _ => Err(BrokerError::invalid(
                        "start_position",
                        "a rule starts at TRIM_HORIZON or LATEST",
                    )),
                }?;
                Ok((s.id, at))
            })
            .collect::<Result<_, BrokerError>>()?;
        drop(source);
        let exists = self.rule_record(&spec.name).is_some();
        if !exists && self.rule_count() >= cfg.max_rules {
            return Err(BrokerError::invalid(
                "rule_name",
                format!(
                    "the server holds {} rules already, its limit",
                    cfg.max_rules
                ),
            ));
        }
        let mut running = self.inner.rules.running.lock().await;
        // The old runner stops (after its batch in flight) before the definition changes, so
        // no record is routed under two definitions at once.
        if let Some(old) = running.remove(&spec.name) {
            stop_runner(old).await;
        }
        let cmd = MetaCommand::PutRule {
            rule: spec.name.clone(),
            marks: self.target_marks(&spec.targets),
            definition: RuleDefinition {
                source: spec.source,
                filter: spec.filter,
                targets: spec.targets,
                enabled: spec.enabled,
                owner: spec.owner,
            },
            created_at_ms: Timestamp::now(),
            start,
        };
        let put = self.execute_meta(cmd).await;
        // Whatever the outcome, the rule (old or new) runs on.
        if self.rule_record(&spec.name).is_some() {
            running.insert(spec.name.clone(), self.spawn_rule(spec.name.clone()));
        }
        drop(running);
        put?;
        self.describe_rule(&spec.name)
    }

    /// Deletes a rule. What it routed stays in its targets.
    pub async fn delete_rule(&self, name: &RuleName) -> Result<(), BrokerError> {
        let _admin = self.inner.admin.lock().await;
        if self.rule_record(name).is_none() {
            return Err(BrokerError::Meta(crate::meta::MetaError::RuleNotFound {
                rule: name.clone(),
            }));
        }
        let mut running = self.inner.rules.running.lock().await;
        if let Some(old) = running.remove(name) {
            stop_runner(old).await;
        }
        self.execute_meta(MetaCommand::DeleteRule(name.clone()))
            .await?;
        self.inner
            .rules
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        Ok(())
    }

    /// A rule's definition, status, counters and progress.
    pub fn describe_rule(&self, name: &RuleName) -> Result<RuleDescription, BrokerError> {
        let record = self.rule_record(name).ok_or_else(|| {
            BrokerError::Meta(crate::meta::MetaError::RuleNotFound { rule: name.clone() })
        })?;
        Ok(self.describe(name, record))
    }

    /// Every rule, or those reading `source`, by name.
    pub fn list_rules(&self, source: Option<&StreamName>) -> Vec<RuleDescription> {
        let rules: Vec<(RuleName, RuleRecord)> = {
            self.inner
                .rules
                .read()
                .iter()
                .filter(|(_, r)| source.is_none_or(|s| &r.definition.source == s))
                .map(|(n, r)| (n.clone(), r.clone()))
                .collect()
        };
        rules
            .into_iter()
            .map(|(name, record)| self.describe(&name, record))
            .collect()
    }

    fn describe(&self, name: &RuleName, record: RuleRecord) -> RuleDescription {
        let stats = self.rule_stats(name);
        let live = stats
            .progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let last_error = stats.error();
        let status = if !record.definition.enabled {
            RuleStatus::Disabled
        } else if last_error.is_some() {
            RuleStatus::Error
        } else {
            RuleStatus::Running
        };
        let shards = match self.stream(&record.definition.source) {
            Ok(handle) => handle
                .shards()
                .map(|s| {
                    let (next, behind_latest) = live.get(&s.id).copied().unwrap_or((
                        record
                            .next
                            .get(&s.id)
                            .copied()
                            .unwrap_or(SequenceNumber::ZERO),
                        Duration::ZERO,
                    ));
                    let end = s.log.next_sequence();
                    RuleShardProgress {
                        shard: s.id,
                        next,
                        lag_records: end.get().saturating_sub(next.get()),
                        behind_latest,
                    }
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        RuleDescription {
            name: name.clone(),
            definition: record.definition,
            created_at_ms: record.created_at_ms,
            status,
            last_error,
            matched: stats.matched.load(Ordering::Relaxed),
            routed: stats.routed.load(Ordering::Relaxed),
            shards,
        }
    }

    pub(crate) fn rule_record(&self, name: &RuleName) -> Option<RuleRecord> {
        self.inner.rules.read().get(name).cloned()
    }

    fn rule_count(&self) -> usize {
        self.inner.rules.read().len()
    }

    fn rule_stats(&self, name: &RuleName) -> Arc<RuleStats> {
        let mut stats = self
            .inner
            .rules
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Arc::clone(stats.entry(name.clone()).or_default())
    }

    /// Starts a runner for every rule in the metadata (on open).
    pub(crate) async fn start_rules(&self) {
        let names: Vec<RuleName> = {
            let meta = self.inner.meta.lock().unwrap_or_else(|p| p.into_inner());
            self.inner.rules.publish(&meta.state().rules);
            meta.state().rules.keys().cloned().collect()
        };
        let mut running = self.inner.rules.running.lock().await;
        for name in names {
            let runner = self.spawn_rule(name.clone());
            running.insert(name, runner);
        }
    }

    /// Stops the runners of the rules that read `stream` (being deleted with it).
    pub(crate) async fn stop_rules_of(&self, stream: &StreamName) {
        let names: Vec<RuleName> = self
            .list_rules(Some(stream))
            .into_iter()
            .map(|r| r.name)
            .collect();
        let mut running = self.inner.rules.running.lock().await;
        for name in names {
            if let Some(old) = running.remove(&name) {
                stop_runner(old).await;
            }
        }
    }

    fn spawn_rule(&self, name: RuleName) -> Running {
        let (stop, stopped) = watch::channel(false);
        let stats = self.rule_stats(&name);
        let task = tokio::spawn(runner::run(self.clone(), name, Arc::clone(&stats), stopped));
        Running { stop, task, stats }
    }
}

async fn stop_runner(runner: Running) {
    runner.stop.send_replace(true);
    if let Err(e) = runner.task.await {
        tracing::error!(error = %e, "a rule's runner failed");
    }
    drop(runner.stats);
}
