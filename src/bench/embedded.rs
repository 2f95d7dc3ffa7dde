//! `--embedded`: a real shardlog server started inside the bench process, serving gRPC and the
//! Kinesis API each on a port of 127.0.0.1:0, on a fresh temporary data directory that is
//! removed when the run ends; and the process's resident memory, read from
//! `/proc/self/status`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::BenchError;
use shardlog::broker::{Broker, BrokerConfig};
use shardlog::fsio::RealIo;
use shardlog::grpc::ServerError;
use shardlog::kinesis::KinesisConfig;
use shardlog::storage::FsyncPolicy;

/// Tells apart the directories of embedded servers started by one process.
static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// A server serving real gRPC (and the Kinesis API) from a task of this process.
#[derive(Debug)]
pub struct EmbeddedServer {
    addr: SocketAddr,
    kinesis_addr: SocketAddr,
    dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<ServerTask>,
}

/// The task serving gRPC and the Kinesis API; it ends with the server's outcome.
type ServerTask = JoinHandle<Result<(), ServerError>>;

/// Settings of an embedded server beyond the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedSettings {
    pub fsync: FsyncPolicy,
    /// Most ids a stream's dedup window holds: a `--dedup` run raises it to its record count,
    /// so the window measures its cost instead of throttling the run.
    pub max_dedup_ids: usize,
    /// Bytes of log each shard keeps, with retention checked every second.
    pub shard_retention_bytes: Option<u64>,
}

/// How often the embedded server applies retention when a run limits the bytes per shard.
pub const RETENTION_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

fn unique_dir(parent: &Path) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
    parent.join(format!("shardlog-bench-{}-{nanos}-{n}", std::process::id()))
}

/// Where an embedded server serves each API.
struct Addrs {
    grpc: SocketAddr,
    kinesis: SocketAddr,
}

/// A listener on an ephemeral loopback port, and its address.
async fn bind_loopback() -> Result<(TcpListener, SocketAddr), BenchError> {
    let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|source| BenchError::Bind { addr: bind, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| BenchError::Bind { addr: bind, source })?;
    Ok((listener, addr))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) => Err(std::io::Error::other(join)),
    }
}

async fn remove_dir(dir: PathBuf) -> Result<(), BenchError> {
    let path = dir.clone();
    blocking(move || std::fs::remove_dir_all(&path))
        .await
        .map_err(|source| BenchError::DataDir {
            action: "remove",
            dir,
            source,
        })
}

impl EmbeddedServer {
    /// Creates a fresh directory under `parent`, opens a broker on it and serves it on an
    /// ephemeral loopback port.
    pub async fn start(
        parent: &Path,
        settings: EmbeddedSettings,
    ) -> Result<EmbeddedServer, BenchError> {
        let dir = unique_dir(parent);
        let (parent_path, path) = (parent.to_owned(), dir.clone());
        blocking(move || {
            std::fs::create_dir_all(&parent_path)?;
            std::fs::create_dir(&path)
        })
        .await
        .map_err(|source| BenchError::DataDir {
            action: "create",
            dir: dir.clone(),
            source,
        })?;
        match Self::serve(&dir, settings).await {
            Ok((addrs, stop, task)) => Ok(EmbeddedServer {
                addr: addrs.grpc,
                kinesis_addr: addrs.kinesis,
                dir,
                stop: Some(stop),
                task: Some(task),
            }),
            Err(error) => {
                // The directory is the run's own; an error removing it matters less than the
                // error that stopped the start.
                if let Err(remove) = remove_dir(dir).await {
                    tracing::warn!(error = %remove, "cannot remove the embedded data directory");
                }
                Err(error)
            }
        }
    }

    async fn serve(
        dir: &Path,
        settings: EmbeddedSettings,
    ) -> Result<(Addrs, oneshot::Sender<()>, ServerTask), BenchError> {
        let (listener, addr) = bind_loopback().await?;
        let (kinesis_listener, kinesis_addr) = bind_loopback().await?;
        let mut config = BrokerConfig::new(dir);
        config.commit.policy = settings.fsync;
        config.max_dedup_ids = config.max_dedup_ids.max(settings.max_dedup_ids);
        if let Some(bytes) = settings.shard_retention_bytes {
            config.log.retention_bytes = Some(bytes);
            config.retention_check_interval = RETENTION_CHECK_INTERVAL;
        }
        let broker = Broker::open(config, RealIo::shared())
            .await
            .map_err(BenchError::OpenBroker)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(shardlog::grpc::serve_with_kinesis(
            broker,
            listener,
            Some((kinesis_listener, KinesisConfig::default())),
            async {
                // A dropped sender stops the server as well.
                let _ = stopped.await;
            },
        ));
        Ok((
            Addrs {
                grpc: addr,
                kinesis: kinesis_addr,
            },
            stop,
            task,
        ))
    }

    /// The URL gRPC clients connect to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of the Kinesis endpoint.
    pub fn kinesis_url(&self) -> String {
        format!("http://{}", self.kinesis_addr)
    }

    /// Stops the server gracefully (every shard synced and closed), then removes its
    /// directory.
    pub async fn stop(mut self) -> Result<(), BenchError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = match self.task.take() {
            Some(task) => match task.await {
                Ok(result) => result.map_err(BenchError::Server),
                Err(join) => Err(BenchError::ServerTask(join.to_string())),
            },
            None => Ok(()),
        };
        let removed = remove_dir(std::mem::take(&mut self.dir)).await;
        served.and(removed)
    }
}

impl Drop for EmbeddedServer {
    /// A run that ends early (an error, a panic) still stops the server and removes its
    /// directory, best effort: the server task is told to stop but cannot be awaited here.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if !self.dir.as_os_str().is_empty() {
            if let Err(error) = std::fs::remove_dir_all(&self.dir) {
                tracing::warn!(dir = %self.dir.display(), %error, "cannot remove the embedded data directory");
            }
        }
    }
}

/// Resident memory of this process: (current VmRSS, peak VmHWM), in bytes. `None` where
/// `/proc/self/status` is missing or unreadable.
pub fn process_rss() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some((
        status_kib(&status, "VmRSS")? * 1024,
        status_kib(&status, "VmHWM")? * 1024,
    ))
}

/// Clock ticks per second of `/proc/<pid>/stat`'s CPU times: `USER_HZ`, which the kernel fixes
/// at 100 for user space on every architecture shardlog runs on.
pub const USER_HZ: u64 = 100;

/// CPU time (user + system) the process has used so far, from `/proc/self/stat`; `None` where
/// that file is not there.
pub fn process_cpu() -> Option<Duration> {
    stat_cpu(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// User plus system time of a `/proc/<pid>/stat` line. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so fields are counted from the last
/// `)`: `utime` and `stime` are the 12th and 13th after it.
pub fn stat_cpu(stat: &str) -> Option<Duration> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime.checked_add(stime)?;
    Some(Duration::from_millis(ticks.checked_mul(1000 / USER_HZ)?))
}

/// The value of a `Key:   1234 kB` line of a `/proc/<pid>/status` text, in KiB.
pub fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name != key {
            return None;
        }
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_the_command_name_whatever_it_holds() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 12 0 0 0 250 75 0 0 20 0 9 0";
        assert_eq!(stat_cpu(stat), Some(Duration::from_millis(3250)));
        assert_eq!(stat_cpu("4242 (x) S 1 2"), None, "too few fields");
        assert_eq!(stat_cpu("no command name"), None);
    }

    const STATUS: &str = "Name:\tshardlog\nVmPeak:\t  812340 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   30720 kB\nThreads:\t6\n";

    #[test]
    fn status_lines_are_read_in_kib() {
        assert_eq!(status_kib(STATUS, "VmRSS"), Some(30720));
        assert_eq!(status_kib(STATUS, "VmHWM"), Some(40960));
    }

    #[test]
    fn a_missing_or_unitless_line_reads_as_none() {
        assert_eq!(status_kib(STATUS, "VmSwap"), None);
        assert_eq!(status_kib(STATUS, "Threads"), None);
        assert_eq!(status_kib(STATUS, "Vm"), None);
    }

    #[test]
    fn two_directories_made_at_once_differ() {
        let parent = Path::new("/tmp");
        assert_ne!(unique_dir(parent), unique_dir(parent));
    }
}
