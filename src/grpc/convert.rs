//! Conversions between protobuf messages and domain values.

use super::pb;
use crate::{
    domain::{Expiration, Timestamp, TokenRecord, TokenStatus},
    service::{ServiceError, ValidateOutcome},
};

/// Converts an instant to a protobuf timestamp.
pub(super) fn timestamp(time: Timestamp) -> prost_types::Timestamp {
    let (seconds, nanos) = time.to_unix();
    prost_types::Timestamp { seconds, nanos }
}

/// Converts a record to its message, with the status at `now`.
pub fn token(record: &TokenRecord, now: Timestamp) -> pb::Token {
    let status = match record.status(now) {
        TokenStatus::Active => pb::TokenStatus::Active,
        TokenStatus::Expired => pb::TokenStatus::Expired,
        TokenStatus::Revoked => pb::TokenStatus::Revoked,
    };
    pb::Token {
        id: record.id.to_string(),
        owner: record.owner.as_str().to_owned(),
        name: record.name.clone(),
        scopes: record.scopes.iter().map(str::to_owned).collect(),
        display_hint: record.display_hint.clone(),
        status: status.into(),
        created_at: Some(timestamp(record.created_at)),
        expires_at: record.expires_at.map(timestamp),
        last_used_at: record.last_used_at.map(timestamp),
        revoked_at: record.revoked_at.map(timestamp),
    }
}

/// Reads the expiration oneof of a Generate request.
pub(super) fn expiration(
    value: Option<pb::generate_request::Expiration>,
) -> Result<Expiration, ServiceError> {
    use pb::generate_request::Expiration as Field;

    match value {
        None => Ok(Expiration::Default),
        Some(Field::Ttl(duration)) => Ok(Expiration::Ttl {
            seconds: duration.seconds,
            nanos: duration.nanos,
        }),
        Some(Field::ExpiresAt(time)) => Timestamp::from_unix(time.seconds, time.nanos)
            .map(Expiration::At)
            .ok_or_else(|| {
                ServiceError::invalid(
                    "expiration",
                    format!(
                        "expires_at (seconds {}, nanos {}) is not a valid time between years 1 and 9999",
                        time.seconds, time.nanos
                    ),
                )
            }),
        Some(Field::NoExpiration(true)) => Ok(Expiration::Never),
        Some(Field::NoExpiration(false)) => Err(ServiceError::invalid(
            "expiration",
            "no_expiration must be true when set; leave expiration unset for the default lifetime",
        )),
    }
}

/// Converts a Validate outcome to its response.
pub(super) fn validate_response(outcome: &ValidateOutcome, now: Timestamp) -> pb::ValidateResponse {
    use pb::ValidateResult as Result;

    let (result, record) = match outcome {
        ValidateOutcome::Valid(record) => (Result::Valid, Some(record)),
        ValidateOutcome::Malformed(_) => (Result::Malformed, None),
        ValidateOutcome::NotFound => (Result::NotFound, None),
        ValidateOutcome::Expired(record) => (Result::Expired, Some(record)),
        ValidateOutcome::Revoked(record) => (Result::Revoked, Some(record)),
        ValidateOutcome::InsufficientScope(record) => (Result::InsufficientScope, Some(record)),
    };
    pb::ValidateResponse {
        valid: result == Result::Valid,
        result: result.into(),
        token: record.map(|record| token(record, now)),
    }
}

/// Returns the outcome's name for logs.
pub(super) fn outcome_name(outcome: &ValidateOutcome) -> &'static str {
    match outcome {
        ValidateOutcome::Valid(_) => "valid",
        ValidateOutcome::Malformed(_) => "malformed",
        ValidateOutcome::NotFound => "not_found",
        ValidateOutcome::Expired(_) => "expired",
        ValidateOutcome::Revoked(_) => "revoked",
        ValidateOutcome::InsufficientScope(_) => "insufficient_scope",
    }
}
