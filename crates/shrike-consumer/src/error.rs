//! Why a record could not be processed.

use shrike_messages::DecodeError;

/// Why one record could not be processed. Deterministic: processing it again would fail again, so
/// the record goes to the dead-letter topic with [`reason`](ProcessError::reason) and the
/// partition moves on.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Not a message of the expected type, or written by a newer schema.
    #[error(transparent)]
    Undecodable(#[from] DecodeError),
    /// The message decoded, but what it carries cannot be used (an event that is not one, a
    /// check-in without a monitor, ...).
    #[error("{0}")]
    Invalid(String),
    /// What processing produced is larger than its topic accepts.
    #[error("output too large for topic {0}")]
    TooLarge(&'static str),
}

impl ProcessError {
    /// A short, stable name of the kind of failure (a metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            ProcessError::Undecodable(DecodeError::Version(_)) => "newer_schema",
            ProcessError::Undecodable(_) => "undecodable",
            ProcessError::Invalid(_) => "invalid",
            ProcessError::TooLarge(_) => "too_large",
        }
    }

    /// An [`Invalid`](ProcessError::Invalid) error from anything displayable.
    pub fn invalid(error: impl std::fmt::Display) -> Self {
        ProcessError::Invalid(error.to_string())
    }
}
