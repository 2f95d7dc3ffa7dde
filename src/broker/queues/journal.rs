//! Group commit of queue commands: receives, deletes and visibility changes of every queue
//! group are queued here in the order their group's state changed, and one thread writes each
//! batch to the metadata journal with one sync.
//!
//! ```text
//!  receive / delete (shard locked) ─▶ submit ─▶ channel ─▶ journal thread: take all queued,
//!          ◀── durable (oneshot) ◀──────────────────────  MetaStore::execute_batch, one fsync
//! ```
//!
//! Commands are submitted while the shard's state is locked, so the journal keeps each
//! shard's changes in the order they were made.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::meta::{MetaCommand, MetaError, MetaStore};

/// Most commands written in one batch.
const MAX_BATCH: usize = 4096;

type Reply = oneshot::Sender<Result<(), Arc<MetaError>>>;

/// What the thread is asked: a command to make durable, or a barrier that resolves once
/// everything submitted before it is durable.
type Request = (Option<MetaCommand>, Reply);

/// The sending side; the thread ends when it is dropped.
#[derive(Debug)]
pub(crate) struct QueueJournal {
    tx: Mutex<mpsc::Sender<Request>>,
}

/// Resolves when a submitted command is durable (or failed).
pub(crate) type Durable = oneshot::Receiver<Result<(), Arc<MetaError>>>;

impl QueueJournal {
    pub(crate) fn spawn(meta: Arc<Mutex<MetaStore>>) -> QueueJournal {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("queue-journal".into())
            .spawn(move || run(&meta, &rx))
            .expect("spawning the queue journal thread");
        QueueJournal { tx: Mutex::new(tx) }
    }

    /// Queues `cmd`; the receiver resolves once it is durable.
    pub(crate) fn submit(&self, cmd: MetaCommand) -> Durable {
        self.send(Some(cmd))
    }

    /// Resolves once every command submitted before it is durable: an answer that relies on
    /// an earlier request's change (a repeated delete) waits for it.
    pub(crate) fn barrier(&self) -> Durable {
        self.send(None)
    }

    fn send(&self, cmd: Option<MetaCommand>) -> Durable {
        let (reply, durable) = oneshot::channel();
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        // A send fails only once the thread is gone; the dropped reply then reads as failed.
        let _ = tx.send((cmd, reply));
        durable
    }
}

fn run(meta: &Mutex<MetaStore>, rx: &mpsc::Receiver<Request>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut cmds = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut barriers = Vec::new();
        for (cmd, reply) in batch {
            match cmd {
                Some(cmd) => {
                    cmds.push(cmd);
                    replies.push(reply);
                }
                None => barriers.push(reply),
            }
        }
        let outcome = if cmds.is_empty() {
            Ok(Vec::new())
        } else {
            let mut store = meta.lock().unwrap_or_else(|p| p.into_inner());
            store.execute_batch(cmds)
        };
        match outcome {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result.map_err(Arc::new));
                }
                for reply in barriers {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "queue journal write failed");
                let e = Arc::new(e);
                for reply in replies.into_iter().chain(barriers) {
                    let _ = reply.send(Err(Arc::clone(&e)));
                }
            }
        }
    }
}
