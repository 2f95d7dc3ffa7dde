//! A stream as the system knows it: its settings, its shards, and routing a hash key to the open
//! shard that owns it.

use std::time::Duration;

use crate::storage::{SequenceNumber, Timestamp};

use super::{
    options::StreamOptions, split_evenly, HashKey, ModelError, ShardDescriptor, ShardId,
    StreamName, DEFAULT_DEDUP_WINDOW, DEFAULT_MAX_CONSUMERS, DEFAULT_MAX_DEDUP_WINDOW,
    DEFAULT_MAX_GROUPS, DEFAULT_MAX_SCALINGS_PER_DAY, DEFAULT_MAX_SCALING_FACTOR,
    DEFAULT_MAX_SHARD_COUNT, DEFAULT_MAX_TAGS, DEFAULT_RETENTION, MAX_RETENTION_HOURS,
    MIN_RETENTION_HOURS,
};

const SECS_PER_HOUR: u64 = 3600;

/// Which key a deduplication id is unique within (SQS FIFO's `DeduplicationScope`): a stream
/// setting, and what the FIFO layer's dedup keys are derived under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DedupScope {
    /// An id is unique across the whole stream (SQS `queue`, SNS `Topic`).
    #[default]
    Stream,
    /// An id is unique within its message group only, so groups never collide (SQS
    /// `messageGroup`).
    MessageGroup,
}

/// The server's bounds on what a stream may ask for. Configurable; the defaults are the
/// `DEFAULT_*` constants of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Most shards one stream may have. Each open shard costs a committer and open files.
    pub max_shard_count: u32,
    /// Longest deduplication window. Every id inside the window is held in memory.
    pub max_dedup_window: Duration,
    /// Most tags one stream may carry.
    pub max_tags: usize,
    /// Most consumers registered on one stream.
    pub max_consumers: usize,
    /// Most consumer groups (lease and queue) on one stream.
    pub max_groups: usize,
    /// A uniform scaling may multiply or divide the open shard count by at most this.
    pub max_scaling_factor: u32,
    /// Most uniform scalings of one stream in 24 hours.
    pub max_scalings_per_day: u32,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_shard_count: DEFAULT_MAX_SHARD_COUNT,
            max_dedup_window: DEFAULT_MAX_DEDUP_WINDOW,
            max_tags: DEFAULT_MAX_TAGS,
            max_consumers: DEFAULT_MAX_CONSUMERS,
            max_groups: DEFAULT_MAX_GROUPS,
            max_scaling_factor: DEFAULT_MAX_SCALING_FACTOR,
            max_scalings_per_day: DEFAULT_MAX_SCALINGS_PER_DAY,
        }
    }
}

/// A stream's settings, fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// How long records are kept before retention may delete them.
    pub retention: Duration,
    /// Deduplicate records that carry no deduplication id by the SHA-256 of their data.
    pub content_based_deduplication: bool,
    /// How long a deduplication id is remembered after its record was stored.
    pub dedup_window: Duration,
    /// Which key deduplication ids are unique within.
    pub dedup_scope: DedupScope,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            retention: DEFAULT_RETENTION,
            content_based_deduplication: false,
            dedup_window: DEFAULT_DEDUP_WINDOW,
            dedup_scope: DedupScope::Stream,
        }
    }
}

impl StreamSettings {
    /// Settings from a CreateStream request's fields, where 0 means the default: retention in
    /// hours within [`MIN_RETENTION_HOURS`]..=[`MAX_RETENTION_HOURS`] (default 24), the dedup
    /// window in seconds up to `limits.max_dedup_window` (default 300).
    pub fn from_request(
        retention_period_hours: u32,
        content_based_deduplication: bool,
        dedup_window_seconds: u32,
        dedup_scope: DedupScope,
        limits: &StreamLimits,
    ) -> Result<StreamSettings, ModelError> {
        let retention = match retention_period_hours {
            0 => DEFAULT_RETENTION,
            hours if (MIN_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&hours) => {
                Duration::from_secs(u64::from(hours) * SECS_PER_HOUR)
            }
            hours => {
                return Err(ModelError::invalid(
                    "retention_period_hours",
                    format!(
                        "{hours} is outside [{MIN_RETENTION_HOURS}, {MAX_RETENTION_HOURS}] hours"
                    ),
                ))
            }
        };
        let dedup_window = match dedup_window_seconds {
            0 => DEFAULT_DEDUP_WINDOW,
            secs => Duration::from_secs(u64::from(secs)),
        };
        if dedup_window > limits.max_dedup_window {
            return Err(ModelError::invalid(
                "dedup_window_seconds",
                format!(
                    "{} s is above the maximum of {} s",
                    dedup_window.as_secs(),
                    limits.max_dedup_window.as_secs()
                ),
            ));
        }
        Ok(StreamSettings {
            retention,
            content_based_deduplication,
            dedup_window,
            dedup_scope,
        })
    }

    /// Retention in whole hours, as the API reports it.
    pub fn retention_period_hours(&self) -> u32 {
        u32::try_from(self.retention.as_secs() / SECS_PER_HOUR).unwrap_or(u32::MAX)
    }

    /// The deduplication window in whole seconds, as the API reports it.
    pub fn dedup_window_seconds(&self) -> u32 {
        u32::try_from(self.dedup_window.as_secs()).unwrap_or(u32::MAX)
    }
}

/// A stream: its name, creation time, settings and every shard it ever had.
///
/// Invariants, checked by every constructor: shard ids are strictly increasing in `shards()`
/// (parents before children), lineage refers to existing shards, and the ranges of the open
/// shards are disjoint and cover the whole key space, so every key routes to exactly one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDescriptor {
    /// The stream's name.
    pub name: StreamName,
    /// When the stream was created, by the wall clock.
    pub created_at_ms: Timestamp,
    /// The stream's settings.
    pub settings: StreamSettings,
    /// Its options: mode, tags, consumers, metrics.
    pub options: StreamOptions,
    /// Every shard, open and closed, by increasing id.
    shards: Vec<ShardDescriptor>,
    /// The open shards' ranges sorted by starting key: `(start, end, id)`. Derived from `shards`.
    routes: Vec<(HashKey, HashKey, ShardId)>,
}

impl StreamDescriptor {
    /// A new stream of `shard_count` open shards (ids 0..n, sequences from 0) splitting the key
    /// space evenly. `shard_count` must be within 1..=`limits.max_shard_count`.
    pub fn create(
        name: StreamName,
        created_at_ms: Timestamp,
        settings: StreamSettings,
        shard_count: u32,
        limits: &StreamLimits,
    ) -> Result<StreamDescriptor, ModelError> {
        if shard_count == 0 || shard_count > limits.max_shard_count {
            return Err(ModelError::invalid(
                "shard_count",
                format!("{shard_count} is outside [1, {}]", limits.max_shard_count),
            ));
        }
        let shards = split_evenly(shard_count)
            .into_iter()
            .zip(0..)
            .map(|(range, index)| ShardDescriptor {
                id: ShardId(index),
                parent: None,
                adjacent_parent: None,
                range,
                starting_sequence: SequenceNumber::ZERO,
                ending_sequence: None,
                closed_at: None,
                retired: false,
            })
            .collect();
        StreamDescriptor::from_parts(name, created_at_ms, settings, shards)
    }

    /// A stream from its parts, e.g. as decoded from storage; checks the invariants above.
    pub fn from_parts(
        name: StreamName,
        created_at_ms: Timestamp,
        settings: StreamSettings,
        shards: Vec<ShardDescriptor>,
    ) -> Result<StreamDescriptor, ModelError> {
        const FIELD: &str = "shards";
        for pair in shards.windows(2) {
            if pair[0].id >= pair[1].id {
                return Err(ModelError::invalid(
                    FIELD,
                    format!("{} follows {}: ids must increase", pair[1].id, pair[0].id),
                ));
            }
        }
        for shard in &shards {
            if shard.range.start > shard.range.end {
                return Err(ModelError::invalid(
                    FIELD,
                    format!("{} has a range that starts after it ends", shard.id),
                ));
            }
            for parent in [shard.parent, shard.adjacent_parent].into_iter().flatten() {
                if parent >= shard.id || shards.binary_search_by_key(&parent, |s| s.id).is_err() {
                    return Err(ModelError::invalid(
                        FIELD,
                        format!(
                            "{} names {parent} as a parent, which is not an older shard",
                            shard.id
                        ),
                    ));
                }
            }
        }
        let mut routes: Vec<(HashKey, HashKey, ShardId)> = shards
            .iter()
            .filter(|s| s.is_open())
            .map(|s| (s.range.start, s.range.end, s.id))
            .collect();
        routes.sort_unstable();
        let covers_the_space = routes.first().is_some_and(|r| r.0 == HashKey::MIN)
            && routes.last().is_some_and(|r| r.1 == HashKey::MAX)
            && routes
                .windows(2)
                .all(|pair| pair[0].1 .0.checked_add(1) == Some(pair[1].0 .0));
        if !covers_the_space {
            return Err(ModelError::invalid(
                FIELD,
                "the open shards' hash key ranges must be contiguous and cover [0, 2^128-1]",
            ));
        }
        Ok(StreamDescriptor {
            name,
            created_at_ms,
            settings,
            options: StreamOptions::default(),
            shards,
            routes,
        })
    }

    /// Every shard, open and closed, by increasing id.
    pub fn shards(&self) -> &[ShardDescriptor] {
        &self.shards
    }

    /// The shards not retired, open and closed, by increasing id: what DescribeStream and
    /// ListShards show.
    pub fn listed_shards(&self) -> impl Iterator<Item = &ShardDescriptor> {
        self.shards.iter().filter(|s| !s.retired)
    }

    /// Marks closed shards retired (open ones are left alone).
    pub fn retire(&mut self, ids: &[ShardId]) {
        for shard in &mut self.shards {
            if ids.contains(&shard.id) && !shard.is_open() {
                shard.retired = true;
            }
        }
    }

    /// The shards that take new records, by increasing id.
    pub fn open_shards(&self) -> impl Iterator<Item = &ShardDescriptor> {
        self.shards.iter().filter(|s| s.is_open())
    }

    /// The shard with this id, open or closed.
    pub fn shard(&self, id: ShardId) -> Option<&ShardDescriptor> {
        self.shards
            .binary_search_by_key(&id, |s| s.id)
            .ok()
            .map(|i| &self.shards[i])
    }

    /// The open shard whose range holds `key`. Always `Some` for a descriptor built by this
    /// module (the open ranges cover the space); `Option` keeps callers honest anyway.
    pub fn route(&self, key: HashKey) -> Option<ShardId> {
        // The first route starting after `key`; the one before it is the only candidate.
        let after = self.routes.partition_point(|&(start, _, _)| start <= key);
        let &(start, end, id) = self.routes.get(after.checked_sub(1)?)?;
        (start <= key && key <= end).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::HashKeyRange;
    use proptest::prelude::*;

    fn name() -> StreamName {
        StreamName::new("orders").unwrap()
    }

    fn stream(shards: u32) -> StreamDescriptor {
        StreamDescriptor::create(
            name(),
            Timestamp::from_millis(1_700_000_000_000),
            StreamSettings::default(),
            shards,
            &StreamLimits::default(),
        )
        .unwrap()
    }

    #[test]
    fn zero_request_fields_mean_the_defaults() {
        let settings =
            StreamSettings::from_request(0, false, 0, DedupScope::Stream, &StreamLimits::default())
                .unwrap();
        assert_eq!(settings, StreamSettings::default());
        assert_eq!(settings.retention_period_hours(), 24);
        assert_eq!(settings.dedup_window_seconds(), 300);
    }

    #[test]
    fn request_fields_become_durations() {
        let settings = StreamSettings::from_request(
            48,
            true,
            600,
            DedupScope::MessageGroup,
            &StreamLimits::default(),
        )
        .unwrap();
        assert_eq!(settings.retention, Duration::from_secs(48 * 3600));
        assert_eq!(settings.dedup_window, Duration::from_secs(600));
        assert!(settings.content_based_deduplication);
        assert_eq!(settings.dedup_scope, DedupScope::MessageGroup);
        assert_eq!(settings.retention_period_hours(), 48);
    }

    #[test]
    fn retention_beyond_a_year_is_rejected_naming_the_field() {
        let limits = StreamLimits::default();
        let err = StreamSettings::from_request(
            MAX_RETENTION_HOURS + 1,
            false,
            0,
            DedupScope::Stream,
            &limits,
        )
        .unwrap_err();
        assert_eq!(err.field(), "retention_period_hours");
        assert!(StreamSettings::from_request(
            MAX_RETENTION_HOURS,
            false,
            0,
            DedupScope::Stream,
            &limits
        )
        .is_ok());
    }

    #[test]
    fn dedup_window_above_the_limit_is_rejected_naming_the_field() {
        let limits = StreamLimits {
            max_dedup_window: Duration::from_secs(60),
            ..StreamLimits::default()
        };
        let err =
            StreamSettings::from_request(0, false, 61, DedupScope::Stream, &limits).unwrap_err();
        assert_eq!(err.field(), "dedup_window_seconds");
        // The default window (300 s) is above this limit too.
        assert!(StreamSettings::from_request(0, false, 0, DedupScope::Stream, &limits).is_err());
        assert!(StreamSettings::from_request(0, false, 60, DedupScope::Stream, &limits).is_ok());
    }

    #[test]
    fn shard_count_must_be_within_the_limit() {
        let limits = StreamLimits {
            max_shard_count: 4,
            ..StreamLimits::default()
        };
        for bad in [0, 5] {
            let err = StreamDescriptor::create(
                name(),
                Timestamp::from_millis(0),
                StreamSettings::default(),
                bad,
                &limits,
            )
            .unwrap_err();
            assert_eq!(err.field(), "shard_count");
        }
        assert!(StreamDescriptor::create(
            name(),
            Timestamp::from_millis(0),
            StreamSettings::default(),
            4,
            &limits
        )
        .is_ok());
    }

    #[test]
    fn a_new_stream_has_open_shards_numbered_from_zero() {
        let stream = stream(3);
        let ids: Vec<ShardId> = stream.shards().iter().map(|s| s.id).collect();
        assert_eq!(ids, [ShardId(0), ShardId(1), ShardId(2)]);
        assert!(stream
            .shards()
            .iter()
            .all(|s| s.is_open() && s.starting_sequence == SequenceNumber::new(0)));
        assert_eq!(stream.open_shards().count(), 3);
        assert_eq!(stream.shard(ShardId(1)).map(|s| s.id), Some(ShardId(1)));
        assert_eq!(stream.shard(ShardId(3)), None);
    }

    #[test]
    fn routing_sends_each_key_to_the_shard_whose_range_holds_it() {
        let stream = stream(3);
        let ranges = split_evenly(3);
        assert_eq!(stream.route(HashKey::MIN), Some(ShardId(0)));
        assert_eq!(stream.route(ranges[0].end), Some(ShardId(0)));
        assert_eq!(stream.route(ranges[1].start), Some(ShardId(1)));
        assert_eq!(stream.route(ranges[2].start), Some(ShardId(2)));
        assert_eq!(stream.route(HashKey::MAX), Some(ShardId(2)));
    }

    #[test]
    fn routing_skips_closed_shards() {
        // Shard 0 was split into 1 ([0, 2^127-1]) and 2 ([2^127, max]).
        let half = HashKey(1 << 127);
        let shards = vec![
            ShardDescriptor {
                id: ShardId(0),
                parent: None,
                adjacent_parent: None,
                range: HashKeyRange::FULL,
                starting_sequence: SequenceNumber::ZERO,
                ending_sequence: Some(SequenceNumber::new(99)),
                closed_at: None,
                retired: false,
            },
            ShardDescriptor {
                id: ShardId(1),
                parent: Some(ShardId(0)),
                adjacent_parent: None,
                range: HashKeyRange::new(HashKey::MIN, HashKey(half.0 - 1)).unwrap(),
                starting_sequence: SequenceNumber::new(100),
                ending_sequence: None,
                closed_at: None,
                retired: false,
            },
            ShardDescriptor {
                id: ShardId(2),
                parent: Some(ShardId(0)),
                adjacent_parent: None,
                range: HashKeyRange::new(half, HashKey::MAX).unwrap(),
                starting_sequence: SequenceNumber::new(100),
                ending_sequence: None,
                closed_at: None,
                retired: false,
            },
        ];
        let stream = StreamDescriptor::from_parts(
            name(),
            Timestamp::from_millis(0),
            StreamSettings::default(),
            shards,
        )
        .unwrap();
        assert_eq!(stream.route(HashKey(0)), Some(ShardId(1)));
        assert_eq!(stream.route(half), Some(ShardId(2)));
        assert_eq!(stream.open_shards().count(), 2);
        assert!(stream.shard(ShardId(0)).is_some_and(|s| !s.is_open()));
    }

    #[test]
    fn open_shards_that_leave_a_gap_are_rejected() {
        let mut shards = stream(2).shards().to_vec();
        shards[1].range.start = HashKey(shards[1].range.start.0 + 1);
        let err = StreamDescriptor::from_parts(
            name(),
            Timestamp::from_millis(0),
            StreamSettings::default(),
            shards,
        )
        .unwrap_err();
        assert_eq!(err.field(), "shards");
    }

    #[test]
    fn overlapping_or_unordered_or_orphaned_shards_are_rejected() {
        let base = stream(2).shards().to_vec();

        let mut overlapping = base.clone();
        overlapping[1].range.start = overlapping[0].range.end;
        let mut unordered = base.clone();
        unordered.swap(0, 1);
        let mut orphaned = base.clone();
        orphaned[1].parent = Some(ShardId(7));
        let mut none_open = base.clone();
        none_open
            .iter_mut()
            .for_each(|s| s.ending_sequence = Some(SequenceNumber::new(0)));

        for shards in [overlapping, unordered, orphaned, none_open, Vec::new()] {
            assert!(StreamDescriptor::from_parts(
                name(),
                Timestamp::from_millis(0),
                StreamSettings::default(),
                shards
            )
            .is_err());
        }
    }

    proptest! {
        #[test]
        fn routing_agrees_with_a_linear_scan(n in 1u32..=300, key in any::<u128>()) {
            let stream = stream(n);
            let expected = stream
                .open_shards()
                .find(|s| s.range.contains(HashKey(key)))
                .map(|s| s.id);
            prop_assert!(expected.is_some());
            prop_assert_eq!(stream.route(HashKey(key)), expected);
        }
    }
}
