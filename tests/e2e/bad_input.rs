use crate::Carelens;

#[test]
fn unknown_arguments_are_usage_errors() {
    let c = Carelens::new();
    let err = c.fails(&["generate", "--bogus"], 2);
    assert!(err.contains("unexpected argument '--bogus'"), "{err}");
    assert!(err.contains("Usage:"), "{err}");
    let err = c.fails(&["frobnicate"], 2);
    assert!(err.contains("unrecognized subcommand 'frobnicate'"), "{err}");
    let err = c.fails(&["generate", "--patients", "0"], 2);
    assert!(err.contains("--patients"), "{err}");
    let err = c.fails(&["generate", "--as-of", "2026-13-01"], 2);
    assert!(err.contains("--as-of"), "{err}");
    let err = c.fails(&["generate", "--as-of", "2999-01-01"], 1);
    assert!(err.contains("--as-of 2999-01-01 is in the future"), "{err}");
}

#[test]
fn unwritable_data_dir_says_what_to_do() {
    let c = Carelens::new();
    let file = c.dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let bad = file.join("data");
    let err = c.fails(&["generate", "--patients", "5", "--data-dir", bad.to_str().unwrap()], 1);
    assert!(err.contains(&format!("cannot use data directory {}", bad.display())), "{err}");
    assert!(err.contains("choose a writable directory with --data-dir or CARELENS_DATA_DIR"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"x", "nothing else damaged");
}

#[test]
fn a_mistyped_data_dir_is_not_an_empty_population() {
    let c = Carelens::new();
    c.ok(&["generate", "--patients", "20"]);
    let typo = c.dir.path().join("dta");
    let err = c.fails(&["stats", "--data-dir", typo.to_str().unwrap()], 1);
    assert!(err.contains(&format!("no carelens data in {}", typo.display())), "{err}");
    assert!(err.contains("carelens demo") && err.contains("--init"), "says what to do: {err}");
    assert!(!typo.exists(), "nothing was created");
    // Under --json the error is the one JSON document on stdout.
    let out = c.run(&["--json", "stats", "--data-dir", typo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("no carelens data"), "{v}");
    // So is a usage error.
    let out = c.run(&["--json", "generate", "--as-of", "01.10.2026"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("YYYY-MM-DD"), "dates say their format: {v}");
}

#[test]
fn an_unreachable_mongodb_is_one_line_with_the_url() {
    let c = Carelens::new();
    let url = format!("mongodb://carelens:secret@127.0.0.1:{}/demo", crate::free_port());
    let err = c.fails(&["--store", &url, "stats"], 1);
    let port = url.rsplit(':').next().unwrap().trim_end_matches("/demo");
    assert!(err.contains(&format!("cannot reach MongoDB at mongodb://127.0.0.1:{port}/demo")), "{err}");
    assert!(!err.contains("secret"), "credentials redacted: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line, not the driver's topology: {err}");
}

#[test]
fn newer_schema_is_refused_untouched() {
    let c = Carelens::new();
    c.ok(&["generate", "--patients", "20"]);
    let db = c.data_dir().join("carelens.sqlite");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
        // Fold the WAL into the file so the comparison below sees everything.
        conn.pragma_update(None, "wal_checkpoint", "TRUNCATE").unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let err = c.fails(&["stats"], 1);
    assert!(err.contains("written by a newer carelens (schema version 999"), "{err}");
    assert!(err.contains("upgrade carelens or point --data-dir elsewhere"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[test]
fn corrupted_store_is_refused_untouched() {
    let c = Carelens::new();
    std::fs::create_dir_all(c.data_dir()).unwrap();
    let db = c.data_dir().join("carelens.sqlite");
    let junk: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&db, &junk).unwrap();
    let err = c.fails(&["demo", "--no-serve"], 1);
    assert!(err.contains("is not a readable carelens database"), "{err}");
    assert!(err.contains("restore it from a backup"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), junk);
}
