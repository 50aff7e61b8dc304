use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BookingError {
    /// A whole feed could not be read (not JSON, or not the shape its platform sends).
    #[error("feed `{feed}`: {message}")]
    Feed { feed: String, message: String },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// A booking the rules refuse; `code` is stable for clients.
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error("invalid {field}: {message}")]
    Invalid { field: &'static str, message: String },
}

pub type Result<T> = std::result::Result<T, BookingError>;
