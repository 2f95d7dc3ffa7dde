//! Counting gRPC requests for `/metrics`: a tower layer around every service records each
//! call's method, outcome (its gRPC code) and the time to its response headers, and counts
//! throttled calls by the reason `status` attached.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::codegen::http::{HeaderMap, Request, Response};
use tonic::Code;

use super::status::{THROTTLE_REASONS, THROTTLE_REASON_HEADER};
use crate::broker::stats::{intern, OK};
use crate::broker::Broker;

/// The name a method is counted under: `/package.Service/Method` as `Service/Method`.
fn method_name(path: &str) -> &'static str {
    let short = path
        .trim_start_matches('/')
        .rsplit_once('.')
        .map_or(path, |(_, rest)| rest);
    intern(short)
}

/// The outcome of a response: `OK`, or its gRPC code's name when its headers carry one (an
/// error answered before any message).
fn outcome(headers: &HeaderMap) -> &'static str {
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return OK;
    };
    code_name(Code::from(code))
}

/// A gRPC code's name, as Prometheus label values usually spell it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => OK,
        Code::Cancelled => "Cancelled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// Wraps every gRPC service to count its requests in the broker's request stats.
#[derive(Clone)]
pub struct MetricsLayer {
    broker: Broker,
}

impl std::fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsLayer")
    }
}

impl MetricsLayer {
    /// Counts into `broker`'s request stats.
    pub fn new(broker: Broker) -> MetricsLayer {
        MetricsLayer { broker }
    }
}

impl<S> tower_layer::Layer<S> for MetricsLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Metered<S> {
        Metered {
            inner,
            broker: self.broker.clone(),
        }
    }
}

/// A service whose calls are counted.
#[derive(Clone)]
pub struct Metered<S> {
    inner: S,
    broker: Broker,
}

impl<S> std::fmt::Debug for Metered<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metered")
    }
}

impl<S, B, R> tower_service::Service<Request<B>> for Metered<S>
where
    S: tower_service::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = method_name(request.uri().path());
        let started = Instant::now();
        let broker = self.broker.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await;
            let (outcome, throttled) = match &response {
                Ok(r) => (
                    outcome(r.headers()),
                    r.headers()
                        .get(THROTTLE_REASON_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .map(|v| {
                            THROTTLE_REASONS
                                .iter()
                                .find(|&&known| known == v)
                                .copied()
                                .unwrap_or("limit")
                        }),
                ),
                Err(_) => ("Unknown", None),
            };
            let stats = broker.request_stats();
            stats.record("grpc", method, outcome, started.elapsed());
            if let Some(reason) = throttled {
                stats.throttled("grpc", reason);
            }
            response
        })
    }
}
