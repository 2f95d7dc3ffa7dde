//! `--idle-subscribers`: subscriptions held open for the whole run on a stream nobody writes
//! to, so that a run shows what idle subscribers cost the server (memory, keep-alives) while
//! it works at full speed. Each must stay open and receive nothing but keep-alives.

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::BenchError;
use shardlog::client::{Client, Position};

/// Connections the idle subscriptions are spread over.
pub const IDLE_CONNECTIONS: usize = 4;

/// Open idle subscriptions; [`IdleSubscribers::close`] ends them and says what went wrong.
#[derive(Debug)]
pub struct IdleSubscribers {
    tasks: JoinSet<Option<String>>,
    stop: watch::Sender<bool>,
}

/// The stream the idle subscribers of a run on `stream` wait on.
pub fn idle_stream_name(stream: &str) -> String {
    format!("{stream}-idle")
}

impl IdleSubscribers {
    /// Creates `stream` (one shard) unless it exists and opens `count` subscriptions to it at
    /// LATEST, over [`IDLE_CONNECTIONS`] connections.
    pub async fn open(
        url: &str,
        options: &shardlog::client::ClientOptions,
        stream: &str,
        count: usize,
    ) -> Result<IdleSubscribers, BenchError> {
        let mut clients = Vec::new();
        for _ in 0..count.min(IDLE_CONNECTIONS) {
            clients.push(
                Client::connect_with(url.to_owned(), options.clone())
                    .await
                    .map_err(|source| BenchError::Client {
                        step: "connecting the idle subscribers",
                        source,
                    })?,
            );
        }
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let Some(admin) = clients.first() else {
            return Ok(IdleSubscribers { tasks, stop });
        };
        match admin.create_stream(stream, 1).await {
            Ok(_) => {}
            Err(e) if e.code() == Some(tonic::Code::AlreadyExists) => {}
            Err(source) => {
                return Err(BenchError::Client {
                    step: "creating the idle subscribers' stream",
                    source,
                })
            }
        }
        let shards = admin
            .list_shards(stream)
            .await
            .map_err(|source| BenchError::Client {
                step: "listing the idle subscribers' stream",
                source,
            })?;
        let shard = shards
            .first()
            .map(|s| s.shard_id.clone())
            .unwrap_or_default();
        for i in 0..count {
            let client = &clients[i % clients.len()];
            let mut events = client
                .subscribe_to_shard(stream, &shard, Position::Latest)
                .await
                .map_err(|source| BenchError::Client {
                    step: "opening an idle subscription",
                    source,
                })?;
            let mut stopped = stopped.clone();
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        _ = stopped.wait_for(|stop| *stop) => return None,
                        event = events.message() => match event {
                            Ok(Some(event)) if event.records.is_empty() => {}
                            Ok(Some(event)) => {
                                return Some(format!(
                                    "an idle subscriber received {} records",
                                    event.records.len()
                                ))
                            }
                            Ok(None) => return Some("an idle subscription ended early".into()),
                            Err(status) => {
                                return Some(format!("an idle subscription failed: {status}"))
                            }
                        },
                    }
                }
            });
        }
        Ok(IdleSubscribers { tasks, stop })
    }

    /// Ends every subscription; returns what went wrong with any of them meanwhile.
    pub async fn close(mut self) -> Vec<String> {
        let _ = self.stop.send(true);
        let mut problems = Vec::new();
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(None) => {}
                Ok(Some(problem)) => problems.push(problem),
                Err(e) => problems.push(format!("an idle subscriber task failed: {e}")),
            }
        }
        problems
    }
}
