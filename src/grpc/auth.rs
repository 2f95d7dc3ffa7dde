//! Authentication of gRPC calls: an interceptor turns the `authorization: Bearer …` metadata
//! into the [`Caller`] the handlers check each stream against (`UNAUTHENTICATED` when missing
//! or unknown, `PERMISSION_DENIED` naming the stream and the action when not allowed).

use tonic::{Request, Status};

use super::status::THROTTLE_REASON_HEADER;
use crate::auth::{Action, Auth, Caller, OverRate};

/// The interceptor every service sits behind.
pub(crate) fn interceptor(
    auth: Auth,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static {
    move |mut request: Request<()>| {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let caller = auth.bearer(header).map_err(Status::unauthenticated)?;
        caller.admit_request().map_err(over_rate)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// A principal over its rates: `RESOURCE_EXHAUSTED`, with the reason for the metrics.
pub(crate) fn over_rate(over: OverRate) -> Status {
    let mut status = Status::resource_exhausted(over.message);
    status.metadata_mut().insert(
        THROTTLE_REASON_HEADER,
        tonic::metadata::MetadataValue::from_static(over.reason),
    );
    status
}

/// Takes `bytes` put from the caller's byte rate.
pub(crate) fn admit_bytes(caller: &Caller, bytes: usize) -> Result<(), Status> {
    caller.admit_bytes(bytes).map_err(over_rate)
}

/// Who sent `request`: anyone when no interceptor ran (an embedded server without auth).
pub(crate) fn caller<T>(request: &Request<T>) -> Caller {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller::Anyone)
}

/// Allows `action` on `stream` for the caller of `request`.
pub(crate) fn allow<T>(request: &Request<T>, action: Action, stream: &str) -> Result<(), Status> {
    caller(request)
        .check(action, stream)
        .map_err(Status::permission_denied)
}

/// Allows `action` on `stream` for `caller`. An empty name (an optional stream not given, or
/// one the request validation refuses next, naming the field) checks nothing.
pub(crate) fn check(caller: &Caller, action: Action, stream: &str) -> Result<(), Status> {
    if stream.is_empty() {
        return Ok(());
    }
    caller
        .check(action, stream)
        .map_err(Status::permission_denied)
}
