//! Calibration fitted on validation data, so a predicted 0.8 means "8 in 10 such patients":
//! temperature scaling for network logits, Platt scaling and isotonic regression for
//! tabular scores. Every calibrator is serialisable and saved with its model.

use serde::{Deserialize, Serialize};

use crate::MlError;

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + eˣ)` without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Calibrator {
    /// `sigmoid(logit / temperature)`.
    Temperature { temperature: f64 },
    /// `sigmoid(a · score + b)`.
    Platt { a: f64, b: f64 },
    /// A non-decreasing step function through the pooled validation points.
    Isotonic { thresholds: Vec<f64>, values: Vec<f64> },
}

fn check(x: &[f64], labels: &[bool]) -> Result<(), MlError> {
    if x.len() != labels.len() || x.is_empty() {
        return Err(MlError::Input(format!(
            "{} inputs and {} labels; need equal, non-zero counts",
            x.len(),
            labels.len()
        )));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(MlError::Input(format!("input {i} is not finite")));
    }
    let pos = labels.iter().filter(|&&l| l).count();
    if pos == 0 || pos == labels.len() {
        return Err(MlError::SingleClass { positives: pos, negatives: labels.len() - pos });
    }
    Ok(())
}

impl Calibrator {
    /// The temperature minimising validation NLL. The exact log-loss `Σ softplus(∓u·z)` is
    /// convex in `u = 1/T`, so a golden-section search over `ln u` (unimodal) finds it; the
    /// loss is not clamped, since clamping makes it flat for large `u` and can trap the search
    /// at a temperature that rounds every probability to 0 or 1.
    pub fn fit_temperature(logits: &[f64], labels: &[bool]) -> Result<Self, MlError> {
        check(logits, labels)?;
        let loss = |ln_u: f64| {
            let u = ln_u.exp();
            logits.iter().zip(labels).map(|(&z, &l)| softplus(if l { -u * z } else { u * z })).sum::<f64>()
        };
        let (mut lo, mut hi) = (1e-3f64.ln(), 1e3f64.ln());
        let g = (5f64.sqrt() - 1.0) / 2.0;
        let (mut a, mut b) = (hi - g * (hi - lo), lo + g * (hi - lo));
        let (mut fa, mut fb) = (loss(a), loss(b));
        for _ in 0..200 {
            if fa < fb {
                hi = b;
                (b, fb) = (a, fa);
                a = hi - g * (hi - lo);
                fa = loss(a);
            } else {
                lo = a;
                (a, fa) = (b, fb);
                b = lo + g * (hi - lo);
                fb = loss(b);
            }
            if hi - lo < 1e-9 {
                break;
            }
        }
        Ok(Self::Temperature { temperature: (-(lo + hi) / 2.0).exp() })
    }

    /// Platt scaling: logistic regression of the label on the score (Newton's method, with
    /// Platt's smoothed targets so separable data does not diverge).
    pub fn fit_platt(scores: &[f64], labels: &[bool]) -> Result<Self, MlError> {
        check(scores, labels)?;
        let pos = labels.iter().filter(|&&l| l).count() as f64;
        let neg = labels.len() as f64 - pos;
        let (t_pos, t_neg) = ((pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0));
        let target = |l: bool| if l { t_pos } else { t_neg };
        let loss = |a: f64, b: f64| -> f64 {
            scores
                .iter()
                .zip(labels)
                .map(|(&s, &l)| {
                    let p = sigmoid(a * s + b).clamp(1e-15, 1.0 - 1e-15);
                    let t = target(l);
                    -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
                })
                .sum()
        };
        let (mut a, mut b) = (0.0, ((pos + 1.0) / (neg + 1.0)).ln());
        let mut current = loss(a, b);
        for _ in 0..100 {
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-12, 0.0, 1e-12);
            for (&s, &l) in scores.iter().zip(labels) {
                let p = sigmoid(a * s + b);
                let d = p - target(l);
                let w = p * (1.0 - p);
                ga += d * s;
                gb += d;
                haa += w * s * s;
                hab += w * s;
                hbb += w;
            }
            let det = haa * hbb - hab * hab;
            if det.abs() < 1e-18 {
                break;
            }
            let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
            // Backtracking: a full Newton step can overshoot on well-separated scores.
            let mut step = 1.0;
            let mut improved = false;
            for _ in 0..40 {
                let (na, nb) = (a - step * da, b - step * db);
                let l = loss(na, nb);
                if l <= current {
                    (a, b, current, improved) = (na, nb, l, true);
                    break;
                }
                step /= 2.0;
            }
            if !improved || (step * (da.abs() + db.abs())) < 1e-10 {
                break;
            }
        }
        Ok(Self::Platt { a, b })
    }

    /// Isotonic regression by pool-adjacent-violators.
    pub fn fit_isotonic(scores: &[f64], labels: &[bool]) -> Result<Self, MlError> {
        check(scores, labels)?;
        let mut idx: Vec<usize> = (0..scores.len()).collect();
        idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        // Blocks of (max score, sum of labels, count).
        let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
        for i in idx {
            blocks.push((scores[i], f64::from(u8::from(labels[i])), 1.0));
            while blocks.len() >= 2 {
                let (x2, s2, n2) = blocks[blocks.len() - 1];
                let (_, s1, n1) = blocks[blocks.len() - 2];
                if s1 / n1 <= s2 / n2 {
                    break;
                }
                blocks.pop();
                let last = blocks.len() - 1;
                blocks[last] = (x2, s1 + s2, n1 + n2);
            }
        }
        Ok(Self::Isotonic {
            thresholds: blocks.iter().map(|b| b.0).collect(),
            values: blocks.iter().map(|b| b.1 / b.2).collect(),
        })
    }

    /// The calibrated probability for one logit (temperature) or score (Platt, isotonic).
    pub fn apply(&self, x: f64) -> f64 {
        match self {
            Self::Temperature { temperature } => sigmoid(x / temperature),
            Self::Platt { a, b } => sigmoid(a * x + b),
            Self::Isotonic { thresholds, values } => {
                let i = thresholds.partition_point(|&t| t < x);
                values.get(i).or(values.last()).copied().unwrap_or(0.5)
            }
        }
    }
}
