//! shardlog: a durable, shard-partitioned stream log.
#![deny(unsafe_code)]

pub mod fifo;
pub mod consumer;
pub mod storage;
pub mod proto;
pub mod stream;
