//! e-Prescriptions: a doctor prescribes an ATC-coded drug with strength, dose, duration and
//! refills; dispensings and refill requests are recorded on it; it is signed like a document.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Validate;
use crate::codes::AtcCode;
use crate::document::DocumentSignature;
use crate::error::{Result, ensure};
use crate::history::Dose;
use crate::ids::{HealthId, PrescriptionId, ProviderId, UserId};

/// The most refills one prescription may allow.
pub const MAX_REFILLS: u8 = 12;

/// The most medication reminders a day a patient may ask for on one prescription.
pub const MAX_REMINDER_TIMES: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrescriptionStatus {
    Active,
    Cancelled,
}

/// A pharmacy handing the drug out: the first fill, or a refill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispensing {
    pub at: DateTime<Utc>,
    pub refill: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefillState {
    Requested,
    Dispensed,
    Denied,
}

/// A patient asking for a refill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefillRequest {
    pub at: DateTime<Utc>,
    pub state: RefillState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prescription {
    pub id: PrescriptionId,
    pub patient: HealthId,
    /// The prescribing practice.
    pub provider: ProviderId,
    pub prescriber: UserId,
    pub drug: AtcCode,
    pub display: String,
    /// `500 mg`, `20 mg/ml`.
    pub strength: String,
    pub dose: Dose,
    pub start: NaiveDate,
    /// Days one fill lasts.
    pub duration_days: u16,
    pub refills_allowed: u8,
    pub created_at: DateTime<Utc>,
    pub status: PrescriptionStatus,
    #[serde(default)]
    pub dispensings: Vec<Dispensing>,
    #[serde(default)]
    pub refill_requests: Vec<RefillRequest>,
    /// The warnings (allergy, interaction, duplicate) the prescriber saw and acknowledged.
    #[serde(default)]
    pub acknowledged: Vec<String>,
    /// When the patient wants to be reminded to take it (Berlin wall-clock times, sorted);
    /// empty: no reminders. The patient's choice, so not covered by the signature.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reminder_times: Vec<NaiveTime>,
    /// Counts changes of `reminder_times`; reminder messages carry it in their ids, so those
    /// queued under earlier settings lapse.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reminder_revision: u32,
    /// The prescriber's Ed25519 signature over [`Prescription::signed_message`].
    pub signature: DocumentSignature,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Prescription {
    /// What the signature covers: everything the prescriber decided (not what happened after).
    pub fn signed_message(&self) -> Vec<u8> {
        format!(
            "carelens-prescription-v1\nid={}\npatient={}\nprovider={}\nprescriber={}\ndrug={}\nstrength={}\ndose={} {} {}\nstart={}\ndays={}\nrefills={}\n",
            self.id,
            self.patient,
            self.provider,
            self.prescriber,
            self.drug,
            self.strength,
            self.dose.amount,
            self.dose.unit,
            self.dose.frequency,
            self.start,
            self.duration_days,
            self.refills_allowed
        )
        .into_bytes()
    }

    pub fn refills_used(&self) -> u8 {
        self.dispensings.iter().filter(|d| d.refill).count().min(usize::from(u8::MAX)) as u8
    }

    pub fn refills_left(&self) -> u8 {
        self.refills_allowed.saturating_sub(self.refills_used())
    }

    /// The last day covered by the fills so far (at least the first).
    pub fn covered_until(&self) -> NaiveDate {
        let fills = i64::from(self.refills_used()) + 1;
        self.start + Duration::days(i64::from(self.duration_days) * fills - 1)
    }

    /// Active and covering `on`.
    pub fn is_current(&self, on: NaiveDate) -> bool {
        self.status == PrescriptionStatus::Active && self.start <= on && on <= self.covered_until()
    }

    /// A refill request is waiting.
    pub fn refill_pending(&self) -> bool {
        self.refill_requests.iter().any(|r| r.state == RefillState::Requested)
    }
}

impl Validate for Prescription {
    fn validate(&self) -> Result<()> {
        ensure(!self.display.trim().is_empty(), "prescription.display", || "must not be empty".into())?;
        ensure(!self.strength.trim().is_empty() && self.strength.len() <= 50, "prescription.strength", || {
            "1 to 50 characters, e.g. `500 mg`".into()
        })?;
        ensure(self.dose.amount.is_finite() && self.dose.amount > 0.0, "prescription.dose.amount", || {
            "must be a positive number".into()
        })?;
        ensure(!self.dose.unit.trim().is_empty(), "prescription.dose.unit", || "must not be empty".into())?;
        ensure(!self.dose.frequency.trim().is_empty(), "prescription.dose.frequency", || {
            "must not be empty, e.g. `1-0-1`".into()
        })?;
        ensure((1..=365).contains(&self.duration_days), "prescription.duration_days", || "1 to 365".into())?;
        ensure(
            self.reminder_times.len() <= MAX_REMINDER_TIMES && self.reminder_times.windows(2).all(|w| w[0] < w[1]),
            "prescription.reminder_times",
            || format!("at most {MAX_REMINDER_TIMES} different times a day, sorted"),
        )?;
        ensure(self.refills_allowed <= MAX_REFILLS, "prescription.refills_allowed", || format!("at most {MAX_REFILLS}"))
    }
}
