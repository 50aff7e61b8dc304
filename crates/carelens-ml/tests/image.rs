//! Image models end to end on a small synthetic task: training reaches a metric floor, is
//! deterministic under a seed, resumes from a checkpoint to the identical model, survives a
//! registry round trip bit for bit, and refuses bad input with a message.

#![allow(clippy::unwrap_used)]

use burn::backend::{Autodiff, Flex};
use carelens_ml::image::{
    Augment, ImageNet, ImageSet, ImageTrainConfig, Quiet, TrainObserver, net_to_bytes, train_net,
};
use carelens_ml::{
    CalibrationMethod, DatasetInfo, MlError, ModelBody, ModelManifest, Registry, Rng, ThresholdRule, assess,
    load_image_net,
};

type Train = Autodiff<Flex>;
type Infer = Flex;

const S: usize = 16;

/// Noise images; label 0 "blob": a bright 3×3 square somewhere, label 1 "bar": a faint
/// horizontal line across. Independent labels, about 40 % positive each.
fn synthetic(n: usize, seed: u64) -> ImageSet {
    let mut rng = Rng::new(seed);
    let (mut pixels, mut targets) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let mut img: Vec<f32> = (0..S * S).map(|_| rng.unit() as f32 * 0.4).collect();
        let blob = rng.unit() < 0.4;
        let bar = rng.unit() < 0.4;
        if blob {
            let (y, x) = (1 + rng.below(S - 4), 1 + rng.below(S - 4));
            for dy in 0..3 {
                for dx in 0..3 {
                    img[(y + dy) * S + x + dx] += 0.8;
                }
            }
        }
        if bar {
            let y = 2 + rng.below(S - 4);
            for x in 0..S {
                img[y * S + x] += 0.35;
            }
        }
        pixels.extend(img);
        targets.extend([blob, bar]);
    }
    ImageSet::new(1, S, S, pixels, vec!["blob".into(), "bar".into()], targets).unwrap()
}

fn config() -> ImageTrainConfig {
    ImageTrainConfig {
        epochs: 6,
        batch_size: 32,
        learning_rate: 5e-3,
        patience: 6,
        seed: 7,
        widths: vec![8, 16],
        augment: Augment { rotate_degrees: 5.0, shift: 0.05, intensity: 0.05, horizontal_flip: false },
        ..ImageTrainConfig::default()
    }
}

fn train(cfg: &ImageTrainConfig) -> ImageNet<Infer> {
    train_net::<Train>(&synthetic(384, 1), &synthetic(160, 2), cfg, &Default::default(), None, &mut Quiet).unwrap().0
}

fn logits(net: &ImageNet<Infer>, set: &ImageSet) -> Vec<f64> {
    net.logits(set, &set.label_names, &Default::default()).unwrap()
}

fn aurocs(z: &[f64], set: &ImageSet) -> Vec<f64> {
    (0..2)
        .map(|k| {
            let s: Vec<f64> = z.iter().skip(k).step_by(2).copied().collect();
            carelens_ml::auroc(&s, &set.label_targets(k)).unwrap()
        })
        .collect()
}

#[test]
fn trains_to_a_floor_deterministically_and_round_trips_through_the_registry() {
    let test = synthetic(200, 3);
    let cfg = config();
    let (net, history) =
        train_net::<Train>(&synthetic(384, 1), &synthetic(160, 2), &cfg, &Default::default(), None, &mut Quiet)
            .unwrap();
    assert_eq!(history.epochs.len(), cfg.epochs);
    assert!(history.unlearnable.is_empty());
    let z = logits(&net, &test);
    let a = aurocs(&z, &test);
    assert!(a[0] >= 0.95, "blob AUROC {:.3} below the floor", a[0]);
    assert!(a[1] >= 0.85, "bar AUROC {:.3} below the floor", a[1]);

    // Same seed → the same network, bit for bit.
    assert_eq!(z, logits(&train(&cfg), &test), "same seed, same logits");
    // Another seed → another network (the seed is really used).
    assert_ne!(z, logits(&train(&ImageTrainConfig { seed: 8, ..cfg.clone() }), &test));

    // Registry round trip: save → load → identical predictions.
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(dir.path());
    let val = synthetic(160, 2);
    let zv = logits(&net, &val);
    let per: Vec<Vec<f64>> = (0..2).map(|k| zv.iter().skip(k).step_by(2).copied().collect()).collect();
    let targets: Vec<Vec<bool>> = (0..2).map(|k| val.label_targets(k)).collect();
    let assessment =
        assess(&val.label_names, &per, &targets, CalibrationMethod::Temperature, ThresholdRule::Youden, 1).unwrap();
    let weights = net_to_bytes(&net.net).unwrap();
    let mut manifest = ModelManifest {
        format: carelens_ml::FORMAT_VERSION,
        name: "toy".into(),
        version: 0,
        task: "toy".into(),
        labels: val.label_names.clone(),
        body: ModelBody::Image {
            spec: net.spec.clone(),
            normalise: net.normalise,
            logit_offset: net.logit_offset.clone(),
            preprocess: None,
            weights_sha256: carelens_ml::sha256_hex(&weights),
        },
        training: serde_json::to_value(&cfg).unwrap(),
        assessment,
        dataset: DatasetInfo {
            source: "synthetic".into(),
            fingerprint: "0".into(),
            train_examples: 384,
            validation_examples: 160,
            validation: "fixed".into(),
        },
        unlearnable: vec![],
        training_seconds: 0.0,
        backend: "flex".into(),
        carelens_version: "test".into(),
    };
    let v1 = registry.save(&mut manifest, &[("weights.mpk", weights.clone())]).unwrap();
    let v2 = registry.save(&mut manifest, &[("weights.mpk", weights)]).unwrap();
    assert_eq!((v1, v2), (1, 2));
    assert_eq!(registry.resolve("toy").unwrap(), ("toy".into(), 2), "latest without a promotion");
    registry.promote("toy", 1).unwrap();
    assert_eq!(registry.resolve("toy").unwrap(), ("toy".into(), 1), "promoted wins");
    let loaded = registry.load("toy", 1).unwrap();
    assert_eq!(loaded.assessment.calibrators, manifest.assessment.calibrators);
    let back = load_image_net::<Infer>(&registry, &loaded, &Default::default()).unwrap();
    assert_eq!(logits(&back, &test), z, "identical predictions after save and load");
    assert!(std::fs::read_to_string(registry.dir("toy", 1).join("MODEL_CARD.md")).unwrap().contains("blob"));

    // A damaged weights file is refused, not loaded.
    let w = registry.dir("toy", 2).join("weights.mpk");
    let mut bytes = std::fs::read(&w).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&w, bytes).unwrap();
    let err = load_image_net::<Infer>(&registry, &registry.load("toy", 2).unwrap(), &Default::default()).unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");

    // A model written by another format version is refused with the fix.
    let p = registry.dir("toy", 1).join("model.json");
    let text = std::fs::read_to_string(&p).unwrap().replacen("\"format\": 1", "\"format\": 99", 1);
    std::fs::write(&p, text).unwrap();
    let err = registry.load("toy", 1).unwrap_err().to_string();
    assert!(err.contains("format 99") && err.contains("retrain"), "{err}");
}

/// Stops the run after `after` epochs, as Ctrl-C would.
struct StopAfter(usize, usize);
impl TrainObserver for StopAfter {
    fn epoch(&mut self, _: &carelens_ml::image::EpochLog) {
        self.1 += 1;
    }
    fn should_stop(&mut self) -> bool {
        self.1 >= self.0
    }
}

#[test]
fn an_interrupted_run_resumes_from_its_checkpoint_to_the_same_model() {
    let cfg = ImageTrainConfig { epochs: 4, ..config() };
    let (train_set, val) = (synthetic(192, 4), synthetic(96, 5));
    let device = Default::default();
    let whole = train_net::<Train>(&train_set, &val, &cfg, &device, None, &mut Quiet).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let (_, partial) = train_net::<Train>(&train_set, &val, &cfg, &device, Some(&ck), &mut StopAfter(2, 0)).unwrap();
    assert_eq!(partial.epochs.len(), 2);
    let (resumed, history) = train_net::<Train>(&train_set, &val, &cfg, &device, Some(&ck), &mut Quiet).unwrap();
    assert_eq!(history.epochs.len(), 4);
    assert_eq!(
        history.epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>(),
        whole.1.epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>()
    );
    let test = synthetic(64, 6);
    assert_eq!(logits(&resumed, &test), logits(&whole.0, &test), "resumed = uninterrupted");

    // Another configuration does not silently continue someone else's run.
    let err =
        train_net::<Train>(&train_set, &val, &ImageTrainConfig { seed: 1, ..cfg }, &device, Some(&ck), &mut Quiet)
            .unwrap_err();
    assert!(err.to_string().contains("another configuration"), "{err}");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let cfg = config();
    let device = Default::default();
    let (train_set, val) = (synthetic(64, 1), synthetic(32, 2));
    // Empty validation split.
    let empty = val.subset(&[]);
    let err = train_net::<Train>(&train_set, &empty, &cfg, &device, None, &mut Quiet).unwrap_err();
    assert!(err.to_string().contains("validation split is empty"), "{err}");
    // Image sizes that do not match.
    let small = ImageSet::new(1, 8, 8, vec![0.0; 64 * 4], val.label_names.clone(), vec![false; 8]).unwrap();
    let err = train_net::<Train>(&train_set, &small, &cfg, &device, None, &mut Quiet).unwrap_err();
    assert!(err.to_string().contains("8×8") && err.to_string().contains("16×16"), "{err}");
    // One class only in every label.
    let single =
        ImageSet::new(1, S, S, train_set.pixels.clone(), train_set.label_names.clone(), vec![false; 128]).unwrap();
    assert!(matches!(
        train_net::<Train>(&single, &val, &cfg, &device, None, &mut Quiet),
        Err(MlError::SingleClass { positives: 0, .. })
    ));
    // NaN and infinity in pixels.
    let mut px = vec![0.0; S * S * 2];
    px[S * S + 3] = f32::NAN;
    let err = ImageSet::new(1, S, S, px, vec!["a".into()], vec![true, false]).unwrap_err();
    assert!(err.to_string().contains("image 1"), "{err}");
    // Images that do not fit the model at prediction time.
    let net = train_net::<Train>(&train_set, &val, &ImageTrainConfig { epochs: 1, ..cfg }, &device, None, &mut Quiet)
        .unwrap()
        .0;
    let err = net.logits(&small, &small.label_names, &device).unwrap_err();
    assert!(err.to_string().contains("preprocess them"), "{err}");
}

#[test]
fn a_label_with_one_class_is_called_out_not_hidden() {
    let set = synthetic(96, 9);
    // "bar" never positive in training.
    let targets: Vec<bool> = set.targets.chunks(2).flat_map(|t| [t[0], false]).collect();
    let train_set = ImageSet::new(1, S, S, set.pixels.clone(), set.label_names.clone(), targets).unwrap();
    let (_, history) = train_net::<Train>(
        &train_set,
        &synthetic(48, 10),
        &ImageTrainConfig { epochs: 1, ..config() },
        &Default::default(),
        None,
        &mut Quiet,
    )
    .unwrap();
    assert_eq!(history.unlearnable, vec!["bar".to_owned()]);
}
