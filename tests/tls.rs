//! TLS on every listener: gRPC, the Kinesis API and the admin endpoints served over TLS with
//! certificates made at run time; plaintext and an unknown CA refused; mutual TLS; certificates
//! reloaded without dropping the connections that are open.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::http::get_tls;
use common::tls::{client_tls, rustls_client, server_files, Ca};
use common::{TestServer, EVENT_TIMEOUT};
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use shardlog::auth::Auth;
use shardlog::client::{Client, ClientError, ClientOptions, ClientTls, Position};
use shardlog::tls::Tls;
use shardlog::BrokerConfig;

fn https(addr: SocketAddr) -> String {
    format!("https://{addr}")
}

async fn connect(addr: SocketAddr, tls: ClientTls) -> Result<Client, ClientError> {
    let options = ClientOptions {
        tls,
        ..ClientOptions::default()
    };
    Client::connect_with(https(addr), options).await
}

/// A put and a read back over `client`; the error of the first call that fails.
async fn round_trip(client: &Client, stream: &str, data: &str) -> Result<(), ClientError> {
    let put = client.put_record(stream, "k", data.to_owned()).await?;
    let iterator = client
        .get_shard_iterator(
            stream,
            &put.shard_id,
            Position::AtSequence(put.sequence_number),
        )
        .await?;
    let read = client.get_records(&iterator, 1).await?;
    assert_eq!(read.records[0].data, data.as_bytes());
    Ok(())
}

/// Whether a client made with `tls` can do anything on the server at `addr`: connecting and
/// one call, the first error said.
async fn refused(addr: SocketAddr, tls: ClientTls) -> Option<String> {
    match connect(addr, tls).await {
        Err(e) => Some(format!("{e:?}")),
        Ok(client) => client.list_streams().await.err().map(|e| format!("{e:?}")),
    }
}

/// POSTs a Kinesis `ListStreams` over TLS; the status and the body.
async fn kinesis_list_streams(
    addr: SocketAddr,
    config: Arc<tokio_rustls::rustls::ClientConfig>,
) -> (StatusCode, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = tokio_rustls::rustls::pki_types::ServerName::from(addr.ip());
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the Kinesis listener");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    tokio::spawn(conn);
    let request = Request::post("/")
        .header("host", addr.to_string())
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "Kinesis_20131202.ListStreams")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let response = sender.send_request(request).await.expect("response");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn every_listener_serves_tls_and_refuses_plaintext_and_an_unknown_ca() {
    let ca = Ca::new("shardlog test CA");
    let stranger = Ca::new("some other CA");
    let dir = tempfile::tempdir().unwrap();
    let tls = Tls::load(server_files(dir.path(), &ca.server(), None)).expect("TLS files load");
    let data = tempfile::tempdir().unwrap();
    let server =
        TestServer::start_with_tls(BrokerConfig::new(data.path()), Auth::open(), tls).await;

    // gRPC, trusting the CA.
    let client = connect(server.addr, client_tls(&ca, None))
        .await
        .expect("connect over TLS");
    client.create_stream("secure", 2).await.expect("create");
    round_trip(&client, "secure", "over TLS")
        .await
        .expect("put and read over TLS");

    // The same port in plaintext: the server reads no gRPC from it.
    let plain = match Client::connect(format!("http://{}", server.addr)).await {
        Err(e) => format!("{e:?}"),
        Ok(c) => format!(
            "{:?}",
            c.list_streams().await.expect_err("plaintext served")
        ),
    };
    assert!(!plain.is_empty());
    // An unknown CA: the client refuses the server's certificate.
    let unknown = refused(server.addr, client_tls(&stranger, None))
        .await
        .expect("a certificate from an unknown CA is refused");
    assert!(
        unknown.contains("UnknownIssuer") || unknown.contains("certificate"),
        "{unknown}"
    );

    // The admin endpoints.
    let (status, _, text) = get_tls(server.http_addr, "/metrics", rustls_client(&ca))
        .await
        .expect("metrics over TLS");
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("shardlog_"), "{text}");
    let plain = common::http::get_on(
        tokio::net::TcpStream::connect(server.http_addr)
            .await
            .unwrap(),
        server.http_addr,
        "/metrics",
    )
    .await;
    assert!(plain.is_err(), "plaintext HTTP answered: {plain:?}");
    let wrong = get_tls(server.http_addr, "/metrics", rustls_client(&stranger)).await;
    assert!(
        wrong.as_ref().is_err_and(|e| e.contains("UnknownIssuer")),
        "{wrong:?}"
    );

    // The Kinesis API.
    let (status, body) = kinesis_list_streams(server.kinesis_addr, rustls_client(&ca)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"secure\""), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn mutual_tls_serves_only_clients_with_a_certificate_from_the_client_ca() {
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let stranger = Ca::new("stranger CA");
    let dir = tempfile::tempdir().unwrap();
    let tls = Tls::load(server_files(dir.path(), &ca.server(), Some(&clients))).expect("load");
    let data = tempfile::tempdir().unwrap();
    let server =
        TestServer::start_with_tls(BrokerConfig::new(data.path()), Auth::open(), tls).await;

    let member = clients.client("orders-service");
    let client = connect(server.addr, client_tls(&ca, Some(&member)))
        .await
        .expect("connect with a client certificate");
    client.create_stream("mtls", 1).await.expect("create");
    round_trip(&client, "mtls", "mutual").await.expect("served");

    let none = refused(server.addr, client_tls(&ca, None)).await;
    assert!(none.is_some(), "a client without a certificate was served");
    let forged = stranger.client("orders-service");
    let other = refused(server.addr, client_tls(&ca, Some(&forged))).await;
    assert!(
        other.is_some(),
        "a certificate from another CA was accepted"
    );
    // The admin endpoints ask too.
    let metrics = get_tls(server.http_addr, "/metrics", rustls_client(&ca)).await;
    assert!(
        metrics.is_err(),
        "metrics served without a client certificate"
    );
    // The refusals harmed nothing: the served client goes on.
    round_trip(&client, "mtls", "still").await.expect("served");
    server.stop().await;
}

#[tokio::test]
async fn new_certificates_take_over_without_dropping_open_connections() {
    let old_ca = Ca::new("old CA");
    let new_ca = Ca::new("new CA");
    let dir = tempfile::tempdir().unwrap();
    let files = server_files(dir.path(), &old_ca.server(), None);
    let tls = Tls::load(files.clone()).expect("load");
    let mut reloads = tls.reloads();
    let watcher = tls.watch_files(std::time::Duration::from_millis(50));
    let data = tempfile::tempdir().unwrap();
    let server =
        TestServer::start_with_tls(BrokerConfig::new(data.path()), Auth::open(), tls.clone()).await;
    let open = connect(server.addr, client_tls(&old_ca, None))
        .await
        .unwrap();
    open.create_stream("rotating", 1).await.expect("create");
    round_trip(&open, "rotating", "before")
        .await
        .expect("served");

    // A certificate manager writes the new pair: the change is seen and loaded.
    let renewed = new_ca.server();
    common::tls::write(dir.path(), "server.key", &renewed.key);
    common::tls::write(dir.path(), "server.pem", &renewed.cert);
    tokio::time::timeout(EVENT_TIMEOUT, async {
        // The key alone does not match the old certificate: that attempt fails and the next
        // change (the certificate) loads.
        while *reloads.borrow_and_update() == 0 {
            reloads.changed().await.expect("reloads");
        }
    })
    .await
    .expect("the new files are loaded");

    // The open connection is the one made before: a new one would fail to verify the new
    // certificate against the old CA, so its calls succeeding shows it was kept.
    round_trip(&open, "rotating", "after")
        .await
        .expect("open connection kept");
    assert!(
        refused(server.addr, client_tls(&old_ca, None))
            .await
            .is_some(),
        "a new connection still gets the old certificate"
    );
    let fresh = connect(server.addr, client_tls(&new_ca, None))
        .await
        .unwrap();
    round_trip(&fresh, "rotating", "new")
        .await
        .expect("served with the new certificate");

    // Files that do not load leave the configuration in force.
    std::fs::write(&files.cert, "not a certificate").unwrap();
    let error = tls.reload().expect_err("garbage does not load").to_string();
    assert!(error.contains("server.pem"), "{error}");
    let again = connect(server.addr, client_tls(&new_ca, None))
        .await
        .unwrap();
    round_trip(&again, "rotating", "kept")
        .await
        .expect("the loaded certificate stays");
    watcher.abort();
    server.stop().await;
}

#[test]
fn files_that_do_not_make_a_configuration_are_named() {
    let ca = Ca::new("CA");
    let other = ca.server();
    let dir = tempfile::tempdir().unwrap();
    let mut files = server_files(dir.path(), &ca.server(), None);
    // A key of another certificate.
    files.key = common::tls::write(dir.path(), "other.key", &other.key);
    let e = Tls::load(files.clone())
        .expect_err("mismatched key")
        .to_string();
    assert!(e.contains("other.key") && e.contains("server.pem"), "{e}");
    files.key = dir.path().join("missing.key");
    let e = Tls::load(files.clone())
        .expect_err("missing key")
        .to_string();
    assert!(e.contains("missing.key"), "{e}");
    files.key = common::tls::write(dir.path(), "empty.key", "");
    let e = Tls::load(files.clone()).expect_err("empty key").to_string();
    assert!(e.contains("empty.key") && e.contains("private key"), "{e}");
    files.key = common::tls::write(dir.path(), "ok.key", &other.key);
    files.cert = common::tls::write(dir.path(), "ok.pem", &other.cert);
    files.client_ca = Some(common::tls::write(dir.path(), "ca.pem", "nothing here"));
    let e = Tls::load(files).expect_err("empty client CA").to_string();
    assert!(e.contains("ca.pem") && e.contains("client CA"), "{e}");
}

// The CLI runs as a child process while this test waits on it: the server needs threads of its
// own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_talks_https_with_a_ca_and_a_client_certificate() {
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let dir = tempfile::tempdir().unwrap();
    let tls = Tls::load(server_files(dir.path(), &ca.server(), Some(&clients))).expect("load");
    let data = tempfile::tempdir().unwrap();
    let server =
        TestServer::start_with_tls(BrokerConfig::new(data.path()), Auth::open(), tls).await;
    let ca_file = common::tls::write(dir.path(), "ca.pem", &ca.pem());
    let me = clients.client("operator");
    let cert = common::tls::write(dir.path(), "me.pem", &me.cert);
    let key = common::tls::write(dir.path(), "me.key", &me.key);
    let url = https(server.addr);
    let run = |args: &[&str], tls_args: &[&std::path::Path]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shardlog"));
        command.args(args).arg("--server").arg(&url);
        for (flag, path) in ["--ca-cert", "--client-cert", "--client-key"]
            .iter()
            .zip(tls_args)
        {
            command.arg(flag).arg(path);
        }
        command.output().expect("run shardlog")
    };
    let all = [ca_file.as_path(), cert.as_path(), key.as_path()];
    let made = run(&["stream", "create", "cli-tls", "--shards", "1"], &all);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let listed = run(&["stream", "list"], &all);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("cli-tls"));
    // Without the client certificate, and without the CA: refused, saying so.
    let anonymous = run(&["stream", "list"], &all[..1]);
    assert!(!anonymous.status.success());
    let untrusted = run(&["stream", "list"], &[]);
    assert!(!untrusted.status.success());
    let said = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        said.contains("certificate") || said.contains("UnknownIssuer"),
        "{said}"
    );
    server.stop().await;
}
