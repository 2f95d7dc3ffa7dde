//! AWS Signature Version 4, verified: with an auth file, every Kinesis API request must carry
//! an `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` header made
//! with one of the file's access keys. The server rebuilds the canonical request from what it
//! received, derives the signing key from the key's secret and the credential scope, and
//! compares signatures in constant time; a request dated more than [`MAX_CLOCK_SKEW`] away
//! from the server's clock is refused, as AWS does.

use std::time::Duration;

use axum::http::{HeaderMap, Method, Uri};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::error::{ErrorKind, KinesisError};
use crate::auth::{Authenticator, Caller};

/// How far a request's `X-Amz-Date` may be from the server's clock (AWS's 15 minutes).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The parts of an `Authorization` header.
struct Credential<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse(header: &str) -> Option<Credential<'_>> {
    let rest = header.strip_prefix(ALGORITHM)?.trim_start();
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        match key {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    let mut scope = credential?.split('/');
    let access_key = scope.next()?;
    let date = scope.next()?;
    let region = scope.next()?;
    let service = scope.next()?;
    if scope.next()? != "aws4_request" || scope.next().is_some() {
        return None;
    }
    Some(Credential {
        access_key,
        date,
        region,
        service,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    })
}

fn invalid_signature() -> KinesisError {
    KinesisError::new(
        ErrorKind::InvalidSignature,
        "The request signature we calculated does not match the signature you provided. Check \
         your AWS Secret Access Key and signing method. Consult the service documentation for \
         details.",
    )
}

/// Seconds since the epoch of an `X-Amz-Date` (`20150830T123600Z`).
fn amz_date_seconds(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<u64>().ok();
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
    let (y, mo) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe;
    let days = days.checked_sub(719_468)?;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// Verifies the request's signature against the principals of `auth`; the caller it stands
/// for, or the error Kinesis answers.
pub fn verify(
    auth: &Authenticator,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    now_seconds: u64,
) -> Result<Caller, KinesisError> {
    let Some(header) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(KinesisError::new(
            ErrorKind::MissingAuthenticationToken,
            "Missing Authentication Token",
        ));
    };
    let credential = parse(header).ok_or_else(|| {
        KinesisError::new(
            ErrorKind::IncompleteSignature,
            format!("Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters of the {ALGORITHM} algorithm."),
        )
    })?;
    let Some((principal, secret)) = auth.by_access_key(credential.access_key) else {
        return Err(KinesisError::new(
            ErrorKind::UnrecognizedClient,
            "The security token included in the request is invalid.",
        ));
    };
    let header_text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let amz_date = header_text("x-amz-date").ok_or_else(invalid_signature)?;
    let signed_at = amz_date_seconds(amz_date).ok_or_else(invalid_signature)?;
    if !amz_date.starts_with(credential.date) {
        return Err(invalid_signature());
    }
    if signed_at.abs_diff(now_seconds) > MAX_CLOCK_SKEW.as_secs() {
        return Err(KinesisError::new(
            ErrorKind::InvalidSignature,
            format!(
                "Signature expired: {amz_date} is now earlier or later than the server's time by \
                 more than {} minutes.",
                MAX_CLOCK_SKEW.as_secs() / 60
            ),
        ));
    }
    if !credential.signed_headers.contains(&"host") {
        return Err(invalid_signature());
    }
    // The canonical request, as the client built it from what it sent.
    let mut canonical_headers = String::new();
    for name in &credential.signed_headers {
        let values: Vec<String> = headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    let payload_hash = hex(&Sha256::digest(body));
    let path = match uri.path() {
        "" => "/",
        p => p,
    };
    let mut query: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|q| !q.is_empty())
        .collect();
    query.sort_unstable();
    let canonical_request = format!(
        "{method}\n{path}\n{}\n{canonical_headers}\n{}\n{payload_hash}",
        query.join("&"),
        credential.signed_headers.join(";"),
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        credential.date, credential.region, credential.service
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{secret}").as_bytes(),
        credential.date.as_bytes(),
    );
    for part in [credential.region, credential.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let expected = hex(&hmac(&key, string_to_sign.as_bytes()));
    let presented = credential.signature.as_bytes();
    let same = expected.len() == presented.len()
        && expected
            .as_bytes()
            .iter()
            .zip(presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(invalid_signature());
    }
    Ok(Caller::Principal(principal))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Any `Authorization` and `X-Amz-Date` text, cut or garbled, is refused with an
        /// error and never panics; only the key's own signature passes.
        #[test]
        fn any_header_text_is_refused_without_a_panic(
            auth_header in "\\PC{0,200}",
            date in "[0-9TZ]{0,20}",
            cut in 0usize..220,
        ) {
            let auth = Authenticator::parse(
                "[[principal]]\nname = \"p\"\naccess_keys = [{ id = \"AKID\", secret = \"s\" }]\n",
            )
            .unwrap();
            let real = format!(
                "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/kinesis/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature={auth_header}"
            );
            for text in [auth_header.clone(), real.chars().take(cut).collect::<String>()] {
                let mut headers = HeaderMap::new();
                if let Ok(v) = text.parse() {
                    headers.insert("authorization", v);
                }
                if let Ok(v) = date.parse() {
                    headers.insert("x-amz-date", v);
                }
                headers.insert("host", "localhost".parse().unwrap());
                let uri: Uri = "/".parse().unwrap();
                proptest::prop_assert!(
                    verify(&auth, &Method::POST, &uri, &headers, b"[]", 1_440_938_160).is_err()
                );
            }
        }
    }

    #[test]
    fn amz_dates_read_as_unix_seconds() {
        assert_eq!(amz_date_seconds("19700101T000000Z"), Some(0));
        assert_eq!(amz_date_seconds("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(amz_date_seconds("20240229T000000Z"), Some(1_709_164_800));
        assert_eq!(amz_date_seconds("2015-08-30"), None);
        assert_eq!(amz_date_seconds("20151330T123600Z"), None);
    }

    /// The example of AWS's SigV4 documentation (GET with a query, service `iam`).
    #[test]
    fn the_documented_example_verifies_and_a_changed_body_does_not() {
        let auth = Authenticator::parse(
            "[[principal]]\nname = \"example\"\naccess_keys = [{ id = \"AKIDEXAMPLE\", secret = \"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\" }]\n",
        )
        .unwrap();
        let uri: Uri = "/?Action=ListUsers&Version=2010-05-08".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .unwrap(),
        );
        headers.insert("host", "iam.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
                .parse()
                .unwrap(),
        );
        let at = amz_date_seconds("20150830T123600Z").unwrap();
        let caller = verify(&auth, &Method::GET, &uri, &headers, b"", at).unwrap();
        assert!(matches!(caller, Caller::Principal(p) if p.name == "example"));
        let tampered = verify(&auth, &Method::GET, &uri, &headers, b"x", at).unwrap_err();
        assert_eq!(tampered.kind, ErrorKind::InvalidSignature);
        let late = verify(&auth, &Method::GET, &uri, &headers, b"", at + 3600).unwrap_err();
        assert!(
            late.message.contains("Signature expired"),
            "{}",
            late.message
        );
    }
}
