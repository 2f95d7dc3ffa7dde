//! The producer's side of a PutRecordsStream call: batches go out without waiting for one
//! another, answers come back in the order the batches were sent.
//!
//! ```no_run
//! # async fn demo() -> Result<(), shardlog::client::ClientError> {
//! use shardlog::client::Client;
//! use shardlog::proto::v1::PutRecordsRequestEntry;
//!
//! let client = Client::connect("http://127.0.0.1:50051").await?;
//! let (sender, mut answers) = client.put_records_stream("orders", 8).await?;
//! let entry = PutRecordsRequestEntry {
//!     partition_key: "customer-7".into(),
//!     data: "hello".into(),
//!     ..Default::default()
//! };
//! sender.send(vec![entry.clone()]).await?;
//! sender.send(vec![entry]).await?;
//! drop(sender); // no more batches: the call ends once both are answered
//! while let Some(answer) = answers.next().await {
//!     let response = answer?;
//!     assert_eq!(response.failed_record_count, 0);
//! }
//! # Ok(())
//! # }
//! ```

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, Streaming};

use super::{failed, Client, ClientError};
use crate::proto::v1::put_records_stream_response::Outcome;
use crate::proto::v1::{
    PutRecordsRequest, PutRecordsRequestEntry, PutRecordsStreamResponse, PutRecordsStreamResult,
};

const RPC: &str = "PutRecordsStream";

/// Sends the batches of one PutRecordsStream call. Cheap to clone; the call's request side
/// ends when every clone is dropped.
#[derive(Debug, Clone)]
pub struct PutStreamSender {
    stream: String,
    tx: mpsc::Sender<PutRecordsRequest>,
}

impl PutStreamSender {
    /// Sends one batch. Waits only while the call's send buffer is full — the server reads no
    /// more of a call than its window of unanswered requests — never for the batch's answer.
    pub async fn send(&self, entries: Vec<PutRecordsRequestEntry>) -> Result<(), ClientError> {
        let request = PutRecordsRequest {
            stream_name: self.stream.clone(),
            records: entries,
        };
        self.tx
            .send(request)
            .await
            .map_err(|_closed| ClientError::CallEnded { rpc: RPC })
    }
}

/// The answers of one PutRecordsStream call: the n-th answer is for the n-th batch sent.
#[derive(Debug)]
pub struct PutStreamAnswers {
    inner: Streaming<PutRecordsStreamResponse>,
    ended: bool,
}

impl PutStreamAnswers {
    /// The next batch's answer: its entries' results, or the error that rejected the batch as
    /// a whole (nothing of it stored; the call goes on). `None` once the call is over. When the
    /// call itself fails (e.g. UNAVAILABLE as the server stops), that error is the last item:
    /// batches sent but not answered by then may or may not be stored.
    pub async fn next(&mut self) -> Option<Result<PutRecordsStreamResult, ClientError>> {
        if self.ended {
            return None;
        }
        let answer = match self.inner.message().await {
            Ok(Some(answer)) => answer,
            Ok(None) => {
                self.ended = true;
                return None;
            }
            Err(status) => {
                self.ended = true;
                return Some(Err(failed(RPC)(status)));
            }
        };
        Some(match answer.outcome {
            Some(Outcome::Result(response)) => Ok(response),
            Some(Outcome::Error(e)) => Err(failed(RPC)(Status::new(Code::from(e.code), e.message))),
            None => Err(failed(RPC)(Status::internal(format!(
                "the answer to request {} carries no outcome",
                answer.request_index
            )))),
        })
    }
}

impl Client {
    /// Opens a PutRecordsStream call to `stream`: send batches with the [`PutStreamSender`]
    /// without waiting for their answers, and read the answers, in order, from the
    /// [`PutStreamAnswers`] (from another task if the sender should never wait on them).
    /// `buffer` is how many batches the sender may queue ahead of the connection.
    pub async fn put_records_stream(
        &self,
        stream: &str,
        buffer: usize,
    ) -> Result<(PutStreamSender, PutStreamAnswers), ClientError> {
        let (tx, rx) = mpsc::channel(buffer.max(1));
        let response = self
            .streams()
            .put_records_stream(ReceiverStream::new(rx))
            .await
            .map_err(failed(RPC))?;
        Ok((
            PutStreamSender {
                stream: stream.to_owned(),
                tx,
            },
            PutStreamAnswers {
                inner: response.into_inner(),
                ended: false,
            },
        ))
    }
}
