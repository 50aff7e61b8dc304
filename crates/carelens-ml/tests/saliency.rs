//! Evidence must be faithful: on synthetic images whose lesion position is known, the
//! occlusion map points at the lesion, and hiding the highlighted region lowers the
//! prediction more than hiding a random region of the same size.

#![allow(clippy::unwrap_used)]

use burn::backend::{Autodiff, Flex};
use carelens_ml::Rng;
use carelens_ml::image::{Augment, ImageNet, ImageSet, ImageTrainConfig, Quiet, occlusion, train_net};

const S: usize = 16;
const LESION: usize = 3;
const WINDOW: usize = 4;

/// Noise images; "lesion": a bright 3×3 square at a random position in ~half of them.
/// Returns the set and each image's lesion corner.
fn synthetic(n: usize, seed: u64) -> (ImageSet, Vec<Option<(usize, usize)>>) {
    let mut rng = Rng::new(seed);
    let (mut pixels, mut targets, mut where_) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let mut img: Vec<f32> = (0..S * S).map(|_| rng.unit() as f32 * 0.4).collect();
        let lesion = rng.unit() < 0.5;
        let mut at = None;
        if lesion {
            let (y, x) = (1 + rng.below(S - 4), 1 + rng.below(S - 4));
            for dy in 0..LESION {
                for dx in 0..LESION {
                    img[(y + dy) * S + x + dx] += 0.8;
                }
            }
            at = Some((y, x));
        }
        pixels.extend(img);
        targets.push(lesion);
        where_.push(at);
    }
    (ImageSet::new(1, S, S, pixels, vec!["lesion".into()], targets).unwrap(), where_)
}

fn masked(image: &[f32], (y, x): (usize, usize), fill: f32) -> Vec<f32> {
    let mut v = image.to_vec();
    for yy in y..y + WINDOW {
        for xx in x..x + WINDOW {
            v[yy * S + xx] = fill;
        }
    }
    v
}

fn logit(net: &ImageNet<Flex>, image: &[f32]) -> f64 {
    let set = ImageSet::new(1, S, S, image.to_vec(), vec!["lesion".into()], vec![false]).unwrap();
    net.logits(&set, &set.label_names, &Default::default()).unwrap()[0]
}

#[test]
fn occlusion_points_at_the_lesion_and_masking_it_matters_more_than_masking_elsewhere() {
    let cfg = ImageTrainConfig {
        epochs: 6,
        batch_size: 32,
        learning_rate: 5e-3,
        patience: 6,
        seed: 7,
        widths: vec![8, 16],
        augment: Augment { rotate_degrees: 0.0, shift: 0.05, intensity: 0.05, horizontal_flip: true },
        ..ImageTrainConfig::default()
    };
    let (net, _) = train_net::<Autodiff<Flex>>(
        &synthetic(384, 1).0,
        &synthetic(160, 2).0,
        &cfg,
        &Default::default(),
        None,
        &mut Quiet,
    )
    .unwrap();
    let (test, where_) = synthetic(80, 3);
    let labels = test.label_names.clone();
    let mut rng = Rng::new(11);
    let (mut hits, mut wins, mut cases) = (0, 0, 0);
    let (mut drop_peak, mut drop_random) = (0.0, 0.0);
    for (i, at) in where_.iter().enumerate() {
        let Some((ly, lx)) = *at else { continue };
        let image = test.image(i);
        let s = occlusion(&net, image, &labels, 0, WINDOW, 1, &Default::default()).unwrap();
        assert_eq!(s.map.len(), S * S);
        let base = logit(&net, image);
        assert!((s.logit - base).abs() < 1e-4);
        let (py, px) = s.peak(WINDOW);
        // The highlighted window covers the lesion's centre.
        let (cy, cx) = (ly + LESION / 2, lx + LESION / 2);
        if (py..py + WINDOW).contains(&cy) && (px..px + WINDOW).contains(&cx) {
            hits += 1;
        }
        // A random window of the same size that does not touch the lesion.
        let other = loop {
            let (ry, rx) = (rng.below(S - WINDOW + 1), rng.below(S - WINDOW + 1));
            let apart = ry + WINDOW <= ly || ly + LESION <= ry || rx + WINDOW <= lx || lx + LESION <= rx;
            if apart {
                break (ry, rx);
            }
        };
        let dp = base - logit(&net, &masked(image, (py, px), net.normalise.mean));
        let dr = base - logit(&net, &masked(image, other, net.normalise.mean));
        drop_peak += dp;
        drop_random += dr;
        wins += usize::from(dp > dr);
        cases += 1;
    }
    assert!(cases >= 30, "{cases} lesion images");
    let share = |k: usize| k as f64 / cases as f64;
    assert!(share(hits) >= 0.85, "the map's peak covers the lesion in {hits}/{cases} images");
    assert!(share(wins) >= 0.9, "masking the peak beats a random window in {wins}/{cases} images");
    let (dp, dr) = (drop_peak / cases as f64, drop_random / cases as f64);
    assert!(dp > 0.5 && dp > 5.0 * dr.abs(), "mean logit drop: peak {dp:.2}, random {dr:.2}");
}

#[test]
fn occlusion_refuses_mismatched_input() {
    let cfg = ImageTrainConfig { epochs: 1, widths: vec![4], ..ImageTrainConfig::default() };
    let (net, _) = train_net::<Autodiff<Flex>>(
        &synthetic(64, 1).0,
        &synthetic(32, 2).0,
        &cfg,
        &Default::default(),
        None,
        &mut Quiet,
    )
    .unwrap();
    let labels = vec!["lesion".to_owned()];
    for (len, label, patch) in [(S * S - 1, 0, 4), (S * S, 1, 4), (S * S, 0, 0), (S * S, 0, S + 1)] {
        let e = occlusion(&net, &vec![0.0; len], &labels, label, patch, 2, &Default::default()).unwrap_err();
        assert!(e.to_string().contains("occlusion"), "{e}");
    }
}
