//! Patients keep their consents: list them, grant a practice (or a caregiver's account) some
//! categories for a while, and
//! revoke a grant with immediate effect (every read checks the grants in force at that
//! moment). Doctors may take break-the-glass access to a patient in an emergency: a reason is
//! mandatory, it lasts [`EMERGENCY_HOURS`], and it is audited as `break_glass`, as is every
//! read under it, so it stands out in the patient's access log.

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use carelens_domain::{
    CareTeam, CareTeamId, Category, ConsentGrant, ConsentId, EMERGENCY_HOURS, Grantee, HealthId, MAX_EMERGENCY_REASON,
    MIN_EMERGENCY_REASON, ProviderId, Role,
};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::{audit_break_glass, audit_write, health_id};
use crate::auth::Session;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode, invalid};
use crate::extract::Body;
use crate::state::AppState;

/// The longest a patient's grant may run.
pub const MAX_GRANT_DAYS: i64 = 2 * 366;

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentWire {
    pub id: String,
    /// The practice (provider id) the grant is for.
    pub provider: Option<String>,
    /// Its name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
    pub categories: Vec<String>,
    /// The caregiver's user name, for a grant to a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caregiver: Option<String>,
    pub valid_from: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// In force now.
    pub active: bool,
    /// Break-the-glass access a doctor took, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emergency_reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// The practice's provider id (give this or `caregiver`).
    #[serde(default)]
    pub provider: Option<String>,
    /// A caregiver's or proxy's user name: a parent, a relative (give this or `provider`).
    #[serde(default)]
    pub caregiver: Option<String>,
    /// A care team's id (from `GET /api/v1/care-teams`): every practice in it (give this,
    /// `provider` or `caregiver`).
    #[serde(default)]
    pub care_team: Option<String>,
    /// e.g. `["diagnosis", "medication", "allergy"]`; `mental_health` only when listed
    pub categories: Vec<String>,
    /// Default: one year from now; at most two years
    #[serde(default)]
    pub valid_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmergencyRequest {
    /// Why, in 10 to 500 characters (shown to the patient and kept in the audit log).
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmergencyResponse {
    pub patient: String,
    pub valid_until: DateTime<Utc>,
    pub categories: Vec<String>,
}

fn own_patient(session: &Session) -> ApiResult<HealthId> {
    match (session.0.role, &session.0.patient) {
        (Role::Patient, Some(p)) => Ok(p.clone()),
        _ => Err(ApiError::new(ErrorCode::ForbiddenRole, "only patients keep consents, for their own record")),
    }
}

async fn wire(state: &AppState, g: &ConsentGrant, now: DateTime<Utc>) -> ApiResult<ConsentWire> {
    let (provider, provider_name) = match &g.grantee {
        Grantee::Provider(p) => (Some(p.to_string()), state.store.get_provider(p).await?.map(|p| p.name)),
        Grantee::CareTeam(t) => {
            let team = match t.parse::<CareTeamId>() {
                Ok(id) => state.store.get_care_team(&id).await?,
                Err(_) => None,
            };
            (None, Some(team.map_or_else(|| format!("care team {t}"), |t| format!("{} (care team)", t.name))))
        }
        Grantee::Person(u) => (None, state.store.get_user(u).await?.map(|u| format!("{} (caregiver)", u.username))),
    };
    let caregiver = match &g.grantee {
        Grantee::Person(u) => state.store.get_user(u).await?.map(|u| u.username),
        _ => None,
    };
    Ok(ConsentWire {
        id: g.id.to_string(),
        provider,
        provider_name,
        categories: g.categories.iter().map(|c| c.as_str().to_owned()).collect(),
        caregiver,
        valid_from: g.valid_from,
        valid_until: g.valid_until,
        revoked_at: g.revoked_at,
        active: g.is_active_at(now),
        emergency_reason: g.emergency_reason.clone(),
    })
}

/// The signed-in patient's consents (revoked and expired ones too), newest first.
#[utoipa::path(get, path = "/api/v1/me/consents", tag = "consent", security(("bearer" = [])), responses(
    (status = 200, body = Vec<ConsentWire>), (status = 403, body = ErrorBody, description = "`forbidden_role`")))]
pub async fn list(State(state): State<AppState>, session: Session) -> ApiResult<Json<Vec<ConsentWire>>> {
    let patient = own_patient(&session)?;
    let now = Utc::now();
    let mut grants = state.store.consents_for(&patient).await?;
    grants.sort_by_key(|g| std::cmp::Reverse(g.valid_from));
    let mut out = Vec::with_capacity(grants.len());
    for g in &grants {
        out.push(wire(&state, g, now).await?);
    }
    Ok(Json(out))
}

/// Grants a practice the listed categories of the signed-in patient's record until
/// `valid_until`.
#[utoipa::path(post, path = "/api/v1/me/consents", tag = "consent", request_body = GrantRequest,
    security(("bearer" = [])), responses(
    (status = 201, body = ConsentWire), (status = 400, body = ErrorBody, description = "`invalid_input`"),
    (status = 404, body = ErrorBody, description = "`provider_not_found`")))]
pub async fn grant(
    State(state): State<AppState>,
    session: Session,
    Body(req): Body<GrantRequest>,
) -> ApiResult<(StatusCode, Json<ConsentWire>)> {
    let patient = own_patient(&session)?;
    let grantee = match (&req.provider, &req.caregiver, &req.care_team) {
        (None, None, Some(raw)) => {
            let id: CareTeamId =
                raw.parse().map_err(|_| invalid(format!("care_team: `{raw}` is not a care team id")))?;
            if state.store.get_care_team(&id).await?.is_none() {
                return Err(invalid(format!("care_team: no care team `{raw}`")));
            }
            Grantee::CareTeam(id.to_string())
        }
        (Some(raw), None, None) => {
            let provider: ProviderId = raw.parse().map_err(|_| invalid(format!("`{raw}` is not a provider id")))?;
            if state.store.get_provider(&provider).await?.is_none() {
                return Err(ApiError::of(ErrorCode::ProviderNotFound));
            }
            Grantee::Provider(provider)
        }
        (None, Some(name), None) => {
            // Only another patient account can be a caregiver: staff see records through
            // their practice, never as a person.
            let user = state
                .store
                .user_by_name(name.trim())
                .await?
                .filter(|u| u.role == Role::Patient && !u.disabled && u.id != session.0.sub)
                .ok_or_else(|| invalid(format!("caregiver: no patient account `{name}` (other than yours)")))?;
            Grantee::Person(user.id)
        }
        _ => {
            return Err(invalid(
                "give one of `provider` (a practice), `care_team` (a team of practices) or `caregiver` (a user name)",
            ));
        }
    };
    let categories = crate::booking::parse_categories("categories", &req.categories)?;
    let now = Utc::now();
    let until = req.valid_until.unwrap_or(now + Duration::days(365));
    if until <= now || until > now + Duration::days(MAX_GRANT_DAYS) {
        return Err(invalid("valid_until: in the future, at most two years from now"));
    }
    let g = ConsentGrant {
        id: ConsentId::random(),
        patient: patient.clone(),
        grantee,
        categories,
        valid_from: now,
        valid_until: Some(until),
        revoked_at: None,
        emergency_reason: None,
    };
    state.store.put_consent(&g).await?;
    audit_write(&state, &session, Some(&patient), &format!("consents/{}", g.id), "granted").await?;
    Ok((StatusCode::CREATED, Json(wire(&state, &g, now).await?)))
}

/// Revokes one of the signed-in patient's grants (emergency access too), at once.
#[utoipa::path(post, path = "/api/v1/me/consents/{id}/revoke", tag = "consent",
    params(("id" = String, Path, description = "consent id")), security(("bearer" = [])), responses(
    (status = 200, body = ConsentWire), (status = 404, body = ErrorBody, description = "`consent_not_found`")))]
pub async fn revoke(
    State(state): State<AppState>,
    session: Session,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<ConsentWire>> {
    let patient = own_patient(&session)?;
    let id: ConsentId = id.parse().map_err(|_| ApiError::of(ErrorCode::ConsentNotFound))?;
    // Another patient's grant is indistinguishable from none.
    let mut g = state
        .store
        .consents_for(&patient)
        .await?
        .into_iter()
        .find(|g| g.id == id)
        .ok_or_else(|| ApiError::of(ErrorCode::ConsentNotFound))?;
    let now = Utc::now();
    if g.revoked_at.is_none() {
        g.revoked_at = Some(now);
        state.store.put_consent(&g).await?;
        audit_write(&state, &session, Some(&patient), &format!("consents/{}", g.id), "revoked").await?;
    }
    Ok(Json(wire(&state, &g, now).await?))
}

/// Break-the-glass: the signed-in doctor's practice gets every category of the patient's
/// record for 4 hours, without consent or a care relationship. The reason is mandatory and
/// shown to the patient; taking it and every read under it are audited as `break_glass`.
#[utoipa::path(post, path = "/api/v1/patients/{id}/emergency-access", tag = "consent", request_body = EmergencyRequest,
    params(("id" = String, Path, description = "Health ID")), security(("bearer" = [])), responses(
    (status = 201, body = EmergencyResponse), (status = 400, body = ErrorBody, description = "`invalid_input`"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`"),
    (status = 404, body = ErrorBody, description = "`patient_not_found`")))]
pub async fn emergency(
    State(state): State<AppState>,
    session: Session,
    UrlPath(id): UrlPath<String>,
    Body(req): Body<EmergencyRequest>,
) -> ApiResult<(StatusCode, Json<EmergencyResponse>)> {
    let provider = match (session.0.role, &session.0.provider) {
        (Role::Doctor, Some(p)) => p.clone(),
        _ => {
            return Err(ApiError::new(
                ErrorCode::ForbiddenRole,
                "only doctors of a practice can take emergency access",
            ));
        }
    };
    let patient = health_id(&id)?;
    let reason = req.reason.trim().to_owned();
    let n = reason.chars().count();
    if !(MIN_EMERGENCY_REASON..=MAX_EMERGENCY_REASON).contains(&n) {
        return Err(invalid(format!(
            "reason: say why in {MIN_EMERGENCY_REASON} to {MAX_EMERGENCY_REASON} characters (it is shown to the patient)"
        )));
    }
    if state.store.get_patient(&patient).await?.is_none() {
        return Err(ApiError::of(ErrorCode::PatientNotFound));
    }
    let now = Utc::now();
    let g = ConsentGrant {
        id: ConsentId::random(),
        patient: patient.clone(),
        grantee: Grantee::Provider(provider),
        categories: Category::ALL.to_vec(),
        valid_from: now,
        valid_until: Some(now + Duration::hours(EMERGENCY_HOURS)),
        revoked_at: None,
        emergency_reason: Some(reason.clone()),
    };
    state.store.put_consent(&g).await?;
    audit_break_glass(&state, &session, &patient, &format!("consents/{}", g.id), &reason).await?;
    tracing::warn!(user = %session.0.sub, "break-the-glass access taken");
    Ok((
        StatusCode::CREATED,
        Json(EmergencyResponse {
            patient: patient.to_string(),
            valid_until: g.valid_until.unwrap_or(now),
            categories: g.categories.iter().map(|c| c.as_str().to_owned()).collect(),
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CareTeamWire {
    pub id: String,
    pub name: String,
    /// The practices' provider ids.
    pub members: Vec<String>,
    /// Their names, in the same order.
    pub member_names: Vec<String>,
}

async fn team_wire(state: &AppState, t: &CareTeam) -> ApiResult<CareTeamWire> {
    let mut names = Vec::with_capacity(t.members.len());
    for m in &t.members {
        names.push(state.store.get_provider(m).await?.map_or_else(|| m.to_string(), |p| p.name));
    }
    Ok(CareTeamWire {
        id: t.id.to_string(),
        name: t.name.clone(),
        members: t.members.iter().map(ToString::to_string).collect(),
        member_names: names,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CareTeamRequest {
    /// e.g. `Heart failure team Mitte`.
    pub name: String,
    /// The other practices' provider ids; yours is added.
    pub members: Vec<String>,
}

/// Care teams: doctors see the teams their practice is in; patients see every team, to grant
/// one consent.
#[utoipa::path(get, path = "/api/v1/care-teams", tag = "consent", security(("bearer" = [])), responses(
    (status = 200, body = Vec<CareTeamWire>), (status = 403, body = ErrorBody, description = "`forbidden_role`")))]
pub async fn list_teams(State(state): State<AppState>, session: Session) -> ApiResult<Json<Vec<CareTeamWire>>> {
    let teams = state.store.list_care_teams().await?;
    let visible: Vec<&CareTeam> = match (session.0.role, &session.0.provider) {
        (Role::Patient, _) => teams.iter().collect(),
        (Role::Doctor, Some(p)) => teams.iter().filter(|t| t.includes(p)).collect(),
        _ => return Err(ApiError::new(ErrorCode::ForbiddenRole, "care teams are for doctors and patients")),
    };
    let mut out = Vec::with_capacity(visible.len());
    for t in visible {
        out.push(team_wire(&state, t).await?);
    }
    Ok(Json(out))
}

/// A doctor forms a care team of their practice and others.
#[utoipa::path(post, path = "/api/v1/care-teams", tag = "consent", request_body = CareTeamRequest,
    security(("bearer" = [])), responses(
    (status = 201, body = CareTeamWire), (status = 400, body = ErrorBody, description = "`invalid_input`"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`")))]
pub async fn create_team(
    State(state): State<AppState>,
    session: Session,
    Body(req): Body<CareTeamRequest>,
) -> ApiResult<(StatusCode, Json<CareTeamWire>)> {
    let (Role::Doctor, Some(mine)) = (session.0.role, session.0.provider.clone()) else {
        return Err(ApiError::new(ErrorCode::ForbiddenRole, "doctors of a practice form care teams"));
    };
    let mut members = vec![mine];
    for raw in &req.members {
        let p: ProviderId = raw.parse().map_err(|_| invalid(format!("members: `{raw}` is not a provider id")))?;
        if state.store.get_provider(&p).await?.is_none() {
            return Err(invalid(format!("members: no practice `{raw}`")));
        }
        if !members.contains(&p) {
            members.push(p);
        }
    }
    let team = CareTeam {
        id: CareTeamId::random(),
        name: req.name.trim().to_owned(),
        members,
        created_by: session.0.sub,
        created_at: Utc::now(),
    };
    carelens_domain::Validate::validate(&team).map_err(|e| {
        let carelens_domain::DomainError::Invalid { field, reason } = e;
        invalid(format!("{field}: {reason}"))
    })?;
    state.store.put_care_team(&team).await?;
    audit_write(&state, &session, None, &format!("care-teams/{}", team.id), "created").await?;
    Ok((StatusCode::CREATED, Json(team_wire(&state, &team).await?)))
}
