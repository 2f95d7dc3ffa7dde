//! Unit tests of the client: positions and errors. Every call and the `GroupConsumer` against
//! a real server are tested in `tests/client.rs`.

use super::*;

#[test]
fn positions_parse_from_their_command_line_form() {
    assert_eq!("trim-horizon".parse(), Ok(Position::TrimHorizon));
    assert_eq!("latest".parse(), Ok(Position::Latest));
    assert_eq!("at:42".parse(), Ok(Position::AtSequence(42)));
    assert_eq!("after:0".parse(), Ok(Position::AfterSequence(0)));
    assert_eq!(
        "time:1700000000123".parse(),
        Ok(Position::AtTimestamp(
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
        ))
    );
}

#[test]
fn positions_print_in_the_form_they_parse_from() {
    for text in ["trim-horizon", "latest", "at:7", "after:9", "time:1234"] {
        let position: Position = text.parse().expect("a valid position");
        assert_eq!(position.to_string(), text);
    }
}

#[test]
fn malformed_positions_are_refused_with_the_input_named() {
    for text in [
        "",
        "oldest",
        "at:",
        "at:-1",
        "after:x",
        "time:1.5",
        "seq:3",
        "at:18446744073709551616",
    ] {
        let error = text.parse::<Position>().expect_err(text);
        assert!(error.to_string().contains(&format!("{text:?}")), "{error}");
    }
}

#[test]
fn positions_become_the_matching_wire_fields() {
    let at = Position::AtSequence(5).to_starting_position();
    assert_eq!(at.r#type, ShardIteratorType::AtSequenceNumber as i32);
    assert_eq!((at.sequence_number, at.timestamp_ms), (Some(5), None));

    let after = Position::AfterSequence(6).to_starting_position();
    assert_eq!(after.r#type, ShardIteratorType::AfterSequenceNumber as i32);
    assert_eq!(after.sequence_number, Some(6));

    let time = Position::AtTimestamp(UNIX_EPOCH + Duration::from_millis(77)).to_starting_position();
    assert_eq!(time.r#type, ShardIteratorType::AtTimestamp as i32);
    assert_eq!((time.sequence_number, time.timestamp_ms), (None, Some(77)));

    let horizon = Position::TrimHorizon.to_starting_position();
    assert_eq!(horizon.r#type, ShardIteratorType::TrimHorizon as i32);
    assert_eq!(
        (horizon.sequence_number, horizon.timestamp_ms),
        (None, None)
    );
}

#[test]
fn a_time_before_the_epoch_reads_from_the_start() {
    let before = Position::AtTimestamp(UNIX_EPOCH - Duration::from_secs(1));
    assert_eq!(before.to_starting_position().timestamp_ms, Some(0));
}

#[test]
fn rpc_errors_keep_the_status_code_and_message() {
    let error = failed("PutRecord")(Status::not_found("stream \"s\" not found"));
    assert_eq!(error.code(), Some(Code::NotFound));
    assert_eq!(
        error.to_string(),
        "PutRecord failed: NotFound: stream \"s\" not found"
    );
    let source = std::error::Error::source(&error).expect("the status is the source");
    assert!(source.downcast_ref::<Status>().is_some());
}

#[tokio::test]
async fn a_malformed_address_is_reported_as_such() {
    let error = Client::connect("not a url")
        .await
        .expect_err("no such address");
    assert!(
        matches!(error, ClientError::InvalidAddress { .. }),
        "{error:?}"
    );
    assert_eq!(error.code(), None);
}

#[tokio::test]
async fn an_unreachable_server_is_a_connect_error() {
    // Bind then drop a listener: the port is free and nothing accepts on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let error = Client::connect(format!("http://{address}"))
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, ClientError::Connect { .. }), "{error:?}");
}
