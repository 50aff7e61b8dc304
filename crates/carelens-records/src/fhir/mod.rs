//! FHIR R4 import and export (issue #9).
//!
//! [`parse_bundle`] turns a bundle into patients and history entries (SNOMED CT, RxNorm, LOINC
//! and CVX codes mapped through the tables in `maps/`, the source coding kept beside carelens's
//! own code); [`export_bundle`] writes a patient's record back as a `collection` bundle. What an
//! export writes, an import reads back unchanged (see `tests/fhir.rs`). [`import_files`] and
//! [`export_patient`] do the same through the store traits.

mod export;
mod import;
pub mod maps;
mod store;

pub use export::{RecordExport, export_bundle};
pub use import::{
    BundleReport, IMPORTED_TYPES, ImportedBundle, Problem, UNKNOWN_INSURER, UNKNOWN_POSTCODE, parse_bundle,
};
pub use store::{FileOutcome, ImportSummary, MAX_BUNDLE_BYTES, export_patient, import_files};

/// carelens's own identifier and extension namespace.
pub const HEALTH_ID_SYSTEM: &str = "https://carelens.dev/fhir/sid/health-id";
pub const ENTRY_ID_SYSTEM: &str = "https://carelens.dev/fhir/sid/entry-id";
pub const SOURCE_EXT: &str = "https://carelens.dev/fhir/StructureDefinition/source";
pub const CATEGORY_EXT: &str = "https://carelens.dev/fhir/StructureDefinition/category";
pub const INSURANCE_EXT: &str = "https://carelens.dev/fhir/StructureDefinition/insurance";
pub const SEVERITY_EXT: &str = "https://carelens.dev/fhir/StructureDefinition/allergy-severity";
pub const THERAPY_DURATION_EXT: &str = "https://carelens.dev/fhir/StructureDefinition/therapy-duration-minutes";
pub const BODY_PART_EXT: &str = "https://carelens.dev/fhir/StructureDefinition/body-part";
/// Marks a MedicationRequest that is a carelens e-prescription (its medication is exported as
/// a MedicationStatement too, so an import skips the request).
pub const PRESCRIPTION_EXT: &str = "https://carelens.dev/fhir/StructureDefinition/prescription";
pub const THERAPY_SYSTEM: &str = "https://carelens.dev/fhir/CodeSystem/therapy-modality";
pub const PROCEDURE_KIND_SYSTEM: &str = "https://carelens.dev/fhir/CodeSystem/procedure-kind";

/// A stable 128-bit id from parts (SHA-256 of the parts, NUL-separated): the same resource
/// always gets the same carelens id, so re-importing updates in place.
pub(crate) fn stable_id(parts: &[&str]) -> u128 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    u128::from_be_bytes(b)
}

#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    #[error("not JSON at line {line}, column {column}: {message}")]
    Json { line: usize, column: usize, message: String },
    #[error("expected resourceType `Bundle`, found `{found}`")]
    NotABundle { found: String },
    #[error("{bytes} bytes is more than the {limit}-byte limit for one bundle")]
    TooLarge { bytes: u64, limit: u64 },
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] carelens_store::StoreError),
}

/// Every FHIR R4 (4.0.1) resource type.
pub const R4_RESOURCE_TYPES: &[&str] = &[
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];
