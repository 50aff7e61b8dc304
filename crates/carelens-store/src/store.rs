use std::collections::BTreeMap;

use async_trait::async_trait;
use carelens_domain::{
    Actor, Appointment, AppointmentId, AppointmentStatus, AuditAction, AuditEntry, AuditOutcome, Category,
    ConsentGrant, DocumentId, DocumentRef, GroundTruth, HealthId, HistoryEntry, Patient, PredictionSet, Provider,
    ProviderId, Review, ScheduleRule,
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
}

impl HistoryFilter {
    pub fn matches(&self, e: &HistoryEntry) -> bool {
        (self.categories.is_empty() || self.categories.contains(&e.category()))
            && self.from.is_none_or(|f| e.date >= f)
            && self.to.is_none_or(|t| e.date <= t)
    }
}

/// Writes that land together or not at all. Items are upserted by id, except appointments,
/// which additionally must not take a slot another appointment holds.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    pub patients: Vec<Patient>,
    pub history: Vec<HistoryEntry>,
    pub ground_truth: Vec<GroundTruth>,
    pub providers: Vec<Provider>,
    pub reviews: Vec<Review>,
    pub schedule_rules: Vec<ScheduleRule>,
    pub appointments: Vec<Appointment>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.patients.is_empty()
            && self.history.is_empty()
            && self.ground_truth.is_empty()
            && self.providers.is_empty()
            && self.reviews.is_empty()
            && self.schedule_rules.is_empty()
            && self.appointments.is_empty()
    }

    pub fn len(&self) -> usize {
        self.patients.len()
            + self.history.len()
            + self.ground_truth.len()
            + self.providers.len()
            + self.reviews.len()
            + self.schedule_rules.len()
            + self.appointments.len()
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

    /// Books an appointment; [`crate::StoreError::Conflict`] if another appointment holds the slot.
    async fn book(&self, appointment: &Appointment) -> Result<()>;
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

    async fn put_document(&self, doc: &DocumentRef) -> Result<()>;
    async fn get_document(&self, id: &DocumentId) -> Result<Option<DocumentRef>>;
    async fn documents_for(&self, patient: &HealthId) -> Result<Vec<DocumentRef>>;

    /// Small key/value settings (population provenance, model registry pointers, …).
    async fn get_meta(&self, key: &str) -> Result<Option<String>>;
    async fn set_meta(&self, key: &str, value: &str) -> Result<()>;

    async fn counts(&self) -> Result<StoreCounts>;
}
