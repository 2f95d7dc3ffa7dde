//! Filters at the broker: compiling a request's pattern (once per distinct filter, kept in a
//! bounded cache) and applying it to stored records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Broker, BrokerError};
use crate::route::{AttrValue, Filter, FilterScope, Matcher};
use crate::storage::{AttributeType, Attributes, StoredRecord};

/// Most compiled filters the broker keeps for reuse. Past it the cache starts over: compiling
/// again costs microseconds, holding every filter ever seen would grow without bound.
pub const DEFAULT_MATCHER_CACHE: usize = 1024;

/// Compiled filters by their text and scope.
#[derive(Debug, Default)]
pub(crate) struct MatcherCache {
    compiled: Mutex<HashMap<Filter, Arc<Matcher>>>,
}

impl Broker {
    /// The compiled form of `filter`; an invalid pattern is `INVALID_ARGUMENT` naming `field`
    /// and the path of the fault inside the pattern.
    pub fn matcher(
        &self,
        filter: &Filter,
        field: &'static str,
    ) -> Result<Arc<Matcher>, BrokerError> {
        let cache = &self.inner.matchers;
        if let Some(m) = cache
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(filter)
        {
            return Ok(Arc::clone(m));
        }
        let matcher = Arc::new(
            Matcher::compile(filter, &self.config().pattern_limits)
                .map_err(|source| BrokerError::InvalidPattern { field, source })?,
        );
        let mut compiled = cache.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if compiled.len() >= DEFAULT_MATCHER_CACHE {
            compiled.clear();
        }
        compiled.insert(filter.clone(), Arc::clone(&matcher));
        Ok(matcher)
    }

    /// Whether a record given by its parts would match `filter` (TestPattern).
    pub fn test_pattern(
        &self,
        filter: &Filter,
        data: &[u8],
        attributes: &[super::PutAttribute],
    ) -> Result<bool, BrokerError> {
        let matcher = self.matcher(filter, "filter.pattern")?;
        let attributes = super::attributes::check(0, attributes, &self.config().attribute_limits)?;
        Ok(matches(&matcher, data, &attributes))
    }
}

/// Whether a stored record matches.
pub fn record_matches(matcher: &Matcher, record: &StoredRecord) -> bool {
    matches(matcher, &record.data, &record.attributes)
}

fn matches(matcher: &Matcher, data: &[u8], attributes: &Attributes) -> bool {
    // A data filter never looks at the attributes, and most records have none: neither pays
    // for the list below.
    if matcher.scope() == FilterScope::Data || attributes.is_empty() {
        return matcher.matches(data, &[]);
    }
    let values: Vec<(&str, AttrValue<'_>)> = attributes
        .iter()
        .map(|a| {
            let text = || a.text().unwrap_or_default();
            let value = match a.kind {
                AttributeType::String => AttrValue::String(text()),
                AttributeType::Number => AttrValue::Number(text()),
                AttributeType::StringArray => AttrValue::StringArray(text()),
                AttributeType::Binary => AttrValue::Binary(a.value),
            };
            (a.name, value)
        })
        .collect();
    matcher.matches(data, &values)
}

/// Keeps the records of `records` that match, in order.
pub(crate) fn retain_matching(matcher: Option<&Matcher>, records: &mut Vec<StoredRecord>) {
    if let Some(m) = matcher {
        records.retain(|r| record_matches(m, r));
    }
}
