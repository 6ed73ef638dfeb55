//! Owners: the users or services that tokens belong to.

use std::fmt;

/// Maximum length of an owner id in characters.
pub const MAX_OWNER_LEN: usize = 128;

/// Rule that an invalid owner id breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnerError {
    /// The owner id is empty.
    #[error("owner is empty")]
    Empty,
    /// The owner id is longer than 128 characters.
    #[error("owner is {0} characters long; the maximum is {MAX_OWNER_LEN}")]
    TooLong(usize),
    /// The owner id contains whitespace, a control character or non-ASCII.
    #[error("owner contains a character that is not printable ASCII or is whitespace")]
    InvalidCharacter,
}

/// An owner id: 1 to 128 printable ASCII characters without whitespace, such
/// as a user id, an email address or `svc:billing`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner(String);

impl Owner {
    /// Validates an owner id.
    ///
    /// # Errors
    ///
    /// Returns the first rule that the id breaks.
    pub fn parse(raw: &str) -> Result<Self, OwnerError> {
        if raw.is_empty() {
            return Err(OwnerError::Empty);
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(OwnerError::InvalidCharacter);
        }
        if raw.len() > MAX_OWNER_LEN {
            return Err(OwnerError::TooLong(raw.len()));
        }
        Ok(Self(raw.to_owned()))
    }

    /// Wraps an owner id read from storage, where it was validated on write.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    /// Returns the owner id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Owner({:?})", self.0)
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_owner_forms_are_valid() {
        for owner in ["u1", "alice@example.com", "svc:billing", "team/platform-1"] {
            assert!(Owner::parse(owner).is_ok(), "{owner}");
        }
    }

    #[test]
    fn bad_owners_are_rejected() {
        assert_eq!(Owner::parse(""), Err(OwnerError::Empty));
        assert_eq!(Owner::parse("a b"), Err(OwnerError::InvalidCharacter));
        assert_eq!(Owner::parse("é"), Err(OwnerError::InvalidCharacter));
        assert_eq!(Owner::parse("a\0"), Err(OwnerError::InvalidCharacter));
        assert_eq!(
            Owner::parse(&"a".repeat(129)),
            Err(OwnerError::TooLong(129))
        );
        assert!(Owner::parse(&"a".repeat(128)).is_ok());
    }
}
