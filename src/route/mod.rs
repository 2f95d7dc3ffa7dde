//! Placeholder of the pattern language's API while its engine is merged: compiles nothing,
//! matches everything.

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
    scope: FilterScope,
}

impl Matcher {
    /// Compiles a filter.
    pub fn compile(filter: &Filter, _limits: &PatternLimits) -> Result<Matcher, PatternError> {
        Ok(Matcher {
            scope: filter.scope,
        })
    }

    /// What the filter applies to.
    pub fn scope(&self) -> FilterScope {
        self.scope
    }

    /// Whether a record matches.
    pub fn matches<'a>(&self, _data: &[u8], _attributes: &[(&'a str, AttrValue<'a>)]) -> bool {
        true
    }
}
