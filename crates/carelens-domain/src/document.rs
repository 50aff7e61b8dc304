//! Document references: the bytes live in the object store; this is their metadata.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Validate;
use crate::error::{Result, ensure};
use crate::ids::{DocumentId, HealthId, ObjectKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    LabReport,
    Letter,
    Image,
    Prescription,
    Other,
}

/// A detached signature over the document's SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentSignature {
    /// `ed25519`.
    pub algorithm: String,
    pub public_key_hex: String,
    pub signature_hex: String,
}

/// A secret (a document's data key, a user's signing seed) encrypted with AES-256-GCM under a
/// master key from the environment. Never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// Which master key wrapped it (a fingerprint, not the key).
    pub key_id: String,
    pub nonce_hex: String,
    pub ciphertext_hex: String,
}

/// How a document's stored bytes are encrypted: AES-256-GCM under a per-document data key,
/// which is itself wrapped by the master key (envelope encryption). Rotating the master key
/// re-wraps `data_key` and leaves the stored bytes alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentEncryption {
    /// `AES-256-GCM`.
    pub algorithm: String,
    pub nonce_hex: String,
    pub data_key: WrappedKey,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentRef {
    pub id: DocumentId,
    pub patient: HealthId,
    pub kind: DocumentKind,
    pub content_type: String,
    pub object_key: ObjectKey,
    /// Hex SHA-256 of the plaintext bytes.
    pub sha256: String,
    pub size_bytes: u64,
    /// User id of the uploader.
    pub uploaded_by: String,
    pub uploaded_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<DocumentSignature>,
    /// Set when the stored object is ciphertext (then `object_key` addresses the ciphertext and
    /// `sha256` still the plaintext).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<DocumentEncryption>,
    /// A short title the uploader gave (`Blood count March 2026`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
}

impl Validate for DocumentRef {
    fn validate(&self) -> Result<()> {
        ensure(
            self.sha256.len() == 64 && self.sha256.bytes().all(|b| b.is_ascii_hexdigit()),
            "document.sha256",
            || "expected 64 hex characters".into(),
        )?;
        ensure(self.content_type.contains('/'), "document.content_type", || {
            "expected a MIME type such as `application/pdf`".into()
        })?;
        ensure(!self.uploaded_by.trim().is_empty(), "document.uploaded_by", || "must not be empty".into())
    }
}
