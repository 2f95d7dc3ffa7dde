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

use crate::broker::{self, BrokerConfig};
use crate::consumer::{DEFAULT_SESSION_TIMEOUT, MAX_SESSION_TIMEOUT, MIN_SESSION_TIMEOUT};
use crate::fifo::{DEFAULT_MAX_LIVE_IDS, MAX_DEDUP_WINDOW};
use crate::grpc::MAX_MESSAGE_BYTES;
use crate::storage::commit::{CommitConfig, FsyncPolicy, DEFAULT_SYNC_INTERVAL};
use crate::storage::log::{
    LogConfig, DEFAULT_INDEX_INTERVAL_BYTES, DEFAULT_SEGMENT_MAX_AGE, DEFAULT_SEGMENT_MAX_BYTES,
};
use crate::storage::StorageError;
use crate::stream::{StreamLimits, DEFAULT_MAX_DEDUP_WINDOW, DEFAULT_MAX_SHARD_COUNT};

/// Default directory of all durable state.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// Default address of the gRPC server: loopback only, so a first run exposes nothing.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 50051));
/// Default log filter.
pub const DEFAULT_LOG: &str = "info";
/// Prefix of every environment variable that sets a setting.
pub const ENV_PREFIX: &str = "SHARDLOG_";

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {} is not valid", path.display())]
    ParseFile {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A setting is out of range; `setting` is its TOML name.
    #[error("setting {setting}: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
    #[error("setting log: {filter:?} is not a valid log filter")]
    LogFilter {
        filter: String,
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

/// The settings of `shardlog serve`, resolved. Defaults are the `DEFAULT_*` constants of the
/// modules each setting belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Directory holding all durable state. Default `./data`.
    pub data_dir: PathBuf,
    /// Address the gRPC server listens on. Default `127.0.0.1:50051`.
    pub listen: SocketAddr,
    /// When appends are synced (default `always`). The period of `interval` is
    /// `fsync_interval`, whatever the policy value carries.
    pub fsync: FsyncPolicy,
    /// Sync period of the `interval` policy (`fsync_interval_ms`). Default 100 ms.
    pub fsync_interval: Duration,
    /// Size at which a segment is sealed, in bytes. Default 256 MiB, at most 2 GiB.
    pub segment_max_bytes: u64,
    /// Age at which a non-empty segment is sealed (`segment_max_age_secs`). Default 1 h.
    pub segment_max_age: Duration,
    /// Most bytes of log each shard keeps (whole sealed segments are deleted past it). Default
    /// none: only the streams' retention periods apply.
    pub shard_retention_bytes: Option<u64>,
    /// Bytes of log between sparse index entries. Default 4 KiB.
    pub index_interval_bytes: u64,
    /// Most shards one stream may have. Default 1024.
    pub max_shard_count: u32,
    /// Largest record data, in bytes. Default 1 MiB.
    pub max_record_bytes: usize,
    /// Largest PutRecords request, in bytes. Default 5 MiB.
    pub max_put_request_bytes: usize,
    /// Most entries in one PutRecords. Default 500.
    pub max_put_entries: usize,
    /// Most records one GetRecords returns. Default 10,000.
    pub get_records_limit: u32,
    /// Most bytes one GetRecords answer or subscription event carries. Default 10 MiB.
    pub max_read_bytes: usize,
    /// Lifetime of a shard iterator (`iterator_ttl_secs`). Default 5 min.
    pub iterator_ttl: Duration,
    /// Events a subscription buffers ahead of a slow reader. Default 4.
    pub subscribe_buffer: usize,
    /// Most unanswered requests of one PutRecordsStream call. Default 8.
    pub put_stream_window: usize,
    /// Most bytes of records one subscription event carries. Default 1 MiB.
    pub subscribe_event_bytes: usize,
    /// Longest deduplication window a stream may ask for (`max_dedup_window_secs`). Default 1 h.
    pub max_dedup_window: Duration,
    /// Most deduplication ids one stream's window holds. Default 1,000,000.
    pub max_dedup_ids: usize,
    /// Session timeout of a member that asks for none (`default_session_timeout_ms`). Default 10 s.
    pub default_session_timeout: Duration,
    /// Log filter in `tracing_subscriber::EnvFilter` syntax. Default `info`.
    pub log: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            listen: DEFAULT_LISTEN,
            fsync: FsyncPolicy::Always,
            fsync_interval: DEFAULT_SYNC_INTERVAL,
            segment_max_bytes: DEFAULT_SEGMENT_MAX_BYTES,
            segment_max_age: DEFAULT_SEGMENT_MAX_AGE,
            shard_retention_bytes: None,
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
            max_shard_count: DEFAULT_MAX_SHARD_COUNT,
            max_record_bytes: broker::DEFAULT_MAX_RECORD_BYTES,
            max_put_request_bytes: broker::DEFAULT_MAX_PUT_REQUEST_BYTES,
            max_put_entries: broker::DEFAULT_MAX_PUT_ENTRIES,
            get_records_limit: broker::DEFAULT_GET_RECORDS_LIMIT,
            max_read_bytes: broker::DEFAULT_MAX_READ_BYTES,
            iterator_ttl: broker::DEFAULT_ITERATOR_TTL,
            subscribe_buffer: broker::DEFAULT_SUBSCRIBE_BUFFER,
            put_stream_window: broker::DEFAULT_PUT_STREAM_WINDOW,
            subscribe_event_bytes: broker::DEFAULT_SUBSCRIBE_EVENT_BYTES,
            max_dedup_window: DEFAULT_MAX_DEDUP_WINDOW,
            max_dedup_ids: DEFAULT_MAX_LIVE_IDS,
            default_session_timeout: DEFAULT_SESSION_TIMEOUT,
            log: DEFAULT_LOG.to_owned(),
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
    pub fn from_layers(upper: Settings, lower: Settings) -> Config {
        let d = Config::default();
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        Config {
            data_dir: upper.data_dir.or(lower.data_dir).unwrap_or(d.data_dir),
            listen: upper.listen.or(lower.listen).unwrap_or(d.listen),
            fsync: upper.fsync.or(lower.fsync).unwrap_or(d.fsync),
            fsync_interval: (upper.fsync_interval_ms.or(lower.fsync_interval_ms))
                .map_or(d.fsync_interval, ms),
            segment_max_bytes: (upper.segment_max_bytes.or(lower.segment_max_bytes))
                .unwrap_or(d.segment_max_bytes),
            segment_max_age: (upper.segment_max_age_secs.or(lower.segment_max_age_secs))
                .map_or(d.segment_max_age, secs),
            shard_retention_bytes: upper
                .shard_retention_bytes
                .or(lower.shard_retention_bytes)
                .or(d.shard_retention_bytes),
            index_interval_bytes: (upper.index_interval_bytes.or(lower.index_interval_bytes))
                .unwrap_or(d.index_interval_bytes),
            max_shard_count: (upper.max_shard_count.or(lower.max_shard_count))
                .unwrap_or(d.max_shard_count),
            max_record_bytes: (upper.max_record_bytes.or(lower.max_record_bytes))
                .unwrap_or(d.max_record_bytes),
            max_put_request_bytes: (upper.max_put_request_bytes.or(lower.max_put_request_bytes))
                .unwrap_or(d.max_put_request_bytes),
            max_put_entries: (upper.max_put_entries.or(lower.max_put_entries))
                .unwrap_or(d.max_put_entries),
            get_records_limit: (upper.get_records_limit.or(lower.get_records_limit))
                .unwrap_or(d.get_records_limit),
            max_read_bytes: (upper.max_read_bytes.or(lower.max_read_bytes))
                .unwrap_or(d.max_read_bytes),
            iterator_ttl: (upper.iterator_ttl_secs.or(lower.iterator_ttl_secs))
                .map_or(d.iterator_ttl, secs),
            subscribe_buffer: (upper.subscribe_buffer.or(lower.subscribe_buffer))
                .unwrap_or(d.subscribe_buffer),
            put_stream_window: (upper.put_stream_window.or(lower.put_stream_window))
                .unwrap_or(d.put_stream_window),
            subscribe_event_bytes: (upper.subscribe_event_bytes.or(lower.subscribe_event_bytes))
                .unwrap_or(d.subscribe_event_bytes),
            max_dedup_window: (upper.max_dedup_window_secs.or(lower.max_dedup_window_secs))
                .map_or(d.max_dedup_window, secs),
            max_dedup_ids: (upper.max_dedup_ids.or(lower.max_dedup_ids)).unwrap_or(d.max_dedup_ids),
            default_session_timeout: (upper.default_session_timeout_ms)
                .or(lower.default_session_timeout_ms)
                .map_or(d.default_session_timeout, ms),
            log: upper.log.or(lower.log).unwrap_or(d.log),
        }
    }

    /// Checks every setting; the error names the first one out of range.
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
        let positive = || "must be at least 1".to_owned();
        check(
            !self.fsync_interval.is_zero(),
            "fsync_interval_ms",
            positive,
        )?;
        self.log_config().validate()?;
        check(self.max_shard_count >= 1, "max_shard_count", positive)?;
        check(self.max_record_bytes >= 1, "max_record_bytes", positive)?;
        check(
            self.max_put_request_bytes >= self.max_record_bytes,
            "max_put_request_bytes",
            || {
                format!(
                    "must hold at least one record of max_record_bytes ({})",
                    self.max_record_bytes
                )
            },
        )?;
        // A request or an answer larger than the gRPC message limit could never travel.
        check(
            self.max_put_request_bytes < MAX_MESSAGE_BYTES,
            "max_put_request_bytes",
            || format!("must be below the gRPC message limit of {MAX_MESSAGE_BYTES} bytes"),
        )?;
        check(self.max_put_entries >= 1, "max_put_entries", positive)?;
        check(self.get_records_limit >= 1, "get_records_limit", positive)?;
        check(
            self.max_read_bytes >= self.max_record_bytes,
            "max_read_bytes",
            || {
                format!(
                    "must hold at least one record of max_record_bytes ({})",
                    self.max_record_bytes
                )
            },
        )?;
        check(
            self.max_read_bytes < MAX_MESSAGE_BYTES,
            "max_read_bytes",
            || format!("must be below the gRPC message limit of {MAX_MESSAGE_BYTES} bytes"),
        )?;
        check(!self.iterator_ttl.is_zero(), "iterator_ttl_secs", positive)?;
        check(self.subscribe_buffer >= 1, "subscribe_buffer", positive)?;
        check(self.put_stream_window >= 1, "put_stream_window", positive)?;
        check(
            self.shard_retention_bytes != Some(0),
            "shard_retention_bytes",
            positive,
        )?;
        check(
            self.subscribe_event_bytes >= 1 && self.subscribe_event_bytes < MAX_MESSAGE_BYTES,
            "subscribe_event_bytes",
            || format!("must be between 1 and the gRPC message limit of {MAX_MESSAGE_BYTES} bytes"),
        )?;
        check(
            !self.max_dedup_window.is_zero() && self.max_dedup_window <= MAX_DEDUP_WINDOW,
            "max_dedup_window_secs",
            || format!("must be between 1 and {}", MAX_DEDUP_WINDOW.as_secs()),
        )?;
        check(self.max_dedup_ids >= 1, "max_dedup_ids", positive)?;
        check(
            (MIN_SESSION_TIMEOUT..=MAX_SESSION_TIMEOUT).contains(&self.default_session_timeout),
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

    /// The broker's settings; the ones `Config` does not expose keep the broker's defaults.
    pub fn broker_config(&self) -> BrokerConfig {
        let policy = match self.fsync {
            FsyncPolicy::Interval(_) => FsyncPolicy::Interval(self.fsync_interval),
            other => other,
        };
        BrokerConfig {
            commit: CommitConfig {
                policy,
                ..CommitConfig::default()
            },
            log: self.log_config(),
            stream_limits: StreamLimits {
                max_shard_count: self.max_shard_count,
                max_dedup_window: self.max_dedup_window,
            },
            max_record_bytes: self.max_record_bytes,
            max_put_request_bytes: self.max_put_request_bytes,
            max_put_entries: self.max_put_entries,
            get_records_limit: self.get_records_limit,
            max_read_bytes: self.max_read_bytes,
            iterator_ttl: self.iterator_ttl,
            subscribe_buffer: self.subscribe_buffer,
            put_stream_window: self.put_stream_window,
            subscribe_event_bytes: self.subscribe_event_bytes,
            max_dedup_ids: self.max_dedup_ids,
            default_session_timeout: self.default_session_timeout,
            ..BrokerConfig::new(&self.data_dir)
        }
    }

    fn log_config(&self) -> LogConfig {
        LogConfig {
            segment_max_bytes: self.segment_max_bytes,
            segment_max_age: self.segment_max_age,
            index_interval_bytes: self.index_interval_bytes,
            retention_bytes: self.shard_retention_bytes,
            ..LogConfig::default()
        }
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
        assert_eq!(config.data_dir, Path::new("./data"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(config.fsync, FsyncPolicy::Always);
        assert_eq!(config.log, "info");
        config.validate().expect("the defaults are valid");
    }

    #[test]
    fn the_default_broker_config_is_the_brokers_own_default() {
        let ours = Config::default().broker_config();
        let theirs = BrokerConfig::new(DEFAULT_DATA_DIR);
        assert_eq!(ours.data_dir, theirs.data_dir);
        assert_eq!(ours.commit, theirs.commit);
        assert_eq!(ours.log, theirs.log);
        assert_eq!(ours.stream_limits, theirs.stream_limits);
        assert_eq!(ours.max_record_bytes, theirs.max_record_bytes);
        assert_eq!(ours.max_put_request_bytes, theirs.max_put_request_bytes);
        assert_eq!(ours.max_put_entries, theirs.max_put_entries);
        assert_eq!(ours.get_records_limit, theirs.get_records_limit);
        assert_eq!(ours.max_read_bytes, theirs.max_read_bytes);
        assert_eq!(ours.iterator_ttl, theirs.iterator_ttl);
        assert_eq!(ours.subscribe_buffer, theirs.subscribe_buffer);
        assert_eq!(ours.put_stream_window, theirs.put_stream_window);
        assert_eq!(ours.max_dedup_ids, theirs.max_dedup_ids);
        assert_eq!(ours.default_session_timeout, theirs.default_session_timeout);
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
        assert_eq!(config.max_put_entries, 2, "flag over environment and file");
        assert_eq!(config.subscribe_buffer, 7, "environment over file");
        assert_eq!(config.max_dedup_ids, 11, "file over default");
        assert_eq!(config.max_record_bytes, broker::DEFAULT_MAX_RECORD_BYTES);
    }

    #[test]
    fn times_are_read_in_the_unit_their_name_ends_with() {
        let config = Config::from_layers(
            flags(&["--fsync", "interval", "--fsync-interval-ms", "250"]),
            file("segment_max_age_secs = 60\niterator_ttl_secs = 30\nmax_dedup_window_secs = 600\ndefault_session_timeout_ms = 4000\nshard_retention_bytes = 1073741824\n"),
        );
        assert_eq!(config.fsync_interval, Duration::from_millis(250));
        assert_eq!(config.segment_max_age, Duration::from_secs(60));
        assert_eq!(config.iterator_ttl, Duration::from_secs(30));
        assert_eq!(config.max_dedup_window, Duration::from_secs(600));
        assert_eq!(config.default_session_timeout, Duration::from_secs(4));

        let broker = config.broker_config();
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
        assert_eq!(config.data_dir, Path::new("/srv/shardlog"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(config.fsync, FsyncPolicy::Never);
        assert_eq!(config.log, "debug");
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
            ("fsync_interval_ms", |c| c.fsync_interval = Duration::ZERO),
            ("segment_max_bytes", |c| c.segment_max_bytes = 100),
            ("segment_max_age", |c| c.segment_max_age = Duration::ZERO),
            ("index_interval_bytes", |c| c.index_interval_bytes = 0),
            ("max_shard_count", |c| c.max_shard_count = 0),
            ("max_record_bytes", |c| c.max_record_bytes = 0),
            ("max_put_request_bytes", |c| {
                c.max_put_request_bytes = c.max_record_bytes - 1
            }),
            ("max_put_request_bytes", |c| {
                c.max_put_request_bytes = MAX_MESSAGE_BYTES
            }),
            ("max_put_entries", |c| c.max_put_entries = 0),
            ("get_records_limit", |c| c.get_records_limit = 0),
            ("max_read_bytes", |c| {
                c.max_read_bytes = c.max_record_bytes - 1
            }),
            ("max_read_bytes", |c| c.max_read_bytes = MAX_MESSAGE_BYTES),
            ("iterator_ttl_secs", |c| c.iterator_ttl = Duration::ZERO),
            ("subscribe_buffer", |c| c.subscribe_buffer = 0),
            ("put_stream_window", |c| c.put_stream_window = 0),
            ("shard_retention_bytes", |c| {
                c.shard_retention_bytes = Some(0)
            }),
            ("max_dedup_window_secs", |c| {
                c.max_dedup_window = Duration::ZERO
            }),
            ("max_dedup_window_secs", |c| {
                c.max_dedup_window = MAX_DEDUP_WINDOW + Duration::from_secs(1)
            }),
            ("max_dedup_ids", |c| c.max_dedup_ids = 0),
            ("default_session_timeout_ms", |c| {
                c.default_session_timeout = Duration::from_millis(10)
            }),
            ("default_session_timeout_ms", |c| {
                c.default_session_timeout = MAX_SESSION_TIMEOUT * 2
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
        let d = Config::default();
        let defaults: Vec<(&str, String)> = vec![
            ("data_dir", d.data_dir.display().to_string()),
            ("listen", d.listen.to_string()),
            ("fsync", "always".to_owned()),
            (
                "fsync_interval_ms",
                d.fsync_interval.as_millis().to_string(),
            ),
            ("segment_max_bytes", d.segment_max_bytes.to_string()),
            (
                "segment_max_age_secs",
                d.segment_max_age.as_secs().to_string(),
            ),
            ("index_interval_bytes", d.index_interval_bytes.to_string()),
            ("max_shard_count", d.max_shard_count.to_string()),
            ("max_record_bytes", d.max_record_bytes.to_string()),
            ("max_put_request_bytes", d.max_put_request_bytes.to_string()),
            ("max_put_entries", d.max_put_entries.to_string()),
            ("get_records_limit", d.get_records_limit.to_string()),
            ("max_read_bytes", d.max_read_bytes.to_string()),
            ("iterator_ttl_secs", d.iterator_ttl.as_secs().to_string()),
            ("subscribe_buffer", d.subscribe_buffer.to_string()),
            ("put_stream_window", d.put_stream_window.to_string()),
            ("shard_retention_bytes", "none".to_owned()),
            ("subscribe_event_bytes", d.subscribe_event_bytes.to_string()),
            (
                "max_dedup_window_secs",
                d.max_dedup_window.as_secs().to_string(),
            ),
            ("max_dedup_ids", d.max_dedup_ids.to_string()),
            (
                "default_session_timeout_ms",
                d.default_session_timeout.as_millis().to_string(),
            ),
            ("log", d.log.clone()),
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
