//! Users of carelens and doctors' feedback on predicted diagnoses.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Validate;
use crate::codes::Icd10Code;
use crate::error::{Result, ensure};
use crate::ids::{FeedbackId, HealthId, PredictionSetId, ProviderId, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Admin,
    Doctor,
    Patient,
    Analyst,
    MlEngineer,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Admin, Role::Doctor, Role::Patient, Role::Analyst, Role::MlEngineer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Doctor => "doctor",
            Role::Patient => "patient",
            Role::Analyst => "analyst",
            Role::MlEngineer => "ml-engineer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A person who signs in. The password is kept only as an argon2id PHC string.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    /// Sign-in name: 3–64 characters of `a-z 0-9 . _ -`.
    pub username: String,
    pub role: Role,
    /// `$argon2id$…` (never the password).
    pub password_hash: String,
    /// The practice a doctor works for: their patients are that provider's patients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderId>,
    /// A patient user's own record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<HealthId>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub disabled: bool,
    /// Where booking confirmations and reminders go (patients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Ed25519 keys this user signs documents with, oldest first (documents signed with an
    /// older key still verify).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<SigningKeyRecord>,
}

/// One of a user's document-signing keys: the public half, and the private seed only when the
/// server holds it, wrapped under the user's key-encryption key. A key the client holds has no
/// seed here; the client sends detached signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    pub public_key_hex: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapped_seed: Option<crate::document::WrappedKey>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("password_hash", &"<redacted>")
            .field("provider", &self.provider)
            .field("patient", &self.patient)
            .field("disabled", &self.disabled)
            .field("email", &self.email.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Whether `name` is a valid sign-in name.
pub fn valid_username(name: &str) -> bool {
    (3..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
}

impl Validate for User {
    fn validate(&self) -> Result<()> {
        ensure(valid_username(&self.username), "user.username", || {
            "3–64 characters of lower-case letters, digits, '.', '_' and '-'".into()
        })?;
        ensure(self.password_hash.starts_with("$argon2id$"), "user.password_hash", || {
            "must be an argon2id PHC string".into()
        })?;
        ensure(self.role != Role::Doctor || self.provider.is_some(), "user.provider", || {
            "a doctor needs the practice (provider) they work for".into()
        })?;
        ensure(self.role != Role::Patient || self.patient.is_some(), "user.patient", || {
            "a patient user needs their Health ID".into()
        })?;
        ensure(self.email.as_deref().is_none_or(crate::valid_email), "user.email", || {
            "is not an e-mail address (local@domain)".into()
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Confirmed,
    Rejected,
}

/// A doctor's verdict on one suggested diagnosis of one prediction set: labels for retraining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    pub id: FeedbackId,
    pub patient: HealthId,
    pub prediction_set: PredictionSetId,
    pub set_version: u32,
    pub code: Icd10Code,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub doctor: UserId,
    pub at: DateTime<Utc>,
}

/// Longest feedback comment, characters.
pub const MAX_COMMENT: usize = 2000;

impl Validate for Feedback {
    fn validate(&self) -> Result<()> {
        ensure(self.set_version >= 1, "feedback.set_version", || "starts at 1".into())?;
        ensure(self.comment.as_ref().is_none_or(|c| c.chars().count() <= MAX_COMMENT), "feedback.comment", || {
            format!("at most {MAX_COMMENT} characters")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role) -> User {
        User {
            id: UserId::from_u128(1),
            username: "dr.weber".into(),
            role,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            provider: Some(ProviderId::from_number(3)),
            patient: None,
            created_at: Utc::now(),
            disabled: false,
            email: None,
            signing_keys: vec![],
        }
    }

    #[test]
    fn users_are_checked_and_never_show_their_hash() {
        user(Role::Doctor).validate().unwrap();
        let mut u = user(Role::Doctor);
        u.provider = None;
        assert!(u.validate().unwrap_err().to_string().starts_with("invalid user.provider"));
        let mut u = user(Role::Patient);
        assert!(u.validate().unwrap_err().to_string().starts_with("invalid user.patient"));
        u.patient = Some(HealthId::from_number(5));
        u.validate().unwrap();
        for bad in ["ab", "Dr.Weber", "dr weber", &"x".repeat(65)] {
            let mut u = user(Role::Admin);
            u.username = bad.into();
            assert!(u.validate().is_err(), "{bad}");
        }
        let mut u = user(Role::Admin);
        u.password_hash = "plain".into();
        assert!(u.validate().unwrap_err().to_string().starts_with("invalid user.password_hash"));
        assert!(!format!("{:?}", user(Role::Admin)).contains("argon2"));
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }

    #[test]
    fn feedback_comments_are_bounded() {
        let mut f = Feedback {
            id: FeedbackId::from_u128(1),
            patient: HealthId::from_number(1),
            prediction_set: PredictionSetId::from_u128(2),
            set_version: 1,
            code: "J18".parse().unwrap(),
            verdict: Verdict::Confirmed,
            comment: Some("fits the X-ray".into()),
            doctor: UserId::from_u128(3),
            at: Utc::now(),
        };
        f.validate().unwrap();
        f.comment = Some("x".repeat(MAX_COMMENT + 1));
        assert!(f.validate().unwrap_err().to_string().starts_with("invalid feedback.comment"));
    }
}
