//! Backend benchmark: history inserts/s and 1 MB object puts/gets per second, embedded
//! (SQLite + local files) vs MongoDB + S3 (real servers on loopback), side by side.
//!
//! Run with `cargo xtask bench-store` (release build; installs and starts the servers).
//! Arguments: `[PATIENTS] [OBJECTS]` (default 5000 patients, 100 objects of 1 MiB).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use carelens_store::{LocalObjects, MongoStore, ObjectStore, S3Config, S3Objects, SqliteStore, Store, WriteBatch};

fn population(patients: u64) -> Vec<WriteBatch> {
    let cfg = carelens_synth::Config { seed: 1, patients, as_of: carelens_synth::Config::default_as_of(), threads: 2 };
    let mut out = Vec::new();
    carelens_synth::generate(&cfg, |c| {
        out.push(WriteBatch {
            patients: c.patients,
            history: c.history,
            ground_truth: c.ground_truth,
            providers: c.providers,
            reviews: c.reviews,
            schedule_rules: c.schedule_rules,
            closures: vec![],
            appointments: c.appointments,
        });
        Ok::<_, ()>(())
    })
    .unwrap();
    out
}

struct Row {
    backend: String,
    history_per_s: f64,
    records_per_s: f64,
    puts_per_s: f64,
    gets_per_s: f64,
}

async fn bench(
    name: &str,
    store: &dyn Store,
    objects: &dyn ObjectStore,
    batches: &[WriteBatch],
    n_objects: usize,
) -> Row {
    let history: usize = batches.iter().map(|b| b.history.len()).sum();
    let records: usize = batches.iter().map(WriteBatch::len).sum();
    let started = Instant::now();
    for b in batches {
        store.apply(b.clone()).await.unwrap();
    }
    let write_s = started.elapsed().as_secs_f64();

    let blobs: Vec<Vec<u8>> = (0..n_objects)
        .map(|i| {
            (0..1024 * 1024u32).map(|j| (j.wrapping_mul(2_654_435_761).wrapping_add(i as u32) >> 11) as u8).collect()
        })
        .collect();
    let started = Instant::now();
    let mut keys = Vec::new();
    for b in &blobs {
        keys.push(objects.put(b.clone()).await.unwrap());
    }
    let put_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for k in &keys {
        assert_eq!(objects.get(k).await.unwrap().len(), 1024 * 1024);
    }
    let get_s = started.elapsed().as_secs_f64();
    Row {
        backend: name.to_owned(),
        history_per_s: history as f64 / write_s,
        records_per_s: records as f64 / write_s,
        puts_per_s: n_objects as f64 / put_s,
        gets_per_s: n_objects as f64 / get_s,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let patients: u64 = args.next().map_or(5000, |a| a.parse().unwrap());
    let n_objects: usize = args.next().map_or(100, |a| a.parse().unwrap());
    let batches = population(patients);
    let history: usize = batches.iter().map(|b| b.history.len()).sum();
    println!(
        "bench-store: {patients} synthetic patients ({history} history entries, {} records, in {} batches), {n_objects} objects of 1 MiB",
        batches.iter().map(WriteBatch::len).sum::<usize>(),
        batches.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();

    let sqlite = SqliteStore::open(dir.path().join("bench.sqlite")).unwrap();
    let files = LocalObjects::open(dir.path().join("objects")).unwrap();
    rows.push(bench("sqlite + files", &sqlite, &files, &batches, n_objects).await);

    let mongo =
        carelens_testkit::MongoServer::start().await.expect("set CARELENS_MONGOD_BIN (cargo xtask bench-store does)");
    let s3 = carelens_testkit::S3Server::start().expect("set CARELENS_S3S_FS_BIN (cargo xtask bench-store does)");
    s3.create_bucket("bench");
    let store: Arc<dyn Store> = Arc::new(MongoStore::connect(&mongo.url("bench")).await.unwrap());
    let objects = S3Objects::connect(S3Config::s3_compatible(&s3.endpoint(), "bench", &s3.access_key, &s3.secret_key))
        .await
        .unwrap();
    let name = format!("mongodb {} + s3 ({})", mongo.version, s3.version);
    rows.push(bench(&name, store.as_ref(), &objects, &batches, n_objects).await);

    println!("{:<38} {:>14} {:>14} {:>12} {:>12}", "backend", "history/s", "records/s", "1MB puts/s", "1MB gets/s");
    for r in &rows {
        println!(
            "{:<38} {:>14.0} {:>14.0} {:>12.1} {:>12.1}",
            r.backend, r.history_per_s, r.records_per_s, r.puts_per_s, r.gets_per_s
        );
    }
    if let [a, b] = rows.as_slice() {
        println!(
            "ratio embedded / production: history inserts {:.2}x, puts {:.2}x, gets {:.2}x",
            a.history_per_s / b.history_per_s,
            a.puts_per_s / b.puts_per_s,
            a.gets_per_s / b.gets_per_s
        );
    }
    println!(
        "machine: {} CPUs, servers on 127.0.0.1 (same machine)",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
}
