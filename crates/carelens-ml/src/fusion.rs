//! Fusing several models' opinions on one diagnosis by stacking.
//!
//! A *source* is one model's label, e.g. the chest X-ray model's `consolidation` or the
//! history model for `E11`. For a patient each source gives a calibrated probability, or
//! nothing (no chest X-ray on file). The fused log-odds of a diagnosis are a logistic
//! regression on, per source,
//!
//! - the source's log-odds minus their mean over the fitting data, where present (0 where absent);
//! - a presence indicator (1 where present).
//!
//! fitted by Newton's method with an L2 penalty on every weight but the intercept, on labelled
//! data the source models were not trained on. Why stacking and not averaging:
//!
//! - sources differ in strength. A weak or redundant source gets a small weight, while an
//!   average lets it pull a strong source's verdict towards the middle;
//! - absence carries information (a chest X-ray is taken because something was suspected),
//!   which the presence weight learns instead of pretending the source said 50 %;
//! - the output is calibrated on the fitting data by construction (logistic loss). This also
//!   holds where source probabilities were aggregated first (the maximum over a series' slices).
//!
//! The fit is deterministic (no randomness; a fixed iteration scheme), so the same data give
//! the same weights on any machine.

use serde::{Deserialize, Serialize};

use crate::{MlError, logit, sigmoid, stratified_folds};

/// One model label feeding a diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceKey {
    pub model: String,
    pub label: String,
}

impl std::fmt::Display for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.model, self.label)
    }
}

/// A fitted stack for one diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stack {
    pub sources: Vec<SourceKey>,
    /// Mean log-odds of each source where present in the fitting data.
    pub centre: Vec<f64>,
    /// Weight on each source's centred log-odds.
    pub weight: Vec<f64>,
    /// Weight on each source's presence indicator.
    pub presence: Vec<f64>,
    pub intercept: f64,
    /// The L2 penalty it was fitted with.
    pub l2: f64,
}

/// The stack of one diagnosis in a fusion model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusedDiagnosis {
    /// ICD-10 code, e.g. `J18` or `I51.7`.
    pub code: String,
    pub display: String,
    pub stack: Stack,
}

/// Default L2 penalty (on the summed log-loss, so it fades as data grow).
pub const DEFAULT_L2: f64 = 1.0;

impl Stack {
    /// Fits on `rows[i][s]` = source `s`'s probability for example `i` (`None`: absent) and
    /// the truths `y`.
    pub fn fit(sources: Vec<SourceKey>, rows: &[Vec<Option<f64>>], y: &[bool], l2: f64) -> Result<Self, MlError> {
        let s = sources.len();
        if rows.len() != y.len() || rows.iter().any(|r| r.len() != s) {
            return Err(MlError::Input(format!(
                "stacking: {} rows of sources for {} truths, or rows without {s} sources",
                rows.len(),
                y.len()
            )));
        }
        if let Some(p) = rows.iter().flatten().flatten().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(MlError::Input(format!("stacking: source probability {p} is outside 0..=1")));
        }
        let positives = y.iter().filter(|&&t| t).count();
        if positives == 0 || positives == y.len() {
            return Err(MlError::SingleClass { positives, negatives: y.len() - positives });
        }
        let mut centre = vec![0.0; s];
        for (k, c) in centre.iter_mut().enumerate() {
            let present: Vec<f64> = rows.iter().filter_map(|r| r[k]).map(logit).collect();
            if !present.is_empty() {
                *c = present.iter().sum::<f64>() / present.len() as f64;
            }
        }
        let design: Vec<Vec<f64>> = rows.iter().map(|r| features(r, &centre)).collect();
        let beta = newton_logistic(&design, y, l2)?;
        Ok(Self {
            centre,
            weight: (0..s).map(|k| beta[1 + 2 * k]).collect(),
            presence: (0..s).map(|k| beta[2 + 2 * k]).collect(),
            intercept: beta[0],
            l2,
            sources,
        })
    }

    /// Fused log-odds for one example (source probabilities in `self.sources` order).
    pub fn logit(&self, row: &[Option<f64>]) -> f64 {
        self.intercept + self.contributions(row).iter().sum::<f64>()
    }

    pub fn probability(&self, row: &[Option<f64>]) -> f64 {
        sigmoid(self.logit(row))
    }

    /// Each source's share of the fused log-odds (0 for an absent source whose absence the
    /// stack did not weigh).
    pub fn contributions(&self, row: &[Option<f64>]) -> Vec<f64> {
        (0..self.sources.len())
            .map(|k| match row.get(k).copied().flatten() {
                Some(p) => self.weight[k] * (logit(p) - self.centre[k]) + self.presence[k],
                None => 0.0,
            })
            .collect()
    }

    /// Fused log-odds of every row, each from a stack fitted without that row's fold
    /// (`folds`-fold, stratified by `y`): honest numbers for reports.
    pub fn cross_fitted_logits(
        sources: &[SourceKey],
        rows: &[Vec<Option<f64>>],
        y: &[bool],
        l2: f64,
        folds: usize,
        seed: u64,
    ) -> Result<Vec<f64>, MlError> {
        let folds = stratified_folds(y, folds, seed)?;
        let mut out = vec![0.0; y.len()];
        for fold in &folds {
            let mut held = vec![false; y.len()];
            for &r in fold {
                held[r] = true;
            }
            let train: Vec<usize> = (0..y.len()).filter(|&r| !held[r]).collect();
            let rt: Vec<Vec<Option<f64>>> = train.iter().map(|&r| rows[r].clone()).collect();
            let yt: Vec<bool> = train.iter().map(|&r| y[r]).collect();
            let stack = Stack::fit(sources.to_vec(), &rt, &yt, l2)?;
            for &r in fold {
                out[r] = stack.logit(&rows[r]);
            }
        }
        Ok(out)
    }
}

/// `[1, (z₀ − c₀)·m₀, m₀, (z₁ − c₁)·m₁, m₁, …]`.
fn features(row: &[Option<f64>], centre: &[f64]) -> Vec<f64> {
    let mut x = Vec::with_capacity(1 + 2 * row.len());
    x.push(1.0);
    for (p, c) in row.iter().zip(centre) {
        match p {
            Some(p) => x.extend([logit(*p) - c, 1.0]),
            None => x.extend([0.0, 0.0]),
        }
    }
    x
}

/// The penalised objective: summed log-loss plus `l2 / 2 · |w|²` (intercept unpenalised).
fn objective(x: &[Vec<f64>], y: &[bool], beta: &[f64], l2: f64) -> f64 {
    let mut f = 0.0;
    for (xi, &yi) in x.iter().zip(y) {
        let z: f64 = xi.iter().zip(beta).map(|(a, b)| a * b).sum();
        // log(1 + e^{-z}) for a positive, log(1 + e^{z}) for a negative, computed stably.
        let m = if yi { -z } else { z };
        f += if m > 0.0 { m + (-m).exp().ln_1p() } else { m.exp().ln_1p() };
    }
    f + 0.5 * l2 * beta[1..].iter().map(|b| b * b).sum::<f64>()
}

/// L2-penalised logistic regression by Newton's method with a backtracking line search
/// (intercept unpenalised). The line search keeps separable data (a source that is nearly
/// perfect) from overshooting into divergence.
#[allow(clippy::needless_range_loop)] // matrix code reads better with indices
fn newton_logistic(x: &[Vec<f64>], y: &[bool], l2: f64) -> Result<Vec<f64>, MlError> {
    let d = x.first().map_or(0, Vec::len);
    let mut beta = vec![0.0; d];
    let prevalence = y.iter().filter(|&&t| t).count() as f64 / y.len() as f64;
    beta[0] = logit(prevalence);
    let mut f = objective(x, y, &beta, l2);
    for _ in 0..100 {
        let mut grad = vec![0.0; d];
        let mut hess = vec![vec![0.0; d]; d];
        for (xi, &yi) in x.iter().zip(y) {
            let z: f64 = xi.iter().zip(&beta).map(|(a, b)| a * b).sum();
            let p = sigmoid(z);
            let w = (p * (1.0 - p)).max(1e-12);
            let r = p - f64::from(u8::from(yi));
            for j in 0..d {
                grad[j] += r * xi[j];
                for k in 0..=j {
                    hess[j][k] += w * xi[j] * xi[k];
                }
            }
        }
        for j in 0..d {
            for k in 0..j {
                hess[k][j] = hess[j][k];
            }
            if j > 0 {
                grad[j] += l2 * beta[j];
                hess[j][j] += l2;
            }
        }
        // Columns that are all zero (a source never present) keep a zero weight.
        for (j, row) in hess.iter_mut().enumerate() {
            if row[j] < 1e-12 {
                row[j] = 1.0;
            }
        }
        let step = solve(hess, grad)
            .ok_or_else(|| MlError::Input("stacking: the fit is singular (sources identical?)".into()))?;
        let mut t = 1.0;
        let mut accepted = None;
        for _ in 0..40 {
            let trial: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b - t * s).collect();
            let ft = objective(x, y, &trial, l2);
            if ft.is_finite() && ft <= f {
                accepted = Some((trial, ft));
                break;
            }
            t *= 0.5;
        }
        let Some((next, fnext)) = accepted else { break };
        let size = beta.iter().zip(&next).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        beta = next;
        let improvement = f - fnext;
        f = fnext;
        if size < 1e-10 || improvement < 1e-12 * (1.0 + f.abs()) {
            break;
        }
    }
    if beta.iter().any(|b| !b.is_finite()) {
        return Err(MlError::Input("stacking: the fit diverged".into()));
    }
    Ok(beta)
}

/// Solves `a · x = b` by Gaussian elimination with partial pivoting.
#[allow(clippy::needless_range_loop)]
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-14 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            if f != 0.0 {
                for k in col..n {
                    a[row][k] -= f * a[col][k];
                }
                b[row] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Rng, auroc};

    fn key(l: &str) -> SourceKey {
        SourceKey { model: "m".into(), label: l.into() }
    }

    /// Truth with prevalence ~20 %; source A sees it well, B weakly and overconfidently,
    /// C only for a third of the examples (absent otherwise, and more often present when true).
    fn data(n: usize, seed: u64) -> (Vec<Vec<Option<f64>>>, Vec<bool>) {
        let mut rng = Rng::new(seed);
        let normal = |rng: &mut Rng| {
            let (u, v) = (rng.unit().max(1e-12), rng.unit());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        };
        let (mut rows, mut y) = (vec![], vec![]);
        for _ in 0..n {
            let t = rng.unit() < 0.2;
            let s = if t { 1.0 } else { 0.0 };
            let a = sigmoid(-1.5 + 2.5 * s + normal(&mut rng));
            let b = sigmoid(3.0 * (0.3 * s + normal(&mut rng)));
            let c = (rng.unit() < if t { 0.6 } else { 0.25 }).then(|| sigmoid(-1.0 + 2.0 * s + normal(&mut rng)));
            rows.push(vec![Some(a), Some(b), c]);
            y.push(t);
        }
        (rows, y)
    }

    fn column(rows: &[Vec<Option<f64>>], k: usize, absent: f64) -> Vec<f64> {
        rows.iter().map(|r| r[k].unwrap_or(absent)).collect()
    }

    #[test]
    fn stacking_beats_every_source_and_the_average_on_held_out_data() {
        let (train, yt) = data(3000, 1);
        let (test, y) = data(3000, 2);
        let stack = Stack::fit(vec![key("a"), key("b"), key("c")], &train, &yt, DEFAULT_L2).unwrap();
        let fused: Vec<f64> = test.iter().map(|r| stack.probability(r)).collect();
        let fused_auc = auroc(&fused, &y).unwrap();
        for k in 0..3 {
            let single = auroc(&column(&test, k, 0.5), &y).unwrap();
            assert!(fused_auc > single + 0.005, "fused {fused_auc:.3} vs source {k} {single:.3}");
        }
        // Naive averaging of the probabilities present: the overconfident weak source drags it down.
        let average: Vec<f64> = test
            .iter()
            .map(|r| {
                let p: Vec<f64> = r.iter().flatten().copied().collect();
                p.iter().sum::<f64>() / p.len() as f64
            })
            .collect();
        let avg_auc = auroc(&average, &y).unwrap();
        assert!(fused_auc > avg_auc + 0.01, "fused {fused_auc:.3} vs average {avg_auc:.3}");
        // The weak source weighs less than the strong one; absence of C lowers the odds.
        assert!(stack.weight[0] > stack.weight[1], "{:?}", stack.weight);
        // Calibrated on held-out data: mean prediction ≈ prevalence.
        let mean = fused.iter().sum::<f64>() / fused.len() as f64;
        let prevalence = y.iter().filter(|&&t| t).count() as f64 / y.len() as f64;
        assert!((mean - prevalence).abs() < 0.02, "mean {mean:.3} vs prevalence {prevalence:.3}");
        let (ece, _) = crate::calibration_error(&fused, &y, 10).unwrap();
        assert!(ece < 0.03, "ECE {ece:.3}");
    }

    #[test]
    fn cross_fitting_is_honest_and_deterministic() {
        let (rows, y) = data(600, 3);
        let sources = vec![key("a"), key("b"), key("c")];
        let z1 = Stack::cross_fitted_logits(&sources, &rows, &y, DEFAULT_L2, 5, 9).unwrap();
        let z2 = Stack::cross_fitted_logits(&sources, &rows, &y, DEFAULT_L2, 5, 9).unwrap();
        assert_eq!(z1, z2);
        let full = Stack::fit(sources, &rows, &y, DEFAULT_L2).unwrap();
        let zf: Vec<f64> = rows.iter().map(|r| full.logit(r)).collect();
        assert_ne!(z1, zf, "held-out logits differ from in-sample ones");
        assert!(auroc(&z1, &y).unwrap() > 0.8);
    }

    #[test]
    fn a_nearly_perfect_source_gives_a_bounded_calibrated_stack() {
        // Found fitting COPD on a synthetic population: the history model separates the
        // classes almost perfectly, and plain Newton steps overshot to an intercept of -4e11.
        let mut rng = Rng::new(5);
        let (mut rows, mut y) = (vec![], vec![]);
        for i in 0..10_000 {
            let t = i % 36 == 0;
            // Negatives pile up at the logit clamp; positives spread far above them.
            let z = if t {
                -6.0 + rng.unit() * 20.0
            } else if rng.unit() < 0.9 {
                -20.0
            } else {
                -13.0 + rng.unit() * 6.0
            };
            rows.push(vec![Some(sigmoid(z))]);
            y.push(t);
        }
        let s = Stack::fit(vec![key("a")], &rows, &y, DEFAULT_L2).unwrap();
        assert!(s.intercept.abs() < 100.0 && s.weight[0].abs() < 100.0, "{s:?}");
        let p: Vec<f64> = rows.iter().map(|r| s.probability(r)).collect();
        assert_eq!(auroc(&p, &y).unwrap(), 1.0);
        let (ece, _) = crate::calibration_error(&p, &y, 10).unwrap();
        assert!(ece < 0.02, "ECE {ece}");
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let rows = vec![vec![Some(0.2)], vec![Some(0.7)]];
        assert!(matches!(
            Stack::fit(vec![key("a")], &rows, &[true, true], 1.0),
            Err(MlError::SingleClass { positives: 2, .. })
        ));
        let e = Stack::fit(vec![key("a")], &[vec![Some(1.5)], vec![Some(0.1)]], &[true, false], 1.0).unwrap_err();
        assert!(e.to_string().contains("outside 0..=1"), "{e}");
        let e = Stack::fit(vec![key("a"), key("b")], &rows, &[true, false], 1.0).unwrap_err();
        assert!(e.to_string().contains("sources"), "{e}");
        // A source that is never present gets no weight and does not break the fit.
        let rows = vec![vec![Some(0.9), None], vec![Some(0.1), None], vec![Some(0.8), None], vec![Some(0.3), None]];
        let s = Stack::fit(vec![key("a"), key("b")], &rows, &[true, false, true, false], 1.0).unwrap();
        assert_eq!((s.weight[1], s.presence[1]), (0.0, 0.0));
        assert!(s.probability(&rows[0]) > s.probability(&rows[1]));
    }
}
