//! The workload and the checks of the crash campaigns (`tests/crash_loop.rs`: SIGKILL of the
//! real server process; `tests/power_loss.rs`: power cuts through the I/O seam). A mixed
//! workload over gRPC runs until a random number of records is acknowledged; the test then
//! crashes the server its way and restarts it, and [`Campaign::check`] verifies, extending
//! what earlier rounds verified:
//! - every acknowledged record is stored exactly once, at the shard and sequence number it was
//!   acknowledged with; each shard's sequence numbers run without a gap; nothing is stored that
//!   was never sent;
//! - each producer's records are in its order on every shard, and each message group's are in
//!   order across the stream (parents before children after the reshard);
//! - no deduplication id is stored twice, though every FIFO batch that failed at the crash is
//!   sent again after the restart;
//! - a lease group's checkpoints never go back;
//! - no queue message whose delete was acknowledged is delivered again;
//! - every record the rule matches is in its target exactly once, and nothing else is;
//! - every record a subscription handed out is stored where it was handed out from, and each
//!   subscription's records run without a gap;
//! - the reshard is all or nothing: the open shards tile the hash key space, four of them or
//!   eight.
//!
//! With a weaker fsync policy a power cut may lose acknowledged records; [`Campaign::check_tail`]
//! then verifies that only a tail of each shard went, never a record in the middle.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use shardlog::client::{Client, Membership, Position};
use shardlog::proto::v1 as pb;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The stream the workload writes, its shards before and after the reshard.
const EVENTS: &str = "events";
const SHARDS_BEFORE: u32 = 4;
const SHARDS_AFTER: u32 = 8;
/// The rule's target.
const ROUTED: &str = "routed";
const RULE: &str = "copy-a";
const LEASE_GROUP: &str = "billing";
const QUEUE_GROUP: &str = "work";
/// The round whose workload reshards the stream (and each later one, until it is done).
const RESHARD_ROUND: u64 = 2;
/// Message groups of the FIFO producer.
const MESSAGE_GROUPS: u64 = 6;
/// Records per batch, at most.
const MAX_BATCH: u64 = 20;
/// Acknowledged records after which a round's server is killed, at most.
const MAX_ACKS_PER_ROUND: u64 = 600;
/// How long a round's workload may take to reach its kill point, or the rule to catch up,
/// before the test calls the server stuck.
pub const STUCK: Duration = Duration::from_secs(60);

/// A small deterministic generator (splitmix64), so a failing seed can be run again.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// What one record is: producer 0 puts plain records, producer 1 FIFO records with a message
/// group and a deduplication id. The id is the data's `id` and, for FIFO records, the
/// deduplication id too; every third record is of kind `a`, which the rule routes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Id {
    producer: u8,
    n: u64,
}

impl Id {
    fn text(&self) -> String {
        format!("p{}-{}", self.producer, self.n)
    }

    fn kind_a(&self) -> bool {
        self.n % 3 == 0
    }

    fn group(&self) -> Option<String> {
        (self.producer == 1).then(|| format!("g{}", self.n % MESSAGE_GROUPS))
    }

    fn entry(&self) -> pb::PutRecordsRequestEntry {
        let kind = if self.kind_a() { "a" } else { "b" };
        pb::PutRecordsRequestEntry {
            partition_key: format!("k{}", self.n % 97),
            data: Bytes::from(format!(r#"{{"id":"{}","kind":"{kind}"}}"#, self.text())),
            message_group_id: self.group().unwrap_or_default(),
            deduplication_id: if self.producer == 1 {
                self.text()
            } else {
                String::new()
            },
            ..Default::default()
        }
    }

    fn of(data: &[u8]) -> Id {
        let v: serde_json::Value = serde_json::from_slice(data)
            .unwrap_or_else(|e| panic!("stored data is not what was put ({e}): {data:?}"));
        let text = v["id"].as_str().expect("an id");
        let (p, n) = text[1..].split_once('-').expect("p<producer>-<n>");
        Id {
            producer: p.parse().expect("producer"),
            n: n.parse().expect("counter"),
        }
    }
}

/// Where a record was acknowledged or found: shard and sequence number.
type Place = (String, u64);

/// Everything the clients were told, and everything verified so far; kept across rounds.
#[derive(Default)]
struct Model {
    /// The next record counter of each producer.
    next: [u64; 2],
    /// Acknowledged records and where they were acknowledged.
    acked: BTreeMap<Id, Place>,
    /// Acknowledged since the last check.
    fresh_acks: Vec<Id>,
    /// When each record was acknowledged.
    ack_at: BTreeMap<Id, Instant>,
    /// Sent without an acknowledgement (the put failed at the kill): stored once or not at all.
    unsure: BTreeSet<Id>,
    /// FIFO entries whose put failed: sent again, first thing, in order, after the restart.
    retry: Vec<Id>,
    /// Every record found in the stream, and where.
    stored: BTreeMap<Id, Place>,
    /// Per shard of `events`: the last sequence number verified.
    read_upto: BTreeMap<String, u64>,
    /// Per producer 0 and shard, the last counter found; per message group, the last counter.
    last_on_shard: BTreeMap<String, u64>,
    last_in_group: BTreeMap<String, u64>,
    /// Per shard, the highest checkpoint the lease group acknowledged.
    checkpoints: BTreeMap<String, u64>,
    /// Queue messages whose delete was acknowledged.
    deleted: BTreeSet<Place>,
    /// Records handed out by subscriptions, to be found in the stream.
    handed: Vec<(Place, Id)>,
    /// Per shard: where the subscription goes on from.
    subscribed_upto: BTreeMap<String, u64>,
    /// What the rule put into its target, and per target shard the last sequence read.
    routed: BTreeSet<Id>,
    routed_upto: BTreeMap<String, u64>,
    resharded: bool,
    figures: Figures,
}

#[derive(Default, Debug)]
struct Figures {
    rounds: u64,
    acked: u64,
    retried: u64,
    checkpoints: u64,
    deletes: u64,
    received: u64,
    handed: u64,
}

type Shared = Arc<Mutex<Model>>;

fn lock(model: &Shared) -> std::sync::MutexGuard<'_, Model> {
    model.lock().unwrap_or_else(|p| p.into_inner())
}

/// Which clients a round runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Two producers, a subscription per shard, a lease group member, a queue group worker,
    /// a rule routing into a second stream, and (from [`RESHARD_ROUND`] on) a reshard.
    Mixed,
    /// The two producers alone.
    Producers,
}

/// One campaign: the model of what the clients were told, and the random choices.
pub struct Campaign {
    model: Shared,
    rng: Rng,
    workload: Workload,
}

/// A round's workload, running until the server crashes under it.
pub struct Running {
    tasks: JoinSet<()>,
    acked: watch::Receiver<u64>,
    /// Acknowledged records after which the server is to crash.
    pub kill_at: u64,
}

impl Campaign {
    pub fn new(seed: u64, workload: Workload) -> Campaign {
        Campaign {
            model: Shared::default(),
            rng: Rng(seed),
            workload,
        }
    }

    /// The seed in the environment variable `var`, or one from the clock; printed, so that a
    /// failing campaign can be run again.
    pub fn seed(var: &str) -> u64 {
        let seed = std::env::var(var).ok().map_or_else(
            || {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            },
            |s| {
                s.parse()
                    .unwrap_or_else(|_| panic!("{var} is not a number"))
            },
        );
        println!("{var}={seed}");
        seed
    }

    /// Rounds in the environment variable `var`, or `default`.
    pub fn rounds(var: &str, default: u64) -> u64 {
        std::env::var(var).ok().map_or(default, |r| {
            r.parse()
                .unwrap_or_else(|_| panic!("{var} is not a number"))
        })
    }

    /// Creates the streams, and for the mixed workload the rule and the queue group.
    pub async fn set_up(&self, client: &Client) {
        set_up(client, self.workload).await;
    }

    /// Starts a round's workload against the server `client` talks to.
    pub async fn start(&mut self, client: &Client, round: u64) -> Running {
        let kill_at = self.rng.between(1, MAX_ACKS_PER_ROUND);
        let (acks, acked) = watch::channel(0u64);
        let acks = Arc::new(acks);
        let mut tasks = JoinSet::new();
        for producer in 0..2u8 {
            let seed = self.rng.next();
            tasks.spawn(produce(
                client.clone(),
                self.model.clone(),
                producer,
                acks.clone(),
                seed,
            ));
        }
        if self.workload == Workload::Mixed {
            let shards = client.list_shards(EVENTS).await.unwrap();
            for shard in shards {
                tasks.spawn(subscribe(
                    client.clone(),
                    self.model.clone(),
                    shard.shard_id,
                ));
            }
            tasks.spawn(lease_member(client.clone(), self.model.clone()));
            tasks.spawn(queue_worker(client.clone(), self.model.clone()));
            if round >= RESHARD_ROUND && !lock(&self.model).resharded {
                let (client, model, mut acked) =
                    (client.clone(), self.model.clone(), acked.clone());
                tasks.spawn(async move {
                    // Midway through the round, while the producers put.
                    let _ = acked.wait_for(|n| *n >= kill_at / 2).await;
                    if client
                        .update_shard_count(EVENTS, SHARDS_AFTER)
                        .await
                        .is_ok()
                    {
                        lock(&model).resharded = true;
                    }
                });
            }
        }
        Running {
            tasks,
            acked,
            kill_at,
        }
    }

    /// Every check, after a crash that may lose nothing acknowledged.
    pub async fn check(&self, client: &Client, round: u64) {
        read_events(client, &self.model, round).await;
        {
            let mut m = lock(&self.model);
            let fresh = std::mem::take(&mut m.fresh_acks);
            for id in fresh {
                // Found where it was acknowledged, also when the acknowledgement was a
                // duplicate hit of a put that had been stored before a crash.
                assert_eq!(
                    m.stored.get(&id),
                    Some(&m.acked[&id]),
                    "round {round}: acknowledged {id:?} is lost or elsewhere"
                );
            }
        }
        if self.workload == Workload::Mixed {
            check_consumers(client, &self.model, round).await;
        }
        lock(&self.model).figures.rounds += 1;
    }

    /// The checks after a power cut under a policy that may lose acknowledged records: only a
    /// tail of each shard is missing, never a record before a stored one; with `window`, every
    /// record lost was acknowledged less than `window` before `cut`. Run once, after the only
    /// crash of a fresh data directory. Returns the acknowledged records and those lost.
    pub async fn check_tail(
        &self,
        client: &Client,
        round: u64,
        cut: Instant,
        window: Option<Duration>,
    ) -> (u64, u64) {
        read_events(client, &self.model, round).await;
        let m = lock(&self.model);
        let mut lost = 0;
        for (id, (shard, seq)) in &m.acked {
            if m.stored.get(id) == Some(&(shard.clone(), *seq)) {
                continue;
            }
            assert!(
                !m.stored.contains_key(id),
                "round {round}: acknowledged {id:?} is stored elsewhere"
            );
            let end = m.read_upto.get(shard).map_or(0, |last| last + 1);
            assert!(
                *seq >= end,
                "round {round}: acknowledged {id:?} at {shard}/{seq} is lost, though the shard \
                 holds records up to {end}: a record lost in the middle"
            );
            if let Some(window) = window {
                let age = cut.duration_since(m.ack_at[id]);
                assert!(
                    age <= window,
                    "round {round}: {id:?} was acknowledged {age:?} before the power cut, and \
                     the policy may lose only {window:?}"
                );
            }
            lost += 1;
        }
        (m.acked.len() as u64, lost)
    }

    /// The campaign's figures, in a sentence.
    pub fn summary(&self) -> String {
        let model = lock(&self.model);
        let f = &model.figures;
        let mut line = format!(
            "{} rounds, {} records acknowledged ({} FIFO records sent again after a crash), {} \
             stored, 0 lost, 0 duplicated, 0 out of order",
            f.rounds,
            f.acked,
            f.retried,
            model.stored.len(),
        );
        if self.workload == Workload::Mixed {
            line += &format!(
                "; {} checkpoints, none went back; {} queue messages received and {} deleted, \
                 none delivered after its delete; {} records routed exactly once; {} records \
                 handed out by subscriptions, all stored; resharded: {}",
                f.checkpoints,
                f.received,
                f.deletes,
                model.routed.len(),
                f.handed,
                model.resharded,
            );
        }
        line
    }

    /// Records acknowledged so far.
    pub fn acked(&self) -> u64 {
        lock(&self.model).figures.acked
    }
}

impl Running {
    /// Waits until the round's kill point; false when the workload does not get there within
    /// [`STUCK`].
    pub async fn reach_kill_point(&mut self) -> bool {
        let kill_at = self.kill_at;
        // The borrow `wait_for` answers with is let go at once: it would block the producers.
        tokio::time::timeout(STUCK, self.acked.wait_for(|n| *n >= kill_at))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits, after the crash, for every task to end at its first failed call; false when one
    /// hangs past [`STUCK`]. A task's panic (a failed check) is raised here.
    pub async fn drain(mut self) -> bool {
        tokio::time::timeout(STUCK, async {
            while let Some(done) = self.tasks.join_next().await {
                if let Err(e) = done {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        })
        .await
        .is_ok()
    }
}

async fn set_up(client: &Client, workload: Workload) {
    client
        .create_stream_with(pb::CreateStreamRequest {
            stream_name: EVENTS.into(),
            shard_count: SHARDS_BEFORE,
            retention_period_hours: 24,
            dedup_window_seconds: 3600,
            ..Default::default()
        })
        .await
        .unwrap();
    if workload == Workload::Producers {
        return;
    }
    client.create_stream(ROUTED, 2).await.unwrap();
    client
        .put_rule(pb::PutRuleRequest {
            rule_name: RULE.into(),
            source_stream: EVENTS.into(),
            filter: Some(pb::Filter {
                pattern: r#"{"kind": ["a"]}"#.into(),
                scope: pb::FilterScope::Data as i32,
            }),
            targets: vec![pb::RuleTarget {
                stream_name: ROUTED.into(),
            }],
            start_position: pb::ShardIteratorType::TrimHorizon as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .create_group(pb::CreateGroupRequest {
            stream_name: EVENTS.into(),
            group_name: QUEUE_GROUP.into(),
            r#type: pb::GroupType::QueueStandard as i32,
            visibility_timeout_seconds: Some(5),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Puts batches until a put fails. Producer 1 first sends again what failed before.
async fn produce(
    client: Client,
    model: Shared,
    producer: u8,
    acks: Arc<watch::Sender<u64>>,
    seed: u64,
) {
    let mut rng = Rng(seed);
    loop {
        let batch: Vec<Id> = {
            let mut m = lock(&model);
            if producer == 1 && !m.retry.is_empty() {
                m.figures.retried += m.retry.len() as u64;
                std::mem::take(&mut m.retry)
            } else {
                let size = rng.between(1, MAX_BATCH);
                let from = m.next[producer as usize];
                m.next[producer as usize] += size;
                (from..from + size).map(|n| Id { producer, n }).collect()
            }
        };
        {
            let mut m = lock(&model);
            m.unsure.extend(batch.iter().cloned());
        }
        let entries = batch.iter().map(Id::entry).collect();
        let outcome = client.put_records(EVENTS, entries).await;
        let mut m = lock(&model);
        let Ok(answer) = outcome else {
            if producer == 1 {
                m.retry = batch;
            }
            return;
        };
        let mut failed = Vec::new();
        for (id, result) in batch.into_iter().zip(answer.records) {
            if result.error_code.is_empty() {
                m.unsure.remove(&id);
                let place = (result.shard_id, result.sequence_number);
                if let Some(before) = m.acked.insert(id.clone(), place.clone()) {
                    assert_eq!(
                        before, place,
                        "{id:?} acknowledged twice at different places"
                    );
                } else {
                    m.ack_at.insert(id.clone(), Instant::now());
                    m.fresh_acks.push(id);
                    m.figures.acked += 1;
                    acks.send_modify(|n| *n += 1);
                }
            } else if producer == 1 {
                failed.push(id);
            }
        }
        if !failed.is_empty() {
            m.retry = failed;
        }
    }
}

/// Follows one shard with SubscribeToShard from where the last round's subscription stopped.
async fn subscribe(client: Client, model: Shared, shard: String) {
    let from = lock(&model).subscribed_upto.get(&shard).copied();
    let position = from.map_or(Position::TrimHorizon, Position::AfterSequence);
    let Ok(mut events) = client.subscribe_to_shard(EVENTS, &shard, position).await else {
        return;
    };
    while let Ok(Some(event)) = events.message().await {
        let mut m = lock(&model);
        for r in event.records {
            if let Some(last) = m.subscribed_upto.get(&shard) {
                assert_eq!(
                    r.sequence_number,
                    last + 1,
                    "{shard}: a subscription skipped or repeated records"
                );
            }
            m.subscribed_upto.insert(shard.clone(), r.sequence_number);
            let id = Id::of(&r.data);
            m.handed.push(((shard.clone(), r.sequence_number), id));
            m.figures.handed += 1;
        }
        if !event.child_shards.is_empty() {
            return;
        }
    }
}

/// A lease group member: reads each leased shard from its checkpoint and checkpoints what it
/// read, until a call fails.
async fn lease_member(client: Client, model: Shared) {
    let member = Membership {
        stream: EVENTS.into(),
        group: LEASE_GROUP.into(),
        member_id: "m1".into(),
    };
    let Ok(joined) = client.join_group(&member, None).await else {
        return;
    };
    let mut leases = joined.assignments;
    loop {
        for lease in &leases {
            let position = lease
                .checkpoint
                .map_or(Position::TrimHorizon, Position::AfterSequence);
            let Ok(iterator) = client
                .get_shard_iterator(EVENTS, &lease.shard_id, position)
                .await
            else {
                return;
            };
            let Ok(read) = client.get_records(&iterator, 100).await else {
                return;
            };
            let Some(last) = read.records.last() else {
                continue;
            };
            let at = last.sequence_number;
            if client
                .commit_checkpoint(&member, &lease.shard_id, lease.lease_epoch, at)
                .await
                .is_err()
            {
                return;
            }
            let mut m = lock(&model);
            let best = m.checkpoints.entry(lease.shard_id.clone()).or_default();
            *best = (*best).max(at);
            m.figures.checkpoints += 1;
        }
        let Ok(beat) = client.heartbeat(&member).await else {
            return;
        };
        leases = beat.assignments;
        // Without a lease, wait for one rather than spin.
        if leases.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Receives and deletes queue messages; a message whose delete was acknowledged must never
/// come back.
async fn queue_worker(client: Client, model: Shared) {
    loop {
        let Ok(messages) = client
            .receive_messages(EVENTS, QUEUE_GROUP, 10, None, Duration::from_millis(200))
            .await
        else {
            return;
        };
        let mut handles = Vec::new();
        let mut places = Vec::new();
        {
            let mut m = lock(&model);
            for message in messages {
                let record = message.record.expect("a record");
                let place = (message.shard_id, record.sequence_number);
                assert!(
                    !m.deleted.contains(&place),
                    "queue message {place:?} delivered again after its delete was acknowledged"
                );
                m.figures.received += 1;
                handles.push(message.receipt_handle);
                places.push(place);
            }
        }
        if handles.is_empty() {
            continue;
        }
        let Ok(results) = client.delete_messages(EVENTS, QUEUE_GROUP, handles).await else {
            return;
        };
        let mut m = lock(&model);
        for (result, place) in results.into_iter().zip(places) {
            if result.error_code.is_empty() {
                m.deleted.insert(place);
                m.figures.deletes += 1;
            }
        }
    }
}

/// Every record of `shard` after `after` (from the start when `None`).
async fn read_after(
    client: &Client,
    stream: &str,
    shard: &str,
    after: Option<u64>,
) -> Vec<pb::Record> {
    let position = after.map_or(Position::TrimHorizon, Position::AfterSequence);
    let mut iterator = client
        .get_shard_iterator(stream, shard, position)
        .await
        .unwrap_or_else(|e| panic!("iterator of {stream}/{shard}: {e}"));
    let mut out = Vec::new();
    loop {
        let got = client
            .get_records(&iterator, 10_000)
            .await
            .unwrap_or_else(|e| panic!("read {stream}/{shard}: {e}"));
        let done = got.records.is_empty() && got.millis_behind_latest == 0;
        out.extend(got.records);
        if done || got.next_shard_iterator.is_empty() {
            return out;
        }
        iterator = got.next_shard_iterator;
    }
}

/// Reads what is new in the stream since the last check, and checks it: where each record
/// is, that nothing is stored twice or out of order, and that the open shards tile the key
/// space.
async fn read_events(client: &Client, model: &Shared, round: u64) {
    let shards = client.list_shards(EVENTS).await.unwrap();
    let open = check_tiling(&shards, lock(model).resharded, round);
    // A reshard whose answer was lost at the kill may have happened all the same.
    lock(model).resharded |= open == SHARDS_AFTER;

    // The stream: new records of each shard, parents before children.
    let mut shards = shards;
    shards.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
    for shard in &shards {
        let after = lock(model).read_upto.get(&shard.shard_id).copied();
        let records = read_after(client, EVENTS, &shard.shard_id, after).await;
        let mut m = lock(model);
        let first = after.map_or(shard.starting_sequence_number, |a| a + 1);
        for (expected, r) in (first..).zip(records) {
            let id = Id::of(&r.data);
            let place = (shard.shard_id.clone(), r.sequence_number);
            assert_eq!(
                r.sequence_number, expected,
                "round {round}: {}: a gap or a repeat in the sequence numbers",
                shard.shard_id
            );
            assert!(
                id.n < m.next[id.producer as usize],
                "round {round}: {id:?} is stored but was never sent"
            );
            if let Some(first) = m.stored.insert(id.clone(), place.clone()) {
                panic!("round {round}: {id:?} is stored twice: at {first:?} and at {place:?}");
            }
            if let Some(acked) = m.acked.get(&id) {
                assert_eq!(
                    acked, &place,
                    "round {round}: {id:?} is not where it was acknowledged"
                );
            } else {
                // Stored though the put failed at the kill: allowed, once. A FIFO record
                // among them is sent again all the same, and must be found a duplicate.
                m.unsure.remove(&id);
            }
            // In order: a producer's records on a shard, a message group's on the stream.
            let (key, last) = match id.group() {
                Some(g) => (g.clone(), m.last_in_group.get(&g).copied()),
                None => {
                    let key = shard.shard_id.clone();
                    (key.clone(), m.last_on_shard.get(&key).copied())
                }
            };
            assert!(
                last.is_none_or(|l| l < id.n),
                "round {round}: {id:?} is stored after record {last:?} of {key}"
            );
            if id.group().is_some() {
                m.last_in_group.insert(key, id.n);
            } else {
                m.last_on_shard.insert(key, id.n);
            }
            m.read_upto
                .insert(shard.shard_id.clone(), r.sequence_number);
        }
    }
}

/// The checks of the subscriptions, the lease group, the queue group and the rule.
async fn check_consumers(client: &Client, model: &Shared, round: u64) {
    // Subscriptions handed out only stored records.
    {
        let mut m = lock(model);
        let handed = std::mem::take(&mut m.handed);
        for (place, id) in handed {
            assert_eq!(
                m.stored.get(&id),
                Some(&place),
                "round {round}: a subscription handed out {id:?} at {place:?}"
            );
        }
    }

    // Checkpoints never go back.
    let group = client.describe_group(EVENTS, LEASE_GROUP).await.unwrap();
    {
        let m = lock(model);
        for progress in &group.shards {
            let acked = m.checkpoints.get(&progress.shard_id).copied();
            assert!(
                acked.is_none_or(|a| progress.checkpoint.is_some_and(|c| c >= a)),
                "round {round}: {} checkpoint {:?} is behind the acknowledged {acked:?}",
                progress.shard_id,
                progress.checkpoint
            );
        }
    }

    // The rule: every stored record of kind a, in the target once; nothing else.
    let expected: BTreeSet<Id> = lock(model)
        .stored
        .keys()
        .filter(|id| id.kind_a())
        .cloned()
        .collect();
    let deadline = super::Deadline::after(STUCK);
    loop {
        for shard in client.list_shards(ROUTED).await.unwrap() {
            let after = lock(model).routed_upto.get(&shard.shard_id).copied();
            let records = read_after(client, ROUTED, &shard.shard_id, after).await;
            let mut m = lock(model);
            for r in records {
                let id = Id::of(&r.data);
                assert!(
                    m.stored.contains_key(&id) && id.kind_a(),
                    "round {round}: the rule routed {id:?}, which it should not have"
                );
                assert!(
                    m.routed.insert(id.clone()),
                    "round {round}: the rule routed {id:?} twice"
                );
                m.routed_upto
                    .insert(shard.shard_id.clone(), r.sequence_number);
            }
        }
        if lock(model).routed.is_superset(&expected) {
            break;
        }
        assert!(
            deadline.tick().await,
            "round {round}: the rule did not route {} stored records",
            expected.difference(&lock(model).routed).count()
        );
    }
}

/// The open shards cover the hash key space exactly once: four of them before the reshard,
/// eight after it, never a mixture.
fn check_tiling(shards: &[pb::Shard], reshard_acknowledged: bool, round: u64) -> u32 {
    let mut open: Vec<(u128, u128)> = shards
        .iter()
        .filter(|s| s.ending_sequence_number.is_none())
        .map(super::hash_range)
        .collect();
    open.sort();
    let count = open.len() as u32;
    assert!(
        count == SHARDS_AFTER || (count == SHARDS_BEFORE && !reshard_acknowledged),
        "round {round}: {count} open shards (the reshard was acknowledged: \
         {reshard_acknowledged})"
    );
    let mut next = 0u128;
    for (start, end) in &open {
        assert_eq!(
            *start, next,
            "round {round}: the open shards leave a hole or overlap"
        );
        next = end.wrapping_add(1);
    }
    assert_eq!(
        next, 0,
        "round {round}: the open shards do not reach the end"
    );
    count
}
