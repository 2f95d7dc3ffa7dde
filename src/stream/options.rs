//! A stream's options beyond its data: capacity mode, tags, registered consumers and the
//! shard-level metrics asked for. Kinesis keeps the same with every stream; here they are
//! recorded durably with the stream and change only through [`StreamChange`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::storage::Timestamp;

/// Most tags one stream may carry (Kinesis: 50).
pub const DEFAULT_MAX_TAGS: usize = 50;
/// Most consumers registered on one stream (Kinesis enhanced fan-out: 20).
pub const DEFAULT_MAX_CONSUMERS: usize = 20;
/// Most consumer groups (lease and queue groups) on one stream. Each holds checkpoints in the
/// metadata, and a queue group its in-flight state in memory.
pub const DEFAULT_MAX_GROUPS: usize = 1_000;

/// How a stream's capacity is managed, as Kinesis's `StreamMode` says. Recorded and reported:
/// a shardlog stream's capacity is the machine's either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StreamMode {
    /// The shard count is set by the owner.
    #[default]
    Provisioned,
    /// The shard count is the server's to choose.
    OnDemand,
}

impl StreamMode {
    /// Kinesis's name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamMode::Provisioned => "PROVISIONED",
            StreamMode::OnDemand => "ON_DEMAND",
        }
    }

    /// The mode named `name` (Kinesis's spelling).
    pub fn parse(name: &str) -> Option<StreamMode> {
        match name {
            "PROVISIONED" => Some(StreamMode::Provisioned),
            "ON_DEMAND" => Some(StreamMode::OnDemand),
            _ => None,
        }
    }
}

/// A consumer registered on a stream (Kinesis's enhanced fan-out consumer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConsumer {
    /// Its name, unique within the stream.
    pub name: String,
    /// When it was registered: part of its ARN, so a consumer registered again under the same
    /// name is a different consumer.
    pub created_at_ms: Timestamp,
}

/// A stream's options. The defaults are those of a stream created without any.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamOptions {
    /// The capacity mode.
    pub mode: StreamMode,
    /// Tags, by key.
    pub tags: BTreeMap<String, String>,
    /// Registered consumers, in registration order.
    pub consumers: Vec<StreamConsumer>,
    /// Shard-level metrics enabled (Kinesis's enhanced monitoring), by name.
    pub shard_level_metrics: BTreeSet<String>,
}

impl StreamOptions {
    /// The consumer called `name`.
    pub fn consumer(&self, name: &str) -> Option<&StreamConsumer> {
        self.consumers.iter().find(|c| c.name == name)
    }
}

/// One change to a stream's retention or options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamChange {
    /// Sets how long records are kept.
    Retention(Duration),
    /// Sets the capacity mode.
    Mode(StreamMode),
    /// Adds tags, replacing the values of keys already present.
    AddTags(BTreeMap<String, String>),
    /// Removes tags by key; keys not present are ignored.
    RemoveTags(Vec<String>),
    /// Registers a consumer. Refused when the name is taken.
    RegisterConsumer(StreamConsumer),
    /// Deregisters a consumer by name. Refused when there is none.
    DeregisterConsumer(String),
    /// Sets the shard-level metrics enabled.
    ShardLevelMetrics(BTreeSet<String>),
}

impl StreamOptions {
    /// Applies `change`, except `Retention`, which is a setting of the stream, not an option.
    pub(crate) fn apply(&mut self, change: &StreamChange) {
        match change {
            StreamChange::Retention(_) => {}
            StreamChange::Mode(mode) => self.mode = *mode,
            StreamChange::AddTags(tags) => {
                self.tags
                    .extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            StreamChange::RemoveTags(keys) => {
                for key in keys {
                    self.tags.remove(key);
                }
            }
            StreamChange::RegisterConsumer(consumer) => self.consumers.push(consumer.clone()),
            StreamChange::DeregisterConsumer(name) => self.consumers.retain(|c| c.name != *name),
            StreamChange::ShardLevelMetrics(metrics) => self.shard_level_metrics = metrics.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_added_replaced_and_removed() {
        let mut options = StreamOptions::default();
        let tags = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        options.apply(&StreamChange::AddTags(tags(&[
            ("team", "a"),
            ("env", "dev"),
        ])));
        options.apply(&StreamChange::AddTags(tags(&[("team", "b")])));
        options.apply(&StreamChange::RemoveTags(vec![
            "env".into(),
            "absent".into(),
        ]));
        assert_eq!(options.tags, tags(&[("team", "b")]));
    }

    #[test]
    fn consumers_keep_registration_order_and_leave_by_name() {
        let mut options = StreamOptions::default();
        for (name, at) in [("b", 1), ("a", 2), ("c", 3)] {
            options.apply(&StreamChange::RegisterConsumer(StreamConsumer {
                name: name.into(),
                created_at_ms: Timestamp::from_millis(at),
            }));
        }
        options.apply(&StreamChange::DeregisterConsumer("a".into()));
        let names: Vec<&str> = options.consumers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(
            options.consumer("c").map(|c| c.created_at_ms),
            Some(Timestamp::from_millis(3))
        );
    }

    #[test]
    fn modes_round_trip_through_their_names() {
        for mode in [StreamMode::Provisioned, StreamMode::OnDemand] {
            assert_eq!(StreamMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(StreamMode::parse("on_demand"), None);
    }
}
