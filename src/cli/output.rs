//! What the client commands print: records one a line, streams and groups as tables.

use std::io::{self, Write};

use shardlog::proto::v1::{DedupScope, Record, StreamDescription, StreamStatus};

/// One record, one line: `shardId-000000000000 42 key=<pk> [group=<g>] [dedup=<d>]
/// [@name=value …] <data>`.
pub(crate) fn write_record(
    out: &mut impl Write,
    shard_id: &str,
    record: &Record,
) -> io::Result<()> {
    write!(
        out,
        "{shard_id} {} key={}",
        record.sequence_number, record.partition_key
    )?;
    if !record.message_group_id.is_empty() {
        write!(out, " group={}", record.message_group_id)?;
    }
    if !record.deduplication_id.is_empty() {
        write!(out, " dedup={}", record.deduplication_id)?;
    }
    for attribute in super::attributes::format(&record.attributes) {
        write!(out, " @{attribute}")?;
    }
    writeln!(out, " {}", String::from_utf8_lossy(&record.data))
}

pub(crate) fn print_lines(lines: impl IntoIterator<Item = String>) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

pub(crate) fn print_description(stream: &StreamDescription) -> anyhow::Result<()> {
    let status = StreamStatus::try_from(stream.status).map_or("UNKNOWN", |s| match s {
        StreamStatus::Unspecified => "UNSPECIFIED",
        StreamStatus::Creating => "CREATING",
        StreamStatus::Active => "ACTIVE",
        StreamStatus::Deleting => "DELETING",
        StreamStatus::Updating => "UPDATING",
    });
    let scope = match DedupScope::try_from(stream.dedup_scope) {
        Ok(DedupScope::Stream) => "stream",
        Ok(DedupScope::MessageGroup) => "message-group",
        Err(_) => "unknown",
    };
    let mut out = io::stdout().lock();
    writeln!(out, "stream     {}", stream.stream_name)?;
    writeln!(out, "status     {status}")?;
    writeln!(out, "retention  {} h", stream.retention_period_hours)?;
    writeln!(
        out,
        "dedup      window {} s, scope {scope}, content-based {}",
        stream.dedup_window_seconds,
        if stream.content_based_deduplication {
            "on"
        } else {
            "off"
        }
    )?;
    writeln!(
        out,
        "created    {} ms since the epoch",
        stream.created_at_ms
    )?;
    writeln!(out)?;
    let mut rows = vec![[
        "SHARD",
        "STARTING_HASH_KEY",
        "ENDING_HASH_KEY",
        "FIRST_SEQ",
        "LAST_SEQ",
    ]
    .map(str::to_owned)
    .to_vec()];
    rows.extend(stream.shards.iter().map(|s| {
        vec![
            s.shard_id.clone(),
            s.starting_hash_key.clone(),
            s.ending_hash_key.clone(),
            s.starting_sequence_number.to_string(),
            s.ending_sequence_number
                .map_or_else(|| "open".to_owned(), |v| v.to_string()),
        ]
    }));
    write_table(&mut out, &rows)?;
    Ok(())
}

/// Left-aligned columns two spaces apart; the first row is the header.
pub(crate) fn write_table(out: &mut impl Write, rows: &[Vec<String>]) -> io::Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
