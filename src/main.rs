//! The `shardlog` binary: `serve` runs the server; `bench` is the load generator (`bench/`);
//! every other command is a client of a running server (`cli/`). None of it is the library:
//! the binary uses `shardlog`'s public API like any other program.

mod bench;
mod cli;

use std::future::Future;
use std::io::{self, IsTerminal};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use shardlog::broker::Broker;
use shardlog::config::{Config, Settings};
use shardlog::fsio::RealIo;

/// Log filter of client commands when `SHARDLOG_LOG` is unset: only what went wrong.
const CLIENT_LOG: &str = "warn";

/// A durable, shard-partitioned stream log with FIFO message groups, deduplication and
/// consumer groups, served over gRPC.
#[derive(Debug, Parser)]
#[command(name = "shardlog", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server. Every setting is a flag, a SHARDLOG_* environment variable, or a key of
    /// the --config TOML file, in that order of precedence.
    // Boxed: the settings are several times the size of every other command's arguments.
    Serve(Box<Settings>),
    #[command(flatten)]
    Client(cli::ClientCommand),
    /// Print a shell completion script: `source <(shardlog completions bash)`, or save it
    /// where your shell loads completions from.
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Load generator: drive a server (--server URL, or --embedded in this process) with a
    /// produce, consume, e2e, route or queue workload and report throughput and latency percentiles.
    Bench(bench::BenchArgs),
}

/// The commands that talk to a running server.
#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(settings) => serve(*settings).await,
        Command::Client(command) => {
            init_client_logging();
            cli::run(command).await
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "shardlog", &mut io::stdout());
            Ok(())
        }
        Command::Bench(args) => {
            init_client_logging();
            bench::run(args).await.map_err(Into::into)
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            report(&error);
            ExitCode::FAILURE
        }
    }
}

/// Prints an error and its causes on one line. A status is left out: the client error that
/// carries it already says its code and message.
fn report(error: &anyhow::Error) {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause_text = cause.to_string();
        // Transport errors repeat their cause's words in their own message.
        if !cause.is::<tonic::Status>() && !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
    }
    eprintln!("error: {text}");
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let config = Config::load(settings)?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&config.log)?)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
    // Signal handlers first: a SIGTERM during recovery must stop the server, not kill it.
    let shutdown = shutdown_signal()?;
    // TLS files read and ports bound before opening the data directory, so a bad certificate
    // or a taken port fails fast.
    let tls = match config.tls() {
        Some(files) => {
            let tls = shardlog::tls::Tls::load(files)?;
            tracing::info!(
                cert = %tls.files().cert.display(),
                client_certificates = tls.files().client_ca.is_some(),
                "TLS on every listener"
            );
            tls.watch_files(shardlog::tls::TLS_FILE_POLL);
            Some(tls)
        }
        None => None,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let http = match &config.http_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--http-listen)"))?,
        ),
        None => None,
    };
    let kinesis = match &config.kinesis_listen {
        Some(addr) => Some((
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--kinesis-listen)"))?,
            config.kinesis.clone(),
        )),
        None => None,
    };
    let auth = match &config.auth_file {
        Some(path) => {
            let auth = shardlog::auth::Auth::from_file(path)?;
            tracing::info!(file = %path.display(), "requests are authenticated and authorised");
            auth
        }
        None => {
            tracing::warn!("no auth file: every request of every API is allowed (--auth-file)");
            shardlog::auth::Auth::open()
        }
    };
    reload_on_sighup(
        config.auth_file.is_some().then(|| auth.clone()),
        tls.clone(),
    )?;
    // Health answers during recovery (alive, not ready); stopped once the rest has stopped.
    let admin = shardlog::http::Admin::starting().with_auth(auth.clone());
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = match http {
        Some(listener) => {
            let incoming = shardlog::tls::Incoming::new(
                listener,
                tls.as_ref(),
                shardlog::tls::Listener::Http,
                config.max_connections,
            )?;
            Some(tokio::spawn(shardlog::http::serve(
                incoming,
                admin.clone(),
                config.kinesis.header_read_timeout,
                async {
                    let _ = http_stopped.await;
                },
            )))
        }
        None => None,
    };
    tracing::info!(
        data_dir = %config.broker.data_dir.display(),
        fsync = ?config.broker.commit.policy,
        "opening data directory"
    );
    let broker = Broker::open(config.broker.clone(), RealIo::shared())
        .await
        .with_context(|| {
            format!(
                "cannot open data directory {}",
                config.broker.data_dir.display()
            )
        })?;
    admin.open(broker.clone());
    let listeners = shardlog::grpc::Listeners {
        grpc: listener,
        kinesis,
        http: None,
        auth,
        tls,
        max_connections: config.max_connections,
    };
    let served = shardlog::grpc::serve_listeners(broker, listeners, shutdown).await;
    let _ = http_stop.send(());
    if let Some(task) = http {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the HTTP admin server failed"),
            Err(e) => tracing::error!(error = %e, "the HTTP admin task failed"),
        }
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Reads the auth file and the TLS files again on every SIGHUP; a file that does not load
/// leaves what is in force, and says why.
#[cfg(unix)]
fn reload_on_sighup(
    auth: Option<shardlog::auth::Auth>,
    tls: Option<shardlog::tls::Tls>,
) -> io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            if let Some(auth) = &auth {
                match auth.reload() {
                    Ok(()) => tracing::info!("auth file read again"),
                    Err(e) => tracing::error!(
                        error = %e,
                        "auth file not reloaded; the one in force stays"
                    ),
                }
            }
            if let Some(tls) = &tls {
                match tls.reload() {
                    Ok(()) => tracing::info!("TLS certificate files read again"),
                    Err(e) => tracing::error!(
                        error = %e,
                        "TLS certificate files not reloaded; the ones in force stay"
                    ),
                }
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn reload_on_sighup(
    _auth: Option<shardlog::auth::Auth>,
    _tls: Option<shardlog::tls::Tls>,
) -> io::Result<()> {
    Ok(())
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C): the server then stops accepting, finishes in-flight
/// requests and syncs every shard.
#[cfg(unix)]
pub(crate) fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "stopping");
    })
}

#[cfg(not(unix))]
pub(crate) fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stopping");
    })
}

/// Client commands log to standard error, `warn` and up unless `SHARDLOG_LOG` says otherwise;
/// standard output is theirs.
fn init_client_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHARDLOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(CLIENT_LOG));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
}
