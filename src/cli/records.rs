//! `put`, `get` and `tail`: records in and out of a stream from the command line.

use std::io::{self, BufRead, Write};

use anyhow::{bail, Context};

use shardlog::broker::{DEFAULT_MAX_PUT_ENTRIES, DEFAULT_MAX_PUT_REQUEST_BYTES};
use shardlog::client::{Client, Position};
use shardlog::proto::v1::{PutRecordRequest, PutRecordsRequestEntry};

use super::attributes;
use super::output::{print_either, write_record};
use super::{GetArgs, PutArgs, TailArgs};

pub(crate) async fn put(args: PutArgs) -> anyhow::Result<()> {
    let client = args.server.connect().await?;
    let group = args.group.unwrap_or_default();
    if let Some(data) = args.data {
        let put = client
            .put_record_with(PutRecordRequest {
                stream_name: args.stream,
                partition_key: args.partition_key,
                data: data.into(),
                message_group_id: group,
                deduplication_id: args.dedup_id.unwrap_or_default(),
                attributes: attributes::to_map(&args.attributes),
                ..PutRecordRequest::default()
            })
            .await?;
        let duplicate = if put.duplicate { " duplicate" } else { "" };
        return print_either(
            serde_json::json!({
                "shard_id": put.shard_id,
                "sequence_number": put.sequence_number.to_string(),
                "duplicate": put.duplicate,
            }),
            format!("{} {}{duplicate}", put.shard_id, put.sequence_number),
        );
    }

    // One record per line, sent in batches that fit the server's default request limits.
    let mut failed = 0usize;
    let mut batch: Vec<PutRecordsRequestEntry> = Vec::new();
    let mut batch_bytes = 0usize;
    let lines = io::stdin().lock().lines();
    for (index, line) in lines.enumerate() {
        let line = line.context("cannot read standard input")?;
        let entry = PutRecordsRequestEntry {
            partition_key: args.partition_key.clone(),
            data: line.into_bytes().into(),
            message_group_id: group.clone(),
            deduplication_id: args
                .dedup_id
                .as_ref()
                .map_or_else(String::new, |id| format!("{id}-{}", index + 1)),
            attributes: attributes::to_map(&args.attributes),
            ..PutRecordsRequestEntry::default()
        };
        let size = entry.data.len() + entry.partition_key.len();
        if !batch.is_empty()
            && (batch.len() == DEFAULT_MAX_PUT_ENTRIES
                || batch_bytes + size > DEFAULT_MAX_PUT_REQUEST_BYTES)
        {
            failed += put_batch(&client, &args.stream, std::mem::take(&mut batch)).await?;
            batch_bytes = 0;
        }
        batch_bytes += size;
        batch.push(entry);
    }
    if !batch.is_empty() {
        failed += put_batch(&client, &args.stream, batch).await?;
    }
    if failed > 0 {
        bail!("{failed} records were not stored");
    }
    Ok(())
}

/// Sends one PutRecords and prints each entry's outcome; returns how many failed.
async fn put_batch(
    client: &Client,
    stream: &str,
    entries: Vec<PutRecordsRequestEntry>,
) -> anyhow::Result<usize> {
    let response = client.put_records(stream, entries).await?;
    let mut out = io::stdout().lock();
    for result in &response.records {
        if super::output::json_form() {
            let ok = result.error_code.is_empty();
            let answer = serde_json::json!({
                "shard_id": (ok).then_some(&result.shard_id),
                "sequence_number": (ok).then(|| result.sequence_number.to_string()),
                "duplicate": result.duplicate,
                "error_code": (!ok).then_some(&result.error_code),
                "error_message": (!ok).then_some(&result.error_message),
            });
            writeln!(out, "{answer}")?;
        } else if result.error_code.is_empty() {
            let duplicate = if result.duplicate { " duplicate" } else { "" };
            writeln!(
                out,
                "{} {}{duplicate}",
                result.shard_id, result.sequence_number
            )?;
        } else {
            writeln!(
                out,
                "failed {}: {}",
                result.error_code, result.error_message
            )?;
        }
    }
    Ok(response.failed_record_count as usize)
}

pub(crate) async fn get(args: GetArgs) -> anyhow::Result<()> {
    let client = args.server.connect().await?;
    let mut iterator = client
        .get_shard_iterator_filtered(
            &args.stream,
            &args.shard,
            args.from,
            args.filter.to_filter(),
        )
        .await?;
    let mut printed = 0usize;
    while printed < args.limit && !iterator.is_empty() {
        let want = u32::try_from(args.limit - printed).unwrap_or(u32::MAX);
        let read = client.get_records(&iterator, want).await?;
        let mut out = io::stdout().lock();
        for record in &read.records {
            write_record(&mut out, &args.shard, record)?;
        }
        printed += read.records.len();
        // An empty answer at the newest record means we are caught up.
        if read.records.is_empty() && read.millis_behind_latest == 0 {
            break;
        }
        iterator = read.next_shard_iterator;
    }
    Ok(())
}

pub(crate) async fn tail(args: TailArgs) -> anyhow::Result<()> {
    let client = args.server.connect().await?;
    let shards = client.list_shards(&args.stream).await?;
    let mut subscriptions = tokio::task::JoinSet::new();
    for shard in shards {
        let client = client.clone();
        let stream = args.stream.clone();
        let from = args.from;
        let filter = args.filter.to_filter();
        subscriptions.spawn(follow_shard(client, stream, shard.shard_id, from, filter));
    }
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            ended = subscriptions.join_next() => match ended {
                None => return Ok(()),
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(e)) => return Err(e.into()),
            },
        }
    }
}

/// Prints one shard's records as they arrive; resubscribes after the last record printed when
/// the server ends the subscription.
async fn follow_shard(
    client: Client,
    stream: String,
    shard_id: String,
    mut from: Position,
    filter: Option<shardlog::proto::v1::Filter>,
) -> anyhow::Result<()> {
    loop {
        let mut events = client
            .subscribe_to_shard_filtered(&stream, &shard_id, from, filter.clone())
            .await?;
        while let Some(event) = events.message().await? {
            let mut out = io::stdout().lock();
            for record in &event.records {
                write_record(&mut out, &shard_id, record)?;
            }
            // The continuation also covers records a filter left out.
            if let Some(covered) = event.continuation_sequence_number {
                from = Position::AfterSequence(covered);
            }
        }
    }
}
