use crate::Carelens;

#[test]
fn help_explains_every_command() {
    let c = Carelens::new();
    let help = c.ok(&["--help"]);
    for word in ["demo", "generate", "stats", "notify", "availability", "--data-dir", "--json", "CARELENS_DATA_DIR"] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
    let gen_help = c.ok(&["generate", "--help"]);
    for word in ["--patients", "--seed", "--as-of", "same population"] {
        assert!(gen_help.contains(word), "generate --help lacks {word}:\n{gen_help}");
    }
    assert!(c.ok(&["demo", "--help"]).contains("--no-serve"));
    assert!(c.ok(&["--version"]).starts_with("carelens "));
}

#[test]
fn demo_runs_then_reuses_its_population() {
    let c = Carelens::new();
    let first = c.json(&["demo", "--no-serve", "--patients", "400"]);
    assert_eq!(first["population"]["reused"], false);
    assert_eq!(first["population"]["summary"]["patients"], 400);
    assert_eq!(first["stats"]["counts"]["patients"], 400);
    assert_eq!(first["serve"], "skipped (--no-serve)");
    // Availability from both sample feeds is merged, and a few earliest openings are booked.
    let feeds = first["booking"]["refresh"]["feeds"].as_array().unwrap();
    assert_eq!(feeds.len(), 2, "{feeds:?}");
    let booked = first["booking"]["bookings"].as_array().unwrap();
    assert!(!booked.is_empty(), "demo booked nothing: {}", first["booking"]);
    assert!(booked.iter().all(|b| b["new"] == true));
    // Their confirmations are written as .eml files (no mail server needed), once.
    assert_eq!(first["booking"]["mail"]["sent"].as_u64(), Some(booked.len() as u64));
    let mail_dir = c.data_dir().join("mail");
    let emls = || {
        std::fs::read_dir(&mail_dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "eml"))
            .count()
    };
    assert_eq!(emls(), booked.len());
    let second = c.json(&["demo", "--no-serve"]);
    assert_eq!(second["population"]["reused"], true);
    assert_eq!(second["population"]["summary"]["hash"], first["population"]["summary"]["hash"]);
    // The same bookings again (same idempotency keys), none twice.
    let again = second["booking"]["bookings"].as_array().unwrap();
    assert_eq!(again.len(), booked.len());
    for (a, b) in again.iter().zip(booked) {
        assert_eq!((&a["appointment"], &a["new"]), (&b["appointment"], &serde_json::Value::Bool(false)));
    }
    assert_eq!(second["booking"]["mail"]["sent"], 0);
    assert_eq!(emls(), booked.len());
    // Human output goes to stdout, tells what happened.
    let text = c.ok(&["demo", "--no-serve"]);
    assert!(text.contains("Population already in") && text.contains("Conditions"), "{text}");
}

#[test]
fn stats_on_an_empty_store_says_what_to_do() {
    let c = Carelens::new();
    // No store yet: refused (a mistyped --data-dir must not look like an empty population).
    let err = c.fails(&["stats"], 1);
    assert!(err.contains("no carelens data in") && err.contains("carelens demo"), "{err}");
    let text = c.ok(&["--init", "stats"]);
    assert!(text.contains("The store is empty. Run `carelens demo`"), "{text}");
    let json = c.json(&["stats"]);
    assert_eq!(json["counts"]["patients"], 0);
}

#[test]
fn data_dir_flag_beats_the_environment() {
    let c = Carelens::new();
    let elsewhere = c.dir.path().join("elsewhere");
    let out = c.json(&["generate", "--patients", "50", "--data-dir", elsewhere.to_str().unwrap()]);
    assert_eq!(out["data_dir"], elsewhere.to_str().unwrap());
    assert!(elsewhere.join("carelens.sqlite").is_file());
    assert!(!c.data_dir().join("carelens.sqlite").exists());
}
