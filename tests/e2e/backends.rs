use carelens_testkit::{MongoServer, S3Server};

use crate::Carelens;

/// `carelens demo` on MongoDB + S3 gives the same population and counts as on the embedded
/// default; bad settings are named.
#[test]
fn demo_on_mongodb_and_s3_matches_the_embedded_default() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(mongo) = rt.block_on(MongoServer::start()) else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("carelens-e2e");
    let store = mongo.url("e2e");
    let objects = format!("s3://carelens-e2e/demo?endpoint={}&region=eu-central-1", s3.endpoint());
    let c = Carelens::new();
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    let models = root.join("models").to_str().unwrap().to_owned();
    let run = |args: &[&str]| {
        c.command()
            .args(["--store", &store, "--objects", &objects, "--models", &models])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &s3.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &s3.secret_key)
            .output()
            .unwrap()
    };
    let out = run(&["--json", "demo", "--no-serve", "--patients", "300"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let remote: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(remote["stats"]["backend"], "mongodb");
    assert!(remote["stats"]["objects"].as_str().unwrap().starts_with("s3://carelens-e2e/demo"));

    let lc = Carelens::new();
    let local = lc.json(&["--models", &models, "demo", "--no-serve", "--patients", "300"]);
    assert_eq!(remote["population"]["summary"]["hash"], local["population"]["summary"]["hash"]);
    for key in [
        "patients",
        "history_entries",
        "appointments",
        "providers",
        "reviews",
        "history_by_category",
        "appointments_by_status",
        "ground_truth_by_condition",
    ] {
        assert_eq!(remote["stats"]["counts"][key], local["stats"]["counts"][key], "{key}");
    }
    assert_eq!(remote["stats"]["age_bands"], local["stats"]["age_bands"]);
    // Prediction sets in MongoDB, heatmaps in S3: the same sets and the same evaluation.
    let (rp, lp) = (&remote["predictions"], &local["predictions"]);
    assert!(rp["new_sets"].as_u64().unwrap() > 200, "{rp}");
    for key in ["new_sets", "heatmaps", "evaluation"] {
        assert_eq!(rp[key], lp[key], "{key}");
    }
    assert_eq!(remote["example"]["predictions"], local["example"]["predictions"]);

    // Analytics: the snapshot's files went to S3; without the local copy they come back from
    // there, and every KPI is identical to the embedded backend's (pseudonyms differ, results
    // do not).
    std::fs::remove_dir_all(c.data_dir().join("analytics")).unwrap();
    let list = lc.json(&["kpi", "list"]);
    for kpi in list.as_array().unwrap() {
        let name = kpi["name"].as_str().unwrap();
        let out = run(&["--json", "kpi", "run", name, "--k", "5"]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let l = lc.json(&["kpi", "run", name, "--k", "5"]);
        assert_eq!(r, l, "{name} differs between MongoDB + S3 and the embedded store");
        assert!(!r["rows"].as_array().unwrap().is_empty() || name == "confirmation_rate", "{name}: no rows");
    }
    assert!(c.data_dir().join("analytics").exists(), "the snapshot was downloaded from S3");

    // Running again reuses the population stored in MongoDB.
    let again = run(&["--json", "demo", "--no-serve"]);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["population"]["reused"], true);
    assert_eq!(again["predictions"]["new_sets"], 0, "unchanged inputs write no new set");
    assert_eq!(again["predictions"]["unchanged"], rp["new_sets"]);

    // Bad settings name the setting and say what to do.
    let with = |store: &str, objects: &str| {
        let out = c
            .command()
            .args(["--store", store, "--objects", objects, "stats"])
            .env("AWS_ACCESS_KEY_ID", &s3.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &s3.secret_key)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8(out.stderr).unwrap()
    };
    let err = with("postgres://u:pw@h/db", &objects);
    assert!(err.contains("--store postgres://h/db") && err.contains("unsupported scheme `postgres`"), "{err}");
    assert!(!err.contains("pw@"), "{err}");
    let missing = format!("s3://no-such-bucket?endpoint={}", s3.endpoint());
    let err = with(&store, &missing);
    assert!(err.contains("--objects") && err.contains("bucket `no-such-bucket` does not exist"), "{err}");
    let no_creds = c
        .command()
        .args(["--init", "--objects", &objects, "stats"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    let err = String::from_utf8(no_creds.stderr).unwrap();
    assert!(err.contains("AWS_ACCESS_KEY_ID is not set"), "{err}");
}

/// Embedded → MongoDB + S3 → embedded again, with identical checksums at every hop.
#[test]
fn migrate_round_trips_with_identical_checksums() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(mongo) = rt.block_on(MongoServer::start()) else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("migrate");
    let store = mongo.url("migrate");
    let objects = format!("s3://migrate?endpoint={}", s3.endpoint());
    let c = Carelens::new();
    c.ok(&["generate", "--patients", "250", "--seed", "9"]);
    let with_s3 = |args: &[&str]| {
        let out = c
            .command()
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &s3.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &s3.secret_key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let there = with_s3(&["--json", "migrate", "--to-store", &store, "--to-objects", &objects]);
    assert_eq!(there["patients"], 250);
    assert_eq!(there["source_digest"], there["target_digest"]);

    let back_db = c.dir.path().join("back.sqlite");
    let back_objects = c.dir.path().join("back-objects");
    let back = with_s3(&[
        "--json",
        "--store",
        &store,
        "--objects",
        &objects,
        "migrate",
        "--to-store",
        &format!("sqlite://{}", back_db.display()),
        "--to-objects",
        &format!("file://{}", back_objects.display()),
    ]);
    assert_eq!(back["target_digest"], there["source_digest"], "the round trip changed the data");
    let stats = with_s3(&["--json", "--store", &format!("sqlite://{}", back_db.display()), "stats"]);
    assert_eq!(stats["counts"]["patients"], 250);
    assert_eq!(stats["population"]["seed"], 9);
}
