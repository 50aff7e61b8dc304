//! Booking over HTTP: patients search providers, see openings, book (idempotently), move and
//! cancel their appointments; doctors see their practice's calendar and move appointments
//! along the status flow. The rules are `carelens_booking`'s, the slot claim is the store's.

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use carelens_booking::notify::{outbox_for_booking, outbox_for_cancellation};
use carelens_booking::policy::Policy;
use carelens_booking::search::SearchQuery;
use carelens_booking::{BookingError, appointment_id};
use carelens_domain::{
    Appointment, AppointmentId, AppointmentStatus, Category, ConsentGrant, ConsentId, GeoPoint, Grantee, InsuranceKind,
    Opening, Provider, ProviderId, RatingSummary, Review, ReviewId, Role, Specialty, VisitType,
};
use carelens_store::{StoreError, WriteBatch};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::audit_write;
use crate::auth::Session;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode, invalid};
use crate::extract::{Body, Params};
use crate::state::AppState;

/// The longest accepted idempotency key.
pub const MAX_KEY: usize = 128;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// e.g. `cardiology`
    #[serde(default)]
    pub specialty: Option<String>,
    /// A postcode or city (`10115`, `Köln`); or give `lat` and `lon`
    #[serde(default)]
    pub near: Option<String>,
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
    /// Only providers within this distance (km) of the place
    #[serde(default)]
    pub radius_km: Option<f64>,
    /// `statutory` or `private`; default the signed-in patient's
    #[serde(default)]
    pub insurance: Option<String>,
    /// ISO 639-1, e.g. `tr`
    #[serde(default)]
    pub language: Option<String>,
    /// Minimum rating (shrunk by review count), 1–5
    #[serde(default)]
    pub min_rating: Option<f64>,
    #[serde(default)]
    pub page: Option<usize>,
    #[serde(default)]
    pub per_page: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderHit {
    pub id: String,
    pub name: String,
    pub specialty: String,
    pub street: String,
    pub postcode: String,
    pub city: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_km: Option<f64>,
    /// The earliest opening nobody holds, within the booking horizon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earliest: Option<DateTime<Utc>>,
    /// Mean stars shrunk towards 4.0 by 10 pseudo-reviews (what the ranking uses).
    pub rating: f64,
    pub rating_mean: f64,
    pub reviews: u32,
    pub accepts: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
    /// How hits are ranked.
    pub ranking: &'static str,
    pub hits: Vec<ProviderHit>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpeningWire {
    pub provider: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub visit_type: String,
    /// Insurance kinds it is for; empty: any the provider accepts.
    pub insurance: Vec<String>,
    /// Where it is listed: `carelens`, `doctolib (…)`, `jameda (…)`.
    pub sources: Vec<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowParams {
    /// Default now (openings: now + the minimum notice, so only bookable ones)
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    /// Default 14 days after `from`
    #[serde(default)]
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookRequest {
    pub provider: String,
    /// The opening's start, as listed.
    pub start: DateTime<Utc>,
    /// Record categories the booked practice may see, from now until 30 days after the
    /// appointment (e.g. `["medication", "allergy", "imaging"]`; `mental_health` only when
    /// listed here). Recorded as a consent grant; empty shares nothing.
    #[serde(default)]
    pub share: Vec<String>,
}

/// How long after the appointment a share made at booking lasts.
pub const SHARE_DAYS_AFTER: i64 = 30;

#[derive(Debug, Serialize, ToSchema)]
pub struct BookResponse {
    #[serde(flatten)]
    pub appointment: AppointmentWire,
    /// The categories shared with the practice at booking, and until when.
    pub shared: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_until: Option<DateTime<Utc>>,
    /// The messages this booking schedules (`confirmation`, `reminder_24h`, `reminder_2h`);
    /// empty when the account has no e-mail address.
    pub notifications: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleRequest {
    /// The new opening's start (same provider).
    pub start: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// `confirmed`, `checked_in`, `completed`, `no_show` or `cancelled`.
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppointmentWire {
    pub id: String,
    pub patient: String,
    pub provider: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub visit_type: String,
    pub status: String,
    pub booked_at: DateTime<Utc>,
    pub status_changed_at: DateTime<Utc>,
}

impl From<&Appointment> for AppointmentWire {
    fn from(a: &Appointment) -> Self {
        Self {
            id: a.id.to_string(),
            patient: a.patient.to_string(),
            provider: a.provider.to_string(),
            start: a.start,
            end: a.end,
            visit_type: visit_type(a.visit_type).into(),
            status: a.status.as_str().into(),
            booked_at: a.booked_at,
            status_changed_at: a.status_changed_at,
        }
    }
}

fn visit_type(v: VisitType) -> &'static str {
    match v {
        VisitType::FirstVisit => "first_visit",
        VisitType::FollowUp => "follow_up",
        VisitType::Acute => "acute",
        VisitType::Checkup => "checkup",
        VisitType::Video => "video",
    }
}

fn opening_wire(o: &Opening) -> OpeningWire {
    OpeningWire {
        provider: o.provider.to_string(),
        start: o.start,
        end: o.end,
        visit_type: visit_type(o.visit_type).into(),
        insurance: o.insurance.iter().map(|i| i.as_str().to_owned()).collect(),
        sources: o
            .sources
            .iter()
            .map(|s| match s {
                carelens_domain::Provenance::Own => "carelens".to_owned(),
                carelens_domain::Provenance::Feed { feed, external_id } => format!("{feed} ({external_id})"),
            })
            .collect(),
    }
}

fn provider_id(raw: &str) -> ApiResult<ProviderId> {
    raw.parse().map_err(|_| invalid(format!("`{raw}` is not a provider id")))
}

fn insurance(raw: &str) -> ApiResult<InsuranceKind> {
    match raw {
        "statutory" => Ok(InsuranceKind::Statutory),
        "private" => Ok(InsuranceKind::Private),
        other => Err(invalid(format!("insurance must be `statutory` or `private`, not `{other}`"))),
    }
}

async fn provider(state: &AppState, id: &ProviderId) -> ApiResult<Provider> {
    state.store.get_provider(id).await?.ok_or_else(|| ApiError::of(ErrorCode::ProviderNotFound))
}

/// Searches providers: filters, then ranks by days to the earliest opening + km / 5 + 7 × (5 −
/// shrunk rating).
#[utoipa::path(get, path = "/api/v1/providers/search", tag = "booking", params(SearchParams),
    security(("bearer" = [])), responses(
    (status = 200, body = SearchResponse), (status = 400, body = ErrorBody, description = "`invalid_input`")))]
pub async fn search_providers(
    State(state): State<AppState>,
    session: Session,
    Params(p): Params<SearchParams>,
) -> ApiResult<Json<SearchResponse>> {
    let specialty = match p.specialty.as_deref() {
        None | Some("") => None,
        Some(s) => Some(Specialty::ALL.into_iter().find(|x| x.as_str() == s).ok_or_else(|| {
            let known: Vec<&str> = Specialty::ALL.iter().map(|x| x.as_str()).collect();
            invalid(format!("unknown specialty `{s}`; one of {}", known.join(", ")))
        })?),
    };
    let near = match (p.near.as_deref(), p.lat, p.lon) {
        (Some(place), None, None) if !place.trim().is_empty() => {
            let c = carelens_domain::places::find_place(place)
                .ok_or_else(|| invalid(format!("no place `{place}` known: give a German postcode or city")))?;
            Some(GeoPoint::new(c.lat, c.lon).map_err(|e| invalid(e.to_string()))?)
        }
        (None, Some(lat), Some(lon)) => Some(GeoPoint::new(lat, lon).map_err(|e| invalid(e.to_string()))?),
        (None, None, None) => None,
        _ => return Err(invalid("give either `near` (postcode or city) or both `lat` and `lon`")),
    };
    if p.radius_km.is_some_and(|r| !(r > 0.0 && r <= 1000.0)) {
        return Err(invalid("radius_km must be within (0, 1000]"));
    }
    if p.min_rating.is_some_and(|r| !(1.0..=5.0).contains(&r)) {
        return Err(invalid("min_rating must be within 1..=5"));
    }
    let insurance = match p.insurance.as_deref() {
        Some(i) => Some(insurance(i)?),
        None => match &session.0.patient {
            Some(id) => state.store.get_patient(id).await?.map(|pt| pt.insurance.kind),
            None => None,
        },
    };
    let q = SearchQuery {
        specialty,
        near,
        radius_km: p.radius_km,
        insurance,
        language: p.language,
        min_rating: p.min_rating,
        page: p.page.unwrap_or(0),
        per_page: p.per_page.unwrap_or(20),
    };
    let found = state.directory.search(&state.store, &q, Utc::now()).await?;
    let by_id: std::collections::HashMap<&ProviderId, &Provider> = found.providers.iter().map(|p| (&p.id, p)).collect();
    let result = found.page;
    let hits = result
        .hits
        .iter()
        .filter_map(|h| Some(hit_of(by_id.get(&h.provider)?, h.distance_km, h.earliest, h.rating)))
        .collect();
    Ok(Json(SearchResponse {
        total: result.total,
        page: result.page,
        per_page: result.per_page,
        ranking: "days to the earliest opening + km / 5 + 7 × (5 − rating shrunk towards 4.0 by 10 reviews)",
        hits,
    }))
}

/// A provider's openings that nobody holds.
#[utoipa::path(get, path = "/api/v1/providers/{id}/openings", tag = "booking", params(
    ("id" = String, Path, description = "provider id"), WindowParams), security(("bearer" = [])), responses(
    (status = 200, body = Vec<OpeningWire>), (status = 404, body = ErrorBody, description = "`provider_not_found`")))]
pub async fn list_openings(
    State(state): State<AppState>,
    _session: Session,
    UrlPath(id): UrlPath<String>,
    Params(w): Params<WindowParams>,
) -> ApiResult<Json<Vec<OpeningWire>>> {
    let id = provider_id(&id)?;
    provider(&state, &id).await?;
    // By default only what can still be booked (the minimum notice from now on).
    let from = w.from.unwrap_or_else(|| Utc::now() + Policy::default().min_notice);
    let to = w.to.unwrap_or(from + Duration::days(14));
    if to <= from || to - from > Duration::days(92) {
        return Err(invalid("the window must end after it starts and span at most 92 days"));
    }
    let openings = state.store.openings_for(&id, from, to).await?;
    Ok(Json(openings.iter().map(opening_wire).collect()))
}

fn refused(e: BookingError) -> ApiError {
    match e {
        BookingError::Refused { code, message } => {
            let code = match code {
                "too_short_notice" => ErrorCode::TooShortNotice,
                "beyond_horizon" => ErrorCode::BeyondHorizon,
                "insurance_not_accepted" => ErrorCode::InsuranceNotAccepted,
                "too_many_bookings" => ErrorCode::TooManyBookings,
                _ => ErrorCode::InvalidInput,
            };
            ApiError::new(code, message)
        }
        other => ApiError::internal(other),
    }
}

fn booking_conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict { reason, .. } if reason.contains("idempotency") => {
            ApiError::new(ErrorCode::IdempotencyKeyReused, reason)
        }
        StoreError::Conflict { .. } => ApiError::of(ErrorCode::SlotTaken),
        other => other.into(),
    }
}

/// The opening at `start` that nobody holds, or `slot_taken`.
async fn open_slot(state: &AppState, provider: &ProviderId, start: DateTime<Utc>) -> ApiResult<Opening> {
    let found = state.store.openings_for(provider, start, start + Duration::seconds(1)).await?;
    found.into_iter().find(|o| o.start == start).ok_or_else(|| {
        ApiError::new(ErrorCode::SlotTaken, "this opening is taken or was never offered; list the openings again")
    })
}

/// Books an opening for the signed-in patient. Send an `Idempotency-Key` header (any unique
/// string up to 128 characters): a retried request with the same key books once and gets the
/// same appointment back (200 instead of 201).
#[utoipa::path(post, path = "/api/v1/appointments", tag = "booking", request_body = BookRequest,
    params(("Idempotency-Key" = String, Header, description = "unique per booking attempt; reuse it to retry")),
    security(("bearer" = [])), responses(
    (status = 201, body = BookResponse, description = "booked"),
    (status = 200, body = BookResponse, description = "a retry: booked before with this key"),
    (status = 409, body = ErrorBody, description = "`slot_taken`, `too_short_notice`, `beyond_horizon`, `too_many_bookings`"),
    (status = 422, body = ErrorBody, description = "`insurance_not_accepted`, `idempotency_key_reused`"),
    (status = 400, body = ErrorBody, description = "`missing_idempotency_key`, `invalid_input`")))]
pub async fn book(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Body(req): Body<BookRequest>,
) -> ApiResult<(StatusCode, Json<BookResponse>)> {
    session.require(&state, &[Role::Patient], "appointments").await?;
    let share = parse_categories("share", &req.share)?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY)
        .ok_or_else(|| ApiError::of(ErrorCode::MissingIdempotencyKey))?
        .to_owned();
    let patient_id = session.0.patient.clone().ok_or_else(|| ApiError::of(ErrorCode::ForbiddenRole))?;
    let patient =
        state.store.get_patient(&patient_id).await?.ok_or_else(|| ApiError::of(ErrorCode::PatientNotFound))?;
    let pid = provider_id(&req.provider)?;
    let id = appointment_id(&patient_id, &key);
    // A retry of a booking that went through answers with it, whatever happened since.
    if let Some(stored) = state.store.get_appointment(&id).await? {
        let same = stored.provider == pid && stored.start.timestamp_millis() == req.start.timestamp_millis();
        return if same {
            // Finish what a crash may have left undone (both steps are idempotent).
            let resp = after_booking(&state, &session, &stored, &share, Utc::now()).await?;
            Ok((StatusCode::OK, Json(resp)))
        } else {
            Err(ApiError::of(ErrorCode::IdempotencyKeyReused))
        };
    }
    let prov = provider(&state, &pid).await?;
    let opening = open_slot(&state, &pid, req.start).await?;
    let now = Utc::now();
    let held = state.store.appointments_for_patient(&patient_id).await?;
    Policy::default().check(now, &opening, &prov, patient.insurance.kind, &held).map_err(refused)?;
    let a = carelens_booking::booking_of(id, &patient_id, &opening, now);
    let booked = state.store.book(&a).await.map_err(booking_conflict)?;
    if booked.created {
        audit_write(&state, &session, Some(&patient_id), "appointments", "booked").await?;
        state.directory.touch_openings(state.store.as_ref(), &pid).await?;
    }
    let resp = after_booking(&state, &session, &booked.appointment, &share, now).await?;
    let status = if booked.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(resp)))
}

/// Record categories named in request field `field`, once each, in the order given.
pub(crate) fn parse_categories(field: &str, raw: &[String]) -> ApiResult<Vec<Category>> {
    let mut out = Vec::new();
    for r in raw {
        let c = Category::parse(r).ok_or_else(|| {
            let known: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
            invalid(format!("{field}: unknown category `{r}` (one of {})", known.join(", ")))
        })?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// The consent grant a booking's share records: one per appointment (its id derives from the
/// appointment's), so a retried request writes the same grant.
fn share_grant(a: &Appointment, categories: &[Category], now: DateTime<Utc>) -> ConsentGrant {
    ConsentGrant {
        id: ConsentId::from_u128(a.id.0.as_u128() ^ 0x5348_4152_4500_0000_0000_0000_0000_0000),
        patient: a.patient.clone(),
        grantee: Grantee::Provider(a.provider.clone()),
        categories: categories.to_vec(),
        valid_from: now.min(a.booked_at),
        valid_until: Some(a.end + Duration::days(SHARE_DAYS_AFTER)),
        revoked_at: None,
        emergency_reason: None,
    }
}

/// The booking's side effects, each idempotent: the share grant and the outbox messages to the
/// patient's account address.
async fn after_booking(
    state: &AppState,
    session: &Session,
    a: &Appointment,
    share: &[Category],
    now: DateTime<Utc>,
) -> ApiResult<BookResponse> {
    let mut shared_until = None;
    if !share.is_empty() {
        let grant = share_grant(a, share, now);
        shared_until = grant.valid_until;
        state.store.put_consent(&grant).await?;
        audit_write(state, session, Some(&a.patient), "consents", "shared_at_booking").await?;
    }
    let mut notifications = Vec::new();
    let email = state.store.get_user(&session.0.sub).await?.and_then(|u| u.email);
    if let Some(to) = email
        && !a.status.is_final()
    {
        let msgs = outbox_for_booking(a, &to, a.booked_at).map_err(|e| invalid(e.to_string()))?;
        notifications = msgs.iter().map(|m| m.kind.as_str().to_owned()).collect();
        state.store.enqueue_messages(&msgs).await?;
    }
    Ok(BookResponse {
        appointment: AppointmentWire::from(a),
        shared: share.iter().map(|c| c.as_str().to_owned()).collect(),
        shared_until,
        notifications,
    })
}

/// Where an appointment's messages go: the address its earlier messages went to, else the
/// signed-in patient's.
async fn recipient(state: &AppState, session: &Session, a: &Appointment) -> ApiResult<Option<String>> {
    if let Some(m) = state.store.messages_for(&a.id.into()).await?.into_iter().next() {
        return Ok(Some(m.to));
    }
    if session.0.patient.as_ref() == Some(&a.patient) {
        return Ok(state.store.get_user(&session.0.sub).await?.and_then(|u| u.email));
    }
    Ok(None)
}

fn appointment_id_of(raw: &str) -> ApiResult<AppointmentId> {
    raw.parse().map_err(|_| invalid(format!("`{raw}` is not an appointment id")))
}

/// The appointment, if the caller may act on it: its patient, or a doctor of its provider.
async fn own_appointment(state: &AppState, session: &Session, raw: &str) -> ApiResult<Appointment> {
    let id = appointment_id_of(raw)?;
    let a = state.store.get_appointment(&id).await?.ok_or_else(|| ApiError::of(ErrorCode::AppointmentNotFound))?;
    let mine = match session.0.role {
        Role::Patient => session.0.patient.as_ref() == Some(&a.patient),
        Role::Doctor => session.0.provider.as_ref() == Some(&a.provider),
        _ => false,
    };
    if mine {
        Ok(a)
    } else {
        crate::access::audit_denied(state, session, Some(&a.patient), "appointments", "not_yours").await;
        // Indistinguishable from an id that does not exist.
        Err(ApiError::of(ErrorCode::AppointmentNotFound))
    }
}

/// Moves the signed-in patient's appointment to another opening of the same provider: the
/// new slot is claimed and the old one freed in one atomic write.
#[utoipa::path(post, path = "/api/v1/appointments/{id}/reschedule", tag = "booking", request_body = RescheduleRequest,
    params(("id" = String, Path, description = "appointment id")), security(("bearer" = [])), responses(
    (status = 200, body = AppointmentWire),
    (status = 404, body = ErrorBody, description = "`appointment_not_found`"),
    (status = 409, body = ErrorBody, description = "`slot_taken`, `too_short_notice`, `beyond_horizon`, `not_movable`")))]
pub async fn reschedule(
    State(state): State<AppState>,
    session: Session,
    UrlPath(id): UrlPath<String>,
    Body(req): Body<RescheduleRequest>,
) -> ApiResult<Json<AppointmentWire>> {
    session.require(&state, &[Role::Patient], "appointments").await?;
    let a = own_appointment(&state, &session, &id).await?;
    let prov = provider(&state, &a.provider).await?;
    let opening = open_slot(&state, &a.provider, req.start).await?;
    let patient = state.store.get_patient(&a.patient).await?.ok_or_else(|| ApiError::of(ErrorCode::PatientNotFound))?;
    let others: Vec<Appointment> =
        state.store.appointments_for_patient(&a.patient).await?.into_iter().filter(|x| x.id != a.id).collect();
    Policy::default().check(Utc::now(), &opening, &prov, patient.insurance.kind, &others).map_err(refused)?;
    let moved = state.store.reschedule(&a.id, opening.start, opening.end).await.map_err(|e| match e {
        StoreError::Conflict { reason, .. } if reason.contains("only booked") => {
            ApiError::new(ErrorCode::NotMovable, reason)
        }
        other => booking_conflict(other),
    })?;
    audit_write(&state, &session, Some(&a.patient), "appointments", "rescheduled").await?;
    state.directory.touch_openings(state.store.as_ref(), &a.provider).await?;
    // The old time's pending reminders go; the new time gets its own.
    if let Some(to) = recipient(&state, &session, &a).await? {
        state.store.cancel_messages(&a.id.into()).await?;
        let msgs = outbox_for_booking(&moved, &to, Utc::now()).map_err(|e| invalid(e.to_string()))?;
        state.store.enqueue_messages(&msgs).await?;
    }
    Ok(Json(AppointmentWire::from(&moved)))
}

/// Moves an appointment along the status flow: patients may cancel theirs; doctors may
/// confirm, check in, complete, mark no-show or cancel their practice's.
#[utoipa::path(post, path = "/api/v1/appointments/{id}/status", tag = "booking", request_body = StatusRequest,
    params(("id" = String, Path, description = "appointment id")), security(("bearer" = [])), responses(
    (status = 200, body = AppointmentWire),
    (status = 404, body = ErrorBody, description = "`appointment_not_found`"),
    (status = 409, body = ErrorBody, description = "`bad_transition`")))]
pub async fn set_status(
    State(state): State<AppState>,
    session: Session,
    UrlPath(id): UrlPath<String>,
    Body(req): Body<StatusRequest>,
) -> ApiResult<Json<AppointmentWire>> {
    session.require(&state, &[Role::Patient, Role::Doctor], "appointments").await?;
    let status =
        AppointmentStatus::parse(&req.status).ok_or_else(|| invalid(format!("unknown status `{}`", req.status)))?;
    if session.0.role == Role::Patient && status != AppointmentStatus::Cancelled {
        return Err(ApiError::new(ErrorCode::ForbiddenRole, "patients may only cancel their appointments"));
    }
    let a = own_appointment(&state, &session, &id).await?;
    let updated = state.store.set_appointment_status(&a.id, status, Utc::now()).await.map_err(|e| match e {
        StoreError::Invalid { source, .. } => ApiError::new(ErrorCode::BadTransition, source.to_string()),
        other => other.into(),
    })?;
    audit_write(&state, &session, Some(&a.patient), "appointments", status.as_str()).await?;
    if updated.status == AppointmentStatus::Cancelled {
        state.directory.touch_openings(state.store.as_ref(), &a.provider).await?;
    }
    if updated.status.is_final() {
        // Cancelled, completed or no-show: no more reminders; a cancellation is announced.
        let to = recipient(&state, &session, &a).await?;
        state.store.cancel_messages(&a.id.into()).await?;
        if let Some(to) = to
            && status == AppointmentStatus::Cancelled
        {
            let m = outbox_for_cancellation(&updated, &to, Utc::now()).map_err(|e| invalid(e.to_string()))?;
            state.store.enqueue_messages(&[m]).await?;
        }
    }
    Ok(Json(AppointmentWire::from(&updated)))
}

/// The signed-in patient's appointments, by start.
#[utoipa::path(get, path = "/api/v1/appointments/mine", tag = "booking", security(("bearer" = [])), responses(
    (status = 200, body = Vec<AppointmentWire>), (status = 403, body = ErrorBody, description = "`forbidden_role`")))]
pub async fn my_appointments(State(state): State<AppState>, session: Session) -> ApiResult<Json<Vec<AppointmentWire>>> {
    session.require(&state, &[Role::Patient], "appointments").await?;
    let patient = session.0.patient.clone().ok_or_else(|| ApiError::of(ErrorCode::ForbiddenRole))?;
    let list = state.store.appointments_for_patient(&patient).await?;
    Ok(Json(list.iter().map(AppointmentWire::from).collect()))
}

/// The signed-in doctor's practice calendar: appointments starting in the window, by start.
#[utoipa::path(get, path = "/api/v1/calendar", tag = "booking", params(WindowParams), security(("bearer" = [])),
    responses((status = 200, body = Vec<AppointmentWire>), (status = 403, body = ErrorBody, description = "`forbidden_role`")))]
pub async fn calendar(
    State(state): State<AppState>,
    session: Session,
    Params(w): Params<WindowParams>,
) -> ApiResult<Json<Vec<AppointmentWire>>> {
    session.require(&state, &[Role::Doctor], "calendar").await?;
    let provider = session.0.provider.clone().ok_or_else(|| ApiError::of(ErrorCode::ForbiddenRole))?;
    let from = w.from.unwrap_or_else(|| Utc::now() - Duration::days(1));
    let to = w.to.unwrap_or(from + Duration::days(14));
    if to <= from || to - from > Duration::days(92) {
        return Err(invalid("the window must end after it starts and span at most 92 days"));
    }
    let list = state.store.appointments_for_provider(&provider, from, to).await?;
    Ok(Json(list.iter().map(AppointmentWire::from).collect()))
}

/// The longest review text.
pub const MAX_REVIEW: usize = 2000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// 1–5
    pub stars: u8,
    /// At most 2000 characters; shown to other patients without the reviewer's identity.
    #[serde(default)]
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewWire {
    pub stars: u8,
    pub text: String,
    pub date: chrono::NaiveDate,
    /// The reviewer had a completed appointment here (always true for reviews written in carelens).
    pub verified_visit: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewsResponse {
    pub rating_mean: f64,
    pub reviews: u32,
    /// Newest first; never who wrote them.
    pub items: Vec<ReviewWire>,
}

/// One review per patient and practice: writing again replaces it.
fn review_id(patient: &carelens_domain::HealthId, provider: &ProviderId) -> ReviewId {
    let AppointmentId(u) = appointment_id(patient, &format!("review\0{provider}"));
    ReviewId(u)
}

fn hit_of(p: &Provider, distance_km: Option<f64>, earliest: Option<DateTime<Utc>>, rating: f64) -> ProviderHit {
    ProviderHit {
        id: p.id.to_string(),
        name: p.name.clone(),
        specialty: p.specialty.as_str().into(),
        street: p.address.street.clone(),
        postcode: p.address.postcode.clone(),
        city: p.address.city.clone(),
        distance_km: distance_km.map(|d| (d * 10.0).round() / 10.0),
        earliest,
        rating: (rating * 100.0).round() / 100.0,
        rating_mean: p.rating.mean,
        reviews: p.rating.count,
        accepts: p.accepts.iter().map(|k| k.as_str().to_owned()).collect(),
    }
}

/// One practice: name, address, specialty, insurance, rating and its earliest free opening.
#[utoipa::path(get, path = "/api/v1/providers/{id}", tag = "booking",
    params(("id" = String, Path, description = "provider id")), security(("bearer" = [])), responses(
    (status = 200, body = ProviderHit), (status = 404, body = ErrorBody, description = "`provider_not_found`")))]
pub async fn get_provider(
    State(state): State<AppState>,
    _session: Session,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<ProviderHit>> {
    let p = provider(&state, &provider_id(&id)?).await?;
    let now = Utc::now();
    let policy = Policy::default();
    let earliest = state.store.openings_for(&p.id, now + policy.min_notice, now + policy.horizon).await?;
    let rating = carelens_booking::search::shrunk_rating(p.rating.mean, p.rating.count);
    Ok(Json(hit_of(&p, None, earliest.first().map(|o| o.start), rating)))
}

/// A practice's reviews, newest first, without the reviewers' identities.
#[utoipa::path(get, path = "/api/v1/providers/{id}/reviews", tag = "booking",
    params(("id" = String, Path, description = "provider id")), security(("bearer" = [])), responses(
    (status = 200, body = ReviewsResponse), (status = 404, body = ErrorBody, description = "`provider_not_found`")))]
pub async fn list_reviews(
    State(state): State<AppState>,
    session: Session,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<ReviewsResponse>> {
    session.require(&state, &[Role::Patient, Role::Doctor, Role::Admin], "reviews").await?;
    let p = provider(&state, &provider_id(&id)?).await?;
    let mut items = state.store.reviews_for(&p.id).await?;
    items.sort_by_key(|r| std::cmp::Reverse(r.date));
    Ok(Json(ReviewsResponse {
        rating_mean: p.rating.mean,
        reviews: p.rating.count,
        items: items
            .into_iter()
            .map(|r| ReviewWire { stars: r.stars, text: r.text, date: r.date, verified_visit: r.verified_visit })
            .collect(),
    }))
}

/// Reviews a practice: only patients with a completed appointment there; a second review by
/// the same patient replaces the first. The practice's rating is recomputed from its reviews.
#[utoipa::path(post, path = "/api/v1/providers/{id}/reviews", tag = "booking", request_body = ReviewRequest,
    params(("id" = String, Path, description = "provider id")), security(("bearer" = [])), responses(
    (status = 201, body = ReviewsResponse),
    (status = 403, body = ErrorBody, description = "`review_needs_visit`, `forbidden_role`"),
    (status = 400, body = ErrorBody, description = "`invalid_input`")))]
pub async fn post_review(
    State(state): State<AppState>,
    session: Session,
    UrlPath(id): UrlPath<String>,
    Body(req): Body<ReviewRequest>,
) -> ApiResult<(StatusCode, Json<ReviewsResponse>)> {
    session.require(&state, &[Role::Patient], "reviews").await?;
    let patient = session.0.patient.clone().ok_or_else(|| ApiError::of(ErrorCode::ForbiddenRole))?;
    let mut p = provider(&state, &provider_id(&id)?).await?;
    if !(1..=5).contains(&req.stars) {
        return Err(invalid("stars: 1 to 5"));
    }
    if req.text.chars().count() > MAX_REVIEW {
        return Err(invalid(format!("text: at most {MAX_REVIEW} characters")));
    }
    let visited = state
        .store
        .appointments_for_patient(&patient)
        .await?
        .iter()
        .any(|a| a.provider == p.id && a.status == AppointmentStatus::Completed);
    if !visited {
        crate::access::audit_denied(&state, &session, Some(&patient), "reviews", "no_completed_visit").await;
        return Err(ApiError::of(ErrorCode::ReviewNeedsVisit));
    }
    let review = Review {
        id: review_id(&patient, &p.id),
        provider: p.id.clone(),
        patient: patient.clone(),
        stars: req.stars,
        text: req.text.trim().to_owned(),
        date: Utc::now().date_naive(),
        verified_visit: true,
    };
    state.store.apply(WriteBatch { reviews: vec![review], ..WriteBatch::default() }).await?;
    let all = state.store.reviews_for(&p.id).await?;
    let count = u32::try_from(all.len()).unwrap_or(u32::MAX);
    let mean =
        if all.is_empty() { 0.0 } else { all.iter().map(|r| f64::from(r.stars)).sum::<f64>() / all.len() as f64 };
    p.rating = RatingSummary { count, mean: (mean * 100.0).round() / 100.0 };
    state.store.apply(WriteBatch { providers: vec![p.clone()], ..WriteBatch::default() }).await?;
    state.directory.touch_provider(&p);
    audit_write(&state, &session, Some(&patient), "reviews", "reviewed").await?;
    let mut all = all;
    all.sort_by_key(|r| std::cmp::Reverse(r.date));
    Ok((
        StatusCode::CREATED,
        Json(ReviewsResponse {
            rating_mean: p.rating.mean,
            reviews: p.rating.count,
            items: all
                .into_iter()
                .map(|r| ReviewWire { stars: r.stars, text: r.text, date: r.date, verified_visit: r.verified_visit })
                .collect(),
        }),
    ))
}
