//! What can go wrong in an API call, and the status and `{"detail": ...}` body each answers with.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shrike_store::StoreError;

/// An API error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or not a valid one.
    #[error("authentication credentials were not provided or are invalid")]
    Unauthorized,
    /// The token's scope does not allow this.
    #[error("this needs a token with the {0} scope")]
    Forbidden(&'static str),
    /// No such thing (or not in this project).
    #[error("{0} not found")]
    NotFound(String),
    /// A parameter is missing or invalid.
    #[error("invalid {name}: {reason}")]
    BadRequest {
        /// The parameter.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The request conflicts with the issue's state (merged away, not merged, ...).
    #[error("{0}")]
    Conflict(String),
    /// ClickHouse failed or is unreachable.
    #[error("the database is unavailable")]
    Unavailable(#[source] StoreError),
}

impl ApiError {
    /// A bad parameter.
    pub fn bad(name: &'static str, reason: impl Into<String>) -> Self {
        ApiError::BadRequest {
            name,
            reason: reason.into(),
        }
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NoIssue(id) => ApiError::NotFound(format!("issue {id}")),
            StoreError::NoProject(name) => ApiError::NotFound(format!("project {name}")),
            StoreError::NoHash(hash) => ApiError::NotFound(format!("grouping hash {hash:?}")),
            error @ (StoreError::Merged { .. }
            | StoreError::SelfMerge(_)
            | StoreError::NotMerged(_)) => ApiError::Conflict(error.to_string()),
            other => ApiError::Unavailable(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Unavailable(source) = &self {
            // The cause goes to the log, not to the caller.
            tracing::warn!(error = %source, "API call failed on the database");
        }
        let mut response = (
            self.status(),
            axum::Json(serde_json::json!({ "detail": self.to_string() })),
        )
            .into_response();
        if matches!(self, ApiError::Unauthorized) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
