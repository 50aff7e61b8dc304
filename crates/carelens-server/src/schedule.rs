//! A practice's own schedule over HTTP: its doctors list the weekly opening rules, add one, or
//! end one, and enter closures (vacations, training days) or withdraw them (neither is ever
//! deleted, so past openings stay explainable). Every change
//! recomputes the practice's own openings and merges them with the feeds' last good listings
//! at once (the availability pipeline without feeds), so patients see it in the next search.

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use carelens_booking::policy::Policy;
use carelens_domain::{ClosureId, PracticeClosure, ProviderId, Role, RuleId, ScheduleRule, VisitType};
use carelens_store::WriteBatch;
use chrono::{NaiveDate, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::audit_write;
use crate::auth::Session;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode, invalid};
use crate::extract::Body;
use crate::state::AppState;

const WEEKDAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];
const VISIT_TYPES: [(&str, VisitType); 5] = [
    ("first_visit", VisitType::FirstVisit),
    ("follow_up", VisitType::FollowUp),
    ("acute", VisitType::Acute),
    ("checkup", VisitType::Checkup),
    ("video", VisitType::Video),
];

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleWire {
    pub id: String,
    /// `mon` … `sun`
    pub weekday: String,
    /// Local time (Europe/Berlin), `HH:MM`
    pub start: String,
    pub end: String,
    pub slot_minutes: u16,
    pub visit_type: String,
    pub valid_from: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<NaiveDate>,
}

fn wire(r: &ScheduleRule) -> RuleWire {
    RuleWire {
        id: r.id.to_string(),
        weekday: WEEKDAYS.iter().find(|(_, d)| *d == r.weekday).map_or("?", |(n, _)| n).into(),
        start: r.start.format("%H:%M").to_string(),
        end: r.end.format("%H:%M").to_string(),
        slot_minutes: r.slot_minutes,
        visit_type: VISIT_TYPES.iter().find(|(_, v)| *v == r.visit_type).map_or("?", |(n, _)| n).into(),
        valid_from: r.valid_from,
        valid_until: r.valid_until,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleResponse {
    pub rules: Vec<RuleWire>,
    /// The practice's bookable openings within the booking horizon after the change.
    pub openings: usize,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    /// `mon` … `sun`
    pub weekday: String,
    /// Local time (Europe/Berlin), `HH:MM`
    pub start: String,
    pub end: String,
    /// 5 to 240
    pub slot_minutes: u16,
    /// `first_visit`, `follow_up`, `acute`, `checkup` or `video`; default `follow_up`
    #[serde(default)]
    pub visit_type: Option<String>,
    /// Default today
    #[serde(default)]
    pub valid_from: Option<NaiveDate>,
    #[serde(default)]
    pub valid_until: Option<NaiveDate>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndRule {
    /// The last day the rule offers openings.
    pub valid_until: NaiveDate,
}

fn time(field: &str, raw: &str) -> ApiResult<NaiveTime> {
    NaiveTime::parse_from_str(raw, "%H:%M").map_err(|_| invalid(format!("{field}: `{raw}` is not a time like 08:30")))
}

async fn practice(state: &AppState, session: &Session) -> ApiResult<ProviderId> {
    session.require(state, &[Role::Doctor], "schedule").await?;
    session.0.provider.clone().ok_or_else(|| ApiError::new(ErrorCode::ForbiddenRole, "this account has no practice"))
}

/// Recomputes the own openings and the merge, then answers with the practice's rules.
async fn respond(state: &AppState, provider: &ProviderId) -> ApiResult<ScheduleResponse> {
    let now = Utc::now();
    let policy = Policy::default();
    crate::availability::refresh(state.store.as_ref(), vec![], now, policy.horizon).await?;
    state.directory.invalidate();
    let openings = state.store.openings_for(provider, now, now + policy.horizon).await?.len();
    Ok(ScheduleResponse { rules: rules(state, provider).await?, openings })
}

async fn rules(state: &AppState, provider: &ProviderId) -> ApiResult<Vec<RuleWire>> {
    let mut rules = state.store.schedule_rules_for(provider).await?;
    rules.sort_by_key(|r| (r.weekday.num_days_from_monday(), r.start, r.valid_from));
    Ok(rules.iter().map(wire).collect())
}

/// The signed-in doctor's practice schedule: its weekly rules, by weekday and time.
#[utoipa::path(get, path = "/api/v1/schedule/rules", tag = "booking", security(("bearer" = [])), responses(
    (status = 200, body = Vec<RuleWire>), (status = 403, body = ErrorBody, description = "`forbidden_role`")))]
pub async fn list_rules(State(state): State<AppState>, session: Session) -> ApiResult<Json<Vec<RuleWire>>> {
    let provider = practice(&state, &session).await?;
    Ok(Json(rules(&state, &provider).await?))
}

/// Adds a weekly rule to the signed-in doctor's practice; its openings are offered at once.
#[utoipa::path(post, path = "/api/v1/schedule/rules", tag = "booking", request_body = NewRule,
    security(("bearer" = [])), responses(
    (status = 201, body = ScheduleResponse), (status = 400, body = ErrorBody, description = "`invalid_input`"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`")))]
pub async fn add_rule(
    State(state): State<AppState>,
    session: Session,
    Body(req): Body<NewRule>,
) -> ApiResult<(StatusCode, Json<ScheduleResponse>)> {
    let provider = practice(&state, &session).await?;
    let weekday =
        WEEKDAYS.iter().find(|(n, _)| n.eq_ignore_ascii_case(req.weekday.trim())).map(|(_, d)| *d).ok_or_else(
            || invalid(format!("weekday: `{}` is not one of mon, tue, wed, thu, fri, sat, sun", req.weekday)),
        )?;
    let visit_type = match req.visit_type.as_deref() {
        None => VisitType::FollowUp,
        Some(v) => VISIT_TYPES.iter().find(|(n, _)| *n == v).map(|(_, t)| *t).ok_or_else(|| {
            invalid(format!("visit_type: `{v}` is not one of first_visit, follow_up, acute, checkup, video"))
        })?,
    };
    let rule = ScheduleRule {
        id: RuleId::random(),
        provider: provider.clone(),
        weekday,
        start: time("start", &req.start)?,
        end: time("end", &req.end)?,
        slot_minutes: req.slot_minutes,
        visit_type,
        valid_from: req.valid_from.unwrap_or_else(|| Utc::now().date_naive()),
        valid_until: req.valid_until,
    };
    state.store.apply(WriteBatch { schedule_rules: vec![rule], ..WriteBatch::default() }).await?;
    audit_write(&state, &session, None, "schedule", "rule_added").await?;
    Ok((StatusCode::CREATED, Json(respond(&state, &provider).await?)))
}

/// Ends one of the practice's rules after `valid_until` (openings after it are withdrawn;
/// booked appointments stay).
#[utoipa::path(post, path = "/api/v1/schedule/rules/{id}/end", tag = "booking", request_body = EndRule,
    params(("id" = String, Path, description = "rule id")), security(("bearer" = [])), responses(
    (status = 200, body = ScheduleResponse), (status = 404, body = ErrorBody, description = "`rule_not_found`"),
    (status = 400, body = ErrorBody, description = "`invalid_input`")))]
pub async fn end_rule(
    State(state): State<AppState>,
    session: Session,
    UrlPath(id): UrlPath<String>,
    Body(req): Body<EndRule>,
) -> ApiResult<Json<ScheduleResponse>> {
    let provider = practice(&state, &session).await?;
    let id: RuleId = id.parse().map_err(|_| invalid(format!("`{id}` is not a rule id")))?;
    // Another practice's rule is indistinguishable from none.
    let mut rule = state
        .store
        .schedule_rules_for(&provider)
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ApiError::of(ErrorCode::RuleNotFound))?;
    rule.valid_until = Some(req.valid_until);
    state.store.apply(WriteBatch { schedule_rules: vec![rule], ..WriteBatch::default() }).await?;
    audit_write(&state, &session, None, "schedule", "rule_ended").await?;
    Ok(Json(respond(&state, &provider).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClosureWire {
    pub id: String,
    /// First and last closed day (inclusive)
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub reason: String,
    pub withdrawn: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClosuresResponse {
    pub closures: Vec<ClosureWire>,
    /// The practice's bookable openings within the booking horizon after the change.
    pub openings: usize,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClosure {
    pub from: NaiveDate,
    /// Default: `from` (one day)
    #[serde(default)]
    pub to: Option<NaiveDate>,
    /// Shown to nobody but the practice, e.g. `Urlaub`; at most 200 characters
    #[serde(default)]
    pub reason: String,
}

async fn closures(state: &AppState, provider: &ProviderId) -> ApiResult<Vec<ClosureWire>> {
    Ok(state
        .store
        .closures_for(provider)
        .await?
        .into_iter()
        .map(|c| ClosureWire { id: c.id.to_string(), from: c.from, to: c.to, reason: c.reason, withdrawn: c.withdrawn })
        .collect())
}

async fn closures_response(state: &AppState, provider: &ProviderId) -> ApiResult<ClosuresResponse> {
    let openings = respond(state, provider).await?.openings;
    Ok(ClosuresResponse { closures: closures(state, provider).await?, openings })
}

/// The signed-in doctor's practice closures (withdrawn ones too), by first day.
#[utoipa::path(get, path = "/api/v1/schedule/closures", tag = "booking", security(("bearer" = [])), responses(
    (status = 200, body = Vec<ClosureWire>), (status = 403, body = ErrorBody, description = "`forbidden_role`")))]
pub async fn list_closures(State(state): State<AppState>, session: Session) -> ApiResult<Json<Vec<ClosureWire>>> {
    let provider = practice(&state, &session).await?;
    Ok(Json(closures(&state, &provider).await?))
}

/// Closes the practice from `from` to `to`: its own openings on those days are withdrawn at
/// once (booked appointments stay; the practice reschedules or cancels them).
#[utoipa::path(post, path = "/api/v1/schedule/closures", tag = "booking", request_body = NewClosure,
    security(("bearer" = [])), responses(
    (status = 201, body = ClosuresResponse), (status = 400, body = ErrorBody, description = "`invalid_input`"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`")))]
pub async fn add_closure(
    State(state): State<AppState>,
    session: Session,
    Body(req): Body<NewClosure>,
) -> ApiResult<(StatusCode, Json<ClosuresResponse>)> {
    let provider = practice(&state, &session).await?;
    let closure = PracticeClosure {
        id: ClosureId::random(),
        provider: provider.clone(),
        from: req.from,
        to: req.to.unwrap_or(req.from),
        reason: req.reason.trim().to_owned(),
        withdrawn: false,
    };
    state.store.apply(WriteBatch { closures: vec![closure], ..WriteBatch::default() }).await?;
    audit_write(&state, &session, None, "schedule", "closure_added").await?;
    Ok((StatusCode::CREATED, Json(closures_response(&state, &provider).await?)))
}

/// Withdraws a closure entered by mistake: its days offer openings again.
#[utoipa::path(post, path = "/api/v1/schedule/closures/{id}/withdraw", tag = "booking",
    params(("id" = String, Path, description = "closure id")), security(("bearer" = [])), responses(
    (status = 200, body = ClosuresResponse), (status = 404, body = ErrorBody, description = "`closure_not_found`")))]
pub async fn withdraw_closure(
    State(state): State<AppState>,
    session: Session,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<ClosuresResponse>> {
    let provider = practice(&state, &session).await?;
    let id: ClosureId = id.parse().map_err(|_| invalid(format!("`{id}` is not a closure id")))?;
    let mut closure = state
        .store
        .closures_for(&provider)
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| ApiError::of(ErrorCode::ClosureNotFound))?;
    closure.withdrawn = true;
    state.store.apply(WriteBatch { closures: vec![closure], ..WriteBatch::default() }).await?;
    audit_write(&state, &session, None, "schedule", "closure_withdrawn").await?;
    Ok(Json(closures_response(&state, &provider).await?))
}
