//! A patient's record as a FHIR R4 bundle: the same access check as every read, and only what
//! the caller may see goes in.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use carelens_domain::{Category, Role};
use carelens_records::fhir::{RecordExport, export_bundle};
use carelens_store::HistoryFilter;

use crate::access::{Purpose, check_patient_access, health_id};
use crate::auth::Session;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// The patient's record as a FHIR R4 `collection` bundle (`application/fhir+json`), with only
/// the categories you may see. A patient's own record adds appointments, consents, documents
/// and the access log; a doctor's export adds the practice's appointments and, with diagnoses
/// visible, the latest prediction set as a RiskAssessment. Audited as an export.
#[utoipa::path(get, path = "/api/v1/patients/{id}/fhir", tag = "records", security(("bearer" = [])),
    params(("id" = String, Path, description = "Health ID")), responses(
    (status = 200, content_type = "application/fhir+json", description = "FHIR R4 Bundle (type collection)"),
    (status = 400, body = ErrorBody, description = "`invalid_health_id`"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`, `not_in_care`"),
    (status = 404, body = ErrorBody, description = "`patient_not_found`")))]
pub async fn get_fhir_record(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let patient = health_id(&id)?;
    let access = check_patient_access(&state, &session, &patient, Purpose::ExportRecord, "record/fhir").await?;
    let store = &state.store;
    let entries =
        store.history(&patient, &HistoryFilter { categories: access.categories.clone(), ..Default::default() }).await?;
    let own = access.basis == "own_record";
    let claims = &session.0;
    let appointments = match (claims.role, &claims.provider) {
        _ if own => store.appointments_for_patient(&patient).await?,
        (Role::Doctor, Some(provider)) => {
            store.appointments_for_patient(&patient).await?.into_iter().filter(|a| &a.provider == provider).collect()
        }
        _ => vec![],
    };
    let (consents, documents, audit) = if own {
        (
            store.consents_for(&patient).await?,
            store.documents_for(&patient).await?,
            store.audit_for_patient(&patient, 10_000).await?,
        )
    } else {
        (vec![], vec![], vec![])
    };
    let predictions = if claims.role == Role::Doctor && access.sees(Category::Diagnosis) {
        store.latest_prediction_set(&patient).await?
    } else {
        None
    };
    let mut prescriptions = store.prescriptions_for(&patient).await?;
    prescriptions.retain(|p| {
        access.sees(if carelens_records::fhir::maps::is_psychiatric(&p.drug) {
            Category::MentalHealth
        } else {
            Category::Medication
        })
    });
    let bundle = export_bundle(&RecordExport {
        patient: &access.patient,
        entries: &entries,
        appointments: &appointments,
        consents: &consents,
        documents: &documents,
        audit: &audit,
        predictions: predictions.as_ref(),
        prescriptions: &prescriptions,
    });
    let body = serde_json::to_vec(&bundle).map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/fhir+json"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"record.fhir.json\""),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    ))
}
