//! Prediction sets through the CLI: the committed models and fusion on the demo's own
//! (unseen) population, fused probabilities against the ground truth, idempotent reruns,
//! new versions on new inputs, evidence in the object store, bad input, and the same sets
//! served to doctors over HTTP.

use serde_json::Value;

use crate::Carelens;

pub fn repo_models() -> String {
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    root.join("models").to_str().unwrap().to_owned()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn auroc(report: &Value) -> f64 {
    report["auroc"]["estimate"].as_f64().unwrap_or_else(|| panic!("no AUROC in {report}"))
}

/// The committed models in `demo`, on a population none of them saw (image and history
/// models: seed 7; fusion: seed 8; the demo: seed 42). The registry is only read.
#[test]
fn demo_predicts_fused_sets_that_beat_their_sources_and_reruns_write_nothing() {
    let models = repo_models();
    let card = std::path::Path::new(&models).join("chest-xray/v1/model.json");
    let before = std::fs::read(&card).unwrap();
    let c = Carelens::new();
    let r = c.json(&["--models", &models, "demo", "--no-serve"]);

    // Step 4: each image model on the demo's studies, every label reported.
    let evals = r["models"]["evaluations"].as_array().unwrap();
    let names: Vec<&str> = evals.iter().filter_map(|e| e["model"].as_str()).collect();
    for expected in ["chest-xray", "chest-ct", "brain-mr"] {
        assert!(names.contains(&expected), "{expected} not run: {names:?}; not run: {}", r["models"]["not_run"]);
    }
    let xray = evals.iter().find(|e| e["model"] == "chest-xray").unwrap();
    let reports = xray["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 4, "every label is reported, the weak one too");
    let consolidation = reports.iter().find(|r| r["label"] == "consolidation").unwrap();
    assert!(auroc(consolidation) >= 0.8, "consolidation on unseen synthetic studies: {consolidation}");
    assert_eq!(std::fs::read(&card).unwrap(), before, "demo only reads models");

    // Step 5: prediction sets.
    let p = &r["predictions"];
    assert!(p["fusion"].as_str().is_some_and(|f| f.starts_with("fusion@")), "{}", p["fusion"]);
    let new_sets = p["new_sets"].as_u64().unwrap();
    assert!(new_sets > 1000, "{p}");
    assert_eq!(p["failed"].as_array().unwrap().len(), 0, "{}", p["failed"]);
    assert!(p["heatmaps"].as_u64().unwrap() > 0, "{p}");

    // Against the ground truth of a population none of the models saw: wherever a source
    // speaks (on enough patients of both classes), the fused probability ranks better.
    let evaluation = p["evaluation"].as_array().unwrap();
    let (mut compared, mut clear_wins) = (0, 0);
    for d in evaluation {
        for s in d["sources"].as_array().unwrap() {
            let (n, pos) = (s["patients"].as_u64().unwrap(), s["positives"].as_u64().unwrap());
            if pos < 10 || n - pos < 10 {
                continue;
            }
            let (source, fused) = (f(&s["source_auroc"]), f(&s["fused_auroc"]));
            assert!(fused >= source - 0.005, "{}: {} {source:.3} vs fused {fused:.3}", d["code"], s["source"]);
            compared += 1;
            clear_wins += usize::from(fused >= source + 0.05);
        }
        // Never worse than naively averaging the sources.
        if let (Some(fused), Some(mean)) = (d["fused_auroc"].as_f64(), d["mean_of_sources_auroc"].as_f64())
            && d["positives"].as_u64().unwrap() >= 10
        {
            assert!(fused >= mean - 0.005, "{}: fused {fused:.3} vs mean of sources {mean:.3}", d["code"]);
        }
    }
    assert!(compared >= 8, "too few sources with enough patients: {evaluation:?}");
    // Where an image finding meets a history model (pneumonia, heart disease), fusing adds a lot.
    assert!(clear_wins >= 2, "fusion should clearly beat the image sources: {evaluation:?}");
    let j18 = evaluation.iter().find(|d| d["code"] == "J18").expect("pneumonia is evaluated");
    assert!(f(&j18["fused_auroc"]) > 0.9, "{j18}");

    // One patient's set: fused probability, band, sources with contributions, evidence.
    let example = &r["example"];
    let id = example["patient"].as_str().unwrap();
    assert_eq!(example["version"], 1);
    let preds = example["predictions"].as_array().unwrap();
    let high = preds.iter().find(|d| d["risk_band"] == "high" && d["known"] == false).expect("a high-risk finding");
    assert!(!high["sources"].as_array().unwrap().is_empty());
    assert!(high["sources"][0]["contribution"].is_f64(), "{high}");
    assert_eq!(example["fusion"]["method"], "stacking");
    // Known diagnoses come last and are flagged, never "predicted".
    let first_known = preds.iter().position(|d| d["known"] == true).unwrap_or(preds.len());
    assert!(preds[first_known..].iter().all(|d| d["known"] == true));
    // A heatmap overlay is a PNG in the object store.
    let heatmap = r["example"]["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["evidence"].as_array().unwrap().iter())
        .find(|e| e["kind"] == "heatmap");
    {
        let h = heatmap.expect("the example patient has a heatmap");
        let key = h["object_key"].as_str().unwrap();
        let digest = key.rsplit('/').next().unwrap();
        let path = c.data_dir().join("objects").join("sha256").join(&digest[..2]).join(digest);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG overlay");
        assert_eq!(h["detail"]["method"], "occlusion sensitivity");
    }

    // Rerun: nothing new, nothing written.
    let again = c.json(&["--models", &models, "predict", "--no-heatmaps"]);
    assert_eq!(again["new_sets"], 0, "{again}");
    assert_eq!(again["unchanged"].as_u64().unwrap(), new_sets);

    // New inputs (another date: ages, current medication change) → a new version; the old
    // one stays for audit.
    let later = c.json(&["--models", &models, "predict", "--patients", id, "--as-of", "2026-12-31"]);
    assert_eq!(later["new_sets"], 1, "{later}");
    let all = c.json(&["predictions", "show", id, "--all"]);
    let versions: Vec<u64> = all.as_array().unwrap().iter().map(|s| s["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, [1, 2]);
    assert_ne!(all[0]["input_fingerprint"], all[1]["input_fingerprint"]);
    let text = c.ok(&["predictions", "show", id]);
    assert!(text.contains(&format!("{id} prediction set v2")), "{text}");

    // Over HTTP, doctors get exactly these stored sets, and only for their patients.
    crate::serve::doctors_are_served_the_stored_sets(&c, &models, &r);
}

#[test]
fn predict_reports_bad_patients_and_goes_on() {
    let models = repo_models();
    let c = Carelens::new();
    c.ok(&["generate", "--patients", "60", "--seed", "3"]);
    let all = c.json(&["--models", &models, "predict", "--no-heatmaps"]);
    let done = all["new_sets"].as_u64().unwrap() + all["no_sources"].as_u64().unwrap();
    assert_eq!(done, 60, "{all}");
    assert!(all["evaluation"].as_array().is_some_and(|e| !e.is_empty()), "{all}");

    // A well-formed Health ID nobody has: reported by id, exit 0, nothing else touched.
    let unknown = carelens_domain::HealthId::from_number(987_654_321).to_string();
    let r = c.json(&["--models", &models, "predict", "--patients", &unknown]);
    assert_eq!(r["failed"][0]["patient"], unknown.as_str());
    assert_eq!(r["failed"][0]["reason"], "unknown patient");
    assert_eq!(r["new_sets"], 0);
    let e = c.fails(&["predictions", "show", &unknown], 1);
    assert!(e.contains("carelens predict --patients"), "{e}");

    let e = c.fails(&["--models", &models, "predict", "--patients", "not-an-id"], 1);
    assert!(e.contains("--patients \"not-an-id\""), "{e}");
    // A registry without models says what to do.
    let empty = c.dir.path().join("empty-registry");
    std::fs::create_dir_all(&empty).unwrap();
    let e = c.fails(&["--models", empty.to_str().unwrap(), "predict"], 1);
    assert!(e.contains("carelens train"), "{e}");
}
