//! Retiring closed shards: once retention has deleted every record a closed shard held and the
//! shard has been closed for the stream's retention period, the shard is gone — as Kinesis
//! drops a closed shard from ListShards when its retention has passed. One metadata command
//! makes it so; then the handle lets go of its log and committer and its directory is deleted
//! (a crash in between leaves the directory, which the next open deletes). The id stays taken
//! and children still name it as their parent; whatever followed lineage through it (lease
//! groups, queue groups, rules) treats it as done, which it is: it holds nothing.

use std::sync::{Arc, RwLock};

use super::{blocking, Broker, BrokerError, StreamHandle};
use crate::meta::MetaCommand;
use crate::storage::Timestamp;
use crate::stream::ShardId;

/// The closed shards of `handle` that may be retired at `now`.
fn retirable(handle: &StreamHandle, now: Timestamp) -> Vec<ShardId> {
    handle
        .descriptor
        .shards()
        .iter()
        .filter(|d| !d.retired)
        .filter_map(|d| {
            let shard = handle.shard(d.id)?;
            let end = shard.ending()?;
            let emptied = shard.log.first_sequence() >= end;
            let closed_long_enough = d
                .closed_at
                .is_none_or(|at| now.saturating_duration_since(at) >= shard.log.retention());
            (emptied && closed_long_enough).then_some(d.id)
        })
        .collect()
}

impl Broker {
    /// Retires every closed shard retention has emptied, stream by stream; called after each
    /// retention pass.
    pub(crate) async fn retire_shards(&self, now: Timestamp) -> Result<usize, BrokerError> {
        let mut retired = 0;
        for handle in self.stream_handles() {
            if retirable(&handle, now).is_empty() {
                continue;
            }
            // Under the admin lock no reshard runs: the layout read here is the one in force.
            let _admin = self.inner.admin.lock().await;
            let name = handle.descriptor.name.clone();
            let Ok(handle) = self.stream(&name) else {
                continue;
            };
            let due = retirable(&handle, now);
            if due.is_empty() {
                continue;
            }
            self.execute_meta(MetaCommand::RetireShards {
                stream: name.clone(),
                shards: due.clone(),
            })
            .await?;
            let mut descriptor = handle.descriptor.clone();
            descriptor.retire(&due);
            descriptor.options = handle
                .options
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let mut slots = handle.slots.clone();
            let mut dirs = Vec::new();
            for id in &due {
                if let Some(shard) = slots.get_mut(id.index() as usize).and_then(Option::take) {
                    dirs.push(shard.log.dir().to_owned());
                }
            }
            let replacement = Arc::new(StreamHandle {
                options: RwLock::new(descriptor.options.clone()),
                descriptor,
                slots,
                dedup: handle.dedup.clone(),
                dedup_policy: handle.dedup_policy,
                shared: Arc::clone(&handle.shared),
            });
            self.inner
                .streams
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.clone(), Arc::clone(&replacement));
            self.queues_follow_retirement(&replacement);
            drop(handle);
            let io = Arc::clone(&self.inner.io);
            blocking("delete retired shards", move || {
                for dir in dirs {
                    if let Err(e) = io.remove_dir_all(&dir) {
                        tracing::warn!(dir = %dir.display(), error = %e, "could not delete a retired shard's directory; the next start deletes it");
                    }
                }
            })
            .await?;
            tracing::info!(stream = %name, shards = ?due.iter().map(ToString::to_string).collect::<Vec<_>>(), "retired closed shards emptied by retention");
            retired += due.len();
        }
        Ok(retired)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::broker::{BrokerConfig, PutEntry, ShardFilter};
    use crate::fsio::RealIo;
    use crate::stream::{StreamName, StreamSettings};

    const PARENT: &str = "shardId-000000000000";

    async fn put(broker: &Broker, name: &StreamName, n: usize) {
        let entries = (0..n)
            .map(|i| PutEntry {
                partition_key: format!("k{i}"),
                data: Bytes::from(format!("r{i}")),
                ..PutEntry::default()
            })
            .collect();
        for r in broker.put_records(name, entries).await.unwrap() {
            r.unwrap();
        }
    }

    fn listed(broker: &Broker, name: &StreamName) -> Vec<String> {
        broker
            .list_shards(name, ShardFilter::All)
            .unwrap()
            .iter()
            .map(|s| s.id.to_string())
            .collect()
    }

    /// Every shard's log at `now`, as the retention task would see it.
    fn apply_retention(broker: &Broker, now: Timestamp) {
        for handle in broker.stream_handles() {
            for shard in handle.shards() {
                shard.log.apply_retention(now).unwrap();
            }
        }
    }

    #[tokio::test]
    async fn a_closed_shard_is_retired_once_retention_emptied_it_and_stays_retired_after_a_restart()
    {
        let dir = tempfile::tempdir().unwrap();
        let name = StreamName::new("s").unwrap();
        let broker = Broker::open(BrokerConfig::new(dir.path()), RealIo::shared())
            .await
            .unwrap();
        broker
            .create_stream(name.clone(), 1, StreamSettings::default())
            .await
            .unwrap();
        put(&broker, &name, 20).await;
        broker
            .split_shard(&name, PARENT, &(1u128 << 127).to_string())
            .await
            .unwrap();
        put(&broker, &name, 20).await;
        let parent_dir = broker.stream(&name).unwrap().slots[0]
            .as_ref()
            .unwrap()
            .log
            .dir()
            .to_owned();
        let retention = broker
            .stream(&name)
            .unwrap()
            .shards()
            .next()
            .unwrap()
            .log
            .retention();
        let later = Timestamp::now().saturating_add(retention + Duration::from_secs(60));

        // Closed but still holding its records: kept.
        assert_eq!(broker.retire_shards(later).await.unwrap(), 0);
        apply_retention(&broker, later);
        // Emptied, but not closed for the retention period yet: kept.
        assert_eq!(broker.retire_shards(Timestamp::now()).await.unwrap(), 0);
        assert_eq!(listed(&broker, &name).len(), 3);

        assert_eq!(broker.retire_shards(later).await.unwrap(), 1);
        let children = ["shardId-000000000001", "shardId-000000000002"];
        assert_eq!(listed(&broker, &name), children);
        assert!(!parent_dir.exists());
        let gone = broker
            .get_shard_iterator(
                &name,
                PARENT,
                crate::broker::IteratorKind::TrimHorizon,
                None,
            )
            .await;
        assert!(
            matches!(gone, Err(BrokerError::ShardNotFound { .. })),
            "{gone:?}"
        );
        // Children still name their parent; nothing more to retire.
        let described = broker.describe_stream(&name).unwrap();
        assert_eq!(described.listed_shards().count(), 2);
        assert!(described
            .listed_shards()
            .all(|s| s.parent.map(|p| p.to_string()).as_deref() == Some(PARENT)));
        assert_eq!(broker.retire_shards(later).await.unwrap(), 0);

        broker.shutdown().await.unwrap();
        drop(broker);
        let broker = Broker::open(BrokerConfig::new(dir.path()), RealIo::shared())
            .await
            .unwrap();
        assert_eq!(listed(&broker, &name), children);
        assert!(!parent_dir.exists());
        put(&broker, &name, 5).await;
        // A split after the retirement continues the numbering past the retired id.
        let after = broker
            .split_shard(&name, children[0], "1000")
            .await
            .unwrap();
        assert_eq!(
            after.listed_shards().last().unwrap().id.to_string(),
            "shardId-000000000004"
        );
    }
}
