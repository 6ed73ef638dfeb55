//! The status of a token, derived from its times and never stored.

use super::Timestamp;

/// The state of a token at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    /// Neither revoked nor expired.
    Active,
    /// The instant is at or after the expiry time.
    Expired,
    /// Revoked. Revocation takes precedence over expiry.
    Revoked,
}

impl TokenStatus {
    /// Derives the status at `now`. List, Validate and caller authentication
    /// all use this one function, so they can never disagree.
    pub fn at(
        now: Timestamp,
        expires_at: Option<Timestamp>,
        revoked_at: Option<Timestamp>,
    ) -> Self {
        if revoked_at.is_some() {
            Self::Revoked
        } else if expires_at.is_some_and(|expiry| now >= expiry) {
            Self::Expired
        } else {
            Self::Active
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix(seconds, 0).unwrap()
    }

    #[test]
    fn expired_exactly_at_expiry() {
        assert_eq!(
            TokenStatus::at(at(99), Some(at(100)), None),
            TokenStatus::Active
        );
        assert_eq!(
            TokenStatus::at(at(100), Some(at(100)), None),
            TokenStatus::Expired
        );
        assert_eq!(
            TokenStatus::at(at(101), Some(at(100)), None),
            TokenStatus::Expired
        );
    }

    #[test]
    fn no_expiry_stays_active() {
        assert_eq!(
            TokenStatus::at(at(253_402_300_799), None, None),
            TokenStatus::Active
        );
    }

    #[test]
    fn revoked_wins_over_expired() {
        assert_eq!(
            TokenStatus::at(at(200), Some(at(100)), Some(at(50))),
            TokenStatus::Revoked
        );
    }
}
