//! An `EIO` on fsync poisons the shard it happened on, and only that shard: its puts fail with
//! a clear status naming the shard and the cause, its records stay readable, the other shards
//! go on serving, and a restart recovers it with every acknowledged record.

mod common;

use std::sync::Arc;

use common::TestServer;
use shardlog::broker::BrokerConfig;
use shardlog::fsio::faulty::FaultyIo;
use shardlog::proto::v1 as pb;
use tonic::Code;

async fn put(c: &mut common::Streams, hash_key: u128, data: &str) -> Result<u64, tonic::Status> {
    c.put_record(pb::PutRecordRequest {
        stream_name: "orders".into(),
        partition_key: "k".into(),
        data: bytes::Bytes::from(data.to_owned()),
        explicit_hash_key: hash_key.to_string(),
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner().sequence_number)
}

#[tokio::test]
async fn an_eio_on_fsync_poisons_that_shard_only_and_a_restart_recovers_it() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let start = || TestServer::start_with_io(BrokerConfig::new(dir.path()), Arc::new(io.clone()));
    let mut server = start().await;
    let mut c = server.streams().await;
    common::make_stream(&mut c, "orders", 2).await;
    let shards = common::list_shards(&mut c, "orders").await;
    let keys: Vec<u128> = shards.iter().map(|s| common::hash_range(s).0).collect();
    let (bad, good) = (&shards[0].shard_id, &shards[1].shard_id);
    for i in 0..3 {
        for key in &keys {
            put(&mut c, *key, &format!("before-{i}")).await.unwrap();
        }
    }

    // The disk under the first shard fails its syncs.
    let bad_dir = dir.path().join("streams/orders").join(bad);
    assert!(
        bad_dir.is_dir(),
        "{} is not the shard's directory",
        bad_dir.display()
    );
    io.fail_syncs_under(Some(&bad_dir));
    let refused = put(&mut c, keys[0], "lost").await.unwrap_err();
    assert_eq!(refused.code(), Code::Internal, "{refused:?}");
    assert!(
        refused.message().contains(bad.as_str()) && refused.message().contains("sync"),
        "the error names neither the shard nor the cause: {}",
        refused.message()
    );
    // The other shard serves, and the broken one's records stay readable.
    put(&mut c, keys[1], "after").await.unwrap();
    let read = common::read_shard(&mut c, "orders", bad).await;
    assert_eq!(
        common::datas(&read)[..3],
        ["before-0", "before-1", "before-2"]
    );

    // The disk is fine again, but a failed fsync cannot be retried: the shard stays refused
    // until a restart, and says so.
    io.fail_syncs_under(None);
    let still = put(&mut c, keys[0], "still").await.unwrap_err();
    assert_eq!(still.code(), Code::Internal);
    assert!(
        still.message().contains("refuses writes"),
        "{}",
        still.message()
    );
    put(&mut c, keys[1], "after-2").await.unwrap();

    // A restart recovers it; nothing acknowledged is missing on either shard.
    let _ = server.stop_as_it_may().await;
    let server = start().await;
    let mut c = server.streams().await;
    put(&mut c, keys[0], "recovered").await.unwrap();
    let bad_records = common::datas(&common::read_shard(&mut c, "orders", bad).await);
    let good_records = common::datas(&common::read_shard(&mut c, "orders", good).await);
    assert_eq!(
        good_records,
        ["before-0", "before-1", "before-2", "after", "after-2"]
    );
    // The put that failed was never acknowledged: it may or may not have reached the disk.
    let unacked: Vec<_> = bad_records
        .iter()
        .filter(|d| !d.starts_with("before") && *d != "recovered")
        .collect();
    assert!(
        unacked.len() <= 1 && unacked.iter().all(|d| *d == "lost"),
        "{bad_records:?}"
    );
    assert_eq!(bad_records[..3], ["before-0", "before-1", "before-2"]);
    assert_eq!(bad_records.last().map(String::as_str), Some("recovered"));
    server.stop().await;
}
