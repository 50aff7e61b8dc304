//! Quick PneumoniaMNIST run: `cargo run --release -p carelens-ml --example pneumonia -- EPOCHS`.
#![allow(clippy::unwrap_used)]

use burn::backend::{Autodiff, Flex, NdArray};
use carelens_ml::image::{EpochLog, ImageSet, ImageTrainConfig, TrainObserver, train_net};

struct Print;
impl TrainObserver for Print {
    fn epoch(&mut self, l: &EpochLog) {
        println!(
            "epoch {} lr {:.4} loss {:.4} val {:.4} auroc {:?} {:.1}s",
            l.epoch, l.learning_rate, l.train_loss, l.val_loss, l.mean_val_auroc, l.seconds
        );
    }
}

fn main() {
    let dir = std::env::var("CARELENS_SHARED_DATASETS").unwrap_or_else(|_| "../shared/datasets".into());
    let m = carelens_imaging::MedMnist::load(format!("{dir}/pneumoniamnist/pneumoniamnist_trainval.npz")).unwrap();
    let set = |im: &ndarray::Array3<f32>, lab: &ndarray::Array2<f32>| {
        let (n, h, w) = im.dim();
        ImageSet::new(
            1,
            h,
            w,
            im.iter().map(|v| v / 255.0).collect(),
            vec!["pneumonia".into()],
            lab.iter().map(|&v| v == 1.0).take(n).collect(),
        )
        .unwrap()
    };
    let train = set(&m.train_images, &m.train_labels);
    let val = set(&m.val_images, &m.val_labels);
    let epochs = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let cfg = ImageTrainConfig { epochs, ..Default::default() };
    let t = std::time::Instant::now();
    let limit: usize = std::env::var("LIMIT").ok().and_then(|s| s.parse().ok()).unwrap_or(train.len());
    let step = (train.len() / limit).max(1);
    let train = train.subset(&(0..train.len()).step_by(step).collect::<Vec<_>>());
    let hist = if std::env::var("BACKEND").as_deref() == Ok("flex") {
        train_net::<Autodiff<Flex>>(&train, &val, &cfg, &Default::default(), None, &mut Print).unwrap().1
    } else {
        train_net::<Autodiff<NdArray>>(&train, &val, &cfg, &Default::default(), None, &mut Print).unwrap().1
    };
    println!("best epoch {} in {:.1}s", hist.best_epoch, t.elapsed().as_secs_f64());
}
