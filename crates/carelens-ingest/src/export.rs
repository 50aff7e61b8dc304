//! `export images --deidentify`: every stored image, de-identified (PS3.15 basic profile, see
//! `carelens_imaging::deid`), written as `<out>/<pseudonym>/<study uid>/<instance uid>.dcm`
//! with a `labels.csv` for training sets. PNG/JPEG originals are re-encoded as PNG, which
//! drops any metadata they carried.

use std::path::{Path, PathBuf};

use carelens_domain::{Category, HistoryKind};
use carelens_imaging::{DeidConfig, DicomFile, Limits, decode_raster, is_dicom, pseudonym, remap_uid};
use carelens_store::{HistoryFilter, ObjectStore, PageRequest, Store};
use serde::Serialize;

use crate::{IngestError, Outcome, Progress};

#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportReport {
    pub out: PathBuf,
    pub patients: usize,
    pub studies: usize,
    pub exported: usize,
    /// Refused on purpose (burned-in annotation), with the reason per image.
    pub refused: Vec<ExportProblem>,
    pub failed: Vec<ExportProblem>,
    pub labels: PathBuf,
}

/// Names an image by its de-identified UID only.
#[derive(Debug, Clone, Serialize)]
pub struct ExportProblem {
    pub instance: String,
    pub reason: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::Io { path: path.to_path_buf(), source }
}

pub async fn export_deidentified(
    store: &dyn Store,
    objects: &dyn ObjectStore,
    out: &Path,
    cfg: &DeidConfig<'_>,
    progress: &dyn Progress,
) -> Result<ExportReport, IngestError> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut report = ExportReport { out: out.to_path_buf(), labels: out.join("labels.csv"), ..Default::default() };
    let mut labels = String::from("pseudonym,study_uid,sop_instance_uid,file,modality,findings\n");
    let counts = store.counts().await?;
    progress.start(counts.patients);
    let filter = HistoryFilter { categories: vec![Category::Imaging], ..HistoryFilter::default() };
    let mut page = PageRequest::first(500);
    loop {
        let batch = store.list_patients(page.clone()).await?;
        for patient in &batch.items {
            progress.advance(Outcome::Ingested);
            let history = store.history(&patient.id, &filter).await?;
            let mut exported_any = false;
            for entry in history {
                let HistoryKind::ImagingStudy(study) = entry.kind else { continue };
                if study.instances.is_empty() {
                    continue;
                }
                report.studies += 1;
                for inst in &study.instances {
                    let safe_uid = remap_uid(cfg.secret, &inst.sop_instance_uid);
                    let bytes = match objects.get(&inst.object_key).await {
                        Ok(b) => b,
                        Err(e) => {
                            report.failed.push(ExportProblem { instance: safe_uid, reason: e.to_string() });
                            continue;
                        }
                    };
                    let findings: Vec<&str> = inst.findings.iter().map(|f| f.as_str()).collect();
                    let findings = if findings.is_empty() { "normal".to_owned() } else { findings.join(";") };
                    let path = Path::new("stored-object");
                    let written = if is_dicom(&bytes) {
                        DicomFile::open(path, &bytes, &Limits::DEFAULT)
                            .and_then(|f| f.deidentify(cfg))
                            .map(|d| (d.pseudonym, d.study_uid, d.sop_instance_uid, d.bytes, "dcm"))
                    } else {
                        decode_raster(path, &bytes, &Limits::DEFAULT).and_then(|img| {
                            let png = carelens_imaging::encode_png(&img)?;
                            Ok((
                                pseudonym(cfg.secret, patient.id.as_str(), "CARELENS"),
                                remap_uid(cfg.secret, study.study_uid.as_deref().unwrap_or_default()),
                                safe_uid.clone(),
                                png,
                                "png",
                            ))
                        })
                    };
                    match written {
                        Ok((pseudo, study_uid, sop_uid, data, ext)) => {
                            let dir = out.join(&pseudo).join(&study_uid);
                            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                            let rel = format!("{pseudo}/{study_uid}/{sop_uid}.{ext}");
                            let file = out.join(&rel);
                            std::fs::write(&file, data).map_err(io(&file))?;
                            labels.push_str(&format!(
                                "{pseudo},{study_uid},{sop_uid},{rel},{},{findings}\n",
                                inst.source_modality
                            ));
                            report.exported += 1;
                            exported_any = true;
                        }
                        Err(carelens_imaging::ImagingError::Unsupported { what, .. }) if what.contains("Burned In") => {
                            report.refused.push(ExportProblem { instance: safe_uid, reason: what });
                        }
                        Err(e) => {
                            // Decoder messages name the stand-in path, never the patient.
                            report.failed.push(ExportProblem { instance: safe_uid, reason: e.to_string() });
                        }
                    }
                }
            }
            if exported_any {
                report.patients += 1;
            }
        }
        match batch.next {
            Some(n) => page = n,
            None => break,
        }
    }
    std::fs::write(&report.labels, labels).map_err(io(&report.labels))?;
    Ok(report)
}
