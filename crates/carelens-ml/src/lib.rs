//! carelens ML: image models (burn), tabular models (linfa), evaluation, calibration and
//! the model registry.
//!
//! Everything here is deterministic: bootstrap resamples come from a seeded PRNG, so the
//! same predictions give the same report on any machine.

mod assess;
mod calibration;
mod fusion;
pub mod image;
mod metrics;
mod registry;
mod table;
mod tabular;

pub use assess::{Assessment, CalibrationMethod, assess, logit, sigmoid};
pub use calibration::Calibrator;
pub use fusion::{DEFAULT_L2, FusedDiagnosis, SourceKey, Stack};
pub use metrics::{
    Bin, Confusion, Interval, ThresholdRule, auroc, auroc_ci, brier, calibration_error, choose_threshold,
};
pub use registry::{
    DatasetInfo, FORMAT_VERSION, Fingerprint, ModelBody, ModelManifest, Registry, load_image_net, model_card,
    sha256_hex,
};
pub use table::{Column, ColumnData, ColumnReport, MISSING, Table, read_csv, table_from_cells};
pub use tabular::{
    Contribution, FeatureColumn, FeatureSchema, ForestTree, LogisticModel, SearchPoint, TabularKind, TabularModel,
    TabularParams, cross_validate, cross_validate_params, grid_search, stratified_folds,
};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MlError {
    #[error("invalid input: {0}")]
    Input(String),

    #[error("{}: {detail}", path.display())]
    File { path: std::path::PathBuf, detail: String },

    #[error(
        "only one class present ({positives} positives, {negatives} negatives): AUROC and thresholds need both; \
         add examples of the missing class or choose another split"
    )]
    SingleClass { positives: usize, negatives: usize },
}

/// SplitMix64, for bootstrap resampling.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The generator's state, to resume a stream exactly (checkpoints).
    pub fn state(&self) -> u64 {
        self.0
    }

    pub fn from_state(state: u64) -> Self {
        Self(state)
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }

    /// Uniform in `0..n` (n > 0), without modulo bias worth caring about for n ≪ 2^64.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// Everything reported for one label on one data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelReport {
    pub label: String,
    pub examples: usize,
    pub positives: usize,
    /// With its 95 % bootstrap interval; `None` when the set has one class only.
    pub auroc: Option<Interval>,
    pub confusion: Confusion,
    pub accuracy: f64,
    pub sensitivity: f64,
    pub specificity: f64,
    pub f1: f64,
    pub brier: f64,
    /// Expected calibration error, 15 equal-width bins.
    pub ece: f64,
    pub reliability: Vec<Bin>,
}

/// Bootstrap rounds behind every AUROC interval.
pub const BOOTSTRAP_ROUNDS: usize = 1000;

/// Evaluates calibrated probabilities for one label at a threshold chosen beforehand (on
/// validation data).
pub fn evaluate_label(
    label: &str,
    probs: &[f64],
    labels: &[bool],
    threshold: f64,
    seed: u64,
) -> Result<LabelReport, MlError> {
    let positives = labels.iter().filter(|&&l| l).count();
    let auroc = match auroc_ci(probs, labels, BOOTSTRAP_ROUNDS, seed) {
        Ok(i) => Some(i),
        Err(MlError::SingleClass { .. }) => None,
        Err(e) => return Err(e),
    };
    let confusion = Confusion::at(probs, labels, threshold)?;
    let (ece, reliability) = calibration_error(probs, labels, 15)?;
    Ok(LabelReport {
        label: label.to_owned(),
        examples: labels.len(),
        positives,
        auroc,
        accuracy: confusion.accuracy(),
        sensitivity: confusion.sensitivity(),
        specificity: confusion.specificity(),
        f1: confusion.f1(),
        confusion,
        brier: brier(probs, labels)?,
        ece,
        reliability,
    })
}
