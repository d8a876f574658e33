//! gRPC statuses in Taskloom's error convention: a `google.rpc.ErrorInfo` whose reason is
//! the `taskloom.v1.ErrorReason` name without its `ERROR_REASON_` prefix (domain
//! `taskloom.dev`), plus a `google.rpc.BadRequest` naming the field for INVALID_ARGUMENT.

use std::collections::HashMap;

use taskloom_proto::v1::ErrorReason;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub const ERROR_DOMAIN: &str = "taskloom.dev";

/// The `ErrorInfo.reason` string of `reason`, e.g. `COLLECTION_NOT_FOUND`.
pub fn reason_name(reason: ErrorReason) -> &'static str {
    let name = reason.as_str_name();
    name.strip_prefix("ERROR_REASON_").unwrap_or(name)
}

/// A status with an `ErrorInfo` detail carrying `reason` and `metadata`.
pub fn error_status(
    code: Code,
    reason: ErrorReason,
    message: impl Into<String>,
    metadata: HashMap<String, String>,
) -> Status {
    let details = ErrorDetails::with_error_info(reason_name(reason), ERROR_DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}

/// INVALID_ARGUMENT naming `field` in both the `BadRequest` and the message.
pub fn invalid_argument(field: &str, description: impl Into<String>) -> Status {
    invalid_argument_with_reason(ErrorReason::InvalidArgument, field, description)
}

/// INVALID_ARGUMENT with a more specific reason (e.g. `DIMENSION_MISMATCH`).
pub fn invalid_argument_with_reason(
    reason: ErrorReason,
    field: &str,
    description: impl Into<String>,
) -> Status {
    let description = description.into();
    let mut details =
        ErrorDetails::with_error_info(reason_name(reason), ERROR_DOMAIN, HashMap::new());
    details.add_bad_request_violation(field, description.clone());
    Status::with_error_details(
        Code::InvalidArgument,
        format!("{field}: {description}"),
        details,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_reason_and_field() {
        let status = invalid_argument("key", "must not be empty");
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let info = details.error_info().expect("error info");
        assert_eq!(info.reason, "INVALID_ARGUMENT");
        assert_eq!(info.domain, "taskloom.dev");
        let bad = details.bad_request().expect("bad request");
        assert_eq!(bad.field_violations[0].field, "key");
    }

    #[test]
    fn reason_has_no_prefix() {
        let status = error_status(
            Code::NotFound,
            ErrorReason::CollectionNotFound,
            "no such collection",
            HashMap::new(),
        );
        let info = status
            .get_error_details()
            .error_info()
            .cloned()
            .expect("info");
        assert_eq!(info.reason, "COLLECTION_NOT_FOUND");
    }
}
