//! A newcomer's first run (issue #23): `carelens demo` from an empty directory outside the
//! checkout, with no `--models`, no keys in the environment and no date pinned. The bundled
//! models give the same evaluations and fused-prediction table as the checkout's `models/`;
//! the demo's own keys let a doctor upload a signed, encrypted PDF that the patient sees
//! verified; `carelens audit verify` then reports a signed checkpoint; the population is
//! dated today.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::Value;

use crate::Carelens;
use crate::serve::{Http, login_of};

/// The first JSON document from `reader` (pretty-printed over several lines).
fn next_document(reader: &mut impl BufRead) -> Value {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).expect("read demo's stdout") > 0, "demo exited early: {text}");
        text.push_str(&line);
        if let Ok(v) = serde_json::from_str(&text) {
            return v;
        }
    }
}

#[test]
fn demo_from_anywhere_uses_the_bundled_models_and_its_own_keys() {
    let c = Carelens::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let mut child = c
        .command()
        .env_remove("CARELENS_MODELS")
        .env_remove("CARELENS_MASTER_KEY")
        .env_remove("CARELENS_AUDIT_KEY")
        .current_dir(elsewhere.path())
        .args(["--json", "demo", "--patients", "120", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start carelens demo");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let demo = next_document(&mut reader);
    let listening = next_document(&mut reader);
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let url = listening["url"].as_str().unwrap().trim_end_matches('/').to_owned();

    // The bundled models were unpacked into the data directory and used.
    assert_eq!(demo["models"]["registry"], c.data_dir().join("models").display().to_string());
    assert!(!demo["models"]["evaluations"].as_array().unwrap().is_empty(), "{}", demo["models"]);
    // The keys file is private to the user.
    let keys = std::path::PathBuf::from(demo["keys"].as_str().unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // A doctor uploads a PDF for the patient in their care; the patient sees it, verified.
    let http = Http::new(&url);
    let login = |role: &str| {
        let (user, password) = login_of(&demo, role);
        http.login(user, password)
    };
    let (doctor, patient) = (login("doctor"), login("patient"));
    let id = demo["logins"].as_array().unwrap().iter().find_map(|l| l["try_patient"].as_str()).unwrap().to_owned();
    let upload = http.post_pdf(
        &format!("/api/v1/patients/{id}/documents?kind=letter&title=Discharge%20letter"),
        &doctor,
        b"%PDF-1.7\n% discharged in good health\n%%EOF\n",
    );
    let (status, doc) = (upload.status, upload.body);
    assert_eq!(status, 201, "the demo's master key allows uploads: {doc}");
    let doc_id = doc["id"].as_str().unwrap();
    let listed = http.get(&format!("/api/v1/patients/{id}/documents"), &patient);
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(listed.body.to_string().contains(doc_id), "the patient sees the letter: {}", listed.body);
    let verified = http.get(&format!("/api/v1/patients/{id}/documents/{doc_id}/verify"), &patient);
    assert_eq!((verified.status, verified.body["status"].as_str()), (200, Some("valid")), "{}", verified.body);
    // Ctrl-C: the server finishes and signs the log's head on the way out.
    let stopped = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(stopped.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "demo after Ctrl-C: {exit:?}");

    // The audit log of the demo data directory verifies with a signed checkpoint.
    let audit = c.json(&["audit", "verify"]);
    assert!(audit["checkpoints"].as_u64().unwrap_or(0) >= 1, "{audit}");
    assert!(audit["signed_up_to"].as_u64().is_some(), "{audit}");

    // The checkout's models/ give the same evaluations and fused predictions.
    let checkout = Carelens::new();
    let models = super::predict::repo_models();
    let from_repo = checkout.json(&["--models", &models, "demo", "--patients", "120", "--no-serve"]);
    let evals = |d: &Value| {
        let mut e = d["models"]["evaluations"].clone();
        for m in e.as_array_mut().unwrap() {
            m.as_object_mut().unwrap().remove("data");
        }
        e
    };
    assert_eq!(evals(&demo), evals(&from_repo), "bundled and checkout models evaluate alike");
    assert_eq!(
        demo["predictions"]["evaluation"], from_repo["predictions"]["evaluation"],
        "the fused-prediction table is the same"
    );
}

#[test]
fn the_demo_population_is_dated_today_unless_pinned() {
    let c = Carelens::new();
    let out = c
        .command()
        .env_remove("CARELENS_DEMO_AS_OF")
        .args(["--json", "--models", &super::predict::repo_models(), "demo", "--patients", "30", "--no-images"])
        .arg("--no-serve")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let demo: Value = serde_json::from_slice(&out.stdout).unwrap();
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(demo["population"]["summary"]["as_of"].as_str(), Some(today.as_str()), "{}", demo["population"]);
}
