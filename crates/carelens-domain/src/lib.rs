//! carelens domain model: the types every module shares, and their validation.
//!
//! No IO lives here. Newtypes (`HealthId`, `Icd10Code`, `Probability`, …) are valid by
//! construction: parsing and deserialising both go through the same check. Structs with
//! invariants spanning several fields implement [`Validate`]; their constructors call it,
//! and every store calls it again before writing.

mod audit;
mod care_team;
mod codes;
mod condition;
mod consent;
mod document;
mod error;
mod history;
mod ids;
mod message;
mod patient;
pub mod places;
mod prediction;
mod prescription;
mod provider;
mod user;

pub use audit::{Actor, ActorRole, AuditAction, AuditCheckpoint, AuditEntry, AuditOutcome, GENESIS_HASH, verify_chain};
pub use care_team::{CareTeam, MAX_TEAM_MEMBERS};
pub use codes::{AtcCode, CvxCode, Icd10Code, LabDef, LoincCode, VaccineCode, lab_catalogue, lab_def};
pub use condition::{Condition, GroundTruth};
pub use consent::{ConsentGrant, EMERGENCY_HOURS, Grantee, MAX_EMERGENCY_REASON, MIN_EMERGENCY_REASON};
pub use document::{DocumentEncryption, DocumentKind, DocumentRef, DocumentSignature, WrappedKey};
pub use error::{DomainError, Result};
pub use history::{
    Allergy, AllergySeverity, BodyPart, Category, ClinicalStatus, Coding, Diagnosis, Dose, HistoryEntry, HistoryKind,
    ImageFinding, ImagingInstance, ImagingStudy, MedicationStatement, Modality, Observation, Procedure, ProcedureKind,
    ReferenceRange, Source, SourceKind, Supersession, TherapyModality, TherapySession, Vaccination, is_dicom_uid,
};
pub use ids::{
    AppointmentId, CareTeamId, ClosureId, ConsentId, DocumentId, EntryId, FeedbackId, HealthId, ObjectKey,
    PredictionSetId, PrescriptionId, ProviderId, ReviewId, RuleId, UserId,
};
pub use message::{MessageKind, MessageState, MessageSubject, OutboxMessage, prescription_message_id, valid_email};
pub use patient::{GeoPoint, Insurance, InsuranceKind, Patient, PersonName, Residence, Sex};
pub use prediction::{
    DiagnosisPrediction, EvidenceKind, EvidenceRef, ModelRef, PredictionSet, Probability, RiskBand, SourceProbability,
};
pub use prescription::{Dispensing, MAX_REMINDER_TIMES, Prescription, PrescriptionStatus, RefillRequest, RefillState};
pub use provider::{
    Address, Appointment, AppointmentStatus, LanguageCode, Opening, PracticeClosure, Provenance, Provider,
    ProviderKind, RatingSummary, Review, ScheduleRule, Slot, SlotSource, Specialty, VisitType,
};
pub use user::{Feedback, MAX_COMMENT, Role, SigningKeyRecord, User, Verdict, valid_username};

/// Checks the invariants of a value that spans several fields.
pub trait Validate {
    /// Returns the first violated invariant, naming the field.
    fn validate(&self) -> Result<()>;
}

impl<T: Validate> Validate for [T] {
    fn validate(&self) -> Result<()> {
        self.iter().try_for_each(Validate::validate)
    }
}
