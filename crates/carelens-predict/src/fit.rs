//! Fitting the fusion model: every source on a labelled population the source models were
//! not trained on, one stack per diagnosis, honest (cross-fitted) numbers for the card.
//!
//! Labels, per diagnosis:
//! - a modelled condition (E11, J18, I25, …): the store's ground truth when it has any
//!   (synthetic populations), else a recorded diagnosis under the code;
//! - an imaging finding's own code (R91, N20, …): the finding on any image of the studies
//!   the image models read (synthetic studies carry per-image findings);
//! - anything else: a recorded diagnosis under the code.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::tensor::backend::Backend;
use carelens_domain::Condition;
use carelens_ml::{
    Assessment, CalibrationMethod, DatasetInfo, FusedDiagnosis, ModelBody, ModelManifest, Stack, ThresholdRule, assess,
    auroc,
};
use carelens_store::{ObjectStore, Store};
use chrono::NaiveDate;
use serde::Serialize;

use crate::compute::{PatientInput, compute};
use crate::models::{Candidate, Models};
use crate::{PredictError, Result, catalogue, load_inputs};

#[derive(Debug, Clone)]
pub struct FitOptions {
    pub as_of: NaiveDate,
    /// Use at most this many patients (in Health ID order, which is pseudo-random).
    pub limit: Option<usize>,
    pub l2: f64,
    /// Folds of the cross-fitted report.
    pub folds: usize,
    pub seed: u64,
    pub chunk: usize,
}

/// One diagnosis's fit, with cross-fitted AUROCs of the fusion and of each source alone
/// (each also stacked, i.e. recalibrated with its presence, so the comparison is fair).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiagnosisFit {
    pub code: String,
    pub display: String,
    pub examples: usize,
    pub positives: usize,
    pub fused_auroc: f64,
    pub source_aurocs: Vec<(String, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitReport {
    pub patients: usize,
    pub failed: usize,
    pub label_source: String,
    pub diagnoses: Vec<DiagnosisFit>,
    /// Diagnoses not fitted (one class only, say), with the reason.
    pub skipped: Vec<(String, String)>,
}

/// The truth of each candidate for one patient.
pub(crate) fn labels<B: Backend>(
    models: &Models<B>,
    candidates: &[Candidate],
    input: &PatientInput,
    truth: &[Condition],
) -> Vec<bool> {
    let recorded = crate::compute::recorded_codes(&input.history);
    candidates
        .iter()
        .map(|c| {
            if let Some(cond) = catalogue::condition(&c.code) {
                return truth.contains(&cond);
            }
            if let Some(f) = catalogue::FINDINGS.iter().find(|f| f.code == c.code) {
                return models
                    .image
                    .iter()
                    .filter(|s| s.labels.iter().any(|l| l == f.finding))
                    .filter_map(|s| s.study(&input.history))
                    .flat_map(|s| &s.instances)
                    .any(|i| i.findings.iter().any(|g| g.as_str() == f.finding));
            }
            recorded.iter().any(|r| catalogue::covers(&c.code, r))
        })
        .collect()
}

/// Runs every source on the store's patients and fits one stack per diagnosis. Returns the
/// manifest to save (name `fusion`) and the report.
pub async fn fit_fusion<B: Backend>(
    store: &dyn Store,
    objects: &dyn ObjectStore,
    models: &Models<B>,
    opts: &FitOptions,
    device: &B::Device,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(ModelManifest, FitReport)> {
    let started = Instant::now();
    let candidates = models.catalogue_candidates();
    if candidates.is_empty() {
        return Err(PredictError::Input(
            "no sources to fuse: train image models on DICOM studies or history models first".into(),
        ));
    }
    let mut ids = crate::batch::all_patients(store).await?;
    if let Some(l) = opts.limit {
        ids.truncate(l);
    }
    // Rows per candidate: source probabilities and truth.
    let mut rows: Vec<Vec<Vec<Option<f64>>>> = vec![vec![]; candidates.len()];
    let mut truths: Vec<Vec<bool>> = vec![vec![]; candidates.len()];
    let (mut patients, mut failed, mut any_truth) = (0usize, 0usize, false);
    for chunk in ids.chunks(opts.chunk.max(1)) {
        let mut inputs = Vec::new();
        for r in load_inputs(store, objects, models, chunk).await? {
            match r {
                Ok(i) => inputs.push(i),
                Err(_) => failed += 1,
            }
        }
        let mut truth = Vec::with_capacity(inputs.len());
        for i in &inputs {
            let t: Vec<Condition> = store.ground_truth(&i.patient.id).await?.into_iter().map(|g| g.condition).collect();
            any_truth |= !t.is_empty();
            truth.push(t);
        }
        let results = compute(models, &inputs, opts.as_of, false, device);
        for ((input, result), t) in inputs.iter().zip(results).zip(&truth) {
            let Ok(sources) = result else {
                failed += 1;
                continue;
            };
            patients += 1;
            let y = labels(models, &candidates, input, t);
            for (k, c) in candidates.iter().enumerate() {
                let row: Vec<Option<f64>> = c.sources.iter().map(|s| sources.get(s).map(|o| o.probability)).collect();
                if row.iter().any(Option::is_some) {
                    rows[k].push(row);
                    truths[k].push(y[k]);
                }
            }
        }
        progress(chunk.len() as u64);
    }
    if !any_truth {
        // No ground truth in this store: label conditions by recorded diagnoses instead.
        return Err(PredictError::Input(
            "this store holds no ground truth; fitting fusion on recorded diagnoses alone is not supported yet \
             (fit it on a synthetic population, or on doctors' feedback once exported)"
                .into(),
        ));
    }
    let mut diagnoses = Vec::new();
    let mut report = FitReport {
        patients,
        failed,
        label_source: "ground truth (conditions) and per-image findings (imaging codes)".into(),
        diagnoses: vec![],
        skipped: vec![],
    };
    let (mut logits, mut targets, mut codes) = (vec![], vec![], vec![]);
    for (k, c) in candidates.iter().enumerate() {
        let (x, y) = (&rows[k], &truths[k]);
        let positives = y.iter().filter(|&&t| t).count();
        if positives < opts.folds || y.len() - positives < opts.folds {
            report.skipped.push((
                c.code.clone(),
                format!(
                    "{positives} positives among {} patients with a source; need at least {} of each class",
                    y.len(),
                    opts.folds
                ),
            ));
            continue;
        }
        let stack = Stack::fit(c.sources.clone(), x, y, opts.l2)?;
        let z = Stack::cross_fitted_logits(&c.sources, x, y, opts.l2, opts.folds, opts.seed)?;
        let mut source_aurocs = Vec::new();
        for (s, key) in c.sources.iter().enumerate() {
            let xs: Vec<Vec<Option<f64>>> = x.iter().map(|r| vec![r[s]]).collect();
            if xs.iter().all(|r| r[0].is_none()) {
                continue;
            }
            let zs = Stack::cross_fitted_logits(std::slice::from_ref(key), &xs, y, opts.l2, opts.folds, opts.seed)?;
            source_aurocs.push((key.to_string(), auroc(&zs, y)?));
        }
        report.diagnoses.push(DiagnosisFit {
            code: c.code.clone(),
            display: c.display.clone(),
            examples: y.len(),
            positives,
            fused_auroc: auroc(&z, y)?,
            source_aurocs,
        });
        diagnoses.push(FusedDiagnosis { code: c.code.clone(), display: c.display.clone(), stack });
        logits.push(z);
        targets.push(y.clone());
        codes.push(c.code.clone());
    }
    if diagnoses.is_empty() {
        return Err(PredictError::Input(format!(
            "no diagnosis could be fitted on {patients} patients: {}",
            report.skipped.iter().map(|(c, r)| format!("{c}: {r}")).collect::<Vec<_>>().join("; ")
        )));
    }
    let assessment: Assessment =
        assess(&codes, &logits, &targets, CalibrationMethod::None, ThresholdRule::Youden, opts.seed)?;
    let versions: BTreeMap<String, String> = models.versions();
    let examples: usize = targets.iter().map(Vec::len).max().unwrap_or(0);
    let manifest = ModelManifest {
        format: carelens_ml::FORMAT_VERSION,
        name: "fusion".into(),
        version: 0,
        task: format!("fusion of {} sources into {} diagnoses (stacking)", versions.len(), codes.len()),
        labels: codes,
        body: ModelBody::Fusion { diagnoses },
        training: serde_json::json!({
            "sources": versions,
            "l2": opts.l2,
            "folds": opts.folds,
            "seed": opts.seed,
            "as_of": opts.as_of,
            "patients": patients,
            "labels": report.label_source,
        }),
        assessment,
        dataset: DatasetInfo {
            source: format!("{patients} patients of a {} store", store.backend()),
            fingerprint: carelens_ml::sha256_hex(
                ids.iter().map(|i| i.as_str()).collect::<Vec<_>>().join(",").as_bytes(),
            ),
            train_examples: examples,
            validation_examples: examples,
            validation: format!(
                "{}-fold cross-fitting: every reported number comes from a stack fitted without that patient",
                opts.folds
            ),
        },
        unlearnable: report.skipped.iter().map(|(c, _)| c.clone()).collect(),
        training_seconds: started.elapsed().as_secs_f64(),
        backend: "carelens stacking (Newton, CPU)".into(),
        carelens_version: env!("CARGO_PKG_VERSION").into(),
    };
    Ok((manifest, report))
}
