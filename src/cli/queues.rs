//! `group create`, `receive`, `delete` and `visibility`: queue groups from the command line.

use std::io::{self, Write};
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};

use shardlog::broker::queues::DEFAULT_MAX_DELETE_HANDLES;
use shardlog::client::Client;
use shardlog::proto::v1::{
    CreateGroupRequest, DeleteMessageResult, GroupType, MoveTaskStatus, QueueStartPosition,
};

use super::output::{write_record, write_table};
use super::router::{FilterArgs, Start};
use super::{groups, ServerArg};

/// Messages `receive` asks for when `--max` is not given (as SQS).
const DEFAULT_RECEIVE_MAX: u32 = 1;
/// How long `receive` waits for a message when none is available and `--wait-ms` is not given:
/// not at all.
const DEFAULT_RECEIVE_WAIT_MS: u32 = 0;

/// The kind of group `group create` makes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Kind {
    /// Members lease whole shards and checkpoint them (`consume`)
    Lease,
    /// Single messages with visibility timeouts, in order per message group
    QueueFifo,
    /// Single messages with visibility timeouts, in any order
    QueueStandard,
}

impl Kind {
    fn to_pb(self) -> GroupType {
        match self {
            Kind::Lease => GroupType::ShardLeases,
            Kind::QueueFifo => GroupType::QueueFifo,
            Kind::QueueStandard => GroupType::QueueStandard,
        }
    }
}

/// The name a group type has on the command line (`--type`, and in `group list`).
pub(crate) fn type_name(group_type: i32) -> &'static str {
    match GroupType::try_from(group_type) {
        Ok(GroupType::ShardLeases) => "lease",
        Ok(GroupType::QueueFifo) => "queue-fifo",
        Ok(GroupType::QueueStandard) => "queue-standard",
        Err(_) => "unknown",
    }
}

#[derive(Debug, Args)]
pub(crate) struct CreateGroupArgs {
    /// Name of the stream
    pub(crate) stream: String,
    /// Name of the new group: [a-zA-Z0-9_.-], 1 to 128 characters
    pub(crate) group: String,
    /// The kind of group
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub(crate) kind: Kind,
    /// Queues: how long a received message stays invisible, in seconds (0 to 43200)
    /// [default: the server's, 30]
    #[arg(long, value_name = "SECS")]
    pub(crate) visibility_timeout: Option<u32>,
    /// Queues: receives after which a message goes to the dead-letter stream instead (1 to
    /// 1000) [default with a dead-letter stream: 10]
    #[arg(long, value_name = "N", requires = "dead_letter_stream")]
    pub(crate) max_receive_count: Option<u32>,
    /// Queues: an existing stream for messages received --max-receive-count times
    #[arg(long, value_name = "STREAM")]
    pub(crate) dead_letter_stream: Option<String>,
    /// Queues: where the group starts in each shard [default: trim-horizon]
    #[arg(long, value_enum)]
    pub(crate) start: Option<Start>,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
    #[command(flatten)]
    pub(crate) server: ServerArg,
}

#[derive(Debug, Args)]
pub(crate) struct ReceiveArgs {
    /// Name of the stream
    pub(crate) stream: String,
    /// Name of the queue group
    pub(crate) group: String,
    /// Most messages to receive, 1 to the server's cap (1000 by default)
    #[arg(long, default_value_t = DEFAULT_RECEIVE_MAX, value_name = "N")]
    pub(crate) max: u32,
    /// How long to wait for a message when none is available, in ms (at most 20000)
    #[arg(long, default_value_t = DEFAULT_RECEIVE_WAIT_MS, value_name = "MS")]
    pub(crate) wait_ms: u32,
    /// How long the messages stay invisible, in seconds [default: the group's]
    #[arg(long, value_name = "SECS")]
    pub(crate) visibility_timeout: Option<u32>,
    /// Delete the messages once printed
    #[arg(long)]
    pub(crate) delete: bool,
    #[command(flatten)]
    pub(crate) server: ServerArg,
}

#[derive(Debug, Args)]
pub(crate) struct DeleteMessagesArgs {
    /// Name of the stream
    pub(crate) stream: String,
    /// Name of the queue group
    pub(crate) group: String,
    /// Receipt handles of the messages, as `receive` prints them
    #[arg(required = true, value_name = "HANDLE")]
    pub(crate) handles: Vec<String>,
    #[command(flatten)]
    pub(crate) server: ServerArg,
}

#[derive(Debug, Args)]
pub(crate) struct VisibilityArgs {
    /// Name of the stream
    pub(crate) stream: String,
    /// Name of the queue group
    pub(crate) group: String,
    /// Receipt handle of the message's latest receive
    pub(crate) handle: String,
    /// Seconds from now until the message is visible again; 0 makes it visible at once
    pub(crate) secs: u32,
    #[command(flatten)]
    pub(crate) server: ServerArg,
}

/// `dlq move` and `dlq tasks`.
#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// Start a durable task that puts each message of a dead-letter stream back into the
    /// stream it came from (or into --to), once; prints the task's id.
    Move {
        /// The dead-letter stream
        source: String,
        /// Put every message into this stream instead of back where it came from
        #[arg(long, value_name = "STREAM")]
        to: Option<String>,
        /// Most messages moved per second; 0 moves as fast as the destinations take them
        #[arg(long, default_value_t = 0, value_name = "N")]
        rate: u32,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List the move tasks of a dead-letter stream, newest first.
    Tasks {
        /// The dead-letter stream
        source: String,
        #[command(flatten)]
        server: ServerArg,
    },
}

/// Runs a `dlq` command.
pub(crate) async fn dlq(command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::Move {
            source,
            to,
            rate,
            server,
        } => {
            let task = server
                .connect()
                .await?
                .move_messages(&source, to.as_deref(), rate)
                .await?;
            super::output::print_either(serde_json::json!({ "task": task }), task.to_string())?;
        }
        DlqCommand::Tasks { source, server } => {
            let tasks = server.connect().await?.list_move_tasks(&source).await?;
            let mut rows = vec![[
                "TASK",
                "STATUS",
                "MOVED",
                "TO_MOVE",
                "DESTINATION",
                "REASON",
            ]
            .map(str::to_owned)
            .to_vec()];
            for t in tasks {
                let status = MoveTaskStatus::try_from(t.status).map_or("unknown", |s| match s {
                    MoveTaskStatus::Running => "running",
                    MoveTaskStatus::Completed => "completed",
                    MoveTaskStatus::Cancelled => "cancelled",
                    MoveTaskStatus::Failed => "failed",
                });
                let destination = if t.destination_stream.is_empty() {
                    "(sources)".to_owned()
                } else {
                    t.destination_stream
                };
                rows.push(vec![
                    t.task_id,
                    status.to_owned(),
                    t.messages_moved.to_string(),
                    t.messages_to_move.to_string(),
                    destination,
                    t.failure_reason,
                ]);
            }
            write_table(&mut io::stdout().lock(), &rows)?;
        }
    }
    Ok(())
}

/// Creates a group and shows it as `group describe` does.
pub(crate) async fn create_group(args: CreateGroupArgs) -> anyhow::Result<()> {
    let queue_only = [
        ("--visibility-timeout", args.visibility_timeout.is_some()),
        ("--max-receive-count", args.max_receive_count.is_some()),
        ("--dead-letter-stream", args.dead_letter_stream.is_some()),
        ("--start", args.start.is_some()),
        ("--filter", args.filter.pattern.is_some()),
    ];
    if let Kind::Lease = args.kind {
        let given: Vec<&str> = queue_only
            .iter()
            .filter(|(_, given)| *given)
            .map(|(flag, _)| *flag)
            .collect();
        if !given.is_empty() {
            bail!(
                "{} belong to queue groups; a lease group takes none",
                given.join(", ")
            );
        }
    }
    let client = args.server.connect().await?;
    client
        .create_group(CreateGroupRequest {
            stream_name: args.stream.clone(),
            group_name: args.group.clone(),
            r#type: args.kind.to_pb() as i32,
            visibility_timeout_seconds: args.visibility_timeout,
            // 0 asks for the server's default.
            max_receive_count: args.max_receive_count.unwrap_or(0),
            dead_letter_stream: args.dead_letter_stream.unwrap_or_default(),
            start_position: match args.start.unwrap_or(Start::TrimHorizon) {
                Start::TrimHorizon => QueueStartPosition::TrimHorizon,
                Start::Latest => QueueStartPosition::Latest,
            } as i32,
            filter: args.filter.to_filter(),
        })
        .await?;
    groups::describe(&client, &args.stream, &args.group).await
}

/// Prints each message received: its record on one line, then its receipt; with `--delete`,
/// deletes them.
pub(crate) async fn receive(args: ReceiveArgs) -> anyhow::Result<()> {
    let client = args.server.connect().await?;
    let messages = client
        .receive_messages(
            &args.stream,
            &args.group,
            args.max,
            args.visibility_timeout
                .map(|s| Duration::from_secs(u64::from(s))),
            Duration::from_millis(u64::from(args.wait_ms)),
        )
        .await?;
    {
        let mut out = io::stdout().lock();
        for message in &messages {
            if super::output::json_form() {
                let mut m = message.record.as_ref().map_or_else(
                    || serde_json::json!({ "shard_id": message.shard_id }),
                    |r| super::output::record_json(&message.shard_id, r),
                );
                m["receive_count"] = message.receive_count.into();
                m["receipt_handle"] = message.receipt_handle.clone().into();
                writeln!(out, "{m}")?;
                continue;
            }
            if let Some(record) = &message.record {
                write_record(&mut out, &message.shard_id, record)?;
            } else {
                writeln!(out, "{} (the server sent no record)", message.shard_id)?;
            }
            writeln!(
                out,
                "  receive_count={} receipt_handle={}",
                message.receive_count, message.receipt_handle
            )?;
        }
        out.flush()?;
    }
    if !args.delete || messages.is_empty() {
        return Ok(());
    }
    let handles = messages.into_iter().map(|m| m.receipt_handle).collect();
    let results = delete(&client, &args.stream, &args.group, handles).await?;
    let failed: Vec<&DeleteMessageResult> = results
        .iter()
        .filter(|r| !r.error_code.is_empty())
        .collect();
    for r in &failed {
        eprintln!(
            "not deleted: {} {}: {}",
            r.receipt_handle, r.error_code, r.error_message
        );
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} messages were not deleted",
            failed.len(),
            results.len()
        );
    }
    Ok(())
}

/// Deletes messages by their handles; one line per handle, a failure if any was refused.
pub(crate) async fn delete_messages(args: DeleteMessagesArgs) -> anyhow::Result<()> {
    let client = args.server.connect().await?;
    let results = delete(&client, &args.stream, &args.group, args.handles).await?;
    let mut out = io::stdout().lock();
    let mut failed = 0usize;
    for r in &results {
        if super::output::json_form() {
            let ok = r.error_code.is_empty();
            if !ok {
                failed += 1;
            }
            let answer = serde_json::json!({
                "receipt_handle": r.receipt_handle,
                "deleted": ok,
                "error_code": (!ok).then_some(&r.error_code),
                "error_message": (!ok).then_some(&r.error_message),
            });
            writeln!(out, "{answer}")?;
        } else if r.error_code.is_empty() {
            writeln!(out, "{}  ok", r.receipt_handle)?;
        } else {
            failed += 1;
            writeln!(
                out,
                "{}  {}: {}",
                r.receipt_handle, r.error_code, r.error_message
            )?;
        }
    }
    out.flush()?;
    if failed > 0 {
        bail!("{failed} of {} messages were not deleted", results.len());
    }
    Ok(())
}

/// Deletes by handles in calls of at most the server's default number of handles each.
async fn delete(
    client: &Client,
    stream: &str,
    group: &str,
    handles: Vec<String>,
) -> anyhow::Result<Vec<DeleteMessageResult>> {
    let mut results = Vec::with_capacity(handles.len());
    for chunk in handles.chunks(DEFAULT_MAX_DELETE_HANDLES) {
        results.extend(
            client
                .delete_messages(stream, group, chunk.to_vec())
                .await?,
        );
    }
    Ok(results)
}

/// Changes how long a received message stays invisible.
pub(crate) async fn visibility(args: VisibilityArgs) -> anyhow::Result<()> {
    args.server
        .connect()
        .await?
        .change_message_visibility(
            &args.stream,
            &args.group,
            &args.handle,
            Duration::from_secs(u64::from(args.secs)),
        )
        .await?;
    let when = if args.secs == 0 {
        "now".to_owned()
    } else {
        format!("in {} s", args.secs)
    };
    super::output::print_done(format!("the message is visible again {when}"))
}
