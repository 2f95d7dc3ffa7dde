//! The shortest round trip: create a stream, put a record, read it back over gRPC.

mod common;

use shardlog::proto::v1 as pb;

#[tokio::test]
async fn a_put_record_can_be_read_back_from_the_trim_horizon() {
    let server = common::TestServer::start().await;
    let mut c = server.streams().await;
    c.create_stream(pb::CreateStreamRequest {
        stream_name: "orders".into(),
        shard_count: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let put = c
        .put_record(pb::PutRecordRequest {
            stream_name: "orders".into(),
            partition_key: "k".into(),
            data: bytes::Bytes::from_static(b"hello"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(put.shard_id, "shardId-000000000000");
    assert_eq!(put.sequence_number, 0);
    let it = c
        .get_shard_iterator(pb::GetShardIteratorRequest {
            stream_name: "orders".into(),
            shard_id: put.shard_id.clone(),
            shard_iterator_type: pb::ShardIteratorType::TrimHorizon as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .shard_iterator;
    let got = c
        .get_records(pb::GetRecordsRequest {
            shard_iterator: it,
            limit: 0,
            as_frames: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.records.len(), 1);
    assert_eq!(&got.records[0].data[..], b"hello");
    assert_eq!(got.records[0].partition_key, "k");
    server.stop().await;
}
