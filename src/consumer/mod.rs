//! Consumer groups: membership, session expiry, sticky balanced lease assignment, fencing epochs.
//!
//! Pure in-memory logic with time passed in; the server wires it to gRPC and to the metadata
//! store, which keeps checkpoints and each group's persisted epoch floor.
//!
//! - `member.rs` — [`MemberId`], the validated member name.
//! - `assign.rs` — the sticky balanced assignment plan (which member gets which shards).
//! - `coordinator.rs` — [`GroupCoordinator`]: one group's members, sessions, leases, epochs.
//! - `error.rs` — [`GroupError`] (refused membership requests), [`FenceError`] (fenced holders).
//! - `queue.rs` — [`QueueShard`]: one shard of a queue group — visibility, receive counts, FIFO
//!   message groups, the window above the low-water mark.
//!
//! Delivery is at-least-once: a shard moves at once when its owner expires or a rebalance takes
//! it, the old owner's further checkpoints are fenced by the new epoch, and the new owner
//! resumes after the last checkpoint that passed the fence.

mod assign;
mod coordinator;
mod error;
mod member;
pub mod queue;

pub use coordinator::{
    GroupConfig, GroupCoordinator, Lease, DEFAULT_SESSION_TIMEOUT, MAX_SESSION_TIMEOUT,
    MIN_SESSION_TIMEOUT,
};
#[cfg(test)]
use coordinator::{MemberView, MAX_EPOCH_FLOOR};
pub use error::{FenceError, GroupError};
pub use member::MemberId;
pub use queue::{QueueShard, MAX_VISIBILITY_TIMEOUT};

#[cfg(test)]
mod tests;
