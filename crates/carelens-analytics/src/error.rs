use std::path::PathBuf;

/// What can go wrong writing a snapshot or running a KPI. Messages name the file, the KPI or
/// the parameter, never a patient value.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("unknown KPI `{name}`; known: {known}")]
    UnknownKpi { name: String, known: String },
    #[error("KPI `{kpi}` cannot be stratified by `{stratum}`; allowed: {allowed}")]
    InvalidStratum { kpi: String, stratum: String, allowed: String },
    #[error("empty date range: --from {from} is after --to {to}")]
    EmptyRange { from: String, to: String },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "{path}: snapshot schema v{found} is older than this carelens reads (v{expected}); \
         run `carelens export analytics` again"
    )]
    OlderSchema { path: PathBuf, found: u32, expected: u32 },
    #[error("{path}: snapshot schema v{found} is newer than this carelens reads (v{expected}); upgrade carelens")]
    NewerSchema { path: PathBuf, found: u32, expected: u32 },
    #[error("{path}: partition listed in the manifest is missing; export the snapshot again")]
    MissingPartition { path: PathBuf },
    #[error("{path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("polars: {0}")]
    Polars(#[from] polars::prelude::PolarsError),
}

pub type Result<T, E = AnalyticsError> = std::result::Result<T, E>;

pub(crate) fn file_error(path: impl Into<PathBuf>, detail: impl std::fmt::Display) -> AnalyticsError {
    AnalyticsError::File { path: path.into(), detail: detail.to_string() }
}
