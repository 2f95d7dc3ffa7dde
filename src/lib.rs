//! shardlog: a durable, shard-partitioned stream log.
#![deny(unsafe_code)]

pub mod storage;
pub mod proto;
