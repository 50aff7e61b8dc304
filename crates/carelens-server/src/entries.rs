//! Doctors add entries to a patient's history and correct them. A correction never overwrites:
//! the new entry points at the one it corrects, and the old one is kept, marked with who
//! replaced it, when and why (`GET …/history?include_corrected=true` shows both).

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use carelens_domain::{EntryId, HealthId, HistoryEntry, HistoryKind, Role, Source, SourceKind, Supersession};
use carelens_store::{HistoryFilter, WriteBatch};
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::{Access, Purpose, audit_denied, audit_update, audit_write, check_patient_access, health_id};
use crate::auth::Session;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode, invalid};
use crate::extract::Body;
use crate::state::AppState;
use crate::wire::TimelineEntry;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryRequest {
    /// The clinical date.
    pub date: NaiveDate,
    /// The entry, as in the timeline's store format, e.g. `{"type": "diagnosis", "code":
    /// "E11.9", "display": "Type 2 diabetes", "status": "active"}` or `{"type": "observation",
    /// "code": "4548-4", "display": "HbA1c", "value": 6.4, "unit": "%"}`.
    #[schema(value_type = Object)]
    pub entry: serde_json::Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectionRequest {
    pub date: NaiveDate,
    #[schema(value_type = Object)]
    pub entry: serde_json::Value,
    /// Why (5–500 characters); shown with the replaced entry and kept in the access log.
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntryWritten {
    pub entry: TimelineEntry,
    /// The entry it replaced, now marked as corrected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<TimelineEntry>,
}

/// Checks the caller is a doctor who may see and write this patient's record.
async fn writer(state: &AppState, session: &Session, patient: &HealthId, what: &str) -> ApiResult<Access> {
    if session.0.role != Role::Doctor {
        audit_denied(state, session, Some(patient), what, "forbidden_role").await;
        return Err(ApiError::new(ErrorCode::ForbiddenRole, "only doctors add to and correct histories"));
    }
    check_patient_access(state, session, patient, Purpose::AddToRecord, what).await
}

/// A new clinician entry from a request, checked.
async fn build(
    state: &AppState,
    session: &Session,
    access: &Access,
    patient: &HealthId,
    date: NaiveDate,
    entry: serde_json::Value,
) -> ApiResult<HistoryEntry> {
    let kind: HistoryKind = serde_json::from_value(entry).map_err(|e| invalid(format!("entry: {e}")))?;
    if matches!(kind, HistoryKind::ImagingStudy(_)) {
        return Err(invalid("entry: imaging studies come from `carelens ingest images`, not from this endpoint"));
    }
    let source =
        Source { kind: SourceKind::Clinician, reference: session.0.provider.as_ref().map(ToString::to_string) };
    let e = HistoryEntry::new(EntryId::random(), patient.clone(), date, source, kind).map_err(|e| {
        let carelens_domain::DomainError::Invalid { field, reason } = e;
        invalid(format!("{field}: {reason}"))
    })?;
    if date > Utc::now().date_naive() {
        return Err(invalid("date: must not be in the future"));
    }
    if !access.sees(e.category()) {
        audit_denied(state, session, Some(patient), "history", "not_in_care").await;
        return Err(ApiError::new(
            ErrorCode::NotInCare,
            format!("you may not see this patient's {} records, so you may not write them", e.category().as_str()),
        ));
    }
    Ok(e)
}

/// Add an entry to the patient's history (doctors; recorded as the practice's).
#[utoipa::path(post, path = "/api/v1/patients/{id}/history", tag = "doctors", security(("bearer" = [])),
    params(("id" = String, Path, description = "Health ID")), request_body = EntryRequest, responses(
    (status = 201, body = EntryWritten),
    (status = 400, body = ErrorBody, description = "`invalid_input`, `invalid_health_id`"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`, `not_in_care`"),
    (status = 404, body = ErrorBody, description = "`patient_not_found`")))]
pub async fn add_entry(
    State(state): State<AppState>,
    session: Session,
    UrlPath(id): UrlPath<String>,
    Body(req): Body<EntryRequest>,
) -> ApiResult<(StatusCode, Json<EntryWritten>)> {
    let patient = health_id(&id)?;
    let access = writer(&state, &session, &patient, "history").await?;
    let e = build(&state, &session, &access, &patient, req.date, req.entry).await?;
    state.store.apply(WriteBatch { history: vec![e.clone()], ..WriteBatch::default() }).await?;
    audit_write(&state, &session, Some(&patient), &format!("history/{}", e.id), "add").await?;
    Ok((StatusCode::CREATED, Json(EntryWritten { entry: TimelineEntry::new(&e), replaced: None })))
}

/// Correct an entry: the new one replaces it in the timeline; the old one is kept with who
/// corrected it, when and why.
#[utoipa::path(post, path = "/api/v1/patients/{id}/history/{entry}/correct", tag = "doctors", security(("bearer" = [])),
    params(("id" = String, Path, description = "Health ID"), ("entry" = String, Path, description = "entry id")),
    request_body = CorrectionRequest, responses(
    (status = 201, body = EntryWritten),
    (status = 400, body = ErrorBody, description = "`invalid_input`"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`, `not_in_care`"),
    (status = 404, body = ErrorBody, description = "`entry_not_found`"),
    (status = 409, body = ErrorBody, description = "`already_corrected`")))]
pub async fn correct_entry(
    State(state): State<AppState>,
    session: Session,
    UrlPath((id, entry)): UrlPath<(String, String)>,
    Body(req): Body<CorrectionRequest>,
) -> ApiResult<(StatusCode, Json<EntryWritten>)> {
    let patient = health_id(&id)?;
    let reason = req.reason.trim().to_owned();
    if !(5..=500).contains(&reason.chars().count()) {
        return Err(invalid("reason: 5 to 500 characters saying why"));
    }
    let access = writer(&state, &session, &patient, "history").await?;
    let old_id: EntryId = entry.parse().map_err(|_| ApiError::of(ErrorCode::EntryNotFound))?;
    let all =
        state.store.history(&patient, &HistoryFilter { include_superseded: true, ..HistoryFilter::default() }).await?;
    let Some(mut old) = all.into_iter().find(|e| e.id == old_id && access.sees(e.category())) else {
        return Err(ApiError::of(ErrorCode::EntryNotFound));
    };
    if old.superseded.is_some() {
        return Err(ApiError::of(ErrorCode::AlreadyCorrected));
    }
    let mut new = build(&state, &session, &access, &patient, req.date, req.entry).await?;
    new.corrects = Some(old.id);
    old.superseded =
        Some(Supersession { by: new.id, at: Utc::now(), author: session.0.sub.to_string(), reason: reason.clone() });
    // Both or neither: one batch.
    state.store.apply(WriteBatch { history: vec![old.clone(), new.clone()], ..WriteBatch::default() }).await?;
    audit_update(&state, &session, &patient, &format!("history/{}", old.id), &reason).await?;
    Ok((
        StatusCode::CREATED,
        Json(EntryWritten { entry: TimelineEntry::new(&new), replaced: Some(TimelineEntry::new(&old)) }),
    ))
}
