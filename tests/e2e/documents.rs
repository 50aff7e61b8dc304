//! Documents end to end: a patient uploads a lab report to the real server (which signs it
//! with the patient's server-held key and stores it encrypted under `CARELENS_MASTER_KEY`);
//! `carelens records verify` finds it valid, then names it when its stored bytes or its record
//! were changed on disk; `records rotate-keys` moves everything to a new master key, after
//! which the new key alone verifies it.

use serde_json::Value;

use crate::Carelens;
use crate::serve::{Http, Server, login_of};

fn sql(c: &Carelens, script: &str) -> String {
    let db = c.data_dir().join("carelens.sqlite");
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nfor r in c.execute(sys.argv[2]): print(r[0])\nc.commit()",
        ])
        .arg(&db)
        .arg(script)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn verify(c: &Carelens, key: &str) -> (Option<i32>, Value) {
    let out = c.command().env("CARELENS_MASTER_KEY", key).args(["--json", "records", "verify"]).output().unwrap();
    (out.status.code(), serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
}

#[test]
fn uploaded_documents_verify_and_tampering_is_named() {
    let models = super::predict::repo_models();
    let c = Carelens::new();
    let demo = c.json(&["--models", &models, "demo", "--patients", "40", "--no-serve"]);
    let key = c.json(&["records", "keygen"])["key"].as_str().unwrap().to_owned();

    let server = Server::start_with(&c, &models, &[("CARELENS_MASTER_KEY", &key)]);
    let (user, password) = login_of(&demo, "patient");
    let http = Http::new(&server.url);
    let login = http.call(
        reqwest::Method::POST,
        "/api/v1/auth/login",
        None,
        Some(serde_json::json!({"username": user, "password": password})),
    );
    let token = login.body["token"].as_str().unwrap();
    let me = login.body["user"]["patient"].as_str().unwrap();
    let upload = http.post_pdf(
        &format!("/api/v1/patients/{me}/documents?kind=lab_report&title=Blood%20count"),
        token,
        b"%PDF-1.7\n% haemoglobin 13.1 g/dL\n%%EOF\n",
    );
    let (status, doc) = (upload.status, upload.body);
    drop(server);
    assert_eq!(status, 201, "{doc}");
    let id = doc["id"].as_str().unwrap();

    let (code, v) = verify(&c, &key);
    assert_eq!((code, v["documents"].as_u64(), v["valid"].as_u64()), (Some(0), Some(1), Some(1)), "{v}");
    let err = c.run(&["records", "verify"]);
    assert!(!err.status.success() && String::from_utf8_lossy(&err.stderr).contains("CARELENS_MASTER_KEY"));

    // The stored (encrypted) bytes edited on disk.
    let body: Value = serde_json::from_str(&sql(&c, &format!("SELECT body FROM documents WHERE id = '{id}'"))).unwrap();
    let object = c.data_dir().join("objects").join(body["object_key"].as_str().unwrap());
    let original = std::fs::read(&object).unwrap();
    let mut edited = original.clone();
    edited[10] ^= 1;
    std::fs::write(&object, &edited).unwrap();
    let (code, v) = verify(&c, &key);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(
        (v["problems"][0]["document"].as_str(), v["problems"][0]["status"].as_str()),
        (Some(id), Some("tampered")),
        "{v}"
    );
    std::fs::write(&object, &original).unwrap();

    // The record's digest rewritten in the database: the signature no longer covers it.
    let forged = "0".repeat(64);
    sql(&c, &format!("UPDATE documents SET body = json_set(body, '$.sha256', '{forged}') WHERE id = '{id}'"));
    let (code, v) = verify(&c, &key);
    assert_eq!(code, Some(1));
    assert!(v["problems"][0]["reason"].as_str().unwrap().contains("signature"), "{v}");
    sql(
        &c,
        &format!(
            "UPDATE documents SET body = json_set(body, '$.sha256', '{}') WHERE id = '{id}'",
            body["sha256"].as_str().unwrap()
        ),
    );
    assert_eq!(verify(&c, &key).0, Some(0));

    // Rotation: the new key alone opens everything afterwards; the old one no longer does.
    let new_key = c.json(&["records", "keygen"])["key"].as_str().unwrap().to_owned();
    let out = c
        .command()
        .env("CARELENS_MASTER_KEY", &new_key)
        .env("CARELENS_MASTER_KEY_PREVIOUS", &key)
        .args(["--json", "records", "rotate-keys"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((r["documents_rewrapped"].as_u64(), r["signing_keys_rewrapped"].as_u64()), (Some(1), Some(1)), "{r}");
    assert_eq!(std::fs::read(&object).unwrap(), original, "the stored bytes were not rewritten");
    assert_eq!(verify(&c, &new_key).0, Some(0));
    assert_eq!(verify(&c, &key).0, Some(1), "the retired key no longer opens the documents");
}
