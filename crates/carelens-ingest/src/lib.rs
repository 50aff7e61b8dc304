//! carelens ingest: images from files and folders into the store and object store, and
//! de-identified exports out of them.
//!
//! Knows the `Store`/`ObjectStore` traits only, never a backend.

mod export;
mod ingest;
mod mapping;

pub use export::{ExportProblem, ExportReport, export_deidentified};
pub use ingest::{FileReport, IngestOptions, IngestReport, Outcome, Progress, Silent, collect_files, ingest, uid_from};
pub use mapping::{Manifest, ManifestRow, PatientMap, load_labels};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{path}, line {line}: {detail}")]
    Table { path: PathBuf, line: u64, detail: String },

    #[error("DICOMDIR: {0}")]
    Dicomdir(String),

    #[error(transparent)]
    Store(#[from] carelens_store::StoreError),

    #[error("internal error: {0}")]
    Internal(String),
}
