//! The web console in a real headless browser (Chromium: the page as its scripts leave it,
//! with `--dump-dom`, and driven over the DevTools protocol to type a token and submit a form),
//! and its JSON API over real HTTP.
//!
//! Chromium comes from the distribution's packages (`.ci/run` installs it). Without one on the
//! machine the browser checks say so and stop, unless `SHARDLOG_REQUIRE_BROWSER` is set (as CI
//! sets it), which makes a missing browser a failure.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use common::{Deadline, TestServer};
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use shardlog::client::{Client, Membership};
use shardlog::proto::v1 as pb;

/// The browser, if the machine has one.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SHARDLOG_CHROMIUM") {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
    .find(|candidate| candidate.is_file())
}

fn browser_or_skip() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        assert!(
            std::env::var_os("SHARDLOG_REQUIRE_BROWSER").is_none(),
            "SHARDLOG_REQUIRE_BROWSER is set but no Chromium was found (install the `chromium` \
             package or set SHARDLOG_CHROMIUM)"
        );
        eprintln!("no Chromium on this machine: the browser checks are skipped");
    }
    found
}

/// The page at `url` as the browser has it once its scripts ran and their requests ended.
async fn dom(browser: &std::path::Path, url: String) -> String {
    let browser = browser.to_owned();
    let profile = tempfile::tempdir().unwrap();
    let profile_dir = profile.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--virtual-time-budget=4000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile_dir.display()))
            .arg(url)
            .output()
            .expect("run Chromium")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "Chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 DOM")
}

/// A page open in a headless Chromium, driven over the DevTools protocol.
struct Tab {
    browser: std::process::Child,
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Tab {
    async fn open(browser: &std::path::Path, url: &str) -> Tab {
        use std::io::BufRead;
        let profile = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start Chromium");
        // It says where its DevTools endpoint listens on standard error.
        let stderr = child.stderr.take().unwrap();
        let endpoint = tokio::task::spawn_blocking(move || {
            let mut lines = std::io::BufReader::new(stderr).lines();
            let found = lines
                .by_ref()
                .map_while(Result::ok)
                .find_map(|l| l.split("DevTools listening on ").nth(1).map(str::to_owned));
            // Keep draining, so that Chromium never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            found
        })
        .await
        .unwrap()
        .expect("Chromium's DevTools endpoint");
        let port: u16 = endpoint
            .trim_start_matches("ws://127.0.0.1:")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .expect("a port");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        // The page's own endpoint, from the list of targets.
        let deadline = Deadline::after(Duration::from_secs(10));
        let page = loop {
            let (_, _, text) = common::http::get(addr, "/json/list").await;
            let targets: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let page = targets.as_array().and_then(|ts| {
                ts.iter()
                    .find(|t| {
                        t["type"] == "page"
                            && t["url"].as_str().is_some_and(|u| u.starts_with("http"))
                    })
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_owned))
            });
            if let Some(page) = page {
                break page;
            }
            assert!(deadline.tick().await, "no page in {text}");
        };
        let (socket, _) = tokio_tungstenite::connect_async(page)
            .await
            .expect("DevTools socket");
        Tab {
            browser: child,
            socket,
            next_id: 1,
            _profile: profile,
        }
    }

    /// Evaluates `expression` in the page, awaiting a promise; returns its value. While the
    /// page is still replacing the blank one Chromium starts with, the call is made again.
    async fn eval(&mut self, expression: &str) -> Value {
        let deadline = Deadline::after(Duration::from_secs(10));
        loop {
            let answer = self.call(expression).await;
            let replaced = answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("context was destroyed"));
            if !replaced {
                assert!(answer["error"].is_null(), "{answer}");
                assert!(answer["result"]["exceptionDetails"].is_null(), "{answer}");
                return answer["result"]["result"]["value"].clone();
            }
            assert!(deadline.tick().await, "the page never settled: {answer}");
        }
    }

    async fn call(&mut self, expression: &str) -> Value {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let id = self.next_id;
        self.next_id += 1;
        let call = serde_json::json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": { "expression": expression, "awaitPromise": true, "returnByValue": true },
        });
        self.socket
            .send(Message::text(call.to_string()))
            .await
            .unwrap();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.socket.next())
                .await
                .expect("an answer from the page")
                .expect("the socket open")
                .unwrap();
            let Message::Text(text) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).unwrap();
            if answer["id"] == id {
                return answer;
            }
        }
    }
}

impl Drop for Tab {
    fn drop(&mut self) {
        let _ = self.browser.kill();
        let _ = self.browser.wait();
    }
}

/// Puts a test record from the stream page as the holder of `token` would: types the token,
/// accepts the confirmation, submits the form; returns what the page then says.
const PUT_FROM_THE_PAGE: &str = r#"(async (token) => {
  const until = async (ok) => { for (let i = 0; i < 100 && !ok(); i++) await new Promise(r => setTimeout(r, 50)); };
  await until(() => document.getElementById("token"));
  const box = document.getElementById("token");
  // A new token draws the page again: wait for the new form, not the old one.
  const before = document.getElementById("put");
  box.value = token;
  box.dispatchEvent(new Event("change"));
  await until(() => document.getElementById("put") && document.getElementById("put") !== before);
  window.confirm = () => true;
  const out = () => document.getElementById("admin-result");
  out().textContent = "";
  document.getElementById("put").requestSubmit();
  await until(() => out().textContent);
  return out().textContent;
})"#;

/// With `SHARDLOG_SCREENSHOTS=DIR`, saves what the browser shows of `url` as `DIR/NAME.png`
/// (how the pictures in `docs/` are made).
async fn screenshot(browser: &std::path::Path, url: String, name: &str) {
    let Some(dir) = std::env::var_os("SHARDLOG_SCREENSHOTS") else {
        return;
    };
    let path = std::path::Path::new(&dir).join(format!("{name}.png"));
    let browser = browser.to_owned();
    let profile = tempfile::tempdir().unwrap();
    let profile_dir = profile.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                "--window-size=1280,1400",
                "--virtual-time-budget=4000",
            ])
            .arg(format!("--user-data-dir={}", profile_dir.display()))
            .arg(format!("--screenshot={}", path.display()))
            .arg(url)
            .output()
            .expect("run Chromium")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The numbers a plot's series carries: `data-max` and `data-last` of the polyline named
/// `series` in the figure whose label is `label`.
fn series(dom: &str, label: &str, series: &str) -> (f64, f64) {
    let figure = dom
        .split("<figure>")
        .find(|f| f.contains(&format!("aria-label=\"{label}\"")))
        .unwrap_or_else(|| panic!("no plot {label:?} in the page"));
    let line = figure
        .split("<polyline")
        .find(|l| l.contains(&format!("data-name=\"{series}\"")))
        .unwrap_or_else(|| panic!("no series {series:?} in plot {label:?}"));
    let attr = |name: &str| -> f64 {
        let start = line.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
        let end = start + line[start..].find('"').unwrap();
        line[start..end].parse().unwrap()
    };
    (attr("data-max"), attr("data-last"))
}

/// One HTTP request to the admin listener; the status and the JSON body.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let response = sender
        .send_request(request.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, json)
}

/// Waits until the stream's plotted history satisfies `done`.
async fn history_until(addr: SocketAddr, stream: &str, done: impl Fn(&Value) -> bool) {
    let deadline = Deadline::after(Duration::from_secs(30));
    loop {
        let (status, body) = call(addr, "GET", &format!("/api/streams/{stream}"), None, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if done(&body["history"]) {
            return;
        }
        assert!(
            deadline.tick().await,
            "the history never got there: {}",
            body["history"]
        );
    }
}

fn max_of(v: &Value) -> f64 {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).fold(0.0, f64::max))
        .unwrap_or(0.0)
}

fn last_of(v: &Value) -> Option<f64> {
    v.as_array()?.last()?.as_f64()
}

fn attribute(value: &str) -> pb::AttributeValue {
    pb::AttributeValue {
        data_type: "String".into(),
        string_value: value.into(),
        ..Default::default()
    }
}

// Chromium runs as a child process while the test waits on it: the server needs threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_streams_throughput_lag_and_records() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let server = TestServer::start().await;
    let http = server.http_addr;
    let client = Client::connect(server.url()).await.unwrap();
    client.create_stream("orders", 2).await.unwrap();

    // The overview lists a stream created over gRPC.
    let page = dom(&browser, format!("http://{http}/#/")).await;
    assert!(page.contains("href=\"#/stream/orders\""), "{page}");

    // A producer runs: the stream's throughput plot rises.
    let producing = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                let entries = (0..50)
                    .map(|i| pb::PutRecordsRequestEntry {
                        partition_key: format!("k{}", n * 50 + i),
                        data: Bytes::from(format!("{{\"n\": {}}}", n * 50 + i)),
                        ..Default::default()
                    })
                    .collect();
                client.put_records("orders", entries).await.unwrap();
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    const SHARDS: [&str; 2] = ["shardId-000000000000", "shardId-000000000001"];
    history_until(http, "orders", |h| {
        SHARDS
            .iter()
            .all(|id| max_of(&h["shards"][id]["bytes_in"]) > 0.0)
    })
    .await;
    let page = dom(&browser, format!("http://{http}/#/stream/orders")).await;
    let (peak, _) = series(&page, "records/s", "in");
    assert!(peak > 0.0, "the throughput plot stays flat");
    // Each shard has its own plots, in records/s and in bytes/s.
    for id in SHARDS {
        let (records, _) = series(&page, &format!("{id} records/s"), "in");
        let (bytes, _) = series(&page, &format!("{id} bytes/s"), "in");
        assert!(records > 0.0, "{id}: the records/s plot stays flat");
        assert!(
            bytes >= records * 8.0,
            "{id}: {bytes} bytes/s for {records} records/s of at least 8 bytes each"
        );
    }
    assert!(page.contains("durable next"), "{page}");
    // The durable high-water marks advance while the producer runs.
    let durable = || async {
        let (_, o) = call(http, "GET", "/api/overview", None, None).await;
        o["streams"][0]["durable_records"].as_u64().unwrap()
    };
    let first = durable().await;
    let deadline = Deadline::after(Duration::from_secs(30));
    while durable().await <= first {
        assert!(
            deadline.tick().await,
            "the durable high-water marks stand still"
        );
    }
    screenshot(&browser, format!("http://{http}/#/"), "console-overview").await;
    producing.abort();
    let _ = producing.await;

    // A lease group behind the stream shows lag, then none once it checkpoints the end.
    let member = Membership {
        stream: "orders".into(),
        group: "billing".into(),
        member_id: "m1".into(),
    };
    let joined = client.join_group(&member, None).await.unwrap();
    history_until(http, "orders", |h| max_of(&h["groups"]["billing"]) > 0.0).await;
    for lease in &joined.assignments {
        let described = client.describe_group("orders", "billing").await.unwrap();
        let progress = described
            .shards
            .iter()
            .find(|s| s.shard_id == lease.shard_id)
            .unwrap();
        let last = progress
            .latest_sequence_number
            .expect("records in the shard");
        client
            .commit_checkpoint(&member, &lease.shard_id, lease.lease_epoch, last)
            .await
            .unwrap();
    }
    history_until(http, "orders", |h| {
        last_of(&h["groups"]["billing"]) == Some(0.0)
    })
    .await;
    let page = dom(&browser, format!("http://{http}/#/stream/orders")).await;
    let (lag_peak, lag_last) = series(&page, "billing lag (records)", "lag");
    assert!(lag_peak > 0.0, "no lag was ever plotted");
    assert_eq!(lag_last, 0.0, "the lag plot does not fall to zero");
    // The same lag, shard by shard: each shard was behind, and each falls to zero.
    for id in SHARDS {
        let (peak, last) = series(&page, "billing lag per shard (records)", id);
        assert!(peak > 0.0, "{id}: no lag was ever plotted");
        assert_eq!(last, 0.0, "{id}: the lag plot does not fall to zero");
    }

    // After a reshard the page draws the closed shards and their children.
    client.update_shard_count("orders", 4).await.unwrap();
    let page = dom(&browser, format!("http://{http}/#/stream/orders")).await;
    assert!(page.contains("aria-label=\"Shard lineage"), "{page}");
    assert!(page.contains("shardId-000000000000 (closed)"), "{page}");
    assert!(page.contains("shardId-000000000005 (open)"), "{page}");
    screenshot(
        &browser,
        format!("http://{http}/#/stream/orders"),
        "console-stream",
    )
    .await;

    // The record browser: a record with attributes, and a filter that keeps only matches.
    client.create_stream("events", 1).await.unwrap();
    for (kind, n) in [("order", 1), ("refund", 2), ("order", 3)] {
        client
            .put_record_with(pb::PutRecordRequest {
                stream_name: "events".into(),
                partition_key: format!("p{n}"),
                data: Bytes::from(format!("{{\"type\": \"{kind}\", \"n\": {n}}}")),
                attributes: [("channel".to_owned(), attribute(&format!("web-{n}")))].into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let page = dom(
        &browser,
        format!("http://{http}/#/stream/events?shard=shardId-000000000000&from=trim_horizon"),
    )
    .await;
    assert!(page.contains("3 records"), "{page}");
    assert!(page.contains("channel</code> (String) = web-2"), "{page}");
    assert!(
        page.contains("&quot;refund&quot;") || page.contains("\"refund\""),
        "{page}"
    );
    let pattern = url_encode(r#"{"type": ["order"]}"#);
    let page = dom(
        &browser,
        format!("http://{http}/#/stream/events?shard=shardId-000000000000&pattern={pattern}"),
    )
    .await;
    assert!(page.contains("2 of 3 records match"), "{page}");
    screenshot(
        &browser,
        format!("http://{http}/#/stream/events?shard=shardId-000000000000&pattern={pattern}"),
        "console-records",
    )
    .await;
    assert!(
        !page.contains("web-2"),
        "a record that does not match is shown"
    );
    assert!(page.contains("web-1") && page.contains("web-3"), "{page}");
    server.stop().await;
}

/// The newest sequence number of `shard` of made-here.
async fn body_sequence(client: &Client, shard: &str) -> u64 {
    let it = client
        .get_shard_iterator("made-here", shard, shardlog::client::Position::TrimHorizon)
        .await
        .unwrap();
    let read = client.get_records(&it, 100).await.unwrap();
    read.records.last().expect("a record").sequence_number
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// Chromium runs beside the test: the server needs threads of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_are_allowed_as_over_grpc_and_refused_without_the_right() {
    use common::auth::{principal, ALL};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("auth.toml");
    let file = principal("ops", "ops-token", &[ALL])
        + &principal("viewer", "viewer-token", &[("*", &["read"])]);
    std::fs::write(&path, file).unwrap();
    let auth = shardlog::auth::Auth::from_file(&path).unwrap();
    let server =
        TestServer::start_with_auth(shardlog::BrokerConfig::new(tmp.path().join("data")), auth)
            .await;
    let http = server.http_addr;
    let create = serde_json::json!({ "name": "made-here" });

    let (status, body) = call(http, "GET", "/api/overview", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // In the browser: a reader's put from the page is refused, and nothing is stored; the
    // operator's is stored.
    let (status, _) = call(
        http,
        "POST",
        "/api/streams",
        Some("ops-token"),
        Some(serde_json::json!({ "name": "clicked", "shards": 1 })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    if let Some(browser) = browser_or_skip() {
        let mut tab = Tab::open(&browser, &format!("http://{http}/#/stream/clicked")).await;
        let said = tab
            .eval(&format!("{PUT_FROM_THE_PAGE}('viewer-token')"))
            .await;
        assert_eq!(said, "principal viewer may not write stream clicked");
        let read = "/api/streams/clicked/records?shard=shardId-000000000000";
        let (_, body) = call(http, "GET", read, Some("ops-token"), None).await;
        assert_eq!(body["records"].as_array().map(Vec::len), Some(0), "{body}");
        let said = tab.eval(&format!("{PUT_FROM_THE_PAGE}('ops-token')")).await;
        assert_eq!(said, "stored in shardId-000000000000 at 0", "{said}");
        let (_, body) = call(http, "GET", read, Some("ops-token"), None).await;
        assert_eq!(body["records"].as_array().map(Vec::len), Some(1), "{body}");
    }
    let (status, body) = call(
        http,
        "POST",
        "/api/streams",
        Some("viewer-token"),
        Some(create.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("viewer may not admin stream made-here"),
        "{body}"
    );
    let (status, body) = call(
        http,
        "POST",
        "/api/streams",
        Some("ops-token"),
        Some(create),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = call(
        http,
        "GET",
        "/api/streams/made-here",
        Some("viewer-token"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["shards"].as_array().unwrap().len(),
        4,
        "the default shard count"
    );

    let record = serde_json::json!({
        "partition_key": "k",
        "data": "{\"hello\": 1}",
        "attributes": [{ "name": "source", "value": "console" }],
    });
    let put = "/api/streams/made-here/records";
    let (status, _) = call(
        http,
        "POST",
        put,
        Some("viewer-token"),
        Some(record.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = call(http, "POST", put, Some("ops-token"), Some(record)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let shard = body["shard"].as_str().unwrap().to_owned();
    let read = format!(
        "/api/streams/made-here/records?shard={shard}&from=at_sequence&at={}",
        body["sequence"].as_str().unwrap()
    );
    let (status, body) = call(http, "GET", &read, Some("viewer-token"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["records"][0]["attributes"][0]["value"], "console");
    assert_eq!(body["records"][0]["json"], "{\n  \"hello\": 1\n}");

    // Bad input is named, and nothing is harmed by it.
    let (status, body) = call(
        http,
        "GET",
        &format!("/api/streams/made-here/records?shard={shard}&from=sideways"),
        Some("ops-token"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("invalid from"),
        "{body}"
    );
    let (status, body) = call(
        http,
        "GET",
        &format!("/api/streams/made-here/records?shard={shard}&pattern=%7Bnope"),
        Some("ops-token"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("pattern"),
        "{body}"
    );

    // A lease group's checkpoint moves by hand only while it has no live member.
    let ops = Client::connect_with(
        server.url(),
        shardlog::client::ClientOptions {
            token: Some("ops-token".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let member = Membership {
        stream: "made-here".into(),
        group: "readers".into(),
        member_id: "r1".into(),
    };
    let joined = ops.join_group(&member, None).await.unwrap();
    let lease = joined
        .assignments
        .iter()
        .find(|l| l.shard_id == shard)
        .expect("the one member leases every shard");
    let at = body_sequence(&ops, &shard).await;
    ops.commit_checkpoint(&member, &shard, lease.lease_epoch, at)
        .await
        .unwrap();
    let reset = "/api/streams/made-here/groups/readers/reset";
    let to_start = serde_json::json!({ "shard": shard });
    let (status, body) = call(
        http,
        "POST",
        reset,
        Some("ops-token"),
        Some(to_start.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("1 live members"),
        "{body}"
    );
    let (status, _) = call(
        http,
        "POST",
        reset,
        Some("viewer-token"),
        Some(to_start.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    ops.leave_group(&member).await.unwrap();
    let (status, body) = call(http, "POST", reset, Some("ops-token"), Some(to_start)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let described = ops.describe_group("made-here", "readers").await.unwrap();
    let progress = described
        .shards
        .iter()
        .find(|s| s.shard_id == shard)
        .unwrap();
    assert_eq!(
        progress.checkpoint, None,
        "the checkpoint was not moved back"
    );

    // Moving a dead-letter stream's messages: allowed as MoveMessages is.
    let redrive = serde_json::json!({ "destination": "made-here" });
    let (status, _) = call(
        http,
        "POST",
        "/api/streams/made-here/redrive",
        Some("viewer-token"),
        Some(redrive.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    ops.create_stream("jobs", 1).await.unwrap();
    ops.create_group(pb::CreateGroupRequest {
        stream_name: "jobs".into(),
        group_name: "workers".into(),
        r#type: pb::GroupType::QueueStandard as i32,
        max_receive_count: 3,
        dead_letter_stream: "made-here".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let (status, body) = call(
        http,
        "POST",
        "/api/streams/made-here/redrive",
        Some("ops-token"),
        Some(serde_json::json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["task"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );

    let (status, _) = call(
        http,
        "DELETE",
        "/api/streams/made-here",
        Some("viewer-token"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        http,
        "GET",
        "/api/streams/made-here",
        Some("viewer-token"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "a refused delete deleted");
    let (status, _) = call(
        http,
        "DELETE",
        "/api/streams/made-here",
        Some("ops-token"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        http,
        "GET",
        "/api/streams/made-here",
        Some("ops-token"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}
