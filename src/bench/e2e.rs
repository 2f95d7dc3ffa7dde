//! e2e subscribers: one SubscribeToShard per shard from LATEST, opened before the producers
//! start, timing every record from the send time its first 8 bytes carry to its arrival. Once
//! the producers are done, each subscriber stops when it has received its shard's last
//! acknowledged record, or when the drain time runs out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic::Streaming;

use super::produce::{nanos_since, AckedTail};
use super::stats::Meter;
use super::{BenchError, DEFAULT_RPC_TIMEOUT, TIMESTAMP_BYTES};
use shardlog::client::{Client, ClientError, Position};
use shardlog::proto::v1::{Record, SubscribeToShardEvent};

/// Subscriptions of every shard, receiving while the producers run.
#[derive(Debug)]
pub struct Subscribers {
    tasks: JoinSet<()>,
    /// Set once the producers are done: the instant by which every subscriber must stop.
    drain_until: watch::Sender<Option<Instant>>,
}

/// What every subscriber shares.
#[derive(Debug, Clone)]
struct Shared {
    epoch: Instant,
    meter: Arc<Meter>,
    acked: Arc<AckedTail>,
}

/// Put-to-receive latency of each stamped record received at `now_nanos` (nanoseconds since
/// the epoch); records too short to carry a stamp are skipped.
pub fn latencies(records: &[Record], now_nanos: u64) -> impl Iterator<Item = Duration> + '_ {
    records.iter().filter_map(move |r| {
        let stamp: [u8; TIMESTAMP_BYTES] = r.data.get(..TIMESTAMP_BYTES)?.try_into().ok()?;
        Some(Duration::from_nanos(
            now_nanos.saturating_sub(u64::from_le_bytes(stamp)),
        ))
    })
}

impl Subscribers {
    /// Subscribes to every shard at LATEST, shard `i` on consumer `i % C`'s connection. Returns
    /// once every subscription is open, so no record put afterwards is missed.
    pub async fn open(
        clients: &[Client],
        stream: &str,
        shard_ids: &[String],
        epoch: Instant,
        meter: Arc<Meter>,
        acked: Arc<AckedTail>,
    ) -> Result<Subscribers, BenchError> {
        let shared = Shared {
            epoch,
            meter,
            acked,
        };
        let (drain_until, finished) = watch::channel(None);
        let mut tasks = JoinSet::new();
        for (i, shard_id) in shard_ids.iter().enumerate() {
            let client = &clients[i % clients.len().max(1)];
            let events = match tokio::time::timeout(
                DEFAULT_RPC_TIMEOUT,
                client.subscribe_to_shard(stream, shard_id, Position::Latest),
            )
            .await
            {
                Ok(Ok(events)) => events,
                Ok(Err(source)) => {
                    return Err(BenchError::Client {
                        step: "subscribing for the e2e run",
                        source,
                    })
                }
                Err(_) => {
                    return Err(BenchError::Timeout {
                        step: "subscribing for the e2e run",
                        after: DEFAULT_RPC_TIMEOUT,
                    })
                }
            };
            tasks.spawn(follow(
                events,
                shard_id.clone(),
                shared.clone(),
                finished.clone(),
            ));
        }
        Ok(Subscribers { tasks, drain_until })
    }

    /// Tells the subscribers the producers are done and waits until each has received its
    /// shard's last acknowledged record, for at most `drain`.
    pub async fn finish(mut self, drain: Duration) {
        let _ = self.drain_until.send(Some(Instant::now() + drain));
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn follow(
    mut events: Streaming<SubscribeToShardEvent>,
    shard_id: String,
    shared: Shared,
    mut finished: watch::Receiver<Option<Instant>>,
) {
    let mut received: Option<u64> = None;
    loop {
        let drain_until = *finished.borrow_and_update();
        if drain_until.is_some() {
            let caught_up = match shared.acked.get(&shard_id) {
                None => true,
                Some(last) => received.is_some_and(|r| r >= last),
            };
            if caught_up {
                return;
            }
        }
        let out_of_time = async {
            match drain_until {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let message = tokio::select! {
            message = events.message() => message,
            changed = finished.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
            () = out_of_time => return,
        };
        match message {
            Ok(Some(event)) => {
                let now = nanos_since(shared.epoch, Instant::now());
                shared.meter.record_e2e(latencies(&event.records, now));
                if let Some(last) = event.records.last() {
                    received = Some(
                        received.map_or(last.sequence_number, |r| r.max(last.sequence_number)),
                    );
                }
            }
            Ok(None) => {
                return shared.meter.add_rpc_error(|| {
                    format!("the subscription to {shard_id} ended while records were due")
                })
            }
            Err(status) => {
                return shared.meter.add_rpc_error(|| {
                    ClientError::Rpc {
                        rpc: "SubscribeToShard",
                        source: status,
                    }
                    .to_string()
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(data: Vec<u8>) -> Record {
        Record {
            data: Bytes::from(data),
            ..Record::default()
        }
    }

    #[test]
    fn latency_is_arrival_minus_the_stamped_send_time() {
        let mut stamped = 1_000_000u64.to_le_bytes().to_vec();
        stamped.extend_from_slice(b"payload");
        let records = [record(stamped), record(3_500_000u64.to_le_bytes().to_vec())];
        let got: Vec<_> = latencies(&records, 4_000_000).collect();
        assert_eq!(got, [Duration::from_millis(3), Duration::from_micros(500)]);
    }

    #[test]
    fn short_records_are_skipped_and_clock_skew_clamps_to_zero() {
        let records = [
            record(vec![1, 2, 3]),
            record(9_000u64.to_le_bytes().to_vec()),
        ];
        let got: Vec<_> = latencies(&records, 5_000).collect();
        assert_eq!(got, [Duration::ZERO]);
    }
}
