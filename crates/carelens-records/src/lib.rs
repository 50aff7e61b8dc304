//! Records and trust (issue #9). So far: the audit log's verification — the hash chain plus
//! Ed25519-signed checkpoints — behind `carelens audit verify | checkpoint | keygen`.

pub mod audit;

pub use audit::{AUDIT_KEY_ENV, AuditError, AuditKey, Finding, Verification};
