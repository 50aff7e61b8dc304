//! Metrics against hand-computed values and known properties; calibration on data whose true
//! probabilities are known.

#![allow(clippy::unwrap_used)]

use carelens_ml::{
    Calibrator, Confusion, MlError, Rng, ThresholdRule, auroc, auroc_ci, brier, calibration_error, choose_threshold,
    evaluate_label,
};

#[test]
fn auroc_matches_hand_counts_and_handles_ties() {
    // Pairs (pos, neg): 0.9>0.8, 0.9>0.3, 0.4<0.8, 0.4>0.3 → 3 of 4.
    assert_eq!(auroc(&[0.9, 0.4, 0.8, 0.3], &[true, true, false, false]).unwrap(), 0.75);
    assert_eq!(auroc(&[1.0, 2.0, 3.0, 4.0], &[false, false, true, true]).unwrap(), 1.0);
    assert_eq!(auroc(&[1.0, 2.0, 3.0, 4.0], &[true, true, false, false]).unwrap(), 0.0);
    // All tied: every pair counts half.
    assert_eq!(auroc(&[0.5; 6], &[true, false, true, false, false, true]).unwrap(), 0.5);
    // One tie between a positive and a negative: (1 + 1 + 0.5 + 1) / 4.
    assert_eq!(auroc(&[0.9, 0.5, 0.5, 0.1], &[true, true, false, false]).unwrap(), 0.875);
    assert_eq!(auroc(&[0.1, 0.2], &[true, true]).unwrap_err(), MlError::SingleClass { positives: 2, negatives: 0 });
    assert!(matches!(auroc(&[f64::NAN, 0.2], &[true, false]), Err(MlError::Input(_))));
    assert!(matches!(auroc(&[0.1], &[true, false]), Err(MlError::Input(_))));
}

fn synthetic(n: usize, seed: u64, separation: f64) -> (Vec<f64>, Vec<bool>) {
    // True probabilities p ~ U(0,1); label ~ Bernoulli(p); score = logit(p) * separation.
    let mut rng = Rng::new(seed);
    let (mut scores, mut labels) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let p = (rng.below(1_000_000) as f64 + 0.5) / 1_000_000.0;
        labels.push((rng.below(1_000_000) as f64) < p * 1_000_000.0);
        scores.push((p / (1.0 - p)).ln() * separation);
    }
    (scores, labels)
}

#[test]
fn bootstrap_interval_brackets_the_estimate_and_narrows_with_data() {
    let (s, l) = synthetic(400, 1, 1.0);
    let small = auroc_ci(&s, &l, 500, 7).unwrap();
    assert!(small.low < small.estimate && small.estimate < small.high, "{small:?}");
    assert_eq!(auroc_ci(&s, &l, 500, 7).unwrap(), small, "same seed, same interval");
    let (s, l) = synthetic(4000, 1, 1.0);
    let big = auroc_ci(&s, &l, 500, 7).unwrap();
    assert!(big.high - big.low < (small.high - small.low) * 0.6, "{big:?} vs {small:?}");
    // p ~ U(0,1) with Bernoulli labels: the true AUROC is 5/6.
    assert!((big.low..=big.high).contains(&(5.0 / 6.0)), "{big:?}");
}

#[test]
fn confusion_rates_and_thresholds() {
    let scores = [0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1];
    let labels = [true, true, false, true, false, false, true, false];
    let c = Confusion::at(&scores, &labels, 0.5).unwrap();
    assert_eq!((c.true_positive, c.false_positive, c.true_negative, c.false_negative), (3, 1, 3, 1));
    assert_eq!((c.accuracy(), c.sensitivity(), c.specificity(), c.f1()), (0.75, 0.75, 0.75, 0.75));
    // Youden: 0.8 (sens 0.5, spec 1) and 0.6 (0.75, 0.75) both give J = 0.5; ties go to the
    // higher threshold, i.e. fewer false alarms.
    assert_eq!(choose_threshold(&scores, &labels, ThresholdRule::Youden).unwrap(), 0.8);
    // Every positive caught needs the threshold down at 0.2.
    assert_eq!(choose_threshold(&scores, &labels, ThresholdRule::Sensitivity { target: 1.0 }).unwrap(), 0.2);
    assert_eq!(choose_threshold(&scores, &labels, ThresholdRule::Sensitivity { target: 0.5 }).unwrap(), 0.8);
}

#[test]
fn brier_and_ece_of_known_cases() {
    assert_eq!(brier(&[1.0, 0.0], &[true, false]).unwrap(), 0.0);
    assert_eq!(brier(&[0.5, 0.5], &[true, false]).unwrap(), 0.25);
    // Always 0.9 on a 50 % event: ECE 0.4.
    let (ece, bins) =
        calibration_error(&[0.9; 10], &[true, false, true, false, true, false, true, false, true, false], 10).unwrap();
    assert!((ece - 0.4).abs() < 1e-12 && bins.len() == 1, "{ece} {bins:?}");
    assert!(calibration_error(&[1.5], &[true], 10).is_err());
}

#[test]
fn calibrators_repair_overconfidence_and_round_trip() {
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    // Logits three times too confident.
    let (val_s, val_l) = synthetic(5000, 2, 3.0);
    let (test_s, test_l) = synthetic(5000, 3, 3.0);
    let raw: Vec<f64> = test_s.iter().map(|&z| sigmoid(z)).collect();
    let (ece_raw, _) = calibration_error(&raw, &test_l, 15).unwrap();
    for cal in [
        Calibrator::fit_temperature(&val_s, &val_l).unwrap(),
        Calibrator::fit_platt(&val_s, &val_l).unwrap(),
        Calibrator::fit_isotonic(&val_s, &val_l).unwrap(),
    ] {
        let probs: Vec<f64> = test_s.iter().map(|&z| cal.apply(z)).collect();
        let (ece, _) = calibration_error(&probs, &test_l, 15).unwrap();
        assert!(ece < 0.03 && ece < ece_raw / 3.0, "{cal:?}: ECE {ece} vs raw {ece_raw}");
        let json = serde_json::to_string(&cal).unwrap();
        assert_eq!(serde_json::from_str::<Calibrator>(&json).unwrap(), cal);
        if let Calibrator::Temperature { temperature } = cal {
            assert!((temperature - 3.0).abs() < 0.3, "{temperature}");
        }
    }
    // Isotonic output never decreases with the score.
    let iso = Calibrator::fit_isotonic(&val_s, &val_l).unwrap();
    let mut last = 0.0;
    for i in -100..=100 {
        let p = iso.apply(f64::from(i) / 5.0);
        assert!(p >= last);
        last = p;
    }
    assert!(matches!(Calibrator::fit_platt(&[0.1, 0.2], &[true, true]), Err(MlError::SingleClass { .. })));
}

#[test]
fn temperature_of_shifted_logits_keeps_the_ranking() {
    // A weak network whose logits all sit far on the positive side (eval-mode batch norm
    // after little training): the best temperature must not round them all to 1.0.
    let l: Vec<bool> = (0..400).map(|i| i % 4 != 0).collect();
    let shifted: Vec<f64> = l
        .iter()
        .enumerate()
        .map(|(i, &y)| 1.0 + f64::from((i as u32 * 7919) % 100) / 50.0 + if y { 0.61 } else { 0.0 })
        .collect();
    let cal = Calibrator::fit_temperature(&shifted, &l).unwrap();
    let p: Vec<f64> = shifted.iter().map(|&z| cal.apply(z)).collect();
    let raw = auroc(&shifted, &l).unwrap();
    let calibrated = auroc(&p, &l).unwrap();
    assert!((raw - calibrated).abs() < 1e-9, "{cal:?}: AUROC {raw} → {calibrated}");
    let Calibrator::Temperature { temperature } = cal else { unreachable!() };
    assert!(temperature > 1.0, "a shifted score needs a softer, not a sharper, temperature: {temperature}");
}

#[test]
fn label_report_is_deterministic_and_says_when_auroc_is_undefined() {
    let (s, l) = synthetic(300, 4, 1.0);
    let p: Vec<f64> = s.iter().map(|&z| 1.0 / (1.0 + (-z).exp())).collect();
    let a = evaluate_label("consolidation", &p, &l, 0.5, 9).unwrap();
    assert_eq!(a, evaluate_label("consolidation", &p, &l, 0.5, 9).unwrap());
    assert!(a.auroc.is_some() && a.ece < 0.1);
    let none = evaluate_label("rare", &[0.1, 0.2], &[false, false], 0.5, 9).unwrap();
    assert!(none.auroc.is_none() && none.positives == 0);
}
