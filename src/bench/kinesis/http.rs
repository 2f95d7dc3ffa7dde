//! One keep-alive HTTP/1.1 connection to a Kinesis endpoint, and a call on it: `POST /` with
//! `X-Amz-Target: Kinesis_20131202.<Operation>` and a JSON 1.1 body, answered by a JSON body
//! or a Kinesis error (`{"__type": …, "message": …}`).
//!
//! The requests carry a placeholder SigV4 `Authorization` header and an `X-Amz-Date`:
//! emulators (kinesalite, shardlog) want them present and check no signature; AWS itself
//! would refuse them, and the bench is not meant for it.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use thiserror::Error;
use tokio::net::TcpStream;

use super::wire::JSON_CONTENT_TYPE;
use crate::bench::DEFAULT_RPC_TIMEOUT;

/// The prefix of every operation in `X-Amz-Target`.
const TARGET_PREFIX: &str = "Kinesis_20131202.";
/// A well-formed SigV4 header with no valid signature: see the module doc.
const PLACEHOLDER_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 \
    Credential=bench/20240101/us-east-1/kinesis/aws4_request, \
    SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0";
const PLACEHOLDER_DATE: &str = "20240101T000000Z";

/// A Kinesis endpoint: `http://host[:port][/]`. Only plain HTTP: the bench measures the
/// server, not TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisEndpoint {
    /// `host:port` as given (the port defaults to 80): the `Host` header.
    authority: String,
    /// The host to connect to, without the brackets of an IPv6 literal.
    host: String,
    port: u16,
}

impl KinesisEndpoint {
    /// Parses an endpoint URL; the error says what is wrong with it.
    pub fn parse(url: &str) -> Result<KinesisEndpoint, String> {
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(format!(
                "{url:?} is not an http:// URL (the bench speaks plain HTTP/1.1)"
            ));
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if !path.is_empty() && path != "/" {
            return Err(format!("{url:?} has a path; Kinesis requests all go to /"));
        }
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{url:?} does not name a host (and only a host)"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            // An IPv6 literal without a port: `[::1]`.
            Some((_, tail)) if tail.ends_with(']') => (authority, None),
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .map_err(|e| format!("{url:?} has an invalid port {port:?}: {e}"))?,
            None => 80,
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(format!("{url:?} does not name a host"));
        }
        Ok(KinesisEndpoint {
            authority: authority.to_owned(),
            host: host.to_owned(),
            port,
        })
    }
}

/// Why a Kinesis call failed.
#[derive(Debug, Error)]
pub enum CallError {
    #[error("when connecting to {authority}")]
    Connect {
        authority: String,
        #[source]
        source: std::io::Error,
    },
    #[error("when opening an HTTP/1.1 connection to {authority}")]
    Handshake {
        authority: String,
        #[source]
        source: hyper::Error,
    },
    #[error("when building a {operation} request")]
    Request {
        operation: &'static str,
        #[source]
        source: hyper::http::Error,
    },
    #[error("when exchanging a {operation} request")]
    Http {
        operation: &'static str,
        #[source]
        source: hyper::Error,
    },
    /// The endpoint answered with an error.
    #[error("{operation} failed with HTTP {status}: {error_type}: {message}")]
    Service {
        operation: &'static str,
        status: u16,
        /// The Kinesis error name (`ResourceNotFoundException`, …).
        error_type: String,
        message: String,
    },
    #[error("when decoding the answer to {operation}")]
    Decode {
        operation: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{operation}: no answer after {after:?}")]
    Timeout {
        operation: &'static str,
        after: Duration,
    },
}

impl CallError {
    /// The Kinesis error name, when the endpoint answered with one.
    pub fn error_type(&self) -> Option<&str> {
        match self {
            CallError::Service { error_type, .. } => Some(error_type),
            _ => None,
        }
    }

    /// The error and its causes on one line: what a run's first error shows.
    pub fn full_message(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            let _ = write!(text, ": {c}");
            cause = c.source();
        }
        text
    }

    /// Whether the connection may be in the middle of an exchange after this error, so that
    /// the next request needs a fresh one.
    pub fn breaks_connection(&self) -> bool {
        match self {
            CallError::Connect { .. }
            | CallError::Handshake { .. }
            | CallError::Http { .. }
            | CallError::Timeout { .. } => true,
            CallError::Request { .. } | CallError::Service { .. } | CallError::Decode { .. } => {
                false
            }
        }
    }
}

/// The body of a Kinesis error answer. The name may carry a namespace
/// (`com.amazonaws.kinesis#ResourceNotFoundException`); the message's key is spelt either way.
#[derive(Debug, Deserialize)]
struct ErrorBody<'a> {
    #[serde(rename = "__type", borrow, default)]
    error_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(rename = "Message", borrow, default)]
    message_capitalised: Option<Cow<'a, str>>,
}

/// One keep-alive HTTP/1.1 connection: one request at a time.
pub struct Connection {
    authority: HeaderValue,
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Connection {
    /// Connects (with Nagle's algorithm off: a request is written whole, and waits for
    /// nothing) and shakes hands; the connection is driven by a task of its own, which ends
    /// when the connection is dropped or closed by the server.
    pub async fn open(endpoint: &KinesisEndpoint) -> Result<Connection, CallError> {
        let connect = async {
            let stream = TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await?;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(stream)
        };
        let stream = match tokio::time::timeout(DEFAULT_RPC_TIMEOUT, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(CallError::Connect {
                    authority: endpoint.authority.clone(),
                    source,
                })
            }
            Err(_elapsed) => {
                return Err(CallError::Timeout {
                    operation: "connect",
                    after: DEFAULT_RPC_TIMEOUT,
                })
            }
        };
        let (sender, connection) =
            http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|source| CallError::Handshake {
                    authority: endpoint.authority.clone(),
                    source,
                })?;
        let authority = endpoint.authority.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %authority, "a Kinesis connection ended");
            }
        });
        let authority =
            HeaderValue::from_str(&endpoint.authority).map_err(|e| CallError::Request {
                operation: "connect",
                source: e.into(),
            })?;
        Ok(Connection { authority, sender })
    }

    /// Sends `body` as a JSON request for `operation` and returns the answer's body, within
    /// [`DEFAULT_RPC_TIMEOUT`]. After an error that [breaks the
    /// connection](CallError::breaks_connection), open a new one.
    pub async fn call(&mut self, operation: &'static str, body: Bytes) -> Result<Bytes, CallError> {
        match tokio::time::timeout(DEFAULT_RPC_TIMEOUT, self.exchange(operation, body)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(CallError::Timeout {
                operation,
                after: DEFAULT_RPC_TIMEOUT,
            }),
        }
    }

    async fn exchange(&mut self, operation: &'static str, body: Bytes) -> Result<Bytes, CallError> {
        let request_error = |source| CallError::Request { operation, source };
        let target = HeaderValue::from_str(&format!("{TARGET_PREFIX}{operation}"))
            .map_err(|e| request_error(e.into()))?;
        let request = Request::builder()
            .method(Method::POST)
            .uri("/")
            .header(HOST, self.authority.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE))
            .header("x-amz-target", target)
            .header("x-amz-date", HeaderValue::from_static(PLACEHOLDER_DATE))
            .header(
                AUTHORIZATION,
                HeaderValue::from_static(PLACEHOLDER_AUTHORIZATION),
            )
            .body(Full::new(body))
            .map_err(request_error)?;
        let http = |source| CallError::Http { operation, source };
        self.sender.ready().await.map_err(http)?;
        let response = self.sender.send_request(request).await.map_err(http)?;
        let status = response.status();
        let error_header = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(http)?
            .to_bytes();
        if status.is_success() {
            return Ok(body);
        }
        let parsed: Option<ErrorBody<'_>> = serde_json::from_slice(&body).ok();
        let error_type = parsed
            .as_ref()
            .and_then(|b| b.error_type.as_deref())
            .or(error_header.as_deref())
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
            .unwrap_or_else(|| "UnknownError".to_owned());
        let message = parsed
            .as_ref()
            .and_then(|b| b.message.as_deref().or(b.message_capitalised.as_deref()))
            .map_or_else(
                || String::from_utf8_lossy(&body).into_owned(),
                str::to_owned,
            );
        Err(CallError::Service {
            operation,
            status: status.as_u16(),
            error_type,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_take_a_host_and_an_optional_port() {
        let e = KinesisEndpoint::parse("http://127.0.0.1:4567").expect("valid");
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 4567));
        assert_eq!(e.authority, "127.0.0.1:4567");
        let e = KinesisEndpoint::parse("http://kinesis.local/").expect("valid");
        assert_eq!((e.host.as_str(), e.port), ("kinesis.local", 80));
        let e = KinesisEndpoint::parse("http://[::1]:4569").expect("valid");
        assert_eq!((e.host.as_str(), e.port), ("::1", 4569));
        assert_eq!(e.authority, "[::1]:4569");
        let e = KinesisEndpoint::parse("http://[::1]").expect("valid");
        assert_eq!((e.host.as_str(), e.port), ("::1", 80));
    }

    #[test]
    fn endpoints_other_than_plain_http_to_a_host_are_refused() {
        for url in [
            "https://127.0.0.1:4567",
            "127.0.0.1:4567",
            "http://",
            "http://:4567",
            "http://127.0.0.1:99999",
            "http://127.0.0.1:port",
            "http://127.0.0.1:4567/streams",
            "http://user@127.0.0.1:4567",
        ] {
            assert!(KinesisEndpoint::parse(url).is_err(), "{url} accepted");
        }
    }

    #[test]
    fn a_service_error_names_its_type_and_breaks_nothing() {
        let e = CallError::Service {
            operation: "DescribeStreamSummary",
            status: 400,
            error_type: "ResourceNotFoundException".into(),
            message: "Stream bench under account 000000000000 not found.".into(),
        };
        assert_eq!(e.error_type(), Some("ResourceNotFoundException"));
        assert!(!e.breaks_connection());
        assert!(e
            .full_message()
            .contains("HTTP 400: ResourceNotFoundException"));
        let timeout = CallError::Timeout {
            operation: "GetRecords",
            after: Duration::from_secs(30),
        };
        assert!(timeout.breaks_connection());
        assert_eq!(timeout.error_type(), None);
    }
}
