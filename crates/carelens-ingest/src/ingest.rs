//! `ingest`: files → decoded and checked in parallel worker threads → originals stored
//! content-addressed → ImagingStudy entries (one per study, one instance per image) upserted.
//!
//! Memory is bounded: at most `threads` files are being decoded and `2 × threads` wait for
//! the store, each capped at `max_file_bytes`. Re-ingesting a file is a no-op (same bytes,
//! same SOP Instance UID → "duplicate").

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use carelens_domain::{
    BodyPart, Category, EntryId, HealthId, HistoryEntry, HistoryKind, ImageFinding, ImagingInstance, ImagingStudy,
    Modality, ObjectKey, Source, SourceKind,
};
use carelens_imaging::{DicomFile, Limits, decode_raster, is_dicom};
use carelens_store::{HistoryFilter, ObjectStore, Store, WriteBatch};
use chrono::NaiveDate;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{IngestError, Manifest, PatientMap};

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ingested,
    /// Already stored: same SOP Instance UID, same bytes.
    Duplicate,
    /// Not an image to ingest (a DICOMDIR index, a structured report, …).
    Skipped,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    pub outcome: Outcome,
    /// Why it failed or was skipped. Never contains patient identifiers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestReport {
    pub files: Vec<FileReport>,
    pub ingested: usize,
    pub duplicate: usize,
    pub skipped: usize,
    pub failed: usize,
    /// Studies created or extended.
    pub studies: usize,
    /// Bytes of newly stored originals.
    pub bytes_stored: u64,
    pub seconds: f64,
}

/// Progress callbacks (the CLI draws a bar).
pub trait Progress: Send + Sync {
    fn start(&self, files: u64);
    fn advance(&self, outcome: Outcome);
}

/// No progress output.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: u64) {}
    fn advance(&self, _: Outcome) {}
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub threads: usize,
    pub limits: Limits,
    /// Larger files are refused before they are read.
    pub max_file_bytes: u64,
    pub patient_map: PatientMap,
    pub manifest: Manifest,
    /// Known findings per SOP Instance UID (synthetic studies carry their labels this way).
    pub findings: HashMap<String, Vec<ImageFinding>>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(2, usize::from),
            limits: Limits::DEFAULT,
            max_file_bytes: 2 << 30,
            patient_map: PatientMap::default(),
            manifest: Manifest::default(),
            findings: HashMap::new(),
        }
    }
}

/// Expands directories (recursively, sorted) and DICOMDIRs into the files to ingest.
/// DICOMDIR index files found while walking are skipped (their images are in the folder).
pub fn collect_files(paths: &[PathBuf], limits: &Limits) -> Result<Vec<PathBuf>, IngestError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| IngestError::Io { path: p.clone(), source })?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else if p.file_name().is_some_and(|n| n.eq_ignore_ascii_case("DICOMDIR")) {
            let bytes = std::fs::read(p).map_err(|source| IngestError::Io { path: p.clone(), source })?;
            let dir = DicomFile::open(p, &bytes, limits).map_err(|e| IngestError::Dicomdir(e.to_string()))?;
            let base = p.parent().unwrap_or(Path::new("."));
            out.extend(
                dir.dicomdir_files()
                    .map_err(|e| IngestError::Dicomdir(e.to_string()))?
                    .into_iter()
                    .map(|f| base.join(f)),
            );
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), IngestError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|source| IngestError::Io { path: dir.to_path_buf(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.is_file() && !p.file_name().is_some_and(|n| n.eq_ignore_ascii_case("DICOMDIR")) {
            out.push(p);
        }
    }
    Ok(())
}

/// A file that decoded and maps to a patient, ready to store.
struct Candidate {
    bytes: Vec<u8>,
    key: ObjectKey,
    patient: HealthId,
    study_uid: String,
    study_date: Option<NaiveDate>,
    modality: Modality,
    body_part: BodyPart,
    description: String,
    instance: ImagingInstance,
}

enum Prepared {
    Ready(Box<Candidate>),
    Skip(String),
    Fail(String),
}

/// A 128-bit hash of `parts` (SHA-256, length-prefixed, first 16 bytes).
fn hash128(parts: &[&[u8]]) -> u128 {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    u128::from_be_bytes(b)
}

/// A DICOM UID from a digest: `2.25.<128-bit decimal>` (PS3.5 B.2).
pub fn uid_from(parts: &[&[u8]]) -> String {
    format!("2.25.{}", hash128(parts))
}

fn prepare(path: &Path, opts: &IngestOptions) -> Prepared {
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) => return Prepared::Fail(format!("cannot read: {e}")),
    };
    if size > opts.max_file_bytes {
        return Prepared::Fail(format!("file is {size} bytes, over the {} byte limit", opts.max_file_bytes));
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return Prepared::Fail(format!("cannot read: {e}")),
    };
    let digest = hex::encode(Sha256::digest(&bytes));
    let key = match ObjectKey::for_sha256(&digest) {
        Ok(k) => k,
        Err(e) => return Prepared::Fail(e.to_string()),
    };
    // Error messages from the decoders start with the path; the report has it already.
    let strip = |e: carelens_imaging::ImagingError| {
        let msg = e.to_string();
        msg.strip_prefix(&format!("{}: ", path.display())).map(str::to_owned).unwrap_or(msg)
    };
    if is_dicom(&bytes) {
        let file = match DicomFile::open(path, &bytes, &opts.limits) {
            Ok(f) => f,
            Err(e) => return Prepared::Fail(strip(e)),
        };
        if file.is_dicomdir() {
            return Prepared::Skip("DICOMDIR index (pass it or its folder to ingest the images it lists)".into());
        }
        if !file.has_pixels() {
            return Prepared::Skip(format!("no pixel data (modality {:?}): not an image", file.info.modality));
        }
        // Decoding one frame proves the pixels are readable before anything is stored.
        if let Err(e) = file.frame(file.info.frames.max(1) / 2) {
            return Prepared::Fail(strip(e));
        }
        let info = &file.info;
        let patient = match opts.patient_map.resolve(info.patient_id.as_deref(), info.issuer_of_patient_id.as_deref()) {
            Ok(p) => p,
            Err(e) => return Prepared::Fail(e),
        };
        for (name, uid) in [("StudyInstanceUID", &info.study_instance_uid), ("SOPInstanceUID", &info.sop_instance_uid)]
        {
            if !carelens_domain::is_dicom_uid(uid) {
                return Prepared::Fail(format!(
                    "{name} is missing or not a valid DICOM UID (digits and dots, at most 64)"
                ));
            }
        }
        let modality = Modality::from_dicom(&info.modality);
        let body_part = info.body_part.as_deref().map_or(BodyPart::Other, BodyPart::from_dicom);
        let study_date = info.study_date.as_deref().and_then(|d| NaiveDate::parse_from_str(d.trim(), "%Y%m%d").ok());
        let findings = opts.findings.get(&info.sop_instance_uid).cloned().unwrap_or_default();
        Prepared::Ready(Box::new(Candidate {
            key: key.clone(),
            patient,
            study_uid: info.study_instance_uid.clone(),
            study_date,
            modality,
            body_part,
            description: format!("{} {}", info.modality, info.body_part.as_deref().unwrap_or("")).trim().to_owned(),
            instance: ImagingInstance {
                series_uid: if info.series_instance_uid.is_empty() {
                    format!("{}.1", info.study_instance_uid)
                } else {
                    info.series_instance_uid.clone()
                },
                sop_instance_uid: info.sop_instance_uid.clone(),
                object_key: key,
                source_modality: info.modality.clone(),
                series_number: info.series_number,
                instance_number: info.instance_number,
                slice_position: info.slice_position,
                rows: info.rows,
                columns: info.columns,
                frames: info.frames,
                transfer_syntax: Some(info.transfer_syntax.clone()),
                findings,
                burned_in_annotation: info.burned_in_annotation,
            },
            bytes,
        }))
    } else {
        let image = match decode_raster(path, &bytes, &opts.limits) {
            Ok(i) => i,
            Err(e) => return Prepared::Fail(strip(e)),
        };
        let Some(row) = opts.manifest.get(path) else {
            return Prepared::Fail(
                "PNG/JPEG file not listed in the manifest (--manifest): its patient is unknown".into(),
            );
        };
        let format = if bytes.starts_with(b"\x89PNG") { "PNG" } else { "JPEG" };
        let date = row.study_date.to_string();
        let study_uid = row.study_uid.clone().unwrap_or_else(|| {
            uid_from(&[row.health_id.as_str().as_bytes(), date.as_bytes(), row.modality.as_str().as_bytes()])
        });
        Prepared::Ready(Box::new(Candidate {
            key: key.clone(),
            patient: row.health_id.clone(),
            study_uid: study_uid.clone(),
            study_date: Some(row.study_date),
            modality: row.modality,
            body_part: row.body_part,
            description: format!("{} export", row.modality.as_str()),
            instance: ImagingInstance {
                series_uid: format!("{study_uid}.1"),
                sop_instance_uid: uid_from(&[digest.as_bytes()]),
                object_key: key,
                source_modality: format.into(),
                series_number: None,
                instance_number: None,
                slice_position: None,
                rows: image.height() as u32,
                columns: image.width() as u32,
                frames: 1,
                transfer_syntax: None,
                findings: Vec::new(),
                burned_in_annotation: None,
            },
            bytes,
        }))
    }
}

/// Study entries being extended, flushed to the store in batches.
struct Studies<'a> {
    store: &'a dyn Store,
    entries: HashMap<(HealthId, String), HistoryEntry>,
    dirty: std::collections::HashSet<(HealthId, String)>,
    patients: HashMap<HealthId, bool>,
    touched: std::collections::HashSet<(HealthId, String)>,
}

impl<'a> Studies<'a> {
    async fn patient_exists(&mut self, id: &HealthId) -> Result<bool, IngestError> {
        if let Some(&known) = self.patients.get(id) {
            return Ok(known);
        }
        let exists = self.store.get_patient(id).await?.is_some();
        self.patients.insert(id.clone(), exists);
        Ok(exists)
    }

    async fn entry(&mut self, c: &Candidate) -> Result<&mut HistoryEntry, IngestError> {
        let k = (c.patient.clone(), c.study_uid.clone());
        if !self.entries.contains_key(&k) {
            let filter = HistoryFilter { categories: vec![Category::Imaging], ..HistoryFilter::default() };
            let existing = self.store.history(&c.patient, &filter).await?.into_iter().find(
                |e| matches!(&e.kind, HistoryKind::ImagingStudy(s) if s.study_uid.as_deref() == Some(c.study_uid.as_str())),
            );
            let entry = match existing {
                Some(e) => e,
                None => HistoryEntry {
                    id: EntryId::from_u128(hash128(&[c.patient.as_str().as_bytes(), c.study_uid.as_bytes()])),
                    patient: c.patient.clone(),
                    date: c.study_date.unwrap_or_else(|| chrono::Utc::now().date_naive()),
                    source: Source { kind: SourceKind::Import, reference: Some("carelens ingest".into()) },
                    kind: HistoryKind::ImagingStudy(ImagingStudy {
                        modality: c.modality,
                        body_part: c.body_part,
                        study_uid: Some(c.study_uid.clone()),
                        description: c.description.clone(),
                        object_keys: vec![],
                        instances: vec![],
                    }),
                    source_coding: None,
                    superseded: None,
                    corrects: None,
                },
            };
            self.entries.insert(k.clone(), entry);
        }
        self.entries.get_mut(&k).ok_or_else(|| IngestError::Internal("study cache".into()))
    }

    async fn flush(&mut self) -> Result<(), IngestError> {
        if self.dirty.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for k in self.dirty.drain() {
            if let Some(e) = self.entries.get(&k) {
                batch.history.push(e.clone());
            }
        }
        self.store.apply(batch).await?;
        // Keep memory bounded: studies are re-read from the store when touched again.
        self.entries.clear();
        Ok(())
    }
}

/// Ingests `files` (already expanded by [`collect_files`]).
pub async fn ingest(
    files: Vec<PathBuf>,
    opts: &IngestOptions,
    store: &dyn Store,
    objects: &dyn ObjectStore,
    progress: &dyn Progress,
) -> Result<IngestReport, IngestError> {
    const FLUSH_EVERY: usize = 256;
    let started = Instant::now();
    progress.start(files.len() as u64);
    let files = Arc::new(files);
    let threads = opts.threads.clamp(1, 64);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, Prepared)>(threads * 2);
    let next = Arc::new(AtomicUsize::new(0));
    let shared_opts = Arc::new(opts.clone());
    let mut workers = Vec::new();
    for _ in 0..threads {
        let (files, next, tx, opts) = (files.clone(), next.clone(), tx.clone(), shared_opts.clone());
        workers.push(std::thread::spawn(move || {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = files.get(i) else { break };
                let prepared = prepare(path, &opts);
                if tx.blocking_send((i, prepared)).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);

    let mut reports: Vec<Option<FileReport>> = vec![None; files.len()];
    let mut studies = Studies {
        store,
        entries: HashMap::new(),
        dirty: Default::default(),
        patients: HashMap::new(),
        touched: Default::default(),
    };
    let mut report = IngestReport::default();
    let mut since_flush = 0;
    let mut result = Ok(());
    while let Some((i, prepared)) = rx.recv().await {
        let path = files[i].clone();
        let file_report = match prepared {
            Prepared::Skip(reason) => {
                FileReport { path, outcome: Outcome::Skipped, reason: Some(reason), object_key: None, modality: None }
            }
            Prepared::Fail(reason) => {
                FileReport { path, outcome: Outcome::Failed, reason: Some(reason), object_key: None, modality: None }
            }
            Prepared::Ready(c) => match store_one(&mut studies, objects, *c, &mut report).await {
                Ok((outcome, reason, key, modality)) => {
                    if outcome == Outcome::Ingested {
                        since_flush += 1;
                    }
                    FileReport { path, outcome, reason, object_key: Some(key), modality: Some(modality) }
                }
                Err(e) => {
                    // A store failure is not the file's fault: stop, keeping what is done.
                    result = Err(e);
                    break;
                }
            },
        };
        progress.advance(file_report.outcome);
        reports[i] = Some(file_report);
        if since_flush >= FLUSH_EVERY {
            if let Err(e) = studies.flush().await {
                result = Err(e);
                break;
            }
            since_flush = 0;
        }
    }
    drop(rx);
    for w in workers {
        let _ = w.join();
    }
    result?;
    studies.flush().await?;
    report.files = reports.into_iter().flatten().collect();
    for f in &report.files {
        match f.outcome {
            Outcome::Ingested => report.ingested += 1,
            Outcome::Duplicate => report.duplicate += 1,
            Outcome::Skipped => report.skipped += 1,
            Outcome::Failed => report.failed += 1,
        }
    }
    report.studies = studies.touched.len();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

type Stored = (Outcome, Option<String>, String, String);

async fn store_one(
    studies: &mut Studies<'_>,
    objects: &dyn ObjectStore,
    c: Candidate,
    report: &mut IngestReport,
) -> Result<Stored, IngestError> {
    let modality = c.instance.source_modality.clone();
    let key_str = c.key.as_str().to_owned();
    if !studies.patient_exists(&c.patient).await? {
        return Ok((
            Outcome::Failed,
            Some("its patient's Health ID is not in the store (import or generate the patient first)".into()),
            key_str,
            modality,
        ));
    }
    let entry = studies.entry(&c).await?;
    let HistoryKind::ImagingStudy(study) = &entry.kind else {
        return Err(IngestError::Internal("study entry is not an imaging study".into()));
    };
    if let Some(existing) = study.instances.iter().find(|i| i.sop_instance_uid == c.instance.sop_instance_uid) {
        if existing.object_key == c.key {
            return Ok((Outcome::Duplicate, None, key_str, modality));
        }
        // The same image in another transfer syntax, or a corrected re-send: the stored one
        // stays (replacing images is a records decision, not an ingest side effect).
        return Ok((
            Outcome::Duplicate,
            Some("SOP Instance UID already stored from other bytes (another transfer syntax or a re-send); kept the stored one".into()),
            key_str,
            modality,
        ));
    }
    let len = c.bytes.len() as u64;
    let already = objects.exists(&c.key).await?;
    let mut c = c;
    let stored = objects.put(std::mem::take(&mut c.bytes)).await?;
    if stored != c.key {
        return Err(IngestError::Internal(format!(
            "object store returned key {}, expected {}",
            stored.as_str(),
            c.key.as_str()
        )));
    }
    if !already {
        report.bytes_stored += len;
    }
    let k = (c.patient.clone(), c.study_uid.clone());
    let entry = studies.entry(&c).await?;
    if let HistoryKind::ImagingStudy(study) = &mut entry.kind {
        if !study.object_keys.contains(&c.key) {
            study.object_keys.push(c.key.clone());
        }
        study.instances.push(c.instance);
        if let (Some(d), true) = (c.study_date, entry.source.kind == SourceKind::Import) {
            entry.date = d;
        }
    }
    studies.dirty.insert(k.clone());
    studies.touched.insert(k);
    Ok((Outcome::Ingested, None, key_str, modality))
}
