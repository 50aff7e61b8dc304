//! Consent grants: a patient lets a provider (or care team) see some categories for a while.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Validate;
use crate::error::{Result, ensure};
use crate::history::Category;
use crate::ids::{ConsentId, HealthId, ProviderId, UserId};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Grantee {
    Provider(ProviderId),
    CareTeam(String),
    /// A caregiver or proxy: another person's account (a parent, a relative).
    Person(UserId),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentGrant {
    pub id: ConsentId,
    pub patient: HealthId,
    pub grantee: Grantee,
    pub categories: Vec<Category>,
    pub valid_from: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// Set on break-the-glass access a doctor took without the patient's consent: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency_reason: Option<String>,
}

/// How long break-the-glass access lasts, and the shortest reason accepted.
pub const EMERGENCY_HOURS: i64 = 4;
pub const MIN_EMERGENCY_REASON: usize = 10;
pub const MAX_EMERGENCY_REASON: usize = 500;

impl ConsentGrant {
    /// In force at `at`: started, not expired, not revoked.
    pub fn is_active_at(&self, at: DateTime<Utc>) -> bool {
        self.valid_from <= at && self.valid_until.is_none_or(|u| at < u) && self.revoked_at.is_none_or(|r| at < r)
    }

    /// Grants `category` to `grantee` at `at`.
    pub fn allows(&self, grantee: &Grantee, category: Category, at: DateTime<Utc>) -> bool {
        &self.grantee == grantee && self.categories.contains(&category) && self.is_active_at(at)
    }
}

impl Validate for ConsentGrant {
    fn validate(&self) -> Result<()> {
        ensure(!self.categories.is_empty(), "consent.categories", || "must name at least one category".into())?;
        ensure(self.valid_until.is_none_or(|u| u > self.valid_from), "consent.valid_until", || {
            "must be after consent.valid_from".into()
        })?;
        ensure(
            self.emergency_reason
                .as_ref()
                .is_none_or(|r| (MIN_EMERGENCY_REASON..=MAX_EMERGENCY_REASON).contains(&r.trim().chars().count())),
            "consent.emergency_reason",
            || format!("must say why in {MIN_EMERGENCY_REASON} to {MAX_EMERGENCY_REASON} characters"),
        )?;
        ensure(self.emergency_reason.is_none() || self.valid_until.is_some(), "consent.valid_until", || {
            "emergency access must end".into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn active_window_and_revocation() {
        let t0 = Utc::now();
        let dr = Grantee::Provider(ProviderId::from_number(1));
        let mut g = ConsentGrant {
            id: ConsentId::from_u128(1),
            patient: HealthId::from_number(1),
            grantee: dr.clone(),
            categories: vec![Category::Diagnosis],
            valid_from: t0,
            valid_until: Some(t0 + Duration::days(30)),
            revoked_at: None,
            emergency_reason: None,
        };
        g.validate().unwrap();
        assert!(g.allows(&dr, Category::Diagnosis, t0 + Duration::days(1)));
        assert!(!g.allows(&dr, Category::MentalHealth, t0 + Duration::days(1)));
        assert!(!g.allows(&Grantee::Provider(ProviderId::from_number(2)), Category::Diagnosis, t0));
        assert!(!g.allows(&dr, Category::Diagnosis, t0 + Duration::days(30)));
        assert!(!g.allows(&dr, Category::Diagnosis, t0 - Duration::seconds(1)));
        g.revoked_at = Some(t0 + Duration::days(2));
        assert!(!g.allows(&dr, Category::Diagnosis, t0 + Duration::days(3)));
        g.valid_until = Some(t0);
        assert!(g.validate().unwrap_err().to_string().starts_with("invalid consent.valid_until"));
    }
}
