//! From validation scores to what a model ships with: one calibrator and one threshold per
//! label, and the validation report before and after calibration.
//!
//! The calibrated numbers reported are honest: each half (fold) of the validation set is
//! calibrated by a calibrator fitted on the other half(s) ("cross-fitting"); the calibrator
//! saved with the model is then fitted on all validation scores.

use serde::{Deserialize, Serialize};

use crate::{Calibrator, LabelReport, MlError, ThresholdRule, choose_threshold, evaluate_label, stratified_folds};

/// How validation scores (logits) become probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationMethod {
    /// `sigmoid(z / T)`; one parameter, keeps the ranking (networks).
    Temperature,
    /// `sigmoid(a·z + b)` (tabular default).
    Platt,
    /// Monotone step function; needs a few hundred validation examples.
    Isotonic,
    /// `sigmoid(z)` as is.
    None,
}

impl CalibrationMethod {
    fn fit(self, z: &[f64], y: &[bool]) -> Result<Calibrator, MlError> {
        match self {
            CalibrationMethod::Temperature => Calibrator::fit_temperature(z, y),
            CalibrationMethod::Platt => Calibrator::fit_platt(z, y),
            CalibrationMethod::Isotonic => Calibrator::fit_isotonic(z, y),
            CalibrationMethod::None => Ok(Calibrator::Temperature { temperature: 1.0 }),
        }
    }
}

/// What a model ships with, per label, plus the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub calibration_method: CalibrationMethod,
    pub calibrators: Vec<Calibrator>,
    pub threshold_rule: ThresholdRule,
    pub thresholds: Vec<f64>,
    /// Validation metrics of the calibrated (cross-fitted) probabilities at the threshold.
    #[serde(rename = "validation")]
    pub reports: Vec<LabelReport>,
    /// Expected calibration error of the uncalibrated probabilities, per label.
    pub ece_uncalibrated: Vec<f64>,
}

/// The probability of a logit.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// The logit of a probability, clamped to ±13.8 (p within 1e-6 of 0 or 1).
pub fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// Calibrates, thresholds and reports every label. `logits[k]` and `targets[k]` are label
/// `k`'s validation logits and truths. A label with one class in validation keeps the
/// uncalibrated probability and a 0.5 threshold, and reports no AUROC.
pub fn assess(
    labels: &[String],
    logits: &[Vec<f64>],
    targets: &[Vec<bool>],
    method: CalibrationMethod,
    rule: ThresholdRule,
    seed: u64,
) -> Result<Assessment, MlError> {
    let mut out = Assessment {
        calibration_method: method,
        calibrators: vec![],
        threshold_rule: rule,
        thresholds: vec![],
        reports: vec![],
        ece_uncalibrated: vec![],
    };
    for ((name, z), y) in labels.iter().zip(logits).zip(targets) {
        if z.len() != y.len() || z.is_empty() {
            return Err(MlError::Input(format!("label {name}: {} scores for {} targets", z.len(), y.len())));
        }
        if let Some(i) = z.iter().position(|v| !v.is_finite()) {
            return Err(MlError::Input(format!("label {name}: score {i} is not finite")));
        }
        let raw: Vec<f64> = z.iter().map(|&v| sigmoid(v)).collect();
        out.ece_uncalibrated.push(crate::calibration_error(&raw, y, 15)?.0);
        let positives = y.iter().filter(|&&t| t).count();
        let two_class = positives > 0 && positives < y.len();
        let (calibrator, held_out) = match (two_class, stratified_folds(y, 2, seed)) {
            (true, Ok(folds)) => {
                let mut held = vec![0.0; z.len()];
                for (i, fold) in folds.iter().enumerate() {
                    let other = &folds[1 - i];
                    let zo: Vec<f64> = other.iter().map(|&r| z[r]).collect();
                    let yo: Vec<bool> = other.iter().map(|&r| y[r]).collect();
                    let c = method.fit(&zo, &yo)?;
                    for &r in fold {
                        held[r] = c.apply(z[r]);
                    }
                }
                (method.fit(z, y)?, held)
            }
            _ => (CalibrationMethod::None.fit(z, y)?, raw),
        };
        let threshold = if two_class { choose_threshold(&held_out, y, rule)? } else { 0.5 };
        out.reports.push(evaluate_label(name, &held_out, y, threshold, seed)?);
        out.calibrators.push(calibrator);
        out.thresholds.push(threshold);
    }
    Ok(out)
}
