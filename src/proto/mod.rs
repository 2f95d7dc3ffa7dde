//! The protobuf contract: the code generated from `proto/` (the public gRPC API and the
//! internal metadata encoding), with the hand-written parts of its wire form. Both the gRPC
//! adapter (`grpc`) and the client (`client`) depend on this module, never on each other.
//!
//! | file       | job                                                                        |
//! |------------|----------------------------------------------------------------------------|
//! | `mod.rs`   | the generated `v1` and `meta` messages, helpers on them                    |
//! | `wire.rs`  | the two read answers, encoded straight from stored records                 |
//! | `codec.rs` | the gRPC codec every generated service and client uses (presized buffers)  |

pub mod codec;
pub mod wire;

/// The public gRPC API (`shardlog.v1`): the `StreamLog` and `ConsumerGroups` services.
pub mod v1 {
    #![allow(missing_docs)]
    tonic::include_proto!("shardlog.v1");
}

impl v1::PutRecordsStreamResult {
    /// The shard `entry` (one of this result's) went to; `None` when it failed.
    pub fn shard_id(&self, entry: &v1::PutRecordsStreamEntry) -> Option<&str> {
        if !entry.error_code.is_empty() {
            return None;
        }
        self.shard_ids.get(entry.shard as usize).map(String::as_str)
    }

    /// The same result in PutRecords' form, one shard id string per entry.
    pub fn into_response(self) -> v1::PutRecordsResponse {
        let v1::PutRecordsStreamResult {
            failed_record_count,
            shard_ids,
            records,
        } = self;
        let records = records
            .into_iter()
            .map(|e| v1::PutRecordsResultEntry {
                shard_id: match e.error_code.is_empty() {
                    true => shard_ids.get(e.shard as usize).cloned().unwrap_or_default(),
                    false => String::new(),
                },
                sequence_number: e.sequence_number,
                error_code: e.error_code,
                error_message: e.error_message,
                duplicate: e.duplicate,
            })
            .collect();
        v1::PutRecordsResponse {
            failed_record_count,
            records,
        }
    }
}

/// The internal on-disk encoding of the metadata journal and snapshots (`shardlog.meta.v1`).
pub mod meta {
    #![allow(missing_docs)]
    tonic::include_proto!("shardlog.meta.v1");
}

/// The encoded `FileDescriptorSet` of every proto file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("shardlog_descriptor");
