//! A plain HTTP/1.1 GET for the admin endpoints, and a reader of the Prometheus text format
//! that finds a sample by name and labels.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// GETs `path`; returns the status, the content type and the body as text.
pub async fn get(addr: SocketAddr, path: &str) -> (StatusCode, String, String) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    get_on(stream, addr, path).await.expect("response")
}

/// GETs `path` over TLS, trusting what `config` trusts; an error when the connection or the
/// handshake fails.
pub async fn get_tls(
    addr: SocketAddr,
    path: &str,
    config: std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
) -> Result<(StatusCode, String, String), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = tokio_rustls::rustls::pki_types::ServerName::from(addr.ip());
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    get_on(stream, addr, path).await
}

/// GETs `path` over a connection already open.
pub async fn get_on<S>(
    stream: S,
    addr: SocketAddr,
    path: &str,
) -> Result<(StatusCode, String, String), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(conn);
    let request = Request::builder()
        .uri(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let (parts, body) = response.into_parts();
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((
        parts.status,
        content_type,
        String::from_utf8(body.to_vec()).expect("text"),
    ))
}

/// One scrape: every sample by name and labels.
#[derive(Debug, Default)]
pub struct Scrape {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    /// Scrapes `/metrics`.
    pub async fn of(addr: SocketAddr) -> Scrape {
        let (status, _, text) = get(addr, "/metrics").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        Scrape::parse(&text)
    }

    /// Reads the text format: `name{k="v",…} value` lines; comments are skipped.
    pub fn parse(text: &str) -> Scrape {
        let mut samples = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("a value: {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("closing brace");
                    let mut labels = BTreeMap::new();
                    for pair in split_labels(body) {
                        let (k, v) = pair.split_once('=').expect("k=v");
                        labels.insert(k.to_owned(), v.trim_matches('"').to_owned());
                    }
                    (name.to_owned(), labels)
                }
            };
            samples.push((name, labels, value));
        }
        Scrape { samples }
    }

    /// The sample with exactly these labels, if any.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && *l == want)
            .map(|(_, _, v)| *v)
    }

    /// The sum of every sample of `name` whose labels include these.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|(_, v)| v).sum()
    }

    /// How many samples of `name` have labels including these.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> usize {
        self.matching(name, labels).count()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = (&'a BTreeMap<String, String>, f64)> + 'a {
        self.samples
            .iter()
            .filter(move |(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, l, v)| (l, *v))
    }

    /// Whether any sample of any name carries this label value.
    pub fn mentions(&self, key: &str, value: &str) -> bool {
        self.samples
            .iter()
            .any(|(_, l, _)| l.get(key).map(String::as_str) == Some(value))
    }
}

/// Splits `k="v",k2="v2"` at the commas outside quotes.
fn split_labels(body: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in body.char_indices() {
        match c {
            '\\' if quoted && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => quoted = !quoted,
            ',' if !quoted => {
                out.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        escaped = false;
    }
    if start < body.len() {
        out.push(&body[start..]);
    }
    out
}
