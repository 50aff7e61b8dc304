//! Synthetic imaging studies: render DICOM files for the population's imaging studies
//! (findings from each patient's ground truth), write them with a labels CSV under
//! `<data dir>/incoming/synthetic`, then ingest them like any other files.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, Result};
use carelens_domain::{Category, HistoryKind, Patient, Sex};
use carelens_ingest::{IngestOptions, IngestReport};
use carelens_phantom::{StudyKind, StudySpec, findings_for, render};
use carelens_store::{HistoryFilter, PageRequest};
use serde::Serialize;

use crate::cli::IngestImagesArgs;
use crate::context::Context;

#[derive(Debug, Serialize)]
pub struct SyntheticImagesReport {
    pub folder: PathBuf,
    pub studies: usize,
    pub files: usize,
    /// Images per finding (a CT slice counts once per finding it shows).
    pub findings: std::collections::BTreeMap<String, usize>,
    pub normal_images: usize,
    pub render_seconds: f64,
    pub ingest: IngestReport,
}

fn sex_code(s: Sex) -> char {
    match s {
        Sex::Female => 'F',
        Sex::Male => 'M',
        _ => 'O',
    }
}

/// Renders every imaging study that has no images yet, then ingests the folder.
pub fn synthesize_and_ingest(ctx: &Context, seed: u64) -> Result<SyntheticImagesReport> {
    let folder = ctx.data_dir.join("incoming/synthetic");
    let specs = ctx.runtime.block_on(plan(ctx, seed))?;
    let started = std::time::Instant::now();
    fs_err::create_dir_all(&folder)?;
    let bar = ctx.progress(specs.len() as u64, "render");
    let next = AtomicUsize::new(0);
    let labels = Mutex::new(Vec::<(String, String)>::new());
    let failure = Mutex::new(None::<anyhow::Error>);
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(spec) = specs.get(i) else { break };
                    let result = (|| -> Result<()> {
                        let dir = folder.join(&spec.patient_id).join(&spec.study_uid);
                        fs_err::create_dir_all(&dir)?;
                        for (n, inst) in render(spec)?.into_iter().enumerate() {
                            fs_err::write(dir.join(format!("{:03}.dcm", n + 1)), &inst.bytes)?;
                            let f: Vec<&str> = inst.findings.iter().map(|f| f.as_str()).collect();
                            let f = if f.is_empty() { "normal".to_owned() } else { f.join(";") };
                            labels.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push((inst.sop_instance_uid, f));
                        }
                        Ok(())
                    })();
                    if let Err(e) = result {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        break;
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e.context("rendering synthetic studies"));
    }
    let mut labels = labels.into_inner().map_err(|_| anyhow::anyhow!("poisoned"))?;
    labels.sort();
    let render_seconds = started.elapsed().as_secs_f64();
    // Beside the folder, not in it: everything in the folder is ingested as an image.
    let labels_path = ctx.data_dir.join("incoming/synthetic-labels.csv");
    // Earlier runs' labels stay: their images are still in the folder.
    let mut all: std::collections::BTreeMap<String, String> = match fs_err::read_to_string(&labels_path) {
        Ok(text) => {
            text.lines().skip(1).filter_map(|l| l.split_once(',')).map(|(u, f)| (u.to_owned(), f.to_owned())).collect()
        }
        Err(_) => std::collections::BTreeMap::new(),
    };
    all.extend(labels.iter().cloned());
    let mut csv = String::from("sop_instance_uid,findings\n");
    for (uid, f) in &all {
        csv.push_str(&format!("{uid},{f}\n"));
    }
    let mut findings = std::collections::BTreeMap::new();
    let mut normal_images = 0;
    for (_, f) in &labels {
        if f == "normal" {
            normal_images += 1;
        } else {
            for x in f.split(';') {
                *findings.entry(x.to_owned()).or_insert(0) += 1;
            }
        }
    }
    fs_err::write(&labels_path, csv)?;
    let args = IngestImagesArgs {
        paths: vec![folder.clone()],
        patient_map: None,
        manifest: None,
        labels: Some(labels_path),
        threads: None,
        report: None,
        strict: false,
    };
    let ingest = if specs.is_empty() {
        IngestReport::default()
    } else {
        super::ingest::run_images(ctx, &args, IngestOptions::default())?
    };
    Ok(SyntheticImagesReport {
        folder,
        studies: specs.len(),
        files: labels.len(),
        findings,
        normal_images,
        render_seconds,
        ingest,
    })
}

/// The studies to render: imaging entries of a supported kind without images yet.
async fn plan(ctx: &Context, seed: u64) -> Result<Vec<StudySpec>> {
    let mut specs = Vec::new();
    let mut page = PageRequest::first(1000);
    let filter = HistoryFilter { categories: vec![Category::Imaging], ..HistoryFilter::default() };
    loop {
        let batch = ctx.store.list_patients(page.clone()).await.context("listing patients")?;
        for p in &batch.items {
            let history = ctx.store.history(&p.id, &filter).await?;
            let studies: Vec<_> = history
                .iter()
                .filter_map(|e| match &e.kind {
                    HistoryKind::ImagingStudy(s) if s.instances.is_empty() => {
                        let kind = StudyKind::for_study(s.modality, s.body_part)?;
                        Some((e.date, kind, s.study_uid.clone()?))
                    }
                    _ => None,
                })
                .collect();
            if studies.is_empty() {
                continue;
            }
            let truth = ctx.store.ground_truth(&p.id).await?;
            for (date, kind, study_uid) in studies {
                // Conditions active at the study date.
                let conditions: Vec<_> = truth.iter().filter(|t| t.onset <= date).map(|t| t.condition).collect();
                let study_seed = seed ^ carelens_phantom::Rng::new(seed).next_u64() ^ hash(&study_uid);
                specs.push(spec(p, date, kind, study_uid, findings_for(kind, &conditions, study_seed), study_seed));
            }
        }
        match batch.next {
            Some(n) => page = n,
            None => break,
        }
    }
    Ok(specs)
}

fn hash(s: &str) -> u64 {
    let mut r = carelens_phantom::Rng::new(0);
    r.mix(s.as_bytes());
    r.next_u64()
}

fn spec(
    p: &Patient,
    date: chrono::NaiveDate,
    kind: StudyKind,
    study_uid: String,
    findings: Vec<carelens_domain::ImageFinding>,
    seed: u64,
) -> StudySpec {
    StudySpec {
        patient_id: p.id.as_str().to_owned(),
        patient_name: format!("{}^{}", p.name.family, p.name.given),
        birth_date: p.birth_date,
        sex: sex_code(p.sex),
        study_uid,
        date,
        kind,
        findings,
        seed,
    }
}

pub fn print_human(r: &SyntheticImagesReport) {
    if r.studies == 0 {
        outln!("every supported imaging study already has images (chest X-ray, chest/abdominal CT, brain MR)");
        return;
    }
    outln!(
        "rendered {} studies → {} DICOM files in {:.1} s ({}); {} normal images",
        r.studies,
        r.files,
        r.render_seconds,
        r.folder.display(),
        r.normal_images
    );
    if !r.findings.is_empty() {
        let parts: Vec<String> = r.findings.iter().map(|(f, n)| format!("{f} {n}")).collect();
        outln!("  images with findings: {}", parts.join(", "));
    }
    super::ingest::print_report(&r.ingest);
}
