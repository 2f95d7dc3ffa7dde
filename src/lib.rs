//! shardlog: a durable, shard-partitioned stream log — the job Amazon Kinesis Data Streams
//! does, self-hosted in one binary — with the FIFO features of SQS/SNS FIFO (message groups,
//! deduplication ids) and server-side consumer groups that checkpoint.
//!
//! This crate is the engine and its adapters; the binary (`main.rs`, `cli/` for the client
//! commands, `bench/` for the load generator) sits on top and uses only what is exported here.
//! Each layer knows only the ones below it:
//!
//! ```text
//!  adapters   grpc/ (tonic services)            client/ (typed Rust client)
//!             thin: validate, convert, map errors; neither imports the other
//!                 │               ▲
//!                 │      proto/ ──┘  generated types, hand-written wire encoding and codec
//!                 ▼
//!  broker/ ──── the one façade: streams, put pipeline, iterators, subscriptions, groups,
//!     │         filters (a bounded cache of compiled patterns) and rules (`broker/rules/`)
//!     ├── route/     the pattern language (EventBridge/SNS) compiled to one matcher per set
//!     ├── consumer/  lease groups (membership, leases, epochs); queue groups' per-shard state
//!     ├── fifo/      message groups and the per-stream dedup window
//!     ├── meta/      durable state machine: streams, groups, checkpoints, queue state, rules
//!     ├── stream/    streams, shards, names, the 128-bit hash key space
//!     ▼
//!  storage/ ─── per-shard append-only log: frames, segments, indexes, group commit, recovery
//!  fsio/    ─── the one I/O seam (write_at, read_at, sync, rename + fsync dir), fault injector
//! ```
//!
//! | module     | job                                                                          |
//! |------------|------------------------------------------------------------------------------|
//! | `grpc`     | the tonic services, health, reflection; the one error → status mapping      |
//! | `client`   | a typed Rust client, `GroupConsumer` and `QueueWorker`, for binary and tests  |
//! | `proto`    | the generated protobuf types, the two read answers' wire encoding, the codec |
//! | `config`   | the server's settings: flags, environment, TOML file, validation             |
//! | `broker`   | the façade every adapter calls; owns the error vocabulary of a request; rules |
//! | `consumer` | lease groups (membership, leases, epochs) and queue groups' message state    |
//! | `fifo`     | message group / deduplication id rules and the dedup window                  |
//! | `meta`     | durable metadata: command journal with CRC, snapshots, replay on start       |
//! | `stream`   | stream and shard model: names, shard ids, hash key ranges, settings          |
//! | `storage`  | the per-shard log; knows nothing of gRPC, streams or consumers               |
//! | `fsio`     | every durability syscall behind one trait, and the fault-injecting double    |
//! | `route`    | the pattern language (EventBridge/SNS), one compiled matcher per pattern set |
//!
//! A put, one file a step: `grpc/stream_log.rs` (the PutRecords handler) → `grpc/put.rs`
//! (entries in, results out) → `broker/put.rs` (route by hash key, reserve dedup ids, one batch
//! per shard) → `storage/commit.rs` (the shard's committer: group commit, the fsync policy) →
//! `storage/log.rs` (`ShardLog::write`, `ShardLog::sync`) → `storage/segment.rs` (the segment
//! file and its indexes) → `storage/record.rs` (the frame: header, CRC, records) →
//! `fsio/mod.rs` (`write_at`, `sync_data`). A read back: `grpc/stream_log.rs` (GetRecords) →
//! `broker/read.rs` (iterator, limits, lag) → `storage/log.rs` (`ShardLog::read`) →
//! `storage/segment.rs` and `storage/mapped.rs` (bytes of an active or sealed segment) →
//! `storage/record.rs` (CRC checked, records decoded in place) → `proto/wire.rs` (encoded to
//! the client as read).
//!
//! A rule, one file a step: `grpc/router.rs` (PutRule) → `broker/rules/mod.rs` (checked, the
//! definition journaled by `meta/state.rs`, a runner started) → `broker/rules/runner.rs` (a
//! filtered subscription per source shard, `Broker::put_routed` into each target, progress
//! recorded at quiet points) → `broker/rules/recover.rs` (on start: the targets read from their
//! marks for the rule's own ids, so nothing is put twice).
//!
//! A queue message, one file a step: `grpc/queues.rs` (ReceiveMessages) →
//! `broker/queues/mod.rs` (each shard locked in turn, the window fetched from the log) →
//! `consumer/queue.rs` (visible → in flight, FIFO group heads, receive counts) →
//! `broker/queues/journal.rs` (the leases journaled in batches with one sync, by
//! `meta/queue.rs`'s rules) → back with receipt handles (`broker/queues/receipt.rs`); a delete
//! takes the same path to done; `broker/queues/dead_letter.rs` and `moves.rs` copy messages out
//! and back.
//!
//! The crate denies `unsafe` except in the two modules that map files, `storage::index` and
//! `storage::mapped`, where every block says why the mapping cannot change underneath it.
// The lint wall: no `unsafe` outside the two modules that map files (each opts in with
// `#![allow(unsafe_code)]` and documents every block), docs on everything exported.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, rust_2018_idioms)]

pub mod auth;
pub mod broker;
pub mod client;
pub mod config;
pub(crate) mod consumer;
pub(crate) mod fifo;
pub mod fsio;
// The checks of the fuzz targets in `fuzz/`, with the tests that replay their corpora: built
// only for tests and fuzzing, and not part of the API.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod grpc;
pub mod http;
pub mod kinesis;
pub(crate) mod meta;
pub mod proto;
mod refusal;
pub mod route;
pub mod storage;
pub mod stream;
pub mod tls;

// What a program embedding the engine or talking to a server reaches for first.
pub use broker::{Broker, BrokerConfig, BrokerError};
pub use client::{Client, ClientError};
pub use config::Config;
pub use fsio::{Io, RealIo};
pub use storage::{FsyncPolicy, SequenceNumber, Timestamp};
pub use stream::{HashKey, ShardId, StreamName};
