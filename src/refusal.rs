//! The answer to a connection that a listener accepted past its connection limit: every
//! request on it gets an error that names the limit, in the protocol it came in, and then
//! the connection closes (see [`crate::tls`]).
//!
//! - a gRPC call (`content-type: application/grpc…`): `RESOURCE_EXHAUSTED`, which gRPC clients
//!   treat as a reason to back off;
//! - anything else (the Kinesis API, the admin endpoints): `503 Service Unavailable` with a JSON
//!   `LimitExceededException`, which AWS SDKs retry with backoff, and `connection: close`.

use std::convert::Infallible;

use axum::body::Body;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// Answers every request on `stream` with `why` until the peer closes it or the caller stops
/// waiting. With `tls`, the handshake comes first (a peer that cannot make it gets nothing).
pub(crate) async fn answer(stream: TcpStream, tls: Option<TlsAcceptor>, why: String) {
    match tls {
        None => serve(TokioIo::new(stream), why).await,
        Some(acceptor) => {
            if let Ok(stream) = acceptor.accept(stream).await {
                serve(TokioIo::new(stream), why).await;
            }
        }
    }
}

async fn serve<I>(io: TokioIo<I>, why: String)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let response = refusal(&request, &why);
        async move { Ok::<_, Infallible>(response) }
    });
    // A peer that breaks the protocol ends its own refusal only.
    let _ = Builder::new(TokioExecutor::new())
        .serve_connection(io, service)
        .await;
}

/// The refusal of one request, in its protocol.
fn refusal<B>(request: &Request<B>, why: &str) -> Response<Body> {
    let grpc = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/grpc"));
    if grpc {
        return tonic::Status::resource_exhausted(why).into_http();
    }
    let body = serde_json::json!({ "__type": "LimitExceededException", "message": why });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grpc_call_is_refused_with_resource_exhausted_and_the_reason() {
        let request = Request::builder()
            .header(CONTENT_TYPE, "application/grpc+proto")
            .body(())
            .unwrap();
        let response = refusal(&request, "at the limit of 3 (--max-connections)");
        assert_eq!(response.status(), StatusCode::OK, "gRPC errors ride on 200");
        let status = tonic::Status::from_header_map(response.headers()).expect("a grpc-status");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(status.message(), "at the limit of 3 (--max-connections)");
    }

    #[test]
    fn any_other_request_is_refused_with_503_and_a_limit_exceeded_exception() {
        let request = Request::builder()
            .header(CONTENT_TYPE, "application/x-amz-json-1.1")
            .body(())
            .unwrap();
        let response = refusal(&request, "at the limit");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[CONNECTION], "close");
    }
}
