//! CSV loading: the real WDBC file (from the scikit-learn wheel, via CARELENS_WDBC_CSV) and a
//! deliberately messy one.

#![allow(clippy::unwrap_used)]

use carelens_ml::{ColumnData, MlError, read_csv};

#[test]
fn wdbc_loads_with_the_published_shape_and_class_counts() {
    let Some(path) = std::env::var_os("CARELENS_WDBC_CSV") else {
        assert!(std::env::var_os("CARELENS_REQUIRE_SERVERS").is_none(), "CARELENS_WDBC_CSV not set");
        eprintln!("SKIPPED: CARELENS_WDBC_CSV not set (run `cargo xtask test`)");
        return;
    };
    let (table, reports) = read_csv(std::path::Path::new(&path), "diagnosis", None).unwrap();
    assert_eq!((table.rows(), table.columns.len()), (569, 30));
    assert_eq!(table.positive_class, "malignant");
    assert_eq!(table.target.iter().filter(|&&t| t).count(), 212, "212 malignant, 357 benign");
    assert!(table.columns.iter().all(|c| matches!(c.data, ColumnData::Numeric(_))));
    // Concavity is legitimately 0 for 13 tumours: no "0 means missing" warning for it.
    let concavity = reports.iter().find(|r| r.column == "mean concavity").unwrap();
    assert_eq!(concavity.zeros, 13);
    assert!(concavity.warnings.is_empty(), "{concavity:?}");
}

#[test]
fn messy_columns_are_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("messy.csv");
    std::fs::write(
        &p,
        "age,bp,smoker,glucose,outcome\n\
         54,80,yes,5.1,1\n\
         61,?,no,abc,0\n\
         47,0,no,6.0,0\n\
         70,95,,7.2,1\n\
         38,72,yes,4.9,\n\
         66,88,no,5.5,0\n",
    )
    .unwrap();
    let (table, reports) = read_csv(&p, "outcome", None).unwrap();
    assert_eq!(table.rows(), 5, "the row without an outcome is dropped");
    assert_eq!(table.positive_class, "1");
    let get = |c: &str| reports.iter().find(|r| r.column == c).unwrap();
    assert_eq!(get("bp").missing, 1);
    assert!(get("bp").warnings.iter().any(|w| w.contains("if 0 means")), "{:?}", get("bp"));
    assert_eq!((get("glucose").non_numeric, get("glucose").first_non_numeric_line), (1, Some(3)));
    assert!(get("glucose").warnings.iter().all(|w| !w.contains("abc")), "cell values are never echoed");
    assert_eq!(get("smoker").kind, "categorical");
    assert_eq!(get("smoker").missing, 1);
    assert!(get("outcome").warnings[0].contains("1 rows without a target value"));

    let err = read_csv(&p, "diagnosis", None).unwrap_err().to_string();
    assert!(err.contains("messy.csv") && err.contains("no column `diagnosis`") && err.contains("age, bp"), "{err}");
    std::fs::write(&p, "x,y\n1,a\n2,a\n").unwrap();
    assert!(matches!(read_csv(&p, "y", None), Err(MlError::SingleClass { .. })));
    std::fs::write(&p, "x,y\n1,a\n2,b\n3,c\n").unwrap();
    assert!(read_csv(&p, "y", None).unwrap_err().to_string().contains("3 classes"));
}

#[test]
fn wdbc_logistic_regression_reaches_the_published_auc_in_10_fold_cv() {
    let Some(path) = std::env::var_os("CARELENS_WDBC_CSV") else {
        assert!(std::env::var_os("CARELENS_REQUIRE_SERVERS").is_none(), "CARELENS_WDBC_CSV not set");
        return;
    };
    let (table, _) = read_csv(std::path::Path::new(&path), "diagnosis", None).unwrap();
    let oof = carelens_ml::cross_validate(&table, 10, 1.0, 42).unwrap();
    let auc = carelens_ml::auroc_ci(&oof, &table.target, 1000, 42).unwrap();
    let t = carelens_ml::choose_threshold(&oof, &table.target, carelens_ml::ThresholdRule::Youden).unwrap();
    let acc = carelens_ml::Confusion::at(&oof, &table.target, t).unwrap().accuracy();
    eprintln!("WDBC 10-fold logistic regression: AUROC {auc:?}, accuracy {acc:.3} at {t:.3}");
    // Published: ≈ 0.996 AUC / 0.979 accuracy (10-fold). Floor with margin for fold luck.
    assert!(auc.estimate >= 0.99, "{auc:?}");
    assert!(acc >= 0.96, "{acc}");
    assert_eq!(oof, carelens_ml::cross_validate(&table, 10, 1.0, 42).unwrap(), "same seed, same folds, same numbers");

    // Calibration: Platt fitted on even rows' out-of-fold scores, measured on odd rows.
    let logit = |p: f64| (p.clamp(1e-12, 1.0 - 1e-12) / (1.0 - p.clamp(1e-12, 1.0 - 1e-12))).ln();
    let (even, odd): (Vec<usize>, Vec<usize>) = (0..oof.len()).partition(|i| i % 2 == 0);
    let pick = |rows: &[usize]| -> (Vec<f64>, Vec<bool>) {
        (rows.iter().map(|&r| logit(oof[r])).collect(), rows.iter().map(|&r| table.target[r]).collect())
    };
    let ((fit_x, fit_y), (test_x, test_y)) = (pick(&even), pick(&odd));
    let platt = carelens_ml::Calibrator::fit_platt(&fit_x, &fit_y).unwrap();
    let raw: Vec<f64> = odd.iter().map(|&r| oof[r]).collect();
    let cal: Vec<f64> = test_x.iter().map(|&z| platt.apply(z)).collect();
    let (ece_raw, _) = carelens_ml::calibration_error(&raw, &test_y, 10).unwrap();
    let (ece_cal, _) = carelens_ml::calibration_error(&cal, &test_y, 10).unwrap();
    eprintln!("WDBC ECE (10 bins, odd rows): raw {ece_raw:.4}, Platt {ece_cal:.4}");
    assert!(ece_cal <= 0.05, "{ece_cal}");

    // Save → load → identical predictions.
    let rows: Vec<usize> = (0..table.rows()).collect();
    let model = carelens_ml::LogisticModel::fit(&table, &rows, 1.0).unwrap();
    let json = serde_json::to_string(&model).unwrap();
    let back: carelens_ml::LogisticModel = serde_json::from_str(&json).unwrap();
    assert_eq!(back.predict(&table, &rows).unwrap(), model.predict(&table, &rows).unwrap());
}

#[test]
fn folds_are_stratified_and_too_small_sets_are_refused() {
    let target: Vec<bool> = (0..100).map(|i| i % 4 == 0).collect();
    let folds = carelens_ml::stratified_folds(&target, 5, 1).unwrap();
    let mut all: Vec<usize> = folds.iter().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..100).collect::<Vec<_>>(), "every row in exactly one fold");
    for f in &folds {
        assert_eq!(f.iter().filter(|&&r| target[r]).count(), 5, "25 positives over 5 folds");
    }
    let err = carelens_ml::stratified_folds(&target[..8], 5, 1).unwrap_err().to_string();
    assert!(err.contains("at least 5 examples of each class"), "{err}");
}

#[test]
fn wdbc_every_model_family_reaches_its_floor_and_round_trips_exactly() {
    let Some(path) = std::env::var_os("CARELENS_WDBC_CSV") else {
        assert!(std::env::var_os("CARELENS_REQUIRE_SERVERS").is_none(), "CARELENS_WDBC_CSV not set");
        return;
    };
    let (table, _) = read_csv(std::path::Path::new(&path), "diagnosis", None).unwrap();
    let rows: Vec<usize> = (0..table.rows()).collect();
    // 5-fold CV AUROC floors per family (published: logistic ≈ 0.996, forests ≈ 0.99, NB ≈ 0.98).
    for (params, floor) in [
        (carelens_ml::TabularParams::Logistic { alpha: 1.0 }, 0.99),
        (carelens_ml::TabularParams::NaiveBayes { var_smoothing: 1e-9 }, 0.975),
        (carelens_ml::TabularParams::Forest { trees: 40, max_depth: 6, feature_fraction: 0.5 }, 0.98),
    ] {
        let oof = carelens_ml::cross_validate_params(&table, &params, 5, 3).unwrap();
        let auc = carelens_ml::auroc(&oof, &table.target).unwrap();
        eprintln!("WDBC 5-fold {params}: AUROC {auc:.4}");
        assert!(auc >= floor, "{params}: AUROC {auc:.4} below {floor}");
        let model = params.fit(&table, &rows, 3).unwrap();
        // The same seed gives the same model (linfa-trees breaks leaf ties by HashMap order).
        for _ in 0..3 {
            let again = params.fit(&table, &rows, 3).unwrap();
            assert_eq!(again.predict(&table, &rows).unwrap(), model.predict(&table, &rows).unwrap(), "{params}");
        }
        let back: carelens_ml::TabularModel = serde_json::from_str(&serde_json::to_string(&model).unwrap()).unwrap();
        assert_eq!(back.predict(&table, &rows).unwrap(), model.predict(&table, &rows).unwrap(), "{params}");
    }
    // Grid search keeps the best candidate and reports them all.
    let grid = carelens_ml::TabularKind::Logistic.grid();
    let (points, best, oof) = carelens_ml::grid_search(&table, &grid, 5, 3, |_, _| {}).unwrap();
    assert_eq!(points.len(), grid.len());
    assert!(points.iter().all(|p| p.auroc <= points[best].auroc));
    assert_eq!(carelens_ml::auroc(&oof, &table.target).unwrap(), points[best].auroc);

    // Calibration cross-fitted on out-of-fold scores: ECE within the target.
    let z: Vec<f64> = oof.iter().map(|&p| carelens_ml::logit(p)).collect();
    let a = carelens_ml::assess(
        &["malignant".to_owned()],
        &[z],
        std::slice::from_ref(&table.target),
        carelens_ml::CalibrationMethod::Platt,
        carelens_ml::ThresholdRule::Youden,
        3,
    )
    .unwrap();
    eprintln!("WDBC ECE raw {:.4} → Platt (cross-fitted) {:.4}", a.ece_uncalibrated[0], a.reports[0].ece);
    assert!(a.reports[0].ece <= 0.04, "{}", a.reports[0].ece);
}

#[test]
fn a_single_class_training_set_is_refused_for_every_family() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("one.csv");
    std::fs::write(&p, "x,y\n1,a\n2,a\n3,a\n4,b\n").unwrap();
    let (table, _) = read_csv(&p, "y", Some("a")).unwrap();
    for kind in carelens_ml::TabularKind::ALL {
        let params = &kind.grid()[0];
        assert!(matches!(params.fit(&table, &[0, 1, 2], 1), Err(MlError::SingleClass { positives: 3, negatives: 0 })));
    }
}
