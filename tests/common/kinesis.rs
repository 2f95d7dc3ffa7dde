//! A plain HTTP client for the Kinesis API: requests in JSON or CBOR over HTTP/1.1 or HTTP/2
//! (h2c), answers as status, headers and body. What the SDKs send, without an SDK, so tests can
//! send what no SDK would (broken bodies, wrong types) and read every byte of the answer.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value as Json;
use tokio::net::TcpStream;

pub const JSON: &str = "application/x-amz-json-1.1";
pub const CBOR: &str = "application/x-amz-cbor-1.1";

/// An answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as CBOR.
    pub fn cbor(&self) -> ciborium::Value {
        ciborium::from_reader(&self.body[..]).expect("a CBOR body")
    }

    /// `__type` and the message of a JSON error body.
    pub fn error(&self) -> (String, String) {
        let v = self.json();
        let message = v
            .get("message")
            .or_else(|| v.get("Message"))
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        (v["__type"].as_str().unwrap_or_default().to_owned(), message)
    }
}

/// A request with any method, target, content type and body, over a new HTTP/1.1 connection.
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    target: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> Answer {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut request = Request::builder()
        .method(method)
        .uri("/")
        .header("host", addr.to_string())
        .header("content-type", content_type);
    if let Some(t) = target {
        request = request.header("x-amz-target", format!("Kinesis_20131202.{t}"));
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .expect("response");
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.expect("body").to_bytes(),
    }
}

/// A JSON request.
pub async fn json(addr: SocketAddr, target: &str, body: Json) -> Answer {
    raw(
        addr,
        "POST",
        Some(target),
        JSON,
        serde_json::to_vec(&body).unwrap(),
    )
    .await
}

/// A JSON request that must succeed; its answer.
pub async fn ok(addr: SocketAddr, target: &str, body: Json) -> Json {
    let a = json(addr, target, body).await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{target}: {:?}",
        String::from_utf8_lossy(&a.body)
    );
    if a.body.is_empty() {
        Json::Null
    } else {
        a.json()
    }
}

/// A CBOR request.
pub async fn cbor(addr: SocketAddr, target: &str, body: ciborium::Value) -> Answer {
    let mut raw_body = Vec::new();
    ciborium::into_writer(&body, &mut raw_body).unwrap();
    raw(addr, "POST", Some(target), CBOR, raw_body).await
}

/// A CBOR map from text keys.
pub fn cbor_map(members: Vec<(&str, ciborium::Value)>) -> ciborium::Value {
    ciborium::Value::Map(
        members
            .into_iter()
            .map(|(k, v)| (ciborium::Value::Text(k.into()), v))
            .collect(),
    )
}

/// The member `name` of a CBOR map.
pub fn cbor_get<'a>(v: &'a ciborium::Value, name: &str) -> &'a ciborium::Value {
    v.as_map()
        .and_then(|m| m.iter().find(|(k, _)| k.as_text() == Some(name)))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name} in {v:?}"))
}

/// Opens an HTTP/2 (h2c, prior knowledge) connection and sends one request; the answer's
/// status, and its body as it streams.
pub async fn h2(addr: SocketAddr, target: &str, body: Json) -> (StatusCode, hyper::body::Incoming) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let request = Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/"))
        .header("content-type", JSON)
        .header("x-amz-target", format!("Kinesis_20131202.{target}"))
        .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())))
        .unwrap();
    let response = sender.send_request(request).await.expect("response");
    let status = response.status();
    (status, response.into_body())
}
