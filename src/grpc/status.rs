//! The one mapping from service errors to gRPC status codes, and the log
//! line that closes every RPC.

use std::time::Instant;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::service::ServiceError;

/// Logs the end of an RPC at a level that follows its code, and converts an
/// error to the status the client sees. Server faults are logged with their
/// full cause and reach the client as a generic message.
pub(super) fn finish<T>(
    method: &'static str,
    started: Instant,
    result: Result<T, ServiceError>,
) -> Result<T, Status> {
    let elapsed = started.elapsed();
    let latency_us = elapsed.as_micros() as u64;
    let error = match result {
        Ok(value) => {
            crate::metrics::rpc_finished(method, "OK", elapsed);
            tracing::debug!(method, code = "OK", latency_us, "rpc finished");
            return Ok(value);
        }
        Err(error) => error,
    };
    let status = to_status(&error);
    let code = code_name(status.code());
    crate::metrics::rpc_finished(method, code, elapsed);
    match &error {
        ServiceError::Unavailable(_) | ServiceError::Internal(_) => {
            tracing::error!(method, code, latency_us, error = format!("{error:#}"), cause = ?std::error::Error::source(&error).map(ToString::to_string), "rpc failed");
        }
        ServiceError::Unauthenticated(_)
        | ServiceError::PermissionDenied(_)
        | ServiceError::InvalidArgument { .. }
        | ServiceError::FailedPrecondition(_)
        | ServiceError::NotFound(_) => {
            tracing::info!(
                method,
                code,
                latency_us,
                message = status.message(),
                "rpc rejected"
            );
        }
    }
    Err(status)
}

/// Returns the canonical upper-case name of a gRPC code, as logs, metrics
/// and the CLI print it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Maps each error to its code. The match has no catch-all arm, so a new
/// variant needs a decision here.
fn to_status(error: &ServiceError) -> Status {
    match error {
        ServiceError::Unauthenticated(message) => Status::unauthenticated(message),
        ServiceError::PermissionDenied(message) => Status::permission_denied(message),
        ServiceError::InvalidArgument { field, message } => Status::with_error_details(
            Code::InvalidArgument,
            error.to_string(),
            ErrorDetails::with_bad_request_violation(*field, message),
        ),
        ServiceError::FailedPrecondition(message) => Status::failed_precondition(message),
        ServiceError::NotFound(_) => Status::not_found(error.to_string()),
        ServiceError::Unavailable(_) => Status::unavailable(error.to_string()),
        ServiceError::Internal(_) => Status::internal(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_code() {
        let cases = [
            (
                ServiceError::Unauthenticated("x".into()),
                Code::Unauthenticated,
            ),
            (
                ServiceError::PermissionDenied("x".into()),
                Code::PermissionDenied,
            ),
            (ServiceError::invalid("name", "x"), Code::InvalidArgument),
            (ServiceError::NotFound("x".into()), Code::NotFound),
            (
                ServiceError::Internal(anyhow::anyhow!("disk on fire")),
                Code::Internal,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(to_status(&error).code(), code, "{error:?}");
        }
    }

    #[test]
    fn internal_cause_is_not_sent() {
        let status = to_status(&ServiceError::Internal(anyhow::anyhow!("disk on fire")));
        assert!(!status.message().contains("disk"));
    }

    #[test]
    fn invalid_argument_names_the_field() {
        let status = to_status(&ServiceError::invalid("name", "name is empty"));
        assert_eq!(status.message(), "invalid name: name is empty");
        let details = status.get_error_details();
        let violations = &details.bad_request().unwrap().field_violations;
        assert_eq!(violations[0].field, "name");
    }
}
