//! Validated names: [`StreamName`] and [`GroupName`], checked once on construction so every path,
//! key and log line downstream can trust them.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use super::{ModelError, MAX_GROUP_NAME_LEN, MAX_RULE_NAME_LEN, MAX_STREAM_NAME_LEN};

/// Checks `[a-zA-Z0-9_.-]{1,max_len}`, not `.` or `..`: such a name is safe as a directory name.
fn validate(field: &'static str, name: &str, max_len: usize) -> Result<(), ModelError> {
    if name.is_empty() {
        return Err(ModelError::invalid(field, "must not be empty"));
    }
    if name.len() > max_len {
        return Err(ModelError::invalid(
            field,
            format!("is {} bytes long, longer than {max_len}", name.len()),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(ModelError::invalid(
            field,
            format!("character {c:?} is not allowed; names use [a-zA-Z0-9_.-]"),
        ));
    }
    if name == "." || name == ".." {
        return Err(ModelError::invalid(field, format!("{name:?} is reserved")));
    }
    Ok(())
}

macro_rules! validated_name {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Validates `name` against `[a-zA-Z0-9_.-]` and its maximum length (and not `.`
            /// or `..`).
            pub fn new(name: impl Into<String>) -> Result<Self, ModelError> {
                let name = name.into();
                validate($field, &name, $max)?;
                Ok(Self(name))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The name as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = ModelError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ModelError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        // Ord of the newtype is Ord of the string, so maps keyed by names can be queried by `&str`.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

validated_name!(
    /// The name of a stream: `[a-zA-Z0-9_.-]{1,128}`, not `.` or `..`. Safe as a directory name.
    StreamName,
    "stream_name",
    MAX_STREAM_NAME_LEN
);

validated_name!(
    /// The name of a consumer group: the same rules as [`StreamName`].
    GroupName,
    "group_name",
    MAX_GROUP_NAME_LEN
);

validated_name!(
    /// The name of a rule: `[a-zA-Z0-9_.-]{1,64}`, not `.` or `..` (EventBridge's rule names).
    RuleName,
    "rule_name",
    MAX_RULE_NAME_LEN
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_allowed_characters_are_accepted() {
        for name in ["a", "orders", "Orders_2024.v1-eu", "...", ".hidden", "-"] {
            assert_eq!(StreamName::new(name).unwrap().as_str(), name);
            assert_eq!(GroupName::new(name).unwrap().as_str(), name);
        }
        assert!(StreamName::new("x".repeat(MAX_STREAM_NAME_LEN)).is_ok());
    }

    #[test]
    fn bad_stream_names_are_rejected_naming_the_field() {
        let too_long = "x".repeat(MAX_STREAM_NAME_LEN + 1);
        for name in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "é",
            "a\0",
            "../etc",
            too_long.as_str(),
        ] {
            let err = StreamName::new(name).unwrap_err();
            assert_eq!(err.field(), "stream_name", "{name:?}");
        }
    }

    #[test]
    fn bad_group_names_are_rejected_naming_the_field() {
        let err = GroupName::new("a:b").unwrap_err();
        assert_eq!(err.field(), "group_name");
        assert!(err.to_string().contains("':'"), "{err}");
    }

    #[test]
    fn names_display_and_parse_as_themselves() {
        let name: StreamName = "orders".parse().unwrap();
        assert_eq!(name.to_string(), "orders");
        assert_eq!(StreamName::try_from("orders".to_string()).unwrap(), name);
    }

    #[test]
    fn maps_keyed_by_names_can_be_queried_by_str() {
        let mut map = std::collections::BTreeMap::new();
        map.insert(StreamName::new("b").unwrap(), 2);
        map.insert(StreamName::new("a").unwrap(), 1);
        assert_eq!(map.get("b"), Some(&2));
        assert_eq!(map.keys().next().unwrap().as_str(), "a");
    }
}
