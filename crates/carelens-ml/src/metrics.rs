//! Binary classification metrics for one label: AUROC (with a stratified bootstrap 95 %
//! interval), the confusion matrix and its rates at a threshold, threshold choice on
//! validation data, Brier score and expected calibration error.

use serde::{Deserialize, Serialize};

use crate::{MlError, Rng};

/// Scores (probabilities or any monotone score) and 0/1 labels of equal length.
fn check(scores: &[f64], labels: &[bool]) -> Result<(usize, usize), MlError> {
    if scores.len() != labels.len() {
        return Err(MlError::Input(format!("{} scores but {} labels", scores.len(), labels.len())));
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(MlError::Input(format!("score {i} is not finite ({})", scores[i])));
    }
    let pos = labels.iter().filter(|&&l| l).count();
    Ok((pos, labels.len() - pos))
}

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting half (Mann–Whitney U with midranks). Needs both classes.
pub fn auroc(scores: &[f64], labels: &[bool]) -> Result<f64, MlError> {
    let (pos, neg) = check(scores, labels)?;
    if pos == 0 || neg == 0 {
        return Err(MlError::SingleClass { positives: pos, negatives: neg });
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of midranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let midrank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += midrank * order[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    let (p, n) = (pos as f64, neg as f64);
    Ok((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// A point estimate with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// AUROC with a 95 % percentile interval from `rounds` stratified bootstrap resamples
/// (positives and negatives resampled separately, so every resample has both classes).
pub fn auroc_ci(scores: &[f64], labels: &[bool], rounds: usize, seed: u64) -> Result<Interval, MlError> {
    let estimate = auroc(scores, labels)?;
    let pos: Vec<usize> = (0..labels.len()).filter(|&i| labels[i]).collect();
    let neg: Vec<usize> = (0..labels.len()).filter(|&i| !labels[i]).collect();
    let mut rng = Rng::new(seed);
    let mut values = Vec::with_capacity(rounds);
    let (mut s, mut l) = (Vec::with_capacity(labels.len()), Vec::with_capacity(labels.len()));
    for _ in 0..rounds.max(1) {
        s.clear();
        l.clear();
        for (group, label) in [(&pos, true), (&neg, false)] {
            for _ in 0..group.len() {
                s.push(scores[group[rng.below(group.len())]]);
                l.push(label);
            }
        }
        values.push(auroc(&s, &l)?);
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((q * (values.len() - 1) as f64).round() as usize).min(values.len() - 1)];
    Ok(Interval { estimate, low: at(0.025), high: at(0.975) })
}

/// Counts at a threshold (`score >= threshold` is positive) and the rates derived from them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub threshold: f64,
    pub true_positive: usize,
    pub false_positive: usize,
    pub true_negative: usize,
    pub false_negative: usize,
}

impl Confusion {
    pub fn at(scores: &[f64], labels: &[bool], threshold: f64) -> Result<Self, MlError> {
        check(scores, labels)?;
        let mut c = Confusion { threshold, true_positive: 0, false_positive: 0, true_negative: 0, false_negative: 0 };
        for (&s, &l) in scores.iter().zip(labels) {
            match (s >= threshold, l) {
                (true, true) => c.true_positive += 1,
                (true, false) => c.false_positive += 1,
                (false, false) => c.true_negative += 1,
                (false, true) => c.false_negative += 1,
            }
        }
        Ok(c)
    }

    fn ratio(a: usize, b: usize) -> f64 {
        if a + b == 0 { f64::NAN } else { a as f64 / (a + b) as f64 }
    }

    pub fn accuracy(&self) -> f64 {
        Self::ratio(self.true_positive + self.true_negative, self.false_positive + self.false_negative)
    }

    /// Recall of the positive class.
    pub fn sensitivity(&self) -> f64 {
        Self::ratio(self.true_positive, self.false_negative)
    }

    pub fn specificity(&self) -> f64 {
        Self::ratio(self.true_negative, self.false_positive)
    }

    pub fn precision(&self) -> f64 {
        Self::ratio(self.true_positive, self.false_positive)
    }

    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.sensitivity());
        if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) }
    }
}

/// How the operating threshold is chosen on validation data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum ThresholdRule {
    /// Maximise sensitivity + specificity − 1 (ties: the higher threshold).
    Youden,
    /// The highest threshold whose sensitivity reaches the target (screening use).
    Sensitivity { target: f64 },
}

/// The threshold `rule` picks among the observed scores.
pub fn choose_threshold(scores: &[f64], labels: &[bool], rule: ThresholdRule) -> Result<f64, MlError> {
    let (pos, neg) = check(scores, labels)?;
    if pos == 0 || neg == 0 {
        return Err(MlError::SingleClass { positives: pos, negatives: neg });
    }
    let mut candidates: Vec<f64> = scores.to_vec();
    candidates.sort_by(|a, b| b.total_cmp(a));
    candidates.dedup();
    let mut best = (f64::NEG_INFINITY, candidates[0]);
    for &t in &candidates {
        let c = Confusion::at(scores, labels, t)?;
        match rule {
            ThresholdRule::Youden => {
                let j = c.sensitivity() + c.specificity() - 1.0;
                if j > best.0 {
                    best = (j, t);
                }
            }
            ThresholdRule::Sensitivity { target } => {
                if c.sensitivity() >= target {
                    return Ok(t);
                }
            }
        }
    }
    Ok(match rule {
        ThresholdRule::Youden => best.1,
        // Unreachable target: the lowest threshold (everything positive).
        ThresholdRule::Sensitivity { .. } => candidates[candidates.len() - 1],
    })
}

/// Mean squared difference between probability and outcome.
pub fn brier(probs: &[f64], labels: &[bool]) -> Result<f64, MlError> {
    check(probs, labels)?;
    if probs.is_empty() {
        return Err(MlError::Input("no predictions".into()));
    }
    Ok(probs.iter().zip(labels).map(|(&p, &l)| (p - f64::from(u8::from(l))).powi(2)).sum::<f64>() / probs.len() as f64)
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    pub low: f64,
    pub high: f64,
    pub count: usize,
    pub mean_probability: f64,
    pub observed_rate: f64,
}

/// Expected calibration error over `bins` equal-width probability bins (the weighted mean
/// gap between predicted probability and observed rate), with the bins for a reliability
/// diagram.
pub fn calibration_error(probs: &[f64], labels: &[bool], bins: usize) -> Result<(f64, Vec<Bin>), MlError> {
    check(probs, labels)?;
    if probs.is_empty() || bins == 0 {
        return Err(MlError::Input("no predictions or no bins".into()));
    }
    if let Some(p) = probs.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        return Err(MlError::Input(format!("probability {p} outside [0, 1]")));
    }
    let mut sums = vec![(0usize, 0.0f64, 0usize); bins];
    for (&p, &l) in probs.iter().zip(labels) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        sums[b].0 += 1;
        sums[b].1 += p;
        sums[b].2 += usize::from(l);
    }
    let n = probs.len() as f64;
    let mut ece = 0.0;
    let mut out = Vec::new();
    for (i, &(count, psum, pos)) in sums.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let (mean, rate) = (psum / count as f64, pos as f64 / count as f64);
        ece += count as f64 / n * (mean - rate).abs();
        out.push(Bin {
            low: i as f64 / bins as f64,
            high: (i + 1) as f64 / bins as f64,
            count,
            mean_probability: mean,
            observed_rate: rate,
        });
    }
    Ok((ece, out))
}
