//! Records and trust (issue #9): the audit log's verification — the hash chain plus
//! Ed25519-signed checkpoints — behind `carelens audit verify | checkpoint | keygen`, and FHIR R4
//! import/export (`fhir`), signed, envelope-encrypted documents (`documents`, `keys`), and
//! e-prescriptions (`prescribing`) with their medication reminders (`reminders`).

pub mod audit;
pub mod documents;
pub mod fhir;
pub mod keys;
pub mod prescribing;
pub mod reminders;

pub use audit::{AUDIT_KEY_ENV, AuditError, AuditKey, Finding, Verification};
