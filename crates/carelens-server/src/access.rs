//! The one access check every patient endpoint calls, and the audit entries it leaves.
//!
//! A doctor reaches a patient through a care relationship (an appointment, past or future and
//! not cancelled, with the doctor's practice: every category but mental health) and through
//! consent grants to that practice in force now (the granted categories, mental health
//! included when granted). A patient reaches their own
//! record. Nobody else reaches individual patients: admins, analysts and ML engineers work
//! on aggregates. Every decision is audited, allowed or denied. The full consent model
//! (care teams, break-the-glass) arrives with the records module; it extends this function.

use carelens_domain::{
    Actor, AppointmentStatus, AuditAction, AuditOutcome, CareTeamId, Category, Grantee, HealthId, Patient, Role,
};
use carelens_store::AuditEvent;
use chrono::Utc;

use crate::auth::Session;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// What the caller wants to do with the patient's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Prediction sets and their evidence.
    ReadPredictions,
    /// The history timeline.
    ReadHistory,
    /// Confirming or rejecting a suggested diagnosis.
    GiveFeedback,
    /// The record as a FHIR bundle (what the caller may see of it).
    ExportRecord,
    /// Adding to the record (a document or an entry, in a category the caller may see).
    AddToRecord,
}

impl Purpose {
    fn action(self) -> AuditAction {
        match self {
            Purpose::ReadPredictions | Purpose::ReadHistory => AuditAction::Read,
            Purpose::GiveFeedback | Purpose::AddToRecord => AuditAction::Create,
            Purpose::ExportRecord => AuditAction::Export,
        }
    }

    /// Whether the categories the caller may see are enough for this purpose: the timeline
    /// needs any (it then shows only those), predictions and feedback need diagnoses.
    fn permits(self, categories: &[Category]) -> bool {
        match self {
            Purpose::ReadHistory | Purpose::ExportRecord | Purpose::AddToRecord => !categories.is_empty(),
            Purpose::ReadPredictions | Purpose::GiveFeedback => categories.contains(&Category::Diagnosis),
        }
    }

    fn roles(self) -> &'static [Role] {
        match self {
            Purpose::ReadPredictions | Purpose::GiveFeedback => &[Role::Doctor],
            Purpose::ReadHistory | Purpose::ExportRecord | Purpose::AddToRecord => &[Role::Doctor, Role::Patient],
        }
    }
}

/// An allowed access: the patient and the categories the caller may see.
#[derive(Debug)]
pub struct Access {
    pub patient: Patient,
    pub categories: Vec<Category>,
    /// How access was granted, for the audit log: `own_record`, `care_relationship`, `consent`.
    pub basis: &'static str,
}

impl Access {
    pub fn sees(&self, c: Category) -> bool {
        self.categories.contains(&c)
    }
}

fn actor(session: &Session) -> Actor {
    Actor { role: session.0.actor_role(), id: session.0.sub.to_string() }
}

async fn audit(
    state: &AppState,
    session: &Session,
    action: AuditAction,
    patient: Option<&HealthId>,
    resource: &str,
    outcome: AuditOutcome,
    reason: &str,
) -> ApiResult<()> {
    let event = AuditEvent {
        at: Utc::now(),
        actor: actor(session),
        action,
        patient: patient.cloned(),
        resource: resource.to_string(),
        outcome,
        reason: Some(reason.to_string()),
    };
    state.store.append_audit(event).await?;
    Ok(())
}

/// Leaves a denied entry; a failing audit write is logged, and the refusal stands.
pub async fn audit_denied(state: &AppState, session: &Session, patient: Option<&HealthId>, resource: &str, why: &str) {
    tracing::info!(user = %session.0.sub, resource, reason = why, "access denied");
    if let Err(e) = audit(state, session, AuditAction::Read, patient, resource, AuditOutcome::Denied, why).await {
        tracing::error!(error = %e.message, "could not audit a denied access");
    }
}

/// Audits a write the caller made (feedback, a prediction run, a new user).
pub async fn audit_write(
    state: &AppState,
    session: &Session,
    patient: Option<&HealthId>,
    resource: &str,
    what: &str,
) -> ApiResult<()> {
    audit(state, session, AuditAction::Create, patient, resource, AuditOutcome::Allowed, what).await
}

/// Audits a change to an existing record (a correction), with its reason.
pub async fn audit_update(
    state: &AppState,
    session: &Session,
    patient: &HealthId,
    resource: &str,
    reason: &str,
) -> ApiResult<()> {
    audit(state, session, AuditAction::Update, Some(patient), resource, AuditOutcome::Allowed, reason).await
}

/// Audits break-the-glass access being taken, with its reason.
pub async fn audit_break_glass(
    state: &AppState,
    session: &Session,
    patient: &HealthId,
    resource: &str,
    reason: &str,
) -> ApiResult<()> {
    audit(state, session, AuditAction::BreakGlass, Some(patient), resource, AuditOutcome::Allowed, reason).await
}

/// Parses a Health ID from a path segment.
pub fn health_id(raw: &str) -> ApiResult<HealthId> {
    raw.parse::<HealthId>().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidHealthId,
            "not a Health ID (CLH, 10 characters of Crockford base32 and a check character)",
        )
    })
}

/// The access check. Every endpoint that touches one patient's data calls it first and uses
/// only the categories it returns; allowed and denied decisions both land in the audit log.
pub async fn check_patient_access(
    state: &AppState,
    session: &Session,
    patient: &HealthId,
    purpose: Purpose,
    resource: &str,
) -> ApiResult<Access> {
    let claims = &session.0;
    if !purpose.roles().contains(&claims.role) {
        audit_denied(state, session, Some(patient), resource, "forbidden_role").await;
        return Err(ApiError::new(
            ErrorCode::ForbiddenRole,
            format!(
                "a {} may not read individual patients' {}",
                claims.role.as_str(),
                match purpose {
                    Purpose::ReadHistory | Purpose::ExportRecord | Purpose::AddToRecord => "histories",
                    _ => "predictions",
                }
            ),
        ));
    }
    let (categories, basis) = match (claims.role, &claims.provider) {
        (Role::Patient, _) if claims.patient.as_ref() == Some(patient) => (Category::ALL.to_vec(), "own_record"),
        // A caregiver or proxy: another person the patient granted categories to.
        (Role::Patient, _) => {
            let now = Utc::now();
            let grantee = Grantee::Person(claims.sub);
            let grants = state.store.consents_for(patient).await?;
            let categories: Vec<Category> =
                Category::ALL.into_iter().filter(|&c| grants.iter().any(|g| g.allows(&grantee, c, now))).collect();
            (categories, "caregiver")
        }
        (Role::Doctor, Some(provider)) => {
            let appointments = state.store.appointments_for_patient(patient).await?;
            let in_care =
                appointments.iter().any(|a| &a.provider == provider && a.status != AppointmentStatus::Cancelled);
            let now = Utc::now();
            let grantee = Grantee::Provider(provider.clone());
            let grants = state.store.consents_for(patient).await?;
            // Care teams the patient granted that this practice belongs to count as the practice.
            let mut teams: Vec<Grantee> = Vec::new();
            for g in &grants {
                if let Grantee::CareTeam(t) = &g.grantee
                    && !teams.contains(&g.grantee)
                    && let Ok(id) = t.parse::<CareTeamId>()
                    && state.store.get_care_team(&id).await?.is_some_and(|team| team.includes(provider))
                {
                    teams.push(g.grantee.clone());
                }
            }
            // Treating doctors see everything but mental health; consent adds what it grants;
            // break-the-glass (an emergency grant) opens what it names, loudly.
            let consented = |c: Category| {
                grants.iter().any(|g| {
                    g.emergency_reason.is_none()
                        && (g.allows(&grantee, c, now) || teams.iter().any(|t| g.allows(t, c, now)))
                })
            };
            let emergency =
                |c: Category| grants.iter().any(|g| g.emergency_reason.is_some() && g.allows(&grantee, c, now));
            let categories: Vec<Category> = Category::ALL
                .into_iter()
                .filter(|&c| (in_care && c != Category::MentalHealth) || consented(c) || emergency(c))
                .collect();
            let basis = if in_care {
                "care_relationship"
            } else if purpose.permits(&Category::ALL.into_iter().filter(|&c| consented(c)).collect::<Vec<_>>()) {
                "consent"
            } else {
                "emergency"
            };
            (categories, basis)
        }
        _ => (vec![], "none"),
    };
    if !purpose.permits(&categories) {
        audit_denied(state, session, Some(patient), resource, "not_in_care").await;
        // Health IDs are random (50 bits and a check character), so saying that one does not
        // exist gives nothing away worth guessing for; it saves a doctor a confusing 403.
        if state.store.get_patient(patient).await?.is_none() {
            return Err(ApiError::of(ErrorCode::PatientNotFound));
        }
        return Err(ApiError::new(
            ErrorCode::NotInCare,
            match claims.role {
                Role::Patient => {
                    "patients can read their own record, and those of people who made them their caregiver".to_string()
                }
                _ => "this patient has no appointment with your practice and has not granted it consent".to_string(),
            },
        ));
    }
    let Some(record) = state.store.get_patient(patient).await? else {
        return Err(ApiError::of(ErrorCode::PatientNotFound));
    };
    // Reads under break-the-glass are audited as such, so the patient sees them stand out.
    let action = if basis == "emergency" { AuditAction::BreakGlass } else { purpose.action() };
    audit(state, session, action, Some(patient), resource, AuditOutcome::Allowed, basis).await?;
    Ok(Access { patient: record, categories, basis })
}
