//! `cargo xtask bench-serve`: prediction-set reads over HTTP under concurrent load, carelens
//! (release build) against a Flask peer (gunicorn, one worker per core) serving the same JSON
//! from the same SQLite store, with the same in-repo load generator; plus the batch
//! prediction rate of the data set it builds.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Latencies of one load run.
struct Load {
    requests: usize,
    errors: usize,
    seconds: f64,
    latencies_ms: Vec<f64>,
}

impl Load {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
    fn quantile(&self, q: f64) -> f64 {
        let n = self.latencies_ms.len();
        if n == 0 {
            return f64::NAN;
        }
        self.latencies_ms[((n as f64 - 1.0) * q).round() as usize]
    }
}

/// `concurrency` keep-alive clients GET the paths round-robin for `seconds` (after a 2 s
/// warm-up); every response must be 200.
fn load(base: &str, token: &str, paths: &[String], concurrency: usize, seconds: f64) -> Result<Load> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
        let paths = Arc::new(paths.to_vec());
        let run = |secs: f64, record: bool| {
            let tasks: Vec<_> = (0..concurrency)
                .map(|k| {
                    let (client, paths, base, token) =
                        (client.clone(), paths.clone(), base.to_string(), token.to_string());
                    tokio::spawn(async move {
                        let deadline = Instant::now() + Duration::from_secs_f64(secs);
                        let (mut lat, mut errors, mut i) = (Vec::new(), 0usize, k);
                        while Instant::now() < deadline {
                            let started = Instant::now();
                            let ok = match client
                                .get(format!("{base}{}", paths[i % paths.len()]))
                                .bearer_auth(&token)
                                .send()
                                .await
                            {
                                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                                Err(_) => false,
                            };
                            if record {
                                lat.push(started.elapsed().as_secs_f64() * 1e3);
                            }
                            errors += usize::from(!ok);
                            i += concurrency;
                        }
                        (lat, errors)
                    })
                })
                .collect();
            async move {
                let mut all = Vec::new();
                let mut errors = 0;
                for t in tasks {
                    let (l, e) = t.await.expect("load task");
                    all.extend(l);
                    errors += e;
                }
                (all, errors)
            }
        };
        run(2.0, false).await;
        let started = Instant::now();
        let (mut latencies_ms, errors) = run(seconds, true).await;
        let elapsed = started.elapsed().as_secs_f64();
        latencies_ms.sort_by(f64::total_cmp);
        Ok(Load { requests: latencies_ms.len(), errors, seconds: elapsed, latencies_ms })
    })
}

fn wait_http(url: &str) -> Result<()> {
    let started = Instant::now();
    while std::net::TcpStream::connect(url.trim_start_matches("http://").trim_end_matches('/')).is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("{url} did not come up");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

pub fn run(
    root: &Path,
    target: &Path,
    python_for: impl Fn(&[&str]) -> Result<std::path::PathBuf>,
    seconds: f64,
) -> Result<()> {
    let (patients, concurrency) = (2000u32, 32usize);
    super::run(super::cargo().args(["build", "--release", "--locked", "-p", "carelens-cli", "--bin", "carelens"]))?;
    let bin = target.join("release/carelens");
    let work = target.join("bench-serve");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let data = work.join("data");
    let models = root.join("models");
    let carelens = || {
        let mut c = Command::new(&bin);
        c.arg("--data-dir").arg(&data).arg("--models").arg(&models).env_remove("CARELENS_LOG");
        c
    };
    eprintln!("bench-serve: demo population of {patients} patients with prediction sets (release build)");
    let demo: Value = serde_json::from_str(&super::output(
        carelens().args(["--json", "-q", "demo", "--no-serve", "--patients"]).arg(patients.to_string()),
    )?)?;
    let batch_rate = demo["predictions"]["patients_per_second"].as_f64().unwrap_or(f64::NAN);
    let heatmaps = demo["predictions"]["heatmaps"].as_u64().unwrap_or(0);
    let doctor =
        demo["logins"].as_array().and_then(|l| l.iter().find(|l| l["role"] == "doctor")).context("no demo doctor")?;
    let (user, password) =
        (doctor["username"].as_str().unwrap_or_default(), doctor["password"].as_str().unwrap_or_default());

    // carelens
    let mut child = carelens()
        .args(["--json", "serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("serve stdout")?;
    let server = Killed(child);
    let mut reader = BufReader::new(stdout);
    let mut text = String::new();
    let listening: Value = loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            bail!("carelens serve exited: {text}");
        }
        text.push_str(&line);
        if let Ok(v) = serde_json::from_str(&text) {
            break v;
        }
    };
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let base = listening["url"].as_str().context("no url")?.trim_end_matches('/').to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = reqwest::Client::new();
    let (token, me, patients_of_doctor): (String, Value, Value) = rt.block_on(async {
        let login: Value = client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&serde_json::json!({"username": user, "password": password}))
            .send()
            .await?
            .json()
            .await?;
        let token = login["token"].as_str().context("no token")?.to_string();
        let list: Value =
            client.get(format!("{base}/api/v1/patients?limit=500")).bearer_auth(&token).send().await?.json().await?;
        anyhow::Ok((token, login["user"].clone(), list))
    })?;
    let mut paths = Vec::new();
    for p in patients_of_doctor["patients"].as_array().into_iter().flatten() {
        let path = format!("/api/v1/patients/{}/predictions", p["id"].as_str().unwrap_or_default());
        let ok = rt.block_on(async {
            client.get(format!("{base}{path}")).bearer_auth(&token).send().await.map(|r| r.status().is_success())
        })?;
        if ok {
            paths.push(path);
        }
    }
    if paths.len() < 5 {
        bail!("the demo doctor has only {} patients with prediction sets", paths.len());
    }
    let sample = rt.block_on(async {
        client.get(format!("{base}{}", paths[0])).bearer_auth(&token).send().await?.bytes().await
    })?;
    eprintln!("bench-serve: carelens, {} patients, {concurrency} connections, {seconds} s", paths.len());
    let ours = load(&base, &token, &paths, concurrency, seconds)?;
    drop(server);

    // Flask peer (gunicorn, one sync worker per core) on the same store.
    let python = python_for(&["flask==3.1.2", "gunicorn==23.0.0"])?;
    let gunicorn = python.with_file_name("gunicorn");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let peer_token = "peer-bench-token";
    let peer = Killed(
        Command::new(&gunicorn)
            .args([
                "-w",
                &cores.to_string(),
                "-b",
                &format!("127.0.0.1:{port}"),
                "--log-level",
                "warning",
                "flask_peer:app",
            ])
            .current_dir(root.join("crates/carelens-server/benches"))
            .env("CARELENS_DB", data.join("carelens.sqlite"))
            .env("PEER_TOKEN", peer_token)
            .env("PEER_PROVIDER", me["provider"].as_str().unwrap_or_default())
            .env("PEER_USER", me["id"].as_str().unwrap_or_default())
            .stdout(Stdio::null())
            .spawn()
            .context("starting gunicorn")?,
    );
    let peer_base = format!("http://127.0.0.1:{port}");
    wait_http(&peer_base)?;
    let peer_sample = rt.block_on(async {
        client.get(format!("{peer_base}{}", paths[0])).bearer_auth(peer_token).send().await?.bytes().await
    })?;
    let (a, b): (Value, Value) = (serde_json::from_slice(&sample)?, serde_json::from_slice(&peer_sample)?);
    if a != b {
        bail!("the peer's JSON differs from carelens':\n{a}\n{b}");
    }
    eprintln!("bench-serve: Flask peer (gunicorn -w {cores}), same requests");
    let theirs = load(&peer_base, peer_token, &paths, concurrency, seconds)?;
    drop(peer);

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!(
        "prediction-set reads (GET /api/v1/patients/{{id}}/predictions, {} B JSON, access check + audit row per request)",
        sample.len()
    );
    println!(
        "machine: {cores} cores ({cpu}); {concurrency} keep-alive connections, {seconds} s after 2 s warm-up; same SQLite store, same JSON"
    );
    println!("| server | requests/s | p50 ms | p99 ms | errors |");
    println!("|---|---:|---:|---:|---:|");
    for (name, l) in [("carelens (axum, release)", &ours), (&*format!("Flask peer (gunicorn -w {cores})"), &theirs)] {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {} |",
            l.per_second(),
            l.quantile(0.5),
            l.quantile(0.99),
            l.errors
        );
    }
    println!("carelens / Flask: {:.1}× the throughput", ours.per_second() / theirs.per_second());
    println!("batch prediction while building the data set: {batch_rate:.0} patients/s ({heatmaps} heatmaps)");
    if ours.errors > 0 || theirs.errors > 0 {
        bail!("requests failed under load: carelens {}, peer {}", ours.errors, theirs.errors);
    }
    Ok(())
}
