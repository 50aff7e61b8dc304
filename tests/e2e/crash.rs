use std::time::{Duration, Instant};

use crate::Carelens;

/// Patients per atomic write (carelens_synth::CHUNK_PATIENTS).
const CHUNK: i64 = 2500;

fn patients_in(db: &std::path::Path) -> i64 {
    let Ok(conn) = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return 0;
    };
    conn.query_row("SELECT COUNT(*) FROM patients", [], |r| r.get(0)).unwrap_or(0)
}

/// Killing `generate` mid-run (SIGKILL: no cleanup) leaves whole chunks only, every stored
/// patient complete, and the same command then finishes the job.
#[test]
fn a_killed_generate_leaves_whole_batches_and_resumes() {
    let c = Carelens::new();
    let db = c.data_dir().join("carelens.sqlite");
    let args = ["generate", "--patients", "6000", "--seed", "5"];
    let mut child = c.command().args(["--quiet"]).args(args).spawn().unwrap();
    let started = Instant::now();
    while patients_in(&db) == 0 {
        assert!(started.elapsed() < Duration::from_secs(120), "no batch was committed");
        if child.try_wait().unwrap().is_some() {
            break; // finished before we could kill it: still a valid (if weaker) run
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().ok();
    child.wait().unwrap();

    let n = patients_in(&db);
    assert!(n == 6000 || n % CHUNK == 0, "{n} patients: a batch was half-written");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let without_history: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM patients p WHERE NOT EXISTS (SELECT 1 FROM history h WHERE h.patient_id = p.id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // Newborns can have an empty history; a half-written patient would show up in bulk.
    assert!(without_history * 50 < n.max(1), "{without_history} of {n} patients have no history");
    drop(conn);
    if n < 6000 {
        assert_eq!(c.json(&["stats"])["population"]["complete"], false);
        assert!(c.ok(&["stats"]).contains("incomplete: rerun the same generate command"));
    }

    let resumed = c.json(&args);
    assert_eq!(resumed["summary"]["patients"], 6000);
    let dry = Carelens::new().json(&["generate", "--patients", "6000", "--seed", "5", "--dry-run"]);
    assert_eq!(resumed["summary"]["hash"], dry["summary"]["hash"]);
    let stats = c.json(&["stats"]);
    assert_eq!(stats["counts"]["patients"], 6000);
    assert_eq!(stats["counts"]["history_entries"], dry["summary"]["history_entries"]);
    assert_eq!(stats["population"]["complete"], true);
}
