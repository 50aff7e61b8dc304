//! Storage for carelens: the [`Store`] and [`ObjectStore`] traits every backend implements,
//! and the embedded default backends ([`SqliteStore`], [`LocalObjects`]).
//!
//! The traits speak domain types only; no SQL (or BSON) crosses them. Every write validates
//! its input first ([`carelens_domain::Validate`]) and a [`WriteBatch`] lands atomically.

mod error;
mod local;
mod mongo;
mod objects;
mod s3;
mod sqlite;
mod store;
mod transfer;
mod url;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use error::{Result, StoreError};
pub use local::LocalObjects;
pub use mongo::MongoStore;
pub use mongo::redact_url;
pub use objects::ObjectStore;
pub use s3::{MULTIPART_THRESHOLD, S3Config, S3Objects};
pub use sqlite::{SCHEMA_VERSION, SqliteStore};
pub use store::{AuditEvent, Booked, HistoryFilter, Page, PageRequest, Store, StoreCounts, WriteBatch};
pub use transfer::{TransferReport, copy_all, digest};
pub use url::{open_objects, open_store};
