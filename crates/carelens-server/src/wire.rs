//! The JSON the API speaks. Domain types never go on the wire directly: they convert here, so
//! a domain refactor cannot silently change the API (and the OpenAPI document describes
//! exactly these types).

use carelens_domain::{
    EvidenceKind, Feedback, HistoryEntry, HistoryKind, Patient, PredictionSet, RiskBand, User, Verdict,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::jobs::Job;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub token_type: &'static str,
    pub expires_at: DateTime<Utc>,
    pub user: Me,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub id: String,
    pub username: String,
    /// `admin`, `doctor`, `patient`, `analyst` or `ml-engineer`.
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
}

/// One entry of a patient's access log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessEntry {
    /// Position in the tamper-evident audit chain.
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// The account (user name), or `system`.
    pub who: String,
    /// `doctor`, `patient`, `admin`, `analyst`, `ml_engineer` or `system`
    pub role: String,
    /// `read`, `create`, `update`, `delete`, `export`, `share` or `break_glass`
    pub action: String,
    /// What part of the record: `history`, `predictions`, `appointments`, …
    pub what: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&crate::auth::Claims> for Me {
    fn from(c: &crate::auth::Claims) -> Self {
        Self {
            id: c.sub.to_string(),
            username: c.name.clone(),
            role: c.role.as_str().into(),
            provider: c.provider.as_ref().map(|p| p.as_str().to_string()),
            patient: c.patient.as_ref().map(|p| p.as_str().to_string()),
        }
    }
}

/// Completed years at `on`.
pub fn age_at(birth: NaiveDate, on: NaiveDate) -> u32 {
    on.years_since(birth).unwrap_or(0)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PatientSummary {
    pub id: String,
    pub given_name: String,
    pub family_name: String,
    pub birth_date: NaiveDate,
    pub age: u32,
    pub sex: &'static str,
    pub city: String,
    /// The latest appointment with your practice before now, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_visit: Option<DateTime<Utc>>,
    /// The next appointment with your practice, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_visit: Option<DateTime<Utc>>,
}

impl PatientSummary {
    pub fn new(p: &Patient, today: NaiveDate) -> Self {
        Self {
            id: p.id.as_str().to_string(),
            given_name: p.name.given.clone(),
            family_name: p.name.family.clone(),
            birth_date: p.birth_date,
            age: age_at(p.birth_date, today),
            sex: p.sex.as_str(),
            city: p.residence.city.clone(),
            last_visit: None,
            next_visit: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PatientList {
    pub patients: Vec<PatientSummary>,
    /// More patients matched than `limit` allowed.
    pub truncated: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelRefView {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceView {
    pub model: String,
    pub version: String,
    /// The model's own label (e.g. `consolidation`).
    pub label: String,
    pub probability: f64,
    /// This source's share of the fused log-odds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contribution: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HeatmapView {
    /// Where to GET the PNG overlay (same bearer token).
    pub url: String,
    pub model: String,
    pub label: String,
    pub method: String,
    /// The largest drop in the model's logit when a patch is masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_logit_drop: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeatureView {
    pub feature: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    pub log_odds: f64,
    /// `raises` or `lowers` the probability.
    pub direction: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeatureEvidenceView {
    pub model: String,
    pub method: String,
    pub features: Vec<FeatureView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiagnosisView {
    /// ICD-10 code.
    pub code: String,
    pub display: String,
    /// Fused, calibrated probability.
    pub probability: f64,
    /// `low`, `medium` or `high`.
    pub risk_band: &'static str,
    /// The operating threshold: high at or above it, medium at or above half of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Already recorded for the patient: shown as known, not as a suggestion.
    pub known: bool,
    pub sources: Vec<SourceView>,
    pub heatmaps: Vec<HeatmapView>,
    pub features: Vec<FeatureEvidenceView>,
    /// Your latest verdict on this diagnosis in this set, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<&'static str>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PredictionSetView {
    pub id: String,
    pub patient: String,
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub models: Vec<ModelRefView>,
    /// Fusion method and its parameters.
    #[schema(value_type = Object)]
    pub fusion: serde_json::Value,
    pub input_fingerprint: String,
    /// Suggestions first (highest probability first), then known diagnoses.
    pub predictions: Vec<DiagnosisView>,
}

pub fn band(b: RiskBand) -> &'static str {
    match b {
        RiskBand::Low => "low",
        RiskBand::Medium => "medium",
        RiskBand::High => "high",
    }
}

pub fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Confirmed => "confirmed",
        Verdict::Rejected => "rejected",
    }
}

impl PredictionSetView {
    /// `feedback` is the caller's feedback on this patient, oldest first.
    pub fn new(set: &PredictionSet, feedback: &[Feedback], visible: impl Fn(&str) -> bool) -> Self {
        let patient = set.patient.as_str();
        let mut predictions: Vec<DiagnosisView> = set
            .predictions
            .iter()
            .filter(|d| visible(d.code.as_str()))
            .map(|d| {
                let mut heatmaps = Vec::new();
                let mut features = Vec::new();
                for e in &d.evidence {
                    let text = |k: &str| e.detail.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
                    match e.kind {
                        EvidenceKind::Heatmap => {
                            if let Some(digest) = e.object_key.as_ref().and_then(|k| k.as_str().rsplit('/').next()) {
                                heatmaps.push(HeatmapView {
                                    url: format!("/api/v1/patients/{patient}/evidence/{digest}"),
                                    model: text("model"),
                                    label: text("label"),
                                    method: text("method"),
                                    max_logit_drop: e.detail.get("max_logit_drop").and_then(|v| v.as_f64()),
                                });
                            }
                        }
                        EvidenceKind::Features => features.push(FeatureEvidenceView {
                            model: text("model"),
                            method: text("method"),
                            features: e
                                .detail
                                .get("features")
                                .and_then(|f| f.as_array())
                                .map(|rows| {
                                    rows.iter()
                                        .map(|r| FeatureView {
                                            feature: r
                                                .get("feature")
                                                .and_then(|v| v.as_str())
                                                .unwrap_or_default()
                                                .into(),
                                            value: r.get("value").and_then(|v| v.as_f64()),
                                            log_odds: r.get("log_odds").and_then(|v| v.as_f64()).unwrap_or(0.0),
                                            direction: r
                                                .get("direction")
                                                .and_then(|v| v.as_str())
                                                .unwrap_or_default()
                                                .into(),
                                        })
                                        .collect()
                                })
                                .unwrap_or_default(),
                        }),
                    }
                }
                DiagnosisView {
                    code: d.code.as_str().to_string(),
                    display: d.display.clone(),
                    probability: d.probability.get(),
                    risk_band: band(d.risk_band),
                    threshold: d.threshold,
                    known: d.known,
                    sources: d
                        .sources
                        .iter()
                        .map(|s| SourceView {
                            model: s.model.name.clone(),
                            version: s.model.version.clone(),
                            label: s.label.clone(),
                            probability: s.probability.get(),
                            contribution: s.contribution,
                        })
                        .collect(),
                    heatmaps,
                    features,
                    feedback: feedback
                        .iter()
                        .rev()
                        .find(|f| f.set_version == set.version && f.code == d.code)
                        .map(|f| verdict(f.verdict)),
                }
            })
            .collect();
        predictions.sort_by(|a, b| a.known.cmp(&b.known).then(b.probability.total_cmp(&a.probability)));
        Self {
            id: set.id.to_string(),
            patient: patient.to_string(),
            version: set.version,
            created_at: set.created_at,
            models: set
                .models
                .iter()
                .map(|m| ModelRefView { name: m.name.clone(), version: m.version.clone() })
                .collect(),
            fusion: set.fusion.clone(),
            input_fingerprint: set.input_fingerprint.clone(),
            predictions,
        }
    }
}

/// Who corrected an entry, when and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct CorrectionWire {
    /// The entry that replaced this one.
    pub by: String,
    pub at: DateTime<Utc>,
    /// The correcting clinician's user id.
    pub author: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    /// The entry's id (to correct it).
    pub id: String,
    pub date: NaiveDate,
    /// Consent category: `diagnosis`, `observation`, `vaccination`, `allergy`, `procedure`,
    /// `medication`, `mental_health`, `imaging`.
    pub category: String,
    /// `diagnosis`, `observation` (labs and vital signs), `vaccination`, `allergy`, `procedure`, `medication`,
    /// `therapy_session`, `psychiatric_medication`, `imaging_study`; `document` (an uploaded
    /// document: its id opens `…/documents/{id}`); `prediction_set` (doctors: a version of
    /// the predicted diagnoses, shown under `…/predictions`).
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub title: String,
    /// Value, dose or status, in words.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// `clinician`, `patient`, `import`, `device` or `synthetic`; `upload` for documents,
    /// `model` for prediction sets.
    pub source: String,
    /// Replaced by a correction (shown only with `include_corrected=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrected: Option<CorrectionWire>,
    /// The entry this one corrects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrects: Option<String>,
}

impl TimelineEntry {
    pub fn new(e: &HistoryEntry) -> Self {
        let (kind, title, detail) = match &e.kind {
            HistoryKind::Diagnosis(d) => ("diagnosis", d.display.clone(), format!("{:?}", d.status).to_lowercase()),
            HistoryKind::Observation(o) => (
                "observation",
                o.display.clone(),
                match &o.reference_range {
                    Some(r) => format!("{} {} (reference {}–{})", o.value, o.unit, r.low, r.high),
                    None => format!("{} {}", o.value, o.unit),
                },
            ),
            HistoryKind::Vaccination(v) => ("vaccination", v.display.clone(), format!("dose {}", v.dose_number)),
            HistoryKind::Allergy(a) => {
                ("allergy", a.substance.clone(), format!("{} ({:?})", a.reaction, a.severity).to_lowercase())
            }
            HistoryKind::Procedure(p) => ("procedure", p.display.clone(), String::new()),
            HistoryKind::Medication(m) => {
                ("medication", m.display.clone(), format!("{} {} {}", m.dose.amount, m.dose.unit, m.dose.frequency))
            }
            HistoryKind::PsychiatricMedication(m) => (
                "psychiatric_medication",
                m.display.clone(),
                format!("{} {} {}", m.dose.amount, m.dose.unit, m.dose.frequency),
            ),
            HistoryKind::TherapySession(t) => {
                ("therapy_session", format!("{:?} session", t.modality), format!("{} min", t.duration_minutes))
            }
            HistoryKind::ImagingStudy(s) => (
                "imaging_study",
                if s.description.is_empty() {
                    format!("{:?} {:?}", s.modality, s.body_part)
                } else {
                    s.description.clone()
                },
                format!("{} images", s.instances.len().max(s.object_keys.len())),
            ),
        };
        Self {
            id: e.id.to_string(),
            date: e.date,
            category: e.category().as_str().to_string(),
            kind,
            code: e.code().map(String::from),
            title,
            detail,
            source: serde_json::to_value(e.source.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            corrected: e.superseded.as_ref().map(|c| CorrectionWire {
                by: c.by.to_string(),
                at: c.at,
                author: c.author.clone(),
                reason: c.reason.clone(),
            }),
            corrects: e.corrects.map(|c| c.to_string()),
        }
    }

    /// An uploaded document, in the consent category `category` its kind belongs to.
    pub fn document(d: &carelens_domain::DocumentRef, category: carelens_domain::Category) -> Self {
        let kind = crate::documents::kind_name(d.kind);
        Self {
            id: d.id.to_string(),
            date: d.uploaded_at.date_naive(),
            category: category.as_str().to_string(),
            kind: "document",
            code: None,
            title: if d.title.is_empty() { kind.replace('_', " ") } else { d.title.clone() },
            detail: format!(
                "{}, {} kB{}",
                d.content_type,
                d.size_bytes.div_ceil(1024),
                if d.signature.is_some() { ", signed" } else { "" }
            ),
            source: "upload".into(),
            corrected: None,
            corrects: None,
        }
    }

    /// A version of the patient's predicted diagnoses: when and how many, not what (that is
    /// under `…/predictions`, with its own access rule and audit).
    pub fn prediction_set(set: &carelens_domain::PredictionSet) -> Self {
        Self {
            id: set.id.to_string(),
            date: set.created_at.date_naive(),
            category: carelens_domain::Category::Diagnosis.as_str().to_string(),
            kind: "prediction_set",
            code: None,
            title: format!("Predicted diagnoses, version {}", set.version),
            detail: format!("{} suggestions from {} models", set.predictions.len(), set.models.len()),
            source: "model".into(),
            corrected: None,
            corrects: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    pub patient: PatientSummary,
    /// Newest first.
    pub entries: Vec<TimelineEntry>,
    /// Categories you may not see for this patient (no consent), so the timeline omits them.
    pub hidden_categories: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// The prediction-set version the verdict is about.
    pub set_version: u32,
    /// The ICD-10 code of the suggested diagnosis.
    pub code: String,
    /// `confirmed` or `rejected`.
    pub verdict: String,
    /// Optional, at most 2000 characters; stored, never exported.
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackView {
    pub id: String,
    pub patient: String,
    pub set_version: u32,
    pub code: String,
    pub verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub at: DateTime<Utc>,
}

impl From<&Feedback> for FeedbackView {
    fn from(f: &Feedback) -> Self {
        Self {
            id: f.id.to_string(),
            patient: f.patient.as_str().to_string(),
            set_version: f.set_version,
            code: f.code.as_str().to_string(),
            verdict: verdict(f.verdict),
            comment: f.comment.clone(),
            at: f.at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabelMetrics {
    pub label: String,
    pub examples: usize,
    pub positives: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auroc: Option<f64>,
    /// 95 % bootstrap interval of the AUROC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auroc_ci: Option<[f64; 2]>,
    pub sensitivity: f64,
    pub specificity: f64,
    pub brier: f64,
    pub ece: f64,
    pub threshold: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelView {
    pub name: String,
    /// The version shown: the promoted one, else the latest.
    pub version: u32,
    pub promoted: bool,
    pub versions: Vec<u32>,
    /// `image`, `tabular` or `fusion`.
    pub kind: &'static str,
    pub task: String,
    pub labels: Vec<String>,
    /// Labels the model could not learn (one class in training).
    pub unlearnable: Vec<String>,
    pub train_examples: usize,
    pub validation_examples: usize,
    pub validation: Vec<LabelMetrics>,
    pub training_seconds: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    pub models: Vec<ModelView>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequestBody {
    /// Health IDs to predict for; absent: every patient.
    #[serde(default)]
    pub patients: Option<Vec<String>>,
    /// Render heatmaps for image findings (default true).
    #[serde(default)]
    pub heatmaps: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: u64,
    /// `running`, `succeeded` or `failed`.
    pub state: &'static str,
    pub requested_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patients: Option<usize>,
    pub started_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub patients_done: u64,
    /// The batch report (new sets, unchanged, failures with reasons, patients/s).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub report: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<Job> for RunView {
    fn from(j: Job) -> Self {
        Self {
            id: j.id,
            state: j.state.as_str(),
            requested_by: j.requested_by.to_string(),
            patients: j.patients,
            started_at: j.started_at,
            finished_at: j.finished_at,
            patients_done: j.patients_done,
            report: j.report,
            error: j.error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<RunView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: String,
    /// At least 12 characters; stored as an argon2id hash only.
    pub password: String,
    pub role: String,
    /// Required for doctors: the practice they work for.
    #[serde(default)]
    pub provider: Option<String>,
    /// Required for patients: their Health ID.
    #[serde(default)]
    pub patient: Option<String>,
    /// Where a patient's booking confirmations and reminders go.
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_string(),
            username: u.username.clone(),
            role: u.role.as_str(),
            provider: u.provider.as_ref().map(|p| p.as_str().to_string()),
            patient: u.patient.as_ref().map(|p| p.as_str().to_string()),
            created_at: u.created_at,
            disabled: u.disabled,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
    pub version: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    pub status: &'static str,
    /// `sqlite` or `mongodb`.
    pub store: &'static str,
}

/// The KPI catalogue for analysts.
#[derive(Debug, Serialize, ToSchema)]
pub struct KpiCatalogue {
    /// The snapshot KPIs run on; `null` until `carelens export analytics` has run.
    pub snapshot: Option<SnapshotInfo>,
    /// Cells with fewer persons are suppressed; requests may raise k, not lower it.
    pub min_k: u32,
    pub kpis: Vec<KpiInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotInfo {
    pub as_of: chrono::NaiveDate,
    pub created_at: String,
    pub persons: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KpiInfo {
    pub name: String,
    pub title: String,
    pub topic: String,
    pub unit: String,
    /// Numerator, denominator, window and strata in words.
    pub definition: String,
    /// Allowed values of `by`.
    pub strata: Vec<String>,
    pub default_by: Vec<String>,
}
