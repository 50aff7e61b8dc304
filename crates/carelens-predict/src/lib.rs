//! Prediction sets for doctors.
//!
//! For each patient, every promoted image model runs on the latest matching imaging study
//! and every history (tabular) model on the patient's history features. The sources are
//! fused per diagnosis by a stacking model ([`carelens_ml::Stack`], fitted by
//! [`fit_fusion`] on labelled data the source models did not see) into one calibrated
//! probability, with a risk band from the fused threshold, the per-source probabilities, the
//! evidence (an occlusion heatmap PNG for image findings, top contributing history features
//! for history findings), model versions and an input fingerprint. An unchanged fingerprint
//! means no new set; otherwise a new version is stored and the older ones stay for audit.
//!
//! - [`Models`]: what the registry holds, loaded once.
//! - [`catalogue`]: which ICD-10 diagnosis each image finding is evidence for.
//! - [`compute`]: the CPU part for a chunk of patients (no IO).
//! - [`run`] / [`fit_fusion`]: the batch over the store, and fitting the fusion model.

mod batch;
pub mod catalogue;
mod compute;
mod evaluate;
mod fit;
mod models;
mod overlay;

pub use batch::{BatchOptions, BatchReport, Failure, PatientOutcome, load_inputs, run};
pub use compute::{
    OVERLAY_SIZE, PatientInput, SourceEvidence, SourceOutput, SourceSet, assemble, compute, fingerprint,
};
pub use evaluate::{DiagnosisEvaluation, SourceEvaluation, evaluate_sets};
pub use fit::{DiagnosisFit, FitOptions, FitReport, fit_fusion};
pub use models::{Candidate, FusionModel, ImageSource, Models, TabularSource};
pub use overlay::render_overlay;

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Ml(#[from] carelens_ml::MlError),
    #[error(transparent)]
    Features(#[from] carelens_features::FeatureError),
    #[error(transparent)]
    Imaging(#[from] carelens_imaging::ImagingError),
    #[error(transparent)]
    Store(#[from] carelens_store::StoreError),
}

pub type Result<T, E = PredictError> = std::result::Result<T, E>;

/// Risk band of a probability against a label's threshold: high at or above it, medium from
/// half of it, low below.
pub fn risk_band(probability: f64, threshold: f64) -> carelens_domain::RiskBand {
    use carelens_domain::RiskBand;
    if probability >= threshold {
        RiskBand::High
    } else if probability >= threshold / 2.0 {
        RiskBand::Medium
    } else {
        RiskBand::Low
    }
}
