//! `MemberId`: the validated name a consumer-group member joins under.

use std::fmt;

use super::error::GroupError;

/// Longest member id accepted, in characters.
pub const MAX_MEMBER_ID_CHARS: usize = 256;

/// The id a member joins under: 1 to [`MAX_MEMBER_ID_CHARS`] characters, none of them a control
/// character. Chosen by the client and reused across its heartbeats; a process that restarts
/// under the same id is the same member to the group (static membership).
///
/// Validation happens here, once, so everything downstream can print and compare ids without
/// re-checking them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(String);

impl MemberId {
    /// Validates `id`. The error names the field `member_id`.
    pub fn new(id: impl Into<String>) -> Result<Self, GroupError> {
        let id = id.into();
        if id.is_empty() {
            return Err(GroupError::InvalidMemberId {
                reason: "must not be empty",
            });
        }
        if id.chars().count() > MAX_MEMBER_ID_CHARS {
            return Err(GroupError::InvalidMemberId {
                reason: "must be at most 256 characters",
            });
        }
        if id.chars().any(char::is_control) {
            return Err(GroupError::InvalidMemberId {
                reason: "must contain printable characters only",
            });
        }
        Ok(Self(id))
    }

    /// The id as the client sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_id_accepts_one_to_256_printable_characters() {
        assert_eq!(MemberId::new("w").map(|m| m.0), Ok("w".to_owned()));
        let longest = "é".repeat(MAX_MEMBER_ID_CHARS);
        assert!(MemberId::new(longest).is_ok());
        assert!(MemberId::new("worker 7 / host-a:9000").is_ok());
    }

    #[test]
    fn member_id_rejects_empty_too_long_and_control_characters_naming_the_field() {
        for bad in [
            String::new(),
            "x".repeat(MAX_MEMBER_ID_CHARS + 1),
            "tab\there".to_owned(),
            "nul\0".to_owned(),
        ] {
            let err = MemberId::new(bad).unwrap_err();
            assert!(matches!(err, GroupError::InvalidMemberId { .. }));
            assert_eq!(err.field(), Some("member_id"));
            assert!(err.to_string().contains("member_id"), "{err}");
        }
    }
}
