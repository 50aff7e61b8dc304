//! The batch: patients read through the store traits in chunks, run through every source,
//! fused, and stored as new prediction-set versions where their inputs changed.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::tensor::backend::Backend;
use carelens_domain::{Actor, ActorRole, AuditAction, AuditOutcome, HealthId};
use carelens_store::{AuditEvent, HistoryFilter, ObjectStore, PageRequest, Store, StoreError};
use chrono::{NaiveDate, Utc};
use serde::Serialize;

use crate::compute::{PatientInput, SourceEvidence, assemble, compute, fingerprint};
use crate::models::Models;
use crate::{PredictError, Result};

#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Date features are computed on (ages, current medication, the last year's visits).
    pub as_of: NaiveDate,
    /// Only these patients (default: everyone in the store).
    pub patients: Option<Vec<HealthId>>,
    /// Only patients with a history entry dated on or after this day.
    pub since: Option<NaiveDate>,
    /// Render occlusion heatmaps for image findings at or above half their threshold.
    pub heatmaps: bool,
    /// Patients per chunk (images of a chunk share network batches).
    pub chunk: usize,
    /// Who runs it, for the audit log.
    pub actor: Actor,
}

impl BatchOptions {
    pub fn new(as_of: NaiveDate) -> Self {
        Self {
            as_of,
            patients: None,
            since: None,
            heatmaps: true,
            chunk: 64,
            actor: Actor { role: ActorRole::System, id: "carelens-predict".into() },
        }
    }
}

/// What happened to one patient.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum PatientOutcome {
    /// A new prediction-set version was stored.
    New {
        version: u32,
    },
    /// Inputs unchanged since the latest set: nothing written.
    Unchanged {
        version: u32,
    },
    /// No model has anything to say (no matching study, not born on `as_of`, …).
    NoSources,
    /// Not touched because of `--since`.
    NotChanged,
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub patient: HealthId,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BatchReport {
    pub considered: u64,
    pub new_sets: u64,
    pub unchanged: u64,
    pub no_sources: u64,
    pub skipped_by_since: u64,
    pub heatmaps: u64,
    pub failed: Vec<Failure>,
    pub seconds: f64,
    /// Patients computed (not unchanged or skipped) per second.
    pub patients_per_second: f64,
}

/// Reads patients, histories and the image objects the models need. A patient that cannot be
/// read comes back as its reason.
pub async fn load_inputs<B: Backend>(
    store: &dyn Store,
    objects: &dyn ObjectStore,
    models: &Models<B>,
    ids: &[HealthId],
) -> Result<Vec<std::result::Result<PatientInput, (HealthId, String)>>> {
    let mut out = Vec::with_capacity(ids.len());
    let all = HistoryFilter::default();
    for id in ids {
        let Some(patient) = store.get_patient(id).await? else {
            out.push(Err((id.clone(), "unknown patient".into())));
            continue;
        };
        let history = store.history(id, &all).await?;
        let mut images = std::collections::HashMap::new();
        let mut failed = None;
        for key in models.needed_objects(&history) {
            match objects.get(&key).await {
                Ok(bytes) => {
                    images.insert(key, bytes);
                }
                Err(e @ (StoreError::NotFound { .. } | StoreError::Damaged { .. })) => {
                    failed = Some(format!("image {key}: {e}"));
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        out.push(match failed {
            Some(reason) => Err((id.clone(), reason)),
            None => Ok(PatientInput { patient, history, objects: images }),
        });
    }
    Ok(out)
}

pub(crate) async fn all_patients(store: &dyn Store) -> Result<Vec<HealthId>> {
    let mut ids = Vec::new();
    let mut page = Some(PageRequest::first(1000));
    while let Some(req) = page {
        let got = store.list_patients(req).await?;
        ids.extend(got.items.into_iter().map(|p| p.id));
        page = got.next;
    }
    Ok(ids)
}

/// Runs the batch. `progress` is called with the number of patients just finished. Only a
/// store failure ends the run; a patient whose data fails is reported and skipped.
pub async fn run<B: Backend>(
    store: &dyn Store,
    objects: &dyn ObjectStore,
    models: &Models<B>,
    opts: &BatchOptions,
    device: &B::Device,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(BatchReport, Vec<(HealthId, PatientOutcome)>)> {
    let started = Instant::now();
    if models.image.is_empty() && models.tabular.is_empty() {
        return Err(PredictError::Input(
            "the registry has no image model trained on DICOM studies and no history model; train one with \
             `carelens train image` or `carelens train tabular` on `carelens export features` output"
                .into(),
        ));
    }
    let ids = match &opts.patients {
        Some(ids) => ids.clone(),
        None => all_patients(store).await?,
    };
    let identity = models.identity();
    let mut report = BatchReport::default();
    let mut outcomes = Vec::with_capacity(ids.len());
    let mut computed = 0u64;
    for chunk in ids.chunks(opts.chunk.max(1)) {
        let loaded = load_inputs(store, objects, models, chunk).await?;
        let (mut inputs, mut todo): (Vec<PatientInput>, Vec<(String, u32)>) = (Vec::new(), Vec::new());
        for r in loaded {
            report.considered += 1;
            let input = match r {
                Ok(i) => i,
                Err((id, reason)) => {
                    report.failed.push(Failure { patient: id.clone(), reason: reason.clone() });
                    outcomes.push((id, PatientOutcome::Failed { reason }));
                    continue;
                }
            };
            if let Some(since) = opts.since
                && !input.history.iter().any(|e| e.date >= since)
            {
                report.skipped_by_since += 1;
                outcomes.push((input.patient.id.clone(), PatientOutcome::NotChanged));
                continue;
            }
            let fp = fingerprint(&identity, opts.as_of, &input.patient, &input.history);
            let latest = store.latest_prediction_set(&input.patient.id).await?;
            match &latest {
                Some(l) if l.input_fingerprint == fp => {
                    report.unchanged += 1;
                    outcomes.push((input.patient.id.clone(), PatientOutcome::Unchanged { version: l.version }));
                }
                _ => {
                    let next = latest.as_ref().map_or(0, |l| l.version) + 1;
                    inputs.push(input);
                    todo.push((fp, next));
                }
            }
        }
        let results = compute(models, &inputs, opts.as_of, opts.heatmaps, device);
        computed += inputs.len() as u64;
        for ((input, (fp, version)), result) in inputs.iter().zip(todo).zip(results) {
            let id = input.patient.id.clone();
            let sources = match result {
                Ok(s) => s,
                Err(reason) => {
                    report.failed.push(Failure { patient: id.clone(), reason: reason.clone() });
                    outcomes.push((id, PatientOutcome::Failed { reason }));
                    continue;
                }
            };
            let mut keys = BTreeMap::new();
            for (key, o) in &sources {
                if let Some(SourceEvidence::Heatmap { png, .. }) = &o.evidence {
                    keys.insert(key.clone(), objects.put(png.clone()).await?);
                    report.heatmaps += 1;
                }
            }
            let Some(set) = assemble(models, input, &sources, &keys, fp, version, Utc::now()) else {
                report.no_sources += 1;
                outcomes.push((id, PatientOutcome::NoSources));
                continue;
            };
            match store.put_prediction_set(&set).await {
                Ok(()) => {
                    store
                        .append_audit(AuditEvent {
                            at: set.created_at,
                            actor: opts.actor.clone(),
                            action: AuditAction::Create,
                            patient: Some(id.clone()),
                            resource: format!("prediction_set/{}/v{}", set.id.0, set.version),
                            outcome: AuditOutcome::Allowed,
                            reason: None,
                        })
                        .await?;
                    report.new_sets += 1;
                    outcomes.push((id, PatientOutcome::New { version }));
                }
                Err(StoreError::Conflict { .. }) => {
                    let reason = format!("another run stored version {version} first; rerun to catch up");
                    report.failed.push(Failure { patient: id.clone(), reason: reason.clone() });
                    outcomes.push((id, PatientOutcome::Failed { reason }));
                }
                Err(e) => return Err(e.into()),
            }
        }
        progress(chunk.len() as u64);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.patients_per_second = if report.seconds > 0.0 { computed as f64 / report.seconds } else { 0.0 };
    Ok((report, outcomes))
}
