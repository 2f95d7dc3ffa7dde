//! PutRecordsStream over gRPC: batches sent without waiting are answered one by one in send
//! order and stored in that order; a batch rejected as a whole gets its error while the call
//! goes on; a graceful stop answers what was begun and ends the call with UNAVAILABLE.

mod common;

use std::collections::HashMap;

use bytes::Bytes;
use common::{list_shards, make_stream, read_from_start, TestServer, EVENT_TIMEOUT};
use shardlog::client::Client;
use shardlog::proto::v1 as pb;
use shardlog::proto::v1::put_records_stream_response::Outcome;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

fn entry(partition_key: &str, data: impl Into<Bytes>) -> pb::PutRecordsRequestEntry {
    pb::PutRecordsRequestEntry {
        partition_key: partition_key.into(),
        data: data.into(),
        ..Default::default()
    }
}

fn request(stream: &str, records: Vec<pb::PutRecordsRequestEntry>) -> pb::PutRecordsRequest {
    pb::PutRecordsRequest {
        stream_name: stream.into(),
        records,
    }
}

/// The next answer of a call, failing the test instead of hanging.
async fn next_answer(
    answers: &mut tonic::Streaming<pb::PutRecordsStreamResponse>,
) -> Result<Option<pb::PutRecordsStreamResponse>, tonic::Status> {
    tokio::time::timeout(EVENT_TIMEOUT, answers.message())
        .await
        .expect("an answer within the event timeout")
}

#[tokio::test]
async fn batches_sent_without_waiting_are_answered_and_stored_in_send_order() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "pipelined", 3).await;

    // Every batch is queued before any answer is read: far more than the server's window.
    const BATCHES: usize = 40;
    const PER_BATCH: usize = 25;
    let (tx, rx) = mpsc::channel(BATCHES);
    for b in 0..BATCHES {
        let records = (0..PER_BATCH)
            .map(|i| entry(&format!("key-{}", (b * 7 + i) % 11), format!("{b}/{i}")))
            .collect();
        tx.send(request("pipelined", records))
            .await
            .expect("queue a batch");
    }
    drop(tx);
    let mut answers = c
        .put_records_stream(ReceiverStream::new(rx))
        .await
        .expect("call opens")
        .into_inner();

    // Per shard, the data in the order the answers place it.
    let mut acked: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    for b in 0..BATCHES {
        let answer = next_answer(&mut answers)
            .await
            .expect("call stays up")
            .expect("one answer per batch");
        assert_eq!(answer.request_index, b as u64, "answers come in send order");
        let Some(Outcome::Result(result)) = answer.outcome else {
            panic!("batch {b} was rejected: {:?}", answer.outcome);
        };
        assert_eq!(result.failed_record_count, 0);
        assert_eq!(result.records.len(), PER_BATCH);
        for (i, r) in result.records.iter().enumerate() {
            let shard_id = result.shard_id(r).expect("a stored entry names its shard");
            acked
                .entry(shard_id.to_owned())
                .or_default()
                .push((r.sequence_number, format!("{b}/{i}")));
        }
    }
    assert!(
        next_answer(&mut answers)
            .await
            .expect("clean end")
            .is_none(),
        "the call ends once every batch is answered"
    );

    let shards = list_shards(&mut c, "pipelined").await;
    assert!(acked.len() > 1, "the keys spread over several shards");
    for shard in &shards {
        let want = acked.remove(&shard.shard_id).unwrap_or_default();
        // Sent later means a higher sequence number, in every shard.
        assert!(
            want.windows(2).all(|w| w[0].0 < w[1].0),
            "sequence numbers of {} rise in send order",
            shard.shard_id
        );
        let stored: Vec<(u64, String)> = read_from_start(&mut c, "pipelined", &shard.shard_id)
            .await
            .into_iter()
            .map(|r| {
                let data = String::from_utf8(r.data.to_vec()).expect("utf-8 data");
                (r.sequence_number, data)
            })
            .collect();
        assert_eq!(stored, want, "contents of {}", shard.shard_id);
    }
}

#[tokio::test]
async fn a_batch_rejected_as_a_whole_gets_its_error_and_the_call_goes_on() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "mixed", 1).await;

    let (tx, rx) = mpsc::channel(4);
    tx.send(request("mixed", vec![entry("a", "first")]))
        .await
        .expect("queue");
    // One bad entry rejects its whole batch, as PutRecords would.
    tx.send(request(
        "mixed",
        vec![entry("b", "lost"), entry("", "no key")],
    ))
    .await
    .expect("queue");
    tx.send(request("no-such-stream", vec![entry("c", "nowhere")]))
        .await
        .expect("queue");
    tx.send(request("mixed", vec![entry("d", "last")]))
        .await
        .expect("queue");
    drop(tx);
    let mut answers = c
        .put_records_stream(ReceiverStream::new(rx))
        .await
        .expect("call opens")
        .into_inner();

    let mut outcomes = Vec::new();
    while let Some(answer) = next_answer(&mut answers).await.expect("call stays up") {
        outcomes.push((answer.request_index, answer.outcome.expect("an outcome")));
    }
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    assert!(matches!(&outcomes[0], (0, Outcome::Result(r)) if r.failed_record_count == 0));
    match &outcomes[1] {
        (1, Outcome::Error(e)) => {
            assert_eq!(Code::from(e.code), Code::InvalidArgument, "{e:?}");
            assert!(e.message.contains("partition_key"), "{e:?}");
        }
        other => panic!("the batch with an empty key was not rejected: {other:?}"),
    }
    match &outcomes[2] {
        (2, Outcome::Error(e)) => {
            assert_eq!(Code::from(e.code), Code::NotFound, "{e:?}");
            assert!(e.message.contains("no-such-stream"), "{e:?}");
        }
        other => panic!("the batch for an unknown stream was not rejected: {other:?}"),
    }
    assert!(matches!(&outcomes[3], (3, Outcome::Result(r)) if r.failed_record_count == 0));

    let shards = list_shards(&mut c, "mixed").await;
    let stored: Vec<Bytes> = read_from_start(&mut c, "mixed", &shards[0].shard_id)
        .await
        .into_iter()
        .map(|r| r.data)
        .collect();
    assert_eq!(
        stored,
        [Bytes::from("first"), Bytes::from("last")],
        "nothing of a rejected batch is stored"
    );
}

#[tokio::test]
async fn a_graceful_stop_answers_what_was_begun_then_ends_the_call_unavailable() {
    let server = TestServer::start().await;
    let mut c = server.streams().await;
    make_stream(&mut c, "stopping", 2).await;

    let (tx, rx) = mpsc::channel(4);
    let mut answers = c
        .put_records_stream(ReceiverStream::new(rx))
        .await
        .expect("call opens")
        .into_inner();
    tx.send(request("stopping", vec![entry("a", "kept")]))
        .await
        .expect("queue");
    let first = next_answer(&mut answers)
        .await
        .expect("call stays up")
        .expect("an answer");
    assert!(matches!(first.outcome, Some(Outcome::Result(_))));

    // The client keeps its side open; the stop must still end the call.
    let stopping = tokio::spawn(server.stop());
    let end = next_answer(&mut answers).await;
    match end {
        Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        Ok(other) => panic!("the call did not end with UNAVAILABLE: {other:?}"),
    }
    drop(tx);
    tokio::time::timeout(EVENT_TIMEOUT, stopping)
        .await
        .expect("the server stops within the event timeout")
        .expect("server task");
}

#[tokio::test]
async fn the_client_sends_batches_and_reads_their_answers_in_order() {
    let server = TestServer::start().await;
    let client = Client::connect(server.url()).await.expect("connect");
    client.create_stream("typed", 2).await.expect("create");

    let (sender, mut answers) = client
        .put_records_stream("typed", 4)
        .await
        .expect("call opens");
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(answer) = answers.next().await {
            got.push(answer);
        }
        got
    });
    for b in 0..10 {
        sender
            .send(vec![entry(&format!("k{b}"), format!("batch {b}"))])
            .await
            .expect("send");
    }
    sender
        .send(vec![entry("", "no key")])
        .await
        .expect("send a bad batch");
    drop(sender);
    let got = tokio::time::timeout(EVENT_TIMEOUT, reader)
        .await
        .expect("the call ends once everything is answered")
        .expect("reader task");

    assert_eq!(got.len(), 11);
    for answer in &got[..10] {
        let response = answer.as_ref().expect("a stored batch");
        assert_eq!(response.failed_record_count, 0);
        assert_eq!(response.records.len(), 1);
    }
    let rejected = got[10].as_ref().expect_err("the bad batch is rejected");
    assert_eq!(rejected.code(), Some(Code::InvalidArgument), "{rejected}");
    assert!(rejected.to_string().contains("partition_key"), "{rejected}");
}
