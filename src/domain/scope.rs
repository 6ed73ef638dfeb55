//! Scopes: the permissions a token carries.

use std::{collections::BTreeSet, fmt};

/// Maximum length of one scope in characters.
pub const MAX_SCOPE_LEN: usize = 64;
/// Maximum number of scopes on one token.
pub const MAX_SCOPES: usize = 32;

/// Scope that allows every RPC for any owner.
pub const ADMIN: &str = "tokens:admin";
/// Scope that allows Generate, List and Revoke on the owner's own tokens.
pub const SELF: &str = "tokens:self";
/// Scope that allows Validate.
pub const VALIDATE: &str = "tokens:validate";

/// Rule that an invalid scope or scope list breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// The scope does not match `[a-z][a-z0-9_.:-]{0,63}`. The value is
    /// included because scopes are not secret.
    #[error(
        "invalid scope {0:?}: expected a lowercase letter, then up to 63 of a-z, 0-9, '_', '.', ':' or '-'"
    )]
    Invalid(String),
    /// More than 32 distinct scopes were given.
    #[error("{0} scopes given; the maximum is {MAX_SCOPES}")]
    TooMany(usize),
}

/// One validated scope.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(String);

impl Scope {
    /// Validates one scope against `[a-z][a-z0-9_.:-]{0,63}`.
    ///
    /// # Errors
    ///
    /// Returns [`ScopeError::Invalid`] with the value.
    pub fn parse(raw: &str) -> Result<Self, ScopeError> {
        let bytes = raw.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= MAX_SCOPE_LEN
            && bytes[0].is_ascii_lowercase()
            && bytes[1..].iter().all(|&b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'.' | b':' | b'-')
            });
        if !valid {
            return Err(ScopeError::Invalid(shorten(raw)));
        }
        Ok(Self(raw.to_owned()))
    }

    /// Returns the scope text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sorted set of at most 32 scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    /// Validates every scope and removes duplicates.
    ///
    /// # Errors
    ///
    /// Returns the first invalid scope, or [`ScopeError::TooMany`].
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, ScopeError> {
        let set = raw
            .iter()
            .map(|scope| Scope::parse(scope.as_ref()))
            .collect::<Result<BTreeSet<_>, _>>()?;
        if set.len() > MAX_SCOPES {
            return Err(ScopeError::TooMany(set.len()));
        }
        Ok(Self(set))
    }

    /// Reads the space-separated form that storage keeps. Stored scopes were
    /// validated on write, so nothing is checked here.
    pub fn from_stored(text: &str) -> Self {
        Self(
            text.split(' ')
                .filter(|s| !s.is_empty())
                .map(|s| Scope(s.to_owned()))
                .collect(),
        )
    }

    /// Returns the space-separated form for storage. Scopes never contain
    /// spaces, so the split is unambiguous.
    pub fn to_stored(&self) -> String {
        self.iter().collect::<Vec<_>>().join(" ")
    }

    /// Returns whether the set contains `scope`.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|held| held.as_str() == scope)
    }

    /// Returns whether every scope of `other` is in this set.
    pub fn is_superset(&self, other: &ScopeSet) -> bool {
        self.0.is_superset(&other.0)
    }

    /// Returns the scopes of `other` that this set lacks.
    pub fn missing_from<'a>(&self, other: &'a ScopeSet) -> Vec<&'a str> {
        other
            .0
            .iter()
            .filter(|scope| !self.0.contains(*scope))
            .map(Scope::as_str)
            .collect()
    }

    /// Iterates the scopes in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(Scope::as_str)
    }

    /// Returns the number of scopes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Returns whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Keeps an invalid value short enough for an error message.
fn shorten(raw: &str) -> String {
    const MAX_SHOWN: usize = 80;
    match raw.char_indices().nth(MAX_SHOWN) {
        Some((end, _)) => format!("{}…", &raw[..end]),
        None => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_grammar_is_enforced() {
        for valid in ["a", "repo:read", "tokens:admin", "x.y_z-1", &"a".repeat(64)] {
            assert!(Scope::parse(valid).is_ok(), "{valid}");
        }
        for invalid in [
            "",
            "Repo",
            "1repo",
            "repo read",
            "repo/read",
            &"a".repeat(65),
            "é",
        ] {
            assert!(Scope::parse(invalid).is_err(), "{invalid}");
        }
    }

    #[test]
    fn set_limit_is_thirty_two() {
        let scopes: Vec<String> = (0..32).map(|i| format!("s{i}")).collect();
        assert_eq!(ScopeSet::parse(&scopes).unwrap().len(), 32);
        let scopes: Vec<String> = (0..33).map(|i| format!("s{i}")).collect();
        assert_eq!(ScopeSet::parse(&scopes), Err(ScopeError::TooMany(33)));
    }

    #[test]
    fn duplicates_collapse() {
        let set = ScopeSet::parse(&["b", "a", "b"]).unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn stored_form_round_trips() {
        let set = ScopeSet::parse(&["tokens:self", "repo:read"]).unwrap();
        assert_eq!(set.to_stored(), "repo:read tokens:self");
        assert_eq!(ScopeSet::from_stored(&set.to_stored()), set);
        assert!(ScopeSet::from_stored("").is_empty());
    }

    #[test]
    fn missing_lists_what_other_adds() {
        let held = ScopeSet::parse(&["a", "b"]).unwrap();
        let wanted = ScopeSet::parse(&["b", "c"]).unwrap();
        assert!(!held.is_superset(&wanted));
        assert_eq!(held.missing_from(&wanted), ["c"]);
    }

    #[test]
    fn long_invalid_value_is_shortened() {
        let ScopeError::Invalid(shown) = Scope::parse(&"A".repeat(500)).unwrap_err() else {
            panic!("expected Invalid");
        };
        assert!(shown.chars().count() <= 81);
    }
}
