use std::collections::BTreeMap;

use async_trait::async_trait;
use carelens_domain::{
    Actor, Appointment, AppointmentId, AppointmentStatus, AuditAction, AuditCheckpoint, AuditEntry, AuditOutcome,
    CareTeam, CareTeamId, Category, ConsentGrant, DocumentId, DocumentRef, Feedback, GroundTruth, HealthId,
    HistoryEntry, MessageSubject, Opening, OutboxMessage, Patient, PracticeClosure, PredictionSet, Prescription,
    PrescriptionId, Provider, ProviderId, Review, ScheduleRule, User, UserId,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::Result;

/// Keyset pagination: items sorted by id, starting after `after`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: u32,
}

impl PageRequest {
    pub fn first(limit: u32) -> Self {
        Self { after: None, limit }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Cursor for the next page; `None` on the last page.
    pub next: Option<PageRequest>,
}

/// Which history entries to read. Empty `categories` means all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    pub categories: Vec<Category>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// Also entries a correction replaced (default: only the current ones).
    pub include_superseded: bool,
}

impl HistoryFilter {
    pub fn matches(&self, e: &HistoryEntry) -> bool {
        (self.include_superseded || e.superseded.is_none())
            && (self.categories.is_empty() || self.categories.contains(&e.category()))
            && self.from.is_none_or(|f| e.date >= f)
            && self.to.is_none_or(|t| e.date <= t)
    }
}

/// Writes that land together or not at all. Items are upserted by id, except appointments,
/// which additionally must not take a slot another appointment holds.
///
/// Atomicity: a batch of at most [`WriteBatch::ATOMIC_RECORDS`] records always commits as a
/// whole. Larger batches may be committed by a backend with transaction-size limits (MongoDB)
/// as several transactions that each hold *whole patients* ([`WriteBatch::split_by_patient`]):
/// a failure then leaves every patient either complete or absent, never half-written, and
/// retrying the same batch is safe because every write is an upsert by id.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    pub patients: Vec<Patient>,
    pub history: Vec<HistoryEntry>,
    pub ground_truth: Vec<GroundTruth>,
    pub providers: Vec<Provider>,
    pub reviews: Vec<Review>,
    pub schedule_rules: Vec<ScheduleRule>,
    /// Days practices are closed (upserted by id, like rules; withdrawn, never deleted).
    pub closures: Vec<PracticeClosure>,
    pub appointments: Vec<Appointment>,
}

impl WriteBatch {
    /// Batches up to this many records are always one transaction on every backend.
    pub const ATOMIC_RECORDS: usize = 8_000;

    /// Splits into batches of about `max_records` records (more if one patient alone has
    /// more), never separating one patient's records. Records are grouped by the patient they
    /// belong to (reviews and appointments by their patient); providers, schedule rules and
    /// closures go into the first batch.
    pub fn split_by_patient(self, max_records: usize) -> Vec<WriteBatch> {
        use std::collections::BTreeMap;
        let mut by_patient: BTreeMap<HealthId, WriteBatch> = BTreeMap::new();
        for p in self.patients {
            by_patient.entry(p.id.clone()).or_default().patients.push(p);
        }
        for e in self.history {
            by_patient.entry(e.patient.clone()).or_default().history.push(e);
        }
        for g in self.ground_truth {
            by_patient.entry(g.patient.clone()).or_default().ground_truth.push(g);
        }
        for a in self.appointments {
            by_patient.entry(a.patient.clone()).or_default().appointments.push(a);
        }
        for r in self.reviews {
            by_patient.entry(r.patient.clone()).or_default().reviews.push(r);
        }
        let mut out = vec![WriteBatch {
            providers: self.providers,
            schedule_rules: self.schedule_rules,
            closures: self.closures,
            ..Default::default()
        }];
        for (_, group) in by_patient {
            let last = out.last_mut().expect("at least one batch");
            if !last.is_empty() && last.len() + group.len() > max_records {
                out.push(group);
            } else {
                last.patients.extend(group.patients);
                last.history.extend(group.history);
                last.ground_truth.extend(group.ground_truth);
                last.appointments.extend(group.appointments);
                last.reviews.extend(group.reviews);
            }
        }
        out.retain(|b| !b.is_empty());
        out
    }

    pub fn is_empty(&self) -> bool {
        self.patients.is_empty()
            && self.history.is_empty()
            && self.ground_truth.is_empty()
            && self.providers.is_empty()
            && self.reviews.is_empty()
            && self.schedule_rules.is_empty()
            && self.closures.is_empty()
            && self.appointments.is_empty()
    }

    pub fn len(&self) -> usize {
        self.patients.len()
            + self.history.len()
            + self.ground_truth.len()
            + self.providers.len()
            + self.reviews.len()
            + self.schedule_rules.len()
            + self.closures.len()
            + self.appointments.len()
    }
}

/// What [`Store::book`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Booked {
    /// The appointment as stored.
    pub appointment: Appointment,
    /// `false` when the id had been booked before (a retried request): nothing was written.
    pub created: bool,
}

impl Booked {
    /// Whether `stored` (under `requested`'s id) is the same booking request: same patient,
    /// provider and start (to the millisecond, which every backend keeps).
    pub fn same_request(stored: &Appointment, requested: &Appointment) -> bool {
        stored.patient == requested.patient
            && stored.provider == requested.provider
            && stored.start.timestamp_millis() == requested.start.timestamp_millis()
    }

    /// The conflict for an id reused with a different request.
    pub fn reused(requested: &Appointment) -> crate::StoreError {
        crate::StoreError::Conflict {
            entity: "appointment",
            key: requested.id.to_string(),
            reason: "this idempotency key was already used for a different booking",
        }
    }

    /// Checks that `a` may be moved (booked or confirmed, not yet started).
    pub fn check_movable(a: &Appointment) -> Result<()> {
        if matches!(a.status, AppointmentStatus::Booked | AppointmentStatus::Confirmed) {
            Ok(())
        } else {
            Err(crate::StoreError::Conflict {
                entity: "appointment",
                key: a.id.to_string(),
                reason: "only booked or confirmed appointments can be rescheduled",
            })
        }
    }
}

/// An audit event before the store seals it onto the chain.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: AuditAction,
    pub patient: Option<HealthId>,
    pub resource: String,
    pub outcome: AuditOutcome,
    pub reason: Option<String>,
}

/// How many of each thing a store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreCounts {
    pub patients: u64,
    pub providers: u64,
    pub reviews: u64,
    pub schedule_rules: u64,
    pub history_entries: u64,
    pub history_by_category: BTreeMap<String, u64>,
    pub appointments: u64,
    pub appointments_by_status: BTreeMap<String, u64>,
    pub ground_truth_by_condition: BTreeMap<String, u64>,
    pub prediction_sets: u64,
    pub consents: u64,
    pub audit_entries: u64,
    pub documents: u64,
    pub users: u64,
    pub feedback: u64,
}

/// Everything carelens keeps about patients, providers and their activity.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short backend name for messages: `sqlite`, `mongodb`.
    fn backend(&self) -> &'static str;

    /// Validates then writes all of `batch` atomically.
    async fn apply(&self, batch: WriteBatch) -> Result<()>;

    async fn get_patient(&self, id: &HealthId) -> Result<Option<Patient>>;
    async fn list_patients(&self, page: PageRequest) -> Result<Page<Patient>>;
    /// A patient's history in date order (ties by id).
    async fn history(&self, patient: &HealthId, filter: &HistoryFilter) -> Result<Vec<HistoryEntry>>;
    async fn ground_truth(&self, patient: &HealthId) -> Result<Vec<GroundTruth>>;

    async fn get_provider(&self, id: &ProviderId) -> Result<Option<Provider>>;
    async fn list_providers(&self, page: PageRequest) -> Result<Page<Provider>>;
    async fn reviews_for(&self, provider: &ProviderId) -> Result<Vec<Review>>;
    async fn schedule_rules_for(&self, provider: &ProviderId) -> Result<Vec<ScheduleRule>>;
    /// `provider`'s closures (withdrawn ones too), by first day.
    async fn closures_for(&self, provider: &ProviderId) -> Result<Vec<PracticeClosure>>;

    /// Books `appointment` exactly once; its id is the idempotency key (callers derive it from
    /// the client's key, so a retried request carries the same id). A new id claims the slot
    /// atomically (a unique index, not check-then-insert): [`crate::StoreError::Conflict`] if
    /// another appointment holds it. An id already booked for the same patient, provider and
    /// start returns the stored appointment (whatever its status now) with `created: false`;
    /// the same id for anything else is a conflict.
    async fn book(&self, appointment: &Appointment) -> Result<Booked>;
    /// Moves a booked or confirmed appointment to `start`–`end` with the same provider in one
    /// atomic write: the new slot is claimed and the old one freed together, or nothing changes
    /// ([`crate::StoreError::Conflict`] if the new slot is held).
    async fn reschedule(&self, id: &AppointmentId, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Appointment>;
    /// Moves an appointment along the status flow.
    async fn set_appointment_status(
        &self,
        id: &AppointmentId,
        status: AppointmentStatus,
        at: DateTime<Utc>,
    ) -> Result<Appointment>;
    async fn get_appointment(&self, id: &AppointmentId) -> Result<Option<Appointment>>;
    async fn appointments_for_patient(&self, patient: &HealthId) -> Result<Vec<Appointment>>;
    /// Appointments of `provider` starting in `[from, to)`.
    async fn appointments_for_provider(
        &self,
        provider: &ProviderId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Appointment>>;

    /// Replaces everything `source` lists (`carelens` for the own schedule, or a feed's name)
    /// with `listings` in one step: readers see the old set or the new one. A feed that fails
    /// to import is not replaced, so its last good listings stay.
    async fn replace_listings(&self, source: &str, listings: &[Opening]) -> Result<()>;
    /// Every source's listings (the input of a merge), by provider, then start.
    async fn listings(&self) -> Result<Vec<Opening>>;
    /// Replaces the merged, bookable openings in one step (readers see the old set or the new).
    async fn replace_openings(&self, openings: &[Opening]) -> Result<()>;
    /// `provider`'s openings starting in `[from, to)` that no appointment holds, by start.
    async fn openings_for(&self, provider: &ProviderId, from: DateTime<Utc>, to: DateTime<Utc>)
    -> Result<Vec<Opening>>;
    /// Per provider, the start of its earliest opening in `[from, to)` that no appointment
    /// holds (providers without one are absent), by provider.
    async fn earliest_openings(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(ProviderId, DateTime<Utc>)>>;

    /// Adds the messages the outbox does not hold yet (by id) and leaves the others as they
    /// are, so enqueueing again after a retry or a crash never duplicates a message. Returns
    /// how many were new.
    async fn enqueue_messages(&self, messages: &[OutboxMessage]) -> Result<usize>;
    /// Atomically claims up to `limit` pending messages whose next attempt is due by `now` and
    /// that no other worker holds, leasing them until `lease_until`: concurrent workers never
    /// claim the same message. Earliest first.
    async fn claim_messages(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>>;
    /// Records what became of a claimed message (sent, retry later, dead) and frees its lease.
    /// A message cancelled meanwhile stays cancelled.
    async fn finish_message(&self, message: &OutboxMessage) -> Result<()>;
    /// Cancels the pending messages about `subject` (an appointment moved or was cancelled,
    /// a patient turned medication reminders off); returns how many.
    async fn cancel_messages(&self, subject: &MessageSubject) -> Result<usize>;
    /// The messages about `subject`, by due time.
    async fn messages_for(&self, subject: &MessageSubject) -> Result<Vec<OutboxMessage>>;
    /// How many messages are in each state (`pending`, `sent`, `dead`, `cancelled`).
    async fn outbox_counts(&self) -> Result<BTreeMap<String, u64>>;

    /// Adds a new prediction-set version; [`crate::StoreError::Conflict`] if the version exists.
    async fn put_prediction_set(&self, set: &PredictionSet) -> Result<()>;
    async fn latest_prediction_set(&self, patient: &HealthId) -> Result<Option<PredictionSet>>;
    /// All versions, oldest first.
    async fn prediction_sets(&self, patient: &HealthId) -> Result<Vec<PredictionSet>>;

    /// Upserts a consent grant by id (revoking is an upsert with `revoked_at`).
    async fn put_consent(&self, grant: &ConsentGrant) -> Result<()>;
    async fn consents_for(&self, patient: &HealthId) -> Result<Vec<ConsentGrant>>;

    /// Seals `event` onto the audit hash chain and returns the sealed entry.
    async fn append_audit(&self, event: AuditEvent) -> Result<AuditEntry>;
    /// Up to `limit` entries with `seq > after_seq`, in order.
    async fn audit_log(&self, after_seq: u64, limit: u32) -> Result<Vec<AuditEntry>>;
    /// Like [`Store::audit_log`], with each entry's storage position (its row key, which is
    /// the `seq` it was written with): verifiers page by position, so entries whose `seq` was
    /// tampered with are still read once each.
    async fn audit_rows(&self, after_position: u64, limit: u32) -> Result<Vec<(u64, AuditEntry)>>;
    /// The entries about `patient`, newest first (at most `limit`): who touched their record.
    async fn audit_for_patient(&self, patient: &HealthId, limit: u32) -> Result<Vec<AuditEntry>>;
    /// Keeps a signed checkpoint of the chain (one per `seq`; the first one stays).
    async fn put_audit_checkpoint(&self, checkpoint: &AuditCheckpoint) -> Result<()>;
    /// Every checkpoint, by `seq`.
    async fn audit_checkpoints(&self) -> Result<Vec<AuditCheckpoint>>;

    /// Upserts a care team by id.
    async fn put_care_team(&self, team: &CareTeam) -> Result<()>;
    async fn get_care_team(&self, id: &CareTeamId) -> Result<Option<CareTeam>>;
    /// Every care team, by creation time.
    async fn list_care_teams(&self) -> Result<Vec<CareTeam>>;

    /// Upserts a prescription by id (dispensings and refill requests are recorded on it).
    async fn put_prescription(&self, rx: &Prescription) -> Result<()>;
    async fn get_prescription(&self, id: &PrescriptionId) -> Result<Option<Prescription>>;
    /// A patient's prescriptions, oldest first.
    async fn prescriptions_for(&self, patient: &HealthId) -> Result<Vec<Prescription>>;

    async fn put_document(&self, doc: &DocumentRef) -> Result<()>;
    async fn get_document(&self, id: &DocumentId) -> Result<Option<DocumentRef>>;
    async fn documents_for(&self, patient: &HealthId) -> Result<Vec<DocumentRef>>;

    /// Upserts a user by id; [`crate::StoreError::Conflict`] if another user has the username.
    async fn put_user(&self, user: &User) -> Result<()>;
    async fn get_user(&self, id: &UserId) -> Result<Option<User>>;
    async fn user_by_name(&self, username: &str) -> Result<Option<User>>;
    /// All users, by username.
    async fn list_users(&self) -> Result<Vec<User>>;

    /// Stores a doctor's verdict (upsert by id).
    async fn put_feedback(&self, feedback: &Feedback) -> Result<()>;
    /// A patient's feedback, oldest first.
    async fn feedback_for(&self, patient: &HealthId) -> Result<Vec<Feedback>>;
    /// All feedback, oldest first (ties by id), for exporting labels.
    async fn all_feedback(&self) -> Result<Vec<Feedback>>;

    /// Small key/value settings (population provenance, model registry pointers, …).
    async fn get_meta(&self, key: &str) -> Result<Option<String>>;
    async fn set_meta(&self, key: &str, value: &str) -> Result<()>;
    /// All meta entries, sorted by key.
    async fn list_meta(&self) -> Result<Vec<(String, String)>>;

    async fn counts(&self) -> Result<StoreCounts>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::fixtures::*;

    #[test]
    fn splitting_never_separates_a_patient() {
        let patients: Vec<Patient> = (0..10).map(patient).collect();
        let mut history = Vec::new();
        for (i, p) in patients.iter().enumerate() {
            for k in 0..(i + 1) {
                history.push(diagnosis((i * 100 + k) as u128, &p.id, date(2020, 1, 1), "I10"));
            }
        }
        let batch = WriteBatch { patients, history, providers: vec![provider(1)], ..Default::default() };
        let total = batch.len();
        let parts = batch.split_by_patient(7);
        assert!(parts.len() > 3, "{}", parts.len());
        assert_eq!(parts.iter().map(WriteBatch::len).sum::<usize>(), total);
        assert_eq!(parts[0].providers.len(), 1);
        for part in &parts {
            let ids: std::collections::HashSet<_> = part.patients.iter().map(|p| &p.id).collect();
            assert!(part.history.iter().all(|e| ids.contains(&e.patient)), "history split from its patient");
            // Over the limit only when a single patient needs it.
            assert!(part.len() <= 7 || part.patients.len() == 1 || !part.providers.is_empty());
        }
    }
}
