//! Generates the gRPC stubs and the internal metadata messages from `proto/`, with the vendored
//! `protoc` so the build needs no system protobuf compiler.

use std::env;
use std::error::Error;
use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/shardlog/v1/shardlog.proto",
    "proto/shardlog/meta/v1/meta.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=build.rs");

    // Edition 2021: `set_var` is safe here; the build script is single-threaded at this point.
    env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // Every `bytes` field becomes `bytes::Bytes`, so record data is shared, never copied.
        .bytes(".")
        .file_descriptor_set_path(out_dir.join("shardlog_descriptor.bin"))
        // Sizes each message's buffer before encoding it; see `src/proto/codec.rs`.
        .codec_path("crate::proto::codec::PresizedCodec")
        // The answers carrying stored records are written by hand so that stored records are encoded as
        // read, without a `pb::Record` per record; see `src/proto/wire.rs`.
        .extern_path(
            ".shardlog.v1.GetRecordsResponse",
            "crate::proto::wire::GetRecordsResponse",
        )
        .extern_path(
            ".shardlog.v1.SubscribeToShardEvent",
            "crate::proto::wire::SubscribeToShardEvent",
        )
        .extern_path(
            ".shardlog.v1.ReceiveMessagesResponse",
            "crate::proto::wire::ReceiveMessagesResponse",
        )
        .compile_protos(PROTOS, &["proto"])?;
    // Callers keep finding every message of the contract in `proto::v1`.
    let v1 = out_dir.join("shardlog.v1.rs");
    let mut generated = std::fs::read_to_string(&v1)?;
    generated
        .push_str("\npub use crate::proto::wire::{GetRecordsResponse, ReceiveMessagesResponse, SubscribeToShardEvent};\n");
    std::fs::write(&v1, generated)?;
    Ok(())
}
