//! Image training data for `train image` / `evaluate`: MedMNIST-style .npz archives, or
//! folders of DICOM files with a per-image labels CSV.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use carelens_domain::{BodyPart, ImageFinding, Modality};
use carelens_imaging::{DicomFile, Intensity, Limits, MedMnist, PreprocessSpec};
use carelens_ml::image::ImageSet;
use carelens_ml::{Fingerprint, Rng};

use crate::cli::ImageModality;

/// Training and validation images plus how they were made.
pub struct ImageData {
    pub train: ImageSet,
    pub val: ImageSet,
    pub preprocess: Option<PreprocessSpec>,
    pub source: String,
    pub split: String,
    pub fingerprint: String,
    pub skipped: Skipped,
}

pub fn is_npz(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npz"))
}

fn fingerprint(sets: &[&ImageSet]) -> String {
    let mut f = Fingerprint::default();
    for s in sets {
        f.update(format!("{}x{}x{}:{:?}", s.channels, s.height, s.width, s.label_names).as_bytes());
        let bytes: Vec<u8> = s.pixels.iter().flat_map(|v| v.to_le_bytes()).collect();
        f.update(&bytes);
        f.update(&s.targets.iter().map(|&t| u8::from(t)).collect::<Vec<_>>());
    }
    f.finish()
}

/// Every `step`-th image so that at most `limit` remain.
pub fn thin(set: ImageSet, limit: Option<usize>) -> ImageSet {
    match limit {
        Some(n) if n > 0 && n < set.len() => {
            let rows: Vec<usize> = (0..n).map(|i| i * set.len() / n).collect();
            set.subset(&rows)
        }
        _ => set,
    }
}

/// Both splits of a MedMNIST archive, pixels scaled to [0, 1].
pub fn load_npz(path: &Path, label: &str) -> Result<(ImageSet, ImageSet)> {
    let m = MedMnist::load(path).with_context(|| format!("reading {}", path.display()))?;
    let set = |im: &ndarray::Array3<f32>, lab: &ndarray::Array2<f32>| -> Result<ImageSet> {
        let (n, h, w) = im.dim();
        if lab.ncols() != 1 {
            bail!("{}: {} label columns; only single-label archives are supported", path.display(), lab.ncols());
        }
        Ok(ImageSet::new(
            1,
            h,
            w,
            im.iter().map(|v| v / 255.0).collect(),
            vec![label.to_owned()],
            lab.iter().take(n).map(|&v| v >= 0.5).collect(),
        )?)
    };
    Ok((set(&m.train_images, &m.train_labels)?, set(&m.val_images, &m.val_labels)?))
}

pub fn npz_data(path: &Path, label: &str) -> Result<ImageData> {
    let (train, val) = load_npz(path, label)?;
    Ok(ImageData {
        fingerprint: fingerprint(&[&train, &val]),
        source: format!("MedMNIST archive {}", path.file_name().unwrap_or_default().to_string_lossy()),
        split: "the archive's official train and validation splits".into(),
        train,
        val,
        preprocess: None,
        skipped: vec![],
    })
}

/// The preprocessing each modality gets: the file's own window for radiographs, a lung or
/// soft-tissue window for CT, robust percentiles for MR.
pub fn spec_for(modality: Modality, body: BodyPart, size: u32) -> PreprocessSpec {
    let intensity = match (modality, body) {
        (Modality::Ct, BodyPart::Chest) => Intensity::LUNG,
        (Modality::Ct, BodyPart::Head) => Intensity::BRAIN,
        (Modality::Ct, _) => Intensity::ABDOMEN,
        (Modality::Mri, _) => Intensity::Percentile { low: 1.0, high: 99.0 },
        _ => Intensity::Dicom,
    };
    PreprocessSpec { intensity, mean: 0.0, std: 1.0, ..PreprocessSpec::xray(size) }
}

/// Files that could not be used, with the reason.
pub type Skipped = Vec<(PathBuf, String)>;

/// One decoded, preprocessed DICOM image with its labels.
struct Example {
    patient: String,
    pixels: Vec<f32>,
    findings: Vec<ImageFinding>,
}

/// Reads every DICOM file under `dir` that matches the filters, preprocesses it with one
/// spec (from the first matching file's modality and body part, or `fixed`), and looks up
/// its findings. Files that fail are listed, not fatal.
fn read_examples(
    dir: &Path,
    labels: &HashMap<String, Vec<ImageFinding>>,
    modality: Option<ImageModality>,
    body_part: Option<&str>,
    size: u32,
    fixed: Option<&PreprocessSpec>,
) -> Result<(Vec<Example>, PreprocessSpec, Skipped)> {
    let files = carelens_ingest::collect_files(&[dir.to_path_buf()], &Limits::DEFAULT)
        .with_context(|| format!("listing {}", dir.display()))?;
    let want_modality = modality.map(|m| match m {
        ImageModality::Xray => Modality::XRay,
        ImageModality::Ct => Modality::Ct,
        ImageModality::Mri => Modality::Mri,
    });
    let want_body = body_part.map(BodyPart::from_dicom);
    let mut spec = fixed.cloned();
    let (mut out, mut skipped) = (Vec::new(), Vec::new());
    for path in files {
        let r = (|| -> Result<Option<Example>> {
            let bytes = std::fs::read(&path)?;
            if !carelens_imaging::is_dicom(&bytes) {
                return Ok(None);
            }
            let file = DicomFile::open(&path, &bytes, &Limits::DEFAULT)?;
            let info = &file.info;
            let m = Modality::from_dicom(&info.modality);
            let b = info.body_part.as_deref().map_or(BodyPart::Other, BodyPart::from_dicom);
            if want_modality.is_some_and(|w| w != m) || want_body.is_some_and(|w| w != b) || !file.has_pixels() {
                return Ok(None);
            }
            let Some(findings) = labels.get(&info.sop_instance_uid) else {
                return Ok(None);
            };
            let spec = spec.get_or_insert_with(|| spec_for(m, b, size));
            let x = spec.apply(&file.frame(0)?)?;
            Ok(Some(Example {
                patient: info.patient_id.clone().unwrap_or_else(|| info.study_instance_uid.clone()),
                pixels: x.iter().copied().collect(),
                findings: findings.clone(),
            }))
        })();
        match r {
            Ok(Some(e)) => out.push(e),
            Ok(None) => {}
            Err(e) => skipped.push((path, format!("{e:#}"))),
        }
    }
    let Some(spec) = spec else {
        bail!(
            "no labelled DICOM images in {} match the filters (check --modality, --body-part and that --labels \
             lists these files' SOP Instance UIDs)",
            dir.display()
        );
    };
    Ok((out, spec, skipped))
}

fn to_set(examples: &[&Example], labels: &[String], spec: &PreprocessSpec) -> Result<ImageSet> {
    let names: Vec<ImageFinding> =
        labels.iter().filter_map(|l| ImageFinding::ALL.into_iter().find(|f| f.as_str() == l)).collect();
    Ok(ImageSet::new(
        usize::from(spec.channels),
        spec.height as usize,
        spec.width as usize,
        examples.iter().flat_map(|e| e.pixels.iter().copied()).collect(),
        labels.to_vec(),
        examples.iter().flat_map(|e| names.iter().map(|f| e.findings.contains(f))).collect(),
    )?)
}

pub fn load_labels(path: Option<&Path>) -> Result<HashMap<String, Vec<ImageFinding>>> {
    let Some(path) = path else {
        bail!(
            "a DICOM folder needs --labels CSV (sop_instance_uid,findings), e.g. the synthetic-labels.csv that `carelens demo` writes"
        );
    };
    Ok(carelens_ingest::load_labels(path)?)
}

/// A DICOM folder split by patient into training and validation.
pub fn dicom_data(
    dir: &Path,
    labels_csv: Option<&Path>,
    modality: Option<ImageModality>,
    body_part: Option<&str>,
    size: u32,
    val_fraction: f64,
    seed: u64,
) -> Result<ImageData> {
    if !(0.05..=0.5).contains(&val_fraction) {
        bail!("--val-fraction must be between 0.05 and 0.5");
    }
    let labels = load_labels(labels_csv)?;
    let (examples, spec, skipped) = read_examples(dir, &labels, modality, body_part, size, None)?;
    let present: BTreeSet<ImageFinding> = examples.iter().flat_map(|e| e.findings.iter().copied()).collect();
    let names: Vec<String> = present.iter().map(|f| f.as_str().to_owned()).collect();
    if names.is_empty() {
        bail!("the {} matching images have no findings at all; nothing to learn", examples.len());
    }
    let mut patients: Vec<&str> =
        examples.iter().map(|e| e.patient.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
    Rng::new(seed).shuffle(&mut patients);
    let n_val = ((patients.len() as f64 * val_fraction).round() as usize).max(1);
    let val_patients: BTreeSet<&str> = patients[..n_val.min(patients.len())].iter().copied().collect();
    let (val, train): (Vec<&Example>, Vec<&Example>) =
        examples.iter().partition(|e| val_patients.contains(e.patient.as_str()));
    let (train, val) = (to_set(&train, &names, &spec)?, to_set(&val, &names, &spec)?);
    Ok(ImageData {
        fingerprint: fingerprint(&[&train, &val]),
        source: format!("{} DICOM images from {}", examples.len(), dir.display()),
        split: format!("{:.0} % of patients held out for validation (seed {seed})", val_fraction * 100.0),
        train,
        val,
        preprocess: Some(spec),
        skipped,
    })
}

/// A DICOM folder preprocessed exactly as a model's training data, for evaluation.
pub fn dicom_eval(
    dir: &Path,
    labels_csv: Option<&Path>,
    filters: (Option<ImageModality>, Option<&str>),
    spec: &PreprocessSpec,
    label_names: &[String],
) -> Result<(ImageSet, Skipped)> {
    let labels = load_labels(labels_csv)?;
    let (examples, spec, skipped) = read_examples(dir, &labels, filters.0, filters.1, spec.height, Some(spec))?;
    let refs: Vec<&Example> = examples.iter().collect();
    Ok((to_set(&refs, label_names, &spec)?, skipped))
}
