//! Signed, encrypted documents: PDFs, images and lab reports of a patient.
//!
//! Each upload is checked (size, allowed type, content matching its type, no archives),
//! hashed (SHA-256), signed by the uploader with Ed25519 — a detached signature from a key the
//! client holds, or the uploader's server-held key, whose seed is stored wrapped under their
//! key-encryption key — encrypted with a fresh AES-256-GCM data key (wrapped by the master
//! key) and stored content-addressed. [`verify_document`] says valid, tampered (and what) or
//! unknown signer.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use carelens_domain::{
    DocumentId, DocumentKind, DocumentRef, DocumentSignature, HealthId, SigningKeyRecord, User, UserId,
};
use carelens_store::{ObjectStore, PageRequest, Store, StoreError};

use crate::keys::{KeyError, Keyring};

/// The largest document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 20 * 1024 * 1024;

/// Content types accepted, with what their bytes must start with.
pub const ALLOWED_TYPES: &[&str] = &["application/pdf", "image/png", "image/jpeg", "text/plain", "text/csv"];

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("{bytes} bytes is more than the {limit}-byte limit for a document")]
    TooLarge { bytes: usize, limit: usize },
    #[error("the document is empty")]
    Empty,
    #[error(
        "content type `{0}` is not accepted; use one of application/pdf, image/png, image/jpeg, text/plain, text/csv"
    )]
    UnsupportedType(String),
    #[error("archives and compressed files are not accepted (found a {0} signature); upload the document itself")]
    Archive(&'static str),
    #[error("the bytes are not a {0} file (its signature does not match the content type)")]
    ContentMismatch(String),
    #[error("signature: {0}")]
    BadSignature(String),
    #[error("the signing key is not one of the uploader's registered keys")]
    UnknownSigner,
    #[error("this document was already uploaded for this patient as {0}")]
    Duplicate(DocumentId),
    #[error("no user {0}")]
    UnknownUser(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks size, type and that the bytes are what the type says.
pub fn check_content(content_type: &str, bytes: &[u8]) -> Result<(), DocumentError> {
    if bytes.is_empty() {
        return Err(DocumentError::Empty);
    }
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(DocumentError::TooLarge { bytes: bytes.len(), limit: MAX_DOCUMENT_BYTES });
    }
    // Archives and compressed streams are refused whatever they claim to be: a small zip or
    // gzip can unpack to gigabytes.
    for (magic, name) in [
        (&b"PK\x03\x04"[..], "zip"),
        (&b"\x1f\x8b"[..], "gzip"),
        (&b"7z\xbc\xaf\x27\x1c"[..], "7z"),
        (&b"BZh"[..], "bzip2"),
        (&b"\xfd7zXZ\x00"[..], "xz"),
        (&b"\x28\xb5\x2f\xfd"[..], "zstd"),
        (&b"Rar!"[..], "rar"),
    ] {
        if bytes.starts_with(magic) {
            return Err(DocumentError::Archive(name));
        }
    }
    let base = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let ok = match base.as_str() {
        "application/pdf" => bytes.starts_with(b"%PDF-"),
        "image/png" => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" => bytes.starts_with(b"\xff\xd8\xff"),
        "text/plain" | "text/csv" => std::str::from_utf8(bytes).is_ok() && !bytes.contains(&0),
        _ => return Err(DocumentError::UnsupportedType(base)),
    };
    if ok { Ok(()) } else { Err(DocumentError::ContentMismatch(base)) }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What a signature covers: the patient and the document's digest. A signature replayed for
/// another patient does not verify; replayed for the same patient it is the same document.
pub fn signed_message(patient: &HealthId, sha256: &str) -> Vec<u8> {
    format!("carelens-document-v1\npatient={patient}\nsha256={sha256}\n").into_bytes()
}

/// One document id per patient and content: uploading the same bytes again is a duplicate.
pub fn document_id(patient: &HealthId, sha256: &str) -> DocumentId {
    let d = Sha256::digest(format!("document\0{patient}\0{sha256}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    DocumentId::from_u128(u128::from_be_bytes(b))
}

/// Signs with a seed (what the server does for server-held keys, and what a client does).
pub fn sign(seed: &[u8; 32], patient: &HealthId, sha256: &str) -> DocumentSignature {
    let key = SigningKey::from_bytes(seed);
    let sig = key.sign(&signed_message(patient, sha256));
    DocumentSignature {
        algorithm: "ed25519".into(),
        public_key_hex: hex::encode(key.verifying_key().to_bytes()),
        signature_hex: hex::encode(sig.to_bytes()),
    }
}

/// The public key of a seed, hex.
pub fn public_key_hex(seed: &[u8; 32]) -> String {
    hex::encode(SigningKey::from_bytes(seed).verifying_key().to_bytes())
}

/// Whether `sig` is a valid Ed25519 signature over the patient and digest.
pub fn check_signature(sig: &DocumentSignature, patient: &HealthId, sha256: &str) -> Result<(), String> {
    if sig.algorithm != "ed25519" {
        return Err(format!("algorithm `{}` is not supported (ed25519)", sig.algorithm));
    }
    let key: [u8; 32] = hex::decode(&sig.public_key_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("public key: expected 64 hex characters")?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| "public key: not an Ed25519 point".to_string())?;
    let bytes: [u8; 64] = hex::decode(&sig.signature_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("signature: expected 128 hex characters")?;
    key.verify(&signed_message(patient, sha256), &Signature::from_bytes(&bytes))
        .map_err(|_| "does not match the document's digest and patient".to_string())
}

/// A document to store.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub patient: HealthId,
    pub kind: DocumentKind,
    pub content_type: String,
    pub title: String,
    pub bytes: Vec<u8>,
    /// A detached signature made by the client; `None` to sign with the uploader's server-held key.
    pub signature: Option<DocumentSignature>,
}

/// The user's server-held signing seed; makes one (wrapped under their KEK, stored on their
/// account) when they have none.
pub async fn server_seed(store: &dyn Store, keyring: &Keyring, user: &mut User) -> Result<[u8; 32], DocumentError> {
    if let Some(w) = user.signing_keys.iter().rev().find_map(|k| k.wrapped_seed.as_ref()) {
        return Ok(keyring.unwrap_seed(&user.id, w)?);
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    user.signing_keys.push(SigningKeyRecord {
        public_key_hex: public_key_hex(&seed),
        created_at: chrono::Utc::now(),
        wrapped_seed: Some(keyring.wrap_seed(&user.id, &seed)?),
    });
    store.put_user(user).await?;
    Ok(seed)
}

/// Registers a public key the user holds the private half of (client-side signing).
pub async fn register_public_key(
    store: &dyn Store,
    user: &mut User,
    public_key_hex: &str,
) -> Result<(), DocumentError> {
    let bytes: [u8; 32] = hex::decode(public_key_hex.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| DocumentError::BadSignature("public key: expected 64 hex characters".into()))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| DocumentError::BadSignature("public key: not an Ed25519 point".into()))?;
    let hex = hex::encode(bytes);
    if !user.signing_keys.iter().any(|k| k.public_key_hex == hex) {
        user.signing_keys.push(SigningKeyRecord {
            public_key_hex: hex,
            created_at: chrono::Utc::now(),
            wrapped_seed: None,
        });
        store.put_user(user).await?;
    }
    Ok(())
}

/// Checks, signs, encrypts and stores one document. The caller has checked access.
pub async fn store_document(
    store: &dyn Store,
    objects: &dyn ObjectStore,
    keyring: &Keyring,
    uploader: &UserId,
    doc: NewDocument,
) -> Result<DocumentRef, DocumentError> {
    check_content(&doc.content_type, &doc.bytes)?;
    let sha256 = sha256_hex(&doc.bytes);
    let id = document_id(&doc.patient, &sha256);
    if store.get_document(&id).await?.is_some() {
        return Err(DocumentError::Duplicate(id));
    }
    let mut user = store.get_user(uploader).await?.ok_or_else(|| DocumentError::UnknownUser(uploader.to_string()))?;
    let signature = match doc.signature {
        Some(sig) => {
            check_signature(&sig, &doc.patient, &sha256).map_err(DocumentError::BadSignature)?;
            if !user.signing_keys.iter().any(|k| k.public_key_hex == sig.public_key_hex.to_ascii_lowercase()) {
                return Err(DocumentError::UnknownSigner);
            }
            sig
        }
        None => sign(&server_seed(store, keyring, &mut user).await?, &doc.patient, &sha256),
    };
    let size_bytes = doc.bytes.len() as u64;
    let (ciphertext, encryption) = keyring.encrypt(&doc.bytes, &id.to_string())?;
    drop(doc.bytes);
    let object_key = objects.put(ciphertext).await?;
    let stored = DocumentRef {
        id,
        patient: doc.patient,
        kind: doc.kind,
        content_type: doc.content_type,
        object_key,
        sha256,
        size_bytes,
        uploaded_by: uploader.to_string(),
        uploaded_at: chrono::Utc::now(),
        signature: Some(signature),
        encryption: Some(encryption),
        title: doc.title,
    };
    store.put_document(&stored).await?;
    Ok(stored)
}

/// A document's verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum Verdict {
    Valid,
    /// What does not match.
    Tampered(String),
    /// Signed by a key that is not one of the uploader's.
    UnknownSigner,
    Unsigned,
}

/// Reads a document's plaintext, checking it against its digest.
pub async fn read_document(
    objects: &dyn ObjectStore,
    keyring: &Keyring,
    doc: &DocumentRef,
) -> Result<Vec<u8>, Verdict> {
    let stored = objects.get(&doc.object_key).await.map_err(|e| match e {
        StoreError::NotFound { .. } => Verdict::Tampered("the stored object is missing".into()),
        other => Verdict::Tampered(format!("the stored object cannot be read: {other}")),
    })?;
    let plain = match &doc.encryption {
        Some(enc) => keyring.decrypt(&stored, enc, &doc.id.to_string()).map_err(|e| match e {
            KeyError::UnknownKey(id) => Verdict::Tampered(format!("encrypted under unknown master key {id}")),
            _ => Verdict::Tampered("the stored ciphertext (or its key or nonce) was changed".into()),
        })?,
        None => stored,
    };
    if sha256_hex(&plain) != doc.sha256 {
        return Err(Verdict::Tampered("the content does not match its SHA-256".into()));
    }
    Ok(plain)
}

/// Valid, tampered (with what) or unknown signer.
pub async fn verify_document(
    store: &dyn Store,
    objects: &dyn ObjectStore,
    keyring: &Keyring,
    doc: &DocumentRef,
) -> Result<Verdict, StoreError> {
    let Some(sig) = &doc.signature else { return Ok(Verdict::Unsigned) };
    if let Err(why) = check_signature(sig, &doc.patient, &doc.sha256) {
        return Ok(Verdict::Tampered(format!("signature {why}")));
    }
    let signer = match doc.uploaded_by.parse::<UserId>() {
        Ok(id) => store.get_user(&id).await?,
        Err(_) => None,
    };
    let known = signer.is_some_and(|u| u.signing_keys.iter().any(|k| k.public_key_hex == sig.public_key_hex));
    if !known {
        return Ok(Verdict::UnknownSigner);
    }
    Ok(match read_document(objects, keyring, doc).await {
        Ok(_) => Verdict::Valid,
        Err(v) => v,
    })
}

/// Every document of every patient, with its verdict.
pub async fn verify_all(
    store: &dyn Store,
    objects: &dyn ObjectStore,
    keyring: &Keyring,
) -> Result<Vec<(DocumentRef, Verdict)>, StoreError> {
    let mut out = Vec::new();
    let mut page = PageRequest::first(1000);
    loop {
        let got = store.list_patients(page.clone()).await?;
        for p in &got.items {
            for d in store.documents_for(&p.id).await? {
                let v = verify_document(store, objects, keyring, &d).await?;
                out.push((d, v));
            }
        }
        match got.next {
            Some(next) => page = next,
            None => break,
        }
    }
    Ok(out)
}

/// What a key rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rotation {
    pub documents_rewrapped: u64,
    pub signing_keys_rewrapped: u64,
    pub already_current: u64,
}

/// Re-wraps every document data key and server-held signing seed under the keyring's current
/// master key. Stored ciphertext is not touched. Safe to rerun.
pub async fn rotate(store: &dyn Store, keyring: &Keyring) -> Result<Rotation, DocumentError> {
    let mut r = Rotation::default();
    let mut page = PageRequest::first(1000);
    loop {
        let got = store.list_patients(page.clone()).await?;
        for p in &got.items {
            for mut d in store.documents_for(&p.id).await? {
                let Some(enc) = d.encryption.as_mut() else { continue };
                match keyring.rewrap(&enc.data_key, &d.id.to_string())? {
                    Some(w) => {
                        enc.data_key = w;
                        store.put_document(&d).await?;
                        r.documents_rewrapped += 1;
                    }
                    None => r.already_current += 1,
                }
            }
        }
        match got.next {
            Some(next) => page = next,
            None => break,
        }
    }
    for mut u in store.list_users().await? {
        let mut changed = false;
        for k in &mut u.signing_keys {
            if let Some(w) = &k.wrapped_seed {
                if let Some(new) = keyring.rewrap_seed(&u.id, w)? {
                    k.wrapped_seed = Some(new);
                    changed = true;
                    r.signing_keys_rewrapped += 1;
                } else {
                    r.already_current += 1;
                }
            }
        }
        if changed {
            store.put_user(&u).await?;
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_what_they_claim_and_never_archives() {
        assert!(check_content("application/pdf", b"%PDF-1.7\n...").is_ok());
        assert!(check_content("image/png; charset=binary", b"\x89PNG\r\n\x1a\nxxxx").is_ok());
        assert!(matches!(check_content("application/pdf", b"<html>"), Err(DocumentError::ContentMismatch(_))));
        assert!(matches!(check_content("application/pdf", b"PK\x03\x04zip"), Err(DocumentError::Archive("zip"))));
        assert!(matches!(check_content("text/plain", b"\x1f\x8b\x08gz"), Err(DocumentError::Archive("gzip"))));
        assert!(matches!(check_content("application/zip", b"%PDF-"), Err(DocumentError::UnsupportedType(_))));
        assert!(matches!(check_content("text/plain", b""), Err(DocumentError::Empty)));
        assert!(matches!(check_content("text/plain", b"a\0b"), Err(DocumentError::ContentMismatch(_))));
        let big = vec![b'a'; MAX_DOCUMENT_BYTES + 1];
        assert!(matches!(check_content("text/plain", &big), Err(DocumentError::TooLarge { .. })));
    }

    #[test]
    fn signatures_cover_patient_and_digest() {
        let (p, q) = (HealthId::from_number(1), HealthId::from_number(2));
        let sha = sha256_hex(b"report");
        let sig = sign(&[7; 32], &p, &sha);
        assert!(check_signature(&sig, &p, &sha).is_ok());
        assert!(check_signature(&sig, &q, &sha).is_err(), "replayed for another patient");
        assert!(check_signature(&sig, &p, &sha256_hex(b"other")).is_err());
        let mut forged = sig.clone();
        forged.signature_hex.replace_range(0..2, if &sig.signature_hex[0..2] == "00" { "01" } else { "00" });
        assert!(check_signature(&forged, &p, &sha).is_err());
        assert_eq!(document_id(&p, &sha), document_id(&p, &sha));
        assert_ne!(document_id(&p, &sha), document_id(&q, &sha));
    }
}
