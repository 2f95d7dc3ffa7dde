//! Properties of the router, over random small patterns and events: a `MatcherSet` answers
//! exactly the keys whose own `Matcher` matches (also after removals), both agree with a plain
//! model of the semantics (flatten the event, test each field), and no input panics.

use proptest::prelude::*;
use serde_json::{json, Value};
use shardlog::route::{AttrValue, Filter, FilterScope, Matcher, MatcherSet, PatternLimits};

/// A condition of the model, with its JSON form.
#[derive(Clone, Debug)]
enum Cond {
    Str(&'static str),
    Num(i64),
    Prefix(&'static str),
    Exists(bool),
    NotStr(&'static str),
    Above(i64),
    Null,
}

impl Cond {
    fn json(&self) -> Value {
        match self {
            Cond::Str(s) => json!(s),
            Cond::Num(n) => json!(n),
            Cond::Prefix(p) => json!({ "prefix": p }),
            Cond::Exists(b) => json!({ "exists": b }),
            Cond::NotStr(s) => json!({ "anything-but": s }),
            Cond::Above(n) => json!({ "numeric": [">", n] }),
            Cond::Null => Value::Null,
        }
    }

    fn holds(&self, leaves: &[&Value]) -> bool {
        if let Cond::Exists(e) = self {
            return *e != leaves.is_empty();
        }
        leaves.iter().any(|v| match (self, v) {
            (Cond::Str(s), Value::String(x)) => s == x,
            (Cond::Num(n), Value::Number(x)) => x.as_f64() == Some(*n as f64),
            (Cond::Prefix(p), Value::String(x)) => x.starts_with(p),
            (Cond::NotStr(s), Value::String(x)) => s != x,
            (Cond::NotStr(_), _) => true,
            (Cond::Above(n), Value::Number(x)) => x.as_f64().is_some_and(|x| x > *n as f64),
            (Cond::Null, Value::Null) => true,
            _ => false,
        })
    }
}

/// Field paths the model uses; `d.*` are nested.
const PATHS: &[&[&str]] = &[&["a"], &["b"], &["d", "a"], &["d", "b"]];

type Conj = Vec<(usize, Vec<Cond>)>;

fn cond() -> impl Strategy<Value = Cond> {
    prop_oneof![
        prop::sample::select(vec!["x", "y", "xy", ""]).prop_map(Cond::Str),
        (0i64..3).prop_map(Cond::Num),
        prop::sample::select(vec!["x", ""]).prop_map(Cond::Prefix),
        any::<bool>().prop_map(Cond::Exists),
        prop::sample::select(vec!["x", "y"]).prop_map(Cond::NotStr),
        (0i64..3).prop_map(Cond::Above),
        Just(Cond::Null),
    ]
}

fn conj() -> impl Strategy<Value = Conj> {
    prop::collection::vec((0..PATHS.len(), prop::collection::vec(cond(), 1..3)), 1..3).prop_map(
        |mut fields| {
            fields.sort_by_key(|f| f.0);
            fields.dedup_by_key(|f| f.0);
            fields
        },
    )
}

/// A pattern: one conjunction, or a `$or` of two.
fn pattern() -> impl Strategy<Value = Vec<Conj>> {
    prop::collection::vec(conj(), 1..3)
}

fn insert(obj: &mut serde_json::Map<String, Value>, path: &[&str], v: Value) {
    match path {
        [leaf] => {
            obj.insert(leaf.to_string(), v);
        }
        [head, rest @ ..] => {
            let inner = obj.entry(head.to_string()).or_insert_with(|| json!({}));
            if let Value::Object(m) = inner {
                insert(m, rest, v);
            }
        }
        [] => {}
    }
}

fn conj_json(c: &Conj) -> Value {
    let mut obj = serde_json::Map::new();
    for (p, conds) in c {
        insert(
            &mut obj,
            PATHS[*p],
            Value::Array(conds.iter().map(Cond::json).collect()),
        );
    }
    Value::Object(obj)
}

fn pattern_text(p: &[Conj]) -> String {
    match p {
        [one] => conj_json(one).to_string(),
        many => json!({ "$or": many.iter().map(conj_json).collect::<Vec<_>>() }).to_string(),
    }
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec!["x", "y", "xy", "", "z"]).prop_map(|s| json!(s)),
        (0i64..4).prop_map(|n| json!(n)),
        Just(json!(2.0)),
        Just(Value::Null),
        any::<bool>().prop_map(|b| json!(b)),
    ]
}

fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => scalar(),
        1 => prop::collection::vec(scalar(), 0..3).prop_map(Value::Array),
        1 => Just(json!({})),
    ]
}

fn event() -> impl Strategy<Value = Value> {
    (
        prop::option::of(field_value()),
        prop::option::of(field_value()),
        prop::option::of(prop_oneof![
            3 => (prop::option::of(field_value()), prop::option::of(field_value())).prop_map(|(a, b)| {
                let mut m = serde_json::Map::new();
                if let Some(a) = a { m.insert("a".into(), a); }
                if let Some(b) = b { m.insert("b".into(), b); }
                Value::Object(m)
            }),
            1 => scalar(),
        ]),
    )
        .prop_map(|(a, b, d)| {
            let mut m = serde_json::Map::new();
            if let Some(a) = a { m.insert("a".into(), a); }
            if let Some(b) = b { m.insert("b".into(), b); }
            if let Some(d) = d { m.insert("d".into(), d); }
            Value::Object(m)
        })
}

/// The event's leaves at a path: arrays flattened, objects never values.
fn leaves<'v>(event: &'v Value, path: &[&str]) -> Vec<&'v Value> {
    let mut at = event;
    for seg in path {
        match at.get(seg) {
            Some(v) => at = v,
            None => return Vec::new(),
        }
    }
    match at {
        Value::Array(items) => items
            .iter()
            .filter(|v| !v.is_object() && !v.is_array())
            .collect(),
        Value::Object(_) => Vec::new(),
        v => vec![v],
    }
}

fn model(p: &[Conj], event: &Value) -> bool {
    p.iter().any(|c| {
        c.iter().all(|(path, conds)| {
            let l = leaves(event, PATHS[*path]);
            conds.iter().any(|cond| cond.holds(&l))
        })
    })
}

fn data(pattern: String) -> Filter {
    Filter {
        pattern,
        scope: FilterScope::Data,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn set_single_and_model_agree(
        patterns in prop::collection::vec(pattern(), 1..8),
        events in prop::collection::vec(event(), 1..6),
        removed in prop::collection::vec(any::<bool>(), 8),
    ) {
        let limits = PatternLimits::default();
        let mut set = MatcherSet::new();
        let mut singles = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            let text = pattern_text(p);
            set.insert(i, &data(text.clone()), &limits).expect("a model pattern compiles");
            singles.push(Matcher::compile(&data(text), &limits).expect("compiles alone"));
        }
        for (i, r) in removed.iter().enumerate().take(patterns.len()) {
            if *r {
                prop_assert!(set.remove(&i));
            }
        }
        for e in &events {
            let bytes = e.to_string();
            let mut got = Vec::new();
            set.matches_into(bytes.as_bytes(), &[], &mut got);
            got.sort();
            let mut want = Vec::new();
            for (i, m) in singles.iter().enumerate() {
                let single = m.matches(bytes.as_bytes(), &[]);
                prop_assert_eq!(single, model(&patterns[i], e), "pattern {} on {}", pattern_text(&patterns[i]), bytes);
                if single && !removed.get(i).copied().unwrap_or(false) {
                    want.push(i);
                }
            }
            prop_assert_eq!(got, want, "event {}", bytes);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), cut in 0usize..200) {
        let limits = PatternLimits::default();
        let m = Matcher::compile(&data(r#"{"a":[{"exists":false}],"$or":[{"b":[1]},{"c":{"d":[{"prefix":""}]}}]}"#.into()), &limits)
            .expect("valid");
        let _ = m.matches(&bytes, &[]);
        let doc = r#"{"a":[{"c":{"d":"x\u00e9"}},1e5,null],"b":[true,false,"\""],"c":{"d":[[]]}}"#;
        let cut_doc = &doc.as_bytes()[..cut.min(doc.len())];
        let _ = m.matches(cut_doc, &[]);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let _ = Matcher::compile(&data(text.clone()), &limits);
        let _ = Matcher::compile(&Filter { pattern: text.clone(), scope: FilterScope::Attributes }, &limits);
        let attrs = Matcher::compile(&Filter { pattern: r#"{"s":[{"numeric":[">",0]}],"t":["x"]}"#.into(), scope: FilterScope::Attributes }, &limits)
            .expect("valid");
        let _ = attrs.matches(&[], &[("s", AttrValue::StringArray(&text)), ("t", AttrValue::Number(&text)), ("s", AttrValue::Binary(&bytes))]);
    }
}
