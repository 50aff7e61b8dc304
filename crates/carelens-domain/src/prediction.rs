//! Prediction sets: what the models suggest for one patient, with evidence.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Validate;
use crate::codes::Icd10Code;
use crate::error::{DomainError, Result, ensure, invalid};
use crate::ids::{HealthId, ObjectKey, PredictionSetId};

/// A probability in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Probability(f64);

impl Probability {
    pub fn new(p: f64) -> Result<Self> {
        if (0.0..=1.0).contains(&p) { Ok(Self(p)) } else { Err(invalid("probability", "must be within 0..=1")) }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Probability {
    type Error = DomainError;
    fn try_from(p: f64) -> Result<Self> {
        Self::new(p)
    }
}

impl From<Probability> for f64 {
    fn from(p: Probability) -> f64 {
        p.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskBand {
    Low,
    Medium,
    High,
}

/// One model's opinion on one diagnosis, before fusion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceProbability {
    pub model: ModelRef,
    /// The model's label this came from (e.g. `consolidation`), when it has several.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    pub probability: Probability,
    /// This source's share of the fused log-odds (stacking weight × centred log-odds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contribution: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// A saliency heatmap overlay (PNG in the object store).
    Heatmap,
    /// Top contributing history features.
    Features,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceRef {
    pub kind: EvidenceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_key: Option<ObjectKey>,
    /// Structured evidence (e.g. feature contributions), JSON.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnosisPrediction {
    pub code: Icd10Code,
    pub display: String,
    /// Fused, calibrated probability.
    pub probability: Probability,
    pub risk_band: RiskBand,
    /// The fused operating threshold the band was cut at (high ≥ it, medium ≥ half of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Already recorded for the patient: shown as known, not as predicted.
    pub known: bool,
    pub sources: Vec<SourceProbability>,
    #[serde(default)]
    pub evidence: Vec<EvidenceRef>,
}

/// All diagnoses suggested for one patient at one time; versions accumulate for audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionSet {
    pub id: PredictionSetId,
    pub patient: HealthId,
    /// 1 for the first set of a patient, then +1 for each new one.
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub models: Vec<ModelRef>,
    /// Fusion method and its parameters, e.g. `{"method": "stacking", …}`.
    pub fusion: serde_json::Value,
    /// Hash of all inputs; an unchanged fingerprint means no new set is needed.
    pub input_fingerprint: String,
    pub predictions: Vec<DiagnosisPrediction>,
}

impl Validate for PredictionSet {
    fn validate(&self) -> Result<()> {
        ensure(self.version >= 1, "prediction_set.version", || "starts at 1".into())?;
        ensure(!self.input_fingerprint.is_empty(), "prediction_set.input_fingerprint", || "must not be empty".into())?;
        let mut codes: Vec<&str> = self.predictions.iter().map(|p| p.code.as_str()).collect();
        codes.sort_unstable();
        let before = codes.len();
        codes.dedup();
        ensure(codes.len() == before, "prediction_set.predictions", || "each diagnosis at most once".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_are_bounded() {
        assert!(Probability::new(0.0).is_ok() && Probability::new(1.0).is_ok());
        for bad in [-0.01, 1.01, f64::NAN, f64::INFINITY] {
            assert!(Probability::new(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Probability>("1.5").is_err());
    }

    #[test]
    fn duplicate_diagnoses_are_rejected() {
        let pred = DiagnosisPrediction {
            code: "E11".parse().unwrap(),
            display: "Type 2 diabetes".into(),
            probability: Probability::new(0.7).unwrap(),
            risk_band: RiskBand::High,
            threshold: Some(0.5),
            known: false,
            sources: vec![],
            evidence: vec![],
        };
        let set = PredictionSet {
            id: PredictionSetId::from_u128(1),
            patient: HealthId::from_number(1),
            version: 1,
            created_at: Utc::now(),
            models: vec![],
            fusion: serde_json::json!({"method": "stacking"}),
            input_fingerprint: "abc".into(),
            predictions: vec![pred.clone(), pred],
        };
        assert!(set.validate().unwrap_err().to_string().starts_with("invalid prediction_set.predictions"));
    }
}
