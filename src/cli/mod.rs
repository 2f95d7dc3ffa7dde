//! The client commands of the binary (`stream`, `put`, `get`, `tail`, `group`, `consume`,
//! `receive`, `delete`, `visibility`, `pattern`, `rule`):
//! their arguments and the dispatch to one function each; `records`, `groups` and `output`
//! hold the commands that need more than a line, `queues` the queue-group commands (and
//! `group create`), `router` the pattern and rule commands.

mod attributes;
mod groups;
mod output;
mod queues;
mod records;
mod router;

use clap::{Args, Subcommand, ValueEnum};

use shardlog::client::{Client, Position};
use shardlog::proto::v1::{CreateStreamRequest, DedupScope, StreamDescription};

use output::{print_description, print_done, print_names};

/// Server a client command talks to when neither `--server` nor `SHARDLOG_SERVER` says.
const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";
/// Shards of a stream `stream create` makes when `--shards` is not given.
const DEFAULT_SHARDS: u32 = 4;
/// Records `get` prints when `--limit` is not given.
const DEFAULT_GET_LIMIT: usize = 1000;

#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// Create, list, describe or delete streams.
    #[command(subcommand)]
    Stream(StreamCommand),
    /// Put one record (DATA), or one record per line of standard input.
    Put(PutArgs),
    /// Read records of one shard from a position.
    Get(GetArgs),
    /// Print records of every shard as they arrive, until Ctrl-C.
    Tail(TailArgs),
    /// Create, list, describe or delete consumer groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Consume a stream as a member of a consumer group, checkpointing as records are printed.
    Consume(ConsumeArgs),
    /// Receive messages of a queue group and print them with their receipt handles.
    Receive(queues::ReceiveArgs),
    /// Delete received messages of a queue group by their receipt handles.
    Delete(queues::DeleteMessagesArgs),
    /// Change how long a received message of a queue group stays invisible.
    Visibility(queues::VisibilityArgs),
    /// Move what a dead-letter stream holds back, or list the moves.
    #[command(subcommand)]
    Dlq(queues::DlqCommand),
    /// Try a filter pattern on a record.
    #[command(subcommand)]
    Pattern(router::PatternCommand),
    /// Create, list, describe or delete rules that route records between streams.
    #[command(subcommand)]
    Rule(router::RuleCommand),
}

/// The server a client command talks to.
#[derive(Debug, Args)]
pub(crate) struct ServerArg {
    /// URL of the shardlog server
    #[arg(long = "server", env = "SHARDLOG_SERVER", default_value = DEFAULT_SERVER, value_name = "URL")]
    pub(crate) url: String,
    /// Bearer token for a server with an auth file
    #[arg(
        long,
        env = "SHARDLOG_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,
    /// PEM CA certificate an https:// server's certificate must chain to [default: the
    /// system's]
    #[arg(long, env = "SHARDLOG_CA_CERT", value_name = "FILE")]
    pub(crate) ca_cert: Option<std::path::PathBuf>,
    /// PEM client certificate, for a server that asks for one (mutual TLS)
    #[arg(
        long,
        env = "SHARDLOG_CLIENT_CERT",
        value_name = "FILE",
        requires = "client_key"
    )]
    pub(crate) client_cert: Option<std::path::PathBuf>,
    /// PEM key of --client-cert
    #[arg(
        long,
        env = "SHARDLOG_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    pub(crate) client_key: Option<std::path::PathBuf>,
    /// How to print: table (lines and columns, ISO 8601 times) or json (one object per
    /// record, one value per answer)
    #[arg(long, env = "SHARDLOG_OUTPUT", value_enum, default_value_t = output::Output::Table)]
    pub(crate) output: output::Output,
}

impl ServerArg {
    pub(crate) async fn connect(&self) -> anyhow::Result<Client> {
        output::choose(self.output);
        let options = shardlog::client::ClientOptions {
            token: self.token.clone(),
            tls: shardlog::client::ClientTls::from_files(
                self.ca_cert.as_deref(),
                self.client_cert.as_deref(),
                self.client_key.as_deref(),
            )?,
            ..shardlog::client::ClientOptions::default()
        };
        Ok(Client::connect_with(self.url.clone(), options).await?)
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum StreamCommand {
    /// Create a stream.
    Create(CreateArgs),
    /// List every stream.
    List {
        #[command(flatten)]
        server: ServerArg,
    },
    /// Show a stream's settings and shards.
    Describe {
        /// Name of the stream
        name: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Delete a stream, its records and its groups.
    Delete {
        /// Name of the stream
        name: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Split an open shard in two at a hash key.
    Split {
        /// Name of the stream
        name: String,
        /// The open shard to split, e.g. shardId-000000000000
        shard: String,
        /// First hash key of the second child (decimal) [default: the middle of the shard]
        #[arg(long, value_name = "KEY")]
        at: Option<String>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Merge two open shards with adjacent ranges into one.
    Merge {
        /// Name of the stream
        name: String,
        /// One shard
        shard: String,
        /// The shard next to it
        adjacent: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Rescale a stream to a number of open shards of equal ranges.
    Scale {
        /// Name of the stream
        name: String,
        /// Open shards wanted (within the server's scaling factor of the current count)
        #[arg(long, value_name = "N")]
        shards: u32,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Name of the new stream: [a-zA-Z0-9_.-], 1 to 128 characters
    pub(crate) name: String,
    /// Number of shards [default: 4, as an on-demand Kinesis stream starts]
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SHARDS, hide_default_value = true)]
    pub(crate) shards: u32,
    /// How long records are kept, in hours [default: the server's, 24]
    #[arg(long, value_name = "H")]
    pub(crate) retention_hours: Option<u32>,
    /// Deduplicate records without a deduplication id by the SHA-256 of their data
    #[arg(long)]
    pub(crate) content_based_dedup: bool,
    /// How long deduplication ids are remembered, in seconds [default: the server's, 300]
    #[arg(long, value_name = "S")]
    pub(crate) dedup_window_secs: Option<u32>,
    /// Which key deduplication ids are unique within
    #[arg(long, value_enum, default_value_t = Scope::Stream)]
    pub(crate) dedup_scope: Scope,
    #[command(flatten)]
    pub(crate) server: ServerArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Scope {
    /// Unique across the stream
    Stream,
    /// Unique within the record's message group
    MessageGroup,
}

#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    /// Name of the stream
    pub(crate) stream: String,
    /// Partition key: chooses the shard (unless --group is given)
    #[arg(long, value_name = "K")]
    pub(crate) partition_key: String,
    /// FIFO message group: all records of a group go to one shard, in order
    #[arg(long, value_name = "G")]
    pub(crate) group: Option<String>,
    /// Deduplication id; with standard input, line N gets the id D-N
    #[arg(long, value_name = "D")]
    pub(crate) dedup_id: Option<String>,
    /// A message attribute, NAME=VALUE or NAME:TYPE=VALUE (TYPE: String, Number,
    /// String.Array, or Binary in base64); repeat for more
    #[arg(long = "attribute", short = 'a', value_name = "NAME[:TYPE]=VALUE")]
    pub(crate) attributes: Vec<attributes::AttributeArg>,
    /// The record's data; without it, every line of standard input is a record
    pub(crate) data: Option<String>,
    #[command(flatten)]
    pub(crate) server: ServerArg,
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// Name of the stream
    pub(crate) stream: String,
    /// The shard, e.g. shardId-000000000000
    #[arg(long, value_name = "ID")]
    pub(crate) shard: String,
    /// Where to start: trim-horizon, latest, at:SEQ, after:SEQ or time:MS (ms since the epoch)
    #[arg(long, default_value = "trim-horizon", value_name = "POSITION")]
    pub(crate) from: Position,
    /// Most records to print; reading stops earlier when it reaches the newest record
    #[arg(long, default_value_t = DEFAULT_GET_LIMIT, value_name = "N")]
    pub(crate) limit: usize,
    #[command(flatten)]
    pub(crate) filter: router::FilterArgs,
    #[command(flatten)]
    pub(crate) server: ServerArg,
}

#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// Name of the stream
    pub(crate) stream: String,
    /// Where to start in every shard: trim-horizon, latest, at:SEQ, after:SEQ or time:MS
    #[arg(long, default_value = "latest", value_name = "POSITION")]
    pub(crate) from: Position,
    #[command(flatten)]
    pub(crate) filter: router::FilterArgs,
    #[command(flatten)]
    pub(crate) server: ServerArg,
}

#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// Create a group: a lease group ahead of its first member, or a queue group.
    Create(queues::CreateGroupArgs),
    /// List a stream's consumer groups and their types.
    List {
        /// Name of the stream
        stream: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Show a lease group's members and, per shard, owner, epoch, checkpoint and lag; or a
    /// queue group's settings, messages visible and in flight, and counts.
    Describe {
        /// Name of the stream
        stream: String,
        /// Name of the group
        group: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Delete a group, its checkpoints and its leases.
    Delete {
        /// Name of the stream
        stream: String,
        /// Name of the group
        group: String,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ConsumeArgs {
    /// Name of the stream
    pub(crate) stream: String,
    /// Name of the consumer group; created on first join
    #[arg(long, value_name = "G")]
    pub(crate) group: String,
    /// This member's id; give a stable one to get the same shards back after a restart
    /// [default: a random id]
    #[arg(long, value_name = "ID")]
    pub(crate) member_id: Option<String>,
    #[command(flatten)]
    pub(crate) server: ServerArg,
}

/// The hash key that splits `shard` of `stream` in halves: its starting key plus half its span.
fn middle_of(stream: &StreamDescription, shard: &str) -> anyhow::Result<String> {
    let s = stream
        .shards
        .iter()
        .find(|s| s.shard_id == shard)
        .ok_or_else(|| anyhow::anyhow!("stream {} has no shard {shard}", stream.stream_name))?;
    let start: u128 = s.starting_hash_key.parse()?;
    let end: u128 = s.ending_hash_key.parse()?;
    Ok((start + (end - start) / 2 + 1).to_string())
}

/// Runs one client command.
pub(crate) async fn run(command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Stream(StreamCommand::Create(args)) => create_stream(args).await,
        ClientCommand::Stream(StreamCommand::List { server }) => {
            let names = server.connect().await?.list_streams().await?;
            print_names(names)
        }
        ClientCommand::Stream(StreamCommand::Describe { name, server }) => {
            let stream = server.connect().await?.describe_stream(&name).await?;
            print_description(&stream)
        }
        ClientCommand::Stream(StreamCommand::Delete { name, server }) => {
            server.connect().await?.delete_stream(&name).await?;
            print_done(format!("deleted stream {name}"))
        }
        ClientCommand::Stream(StreamCommand::Split {
            name,
            shard,
            at,
            server,
        }) => {
            let client = server.connect().await?;
            let key = match at {
                Some(key) => key,
                None => middle_of(&client.describe_stream(&name).await?, &shard)?,
            };
            print_description(&client.split_shard(&name, &shard, &key).await?)
        }
        ClientCommand::Stream(StreamCommand::Merge {
            name,
            shard,
            adjacent,
            server,
        }) => {
            let client = server.connect().await?;
            print_description(&client.merge_shards(&name, &shard, &adjacent).await?)
        }
        ClientCommand::Stream(StreamCommand::Scale {
            name,
            shards,
            server,
        }) => {
            let client = server.connect().await?;
            print_description(&client.update_shard_count(&name, shards).await?)
        }
        ClientCommand::Put(args) => records::put(args).await,
        ClientCommand::Get(args) => records::get(args).await,
        ClientCommand::Tail(args) => records::tail(args).await,
        ClientCommand::Group(GroupCommand::Create(args)) => queues::create_group(args).await,
        ClientCommand::Group(GroupCommand::List { stream, server }) => {
            groups::list(&server.connect().await?, &stream).await
        }
        ClientCommand::Group(GroupCommand::Describe {
            stream,
            group,
            server,
        }) => groups::describe(&server.connect().await?, &stream, &group).await,
        ClientCommand::Group(GroupCommand::Delete {
            stream,
            group,
            server,
        }) => {
            server
                .connect()
                .await?
                .delete_group(&stream, &group)
                .await?;
            print_done(format!("deleted group {group} of stream {stream}"))
        }
        ClientCommand::Consume(args) => groups::consume(args).await,
        ClientCommand::Receive(args) => queues::receive(args).await,
        ClientCommand::Delete(args) => queues::delete_messages(args).await,
        ClientCommand::Visibility(args) => queues::visibility(args).await,
        ClientCommand::Dlq(command) => queues::dlq(command).await,
        ClientCommand::Pattern(command) => router::pattern(command).await,
        ClientCommand::Rule(command) => router::rule(command).await,
    }
}

async fn create_stream(args: CreateArgs) -> anyhow::Result<()> {
    let client = args.server.connect().await?;
    let scope = match args.dedup_scope {
        Scope::Stream => DedupScope::Stream,
        Scope::MessageGroup => DedupScope::MessageGroup,
    };
    let stream = client
        .create_stream_with(CreateStreamRequest {
            stream_name: args.name,
            shard_count: args.shards,
            // 0 asks for the server's default.
            retention_period_hours: args.retention_hours.unwrap_or(0),
            content_based_deduplication: args.content_based_dedup,
            dedup_window_seconds: args.dedup_window_secs.unwrap_or(0),
            dedup_scope: scope as i32,
        })
        .await?;
    print_description(&stream)
}
