//! The models a prediction run uses, loaded once from the registry.

use std::collections::BTreeMap;

use burn::tensor::backend::Backend;
use carelens_domain::{BodyPart, Modality, ModelRef};
use carelens_imaging::PreprocessSpec;
use carelens_ml::image::ImageNet;
use carelens_ml::{Calibrator, FusedDiagnosis, ModelBody, ModelManifest, Registry, SourceKey, TabularModel};

use crate::{PredictError, Result, catalogue};

/// An image model trained on DICOM studies of one modality (and body part).
pub struct ImageSource<B: Backend> {
    pub model: ModelRef,
    pub labels: Vec<String>,
    pub modality: Modality,
    pub body_part: Option<BodyPart>,
    pub spec: PreprocessSpec,
    pub net: ImageNet<B>,
    pub calibrators: Vec<Calibrator>,
    pub thresholds: Vec<f64>,
    pub aurocs: Vec<Option<f64>>,
}

/// A history model: one ICD-10 category from history features.
pub struct TabularSource {
    pub model: ModelRef,
    pub target: String,
    pub code: String,
    pub body: TabularModel,
    pub calibrator: Calibrator,
    pub threshold: f64,
    pub auroc: Option<f64>,
}

/// The fitted stacks, one per diagnosis, with the fused thresholds.
pub struct FusionModel {
    pub model: ModelRef,
    pub diagnoses: Vec<FusedDiagnosis>,
    pub thresholds: Vec<f64>,
}

/// A diagnosis the models can speak to, with the sources that may feed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub code: String,
    pub display: String,
    pub sources: Vec<SourceKey>,
}

/// Everything a run uses. Which versions: a model's promoted version, else its latest
/// (`carelens models promote` pins one).
pub struct Models<B: Backend> {
    pub image: Vec<ImageSource<B>>,
    pub tabular: Vec<TabularSource>,
    pub fusion: Option<FusionModel>,
    /// Registry entries not used, with the reason (npz-trained image models, tabular models
    /// on other data, …).
    pub skipped: Vec<(String, String)>,
}

fn model_ref(m: &ModelManifest) -> ModelRef {
    ModelRef { name: m.name.clone(), version: m.version.to_string() }
}

fn auroc_of(m: &ModelManifest, k: usize) -> Option<f64> {
    m.assessment.reports.get(k).and_then(|r| r.auroc.as_ref()).map(|i| i.estimate)
}

impl<B: Backend> Models<B> {
    /// Loads every model of `registry`. With `fusion`, the fusion model named `fusion` (if
    /// present) must have been fitted on exactly the source versions loaded; otherwise the
    /// error says to refit it. Without, diagnoses are not fused (each takes its best source).
    pub fn load(registry: &Registry, fusion: bool, device: &B::Device) -> Result<Self> {
        let mut out = Models { image: vec![], tabular: vec![], fusion: None, skipped: vec![] };
        let mut fusion_manifest = None;
        for name in registry.names()? {
            let (name, version) = registry.resolve(&name)?;
            let m = registry.load(&name, version)?;
            match &m.body {
                ModelBody::Image { preprocess: None, .. } => {
                    out.skipped.push((name, "trained on an .npz archive, not on DICOM studies".into()));
                }
                ModelBody::Image { preprocess: Some(spec), .. } => {
                    let modality: Option<Modality> =
                        m.training.get("modality").and_then(|v| serde_json::from_value(v.clone()).ok());
                    let Some(modality) = modality else {
                        out.skipped
                            .push((name, "trained without --modality; cannot tell which studies it reads".into()));
                        continue;
                    };
                    let body_part = m.training.get("body_part").and_then(|v| v.as_str()).map(BodyPart::from_dicom);
                    let net = carelens_ml::load_image_net::<B>(registry, &m, device)?;
                    out.image.push(ImageSource {
                        model: model_ref(&m),
                        labels: m.labels.clone(),
                        modality,
                        body_part,
                        spec: spec.clone(),
                        net,
                        calibrators: m.assessment.calibrators.clone(),
                        thresholds: m.assessment.thresholds.clone(),
                        aurocs: (0..m.labels.len()).map(|k| auroc_of(&m, k)).collect(),
                    });
                }
                ModelBody::Tabular { target, model } => match catalogue::code_for_target(target) {
                    Some(code) => out.tabular.push(TabularSource {
                        model: model_ref(&m),
                        target: target.clone(),
                        code,
                        body: model.clone(),
                        calibrator: m.assessment.calibrators[0].clone(),
                        threshold: m.assessment.thresholds[0],
                        auroc: auroc_of(&m, 0),
                    }),
                    None => out.skipped.push((
                        name,
                        format!("target `{target}` is not a history diagnosis (train on `carelens export features`)"),
                    )),
                },
                ModelBody::Fusion { diagnoses } => {
                    if !fusion {
                        out.skipped.push((name, "fusion switched off".into()));
                    } else if name == "fusion" {
                        fusion_manifest = Some((m.clone(), diagnoses.clone()));
                    } else {
                        out.skipped.push((name, "only the fusion model named `fusion` is used".into()));
                    }
                }
            }
        }
        if let Some((m, diagnoses)) = fusion_manifest {
            let fitted: BTreeMap<String, String> =
                m.training.get("sources").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
            let loaded = out.versions();
            for source in diagnoses.iter().flat_map(|d| &d.stack.sources) {
                let have = loaded.get(&source.model);
                let want = fitted.get(&source.model);
                if have.is_none() || have != want {
                    return Err(PredictError::Input(format!(
                        "fusion v{} was fitted on {} v{}, but the registry {}; refit it with `carelens train fusion` \
                         (or predict with --no-fusion)",
                        m.version,
                        source.model,
                        want.map_or("?", String::as_str),
                        match have {
                            Some(v) => format!("has v{v}"),
                            None => "has no such model".to_owned(),
                        }
                    )));
                }
            }
            out.fusion =
                Some(FusionModel { model: model_ref(&m), thresholds: m.assessment.thresholds.clone(), diagnoses });
        }
        Ok(out)
    }

    /// Source model name → version in use.
    pub fn versions(&self) -> BTreeMap<String, String> {
        self.image
            .iter()
            .map(|s| &s.model)
            .chain(self.tabular.iter().map(|s| &s.model))
            .map(|m| (m.name.clone(), m.version.clone()))
            .collect()
    }

    /// Every model in use, sources then fusion.
    pub fn refs(&self) -> Vec<ModelRef> {
        let mut v: Vec<ModelRef> =
            self.image.iter().map(|s| s.model.clone()).chain(self.tabular.iter().map(|s| s.model.clone())).collect();
        v.extend(self.fusion.iter().map(|f| f.model.clone()));
        v
    }

    /// The diagnoses with their sources: the fusion model's, else from the catalogue.
    pub fn candidates(&self) -> Vec<Candidate> {
        if let Some(f) = &self.fusion {
            return f
                .diagnoses
                .iter()
                .map(|d| Candidate {
                    code: d.code.clone(),
                    display: d.display.clone(),
                    sources: d.stack.sources.clone(),
                })
                .collect();
        }
        self.catalogue_candidates()
    }

    /// The diagnoses the loaded sources can speak to, per the catalogue (what a fusion model
    /// is fitted for).
    pub fn catalogue_candidates(&self) -> Vec<Candidate> {
        let mut by_code: BTreeMap<String, Vec<SourceKey>> = BTreeMap::new();
        for s in &self.tabular {
            by_code
                .entry(s.code.clone())
                .or_default()
                .push(SourceKey { model: s.model.name.clone(), label: s.target.clone() });
        }
        for s in &self.image {
            for label in &s.labels {
                for code in catalogue::codes_for_finding(label) {
                    by_code
                        .entry(code.to_owned())
                        .or_default()
                        .push(SourceKey { model: s.model.name.clone(), label: label.clone() });
                }
            }
        }
        by_code
            .into_iter()
            .map(|(code, mut sources)| {
                sources.sort();
                sources.dedup();
                Candidate { display: catalogue::display(&code), code, sources }
            })
            .collect()
    }

    /// Validation AUROC and threshold of a source, for the unfused fallback.
    pub(crate) fn source_quality(&self, key: &SourceKey) -> Option<(f64, f64)> {
        for s in &self.image {
            if s.model.name == key.model
                && let Some(k) = s.labels.iter().position(|l| l == &key.label)
            {
                return Some((s.aurocs[k].unwrap_or(0.5), s.thresholds[k]));
            }
        }
        self.tabular
            .iter()
            .find(|s| s.model.name == key.model && s.target == key.label)
            .map(|s| (s.auroc.unwrap_or(0.5), s.threshold))
    }

    /// A string that changes whenever any model in use changes (name, version, weights).
    pub fn identity(&self) -> String {
        let mut s = String::new();
        for m in self.refs() {
            s.push_str(&format!("{}@{};", m.name, m.version));
        }
        s
    }
}
