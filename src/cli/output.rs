//! What the client commands print: records one a line, streams and groups as tables, times in
//! ISO 8601; or, with `--output json`, the same as JSON for scripts (one object per record).

use std::io::{self, Write};
use std::sync::OnceLock;

use base64::Engine;
use serde_json::{json, Map, Value};
use shardlog::proto::v1::{DedupScope, Record, StreamDescription, StreamStatus};
use shardlog::storage::Timestamp;

/// How client commands print.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// Lines and aligned columns, for people.
    #[default]
    Table,
    /// JSON: one object per record, one value per answer.
    Json,
}

/// The form chosen for this process (one command per process), set with its connection.
static FORM: OnceLock<Output> = OnceLock::new();

pub(crate) fn choose(form: Output) {
    // Set once: a command connects once, and a second choice could only repeat the first.
    let _ = FORM.set(form);
}

pub(crate) fn json_form() -> bool {
    FORM.get() == Some(&Output::Json)
}

/// A time in ms since the epoch, as the tables show it.
pub(crate) fn iso(ms: i64) -> String {
    Timestamp::from_millis(u64::try_from(ms).unwrap_or(0)).to_rfc3339()
}

/// Prints one JSON value on a line.
pub(crate) fn print_json(value: &Value) -> anyhow::Result<()> {
    writeln!(io::stdout().lock(), "{value}")?;
    Ok(())
}

/// Prints what a command did: the line, or `{"done": line}`.
pub(crate) fn print_done(line: String) -> anyhow::Result<()> {
    if json_form() {
        return print_json(&json!({ "done": line }));
    }
    print_lines([line])
}

/// Prints a list of names: one a line, or a JSON array.
pub(crate) fn print_names(names: Vec<String>) -> anyhow::Result<()> {
    if json_form() {
        return print_json(&json!(names));
    }
    print_lines(names)
}

/// Prints `value` as JSON, or `line` as it is.
pub(crate) fn print_either(value: Value, line: String) -> anyhow::Result<()> {
    if json_form() {
        return print_json(&value);
    }
    print_lines([line])
}

/// Prints a list: one line per item, or one JSON array of their values.
pub(crate) fn print_rows(values: Vec<Value>, lines: Vec<String>) -> anyhow::Result<()> {
    if json_form() {
        return print_json(&Value::Array(values));
    }
    print_lines(lines)
}

pub(crate) fn record_json(shard_id: &str, record: &Record) -> Value {
    let mut o = Map::new();
    o.insert("shard_id".into(), json!(shard_id));
    o.insert(
        "sequence_number".into(),
        json!(record.sequence_number.to_string()),
    );
    o.insert("partition_key".into(), json!(record.partition_key));
    o.insert(
        "arrival".into(),
        json!(iso(record.approximate_arrival_timestamp_ms)),
    );
    for (name, value) in [
        ("explicit_hash_key", &record.explicit_hash_key),
        ("message_group_id", &record.message_group_id),
        ("deduplication_id", &record.deduplication_id),
    ] {
        if !value.is_empty() {
            o.insert(name.into(), json!(value));
        }
    }
    if !record.attributes.is_empty() {
        let attributes: Map<String, Value> = record
            .attributes
            .iter()
            .map(|(name, v)| {
                let value = if v.data_type == "Binary" {
                    base64::engine::general_purpose::STANDARD.encode(&v.binary_value)
                } else {
                    v.string_value.clone()
                };
                (name.clone(), json!({ "type": v.data_type, "value": value }))
            })
            .collect();
        o.insert("attributes".into(), Value::Object(attributes));
    }
    match std::str::from_utf8(&record.data) {
        Ok(text) => o.insert("data".into(), json!(text)),
        Err(_) => {
            o.insert("data_encoding".into(), json!("base64"));
            o.insert(
                "data".into(),
                json!(base64::engine::general_purpose::STANDARD.encode(&record.data)),
            )
        }
    };
    Value::Object(o)
}

/// One record, one line: `shardId-000000000000 42 key=<pk> [group=<g>] [dedup=<d>]
/// [@name=value …] <data>`.
pub(crate) fn write_record(
    out: &mut impl Write,
    shard_id: &str,
    record: &Record,
) -> io::Result<()> {
    if json_form() {
        return writeln!(out, "{}", record_json(shard_id, record));
    }
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

fn print_lines(lines: impl IntoIterator<Item = String>) -> anyhow::Result<()> {
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
    if json_form() {
        let shards: Vec<Value> = stream
            .shards
            .iter()
            .map(|s| {
                json!({
                    "shard_id": s.shard_id,
                    "parent_shard_id": s.parent_shard_id,
                    "adjacent_parent_shard_id": s.adjacent_parent_shard_id,
                    "starting_hash_key": s.starting_hash_key,
                    "ending_hash_key": s.ending_hash_key,
                    "starting_sequence_number": s.starting_sequence_number.to_string(),
                    "ending_sequence_number": s.ending_sequence_number.map(|v| v.to_string()),
                })
            })
            .collect();
        return print_json(&json!({
            "stream_name": stream.stream_name,
            "status": status,
            "retention_period_hours": stream.retention_period_hours,
            "dedup_window_seconds": stream.dedup_window_seconds,
            "dedup_scope": scope,
            "content_based_deduplication": stream.content_based_deduplication,
            "created": iso(stream.created_at_ms),
            "shards": shards,
        }));
    }
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
    writeln!(out, "created    {}", iso(stream.created_at_ms))?;
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

/// A table as one array of objects keyed by the header's columns, in lower case.
pub(crate) fn table_json(rows: &[Vec<String>]) -> Value {
    let Some((header, body)) = rows.split_first() else {
        return json!([]);
    };
    let keys: Vec<String> = header.iter().map(|h| h.to_lowercase()).collect();
    body.iter()
        .map(|row| {
            Value::Object(
                keys.iter()
                    .cloned()
                    .zip(row.iter().map(|cell| json!(cell)))
                    .collect(),
            )
        })
        .collect()
}

/// Left-aligned columns two spaces apart; the first row is the header.
pub(crate) fn write_table(out: &mut impl Write, rows: &[Vec<String>]) -> io::Result<()> {
    if json_form() {
        return writeln!(out, "{}", table_json(rows));
    }
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
