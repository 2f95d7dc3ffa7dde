//! TLS for every listener (`--tls-cert`, `--tls-key`, `--tls-client-ca`).
//!
//! The certificate, key and client CA are read into a rustls configuration that is swapped
//! whole when the files change (polled every [`TLS_FILE_POLL`]) or on [`Tls::reload`] (SIGHUP).
//! A connection keeps the configuration it was accepted with, so a reload drops none; the next
//! handshake uses the new one. A reload that fails (a half-written file, a key that does not
//! match) leaves the configuration in force and says why.
//!
//! Each listener is turned into an [`Incoming`]: a task accepts TCP connections, runs each TLS
//! handshake on its own task (a slow or silent peer holds up nobody, and is dropped after
//! [`TLS_HANDSHAKE_TIMEOUT`]) and hands the ready connections over. The same type feeds tonic
//! (as a stream of connections) and axum (as a listener), plain or with TLS.
//!
//! A listener holds at most `max_connections` open at once (`--max-connections`). A connection
//! past it is not served: it is answered, for as long as [`REFUSAL_TIME`], with an error that
//! says why (`RESOURCE_EXHAUSTED` to a gRPC call, 503 and a JSON `LimitExceededException` to
//! HTTP), then closed. At most [`REFUSALS_AT_ONCE`] such answers run at a time; past that, a
//! connection is closed as soon as it is accepted.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// How long a peer has to finish its TLS handshake before the connection is dropped.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the certificate, key and client CA files are looked at for changes.
pub const TLS_FILE_POLL: Duration = Duration::from_secs(2);

/// Connections accepted (and past their handshake) but not yet taken by the server.
pub const ACCEPT_QUEUE: usize = 256;

/// Default most connections one listener holds open at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// How long a connection past the limit is answered before it is closed.
pub const REFUSAL_TIME: Duration = Duration::from_secs(5);

/// Most connections past the limit that are answered at once; the rest are closed unanswered.
pub const REFUSALS_AT_ONCE: usize = 64;

/// How long accepting pauses after an error of the listener itself (out of file descriptors):
/// retrying at once would spin.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Where the server's certificate chain, its key and (for mutual TLS) the CA that client
/// certificates must chain to are read from. All PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate, then the intermediates up to (not including) the root.
    pub cert: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// `Some`: every client must present a certificate issued by one of these CAs.
    pub client_ca: Option<PathBuf>,
}

/// Why the TLS files do not make a configuration.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // Each variant's message says what its fields are.
pub enum TlsError {
    #[error("cannot read the {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the {what} {} holds no {expected} in PEM form{detail}", path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
        detail: String,
    },
    #[error("the client CA {}: {source}", path.display())]
    ClientCa {
        path: PathBuf,
        source: rustls::server::VerifierBuilderError,
    },
    #[error("the certificate {} and the key {} do not make a TLS configuration: {source}", cert.display(), key.display())]
    Config {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// Which listener connections come in on: it decides the protocols offered in the handshake
/// (ALPN) and where its open connections are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// gRPC: HTTP/2 only.
    Grpc,
    /// The Kinesis API: HTTP/2 or HTTP/1.1.
    Kinesis,
    /// The admin endpoints: HTTP/2 or HTTP/1.1.
    Http,
}

impl Listener {
    const ALL: [Listener; 3] = [Listener::Grpc, Listener::Kinesis, Listener::Http];

    /// Its name, as the metrics label it.
    pub fn name(self) -> &'static str {
        match self {
            Listener::Grpc => "grpc",
            Listener::Kinesis => "kinesis",
            Listener::Http => "http",
        }
    }
}

/// Connections open now, per listener kind, over every server of the process.
static OPEN: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Connections open now (accepted, past their handshake, not yet closed), per listener.
pub fn open_connections() -> [(&'static str, u64); 3] {
    Listener::ALL.map(|l| (l.name(), OPEN[l as usize].load(Ordering::Relaxed)))
}

/// Connections refused past the connection limit, per listener kind, over every server of the
/// process.
static REFUSED: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Connections refused so far past `--max-connections` (answered with an error or closed
/// unanswered), per listener.
pub fn refused_connections() -> [(&'static str, u64); 3] {
    Listener::ALL.map(|l| (l.name(), REFUSED[l as usize].load(Ordering::Relaxed)))
}

/// Counts one open connection of a listener for as long as it lives: in the process's count of
/// its kind, and in its own listener's, which its limit is checked against.
#[derive(Debug)]
struct Counted {
    kind: Listener,
    open: Arc<AtomicUsize>,
}

impl Counted {
    fn new(kind: Listener, open: &Arc<AtomicUsize>) -> Counted {
        OPEN[kind as usize].fetch_add(1, Ordering::Relaxed);
        open.fetch_add(1, Ordering::AcqRel);
        Counted {
            kind,
            open: Arc::clone(open),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        OPEN[self.kind as usize].fetch_sub(1, Ordering::Relaxed);
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The server side of TLS, shared by every listener; cheap to clone.
#[derive(Clone)]
pub struct Tls {
    inner: Arc<Inner>,
}

struct Inner {
    files: TlsFiles,
    current: RwLock<Loaded>,
    /// Counts reloads that took effect, for whoever waits on one.
    reloaded: watch::Sender<u64>,
}

/// One configuration per ALPN set, and what the files looked like when they were read.
struct Loaded {
    grpc: Arc<ServerConfig>,
    http: Arc<ServerConfig>,
    stamps: Vec<Option<Stamp>>,
}

/// What tells that a file changed: its modification time and length.
type Stamp = (SystemTime, u64);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.inner.files)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the files; fails, naming the file and what is wrong with it, when they do not make
    /// a configuration.
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let stamps = stamps_of(&files);
        let (grpc, http) = configure(&files)?;
        Ok(Tls {
            inner: Arc::new(Inner {
                files,
                current: RwLock::new(Loaded { grpc, http, stamps }),
                reloaded: watch::channel(0).0,
            }),
        })
    }

    /// The files this configuration is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.inner.files
    }

    /// Reads the files again and, when they make a configuration, uses it for every handshake
    /// from now on. On error the configuration in force stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = stamps_of(&self.inner.files);
        let outcome = configure(&self.inner.files);
        let mut current = self
            .inner
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner());
        // Remember the files as read even when they did not load: the next change (the other
        // half of a certificate and key pair being written) tries again, and no sooner.
        current.stamps = stamps;
        let (grpc, http) = outcome?;
        current.grpc = grpc;
        current.http = http;
        drop(current);
        self.inner.reloaded.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Reloads when a file changed since it was last read; says what happened in the log.
    fn reload_if_changed(&self) {
        let stamps = stamps_of(&self.inner.files);
        let changed = {
            let current = self.inner.current.read().unwrap_or_else(|e| e.into_inner());
            current.stamps != stamps
        };
        if changed {
            match self.reload() {
                Ok(()) => tracing::info!("TLS certificate files changed; read again"),
                Err(e) => tracing::error!(
                    error = %e,
                    "TLS certificate files changed but do not load; the ones in force stay"
                ),
            }
        }
    }

    /// Starts looking at the files every `every`, reloading when one changes. The task ends
    /// when the last handle to this configuration is dropped.
    pub fn watch_files(&self, every: Duration) -> JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Tls { inner }.reload_if_changed();
            }
        })
    }

    /// Changes each time a reload takes effect.
    pub fn reloads(&self) -> watch::Receiver<u64> {
        self.inner.reloaded.subscribe()
    }

    fn acceptor(&self, listener: Listener) -> TlsAcceptor {
        let current = self.inner.current.read().unwrap_or_else(|e| e.into_inner());
        TlsAcceptor::from(match listener {
            Listener::Grpc => current.grpc.clone(),
            Listener::Kinesis | Listener::Http => current.http.clone(),
        })
    }
}

fn stamps_of(files: &TlsFiles) -> Vec<Option<Stamp>> {
    let stamp = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| stamp(p))
    .collect()
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let failed = |detail: String| TlsError::Pem {
        what,
        path: path.to_owned(),
        expected: "certificate",
        detail,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(format!(": {e}")))?;
    if certs.is_empty() {
        return Err(failed(String::new()));
    }
    Ok(certs)
}

/// Builds the configurations the files describe, one per ALPN set.
fn configure(files: &TlsFiles) -> Result<(Arc<ServerConfig>, Arc<ServerConfig>), TlsError> {
    let chain = certificates("certificate", &files.cert)?;
    let key_pem = read("key", &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        what: "key",
        path: files.key.clone(),
        expected: "private key",
        detail: format!(": {e}"),
    })?;
    // ring keeps the build light (no C toolchain beyond cc); its key exchanges are X25519 and
    // the NIST curves, without the post-quantum hybrid that only aws-lc-rs offers.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Config {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        })?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates("client CA", path)? {
                roots.add(ca).map_err(|e| TlsError::Pem {
                    what: "client CA",
                    path: path.clone(),
                    expected: "usable CA certificate",
                    detail: format!(": {e}"),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|source| TlsError::ClientCa {
                    path: path.clone(),
                    source,
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut grpc = builder
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::Config {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        })?;
    let mut http = grpc.clone();
    grpc.alpn_protocols = vec![b"h2".to_vec()];
    http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(grpc), Arc::new(http)))
}

/// An accepted connection, plain or past its TLS handshake, counted while it is open.
#[derive(Debug)]
pub struct Conn {
    io: Io,
    _open: Counted,
}

#[derive(Debug)]
enum Io {
    /// No TLS on this listener.
    Plain(TcpStream),
    /// The handshake is done.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Conn {
    fn new(io: Io, open: Counted) -> Conn {
        Conn { io, _open: open }
    }

    fn tcp(&self) -> &TcpStream {
        match &self.io {
            Io::Plain(s) => s,
            Io::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.tcp().connect_info()
    }
}

/// The connections of one listener, ready to serve (see the module's documentation).
#[derive(Debug)]
pub struct Incoming {
    ready: mpsc::Receiver<(Conn, SocketAddr)>,
    local: SocketAddr,
    accepting: JoinHandle<()>,
}

impl Drop for Incoming {
    fn drop(&mut self) {
        // Stops accepting and closes the listening socket with the server that served it.
        self.accepting.abort();
    }
}

impl Incoming {
    /// Serves `listener`'s connections, with TLS when `tls` is given, at most
    /// `max_connections` at once. Every connection has TCP_NODELAY: without it each response
    /// waits on the peer's delayed ACK (~40 ms).
    pub fn new(
        listener: TcpListener,
        tls: Option<&Tls>,
        kind: Listener,
        max_connections: usize,
    ) -> io::Result<Incoming> {
        let local = listener.local_addr()?;
        let (ready, taken) = mpsc::channel(ACCEPT_QUEUE);
        let tls = tls.cloned();
        let limit = Limit {
            max: max_connections,
            open: Arc::new(AtomicUsize::new(0)),
            refusing: Arc::new(tokio::sync::Semaphore::new(REFUSALS_AT_ONCE)),
        };
        let accepting = tokio::spawn(accept(listener, tls, kind, limit, ready));
        Ok(Incoming {
            ready: taken,
            local,
            accepting,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// A listener's connection limit and what it holds now.
struct Limit {
    max: usize,
    /// Connections open now, counted from their acceptance (handshakes included).
    open: Arc<AtomicUsize>,
    /// Room for refusals being answered.
    refusing: Arc<tokio::sync::Semaphore>,
}

async fn accept(
    listener: TcpListener,
    tls: Option<Tls>,
    kind: Listener,
    limit: Limit,
    ready: mpsc::Sender<(Conn, SocketAddr)>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = ready.closed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, pause = ?ACCEPT_ERROR_PAUSE, "cannot accept connections");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if limit.open.load(Ordering::Acquire) >= limit.max {
            REFUSED[kind as usize].fetch_add(1, Ordering::Relaxed);
            // Answered on a task of its own, if there is room for one; else closed now.
            if let Ok(room) = Arc::clone(&limit.refusing).try_acquire_owned() {
                let acceptor = tls.as_ref().map(|tls| tls.acceptor(kind));
                let why = format!(
                    "the server holds the most connections this listener accepts ({}, \
                     --max-connections); try again later",
                    limit.max
                );
                tokio::spawn(async move {
                    let _room = room;
                    let _ = tokio::time::timeout(
                        REFUSAL_TIME,
                        crate::refusal::answer(stream, acceptor, why),
                    )
                    .await;
                });
            }
            continue;
        }
        let open = Counted::new(kind, &limit.open);
        match &tls {
            None => {
                if ready
                    .send((Conn::new(Io::Plain(stream), open), peer))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(tls) => {
                let acceptor = tls.acceptor(kind);
                let ready = ready.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => {
                            let _ = ready
                                .send((Conn::new(Io::Tls(Box::new(stream)), open), peer))
                                .await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// Errors of one connection that came and went before it was accepted: not the listener's.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

impl futures_util::Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.ready
            .poll_recv(cx)
            .map(|conn| conn.map(|(conn, _)| Ok(conn)))
    }
}

impl axum::serve::Listener for Incoming {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accepting task only ends when this side is dropped; never reached.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
