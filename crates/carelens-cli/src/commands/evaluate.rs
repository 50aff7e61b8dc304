//! `carelens evaluate`: a saved model on labelled data, at its own calibration and thresholds.

use anyhow::{Context as _, Result, bail};
use carelens_ml::{LabelReport, ModelBody, Registry, evaluate_label, load_image_net, logit};
use serde::Serialize;

use super::backend;
use super::image_data;
use super::train::ImageTraining;
use crate::cli::EvaluateArgs;
use crate::context::Light;
use crate::output;

/// The per-label table shared by `train` and `evaluate`.
pub fn print_reports(reports: &[LabelReport], thresholds: &[f64], ece_raw: Option<&[f64]>) {
    outln!(
        "{:<18} {:>6} {:>5}  {:<22} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}  {}",
        "label",
        "n",
        "pos",
        "AUROC (95% CI)",
        "thr",
        "sens",
        "spec",
        "acc",
        "F1",
        "Brier",
        if ece_raw.is_some() { "ECE raw→cal" } else { "ECE" }
    );
    for (i, (r, t)) in reports.iter().zip(thresholds).enumerate() {
        let auroc = r
            .auroc
            .as_ref()
            .map_or("n/a (one class)".to_owned(), |a| format!("{:.3} ({:.3}–{:.3})", a.estimate, a.low, a.high));
        let ece = match ece_raw {
            Some(raw) => format!("{:.3}→{:.3}", raw[i], r.ece),
            None => format!("{:.3}", r.ece),
        };
        // Sensitivity and F1 are undefined without positives (specificity without negatives).
        let num = |x: f64| if x.is_finite() { format!("{x:.3}") } else { "n/a".to_owned() };
        outln!(
            "{:<18} {:>6} {:>5}  {:<22} {:>6.3} {:>6} {:>6} {:>6.3} {:>6} {:>6.4}  {}",
            r.label,
            r.examples,
            r.positives,
            auroc,
            t,
            num(r.sensitivity),
            num(r.specificity),
            r.accuracy,
            num(r.f1),
            r.brier,
            ece
        );
        let c = &r.confusion;
        outln!(
            "{:<18} confusion: TP {} FP {} TN {} FN {}",
            "",
            c.true_positive,
            c.false_positive,
            c.true_negative,
            c.false_negative
        );
    }
}

/// One model version's metrics on a labelled data set.
#[derive(Debug, Serialize)]
pub struct Evaluation {
    pub model: String,
    pub version: u32,
    pub data: String,
    pub examples: usize,
    pub thresholds: Vec<f64>,
    pub reports: Vec<LabelReport>,
}

pub fn run(ctx: &Light, args: &EvaluateArgs) -> Result<()> {
    let e = evaluate(ctx, args)?;
    if ctx.json {
        return output::json(&e);
    }
    print_human(&e);
    if let Some(dir) = &args.plots {
        outln!("plots: {}", dir.display());
    }
    Ok(())
}

pub fn print_human(e: &Evaluation) {
    outln!("{} v{} on {} ({} examples)", e.model, e.version, e.data, e.examples);
    print_reports(&e.reports, &e.thresholds, None);
}

/// Runs a saved model on `args.data` at its own calibration and thresholds.
pub fn evaluate(ctx: &Light, args: &EvaluateArgs) -> Result<Evaluation> {
    let registry = Registry::new(&ctx.models);
    let (name, version) = registry.resolve(&args.model)?;
    let m = registry.load(&name, version)?;
    let l = m.labels.len();
    // Per label: calibrated probabilities and truths.
    let (probs, targets): (Vec<Vec<f64>>, Vec<Vec<bool>>) = match &m.body {
        ModelBody::Tabular { target, model } => {
            let positive = m.training.get("positive").and_then(|v| v.as_str()).map(str::to_owned);
            let (table, _) = carelens_features::read_table(&args.data, target, positive.as_deref())?;
            let rows: Vec<usize> = (0..table.rows()).collect();
            let p = model.predict(&table, &rows)?;
            (vec![p.iter().map(|&p| m.assessment.calibrators[0].apply(logit(p))).collect()], vec![table.target])
        }
        ModelBody::Fusion { .. } => {
            bail!(
                "{name} v{version} is the fusion model; `carelens predict` reports how fused predictions do against \
                 the ground truth, and its model card has the cross-fitted numbers"
            )
        }
        ModelBody::Image { preprocess, .. } => {
            let set = if image_data::is_npz(&args.data) {
                let (train, val) = image_data::load_npz(&args.data, &m.labels[0])?;
                if args.split == "train" { train } else { val }
            } else if args.data.is_dir() {
                let Some(spec) = preprocess else {
                    bail!("{name} v{version} was trained on an .npz archive; evaluate it on one");
                };
                let training: ImageTraining =
                    serde_json::from_value(m.training.clone()).context("reading the model's training configuration")?;
                let (set, skipped) = image_data::dicom_eval(
                    &args.data,
                    args.labels.as_deref(),
                    (training.modality, training.body_part.as_deref()),
                    spec,
                    &m.labels,
                )?;
                for (p, why) in skipped.iter().take(10) {
                    eprintln!("skipped {}: {why}", p.display());
                }
                set
            } else {
                bail!("--data {}: expected a .npz archive or a folder of DICOM files", args.data.display());
            };
            let device = backend::device();
            let net = load_image_net::<backend::InferBackend>(&registry, &m, &device)?;
            let p = m.probabilities(&net.logits(&set, &m.labels, &device)?);
            (
                (0..l).map(|k| p.iter().skip(k).step_by(l).copied().collect()).collect(),
                (0..l).map(|k| set.label_targets(k)).collect(),
            )
        }
    };
    let mut reports = Vec::new();
    for k in 0..l {
        reports.push(evaluate_label(&m.labels[k], &probs[k], &targets[k], m.assessment.thresholds[k], args.seed)?);
    }
    if let Some(dir) = &args.plots {
        fs_err::create_dir_all(dir)?;
        for (file, bytes) in super::plots::for_reports(&reports, &probs, &targets, None) {
            fs_err::write(dir.join(file), bytes)?;
        }
    }
    Ok(Evaluation {
        model: name,
        version,
        data: args.data.display().to_string(),
        examples: targets.first().map_or(0, Vec::len),
        thresholds: m.assessment.thresholds.clone(),
        reports,
    })
}
