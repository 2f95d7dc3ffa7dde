//! `group list`, `group describe` and `consume`: consumer groups seen and joined from the
//! command line.

use std::io::{self, Write};

use shardlog::client::{
    random_member_id, Batch, Client, ConsumerConfig, GroupConsumer, Membership,
};
use shardlog::proto::v1::{FilterScope, QueueStatus};

use super::output::{write_record, write_table};
use super::queues::type_name;
use super::ConsumeArgs;

/// A stream's groups, one a line: name and type.
pub(crate) async fn list(client: &Client, stream: &str) -> anyhow::Result<()> {
    let groups = client.list_groups_typed(stream).await?;
    let mut rows = vec![vec!["GROUP".to_owned(), "TYPE".to_owned()]];
    rows.extend(
        groups
            .iter()
            .map(|g| vec![g.group_name.clone(), type_name(g.r#type).to_owned()]),
    );
    write_table(&mut io::stdout().lock(), &rows)?;
    Ok(())
}

/// A lease group's members and shards, or a queue group's settings and counts.
pub(crate) async fn describe(client: &Client, stream: &str, group: &str) -> anyhow::Result<()> {
    let described = client.describe_group(stream, group).await?;
    if let Some(queue) = &described.queue {
        write_table(
            &mut io::stdout().lock(),
            &queue_rows(type_name(described.r#type), queue),
        )?;
        return Ok(());
    }
    let optional = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut members = vec![vec![
        "MEMBER".to_owned(),
        "SESSION_TIMEOUT_MS".to_owned(),
        "SHARDS".to_owned(),
    ]];
    members.extend(described.members.iter().map(|m| {
        vec![
            m.member_id.clone(),
            m.session_timeout_ms.to_string(),
            m.shard_ids.join(","),
        ]
    }));
    let mut shards = vec![[
        "SHARD",
        "OWNER",
        "EPOCH",
        "CHECKPOINT",
        "LATEST",
        "LAG_RECORDS",
        "LAG_MS",
    ]
    .map(str::to_owned)
    .to_vec()];
    shards.extend(described.shards.iter().map(|s| {
        let owner = if s.owner_member_id.is_empty() {
            "-".to_owned()
        } else {
            s.owner_member_id.clone()
        };
        vec![
            s.shard_id.clone(),
            owner,
            s.lease_epoch.to_string(),
            optional(s.checkpoint),
            optional(s.latest_sequence_number),
            s.lag_records.to_string(),
            s.millis_behind_latest.to_string(),
        ]
    }));
    if super::output::json_form() {
        return super::output::print_json(&serde_json::json!({
            "members": super::output::table_json(&members),
            "shards": super::output::table_json(&shards),
        }));
    }
    let mut out = io::stdout().lock();
    write_table(&mut out, &members)?;
    writeln!(out)?;
    write_table(&mut out, &shards)?;
    Ok(())
}

/// A queue group's status, one field a row, named as in the API.
fn queue_rows(group_type: &str, q: &QueueStatus) -> Vec<Vec<String>> {
    let filter = q.filter.as_ref().map_or_else(
        || "none".to_owned(),
        |f| {
            let scope = match FilterScope::try_from(f.scope) {
                Ok(FilterScope::Attributes) => "attributes",
                Ok(FilterScope::Data | FilterScope::Unspecified) | Err(_) => "data",
            };
            format!("{} ({scope})", f.pattern)
        },
    );
    let dead_letter_stream = if q.dead_letter_stream.is_empty() {
        "none".to_owned()
    } else {
        q.dead_letter_stream.clone()
    };
    [
        ("type", group_type.to_owned()),
        ("messages_visible", q.messages_visible.to_string()),
        ("messages_in_flight", q.messages_in_flight.to_string()),
        ("oldest_message_age_ms", q.oldest_message_age_ms.to_string()),
        ("messages_received", q.messages_received.to_string()),
        ("messages_deleted", q.messages_deleted.to_string()),
        (
            "messages_dead_lettered",
            q.messages_dead_lettered.to_string(),
        ),
        ("messages_expired", q.messages_expired.to_string()),
        (
            "visibility_timeout_seconds",
            q.visibility_timeout_seconds.to_string(),
        ),
        ("max_receive_count", q.max_receive_count.to_string()),
        ("dead_letter_stream", dead_letter_stream),
        ("filter", filter),
    ]
    .into_iter()
    .map(|(field, value)| vec![field.to_owned(), value])
    .collect()
}

pub(crate) async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let client = args.server.connect().await?;
    let member_id = args.member_id.unwrap_or_else(random_member_id);
    tracing::info!(member = %member_id, "consuming");
    let config = ConsumerConfig::new(Membership::new(args.stream, args.group, member_id));
    let stop = crate::shutdown_signal()?;
    // Printing is the processing: a record is checkpointed once its line is written.
    let print = |batch: Batch| async move {
        let mut out = io::stdout().lock();
        for record in &batch.records {
            write_record(&mut out, &batch.shard_id, record)?;
        }
        out.flush()
    };
    GroupConsumer::new(client, config).run(print, stop).await?;
    Ok(())
}
