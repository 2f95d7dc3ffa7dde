//! A pattern's text to its clauses: validation with the JSON path of every fault, `$or`
//! expanded into conjunctions (each a list of path → conditions clauses), and the limits.

use super::condition::{parse_condition, Condition, OPERATORS};
use super::json::{self, PValue};
use super::{Filter, FilterScope, PatternError, PatternLimits};

/// The most keys an attribute-scope policy may name in one conjunction (SNS's limit).
pub const MAX_ATTRIBUTE_KEYS: usize = 5;

/// A field of the event (its path, split at dots) and the conditions of which one must hold.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Clause {
    /// The field's path, one segment per key (a dotted key is several segments).
    pub(crate) path: Vec<String>,
    /// ORed conditions.
    pub(crate) conditions: Vec<Condition>,
}

/// Clauses that must all hold: one branch of a pattern once `$or` is expanded.
pub(crate) type Conjunction = Vec<Clause>;

/// A field before `$or` expansion, with how many values its leaf array listed.
struct Field {
    clause: Clause,
    values: usize,
}

enum Node {
    Field(Field),
    Or(Vec<Vec<Node>>),
}

fn err(path: &str, message: impl Into<String>) -> PatternError {
    PatternError {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Parses and validates a filter into its conjunctions.
pub(crate) fn compile(
    filter: &Filter,
    limits: &PatternLimits,
) -> Result<Vec<Conjunction>, PatternError> {
    if filter.pattern.len() > limits.max_pattern_bytes {
        return Err(err(
            "$",
            format!(
                "pattern is {} bytes, more than the limit of {}",
                filter.pattern.len(),
                limits.max_pattern_bytes
            ),
        ));
    }
    let root = json::parse(&filter.pattern).map_err(|m| err("$", m))?;
    let PValue::Object(fields) = root else {
        return Err(err(
            "$",
            format!("a pattern must be a JSON object, not {}", root.kind()),
        ));
    };
    let cx = Context {
        scope: filter.scope,
        limits,
    };
    let nodes = cx.object(&fields, &[], "$", false)?;
    let too_complex = || {
        err(
            "$",
            format!(
                "Filter policy is too complex: more than {} combinations",
                limits.max_combinations
            ),
        )
    };
    let conjunctions = expand(&nodes, limits.max_combinations).ok_or_else(too_complex)?;
    let combinations = conjunctions.iter().fold(0usize, |sum, c| {
        sum.saturating_add(c.iter().fold(1usize, |p, f| p.saturating_mul(f.values)))
    });
    if combinations > limits.max_combinations {
        return Err(too_complex());
    }
    if filter.scope == FilterScope::Attributes {
        for c in &conjunctions {
            let mut keys: Vec<&[String]> = c.iter().map(|f| f.clause.path.as_slice()).collect();
            keys.sort();
            keys.dedup();
            if keys.len() > MAX_ATTRIBUTE_KEYS {
                return Err(err(
                    "$",
                    format!("Filter policy can not have more than {MAX_ATTRIBUTE_KEYS} keys"),
                ));
            }
        }
    }
    Ok(conjunctions
        .into_iter()
        .map(|c| c.into_iter().map(|f| f.clause.clone()).collect())
        .collect())
}

struct Context<'l> {
    scope: FilterScope,
    limits: &'l PatternLimits,
}

impl Context<'_> {
    fn object(
        &self,
        fields: &[(String, PValue)],
        prefix: &[String],
        at: &str,
        in_or: bool,
    ) -> Result<Vec<Node>, PatternError> {
        if fields.is_empty() {
            return Err(err(at, "Empty objects are not allowed"));
        }
        let mut nodes = Vec::new();
        for (i, (key, value)) in fields.iter().enumerate() {
            // Duplicate keys: the last occurrence wins, as EventBridge documents.
            if fields[i + 1..].iter().any(|(k, _)| k == key) {
                continue;
            }
            let here = format!("{at}.{key}");
            if key == "$or" {
                nodes.push(Node::Or(self.or(value, prefix, &here)?));
                continue;
            }
            if in_or && OPERATORS.contains(&key.as_str()) {
                return Err(err(
                    &here,
                    format!("{key} is an operator and cannot name a field inside $or"),
                ));
            }
            if key.contains('.') {
                tracing::warn!(key = %key, "a dotted key in a pattern also matches nested objects (and vice versa)");
            }
            let mut path = prefix.to_vec();
            path.extend(key.split('.').map(str::to_string));
            match value {
                PValue::Array(items) if items.is_empty() => {
                    return Err(err(&here, "Empty arrays are not allowed"));
                }
                PValue::Array(items) => {
                    let mut conditions = Vec::new();
                    for item in items {
                        conditions.extend(
                            parse_condition(item, self.limits.max_wildcard_complexity)
                                .map_err(|m| err(&here, m))?,
                        );
                    }
                    nodes.push(Node::Field(Field {
                        clause: Clause { path, conditions },
                        values: items.len(),
                    }));
                }
                PValue::Object(inner) => {
                    if self.scope == FilterScope::Attributes {
                        return Err(err(
                            &here,
                            "Filter policy scope MessageAttributes does not support nested filter policy",
                        ));
                    }
                    nodes.extend(self.object(inner, &path, &here, in_or)?);
                }
                _ => {
                    return Err(err(
                        &here,
                        format!("\"{key}\" must be an object or an array"),
                    ))
                }
            }
        }
        Ok(nodes)
    }

    fn or(
        &self,
        value: &PValue,
        prefix: &[String],
        at: &str,
    ) -> Result<Vec<Vec<Node>>, PatternError> {
        let branches = match value {
            PValue::Array(items) if items.len() >= 2 => items,
            _ => return Err(err(at, "$or must be an array of at least two objects")),
        };
        branches
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let here = format!("{at}[{i}]");
                match b {
                    PValue::Object(fields) => self.object(fields, prefix, &here, true),
                    other => Err(err(
                        &here,
                        format!("a $or branch must be an object, not {}", other.kind()),
                    )),
                }
            })
            .collect()
    }
}

/// The conjunctions of `nodes` (their disjunctive normal form), or `None` when there would be
/// more than `cap` (each conjunction counts at least one combination, so the limit is
/// exceeded anyway, and expansion stops before it costs anything).
fn expand(nodes: &[Node], cap: usize) -> Option<Vec<Vec<&Field>>> {
    let mut acc: Vec<Vec<&Field>> = vec![Vec::new()];
    for node in nodes {
        match node {
            Node::Field(f) => acc.iter_mut().for_each(|c| c.push(f)),
            Node::Or(branches) => {
                let mut next = Vec::new();
                for branch in branches {
                    for tail in expand(branch, cap)? {
                        for head in &acc {
                            if next.len() >= cap {
                                return None;
                            }
                            next.push(head.iter().copied().chain(tail.iter().copied()).collect());
                        }
                    }
                }
                acc = next;
            }
        }
    }
    Some(acc)
}
