//! shardlog: a durable, shard-partitioned stream log — the job Amazon Kinesis Data Streams
//! does, self-hosted in one binary — with the FIFO features of SQS/SNS FIFO (message groups,
//! deduplication ids) and server-side consumer groups that checkpoint.
//!
//! ```text
//!  server (tonic gRPC) · client · CLI          thin adapters: validate, convert, map errors
//!          │
//!          ▼
//!  broker ── routes records to shards, dedup, iterators, subscriptions, consumer groups
//!     ├── meta      durable state machine: streams, groups, checkpoints (journal + snapshot)
//!     ├── fifo      message-group ids and the per-stream dedup window
//!     ├── consumer  group membership, sticky balanced leases, fencing epochs
//!     ▼
//!  storage ── per-shard append-only log: segments, indexes, group commit, recovery, retention
//!  fsio    ── the one file-I/O seam (write_at, read_at, sync, rename + fsync dir) and its fault injector
//! ```
//!
//! | module     | job                                                                      |
//! |------------|--------------------------------------------------------------------------|
//! | `fsio`     | the one file-I/O seam: durability syscalls behind a trait, fault injector |
//! | `storage`  | the per-shard log; knows nothing of gRPC, streams or consumers            |
//! | `stream`   | stream and shard model: names, shard ids, the 128-bit hash key space      |
//! | `meta`     | durable metadata: command journal with CRC, snapshots, replay on start    |
//! | `fifo`     | message group / deduplication id rules and the dedup window               |
//! | `consumer` | consumer-group coordination: membership, leases, epochs                   |
//! | `broker`   | the façade every adapter calls: put pipeline, reads, groups               |
//! | `server`   | the gRPC services and the one error → status mapping                      |
//! | `client`   | a typed Rust client, used by the CLI and the tests                        |
//! | `config`   | the server's settings: flags, environment, TOML file                      |
//! | `proto`    | the generated protobuf types and gRPC stubs                               |
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, rust_2018_idioms)]

pub mod broker;
pub mod client;
pub mod config;
pub mod consumer;
pub mod fifo;
pub mod fsio;
pub mod grpc;
pub mod meta;
pub mod proto;
pub mod storage;
pub mod stream;

pub use storage::SequenceNumber;
