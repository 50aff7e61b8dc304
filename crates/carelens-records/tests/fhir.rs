//! FHIR R4 import and export: every Synthea bundle in ../shared imports without a problem, every
//! resource is accounted for, and import → export → import gives back exactly what was stored
//! (embedded store; MongoDB for a subset). Broken bundles are reported precisely.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use carelens_domain::{Actor, ActorRole, HistoryEntry};
use carelens_records::fhir::{self, BundleReport, ImportSummary};
use carelens_store::{HistoryFilter, MongoStore, PageRequest, SqliteStore, Store};
use serde_json::{Value, json};

fn actor() -> Actor {
    Actor { role: ActorRole::Admin, id: "fhir-test".into() }
}

/// The Synthea bundles, unpacked into a temporary directory, sorted by name.
fn synthea() -> Option<(tempfile::TempDir, Vec<PathBuf>)> {
    let dir = tempfile::tempdir().unwrap();
    let files = carelens_testkit::synthea_bundles(dir.path())?;
    Some((dir, files))
}

/// Resources per type, counted straight from the files.
fn count_resources(files: &[PathBuf]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for f in files {
        let b: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        for e in b["entry"].as_array().unwrap() {
            *counts.entry(e["resource"]["resourceType"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    counts
}

fn sorted(mut v: Vec<HistoryEntry>) -> Vec<HistoryEntry> {
    v.sort_by_key(|e| e.id.to_string());
    v
}

/// Every resource of `files` is imported, skipped for a stated reason or counted as a type
/// carelens does not import; none is a problem.
fn check_accounted(summary: &ImportSummary, files: &[PathBuf]) {
    assert_eq!(summary.failed_files, 0, "{:?}", summary.outcomes.iter().find(|o| o.error.is_some()));
    assert!(
        summary.total.problems.is_empty(),
        "problems: {:#?}",
        &summary.total.problems[..summary.total.problems.len().min(10)]
    );
    let t = &summary.total;
    for (kind, n) in count_resources(files) {
        let skipped: u64 = t.skipped.iter().filter(|(k, _)| k.starts_with(&format!("{kind} ("))).map(|(_, v)| v).sum();
        let got =
            t.imported.get(&kind).copied().unwrap_or(0) + t.not_imported.get(&kind).copied().unwrap_or(0) + skipped;
        assert_eq!(got, n, "{kind}: {n} in the files, {got} accounted for");
    }
}

/// Export every patient, import the bundle again: the same patient and entries; then store it
/// in `second` and export again: the same bundle (but for its timestamp and the audit trail).
async fn round_trip(first: &dyn Store, second: &dyn Store) -> (usize, usize) {
    let (mut patients, mut entries) = (0, 0);
    let mut page = PageRequest::first(500);
    loop {
        let got = first.list_patients(page.clone()).await.unwrap();
        for p in &got.items {
            let stored = sorted(first.history(&p.id, &HistoryFilter::default()).await.unwrap());
            let bundle = fhir::export_patient(first, &p.id, &actor()).await.unwrap().unwrap();
            let back = fhir::parse_bundle(&serde_json::to_vec(&bundle).unwrap()).unwrap();
            assert!(back.report.problems.is_empty(), "{:?}", back.report.problems);
            assert_eq!(back.patients.len(), 1);
            assert!(back.patients[0] == *p, "patient {} changed on the round trip", p.id);
            let again = sorted(back.entries.clone());
            assert_eq!(again.len(), stored.len(), "patient {}", p.id);
            for (a, b) in stored.iter().zip(&again) {
                assert_eq!(a, b, "entry {} of patient {} changed on the round trip", a.id, p.id);
            }
            second
                .apply(carelens_store::WriteBatch {
                    patients: back.patients,
                    history: back.entries,
                    ..Default::default()
                })
                .await
                .unwrap();
            let re = fhir::export_patient(second, &p.id, &actor()).await.unwrap().unwrap();
            assert_eq!(strip(&bundle), strip(&re), "the second export of {} differs", p.id);
            patients += 1;
            entries += stored.len();
        }
        match got.next {
            Some(next) => page = next,
            None => break,
        }
    }
    (patients, entries)
}

/// A bundle without its timestamp and AuditEvents (which record the exports themselves).
fn strip(bundle: &Value) -> Value {
    let mut b = bundle.clone();
    b.as_object_mut().unwrap().remove("timestamp");
    let kept: Vec<Value> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["resourceType"] != "AuditEvent")
        .cloned()
        .collect();
    b["entry"] = json!(kept);
    b
}

fn print_report(what: &str, t: &BundleReport) {
    eprintln!("{what}: imported {:?}", t.imported);
    eprintln!("{what}: history entries {}", t.entries);
    eprintln!("{what}: skipped {:?}", t.skipped);
    eprintln!("{what}: not imported {:?}", t.not_imported);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_synthea_bundle_imports_and_round_trips_on_the_embedded_store() {
    let Some((_dir, files)) = synthea() else { return };
    assert!(files.len() >= 300, "expected the 310 Synthea bundles, found {}", files.len());
    let tmp = tempfile::tempdir().unwrap();
    let first: Arc<dyn Store> = Arc::new(SqliteStore::open(tmp.path().join("a.sqlite")).unwrap());
    let t0 = std::time::Instant::now();
    let summary = fhir::import_files(first.as_ref(), &files, &actor(), |_| {}).await;
    eprintln!("imported {} bundles in {:.1} s", files.len(), t0.elapsed().as_secs_f64());
    print_report("synthea", &summary.total);
    check_accounted(&summary, &files);
    let patients = summary.total.imported["Patient"];
    assert_eq!(first.counts().await.unwrap().patients, patients);

    // Importing again changes nothing: same ids, upserted.
    let before = first.counts().await.unwrap();
    let again = fhir::import_files(first.as_ref(), &files[..20], &actor(), |_| {}).await;
    assert_eq!(again.failed_files, 0);
    let after = first.counts().await.unwrap();
    assert_eq!((before.patients, before.history_entries), (after.patients, after.history_entries));

    let second: Arc<dyn Store> = Arc::new(SqliteStore::open(tmp.path().join("b.sqlite")).unwrap());
    let t0 = std::time::Instant::now();
    let (n, entries) = round_trip(first.as_ref(), second.as_ref()).await;
    eprintln!("round trip: {n} patients, {entries} entries identical ({:.1} s)", t0.elapsed().as_secs_f64());
    assert_eq!(n as u64, patients);
    assert_eq!(entries as u64, summary.total.entries);
}

#[tokio::test(flavor = "multi_thread")]
async fn synthea_bundles_round_trip_on_mongodb() {
    let Some(server) = carelens_testkit::MongoServer::start().await else { return };
    let Some((_dir, files)) = synthea() else { return };
    let files: Vec<PathBuf> = files.into_iter().step_by(10).collect();
    let first: Arc<dyn Store> = Arc::new(MongoStore::connect(&server.url("fhir_a")).await.unwrap());
    let summary = fhir::import_files(first.as_ref(), &files, &actor(), |_| {}).await;
    check_accounted(&summary, &files);
    let second: Arc<dyn Store> = Arc::new(MongoStore::connect(&server.url("fhir_b")).await.unwrap());
    let (n, entries) = round_trip(first.as_ref(), second.as_ref()).await;
    assert_eq!(n as u64, summary.total.imported["Patient"]);
    assert_eq!(entries as u64, summary.total.entries);
}

fn bundle(entries: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ "resourceType": "Bundle", "type": "collection", "entry": entries })).unwrap()
}

fn patient() -> Value {
    json!({ "fullUrl": "urn:uuid:p1", "resource": {
        "resourceType": "Patient", "id": "p1", "name": [{ "family": "Doe", "given": ["Jo"] }],
        "birthDate": "1970-01-01", "gender": "female" } })
}

#[test]
fn broken_bundles_are_reported_precisely_and_the_rest_imports() {
    let condition = |id: &str, subject: &str, code: &str| {
        json!({ "resource": { "resourceType": "Condition", "id": id, "subject": { "reference": subject },
            "code": { "coding": [{ "system": "http://snomed.info/sct", "code": code, "display": "x" }] },
            "onsetDateTime": "2020-02-03T10:00:00Z" } })
    };
    let got = fhir::parse_bundle(&bundle(json!([
        patient(),
        condition("ok", "urn:uuid:p1", "44054006"),
        condition("dangling", "Patient/nobody", "44054006"),
        { "resource": { "resourceType": "Frobnicator", "id": "f1" } },
        { "resource": { "resourceType": "Encounter", "id": "e1" } },
        { "resource": { "resourceType": "Observation", "id": "o1", "subject": { "reference": "urn:uuid:p1" },
            "status": "final", "effectiveDateTime": "2020-02-03",
            "code": { "coding": [{ "system": "http://loinc.org", "code": "4548-5" }] },
            "valueQuantity": { "value": 6.1, "unit": "%" } } },
        { "resource": { "resourceType": "Observation", "id": "o2", "subject": { "reference": "urn:uuid:p1" },
            "status": "final", "effectiveDateTime": "2020-02-03",
            "code": { "coding": [{ "system": "http://loinc.org", "code": "4548-4" }] },
            "valueQuantity": { "value": 61.0, "unit": "%" } } },
        condition("unmapped", "urn:uuid:p1", "999999999"),
    ])))
    .unwrap();
    let problems: Vec<String> = got.report.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "entry[2] Condition/dangling: subject.reference: `Patient/nobody` names no Patient in this bundle",
            "entry[3] Frobnicator/f1: resourceType: `Frobnicator` is not a FHIR R4 resource type",
            "entry[5] Observation/o1: code: invalid loinc: check digit does not match",
            "entry[6] Observation/o2: observation.value: above the physically possible maximum 25 % for LOINC 4548-4",
        ],
    );
    assert_eq!(got.report.not_imported["Encounter"], 1);
    assert_eq!(got.entries.len(), 2, "the good condition and the unmapped one");
    let unmapped =
        got.entries.iter().find(|e| e.source_coding.as_ref().is_some_and(|c| c.code == "999999999")).unwrap();
    assert_eq!(unmapped.code(), Some("R69"), "unmapped SNOMED CT is stored as R69 with its coding kept");

    for (bytes, expected) in [
        (&br#"{"resourceType": "Bundle", "entry": [ {"#[..], "not JSON at line 1"),
        (&br#"{"resourceType": "Patient"}"#[..], "expected resourceType `Bundle`, found `Patient`"),
    ] {
        let err = fhir::parse_bundle(bytes).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_file_is_reported_and_the_others_import() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.json");
    std::fs::write(&good, bundle(json!([patient()]))).unwrap();
    let truncated = tmp.path().join("truncated.json");
    std::fs::write(&truncated, &bundle(json!([patient()]))[..40]).unwrap();
    let huge = tmp.path().join("huge.json");
    std::fs::File::create(&huge).unwrap().set_len(fhir::MAX_BUNDLE_BYTES + 1).unwrap();
    let store = SqliteStore::open(tmp.path().join("s.sqlite")).unwrap();
    let files = vec![truncated.clone(), huge.clone(), good];
    let summary = fhir::import_files(&store, &files, &actor(), |_| {}).await;
    assert_eq!((summary.files, summary.failed_files), (3, 2));
    assert!(
        summary.outcomes[0].error.as_deref().unwrap().starts_with("not JSON at line 1, column 40"),
        "{:?}",
        summary.outcomes[0]
    );
    assert!(summary.outcomes[1].error.as_deref().unwrap().contains("limit"), "{:?}", summary.outcomes[1]);
    assert_eq!(store.counts().await.unwrap().patients, 1);
}
