//! Test harness: a real shardlog server on 127.0.0.1:0, talked to over real gRPC.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use shardlog::broker::{Broker, BrokerConfig};
use shardlog::proto::v1::consumer_groups_client::ConsumerGroupsClient;
use shardlog::proto::v1::stream_log_client::StreamLogClient;
use shardlog::storage::io::RealIo;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// A server running in this process on its own data directory.
pub struct TestServer {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _tmp: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server with default settings on a fresh temporary directory.
    pub async fn start() -> TestServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_owned();
        let mut s = Self::start_with(BrokerConfig::new(&dir)).await;
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server with the given settings (its `data_dir` is used as is).
    pub async fn start_with(config: BrokerConfig) -> TestServer {
        let data_dir = config.data_dir.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let broker = Broker::open(config, RealIo::shared())
            .await
            .expect("open broker");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            shardlog::server::serve(broker, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("server ran");
        });
        TestServer {
            addr,
            data_dir,
            stop: Some(stop),
            task: Some(task),
            _tmp: None,
        }
    }

    /// Stops the server gracefully and waits until every shard is synced and closed. The data
    /// directory is kept (when the server owns a temporary one, it is handed back).
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        self._tmp.take()
    }

    /// Stops this server and starts a new one on the same data directory.
    pub async fn restart(self) -> TestServer {
        let dir = self.data_dir.clone();
        let tmp = self.stop().await;
        let mut s = Self::start_with(BrokerConfig::new(&dir)).await;
        s._tmp = tmp;
        s
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connect")
    }

    /// A `StreamLog` client.
    pub async fn streams(&self) -> StreamLogClient<Channel> {
        StreamLogClient::new(self.channel().await)
            .max_decoding_message_size(64 * 1024 * 1024)
            .max_encoding_message_size(64 * 1024 * 1024)
    }

    /// A `ConsumerGroups` client.
    pub async fn groups(&self) -> ConsumerGroupsClient<Channel> {
        ConsumerGroupsClient::new(self.channel().await)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}
