//! The model registry: `<root>/<name>/v<N>/` holds one trained model (`model.json` with
//! everything but network weights, `weights.mpk` for networks, `MODEL_CARD.md`, plots).
//! A version is written to a temporary directory and renamed into place, so a failed run
//! leaves nothing behind. `<root>/<name>/PROMOTED` names the version served by default.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use carelens_imaging::PreprocessSpec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::assess::Assessment;
use crate::image::{NetSpec, Normalise};
use crate::{LabelReport, MlError, TabularModel};

/// Bumped when `model.json` changes incompatibly; other versions are refused with a clear
/// message instead of being misread.
pub const FORMAT_VERSION: u32 = 1;

/// The model proper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelBody {
    /// A burn network; weights in `weights.mpk`, checked against `weights_sha256`.
    Image {
        spec: NetSpec,
        normalise: Normalise,
        logit_offset: Vec<f64>,
        /// How source images become network input (absent for pre-sized arrays such as
        /// MedMNIST, whose 0–255 pixels are divided by 255).
        preprocess: Option<PreprocessSpec>,
        weights_sha256: String,
    },
    Tabular {
        /// The target column and its positive value.
        target: String,
        model: TabularModel,
    },
    /// Stacks that fuse other models' labels into diagnoses (labels are ICD-10 codes).
    Fusion { diagnoses: Vec<crate::FusedDiagnosis> },
}

/// The training data, identified without storing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// What it was (a path or a description); never patient data.
    pub source: String,
    /// SHA-256 over the training inputs in a fixed order.
    pub fingerprint: String,
    pub train_examples: usize,
    pub validation_examples: usize,
    /// How the validation numbers were obtained.
    pub validation: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelManifest {
    pub format: u32,
    pub name: String,
    /// Assigned by [`Registry::save`].
    pub version: u32,
    /// One line for humans: what it predicts from what.
    pub task: String,
    pub labels: Vec<String>,
    pub body: ModelBody,
    /// The training configuration, as given.
    pub training: serde_json::Value,
    /// Calibrators, thresholds and validation metrics, as [`assess`](crate::assess) made them.
    #[serde(flatten)]
    pub assessment: Assessment,
    pub dataset: DatasetInfo,
    /// Labels the model could not learn (one class in training), called out on the card.
    pub unlearnable: Vec<String>,
    pub training_seconds: f64,
    pub backend: String,
    pub carelens_version: String,
}

impl ModelManifest {
    /// Mean validation AUROC over labels that have one; the registry's "best" criterion.
    pub fn mean_auroc(&self) -> Option<f64> {
        let v: Vec<f64> = self.assessment.reports.iter().filter_map(|r| r.auroc.as_ref().map(|i| i.estimate)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// Calibrated probabilities from logits, per label (`logits` row-major `n × labels`).
    pub fn probabilities(&self, logits: &[f64]) -> Vec<f64> {
        let l = self.labels.len();
        logits.iter().enumerate().map(|(i, &z)| self.assessment.calibrators[i % l].apply(z)).collect()
    }
}

/// SHA-256 hex of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An incremental data set fingerprint.
#[derive(Default)]
pub struct Fingerprint(Sha256);

impl Fingerprint {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

fn io(path: &Path, e: impl std::fmt::Display) -> MlError {
    MlError::File { path: path.to_path_buf(), detail: e.to_string() }
}

fn valid_name(name: &str) -> Result<(), MlError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !name.starts_with(['-', '_']);
    if ok {
        Ok(())
    } else {
        Err(MlError::Input(format!(
            "model name {name:?}: use 1-64 letters, digits, '-' or '_' (starting with a letter or digit)"
        )))
    }
}

#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
}

impl Registry {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Model names, sorted.
    pub fn names(&self) -> Result<Vec<String>, MlError> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&self.root, e)),
        };
        for e in entries {
            let e = e.map_err(|e| io(&self.root, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() && valid_name(&name).is_ok() && !self.versions(&name)?.is_empty() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Versions of `name`, ascending.
    pub fn versions(&self, name: &str) -> Result<Vec<u32>, MlError> {
        let dir = self.root.join(name);
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&dir, e)),
        };
        for e in entries {
            let e = e.map_err(|e| io(&dir, e))?;
            if let Some(v) = e.file_name().to_str().and_then(|s| s.strip_prefix('v')).and_then(|s| s.parse().ok())
                && e.path().join("model.json").is_file()
            {
                out.push(v);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    pub fn dir(&self, name: &str, version: u32) -> PathBuf {
        self.root.join(name).join(format!("v{version}"))
    }

    /// The promoted version of `name`, if any.
    pub fn promoted(&self, name: &str) -> Result<Option<u32>, MlError> {
        let p = self.root.join(name).join("PROMOTED");
        match std::fs::read_to_string(&p) {
            Ok(s) => s
                .trim()
                .strip_prefix('v')
                .and_then(|v| v.parse().ok())
                .map(Some)
                .ok_or_else(|| io(&p, "expected a version such as v3")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p, e)),
        }
    }

    /// `name` or `name@N`/`name@vN` → (name, version): without a version, the promoted one,
    /// else the latest.
    pub fn resolve(&self, reference: &str) -> Result<(String, u32), MlError> {
        let (name, version) = match reference.split_once('@') {
            Some((n, v)) => {
                let v: u32 = v.trim_start_matches('v').parse().map_err(|_| {
                    MlError::Input(format!("{reference:?}: the version after @ must be a number such as 3 or v3"))
                })?;
                (n, Some(v))
            }
            None => (reference, None),
        };
        valid_name(name)?;
        let versions = self.versions(name)?;
        if versions.is_empty() {
            let known = self.names()?;
            return Err(MlError::Input(format!(
                "no model {name:?} in {} (known: {}); train one with `carelens train`",
                self.root.display(),
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            )));
        }
        let v = match version {
            Some(v) if versions.contains(&v) => v,
            Some(v) => {
                return Err(MlError::Input(format!(
                    "{name} has no version {v} (versions: {})",
                    versions.iter().map(|v| format!("v{v}")).collect::<Vec<_>>().join(", ")
                )));
            }
            None => match self.promoted(name)? {
                Some(p) => p,
                None => versions[versions.len() - 1],
            },
        };
        Ok((name.to_owned(), v))
    }

    /// Reads a version's manifest, refusing other format versions.
    pub fn load(&self, name: &str, version: u32) -> Result<ModelManifest, MlError> {
        let p = self.dir(name, version).join("model.json");
        let text = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
        let head: serde_json::Value = serde_json::from_str(&text).map_err(|e| io(&p, format!("not JSON: {e}")))?;
        let format = head.get("format").and_then(serde_json::Value::as_u64);
        if format != Some(u64::from(FORMAT_VERSION)) {
            return Err(io(
                &p,
                format!(
                    "model format {} but this carelens reads format {FORMAT_VERSION}; retrain the model with this \
                     version (`carelens train …`) or use the carelens version that wrote it",
                    format.map_or("unknown".to_owned(), |f| f.to_string())
                ),
            ));
        }
        serde_json::from_value(head).map_err(|e| io(&p, format!("not a carelens model: {e}")))
    }

    /// Reads a file of a version, checking it against `sha256` when given.
    pub fn read_file(&self, name: &str, version: u32, file: &str, sha256: Option<&str>) -> Result<Vec<u8>, MlError> {
        let p = self.dir(name, version).join(file);
        let bytes = std::fs::read(&p).map_err(|e| io(&p, e))?;
        if let Some(want) = sha256
            && sha256_hex(&bytes) != want
        {
            return Err(io(&p, "checksum mismatch: the file was changed or damaged after training; retrain"));
        }
        Ok(bytes)
    }

    /// Saves a new version of `manifest.name` with extra `files` (name, bytes); assigns and
    /// returns the version. Everything is written to a temporary directory first.
    pub fn save<S: AsRef<str>>(&self, manifest: &mut ModelManifest, files: &[(S, Vec<u8>)]) -> Result<u32, MlError> {
        valid_name(&manifest.name)?;
        let model_dir = self.root.join(&manifest.name);
        std::fs::create_dir_all(&model_dir).map_err(|e| io(&model_dir, e))?;
        let tmp = model_dir.join(format!(".incoming-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        }
        std::fs::create_dir(&tmp).map_err(|e| io(&tmp, e))?;
        let result = (|| {
            for (name, bytes) in files {
                let p = tmp.join(name.as_ref());
                std::fs::write(&p, bytes).map_err(|e| io(&p, e))?;
            }
            // Another process may take a version number at the same time: retry on conflict.
            for _ in 0..16 {
                let version = self.versions(&manifest.name)?.last().map_or(1, |v| v + 1);
                manifest.version = version;
                manifest.format = FORMAT_VERSION;
                let json = serde_json::to_vec_pretty(manifest).map_err(|e| MlError::Input(e.to_string()))?;
                std::fs::write(tmp.join("model.json"), json).map_err(|e| io(&tmp, e))?;
                std::fs::write(tmp.join("MODEL_CARD.md"), model_card(manifest)).map_err(|e| io(&tmp, e))?;
                let dest = self.dir(&manifest.name, version);
                if dest.exists() {
                    continue;
                }
                match std::fs::rename(&tmp, &dest) {
                    Ok(()) => return Ok(version),
                    Err(_) if dest.exists() => continue,
                    Err(e) => return Err(io(&dest, e)),
                }
            }
            Err(MlError::Input("could not claim a version number; is another training run saving?".into()))
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Marks `version` of `name` as the one served by default.
    pub fn promote(&self, name: &str, version: u32) -> Result<(), MlError> {
        if !self.versions(name)?.contains(&version) {
            return Err(MlError::Input(format!("{name} has no version {version}")));
        }
        let p = self.root.join(name).join("PROMOTED");
        let tmp = p.with_extension("partial");
        std::fs::write(&tmp, format!("v{version}\n")).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &p).map_err(|e| io(&p, e))
    }

    /// The version with the best mean validation AUROC (ties: the newer).
    pub fn best(&self, name: &str) -> Result<Option<u32>, MlError> {
        let mut best: Option<(f64, u32)> = None;
        for v in self.versions(name)? {
            let m = self.load(name, v)?;
            if let Some(a) = m.mean_auroc()
                && best.is_none_or(|(b, _)| a >= b)
            {
                best = Some((a, v));
            }
        }
        Ok(best.map(|(_, v)| v))
    }
}

fn fmt_interval(r: &LabelReport) -> String {
    match &r.auroc {
        Some(i) => format!("{:.3} ({:.3}–{:.3})", i.estimate, i.low, i.high),
        None => "n/a (one class)".into(),
    }
}

/// The generated `MODEL_CARD.md`.
pub fn model_card(m: &ModelManifest) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Model card: {} v{}\n", m.name, m.version);
    let _ = writeln!(s, "**Task.** {}\n", m.task);
    let _ = writeln!(
        s,
        "**Intended use.** Decision support for clinicians: a ranked, calibrated probability per label, shown \
         with its evidence. Not a diagnosis on its own, not for use without a clinician, not validated \
         prospectively. Research and demonstration grade.\n"
    );
    let kind = match &m.body {
        ModelBody::Image { spec, .. } => format!(
            "residual CNN (burn), input {}×{}×{}, stage widths {:?}",
            spec.channels, spec.height, spec.width, spec.widths
        ),
        ModelBody::Tabular { target, model } => format!(
            "{} on {} input columns, target `{target}`",
            match model {
                TabularModel::Logistic(_) => "logistic regression (linfa)",
                TabularModel::NaiveBayes { .. } => "Gaussian naive Bayes (linfa)",
                TabularModel::Forest { .. } => "random forest of CART trees (linfa)",
            },
            model.schema().columns.len()
        ),
        ModelBody::Fusion { diagnoses } => format!(
            "stacking (L2 logistic regression over calibrated log-odds and presence) fusing {} sources into {} diagnoses",
            diagnoses.iter().flat_map(|d| &d.stack.sources).collect::<std::collections::BTreeSet<_>>().len(),
            diagnoses.len()
        ),
    };
    let _ = writeln!(s, "**Model.** {kind}; backend {}; trained in {:.1} s.\n", m.backend, m.training_seconds);
    let _ = writeln!(
        s,
        "**Data.** {} ({} training, {} validation examples; {}). Fingerprint `{}`.\n",
        m.dataset.source,
        m.dataset.train_examples,
        m.dataset.validation_examples,
        m.dataset.validation,
        &m.dataset.fingerprint
    );
    let _ = writeln!(
        s,
        "**Calibration.** {:?} per label, fitted on validation; threshold rule {:?}.\n",
        m.assessment.calibration_method, m.assessment.threshold_rule
    );
    let _ = writeln!(s, "## Validation metrics (calibrated, at the chosen threshold)\n");
    let _ = writeln!(
        s,
        "| label | n (pos) | AUROC (95 % CI) | threshold | sensitivity | specificity | accuracy | F1 | Brier | ECE raw → calibrated |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    let a = &m.assessment;
    for ((r, t), e) in a.reports.iter().zip(&a.thresholds).zip(&a.ece_uncalibrated) {
        let _ = writeln!(
            s,
            "| {} | {} ({}) | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.4} | {:.3} → {:.3} |",
            r.label,
            r.examples,
            r.positives,
            fmt_interval(r),
            t,
            r.sensitivity,
            r.specificity,
            r.accuracy,
            r.f1,
            r.brier,
            e,
            r.ece
        );
    }
    let _ = writeln!(s, "\n## Limitations\n");
    if !m.unlearnable.is_empty() {
        let _ = writeln!(
            s,
            "- **Not learnt:** {} had a single class in the training data; the model's output for them carries no information.",
            m.unlearnable.join(", ")
        );
    }
    for r in &m.assessment.reports {
        if r.auroc.as_ref().is_some_and(|i| i.low < 0.6) {
            let _ = writeln!(
                s,
                "- **Weak label:** {} (AUROC CI reaches down to {:.2}); do not rely on it.",
                r.label,
                r.auroc.as_ref().map_or(0.0, |i| i.low)
            );
        }
        if r.positives < 30 {
            let _ = writeln!(s, "- {}: only {} positive validation examples; wide intervals.", r.label, r.positives);
        }
    }
    let _ = writeln!(
        s,
        "- Validated on data like its training data only; performance on other scanners, sites, populations or \
         prevalences is unknown. Recalibrate before moving it.\n- Synthetic training data (if the source says so) \
         shows the pipeline works, not that the model is clinically useful."
    );
    s
}

/// Rebuilds the network of an image model, checking its weights' checksum.
pub fn load_image_net<B: burn::tensor::backend::Backend>(
    registry: &Registry,
    manifest: &ModelManifest,
    device: &B::Device,
) -> Result<crate::image::ImageNet<B>, MlError> {
    let ModelBody::Image { spec, normalise, logit_offset, weights_sha256, .. } = &manifest.body else {
        return Err(MlError::Input(format!("{} is a tabular model, not an image model", manifest.name)));
    };
    let bytes = registry.read_file(&manifest.name, manifest.version, "weights.mpk", Some(weights_sha256))?;
    Ok(crate::image::ImageNet {
        spec: spec.clone(),
        net: crate::image::net_from_bytes::<B>(spec, bytes, device)?,
        normalise: *normalise,
        logit_offset: logit_offset.clone(),
    })
}
