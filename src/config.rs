//! The server's settings: one [`Config`], resolved from command-line flags, `SHARDLOG_*`
//! environment variables, an optional TOML file and the built-in defaults, in that order.
//!
//! ```text
//!  --segment-max-bytes 1048576        flag                 (wins)
//!  SHARDLOG_SEGMENT_MAX_BYTES=1048576 environment variable
//!  segment_max_bytes = 1048576        TOML file (--config)
//!  DEFAULT_SEGMENT_MAX_BYTES          built-in default     (loses)
//! ```
//!
//! [`Settings`] is one layer: every setting optional, under the same name as a flag (with `-`),
//! an environment variable (`SHARDLOG_` + upper case) and a TOML key (with `_`). clap fills one
//! layer from flags and environment, serde another from the file; [`Config::from_layers`]
//! stacks them over the defaults. Times are given in the unit their name ends with and held as
//! [`Duration`]s.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::broker::quotas::ShardQuotas;
use crate::broker::BrokerConfig;
use crate::consumer::{MAX_SESSION_TIMEOUT, MIN_SESSION_TIMEOUT};
use crate::fifo::MAX_DEDUP_WINDOW;
use crate::grpc::MAX_MESSAGE_BYTES;
use crate::kinesis::KinesisConfig;
use crate::storage::commit::{FsyncPolicy, DEFAULT_SYNC_INTERVAL};
use crate::storage::StorageError;

/// Default directory of all durable state.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// Default address of the gRPC server: loopback only, so a first run exposes nothing.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 50051));
/// Default log filter.
pub const DEFAULT_LOG: &str = "info";
/// Prefix of every environment variable that sets a setting.
pub const ENV_PREFIX: &str = "SHARDLOG_";

/// A set of per-shard limits by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardLimitsPreset {
    /// Kinesis's limits.
    Kinesis,
    /// No limit.
    Off,
}

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config` cannot be read.
    #[error("cannot read config file {}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML, or holds an unknown key or a mistyped value.
    #[error("config file {} is not valid", path.display())]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// Where and why parsing stopped.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A setting is out of range; `setting` is its TOML name.
    #[error("setting {setting}: {reason}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// The log filter does not parse.
    #[error("setting log: {filter:?} is not a valid log filter")]
    LogFilter {
        /// The filter given.
        filter: String,
        /// Why it does not parse.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// The storage layer refused its part of the settings (the error names the setting).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One layer of settings, every one optional: the flags of `shardlog serve` (each with its
/// `SHARDLOG_*` environment variable), and the keys of the TOML file.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// TOML file of settings (keys as the flags, with `_`); flags and environment override it.
    #[arg(long = "config", env = "SHARDLOG_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
    /// Directory holding all durable state [default: ./data]
    #[arg(long, env = "SHARDLOG_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address the gRPC server listens on [default: 127.0.0.1:50051]
    #[arg(long, env = "SHARDLOG_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// When appends are synced: always (before the ack), interval (every fsync-interval-ms),
    /// never (left to the OS) [default: always]
    #[arg(long, env = "SHARDLOG_FSYNC", value_name = "always|interval|never")]
    #[serde(default, deserialize_with = "fsync_policy")]
    pub fsync: Option<FsyncPolicy>,
    /// Sync period of the interval policy, in milliseconds [default: 100]
    #[arg(long, env = "SHARDLOG_FSYNC_INTERVAL_MS", value_name = "MS")]
    pub fsync_interval_ms: Option<u64>,
    /// Size at which a shard's segment file is sealed, in bytes (4096 to 2 GiB) [default: 268435456]
    #[arg(long, env = "SHARDLOG_SEGMENT_MAX_BYTES", value_name = "BYTES")]
    pub segment_max_bytes: Option<u64>,
    /// Age at which a non-empty segment is sealed so retention can delete it, in seconds [default: 3600]
    #[arg(long, env = "SHARDLOG_SEGMENT_MAX_AGE_SECS", value_name = "SECS")]
    pub segment_max_age_secs: Option<u64>,
    /// Most bytes of log each shard keeps: past it, the oldest sealed segments are deleted, on
    /// top of each stream's retention period [default: none]
    #[arg(long, env = "SHARDLOG_SHARD_RETENTION_BYTES", value_name = "BYTES")]
    pub shard_retention_bytes: Option<u64>,
    /// Period of the pass that deletes segments past retention, in seconds [default: 60]
    #[arg(
        long,
        env = "SHARDLOG_RETENTION_CHECK_INTERVAL_SECS",
        value_name = "SECS"
    )]
    pub retention_check_interval_secs: Option<u64>,
    /// Bytes of log between two entries of the sparse index [default: 4096]
    #[arg(long, env = "SHARDLOG_INDEX_INTERVAL_BYTES", value_name = "BYTES")]
    pub index_interval_bytes: Option<u64>,
    /// Most shards one stream may have [default: 1024]
    #[arg(long, env = "SHARDLOG_MAX_SHARD_COUNT", value_name = "N")]
    pub max_shard_count: Option<u32>,
    /// Largest record data, in bytes [default: 1048576]
    #[arg(long, env = "SHARDLOG_MAX_RECORD_BYTES", value_name = "BYTES")]
    pub max_record_bytes: Option<usize>,
    /// Largest PutRecords request (data plus partition keys), in bytes [default: 5242880]
    #[arg(long, env = "SHARDLOG_MAX_PUT_REQUEST_BYTES", value_name = "BYTES")]
    pub max_put_request_bytes: Option<usize>,
    /// Most entries in one PutRecords request [default: 500]
    #[arg(long, env = "SHARDLOG_MAX_PUT_ENTRIES", value_name = "N")]
    pub max_put_entries: Option<usize>,
    /// Most records one GetRecords returns, also what a limit of 0 means [default: 10000]
    #[arg(long, env = "SHARDLOG_GET_RECORDS_LIMIT", value_name = "N")]
    pub get_records_limit: Option<u32>,
    /// Most bytes one GetRecords answer or subscription event carries [default: 10485760]
    #[arg(long, env = "SHARDLOG_MAX_READ_BYTES", value_name = "BYTES")]
    pub max_read_bytes: Option<usize>,
    /// Lifetime of a shard iterator, in seconds [default: 300]
    #[arg(long, env = "SHARDLOG_ITERATOR_TTL_SECS", value_name = "SECS")]
    pub iterator_ttl_secs: Option<u64>,
    /// Events a subscription buffers ahead of a slow reader [default: 4]
    #[arg(long, env = "SHARDLOG_SUBSCRIBE_BUFFER", value_name = "N")]
    pub subscribe_buffer: Option<usize>,
    /// Bytes of records a subscription holds for its reader, read and not yet sent; an event
    /// never carries more [default: 1048576]
    #[arg(long, env = "SHARDLOG_SUBSCRIBE_BUFFER_BYTES", value_name = "BYTES")]
    pub subscribe_buffer_bytes: Option<usize>,
    /// Most unanswered requests of one PutRecordsStream call [default: 8]
    #[arg(long, env = "SHARDLOG_PUT_STREAM_WINDOW", value_name = "N")]
    pub put_stream_window: Option<usize>,
    /// Most bytes of records one subscription event carries [default: 1048576]
    #[arg(long, env = "SHARDLOG_SUBSCRIBE_EVENT_BYTES", value_name = "BYTES")]
    pub subscribe_event_bytes: Option<usize>,
    /// Longest deduplication window a stream may ask for, in seconds [default: 3600]
    #[arg(long, env = "SHARDLOG_MAX_DEDUP_WINDOW_SECS", value_name = "SECS")]
    pub max_dedup_window_secs: Option<u64>,
    /// Most deduplication ids one stream's window holds [default: 1000000]
    #[arg(long, env = "SHARDLOG_MAX_DEDUP_IDS", value_name = "N")]
    pub max_dedup_ids: Option<usize>,
    /// Session timeout of a group member that asks for none, in milliseconds [default: 10000]
    #[arg(long, env = "SHARDLOG_DEFAULT_SESSION_TIMEOUT_MS", value_name = "MS")]
    pub default_session_timeout_ms: Option<u64>,
    /// Most message attributes one record may carry [default: 10]
    #[arg(long, env = "SHARDLOG_MAX_ATTRIBUTES", value_name = "N")]
    pub max_attributes: Option<usize>,
    /// Longest message attribute name, in characters [default: 256]
    #[arg(long, env = "SHARDLOG_MAX_ATTRIBUTE_NAME_CHARS", value_name = "N")]
    pub max_attribute_name_chars: Option<usize>,
    /// Longest filter pattern, in bytes [default: 4096]
    #[arg(long, env = "SHARDLOG_MAX_PATTERN_BYTES", value_name = "BYTES")]
    pub max_pattern_bytes: Option<usize>,
    /// Most value combinations of one pattern (SNS's measure of a filter policy) [default: 150]
    #[arg(long, env = "SHARDLOG_MAX_PATTERN_COMBINATIONS", value_name = "N")]
    pub max_pattern_combinations: Option<usize>,
    /// Most rules on the server [default: 300]
    #[arg(long, env = "SHARDLOG_MAX_RULES", value_name = "N")]
    pub max_rules: Option<usize>,
    /// Most targets of one rule [default: 5]
    #[arg(long, env = "SHARDLOG_MAX_RULE_TARGETS", value_name = "N")]
    pub max_rule_targets: Option<usize>,
    /// How often a running rule records its progress, in milliseconds [default: 1000]
    #[arg(long, env = "SHARDLOG_RULE_CHECKPOINT_INTERVAL_MS", value_name = "MS")]
    pub rule_checkpoint_interval_ms: Option<u64>,
    /// Most messages one ReceiveMessages returns [default: 1000]
    #[arg(long, env = "SHARDLOG_MAX_RECEIVE_MESSAGES", value_name = "N")]
    pub max_receive_messages: Option<usize>,
    /// Longest wait of a ReceiveMessages long poll, in milliseconds [default: 20000]
    #[arg(long, env = "SHARDLOG_MAX_RECEIVE_WAIT_MS", value_name = "MS")]
    pub max_receive_wait_ms: Option<u64>,
    /// Most messages in flight in one queue group; past it receives return nothing [default: 120000]
    #[arg(long, env = "SHARDLOG_MAX_IN_FLIGHT_MESSAGES", value_name = "N")]
    pub max_in_flight_messages: Option<usize>,
    /// Most messages a queue group tracks per shard above its low-water mark [default: 200000]
    #[arg(long, env = "SHARDLOG_QUEUE_WINDOW", value_name = "N")]
    pub queue_window: Option<usize>,
    /// Most bytes of fetched records a queue group keeps ready per shard [default: 8388608]
    #[arg(long, env = "SHARDLOG_QUEUE_WINDOW_BYTES", value_name = "BYTES")]
    pub queue_window_bytes: Option<usize>,
    /// Visibility timeout of queue groups created without one, in seconds [default: 30]
    #[arg(
        long,
        env = "SHARDLOG_DEFAULT_VISIBILITY_TIMEOUT_SECS",
        value_name = "SECS"
    )]
    pub default_visibility_timeout_secs: Option<u64>,
    /// Most receipt handles in one DeleteMessages [default: 1000]
    #[arg(long, env = "SHARDLOG_MAX_DELETE_HANDLES", value_name = "N")]
    pub max_delete_handles: Option<usize>,
    /// Most a uniform scaling (UpdateShardCount) may multiply or divide a stream's open shard
    /// count by [default: 2]
    #[arg(long, env = "SHARDLOG_MAX_SCALING_FACTOR", value_name = "N")]
    pub max_scaling_factor: Option<u32>,
    /// Most uniform scalings of one stream in 24 hours [default: 10]
    #[arg(long, env = "SHARDLOG_MAX_SCALINGS_PER_DAY", value_name = "N")]
    pub max_scalings_per_day: Option<u32>,
    /// Per-shard throughput limits: `kinesis` (1,000 records or 1 MiB written, 2 MiB or 5
    /// GetRecords calls read, per second) or `off`; each `--shard-*-per-sec` overrides one
    /// [default: off]
    #[arg(long, env = "SHARDLOG_SHARD_LIMITS", value_name = "kinesis|off")]
    pub shard_limits: Option<ShardLimitsPreset>,
    /// Records put per second per shard, 0 for no limit [default: none]
    #[arg(long, env = "SHARDLOG_SHARD_PUT_RECORDS_PER_SEC", value_name = "N")]
    pub shard_put_records_per_sec: Option<u32>,
    /// Bytes put per second per shard, 0 for no limit [default: none]
    #[arg(long, env = "SHARDLOG_SHARD_PUT_BYTES_PER_SEC", value_name = "BYTES")]
    pub shard_put_bytes_per_sec: Option<u32>,
    /// Bytes read per second per shard by GetRecords, 0 for no limit [default: none]
    #[arg(long, env = "SHARDLOG_SHARD_READ_BYTES_PER_SEC", value_name = "BYTES")]
    pub shard_read_bytes_per_sec: Option<u32>,
    /// GetRecords calls per second per shard, 0 for no limit [default: none]
    #[arg(long, env = "SHARDLOG_SHARD_GET_RECORDS_PER_SEC", value_name = "N")]
    pub shard_get_records_per_sec: Option<u32>,
    /// Most tags one stream may carry [default: 50]
    #[arg(long, env = "SHARDLOG_MAX_STREAM_TAGS", value_name = "N")]
    pub max_stream_tags: Option<usize>,
    /// Most consumers registered on one stream (Kinesis enhanced fan-out) [default: 20]
    #[arg(long, env = "SHARDLOG_MAX_STREAM_CONSUMERS", value_name = "N")]
    pub max_stream_consumers: Option<usize>,
    /// Most consumer groups (lease and queue groups) on one stream [default: 1000]
    #[arg(long, env = "SHARDLOG_MAX_STREAM_GROUPS", value_name = "N")]
    pub max_stream_groups: Option<usize>,
    /// Most streams the server holds [default: 1000]
    #[arg(long, env = "SHARDLOG_MAX_STREAMS", value_name = "N")]
    pub max_streams: Option<usize>,
    /// Most connections each listener (gRPC, Kinesis, admin) holds open at once; past it, a
    /// connection is answered with an error naming the limit, then closed [default: 10000]
    #[arg(long, env = "SHARDLOG_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Address the Kinesis Data Streams API (HTTP, JSON and CBOR) listens on, or `off`
    /// [default: 127.0.0.1:4567]
    #[arg(long, env = "SHARDLOG_KINESIS_LISTEN", value_name = "ADDR|off")]
    pub kinesis_listen: Option<String>,
    /// TOML file of principals, their credentials and grants; every request is then
    /// authenticated and authorised (read again on SIGHUP) [default: none]
    #[arg(long, env = "SHARDLOG_AUTH_FILE", value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
    /// PEM certificate chain: TLS on every listener (gRPC, Kinesis, HTTP), read again when the
    /// file changes or on SIGHUP; needs --tls-key [default: none]
    #[arg(long, env = "SHARDLOG_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert [default: none]
    #[arg(long, env = "SHARDLOG_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: every client must present a certificate they issued (mutual TLS);
    /// needs --tls-cert [default: none]
    #[arg(long, env = "SHARDLOG_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Address the HTTP admin endpoints (/metrics, /healthz, /readyz) listen on, or `off`
    /// [default: 127.0.0.1:8080]
    #[arg(long, env = "SHARDLOG_HTTP_LISTEN", value_name = "ADDR|off")]
    pub http_listen: Option<String>,
    /// Region named in the Kinesis API's ARNs [default: us-east-1]
    #[arg(long, env = "SHARDLOG_KINESIS_REGION", value_name = "REGION")]
    pub kinesis_region: Option<String>,
    /// Account id (12 digits) named in the Kinesis API's ARNs and messages [default: 000000000000]
    #[arg(long, env = "SHARDLOG_KINESIS_ACCOUNT", value_name = "ID")]
    pub kinesis_account: Option<String>,
    /// How long one Kinesis SubscribeToShard call streams, in seconds [default: 300]
    #[arg(long, env = "SHARDLOG_KINESIS_SUBSCRIPTION_SECS", value_name = "SECS")]
    pub kinesis_subscription_secs: Option<u64>,
    /// Seconds a client of the HTTP listeners (Kinesis API, admin) has to send a request's
    /// headers before its connection is closed [default: 10]
    #[arg(long, env = "SHARDLOG_HTTP_HEADER_TIMEOUT_SECS", value_name = "SECS")]
    pub http_header_timeout_secs: Option<u64>,
    /// Log filter, e.g. `info` or `warn,shardlog=debug` [default: info]
    #[arg(long, env = "SHARDLOG_LOG", value_name = "FILTER")]
    pub log: Option<String>,
}

/// The TOML form of a policy is its command-line form.
fn fsync_policy<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FsyncPolicy>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|text| text.parse().map_err(serde::de::Error::custom))
        .transpose()
}

/// The settings of `shardlog serve`, resolved: the process's own (listening address, log
/// filter) and the engine's, which are the broker's [`BrokerConfig`] itself (defaults are the
/// `DEFAULT_*` constants of the modules each setting belongs to).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address the gRPC server listens on. Default `127.0.0.1:50051`.
    pub listen: SocketAddr,
    /// Address the Kinesis API listens on; `None` when it is off. Default `127.0.0.1:4567`.
    pub kinesis_listen: Option<String>,
    /// The Kinesis API's settings.
    pub kinesis: KinesisConfig,
    /// Address the HTTP admin endpoints listen on; `None` when off. Default `127.0.0.1:8080`.
    pub http_listen: Option<String>,
    /// The auth file; `None`: every request is allowed.
    pub auth_file: Option<PathBuf>,
    /// TLS on every listener, with `tls_key`; `None`: plain TCP (see [`Config::tls`]).
    pub tls_cert: Option<PathBuf>,
    /// The key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// The CA client certificates must chain to; `None`: no client certificate asked.
    pub tls_client_ca: Option<PathBuf>,
    /// Log filter in `tracing_subscriber::EnvFilter` syntax. Default `info`.
    pub log: String,
    /// Most connections each listener holds open at once.
    pub max_connections: usize,
    /// Everything the engine is opened with; `data_dir` defaults to `./data` here.
    pub broker: BrokerConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN,
            kinesis_listen: Some(crate::kinesis::DEFAULT_LISTEN.to_owned()),
            kinesis: KinesisConfig::default(),
            http_listen: Some(crate::http::DEFAULT_LISTEN.to_owned()),
            auth_file: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            log: DEFAULT_LOG.to_owned(),
            max_connections: crate::tls::DEFAULT_MAX_CONNECTIONS,
            broker: BrokerConfig::new(DEFAULT_DATA_DIR),
        }
    }
}

impl Config {
    /// Resolves the settings of `shardlog serve`: `flags` (already holding the environment
    /// variables, as clap parsed them) over the file they name, if any, over the defaults; then
    /// validates the result.
    pub fn load(flags: Settings) -> Result<Config, ConfigError> {
        let file = match &flags.config_file {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        let config = Config::from_layers(flags, file);
        config.validate()?;
        Ok(config)
    }

    /// Stacks `upper` over `lower` over the defaults, setting by setting. Does not validate.
    /// The sync period is read only with the `interval` policy, which carries it.
    pub fn from_layers(upper: Settings, lower: Settings) -> Config {
        let mut config = Config::default();
        let c = &mut config.broker;
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        macro_rules! layer {
            ($field:ident) => {
                upper.$field.or(lower.$field)
            };
        }
        let interval = layer!(fsync_interval_ms).map_or(DEFAULT_SYNC_INTERVAL, ms);
        if let Some(policy) = layer!(fsync) {
            c.commit.policy = match policy {
                FsyncPolicy::Interval(_) => FsyncPolicy::Interval(interval),
                other => other,
            };
        }
        set(&mut c.data_dir, layer!(data_dir));
        set(&mut c.log.segment_max_bytes, layer!(segment_max_bytes));
        set(
            &mut c.log.segment_max_age,
            layer!(segment_max_age_secs).map(secs),
        );
        c.log.retention_bytes = layer!(shard_retention_bytes).or(c.log.retention_bytes);
        set(
            &mut c.retention_check_interval,
            layer!(retention_check_interval_secs).map(secs),
        );
        set(
            &mut c.log.index_interval_bytes,
            layer!(index_interval_bytes),
        );
        set(
            &mut c.stream_limits.max_shard_count,
            layer!(max_shard_count),
        );
        set(&mut c.max_record_bytes, layer!(max_record_bytes));
        set(&mut c.max_put_request_bytes, layer!(max_put_request_bytes));
        set(&mut c.max_put_entries, layer!(max_put_entries));
        set(&mut c.get_records_limit, layer!(get_records_limit));
        set(&mut c.max_read_bytes, layer!(max_read_bytes));
        set(&mut c.iterator_ttl, layer!(iterator_ttl_secs).map(secs));
        set(&mut c.subscribe_buffer, layer!(subscribe_buffer));
        set(
            &mut c.subscribe_buffer_bytes,
            layer!(subscribe_buffer_bytes),
        );
        set(&mut c.put_stream_window, layer!(put_stream_window));
        set(&mut c.subscribe_event_bytes, layer!(subscribe_event_bytes));
        set(
            &mut c.stream_limits.max_dedup_window,
            layer!(max_dedup_window_secs).map(secs),
        );
        set(&mut c.max_dedup_ids, layer!(max_dedup_ids));
        set(
            &mut c.attribute_limits.max_attributes,
            layer!(max_attributes),
        );
        set(
            &mut c.attribute_limits.max_name_chars,
            layer!(max_attribute_name_chars),
        );
        set(
            &mut c.pattern_limits.max_pattern_bytes,
            layer!(max_pattern_bytes),
        );
        set(
            &mut c.pattern_limits.max_combinations,
            layer!(max_pattern_combinations),
        );
        set(&mut c.rules.max_rules, layer!(max_rules));
        set(
            &mut c.queues.max_receive_messages,
            layer!(max_receive_messages),
        );
        set(
            &mut c.queues.max_receive_wait,
            layer!(max_receive_wait_ms).map(ms),
        );
        set(&mut c.queues.max_in_flight, layer!(max_in_flight_messages));
        set(&mut c.queues.window, layer!(queue_window));
        set(&mut c.queues.window_bytes, layer!(queue_window_bytes));
        set(
            &mut c.queues.default_visibility_timeout,
            layer!(default_visibility_timeout_secs).map(Duration::from_secs),
        );
        set(&mut c.queues.max_delete_handles, layer!(max_delete_handles));
        set(&mut c.rules.max_targets, layer!(max_rule_targets));
        set(
            &mut c.rules.checkpoint_interval,
            layer!(rule_checkpoint_interval_ms).map(ms),
        );
        set(
            &mut c.default_session_timeout,
            layer!(default_session_timeout_ms).map(ms),
        );
        set(&mut c.stream_limits.max_tags, layer!(max_stream_tags));
        set(
            &mut c.stream_limits.max_scaling_factor,
            layer!(max_scaling_factor),
        );
        set(
            &mut c.stream_limits.max_scalings_per_day,
            layer!(max_scalings_per_day),
        );
        set(
            &mut c.stream_limits.max_consumers,
            layer!(max_stream_consumers),
        );
        set(&mut c.stream_limits.max_groups, layer!(max_stream_groups));
        set(&mut c.max_streams, layer!(max_streams));
        if let Some(addr) = layer!(kinesis_listen) {
            config.kinesis_listen = (addr != "off").then_some(addr);
        }
        if let Some(addr) = layer!(http_listen) {
            config.http_listen = (addr != "off").then_some(addr);
        }
        config.auth_file = layer!(auth_file);
        config.tls_cert = layer!(tls_cert);
        config.tls_key = layer!(tls_key);
        config.tls_client_ca = layer!(tls_client_ca);
        let quotas = &mut config.broker.shard_quotas;
        if let Some(preset) = layer!(shard_limits) {
            *quotas = match preset {
                ShardLimitsPreset::Kinesis => ShardQuotas::kinesis(),
                ShardLimitsPreset::Off => ShardQuotas::default(),
            };
        }
        let rate = |v: Option<u32>, current: Option<std::num::NonZeroU32>| {
            v.map_or(current, std::num::NonZeroU32::new)
        };
        quotas.put_records_per_sec = rate(
            layer!(shard_put_records_per_sec),
            quotas.put_records_per_sec,
        );
        quotas.put_bytes_per_sec = rate(layer!(shard_put_bytes_per_sec), quotas.put_bytes_per_sec);
        quotas.read_bytes_per_sec =
            rate(layer!(shard_read_bytes_per_sec), quotas.read_bytes_per_sec);
        quotas.get_records_per_sec = rate(
            layer!(shard_get_records_per_sec),
            quotas.get_records_per_sec,
        );
        set(&mut config.kinesis.region, layer!(kinesis_region));
        set(&mut config.kinesis.account, layer!(kinesis_account));
        set(
            &mut config.kinesis.subscription_lifetime,
            layer!(kinesis_subscription_secs).map(secs),
        );
        set(
            &mut config.kinesis.header_read_timeout,
            layer!(http_header_timeout_secs).map(secs),
        );
        set(&mut config.listen, layer!(listen));
        set(&mut config.log, layer!(log));
        set(&mut config.max_connections, layer!(max_connections));
        config
    }

    /// The TLS files, when TLS is on (after [`Config::validate`]: both the certificate and key).
    pub fn tls(&self) -> Option<crate::tls::TlsFiles> {
        Some(crate::tls::TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }

    /// Checks every setting; the error names the first one out of range, as its flag does.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn check(
            ok: bool,
            setting: &'static str,
            reason: impl FnOnce() -> String,
        ) -> Result<(), ConfigError> {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    setting,
                    reason: reason(),
                })
            }
        }
        let c = &self.broker;
        let positive = || "must be at least 1".to_owned();
        if let Some(addr) = &self.kinesis_listen {
            check(addr.parse::<SocketAddr>().is_ok(), "kinesis_listen", || {
                format!("{addr:?} is neither an address (HOST:PORT) nor `off`")
            })?;
        }
        if let Some(addr) = &self.http_listen {
            check(addr.parse::<SocketAddr>().is_ok(), "http_listen", || {
                format!("{addr:?} is neither an address (HOST:PORT) nor `off`")
            })?;
        }
        check(
            self.tls_cert.is_some() == self.tls_key.is_some(),
            "tls_key",
            || "--tls-cert and --tls-key go together: give both or neither".to_owned(),
        )?;
        check(
            self.tls_client_ca.is_none() || self.tls_cert.is_some(),
            "tls_client_ca",
            || "--tls-client-ca needs --tls-cert and --tls-key".to_owned(),
        )?;
        let account = &self.kinesis.account;
        check(
            account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()),
            "kinesis_account",
            || format!("{account:?} is not 12 digits"),
        )?;
        let region = &self.kinesis.region;
        check(
            !region.is_empty()
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "kinesis_region",
            || format!("{region:?} is not a region name (lowercase letters, digits, `-`)"),
        )?;
        check(
            self.kinesis.subscription_lifetime >= Duration::from_secs(1),
            "kinesis_subscription_secs",
            positive,
        )?;
        check(
            self.kinesis.header_read_timeout >= Duration::from_secs(1),
            "http_header_timeout_secs",
            positive,
        )?;
        check(
            c.commit.policy != FsyncPolicy::Interval(Duration::ZERO),
            "fsync_interval_ms",
            positive,
        )?;
        c.log.validate()?;
        check(
            c.stream_limits.max_shard_count >= 1,
            "max_shard_count",
            positive,
        )?;
        check(
            c.stream_limits.max_scaling_factor >= 2,
            "max_scaling_factor",
            || "must be at least 2 (a factor of 1 allows no scaling)".to_owned(),
        )?;
        check(
            c.stream_limits.max_scalings_per_day >= 1,
            "max_scalings_per_day",
            positive,
        )?;
        check(c.max_record_bytes >= 1, "max_record_bytes", positive)?;
        let one_record = || {
            format!(
                "must hold at least one record of max_record_bytes ({})",
                c.max_record_bytes
            )
        };
        // A request or an answer larger than the gRPC message limit could never travel.
        let below_message_limit =
            || format!("must be below the gRPC message limit of {MAX_MESSAGE_BYTES} bytes");
        check(
            c.max_put_request_bytes >= c.max_record_bytes,
            "max_put_request_bytes",
            one_record,
        )?;
        check(
            c.max_put_request_bytes < MAX_MESSAGE_BYTES,
            "max_put_request_bytes",
            below_message_limit,
        )?;
        check(c.max_put_entries >= 1, "max_put_entries", positive)?;
        check(c.get_records_limit >= 1, "get_records_limit", positive)?;
        check(
            c.max_read_bytes >= c.max_record_bytes,
            "max_read_bytes",
            one_record,
        )?;
        check(
            c.max_read_bytes < MAX_MESSAGE_BYTES,
            "max_read_bytes",
            below_message_limit,
        )?;
        check(!c.iterator_ttl.is_zero(), "iterator_ttl_secs", positive)?;
        check(c.subscribe_buffer >= 1, "subscribe_buffer", positive)?;
        check(
            c.subscribe_buffer_bytes >= 1 && c.subscribe_buffer_bytes <= u32::MAX as usize,
            "subscribe_buffer_bytes",
            || format!("must be between 1 and {} bytes", u32::MAX),
        )?;
        check(c.put_stream_window >= 1, "put_stream_window", positive)?;
        check(
            c.log.retention_bytes != Some(0),
            "shard_retention_bytes",
            positive,
        )?;
        check(
            !c.retention_check_interval.is_zero(),
            "retention_check_interval_secs",
            positive,
        )?;
        check(
            c.subscribe_event_bytes >= 1 && c.subscribe_event_bytes < MAX_MESSAGE_BYTES,
            "subscribe_event_bytes",
            || format!("must be between 1 and the gRPC message limit of {MAX_MESSAGE_BYTES} bytes"),
        )?;
        let window = c.stream_limits.max_dedup_window;
        check(
            !window.is_zero() && window <= MAX_DEDUP_WINDOW,
            "max_dedup_window_secs",
            || format!("must be between 1 and {}", MAX_DEDUP_WINDOW.as_secs()),
        )?;
        check(c.max_dedup_ids >= 1, "max_dedup_ids", positive)?;
        check(
            c.attribute_limits.max_name_chars >= 1,
            "max_attribute_name_chars",
            positive,
        )?;
        check(
            c.pattern_limits.max_pattern_bytes >= 2,
            "max_pattern_bytes",
            || "must be at least 2, the length of the smallest pattern `{}`".to_owned(),
        )?;
        check(
            c.pattern_limits.max_combinations >= 1,
            "max_pattern_combinations",
            positive,
        )?;
        check(c.rules.max_targets >= 1, "max_rule_targets", positive)?;
        check(
            c.queues.max_receive_messages >= 1,
            "max_receive_messages",
            positive,
        )?;
        check(
            c.queues.max_in_flight >= 1,
            "max_in_flight_messages",
            positive,
        )?;
        check(c.queues.window >= 1, "queue_window", positive)?;
        check(
            c.queues.max_delete_handles >= 1,
            "max_delete_handles",
            positive,
        )?;
        check(
            c.queues.default_visibility_timeout <= crate::broker::queues::MAX_VISIBILITY_TIMEOUT,
            "default_visibility_timeout_secs",
            || {
                format!(
                    "must be at most {} (12 hours)",
                    crate::broker::queues::MAX_VISIBILITY_TIMEOUT.as_secs()
                )
            },
        )?;
        check(
            !c.rules.checkpoint_interval.is_zero(),
            "rule_checkpoint_interval_ms",
            positive,
        )?;
        check(
            (MIN_SESSION_TIMEOUT..=MAX_SESSION_TIMEOUT).contains(&c.default_session_timeout),
            "default_session_timeout_ms",
            || {
                format!(
                    "must be between {} and {}",
                    MIN_SESSION_TIMEOUT.as_millis(),
                    MAX_SESSION_TIMEOUT.as_millis()
                )
            },
        )?;
        if let Err(source) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            return Err(ConfigError::LogFilter {
                filter: self.log.clone(),
                source,
            });
        }
        Ok(())
    }
}

/// Overwrites `slot` with the value a layer gives, if any.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

impl Settings {
    /// Reads a TOML file of settings. Unknown keys are refused, so a typo cannot silently
    /// leave a default in force.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::ParseFile {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::broker;

    /// `shardlog serve`'s settings as a command of their own.
    #[derive(Debug, Parser)]
    struct Serve {
        #[command(flatten)]
        settings: Settings,
    }

    fn flags(args: &[&str]) -> Settings {
        let argv = std::iter::once("serve").chain(args.iter().copied());
        Serve::try_parse_from(argv).expect("valid flags").settings
    }

    fn file(text: &str) -> Settings {
        toml::from_str(text).expect("valid TOML settings")
    }

    #[test]
    fn with_nothing_set_every_setting_is_its_default() {
        let config = Config::from_layers(Settings::default(), Settings::default());
        assert_eq!(config, Config::default());
        assert_eq!(config.broker.data_dir, Path::new("./data"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(config.broker.commit.policy, FsyncPolicy::Always);
        assert_eq!(config.log, "info");
        config.validate().expect("the defaults are valid");
    }

    // The only test that sets environment variables, and only ones no other test reads back.
    #[test]
    fn a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default() {
        std::env::set_var("SHARDLOG_MAX_PUT_ENTRIES", "9");
        std::env::set_var("SHARDLOG_SUBSCRIBE_BUFFER", "7");
        let upper = flags(&["--max-put-entries", "2"]);
        std::env::remove_var("SHARDLOG_MAX_PUT_ENTRIES");
        std::env::remove_var("SHARDLOG_SUBSCRIBE_BUFFER");
        let lower = file("max_put_entries = 3\nsubscribe_buffer = 5\nmax_dedup_ids = 11\n");

        let config = Config::from_layers(upper, lower);
        let c = &config.broker;
        assert_eq!(c.max_put_entries, 2, "flag over environment and file");
        assert_eq!(c.subscribe_buffer, 7, "environment over file");
        assert_eq!(c.max_dedup_ids, 11, "file over default");
        assert_eq!(c.max_record_bytes, broker::DEFAULT_MAX_RECORD_BYTES);
    }

    #[test]
    fn times_are_read_in_the_unit_their_name_ends_with() {
        let config = Config::from_layers(
            flags(&["--fsync", "interval", "--fsync-interval-ms", "250"]),
            file("segment_max_age_secs = 60\niterator_ttl_secs = 30\nmax_dedup_window_secs = 600\ndefault_session_timeout_ms = 4000\nshard_retention_bytes = 1073741824\n"),
        );
        let broker = &config.broker;
        assert_eq!(broker.iterator_ttl, Duration::from_secs(30));
        assert_eq!(broker.default_session_timeout, Duration::from_secs(4));
        assert_eq!(
            broker.commit.policy,
            FsyncPolicy::Interval(Duration::from_millis(250))
        );
        assert_eq!(broker.log.segment_max_age, Duration::from_secs(60));
        assert_eq!(broker.log.retention_bytes, Some(1 << 30));
        assert_eq!(
            broker.stream_limits.max_dedup_window,
            Duration::from_secs(600)
        );
    }

    #[test]
    fn the_file_named_by_config_is_read_under_the_flags() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("shardlog.toml");
        std::fs::write(
            &path,
            "data_dir = \"/srv/shardlog\"\nlisten = \"0.0.0.0:6000\"\nfsync = \"never\"\nlog = \"debug\"\n",
        )
        .expect("write config file");
        let path_arg = path.to_str().expect("UTF-8 temp path");
        let config = Config::load(flags(&["--config", path_arg, "--listen", "127.0.0.1:7000"]))
            .expect("valid settings");
        assert_eq!(config.broker.data_dir, Path::new("/srv/shardlog"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(config.broker.commit.policy, FsyncPolicy::Never);
        assert_eq!(config.log, "debug");
    }

    #[test]
    fn tls_files_go_together_and_the_file_form_is_the_flags() {
        let both = Config::load(flags(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]))
            .expect("cert and key");
        let files = both.tls().expect("TLS on");
        assert_eq!(
            (files.cert.as_path(), files.key.as_path()),
            (Path::new("c.pem"), Path::new("k.pem"))
        );
        assert_eq!(files.client_ca, None);
        let from_file = Config::from_layers(
            Settings::default(),
            file("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ntls_client_ca = \"ca.pem\"\n"),
        );
        assert_eq!(
            from_file.tls().and_then(|t| t.client_ca),
            Some("ca.pem".into())
        );
        assert_eq!(Config::default().tls(), None);
        for (args, named) in [
            (&["--tls-cert", "c.pem"][..], "tls_key"),
            (&["--tls-key", "k.pem"][..], "tls_key"),
            (&["--tls-client-ca", "ca.pem"][..], "tls_client_ca"),
        ] {
            match Config::load(flags(args)) {
                Err(ConfigError::Invalid { setting, .. }) => assert_eq!(setting, named, "{args:?}"),
                other => panic!("{args:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn a_missing_config_file_is_reported_with_its_path() {
        let error = Config::load(flags(&["--config", "/nonexistent/shardlog.toml"]))
            .expect_err("no such file");
        assert!(matches!(error, ConfigError::ReadFile { .. }), "{error:?}");
        assert!(error.to_string().contains("/nonexistent/shardlog.toml"));
    }

    #[test]
    fn unknown_or_mistyped_keys_in_the_file_are_refused() {
        for text in [
            "segment_max_byte = 10\n",
            "segment_max_bytes = \"big\"\n",
            "fsync = \"sometimes\"\n",
            "config_file = \"other.toml\"\n",
        ] {
            let parsed = toml::from_str::<Settings>(text);
            assert!(parsed.is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn malformed_flag_values_are_refused() {
        for args in [
            &["--fsync", "sometimes"][..],
            &["--listen", "localhost"],
            &["--segment-max-bytes", "-1"],
            &["--no-such-setting", "1"],
        ] {
            let argv = std::iter::once("serve").chain(args.iter().copied());
            assert!(
                Serve::try_parse_from(argv).is_err(),
                "{args:?} was accepted"
            );
        }
    }

    #[test]
    fn every_out_of_range_setting_is_refused_by_its_name() {
        type Break = fn(&mut Config);
        let cases: &[(&str, Break)] = &[
            ("fsync_interval_ms", |c| {
                c.broker.commit.policy = FsyncPolicy::Interval(Duration::ZERO)
            }),
            ("segment_max_bytes", |c| {
                c.broker.log.segment_max_bytes = 100
            }),
            ("segment_max_age", |c| {
                c.broker.log.segment_max_age = Duration::ZERO
            }),
            ("index_interval_bytes", |c| {
                c.broker.log.index_interval_bytes = 0
            }),
            ("max_shard_count", |c| {
                c.broker.stream_limits.max_shard_count = 0
            }),
            ("max_scaling_factor", |c| {
                c.broker.stream_limits.max_scaling_factor = 1
            }),
            ("max_scalings_per_day", |c| {
                c.broker.stream_limits.max_scalings_per_day = 0
            }),
            ("max_record_bytes", |c| c.broker.max_record_bytes = 0),
            ("max_put_request_bytes", |c| {
                c.broker.max_put_request_bytes = c.broker.max_record_bytes - 1
            }),
            ("max_put_request_bytes", |c| {
                c.broker.max_put_request_bytes = MAX_MESSAGE_BYTES
            }),
            ("max_put_entries", |c| c.broker.max_put_entries = 0),
            ("get_records_limit", |c| c.broker.get_records_limit = 0),
            ("max_read_bytes", |c| {
                c.broker.max_read_bytes = c.broker.max_record_bytes - 1
            }),
            ("max_read_bytes", |c| {
                c.broker.max_read_bytes = MAX_MESSAGE_BYTES
            }),
            ("iterator_ttl_secs", |c| {
                c.broker.iterator_ttl = Duration::ZERO
            }),
            ("subscribe_buffer", |c| c.broker.subscribe_buffer = 0),
            ("subscribe_buffer_bytes", |c| {
                c.broker.subscribe_buffer_bytes = 0
            }),
            ("put_stream_window", |c| c.broker.put_stream_window = 0),
            ("retention_check_interval_secs", |c| {
                c.broker.retention_check_interval = Duration::ZERO
            }),
            ("shard_retention_bytes", |c| {
                c.broker.log.retention_bytes = Some(0)
            }),
            ("max_dedup_window_secs", |c| {
                c.broker.stream_limits.max_dedup_window = Duration::ZERO
            }),
            ("max_dedup_window_secs", |c| {
                c.broker.stream_limits.max_dedup_window = MAX_DEDUP_WINDOW + Duration::from_secs(1)
            }),
            ("max_dedup_ids", |c| c.broker.max_dedup_ids = 0),
            ("max_attribute_name_chars", |c| {
                c.broker.attribute_limits.max_name_chars = 0
            }),
            ("max_pattern_bytes", |c| {
                c.broker.pattern_limits.max_pattern_bytes = 1
            }),
            ("max_pattern_combinations", |c| {
                c.broker.pattern_limits.max_combinations = 0
            }),
            ("max_rule_targets", |c| c.broker.rules.max_targets = 0),
            ("max_receive_messages", |c| {
                c.broker.queues.max_receive_messages = 0
            }),
            ("max_in_flight_messages", |c| {
                c.broker.queues.max_in_flight = 0
            }),
            ("queue_window", |c| c.broker.queues.window = 0),
            ("max_delete_handles", |c| {
                c.broker.queues.max_delete_handles = 0
            }),
            ("default_visibility_timeout_secs", |c| {
                c.broker.queues.default_visibility_timeout = Duration::from_secs(43_201)
            }),
            ("rule_checkpoint_interval_ms", |c| {
                c.broker.rules.checkpoint_interval = Duration::ZERO
            }),
            ("default_session_timeout_ms", |c| {
                c.broker.default_session_timeout = Duration::from_millis(10)
            }),
            ("default_session_timeout_ms", |c| {
                c.broker.default_session_timeout = MAX_SESSION_TIMEOUT * 2
            }),
            ("http_listen", |c| {
                c.http_listen = Some("localhost".to_owned())
            }),
            ("log", |c| c.log = "shardlog=loudest".to_owned()),
        ];
        for (setting, break_it) in cases {
            let mut config = Config::default();
            break_it(&mut config);
            let error = config.validate().expect_err(setting);
            let named = format!("setting {setting}: ");
            assert!(error.to_string().contains(&named), "{setting}: {error}");
        }
    }

    #[test]
    fn every_flag_documents_its_default_and_reads_its_environment_variable() {
        let config = Config::default();
        let d = &config.broker;
        let defaults: Vec<(&str, String)> = vec![
            ("data_dir", d.data_dir.display().to_string()),
            ("listen", config.listen.to_string()),
            ("fsync", "always".to_owned()),
            (
                "fsync_interval_ms",
                DEFAULT_SYNC_INTERVAL.as_millis().to_string(),
            ),
            ("segment_max_bytes", d.log.segment_max_bytes.to_string()),
            (
                "segment_max_age_secs",
                d.log.segment_max_age.as_secs().to_string(),
            ),
            (
                "index_interval_bytes",
                d.log.index_interval_bytes.to_string(),
            ),
            (
                "max_shard_count",
                d.stream_limits.max_shard_count.to_string(),
            ),
            ("max_record_bytes", d.max_record_bytes.to_string()),
            ("max_put_request_bytes", d.max_put_request_bytes.to_string()),
            ("max_put_entries", d.max_put_entries.to_string()),
            ("get_records_limit", d.get_records_limit.to_string()),
            ("max_read_bytes", d.max_read_bytes.to_string()),
            ("iterator_ttl_secs", d.iterator_ttl.as_secs().to_string()),
            ("subscribe_buffer", d.subscribe_buffer.to_string()),
            (
                "subscribe_buffer_bytes",
                d.subscribe_buffer_bytes.to_string(),
            ),
            ("put_stream_window", d.put_stream_window.to_string()),
            ("shard_retention_bytes", "none".to_owned()),
            (
                "retention_check_interval_secs",
                d.retention_check_interval.as_secs().to_string(),
            ),
            ("subscribe_event_bytes", d.subscribe_event_bytes.to_string()),
            (
                "max_dedup_window_secs",
                d.stream_limits.max_dedup_window.as_secs().to_string(),
            ),
            ("max_dedup_ids", d.max_dedup_ids.to_string()),
            (
                "max_attributes",
                d.attribute_limits.max_attributes.to_string(),
            ),
            (
                "max_attribute_name_chars",
                d.attribute_limits.max_name_chars.to_string(),
            ),
            (
                "max_pattern_bytes",
                d.pattern_limits.max_pattern_bytes.to_string(),
            ),
            (
                "max_pattern_combinations",
                d.pattern_limits.max_combinations.to_string(),
            ),
            ("max_rules", d.rules.max_rules.to_string()),
            ("max_rule_targets", d.rules.max_targets.to_string()),
            (
                "max_receive_messages",
                d.queues.max_receive_messages.to_string(),
            ),
            (
                "max_receive_wait_ms",
                d.queues.max_receive_wait.as_millis().to_string(),
            ),
            ("max_in_flight_messages", d.queues.max_in_flight.to_string()),
            ("queue_window", d.queues.window.to_string()),
            ("queue_window_bytes", d.queues.window_bytes.to_string()),
            (
                "default_visibility_timeout_secs",
                d.queues.default_visibility_timeout.as_secs().to_string(),
            ),
            (
                "max_delete_handles",
                d.queues.max_delete_handles.to_string(),
            ),
            (
                "rule_checkpoint_interval_ms",
                d.rules.checkpoint_interval.as_millis().to_string(),
            ),
            (
                "default_session_timeout_ms",
                d.default_session_timeout.as_millis().to_string(),
            ),
            ("max_stream_tags", d.stream_limits.max_tags.to_string()),
            (
                "max_scaling_factor",
                d.stream_limits.max_scaling_factor.to_string(),
            ),
            (
                "max_scalings_per_day",
                d.stream_limits.max_scalings_per_day.to_string(),
            ),
            (
                "max_stream_consumers",
                d.stream_limits.max_consumers.to_string(),
            ),
            ("max_stream_groups", d.stream_limits.max_groups.to_string()),
            ("max_streams", d.max_streams.to_string()),
            ("max_connections", config.max_connections.to_string()),
            (
                "kinesis_listen",
                config.kinesis_listen.clone().unwrap_or_default(),
            ),
            (
                "http_listen",
                config.http_listen.clone().unwrap_or_default(),
            ),
            ("shard_limits", "off".to_owned()),
            ("auth_file", "none".to_owned()),
            ("tls_cert", "none".to_owned()),
            ("tls_key", "none".to_owned()),
            ("tls_client_ca", "none".to_owned()),
            ("shard_put_records_per_sec", "none".to_owned()),
            ("shard_put_bytes_per_sec", "none".to_owned()),
            ("shard_read_bytes_per_sec", "none".to_owned()),
            ("shard_get_records_per_sec", "none".to_owned()),
            ("kinesis_region", config.kinesis.region.clone()),
            ("kinesis_account", config.kinesis.account.clone()),
            (
                "kinesis_subscription_secs",
                config.kinesis.subscription_lifetime.as_secs().to_string(),
            ),
            (
                "http_header_timeout_secs",
                config.kinesis.header_read_timeout.as_secs().to_string(),
            ),
            ("log", config.log.clone()),
        ];
        let command = Serve::command();
        let settings: Vec<_> = command
            .get_arguments()
            .filter(|a| a.get_id() != "config_file" && a.get_long().is_some())
            .collect();
        assert_eq!(settings.len(), defaults.len(), "a setting lacks a row here");
        for arg in settings {
            let id = arg.get_id().as_str();
            let (_, default) = defaults
                .iter()
                .find(|(name, _)| *name == id)
                .unwrap_or_else(|| panic!("no default listed for {id}"));
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            assert!(
                help.contains(&format!("[default: {default}]")),
                "{id}: {help}"
            );
            let env = format!("{ENV_PREFIX}{}", id.to_uppercase());
            assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(env.as_str()));
        }
    }
}
