use serde_json::Value;

use crate::Carelens;

#[test]
fn same_seed_same_population_and_stats_add_up() {
    let (a, b) = (Carelens::new(), Carelens::new());
    let args = ["generate", "--patients", "1500", "--seed", "7"];
    let ra = a.json(&args);
    let rb = b.json(&[&args[..], &["--threads", "1"]].concat());
    let hash = ra["summary"]["hash"].as_str().unwrap().to_owned();
    assert_eq!(hash.len(), 64);
    assert_eq!(rb["summary"]["hash"], hash.as_str(), "same seed, same population, whatever the threads");
    assert_eq!(ra["reused"], false);

    // Generating again is a no-op that reports the same population.
    let again = a.json(&args);
    assert_eq!(
        (again["reused"].clone(), again["summary"]["hash"].clone()),
        (Value::Bool(true), Value::from(hash.as_str()))
    );

    // Another seed into the same store is refused, and names the way out.
    let err = a.fails(&["generate", "--patients", "1500", "--seed", "8"], 1);
    assert!(err.contains("already holds another population (seed 7, 1500 patients"), "{err}");
    assert!(err.contains("--data-dir"), "{err}");

    let s = a.json(&["stats"]);
    let summary = &ra["summary"];
    assert_eq!(s["counts"]["patients"], 1500);
    assert_eq!(s["counts"]["history_entries"], summary["history_entries"]);
    assert_eq!(s["counts"]["appointments"], summary["appointments"]);
    assert_eq!(s["counts"]["providers"], summary["providers"]);
    let total = |v: &Value| v.as_object().unwrap().values().map(|x| x.as_u64().unwrap()).sum::<u64>();
    assert_eq!(total(&s["age_bands"]), 1500);
    assert_eq!(total(&s["regions"]), 1500);
    assert_eq!(total(&s["insurance"]), 1500);
    let conditions = s["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 11);
    let truth: u64 = conditions.iter().map(|c| c["patients"].as_u64().unwrap()).sum();
    assert_eq!(truth, summary["ground_truth"].as_u64().unwrap());
    let diabetes = conditions.iter().find(|c| c["condition"] == "type2_diabetes").unwrap();
    assert_eq!(diabetes["icd10"], "E11");
    let pct = diabetes["percent"].as_f64().unwrap();
    assert!((3.0..12.0).contains(&pct), "diabetes {pct}% of all ages");
    let no_show = s["no_show_percent"].as_f64().unwrap();
    assert!((6.0..14.0).contains(&no_show), "no-show {no_show}%");
}

#[test]
fn different_as_of_is_a_different_population() {
    let (a, b) = (Carelens::new(), Carelens::new());
    let ra = a.json(&["generate", "--patients", "200", "--seed", "7"]);
    let rb = b.json(&["generate", "--patients", "200", "--seed", "7", "--as-of", "2025-01-01"]);
    assert_ne!(ra["summary"]["hash"], rb["summary"]["hash"]);
    assert_eq!(rb["summary"]["as_of"], "2025-01-01");
}

#[test]
fn dry_run_hashes_without_writing() {
    let (a, b) = (Carelens::new(), Carelens::new());
    let dry = a.json(&["generate", "--patients", "300", "--seed", "3", "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(a.json(&["stats"])["counts"]["patients"], 0, "a dry run writes nothing");
    let real = b.json(&["generate", "--patients", "300", "--seed", "3"]);
    assert_eq!(real["dry_run"], false);
    assert_eq!(real["summary"]["hash"], dry["summary"]["hash"]);
    assert!(a.ok(&["generate", "--patients", "300", "--seed", "3", "--dry-run"]).contains("dry run, nothing written"));
}
