//! Fuzzes the checks that a Generate request passes before any I/O: the
//! name, the scopes, the owner, timestamps and the lifetime policy.
//!
//! Input layout, chosen so that seed files stay readable:
//!
//! - the first `HEADER_LEN` bytes are decoded with `arbitrary` into the
//!   numbers of the request and the server's policy, padded with zeros when
//!   the input is shorter;
//! - the rest is split on the byte 0xFF, which never occurs in UTF-8, into
//!   the name, the owner and then one scope per remaining part. Invalid
//!   UTF-8 becomes U+FFFD, because prost rejects a `string` field that is
//!   not UTF-8 before any tokend code runs.
//!
//! Every parser must return without panicking, and what it accepts must meet
//! the documented limits.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tokend::domain::{
    Expiration, LifetimeError, LifetimePolicy, NameError, Owner, OwnerError, ScopeError, ScopeSet,
    Timestamp, TokenName,
    name::MAX_NAME_CHARS,
    owner::MAX_OWNER_LEN,
    scope::{MAX_SCOPE_LEN, MAX_SCOPES},
    time::{MAX_SECONDS, MIN_SECONDS},
};

/// Bytes of the input that hold `Numbers`. `Numbers` needs 46, and the rest
/// is spare so that a change to it does not shift the text fields.
const HEADER_LEN: usize = 48;
/// Separator of the text fields.
const SEPARATOR: u8 = 0xFF;
const MICROS_PER_SECOND: i64 = 1_000_000;
/// The maximum lifetime that `--default-ttl` and `--max-ttl` accept:
/// 10,000 years of 366 days.
const MAX_CONFIG_LIFETIME_SECONDS: u64 = 10_000 * 366 * 86_400;

/// The expiration oneof of a Generate request, plus an absolute time given
/// relative to now so that the fuzzer reaches the maximum-lifetime boundary.
#[derive(Debug, Arbitrary)]
enum ExpirationKind {
    Unset,
    Ttl,
    ExpiresAt,
    ExpiresAtFromNow,
    NoExpiration,
}

#[derive(Debug, Arbitrary)]
struct Numbers {
    expiration: ExpirationKind,
    seconds: i64,
    nanos: i32,
    no_expiration: bool,
    now_seconds: i64,
    now_nanos: i32,
    default_seconds: u64,
    max_seconds: u64,
    allow_no_expiration: bool,
}

fn check_name(raw: &str) {
    let trimmed = raw.trim();
    match TokenName::parse(raw) {
        Ok(name) => {
            let count = name.as_str().chars().count();
            assert!(
                (1..=MAX_NAME_CHARS).contains(&count),
                "accepted a name of {count} characters"
            );
            assert!(
                !name.as_str().chars().any(char::is_control),
                "accepted a name with a control character"
            );
            assert_eq!(
                name.as_str(),
                trimmed,
                "the stored name is not the trimmed input"
            );
        }
        Err(error) => {
            let _ = error.to_string();
            match error {
                NameError::Empty => assert!(trimmed.is_empty()),
                NameError::TooLong(count) => {
                    assert!(count > MAX_NAME_CHARS);
                    assert_eq!(count, trimmed.chars().count());
                }
                NameError::ControlCharacter(code) => {
                    let control = char::from_u32(code).expect("a reported character is a char");
                    assert!(control.is_control());
                    assert!(trimmed.contains(control));
                }
            }
        }
    }
}

fn check_owner(raw: &str) {
    match Owner::parse(raw) {
        Ok(owner) => {
            assert_eq!(owner.as_str(), raw);
            assert!((1..=MAX_OWNER_LEN).contains(&raw.len()));
            assert!(raw.bytes().all(|b| b.is_ascii_graphic()));
        }
        Err(error) => {
            let _ = error.to_string();
            if let OwnerError::TooLong(length) = error {
                assert!(length > MAX_OWNER_LEN);
            }
        }
    }
}

fn check_scopes(raw: &[String]) {
    match ScopeSet::parse(raw) {
        Ok(set) => {
            assert!(set.len() <= MAX_SCOPES, "accepted {} scopes", set.len());
            for scope in set.iter() {
                assert!(
                    (1..=MAX_SCOPE_LEN).contains(&scope.chars().count()),
                    "accepted the scope {scope:?}"
                );
                let mut bytes = scope.bytes();
                let first = bytes.next().expect("scope is not empty");
                assert!(first.is_ascii_lowercase(), "accepted the scope {scope:?}");
                assert!(
                    bytes.all(|b| b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || matches!(b, b'_' | b'.' | b':' | b'-')),
                    "accepted the scope {scope:?}"
                );
            }
            for scope in raw {
                assert!(set.contains(scope), "the set lost the scope {scope:?}");
            }
            // Storage keeps scopes space-separated, so the stored form must
            // read back as the same set.
            assert_eq!(ScopeSet::from_stored(&set.to_stored()), set);
        }
        Err(error) => {
            let _ = error.to_string();
            if let ScopeError::TooMany(count) = error {
                assert!(count > MAX_SCOPES);
            }
        }
    }
}

/// Builds a timestamp from raw numbers and checks `Timestamp::from_unix`.
fn check_timestamp(seconds: i64, nanos: i32) -> Option<Timestamp> {
    let time = Timestamp::from_unix(seconds, nanos);
    let in_range =
        (MIN_SECONDS..=MAX_SECONDS).contains(&seconds) && (0..1_000_000_000).contains(&nanos);
    assert_eq!(time.is_some(), in_range, "from_unix({seconds}, {nanos})");
    if let Some(time) = time {
        assert_eq!(time.to_unix(), (seconds, nanos / 1_000 * 1_000));
        let _ = time.to_rfc3339();
    }
    time
}

/// Maps a raw number into 1..=10,000 years, the range that the server's
/// configuration accepts, so every policy here is one a server can run.
fn config_lifetime(raw: u64) -> i64 {
    (raw % MAX_CONFIG_LIFETIME_SECONDS + 1) as i64
}

fn check_lifetime(numbers: &Numbers) {
    let raw_now = check_timestamp(numbers.now_seconds, numbers.now_nanos);
    // Any instant that a clock can report will do as now.
    let now = raw_now.unwrap_or_else(|| {
        let seconds = MIN_SECONDS
            + numbers
                .now_seconds
                .rem_euclid(MAX_SECONDS - MIN_SECONDS + 1);
        Timestamp::from_unix(seconds, numbers.now_nanos.rem_euclid(1_000_000_000))
            .expect("value is in range")
    });

    let default_seconds = config_lifetime(numbers.default_seconds);
    let max_seconds = config_lifetime(numbers.max_seconds);
    let policy = LifetimePolicy::new(default_seconds, max_seconds, numbers.allow_no_expiration);
    assert_eq!(policy.default_seconds(), default_seconds.min(max_seconds));
    let max_micros = max_seconds * MICROS_PER_SECOND;

    // The Generate handler turns the request's oneof into an `Expiration`
    // the same way: an out-of-range `expires_at` and `no_expiration: false`
    // are rejected before the policy is applied.
    let requested = match numbers.expiration {
        ExpirationKind::Unset => Expiration::Default,
        ExpirationKind::Ttl => Expiration::Ttl {
            seconds: numbers.seconds,
            nanos: numbers.nanos,
        },
        ExpirationKind::ExpiresAt => match check_timestamp(numbers.seconds, numbers.nanos) {
            Some(time) => Expiration::At(time),
            None => return,
        },
        ExpirationKind::ExpiresAtFromNow => {
            let (now_seconds, _) = now.to_unix();
            let seconds = now_seconds.saturating_add(numbers.seconds % (max_seconds * 2));
            match check_timestamp(seconds, numbers.nanos) {
                Some(time) => Expiration::At(time),
                None => return,
            }
        }
        ExpirationKind::NoExpiration if numbers.no_expiration => Expiration::Never,
        ExpirationKind::NoExpiration => return,
    };

    let result = policy.resolve(now, requested);
    if let Err(error) = &result {
        let _ = error.to_string();
    }

    match result {
        Ok(None) => assert!(
            requested == Expiration::Never && numbers.allow_no_expiration,
            "a token without expiry was allowed for {requested:?}"
        ),
        Ok(Some(expires_at)) => {
            assert!(
                expires_at > now,
                "expiry {expires_at} is not after now {now}"
            );
            assert!(
                expires_at.micros_since(now) <= max_micros,
                "expiry {expires_at} is more than {max_seconds} s after {now}"
            );
        }
        Err(_) => {}
    }

    // Requests that the input rules accept must be accepted: a lifetime
    // within the maximum whose expiry falls before the end of year 9999.
    match requested {
        Expiration::Default => {
            let expected = now.checked_add_micros(policy.default_seconds() * MICROS_PER_SECOND);
            if let Some(expected) = expected {
                assert_eq!(result, Ok(Some(expected)), "default lifetime at {now}");
            }
        }
        Expiration::Ttl { seconds, nanos } => {
            let signs_agree = (seconds >= 0 && nanos >= 0) || (seconds <= 0 && nanos <= 0);
            let micros = seconds
                .checked_mul(MICROS_PER_SECOND)
                .and_then(|whole| whole.checked_add(i64::from(nanos / 1_000)));
            if let Some(micros) = micros
                && signs_agree
                && nanos.unsigned_abs() < 1_000_000_000
                && micros > 0
                && micros <= max_micros
                && let Some(expected) = now.checked_add_micros(micros)
            {
                assert_eq!(
                    result,
                    Ok(Some(expected)),
                    "ttl {seconds} s {nanos} ns at {now}"
                );
            }
        }
        Expiration::At(expires_at) => {
            let delta = expires_at.micros_since(now);
            if delta > 0 && delta <= max_micros {
                assert_eq!(
                    result,
                    Ok(Some(expires_at)),
                    "expires_at {expires_at} at {now}"
                );
            }
        }
        Expiration::Never => {
            if numbers.allow_no_expiration {
                assert_eq!(result, Ok(None), "no_expiration allowed by policy at {now}");
            } else {
                assert!(
                    matches!(result, Err(LifetimeError::NoExpirationNotAllowed { .. })),
                    "no_expiration forbidden by policy returned {result:?}"
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (header, text) = data.split_at(data.len().min(HEADER_LEN));
    let mut unstructured = Unstructured::new(header);
    let Ok(numbers) = Numbers::arbitrary(&mut unstructured) else {
        return;
    };

    let mut fields = text
        .split(|&b| b == SEPARATOR)
        .map(|field| String::from_utf8_lossy(field).into_owned());
    let name = fields.next().unwrap_or_default();
    let owner = fields.next().unwrap_or_default();
    let scopes: Vec<String> = fields.collect();

    check_name(&name);
    check_owner(&owner);
    check_scopes(&scopes);
    check_lifetime(&numbers);
});
