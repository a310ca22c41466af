//! Why a request failed, typed: each variant maps to one wire [`ErrorCode`].

use qwen_env_proto::ErrorCode;

use crate::keys::KeyError;

/// A request's failure, worded for the user.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A key operation failed (bad name or value, missing key, keychain, metadata).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The request cannot be served as asked.
    #[error("{0}")]
    BadRequest(String),
    /// The caller may not ask this (lineage, trust).
    #[error("{0}")]
    Refused(String),
}

impl RequestError {
    /// The wire code the client decides on.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Key(KeyError::Invalid(_)) | Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Key(KeyError::NotFound(_) | KeyError::Elsewhere { .. }) => ErrorCode::NotFound,
            Self::Key(KeyError::Keychain(_)) => ErrorCode::Keychain,
            Self::Key(KeyError::Metadata { .. }) => ErrorCode::Internal,
            Self::Refused(_) => ErrorCode::Refused,
        }
    }
}
