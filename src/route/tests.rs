//! Unit tests of the pattern language through the module's API: each operator, and every edge
//! case of the reference's list (numbered as there).

use super::*;

fn compile(pattern: &str, scope: FilterScope) -> Result<Matcher, PatternError> {
    Matcher::compile(
        &Filter {
            pattern: pattern.to_string(),
            scope,
        },
        &PatternLimits::default(),
    )
}

/// Whether `event` (data scope) matches `pattern`, which must compile.
fn m(pattern: &str, event: &str) -> bool {
    compile(pattern, FilterScope::Data)
        .unwrap_or_else(|e| panic!("{pattern} should compile: {e}"))
        .matches(event.as_bytes(), &[])
}

/// The error `pattern` is refused with.
fn refused(pattern: &str, scope: FilterScope) -> PatternError {
    match compile(pattern, scope) {
        Ok(_) => panic!("{pattern} should be refused"),
        Err(e) => e,
    }
}

fn attrs(pattern: &str, attributes: &[(&str, AttrValue<'_>)]) -> bool {
    compile(pattern, FilterScope::Attributes)
        .unwrap_or_else(|e| panic!("{pattern} should compile: {e}"))
        .matches(b"not json", attributes)
}

#[test]
fn e01_numbers_match_numerically_and_types_are_strict() {
    assert!(m(r#"{"a":[300]}"#, r#"{"a":300.0}"#));
    assert!(m(r#"{"a":[300]}"#, r#"{"a":3e2}"#));
    assert!(!m(r#"{"a":[5]}"#, r#"{"a":"5"}"#));
    assert!(!m(r#"{"a":["5"]}"#, r#"{"a":5}"#));
}

#[test]
fn e02_literals_are_not_their_spellings() {
    assert!(!m(r#"{"a":[true]}"#, r#"{"a":"true"}"#));
    assert!(!m(r#"{"a":[null]}"#, r#"{"a":"null"}"#));
    assert!(!m(r#"{"a":[""]}"#, r#"{"a":null}"#));
    assert!(m(r#"{"a":[true]}"#, r#"{"a":true}"#));
    assert!(m(r#"{"a":[null]}"#, r#"{"a":null}"#));
}

#[test]
fn e03_null_is_not_missing_or_empty() {
    assert!(!m(r#"{"a":[null]}"#, r#"{"b":1}"#));
    assert!(!m(r#"{"a":[null]}"#, r#"{"a":[]}"#));
}

#[test]
fn e04_case_sensitivity_and_ignore_case() {
    assert!(!m(r#"{"a":["x"]}"#, r#"{"A":"x"}"#));
    assert!(!m(r#"{"a":["x"]}"#, r#"{"a":"X"}"#));
    assert!(m(
        r#"{"a":[{"equals-ignore-case":"ΑΘΗΝΑ"}]}"#,
        r#"{"a":"αθηνα"}"#
    ));
    assert!(!m(r#"{"a":[{"equals-ignore-case":"ß"}]}"#, r#"{"a":"SS"}"#));
    assert!(m(
        r#"{"a":[{"prefix":{"equals-ignore-case":"EventB"}}]}"#,
        r#"{"a":"eventbridge"}"#
    ));
    assert!(m(
        r#"{"a":[{"suffix":{"equals-ignore-case":".PNG"}}]}"#,
        r#"{"a":"x.png"}"#
    ));
    assert!(!m(r#"{"a":[{"suffix":".PNG"}]}"#, r#"{"a":"x.png"}"#));
}

#[test]
fn e05_dotted_keys_are_nested_paths() {
    assert!(m(r#"{"a":{"b":["x"]}}"#, r#"{"a.b":"x"}"#));
    assert!(m(r#"{"a.b":["x"]}"#, r#"{"a":{"b":"x"}}"#));
    assert!(m(r#"{"a.b":["x"]}"#, r#"{"a.b":"x"}"#));
}

#[test]
fn e06_stringified_json_is_a_string() {
    assert!(!m(r#"{"a":{"b":["x"]}}"#, r#"{"a":"{\"b\":\"x\"}"}"#));
    assert!(m(r#"{"a":["{\"b\":\"x\"}"]}"#, r#"{"a":"{\"b\":\"x\"}"}"#));
}

#[test]
fn e07_empty_affixes_and_globs() {
    assert!(m(r#"{"a":[{"prefix":""}]}"#, r#"{"a":"anything"}"#));
    assert!(!m(r#"{"a":[{"prefix":""}]}"#, r#"{"a":5}"#));
    assert!(m(r#"{"a":[{"suffix":""}]}"#, r#"{"a":""}"#));
    assert!(m(r#"{"a":[{"wildcard":""}]}"#, r#"{"a":""}"#));
    assert!(!m(r#"{"a":[{"wildcard":""}]}"#, r#"{"a":"x"}"#));
    assert!(m(r#"{"a":[{"wildcard":"*"}]}"#, r#"{"a":""}"#));
}

#[test]
fn e08_wildcard_escapes() {
    assert!(m(r#"{"a":[{"wildcard":"a\\*b"}]}"#, r#"{"a":"a*b"}"#));
    assert!(!m(r#"{"a":[{"wildcard":"a\\*b"}]}"#, r#"{"a":"axb"}"#));
    assert!(m(r#"{"a":[{"wildcard":"a\\\\b"}]}"#, r#"{"a":"a\\b"}"#));
    let e = refused(r#"{"a":[{"wildcard":"a\\b"}]}"#, FilterScope::Data);
    assert!(e.message.contains("Invalid escape character"), "{e}");
    let e = refused(r#"{"a":[{"wildcard":"a**"}]}"#, FilterScope::Data);
    assert!(e.message.contains("Consecutive wildcard characters"), "{e}");
    let e = refused(
        r#"{"r":[{"wildcard":"*:*:*:*:*:event-bus/*"}]}"#,
        FilterScope::Data,
    );
    assert!(e.message.contains("too complex"), "{e}");
    assert!(m(
        r#"{"r":[{"wildcard":"arn:aws:events:*:*:event-bus/*"}]}"#,
        r#"{"r":"arn:aws:events:us-east-1:1:event-bus/x"}"#
    ));
}

#[test]
fn e09_anything_but_presence_types_and_arrays() {
    let p = r#"{"a":[{"anything-but":"x"}]}"#;
    assert!(!m(p, r#"{"b":1}"#));
    assert!(m(p, r#"{"a":null}"#));
    assert!(!m(p, r#"{"a":"x"}"#));
    assert!(m(p, r#"{"a":"y"}"#));
    assert!(m(r#"{"a":[{"anything-but":[111]}]}"#, r#"{"a":"444"}"#));
    assert!(m(r#"{"a":[{"anything-but":"123"}]}"#, r#"{"a":123}"#));
    assert!(m(
        r#"{"a":[{"anything-but":"banned"}]}"#,
        r#"{"a":["banned","ok"]}"#
    ));
    assert!(!m(
        r#"{"a":[{"anything-but":["x","y"]}]}"#,
        r#"{"a":["x","y"]}"#
    ));
}

#[test]
fn e10_anything_but_numbers_compare_numerically() {
    assert!(!m(r#"{"a":[{"anything-but":[100]}]}"#, r#"{"a":100.0}"#));
    assert!(m(r#"{"a":[{"anything-but":[100]}]}"#, r#"{"a":100.5}"#));
}

#[test]
fn e11_invalid_anything_but_forms() {
    for (p, msg) in [
        (
            r#"{"a":[{"anything-but":{"prefix":""}}]}"#,
            "Null prefix/suffix",
        ),
        (
            r#"{"a":[{"anything-but":{"suffix":""}}]}"#,
            "Null prefix/suffix",
        ),
        (
            r#"{"a":[{"anything-but":null}]}"#,
            "must be an array or single",
        ),
        (r#"{"a":[{"anything-but":["a",1]}]}"#, "same type"),
        (r#"{"a":[{"anything-but":[null]}]}"#, "not supported"),
        (
            r#"{"a":[{"anything-but":{"prefix":{"equals-ignore-case":"a"}}}]}"#,
            "must be an array or single",
        ),
        (
            r#"{"a":[{"anything-but":{"numeric":[">",1]}}]}"#,
            "Unsupported anything-but pattern: numeric",
        ),
    ] {
        let e = refused(p, FilterScope::Data);
        assert!(e.message.contains(msg), "{p}: {e}");
        assert_eq!(e.path, "$.a");
    }
}

#[test]
fn e12_exists_true_needs_a_leaf() {
    let p = r#"{"a":[{"exists":true}]}"#;
    assert!(m(p, r#"{"a":null}"#));
    assert!(m(p, r#"{"a":""}"#));
    assert!(!m(p, r#"{"a":[]}"#));
    assert!(!m(p, r#"{"a":{}}"#));
    assert!(!m(p, r#"{"a":{"b":1}}"#));
}

#[test]
fn e13_exists_false_on_missing_scalar_or_object() {
    let p = r#"{"a":{"b":[{"exists":false}]}}"#;
    assert!(m(p, r#"{"x":1}"#));
    assert!(m(p, r#"{"a":5}"#));
    assert!(m(p, r#"{"a":{"b":{"c":1}}}"#));
    assert!(!m(p, r#"{"a":{"b":null}}"#));
}

#[test]
fn e14_array_consistency() {
    let p = r#"{"employees":{"firstName":["Anna"],"lastName":["Jones"]}}"#;
    let split = r#"{"employees":[{"firstName":"Anna","lastName":"Smith"},{"firstName":"John","lastName":"Jones"}]}"#;
    assert!(!m(p, split));
    let same = r#"{"employees":[{"firstName":"John","lastName":"Doe"},{"firstName":"Anna","lastName":"Jones"}]}"#;
    assert!(m(p, same));
    let last = format!(
        r#"{{"employees":[{}{{"firstName":"Anna","lastName":"Jones"}}]}}"#,
        r#"{"firstName":"Anna","lastName":"X"},{"firstName":"Y","lastName":"Jones"},"#.repeat(10)
    );
    assert!(m(p, &last));
    let nested = r#"{"a":[{"b":[{"c":1,"d":1},{"c":2,"d":2}]}]}"#;
    assert!(!m(r#"{"a":{"b":{"c":[1],"d":[2]}}}"#, nested));
    assert!(m(r#"{"a":{"b":{"c":[2],"d":[2]}}}"#, nested));
    // A primitive array combines freely with a sibling scalar.
    assert!(m(
        r#"{"tags":["x"],"n":[1]}"#,
        r#"{"tags":["y","x"],"n":1}"#
    ));
}

#[test]
fn e15_absence_is_judged_within_the_element() {
    let p = r#"{"d":{"a":[{"exists":true}],"b":[{"exists":false}]}}"#;
    assert!(m(p, r#"{"d":[{"a":1},{"b":2}]}"#));
    assert!(!m(p, r#"{"d":[{"a":1,"b":2}]}"#));
    assert!(!m(p, r#"{"d":{"a":1,"b":2}}"#));
}

#[test]
fn e16_numeric_bounds() {
    let p = r#"{"a":[{"numeric":[">",0,"<=",5]}]}"#;
    assert!(!m(p, r#"{"a":0}"#));
    assert!(m(p, r#"{"a":5}"#));
    assert!(m(p, r#"{"a":0.000001}"#));
    assert!(!m(p, r#"{"a":5.5}"#));
    for (bad, msg) in [
        (
            r#"{"a":[{"numeric":[">",5,"<",5]}]}"#,
            "Bottom must be less than top",
        ),
        (r#"{"a":[{"numeric":["<",5,">",0]}]}"#, "Too many elements"),
        (
            r#"{"a":[{"numeric":[">",0,">",1]}]}"#,
            "Bad numeric range operator",
        ),
        (
            r#"{"a":[{"numeric":[">",0,"<",1,"="]}]}"#,
            "Too many elements",
        ),
        (
            r#"{"a":[{"numeric":[">"]}]}"#,
            "numeric needs an operator and a number",
        ),
        (r#"{"a":[{"numeric":[">","5"]}]}"#, "must be numeric"),
        (
            r#"{"a":[{"numeric":[">",0,"<"]}]}"#,
            "numeric needs an operator and a number",
        ),
        (
            r#"{"a":[{"numeric":["!",0]}]}"#,
            "Unrecognized numeric range operator",
        ),
        (r#"{"a":[{"numeric":5}]}"#, "must be an array"),
    ] {
        let e = refused(bad, FilterScope::Data);
        assert!(e.message.contains(msg), "{bad}: {e}");
    }
    assert_eq!(
        refused(
            r#"{"detail":{"price":[{"numeric":[">"]}]}}"#,
            FilterScope::Data
        )
        .to_string(),
        "$.detail.price: numeric needs an operator and a number"
    );
}

#[test]
fn e17_numeric_only_matches_numbers_any_element() {
    let p = r#"{"a":[{"numeric":[">",100]}]}"#;
    assert!(!m(p, r#"{"a":"300"}"#));
    assert!(!m(p, r#"{"a":null}"#));
    assert!(!m(p, r#"{"a":true}"#));
    assert!(m(p, r#"{"a":[1,"x",300]}"#));
}

#[test]
fn e18_full_double_range_and_inexact_numbers() {
    assert!(m(r#"{"a":[{"numeric":[">",1e10]}]}"#, r#"{"a":2e15}"#));
    assert!(m(
        r#"{"a":[{"numeric":["<",-1e300]}]}"#,
        r#"{"a":-1.5e301}"#
    ));
    assert!(m(
        r#"{"a":[{"numeric":[">",0,"<",1e-7]}]}"#,
        r#"{"a":5e-8}"#
    ));
    assert!(!m(
        r#"{"a":[{"numeric":[">",0]}]}"#,
        r#"{"a":0.30000000000000001}"#
    ));
    assert!(!m(r#"{"a":[0.3]}"#, r#"{"a":0.30000000000000001}"#));
    let e = refused(r#"{"a":[{"numeric":[">",1e400]}]}"#, FilterScope::Data);
    assert!(e.message.contains("Cannot compare number"), "{e}");
}

#[test]
fn e19_long_integers_fall_back_to_their_text() {
    let p = r#"{"account":[123456789012345678901234567890]}"#;
    assert!(m(p, r#"{"account":123456789012345678901234567890}"#));
    assert!(!m(p, r#"{"account":123456789012345678901234567891}"#));
    assert!(!m(p, r#"{"account":"123456789012345678901234567890"}"#));
}

#[test]
fn e20_cidr() {
    let p = r#"{"ip":[{"cidr":"10.0.0.0/24"}]}"#;
    assert!(m(p, r#"{"ip":"10.0.0.0"}"#));
    assert!(m(p, r#"{"ip":"10.0.0.255"}"#));
    assert!(!m(p, r#"{"ip":"10.0.0.256"}"#));
    assert!(!m(p, r#"{"ip":10}"#));
    assert!(m(
        r#"{"ip":[{"cidr":"2001:db8::/64"}]}"#,
        r#"{"ip":"2001:0db8:0000:0000:0000:0000:0000:0001"}"#
    ));
    assert!(m(r#"{"ip":[{"cidr":"0.0.0.0/0"}]}"#, r#"{"ip":"1.2.3.4"}"#));
    let e = refused(r#"{"ip":[{"cidr":"10.0.0.1/32"}]}"#, FilterScope::Data);
    assert_eq!(e.path, "$.ip");
    assert!(
        refused(r#"{"ip":[{"cidr":"10.0.0.1"}]}"#, FilterScope::Data)
            .message
            .contains("one '/'")
    );
}

#[test]
fn e21_plain_ip_strings_match_other_spellings() {
    assert!(m(
        r#"{"ip":["2001:db8::1"]}"#,
        r#"{"ip":"2001:0db8:0:0:0:0:0:1"}"#
    ));
    assert!(!m(r#"{"ip":["2001:db8::1"]}"#, r#"{"ip":"2001:db8::2"}"#));
}

#[test]
fn e22_or() {
    let e = refused(r#"{"$or":[{"a":[1]}]}"#, FilterScope::Data);
    assert_eq!(e.path, "$.$or");
    let p = r#"{"s":["x"],"$or":[{"a":[1],"b":[2]},{"c":[3]}]}"#;
    assert!(m(p, r#"{"s":"x","a":1,"b":2}"#));
    assert!(!m(p, r#"{"s":"x","a":1}"#));
    assert!(m(p, r#"{"s":"x","c":3}"#));
    assert!(!m(p, r#"{"s":"y","c":3}"#));
    let nested = r#"{"d":{"$or":[{"a":[1]},{"b":[{"prefix":"z"}]}]}}"#;
    assert!(m(nested, r#"{"d":{"b":"zz"}}"#));
    assert!(!m(nested, r#"{"b":"zz"}"#));
    let e = refused(r#"{"$or":[{"a":[1]},{"numeric":[1]}]}"#, FilterScope::Data);
    assert_eq!(e.path, "$.$or[1].numeric");
    let e = refused(r#"{"$or":[{"a":[1]},5]}"#, FilterScope::Data);
    assert_eq!(e.path, "$.$or[1]");
}

#[test]
fn e23_conditions_in_one_leaf_are_ored() {
    let p = r#"{"f":[{"exists":false},{"anything-but":["roses"]}]}"#;
    assert!(m(p, r#"{"g":1}"#));
    assert!(m(p, r#"{"f":"tulips"}"#));
    assert!(!m(p, r#"{"f":"roses"}"#));
    let q = r#"{"n":[{"numeric":[">",100]},{"anything-but":"101"}]}"#;
    assert!(m(q, r#"{"n":50}"#));
    assert!(m(q, r#"{"n":"x"}"#));
    assert!(!m(q, r#"{"n":"101"}"#));
}

#[test]
fn e24_empty_and_misshapen_patterns() {
    for (p, path, msg) in [
        ("{}", "$", "Empty objects"),
        (r#"{"a":[]}"#, "$.a", "Empty arrays"),
        (r#"{"a":"x"}"#, "$.a", "must be an object or an array"),
        (r#"{"a":[["x"]]}"#, "$.a", "Match value must be"),
        (r#"{"a":{}}"#, "$.a", "Empty objects"),
        ("[1]", "$", "JSON object"),
        ("{", "$", "invalid JSON"),
    ] {
        let e = refused(p, FilterScope::Data);
        assert_eq!(e.path, path, "{p}");
        assert!(e.message.contains(msg), "{p}: {e}");
    }
}

#[test]
fn e25_unknown_operators_and_two_keys() {
    let e = refused(r#"{"a":[{"EXISTS":true}]}"#, FilterScope::Data);
    assert!(e.message.contains("Unrecognized match type EXISTS"), "{e}");
    let e = refused(r#"{"a":[{"prefix":"a","suffix":"b"}]}"#, FilterScope::Data);
    assert!(e.message.contains("Only one key"), "{e}");
    let e = refused(r#"{"a":[{"exists":"yes"}]}"#, FilterScope::Data);
    assert!(e.message.contains("either true or false"), "{e}");
    let e = refused(r#"{"a":[{"prefix":5}]}"#, FilterScope::Data);
    assert!(
        e.message.contains("prefix match pattern must be a string"),
        "{e}"
    );
    let e = refused(r#"{"a":[{"equals-ignore-case":["a"]}]}"#, FilterScope::Data);
    assert!(
        e.message
            .contains("equals-ignore-case match pattern must be a string"),
        "{e}"
    );
}

#[test]
fn e26_duplicate_keys_last_wins() {
    let p = r#"{"a":["x"],"a":["y"]}"#;
    assert!(m(p, r#"{"a":"y"}"#));
    assert!(!m(p, r#"{"a":"x"}"#));
}

#[test]
fn e27_data_that_is_not_a_json_object_matches_nothing() {
    let p = r#"{"a":[{"exists":false}]}"#;
    assert!(m(p, "{}"));
    for bad in ["", "not json", "[1]", "\"s\"", "{\"a\":", "5"] {
        assert!(!m(p, bad), "{bad:?}");
    }
}

#[test]
fn e28_attribute_types() {
    assert!(attrs(
        r#"{"p":[301.5]}"#,
        &[("p", AttrValue::Number("3.015e2"))]
    ));
    assert!(!attrs(r#"{"p":[100]}"#, &[("p", AttrValue::String("100"))]));
    assert!(attrs(r#"{"p":[100]}"#, &[("p", AttrValue::Number("100"))]));
    assert!(!attrs(
        r#"{"p":[{"anything-but":[100]}]}"#,
        &[("p", AttrValue::Number("100"))]
    ));
    assert!(attrs(
        r#"{"s":["b"]}"#,
        &[("s", AttrValue::StringArray(r#"["a","b"]"#))]
    ));
    assert!(attrs(
        r#"{"s":[{"numeric":[">",2]}]}"#,
        &[("s", AttrValue::StringArray(r#"["a",3,null]"#))]
    ));
    assert!(!attrs(
        r#"{"s":["[\"a\"]"]}"#,
        &[("s", AttrValue::StringArray(r#"["b"]"#))]
    ));
}

#[test]
fn e29_binary_is_ignored_and_no_attributes_match_nothing() {
    assert!(!attrs(
        r#"{"b":[{"exists":true}]}"#,
        &[("b", AttrValue::Binary(b"x"))]
    ));
    assert!(attrs(
        r#"{"b":[{"exists":false}]}"#,
        &[("b", AttrValue::Binary(b"x"))]
    ));
    assert!(!attrs(r#"{"b":[{"exists":false}]}"#, &[]));
    assert!(attrs(
        r#"{"b":[{"exists":false}]}"#,
        &[("c", AttrValue::String("x"))]
    ));
}

#[test]
fn e30_attribute_limits() {
    let e = refused(r#"{"a":{"b":["x"]}}"#, FilterScope::Attributes);
    assert_eq!(
        e.to_string(),
        "$.a: Filter policy scope MessageAttributes does not support nested filter policy"
    );
    let six = r#"{"a":[1],"b":[1],"c":[1],"d":[1],"e":[1],"f":[1]}"#;
    assert!(refused(six, FilterScope::Attributes)
        .message
        .contains("more than 5 keys"));
    assert!(compile(six, FilterScope::Data).is_ok());
    let values = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let p151 = format!(r#"{{"a":[{}]}}"#, values(151));
    assert!(refused(&p151, FilterScope::Attributes)
        .message
        .contains("too complex"));
    // 3×6 + 3×4×4 + 3×4×7 = 150, accepted by AWS.
    let ok = format!(
        r#"{{"k":[{}],"$or":[{{"a":[{}]}},{{"b":[{}],"c":[{}]}},{{"d":[{}],"e":[{}]}}]}}"#,
        values(3),
        values(6),
        values(4),
        values(4),
        values(4),
        values(7)
    );
    assert!(compile(&ok, FilterScope::Attributes).is_ok());
}

#[test]
fn e31_unicode_and_whitespace_byte_for_byte() {
    assert!(m(r#"{"a":["héllo 👋"]}"#, r#"{"a":"héllo 👋"}"#));
    assert!(m(
        r#"{"a":["héllo 👋"]}"#,
        r#"{"a":"h\u00e9llo \ud83d\udc4b"}"#
    ));
    assert!(!m(r#"{"a":["x"]}"#, r#"{"a":"x "}"#));
    assert!(m(r#"{"a":["x "]}"#, r#"{"a":"x "}"#));
    assert!(m(r#"{"ключ":["значение"]}"#, r#"{"ключ":"значение"}"#));
}

#[test]
fn e32_two_copies_of_a_rule_are_two_keys() {
    let mut set = MatcherSet::new();
    let limits = PatternLimits::default();
    let f = |p: &str| Filter {
        pattern: p.to_string(),
        scope: FilterScope::Data,
    };
    set.insert(("rule", 1), &f(r#"{"a":[1]}"#), &limits)
        .expect("valid");
    set.insert(("rule", 2), &f(r#"{"a":[2]}"#), &limits)
        .expect("valid");
    fn names(set: &MatcherSet<(&'static str, u32)>, e: &str) -> Vec<&'static str> {
        let mut out = Vec::new();
        set.matches_into(e.as_bytes(), &[], &mut out);
        out.iter().map(|k| k.0).collect()
    }
    assert_eq!(names(&set, r#"{"a":1}"#), vec!["rule"]);
    assert_eq!(names(&set, r#"{"a":2}"#), vec!["rule"]);
    assert!(set.remove(&("rule", 1)));
    assert!(names(&set, r#"{"a":1}"#).is_empty());
    assert_eq!(names(&set, r#"{"a":2}"#), vec!["rule"]);
    // Insert under an existing key replaces.
    set.insert(("rule", 2), &f(r#"{"a":[3]}"#), &limits)
        .expect("valid");
    assert!(names(&set, r#"{"a":2}"#).is_empty());
    assert_eq!(set.len(), 1);
}

#[test]
fn operators_prefix_suffix_exact() {
    assert!(m(
        r#"{"t":[{"prefix":"2017-10-02"}]}"#,
        r#"{"t":"2017-10-02T10:00"}"#
    ));
    assert!(!m(
        r#"{"t":[{"prefix":"2017-10-02"}]}"#,
        r#"{"t":"2017-10-03"}"#
    ));
    assert!(m(r#"{"f":[{"suffix":".png"}]}"#, r#"{"f":"a.png"}"#));
    assert!(m(r#"{"t":[{"exactly":"x"}]}"#, r#"{"t":"x"}"#));
    assert!(m(
        r#"{"a":{"b":{"c":["deep"]}}}"#,
        r#"{"a":{"b":{"c":"deep","d":1},"e":[1,2]}}"#
    ));
}

#[test]
fn anything_but_other_forms() {
    assert!(m(
        r#"{"a":[{"anything-but":{"prefix":"init"}}]}"#,
        r#"{"a":"done"}"#
    ));
    assert!(!m(
        r#"{"a":[{"anything-but":{"prefix":"init"}}]}"#,
        r#"{"a":"initial"}"#
    ));
    assert!(m(
        r#"{"a":[{"anything-but":{"prefix":"init"}}]}"#,
        r#"{"a":5}"#
    ));
    assert!(m(
        r#"{"a":[{"anything-but":{"prefix":"init"}}]}"#,
        r#"{"a":null}"#
    ));
    assert!(!m(
        r#"{"a":[{"anything-but":{"suffix":[".txt",".md"]}}]}"#,
        r#"{"a":"x.md"}"#
    ));
    assert!(!m(
        r#"{"a":[{"anything-but":{"equals-ignore-case":["a","B"]}}]}"#,
        r#"{"a":"b"}"#
    ));
    assert!(m(
        r#"{"a":[{"anything-but":{"equals-ignore-case":["a","B"]}}]}"#,
        r#"{"a":"c"}"#
    ));
    assert!(!m(
        r#"{"a":[{"anything-but":{"wildcard":"*/lib/*"}}]}"#,
        r#"{"a":"/usr/lib/x"}"#
    ));
    assert!(m(
        r#"{"a":[{"anything-but":{"wildcard":""}}]}"#,
        r#"{"a":"x"}"#
    ));
    assert!(!m(
        r#"{"a":[{"anything-but":{"wildcard":""}}]}"#,
        r#"{"a":""}"#
    ));
}

#[test]
fn limits_are_enforced() {
    let long = format!(r#"{{"a":["{}"]}}"#, "x".repeat(5000));
    let e = refused(&long, FilterScope::Data);
    assert_eq!(e.path, "$");
    assert!(e.message.contains("limit"));
    let wide = format!(
        r#"{{"$or":[{}]}}"#,
        (0..200)
            .map(|i| format!(r#"{{"a":[{i}]}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(refused(&wide, FilterScope::Data)
        .message
        .contains("too complex"));
}

#[test]
fn set_and_single_matchers_agree_on_a_mixed_set() {
    let patterns = [
        r#"{"a":[1]}"#,
        r#"{"a":[{"numeric":[">",0]}],"b":[{"exists":false}]}"#,
        r#"{"$or":[{"a":[2]},{"b":[{"prefix":"x"}]}]}"#,
        r#"{"b":[{"anything-but":"xy"}]}"#,
    ];
    let events = [
        r#"{"a":1}"#,
        r#"{"a":2,"b":"xy"}"#,
        r#"{"b":"xz"}"#,
        r#"{"a":[1,2]}"#,
        "{}",
    ];
    let mut set = MatcherSet::new();
    for (i, p) in patterns.iter().enumerate() {
        set.insert(
            i,
            &Filter {
                pattern: p.to_string(),
                scope: FilterScope::Data,
            },
            &PatternLimits::default(),
        )
        .expect("valid");
    }
    for e in events {
        let mut out = Vec::new();
        set.matches_into(e.as_bytes(), &[], &mut out);
        out.sort();
        let single: Vec<usize> = (0..patterns.len()).filter(|&i| m(patterns[i], e)).collect();
        assert_eq!(out, single, "{e}");
    }
}

#[test]
fn a_clause_many_patterns_share_does_not_decide_alone() {
    // Every pattern shares `region`; only `kind` tells them apart.
    let mut set = MatcherSet::new();
    for i in 0..300 {
        let p = format!(r#"{{"region":[{{"prefix":"us-"}}],"kind":["k{i}"]}}"#);
        set.insert(
            i,
            &Filter {
                pattern: p,
                scope: FilterScope::Data,
            },
            &PatternLimits::default(),
        )
        .expect("valid");
    }
    let mut out = Vec::new();
    set.matches_into(br#"{"region":"us-east-1","kind":"k7"}"#, &[], &mut out);
    assert_eq!(out, vec![7]);
    out.clear();
    set.matches_into(br#"{"region":"eu-west-1","kind":"k7"}"#, &[], &mut out);
    assert!(out.is_empty());
    assert!(set.remove(&7));
    set.matches_into(br#"{"region":"us-east-1","kind":"k7"}"#, &[], &mut out);
    assert!(out.is_empty());
    assert_eq!(set.len(), 299);
}

#[test]
fn one_clause_patterns_in_arrays_of_objects_match_any_element() {
    assert!(m(
        r#"{"items":{"sku":["B"]}}"#,
        r#"{"items":[{"sku":"A"},{"sku":"B"}]}"#
    ));
    assert!(!m(
        r#"{"items":{"sku":["C"]}}"#,
        r#"{"items":[{"sku":"A"},{"sku":"B"}]}"#
    ));
}

#[test]
fn compiled_filters_can_be_shared_between_threads() {
    fn shareable<T: Clone + std::fmt::Debug + Send + Sync + 'static>(_: &T) {}
    let m = compile(r#"{"a":["x"]}"#, FilterScope::Data).expect("valid");
    shareable(&m);
    let set: MatcherSet<String> = MatcherSet::new();
    shareable(&set);
    let m2 = m.clone();
    let handle = std::thread::spawn(move || m2.matches(br#"{"a":"x"}"#, &[]));
    assert!(handle.join().expect("the thread ran"));
    assert_eq!(m.scope(), FilterScope::Data);
}
