//! One error shape for every response: `{"error": {"code", "message"}}` with a stable code.
//!
//! The codes and their statuses come from one table ([`codes!`]); clients match on `code`,
//! never on `message`. Server errors (5xx) send a fixed message and log the cause under the
//! request's id, so internals never reach a client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use carelens_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

macro_rules! codes {
    ($($variant:ident = $status:ident, $code:literal, $doc:literal;)*) => {
        /// Every error code the API returns.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $(#[doc = $doc] $variant,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            pub fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$status,)* }
            }

            pub fn describe(self) -> &'static str {
                match self { $(ErrorCode::$variant => $doc,)* }
            }
        }
    };
}

codes! {
    MalformedJson = BAD_REQUEST, "malformed_json", "the body is not valid JSON";
    InvalidJsonFields = UNPROCESSABLE_ENTITY, "invalid_json_fields", "the JSON lacks a field or has one of the wrong type";
    UnsupportedMediaType = UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send `Content-Type: application/json`";
    InvalidInput = BAD_REQUEST, "invalid_input", "a field or parameter has an invalid value";
    InvalidHealthId = BAD_REQUEST, "invalid_health_id", "the path holds no valid Health ID";
    PayloadTooLarge = PAYLOAD_TOO_LARGE, "payload_too_large", "the body is larger than the server accepts";
    MissingToken = UNAUTHORIZED, "missing_token", "sign in and send `Authorization: Bearer <token>`";
    InvalidToken = UNAUTHORIZED, "invalid_token", "the token is malformed or not signed by this server";
    TokenExpired = UNAUTHORIZED, "token_expired", "the token has expired: sign in again";
    BadCredentials = UNAUTHORIZED, "bad_credentials", "unknown user name or wrong password";
    ForbiddenRole = FORBIDDEN, "forbidden_role", "your role may not use this endpoint";
    NotInCare = FORBIDDEN, "not_in_care", "the patient is neither assigned to you nor has granted you consent";
    PatientNotFound = NOT_FOUND, "patient_not_found", "no patient has this Health ID";
    NoPredictionSet = NOT_FOUND, "no_prediction_set", "the patient has no prediction set yet";
    PredictionNotFound = NOT_FOUND, "prediction_not_found", "the prediction set or diagnosis does not exist";
    EvidenceNotFound = NOT_FOUND, "evidence_not_found", "no evidence with this key belongs to the patient";
    ModelNotFound = NOT_FOUND, "model_not_found", "no model with this name in the registry";
    JobNotFound = NOT_FOUND, "job_not_found", "no prediction run with this id";
    KpiNotFound = NOT_FOUND, "kpi_not_found", "no KPI with this name; GET /api/v1/kpis lists them";
    ProviderNotFound = NOT_FOUND, "provider_not_found", "no provider has this id";
    AppointmentNotFound = NOT_FOUND, "appointment_not_found", "no appointment of yours has this id";
    MissingIdempotencyKey = BAD_REQUEST, "missing_idempotency_key", "send an `Idempotency-Key` header (1–128 characters, unique per booking)";
    IdempotencyKeyReused = UNPROCESSABLE_ENTITY, "idempotency_key_reused", "this idempotency key was used for a different booking";
    SlotTaken = CONFLICT, "slot_taken", "the opening was just taken by someone else; list the openings again";
    TooShortNotice = CONFLICT, "too_short_notice", "the opening starts too soon to be booked";
    BeyondHorizon = CONFLICT, "beyond_horizon", "the opening is further ahead than bookings open";
    TooManyBookings = CONFLICT, "too_many_bookings", "you hold the most upcoming appointments allowed; cancel one first";
    InsuranceNotAccepted = UNPROCESSABLE_ENTITY, "insurance_not_accepted", "the opening is not for your insurance";
    NotMovable = CONFLICT, "not_movable", "only booked or confirmed appointments can be rescheduled";
    BadTransition = CONFLICT, "bad_transition", "the appointment cannot move to that status from where it is";
    ConsentNotFound = NOT_FOUND, "consent_not_found", "you have no consent with this id";
    ClosureNotFound = NOT_FOUND, "closure_not_found", "your practice has no closure with this id";
    RuleNotFound = NOT_FOUND, "rule_not_found", "your practice has no schedule rule with this id";
    ReviewNeedsVisit = FORBIDDEN, "review_needs_visit", "only patients with a completed appointment at this practice can review it";
    EntryNotFound = NOT_FOUND, "entry_not_found", "the patient has no history entry with this id that you may see";
    AlreadyCorrected = CONFLICT, "already_corrected", "this entry was already replaced by a correction; correct the newer entry";
    PrescriptionWarnings = CONFLICT, "prescription_warnings", "the prescription raises warnings to acknowledge first: send their ids in `acknowledge` (POST …/prescriptions/check lists them)";
    PrescriptionNotFound = NOT_FOUND, "prescription_not_found", "the patient has no prescription with this id that you may see";
    NoRefillsLeft = CONFLICT, "no_refills_left", "every refill of this prescription was used; a new prescription is needed";
    RefillPending = CONFLICT, "refill_pending", "a refill request is already waiting";
    NoEmail = CONFLICT, "no_email", "your account has no e-mail address to send reminders to; ask the practice or an administrator to add one";
    DocumentNotFound = NOT_FOUND, "document_not_found", "the patient has no document with this id that you may see";
    DocumentExists = CONFLICT, "document_exists", "this document was already uploaded for this patient";
    DocumentTampered = CONFLICT, "document_tampered", "the stored document no longer matches its digest; do not trust it";
    BadSignature = BAD_REQUEST, "bad_signature", "the detached signature or public key is malformed or does not match the document";
    UnknownSigner = BAD_REQUEST, "unknown_signer", "the signing key is not registered for you: POST it to /api/v1/me/signing-keys";
    EncryptionNotConfigured = SERVICE_UNAVAILABLE, "encryption_not_configured", "documents and prescriptions (their signing keys) need CARELENS_MASTER_KEY on the server (carelens records keygen; the demo makes one)";
    RouteNotFound = NOT_FOUND, "route_not_found", "no such endpoint; see /openapi.json";
    MethodNotAllowed = METHOD_NOT_ALLOWED, "method_not_allowed", "the endpoint exists but not with this method";
    UsernameTaken = CONFLICT, "username_taken", "another user has this user name";
    JobRunning = CONFLICT, "job_running", "a prediction run is already in progress";
    NoModels = CONFLICT, "no_models", "the registry has no model to predict with";
    NoSnapshot = CONFLICT, "no_snapshot", "no analytics snapshot yet: run `carelens export analytics`";
    Timeout = SERVICE_UNAVAILABLE, "timeout", "the request took longer than the server allows";
    NotReady = SERVICE_UNAVAILABLE, "not_ready", "the store is not reachable";
    Internal = INTERNAL_SERVER_ERROR, "internal", "an internal error; the server log has details under the x-request-id";
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_in_care`.
    pub code: &'static str,
    /// What went wrong and what to do, for people.
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// An error with the code's own description as message.
    pub fn of(code: ErrorCode) -> Self {
        Self { code, message: code.describe().to_string() }
    }

    /// A server-side failure: the cause is logged (with the request's span), the client gets
    /// the fixed message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::of(ErrorCode::Internal)
    }
}

/// `invalid_input` with a message that names the field and what is wrong.
pub fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidInput, message)
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid { source, .. } => ApiError::new(ErrorCode::InvalidInput, source.to_string()),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let message = if status.is_server_error() { self.code.describe().to_string() } else { self.message };
        let mut resp =
            (status, Json(ErrorBody { error: ErrorDetail { code: self.code.as_str(), message } })).into_response();
        resp.extensions_mut().insert(self.code);
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_4xx_or_5xx() {
        let mut seen = std::collections::BTreeSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate code {}", c.as_str());
            assert!(c.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{}", c.as_str());
            assert!(c.status().is_client_error() || c.status().is_server_error());
        }
    }

    #[test]
    fn server_errors_never_carry_their_cause() {
        let resp = ApiError::new(ErrorCode::Internal, "disk /secret/path failed").into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(resp.extensions().get::<ErrorCode>(), Some(&ErrorCode::Internal));
    }
}
