//! Tabular models: a [`FeatureSchema`] learnt on training rows (median imputation with
//! missing-indicator columns, standardisation, one-hot categories), logistic regression fitted
//! with linfa, and stratified k-fold cross-validation. Schema and weights are plain
//! serialisable numbers, so a saved model predicts exactly what it predicted when trained.

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::{ColumnData, MlError, Rng, Table};

/// How one input column becomes features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureColumn {
    /// `(x − mean) / std` after imputing the median; plus an indicator when training data
    /// had missing cells.
    Numeric { name: String, median: f64, mean: f64, std: f64, missing_indicator: bool },
    /// One indicator per training category (up to 20, the most frequent); others and missing
    /// cells get all zeros plus a missing indicator.
    Categorical { name: String, categories: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSchema {
    pub columns: Vec<FeatureColumn>,
}

const MAX_CATEGORIES: usize = 20;

impl FeatureSchema {
    /// Learns the schema from the rows `rows` of `table`.
    pub fn fit(table: &Table, rows: &[usize]) -> Self {
        let mut columns = Vec::new();
        for c in &table.columns {
            match &c.data {
                ColumnData::Numeric(v) => {
                    let mut present: Vec<f64> = rows.iter().filter_map(|&r| v[r]).collect();
                    present.sort_by(f64::total_cmp);
                    let median = present.get(present.len() / 2).copied().unwrap_or(0.0);
                    let n = present.len().max(1) as f64;
                    let mean = present.iter().sum::<f64>() / n;
                    let var = present.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                    columns.push(FeatureColumn::Numeric {
                        name: c.name.clone(),
                        median,
                        mean,
                        std: if var > 1e-24 { var.sqrt() } else { 1.0 },
                        missing_indicator: present.len() < rows.len(),
                    });
                }
                ColumnData::Categorical(v) => {
                    let mut counts: Vec<(String, usize)> = Vec::new();
                    for s in rows.iter().filter_map(|&r| v[r].as_ref()) {
                        match counts.iter_mut().find(|(k, _)| k == s) {
                            Some((_, n)) => *n += 1,
                            None => counts.push((s.clone(), 1)),
                        }
                    }
                    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                    columns.push(FeatureColumn::Categorical {
                        name: c.name.clone(),
                        categories: counts.into_iter().take(MAX_CATEGORIES).map(|(k, _)| k).collect(),
                    });
                }
            }
        }
        Self { columns }
    }

    pub fn width(&self) -> usize {
        self.columns
            .iter()
            .map(|c| match c {
                FeatureColumn::Numeric { missing_indicator, .. } => 1 + usize::from(*missing_indicator),
                FeatureColumn::Categorical { categories, .. } => categories.len() + 1,
            })
            .sum()
    }

    /// The feature matrix for `rows` of `table`, whose columns must match the schema's.
    pub fn transform(&self, table: &Table, rows: &[usize]) -> Result<Array2<f64>, MlError> {
        if table.columns.len() != self.columns.len() {
            return Err(MlError::Input(format!(
                "the data has {} feature columns, the model expects {}",
                table.columns.len(),
                self.columns.len()
            )));
        }
        let mut x = Array2::zeros((rows.len(), self.width()));
        let mut j = 0;
        for (spec, col) in self.columns.iter().zip(&table.columns) {
            match (spec, &col.data) {
                (FeatureColumn::Numeric { name, median, mean, std, missing_indicator }, ColumnData::Numeric(v)) => {
                    if name != &col.name {
                        return Err(MlError::Input(format!("column `{}` where the model expects `{name}`", col.name)));
                    }
                    for (i, &r) in rows.iter().enumerate() {
                        x[[i, j]] = (v[r].unwrap_or(*median) - mean) / std;
                        if *missing_indicator {
                            x[[i, j + 1]] = f64::from(u8::from(v[r].is_none()));
                        }
                    }
                    j += 1 + usize::from(*missing_indicator);
                }
                (FeatureColumn::Categorical { name, categories }, ColumnData::Categorical(v)) => {
                    if name != &col.name {
                        return Err(MlError::Input(format!("column `{}` where the model expects `{name}`", col.name)));
                    }
                    for (i, &r) in rows.iter().enumerate() {
                        match v[r].as_ref().and_then(|s| categories.iter().position(|c| c == s)) {
                            Some(k) => x[[i, j + k]] = 1.0,
                            None => x[[i, j + categories.len()]] = 1.0,
                        }
                    }
                    j += categories.len() + 1;
                }
                _ => {
                    return Err(MlError::Input(format!(
                        "column `{}` changed type since the model was trained (numeric ↔ categorical)",
                        col.name
                    )));
                }
            }
        }
        Ok(x)
    }
}

/// A fitted logistic regression: schema, weights and intercept, in plain numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticModel {
    pub schema: FeatureSchema,
    pub weights: Vec<f64>,
    pub intercept: f64,
    /// L2 penalty it was fitted with.
    pub alpha: f64,
}

impl LogisticModel {
    /// Fits on `rows` of `table` (the positive class is `table.target == true`).
    pub fn fit(table: &Table, rows: &[usize], alpha: f64) -> Result<Self, MlError> {
        let pos = rows.iter().filter(|&&r| table.target[r]).count();
        if pos == 0 || pos == rows.len() {
            return Err(MlError::SingleClass { positives: pos, negatives: rows.len() - pos });
        }
        let schema = FeatureSchema::fit(table, rows);
        let x = schema.transform(table, rows)?;
        let y: Array1<bool> = rows.iter().map(|&r| table.target[r]).collect();
        let fitted = LogisticRegression::default()
            .alpha(alpha)
            .max_iterations(500)
            .fit(&Dataset::new(x, y))
            .map_err(|e| MlError::Input(format!("logistic regression did not fit: {e}")))?;
        // linfa models P(larger class); flip to P(true) when `true` is the smaller class.
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        Ok(Self {
            schema,
            weights: fitted.params().iter().map(|w| w * sign).collect(),
            intercept: fitted.intercept() * sign,
            alpha,
        })
    }

    /// P(positive) for `rows` of `table`.
    pub fn predict(&self, table: &Table, rows: &[usize]) -> Result<Vec<f64>, MlError> {
        let x = self.schema.transform(table, rows)?;
        if x.ncols() != self.weights.len() {
            return Err(MlError::Input(format!(
                "{} features, the model has {} weights",
                x.ncols(),
                self.weights.len()
            )));
        }
        let w = Array1::from(self.weights.clone());
        Ok(x.dot(&w).iter().map(|z| 1.0 / (1.0 + (-(z + self.intercept)).exp())).collect())
    }
}

/// `k` folds with the class balance of the whole set (rows shuffled by `seed` within each
/// class, then dealt round-robin). Returns the validation rows of each fold.
pub fn stratified_folds(target: &[bool], k: usize, seed: u64) -> Result<Vec<Vec<usize>>, MlError> {
    let pos: Vec<usize> = (0..target.len()).filter(|&i| target[i]).collect();
    let neg: Vec<usize> = (0..target.len()).filter(|&i| !target[i]).collect();
    if k < 2 || pos.len() < k || neg.len() < k {
        return Err(MlError::Input(format!(
            "{k}-fold cross-validation needs at least {k} examples of each class ({} positive, {} negative)",
            pos.len(),
            neg.len()
        )));
    }
    let mut rng = Rng::new(seed);
    let mut folds = vec![Vec::new(); k];
    let mut n = 0;
    for mut group in [pos, neg] {
        for i in (1..group.len()).rev() {
            group.swap(i, rng.below(i + 1));
        }
        for r in group {
            folds[n % k].push(r);
            n += 1;
        }
    }
    for f in &mut folds {
        f.sort_unstable();
    }
    Ok(folds)
}

/// Out-of-fold probabilities from stratified k-fold cross-validation.
pub fn cross_validate(table: &Table, k: usize, alpha: f64, seed: u64) -> Result<Vec<f64>, MlError> {
    let folds = stratified_folds(&table.target, k, seed)?;
    let mut out = vec![f64::NAN; table.rows()];
    for (i, val) in folds.iter().enumerate() {
        let train: Vec<usize> =
            folds.iter().enumerate().filter(|(j, _)| *j != i).flat_map(|(_, f)| f.clone()).collect();
        let model = LogisticModel::fit(table, &train, alpha)?;
        for (r, p) in val.iter().zip(model.predict(table, val)?) {
            out[*r] = p;
        }
    }
    Ok(out)
}
