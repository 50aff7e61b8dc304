//! The KPI benchmark: a synthetic population (carelens-synth, streamed chunk by chunk)
//! written as an analytics snapshot, then every KPI of the catalogue timed on it.
//!
//! `cargo bench -p carelens-analytics --bench kpi -- [PATIENTS] [DIR]` prints one JSON
//! document; `cargo xtask bench-kpi` runs it beside the pandas peer and prints the table.

use std::collections::HashMap;
use std::time::Instant;

use carelens_analytics::{CATALOGUE, PatientRecord, Query, Snapshot, SnapshotWriter, kpi};
use carelens_domain::{Appointment, HistoryEntry};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let patients: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = args.get(1).map_or_else(|| tmp.path().join("snapshot"), std::path::PathBuf::from);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("clear the snapshot directory");
    }
    let cfg = carelens_synth::Config {
        seed: 7,
        patients,
        as_of: carelens_synth::Config::default_as_of(),
        threads: std::thread::available_parallelism().map_or(2, usize::from),
    };
    let started = Instant::now();
    let mut writer = SnapshotWriter::create(&dir, cfg.as_of, b"benchmark-pseudonym-key", false).expect("writer");
    let mut write_secs = 0.0;
    let mut events = 0u64;
    carelens_synth::generate(&cfg, |chunk| {
        let t = Instant::now();
        for (p, rules) in chunk
            .providers
            .iter()
            .map(|p| (p, chunk.schedule_rules.iter().filter(|r| r.provider == p.id).cloned().collect::<Vec<_>>()))
        {
            writer.add_provider(p, &rules);
        }
        let mut history: HashMap<&str, Vec<HistoryEntry>> = HashMap::new();
        for e in &chunk.history {
            history.entry(e.patient.as_str()).or_default().push(e.clone());
        }
        let mut appts: HashMap<&str, Vec<Appointment>> = HashMap::new();
        for a in &chunk.appointments {
            appts.entry(a.patient.as_str()).or_default().push(a.clone());
        }
        events += chunk.history.len() as u64;
        for p in &chunk.patients {
            let id = p.id.as_str();
            writer
                .add_patient(PatientRecord {
                    patient: p,
                    history: history.get(id).map_or(&[], |v| v.as_slice()),
                    appointments: appts.get(id).map_or(&[], |v| v.as_slice()),
                    prediction_sets: &[],
                    feedback: &[],
                })
                .map_err(|e| e.to_string())?;
        }
        write_secs += t.elapsed().as_secs_f64();
        Ok::<_, String>(())
    })
    .expect("generate");
    let t = Instant::now();
    let manifest = writer.finish().expect("finish");
    write_secs += t.elapsed().as_secs_f64();
    let total_secs = started.elapsed().as_secs_f64();
    let bytes: u64 = manifest.files().map(|f| f.bytes).sum();
    let files = manifest.files().count();

    let snap = Snapshot::open(&dir).expect("open");
    let mut rounds = Vec::new();
    let mut per_kpi: Vec<(String, f64, usize)> = Vec::new();
    for round in 0..2 {
        let t = Instant::now();
        let mut ctx = kpi::context(&snap).expect("context");
        for def in CATALOGUE {
            let k = Instant::now();
            let r = kpi::run_in(&mut ctx, kpi::default_end(&snap, def), def, &Query::default()).expect("kpi");
            if round == 1 {
                per_kpi.push((def.name.to_owned(), k.elapsed().as_secs_f64(), r.rows.len()));
            }
        }
        rounds.push(t.elapsed().as_secs_f64());
    }
    let out = serde_json::json!({
        "patients": patients,
        "events": events,
        "rows": manifest.rows(),
        "files": files,
        "bytes": bytes,
        "generate_and_write_seconds": total_secs,
        "snapshot_write_seconds": write_secs,
        "catalogue_seconds_cold": rounds[0],
        "catalogue_seconds": rounds[1],
        "kpis": per_kpi.iter().map(|(n, s, rows)| serde_json::json!({"name": n, "seconds": s, "rows": rows})).collect::<Vec<_>>(),
        "peak_rss_mib": peak_rss_mib(),
        "threads": cfg.threads,
        "dir": dir,
    });
    println!("{out}");
}
