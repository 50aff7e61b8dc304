//! A patient's history: one [`HistoryEntry`] per dated fact, each with its source.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::Validate;
use crate::codes::{AtcCode, Icd10Code, LoincCode, VaccineCode, lab_def};
use crate::error::{Result, ensure};
use crate::ids::{EntryId, HealthId, ObjectKey};

/// The categories consent and the record timeline work with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Diagnosis,
    Observation,
    Vaccination,
    Allergy,
    Procedure,
    Medication,
    /// Therapy sessions, psychiatric medication and chapter-V (F) diagnoses: never shared by default.
    MentalHealth,
    Imaging,
}

impl Category {
    pub const ALL: [Category; 8] = [
        Self::Diagnosis,
        Self::Observation,
        Self::Vaccination,
        Self::Allergy,
        Self::Procedure,
        Self::Medication,
        Self::MentalHealth,
        Self::Imaging,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Diagnosis => "diagnosis",
            Self::Observation => "observation",
            Self::Vaccination => "vaccination",
            Self::Allergy => "allergy",
            Self::Procedure => "procedure",
            Self::Medication => "medication",
            Self::MentalHealth => "mental_health",
            Self::Imaging => "imaging",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Made by the synthetic population generator.
    Synthetic,
    /// Recorded by a clinician (reference = provider id).
    Clinician,
    /// Reported by the patient.
    Patient,
    /// Imported from another system (reference = system / file).
    Import,
    /// Measured by a device.
    Device,
}

/// Where an entry came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub kind: SourceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl Source {
    pub fn synthetic() -> Self {
        Self { kind: SourceKind::Synthetic, reference: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClinicalStatus {
    Active,
    Resolved,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub code: Icd10Code,
    pub display: String,
    pub status: ClinicalStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReferenceRange {
    pub low: f64,
    pub high: f64,
}

/// A lab result or vital sign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub code: LoincCode,
    pub display: String,
    pub value: f64,
    pub unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_range: Option<ReferenceRange>,
}

impl Observation {
    /// An observation of a catalogued lab test, with its unit and reference range filled in.
    pub fn catalogued(code: &str, value: f64) -> Result<Self> {
        let code: LoincCode = code.parse()?;
        let def =
            lab_def(&code).ok_or_else(|| crate::error::invalid("observation.code", "not in the lab catalogue"))?;
        let o = Self {
            display: def.display.into(),
            unit: def.unit.into(),
            reference_range: Some(ReferenceRange { low: def.ref_low, high: def.ref_high }),
            code,
            value,
        };
        o.validate()?;
        Ok(o)
    }

    /// Outside the reference range (when one is known).
    pub fn is_abnormal(&self) -> bool {
        self.reference_range.is_some_and(|r| self.value < r.low || self.value > r.high)
    }
}

impl Validate for Observation {
    fn validate(&self) -> Result<()> {
        ensure(self.value.is_finite(), "observation.value", || "must be a finite number".into())?;
        ensure(!self.unit.trim().is_empty(), "observation.unit", || "must not be empty".into())?;
        if let Some(r) = self.reference_range {
            ensure(r.low.is_finite() && r.high.is_finite() && r.low <= r.high, "observation.reference_range", || {
                "low must not exceed high".into()
            })?;
        }
        if let Some(def) = lab_def(&self.code) {
            ensure(self.unit == def.unit, "observation.unit", || {
                format!("LOINC {} is recorded in `{}`", def.loinc, def.unit)
            })?;
            ensure(self.value >= def.min_possible, "observation.value", || {
                format!(
                    "below the physically possible minimum {} {} for LOINC {}",
                    def.min_possible, def.unit, def.loinc
                )
            })?;
            ensure(self.value <= def.max_possible, "observation.value", || {
                format!(
                    "above the physically possible maximum {} {} for LOINC {}",
                    def.max_possible, def.unit, def.loinc
                )
            })?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vaccination {
    pub vaccine: VaccineCode,
    pub display: String,
    /// 1 for the first dose of a series; boosters continue the count.
    pub dose_number: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllergySeverity {
    Mild,
    Moderate,
    Severe,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allergy {
    pub substance: String,
    /// ATC code for drug allergies, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substance_code: Option<AtcCode>,
    pub reaction: String,
    pub severity: AllergySeverity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcedureKind {
    Surgery,
    Childbirth,
    /// Diagnostic or therapeutic procedures that are not surgery (e.g. cast, endoscopy).
    Procedure,
    /// Other major life/medical events (e.g. stroke rehab admission, intensive care stay).
    MajorEvent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Procedure {
    pub kind: ProcedureKind,
    /// OPS (German procedure classification) code, when known: `5-790`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops_code: Option<String>,
    pub display: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dose {
    pub amount: f64,
    pub unit: String,
    /// Free-text frequency as prescribed: `1-0-1`, `daily`, `as needed`.
    pub frequency: String,
}

/// A medication taken from `start` until `end` (open = current).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MedicationStatement {
    pub code: AtcCode,
    pub display: String,
    pub dose: Dose,
    pub start: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<NaiveDate>,
}

impl MedicationStatement {
    /// Taken on `on`.
    pub fn is_current(&self, on: NaiveDate) -> bool {
        self.start <= on && self.end.is_none_or(|e| e >= on)
    }
}

impl Validate for MedicationStatement {
    fn validate(&self) -> Result<()> {
        ensure(self.dose.amount.is_finite() && self.dose.amount > 0.0, "medication.dose.amount", || {
            "must be a positive number".into()
        })?;
        ensure(!self.dose.unit.trim().is_empty(), "medication.dose.unit", || "must not be empty".into())?;
        ensure(self.end.is_none_or(|e| e >= self.start), "medication.end", || {
            "must not be before medication.start".into()
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TherapyModality {
    CognitiveBehavioural,
    Psychodynamic,
    Systemic,
    Group,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TherapySession {
    pub modality: TherapyModality,
    pub duration_minutes: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Modality {
    /// Projection radiography (DICOM CR/DX).
    #[serde(rename = "xray")]
    XRay,
    #[serde(rename = "mri")]
    Mri,
    #[serde(rename = "ct")]
    Ct,
    /// Anything else DICOM carries (ultrasound, nuclear medicine, secondary capture, …);
    /// the DICOM code is kept on each instance.
    #[serde(rename = "other")]
    Other,
}

impl Modality {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::XRay => "xray",
            Self::Mri => "mri",
            Self::Ct => "ct",
            Self::Other => "other",
        }
    }

    /// From a DICOM Modality (0008,0060) code.
    pub fn from_dicom(code: &str) -> Self {
        match code.trim().to_ascii_uppercase().as_str() {
            "CR" | "DX" | "DR" | "RG" | "MG" => Self::XRay,
            "MR" => Self::Mri,
            "CT" => Self::Ct,
            _ => Self::Other,
        }
    }
}

impl BodyPart {
    /// From a DICOM Body Part Examined (0018,0015) value.
    pub fn from_dicom(value: &str) -> Self {
        match value.trim().to_ascii_uppercase().as_str() {
            "CHEST" | "THORAX" | "LUNG" | "HEART" => Self::Chest,
            "HEAD" | "BRAIN" | "SKULL" => Self::Head,
            "ABDOMEN" | "KIDNEY" | "LIVER" | "ABDOMENPELVIS" => Self::Abdomen,
            "SPINE" | "CSPINE" | "TSPINE" | "LSPINE" => Self::Spine,
            "PELVIS" => Self::Pelvis,
            "HIP" => Self::Hip,
            "KNEE" => Self::Knee,
            "WRIST" => Self::Wrist,
            "HAND" => Self::Hand,
            "FOOT" | "ANKLE" => Self::Foot,
            _ => Self::Other,
        }
    }
}

/// A finding visible on an image: the per-image labels of synthetic studies, and what image
/// models predict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageFinding {
    /// Lobar opacity (pneumonia).
    Consolidation,
    /// Blunted costophrenic angle.
    PleuralEffusion,
    /// Cardiothoracic ratio above 0.5.
    Cardiomegaly,
    LungNodule,
    /// Enhancing intracranial mass.
    BrainMass,
    KidneyStone,
}

impl ImageFinding {
    pub const ALL: [ImageFinding; 6] = [
        Self::Consolidation,
        Self::PleuralEffusion,
        Self::Cardiomegaly,
        Self::LungNodule,
        Self::BrainMass,
        Self::KidneyStone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consolidation => "consolidation",
            Self::PleuralEffusion => "pleural_effusion",
            Self::Cardiomegaly => "cardiomegaly",
            Self::LungNodule => "lung_nodule",
            Self::BrainMass => "brain_mass",
            Self::KidneyStone => "kidney_stone",
        }
    }
}

/// One stored image (DICOM instance or PNG/JPEG file) of a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagingInstance {
    pub series_uid: String,
    pub sop_instance_uid: String,
    /// The original bytes, content-addressed in the object store.
    pub object_key: ObjectKey,
    /// DICOM Modality code (CT, MR, CR, DX, US, …), or PNG/JPEG for raster files.
    pub source_modality: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_number: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_number: Option<i32>,
    /// Position along the slice normal, for ordering CT/MR series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice_position: Option<f64>,
    pub rows: u32,
    pub columns: u32,
    pub frames: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_syntax: Option<String>,
    /// Known findings (synthetic studies carry their ground truth; empty = normal or unknown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<ImageFinding>,
    /// `Some(true)` when the pixels carry burned-in text (kept out of de-identified exports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burned_in_annotation: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyPart {
    Chest,
    Head,
    Abdomen,
    Spine,
    Pelvis,
    Hip,
    Knee,
    Wrist,
    Hand,
    Foot,
    Other,
}

/// An imaging study; the images themselves live in the object store under `object_keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagingStudy {
    pub modality: Modality,
    pub body_part: BodyPart,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_uid: Option<String>,
    pub description: String,
    #[serde(default)]
    pub object_keys: Vec<ObjectKey>,
    /// The stored images, one per DICOM instance or raster file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<ImagingInstance>,
}

impl Validate for ImagingStudy {
    fn validate(&self) -> Result<()> {
        if let Some(uid) = &self.study_uid {
            ensure(is_dicom_uid(uid), "imaging.study_uid", || {
                "expected a DICOM UID (digits and dots, at most 64)".into()
            })?;
        }
        Ok(())
    }
}

/// Whether `uid` is a DICOM UID: digits and dots, at most 64 characters, no leading or
/// trailing dot.
pub fn is_dicom_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !uid.starts_with('.')
        && !uid.ends_with('.')
}

/// What an entry records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HistoryKind {
    Diagnosis(Diagnosis),
    Observation(Observation),
    Vaccination(Vaccination),
    Allergy(Allergy),
    /// Procedures and major events (surgery, childbirth, …).
    Procedure(Procedure),
    Medication(MedicationStatement),
    TherapySession(TherapySession),
    PsychiatricMedication(MedicationStatement),
    ImagingStudy(ImagingStudy),
}

/// A code as another system recorded it (a FHIR `Coding`): SNOMED CT, RxNorm, LOINC, CVX …
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Coding {
    /// The code system's URI, e.g. `http://snomed.info/sct`.
    pub system: String,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// One dated fact in a patient's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: EntryId,
    pub patient: HealthId,
    pub date: NaiveDate,
    pub source: Source,
    #[serde(flatten)]
    pub kind: HistoryKind,
    /// The code the source system used, when it is not carelens's own (an imported SNOMED CT
    /// condition mapped to ICD-10, an RxNorm drug mapped to ATC): exports give it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_coding: Option<Coding>,
    /// Set when a correction replaced this entry. The entry itself is kept unchanged, so the
    /// record shows what was there, who corrected it, when and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded: Option<Supersession>,
    /// The entry this one corrects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrects: Option<EntryId>,
}

/// Who replaced an entry with a correction, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supersession {
    /// The correcting entry.
    pub by: EntryId,
    pub at: chrono::DateTime<chrono::Utc>,
    /// The user id of the clinician who corrected it.
    pub author: String,
    pub reason: String,
}

impl HistoryEntry {
    pub fn new(id: EntryId, patient: HealthId, date: NaiveDate, source: Source, kind: HistoryKind) -> Result<Self> {
        let e = Self { id, patient, date, source, kind, source_coding: None, superseded: None, corrects: None };
        e.validate()?;
        Ok(e)
    }

    /// The same entry, remembering the source system's code.
    pub fn with_source_coding(mut self, coding: Coding) -> Self {
        self.source_coding = Some(coding);
        self
    }

    /// The consent category; F-coded diagnoses and psychiatric medication count as mental health.
    pub fn category(&self) -> Category {
        match &self.kind {
            HistoryKind::Diagnosis(d) if d.code.is_mental_health() => Category::MentalHealth,
            HistoryKind::Diagnosis(_) => Category::Diagnosis,
            HistoryKind::Observation(_) => Category::Observation,
            HistoryKind::Vaccination(_) => Category::Vaccination,
            HistoryKind::Allergy(_) => Category::Allergy,
            HistoryKind::Procedure(_) => Category::Procedure,
            HistoryKind::Medication(_) => Category::Medication,
            HistoryKind::TherapySession(_) | HistoryKind::PsychiatricMedication(_) => Category::MentalHealth,
            HistoryKind::ImagingStudy(_) => Category::Imaging,
        }
    }

    /// The entry's main code (ICD-10, LOINC, ATC, CVX), for indexing.
    pub fn code(&self) -> Option<&str> {
        match &self.kind {
            HistoryKind::Diagnosis(d) => Some(d.code.as_str()),
            HistoryKind::Observation(o) => Some(o.code.as_str()),
            HistoryKind::Vaccination(v) => Some(match &v.vaccine {
                VaccineCode::Cvx(c) => c.as_str(),
                VaccineCode::Atc(c) => c.as_str(),
            }),
            HistoryKind::Allergy(a) => a.substance_code.as_ref().map(AtcCode::as_str),
            HistoryKind::Procedure(p) => p.ops_code.as_deref(),
            HistoryKind::Medication(m) | HistoryKind::PsychiatricMedication(m) => Some(m.code.as_str()),
            HistoryKind::TherapySession(_) | HistoryKind::ImagingStudy(_) => None,
        }
    }
}

impl Validate for HistoryEntry {
    fn validate(&self) -> Result<()> {
        match &self.kind {
            HistoryKind::Diagnosis(d) => {
                ensure(!d.display.trim().is_empty(), "diagnosis.display", || "must not be empty".into())
            }
            HistoryKind::Observation(o) => o.validate(),
            HistoryKind::Vaccination(v) => {
                ensure(v.dose_number >= 1, "vaccination.dose_number", || "starts at 1".into())
            }
            HistoryKind::Allergy(a) => {
                ensure(!a.substance.trim().is_empty(), "allergy.substance", || "must not be empty".into())
            }
            HistoryKind::Procedure(p) => {
                ensure(!p.display.trim().is_empty(), "procedure.display", || "must not be empty".into())
            }
            HistoryKind::Medication(m) | HistoryKind::PsychiatricMedication(m) => m.validate(),
            HistoryKind::TherapySession(t) => {
                ensure((1..=600).contains(&t.duration_minutes), "therapy_session.duration_minutes", || {
                    "must be within 1..=600".into()
                })
            }
            HistoryKind::ImagingStudy(s) => s.validate(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: HistoryKind) -> Result<HistoryEntry> {
        HistoryEntry::new(
            EntryId::from_u128(1),
            HealthId::from_number(1),
            NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
            Source::synthetic(),
            kind,
        )
    }

    fn med(start: (i32, u32, u32), end: Option<(i32, u32, u32)>, amount: f64) -> MedicationStatement {
        let d = |(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        MedicationStatement {
            code: "A10BA02".parse().unwrap(),
            display: "Metformin".into(),
            dose: Dose { amount, unit: "mg".into(), frequency: "1-0-1".into() },
            start: d(start),
            end: end.map(d),
        }
    }

    #[track_caller]
    fn check_invalid(kind: HistoryKind, field: &str) {
        let err = entry(kind).unwrap_err().to_string();
        assert!(err.starts_with(&format!("invalid {field}:")), "expected {field}, got {err}");
    }

    #[test]
    fn invalid_entries_name_the_field() {
        let mut negative_hba1c = Observation::catalogued("4548-4", 7.0).unwrap();
        negative_hba1c.value = -3.0;
        check_invalid(HistoryKind::Observation(negative_hba1c), "observation.value");
        let mut nan = Observation::catalogued("2345-7", 100.0).unwrap();
        nan.value = f64::NAN;
        check_invalid(HistoryKind::Observation(nan), "observation.value");
        let mut wrong_unit = Observation::catalogued("2345-7", 100.0).unwrap();
        wrong_unit.unit = "mmol/L".into();
        check_invalid(HistoryKind::Observation(wrong_unit), "observation.unit");
        check_invalid(HistoryKind::Medication(med((2024, 3, 1), Some((2024, 2, 1)), 500.0)), "medication.end");
        check_invalid(HistoryKind::PsychiatricMedication(med((2024, 3, 1), None, 0.0)), "medication.dose.amount");
        check_invalid(
            HistoryKind::TherapySession(TherapySession { modality: TherapyModality::Group, duration_minutes: 0 }),
            "therapy_session.duration_minutes",
        );
        check_invalid(
            HistoryKind::Vaccination(Vaccination {
                vaccine: VaccineCode::Atc("J07BD52".parse().unwrap()),
                display: "MMR".into(),
                dose_number: 0,
            }),
            "vaccination.dose_number",
        );
        check_invalid(
            HistoryKind::ImagingStudy(ImagingStudy {
                modality: Modality::Ct,
                body_part: BodyPart::Chest,
                study_uid: Some("1.2.x".into()),
                description: "CT chest".into(),
                object_keys: vec![],
                instances: vec![],
            }),
            "imaging.study_uid",
        );
    }

    #[test]
    fn categories_put_mental_health_apart() {
        let dx = |code: &str| {
            entry(HistoryKind::Diagnosis(Diagnosis {
                code: code.parse().unwrap(),
                display: "x".into(),
                status: ClinicalStatus::Active,
            }))
            .unwrap()
        };
        assert_eq!(dx("E11.9").category(), Category::Diagnosis);
        assert_eq!(dx("F32.1").category(), Category::MentalHealth);
        assert_eq!(
            entry(HistoryKind::PsychiatricMedication(med((2024, 1, 1), None, 50.0))).unwrap().category(),
            Category::MentalHealth
        );
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Some(c));
        }
    }

    #[test]
    fn current_medication() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let open = med((2024, 1, 1), None, 500.0);
        assert!(open.is_current(d(2030, 1, 1)) && !open.is_current(d(2023, 12, 31)));
        let closed = med((2024, 1, 1), Some((2024, 6, 30)), 500.0);
        assert!(closed.is_current(d(2024, 6, 30)) && !closed.is_current(d(2024, 7, 1)));
    }

    #[test]
    fn json_shape_is_flat_and_round_trips() {
        let e = entry(HistoryKind::Observation(Observation::catalogued("4548-4", 7.2).unwrap())).unwrap();
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], "observation");
        assert_eq!(json["code"], "4548-4");
        assert_eq!(json["unit"], "%");
        let back: HistoryEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
        assert!(e.kind == back.kind && matches!(&back.kind, HistoryKind::Observation(o) if o.is_abnormal()));
    }
}
