//! What the console plots: per stream, records and bytes in and out per second (in total and
//! per shard) and each group's lag, sampled every [`HISTORY_INTERVAL`] from the broker's
//! counters and kept for the last [`HISTORY_POINTS`] samples. The memory is bounded by streams ×
//! series × points, never by traffic: nothing is kept per record.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::broker::stats::Snapshot;
use crate::broker::Broker;

/// How often the counters are sampled.
pub const HISTORY_INTERVAL: Duration = Duration::from_secs(1);

/// Samples kept per series: 15 minutes at one a second.
pub const HISTORY_POINTS: usize = 900;

/// Counters of one shard at one sample: records in, bytes in, records out, bytes out.
type Counters = [u64; 4];

/// Every stream's shards' counters at one sample.
type Sample = BTreeMap<String, BTreeMap<String, Counters>>;

/// The plotted history of every stream.
#[derive(Debug, Default)]
pub struct History {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The previous sample's counters, per stream and shard, and when it was taken.
    last: Option<(Instant, Sample)>,
    /// Per stream and shard, the durable high-water mark at the last sample.
    durable: BTreeMap<String, BTreeMap<String, u64>>,
    streams: BTreeMap<String, StreamSeries>,
}

/// One stream's series, all aligned on `times`.
#[derive(Debug, Default, Clone)]
pub struct StreamSeries {
    /// When each sample was taken, in ms since the epoch.
    pub times: VecDeque<i64>,
    /// Records put per second, over every shard.
    pub records_in: VecDeque<f32>,
    /// Bytes put per second.
    pub bytes_in: VecDeque<f32>,
    /// Records read per second (GetRecords and subscriptions).
    pub records_out: VecDeque<f32>,
    /// Bytes read per second.
    pub bytes_out: VecDeque<f32>,
    /// Per shard: records and bytes put and read per second.
    pub shards: BTreeMap<String, ShardSeries>,
    /// Per lease group: its lag in records, over every shard; per queue group: its visible
    /// and in-flight messages.
    pub groups: BTreeMap<String, VecDeque<f32>>,
    /// Per lease group and shard: its lag in records on that shard.
    pub group_shards: BTreeMap<String, BTreeMap<String, VecDeque<f32>>>,
}

/// One shard's rates, aligned on its stream's times.
#[derive(Debug, Default, Clone)]
pub struct ShardSeries {
    /// Records put per second.
    pub records_in: VecDeque<f32>,
    /// Bytes put per second.
    pub bytes_in: VecDeque<f32>,
    /// Records read per second.
    pub records_out: VecDeque<f32>,
    /// Bytes read per second.
    pub bytes_out: VecDeque<f32>,
}

/// Appends `value`, dropping the oldest past the bound; a series that starts late is padded
/// with zeros so that it stays aligned on the stream's times.
fn push(series: &mut VecDeque<f32>, len_before: usize, value: f32) {
    while series.len() < len_before {
        series.push_front(0.0);
    }
    series.push_back(value);
    while series.len() > HISTORY_POINTS {
        series.pop_front();
    }
}

impl History {
    /// Takes one sample: rates since the previous one, lags as they are.
    pub fn record(&self, at: Instant, now_ms: i64, snapshot: &Snapshot) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let counters: Sample = snapshot
            .streams
            .iter()
            .map(|s| {
                let shards = s
                    .shards
                    .iter()
                    .map(|sh| {
                        let c = [sh.records_put, sh.bytes_put, sh.records_read, sh.bytes_read];
                        (sh.shard.clone(), c)
                    })
                    .collect();
                (s.stream.clone(), shards)
            })
            .collect();
        let mut lags: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
        let mut shard_lags: BTreeMap<&str, BTreeMap<&str, BTreeMap<&str, u64>>> = BTreeMap::new();
        for g in &snapshot.groups {
            *lags
                .entry(g.stream.as_str())
                .or_default()
                .entry(g.group.as_str())
                .or_default() += g.lag_records;
            shard_lags
                .entry(g.stream.as_str())
                .or_default()
                .entry(g.group.as_str())
                .or_default()
                .insert(g.shard.as_str(), g.lag_records);
        }
        for q in &snapshot.queues {
            *lags
                .entry(q.stream.as_str())
                .or_default()
                .entry(q.group.as_str())
                .or_default() += q.visible + q.in_flight;
        }
        state.durable = snapshot
            .streams
            .iter()
            .map(|s| {
                let marks = s
                    .shards
                    .iter()
                    .map(|sh| (sh.shard.clone(), sh.durable_next))
                    .collect();
                (s.stream.clone(), marks)
            })
            .collect();
        // A deleted stream takes its history with it.
        state.streams.retain(|name, _| counters.contains_key(name));
        if let Some((then, previous)) = &state.last {
            let seconds = at.duration_since(*then).as_secs_f64().max(1e-3);
            let mut updates = Vec::new();
            for (stream, shards) in &counters {
                let before = previous.get(stream);
                let mut per_shard = Vec::new();
                let mut total = [0f64; 4];
                for (shard, now) in shards {
                    let was = before.and_then(|b| b.get(shard)).copied().unwrap_or(*now);
                    let rate: Vec<f64> = (0..4)
                        .map(|i| now[i].saturating_sub(was[i]) as f64 / seconds)
                        .collect();
                    for (t, r) in total.iter_mut().zip(&rate) {
                        *t += r;
                    }
                    per_shard.push((shard.clone(), rate));
                }
                updates.push((stream.clone(), total, per_shard));
            }
            for (stream, total, per_shard) in updates {
                let series = state.streams.entry(stream.clone()).or_default();
                let n = series.times.len();
                series.times.push_back(now_ms);
                if series.times.len() > HISTORY_POINTS {
                    series.times.pop_front();
                }
                push(&mut series.records_in, n, total[0] as f32);
                push(&mut series.bytes_in, n, total[1] as f32);
                push(&mut series.records_out, n, total[2] as f32);
                push(&mut series.bytes_out, n, total[3] as f32);
                // A shard retired by retention leaves the stream's snapshot; its series go too.
                series
                    .shards
                    .retain(|id, _| per_shard.iter().any(|(s, _)| s == id));
                for (shard, rate) in per_shard {
                    let s = series.shards.entry(shard).or_default();
                    push(&mut s.records_in, n, rate[0] as f32);
                    push(&mut s.bytes_in, n, rate[1] as f32);
                    push(&mut s.records_out, n, rate[2] as f32);
                    push(&mut s.bytes_out, n, rate[3] as f32);
                }
                let groups = lags.get(stream.as_str());
                series
                    .groups
                    .retain(|g, _| groups.is_some_and(|gs| gs.contains_key(g.as_str())));
                for (group, lag) in groups.into_iter().flatten() {
                    let s = series.groups.entry((*group).to_owned()).or_default();
                    push(s, n, *lag as f32);
                }
                let by_shard = shard_lags.get(stream.as_str());
                series
                    .group_shards
                    .retain(|g, _| by_shard.is_some_and(|gs| gs.contains_key(g.as_str())));
                for (group, shards) in by_shard.into_iter().flatten() {
                    let per = series.group_shards.entry((*group).to_owned()).or_default();
                    per.retain(|id, _| shards.contains_key(id.as_str()));
                    for (shard, lag) in shards {
                        push(per.entry((*shard).to_owned()).or_default(), n, *lag as f32);
                    }
                }
            }
        }
        state.last = Some((at, counters));
    }

    /// Per shard of `stream`, the durable high-water mark at the last sample.
    pub fn durable(&self, stream: &str) -> BTreeMap<String, u64> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.durable.get(stream).cloned().unwrap_or_default()
    }

    /// One stream's series, if it has any yet.
    pub fn stream(&self, name: &str) -> Option<StreamSeries> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.streams.get(name).cloned()
    }

    /// The latest rates of every stream: records in, bytes in, records out, bytes out per
    /// second, and the summed lag of its groups.
    pub fn latest(&self) -> BTreeMap<String, ([f32; 4], f32)> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state
            .streams
            .iter()
            .map(|(name, s)| {
                let last = |v: &VecDeque<f32>| v.back().copied().unwrap_or(0.0);
                let lag = s.groups.values().map(last).sum();
                (
                    name.clone(),
                    (
                        [
                            last(&s.records_in),
                            last(&s.bytes_in),
                            last(&s.records_out),
                            last(&s.bytes_out),
                        ],
                        lag,
                    ),
                )
            })
            .collect()
    }

    /// Samples `broker` every [`HISTORY_INTERVAL`] until it stops.
    pub async fn sample(&self, broker: Broker) {
        let mut stopping = broker.shutdown_signal();
        let mut ticks = tokio::time::interval(HISTORY_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
            let snapshot = broker.stats_snapshot().await;
            let now_ms =
                i64::try_from(crate::storage::Timestamp::now().as_millis()).unwrap_or(i64::MAX);
            self.record(Instant::now(), now_ms, &snapshot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::stats::{GroupShardSnapshot, ShardSnapshot, StreamSnapshot};

    fn shard(id: &str, records: u64, bytes: u64) -> ShardSnapshot {
        ShardSnapshot {
            shard: id.into(),
            records_put: records,
            bytes_put: bytes,
            ..Default::default()
        }
    }

    fn lag(group: &str, id: &str, records: u64) -> GroupShardSnapshot {
        GroupShardSnapshot {
            stream: "s".into(),
            group: group.into(),
            shard: id.into(),
            lag_records: records,
            ..Default::default()
        }
    }

    fn snapshot(shards: Vec<ShardSnapshot>, groups: Vec<GroupShardSnapshot>) -> Snapshot {
        Snapshot {
            streams: vec![StreamSnapshot {
                stream: "s".into(),
                shards,
                ..Default::default()
            }],
            groups,
            ..Default::default()
        }
    }

    #[test]
    fn rates_and_lags_are_kept_per_shard_and_dropped_with_their_shard_or_group() {
        let history = History::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        history.record(at(0), 0, &snapshot(vec![shard("a", 0, 0)], vec![]));
        history.record(
            at(2),
            2000,
            &snapshot(
                vec![shard("a", 10, 1000), shard("b", 4, 40)],
                vec![lag("g", "a", 7), lag("g", "b", 3)],
            ),
        );
        let s = history.stream("s").unwrap();
        assert_eq!(s.records_in, [5.0]);
        assert_eq!(s.shards["a"].records_in, [5.0]);
        assert_eq!(s.shards["a"].bytes_in, [500.0]);
        // A shard first seen at this sample has no rate yet.
        assert_eq!(s.shards["b"].bytes_in, [0.0]);
        assert_eq!(s.groups["g"], [10.0]);
        assert_eq!(s.group_shards["g"]["a"], [7.0]);
        assert_eq!(s.group_shards["g"]["b"], [3.0]);

        // Shard b goes (retired), and so does group g.
        history.record(at(3), 3000, &snapshot(vec![shard("a", 12, 1100)], vec![]));
        let s = history.stream("s").unwrap();
        assert_eq!(s.times, [2000, 3000]);
        assert_eq!(s.shards["a"].bytes_in, [500.0, 100.0]);
        assert!(!s.shards.contains_key("b"));
        assert!(s.groups.is_empty() && s.group_shards.is_empty());
    }

    #[test]
    fn every_series_is_bounded() {
        let history = History::default();
        let t0 = Instant::now();
        for i in 0..(HISTORY_POINTS as u64 + 10) {
            let snap = snapshot(vec![shard("a", i, i)], vec![lag("g", "a", i)]);
            history.record(t0 + Duration::from_secs(i), i as i64, &snap);
        }
        let s = history.stream("s").unwrap();
        assert_eq!(s.times.len(), HISTORY_POINTS);
        assert_eq!(s.shards["a"].bytes_out.len(), HISTORY_POINTS);
        assert_eq!(s.group_shards["g"]["a"].len(), HISTORY_POINTS);
        assert_eq!(
            s.group_shards["g"]["a"].back(),
            Some(&(HISTORY_POINTS as f32 + 9.0))
        );
    }
}
