//! Token names: the purpose a person gives a token.

/// Maximum length of a name in characters (Unicode scalar values), after trimming.
pub const MAX_NAME_CHARS: usize = 100;

/// Rule that an invalid name breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing is left after trimming.
    #[error("name is required: it is empty after trimming whitespace")]
    Empty,
    /// More than 100 characters are left after trimming.
    #[error("name is {0} characters long; the maximum is {MAX_NAME_CHARS}")]
    TooLong(usize),
    /// The name contains a control character such as NUL or a line break.
    #[error("name contains the control character U+{0:04X}; control characters are not allowed")]
    ControlCharacter(u32),
}

/// A validated name: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenName(String);

impl TokenName {
    /// Trims surrounding whitespace and validates the rest.
    ///
    /// # Errors
    ///
    /// Returns the first rule that the name breaks.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if let Some(control) = name.chars().find(|c| c.is_control()) {
            return Err(NameError::ControlCharacter(u32::from(control)));
        }
        let count = name.chars().count();
        if count > MAX_NAME_CHARS {
            return Err(NameError::TooLong(count));
        }
        Ok(Self(name.to_owned()))
    }

    /// Returns the name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes the name into its text.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_names_are_rejected() {
        assert_eq!(TokenName::parse(""), Err(NameError::Empty));
        assert_eq!(TokenName::parse("   \t"), Err(NameError::Empty));
    }

    #[test]
    fn limit_counts_characters_not_bytes() {
        assert!(TokenName::parse(&"é".repeat(100)).is_ok());
        assert_eq!(
            TokenName::parse(&"é".repeat(101)),
            Err(NameError::TooLong(101))
        );
        assert!(TokenName::parse(&"🚀".repeat(100)).is_ok());
    }

    #[test]
    fn surrounding_whitespace_does_not_count() {
        let name = TokenName::parse(&format!("  {}  ", "a".repeat(100))).unwrap();
        assert_eq!(name.as_str().len(), 100);
    }

    #[test]
    fn control_characters_are_rejected() {
        assert_eq!(
            TokenName::parse("a\0b"),
            Err(NameError::ControlCharacter(0))
        );
        assert_eq!(
            TokenName::parse("a\nb"),
            Err(NameError::ControlCharacter(10))
        );
        assert_eq!(
            TokenName::parse("a\u{7f}b"),
            Err(NameError::ControlCharacter(0x7f))
        );
    }

    #[test]
    fn unicode_name_is_kept_as_is() {
        let name = TokenName::parse("déploiement 🚀").unwrap();
        assert_eq!(name.as_str(), "déploiement 🚀");
    }
}
