//! `carelens export analytics` and `carelens kpi` on a generated population, every output
//! format, bad input, and the analysts' notebooks executed headless against the snapshot.

use crate::Carelens;

#[test]
fn export_analytics_then_every_kpi_in_every_format() {
    let c = Carelens::new();
    c.ok(&["generate", "--patients", "300"]);
    // Before an export, KPIs say what to do.
    let err = c.fails(&["kpi", "run", "prevalence"], 1);
    assert!(err.contains("carelens export analytics"), "{err}");
    // The demo on the same population adds images, prediction sets and its own snapshot.
    let models = super::predict::repo_models();
    let demo = c.json(&["--models", &models, "demo", "--no-serve"]);
    assert!(demo["analytics"]["rows"].as_u64().unwrap() > 5000, "{}", demo["analytics"]);

    let out = c.dir.path().join("snapshot");
    let report = c.json(&["export", "analytics", "--out", out.to_str().unwrap()]);
    let tables: Vec<(String, u64)> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t[0].as_str().unwrap().to_owned(), t[1].as_u64().unwrap()))
        .collect();
    assert!(tables.contains(&("patients".into(), 300)), "{tables:?}");
    assert!(tables.iter().any(|(n, rows)| n == "predictions" && *rows > 1000), "{tables:?}");
    assert!(tables.iter().any(|(n, rows)| n == "events" && *rows > 4000), "{tables:?}");
    assert!(out.join("manifest.json").is_file());
    // History events by kind and year, appointments by year and month.
    assert!(out.join("events/kind=diagnosis").read_dir().unwrap().any(|e| {
        let e = e.unwrap();
        e.file_name().to_str().unwrap().starts_with("year=") && e.path().join("part-00000.parquet").is_file()
    }));
    assert!(out.join("appointments").read_dir().unwrap().all(|e| {
        e.unwrap().path().read_dir().unwrap().all(|m| m.unwrap().file_name().to_str().unwrap().starts_with("month="))
    }));

    // Every KPI runs on the recorded snapshot with its defaults, and the JSON says how.
    let list = c.json(&["kpi", "list"]);
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert!(names.len() >= 14, "{names:?}");
    for name in &names {
        let r = c.json(&["kpi", "run", name]);
        assert_eq!(r["kpi"], *name);
        assert_eq!(r["k"], 11);
        for row in r["rows"].as_array().unwrap() {
            if row["suppressed"].as_bool().unwrap() {
                assert!(row["value"].is_null() && row["numerator"].is_null(), "{name}: {row}");
            }
        }
    }
    // The same KPI from the --out copy and from the object store agree.
    let a = c.json(&["kpi", "run", "waiting_time", "--by", "insurance"]);
    let b = c.json(&["kpi", "run", "waiting_time", "--by", "insurance", "--snapshot", out.to_str().unwrap()]);
    assert_eq!(a["rows"], b["rows"]);
    assert!(a["rows"].as_array().unwrap().iter().any(|r| r["insurance"] == "statutory" && r["value"].is_number()));

    // Table, CSV, Parquet and a chart.
    let table = c.ok(&["kpi", "run", "vaccination_coverage"]);
    assert!(table.contains("covid19_2") && table.contains('%'), "{table}");
    let csv = c.ok(&["kpi", "run", "prevalence", "--by", "sex", "--format", "csv"]);
    assert!(csv.starts_with("code,chapter,sex,value,ci_low,ci_high,numerator,denominator,suppressed\n"), "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.ends_with(",true") || l.ends_with(",false")));
    let parquet = c.dir.path().join("incidence.parquet");
    let chart = c.dir.path().join("incidence.svg");
    c.ok(&[
        "kpi",
        "run",
        "incidence",
        "--period",
        "year",
        "--format",
        "parquet",
        "--out",
        parquet.to_str().unwrap(),
        "--chart",
        chart.to_str().unwrap(),
    ]);
    assert!(std::fs::read(&parquet).unwrap().starts_with(b"PAR1"));
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.contains("<svg") && svg.contains("Incidence"), "chart drawn");
    let shown = c.ok(&["kpi", "show", "prevalence_std"]);
    assert!(shown.contains("European Standard Population") && shown.contains("SELECT"), "{shown}");

    // Bad input: named, with what to do; nothing printed to stdout.
    let err = c.fails(&["kpi", "run", "prevalance"], 1);
    assert!(err.contains("unknown KPI `prevalance`") && err.contains("prevalence"), "{err}");
    let err = c.fails(&["kpi", "run", "prevalence", "--by", "specialty"], 1);
    assert!(err.contains("cannot be stratified by `specialty`"), "{err}");
    let err = c.fails(&["kpi", "run", "no_show_rate", "--from", "2026-05-01", "--to", "2026-01-01"], 1);
    assert!(err.contains("empty date range"), "{err}");
    let err = c.fails(&["kpi", "run", "incidence", "--period", "week"], 1);
    assert!(err.contains("unknown period `week`"), "{err}");
    let err = c.fails(&["kpi", "run", "prevalence", "--format", "parquet"], 1);
    assert!(err.contains("--out"), "{err}");
    let err = c.fails(&["export", "analytics", "--out", out.to_str().unwrap()], 1);
    assert!(err.contains("not empty"), "{err}");

    notebooks_run_against(&out);
}

/// Runs both notebooks in `notebooks/` headless against the snapshot when a Python with
/// polars, matplotlib and nbclient is given (`cargo xtask test` makes one).
fn notebooks_run_against(snapshot: &std::path::Path) {
    let Some(python) = std::env::var_os("CARELENS_NOTEBOOK_PYTHON") else {
        assert!(
            std::env::var_os("CARELENS_REQUIRE_SERVERS").is_none(),
            "CARELENS_NOTEBOOK_PYTHON must name a Python with polars, matplotlib and nbclient (cargo xtask test sets it)"
        );
        eprintln!("SKIPPED: notebooks (set CARELENS_NOTEBOOK_PYTHON; cargo xtask test does)");
        return;
    };
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    for nb in ["population-overview.ipynb", "model-monitoring.ipynb"] {
        let path = root.join("notebooks").join(nb);
        let out = snapshot.parent().unwrap().join(nb);
        let script = "import sys, nbformat, nbclient\n\
            nb = nbformat.read(sys.argv[1], as_version=4)\n\
            nbclient.NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': sys.argv[3]}}).execute()\n\
            nbformat.write(nb, sys.argv[2])\n";
        let run = std::process::Command::new(&python)
            .args(["-c", script])
            .arg(&path)
            .arg(&out)
            .arg(snapshot.parent().unwrap())
            .env("CARELENS_SNAPSHOT", snapshot)
            .output()
            .unwrap();
        assert!(run.status.success(), "{nb} failed:\n{}", String::from_utf8_lossy(&run.stderr));
        // Every code cell ran and at least one drew a figure.
        let done: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let cells = done["cells"].as_array().unwrap();
        let images = cells
            .iter()
            .flat_map(|c| c["outputs"].as_array().into_iter().flatten())
            .filter(|o| o["data"]["image/png"].is_string())
            .count();
        assert!(images >= 2, "{nb}: {images} figures");
        eprintln!("notebook ran: {}", out.display());
    }
}

/// The catalogue's SQL is portable: Apache Spark (local mode) runs two KPIs' queries on the
/// same snapshot and counts what carelens counts, when a Python with pyspark is given
/// (`cargo xtask test` makes one).
#[test]
fn spark_runs_the_same_kpi_sql_and_agrees() {
    let Some(python) = std::env::var_os("CARELENS_SPARK_PYTHON") else {
        assert!(
            std::env::var_os("CARELENS_REQUIRE_SERVERS").is_none(),
            "CARELENS_SPARK_PYTHON must name a Python with pyspark (cargo xtask test sets it)"
        );
        eprintln!("SKIPPED: Spark cross-check (set CARELENS_SPARK_PYTHON; cargo xtask test does)");
        return;
    };
    let c = Carelens::new();
    c.ok(&["generate", "--patients", "300", "--seed", "5"]);
    let snap = c.dir.path().join("snapshot");
    c.json(&["export", "analytics", "--out", snap.to_str().unwrap()]);
    let script = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("e2e/spark_check.py");
    for (kpi, by, keys) in
        [("prevalence", "sex", vec!["code", "sex"]), ("no_show_rate", "specialty", vec!["specialty"])]
    {
        let ours = c.json(&["kpi", "run", kpi, "--by", by, "--k", "1", "--snapshot", snap.to_str().unwrap()]);
        let sql_file = c.dir.path().join(format!("{kpi}.sql"));
        std::fs::write(&sql_file, ours["sql"].as_str().unwrap()).unwrap();
        let out = std::process::Command::new(&python).arg(&script).arg(&snap).arg(&sql_file).output().unwrap();
        assert!(out.status.success(), "spark on {kpi}: {}", String::from_utf8_lossy(&out.stderr));
        let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let key =
            |r: &serde_json::Value| keys.iter().map(|k| r[*k].as_str().unwrap_or("").to_owned()).collect::<Vec<_>>();
        let count = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
        let ours_rows = ours["rows"].as_array().unwrap();
        let theirs_rows = theirs.as_array().unwrap();
        assert_eq!(ours_rows.len(), theirs_rows.len(), "{kpi}: cells");
        assert!(!ours_rows.is_empty());
        for r in ours_rows {
            let t = theirs_rows
                .iter()
                .find(|t| key(t) == key(r))
                .unwrap_or_else(|| panic!("{kpi}: Spark has no {:?}", key(r)));
            assert_eq!(count(&r["numerator"]), count(&t["numerator"]), "{kpi} {:?}", key(r));
            assert_eq!(count(&r["denominator"]), count(&t["denominator"]), "{kpi} {:?}", key(r));
        }
        eprintln!("spark agrees on {kpi}: {} cells", ours_rows.len());
    }
}
