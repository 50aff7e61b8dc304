//! History features from a synthetic population, Parquet round trips, and bad files.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use carelens_features::{HistoryFeatures, read_table, target_column, write_table};
use carelens_ml::{ColumnData, TabularParams, auroc, cross_validate_params};
use polars::prelude::*;

fn population(patients: u64) -> HistoryFeatures {
    let cfg = carelens_synth::Config { seed: 11, patients, as_of: carelens_synth::Config::default_as_of(), threads: 2 };
    let mut features = HistoryFeatures::new(cfg.as_of, "e11").unwrap();
    carelens_synth::generate(&cfg, |chunk| {
        let mut by_patient: HashMap<_, Vec<_>> = HashMap::new();
        for e in chunk.history {
            by_patient.entry(e.patient.clone()).or_default().push(e);
        }
        for p in &chunk.patients {
            features.add(p.sex, p.birth_date, by_patient.get(&p.id).map_or(&[][..], Vec::as_slice));
        }
        Ok::<_, std::convert::Infallible>(())
    })
    .unwrap();
    features
}

fn mean_where(df: &DataFrame, column: &str, target: &str, class: &str) -> f64 {
    let y = df.column(target).unwrap().str().unwrap();
    let x = df.column(column).unwrap().f64().unwrap();
    let v: Vec<f64> = y.iter().zip(x.iter()).filter(|(t, _)| *t == Some(class)).filter_map(|(_, v)| v).collect();
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn history_features_are_one_anonymous_row_per_patient_and_predict_diabetes() {
    let features = population(3000);
    let n = features.patients();
    assert!(n > 2900, "{n}");
    let mut df = features.finish().unwrap();
    assert_eq!(df.height(), n);
    let names: Vec<String> = df.get_column_names().iter().map(|c| c.to_string()).collect();
    let target = target_column("E11");
    for expected in ["age", "sex", "visits_365d", "active_medications", "other_active_diagnoses", "lab_4548-4_latest"] {
        assert!(names.iter().any(|c| c == expected), "{expected} missing from {names:?}");
    }
    assert_eq!(names.last(), Some(&target));
    // Nothing that identifies a patient.
    assert!(!names.iter().any(|c| c.contains("id") || c.contains("name") || c.contains("birth")), "{names:?}");

    // Prevalence of recorded type 2 diabetes in a German-like population, and the evidence.
    let positives = df.column(&target).unwrap().str().unwrap().iter().filter(|v| *v == Some("yes")).count();
    let prevalence = positives as f64 / n as f64;
    assert!((0.02..0.15).contains(&prevalence), "{prevalence}");
    let a1c_yes = mean_where(&df, "lab_4548-4_latest", &target, "yes");
    let a1c_no = mean_where(&df, "lab_4548-4_latest", &target, "no");
    assert!(a1c_yes > a1c_no + 0.5, "HbA1c {a1c_yes} vs {a1c_no}");
    assert!(
        mean_where(&df, "active_medications", &target, "yes") > mean_where(&df, "active_medications", &target, "no")
    );
    // No negative counts, ages within life.
    let age = df.column("age").unwrap().f64().unwrap();
    assert!(age.iter().flatten().all(|a| (0.0..=120.0).contains(&a)));

    // Parquet out, table in, a model on it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("features.parquet");
    assert!(write_table(&mut df, &path).unwrap() > 0);
    let (table, reports) = read_table(&path, &target, Some("yes")).unwrap();
    assert_eq!(table.rows(), n);
    assert_eq!(table.target.iter().filter(|&&t| t).count(), positives);
    let sex = table.columns.iter().find(|c| c.name == "sex").unwrap();
    assert!(matches!(sex.data, ColumnData::Categorical(_)));
    let lab = reports.iter().find(|r| r.column == "lab_4548-4_latest").unwrap();
    assert!(lab.missing > 0 && lab.kind == "numeric", "{lab:?}");
    let oof = cross_validate_params(&table, &TabularParams::Logistic { alpha: 1.0 }, 5, 1).unwrap();
    let auc = auroc(&oof, &table.target).unwrap();
    eprintln!(
        "{n} patients, columns {names:?}; prevalence {prevalence:.3}; HbA1c {a1c_yes:.2} vs {a1c_no:.2}; logistic 5-fold AUROC {auc:.4}"
    );
    assert!(auc >= 0.95, "recorded diabetes from labs and medication: AUROC {auc}");

    // CSV gives the same table.
    let csv = dir.path().join("features.csv");
    write_table(&mut df, &csv).unwrap();
    let (from_csv, _) = read_table(&csv, &target, Some("yes")).unwrap();
    assert_eq!(from_csv, table);
}

#[test]
fn parquet_with_messy_columns_is_reported_and_bad_files_name_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messy.parquet");
    let mut df = df!(
        "glucose" => ["5.1", "?", "6.2", "7.0", "abc", "5.5", "6.1", "5.9"],
        "bmi" => [Some(22.0f64), None, Some(31.0), Some(28.0), Some(0.0), Some(24.0), Some(27.0), Some(29.0)],
        "smoker" => [true, false, true, false, false, true, false, false],
        "outcome" => ["1", "0", "1", "0", "0", "1", "0", "0"],
    )
    .unwrap();
    write_table(&mut df, &path).unwrap();
    let (table, reports) = read_table(&path, "outcome", None).unwrap();
    assert_eq!(table.rows(), 8);
    assert_eq!(table.positive_class, "1");
    let glucose = reports.iter().find(|r| r.column == "glucose").unwrap();
    assert_eq!((glucose.kind.as_str(), glucose.missing, glucose.non_numeric), ("numeric", 1, 1), "{glucose:?}");
    assert_eq!(glucose.first_non_numeric_line, Some(5));
    let bmi = reports.iter().find(|r| r.column == "bmi").unwrap();
    assert_eq!((bmi.missing, bmi.zeros), (1, 1));
    assert!(bmi.warnings.iter().any(|w| w.contains("zeros")), "{bmi:?}");

    // Wrong target column: the message lists the columns.
    let err = read_table(&path, "diagnosis", None).unwrap_err().to_string();
    assert!(err.contains("no column `diagnosis`") && err.contains("glucose"), "{err}");
    // Not Parquet at all.
    let fake = dir.path().join("fake.parquet");
    std::fs::write(&fake, b"name,outcome\nx,1\n").unwrap();
    let err = read_table(&fake, "outcome", None).unwrap_err().to_string();
    assert!(err.contains("fake.parquet") && err.contains("Parquet"), "{err}");
    // Missing file.
    let err = read_table(&dir.path().join("gone.parquet"), "outcome", None).unwrap_err().to_string();
    assert!(err.contains("gone.parquet"), "{err}");
    // A bad target category.
    assert!(HistoryFeatures::new(carelens_synth::Config::default_as_of(), "diabetes").is_err());
}

#[test]
fn one_patient_at_a_time_gives_the_batch_prediction() {
    // A model fitted on the whole population, then each of a few patients' features built
    // alone (every lab kept) and matched to the model's columns by name.
    let cfg =
        carelens_synth::Config { seed: 12, patients: 1500, as_of: carelens_synth::Config::default_as_of(), threads: 2 };
    let mut patients = Vec::new();
    carelens_synth::generate(&cfg, |chunk| {
        let mut by_patient: HashMap<_, Vec<_>> = HashMap::new();
        for e in chunk.history {
            by_patient.entry(e.patient.clone()).or_default().push(e);
        }
        for p in chunk.patients {
            let h = by_patient.remove(&p.id).unwrap_or_default();
            patients.push((p, h));
        }
        Ok::<_, std::convert::Infallible>(())
    })
    .unwrap();
    let mut all = HistoryFeatures::new(cfg.as_of, "E11").unwrap();
    for (p, h) in &patients {
        all.add(p.sex, p.birth_date, h);
    }
    let mut df = all.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.parquet");
    write_table(&mut df, &path).unwrap();
    let (table, _) = read_table(&path, &target_column("E11"), Some("yes")).unwrap();
    let rows: Vec<usize> = (0..table.rows()).collect();
    let model = TabularParams::Logistic { alpha: 1.0 }.fit(&table, &rows, 1).unwrap();
    let batch = model.predict(&table, &rows).unwrap();
    let mut checked = 0;
    for (i, (p, h)) in patients.iter().enumerate().filter(|(_, (p, _))| p.birth_date <= cfg.as_of).take(40) {
        let mut one = HistoryFeatures::new(cfg.as_of, "E11").unwrap().lab_coverage(0.0);
        one.add(p.sex, p.birth_date, h);
        let t = carelens_features::table_for_schema(&one.finish().unwrap(), model.schema()).unwrap();
        let p1 = model.predict(&t, &[0]).unwrap()[0];
        assert!((p1 - batch[i]).abs() < 1e-9, "patient {i}: alone {p1}, in the batch {}", batch[i]);
        checked += 1;
    }
    assert_eq!(checked, 40);
}
