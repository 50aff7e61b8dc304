//! Training and inference throughput of the image network, and tabular fit times; the Rust
//! side of `cargo xtask bench-ml`, which runs `python_peer.py` (PyTorch, scikit-learn) on the
//! same jobs and prints the ratios.
//!
//! ```text
//! cargo bench -p carelens-ml --bench throughput -- image BACKEND SECONDS
//! cargo bench -p carelens-ml --bench throughput -- tabular WDBC_CSV REPEATS
//! ```
//!
//! `image`: the registry's residual CNN (widths 16/32/64) on 1×28×28 inputs, one label;
//! training steps are forward + binary cross-entropy + backward + AdamW on batches of 64,
//! inference is the evaluation-mode forward pass on batches of 256. Random inputs: the
//! arithmetic does not depend on the pixel values. Threads: rayon's default (all cores) unless
//! `RAYON_NUM_THREADS` says otherwise. Prints one JSON object.
//!
//! `tabular`: 10-fold stratified cross-validation (fit on 9 folds, predict the 10th) of each
//! model family at fixed hyper-parameters; the median wall time of `REPEATS` runs and the
//! pooled out-of-fold AUROC. Prints one JSON object.

#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::activation::log_sigmoid;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use carelens_ml::image::NetSpec;
use carelens_ml::{Rng, TabularParams, auroc, cross_validate_params, read_csv};

const TRAIN_BATCH: usize = 64;
const INFER_BATCH: usize = 256;

fn random_batch<B: burn::tensor::backend::Backend>(n: usize, rng: &mut Rng, device: &B::Device) -> Tensor<B, 4> {
    let data: Vec<f32> = (0..n * 28 * 28).map(|_| rng.unit() as f32).collect();
    Tensor::from_data(TensorData::new(data, [n, 1, 28, 28]), device)
}

/// Runs `step` until `seconds` have passed (after `warmup` untimed calls); steps per second.
fn rate(warmup: usize, seconds: f64, mut step: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        step();
    }
    let started = Instant::now();
    let mut n = 0usize;
    while n < 3 || started.elapsed().as_secs_f64() < seconds {
        step();
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn image<B: AutodiffBackend>(seconds: f64) -> serde_json::Value {
    let device = B::Device::default();
    B::seed(&device, 7);
    let spec = NetSpec::new(1, 28, 28, 1);
    let mut net = spec.init::<B>(&device);
    let params = burn::module::Module::num_params(&net);
    let mut optim = AdamWConfig::new().with_weight_decay(1e-4).init();
    let mut rng = Rng::new(7);
    let x = random_batch::<B>(TRAIN_BATCH, &mut rng, &device);
    let y_data: Vec<f32> = (0..TRAIN_BATCH).map(|i| (i % 3 == 0) as u8 as f32).collect();
    let y = Tensor::<B, 2>::from_data(TensorData::new(y_data, [TRAIN_BATCH, 1]), &device);
    let train_steps = rate(3, seconds, || {
        let logits = net.forward(x.clone());
        let loss = log_sigmoid(logits.clone())
            .mul(y.clone())
            .add(log_sigmoid(logits.neg()).mul(y.clone().neg().add_scalar(1.0)))
            .neg()
            .mean();
        // Reading the loss back, as the training loop does every step.
        let _ = loss.clone().into_data();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(3e-3, net.clone(), grads);
    });
    let eval = net.valid();
    let xi = random_batch::<B::InnerBackend>(INFER_BATCH, &mut rng, &device);
    let infer_batches = rate(2, seconds, || {
        let _ = eval.forward(xi.clone()).into_data();
    });
    serde_json::json!({
        "params": params,
        "train_images_per_s": train_steps * TRAIN_BATCH as f64,
        "infer_images_per_s": infer_batches * INFER_BATCH as f64,
    })
}

fn tabular(csv: &Path, repeats: usize) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let (table, _) = read_csv(csv, "diagnosis", Some("malignant"))?;
    let families = [
        ("logistic", TabularParams::Logistic { alpha: 1.0 }),
        ("naive_bayes", TabularParams::NaiveBayes { var_smoothing: 1e-9 }),
        ("forest", TabularParams::Forest { trees: 100, max_depth: 8, feature_fraction: 0.5 }),
    ];
    let mut out = serde_json::Map::new();
    for (name, params) in families {
        let mut times = Vec::with_capacity(repeats);
        let mut oof = vec![];
        for _ in 0..repeats.max(1) {
            let started = Instant::now();
            oof = cross_validate_params(&table, &params, 10, 42)?;
            times.push(started.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        out.insert(
            name.to_owned(),
            serde_json::json!({
                "params": params.to_string(),
                "cv_seconds": times[times.len() / 2],
                "auroc": auroc(&oof, &table.target)?,
            }),
        );
    }
    Ok(serde_json::Value::Object(out))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let usage = "usage: throughput image flex|ndarray SECONDS | tabular WDBC_CSV REPEATS";
    let out = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["image", backend, seconds] => {
            let seconds: f64 = seconds.parse()?;
            match *backend {
                #[cfg(feature = "flex")]
                "flex" => image::<burn::backend::Autodiff<burn::backend::Flex>>(seconds),
                #[cfg(feature = "ndarray")]
                "ndarray" => image::<burn::backend::Autodiff<burn::backend::NdArray>>(seconds),
                other => return Err(format!("backend {other} is not compiled in (cargo features)").into()),
            }
        }
        ["tabular", csv, repeats] => tabular(Path::new(csv), repeats.parse()?)?,
        _ => return Err(usage.into()),
    };
    println!("{out}");
    Ok(())
}
