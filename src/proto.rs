//! The code generated from `proto/`: the public gRPC contract and the internal metadata encoding.

/// The public gRPC API (`shardlog.v1`): the `StreamLog` and `ConsumerGroups` services.
pub mod v1 {
    #![allow(missing_docs)]
    tonic::include_proto!("shardlog.v1");
}

/// The internal on-disk encoding of the metadata journal and snapshots (`shardlog.meta.v1`).
pub mod meta {
    #![allow(missing_docs)]
    tonic::include_proto!("shardlog.meta.v1");
}

/// The encoded `FileDescriptorSet` of every proto file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("shardlog_descriptor");
