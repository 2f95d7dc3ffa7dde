//! `pattern test` and `rule put|list|describe|delete`: the router from the command line.

use std::io::{self, Write};

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};

use shardlog::proto::v1::{
    Filter, FilterScope, PutRuleRequest, Rule, RuleState, RuleStatus, RuleTarget,
    ShardIteratorType, TestPatternRequest,
};

use super::attributes::{self, AttributeArg};
use super::ServerArg;

/// What a filter applies to.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub(crate) enum Scope {
    /// The record's data, parsed as JSON
    #[default]
    Data,
    /// The record's message attributes (an SNS filter policy)
    Attributes,
}

/// A content filter: an EventBridge event pattern (or SNS filter policy) and its scope.
#[derive(Debug, Args, Clone)]
pub(crate) struct FilterArgs {
    /// Only records matching this pattern, e.g. '{"kind":["order"]}'
    #[arg(long = "filter", value_name = "PATTERN")]
    pub(crate) pattern: Option<String>,
    /// What the pattern applies to
    #[arg(long, value_enum, default_value_t = Scope::Data)]
    pub(crate) filter_scope: Scope,
}

impl FilterArgs {
    pub(crate) fn to_filter(&self) -> Option<Filter> {
        self.pattern
            .as_ref()
            .map(|pattern| filter(pattern, self.filter_scope))
    }
}

fn filter(pattern: &str, scope: Scope) -> Filter {
    Filter {
        pattern: pattern.to_owned(),
        scope: match scope {
            Scope::Data => FilterScope::Data,
            Scope::Attributes => FilterScope::Attributes,
        } as i32,
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum PatternCommand {
    /// Tell whether a record would match a pattern (no stream needed).
    Test {
        /// The pattern, e.g. '{"price":[{"numeric":[">",10]}]}'
        pattern: String,
        /// The record's data
        #[arg(default_value = "")]
        data: String,
        /// What the pattern applies to
        #[arg(long, value_enum, default_value_t = Scope::Data)]
        scope: Scope,
        /// A message attribute of the record, NAME=VALUE or NAME:TYPE=VALUE; repeat for more
        #[arg(long = "attribute", short = 'a', value_name = "NAME[:TYPE]=VALUE")]
        attributes: Vec<AttributeArg>,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RuleCommand {
    /// Create a rule, or replace the rule of that name (it keeps its position).
    Put(PutRuleArgs),
    /// List rules, all or those of one source stream.
    List {
        /// Only the rules reading this stream
        #[arg(long, value_name = "STREAM")]
        source: Option<String>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Show a rule: definition, status, counters, progress and lag per source shard.
    Describe {
        /// Name of the rule
        name: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Delete a rule; what it routed stays in its targets.
    Delete {
        /// Name of the rule
        name: String,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PutRuleArgs {
    /// Name of the rule: [a-zA-Z0-9_.-], 1 to 64 characters
    pub(crate) name: String,
    /// The stream the rule reads
    #[arg(long, value_name = "STREAM")]
    pub(crate) source: String,
    /// A stream the rule puts matching records into; repeat for more (at most 5)
    #[arg(long = "target", value_name = "STREAM", required = true)]
    pub(crate) targets: Vec<String>,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
    /// Where a new rule starts: latest (records put from now on) or trim-horizon
    #[arg(long, value_enum, default_value_t = Start::Latest)]
    pub(crate) from: Start,
    /// Keep the rule's position but route nothing
    #[arg(long)]
    pub(crate) disabled: bool,
    #[command(flatten)]
    pub(crate) server: ServerArg,
}

/// Where a new rule starts.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Start {
    /// Records put from now on
    Latest,
    /// Every record still stored
    TrimHorizon,
}

pub(crate) async fn pattern(command: PatternCommand) -> anyhow::Result<()> {
    let PatternCommand::Test {
        pattern,
        data,
        scope,
        attributes,
        server,
    } = command;
    let matches = server
        .connect()
        .await?
        .test_pattern(TestPatternRequest {
            filter: Some(filter(&pattern, scope)),
            data: data.into_bytes().into(),
            attributes: attributes::to_map(&attributes),
        })
        .await?;
    super::output::print_either(
        serde_json::json!({ "matches": matches }),
        if matches { "match" } else { "no match" }.to_owned(),
    )
}

pub(crate) async fn rule(command: RuleCommand) -> anyhow::Result<()> {
    match command {
        RuleCommand::Put(args) => {
            let rule = args
                .server
                .connect()
                .await?
                .put_rule(PutRuleRequest {
                    rule_name: args.name,
                    source_stream: args.source,
                    filter: args.filter.to_filter(),
                    targets: args
                        .targets
                        .into_iter()
                        .map(|stream_name| RuleTarget { stream_name })
                        .collect(),
                    state: if args.disabled {
                        RuleState::Disabled
                    } else {
                        RuleState::Enabled
                    } as i32,
                    start_position: match args.from {
                        Start::Latest => ShardIteratorType::Latest,
                        Start::TrimHorizon => ShardIteratorType::TrimHorizon,
                    } as i32,
                })
                .await?;
            print_rule(&rule)
        }
        RuleCommand::List { source, server } => {
            let rules = server
                .connect()
                .await?
                .list_rules(source.as_deref())
                .await?;
            let values = rules.iter().map(rule_json).collect();
            let lines = rules
                .iter()
                .map(|r| {
                    let targets: Vec<_> =
                        r.targets.iter().map(|t| t.stream_name.as_str()).collect();
                    format!(
                        "{}  {} -> {}  {}",
                        r.rule_name,
                        r.source_stream,
                        targets.join(","),
                        status(r)
                    )
                })
                .collect();
            super::output::print_rows(values, lines)
        }
        RuleCommand::Describe { name, server } => {
            print_rule(&server.connect().await?.describe_rule(&name).await?)
        }
        RuleCommand::Delete { name, server } => {
            server.connect().await?.delete_rule(&name).await?;
            super::output::print_done(format!("deleted rule {name}"))
        }
    }
}

fn status(r: &Rule) -> &'static str {
    match RuleStatus::try_from(r.status) {
        Ok(RuleStatus::Running) => "running",
        Ok(RuleStatus::Disabled) => "disabled",
        Ok(RuleStatus::Error) => "error",
        _ => "unknown",
    }
}

fn rule_json(r: &Rule) -> serde_json::Value {
    serde_json::json!({
        "rule_name": r.rule_name,
        "source_stream": r.source_stream,
        "targets": r.targets.iter().map(|t| t.stream_name.as_str()).collect::<Vec<_>>(),
        "filter": r.filter.as_ref().map(|f| serde_json::json!({
            "pattern": f.pattern,
            "scope": if f.scope == FilterScope::Attributes as i32 { "attributes" } else { "data" },
        })),
        "status": status(r),
        "last_error": (!r.last_error.is_empty()).then_some(&r.last_error),
        "matched_records": r.matched_records,
        "routed_records": r.routed_records,
        "shards": r.shards.iter().map(|s| serde_json::json!({
            "shard_id": s.shard_id,
            "next_sequence_number": s.next_sequence_number.to_string(),
            "lag_records": s.lag_records,
            "millis_behind_latest": s.millis_behind_latest,
        })).collect::<Vec<_>>(),
    })
}

fn print_rule(r: &Rule) -> anyhow::Result<()> {
    if super::output::json_form() {
        return super::output::print_json(&rule_json(r));
    }
    let mut out = io::stdout().lock();
    writeln!(out, "rule     {}", r.rule_name)?;
    writeln!(out, "source   {}", r.source_stream)?;
    let targets: Vec<_> = r.targets.iter().map(|t| t.stream_name.as_str()).collect();
    writeln!(out, "targets  {}", targets.join(", "))?;
    match &r.filter {
        Some(f) => {
            let scope = if f.scope == FilterScope::Attributes as i32 {
                "attributes"
            } else {
                "data"
            };
            writeln!(out, "filter   {} ({scope})", f.pattern)?;
        }
        None => writeln!(out, "filter   none: every record")?,
    }
    writeln!(out, "status   {}", status(r))?;
    if !r.last_error.is_empty() {
        writeln!(out, "error    {}", r.last_error)?;
    }
    writeln!(
        out,
        "counts   {} matched, {} routed (since the server started)",
        r.matched_records, r.routed_records
    )?;
    writeln!(
        out,
        "{:<22} {:>12} {:>12} {:>10}",
        "SHARD", "NEXT", "LAG", "BEHIND_MS"
    )?;
    for s in &r.shards {
        writeln!(
            out,
            "{:<22} {:>12} {:>12} {:>10}",
            s.shard_id, s.next_sequence_number, s.lag_records, s.millis_behind_latest
        )?;
    }
    if r.status == RuleStatus::Error as i32 {
        bail!("rule {} is stuck on an error", r.rule_name);
    }
    Ok(())
}
