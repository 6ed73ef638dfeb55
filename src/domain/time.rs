//! UTC instants with microsecond precision.

use std::fmt;

/// Microseconds per second.
const MICROS_PER_SECOND: i64 = 1_000_000;
/// Seconds from the Unix epoch to 0001-01-01T00:00:00Z, the earliest instant
/// that `google.protobuf.Timestamp` allows.
pub const MIN_SECONDS: i64 = -62_135_596_800;
/// Seconds from the Unix epoch to 9999-12-31T23:59:59Z, the latest instant
/// that `google.protobuf.Timestamp` allows.
pub const MAX_SECONDS: i64 = 253_402_300_799;

/// An instant in UTC, stored as microseconds since the Unix epoch.
///
/// Every value lies between year 1 and year 9999, so conversions to and from
/// protobuf timestamps never fail on a value of this type.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Builds an instant from seconds and nanoseconds since the Unix epoch.
    ///
    /// Returns `None` outside years 1 to 9999 or for nanoseconds outside
    /// `0..1_000_000_000`. Nanoseconds below a microsecond are truncated.
    pub fn from_unix(seconds: i64, nanos: i32) -> Option<Self> {
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&seconds) || !(0..1_000_000_000).contains(&nanos) {
            return None;
        }
        let micros = seconds.checked_mul(MICROS_PER_SECOND)? + i64::from(nanos / 1_000);
        Some(Self(micros))
    }

    /// Builds an instant from microseconds since the Unix epoch, as stored in
    /// the database. Returns `None` outside years 1 to 9999.
    pub fn from_micros(micros: i64) -> Option<Self> {
        let seconds = micros.div_euclid(MICROS_PER_SECOND);
        (MIN_SECONDS..=MAX_SECONDS)
            .contains(&seconds)
            .then_some(Self(micros))
    }

    /// Returns microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// Returns whole seconds and the nanoseconds within the second.
    pub fn to_unix(self) -> (i64, i32) {
        let seconds = self.0.div_euclid(MICROS_PER_SECOND);
        let nanos = self.0.rem_euclid(MICROS_PER_SECOND) * 1_000;
        // The remainder is below 10^9, so it fits in an i32.
        (seconds, nanos as i32)
    }

    /// Adds a span in microseconds. Returns `None` past year 9999 or before year 1.
    pub fn checked_add_micros(self, micros: i64) -> Option<Self> {
        Self::from_micros(self.0.checked_add(micros)?)
    }

    /// Returns the microseconds from `earlier` to `self`, negative when
    /// `earlier` is later.
    pub fn micros_since(self, earlier: Self) -> i64 {
        // Both values are within years 1 to 9999, so the difference cannot overflow.
        self.0 - earlier.0
    }

    /// Formats the instant as RFC 3339 in UTC with microseconds.
    pub fn to_rfc3339(self) -> String {
        let (seconds, nanos) = self.to_unix();
        match chrono::DateTime::from_timestamp(seconds, nanos as u32) {
            Some(time) => time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            None => format!("{}us", self.0),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_round_trip_keeps_micros() {
        let time = Timestamp::from_unix(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(time.to_unix(), (1_700_000_000, 123_456_000));
    }

    #[test]
    fn negative_instants_round_trip() {
        let time = Timestamp::from_unix(-1, 500_000_000).unwrap();
        assert_eq!(time.as_micros(), -500_000);
        assert_eq!(time.to_unix(), (-1, 500_000_000));
    }

    #[test]
    fn year_ten_thousand_is_rejected() {
        assert!(Timestamp::from_unix(MAX_SECONDS + 1, 0).is_none());
        assert!(Timestamp::from_unix(MIN_SECONDS - 1, 0).is_none());
        assert!(Timestamp::from_unix(0, 1_000_000_000).is_none());
        assert!(Timestamp::from_unix(0, -1).is_none());
    }

    #[test]
    fn add_past_year_9999_is_none() {
        let time = Timestamp::from_unix(MAX_SECONDS, 0).unwrap();
        assert!(time.checked_add_micros(MICROS_PER_SECOND).is_none());
        assert!(time.checked_add_micros(i64::MAX).is_none());
    }

    #[test]
    fn rfc3339_is_utc() {
        let time = Timestamp::from_unix(0, 0).unwrap();
        assert_eq!(time.to_rfc3339(), "1970-01-01T00:00:00.000000Z");
    }
}
