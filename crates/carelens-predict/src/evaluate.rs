//! How stored prediction sets do against a synthetic population's ground truth: per
//! diagnosis, the fused AUROC, and for each source the source's AUROC next to the fused
//! AUROC *on the same patients* (those the source had something to say about), so the
//! comparison answers "given this source, does fusion add anything?".

use std::collections::BTreeMap;

use burn::tensor::backend::Backend;
use carelens_domain::{Condition, HealthId};
use carelens_ml::auroc;
use carelens_store::{HistoryFilter, Store};
use serde::Serialize;

use crate::compute::PatientInput;
use crate::models::Models;
use crate::{Result, fit};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceEvaluation {
    /// `model:label`.
    pub source: String,
    pub patients: usize,
    pub positives: usize,
    pub source_auroc: Option<f64>,
    /// The fused probability's AUROC on the same patients.
    pub fused_auroc: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiagnosisEvaluation {
    pub code: String,
    pub patients: usize,
    pub positives: usize,
    pub fused_auroc: Option<f64>,
    /// The naive baseline: the mean of the present sources' probabilities.
    pub mean_of_sources_auroc: Option<f64>,
    pub sources: Vec<SourceEvaluation>,
}

/// Per source: its probabilities, the fused ones and the truths, on the patients it covers.
type SourceRows = (Vec<f64>, Vec<f64>, Vec<bool>);

#[derive(Default)]
struct Rows {
    fused: Vec<f64>,
    mean: Vec<f64>,
    truth: Vec<bool>,
    by_source: BTreeMap<String, SourceRows>,
}

/// Reads the latest set and the ground truth of each of `ids` and scores every diagnosis.
pub async fn evaluate_sets<B: Backend>(
    store: &dyn Store,
    models: &Models<B>,
    ids: &[HealthId],
) -> Result<Vec<DiagnosisEvaluation>> {
    let candidates = models.catalogue_candidates();
    let mut rows: BTreeMap<String, Rows> = BTreeMap::new();
    for id in ids {
        let (Some(set), Some(patient)) = (store.latest_prediction_set(id).await?, store.get_patient(id).await?) else {
            continue;
        };
        let truth: Vec<Condition> = store.ground_truth(id).await?.into_iter().map(|g| g.condition).collect();
        let history = store.history(id, &HistoryFilter::default()).await?;
        let input = PatientInput { patient, history, objects: Default::default() };
        let labels = fit::labels(models, &candidates, &input, &truth);
        for p in &set.predictions {
            let Some(k) = candidates.iter().position(|c| c.code == p.code.as_str()) else { continue };
            let r = rows.entry(p.code.as_str().to_owned()).or_default();
            r.fused.push(p.probability.get());
            r.mean.push(p.sources.iter().map(|s| s.probability.get()).sum::<f64>() / p.sources.len().max(1) as f64);
            r.truth.push(labels[k]);
            for s in &p.sources {
                let e = r.by_source.entry(format!("{}:{}", s.model.name, s.label)).or_default();
                e.0.push(s.probability.get());
                e.1.push(p.probability.get());
                e.2.push(labels[k]);
            }
        }
    }
    let score = |s: &[f64], y: &[bool]| auroc(s, y).ok();
    Ok(rows
        .into_iter()
        .map(|(code, r)| DiagnosisEvaluation {
            patients: r.truth.len(),
            positives: r.truth.iter().filter(|&&t| t).count(),
            fused_auroc: score(&r.fused, &r.truth),
            mean_of_sources_auroc: score(&r.mean, &r.truth),
            sources: r
                .by_source
                .into_iter()
                .map(|(source, (s, f, y))| SourceEvaluation {
                    source,
                    patients: y.len(),
                    positives: y.iter().filter(|&&t| t).count(),
                    source_auroc: score(&s, &y),
                    fused_auroc: score(&f, &y),
                })
                .collect(),
            code,
        })
        .collect())
}
