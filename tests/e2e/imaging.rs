//! Imaging end to end: synthetic studies in `demo`, and `ingest images` on the real pydicom
//! files with garbage mixed in.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use crate::Carelens;

fn store_query(c: &Carelens, sql: &str) -> Vec<String> {
    let db = rusqlite::Connection::open(c.data_dir().join("carelens.sqlite")).unwrap();
    let mut stmt = db.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect()
}

fn instances_in_store(c: &Carelens) -> u64 {
    store_query(
        c,
        "SELECT CAST(COALESCE(SUM(json_array_length(json_extract(body, '$.instances'))), 0) AS TEXT)
         FROM history WHERE category = 'imaging'",
    )[0]
    .parse()
    .unwrap()
}

#[test]
fn demo_renders_labelled_studies_and_ingests_them_once() {
    let c = Carelens::new();
    let r = c.json(&["demo", "--patients", "400", "--no-serve"]);
    let images = &r["images"];
    let files = images["files"].as_u64().unwrap();
    assert!(files > 20, "{images}");
    assert_eq!(images["ingest"]["ingested"].as_u64().unwrap(), files, "{}", images["ingest"]["failed"]);
    assert_eq!(images["ingest"]["failed"], 0);
    assert!(images["normal_images"].as_u64().unwrap() > 0, "some images are normal");
    assert!(images["findings"].as_object().is_some_and(|f| !f.is_empty()), "some images have findings");
    assert_eq!(instances_in_store(&c), files);
    // Labels are stored per image.
    let labelled = store_query(
        &c,
        "SELECT CAST(COUNT(*) AS TEXT) FROM history, json_each(json_extract(body, '$.instances')) AS i
         WHERE category = 'imaging' AND json_array_length(json_extract(i.value, '$.findings')) > 0",
    );
    assert!(labelled[0].parse::<u64>().unwrap() > 0);

    // Again: nothing new to render; ingesting the folder again stores nothing new.
    let again = c.json(&["demo", "--no-serve"]);
    assert_eq!(again["images"]["studies"], 0);
    let folder = images["folder"].as_str().unwrap();
    let re = c.json(&["ingest", "images", folder]);
    assert_eq!((re["ingested"].as_u64(), re["duplicate"].as_u64()), (Some(0), Some(files)));
    assert_eq!(instances_in_store(&c), files);

    // A de-identified export: every image, no names or Health IDs left in any byte.
    let out = c.dir.path().join("export");
    let out_s = out.to_str().unwrap();
    let err = c.fails(&["export", "images", "--deidentify", "--out", out_s], 1);
    assert!(err.contains("CARELENS_DEID_SECRET"), "{err}");
    let err = c.fails(&["export", "images", "--out", out_s], 1);
    assert!(err.contains("--deidentify"), "{err}");
    let run = c
        .command()
        .env("CARELENS_DEID_SECRET", "e2e secret, not a real one")
        .args(["--json", "export", "images", "--deidentify", "--out", out_s])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["exported"].as_u64(), Some(files), "{report}");
    let labels = std::fs::read_to_string(out.join("labels.csv")).unwrap();
    assert_eq!(labels.lines().count() as u64, files + 1);
    let names = store_query(&c, "SELECT json_extract(body, '$.name.family') FROM patients");
    let ids = store_query(&c, "SELECT id FROM patients");
    // Every run of letters/digits (and UTF-8) in every exported file, checked against every
    // patient's family name and Health ID.
    let mut tokens = std::collections::HashSet::new();
    for line in labels.lines().skip(1) {
        let rel = line.split(',').nth(3).unwrap();
        let bytes = std::fs::read(out.join(rel)).unwrap();
        for t in bytes.split(|b| !(b.is_ascii_alphanumeric() || *b >= 0x80)).filter(|t| t.len() >= 4) {
            tokens.insert(t.to_vec());
        }
    }
    for s in names.iter().chain(&ids).filter(|s| s.len() >= 4) {
        assert!(!tokens.contains(s.as_bytes()), "{s} left in the export");
    }
}

fn pydicom_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CARELENS_PYDICOM_DIR").map(PathBuf::from);
    if dir.is_none() {
        assert!(std::env::var_os("CARELENS_REQUIRE_SERVERS").is_none(), "CARELENS_PYDICOM_DIR not set");
        eprintln!("SKIPPED: CARELENS_PYDICOM_DIR not set (run `cargo xtask test`)");
    }
    dir
}

#[test]
fn ingest_takes_the_pydicom_files_and_reports_garbage_per_file() {
    let Some(dir) = pydicom_dir() else { return };
    let expected: Vec<Value> = serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let c = Carelens::new();
    c.ok(&["generate", "--patients", "40"]);
    let patients = store_query(&c, "SELECT id FROM patients ORDER BY id");

    // Map every (issuer, PatientID) of the wheel's images to one of our patients.
    let mut pairs = BTreeSet::new();
    for e in &expected {
        if let Some(pid) = e["patient_id"].as_str().filter(|p| !p.is_empty() && !p.contains([',', '"', '\n'])) {
            pairs.insert((e["issuer"].as_str().unwrap_or_default().to_owned(), pid.to_owned()));
        }
    }
    let mut map = String::from("issuer,patient_id,health_id\n");
    for (i, (issuer, pid)) in pairs.iter().enumerate() {
        map.push_str(&format!("{issuer},{pid},{}\n", patients[i % patients.len()]));
    }
    let work = c.dir.path().join("work");
    std::fs::create_dir_all(work.join("garbage")).unwrap();
    std::fs::write(work.join("map.csv"), map).unwrap();

    // Garbage beside real files: each must be reported, none may stop the batch.
    let mr = std::fs::read(dir.join("files/pydicom/data/test_files/MR_small.dcm")).unwrap();
    let g = work.join("garbage");
    std::fs::write(g.join("truncated.dcm"), &mr[..mr.len() / 2]).unwrap();
    std::fs::write(g.join("empty.dcm"), b"").unwrap();
    std::fs::write(g.join("random.bin"), (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect::<Vec<_>>()).unwrap();
    std::fs::write(g.join("notes.txt"), b"not an image").unwrap();
    let mut hostile = vec![0u8; 128];
    hostile.extend(b"DICM");
    hostile.extend([0x02, 0x00, 0x10, 0x00, b'U', b'I', 20, 0]);
    hostile.extend(b"1.2.840.10008.1.2.1\0");
    hostile.extend([0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0, 0xF0, 0xFF, 0xFF, 0xFF]); // 4 GB pixel data
    std::fs::write(g.join("hostile.dcm"), &hostile).unwrap();
    // A PNG export with its manifest row.
    let png = image::GrayImage::from_fn(64, 48, |x, y| image::Luma([((x * 4 + y) % 256) as u8]));
    png.save(g.join("export.png")).unwrap();
    std::fs::write(
        work.join("manifest.csv"),
        format!(
            "file,health_id,modality,body_part,study_date\ngarbage/export.png,{},xray,chest,2026-03-01\n",
            patients[0]
        ),
    )
    .unwrap();

    let files = dir.join("files");
    let (map_csv, manifest_csv) = (work.join("map.csv"), work.join("manifest.csv"));
    let args = [
        "ingest",
        "images",
        files.to_str().unwrap(),
        g.to_str().unwrap(),
        "--patient-map",
        map_csv.to_str().unwrap(),
        "--manifest",
        manifest_csv.to_str().unwrap(),
    ];
    let mut json_args = vec!["--json"];
    json_args.extend_from_slice(&args);
    let out = c.run(&json_args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ingested = report["ingested"].as_u64().unwrap();
    let duplicate = report["duplicate"].as_u64().unwrap();
    // The wheels hold the same SOP instance in several transfer syntaxes: the first is
    // ingested, the others are duplicates.
    assert!(ingested + duplicate >= 135 && ingested >= 80, "only {ingested} + {duplicate}: {}", report["failed"]);
    let by_name = |name: &str| {
        report["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"].as_str().unwrap().ends_with(name))
            .cloned()
            .unwrap()
    };
    for (name, why) in [
        ("/truncated.dcm", "truncated"),
        ("/empty.dcm", "not DICOM Part 10"),
        ("/random.bin", "not DICOM Part 10"),
        ("/notes.txt", "not DICOM Part 10"),
        ("/hostile.dcm", "declares 4294967280 bytes"),
    ] {
        let f = by_name(name);
        assert_eq!(f["outcome"], "failed", "{f}");
        assert!(f["reason"].as_str().unwrap().contains(why), "{name}: {f}");
    }
    assert_eq!(by_name("/export.png")["outcome"], "ingested");
    for name in
        ["/MR_small_RLE.dcm", "/JPEG2000.dcm", "/MR_small_jpeg_ls_lossless.dcm", "/US1_J2KR.dcm", "/CT_small.dcm"]
    {
        let f = by_name(name);
        assert!(f["outcome"] == "ingested" || f["outcome"] == "duplicate", "{f}");
    }
    assert_eq!(by_name("/DICOMDIR-empty.dcm")["outcome"], "skipped");
    assert_eq!(instances_in_store(&c), ingested);

    // The wheel's patient identifiers never reach the output.
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let in_paths = |p: &str| expected.iter().any(|e| e["file"].as_str().unwrap_or_default().contains(p));
    for (_, pid) in pairs.iter().filter(|(_, p)| p.len() >= 6 && !in_paths(p)) {
        assert!(!all.contains(pid.as_str()), "PatientID {pid} leaked into the output");
    }

    // A DICOMDIR given by path expands to the 31 images it indexes (already stored here).
    let dicomdir = files.join("pydicom/data/test_files/dicomdirtests/DICOMDIR");
    let via_index: Value = serde_json::from_slice(
        &c.run(&["--json", "ingest", "images", dicomdir.to_str().unwrap(), "--patient-map", map_csv.to_str().unwrap()])
            .stdout,
    )
    .unwrap();
    assert_eq!(via_index["files"].as_array().unwrap().len(), 31, "{via_index}");
    assert_eq!(via_index["ingested"], 0);

    // Re-ingesting is a no-op.
    let again: Value = serde_json::from_slice(&c.run(&json_args).stdout).unwrap();
    assert_eq!((again["ingested"].as_u64(), again["duplicate"].as_u64()), (Some(0), Some(ingested + duplicate)));
    assert_eq!(instances_in_store(&c), ingested);
}
