//! The HTTP admin listener (`--http-listen`): `GET /metrics` in the Prometheus text format,
//! `GET /healthz` (the process is alive) and `GET /readyz` (the data directory is recovered
//! and the server is not stopping). It serves from the moment its port is bound, before
//! recovery, so an orchestrator can tell a server that is starting from one that is gone.

mod console;
pub mod history;
pub mod metrics;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::auth::Auth;
use crate::broker::stats::OK;
use crate::broker::Broker;

/// The default address of the admin listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// What the listener serves from: the broker once the data directory is open.
#[derive(Clone)]
pub struct Admin {
    broker: Arc<OnceLock<Broker>>,
    auth: Auth,
    /// What the console plots, sampled from the broker once it is open.
    history: Arc<history::History>,
    /// When the listener started: the console's uptime.
    started: Instant,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            broker: Arc::default(),
            auth: Auth::default(),
            history: Arc::default(),
            started: Instant::now(),
        }
    }
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("open", &self.broker.get().is_some())
            .finish()
    }
}

impl Admin {
    /// An admin listener whose broker is not open yet: not ready until [`Admin::open`].
    pub fn starting() -> Admin {
        Admin::default()
    }

    /// An admin listener over an open broker.
    pub fn of(broker: Broker) -> Admin {
        let admin = Admin::default();
        admin.open(broker);
        admin
    }

    /// Checks `/metrics` requests against `auth` (a bearer token, unless the auth file leaves
    /// metrics open). Health answers anyone: probes carry no token.
    pub fn with_auth(mut self, auth: Auth) -> Admin {
        self.auth = auth;
        self
    }

    /// Hands over the broker once recovery is done.
    pub fn open(&self, broker: Broker) {
        // Set once; a second broker for the same listener would be a caller's bug, and the
        // first stays in force.
        if self.broker.set(broker.clone()).is_ok() {
            let history = Arc::clone(&self.history);
            tokio::spawn(async move { history.sample(broker).await });
        }
    }

    fn ready(&self) -> Option<&Broker> {
        self.broker.get().filter(|b| !*b.shutdown_signal().borrow())
    }
}

/// How long a client of an HTTP listener (the admin endpoints, the Kinesis API) may take to
/// send a request's headers before its connection is closed, so that slow clients cannot
/// hold connections open for ever.
pub const DEFAULT_HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `app` on `listener` (HTTP/1.1 and HTTP/2) until `shutdown` resolves, then lets the
/// connections finish their requests. A connection that does not send a request's headers
/// within `header_timeout` is closed.
pub(crate) async fn serve_router(
    mut listener: crate::tls::Incoming,
    app: Router,
    header_timeout: std::time::Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::Listener as _;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (conn, _peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        builder.http2().timer(TokioTimer::new());
        let service = TowerToHyperService::new(app.clone());
        let serving = builder
            .serve_connection_with_upgrades(TokioIo::new(conn), service)
            .into_owned();
        let serving = graceful.watch(serving);
        tokio::spawn(async move {
            // A client that goes away or breaks the protocol ends its own connection only.
            let _ = serving.await;
        });
    }
    graceful.shutdown().await;
    Ok(())
}

/// Serves the admin endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: crate::tls::Incoming,
    admin: Admin,
    header_timeout: std::time::Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/", get(console::page))
        .route("/api/overview", get(console::overview))
        .route("/api/streams", axum::routing::post(console::create_stream))
        .route(
            "/api/streams/{name}",
            get(console::stream).delete(console::delete_stream),
        )
        .route(
            "/api/streams/{name}/records",
            get(console::records).post(console::put_record),
        )
        .route(
            "/api/streams/{name}/groups/{group}/reset",
            axum::routing::post(console::reset_checkpoint),
        )
        .route(
            "/api/streams/{name}/redrive",
            axum::routing::post(console::redrive),
        )
        .with_state(admin);
    tracing::info!(addr = %listener.local_addr(), "serving metrics and health over HTTP");
    serve_router(listener, app, header_timeout, shutdown).await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(admin): State<Admin>) -> Response {
    match admin.ready() {
        Some(_) => (StatusCode::OK, "ready\n").into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: recovering the data directory, or stopping\n",
        )
            .into_response(),
    }
}

async fn scrape(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    let open = admin.auth.current().is_none_or(|a| a.open_metrics());
    if !open {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Err(why) = admin.auth.bearer(presented) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                format!("{why}\n"),
            )
                .into_response();
        }
    }
    let Some(broker) = admin.broker.get() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no metrics yet: recovering the data directory\n",
        )
            .into_response();
    };
    let started = Instant::now();
    let snapshot = broker.stats_snapshot().await;
    let (status, body) = match metrics::encode(snapshot) {
        Ok(text) => (StatusCode::OK, text),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be encoded\n".to_owned(),
        ),
    };
    let outcome = if status == StatusCode::OK {
        OK
    } else {
        "Internal"
    };
    broker
        .request_stats()
        .record("http", "metrics", outcome, started.elapsed());
    (
        status,
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        body,
    )
        .into_response()
}
