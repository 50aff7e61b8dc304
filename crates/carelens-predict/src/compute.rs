//! The CPU part of a run, for a chunk of patients at once (no IO): images decoded and
//! batched through each image model, history features built with polars for each history
//! model, heatmaps and contributions for the sources that matter, and the prediction set.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::tensor::backend::Backend;
use carelens_domain::{
    DiagnosisPrediction, EvidenceKind, EvidenceRef, HistoryEntry, HistoryKind, ImagingStudy, ModelRef, ObjectKey,
    Patient, PredictionSet, PredictionSetId, Probability, SourceProbability,
};
use carelens_features::{HistoryFeatures, table_for_schema};
use carelens_imaging::{DicomFile, Image, Limits};
use carelens_ml::image::{ImageSet, occlusion};
use carelens_ml::{Contribution, SourceKey, logit};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::models::{ImageSource, Models};
use crate::{PredictError, Result, catalogue, overlay, risk_band};

/// One patient's data: the record, the history, and the bytes of the image objects the
/// image models need ([`Models::needed_objects`]).
pub struct PatientInput {
    pub patient: Patient,
    pub history: Vec<HistoryEntry>,
    pub objects: HashMap<ObjectKey, Vec<u8>>,
}

/// Evidence a source produced for one patient.
#[derive(Debug, Clone)]
pub enum SourceEvidence {
    /// An occlusion heatmap overlay (PNG) with what it shows.
    Heatmap { png: Vec<u8>, detail: serde_json::Value },
    /// The history features that moved the prediction most.
    Features { method: &'static str, top: Vec<Contribution> },
}

/// One source's calibrated probability for one patient.
#[derive(Debug, Clone)]
pub struct SourceOutput {
    pub model: ModelRef,
    pub probability: f64,
    pub threshold: f64,
    pub evidence: Option<SourceEvidence>,
}

pub type SourceSet = BTreeMap<SourceKey, SourceOutput>;

/// Contributions kept per history source.
const TOP_FEATURES: usize = 5;
/// Side of the heatmap overlay PNG.
pub const OVERLAY_SIZE: u32 = 256;

impl<B: Backend> ImageSource<B> {
    /// The study this model reads for a patient: the latest with the model's modality (and
    /// body part) that has stored images.
    pub fn study<'a>(&self, history: &'a [HistoryEntry]) -> Option<&'a ImagingStudy> {
        history
            .iter()
            .filter_map(|e| match &e.kind {
                HistoryKind::ImagingStudy(s)
                    if s.modality == self.modality
                        && self.body_part.is_none_or(|b| b == s.body_part)
                        && !s.instances.is_empty() =>
                {
                    Some((e.date, e.id, s))
                }
                _ => None,
            })
            .max_by_key(|(d, id, _)| (*d, *id))
            .map(|(_, _, s)| s)
    }
}

impl<B: Backend> Models<B> {
    /// The image objects a patient's prediction reads.
    pub fn needed_objects(&self, history: &[HistoryEntry]) -> Vec<ObjectKey> {
        let mut keys: Vec<ObjectKey> = self
            .image
            .iter()
            .filter_map(|s| s.study(history))
            .flat_map(|s| s.instances.iter().map(|i| i.object_key.clone()))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

/// SHA-256 over everything a patient's prediction depends on: the models in use, the date,
/// sex, birth date and every history entry (image objects are content-addressed, so their
/// keys stand for their bytes).
pub fn fingerprint(models_identity: &str, as_of: NaiveDate, patient: &Patient, history: &[HistoryEntry]) -> String {
    let mut h = Sha256::new();
    h.update(models_identity.as_bytes());
    h.update(as_of.to_string().as_bytes());
    h.update(format!("{:?}|{}", patient.sex, patient.birth_date).as_bytes());
    for e in history {
        h.update(serde_json::to_vec(e).unwrap_or_default());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

fn decode(key: &ObjectKey, bytes: &[u8]) -> Result<Image> {
    let path = Path::new(key.as_str());
    if carelens_imaging::is_dicom(bytes) {
        Ok(DicomFile::open(path, bytes, &Limits::DEFAULT)?.frame(0)?)
    } else {
        Ok(carelens_imaging::decode_raster(path, bytes, &Limits::DEFAULT)?)
    }
}

/// Runs every source on a chunk of patients. Each patient gets its sources or the reason it
/// failed (an image that does not decode, say); one patient's failure leaves the others.
pub fn compute<B: Backend>(
    models: &Models<B>,
    inputs: &[PatientInput],
    as_of: NaiveDate,
    heatmaps: bool,
    device: &B::Device,
) -> Vec<std::result::Result<SourceSet, String>> {
    let mut out: Vec<std::result::Result<SourceSet, String>> = inputs.iter().map(|_| Ok(SourceSet::new())).collect();
    for source in &models.image {
        if let Err(e) = image_source(source, inputs, heatmaps, device, &mut out) {
            // A model-wide failure (not one patient's data): every patient of the chunk fails.
            for o in out.iter_mut().filter(|o| o.is_ok()) {
                *o = Err(format!("{} v{}: {e}", source.model.name, source.model.version));
            }
        }
    }
    for source in &models.tabular {
        if let Err(e) = tabular_source(source, inputs, as_of, &mut out) {
            for o in out.iter_mut().filter(|o| o.is_ok()) {
                *o = Err(format!("{} v{}: {e}", source.model.name, source.model.version));
            }
        }
    }
    out
}

fn image_source<B: Backend>(
    source: &ImageSource<B>,
    inputs: &[PatientInput],
    heatmaps: bool,
    device: &B::Device,
    out: &mut [std::result::Result<SourceSet, String>],
) -> Result<()> {
    let spec = &source.spec;
    let (c, h, w) = (usize::from(spec.channels), spec.height as usize, spec.width as usize);
    // Rows of the batch: (patient, object key).
    let (mut pixels, mut owners) = (Vec::new(), Vec::<(usize, ObjectKey)>::new());
    for (i, input) in inputs.iter().enumerate() {
        if out[i].is_err() {
            continue;
        }
        let Some(study) = source.study(&input.history) else { continue };
        let r: Result<Vec<(ObjectKey, Vec<f32>)>> = study
            .instances
            .iter()
            .map(|inst| {
                let bytes = input.objects.get(&inst.object_key).ok_or_else(|| {
                    PredictError::Input(format!("image {} is not in the object store", inst.object_key))
                })?;
                let x = spec.apply(&decode(&inst.object_key, bytes)?)?;
                Ok((inst.object_key.clone(), x.iter().copied().collect()))
            })
            .collect();
        match r {
            Ok(images) => {
                for (key, x) in images {
                    pixels.extend(x);
                    owners.push((i, key));
                }
            }
            Err(e) => out[i] = Err(format!("{} v{}: {e}", source.model.name, source.model.version)),
        }
    }
    if owners.is_empty() {
        return Ok(());
    }
    let l = source.labels.len();
    let n = owners.len();
    let set = ImageSet::new(c, h, w, pixels, source.labels.clone(), vec![false; n * l])?;
    let z = source.net.logits(&set, &source.labels, device)?;
    // Per patient and label: the image with the highest logit (a finding on any slice counts).
    let mut best: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for (row, (i, _)) in owners.iter().enumerate() {
        for k in 0..l {
            let e = best.entry((*i, k)).or_insert(row);
            if z[row * l + k] > z[*e * l + k] {
                *e = row;
            }
        }
    }
    for ((i, k), row) in best {
        let Ok(set_i) = &mut out[i] else { continue };
        let probability = source.calibrators[k].apply(z[row * l + k]);
        let threshold = source.thresholds[k];
        let mut evidence = None;
        if heatmaps && probability >= threshold / 2.0 {
            let patch = (h.min(w) / 4).max(1);
            let s = occlusion(&source.net, set.image(row), &source.labels, k, patch, (patch / 2).max(1), device)?;
            let key = &owners[row].1;
            let display = display_spec(spec);
            let background = display.apply(&decode(key, &inputs[i].objects[key])?)?;
            let png = overlay::render_overlay(&background, &s)?;
            evidence = Some(SourceEvidence::Heatmap {
                png,
                detail: json!({
                    "model": source.model.name,
                    "version": source.model.version,
                    "label": source.labels[k],
                    "image": key.as_str(),
                    "method": "occlusion sensitivity",
                    "patch": s.patch,
                    "stride": s.stride,
                    "max_logit_drop": s.map.iter().copied().fold(0f32, f32::max),
                }),
            });
        }
        set_i.insert(
            SourceKey { model: source.model.name.clone(), label: source.labels[k].clone() },
            SourceOutput { model: source.model.clone(), probability, threshold, evidence },
        );
    }
    Ok(())
}

/// The display version of a model's preprocessing: same intensity mapping, larger, not
/// standardised (values in 0..=1).
fn display_spec(spec: &carelens_imaging::PreprocessSpec) -> carelens_imaging::PreprocessSpec {
    carelens_imaging::PreprocessSpec {
        height: OVERLAY_SIZE,
        width: OVERLAY_SIZE,
        channels: 1,
        mean: 0.0,
        std: 1.0,
        ..spec.clone()
    }
}

fn tabular_source(
    source: &crate::models::TabularSource,
    inputs: &[PatientInput],
    as_of: NaiveDate,
    out: &mut [std::result::Result<SourceSet, String>],
) -> Result<()> {
    let mut features = HistoryFeatures::new(as_of, &source.code)?.lab_coverage(0.0);
    let mut rows = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        if out[i].is_ok() && input.patient.birth_date <= as_of {
            features.add(input.patient.sex, input.patient.birth_date, &input.history);
            rows.push(i);
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    let table = table_for_schema(&features.finish()?, source.body.schema())?;
    let all: Vec<usize> = (0..rows.len()).collect();
    let raw = source.body.predict(&table, &all)?;
    let method = match source.body {
        carelens_ml::TabularModel::Logistic(_) => "coefficient × standardised value",
        _ => "baseline substitution (log-odds with the value minus with the training baseline)",
    };
    for (r, &i) in rows.iter().enumerate() {
        let Ok(set_i) = &mut out[i] else { continue };
        let probability = source.calibrator.apply(logit(raw[r]));
        let evidence = if probability >= source.threshold / 2.0 {
            let mut top = source.body.contributions(&table, r)?;
            top.truncate(TOP_FEATURES);
            Some(SourceEvidence::Features { method, top })
        } else {
            None
        };
        set_i.insert(
            SourceKey { model: source.model.name.clone(), label: source.target.clone() },
            SourceOutput { model: source.model.clone(), probability, threshold: source.threshold, evidence },
        );
    }
    Ok(())
}

/// The codes of every recorded diagnosis (any status).
pub(crate) fn recorded_codes(history: &[HistoryEntry]) -> Vec<&str> {
    history
        .iter()
        .filter_map(|e| match &e.kind {
            HistoryKind::Diagnosis(d) => Some(d.code.as_str()),
            _ => None,
        })
        .collect()
}

fn prob(p: f64) -> Probability {
    Probability::new(p.clamp(0.0, 1.0)).unwrap_or_else(|_| unreachable!("clamped"))
}

/// Builds the prediction set from a patient's sources; `None` when no diagnosis has a source.
/// `heatmaps` maps a source to the object key of its stored overlay.
#[allow(clippy::too_many_arguments)]
pub fn assemble<B: Backend>(
    models: &Models<B>,
    input: &PatientInput,
    sources: &SourceSet,
    heatmaps: &BTreeMap<SourceKey, ObjectKey>,
    fingerprint: String,
    version: u32,
    now: DateTime<Utc>,
) -> Option<PredictionSet> {
    let recorded = recorded_codes(&input.history);
    let mut predictions = Vec::new();
    let mut params = serde_json::Map::new();
    for (idx, cand) in models.candidates().iter().enumerate() {
        let row: Vec<Option<f64>> = cand.sources.iter().map(|k| sources.get(k).map(|o| o.probability)).collect();
        if row.iter().all(Option::is_none) {
            continue;
        }
        let (probability, threshold, contributions) = match &models.fusion {
            Some(f) => {
                let stack = &f.diagnoses[idx].stack;
                params.insert(
                    cand.code.clone(),
                    json!({
                        "intercept": stack.intercept,
                        "sources": cand.sources.iter().enumerate().map(|(k, s)| json!({
                            "source": s.to_string(),
                            "weight": stack.weight[k],
                            "presence": stack.presence[k],
                            "centre": stack.centre[k],
                        })).collect::<Vec<_>>(),
                    }),
                );
                (stack.probability(&row), f.thresholds[idx], Some(stack.contributions(&row)))
            }
            None => {
                // Unfused: the present source with the best validation AUROC speaks alone.
                let best = cand.sources.iter().filter_map(|k| sources.get(k).map(|o| (k, o))).max_by(|a, b| {
                    let qa = models.source_quality(a.0).map_or(0.5, |q| q.0);
                    let qb = models.source_quality(b.0).map_or(0.5, |q| q.0);
                    qa.total_cmp(&qb).then_with(|| b.0.cmp(a.0))
                })?;
                (best.1.probability, best.1.threshold, None)
            }
        };
        let mut src = Vec::new();
        let mut evidence = Vec::new();
        for (k, key) in cand.sources.iter().enumerate() {
            let Some(o) = sources.get(key) else { continue };
            src.push(SourceProbability {
                model: o.model.clone(),
                label: key.label.clone(),
                probability: prob(o.probability),
                contribution: contributions.as_ref().map(|c| c[k]),
            });
            match &o.evidence {
                Some(SourceEvidence::Heatmap { detail, .. }) => evidence.push(EvidenceRef {
                    kind: EvidenceKind::Heatmap,
                    object_key: heatmaps.get(key).cloned(),
                    detail: detail.clone(),
                }),
                Some(SourceEvidence::Features { method, top }) => evidence.push(EvidenceRef {
                    kind: EvidenceKind::Features,
                    object_key: None,
                    detail: json!({
                        "model": o.model.name,
                        "version": o.model.version,
                        "method": method,
                        "features": top.iter().map(|c| json!({
                            "feature": c.column,
                            "value": c.value,
                            "log_odds": c.log_odds,
                            "direction": if c.log_odds >= 0.0 { "raises" } else { "lowers" },
                        })).collect::<Vec<_>>(),
                    }),
                }),
                None => {}
            }
        }
        let code = cand.code.parse().ok()?;
        predictions.push(DiagnosisPrediction {
            code,
            display: cand.display.clone(),
            probability: prob(probability),
            risk_band: risk_band(probability, threshold),
            threshold: Some(threshold),
            known: recorded.iter().any(|r| catalogue::covers(&cand.code, r)),
            sources: src,
            evidence,
        });
    }
    if predictions.is_empty() {
        return None;
    }
    predictions.sort_by(|a, b| a.known.cmp(&b.known).then_with(|| b.probability.get().total_cmp(&a.probability.get())));
    let fusion = match &models.fusion {
        Some(f) => json!({
            "method": "stacking",
            "model": format!("{}@{}", f.model.name, f.model.version),
            "description": "L2 logistic regression over each source's centred calibrated log-odds and a presence indicator, fitted on labelled data the source models did not see",
            "parameters": params,
        }),
        None => json!({
            "method": "unfused",
            "description": "no fusion model in the registry: each diagnosis takes its present source with the best validation AUROC; fit one with `carelens train fusion`",
        }),
    };
    Some(PredictionSet {
        id: PredictionSetId::random(),
        patient: input.patient.id.clone(),
        version,
        created_at: now,
        models: models.refs(),
        fusion,
        input_fingerprint: fingerprint,
        predictions,
    })
}
