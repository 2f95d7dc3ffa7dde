//! The pattern language of EventBridge event patterns and SNS filter policies, compiled so that
//! many patterns match an event in one pass ([`MatcherSet`]), or one alone ([`Matcher`]).
//!
//! A pattern is a JSON object shaped like the event; every leaf is an array of conditions, any
//! of which may hold; every field named must hold. The operators: exact strings, numbers,
//! `true`/`false`/`null`; `prefix`, `suffix` (each also with `equals-ignore-case` inside);
//! `equals-ignore-case`; `wildcard`; `anything-but` (values, `prefix`, `suffix`,
//! `equals-ignore-case`, `wildcard`); `numeric`; `exists`; `cidr`; `$or` at any level.
//! A [`Filter`] applies to a record's JSON data ([`FilterScope::Data`]) or to its message
//! attributes ([`FilterScope::Attributes`]), with the same language.
//!
//! ```text
//!  Filter ──parse.rs (validate, $or → conjunctions, limits)──▶ clauses (condition.rs)
//!         ──machine.rs (one anchor clause per conjunction into index.rs)──▶ one set, one pass
//!  record ──event.rs / attributes.rs (leaves of named paths, paths.rs)──▶ index lookups
//!         ──▶ candidates ──verify.rs (other clauses, absence, arrays)──▶ matching keys (set.rs)
//! ```
//!
//! Cost: one pass over the record's bytes, a lookup per kept leaf, and a check per candidate.
//! The number of patterns matters only through how many become candidates, which a
//! well-chosen anchor keeps to those that are likely to match.
//!
//! # Semantics chosen where the sources differ
//! - **Numbers** are compared as IEEE-754 doubles over their whole range (event-ruler ≥ 1.8), not
//!   with EventBridge's documented ±5e9 range and six decimals nor SNS's ±1e9 and five. A decimal
//!   that is not exactly a double (its double's shortest text is another number, e.g.
//!   `0.30000000000000001`, `1e400`) is refused in a `numeric` condition, and in an event
//!   matches no numeric condition and no numeric equality. An exact number in a pattern that is
//!   not a double (a 30-digit account id) is compared with the event's number as text.
//! - **Dotted keys**: `{"a.b":…}` and `{"a":{"b":…}}` are one path and match either event
//!   shape, as AWS does (a warning is logged when a pattern uses one: event-ruler calls it
//!   unstable).
//! - **`exists:true` on `null`** matches (EventBridge, event-ruler), in both scopes; SNS's
//!   documentation asks for a non-null value.
//! - **An exact string that is an IP address** also matches other spellings of that address
//!   (`"2001:db8::1"` matches `"2001:0db8:0:0:0:0:0:1"`), as event-ruler does.
//! - **`anything-but` against an array** matches when *some* element is not excluded
//!   (event-ruler and most SNS pages), in both scopes.
//! - **Attribute scope** keeps SNS's rules: no nesting; at most five keys per `$or` branch
//!   ([`MAX_ATTRIBUTE_KEYS`]); a record with no attributes at all matches no attribute-scope
//!   filter, not even one made only of `exists:false` (a `Binary` attribute counts as an
//!   attribute there, though its value is ignored). `anything-but` `suffix` and `wildcard`,
//!   which SNS refuses or does not document, are accepted: one language for both scopes.
//! - **Combinations** ([`PatternLimits::max_combinations`]) are counted as SNS counts them, in
//!   both scopes: per `$or` branch the product of the number of values of each field, summed
//!   over the branches. EventBridge's own limit (1,000 `$or` branches) is looser.
//! - **Wildcard complexity** ([`PatternLimits::max_wildcard_complexity`]) is per glob: the stars
//!   followed by more text. The default, 4, refuses `*:*:*:*:*:event-bus/*` as AWS does.
//! - **Array consistency**: one match never takes two fields from objects in different
//!   elements of one array; `exists:false` is judged against the fields that could sit beside
//!   the others (`{"a":[{"x":1},{"y":2}]}` has no `y` beside `x`), as event-ruler does.
//! - A name added twice is an OR in event-ruler; here a key names one filter and
//!   [`MatcherSet::insert`] replaces it, so two copies are two keys.
//! - Duplicate keys in a pattern: the last wins (EventBridge's documentation).

mod attributes;
mod cidr;
mod condition;
mod event;
mod fold;
mod hash;
mod index;
mod json;
mod key;
mod machine;
mod numeric;
mod parse;
mod paths;
mod set;
#[cfg(test)]
mod tests;
mod verify;
mod wildcard;

pub use parse::MAX_ATTRIBUTE_KEYS;
pub use set::MatcherSet;

/// Default for [`PatternLimits::max_pattern_bytes`]: EventBridge's limit on `EventPattern`.
pub const DEFAULT_MAX_PATTERN_BYTES: usize = 4096;
/// Default for [`PatternLimits::max_combinations`]: SNS's limit.
pub const DEFAULT_MAX_COMBINATIONS: usize = 150;
/// Default for [`PatternLimits::max_wildcard_complexity`]: at most four stars followed by
/// more text in one glob.
pub const DEFAULT_MAX_WILDCARD_COMPLEXITY: usize = 4;

/// What a filter is applied to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FilterScope {
    /// The record's data, parsed as a JSON object (SNS `MessageBody`, EventBridge).
    Data,
    /// The record's message attributes (SNS `MessageAttributes`, its default).
    Attributes,
}

/// A pattern and what it applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Filter {
    /// The pattern's JSON text.
    pub pattern: String,
    /// Data or attributes.
    pub scope: FilterScope,
}

/// Bounds on what one pattern may cost; exceeding one is a compile error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatternLimits {
    /// Longest pattern text, in bytes. Default [`DEFAULT_MAX_PATTERN_BYTES`].
    pub max_pattern_bytes: usize,
    /// Most combinations: per `$or` branch, the product of the number of values listed for each
    /// field; summed over the branches. Default [`DEFAULT_MAX_COMBINATIONS`].
    pub max_combinations: usize,
    /// Most stars followed by more text in one `wildcard` glob (each is a point matching may
    /// have to revisit). Default [`DEFAULT_MAX_WILDCARD_COMPLEXITY`].
    pub max_wildcard_complexity: usize,
}

impl Default for PatternLimits {
    fn default() -> Self {
        PatternLimits {
            max_pattern_bytes: DEFAULT_MAX_PATTERN_BYTES,
            max_combinations: DEFAULT_MAX_COMBINATIONS,
            max_wildcard_complexity: DEFAULT_MAX_WILDCARD_COMPLEXITY,
        }
    }
}

/// Why a pattern was refused, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PatternError {
    /// Where in the pattern: `$` for the whole, `$.detail.price` for a field, `$.$or[1]` for a
    /// `$or` branch.
    pub path: String,
    /// What is wrong, in AWS's words where AWS has them.
    pub message: String,
}

/// A message attribute's value, as stored with the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrValue<'a> {
    /// `String`.
    String(&'a str),
    /// `Number`: the decimal text (`"3.015e2"`), compared numerically.
    Number(&'a str),
    /// `Binary`: ignored by filters.
    Binary(&'a [u8]),
    /// `String.Array`: a JSON array's text; each element is a value.
    StringArray(&'a str),
}

/// One compiled filter.
#[derive(Clone, Debug)]
pub struct Matcher {
    set: MatcherSet<()>,
    scope: FilterScope,
}

impl Matcher {
    /// Compiles a filter; every fault of the pattern is reported here, never when matching.
    pub fn compile(filter: &Filter, limits: &PatternLimits) -> Result<Matcher, PatternError> {
        let mut set = MatcherSet::new();
        set.insert((), filter, limits)?;
        Ok(Matcher {
            set,
            scope: filter.scope,
        })
    }

    /// What the filter applies to.
    pub fn scope(&self) -> FilterScope {
        self.scope
    }

    /// Whether a record matches. Data scope: `data` parsed as JSON (data that is not a JSON
    /// object matches nothing, which is not an error). Attribute scope: the attributes as an
    /// object, `data` ignored.
    pub fn matches<'a>(&self, data: &[u8], attributes: &[(&'a str, AttrValue<'a>)]) -> bool {
        let mut out = Vec::new();
        self.set.matches_into(data, attributes, &mut out);
        !out.is_empty()
    }
}
