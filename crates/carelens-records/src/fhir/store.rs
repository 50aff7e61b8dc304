//! FHIR import and export through the store traits: files → store, store → bundle.

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;

use carelens_domain::{Actor, AuditAction, AuditOutcome, HealthId};
use carelens_store::{AuditEvent, HistoryFilter, Store, WriteBatch};

use super::{BundleReport, FhirError, RecordExport, export_bundle, parse_bundle};

/// The largest bundle file read (Synthea's largest patient bundle is a few MB).
pub const MAX_BUNDLE_BYTES: u64 = 64 * 1024 * 1024;

/// What happened to one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileOutcome {
    pub path: PathBuf,
    /// The whole file failed (unreadable, not JSON, not a Bundle, too large): why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub report: BundleReport,
}

/// What an import did, over all files.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportSummary {
    pub files: usize,
    pub failed_files: usize,
    pub total: BundleReport,
    pub outcomes: Vec<FileOutcome>,
}

async fn import_one(store: &dyn Store, path: &Path, actor: &Actor) -> Result<BundleReport, FhirError> {
    let bytes = std::fs::metadata(path)?.len();
    if bytes > MAX_BUNDLE_BYTES {
        return Err(FhirError::TooLarge { bytes, limit: MAX_BUNDLE_BYTES });
    }
    let data = std::fs::read(path)?;
    let parsed = parse_bundle(&data)?;
    drop(data);
    let patients: Vec<HealthId> = parsed.patients.iter().map(|p| p.id.clone()).collect();
    let batch = WriteBatch { patients: parsed.patients, history: parsed.entries, ..WriteBatch::default() };
    if !batch.is_empty() {
        for part in batch.split_by_patient(WriteBatch::ATOMIC_RECORDS) {
            store.apply(part).await?;
        }
    }
    for id in patients {
        store
            .append_audit(AuditEvent {
                at: Utc::now(),
                actor: actor.clone(),
                action: AuditAction::Create,
                patient: Some(id),
                resource: "history/import/fhir".into(),
                outcome: AuditOutcome::Allowed,
                reason: None,
            })
            .await?;
    }
    Ok(parsed.report)
}

/// Imports every file, one bundle at a time (memory stays near one bundle's size). A file that
/// fails is reported and the rest go on; re-importing the same bundle changes nothing (ids are
/// derived from the bundle's own ids). `progress` is called after each file.
pub async fn import_files(
    store: &dyn Store,
    files: &[PathBuf],
    actor: &Actor,
    mut progress: impl FnMut(&FileOutcome),
) -> ImportSummary {
    let mut summary = ImportSummary { files: files.len(), ..ImportSummary::default() };
    for path in files {
        let outcome = match import_one(store, path, actor).await {
            Ok(report) => FileOutcome { path: path.clone(), error: None, report },
            Err(e) => FileOutcome { path: path.clone(), error: Some(e.to_string()), report: BundleReport::default() },
        };
        if outcome.error.is_some() {
            summary.failed_files += 1;
        }
        summary.total.add(&outcome.report);
        progress(&outcome);
        summary.outcomes.push(outcome);
    }
    summary
}

/// The patient's whole record as a FHIR R4 bundle, or `None` when the store has no such
/// patient. Audited as an export. Callers check access before calling.
pub async fn export_patient(store: &dyn Store, id: &HealthId, actor: &Actor) -> Result<Option<Value>, FhirError> {
    let Some(patient) = store.get_patient(id).await? else {
        return Ok(None);
    };
    let entries = store.history(id, &HistoryFilter::default()).await?;
    let appointments = store.appointments_for_patient(id).await?;
    let consents = store.consents_for(id).await?;
    let documents = store.documents_for(id).await?;
    let audit = store.audit_for_patient(id, 10_000).await?;
    let predictions = store.latest_prediction_set(id).await?;
    let prescriptions = store.prescriptions_for(id).await?;
    let bundle = export_bundle(&RecordExport {
        patient: &patient,
        entries: &entries,
        appointments: &appointments,
        consents: &consents,
        documents: &documents,
        audit: &audit,
        predictions: predictions.as_ref(),
        prescriptions: &prescriptions,
    });
    store
        .append_audit(AuditEvent {
            at: Utc::now(),
            actor: actor.clone(),
            action: AuditAction::Export,
            patient: Some(id.clone()),
            resource: "record/fhir".into(),
            outcome: AuditOutcome::Allowed,
            reason: None,
        })
        .await?;
    Ok(Some(bundle))
}
