//! e-Prescriptions over HTTP. A doctor of a practice treating the patient prescribes an
//! ATC-coded drug; carelens checks it against the patient's allergies, current medication
//! and active prescriptions (`carelens_records::prescribing`) and refuses until every warning
//! is acknowledged; the prescription is signed with the doctor's key and also recorded as a
//! medication in the history. Patients request refills and choose medication reminders (sent
//! by e-mail through the outbox, `carelens_records::reminders`); the prescribing practice
//! records dispensings, and each refill extends the reminders to the new supply.

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use carelens_domain::{
    Category, Dispensing, Dose, EntryId, HealthId, HistoryEntry, HistoryKind, MedicationStatement, Prescription,
    PrescriptionId, PrescriptionStatus, RefillRequest, RefillState, Role, Source, SourceKind, Validate,
};
use carelens_records::prescribing::{self, Warning};
use carelens_records::reminders;
use carelens_store::{HistoryFilter, WriteBatch};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::{Access, Purpose, audit_denied, audit_update, audit_write, check_patient_access, health_id};
use crate::auth::Session;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode, invalid};
use crate::extract::Body;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoseWire {
    pub amount: f64,
    /// `tablet`, `mg`, `ml`, `puff` …
    pub unit: String,
    /// `1-0-1` (morning-noon-evening), `daily`, `as needed`.
    pub frequency: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrescribeRequest {
    /// ATC code (level 5), e.g. `C10AA01`.
    pub drug: String,
    /// The product's name, e.g. `Simvastatin 20 mg film-coated tablets`.
    pub display: String,
    /// e.g. `20 mg`.
    pub strength: String,
    pub dose: DoseWire,
    /// First day [default: today].
    #[serde(default)]
    pub start: Option<NaiveDate>,
    /// Days one fill lasts (1–365).
    pub duration_days: u16,
    /// Refills allowed after the first fill (0–12).
    #[serde(default)]
    pub refills: u8,
    /// Ids of the warnings (from `…/prescriptions/check`) you have considered.
    #[serde(default)]
    pub acknowledge: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WarningWire {
    pub id: String,
    /// `allergy`, `interaction` or `duplicate_therapy`.
    pub kind: String,
    /// `major` or `moderate`.
    pub severity: String,
    pub message: String,
}

impl WarningWire {
    fn new(w: &Warning) -> Self {
        Self {
            id: w.id.clone(),
            kind: w.kind.into(),
            severity: serde_json::to_value(w.severity)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            message: w.message.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PrescriptionWire {
    pub id: String,
    pub drug: String,
    pub display: String,
    pub strength: String,
    /// e.g. `1 tablet 1-0-1`.
    pub dose: String,
    pub start: NaiveDate,
    pub duration_days: u16,
    /// `active` or `cancelled`.
    pub status: String,
    /// In force today.
    pub current: bool,
    pub covered_until: NaiveDate,
    pub refills_allowed: u8,
    pub refills_left: u8,
    pub refill_pending: bool,
    pub dispensed: Vec<DateTime<Utc>>,
    pub prescriber: String,
    pub provider: String,
    /// The Ed25519 signature still covers what was prescribed.
    pub signature_valid: bool,
    pub acknowledged: Vec<String>,
    /// The patient's medication reminders (Berlin time, `HH:MM`); empty: none.
    pub reminder_times: Vec<String>,
}

impl PrescriptionWire {
    fn new(p: &Prescription) -> Self {
        Self {
            id: p.id.to_string(),
            drug: p.drug.to_string(),
            display: p.display.clone(),
            strength: p.strength.clone(),
            dose: format!("{} {} {}", p.dose.amount, p.dose.unit, p.dose.frequency),
            start: p.start,
            duration_days: p.duration_days,
            status: if p.status == PrescriptionStatus::Active { "active" } else { "cancelled" }.into(),
            current: p.is_current(Utc::now().date_naive()),
            covered_until: p.covered_until(),
            refills_allowed: p.refills_allowed,
            refills_left: p.refills_left(),
            refill_pending: p.refill_pending(),
            dispensed: p.dispensings.iter().map(|d| d.at).collect(),
            prescriber: p.prescriber.to_string(),
            provider: p.provider.to_string(),
            signature_valid: prescribing::verify(p),
            acknowledged: p.acknowledged.clone(),
            reminder_times: p.reminder_times.iter().map(|t| t.format("%H:%M").to_string()).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResult {
    pub warnings: Vec<WarningWire>,
}

/// A doctor with a practice who may see (and write) the patient's medication and allergies.
async fn prescriber(state: &AppState, session: &Session, patient: &HealthId) -> ApiResult<Access> {
    if session.0.role != Role::Doctor || session.0.provider.is_none() {
        audit_denied(state, session, Some(patient), "prescriptions", "forbidden_role").await;
        return Err(ApiError::new(ErrorCode::ForbiddenRole, "only doctors of a practice prescribe"));
    }
    let access = check_patient_access(state, session, patient, Purpose::AddToRecord, "prescriptions").await?;
    if !(access.sees(Category::Medication) && access.sees(Category::Allergy)) {
        audit_denied(state, session, Some(patient), "prescriptions", "not_in_care").await;
        return Err(ApiError::new(
            ErrorCode::NotInCare,
            "prescribing needs the patient's medication and allergies, which you may not see",
        ));
    }
    Ok(access)
}

/// The request as an unsigned prescription, validated.
fn draft(req: &PrescribeRequest, session: &Session, patient: &HealthId) -> ApiResult<Prescription> {
    let drug = req.drug.parse().map_err(|e: carelens_domain::DomainError| invalid(format!("drug: {e}")))?;
    let mut rx = Prescription {
        id: PrescriptionId::random(),
        patient: patient.clone(),
        provider: session.0.provider.clone().ok_or_else(|| ApiError::of(ErrorCode::ForbiddenRole))?,
        prescriber: session.0.sub,
        drug,
        display: req.display.trim().to_owned(),
        strength: req.strength.trim().to_owned(),
        dose: Dose {
            amount: req.dose.amount,
            unit: req.dose.unit.trim().to_owned(),
            frequency: req.dose.frequency.trim().to_owned(),
        },
        start: req.start.unwrap_or_else(|| Utc::now().date_naive()),
        duration_days: req.duration_days,
        refills_allowed: req.refills,
        created_at: Utc::now(),
        status: PrescriptionStatus::Active,
        dispensings: vec![],
        refill_requests: vec![],
        acknowledged: vec![],
        reminder_times: vec![],
        reminder_revision: 0,
        signature: carelens_domain::DocumentSignature {
            algorithm: "ed25519".into(),
            public_key_hex: String::new(),
            signature_hex: String::new(),
        },
    };
    rx.validate().map_err(|e| {
        let carelens_domain::DomainError::Invalid { field, reason } = e;
        invalid(format!("{field}: {reason}"))
    })?;
    if rx.start < Utc::now().date_naive() - Duration::days(1) {
        return Err(invalid("start: must not be in the past"));
    }
    rx.acknowledged.clone_from(&req.acknowledge);
    Ok(rx)
}

async fn warnings(state: &AppState, access: &Access, rx: &Prescription) -> ApiResult<Vec<Warning>> {
    let visible = HistoryFilter { categories: access.categories.clone(), ..HistoryFilter::default() };
    let history = state.store.history(&rx.patient, &visible).await?;
    let active = state.store.prescriptions_for(&rx.patient).await?;
    Ok(prescribing::check(&rx.drug, &rx.display, &history, &active, rx.start))
}

/// What prescribing this would warn about (allergies, interactions, duplicate therapy), without
/// prescribing it.
#[utoipa::path(post, path = "/api/v1/patients/{id}/prescriptions/check", tag = "prescriptions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Health ID")), request_body = PrescribeRequest, responses(
    (status = 200, body = CheckResult),
    (status = 400, body = ErrorBody, description = "`invalid_input`"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`, `not_in_care`")))]
pub async fn check(
    State(state): State<AppState>,
    session: Session,
    UrlPath(id): UrlPath<String>,
    Body(req): Body<PrescribeRequest>,
) -> ApiResult<Json<CheckResult>> {
    let patient = health_id(&id)?;
    let access = prescriber(&state, &session, &patient).await?;
    let rx = draft(&req, &session, &patient)?;
    let w = warnings(&state, &access, &rx).await?;
    Ok(Json(CheckResult { warnings: w.iter().map(WarningWire::new).collect() }))
}

/// Prescribe: checked against allergies, current medication and active prescriptions (every
/// warning must be acknowledged), signed with your key, and recorded as a medication.
#[utoipa::path(post, path = "/api/v1/patients/{id}/prescriptions", tag = "prescriptions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Health ID")), request_body = PrescribeRequest, responses(
    (status = 201, body = PrescriptionWire),
    (status = 400, body = ErrorBody, description = "`invalid_input`"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`, `not_in_care`"),
    (status = 409, body = ErrorBody, description = "`prescription_warnings`"),
    (status = 503, body = ErrorBody, description = "`encryption_not_configured` (the signing key needs it)")))]
pub async fn prescribe(
    State(state): State<AppState>,
    session: Session,
    UrlPath(id): UrlPath<String>,
    Body(req): Body<PrescribeRequest>,
) -> ApiResult<(StatusCode, Json<PrescriptionWire>)> {
    let patient = health_id(&id)?;
    let keys = state.keys.clone().ok_or_else(|| ApiError::of(ErrorCode::EncryptionNotConfigured))?;
    let access = prescriber(&state, &session, &patient).await?;
    let mut rx = draft(&req, &session, &patient)?;
    let open: Vec<Warning> =
        warnings(&state, &access, &rx).await?.into_iter().filter(|w| !rx.acknowledged.contains(&w.id)).collect();
    if !open.is_empty() {
        let list: Vec<String> = open.iter().map(|w| format!("{} ({:?}): {}", w.id, w.severity, w.message)).collect();
        audit_denied(&state, &session, Some(&patient), "prescriptions", "unacknowledged_warnings").await;
        return Err(ApiError::new(
            ErrorCode::PrescriptionWarnings,
            format!("{} warning(s) to acknowledge: {}", open.len(), list.join("; ")),
        ));
    }
    let mut user = state.store.get_user(&session.0.sub).await?.ok_or_else(|| ApiError::of(ErrorCode::InvalidToken))?;
    let seed = carelens_records::documents::server_seed(state.store.as_ref(), &keys, &mut user)
        .await
        .map_err(ApiError::internal)?;
    rx.signature = prescribing::sign(&seed, &rx);
    state.store.put_prescription(&rx).await?;
    state.store.apply(WriteBatch { history: vec![medication_entry(&rx)?], ..WriteBatch::default() }).await?;
    let why = if rx.acknowledged.is_empty() {
        "prescribe".to_owned()
    } else {
        format!("prescribe; acknowledged {}", rx.acknowledged.join(", "))
    };
    audit_write(&state, &session, Some(&patient), &format!("prescriptions/{}", rx.id), &why).await?;
    Ok((StatusCode::CREATED, Json(PrescriptionWire::new(&rx))))
}

/// The patient's prescriptions (with medication visible to you), newest first.
#[utoipa::path(get, path = "/api/v1/patients/{id}/prescriptions", tag = "prescriptions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Health ID")), responses(
    (status = 200, body = Vec<PrescriptionWire>),
    (status = 403, body = ErrorBody, description = "`forbidden_role`, `not_in_care`")))]
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Vec<PrescriptionWire>>> {
    let patient = health_id(&id)?;
    let access = check_patient_access(&state, &session, &patient, Purpose::ReadHistory, "prescriptions").await?;
    let mut all = state.store.prescriptions_for(&patient).await?;
    all.retain(|p| {
        let c = if carelens_records::fhir::maps::is_psychiatric(&p.drug) {
            Category::MentalHealth
        } else {
            Category::Medication
        };
        access.sees(c)
    });
    all.reverse();
    Ok(Json(all.iter().map(PrescriptionWire::new).collect()))
}

/// The prescription as the patient's medication, from its start to the end of the fills so far
/// (one entry per prescription, updated by refills).
fn medication_entry(rx: &Prescription) -> ApiResult<HistoryEntry> {
    let statement = MedicationStatement {
        code: rx.drug.clone(),
        display: rx.display.clone(),
        dose: rx.dose.clone(),
        start: rx.start,
        end: Some(rx.covered_until()),
    };
    let kind = if carelens_records::fhir::maps::is_psychiatric(&rx.drug) {
        HistoryKind::PsychiatricMedication(statement)
    } else {
        HistoryKind::Medication(statement)
    };
    let source = Source { kind: SourceKind::Clinician, reference: Some(format!("prescription {}", rx.id)) };
    HistoryEntry::new(EntryId::from_u128(rx.id.0.as_u128()), rx.patient.clone(), rx.start, source, kind)
        .map_err(ApiError::internal)
}

async fn find(state: &AppState, patient: &HealthId, rx: &str) -> ApiResult<Prescription> {
    let id: PrescriptionId = rx.parse().map_err(|_| ApiError::of(ErrorCode::PrescriptionNotFound))?;
    match state.store.get_prescription(&id).await? {
        Some(p) if &p.patient == patient => Ok(p),
        _ => Err(ApiError::of(ErrorCode::PrescriptionNotFound)),
    }
}

/// Ask for a refill of your own prescription.
#[utoipa::path(post, path = "/api/v1/patients/{id}/prescriptions/{rx}/refill-request", tag = "prescriptions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Health ID"), ("rx" = String, Path, description = "prescription id")), responses(
    (status = 200, body = PrescriptionWire),
    (status = 403, body = ErrorBody, description = "`forbidden_role`, `not_in_care`"),
    (status = 404, body = ErrorBody, description = "`prescription_not_found`"),
    (status = 409, body = ErrorBody, description = "`no_refills_left`, `refill_pending`")))]
pub async fn request_refill(
    State(state): State<AppState>,
    session: Session,
    UrlPath((id, rx)): UrlPath<(String, String)>,
) -> ApiResult<Json<PrescriptionWire>> {
    let patient = health_id(&id)?;
    if session.0.role != Role::Patient || session.0.patient.as_ref() != Some(&patient) {
        audit_denied(&state, &session, Some(&patient), "prescriptions", "forbidden_role").await;
        return Err(ApiError::new(ErrorCode::ForbiddenRole, "patients request refills of their own prescriptions"));
    }
    let mut p = find(&state, &patient, &rx).await?;
    if p.status != PrescriptionStatus::Active || p.refills_left() == 0 {
        return Err(ApiError::of(ErrorCode::NoRefillsLeft));
    }
    if p.refill_pending() {
        return Err(ApiError::of(ErrorCode::RefillPending));
    }
    p.refill_requests.push(RefillRequest { at: Utc::now(), state: RefillState::Requested });
    state.store.put_prescription(&p).await?;
    audit_write(&state, &session, Some(&patient), &format!("prescriptions/{}", p.id), "refill requested").await?;
    Ok(Json(PrescriptionWire::new(&p)))
}

/// Record that the drug was handed out: the first fill, then each refill (which uses one).
/// Doctors of the prescribing practice.
#[utoipa::path(post, path = "/api/v1/patients/{id}/prescriptions/{rx}/dispense", tag = "prescriptions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Health ID"), ("rx" = String, Path, description = "prescription id")), responses(
    (status = 200, body = PrescriptionWire),
    (status = 403, body = ErrorBody, description = "`forbidden_role`, `not_in_care`"),
    (status = 404, body = ErrorBody, description = "`prescription_not_found`"),
    (status = 409, body = ErrorBody, description = "`no_refills_left`")))]
pub async fn dispense(
    State(state): State<AppState>,
    session: Session,
    UrlPath((id, rx)): UrlPath<(String, String)>,
) -> ApiResult<Json<PrescriptionWire>> {
    let patient = health_id(&id)?;
    let _ = check_patient_access(&state, &session, &patient, Purpose::AddToRecord, "prescriptions").await?;
    let mut p = find(&state, &patient, &rx).await?;
    if session.0.role != Role::Doctor || session.0.provider.as_ref() != Some(&p.provider) {
        audit_denied(&state, &session, Some(&patient), "prescriptions", "forbidden_role").await;
        return Err(ApiError::new(ErrorCode::ForbiddenRole, "the prescribing practice records dispensings"));
    }
    let refill = !p.dispensings.is_empty();
    if p.status != PrescriptionStatus::Active || (refill && p.refills_left() == 0) {
        return Err(ApiError::of(ErrorCode::NoRefillsLeft));
    }
    p.dispensings.push(Dispensing { at: Utc::now(), refill });
    for r in p.refill_requests.iter_mut().filter(|r| r.state == RefillState::Requested) {
        r.state = RefillState::Dispensed;
    }
    state.store.put_prescription(&p).await?;
    state.store.apply(WriteBatch { history: vec![medication_entry(&p)?], ..WriteBatch::default() }).await?;
    // A refill extends the supply: remind through the new days, to where reminders went so far.
    if !p.reminder_times.is_empty()
        && let Some(to) = state.store.messages_for(&p.id.into()).await?.into_iter().next_back().map(|m| m.to)
    {
        let msgs = reminders::schedule(&p, &to, Utc::now()).map_err(ApiError::internal)?;
        state.store.enqueue_messages(&msgs).await?;
    }
    let what = if refill { "refill dispensed" } else { "dispensed" };
    audit_update(&state, &session, &patient, &format!("prescriptions/{}", p.id), what).await?;
    Ok(Json(PrescriptionWire::new(&p)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemindersRequest {
    /// Berlin wall-clock times, `HH:MM`, at most four; `[]` turns reminders off.
    pub times: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RemindersResponse {
    pub prescription: PrescriptionWire,
    /// Reminders now waiting in the outbox for this prescription.
    pub scheduled: usize,
}

/// Choose when to be reminded (by e-mail) to take your own prescription, or turn reminders
/// off with `[]`. Reminders cover each day of the supply dispensed so far, plus one about the
/// refill three days before it runs out; they never name the drug.
#[utoipa::path(put, path = "/api/v1/patients/{id}/prescriptions/{rx}/reminders", tag = "prescriptions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Health ID"), ("rx" = String, Path, description = "prescription id")),
    request_body = RemindersRequest, responses(
    (status = 200, body = RemindersResponse),
    (status = 400, body = ErrorBody, description = "`invalid_input`: a time is not `HH:MM`, repeated, or more than four"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`"),
    (status = 404, body = ErrorBody, description = "`prescription_not_found`"),
    (status = 409, body = ErrorBody, description = "`no_email`")))]
pub async fn set_reminders(
    State(state): State<AppState>,
    session: Session,
    UrlPath((id, rx)): UrlPath<(String, String)>,
    Body(req): Body<RemindersRequest>,
) -> ApiResult<Json<RemindersResponse>> {
    let patient = health_id(&id)?;
    if session.0.role != Role::Patient || session.0.patient.as_ref() != Some(&patient) {
        audit_denied(&state, &session, Some(&patient), "prescriptions", "forbidden_role").await;
        return Err(ApiError::new(ErrorCode::ForbiddenRole, "patients choose reminders for their own prescriptions"));
    }
    let mut times = Vec::with_capacity(req.times.len());
    for t in &req.times {
        let parsed = NaiveTime::parse_from_str(t, "%H:%M")
            .map_err(|_| invalid(format!("times: `{t}` is not a time of day as HH:MM, e.g. 08:00")))?;
        times.push(parsed);
    }
    let times = reminders::normalise_times(&times).map_err(|e| invalid(format!("times: {e}")))?;
    let mut p = find(&state, &patient, &rx).await?;
    let to = if times.is_empty() {
        None
    } else {
        if p.status != PrescriptionStatus::Active {
            return Err(invalid("the prescription was cancelled; there is nothing to remind of"));
        }
        let Some(to) = state.store.get_user(&session.0.sub).await?.and_then(|u| u.email) else {
            return Err(ApiError::of(ErrorCode::NoEmail));
        };
        Some(to)
    };
    // New settings, new revision: what was queued under the old ones is cancelled here (and
    // would lapse at delivery if this request died in between).
    p.reminder_times = times;
    p.reminder_revision = p.reminder_revision.saturating_add(1);
    p.validate().map_err(|e| invalid(e.to_string()))?;
    state.store.put_prescription(&p).await?;
    state.store.cancel_messages(&p.id.into()).await?;
    let mut scheduled = 0;
    if let Some(to) = to {
        let msgs = reminders::schedule(&p, &to, Utc::now()).map_err(ApiError::internal)?;
        scheduled = msgs.len();
        state.store.enqueue_messages(&msgs).await?;
    }
    let what = if p.reminder_times.is_empty() { "reminders off" } else { "reminders set" };
    audit_update(&state, &session, &patient, &format!("prescriptions/{}", p.id), what).await?;
    Ok(Json(RemindersResponse { prescription: PrescriptionWire::new(&p), scheduled }))
}
