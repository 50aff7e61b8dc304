//! The training loop: AdamW with linear warm-up and cosine decay, positive-class weighting
//! per label, augmentation, early stopping on mean validation AUROC, per-epoch checkpoints
//! that resume to the same result, and a fixed seed for everything random.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::activation::log_sigmoid;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::{Augment, ImageSet, Net, NetSpec};
use crate::{MlError, Rng, auroc};

/// Everything that shapes a training run; saved with the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageTrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate, reached after one warm-up epoch, then cosine decay to zero.
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Stop after this many epochs without a better mean validation AUROC.
    pub patience: usize,
    pub seed: u64,
    pub augment: Augment,
    /// Channels per network stage.
    pub widths: Vec<usize>,
    /// Weight positives by negatives/positives per label (clamped to 0.1–10); the bias this
    /// puts on the logits is removed again at prediction time.
    pub balance_classes: bool,
}

impl Default for ImageTrainConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 64,
            learning_rate: 3e-3,
            weight_decay: 1e-4,
            patience: 5,
            seed: 42,
            augment: Augment::default(),
            widths: vec![16, 32, 64],
            balance_classes: true,
        }
    }
}

/// Input standardisation learnt on the training images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalise {
    pub mean: f32,
    pub std: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based.
    pub epoch: usize,
    pub learning_rate: f64,
    pub train_loss: f64,
    pub val_loss: f64,
    /// Per label; `None` where the validation set has one class only.
    pub val_auroc: Vec<Option<f64>>,
    /// Mean over learnable labels with at least 5 validation positives (else at least 1):
    /// what early stopping and model selection use.
    pub mean_val_auroc: Option<f64>,
    pub seconds: f64,
}

/// Live feedback from [`train_net`] (progress bars, logs).
pub trait TrainObserver {
    fn batch(&mut self, _epoch: usize, _done: usize, _total: usize, _loss: f64) {}
    fn epoch(&mut self, _log: &EpochLog) {}
    fn resumed(&mut self, _epoch: usize) {}
    /// Asked after every epoch (after its checkpoint is written): `true` ends the run there,
    /// e.g. on Ctrl-C; rerunning with the same checkpoint continues it.
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// Observes nothing.
pub struct Quiet;
impl TrainObserver for Quiet {}

/// A trained network with what it needs to predict: input standardisation and the per-label
/// logit offsets that undo class weighting.
#[derive(Debug, Clone)]
pub struct ImageNet<B: Backend> {
    pub spec: NetSpec,
    pub net: Net<B>,
    pub normalise: Normalise,
    pub logit_offset: Vec<f64>,
}

/// What a run produced besides the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainHistory {
    pub epochs: Vec<EpochLog>,
    /// The epoch whose weights were kept (best mean validation AUROC).
    pub best_epoch: usize,
    pub stopped_early: bool,
    /// Labels with one class only in the training set: the model cannot learn them.
    pub unlearnable: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct CheckpointState {
    config: ImageTrainConfig,
    spec: NetSpec,
    normalise: Normalise,
    logit_offset: Vec<f64>,
    rng: u64,
    step: usize,
    history: Vec<EpochLog>,
    best_score: f64,
    best_epoch: usize,
    since_best: usize,
}

type Bytes = NamedMpkBytesRecorder<FullPrecisionSettings>;

fn io_err(path: &Path, e: impl std::fmt::Display) -> MlError {
    MlError::File { path: path.to_path_buf(), detail: e.to_string() }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), MlError> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

/// The network's weights as bytes (named MessagePack, full precision).
pub fn net_to_bytes<B: Backend>(net: &Net<B>) -> Result<Vec<u8>, MlError> {
    Recorder::<B>::record(&Bytes::default(), net.clone().into_record(), ())
        .map_err(|e| MlError::Input(format!("cannot serialise the network: {e}")))
}

/// Rebuilds a network of `spec` from [`net_to_bytes`] output.
pub fn net_from_bytes<B: Backend>(spec: &NetSpec, bytes: Vec<u8>, device: &B::Device) -> Result<Net<B>, MlError> {
    let record = Recorder::<B>::load(&Bytes::default(), bytes, device)
        .map_err(|e| MlError::Input(format!("the weights do not fit this architecture or version: {e}")))?;
    Ok(spec.init::<B>(device).load_record(record))
}

fn lr_at(cfg: &ImageTrainConfig, step: usize, steps_per_epoch: usize) -> f64 {
    let warmup = steps_per_epoch.max(1);
    let total = (cfg.epochs * steps_per_epoch).max(warmup + 1);
    if step < warmup {
        cfg.learning_rate * (step + 1) as f64 / warmup as f64
    } else {
        let t = (step - warmup) as f64 / (total - warmup) as f64;
        cfg.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
    }
}

/// Standardises a batch of images into a `[n, c, h, w]` tensor, augmenting when `augment`
/// is given.
fn batch_tensor<B: Backend>(
    set: &ImageSet,
    rows: &[usize],
    norm: Normalise,
    augment: Option<(&Augment, &mut Rng)>,
    device: &B::Device,
) -> Tensor<B, 4> {
    let per = set.image_len();
    let mut buf = vec![0f32; rows.len() * per];
    match augment {
        Some((a, rng)) => {
            for (k, &r) in rows.iter().enumerate() {
                a.apply(set.image(r), set.channels, set.height, set.width, rng, &mut buf[k * per..(k + 1) * per]);
            }
        }
        None => {
            for (k, &r) in rows.iter().enumerate() {
                buf[k * per..(k + 1) * per].copy_from_slice(set.image(r));
            }
        }
    }
    for v in &mut buf {
        *v = (*v - norm.mean) / norm.std;
    }
    Tensor::from_data(TensorData::new(buf, [rows.len(), set.channels, set.height, set.width]), device)
}

fn target_tensor<B: Backend>(set: &ImageSet, rows: &[usize], device: &B::Device) -> Tensor<B, 2> {
    let l = set.label_names.len();
    let y: Vec<f32> = rows.iter().flat_map(|&r| (0..l).map(move |k| f32::from(u8::from(set.target(r, k))))).collect();
    Tensor::from_data(TensorData::new(y, [rows.len(), l]), device)
}

/// Mean of `w·y·softplus(−z) + (1−y)·softplus(z)` over batch and labels.
fn weighted_bce<B: Backend>(logits: Tensor<B, 2>, y: Tensor<B, 2>, pos_weight: Tensor<B, 2>) -> Tensor<B, 1> {
    let pos = log_sigmoid(logits.clone()).mul(y.clone()).mul(pos_weight);
    let neg = log_sigmoid(logits.neg()).mul(y.neg().add_scalar(1.0));
    pos.add(neg).neg().mean()
}

fn check_compatible(set: &ImageSet, spec: &NetSpec, labels: &[String], what: &str) -> Result<(), MlError> {
    if (set.channels, set.height, set.width) != (spec.channels, spec.height, spec.width) {
        return Err(MlError::Input(format!(
            "{what} images are {}×{}×{} (channels×height×width) but the model takes {}×{}×{}; \
             preprocess them to the model's size",
            set.channels, set.height, set.width, spec.channels, spec.height, spec.width
        )));
    }
    if set.label_names != labels {
        return Err(MlError::Input(format!(
            "{what} labels {:?} differ from the model's {:?}",
            set.label_names, labels
        )));
    }
    Ok(())
}

/// Raw logits (before offsets) for every image of `set`, row-major `n × labels`.
fn raw_logits<B: Backend>(net: &Net<B>, set: &ImageSet, norm: Normalise, device: &B::Device) -> Vec<f64> {
    let rows: Vec<usize> = (0..set.len()).collect();
    let mut out = Vec::with_capacity(set.len() * set.label_names.len());
    for chunk in rows.chunks(256) {
        let logits = net.forward(batch_tensor::<B>(set, chunk, norm, None, device));
        out.extend(logits.into_data().iter::<f64>());
    }
    out
}

impl<B: Backend> ImageNet<B> {
    /// Logits for every image of `set` (row-major `n × labels`), offsets applied, so that
    /// `sigmoid(logit)` estimates the label's probability before calibration.
    pub fn logits(&self, set: &ImageSet, labels: &[String], device: &B::Device) -> Result<Vec<f64>, MlError> {
        check_compatible(set, &self.spec, labels, "the")?;
        let l = labels.len();
        let mut z = raw_logits(&self.net, set, self.normalise, device);
        for (i, v) in z.iter_mut().enumerate() {
            *v += self.logit_offset[i % l];
        }
        Ok(z)
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Per-label validation loss (offset-corrected, unweighted) and AUROCs.
fn validate(z: &[f64], set: &ImageSet) -> (f64, Vec<Option<f64>>) {
    let l = set.label_names.len();
    let mut loss = 0.0;
    for (i, &v) in z.iter().enumerate() {
        let p = sigmoid(v).clamp(1e-7, 1.0 - 1e-7);
        loss -= if set.target(i / l, i % l) { p.ln() } else { (1.0 - p).ln() };
    }
    let aurocs = (0..l)
        .map(|k| {
            let scores: Vec<f64> = z.iter().skip(k).step_by(l).copied().collect();
            auroc(&scores, &set.label_targets(k)).ok()
        })
        .collect();
    (loss / z.len().max(1) as f64, aurocs)
}

/// Trains a network on `train`, selecting and early-stopping on `val`. With `checkpoint`,
/// state is saved there after every epoch and an existing checkpoint of the same
/// configuration is resumed.
pub fn train_net<B: AutodiffBackend>(
    train: &ImageSet,
    val: &ImageSet,
    cfg: &ImageTrainConfig,
    device: &B::Device,
    checkpoint: Option<&Path>,
    observer: &mut dyn TrainObserver,
) -> Result<(ImageNet<B::InnerBackend>, TrainHistory), MlError> {
    if val.is_empty() {
        return Err(MlError::Input(
            "the validation split is empty: early stopping, thresholds and calibration need validation images".into(),
        ));
    }
    if train.len() < 2 {
        return Err(MlError::Input(format!("{} training image(s): at least 2 are needed", train.len())));
    }
    if cfg.batch_size < 2 || cfg.epochs == 0 {
        return Err(MlError::Input("batch size must be at least 2 and epochs at least 1".into()));
    }
    let spec = NetSpec {
        widths: cfg.widths.clone(),
        ..NetSpec::new(train.channels, train.height, train.width, train.label_names.len())
    };
    check_compatible(val, &spec, &train.label_names, "validation")?;
    let l = train.label_names.len();
    let counts: Vec<(usize, usize)> = (0..l)
        .map(|k| {
            let pos = train.label_targets(k).iter().filter(|&&t| t).count();
            (pos, train.len() - pos)
        })
        .collect();
    let unlearnable: Vec<String> = counts
        .iter()
        .zip(&train.label_names)
        .filter(|((p, n), _)| *p == 0 || *n == 0)
        .map(|(_, s)| s.clone())
        .collect();
    let val_positives: Vec<usize> = (0..l).map(|k| val.label_targets(k).iter().filter(|&&t| t).count()).collect();
    if unlearnable.len() == l {
        let (positives, negatives) = counts[0];
        return Err(MlError::SingleClass { positives, negatives });
    }
    let pos_weight: Vec<f64> = counts
        .iter()
        .map(|&(p, n)| if cfg.balance_classes && p > 0 && n > 0 { (n as f64 / p as f64).clamp(0.1, 10.0) } else { 1.0 })
        .collect();
    let logit_offset: Vec<f64> = pos_weight.iter().map(|w| -w.ln()).collect();
    let mean = (train.pixels.iter().map(|&v| f64::from(v)).sum::<f64>() / train.pixels.len() as f64) as f32;
    let var =
        train.pixels.iter().map(|&v| (f64::from(v) - f64::from(mean)).powi(2)).sum::<f64>() / train.pixels.len() as f64;
    let normalise = Normalise { mean, std: (var.sqrt() as f32).max(1e-6) };

    B::seed(device, cfg.seed);
    let mut net: Net<B> = spec.init(device);
    let mut optim = AdamWConfig::new().with_weight_decay(cfg.weight_decay as f32).init::<B, Net<B>>();
    let mut state = CheckpointState {
        config: cfg.clone(),
        spec: spec.clone(),
        normalise,
        logit_offset: logit_offset.clone(),
        rng: Rng::new(cfg.seed).state(),
        step: 0,
        history: Vec::new(),
        best_score: f64::NEG_INFINITY,
        best_epoch: 0,
        since_best: 0,
    };
    let mut best: Net<B::InnerBackend> = net.valid();
    if let Some(dir) = checkpoint {
        let state_path = dir.join("checkpoint.json");
        if state_path.exists() {
            let text = std::fs::read_to_string(&state_path).map_err(|e| io_err(&state_path, e))?;
            let saved: CheckpointState = serde_json::from_str(&text).map_err(|e| io_err(&state_path, e))?;
            if saved.config != *cfg || saved.spec != spec {
                return Err(MlError::Input(format!(
                    "{} holds a run with another configuration; delete it or use another checkpoint directory",
                    dir.display()
                )));
            }
            let read = |name: &str| {
                let p = dir.join(name);
                std::fs::read(&p).map_err(|e| io_err(&p, e))
            };
            net = net_from_bytes::<B>(&spec, read("last.mpk")?, device)?;
            best = net_from_bytes::<B::InnerBackend>(&spec, read("best.mpk")?, device)?;
            let record = Recorder::<B>::load(&Bytes::default(), read("optimizer.mpk")?, device)
                .map_err(|e| io_err(&dir.join("optimizer.mpk"), e))?;
            optim = optim.load_record(record);
            state = saved;
            observer.resumed(state.history.len());
        } else {
            std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
    }

    let mut rng = Rng::from_state(state.rng);
    let pw = Tensor::<B, 1>::from_data(TensorData::new(pos_weight.iter().map(|&w| w as f32).collect(), [l]), device);
    let mut order: Vec<usize> = (0..train.len()).collect();
    // Drop a last batch of one: batch norm needs two samples.
    let steps = train.len().div_ceil(cfg.batch_size) - usize::from(train.len() % cfg.batch_size == 1);
    let mut stopped_early = false;
    for epoch in state.history.len() + 1..=cfg.epochs {
        if state.since_best >= cfg.patience {
            stopped_early = true;
            break;
        }
        let started = Instant::now();
        // A fresh permutation per epoch from the (checkpointed) stream, so resuming is exact.
        order.iter_mut().enumerate().for_each(|(i, o)| *o = i);
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0;
        let mut lr = 0.0;
        for (b, rows) in order.chunks(cfg.batch_size).take(steps).enumerate() {
            lr = lr_at(cfg, state.step, steps);
            let x = batch_tensor::<B>(train, rows, normalise, Some((&cfg.augment, &mut rng)), device);
            let y = target_tensor::<B>(train, rows, device);
            let loss = weighted_bce(net.forward(x), y, pw.clone().unsqueeze());
            let value = loss.clone().into_data().iter::<f64>().next().unwrap_or(f64::NAN);
            if !value.is_finite() {
                return Err(MlError::Input(format!(
                    "the training loss became {value} at epoch {epoch}; lower --learning-rate"
                )));
            }
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(lr, net, grads);
            state.step += 1;
            loss_sum += value;
            observer.batch(epoch, b + 1, steps, loss_sum / (b + 1) as f64);
        }
        let inner = net.valid();
        let mut z = raw_logits(&inner, val, normalise, device);
        for (i, v) in z.iter_mut().enumerate() {
            *v += logit_offset[i % l];
        }
        let (val_loss, val_auroc) = validate(&z, val);
        // Selection looks at labels the network can learn (both classes in training) with
        // at least 5 validation positives; a label with one positive swings the mean at random.
        let usable =
            |k: usize, min_pos: usize| !unlearnable.contains(&train.label_names[k]) && val_positives[k] >= min_pos;
        let mut known: Vec<f64> =
            val_auroc.iter().enumerate().filter(|(k, _)| usable(*k, 5)).filter_map(|(_, a)| *a).collect();
        if known.is_empty() {
            known = val_auroc.iter().enumerate().filter(|(k, _)| usable(*k, 1)).filter_map(|(_, a)| *a).collect();
        }
        let mean_val_auroc = (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64);
        // Without any two-class validation label, select on (negative) loss instead.
        let score = mean_val_auroc.unwrap_or(-val_loss);
        let log = EpochLog {
            epoch,
            learning_rate: lr,
            train_loss: loss_sum / steps as f64,
            val_loss,
            val_auroc,
            mean_val_auroc,
            seconds: started.elapsed().as_secs_f64(),
        };
        observer.epoch(&log);
        state.history.push(log);
        if score > state.best_score + 1e-6 {
            state.best_score = score;
            state.best_epoch = epoch;
            state.since_best = 0;
            best = inner;
        } else {
            state.since_best += 1;
        }
        state.rng = rng.state();
        if let Some(dir) = checkpoint {
            write_atomic(&dir.join("last.mpk"), &net_to_bytes(&net)?)?;
            write_atomic(&dir.join("best.mpk"), &net_to_bytes(&best)?)?;
            let optim_bytes = Recorder::<B>::record(&Bytes::default(), optim.to_record(), ())
                .map_err(|e| MlError::Input(format!("cannot serialise the optimiser state: {e}")))?;
            write_atomic(&dir.join("optimizer.mpk"), &optim_bytes)?;
            let json = serde_json::to_vec_pretty(&state).map_err(|e| MlError::Input(e.to_string()))?;
            write_atomic(&dir.join("checkpoint.json"), &json)?;
        }
        if observer.should_stop() {
            break;
        }
    }
    if state.since_best >= cfg.patience && state.history.len() < cfg.epochs {
        stopped_early = true;
    }
    Ok((
        ImageNet { spec, net: best, normalise, logit_offset },
        TrainHistory { epochs: state.history, best_epoch: state.best_epoch, stopped_early, unlearnable },
    ))
}

/// Where a checkpoint for model `name` lives by default.
pub fn default_checkpoint_dir(models: &Path, name: &str) -> PathBuf {
    models.join(".checkpoints").join(name)
}
