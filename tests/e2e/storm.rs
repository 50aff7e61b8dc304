//! 64 concurrent HTTP clients against 100 openings, every request retried with its
//! idempotency key, and the server SIGKILLed and restarted in the middle: exactly one booking
//! per slot, every booking a client was told about is stored, and nothing stored that no
//! client was told about. On the embedded default and on MongoDB.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Carelens;

const CLIENTS: usize = 64;
const SLOTS: usize = 100;
const TRIES: usize = 12;
const PASSWORD: &str = "a-long-storm-password";
/// Tokens survive the restart only with a fixed signing key.
const TOKEN_KEY: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

struct Storm<'a> {
    c: &'a Carelens,
    /// `--store URL` for MongoDB, none for the embedded default.
    store: Vec<String>,
    port: u16,
}

impl Storm<'_> {
    fn cmd(&self) -> std::process::Command {
        let mut cmd = self.c.command();
        cmd.args(&self.store);
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).env("CARELENS_NEW_PASSWORD", PASSWORD).output().unwrap();
        assert!(out.status.success(), "carelens {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn serve(&self) -> Child {
        let mut child = self
            .cmd()
            .args(["--json", "serve", "--bind", &format!("127.0.0.1:{}", self.port)])
            .env("CARELENS_TOKEN_KEY", TOKEN_KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The first JSON document on stdout (pretty-printed) says it listens.
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut text = String::new();
        while serde_json::from_str::<Value>(&text).is_err() {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).unwrap() > 0, "serve exited: {text}");
            text.push_str(&line);
        }
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        child
    }
}

/// One client's blocking HTTP.
struct Client {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
}

/// Requests sent again because the server did not answer (it was down or restarting).
static RESENT: AtomicUsize = AtomicUsize::new(0);

impl Client {
    fn new(base: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        Self { rt, http, base: base.to_owned() }
    }

    /// Sends until the server answers (connection refused or reset while it restarts, or a
    /// 5xx, means: try again, same request, same key).
    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answer = self.rt.block_on(async {
                let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                if let Some(k) = key {
                    req = req.header("Idempotency-Key", k);
                }
                if let Some(b) = body {
                    req = req.json(b);
                }
                let resp = req.send().await?;
                let status = resp.status().as_u16();
                let bytes = resp.bytes().await?;
                Ok::<_, reqwest::Error>((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
            });
            match answer {
                Ok((s, v)) if s < 500 => return (s, v),
                _ => {
                    RESENT.fetch_add(1, Ordering::SeqCst);
                    assert!(Instant::now() < deadline, "{path}: no answer for 60 s");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

fn storm(store: Vec<String>) {
    let c = Carelens::new();
    let s = Storm { c: &c, store, port: crate::free_port() };
    s.ok(&["generate", "--patients", "200", "--seed", "11"]);
    s.ok(&["availability", "import", "--horizon-days", "30"]);
    // 64 patient accounts; a doctor of the practice whose openings are stormed.
    let patients: Vec<String> = {
        let out = s.ok(&["--json", "patients", "--limit", &CLIENTS.to_string()]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(patients.len(), CLIENTS);
    for (i, p) in patients.iter().enumerate() {
        s.ok(&["users", "add", &format!("storm.{i}"), "--role", "patient", "--patient", p]);
    }
    let mut server = s.serve();
    let base = format!("http://127.0.0.1:{}", s.port);
    let admin = Client::new(&base);
    let login = |who: &str| {
        let (st, v) = admin.send(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            None,
            Some(&json!({"username": who, "password": PASSWORD})),
        );
        assert_eq!(st, 200, "{v}");
        v["token"].as_str().unwrap().to_owned()
    };
    let t0 = login("storm.0");
    let (_, hits) = admin.send(reqwest::Method::GET, "/api/v1/providers/search?per_page=1", Some(&t0), None, None);
    let provider = hits["hits"][0]["id"].as_str().unwrap().to_owned();
    let from = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, openings) = admin.send(
        reqwest::Method::GET,
        &format!("/api/v1/providers/{provider}/openings?from={}", from.replace(':', "%3A")),
        Some(&t0),
        None,
        None,
    );
    let slots: Vec<String> =
        openings.as_array().unwrap().iter().take(SLOTS).map(|o| o["start"].as_str().unwrap().to_owned()).collect();
    assert_eq!(slots.len(), SLOTS, "the practice has fewer than {SLOTS} openings in 14 days");
    s.ok(&["users", "add", "storm.doctor", "--role", "doctor", "--provider", &provider]);
    let tokens: Vec<String> = (0..CLIENTS).map(|i| login(&format!("storm.{i}"))).collect();

    // The storm; a controller kills the server when a third of the attempts are through.
    let done = Arc::new(AtomicUsize::new(0));
    let wins: Arc<Mutex<BTreeMap<String, String>>> = Arc::default(); // appointment id → slot
    let refused: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let mut threads = Vec::new();
    for (ci, token) in tokens.into_iter().enumerate() {
        let (done, wins, refused, slots, provider, base) =
            (Arc::clone(&done), Arc::clone(&wins), Arc::clone(&refused), slots.clone(), provider.clone(), base.clone());
        threads.push(std::thread::spawn(move || {
            let client = Client::new(&base);
            for t in 0..TRIES {
                let k = (ci * 7 + t * 13) % SLOTS;
                let body = json!({"provider": provider, "start": slots[k]});
                let key = format!("storm-{ci}-{t}");
                let (st, v) =
                    client.send(reqwest::Method::POST, "/api/v1/appointments", Some(&token), Some(&key), Some(&body));
                match st {
                    200 | 201 => {
                        // The retry with the same key answers with the same appointment.
                        let (st2, v2) = client.send(
                            reqwest::Method::POST,
                            "/api/v1/appointments",
                            Some(&token),
                            Some(&key),
                            Some(&body),
                        );
                        assert_eq!((st2, &v2["id"]), (200, &v["id"]), "client {ci} slot {k}");
                        let id = v["id"].as_str().unwrap().to_owned();
                        let before = wins.lock().unwrap().insert(id.clone(), slots[k].clone());
                        assert!(before.is_none(), "one appointment id for two requests: {id}");
                    }
                    409 => {
                        *refused
                            .lock()
                            .unwrap()
                            .entry(v["error"]["code"].as_str().unwrap_or("?").to_owned())
                            .or_default() += 1
                    }
                    _ => panic!("client {ci} slot {k}: {st} {v}"),
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    while done.load(Ordering::SeqCst) < CLIENTS * TRIES / 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let killed_at = done.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    let resent_before = RESENT.load(Ordering::SeqCst);
    let mut server = s.serve();
    for t in threads {
        t.join().unwrap();
    }
    assert!(killed_at < CLIENTS * TRIES, "the kill came after the storm");
    assert!(resent_before > 0, "no client noticed the server going down");

    // What the practice's calendar holds for those slots.
    let dr = login("storm.doctor");
    let first = slots.first().unwrap().replace(':', "%3A").replace('+', "%2B");
    let (st, cal) = admin.send(reqwest::Method::GET, &format!("/api/v1/calendar?from={first}"), Some(&dr), None, None);
    assert_eq!(st, 200, "{cal}");
    let wanted: BTreeSet<&String> = slots.iter().collect();
    let held: Vec<(String, String)> = cal
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] != "cancelled")
        .filter(|a| wanted.contains(&a["start"].as_str().unwrap().to_owned()))
        .map(|a| (a["id"].as_str().unwrap().to_owned(), a["start"].as_str().unwrap().to_owned()))
        .collect();
    let starts: BTreeSet<&String> = held.iter().map(|(_, s)| s).collect();
    assert_eq!(starts.len(), held.len(), "a slot was booked twice");
    let stored: BTreeMap<String, String> = held.into_iter().collect();
    let wins = wins.lock().unwrap().clone();
    assert_eq!(stored, wins, "the store and the clients disagree (a lost or an unreported booking)");
    assert_eq!(stored.len(), SLOTS, "every slot some client tried is booked; refusals: {:?}", refused.lock().unwrap());
    server.kill().ok();
    server.wait().ok();
    eprintln!(
        "storm: {} bookings, refusals {:?}, server killed after {killed_at} attempts, {resent_before} requests sent again",
        stored.len(),
        refused.lock().unwrap()
    );
}

#[test]
fn http_booking_storm_with_a_server_restart_on_the_embedded_store() {
    storm(vec![]);
}

#[test]
fn http_booking_storm_with_a_server_restart_on_mongodb() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(mongo) = rt.block_on(carelens_testkit::MongoServer::start()) else { return };
    storm(vec!["--store".into(), mongo.url("storm")]);
    drop(mongo);
}
