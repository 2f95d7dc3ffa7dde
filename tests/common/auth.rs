//! Auth files for tests: principals with one bearer token each and their grants.

use sha2::{Digest, Sha256};

/// The hex SHA-256 of a token, as an auth file holds it.
pub fn sha(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One `[[principal]]` of an auth file: its name, one token, and its grants as (stream glob,
/// actions); a grant with no actions allows nothing.
pub fn principal(name: &str, token: &str, grants: &[(&str, &[&str])]) -> String {
    let mut text = format!(
        "[[principal]]\nname = \"{name}\"\ntokens_sha256 = [\"{}\"]\n",
        sha(token)
    );
    for (streams, actions) in grants {
        let actions: Vec<String> = actions.iter().map(|a| format!("\"{a}\"")).collect();
        text.push_str(&format!(
            "[[principal.allow]]\nstreams = \"{streams}\"\nactions = [{}]\n",
            actions.join(", ")
        ));
    }
    text
}

/// Every action on every stream.
pub const ALL: (&str, &[&str]) = ("*", &["read", "write", "admin"]);
