//! Population-health KPIs for analysts, with polars.
//!
//! - [`snapshot`]: the store's data as pseudonymised Parquet (Hive-partitioned by year and
//!   month, zstd) with a manifest; [`SnapshotWriter`] writes one, [`Snapshot`] opens one.
//! - [`kpi`]: the KPI catalogue. Every KPI is one SQL query (run by polars SQL over lazy
//!   scans of the snapshot, on the streaming engine) plus the statistics polars SQL and a
//!   distributed engine would both leave to the client: confidence intervals, person-years,
//!   age standardisation, trends and small-cell suppression ([`suppress`]).
//! - [`chart`]: SVG charts of a result (plotters).
//!
//! File IO only: no network, no database. Data reaches this crate as domain types (to
//! write a snapshot) or as Parquet files (to query one).

pub mod chart;
mod error;
pub mod kpi;
pub mod output;
pub mod snapshot;
pub mod stats;
pub mod suppress;

pub use error::{AnalyticsError, Result};
pub use kpi::{CATALOGUE, KpiDef, KpiResult, Period, Query, Row, find, run};
pub use snapshot::{FileEntry, Manifest, PatientRecord, SCHEMA_VERSION, Snapshot, SnapshotWriter, TableManifest};
