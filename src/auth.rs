//! Who may do what: the principals of `--auth-file`, their credentials (bearer tokens kept as
//! SHA-256 digests; access keys for the Kinesis API) and their grants (stream name globs with
//! the actions `read`, `write`, `admin`). Without an auth file every request is allowed.
//!
//! ```toml
//! open_metrics = false          # true: /metrics answers without a token
//!
//! [[principal]]
//! name = "orders-writer"
//! tokens_sha256 = ["<hex SHA-256 of the token>"]
//! access_keys = [{ id = "AKIDEXAMPLE", secret = "…" }]
//! [[principal.allow]]
//! streams = "orders*"
//! actions = ["read", "write"]
//! ```
//!
//! The file is read at start and again on SIGHUP ([`Auth::reload`]); a file that does not
//! load leaves the one in force.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use std::num::NonZeroU32;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::broker::quotas::{take, Limiter};

/// What a request does to a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Describe it, read its records, consume it in a group or a queue.
    Read,
    /// Put records into it.
    Write,
    /// Create, delete, reshard or change it; make and delete its groups and rules.
    Admin,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Admin => "admin",
        })
    }
}

/// Why an auth file does not load.
#[derive(Debug, Error)]
pub enum AuthError {
    /// It cannot be read.
    #[error("cannot read auth file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is not valid TOML of the expected shape.
    #[error("auth file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key named.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    #[serde(default)]
    open_metrics: bool,
    #[serde(default, rename = "principal")]
    principals: Vec<PrincipalShape>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalShape {
    name: String,
    #[serde(default)]
    requests_per_second: Option<NonZeroU32>,
    #[serde(default)]
    bytes_per_second: Option<NonZeroU32>,
    #[serde(default)]
    tokens_sha256: Vec<String>,
    #[serde(default)]
    access_keys: Vec<AccessKeyShape>,
    #[serde(default)]
    allow: Vec<GrantShape>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessKeyShape {
    id: String,
    secret: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantShape {
    streams: String,
    actions: Vec<Action>,
}

/// One principal: its name, what it may do, and how fast.
#[derive(Debug)]
pub struct Principal {
    /// Its name, as errors and logs show it.
    pub name: String,
    grants: Vec<(String, Vec<Action>)>,
    /// Requests per second, over every API.
    requests: Option<Limiter>,
    /// Bytes put per second (record data, keys and attributes), over every API.
    bytes: Option<Limiter>,
}

/// Why a principal's request was refused for its rates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverRate {
    /// The reason it is counted under: `principal_requests` or `principal_bytes`.
    pub reason: &'static str,
    /// What the client is told: the principal, the limit and the wait.
    pub message: String,
}

impl Principal {
    /// Takes one request from its request rate.
    pub fn admit_request(&self) -> Result<(), OverRate> {
        self.admit(self.requests.as_ref(), 1, "principal_requests", "requests")
    }

    /// Takes `bytes` put from its byte rate.
    pub fn admit_bytes(&self, bytes: usize) -> Result<(), OverRate> {
        self.admit(self.bytes.as_ref(), bytes, "principal_bytes", "bytes put")
    }

    fn admit(
        &self,
        limiter: Option<&Limiter>,
        n: usize,
        reason: &'static str,
        what: &str,
    ) -> Result<(), OverRate> {
        let Some(l) = limiter else { return Ok(()) };
        take(l, n).map_err(|wait| OverRate {
            reason,
            message: format!(
                "principal {} is over its limit of {} {what} per second; retry after {} ms",
                self.name,
                l.rate(),
                wait.as_millis().max(1)
            ),
        })
    }

    /// Whether it may do `action` to `stream`.
    pub fn may(&self, action: Action, stream: &str) -> bool {
        self.grants
            .iter()
            .any(|(glob, actions)| actions.contains(&action) && glob_matches(glob, stream))
    }
}

/// Whether `name` matches `glob`: `*` stands for any run of characters, `?` for one.
pub fn glob_matches(glob: &str, name: &str) -> bool {
    let (g, n): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    let (mut gi, mut ni) = (0, 0);
    // Where the last `*` was, and the name position it stood for so far.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == n[ni]) {
            gi += 1;
            ni += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some((gi, ni));
            gi += 1;
        } else if let Some((sg, sn)) = star {
            gi = sg + 1;
            ni = sn + 1;
            star = Some((sg, sn + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == '*')
}

/// The principals of one auth file, ready to look up.
#[derive(Debug)]
pub struct Authenticator {
    principals: Vec<Arc<Principal>>,
    /// Token digests, with the principal each belongs to.
    tokens: Vec<([u8; 32], usize)>,
    /// Access key ids, with their secret and principal.
    access_keys: HashMap<String, (String, usize)>,
    open_metrics: bool,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two digests without stopping at the first difference.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authenticator {
    /// Reads an auth file.
    pub fn load(path: &Path) -> Result<Authenticator, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.to_owned(),
            source,
        })?;
        Authenticator::parse(&text).map_err(|message| AuthError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Reads an auth file's text; the error names what is wrong.
    pub fn parse(text: &str) -> Result<Authenticator, String> {
        let shape: FileShape = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut out = Authenticator {
            principals: Vec::new(),
            tokens: Vec::new(),
            access_keys: HashMap::new(),
            open_metrics: shape.open_metrics,
        };
        for (i, p) in shape.principals.into_iter().enumerate() {
            if p.name.is_empty() {
                return Err(format!("principal {i}: `name` is empty"));
            }
            for hex in &p.tokens_sha256 {
                let bytes = decode_hex(hex).ok_or_else(|| {
                    format!(
                        "principal {}: `tokens_sha256` holds {hex:?}, not 64 hex digits",
                        p.name
                    )
                })?;
                out.tokens.push((bytes, i));
            }
            for key in p.access_keys {
                if key.id.is_empty() || key.secret.is_empty() {
                    return Err(format!(
                        "principal {}: an access key needs an `id` and a `secret`",
                        p.name
                    ));
                }
                if out
                    .access_keys
                    .insert(key.id.clone(), (key.secret, i))
                    .is_some()
                {
                    return Err(format!(
                        "access key {} is given to two principals (`access_keys`)",
                        key.id
                    ));
                }
            }
            out.principals.push(Arc::new(Principal {
                name: p.name,
                grants: p
                    .allow
                    .into_iter()
                    .map(|g| (g.streams, g.actions))
                    .collect(),
                requests: p.requests_per_second.map(Limiter::per_second),
                bytes: p.bytes_per_second.map(Limiter::per_second),
            }));
        }
        Ok(out)
    }

    /// The principal a bearer token belongs to. Every digest is compared, each without
    /// stopping early, so the time taken does not depend on which one matches.
    pub fn by_token(&self, token: &str) -> Option<Arc<Principal>> {
        let presented = digest(token);
        let mut found = None;
        for (d, i) in &self.tokens {
            if same(d, &presented) {
                found = Some(*i);
            }
        }
        found.map(|i| Arc::clone(&self.principals[i]))
    }

    /// The principal of this name.
    pub fn by_name(&self, name: &str) -> Option<Arc<Principal>> {
        self.principals.iter().find(|p| p.name == name).cloned()
    }

    /// The principal and secret of an access key id.
    pub fn by_access_key(&self, id: &str) -> Option<(Arc<Principal>, &str)> {
        self.access_keys
            .get(id)
            .map(|(secret, i)| (Arc::clone(&self.principals[*i]), secret.as_str()))
    }

    /// Whether `/metrics` answers without a token.
    pub fn open_metrics(&self) -> bool {
        self.open_metrics
    }
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// What requests are checked against: nothing (open), or the principals of an auth file,
/// reloadable. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    file: Option<(PathBuf, Arc<RwLock<Arc<Authenticator>>>)>,
}

/// Who sent a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Nobody checked: the server runs without an auth file.
    Anyone,
    /// An authenticated principal.
    Principal(Arc<Principal>),
}

impl Caller {
    /// Takes one request from the principal's request rate (anyone is unlimited).
    pub fn admit_request(&self) -> Result<(), OverRate> {
        match self {
            Caller::Anyone => Ok(()),
            Caller::Principal(p) => p.admit_request(),
        }
    }

    /// Takes `bytes` put from the principal's byte rate.
    pub fn admit_bytes(&self, bytes: usize) -> Result<(), OverRate> {
        match self {
            Caller::Anyone => Ok(()),
            Caller::Principal(p) => p.admit_bytes(bytes),
        }
    }

    /// Whether the caller may do `action` to `stream`.
    pub fn may(&self, action: Action, stream: &str) -> bool {
        match self {
            Caller::Anyone => true,
            Caller::Principal(p) => p.may(action, stream),
        }
    }

    /// Allows `action` on `stream`, or says why not (naming the principal, action and stream).
    pub fn check(&self, action: Action, stream: &str) -> Result<(), String> {
        match self {
            Caller::Principal(p) if !p.may(action, stream) => Err(format!(
                "principal {} may not {action} stream {stream}",
                p.name
            )),
            _ => Ok(()),
        }
    }
}

impl Auth {
    /// No auth file: every request is allowed.
    pub fn open() -> Auth {
        Auth::default()
    }

    /// The principals of `path`.
    pub fn from_file(path: &Path) -> Result<Auth, AuthError> {
        let authenticator = Authenticator::load(path)?;
        Ok(Auth {
            file: Some((
                path.to_owned(),
                Arc::new(RwLock::new(Arc::new(authenticator))),
            )),
        })
    }

    /// Reads the file again; on an error the principals in force stay.
    pub fn reload(&self) -> Result<(), AuthError> {
        if let Some((path, current)) = &self.file {
            let fresh = Authenticator::load(path)?;
            *current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        }
        Ok(())
    }

    /// True when requests are checked.
    pub fn is_on(&self) -> bool {
        self.file.is_some()
    }

    /// The principals in force, `None` when open.
    pub fn current(&self) -> Option<Arc<Authenticator>> {
        self.file
            .as_ref()
            .map(|(_, a)| Arc::clone(&a.read().unwrap_or_else(|p| p.into_inner())))
    }

    /// Who a bearer token (the value of an `authorization: Bearer …` header, scheme
    /// included) stands for: `Ok(Anyone)` when open; an error naming what is wrong otherwise.
    pub fn bearer(&self, header: Option<&str>) -> Result<Caller, &'static str> {
        let Some(auth) = self.current() else {
            return Ok(Caller::Anyone);
        };
        let header = header.ok_or("no credentials: send `authorization: Bearer <token>`")?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or("the authorization is not a bearer token")?;
        auth.by_token(token.trim())
            .map(Caller::Principal)
            .ok_or("the bearer token is not known")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
open_metrics = true

[[principal]]
name = "writer"
tokens_sha256 = ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
access_keys = [{ id = "AKID", secret = "s3cret" }]
[[principal.allow]]
streams = "orders*"
actions = ["read", "write"]
[[principal.allow]]
streams = "audit-?"
actions = ["admin"]
"#;

    #[test]
    fn a_token_finds_its_principal_and_grants_match_by_glob() {
        let auth = Authenticator::parse(FILE).unwrap();
        // SHA-256 of "test".
        let p = auth.by_token("test").expect("a known token");
        assert_eq!(p.name, "writer");
        assert!(auth.by_token("Test").is_none());
        assert!(p.may(Action::Write, "orders"));
        assert!(p.may(Action::Read, "orders-eu"));
        assert!(!p.may(Action::Admin, "orders"));
        assert!(p.may(Action::Admin, "audit-1"));
        assert!(!p.may(Action::Admin, "audit-12"));
        assert!(!p.may(Action::Read, "billing"));
        assert_eq!(auth.by_access_key("AKID").unwrap().1, "s3cret");
        assert!(auth.open_metrics());
    }

    #[test]
    fn globs_match_runs_and_single_characters() {
        for (glob, name, matches) in [
            ("*", "anything", true),
            ("*", "", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("*-eu-*", "orders-eu-1", true),
            ("?x", "ax", true),
            ("?x", "x", false),
            ("orders", "orders2", false),
            ("a*b*c", "aXbYbZc", true),
        ] {
            assert_eq!(glob_matches(glob, name), matches, "{glob} {name}");
        }
    }

    #[test]
    fn a_bad_file_names_what_is_wrong() {
        let bad_hex = "[[principal]]\nname = \"p\"\ntokens_sha256 = [\"xyz\"]\n";
        assert!(Authenticator::parse(bad_hex)
            .unwrap_err()
            .contains("tokens_sha256"));
        let bad_action = "[[principal]]\nname = \"p\"\n[[principal.allow]]\nstreams = \"*\"\nactions = [\"fly\"]\n";
        assert!(Authenticator::parse(bad_action)
            .unwrap_err()
            .contains("fly"));
        let unknown = "[[principal]]\nname = \"p\"\ncolour = \"red\"\n";
        assert!(Authenticator::parse(unknown)
            .unwrap_err()
            .contains("colour"));
    }
}
