//! Kinesis ARNs: `arn:aws:kinesis:REGION:ACCOUNT:stream/NAME` for a stream, and
//! `…:stream/NAME/consumer/CONSUMER:EPOCH-SECONDS` for a registered consumer. Any partition,
//! region and account are accepted on input (the name is what addresses the stream); answers
//! carry the server's configured region and account.

use crate::storage::Timestamp;

/// The ARN of stream `name`.
pub fn stream(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:kinesis:{region}:{account}:stream/{name}")
}

/// The ARN of consumer `consumer` of stream `name`, registered at `created_at`.
pub fn consumer(
    region: &str,
    account: &str,
    name: &str,
    consumer: &str,
    created_at: Timestamp,
) -> String {
    format!(
        "{}/consumer/{consumer}:{}",
        stream(region, account, name),
        created_at.as_millis() / 1000
    )
}

/// The resource part of an ARN of the Kinesis service, `stream/…`.
fn resource(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (scheme, partition, service, _region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    (scheme == "arn" && partition.starts_with("aws") && service == "kinesis" && account_ok)
        .then_some(resource)
}

/// The stream name of a stream ARN.
pub fn parse_stream(arn: &str) -> Option<&str> {
    let name = resource(arn)?.strip_prefix("stream/")?;
    (!name.is_empty() && !name.contains('/') && !name.contains(char::is_whitespace)).then_some(name)
}

/// The parts of a consumer ARN: stream name, consumer name, creation epoch seconds.
pub fn parse_consumer(arn: &str) -> Option<(&str, &str, u64)> {
    let rest = resource(arn)?.strip_prefix("stream/")?;
    let (stream, rest) = rest.split_once("/consumer/")?;
    let (consumer, epoch) = rest.rsplit_once(':')?;
    let epoch = epoch.parse().ok()?;
    (!stream.is_empty() && !consumer.is_empty() && !stream.contains('/'))
        .then_some((stream, consumer, epoch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_arns_round_trip() {
        let arn = stream("eu-west-1", "123456789012", "orders");
        assert_eq!(arn, "arn:aws:kinesis:eu-west-1:123456789012:stream/orders");
        assert_eq!(parse_stream(&arn), Some("orders"));
    }

    #[test]
    fn consumer_arns_round_trip_with_their_epoch() {
        let arn = consumer(
            "us-east-1",
            "000000000000",
            "orders",
            "billing",
            Timestamp::from_millis(1_700_000_000_999),
        );
        assert_eq!(
            arn,
            "arn:aws:kinesis:us-east-1:000000000000:stream/orders/consumer/billing:1700000000"
        );
        assert_eq!(
            parse_consumer(&arn),
            Some(("orders", "billing", 1_700_000_000))
        );
        assert_eq!(parse_stream(&arn), None);
    }

    #[test]
    fn other_services_and_malformed_accounts_are_not_kinesis_arns() {
        for arn in [
            "arn:aws:sqs:us-east-1:123456789012:stream/orders",
            "arn:aws:kinesis:us-east-1:1234:stream/orders",
            "arn:aws:kinesis:us-east-1:123456789012:table/orders",
            "arn:aws:kinesis:us-east-1:123456789012:stream/",
            "orders",
        ] {
            assert_eq!(parse_stream(arn), None, "{arn}");
        }
    }
}
