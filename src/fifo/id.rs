//! Validation of message group ids and deduplication ids, and the newtypes that carry them.
//!
//! Both follow SQS: 1 to [`MAX_ID_LEN`] characters, each an ASCII letter, digit or one of the 32
//! ASCII punctuation characters `` !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~ ``. Space and anything
//! outside ASCII are refused, so an id is always exactly as many bytes as characters.

use super::error::{FifoError, IdField};

/// The longest message group id or deduplication id, in characters (the SQS limit): the API's
/// limit, which must stay within the frame's capacity for an id,
/// [`crate::storage::record::MAX_FRAME_ID_BYTES`].
pub const MAX_ID_LEN: usize = 128;

// Every id the API accepts is stored with its record; ids are ASCII, so characters are bytes.
const _: () = assert!(MAX_ID_LEN <= crate::storage::record::MAX_FRAME_ID_BYTES);

/// Checks a `message_group_id`; the error names that field.
pub fn validate_message_group_id(id: &str) -> Result<(), FifoError> {
    validate_id(IdField::MessageGroupId, id)
}

/// Checks a `deduplication_id`; the error names that field.
pub fn validate_deduplication_id(id: &str) -> Result<(), FifoError> {
    validate_id(IdField::DeduplicationId, id)
}

fn validate_id(field: IdField, id: &str) -> Result<(), FifoError> {
    // The allowed characters are exactly the printable ASCII bytes, '!' to '~': checking bytes
    // settles every valid id at once; the slower walk below only names what is wrong.
    if !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(());
    }
    // Characters first: a non-ASCII id is reported for its character, not for a byte length the
    // client never sees. Every allowed character is one byte, so after this loop bytes = chars.
    for (position, character) in id.chars().enumerate() {
        if !is_allowed(character) {
            return Err(FifoError::IdCharacter {
                field,
                character,
                position,
            });
        }
    }
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(FifoError::IdLength {
            field,
            len: id.len(),
            max: MAX_ID_LEN,
        });
    }
    Ok(())
}

fn is_allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || c.is_ascii_punctuation()
}

#[cfg(test)]
/// A validated message group id: all records of one group go to one shard, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageGroupId(String);

#[cfg(test)]
impl MessageGroupId {
    /// Validates `id` (see [`validate_message_group_id`]).
    pub fn new(id: impl Into<String>) -> Result<Self, FifoError> {
        let id = id.into();
        validate_message_group_id(&id)?;
        Ok(Self(id))
    }

    /// The id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
/// A validated deduplication id: a second put with the same id within the window is a duplicate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeduplicationId(String);

#[cfg(test)]
impl DeduplicationId {
    /// Validates `id` (see [`validate_deduplication_id`]).
    pub fn new(id: impl Into<String>) -> Result<Self, FifoError> {
        let id = id.into();
        validate_deduplication_id(&id)?;
        Ok(Self(id))
    }

    /// The id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

    #[test]
    fn every_sqs_punctuation_character_letter_and_digit_is_accepted() {
        assert_eq!(PUNCTUATION.len(), 32);
        for c in PUNCTUATION
            .chars()
            .chain('a'..='z')
            .chain('A'..='Z')
            .chain('0'..='9')
        {
            let id = c.to_string();
            assert_eq!(validate_message_group_id(&id), Ok(()), "{c:?}");
            assert_eq!(validate_deduplication_id(&id), Ok(()), "{c:?}");
        }
        assert_eq!(validate_deduplication_id(PUNCTUATION), Ok(()));
    }

    #[test]
    fn every_other_character_is_rejected_with_its_position() {
        let allowed: Vec<char> = PUNCTUATION
            .chars()
            .chain('a'..='z')
            .chain('A'..='Z')
            .chain('0'..='9')
            .collect();
        let others = (0u8..=127)
            .map(char::from)
            .filter(|c| !allowed.contains(c))
            .chain(['é', '€', '\u{00a0}', '😀', '\u{ff01}']);
        let mut rejected = 0;
        for c in others {
            let id = format!("ab{c}");
            assert_eq!(
                validate_deduplication_id(&id),
                Err(FifoError::IdCharacter {
                    field: IdField::DeduplicationId,
                    character: c,
                    position: 2,
                }),
                "{c:?}"
            );
            rejected += 1;
        }
        // 33 ASCII control characters, space, and the five non-ASCII samples.
        assert_eq!(rejected, 33 + 1 + 5);
    }

    #[test]
    fn allowed_characters_are_the_printable_ascii_bytes() {
        for c in (0u8..=255).map(char::from) {
            assert_eq!(is_allowed(c), c.is_ascii_graphic(), "{c:?}");
        }
    }

    #[test]
    fn empty_id_is_rejected_naming_the_field() {
        let err = validate_message_group_id("").unwrap_err();
        assert_eq!(
            err,
            FifoError::IdLength {
                field: IdField::MessageGroupId,
                len: 0,
                max: MAX_ID_LEN,
            }
        );
        assert!(err.to_string().starts_with("message_group_id "), "{err}");
    }

    #[test]
    fn id_of_128_characters_is_accepted_and_129_rejected() {
        let longest = "x".repeat(MAX_ID_LEN);
        assert_eq!(validate_deduplication_id(&longest), Ok(()));
        let err = validate_deduplication_id(&"x".repeat(MAX_ID_LEN + 1)).unwrap_err();
        assert_eq!(
            err,
            FifoError::IdLength {
                field: IdField::DeduplicationId,
                len: MAX_ID_LEN + 1,
                max: MAX_ID_LEN,
            }
        );
        assert!(err.to_string().starts_with("deduplication_id "), "{err}");
    }

    #[test]
    fn newtypes_only_hold_valid_ids() {
        assert_eq!(
            MessageGroupId::new("orders-42").unwrap().as_str(),
            "orders-42"
        );
        assert!(MessageGroupId::new("has space").is_err());
        assert_eq!(DeduplicationId::new("a|b").unwrap().as_str(), "a|b");
        assert!(DeduplicationId::new("").is_err());
    }
}
