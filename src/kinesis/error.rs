//! Kinesis's errors: the exception names the SDKs parse from `__type`, their HTTP statuses, and
//! every broker error mapped to the one a Kinesis client expects (so that its retries behave:
//! throttling and 5xx are retried, validation is not). The one place the mapping is made.

use axum::http::StatusCode;

use super::value::{Encoding, Out};
use crate::broker::iterator::IteratorError;
use crate::broker::BrokerError;
use crate::grpc::status::code_of;
use crate::meta::MetaError;
use crate::storage::StorageError;

/// The exceptions Kinesis answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The stream, shard or consumer does not exist.
    ResourceNotFound,
    /// The resource exists already, or is busy with another change.
    ResourceInUse,
    /// A value is acceptable in shape but not in meaning.
    InvalidArgument,
    /// Too many of something, or too many requests.
    LimitExceeded,
    /// Over a shard's throughput, or the server is out of room: retried by the SDKs.
    ProvisionedThroughputExceeded,
    /// The shard iterator is older than its lifetime.
    ExpiredIterator,
    /// The pagination token is older than its lifetime.
    ExpiredNextToken,
    /// A field breaks its shape's constraints (length, pattern, range, enum).
    Validation,
    /// The body is not the encoding it claims, or a field has the wrong type.
    Serialization,
    /// `X-Amz-Target` names no operation.
    UnknownOperation,
    /// The request is not allowed.
    AccessDenied,
    /// The request carries no signature (with an auth file).
    MissingAuthenticationToken,
    /// The `Authorization` header is not a whole SigV4 signature.
    IncompleteSignature,
    /// The access key id is not known.
    UnrecognizedClient,
    /// The signature does not match, or the request is too old or too new.
    InvalidSignature,
    /// A KMS key was asked for; there is no KMS here.
    KmsNotFound,
    /// The server failed: retried by the SDKs.
    InternalFailure,
    /// The server is stopping or cannot take the request now: retried by the SDKs.
    ServiceUnavailable,
}

impl ErrorKind {
    /// The name in `__type`.
    pub fn type_name(self) -> &'static str {
        match self {
            ErrorKind::ResourceNotFound => "ResourceNotFoundException",
            ErrorKind::ResourceInUse => "ResourceInUseException",
            ErrorKind::InvalidArgument => "InvalidArgumentException",
            ErrorKind::LimitExceeded => "LimitExceededException",
            ErrorKind::ProvisionedThroughputExceeded => "ProvisionedThroughputExceededException",
            ErrorKind::ExpiredIterator => "ExpiredIteratorException",
            ErrorKind::ExpiredNextToken => "ExpiredNextTokenException",
            ErrorKind::Validation => "ValidationException",
            ErrorKind::Serialization => "SerializationException",
            ErrorKind::UnknownOperation => "UnknownOperationException",
            ErrorKind::AccessDenied => "AccessDeniedException",
            ErrorKind::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            ErrorKind::IncompleteSignature => "IncompleteSignatureException",
            ErrorKind::UnrecognizedClient => "UnrecognizedClientException",
            ErrorKind::InvalidSignature => "InvalidSignatureException",
            ErrorKind::KmsNotFound => "KMSNotFoundException",
            ErrorKind::InternalFailure => "InternalFailure",
            ErrorKind::ServiceUnavailable => "ServiceUnavailableException",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InternalFailure => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::MissingAuthenticationToken => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A failed request: what Kinesis would name it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisError {
    /// The exception.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
}

impl KinesisError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> KinesisError {
        KinesisError {
            kind,
            message: message.into(),
        }
    }

    /// `InvalidArgumentException`.
    pub fn invalid(message: impl Into<String>) -> KinesisError {
        KinesisError::new(ErrorKind::InvalidArgument, message)
    }

    /// The error body, in `encoding`. `SerializationException` carries `Message`, as Kinesis
    /// sends it; the others `message`.
    pub fn body(&self, encoding: Encoding) -> Vec<u8> {
        let key = if self.kind == ErrorKind::Serialization {
            "Message"
        } else {
            "message"
        };
        Out::Struct(vec![
            ("__type", Out::str(self.kind.type_name())),
            (key, Out::str(self.message.clone())),
        ])
        .encode(encoding)
    }
}

/// The account and region names errors and ARNs carry.
#[derive(Debug, Clone, Copy)]
pub struct Account<'a> {
    /// The account id.
    pub id: &'a str,
}

impl Account<'_> {
    /// The Kinesis error for a broker error, with Kinesis's wording where a client may match
    /// on it (not found, in use, iterator).
    pub fn error(self, e: &BrokerError) -> KinesisError {
        let account = self.id;
        match e {
            BrokerError::StreamNotFound { stream } => KinesisError::new(
                ErrorKind::ResourceNotFound,
                format!("Stream {stream} under account {account} not found."),
            ),
            BrokerError::StreamExists { stream } => KinesisError::new(
                ErrorKind::ResourceInUse,
                format!("Stream {stream} under account {account} already exists."),
            ),
            BrokerError::ShardNotFound { stream, shard } => KinesisError::new(
                ErrorKind::ResourceNotFound,
                format!("Shard {shard} in stream {stream} under account {account} does not exist"),
            ),
            BrokerError::Iterator(IteratorError::Malformed) => {
                KinesisError::invalid("Invalid ShardIterator.")
            }
            BrokerError::Iterator(IteratorError::Expired { age_ms, ttl_ms }) => {
                let now = crate::storage::Timestamp::now().as_millis();
                KinesisError::new(
                    ErrorKind::ExpiredIterator,
                    format!(
                        "Iterator expired. The iterator was created at time {} while right now \
                         it is {} which is further in the future than the tolerated delay of \
                         {ttl_ms} milliseconds.",
                        java_date(now.saturating_sub(*age_ms)),
                        java_date(now)
                    ),
                )
            }
            BrokerError::TooMany {
                what: "consumers",
                stream,
                limit,
            } => KinesisError::new(
                ErrorKind::LimitExceeded,
                format!(
                    "Stream {stream} under account {account} cannot have more than {limit} consumers."
                ),
            ),
            BrokerError::TooMany {
                what,
                stream,
                limit,
            } => KinesisError::invalid(format!(
                "Failed to add {what} to stream {stream} under account {account} because a given \
                 stream cannot have more than {limit} {what} associated with it."
            )),
            BrokerError::Meta(MetaError::ConsumerExists { stream, consumer }) => {
                KinesisError::new(
                    ErrorKind::ResourceInUse,
                    format!(
                        "Consumer {consumer} under stream {stream} already exists for account {account}."
                    ),
                )
            }
            BrokerError::Meta(MetaError::ConsumerNotFound { stream, consumer }) => {
                KinesisError::new(
                    ErrorKind::ResourceNotFound,
                    format!(
                        "Consumer {consumer} under stream {stream} not found for account {account}."
                    ),
                )
            }
            BrokerError::StreamUpdating { stream } => KinesisError::new(
                ErrorKind::ResourceInUse,
                format!(
                    "Stream {stream} under account {account} not ACTIVE, instead in state UPDATING"
                ),
            ),
            BrokerError::ReshardLimit { .. } | BrokerError::ServerLimit { .. } => {
                KinesisError::new(ErrorKind::LimitExceeded, e.to_string())
            }
            // Not a rate to slow down to: an internal failure (SDKs retry it, with backoff)
            // whose message says the disk is full.
            BrokerError::Storage(StorageError::DiskFull { .. }) => {
                KinesisError::new(ErrorKind::InternalFailure, e.to_string())
            }
            BrokerError::Throttled { stream, shard, .. } => KinesisError::new(
                ErrorKind::ProvisionedThroughputExceeded,
                format!("Rate exceeded for shard {shard} in stream {stream} under account {account}."),
            ),
            BrokerError::InvalidArgument { .. }
            | BrokerError::InvalidAttribute { .. }
            | BrokerError::Model(_) => KinesisError::invalid(e.to_string()),
            other => by_code(other),
        }
    }
}

/// A time as Java's `Date.toString` writes it in UTC: `Thu Jun 17 12:22:44 UTC 2021`.
fn java_date(ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day, hour, minute, second, _) =
        crate::storage::Timestamp::from_millis(ms).civil();
    let days = ms / 1000 / 86_400;
    format!(
        "{} {} {day:02} {hour:02}:{minute:02}:{second:02} UTC {year}",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
    )
}

/// The exception for an error of no particular wording, by its gRPC code.
fn by_code(e: &BrokerError) -> KinesisError {
    use tonic::Code;
    let kind = match code_of(e) {
        Code::NotFound => ErrorKind::ResourceNotFound,
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => ErrorKind::ResourceInUse,
        Code::InvalidArgument | Code::OutOfRange => ErrorKind::InvalidArgument,
        Code::ResourceExhausted => ErrorKind::ProvisionedThroughputExceeded,
        Code::PermissionDenied | Code::Unauthenticated => ErrorKind::AccessDenied,
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded => {
            ErrorKind::ServiceUnavailable
        }
        Code::Ok | Code::Unknown | Code::Unimplemented | Code::Internal | Code::DataLoss => {
            ErrorKind::InternalFailure
        }
    };
    if kind == ErrorKind::InternalFailure {
        tracing::error!(error = %e, "kinesis request failed");
    }
    KinesisError::new(kind, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::StreamName;

    fn account() -> Account<'static> {
        Account { id: "000000000000" }
    }

    #[test]
    fn not_found_and_in_use_carry_kinesis_wording() {
        let stream = StreamName::new("orders").unwrap();
        let e = account().error(&BrokerError::StreamNotFound {
            stream: stream.clone(),
        });
        assert_eq!(e.kind, ErrorKind::ResourceNotFound);
        assert_eq!(
            e.message,
            "Stream orders under account 000000000000 not found."
        );
        let e = account().error(&BrokerError::StreamExists { stream });
        assert_eq!(e.kind, ErrorKind::ResourceInUse);
    }

    #[test]
    fn retried_kinds_are_the_ones_sdks_retry() {
        let full = BrokerError::Storage(StorageError::DiskFull {
            op: "write",
            path: "x".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        });
        let said = account().error(&full);
        assert_eq!(said.kind, ErrorKind::InternalFailure);
        assert_eq!(said.kind.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            said.message.contains("no space left on device"),
            "{}",
            said.message
        );
        assert_eq!(
            account().error(&BrokerError::ShuttingDown).kind.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            account()
                .error(&BrokerError::Iterator(IteratorError::Malformed))
                .kind
                .status(),
            StatusCode::BAD_REQUEST
        );
    }

    /// Every broker error, by its gRPC code, becomes the exception whose retry behaviour the
    /// code means: throttling and unavailability retried, bad input not, failures as 5xx.
    #[tokio::test]
    async fn every_broker_error_maps_to_the_exception_its_code_means() {
        use tonic::Code;
        for (error, code) in crate::grpc::status::tests::broker().await {
            let e = account().error(&error);
            let allowed: &[ErrorKind] = match code {
                Code::NotFound => &[ErrorKind::ResourceNotFound],
                Code::AlreadyExists => &[ErrorKind::ResourceInUse],
                Code::FailedPrecondition => &[ErrorKind::ResourceInUse, ErrorKind::ExpiredIterator],
                Code::InvalidArgument => &[ErrorKind::InvalidArgument],
                // A full disk is an internal failure that says so (retried, never "slow down").
                Code::ResourceExhausted
                    if matches!(error, BrokerError::Storage(StorageError::DiskFull { .. })) =>
                {
                    &[ErrorKind::InternalFailure]
                }
                Code::ResourceExhausted => &[
                    ErrorKind::ProvisionedThroughputExceeded,
                    ErrorKind::LimitExceeded,
                    ErrorKind::InvalidArgument,
                ],
                Code::Unavailable => &[ErrorKind::ServiceUnavailable],
                Code::Internal | Code::DataLoss => &[ErrorKind::InternalFailure],
                Code::PermissionDenied => &[ErrorKind::AccessDenied],
                other => panic!("a code the table should not hold: {other:?}"),
            };
            assert!(
                allowed.contains(&e.kind),
                "{error:?} ({code:?}) became {e:?}"
            );
            let retried = matches!(
                e.kind,
                ErrorKind::ProvisionedThroughputExceeded
                    | ErrorKind::LimitExceeded
                    | ErrorKind::ServiceUnavailable
                    | ErrorKind::InternalFailure
            );
            let transient = matches!(
                code,
                Code::ResourceExhausted | Code::Unavailable | Code::Internal | Code::DataLoss
            );
            // Too many tags is a request to fix, not to retry.
            if !matches!(error, BrokerError::TooMany { what: "tags", .. }) {
                assert_eq!(retried, transient, "{error:?} became {e:?}");
            }
        }
    }

    #[test]
    fn dates_read_as_java_writes_them() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        // 2021-06-17T12:22:44Z, the time in Kinesis's documented message.
        assert_eq!(java_date(1_623_932_564_000), "Thu Jun 17 12:22:44 UTC 2021");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    }

    #[test]
    fn a_serialization_error_says_message_with_a_capital() {
        let body = KinesisError::new(ErrorKind::Serialization, "bad").body(Encoding::Json);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"__type":"SerializationException","Message":"bad"}"#
        );
    }
}
