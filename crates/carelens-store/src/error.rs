use std::path::PathBuf;

use carelens_domain::DomainError;

/// What went wrong in a store. Variants are what callers match on; messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A value broke a domain rule; nothing of its batch was written.
    #[error("{entity} {id}: {source}")]
    Invalid { entity: &'static str, id: String, source: DomainError },

    /// A uniqueness rule of the domain was violated (a slot already booked, a prediction-set
    /// version already taken); nothing of the batch was written.
    #[error("conflict on {entity} {key}: {reason}")]
    Conflict { entity: &'static str, key: String, reason: &'static str },

    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },

    #[error(
        "{path} was written by a newer carelens (schema version {found}; this build supports up to {supported}); \
         upgrade carelens or point --data-dir elsewhere"
    )]
    NewerSchema { path: PathBuf, found: i64, supported: i64 },

    #[error(
        "{path} is not a readable carelens database ({detail}); restore it from a backup, \
         or move it away and run again to start empty"
    )]
    Corrupt { path: PathBuf, detail: String },

    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// Stored bytes no longer match their content address.
    #[error("object {key} is damaged: its content no longer matches its SHA-256 address")]
    Damaged { key: String },

    #[error("could not decode stored {entity} {id}: {source}")]
    Decode { entity: &'static str, id: String, source: serde_json::Error },

    #[error("{backend} backend: {message}")]
    Backend { backend: &'static str, message: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
