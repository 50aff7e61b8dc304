//! Per-row explanations of tabular models: exact for logistic regression, and pointing at the
//! column that carries the signal for every family.

#![allow(clippy::unwrap_used)]

use carelens_ml::{Column, ColumnData, Rng, Table, TabularModel, TabularParams, logit};

/// `signal` decides the target (with noise), `noise` is unrelated, `group` is a category
/// with a small effect, `lab` is missing for half the rows.
fn table(n: usize, seed: u64) -> Table {
    let mut rng = Rng::new(seed);
    let (mut signal, mut noise, mut group, mut lab, mut target) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let s = rng.unit() * 10.0;
        let g = if rng.unit() < 0.5 { "a" } else { "b" };
        let y = s + if g == "b" { 1.0 } else { 0.0 } + rng.unit() * 3.0 > 7.0;
        signal.push(Some(s));
        noise.push(Some(rng.unit()));
        group.push(Some(g.to_owned()));
        lab.push((rng.unit() < 0.5).then(|| rng.unit()));
        target.push(y);
    }
    let col = |name: &str, data| Column { name: name.into(), data };
    Table {
        columns: vec![
            col("signal", ColumnData::Numeric(signal)),
            col("noise", ColumnData::Numeric(noise)),
            col("group", ColumnData::Categorical(group)),
            col("lab", ColumnData::Numeric(lab)),
        ],
        target,
        target_name: "y".into(),
        positive_class: "yes".into(),
        negative_class: "no".into(),
    }
}

#[test]
fn logistic_contributions_add_up_to_the_log_odds() {
    let t = table(400, 1);
    let rows: Vec<usize> = (0..t.rows()).collect();
    let model = TabularParams::Logistic { alpha: 0.1 }.fit(&t, &rows, 1).unwrap();
    let TabularModel::Logistic(m) = &model else { unreachable!() };
    let p = model.predict(&t, &rows).unwrap();
    for r in [0, 7, 99] {
        let c = model.contributions(&t, r).unwrap();
        assert_eq!(c.len(), 4);
        let sum: f64 = c.iter().map(|c| c.log_odds).sum();
        assert!((sum + m.intercept - logit(p[r])).abs() < 1e-6, "row {r}: {sum} + {} vs {}", m.intercept, logit(p[r]));
        // Sorted by magnitude, and the value is the row's own.
        assert!(c.windows(2).all(|w| w[0].log_odds.abs() >= w[1].log_odds.abs()));
        let s = c.iter().find(|c| c.column == "signal").unwrap();
        let ColumnData::Numeric(v) = &t.columns[0].data else { unreachable!() };
        assert_eq!(s.value.as_deref().unwrap().parse::<f64>().unwrap(), (v[r].unwrap() * 1e4).round() / 1e4);
    }
}

#[test]
fn every_family_blames_the_signal_column_at_the_extremes() {
    let t = table(600, 2);
    let rows: Vec<usize> = (0..t.rows()).collect();
    let ColumnData::Numeric(sig) = &t.columns[0].data else { unreachable!() };
    let high = (0..t.rows()).max_by(|&a, &b| sig[a].unwrap().total_cmp(&sig[b].unwrap())).unwrap();
    let low = (0..t.rows()).min_by(|&a, &b| sig[a].unwrap().total_cmp(&sig[b].unwrap())).unwrap();
    for params in [
        TabularParams::Logistic { alpha: 0.1 },
        TabularParams::NaiveBayes { var_smoothing: 1e-9 },
        TabularParams::Forest { trees: 50, max_depth: 6, feature_fraction: 0.8 },
    ] {
        let model = params.fit(&t, &rows, 3).unwrap();
        let top = &model.contributions(&t, high).unwrap()[0];
        assert_eq!(top.column, "signal", "{params:?}: {top:?}");
        assert!(top.log_odds > 0.0, "{params:?}: a high signal pushes towards positive: {top:?}");
        let top = &model.contributions(&t, low).unwrap()[0];
        assert_eq!(top.column, "signal", "{params:?}: {top:?}");
        assert!(top.log_odds < 0.0, "{params:?}: {top:?}");
    }
}

#[test]
fn naive_bayes_probabilities_stay_finite_far_from_the_training_data() {
    // Found on 20 000 history rows: a lab value far out in one class overflowed linfa's
    // predict_proba to inf, and training stopped with "score is not finite".
    let mut t = table(200, 4);
    let ColumnData::Numeric(lab) = &mut t.columns[3].data else { unreachable!() };
    for (v, &y) in lab.iter_mut().zip(&t.target) {
        *v = Some(if y { 1.0 + 1e-9 * v.unwrap_or(0.0) } else { v.unwrap_or(0.5) });
    }
    let rows: Vec<usize> = (0..t.rows()).collect();
    let model = TabularParams::NaiveBayes { var_smoothing: 1e-12 }.fit(&t, &rows, 1).unwrap();
    let mut far = t.clone();
    let ColumnData::Numeric(lab) = &mut far.columns[3].data else { unreachable!() };
    lab[0] = Some(1e6);
    lab[1] = Some(-1e6);
    let p = model.predict(&far, &rows).unwrap();
    assert!(p.iter().all(|p| p.is_finite() && (0.0..=1.0).contains(p)), "{:?}", &p[..4]);
}
