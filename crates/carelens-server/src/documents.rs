//! Patients' documents over HTTP: upload (signed by the uploader, encrypted at rest), list,
//! download (checked against its digest) and verify; and users' own signing keys.
//!
//! A document's kind decides its consent category (lab report → observation, image →
//! imaging, prescription → medication, letter and other → diagnosis), so the same access check
//! as the timeline decides who sees it. Uploads need `CARELENS_MASTER_KEY` on the server.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use carelens_domain::{Category, DocumentId, DocumentKind, DocumentRef, DocumentSignature, HealthId};
use carelens_records::documents::{self, DocumentError, NewDocument, Verdict};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::{Purpose, audit_denied, audit_write, check_patient_access, health_id};
use crate::auth::Session;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode, invalid};
use crate::extract::{Body, Params};
use crate::state::AppState;

/// The consent category a document kind belongs to.
pub fn category_of(kind: DocumentKind) -> Category {
    match kind {
        DocumentKind::LabReport => Category::Observation,
        DocumentKind::Image => Category::Imaging,
        DocumentKind::Prescription => Category::Medication,
        DocumentKind::Letter | DocumentKind::Other => Category::Diagnosis,
    }
}

pub(crate) fn kind_name(kind: DocumentKind) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentWire {
    pub id: String,
    /// `lab_report`, `letter`, `image`, `prescription` or `other`.
    pub kind: String,
    pub title: String,
    pub content_type: String,
    pub size_bytes: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// The uploader's user id.
    pub uploaded_by: String,
    pub uploaded_at: DateTime<Utc>,
    /// The Ed25519 public key (hex) the document is signed with.
    pub signed_with: Option<String>,
    /// Stored encrypted (AES-256-GCM envelope).
    pub encrypted: bool,
}

impl DocumentWire {
    fn new(d: &DocumentRef) -> Self {
        Self {
            id: d.id.to_string(),
            kind: kind_name(d.kind),
            title: d.title.clone(),
            content_type: d.content_type.clone(),
            size_bytes: d.size_bytes,
            sha256: d.sha256.clone(),
            uploaded_by: d.uploaded_by.clone(),
            uploaded_at: d.uploaded_at,
            signed_with: d.signature.as_ref().map(|s| s.public_key_hex.clone()),
            encrypted: d.encryption.is_some(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// `lab_report`, `letter`, `image`, `prescription` or `other` (default).
    #[serde(default)]
    pub kind: Option<String>,
    /// A short title, at most 200 characters.
    #[serde(default)]
    pub title: Option<String>,
}

fn keys(state: &AppState) -> ApiResult<&carelens_records::keys::Keyring> {
    state.keys.as_ref().ok_or_else(|| ApiError::of(ErrorCode::EncryptionNotConfigured))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> ApiResult<Option<&'a str>> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| invalid(format!("{name}: not ASCII"))),
    }
}

/// Upload a document for the patient: the raw bytes as the body with their `Content-Type`
/// (PDF, PNG, JPEG, plain text or CSV; at most 20 MiB; archives and compressed bodies are
/// refused). It is signed with your server-held Ed25519 key, or — with `X-Signature` (hex) and
/// `X-Signing-Key` (hex, registered at `/api/v1/me/signing-keys`) — with a detached signature
/// you made over `carelens-document-v1\npatient=<ID>\nsha256=<hex>\n`. Stored encrypted.
#[utoipa::path(post, path = "/api/v1/patients/{id}/documents", tag = "records", security(("bearer" = [])),
    params(("id" = String, Path, description = "Health ID"), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/pdf", description = "the document's bytes"),
    responses(
    (status = 201, body = DocumentWire),
    (status = 400, body = ErrorBody, description = "`invalid_input`, `bad_signature`, `unknown_signer`"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`, `not_in_care`"),
    (status = 409, body = ErrorBody, description = "`document_exists`"),
    (status = 413, body = ErrorBody, description = "`payload_too_large`"),
    (status = 415, body = ErrorBody, description = "`unsupported_media_type`"),
    (status = 503, body = ErrorBody, description = "`encryption_not_configured`")))]
pub async fn upload(
    State(state): State<AppState>,
    session: Session,
    UrlPath(id): UrlPath<String>,
    Params(query): Params<UploadQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<DocumentWire>)> {
    let patient = health_id(&id)?;
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("a document may be at most {} bytes", documents::MAX_DOCUMENT_BYTES),
            )
        } else {
            invalid(format!("the body could not be read: {r}"))
        }
    })?;
    let keys = keys(&state)?;
    let kind: DocumentKind = match &query.kind {
        Some(k) => serde_json::from_value(serde_json::Value::String(k.clone())).map_err(|_| {
            invalid(format!("kind: unknown {k:?}; use lab_report, letter, image, prescription or other"))
        })?,
        None => DocumentKind::Other,
    };
    let title = query.title.unwrap_or_default();
    if title.chars().count() > 200 {
        return Err(invalid("title: at most 200 characters"));
    }
    if let Some(enc) = header_str(&headers, header::CONTENT_ENCODING.as_str())?
        && !enc.eq_ignore_ascii_case("identity")
    {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "compressed request bodies are not accepted; send the document itself",
        ));
    }
    let content_type = header_str(&headers, header::CONTENT_TYPE.as_str())?
        .ok_or_else(|| ApiError::new(ErrorCode::UnsupportedMediaType, "send the document's Content-Type"))?
        .to_owned();
    let signature = match (header_str(&headers, "x-signature")?, header_str(&headers, "x-signing-key")?) {
        (Some(sig), Some(key)) => Some(DocumentSignature {
            algorithm: "ed25519".into(),
            public_key_hex: key.to_ascii_lowercase(),
            signature_hex: sig.to_ascii_lowercase(),
        }),
        (None, None) => None,
        _ => return Err(invalid("send both X-Signature and X-Signing-Key, or neither")),
    };
    let access = check_patient_access(&state, &session, &patient, Purpose::AddToRecord, "documents").await?;
    let category = category_of(kind);
    if !access.sees(category) {
        audit_denied(&state, &session, Some(&patient), "documents", "not_in_care").await;
        return Err(ApiError::new(
            ErrorCode::NotInCare,
            format!("you may not see this patient's {} records, so you may not add to them", category.as_str()),
        ));
    }
    let new = NewDocument { patient: patient.clone(), kind, content_type, title, bytes: body.to_vec(), signature };
    drop(body);
    match documents::store_document(state.store.as_ref(), state.objects.as_ref(), keys, &session.0.sub, new).await {
        Ok(doc) => {
            audit_write(&state, &session, Some(&patient), &format!("documents/{}", doc.id), "upload").await?;
            Ok((StatusCode::CREATED, Json(DocumentWire::new(&doc))))
        }
        Err(e) => {
            let (code, why) = match &e {
                DocumentError::TooLarge { .. } => (ErrorCode::PayloadTooLarge, "too_large"),
                DocumentError::UnsupportedType(_) | DocumentError::Archive(_) => {
                    (ErrorCode::UnsupportedMediaType, "unsupported_type")
                }
                DocumentError::Empty | DocumentError::ContentMismatch(_) => (ErrorCode::InvalidInput, "bad_content"),
                DocumentError::BadSignature(_) => (ErrorCode::BadSignature, "bad_signature"),
                DocumentError::UnknownSigner => (ErrorCode::UnknownSigner, "unknown_signer"),
                DocumentError::Duplicate(_) => (ErrorCode::DocumentExists, "duplicate"),
                _ => return Err(ApiError::internal(e)),
            };
            audit_denied(&state, &session, Some(&patient), "documents", why).await;
            Err(ApiError::new(code, e.to_string()))
        }
    }
}

/// The patient's documents you may see (by their kind's category), newest first.
#[utoipa::path(get, path = "/api/v1/patients/{id}/documents", tag = "records", security(("bearer" = [])),
    params(("id" = String, Path, description = "Health ID")), responses(
    (status = 200, body = Vec<DocumentWire>),
    (status = 400, body = ErrorBody, description = "`invalid_health_id`"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`, `not_in_care`"),
    (status = 404, body = ErrorBody, description = "`patient_not_found`")))]
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Vec<DocumentWire>>> {
    let patient = health_id(&id)?;
    let access = check_patient_access(&state, &session, &patient, Purpose::ReadHistory, "documents").await?;
    let mut docs: Vec<DocumentRef> =
        state.store.documents_for(&patient).await?.into_iter().filter(|d| access.sees(category_of(d.kind))).collect();
    docs.sort_by_key(|d| std::cmp::Reverse(d.uploaded_at));
    Ok(Json(docs.iter().map(DocumentWire::new).collect()))
}

/// One visible document of the patient, or `document_not_found` (also for another patient's).
async fn visible(
    state: &AppState,
    session: &Session,
    patient: &HealthId,
    doc: &str,
    what: &str,
) -> ApiResult<DocumentRef> {
    let access = check_patient_access(state, session, patient, Purpose::ReadHistory, what).await?;
    let id: DocumentId = doc.parse().map_err(|_| ApiError::of(ErrorCode::DocumentNotFound))?;
    match state.store.get_document(&id).await? {
        Some(d) if &d.patient == patient && access.sees(category_of(d.kind)) => Ok(d),
        _ => Err(ApiError::of(ErrorCode::DocumentNotFound)),
    }
}

/// The document's content, decrypted and checked against its SHA-256 (`document_tampered`
/// when it no longer matches).
#[utoipa::path(get, path = "/api/v1/patients/{id}/documents/{doc}", tag = "records", security(("bearer" = [])),
    params(("id" = String, Path, description = "Health ID"), ("doc" = String, Path, description = "document id")),
    responses(
    (status = 200, description = "the document, with its content type"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`, `not_in_care`"),
    (status = 404, body = ErrorBody, description = "`document_not_found`"),
    (status = 409, body = ErrorBody, description = "`document_tampered`"),
    (status = 503, body = ErrorBody, description = "`encryption_not_configured`")))]
pub async fn download(
    State(state): State<AppState>,
    session: Session,
    UrlPath((id, doc)): UrlPath<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let patient = health_id(&id)?;
    let d = visible(&state, &session, &patient, &doc, "documents/content").await?;
    let keys = keys(&state)?;
    let bytes = documents::read_document(state.objects.as_ref(), keys, &d).await.map_err(|v| {
        let why = match v {
            Verdict::Tampered(why) => why,
            other => format!("{other:?}"),
        };
        ApiError::new(ErrorCode::DocumentTampered, format!("{why}; the document cannot be trusted"))
    })?;
    Ok(([(header::CONTENT_TYPE, d.content_type.clone()), (header::CACHE_CONTROL, "no-store".into())], bytes))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationWire {
    /// `valid`, `tampered`, `unknown_signer` or `unsigned`.
    pub status: String,
    /// What does not match, for `tampered`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub signed_with: Option<String>,
}

/// Verify the document: its signature (by one of the uploader's keys), the stored bytes and
/// their digest.
#[utoipa::path(get, path = "/api/v1/patients/{id}/documents/{doc}/verify", tag = "records", security(("bearer" = [])),
    params(("id" = String, Path, description = "Health ID"), ("doc" = String, Path, description = "document id")),
    responses(
    (status = 200, body = VerificationWire),
    (status = 403, body = ErrorBody, description = "`forbidden_role`, `not_in_care`"),
    (status = 404, body = ErrorBody, description = "`document_not_found`"),
    (status = 503, body = ErrorBody, description = "`encryption_not_configured`")))]
pub async fn verify(
    State(state): State<AppState>,
    session: Session,
    UrlPath((id, doc)): UrlPath<(String, String)>,
) -> ApiResult<Json<VerificationWire>> {
    let patient = health_id(&id)?;
    let d = visible(&state, &session, &patient, &doc, "documents/verify").await?;
    let keys = keys(&state)?;
    let v = documents::verify_document(state.store.as_ref(), state.objects.as_ref(), keys, &d).await?;
    let (status, reason) = match v {
        Verdict::Valid => ("valid", None),
        Verdict::Tampered(why) => ("tampered", Some(why)),
        Verdict::UnknownSigner => ("unknown_signer", None),
        Verdict::Unsigned => ("unsigned", None),
    };
    Ok(Json(VerificationWire {
        status: status.into(),
        reason,
        signed_with: d.signature.as_ref().map(|s| s.public_key_hex.clone()),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyWire {
    pub public_key: String,
    pub created_at: DateTime<Utc>,
    /// The server holds the private half (wrapped under your key-encryption key); else you do.
    pub server_held: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterKeyRequest {
    /// Your Ed25519 public key, 64 hex characters. You keep the private half.
    pub public_key: String,
}

async fn my_keys(state: &AppState, session: &Session) -> ApiResult<Vec<SigningKeyWire>> {
    let user = state.store.get_user(&session.0.sub).await?.ok_or_else(|| ApiError::of(ErrorCode::InvalidToken))?;
    Ok(user
        .signing_keys
        .iter()
        .map(|k| SigningKeyWire {
            public_key: k.public_key_hex.clone(),
            created_at: k.created_at,
            server_held: k.wrapped_seed.is_some(),
        })
        .collect())
}

/// Your document-signing keys, oldest first.
#[utoipa::path(get, path = "/api/v1/me/signing-keys", tag = "records", security(("bearer" = [])), responses(
    (status = 200, body = Vec<SigningKeyWire>)))]
pub async fn list_keys(State(state): State<AppState>, session: Session) -> ApiResult<Json<Vec<SigningKeyWire>>> {
    Ok(Json(my_keys(&state, &session).await?))
}

/// Register a public key whose private half you hold, to send detached signatures with uploads.
#[utoipa::path(post, path = "/api/v1/me/signing-keys", tag = "records", security(("bearer" = [])),
    request_body = RegisterKeyRequest, responses(
    (status = 201, body = Vec<SigningKeyWire>),
    (status = 400, body = ErrorBody, description = "`bad_signature` (not an Ed25519 public key)")))]
pub async fn register_key(
    State(state): State<AppState>,
    session: Session,
    Body(req): Body<RegisterKeyRequest>,
) -> ApiResult<(StatusCode, Json<Vec<SigningKeyWire>>)> {
    let mut user = state.store.get_user(&session.0.sub).await?.ok_or_else(|| ApiError::of(ErrorCode::InvalidToken))?;
    documents::register_public_key(state.store.as_ref(), &mut user, &req.public_key).await.map_err(|e| match e {
        DocumentError::BadSignature(m) => ApiError::new(ErrorCode::BadSignature, m),
        other => ApiError::internal(other),
    })?;
    audit_write(&state, &session, None, "signing-keys", "register").await?;
    Ok((StatusCode::CREATED, Json(my_keys(&state, &session).await?)))
}
