//! The tonic gRPC services over the broker: `StreamLog`, `ConsumerGroups`, `Router`, `grpc.health.v1`
//! and server reflection. Thin adapters: check, convert, call the broker, map errors (in
//! `status`, the one place that does).

mod auth;
mod convert;
mod groups;
pub mod metrics;
mod put;
pub mod queues;
mod router;
pub mod status;
mod stream_log;

use std::future::Future;
use std::net::SocketAddr;

use thiserror::Error;
use tokio::net::TcpListener;

use crate::broker::Broker;
use crate::kinesis::KinesisConfig;
use crate::proto::v1::consumer_groups_server::ConsumerGroupsServer;
use crate::proto::v1::queues_server::QueuesServer;
use crate::proto::v1::router_server::RouterServer;
use crate::proto::v1::stream_log_server::StreamLogServer;

pub use groups::ConsumerGroupsService;
pub use queues::QueuesService;
pub use router::RouterService;
pub use stream_log::StreamLogService;

/// Largest gRPC message accepted or sent: a 5 MiB PutRecords or a 10 MiB GetRecords fits with
/// room for protobuf framing.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// HTTP/2 flow-control windows: tonic's defaults throttle large messages.
pub const STREAM_WINDOW_BYTES: u32 = 16 * 1024 * 1024;
/// HTTP/2 connection window.
pub const CONNECTION_WINDOW_BYTES: u32 = 64 * 1024 * 1024;
/// Largest HTTP/2 frame.
pub const MAX_FRAME_BYTES: u32 = 1024 * 1024 - 1;

/// Why the server could not run.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The transport failed while serving.
    #[error("gRPC transport failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The reflection service could not read the descriptors.
    #[error("reflection service could not be built: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The listening address could not be bound.
    #[error("when binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// A listener given to serve on is not usable.
    #[error("listener not usable: {0}")]
    Listener(#[source] std::io::Error),
    /// The final sync of every shard failed on the way out.
    #[error("final sync failed: {0}")]
    Shutdown(#[from] crate::broker::BrokerError),
}

/// The listeners one server serves on.
#[derive(Debug)]
pub struct Listeners {
    /// The gRPC services.
    pub grpc: TcpListener,
    /// The Kinesis API, with its settings.
    pub kinesis: Option<(TcpListener, KinesisConfig)>,
    /// The HTTP admin endpoints (metrics, health), when not served by the caller.
    pub http: Option<TcpListener>,
    /// Who may do what; open without an auth file.
    pub auth: crate::auth::Auth,
    /// TLS for every listener given here; `None`: plain TCP.
    pub tls: Option<crate::tls::Tls>,
    /// Most connections each listener holds open at once.
    pub max_connections: usize,
}

/// Serves the broker's gRPC services on `listener` until `shutdown` resolves, then stops
/// accepting, finishes in-flight requests and syncs every shard.
pub async fn serve(
    broker: Broker,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    serve_with_kinesis(broker, listener, None, shutdown).await
}

/// [`serve`], and the Kinesis API on its own listener beside it when one is given: both stop
/// on `shutdown`, and the shards are synced once both have finished (or the grace is over).
pub async fn serve_with_kinesis(
    broker: Broker,
    listener: TcpListener,
    kinesis: Option<(TcpListener, KinesisConfig)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let listeners = Listeners {
        grpc: listener,
        kinesis,
        http: None,
        auth: crate::auth::Auth::open(),
        tls: None,
        max_connections: crate::tls::DEFAULT_MAX_CONNECTIONS,
    };
    serve_listeners(broker, listeners, shutdown).await
}

/// Serves every listener given until `shutdown` resolves; then each stops, and the shards are
/// synced once all have finished (or the grace is over).
pub async fn serve_listeners(
    broker: Broker,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let Listeners {
        grpc: listener,
        kinesis,
        http,
        auth,
        tls,
        max_connections,
    } = listeners;
    use crate::tls::{Incoming, Listener};
    let bind = |listener: TcpListener, alpn| -> Result<Incoming, ServerError> {
        let addr = listener.local_addr().map_err(ServerError::Listener)?;
        Incoming::new(listener, tls.as_ref(), alpn, max_connections)
            .map_err(|source| ServerError::Bind { addr, source })
    };
    let kinesis = match kinesis {
        Some((listener, config)) => Some((bind(listener, Listener::Kinesis)?, config)),
        None => None,
    };
    let http = http.map(|l| bind(l, Listener::Http)).transpose()?;
    let local = listener.local_addr().ok();
    let incoming = bind(listener, Listener::Grpc)?;
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<StreamLogServer<StreamLogService>>()
        .await;
    health_reporter
        .set_serving::<ConsumerGroupsServer<ConsumerGroupsService>>()
        .await;
    health_reporter
        .set_serving::<RouterServer<RouterService>>()
        .await;
    health_reporter
        .set_serving::<QueuesServer<QueuesService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // Older tools (grpcurl before 1.9, some IDEs) still ask the v1alpha service.
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let stream_log = StreamLogServer::new(StreamLogService::new(broker.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let groups = ConsumerGroupsServer::new(ConsumerGroupsService::new(broker.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let router = RouterServer::new(RouterService::new(broker.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let queues = QueuesServer::new(QueuesService::new(broker.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    if auth.is_on() {
        let rights = auth.clone();
        broker.set_permission_check(std::sync::Arc::new(move |principal, action, stream| {
            rights
                .current()
                .and_then(|a| a.by_name(principal))
                .is_some_and(|p| p.may(action, stream))
        }));
    }
    // The admin listener shares the Kinesis listener's HTTP limits.
    let header_timeout = kinesis
        .as_ref()
        .map_or(crate::http::DEFAULT_HEADER_READ_TIMEOUT, |(_, config)| {
            config.header_read_timeout
        });
    let kinesis = kinesis.map(|(listener, config)| {
        let mut stopping = broker.shutdown_signal();
        let stopped = async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        };
        tokio::spawn(crate::kinesis::serve(
            broker.clone(),
            listener,
            config,
            auth.clone(),
            stopped,
        ))
    });
    let http = http.map(|listener| {
        let mut stopping = broker.shutdown_signal();
        let stopped = async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        };
        tokio::spawn(crate::http::serve(
            listener,
            crate::http::Admin::of(broker.clone()).with_auth(auth.clone()),
            header_timeout,
            stopped,
        ))
    });
    let signal = broker.clone();
    let (stopping, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: ending subscriptions, finishing in-flight requests");
        signal.begin_shutdown();
        let _ = stopping.send(());
    };
    tracing::info!(addr = ?local, "serving");
    let serving = tonic::transport::Server::builder()
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .layer(metrics::MetricsLayer::new(broker.clone()))
        .layer(tonic::service::InterceptorLayer::new(auth::interceptor(
            auth.clone(),
        )))
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(stream_log)
        .add_service(groups)
        .add_service(router)
        .add_service(queues)
        // `Incoming` sets TCP_NODELAY on every connection (`Server::tcp_nodelay` applies
        // only to listeners tonic binds itself).
        .serve_with_incoming_shutdown(incoming, shutdown);
    // tonic's graceful stop waits for every connection to finish its streams, and a response
    // to a client that stopped reading never finishes (HTTP/2 flow control holds it): past
    // the grace, stop without them.
    let grace = broker.config().shutdown_grace;
    let grace_over = async move {
        if stopping_rx.await.is_err() {
            // The signal never fired: the server ended on its own.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(grace).await;
    };
    let result = tokio::select! {
        result = serving => result,
        () = grace_over => {
            tracing::warn!(?grace, "requests still in flight after the shutdown grace; stopping without them");
            Ok(())
        }
    };
    if let Some(task) = kinesis {
        // The Kinesis server began its graceful stop with the gRPC one; its subscriptions end
        // on the broker's shutdown signal, so it finishes unless a client stopped reading.
        match tokio::time::timeout(grace, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "the Kinesis API server failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "the Kinesis API task failed"),
            Err(_) => tracing::warn!(
                ?grace,
                "Kinesis requests still in flight after the shutdown grace"
            ),
        }
    }
    if let Some(task) = http {
        match tokio::time::timeout(grace, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "the HTTP admin server failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "the HTTP admin task failed"),
            Err(_) => tracing::warn!(
                ?grace,
                "HTTP requests still in flight after the shutdown grace"
            ),
        }
    }
    tracing::info!("stopped accepting; syncing shards");
    let synced = broker.shutdown().await;
    result?;
    synced?;
    Ok(())
}
