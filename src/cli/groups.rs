//! `group describe` and `consume`: a consumer group seen and joined from the command line.

use std::io::{self, Write};

use shardlog::client::{
    random_member_id, Batch, Client, ConsumerConfig, GroupConsumer, Membership,
};

use super::output::{write_record, write_table};
use super::ConsumeArgs;

pub(crate) async fn describe(client: &Client, stream: &str, group: &str) -> anyhow::Result<()> {
    let described = client.describe_group(stream, group).await?;
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
    let mut out = io::stdout().lock();
    write_table(&mut out, &members)?;
    writeln!(out)?;
    write_table(&mut out, &shards)?;
    Ok(())
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
