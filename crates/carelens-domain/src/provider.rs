//! Providers, their schedules, slots, appointments and reviews.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::Validate;
use crate::error::{DomainError, Result, ensure, invalid};
use crate::ids::{AppointmentId, ClosureId, HealthId, ProviderId, ReviewId, RuleId};
use crate::patient::{GeoPoint, InsuranceKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Specialty {
    GeneralPractice,
    InternalMedicine,
    Cardiology,
    Pneumology,
    Nephrology,
    Neurology,
    Orthopaedics,
    Psychiatry,
    Psychotherapy,
    Gynaecology,
    Radiology,
    Paediatrics,
    Dermatology,
}

impl Specialty {
    pub const ALL: [Specialty; 13] = [
        Self::GeneralPractice,
        Self::InternalMedicine,
        Self::Cardiology,
        Self::Pneumology,
        Self::Nephrology,
        Self::Neurology,
        Self::Orthopaedics,
        Self::Psychiatry,
        Self::Psychotherapy,
        Self::Gynaecology,
        Self::Radiology,
        Self::Paediatrics,
        Self::Dermatology,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::GeneralPractice => "general_practice",
            Self::InternalMedicine => "internal_medicine",
            Self::Cardiology => "cardiology",
            Self::Pneumology => "pneumology",
            Self::Nephrology => "nephrology",
            Self::Neurology => "neurology",
            Self::Orthopaedics => "orthopaedics",
            Self::Psychiatry => "psychiatry",
            Self::Psychotherapy => "psychotherapy",
            Self::Gynaecology => "gynaecology",
            Self::Radiology => "radiology",
            Self::Paediatrics => "paediatrics",
            Self::Dermatology => "dermatology",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Practitioner,
    Practice,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub street: String,
    pub postcode: String,
    pub city: String,
    pub region: String,
}

/// ISO 639-1 language code, lower case: `de`, `en`, `tr`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LanguageCode(String);

impl LanguageCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LanguageCode {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self> {
        if s.len() == 2 && s.bytes().all(|b| b.is_ascii_lowercase()) {
            Ok(Self(s))
        } else {
            Err(invalid("language", "expected a two-letter ISO 639-1 code such as `de`"))
        }
    }
}

impl From<LanguageCode> for String {
    fn from(l: LanguageCode) -> String {
        l.0
    }
}

/// Star rating aggregated from reviews.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RatingSummary {
    pub count: u32,
    /// Mean stars, 1.0–5.0; 0.0 when there are no reviews.
    pub mean: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provider {
    pub id: ProviderId,
    pub kind: ProviderKind,
    pub name: String,
    pub specialty: Specialty,
    pub address: Address,
    pub location: GeoPoint,
    pub accepts: Vec<InsuranceKind>,
    pub languages: Vec<LanguageCode>,
    pub rating: RatingSummary,
}

impl Validate for Provider {
    fn validate(&self) -> Result<()> {
        ensure(!self.name.trim().is_empty(), "provider.name", || "must not be empty".into())?;
        ensure(!self.accepts.is_empty(), "provider.accepts", || "must accept at least one insurance kind".into())?;
        ensure(
            self.address.postcode.len() == 5 && self.address.postcode.bytes().all(|b| b.is_ascii_digit()),
            "provider.address.postcode",
            || "expected a 5-digit German postcode".into(),
        )?;
        ensure(
            self.rating.count == 0 && self.rating.mean == 0.0 || (1.0..=5.0).contains(&self.rating.mean),
            "provider.rating.mean",
            || "must be within 1..=5 (or 0 with no reviews)".into(),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub id: ReviewId,
    pub provider: ProviderId,
    pub patient: HealthId,
    pub stars: u8,
    pub text: String,
    pub date: NaiveDate,
    /// The reviewer had a completed appointment with this provider.
    pub verified_visit: bool,
}

impl Validate for Review {
    fn validate(&self) -> Result<()> {
        ensure((1..=5).contains(&self.stars), "review.stars", || "must be within 1..=5".into())?;
        ensure(self.text.chars().count() <= 5000, "review.text", || "at most 5000 characters".into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitType {
    FirstVisit,
    FollowUp,
    Acute,
    Checkup,
    Video,
}

/// A weekly opening template: on `weekday` from `start` to `end` (local time, Europe/Berlin),
/// slots of `slot_minutes` for `visit_type`, valid within `[valid_from, valid_until]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRule {
    pub id: RuleId,
    pub provider: ProviderId,
    pub weekday: Weekday,
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub slot_minutes: u16,
    pub visit_type: VisitType,
    pub valid_from: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<NaiveDate>,
}

impl Validate for ScheduleRule {
    fn validate(&self) -> Result<()> {
        ensure(self.end > self.start, "schedule_rule.end", || "must be after schedule_rule.start".into())?;
        ensure((5..=240).contains(&self.slot_minutes), "schedule_rule.slot_minutes", || {
            "must be within 5..=240".into()
        })?;
        let minutes = (self.end - self.start).num_minutes();
        ensure(minutes >= i64::from(self.slot_minutes), "schedule_rule.slot_minutes", || {
            "longer than the opening window".into()
        })?;
        ensure(self.valid_until.is_none_or(|u| u >= self.valid_from), "schedule_rule.valid_until", || {
            "must not be before schedule_rule.valid_from".into()
        })
    }
}

/// Days a practice does not see patients (vacation, training, a regional holiday), inclusive:
/// its schedule rules offer no openings then. Never deleted; a closure entered by mistake is
/// kept with `withdrawn` set, so past gaps in the calendar stay explainable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PracticeClosure {
    pub id: ClosureId,
    pub provider: ProviderId,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub reason: String,
    #[serde(default)]
    pub withdrawn: bool,
}

/// The longest a closure may be, in days, and its reason, in characters.
pub const MAX_CLOSURE_DAYS: i64 = 366;
pub const MAX_CLOSURE_REASON: usize = 200;

impl Validate for PracticeClosure {
    fn validate(&self) -> Result<()> {
        ensure(self.to >= self.from, "closure.to", || "must not be before closure.from".into())?;
        ensure((self.to - self.from).num_days() < MAX_CLOSURE_DAYS, "closure.to", || {
            format!("a closure spans at most {MAX_CLOSURE_DAYS} days")
        })?;
        ensure(self.reason.chars().count() <= MAX_CLOSURE_REASON, "closure.reason", || {
            format!("at most {MAX_CLOSURE_REASON} characters")
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "feed", rename_all = "snake_case")]
pub enum SlotSource {
    /// Computed from carelens's own schedule rules.
    Own,
    /// Imported from an external availability feed (named).
    Feed(String),
}

/// A bookable opening.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    pub provider: ProviderId,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub visit_type: VisitType,
    pub source: SlotSource,
}

impl Validate for Slot {
    fn validate(&self) -> Result<()> {
        ensure(self.end > self.start, "slot.end", || "must be after slot.start".into())
    }
}

/// Where an opening was listed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Provenance {
    /// carelens's own schedule rules.
    Own,
    /// An external availability feed (`doctolib`, `jameda`), with the practitioner's id there.
    Feed { feed: String, external_id: String },
}

impl Provenance {
    /// The name a listing source is stored under: `carelens` or the feed's.
    pub fn source(&self) -> &str {
        match self {
            Self::Own => "carelens",
            Self::Feed { feed, .. } => feed,
        }
    }
}

/// A bookable opening: a provider's time, listed by one or more sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opening {
    pub provider: ProviderId,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub visit_type: VisitType,
    /// Insurance kinds it is for; empty means any the provider accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub insurance: Vec<InsuranceKind>,
    pub sources: Vec<Provenance>,
}

impl Validate for Opening {
    fn validate(&self) -> Result<()> {
        ensure(self.end > self.start, "opening.end", || "must be after opening.start".into())?;
        ensure(self.end - self.start <= chrono::Duration::hours(8), "opening.end", || {
            "an opening lasts at most 8 hours".into()
        })?;
        ensure(!self.sources.is_empty(), "opening.sources", || "must name at least one source".into())
    }
}

/// Appointment status flow:
/// booked → confirmed → checked_in → completed; booked/confirmed → no_show | cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    Booked,
    Confirmed,
    CheckedIn,
    Completed,
    NoShow,
    Cancelled,
}

impl AppointmentStatus {
    pub const ALL: [AppointmentStatus; 6] =
        [Self::Booked, Self::Confirmed, Self::CheckedIn, Self::Completed, Self::NoShow, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Booked => "booked",
            Self::Confirmed => "confirmed",
            Self::CheckedIn => "checked_in",
            Self::Completed => "completed",
            Self::NoShow => "no_show",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether the appointment still holds its slot (a cancelled slot can be booked again;
    /// a no-show or completed one is in the past and stays taken).
    pub fn holds_slot(self) -> bool {
        self != Self::Cancelled
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::NoShow | Self::Cancelled)
    }

    pub fn can_become(self, next: Self) -> bool {
        use AppointmentStatus::*;
        matches!(
            (self, next),
            (Booked, Confirmed | CheckedIn | NoShow | Cancelled)
                | (Confirmed, CheckedIn | NoShow | Cancelled)
                | (CheckedIn, Completed)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Appointment {
    pub id: AppointmentId,
    pub patient: HealthId,
    pub provider: ProviderId,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub visit_type: VisitType,
    pub status: AppointmentStatus,
    pub booked_at: DateTime<Utc>,
    pub status_changed_at: DateTime<Utc>,
}

impl Appointment {
    /// Moves to `next` at `at`, refusing transitions the status flow does not allow.
    pub fn transition(&mut self, next: AppointmentStatus, at: DateTime<Utc>) -> Result<()> {
        if !self.status.can_become(next) {
            return Err(invalid(
                "appointment.status",
                format!("cannot go from {} to {}", self.status.as_str(), next.as_str()),
            ));
        }
        self.status = next;
        self.status_changed_at = at;
        Ok(())
    }

    /// Days from booking to the appointment (the waiting time).
    pub fn waiting_days(&self) -> i64 {
        (self.start.date_naive() - self.booked_at.date_naive()).num_days()
    }
}

impl Validate for Appointment {
    fn validate(&self) -> Result<()> {
        ensure(self.end > self.start, "appointment.end", || "must be after appointment.start".into())?;
        ensure(self.booked_at <= self.start, "appointment.booked_at", || "must not be after appointment.start".into())?;
        ensure(self.status_changed_at >= self.booked_at, "appointment.status_changed_at", || {
            "must not be before appointment.booked_at".into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn appt() -> Appointment {
        let t = |d, h| Utc.with_ymd_and_hms(2025, 5, d, h, 0, 0).unwrap();
        Appointment {
            id: AppointmentId::from_u128(7),
            patient: HealthId::from_number(1),
            provider: ProviderId::from_number(2),
            start: t(20, 9),
            end: t(20, 10),
            visit_type: VisitType::FollowUp,
            status: AppointmentStatus::Booked,
            booked_at: t(1, 8),
            status_changed_at: t(1, 8),
        }
    }

    #[test]
    fn status_flow() {
        use AppointmentStatus::*;
        let allowed = [
            (Booked, Confirmed),
            (Booked, CheckedIn),
            (Booked, NoShow),
            (Booked, Cancelled),
            (Confirmed, CheckedIn),
            (Confirmed, NoShow),
            (Confirmed, Cancelled),
            (CheckedIn, Completed),
        ];
        for from in AppointmentStatus::ALL {
            for to in AppointmentStatus::ALL {
                assert_eq!(from.can_become(to), allowed.contains(&(from, to)), "{from:?} -> {to:?}");
            }
        }
        let mut a = appt();
        let at = a.booked_at;
        a.transition(Confirmed, at).unwrap();
        let err = a.transition(Completed, at).unwrap_err().to_string();
        assert_eq!(err, "invalid appointment.status: cannot go from confirmed to completed");
        assert_eq!(a.waiting_days(), 19);
    }

    #[test]
    fn times_are_checked() {
        let mut a = appt();
        a.end = a.start;
        assert!(a.validate().unwrap_err().to_string().starts_with("invalid appointment.end"));
        let mut a = appt();
        a.booked_at = a.start + chrono::Duration::hours(1);
        assert!(a.validate().unwrap_err().to_string().starts_with("invalid appointment.booked_at"));
    }

    #[test]
    fn schedule_rules() {
        let rule = ScheduleRule {
            id: RuleId::from_u128(1),
            provider: ProviderId::from_number(1),
            weekday: Weekday::Mon,
            start: NaiveTime::from_hms_opt(12, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            slot_minutes: 15,
            visit_type: VisitType::Checkup,
            valid_from: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
            valid_until: None,
        };
        assert!(rule.validate().unwrap_err().to_string().starts_with("invalid schedule_rule.end"));
        let json = serde_json::to_value(&rule).unwrap();
        assert_eq!(json["weekday"], "Mon");
    }

    #[test]
    fn languages_and_reviews() {
        assert!(LanguageCode::try_from("de".to_string()).is_ok());
        assert!(LanguageCode::try_from("DE".to_string()).is_err());
        assert!(LanguageCode::try_from("deu".to_string()).is_err());
        let r = Review {
            id: ReviewId::from_u128(1),
            provider: ProviderId::from_number(1),
            patient: HealthId::from_number(1),
            stars: 6,
            text: String::new(),
            date: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
            verified_visit: true,
        };
        assert!(r.validate().unwrap_err().to_string().starts_with("invalid review.stars"));
    }
}
