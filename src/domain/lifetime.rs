//! Lifetime policy: when a new token expires.

use super::Timestamp;

const MICROS_PER_SECOND: i64 = 1_000_000;
/// Seconds in a day. Lifetimes count days as 86,400 s in UTC, never calendar days.
pub const SECONDS_PER_DAY: i64 = 86_400;

/// The expiration requested by a Generate call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiration {
    /// No expiration field: the server's default lifetime applies.
    Default,
    /// A lifetime counted from now, as a protobuf `Duration` gives it.
    Ttl {
        /// Whole seconds.
        seconds: i64,
        /// Nanoseconds, with the same sign as `seconds`.
        nanos: i32,
    },
    /// An absolute expiry time.
    At(Timestamp),
    /// The token never expires.
    Never,
}

/// Violation of the lifetime policy by a requested expiration. Messages name the request
/// field, the value and the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifetimeError {
    /// The duration's seconds and nanoseconds disagree in sign or the
    /// nanoseconds are out of range.
    #[error(
        "ttl is not a valid duration: seconds {seconds} and nanos {nanos} must share a sign and nanos must be within ±999,999,999"
    )]
    InvalidTtl {
        /// Seconds as given.
        seconds: i64,
        /// Nanoseconds as given.
        nanos: i32,
    },
    /// The ttl is zero or negative.
    #[error("ttl must be positive, got {0}")]
    TtlNotPositive(String),
    /// The ttl is longer than the maximum lifetime.
    #[error("ttl {given} is longer than the maximum lifetime of {max}")]
    TtlTooLong {
        /// The ttl as given, in a readable form.
        given: String,
        /// The maximum lifetime, in a readable form.
        max: String,
    },
    /// The expiry time is not after now.
    #[error("expires_at {expires_at} must be after the current time {now}")]
    NotInFuture {
        /// The requested expiry.
        expires_at: Timestamp,
        /// The server's current time.
        now: Timestamp,
    },
    /// The expiry time is later than now plus the maximum lifetime.
    #[error(
        "expires_at {expires_at} is later than {latest}, the maximum lifetime of {max} from now"
    )]
    TooLate {
        /// The requested expiry.
        expires_at: Timestamp,
        /// The latest accepted expiry.
        latest: Timestamp,
        /// The maximum lifetime, in a readable form.
        max: String,
    },
    /// The policy does not allow tokens without expiry.
    #[error(
        "no_expiration is not allowed by this server's policy; give a ttl or expires_at of at most {max}"
    )]
    NoExpirationNotAllowed {
        /// The maximum lifetime, in a readable form.
        max: String,
    },
    /// The resulting expiry is past year 9999.
    #[error("the requested expiration is past 9999-12-31T23:59:59Z")]
    OutOfRange,
}

/// Default and maximum lifetimes, and whether tokens may never expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifetimePolicy {
    default_seconds: i64,
    max_seconds: i64,
    allow_no_expiration: bool,
}

impl LifetimePolicy {
    /// Creates a policy. A default longer than the maximum is clamped to the
    /// maximum, so the server's own default never breaks its own limit.
    ///
    /// # Panics
    ///
    /// Panics when either lifetime is not positive; configuration parsing
    /// rejects such values before this is called.
    pub fn new(default_seconds: i64, max_seconds: i64, allow_no_expiration: bool) -> Self {
        assert!(
            default_seconds > 0 && max_seconds > 0,
            "lifetimes must be positive"
        );
        Self {
            default_seconds: default_seconds.min(max_seconds),
            max_seconds,
            allow_no_expiration,
        }
    }

    /// Returns the default lifetime in seconds, after clamping.
    pub fn default_seconds(&self) -> i64 {
        self.default_seconds
    }

    /// Returns the maximum lifetime in seconds.
    pub fn max_seconds(&self) -> i64 {
        self.max_seconds
    }

    /// Returns whether tokens may be created without expiry.
    pub fn allows_no_expiration(&self) -> bool {
        self.allow_no_expiration
    }

    /// Resolves a requested expiration at `now` to an expiry time, where
    /// `None` means never.
    ///
    /// # Errors
    ///
    /// Returns the rule that the request breaks. The maximum is inclusive:
    /// exactly `now + max` is accepted.
    pub fn resolve(
        &self,
        now: Timestamp,
        requested: Expiration,
    ) -> Result<Option<Timestamp>, LifetimeError> {
        let max = describe_seconds(self.max_seconds);
        let max_micros = self.max_seconds.saturating_mul(MICROS_PER_SECOND);

        match requested {
            Expiration::Default => self
                .default_seconds
                .checked_mul(MICROS_PER_SECOND)
                .and_then(|micros| now.checked_add_micros(micros))
                .map(Some)
                .ok_or(LifetimeError::OutOfRange),
            Expiration::Never if self.allow_no_expiration => Ok(None),
            Expiration::Never => Err(LifetimeError::NoExpirationNotAllowed { max }),
            Expiration::Ttl { seconds, nanos } => {
                let micros = ttl_micros(seconds, nanos)?;
                if micros <= 0 {
                    return Err(LifetimeError::TtlNotPositive(describe_duration(
                        seconds, nanos,
                    )));
                }
                if micros > max_micros {
                    return Err(LifetimeError::TtlTooLong {
                        given: describe_duration(seconds, nanos),
                        max,
                    });
                }
                now.checked_add_micros(micros)
                    .map(Some)
                    .ok_or(LifetimeError::OutOfRange)
            }
            Expiration::At(expires_at) => {
                if expires_at <= now {
                    return Err(LifetimeError::NotInFuture { expires_at, now });
                }
                // A maximum that reaches past year 9999 allows any valid
                // time, which `expires_at` already is.
                let Some(latest) = now.checked_add_micros(max_micros) else {
                    return Ok(Some(expires_at));
                };
                if expires_at > latest {
                    return Err(LifetimeError::TooLate {
                        expires_at,
                        latest,
                        max,
                    });
                }
                Ok(Some(expires_at))
            }
        }
    }
}

/// Converts a protobuf duration to microseconds, rejecting invalid forms
/// and truncating below a microsecond.
fn ttl_micros(seconds: i64, nanos: i32) -> Result<i64, LifetimeError> {
    let invalid = LifetimeError::InvalidTtl { seconds, nanos };
    let signs_agree = (seconds >= 0 && nanos >= 0) || (seconds <= 0 && nanos <= 0);
    if !signs_agree || nanos.unsigned_abs() >= 1_000_000_000 {
        return Err(invalid);
    }
    // A ttl beyond the i64 microsecond range is far past year 9999 anyway.
    let whole = seconds
        .checked_mul(MICROS_PER_SECOND)
        .ok_or(LifetimeError::OutOfRange)?;
    whole
        .checked_add(i64::from(nanos / 1_000))
        .ok_or(LifetimeError::OutOfRange)
}

/// Formats whole seconds as days where they divide evenly, for messages.
pub fn describe_seconds(seconds: i64) -> String {
    if seconds % SECONDS_PER_DAY == 0 {
        let days = seconds / SECONDS_PER_DAY;
        let unit = if days == 1 { "day" } else { "days" };
        format!("{days} {unit} ({seconds} s)")
    } else {
        format!("{seconds} s")
    }
}

fn describe_duration(seconds: i64, nanos: i32) -> String {
    if nanos == 0 {
        describe_seconds(seconds)
    } else {
        format!("{seconds} s {nanos} ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = SECONDS_PER_DAY;

    fn now() -> Timestamp {
        Timestamp::from_unix(1_800_000_000, 0).unwrap()
    }

    fn ttl_days(days: i64) -> Expiration {
        Expiration::Ttl {
            seconds: days * DAY,
            nanos: 0,
        }
    }

    fn days_after(now: Timestamp, days: i64) -> Timestamp {
        now.checked_add_micros(days * DAY * 1_000_000).unwrap()
    }

    #[test]
    fn default_is_thirty_days() {
        let policy = LifetimePolicy::new(30 * DAY, 366 * DAY, false);
        assert_eq!(
            policy.resolve(now(), Expiration::Default),
            Ok(Some(days_after(now(), 30)))
        );
    }

    #[test]
    fn default_is_clamped_to_max() {
        let policy = LifetimePolicy::new(30 * DAY, 20 * DAY, false);
        assert_eq!(policy.default_seconds(), 20 * DAY);
        assert_eq!(
            policy.resolve(now(), Expiration::Default),
            Ok(Some(days_after(now(), 20)))
        );
    }

    #[test]
    fn max_is_inclusive() {
        let policy = LifetimePolicy::new(30 * DAY, 40 * DAY, false);
        assert_eq!(
            policy.resolve(now(), ttl_days(40)),
            Ok(Some(days_after(now(), 40)))
        );
        let error = policy.resolve(now(), ttl_days(41)).unwrap_err();
        assert!(error.to_string().contains("40 days"), "{error}");
        let exact = days_after(now(), 40);
        assert_eq!(
            policy.resolve(now(), Expiration::At(exact)),
            Ok(Some(exact))
        );
        let later = exact.checked_add_micros(1).unwrap();
        assert!(matches!(
            policy.resolve(now(), Expiration::At(later)),
            Err(LifetimeError::TooLate { .. })
        ));
    }

    #[test]
    fn past_and_present_are_rejected() {
        let policy = LifetimePolicy::new(30 * DAY, 40 * DAY, false);
        let past = now().checked_add_micros(-1_000_000).unwrap();
        assert!(matches!(
            policy.resolve(now(), Expiration::At(past)),
            Err(LifetimeError::NotInFuture { .. })
        ));
        assert!(matches!(
            policy.resolve(now(), Expiration::At(now())),
            Err(LifetimeError::NotInFuture { .. })
        ));
    }

    #[test]
    fn non_positive_ttl_is_rejected() {
        let policy = LifetimePolicy::new(30 * DAY, 40 * DAY, false);
        for (seconds, nanos) in [(0, 0), (-1, 0), (0, -5)] {
            let error = policy
                .resolve(now(), Expiration::Ttl { seconds, nanos })
                .unwrap_err();
            assert!(
                matches!(error, LifetimeError::TtlNotPositive(_)),
                "{seconds} {nanos}"
            );
        }
    }

    #[test]
    fn invalid_durations_are_rejected() {
        let policy = LifetimePolicy::new(30 * DAY, 40 * DAY, false);
        for (seconds, nanos) in [(1, -1), (-1, 1), (0, 1_000_000_000)] {
            let error = policy
                .resolve(now(), Expiration::Ttl { seconds, nanos })
                .unwrap_err();
            assert!(
                matches!(error, LifetimeError::InvalidTtl { .. }),
                "{seconds} {nanos}"
            );
        }
    }

    #[test]
    fn huge_ttl_does_not_overflow() {
        let policy = LifetimePolicy::new(30 * DAY, 40 * DAY, true);
        let error = policy.resolve(
            now(),
            Expiration::Ttl {
                seconds: i64::MAX,
                nanos: 999_999_999,
            },
        );
        assert_eq!(error, Err(LifetimeError::OutOfRange));
        let policy = LifetimePolicy::new(DAY, i64::MAX / 2, true);
        let error = policy.resolve(now(), ttl_days(4_000_000));
        assert_eq!(error, Err(LifetimeError::OutOfRange));
    }

    #[test]
    fn no_expiration_follows_policy() {
        let allowed = LifetimePolicy::new(30 * DAY, 40 * DAY, true);
        assert_eq!(allowed.resolve(now(), Expiration::Never), Ok(None));
        let forbidden = LifetimePolicy::new(30 * DAY, 40 * DAY, false);
        assert!(matches!(
            forbidden.resolve(now(), Expiration::Never),
            Err(LifetimeError::NoExpirationNotAllowed { .. })
        ));
    }

    #[test]
    fn huge_max_still_allows_short_lifetimes() {
        let policy = LifetimePolicy::new(DAY, 9000 * 366 * DAY, true);
        assert_eq!(
            policy.resolve(now(), ttl_days(1)),
            Ok(Some(days_after(now(), 1)))
        );
        assert_eq!(
            policy.resolve(now(), Expiration::Default),
            Ok(Some(days_after(now(), 1)))
        );
        assert_eq!(policy.resolve(now(), Expiration::Never), Ok(None));
        let far = Timestamp::from_unix(253_402_300_799, 0).unwrap();
        assert_eq!(policy.resolve(now(), Expiration::At(far)), Ok(Some(far)));
    }

    #[test]
    fn sub_second_ttl_counts() {
        let policy = LifetimePolicy::new(30 * DAY, 40 * DAY, false);
        let resolved = policy.resolve(
            now(),
            Expiration::Ttl {
                seconds: 0,
                nanos: 500_000_000,
            },
        );
        assert_eq!(
            resolved,
            Ok(Some(now().checked_add_micros(500_000).unwrap()))
        );
    }
}
