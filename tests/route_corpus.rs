//! The routing corpus: every case in `tests/data/patterns/*.json` — a pattern, a scope, an
//! event or attributes, and the expected outcome (`match`, `no-match`, or `invalid` with a
//! substring of the error) — run through the public API, each failure reported by name.

use std::path::Path;

use serde_json::Value;
use shardlog::route::{AttrValue, Filter, FilterScope, Matcher, PatternLimits};

struct Attr {
    name: String,
    kind: String,
    value: String,
}

fn text(case: &Value, field: &str) -> Option<String> {
    match case.get(field)? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Runs one case; `Err` says what went wrong.
fn run(case: &Value) -> Result<(), String> {
    let pattern = text(case, "pattern").ok_or("no pattern")?;
    let scope = match case.get("scope").and_then(Value::as_str) {
        Some("data") | None => FilterScope::Data,
        Some("attributes") => FilterScope::Attributes,
        Some(other) => return Err(format!("unknown scope {other}")),
    };
    let expect = case
        .get("expect")
        .and_then(Value::as_str)
        .ok_or("no expect")?;
    let compiled = Matcher::compile(&Filter { pattern, scope }, &PatternLimits::default());
    if expect == "invalid" {
        let wanted = case.get("error").and_then(Value::as_str).unwrap_or("");
        return match compiled {
            Ok(_) => Err("compiled, expected invalid".into()),
            Err(e) if e.to_string().contains(wanted) => Ok(()),
            Err(e) => Err(format!("error {e:?} does not contain {wanted:?}")),
        };
    }
    let matcher = compiled.map_err(|e| format!("refused: {e}"))?;
    let event = text(case, "event").unwrap_or_default();
    let attrs: Vec<Attr> = case
        .get("attributes")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|a| Attr {
                    name: text(a, "name").unwrap_or_default(),
                    kind: text(a, "type").unwrap_or_default(),
                    value: text(a, "value").unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut attributes = Vec::new();
    for a in &attrs {
        let v = match a.kind.as_str() {
            "String" => AttrValue::String(&a.value),
            "Number" => AttrValue::Number(&a.value),
            "String.Array" => AttrValue::StringArray(&a.value),
            "Binary" => AttrValue::Binary(a.value.as_bytes()),
            other => return Err(format!("unknown attribute type {other}")),
        };
        attributes.push((a.name.as_str(), v));
    }
    let got = matcher.matches(event.as_bytes(), &attributes);
    match (expect, got) {
        ("match", true) | ("no-match", false) => Ok(()),
        ("match", false) => Err("expected a match, got none".into()),
        ("no-match", true) => Err("expected no match, got one".into()),
        _ => Err(format!("unknown expect {expect}")),
    }
}

#[test]
fn every_corpus_case_has_its_expected_outcome() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/patterns");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the corpus directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut total = 0;
    let mut failures = Vec::new();
    for file in &files {
        let cases: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(file).expect("readable corpus file"))
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for case in &cases {
            total += 1;
            let name = case.get("name").and_then(Value::as_str).unwrap_or("?");
            if let Err(why) = run(case) {
                let stem = file
                    .file_stem()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default();
                failures.push(format!("{stem}/{name}: {why}"));
            }
        }
    }
    assert!(
        total >= 150,
        "only {total} cases found in {}",
        dir.display()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
