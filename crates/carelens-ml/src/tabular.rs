//! Tabular models: a [`FeatureSchema`] learnt on training rows (median imputation with
//! missing-indicator columns, standardisation, one-hot categories), logistic regression fitted
//! with linfa, and stratified k-fold cross-validation. Schema and weights are plain
//! serialisable numbers, so a saved model predicts exactly what it predicted when trained.

use linfa::prelude::*;
use linfa_bayes::{GaussianNb, NaiveBayes};
use linfa_logistic::LogisticRegression;
use linfa_trees::DecisionTree;
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
        rng.shuffle(&mut group);
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

/// Out-of-fold probabilities of logistic regression with L2 penalty `alpha` from stratified
/// k-fold cross-validation.
pub fn cross_validate(table: &Table, k: usize, alpha: f64, seed: u64) -> Result<Vec<f64>, MlError> {
    cross_validate_params(table, &TabularParams::Logistic { alpha }, k, seed)
}

/// Out-of-fold probabilities of any tabular model from stratified k-fold cross-validation.
pub fn cross_validate_params(table: &Table, params: &TabularParams, k: usize, seed: u64) -> Result<Vec<f64>, MlError> {
    let folds = stratified_folds(&table.target, k, seed)?;
    let mut out = vec![f64::NAN; table.rows()];
    for (i, val) in folds.iter().enumerate() {
        let train: Vec<usize> =
            folds.iter().enumerate().filter(|(j, _)| *j != i).flat_map(|(_, f)| f.clone()).collect();
        let model = params.fit(table, &train, seed.wrapping_add(i as u64))?;
        for (r, p) in val.iter().zip(model.predict(table, val)?) {
            out[*r] = p;
        }
    }
    Ok(out)
}

/// A model family and its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TabularParams {
    /// L2-penalised logistic regression.
    Logistic { alpha: f64 },
    /// Gaussian naive Bayes; `var_smoothing` × the largest feature variance is added to every
    /// variance.
    NaiveBayes { var_smoothing: f64 },
    /// Random forest: `trees` CART trees (Gini), each on a bootstrap sample of the rows and a
    /// random `feature_fraction` of the feature columns; the score is the share of trees voting
    /// positive.
    Forest { trees: usize, max_depth: usize, feature_fraction: f64 },
}

/// Model families for `--kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TabularKind {
    Logistic,
    NaiveBayes,
    Forest,
}

impl TabularKind {
    pub const ALL: [TabularKind; 3] = [TabularKind::Logistic, TabularKind::NaiveBayes, TabularKind::Forest];

    pub fn as_str(self) -> &'static str {
        match self {
            TabularKind::Logistic => "logistic",
            TabularKind::NaiveBayes => "naive_bayes",
            TabularKind::Forest => "forest",
        }
    }

    /// The small hyper-parameter grid searched by cross-validation.
    pub fn grid(self) -> Vec<TabularParams> {
        match self {
            TabularKind::Logistic => {
                [0.01, 0.1, 1.0, 10.0].into_iter().map(|alpha| TabularParams::Logistic { alpha }).collect()
            }
            TabularKind::NaiveBayes => [1e-9, 1e-6, 1e-3]
                .into_iter()
                .map(|var_smoothing| TabularParams::NaiveBayes { var_smoothing })
                .collect(),
            TabularKind::Forest => [(4, 0.5), (8, 0.5), (12, 0.3)]
                .into_iter()
                .map(|(max_depth, feature_fraction)| TabularParams::Forest { trees: 100, max_depth, feature_fraction })
                .collect(),
        }
    }
}

impl std::fmt::Display for TabularParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TabularParams::Logistic { alpha } => write!(f, "logistic(alpha={alpha})"),
            TabularParams::NaiveBayes { var_smoothing } => write!(f, "naive_bayes(var_smoothing={var_smoothing})"),
            TabularParams::Forest { trees, max_depth, feature_fraction } => {
                write!(f, "forest(trees={trees}, max_depth={max_depth}, feature_fraction={feature_fraction})")
            }
        }
    }
}

/// One fitted tree of a forest and the feature columns it sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForestTree {
    pub features: Vec<usize>,
    pub tree: DecisionTree<f64, bool>,
}

/// A fitted tabular model of any family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TabularModel {
    Logistic(LogisticModel),
    /// Classes 0 (negative) and 1 (positive). linfa's model keys a map by class, which a
    /// tagged enum cannot round-trip through JSON, so it is stored as an embedded JSON string.
    NaiveBayes {
        schema: FeatureSchema,
        #[serde(with = "json_string")]
        model: GaussianNb<f64, usize>,
    },
    Forest {
        schema: FeatureSchema,
        trees: Vec<ForestTree>,
    },
}

fn check_two_classes(table: &Table, rows: &[usize]) -> Result<(), MlError> {
    let pos = rows.iter().filter(|&&r| table.target[r]).count();
    if pos == 0 || pos == rows.len() {
        return Err(MlError::SingleClass { positives: pos, negatives: rows.len() - pos });
    }
    Ok(())
}

impl TabularParams {
    pub fn kind(&self) -> TabularKind {
        match self {
            TabularParams::Logistic { .. } => TabularKind::Logistic,
            TabularParams::NaiveBayes { .. } => TabularKind::NaiveBayes,
            TabularParams::Forest { .. } => TabularKind::Forest,
        }
    }

    /// Fits on `rows` of `table`; `seed` drives the forest's sampling.
    pub fn fit(&self, table: &Table, rows: &[usize], seed: u64) -> Result<TabularModel, MlError> {
        check_two_classes(table, rows)?;
        match *self {
            TabularParams::Logistic { alpha } => Ok(TabularModel::Logistic(LogisticModel::fit(table, rows, alpha)?)),
            TabularParams::NaiveBayes { var_smoothing } => {
                let schema = FeatureSchema::fit(table, rows);
                let x = schema.transform(table, rows)?;
                let y: Array1<usize> = rows.iter().map(|&r| usize::from(table.target[r])).collect();
                let model = GaussianNb::params()
                    .var_smoothing(var_smoothing)
                    .fit(&Dataset::new(x, y))
                    .map_err(|e| MlError::Input(format!("naive Bayes did not fit: {e}")))?;
                Ok(TabularModel::NaiveBayes { schema, model })
            }
            TabularParams::Forest { trees, max_depth, feature_fraction } => {
                let schema = FeatureSchema::fit(table, rows);
                let x = schema.transform(table, rows)?;
                let y: Vec<bool> = rows.iter().map(|&r| table.target[r]).collect();
                let width = x.ncols();
                let take = ((width as f64 * feature_fraction).ceil() as usize).clamp(1, width.max(1));
                let mut rng = Rng::new(seed);
                let mut out = Vec::with_capacity(trees);
                for _ in 0..trees {
                    let mut features: Vec<usize> = (0..width).collect();
                    rng.shuffle(&mut features);
                    features.truncate(take);
                    features.sort_unstable();
                    let sample: Vec<usize> = (0..rows.len()).map(|_| rng.below(rows.len())).collect();
                    let xs = Array2::from_shape_fn((sample.len(), take), |(i, j)| x[[sample[i], features[j]]]);
                    let ys: Array1<bool> = sample.iter().map(|&i| y[i]).collect();
                    // linfa-trees breaks a tie between the classes in a leaf by HashMap order,
                    // which differs run to run; a slightly heavier negative class makes ties
                    // vote negative, so the same seed gives the same forest.
                    let weights: Array1<f32> = ys.iter().map(|&p| if p { 1.0 } else { 1.0 + 1e-4 }).collect();
                    let tree = DecisionTree::params()
                        .max_depth(Some(max_depth))
                        .min_weight_leaf(2.0)
                        .fit(&Dataset::new(xs, ys).with_weights(weights))
                        .map_err(|e| MlError::Input(format!("a forest tree did not fit: {e}")))?;
                    out.push(ForestTree { features, tree });
                }
                Ok(TabularModel::Forest { schema, trees: out })
            }
        }
    }
}

impl TabularModel {
    pub fn schema(&self) -> &FeatureSchema {
        match self {
            TabularModel::Logistic(m) => &m.schema,
            TabularModel::NaiveBayes { schema, .. } | TabularModel::Forest { schema, .. } => schema,
        }
    }

    /// P(positive) (forest: share of trees voting positive) for `rows` of `table`.
    pub fn predict(&self, table: &Table, rows: &[usize]) -> Result<Vec<f64>, MlError> {
        match self {
            TabularModel::Logistic(m) => m.predict(table, rows),
            _ => self.predict_encoded(&self.schema().transform(table, rows)?),
        }
    }
}

/// How much one input column moved one row's prediction, in log-odds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub column: String,
    /// The row's value as text (`None`: missing).
    pub value: Option<String>,
    /// Positive: towards the positive class.
    pub log_odds: f64,
}

impl FeatureSchema {
    /// Names of the input columns, in order.
    pub fn names(&self) -> Vec<&str> {
        self.columns
            .iter()
            .map(|c| match c {
                FeatureColumn::Numeric { name, .. } | FeatureColumn::Categorical { name, .. } => name.as_str(),
            })
            .collect()
    }

    /// The encoded feature positions of input column `k`.
    fn span(&self, k: usize) -> std::ops::Range<usize> {
        let width = |c: &FeatureColumn| match c {
            FeatureColumn::Numeric { missing_indicator, .. } => 1 + usize::from(*missing_indicator),
            FeatureColumn::Categorical { categories, .. } => categories.len() + 1,
        };
        let start: usize = self.columns[..k].iter().map(width).sum();
        start..start + width(&self.columns[k])
    }
}

fn cell_text(table: &Table, column: usize, row: usize) -> Option<String> {
    match &table.columns[column].data {
        ColumnData::Numeric(v) => v[row].map(|x| format!("{}", (x * 1e4).round() / 1e4)),
        ColumnData::Categorical(v) => v[row].clone(),
    }
}

impl TabularModel {
    /// Each input column's contribution to `row`'s log-odds, largest magnitude first.
    ///
    /// - Logistic regression: coefficient × standardised value, summed over the column's
    ///   encoded features (one-hot categories and missing indicators count from zero), so the
    ///   contributions add up to the log-odds minus the intercept: exact for this model.
    /// - Naive Bayes and forests: baseline substitution (occlusion for tables). The column is
    ///   set to its baseline (numeric: the training mean, not missing; categorical: the most
    ///   frequent training category) and the contribution is
    ///   the log-odds with the real value minus the log-odds with the baseline. It shows what
    ///   the model does with that value given the rest of the row; interactions are not split.
    pub fn contributions(&self, table: &Table, row: usize) -> Result<Vec<Contribution>, MlError> {
        let schema = self.schema();
        let x = schema.transform(table, &[row])?;
        let mut out = Vec::with_capacity(schema.columns.len());
        match self {
            TabularModel::Logistic(m) => {
                for (k, name) in schema.names().into_iter().enumerate() {
                    let log_odds = schema.span(k).map(|j| m.weights[j] * x[[0, j]]).sum();
                    out.push(Contribution { column: name.to_owned(), value: cell_text(table, k, row), log_odds });
                }
            }
            _ => {
                let base = crate::logit(self.predict_encoded(&x)?[0]);
                for (k, name) in schema.names().into_iter().enumerate() {
                    let mut xb = x.clone();
                    for j in schema.span(k) {
                        xb[[0, j]] = 0.0;
                    }
                    if let FeatureColumn::Categorical { categories, .. } = &schema.columns[k]
                        && !categories.is_empty()
                    {
                        xb[[0, schema.span(k).start]] = 1.0;
                    }
                    let log_odds = base - crate::logit(self.predict_encoded(&xb)?[0]);
                    out.push(Contribution { column: name.to_owned(), value: cell_text(table, k, row), log_odds });
                }
            }
        }
        out.sort_by(|a, b| b.log_odds.abs().total_cmp(&a.log_odds.abs()).then_with(|| a.column.cmp(&b.column)));
        Ok(out)
    }

    /// P(positive) for already encoded rows.
    fn predict_encoded(&self, x: &Array2<f64>) -> Result<Vec<f64>, MlError> {
        match self {
            TabularModel::Logistic(m) => {
                let w = Array1::from(m.weights.clone());
                Ok(x.dot(&w).iter().map(|z| crate::sigmoid(z + m.intercept)).collect())
            }
            TabularModel::NaiveBayes { model, .. } => {
                // From the joint log-likelihoods: linfa's predict_proba exponentiates
                // unnormalised values and overflows to inf on far-out rows.
                let jll = model.joint_log_likelihood(x.view());
                let (Some(neg), Some(pos)) = (jll.get(&0), jll.get(&1)) else {
                    return Ok(vec![0.0; x.nrows()]);
                };
                Ok(pos
                    .iter()
                    .zip(neg)
                    .map(|(p, n)| {
                        let d = p - n;
                        if d.is_nan() { 0.5 } else { crate::sigmoid(d) }
                    })
                    .collect())
            }
            TabularModel::Forest { trees, .. } => {
                let mut votes = vec![0.0; x.nrows()];
                for t in trees {
                    let xs = x.select(ndarray::Axis(1), &t.features);
                    for (v, p) in votes.iter_mut().zip(t.tree.predict(&xs)) {
                        *v += f64::from(u8::from(p));
                    }
                }
                Ok(votes.into_iter().map(|v| v / trees.len().max(1) as f64).collect())
            }
        }
    }
}

/// One grid point's cross-validated result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchPoint {
    pub params: TabularParams,
    pub auroc: f64,
}

/// Cross-validates every candidate on the same folds; returns the points (in order) and the
/// index of the best by out-of-fold AUROC (ties: the earlier, i.e. simpler, candidate) with
/// its out-of-fold probabilities.
pub fn grid_search(
    table: &Table,
    candidates: &[TabularParams],
    k: usize,
    seed: u64,
    mut progress: impl FnMut(usize, &SearchPoint),
) -> Result<(Vec<SearchPoint>, usize, Vec<f64>), MlError> {
    let mut points = Vec::new();
    let mut best: Option<(usize, Vec<f64>)> = None;
    for (i, params) in candidates.iter().enumerate() {
        let oof = cross_validate_params(table, params, k, seed)?;
        let auroc = crate::auroc(&oof, &table.target)?;
        let point = SearchPoint { params: params.clone(), auroc };
        progress(i, &point);
        if best
            .as_ref()
            .is_none_or(|(b, _)| auroc > points.get(*b).map_or(f64::NEG_INFINITY, |p: &SearchPoint| p.auroc))
        {
            best = Some((i, oof));
        }
        points.push(point);
    }
    let (b, oof) = best.ok_or_else(|| MlError::Input("no candidate models to search".into()))?;
    Ok((points, b, oof))
}

/// (De)serialises a value as a JSON string inside the document.
mod json_string {
    use serde::de::{DeserializeOwned, Error as _};
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        serde_json::to_string(value).map_err(S::Error::custom)?.serialize(s)
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        serde_json::from_str(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}
