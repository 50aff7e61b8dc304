use std::path::PathBuf;

/// Why an image could not be read. Messages name the file (and entry) and never panic.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{path}: not a readable .npz archive ({detail})")]
    Archive { path: PathBuf, detail: String },

    #[error("{path}: entry `{entry}`: {detail}")]
    Npy { path: PathBuf, entry: String, detail: String },

    #[error("{path}: {what} of {value} exceeds the limit of {limit}")]
    TooLarge { path: PathBuf, what: &'static str, value: u64, limit: u64 },

    #[error("{path}: cannot decode {format} image ({detail})")]
    Decode { path: PathBuf, format: &'static str, detail: String },

    #[error("{path}: unsupported {what}")]
    Unsupported { path: PathBuf, what: String },

    #[error("{path}: transfer syntax {name} ({uid}) cannot be decoded by this build")]
    UnsupportedTransferSyntax { path: PathBuf, uid: String, name: String },

    #[error("invalid preprocessing spec: {0}")]
    Spec(String),
}

pub type Result<T, E = ImagingError> = std::result::Result<T, E>;
