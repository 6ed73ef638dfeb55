//! Reading the caller's credential from request metadata.

use tonic::metadata::MetadataMap;

use crate::service::ServiceError;

/// Returns the single `authorization` value, `None` when absent.
///
/// # Errors
///
/// Returns [`ServiceError::Unauthenticated`] when the header is repeated or
/// is not visible ASCII, because either makes the credential ambiguous.
pub(super) fn authorization(metadata: &MetadataMap) -> Result<Option<&str>, ServiceError> {
    let mut values = metadata.get_all("authorization").iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ServiceError::Unauthenticated(
            "more than one authorization header; send exactly one".to_owned(),
        ));
    }
    first.to_str().map(Some).map_err(|_| {
        ServiceError::Unauthenticated(
            "the authorization header contains characters that are not visible ASCII".to_owned(),
        )
    })
}
