//! `carelens audit` end to end: the access log the server writes verifies; a signed checkpoint
//! vouches for its head; an edited entry and a cut-off tail (checkpoints deleted too, caught by
//! the anchor kept outside the store) each fail verification with where it happened.

use serde_json::Value;

use crate::Carelens;
use crate::serve::{Http, Server, login_of};

/// Runs SQL on the data directory's SQLite file behind carelens' back (Python's sqlite3).
fn tamper(c: &Carelens, sql: &str) {
    let db = c.data_dir().join("carelens.sqlite");
    let out = std::process::Command::new("python3")
        .args(["-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()"])
        .arg(&db)
        .arg(sql)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn with_key(c: &Carelens, key: &str, args: &[&str]) -> Value {
    let out = c.command().env("CARELENS_AUDIT_KEY", key).arg("--json").args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_access_log_verifies_and_tampering_is_named() {
    let models = super::predict::repo_models();
    let c = Carelens::new();
    let demo = c.json(&["--models", &models, "demo", "--patients", "100", "--no-serve"]);
    // Doctors' reads are audited by the server.
    let server = Server::start(&c, &models);
    let http = Http::new(&server.url);
    let (user, password) = login_of(&demo, "doctor");
    let token = http.login(user, password);
    let list = http.get("/api/v1/patients?limit=5", &token).body;
    for p in list["patients"].as_array().unwrap() {
        http.get(&format!("/api/v1/patients/{}/history", p["id"].as_str().unwrap()), &token);
    }
    drop(server);

    let v = c.json(&["audit", "verify"]);
    let entries = v["entries"].as_u64().unwrap();
    assert!(entries >= 5, "{v}");
    assert_eq!(v["findings"], serde_json::json!([]));
    // The demo signed the log as it stood before serving, with its own key (demo-keys.env);
    // `serve` without CARELENS_AUDIT_KEY signs nothing, so the doctor's reads are not covered.
    let demo_signed = v["signed_up_to"].as_u64().unwrap_or_else(|| panic!("the demo signs a checkpoint: {v}"));
    assert!(demo_signed < entries, "{v}");
    assert_eq!(demo["audit_checkpoint"].as_u64(), Some(demo_signed));
    // Without checkpoints, verify says that a shortened log could not be told apart.
    tamper(&c, "DELETE FROM audit_checkpoints;");
    assert!(c.ok(&["audit", "verify"]).contains("No signed checkpoint"));
    c.fails(&["audit", "checkpoint"], 1);

    let key = c.json(&["audit", "keygen"]);
    let (secret, public) = (key["secret"].as_str().unwrap(), key["public"].as_str().unwrap());
    let anchor = c.dir.path().join("anchor.json");
    let cp = with_key(&c, secret, &["audit", "checkpoint", "--out", anchor.to_str().unwrap()]);
    assert_eq!(cp["seq"].as_u64(), Some(entries));
    let v = c.json(&["audit", "verify", "--trust", public]);
    assert_eq!((v["signed_up_to"].as_u64(), &v["findings"]), (Some(entries), &serde_json::json!([])), "{v}");
    let text = c.ok(&["audit", "verify", "--trust", public]);
    assert!(text.contains("intact"), "{text}");

    // An edited entry.
    tamper(&c, "UPDATE audit SET body = json_set(body, '$.outcome', 'denied') WHERE seq = 2;");
    let e = c.fails(&["audit", "verify", "--trust", public], 1);
    assert!(e.contains("entry 2 was modified"), "{e}");
    tamper(&c, "UPDATE audit SET body = json_set(body, '$.outcome', 'allowed') WHERE seq = 2;");
    assert!(c.ok(&["audit", "verify", "--trust", public]).contains("intact"));

    // The tail cut off with the stored checkpoints: only the anchor notices.
    tamper(&c, &format!("DELETE FROM audit WHERE seq > {}; DELETE FROM audit_checkpoints;", entries - 2));
    c.ok(&["audit", "verify"]);
    let e = c.fails(&["audit", "verify", "--trust", public, "--anchor", anchor.to_str().unwrap()], 1);
    assert!(e.contains(&format!("ends at entry {} but entry {entries} was signed", entries - 2)), "{e}");
    // A checkpoint signed by someone else is not trusted.
    let other = c.json(&["audit", "keygen"]);
    let e = c.fails(
        &["audit", "verify", "--trust", other["public"].as_str().unwrap(), "--anchor", anchor.to_str().unwrap()],
        1,
    );
    assert!(e.contains("not trusted"), "{e}");
}
