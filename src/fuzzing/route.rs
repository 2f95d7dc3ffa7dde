//! Filter patterns (`route`): parsing, compiling, the event JSON, matching.

use crate::route::{AttrValue, Filter, FilterScope, Matcher, MatcherSet, PatternLimits};

/// A pattern set's other member: present so that a pattern shares its machine.
const NEIGHBOUR_PATTERN: &str = r#"{"source": ["a", {"prefix": "b"}]}"#;

/// Filter patterns. The input is a mode byte (bit 0: attribute scope), then the pattern, the
/// record's data and its attributes (lines `name=S:text`, `N:number`, `A:json array`, or
/// binary), separated by zero bytes. A pattern that compiles matches without panicking, gives
/// the same answer twice, and the same answer in a set shared with other patterns.
pub fn filter_pattern(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |&b| b == 0);
    let pattern = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let data = parts.next().unwrap_or_default();
    let attributes_text = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let attributes: Vec<(&str, AttrValue<'_>)> = attributes_text
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once('=')?;
            let kind = value.get(..2).unwrap_or_default();
            let text = value.get(2..).unwrap_or_default();
            Some((
                name,
                match kind {
                    "S:" => AttrValue::String(text),
                    "N:" => AttrValue::Number(text),
                    "A:" => AttrValue::StringArray(text),
                    _ => AttrValue::Binary(value.as_bytes()),
                },
            ))
        })
        .collect();
    let scope = if mode & 1 == 0 {
        FilterScope::Data
    } else {
        FilterScope::Attributes
    };
    let filter = Filter { pattern, scope };
    let limits = PatternLimits::default();
    let Ok(matcher) = Matcher::compile(&filter, &limits) else {
        return;
    };
    let alone = matcher.matches(data, &attributes);
    assert_eq!(
        matcher.matches(data, &attributes),
        alone,
        "matching is stable"
    );

    let mut set = MatcherSet::new();
    let neighbour = Filter {
        pattern: NEIGHBOUR_PATTERN.to_owned(),
        scope,
    };
    set.insert(0u8, &neighbour, &limits)
        .expect("the neighbour pattern compiles");
    set.insert(1u8, &filter, &limits)
        .expect("a pattern that compiles alone compiles in a set");
    set.insert(2u8, &filter, &limits)
        .expect("a pattern that compiles alone compiles in a set");
    let mut out = Vec::new();
    set.matches_into(data, &attributes, &mut out);
    assert_eq!(
        out.contains(&1),
        alone,
        "a shared set answers as the pattern alone"
    );
    assert_eq!(
        out.contains(&2),
        alone,
        "a shared set answers as the pattern alone"
    );
}

/// Patterns of each kind of condition, with data and attributes they match.
pub fn filter_pattern_seeds() -> Vec<Vec<u8>> {
    let data = br#"{"source": "shop", "detail": {"kind": "order", "total": 12.5, "ip": "10.0.0.7", "tags": ["a", "b"], "note": "fast\u00e9 \"x\""}}"#;
    let attributes = b"color=S:red\nprice=N:12.5\nsizes=A:[\"s\",\"m\"]\nblob=B:xx";
    let data_patterns = [
        r#"{"source": ["shop"]}"#,
        r#"{"detail": {"kind": [{"prefix": "or"}], "total": [{"numeric": [">", 10, "<=", 20]}]}}"#,
        r#"{"detail": {"ip": [{"cidr": "10.0.0.0/24"}], "note": [{"exists": true}]}}"#,
        r#"{"$or": [{"source": [{"anything-but": ["web"]}]}, {"detail": {"tags": [{"suffix": "b"}]}}]}"#,
        r#"{"detail": {"kind": [{"wildcard": "o*d*r"}, {"equals-ignore-case": "ORDER"}]}}"#,
        r#"{"detail": {"missing": [{"exists": false}], "total": [null, 12.5]}}"#,
    ];
    let attribute_patterns = [
        r#"{"color": ["red", "blue"]}"#,
        r#"{"price": [{"numeric": [">=", 10]}], "sizes": ["m"]}"#,
        r#"{"color": [{"anything-but": {"prefix": "b"}}], "blob": [{"exists": true}]}"#,
    ];
    let mut seeds = Vec::new();
    for (mode, patterns) in [(0u8, &data_patterns[..]), (1, &attribute_patterns[..])] {
        for pattern in patterns {
            seeds.push(
                [
                    &[mode][..],
                    pattern.as_bytes(),
                    &[0],
                    data,
                    &[0],
                    attributes,
                ]
                .concat(),
            );
        }
    }
    seeds
}
