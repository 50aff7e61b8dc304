//! `carelens train image|tabular`: train, calibrate, threshold, and save a new registry version.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use carelens_ml::image::{Augment, EpochLog, ImageTrainConfig, TrainObserver, net_to_bytes, train_net};
use carelens_ml::{
    CalibrationMethod, DatasetInfo, Fingerprint, ModelBody, ModelManifest, Registry, TabularKind, ThresholdRule,
    assess, grid_search, logit,
};
use serde::{Deserialize, Serialize};

use super::backend::{self, TrainBackend};
use super::image_data;
use crate::cli::{CalibrationArg, ImageModality, TabularKindArg, ThresholdArgs, TrainImageArgs, TrainTabularArgs};
use crate::context::Light;
use crate::output;

pub fn threshold_rule(args: &ThresholdArgs) -> Result<ThresholdRule> {
    Ok(match args.target_sensitivity {
        None => ThresholdRule::Youden,
        Some(t) if t > 0.0 && t < 1.0 => ThresholdRule::Sensitivity { target: t },
        Some(t) => bail!("--target-sensitivity must be between 0 and 1 (exclusive), not {t}"),
    })
}

/// What `train image` saves as the training configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageTraining {
    pub config: ImageTrainConfig,
    pub modality: Option<ImageModality>,
    pub body_part: Option<String>,
    pub limit: Option<usize>,
    /// Set when Ctrl-C ended training before `config.epochs` or early stopping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted_after_epoch: Option<usize>,
}

/// Epoch lines, a live progress bar, and Ctrl-C.
struct Progress<'a> {
    ctx: &'a Light,
    bar: indicatif::ProgressBar,
    labels: Vec<String>,
    /// Set by the first Ctrl-C.
    interrupt: Arc<AtomicBool>,
    /// The epoch after which the run stopped on Ctrl-C.
    interrupted_after: Option<usize>,
    last_epoch: usize,
}

/// First Ctrl-C: finish the current epoch, then calibrate and save the best epoch so far.
/// Second Ctrl-C: quit at once (exit status 130), saving nothing; the checkpoint, if any,
/// still holds the last finished epoch.
fn watch_ctrl_c(quiet: bool) -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&flag);
    let installed = ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: quitting without saving");
            std::process::exit(130);
        }
        if !quiet {
            eprintln!(
                "\nCtrl-C: stopping after this epoch, then saving the best epoch so far (Ctrl-C again quits without saving)"
            );
        }
    });
    if let Err(e) = installed {
        // Another handler is installed (only in tests that call this twice); Ctrl-C then
        // falls back to the default, which quits at once.
        tracing::debug!("Ctrl-C handler not installed: {e}");
    }
    flag
}

impl TrainObserver for Progress<'_> {
    fn batch(&mut self, epoch: usize, done: usize, total: usize, loss: f64) {
        if done == 1 {
            self.bar.set_length(total as u64);
            self.bar.set_position(0);
        }
        self.bar.set_message(format!("epoch {epoch} loss {loss:.4}"));
        self.bar.inc(1);
    }

    fn epoch(&mut self, l: &EpochLog) {
        self.last_epoch = l.epoch;
        let aurocs: Vec<String> = self
            .labels
            .iter()
            .zip(&l.val_auroc)
            .map(|(n, a)| format!("{n} {}", a.map_or("n/a".to_owned(), |a| format!("{a:.3}"))))
            .collect();
        if !self.ctx.quiet {
            self.bar.suspend(|| {
                eprintln!(
                    "epoch {:>3}  lr {:.2e}  train loss {:.4}  val loss {:.4}  val AUROC {}  ({:.1} s)",
                    l.epoch,
                    l.learning_rate,
                    l.train_loss,
                    l.val_loss,
                    aurocs.join(", "),
                    l.seconds
                )
            });
        }
    }

    fn should_stop(&mut self) -> bool {
        let stop = self.interrupt.load(Ordering::SeqCst);
        if stop && self.interrupted_after.is_none() {
            self.interrupted_after = Some(self.last_epoch);
        }
        stop
    }

    fn resumed(&mut self, epoch: usize) {
        if !self.ctx.quiet {
            eprintln!("resuming from the checkpoint after epoch {epoch}");
        }
    }
}

pub fn image(ctx: &Light, args: &TrainImageArgs) -> Result<()> {
    let rule = threshold_rule(&args.threshold)?;
    let registry = Registry::new(&ctx.models);
    let data = if image_data::is_npz(&args.data) {
        image_data::npz_data(&args.data, &args.label_name)?
    } else if args.data.is_dir() {
        image_data::dicom_data(
            &args.data,
            args.labels.as_deref(),
            args.modality,
            args.body_part.as_deref(),
            args.size,
            args.val_fraction,
            args.seed,
        )?
    } else {
        bail!("--data {}: expected a .npz archive or a folder of DICOM files", args.data.display());
    };
    for (p, why) in data.skipped.iter().take(10) {
        eprintln!("skipped {}: {why}", p.display());
    }
    let train = image_data::thin(data.train, args.limit);
    let val = data.val;
    let labels = train.label_names.clone();
    let config = ImageTrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        patience: args.patience,
        seed: args.seed,
        augment: if args.no_augment { Augment::NONE } else { Augment::default() },
        widths: args.widths.clone(),
        ..ImageTrainConfig::default()
    };
    if !ctx.quiet {
        eprintln!(
            "training {} on {} images, validating on {} ({}×{} px, labels: {}; backend {})",
            args.model,
            train.len(),
            val.len(),
            train.height,
            train.width,
            labels.join(", "),
            backend::NAME
        );
    }
    let started = Instant::now();
    let bar = ctx.progress(0, "batches");
    let device = backend::device();
    let mut observer = Progress {
        ctx,
        bar: bar.clone(),
        labels: labels.clone(),
        interrupt: watch_ctrl_c(ctx.quiet),
        interrupted_after: None,
        last_epoch: 0,
    };
    let (net, history) =
        train_net::<TrainBackend>(&train, &val, &config, &device, args.checkpoint.as_deref(), &mut observer)?;
    bar.finish_and_clear();
    if let Some(epoch) = observer.interrupted_after {
        eprintln!(
            "stopped on Ctrl-C after epoch {epoch} of {}; saving the best epoch so far{}",
            config.epochs,
            if args.checkpoint.is_some() { " (rerun the same command to continue from the checkpoint)" } else { "" }
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    let logits = net.logits(&val, &labels, &device)?;
    let l = labels.len();
    let per_label: Vec<Vec<f64>> = (0..l).map(|k| logits.iter().skip(k).step_by(l).copied().collect()).collect();
    let targets: Vec<Vec<bool>> = (0..l).map(|k| val.label_targets(k)).collect();
    let assessment = assess(&labels, &per_label, &targets, CalibrationMethod::Temperature, rule, args.seed)?;
    let plots = super::plots::for_reports(&assessment.reports, &per_label, &targets, Some(&history));
    let weights = net_to_bytes(&net.net)?;
    let mut manifest = ModelManifest {
        format: carelens_ml::FORMAT_VERSION,
        name: args.model.clone(),
        version: 0,
        task: format!(
            "multi-label image classification ({}) from {}",
            labels.join(", "),
            match (args.modality, &args.body_part) {
                (Some(m), Some(b)) => format!("{m:?} {b} images"),
                (Some(m), None) => format!("{m:?} images"),
                _ => "images".to_owned(),
            }
            .to_lowercase()
        ),
        labels: labels.clone(),
        body: ModelBody::Image {
            spec: net.spec.clone(),
            normalise: net.normalise,
            logit_offset: net.logit_offset.clone(),
            preprocess: data.preprocess,
            weights_sha256: carelens_ml::sha256_hex(&weights),
        },
        training: serde_json::to_value(ImageTraining {
            config,
            modality: args.modality,
            body_part: args.body_part.clone(),
            limit: args.limit,
            interrupted_after_epoch: observer.interrupted_after,
        })?,
        assessment,
        dataset: DatasetInfo {
            source: data.source,
            fingerprint: data.fingerprint,
            train_examples: train.len(),
            validation_examples: val.len(),
            validation: data.split,
        },
        unlearnable: history.unlearnable.clone(),
        training_seconds: seconds,
        backend: backend::NAME.to_owned(),
        carelens_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let mut files =
        vec![("weights.mpk".to_owned(), weights), ("history.json".to_owned(), serde_json::to_vec_pretty(&history)?)];
    files.extend(plots);
    let version = registry.save(&mut manifest, &files).context("saving the model")?;
    report(ctx, &registry, &manifest, version, Some(history.best_epoch))
}

/// Above this validation ECE a model's probabilities are not to be trusted as risks.
const ECE_WARNING: f64 = 0.10;

fn report(ctx: &Light, registry: &Registry, m: &ModelManifest, version: u32, best_epoch: Option<usize>) -> Result<()> {
    // On stderr, so it is seen with --json too.
    for r in m.assessment.reports.iter().filter(|r| r.ece > ECE_WARNING) {
        eprintln!(
            "warning: {} v{version}: {} is poorly calibrated on validation (ECE {:.2} > {ECE_WARNING:.2}); its \
             probabilities are not risks yet: train longer (--epochs) or on more data before promoting it",
            m.name, r.label, r.ece
        );
    }
    if ctx.json {
        return output::json(m);
    }
    outln!("saved {} v{version} → {}", m.name, registry.dir(&m.name, version).display());
    if let Some(e) = best_epoch {
        outln!("kept the weights of epoch {e}; trained in {:.1} s", m.training_seconds);
    } else {
        outln!("trained in {:.1} s", m.training_seconds);
    }
    let a = &m.assessment;
    super::evaluate::print_reports(&a.reports, &a.thresholds, Some(&a.ece_uncalibrated));
    for u in &m.unlearnable {
        outln!("warning: {u} has one class only in the training data; the model cannot learn it");
    }
    outln!("model card: {}", registry.dir(&m.name, version).join("MODEL_CARD.md").display());
    Ok(())
}

pub fn tabular(ctx: &Light, args: &TrainTabularArgs) -> Result<()> {
    let rule = threshold_rule(&args.threshold)?;
    let registry = Registry::new(&ctx.models);
    let (table, columns) = carelens_features::read_table(&args.data, &args.target, args.positive.as_deref())?;
    if !ctx.quiet {
        for c in &columns {
            for w in &c.warnings {
                eprintln!("column `{}`: {w}", c.column);
            }
        }
    }
    let positives = table.target.iter().filter(|&&t| t).count();
    if !ctx.quiet {
        eprintln!(
            "{} rows ({} positive), {} feature columns; {}-fold cross-validation",
            table.rows(),
            positives,
            table.columns.len(),
            args.folds
        );
    }
    let kinds: Vec<TabularKind> = match args.kind {
        TabularKindArg::All => TabularKind::ALL.to_vec(),
        TabularKindArg::Logistic => vec![TabularKind::Logistic],
        TabularKindArg::NaiveBayes => vec![TabularKind::NaiveBayes],
        TabularKindArg::Forest => vec![TabularKind::Forest],
    };
    let candidates: Vec<_> = kinds.iter().flat_map(|k| k.grid()).collect();
    let started = Instant::now();
    let bar = ctx.progress(candidates.len() as u64, "grid");
    let (points, best, oof) = grid_search(&table, &candidates, args.folds as usize, args.seed, |_, p| {
        bar.suspend(|| {
            if !ctx.quiet {
                eprintln!("  {:<60} CV AUROC {:.4}", p.params.to_string(), p.auroc);
            }
        });
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let params = points[best].params.clone();
    let all: Vec<usize> = (0..table.rows()).collect();
    let model = params.fit(&table, &all, args.seed)?;
    let seconds = started.elapsed().as_secs_f64();
    let method = match args.calibration {
        CalibrationArg::Platt => CalibrationMethod::Platt,
        CalibrationArg::Isotonic => CalibrationMethod::Isotonic,
        CalibrationArg::None => CalibrationMethod::None,
    };
    let label = args.target.clone();
    let z: Vec<f64> = oof.iter().map(|&p| logit(p)).collect();
    let assessment = assess(
        std::slice::from_ref(&label),
        std::slice::from_ref(&z),
        std::slice::from_ref(&table.target),
        method,
        rule,
        args.seed,
    )?;
    let plots = super::plots::for_reports(
        &assessment.reports,
        std::slice::from_ref(&oof),
        std::slice::from_ref(&table.target),
        None,
    );
    let mut fp = Fingerprint::default();
    fp.update(&std::fs::read(&args.data).with_context(|| format!("reading {}", args.data.display()))?);
    let mut manifest = ModelManifest {
        format: carelens_ml::FORMAT_VERSION,
        name: args.model.clone(),
        version: 0,
        task: format!(
            "binary classification of `{}` = {} (vs {}) from {} table columns",
            args.target,
            table.positive_class,
            table.negative_class,
            table.columns.len()
        ),
        labels: vec![label],
        body: ModelBody::Tabular { target: args.target.clone(), model },
        training: serde_json::json!({
            "selected": params,
            "search": points,
            "folds": args.folds,
            "seed": args.seed,
            "positive": table.positive_class,
            "columns": columns,
        }),
        assessment,
        dataset: DatasetInfo {
            source: format!("CSV {}", args.data.file_name().unwrap_or_default().to_string_lossy()),
            fingerprint: fp.finish(),
            train_examples: table.rows(),
            validation_examples: table.rows(),
            validation: format!(
                "{}-fold stratified cross-validation, out-of-fold scores; calibration cross-fitted on them",
                args.folds
            ),
        },
        unlearnable: vec![],
        training_seconds: seconds,
        backend: "linfa (CPU)".into(),
        carelens_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let version = registry.save(&mut manifest, &plots).context("saving the model")?;
    if !ctx.quiet && !ctx.json {
        outln!("selected {params} (CV AUROC {:.4})", points[best].auroc);
    }
    report(ctx, &registry, &manifest, version, None)
}
