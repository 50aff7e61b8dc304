//! The API's handlers. Each declares its route and responses with `#[utoipa::path]`; the
//! router is built from those declarations ([`crate::router`]), so `/openapi.json` lists
//! exactly the routes that exist.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use carelens_domain::{
    Category, Feedback, FeedbackId, Icd10Code, ObjectKey, PredictionSet, ProviderId, Role, User, UserId, Validate,
    Verdict,
};
use carelens_ml::{ModelBody, ModelManifest, Registry};
use carelens_store::{HistoryFilter, StoreError};
use chrono::{Duration, NaiveDate, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::access::{Purpose, audit_write, check_patient_access, health_id};
use crate::auth::{Claims, Session, hash_password, verify_password};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::extract::{Body, Params};
use crate::jobs::RunRequest;
use crate::state::AppState;
use crate::wire::*;

// ---------------------------------------------------------------------------------------
// health

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION") })
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Ready), (status = 503, body = ErrorBody, description = "`not_ready`")))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Ready>> {
    match state.store.get_meta("schema_version").await {
        Ok(_) => Ok(Json(Ready { status: "ready", store: state.store.backend() })),
        Err(e) => {
            tracing::warn!(error = %e, "store not ready");
            Err(ApiError::of(ErrorCode::NotReady))
        }
    }
}

// ---------------------------------------------------------------------------------------
// sign-in

/// A hash to verify against when the user does not exist, so a wrong user name takes as long
/// as a wrong password (computed once, of a random password).
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| crate::auth::generate_password(24).and_then(|p| hash_password(&p)).unwrap_or_default())
}

/// Signs in with user name and password; returns a short-lived bearer token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = LoginResponse),
    (status = 401, body = ErrorBody, description = "`bad_credentials`"),
    (status = 400, body = ErrorBody, description = "`malformed_json`"),
    (status = 422, body = ErrorBody, description = "`invalid_json_fields`")))]
pub async fn login(State(state): State<AppState>, Body(req): Body<LoginRequest>) -> ApiResult<Json<LoginResponse>> {
    let user = if carelens_domain::valid_username(&req.username) {
        state.store.user_by_name(&req.username).await?
    } else {
        None
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = req.password;
    let ok = tokio::task::spawn_blocking(move || {
        verify_password(hash.as_deref().unwrap_or_else(|| dummy_hash()), &password)
    })
    .await
    .map_err(ApiError::internal)?;
    let Some(user) = user.filter(|u| ok && !u.disabled) else {
        tracing::info!("sign-in refused");
        return Err(ApiError::of(ErrorCode::BadCredentials));
    };
    let ttl = Duration::from_std(state.config.token_ttl).unwrap_or(Duration::minutes(15));
    let expires_at = Utc::now() + ttl;
    let claims = Claims::for_user(&user, expires_at);
    tracing::info!(user = %user.id, role = user.role.as_str(), "signed in");
    Ok(Json(LoginResponse {
        token: state.tokens.sign(&claims),
        token_type: "Bearer",
        expires_at,
        user: Me::from(&claims),
    }))
}

/// Who the token belongs to.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])), responses(
    (status = 200, body = Me), (status = 401, body = ErrorBody, description = "`missing_token`, `invalid_token`, `token_expired`")))]
pub async fn me(session: Session) -> Json<Me> {
    Json(Me::from(&session.0))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessLogQuery {
    /// At most this many entries, newest first (default 100, at most 1000)
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Who touched the signed-in patient's record, newest first: every read, write, export and
/// refusal the audit log holds about them, with the account and its role.
#[utoipa::path(get, path = "/api/v1/me/access-log", tag = "auth", params(AccessLogQuery),
    security(("bearer" = [])), responses(
    (status = 200, body = Vec<crate::wire::AccessEntry>), (status = 403, body = ErrorBody, description = "`forbidden_role`")))]
pub async fn my_access_log(
    State(state): State<AppState>,
    session: Session,
    Params(q): Params<AccessLogQuery>,
) -> ApiResult<Json<Vec<crate::wire::AccessEntry>>> {
    let patient = match (&session.0.role, &session.0.patient) {
        (Role::Patient, Some(p)) => p.clone(),
        _ => return Err(ApiError::new(ErrorCode::ForbiddenRole, "only patients have an access log of their own")),
    };
    let entries = state.store.audit_for_patient(&patient, q.limit.unwrap_or(100).clamp(1, 1000)).await?;
    let mut names: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        if !names.contains_key(&e.actor.id) {
            let name = match e.actor.id.parse::<carelens_domain::UserId>() {
                Ok(id) => {
                    state.store.get_user(&id).await?.map_or_else(|| "a removed account".to_owned(), |u| u.username)
                }
                Err(_) => e.actor.id.clone(),
            };
            names.insert(e.actor.id.clone(), name);
        }
        out.push(crate::wire::AccessEntry {
            seq: e.seq,
            at: e.at,
            who: names.get(&e.actor.id).cloned().unwrap_or_default(),
            role: serde_json::to_value(e.actor.role)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            action: serde_json::to_value(e.action).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            what: e.resource.split('/').next().unwrap_or_default().to_owned(),
            allowed: e.outcome == carelens_domain::AuditOutcome::Allowed,
            reason: e.reason,
        });
    }
    Ok(Json(out))
}

// ---------------------------------------------------------------------------------------
// doctors

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PatientQuery {
    /// Part of the name or the start of the Health ID (case-insensitive).
    #[serde(default)]
    pub q: Option<String>,
    /// At most this many (default 50, at most 500).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A doctor's patients: everyone with an appointment at the doctor's practice (not
/// cancelled), next visit first. Patients who only granted consent are reached by Health ID.
#[utoipa::path(get, path = "/api/v1/patients", tag = "doctors", security(("bearer" = [])), params(PatientQuery), responses(
    (status = 200, body = PatientList), (status = 403, body = ErrorBody, description = "`forbidden_role`")))]
pub async fn list_patients(
    State(state): State<AppState>,
    session: Session,
    Params(query): Params<PatientQuery>,
) -> ApiResult<Json<PatientList>> {
    session.require(&state, &[Role::Doctor], "patients").await?;
    let Some(provider) = session.0.provider.clone() else {
        return Ok(Json(PatientList { patients: vec![], truncated: false }));
    };
    let limit = query.limit.unwrap_or(50).clamp(1, 500) as usize;
    let now = Utc::now();
    let appointments = state
        .store
        .appointments_for_provider(&provider, now - Duration::days(365 * 20), now + Duration::days(365 * 2))
        .await?;
    // patient → (last visit before now, next visit from now)
    type Visits = (Option<chrono::DateTime<Utc>>, Option<chrono::DateTime<Utc>>);
    let mut visits: BTreeMap<_, Visits> = BTreeMap::new();
    for a in appointments.iter().filter(|a| a.status != carelens_domain::AppointmentStatus::Cancelled) {
        let v = visits.entry(a.patient.clone()).or_default();
        if a.start < now {
            v.0 = v.0.max(Some(a.start));
        } else {
            v.1 = Some(v.1.map_or(a.start, |n| n.min(a.start)));
        }
    }
    let mut order: Vec<_> = visits.into_iter().collect();
    // Upcoming visits soonest first, then the most recently seen.
    order.sort_by(|(_, a), (_, b)| match (a.1, b.1) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => b.0.cmp(&a.0),
    });
    let needle = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(str::to_lowercase);
    let today = now.date_naive();
    let mut patients = Vec::new();
    let mut truncated = false;
    for (id, (last, next)) in order {
        if patients.len() == limit {
            truncated = true;
            break;
        }
        let Some(p) = state.store.get_patient(&id).await? else { continue };
        if let Some(n) = &needle {
            let name = format!("{} {}", p.name.given, p.name.family).to_lowercase();
            if !id.as_str().to_lowercase().starts_with(n.as_str()) && !name.contains(n.as_str()) {
                continue;
            }
        }
        let mut s = PatientSummary::new(&p, today);
        s.last_visit = last;
        s.next_visit = next;
        patients.push(s);
    }
    Ok(Json(PatientList { patients, truncated }))
}

/// Whether the caller may see this diagnosis: mental-health codes need that category.
fn visible_code(access: &crate::access::Access, code: &Icd10Code) -> bool {
    !code.is_mental_health() || access.sees(Category::MentalHealth)
}

/// The patient's current prediction set: every suggested and known diagnosis with its fused
/// probability, risk band, sources and evidence, and your verdicts so far.
#[utoipa::path(get, path = "/api/v1/patients/{id}/predictions", tag = "doctors", security(("bearer" = [])),
    params(("id" = String, Path, description = "Health ID")), responses(
    (status = 200, body = PredictionSetView),
    (status = 400, body = ErrorBody, description = "`invalid_health_id`"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`, `not_in_care`"),
    (status = 404, body = ErrorBody, description = "`patient_not_found`, `no_prediction_set`")))]
pub async fn get_predictions(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<PredictionSetView>> {
    let patient = health_id(&id)?;
    let access = check_patient_access(&state, &session, &patient, Purpose::ReadPredictions, "predictions").await?;
    let Some(set) = state.store.latest_prediction_set(&patient).await? else {
        return Err(ApiError::new(
            ErrorCode::NoPredictionSet,
            "no prediction set for this patient yet: run `carelens predict` or POST /api/v1/prediction-runs",
        ));
    };
    let mine: Vec<Feedback> =
        state.store.feedback_for(&patient).await?.into_iter().filter(|f| f.doctor == session.0.sub).collect();
    let view = PredictionSetView::new(&set, &mine, |code| {
        code.parse::<Icd10Code>().map(|c| visible_code(&access, &c)).unwrap_or(false)
    });
    Ok(Json(view))
}

fn evidence_keys(sets: &[PredictionSet]) -> impl Iterator<Item = &ObjectKey> {
    sets.iter().flat_map(|s| s.predictions.iter()).flat_map(|d| d.evidence.iter()).filter_map(|e| e.object_key.as_ref())
}

/// A heatmap overlay (PNG) from one of the patient's prediction sets.
#[utoipa::path(get, path = "/api/v1/patients/{id}/evidence/{digest}", tag = "doctors", security(("bearer" = [])),
    params(("id" = String, Path, description = "Health ID"), ("digest" = String, Path, description = "SHA-256 of the PNG, as in a heatmap's `url`")),
    responses(
    (status = 200, description = "the PNG overlay", content_type = "image/png"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`, `not_in_care`"),
    (status = 404, body = ErrorBody, description = "`evidence_not_found`")))]
pub async fn get_evidence(
    State(state): State<AppState>,
    session: Session,
    Path((id, digest)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let patient = health_id(&id)?;
    check_patient_access(&state, &session, &patient, Purpose::ReadPredictions, "evidence").await?;
    let key = ObjectKey::for_sha256(&digest).map_err(|_| ApiError::of(ErrorCode::EvidenceNotFound))?;
    let sets = state.store.prediction_sets(&patient).await?;
    if !evidence_keys(&sets).any(|k| k == &key) {
        return Err(ApiError::of(ErrorCode::EvidenceNotFound));
    }
    let bytes = state.objects.get(&key).await.map_err(|e| match e {
        StoreError::NotFound { .. } => ApiError::of(ErrorCode::EvidenceNotFound),
        other => ApiError::internal(other),
    })?;
    Ok(([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "private, max-age=3600")], bytes))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only this category (`diagnosis`, `observation`, `vaccination`, `allergy`, `procedure`,
    /// `medication`, `mental_health`, `imaging`).
    #[serde(default)]
    pub category: Option<String>,
    /// At most this many entries, newest first (default 500, at most 5000).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Also entries that a correction replaced, each with who corrected it, when and why.
    #[serde(default)]
    pub include_corrected: Option<bool>,
    /// Only entries on or after this day (`YYYY-MM-DD`).
    #[serde(default)]
    pub from: Option<NaiveDate>,
    /// Only entries on or before this day.
    #[serde(default)]
    pub to: Option<NaiveDate>,
}

/// The patient's timeline, newest first: history entries, documents and (for doctors) the
/// versions of the predicted diagnoses, limited to the categories you may see, filterable by
/// category and date.
#[utoipa::path(get, path = "/api/v1/patients/{id}/history", tag = "doctors", security(("bearer" = [])),
    params(("id" = String, Path, description = "Health ID"), HistoryQuery), responses(
    (status = 200, body = Timeline),
    (status = 400, body = ErrorBody, description = "`invalid_health_id`, `invalid_input`"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`, `not_in_care`"),
    (status = 404, body = ErrorBody, description = "`patient_not_found`")))]
pub async fn get_history(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Params(query): Params<HistoryQuery>,
) -> ApiResult<Json<Timeline>> {
    let patient = health_id(&id)?;
    let wanted = match &query.category {
        Some(c) => Some(Category::ALL.into_iter().find(|k| k.as_str() == c).ok_or_else(|| {
            let known: Vec<&str> = Category::ALL.iter().map(|k| k.as_str()).collect();
            ApiError::new(ErrorCode::InvalidInput, format!("category: unknown {c:?}; use one of {}", known.join(", ")))
        })?),
        None => None,
    };
    if let (Some(from), Some(to)) = (query.from, query.to)
        && from > to
    {
        return Err(ApiError::new(ErrorCode::InvalidInput, format!("from: {from} is after to: {to}")));
    }
    let access = check_patient_access(&state, &session, &patient, Purpose::ReadHistory, "history").await?;
    let categories: Vec<Category> =
        access.categories.iter().copied().filter(|c| wanted.is_none_or(|w| w == *c)).collect();
    let filter = HistoryFilter {
        categories: categories.clone(),
        from: query.from,
        to: query.to,
        include_superseded: query.include_corrected.unwrap_or(false),
    };
    let in_range = |d: NaiveDate| filter.from.is_none_or(|f| d >= f) && filter.to.is_none_or(|t| d <= t);
    let mut entries: Vec<TimelineEntry> = Vec::new();
    if !categories.is_empty() {
        entries.extend(state.store.history(&patient, &filter).await?.iter().map(TimelineEntry::new));
        for d in state.store.documents_for(&patient).await? {
            let category = crate::documents::category_of(d.kind);
            if categories.contains(&category) && in_range(d.uploaded_at.date_naive()) {
                entries.push(TimelineEntry::document(&d, category));
            }
        }
        if session.0.role == Role::Doctor && categories.contains(&Category::Diagnosis) {
            for set in state.store.prediction_sets(&patient).await? {
                if in_range(set.created_at.date_naive()) {
                    entries.push(TimelineEntry::prediction_set(&set));
                }
            }
        }
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.date));
    entries.truncate(query.limit.unwrap_or(500).clamp(1, 5000) as usize);
    let hidden = Category::ALL.into_iter().filter(|c| !access.sees(*c)).map(|c| c.as_str().to_string()).collect();
    Ok(Json(Timeline {
        patient: PatientSummary::new(&access.patient, Utc::now().date_naive()),
        entries,
        hidden_categories: hidden,
    }))
}

/// Confirms or rejects a suggested diagnosis of one prediction-set version.
#[utoipa::path(post, path = "/api/v1/patients/{id}/feedback", tag = "doctors", security(("bearer" = [])),
    params(("id" = String, Path, description = "Health ID")), request_body = FeedbackRequest, responses(
    (status = 201, body = FeedbackView),
    (status = 400, body = ErrorBody, description = "`invalid_input`, `malformed_json`"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`, `not_in_care`"),
    (status = 404, body = ErrorBody, description = "`prediction_not_found`"),
    (status = 413, body = ErrorBody, description = "`payload_too_large`")))]
pub async fn post_feedback(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Body(req): Body<FeedbackRequest>,
) -> ApiResult<(StatusCode, Json<FeedbackView>)> {
    let patient = health_id(&id)?;
    let verdict = match req.verdict.as_str() {
        "confirmed" => Verdict::Confirmed,
        "rejected" => Verdict::Rejected,
        other => {
            return Err(ApiError::new(
                ErrorCode::InvalidInput,
                format!("verdict: {other:?} is neither \"confirmed\" nor \"rejected\""),
            ));
        }
    };
    let code: Icd10Code =
        req.code.parse().map_err(|_| ApiError::new(ErrorCode::InvalidInput, "code: not an ICD-10 code"))?;
    let access = check_patient_access(&state, &session, &patient, Purpose::GiveFeedback, "feedback").await?;
    let sets = state.store.prediction_sets(&patient).await?;
    let Some(set) = sets.iter().find(|s| s.version == req.set_version) else {
        return Err(ApiError::new(
            ErrorCode::PredictionNotFound,
            format!("set_version: the patient has no prediction set version {}", req.set_version),
        ));
    };
    if !set.predictions.iter().any(|d| d.code == code) || !visible_code(&access, &code) {
        return Err(ApiError::new(
            ErrorCode::PredictionNotFound,
            format!("code: prediction set version {} has no diagnosis {}", set.version, code.as_str()),
        ));
    }
    let feedback = Feedback {
        id: FeedbackId::random(),
        patient: patient.clone(),
        prediction_set: set.id,
        set_version: set.version,
        code,
        verdict,
        comment: req.comment.map(|c| c.trim().to_string()).filter(|c| !c.is_empty()),
        doctor: session.0.sub,
        at: Utc::now(),
    };
    feedback.validate().map_err(|e| ApiError::new(ErrorCode::InvalidInput, e.to_string()))?;
    state.store.put_feedback(&feedback).await?;
    audit_write(&state, &session, Some(&patient), &format!("feedback/{}", feedback.id), "feedback").await?;
    Ok((StatusCode::CREATED, Json(FeedbackView::from(&feedback))))
}

// ---------------------------------------------------------------------------------------
// ML engineers

fn model_view(registry: &Registry, name: &str) -> Result<Option<ModelView>, carelens_ml::MlError> {
    let versions = registry.versions(name)?;
    let promoted = registry.promoted(name)?;
    let Some(version) = promoted.or_else(|| versions.last().copied()) else { return Ok(None) };
    let m: ModelManifest = registry.load(name, version)?;
    let kind = match m.body {
        ModelBody::Image { .. } => "image",
        ModelBody::Tabular { .. } => "tabular",
        ModelBody::Fusion { .. } => "fusion",
    };
    let validation = m
        .assessment
        .reports
        .iter()
        .enumerate()
        .map(|(i, r)| LabelMetrics {
            label: r.label.clone(),
            examples: r.examples,
            positives: r.positives,
            auroc: r.auroc.as_ref().map(|a| a.estimate),
            auroc_ci: r.auroc.as_ref().map(|a| [a.low, a.high]),
            sensitivity: r.sensitivity,
            specificity: r.specificity,
            brier: r.brier,
            ece: r.ece,
            threshold: m.assessment.thresholds.get(i).copied().unwrap_or(f64::NAN),
        })
        .collect();
    Ok(Some(ModelView {
        name: m.name.clone(),
        version,
        promoted: promoted == Some(version),
        versions,
        kind,
        task: m.task.clone(),
        labels: m.labels.clone(),
        unlearnable: m.unlearnable.clone(),
        train_examples: m.dataset.train_examples,
        validation_examples: m.dataset.validation_examples,
        validation,
        training_seconds: m.training_seconds,
    }))
}

const MODEL_READERS: &[Role] = &[Role::MlEngineer, Role::Admin, Role::Doctor];

/// Registry reads are file IO: off the async workers; any failure is internal.
async fn registry_read<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, carelens_ml::MlError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?.map_err(ApiError::internal)
}

/// Every model in the registry at its promoted (else latest) version, with validation metrics.
#[utoipa::path(get, path = "/api/v1/models", tag = "ml-engineers", security(("bearer" = [])), responses(
    (status = 200, body = ModelList), (status = 403, body = ErrorBody, description = "`forbidden_role`")))]
pub async fn list_models(State(state): State<AppState>, session: Session) -> ApiResult<Json<ModelList>> {
    session.require(&state, MODEL_READERS, "models").await?;
    let registry = Registry::new(&state.models);
    let models = registry_read(move || {
        let mut out = Vec::new();
        for name in registry.names()? {
            out.extend(model_view(&registry, &name)?);
        }
        Ok(out)
    })
    .await?;
    Ok(Json(ModelList { models }))
}

/// One model of the registry.
#[utoipa::path(get, path = "/api/v1/models/{name}", tag = "ml-engineers", security(("bearer" = [])),
    params(("name" = String, Path, description = "model name, e.g. `chest-xray`")), responses(
    (status = 200, body = ModelView),
    (status = 403, body = ErrorBody, description = "`forbidden_role`"),
    (status = 404, body = ErrorBody, description = "`model_not_found`")))]
pub async fn get_model(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> ApiResult<Json<ModelView>> {
    session.require(&state, MODEL_READERS, "models").await?;
    let registry = Registry::new(&state.models);
    let known = {
        let registry = registry.clone();
        registry_read(move || registry.names()).await?
    };
    if !known.contains(&name) {
        return Err(ApiError::new(
            ErrorCode::ModelNotFound,
            format!("no model {name:?} in the registry; GET /api/v1/models lists them"),
        ));
    }
    let view = registry_read(move || model_view(&registry, &name)).await?;
    view.map(Json).ok_or_else(|| ApiError::of(ErrorCode::ModelNotFound))
}

const RUNNERS: &[Role] = &[Role::MlEngineer, Role::Admin];

/// Starts a prediction run in the background; poll its status.
#[utoipa::path(post, path = "/api/v1/prediction-runs", tag = "ml-engineers", security(("bearer" = [])),
    request_body = RunRequestBody, responses(
    (status = 202, body = RunView),
    (status = 400, body = ErrorBody, description = "`invalid_health_id`"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`"),
    (status = 409, body = ErrorBody, description = "`job_running`, `no_models`")))]
pub async fn start_run(
    State(state): State<AppState>,
    session: Session,
    Body(req): Body<RunRequestBody>,
) -> ApiResult<(StatusCode, Json<RunView>)> {
    session.require(&state, RUNNERS, "prediction-runs").await?;
    let patients = match req.patients {
        Some(ids) => Some(ids.iter().map(|s| health_id(s.trim())).collect::<ApiResult<Vec<_>>>()?),
        None => None,
    };
    let job = state.jobs.start(RunRequest { patients, heatmaps: req.heatmaps.unwrap_or(true) }, session.0.sub)?;
    audit_write(&state, &session, None, &format!("prediction-runs/{}", job.id), "prediction run").await?;
    Ok((StatusCode::ACCEPTED, Json(RunView::from(job))))
}

/// Recent prediction runs, newest first.
#[utoipa::path(get, path = "/api/v1/prediction-runs", tag = "ml-engineers", security(("bearer" = [])), responses(
    (status = 200, body = RunList), (status = 403, body = ErrorBody, description = "`forbidden_role`")))]
pub async fn list_runs(State(state): State<AppState>, session: Session) -> ApiResult<Json<RunList>> {
    session.require(&state, RUNNERS, "prediction-runs").await?;
    Ok(Json(RunList { runs: state.jobs.list().into_iter().map(RunView::from).collect() }))
}

/// One prediction run's status and, when done, its report.
#[utoipa::path(get, path = "/api/v1/prediction-runs/{run}", tag = "ml-engineers", security(("bearer" = [])),
    params(("run" = u64, Path, description = "run id")), responses(
    (status = 200, body = RunView),
    (status = 403, body = ErrorBody, description = "`forbidden_role`"),
    (status = 404, body = ErrorBody, description = "`job_not_found`")))]
pub async fn get_run(
    State(state): State<AppState>,
    session: Session,
    Path(run): Path<String>,
) -> ApiResult<Json<RunView>> {
    session.require(&state, RUNNERS, "prediction-runs").await?;
    run.parse::<u64>().ok().and_then(|id| state.jobs.get(id)).map(|j| Json(RunView::from(j))).ok_or_else(|| {
        ApiError::new(
            ErrorCode::JobNotFound,
            format!("no prediction run {run:?} (runs are kept in memory until the server restarts)"),
        )
    })
}

// ---------------------------------------------------------------------------------------
// admins

/// Every user account.
#[utoipa::path(get, path = "/api/v1/users", tag = "admins", security(("bearer" = [])), responses(
    (status = 200, body = UserList), (status = 403, body = ErrorBody, description = "`forbidden_role`")))]
pub async fn list_users(State(state): State<AppState>, session: Session) -> ApiResult<Json<UserList>> {
    session.require(&state, &[Role::Admin], "users").await?;
    let users = state.store.list_users().await?;
    Ok(Json(UserList { users: users.iter().map(UserView::from).collect() }))
}

/// Creates a user account.
#[utoipa::path(post, path = "/api/v1/users", tag = "admins", security(("bearer" = [])), request_body = CreateUserRequest, responses(
    (status = 201, body = UserView),
    (status = 400, body = ErrorBody, description = "`invalid_input`"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`"),
    (status = 409, body = ErrorBody, description = "`username_taken`")))]
pub async fn create_user(
    State(state): State<AppState>,
    session: Session,
    Body(req): Body<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    session.require(&state, &[Role::Admin], "users").await?;
    let role = Role::parse(&req.role).ok_or_else(|| {
        ApiError::new(ErrorCode::InvalidInput, "role: one of admin, doctor, patient, analyst, ml-engineer")
    })?;
    let provider = match req.provider {
        Some(p) => Some(
            p.parse::<ProviderId>()
                .map_err(|_| ApiError::new(ErrorCode::InvalidInput, "provider: not a provider id"))?,
        ),
        None => None,
    };
    let patient = match req.patient {
        Some(p) => Some(health_id(&p)?),
        None => None,
    };
    let password = req.password;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::new(ErrorCode::InvalidInput, e.to_string()))?;
    let user = User {
        id: UserId::random(),
        username: req.username,
        role,
        password_hash: hash,
        provider,
        patient,
        created_at: Utc::now(),
        disabled: false,
        email: req.email,
        signing_keys: vec![],
    };
    user.validate().map_err(|e| ApiError::new(ErrorCode::InvalidInput, e.to_string()))?;
    match state.store.put_user(&user).await {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => return Err(ApiError::of(ErrorCode::UsernameTaken)),
        Err(e) => return Err(e.into()),
    }
    audit_write(&state, &session, None, &format!("users/{}", user.id), "user").await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}
