//! Per-shard append-only log: segments, sparse indexes, group commit, recovery, retention.
//! Knows nothing of gRPC, streams or consumers.

pub mod io;
