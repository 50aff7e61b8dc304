//! `carelens serve` end to end: the real binary on a demo data directory, driven over HTTP
//! and, for the doctors' web view, in headless Chromium through chromedriver (WebDriver).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Carelens;

/// A running `carelens serve`, killed on drop.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Server {
    /// Starts the server on a free port with the given registry.
    pub fn start(c: &Carelens, models: &str) -> Server {
        Self::start_with(c, models, &[])
    }

    /// The same with extra environment variables (e.g. `CARELENS_MASTER_KEY`).
    pub fn start_with(c: &Carelens, models: &str, env: &[(&str, &str)]) -> Server {
        let mut cmd = c.command();
        cmd.envs(env.iter().copied());
        let mut child = cmd
            .args(["--json", "--models", models, "serve", "--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start carelens serve");
        let stdout = child.stdout.take().unwrap();
        // The first JSON document on stdout says where it listens.
        let mut reader = BufReader::new(stdout);
        let mut text = String::new();
        let v: Value = loop {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).expect("read serve's stdout") > 0, "serve exited: {text}");
            text.push_str(&line);
            if let Ok(v) = serde_json::from_str(&text) {
                break v;
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let url = v["url"].as_str().unwrap().trim_end_matches('/').to_string();
        Server { child, url }
    }
}

/// A small blocking JSON client over reqwest.
pub struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Http {
    pub fn new(base: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Self { rt, client: reqwest::Client::new(), base: base.to_string() }
    }

    fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        self.rt.block_on(async {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.unwrap();
            Reply { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
        })
    }

    pub fn call(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req)
    }

    /// POST with an `Idempotency-Key` header.
    pub fn post_keyed(&self, path: &str, token: &str, key: &str, body: Value) -> Reply {
        let url = format!("{}{path}", self.base);
        self.send(self.client.post(url).bearer_auth(token).header("Idempotency-Key", key).json(&body))
    }

    pub fn get(&self, path: &str, token: &str) -> Reply {
        self.call(reqwest::Method::GET, path, Some(token), None)
    }

    /// Uploads `body` as a PDF document (`POST`, `Content-Type: application/pdf`).
    pub fn post_pdf(&self, path: &str, token: &str, body: &[u8]) -> Reply {
        let url = format!("{}{path}", self.base);
        self.send(
            self.client.post(url).bearer_auth(token).header("content-type", "application/pdf").body(body.to_vec()),
        )
    }

    pub fn login(&self, username: &str, password: &str) -> String {
        let r = self.call(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": username, "password": password})),
        );
        assert_eq!(r.status, 200, "sign-in as {username}: {}", r.body);
        r.body["token"].as_str().unwrap().to_string()
    }
}

pub fn login_of<'a>(demo: &'a Value, role: &str) -> (&'a str, &'a str) {
    let l =
        demo["logins"].as_array().unwrap().iter().find(|l| l["role"] == role).unwrap_or_else(|| panic!("no {role}"));
    (l["username"].as_str().unwrap(), l["password"].as_str().unwrap())
}

/// The HTTP half of the prediction e2e: on the data directory `demo` made, a doctor gets
/// exactly the stored prediction sets of their patients (so the AUROC checks on the stored
/// sets hold for what doctors are served), and a doctor of another practice gets 403.
pub fn doctors_are_served_the_stored_sets(c: &Carelens, models: &str, demo: &Value) {
    let server = Server::start(c, models);
    let http = Http::new(&server.url);
    let (user, password) = login_of(demo, "doctor");
    let token = http.login(user, password);
    let patients = http.get("/api/v1/patients?limit=500", &token);
    assert_eq!(patients.status, 200, "{}", patients.body);
    let patients = patients.body["patients"].as_array().unwrap().clone();
    assert!(patients.len() >= 5, "the demo doctor has a panel: {}", patients.len());
    let mut compared = 0;
    for p in patients.iter().take(40) {
        let id = p["id"].as_str().unwrap();
        let served = http.get(&format!("/api/v1/patients/{id}/predictions"), &token);
        if served.status == 404 {
            assert_eq!(served.body["error"]["code"], "no_prediction_set");
            continue;
        }
        assert_eq!(served.status, 200, "{}", served.body);
        let stored = c.json(&["predictions", "show", id]);
        assert_eq!(served.body["version"], stored["version"]);
        for d in stored["predictions"].as_array().unwrap() {
            let code = d["code"].as_str().unwrap();
            // Mental-health diagnoses need the patient's consent; the others are all served.
            let Some(s) = served.body["predictions"].as_array().unwrap().iter().find(|s| s["code"] == code) else {
                assert!(code.starts_with('F'), "{code} missing for {id}");
                continue;
            };
            assert_eq!(s["probability"], d["probability"], "{id} {code}");
            assert_eq!(s["risk_band"], d["risk_band"]);
            assert_eq!(s["sources"].as_array().unwrap().len(), d["sources"].as_array().unwrap().len());
        }
        compared += 1;
    }
    assert!(compared >= 5, "compared {compared} sets");

    // The example patient's heatmap is served as a PNG to the doctor, and to nobody else.
    let example = demo["example"]["patient"].as_str().unwrap();
    let set = http.get(&format!("/api/v1/patients/{example}/predictions"), &token).body;
    let heat = set["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["heatmaps"].as_array().unwrap().iter())
        .next()
        .expect("a heatmap")["url"]
        .as_str()
        .unwrap()
        .to_string();
    let png = http.rt.block_on(async {
        http.client
            .get(format!("{}{heat}", server.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    });
    assert!(png.starts_with(b"\x89PNG"));

    // A doctor of another practice, made by the admin over the API: 403, not the data.
    let (admin, admin_pw) = login_of(demo, "admin");
    let admin = http.login(admin, admin_pw);
    let mine = &demo["logins"].as_array().unwrap()[0];
    assert_eq!(mine["role"], "doctor");
    let my_practice = http.get("/api/v1/users", &admin).body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == user)
        .unwrap()["provider"]
        .as_str()
        .unwrap()
        .to_string();
    let other_practice =
        (1..500).map(carelens_domain::ProviderId::from_number).find(|p| p.as_str() != my_practice).unwrap();
    let created = http.call(
        reqwest::Method::POST,
        "/api/v1/users",
        Some(&admin),
        Some(json!({"username": "dr.elsewhere", "password": "another long password", "role": "doctor", "provider": other_practice.as_str()})),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let other = http.login("dr.elsewhere", "another long password");
    let denied = http.get(&format!("/api/v1/patients/{example}/predictions"), &other);
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(denied.body["error"]["code"], "not_in_care");
    let denied = http.get(&heat, &other);
    assert_eq!(denied.status, 403);
}

// ---------------------------------------------------------------------------------------
// headless Chromium

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| std::path::Path::new(d).join(name)).find(|p| p.is_file())
}

/// Chromium and chromedriver, or `None` (the test skips) when they are not installed;
/// `CARELENS_REQUIRE_SERVERS` (set by `.ci/run`) makes that a failure.
fn chromium() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let (Some(chromium), Some(chromedriver)) = (which("chromium"), which("chromedriver")) else {
        assert!(
            std::env::var_os("CARELENS_REQUIRE_SERVERS").is_none(),
            "chromium and chromedriver are required (apt-get install chromium chromium-driver; .ci/run does)"
        );
        eprintln!("SKIPPED: chromium/chromedriver not installed (apt-get install chromium chromium-driver)");
        return None;
    };
    Some((chromium, chromedriver))
}

/// chromedriver and one Chromium session, both gone on drop.
struct Browser {
    driver: Child,
    http: Http,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.http.call(reqwest::Method::DELETE, &format!("/session/{}", self.session), None, None);
        self.driver.kill().ok();
        self.driver.wait().ok();
    }
}

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start(chromium: &std::path::Path, chromedriver: &std::path::Path) -> Browser {
        let port = crate::free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = Http::new(&format!("http://127.0.0.1:{port}"));
        let started = Instant::now();
        loop {
            let ready = http.rt.block_on(async {
                http.client
                    .get(format!("{}/status", http.base))
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            });
            if ready {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_str().unwrap(),
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                         "--disable-dev-shm-usage", "--window-size=1300,1400"]
            }
        }}});
        let r = http.call(reqwest::Method::POST, "/session", None, Some(caps));
        assert_eq!(r.status, 200, "new session: {}", r.body);
        let session = r.body["value"]["sessionId"].as_str().unwrap().to_string();
        Browser { driver, http, session }
    }

    fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let body = (!body.is_null()).then_some(body);
        let r = self.http.call(method, &format!("/session/{}{path}", self.session), None, body);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.body["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({"url": url}));
    }

    fn find(&self, css: &str) -> String {
        let v = self.cmd(reqwest::Method::POST, "/element", json!({"using": "css selector", "value": css}));
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {v}")).to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd(reqwest::Method::POST, &format!("/element/{e}/value"), json!({"text": text}));
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.cmd(reqwest::Method::POST, &format!("/element/{e}/click"), json!({}));
    }

    fn eval(&self, script: &str) -> Value {
        self.cmd(reqwest::Method::POST, "/execute/sync", json!({"script": script, "args": []}))
    }

    /// Waits until `script` returns something truthy.
    fn wait_for(&self, what: &str, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let v = self.eval(script);
            if !(v.is_null() || v == false || v == "" || v == 0) {
                return v;
            }
            let page = self.eval("return document.body.innerText");
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}; the page says:\n{page}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn screenshot(&self, path: &std::path::Path) {
        let b64 = self.cmd(reqwest::Method::GET, "/screenshot", Value::Null);
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

/// Where test artifacts (screenshots) go: `CARELENS_ARTIFACTS`, else `target/e2e-artifacts`.
fn artifacts() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("CARELENS_ARTIFACTS") {
        return d.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../target"));
    target.join("e2e-artifacts")
}

/// Sign in as the demo doctor, open the example patient, see the heatmap, confirm the
/// diagnosis it is evidence for; the verdict lands in the store. Screenshot saved.
#[test]
fn a_doctor_signs_in_sees_a_heatmap_and_confirms_a_diagnosis_in_chromium() {
    let Some((chromium, chromedriver)) = chromium() else { return };
    let models = super::predict::repo_models();
    let c = Carelens::new();
    let demo = c.json(&["--models", &models, "demo", "--patients", "300", "--no-serve"]);
    let patient = demo["example"]["patient"].as_str().expect("the demo has an example patient").to_string();
    let server = Server::start(&c, &models);
    let (user, password) = login_of(&demo, "doctor");
    let browser = Browser::start(&chromium, &chromedriver);

    browser.goto(&format!("{}/", server.url));
    browser.wait_for("the sign-in form", "return !document.querySelector('#login-view').hidden");
    browser.type_into("#username", user);
    browser.type_into("#password", password);
    browser.click("#signin");
    browser.wait_for("the patient list", "return document.querySelectorAll('a.patient-link').length");
    browser.goto(&format!("{}/#/patients/{patient}", server.url));
    let header = browser.wait_for("the patient page", "return document.querySelector('#patient-header').textContent");
    assert!(!header.as_str().unwrap().is_empty());
    // The heatmap of a card with a heatmap has loaded (a decoded image, not a broken one).
    let code = browser.wait_for(
        "a loaded heatmap",
        "const img = [...document.querySelectorAll('.prediction-card img.heatmap')].find(i => i.complete && i.naturalWidth > 0);
         return img ? img.closest('.prediction-card').dataset.code : null",
    );
    let code = code.as_str().unwrap().to_string();
    assert!(
        browser
            .wait_for("the timeline", "return document.querySelectorAll('#timeline li.entry').length")
            .as_u64()
            .unwrap()
            > 0
    );
    let selector = format!(".prediction-card[data-code='{code}'] button.confirm");
    let has_button = browser.eval(&format!("return !!document.querySelector(\"{selector}\")"));
    // Known diagnoses have no buttons; then confirm the first suggestion instead.
    let (selector, code) = if has_button == true {
        (selector, code)
    } else {
        let first = browser.eval("return document.querySelector('.prediction-card:not(.known)').dataset.code");
        let first = first.as_str().unwrap().to_string();
        (format!(".prediction-card[data-code='{first}'] button.confirm"), first)
    };
    browser.eval(&format!("document.querySelector(\"{selector}\").scrollIntoView()"));
    browser.click(&selector);
    browser.wait_for(
        "the confirmation",
        &format!("return document.querySelector(\".prediction-card[data-code='{code}'] .verdict\").textContent.includes('confirmed')"),
    );
    browser.eval("window.scrollTo(0, 0)");
    let shot = artifacts().join("doctor-view.png");
    browser.screenshot(&shot);
    eprintln!("screenshot: {}", shot.display());

    // An analyst in the same web view: population KPIs from the demo's snapshot, with a
    // server-drawn chart and a table that marks suppressed cells.
    browser.click("#signout");
    browser.wait_for("the sign-in form again", "return !document.querySelector('#login-view').hidden");
    browser.eval("document.querySelector('#username').value = ''");
    let (analyst, analyst_pw) = login_of(&demo, "analyst");
    browser.type_into("#username", analyst);
    browser.type_into("#password", analyst_pw);
    browser.click("#signin");
    browser.wait_for("the KPI catalogue", "return document.querySelectorAll('#kpi-name option').length");
    browser.eval(
        "const s = document.querySelector('#kpi-name'); s.value = 'vaccination_coverage'; s.dispatchEvent(new Event('change'))",
    );
    browser.wait_for(
        "a drawn chart with its table",
        "const i = document.querySelector('#kpi-chart');
         return i.complete && i.naturalWidth > 0 && document.querySelector('#kpi-status').textContent.startsWith('Vaccination')
           && document.querySelector('#kpi-table tbody').rows.length > 0",
    );
    let rows = browser.eval("return [...document.querySelectorAll('#kpi-table tbody tr')].map(r => r.textContent)");
    let rows: Vec<String> = rows.as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect();
    assert!(rows.iter().any(|r| r.starts_with("covid19_2") && r.contains('%')), "{rows:?}");
    let shot = artifacts().join("analyst-view.png");
    browser.screenshot(&shot);
    eprintln!("screenshot: {}", shot.display());

    // The verdict is in the store, attributed to the doctor.
    let http = Http::new(&server.url);
    let token = http.login(user, password);
    let set = http.get(&format!("/api/v1/patients/{patient}/predictions"), &token).body;
    let d = set["predictions"].as_array().unwrap().iter().find(|d| d["code"] == code.as_str()).unwrap();
    assert_eq!(d["feedback"], "confirmed", "{d}");
    drop(browser);
    drop(server);

    // The verdict is a training label: one anonymous row whose target says "yes".
    let category = &code[..3];
    let out = c.dir.path().join("feedback.csv");
    let r = c.json(&["export", "feedback", "--diagnosis", category, "--out", out.to_str().unwrap()]);
    assert_eq!(
        (r["rows"].as_u64(), r["confirmed"].as_u64(), r["rejected"].as_u64()),
        (Some(1), Some(1), Some(0)),
        "{r}"
    );
    let csv = std::fs::read_to_string(&out).unwrap();
    let target = format!("diagnosis_{category}");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == target).unwrap_or_else(|| panic!("no {target} in {header:?}"));
    assert_eq!(csv.lines().nth(1).unwrap().split(',').nth(col), Some("yes"));
    assert!(!csv.contains(&patient), "no Health IDs in the export");
    // A diagnosis nobody gave a verdict on says how to get some.
    let e = c.fails(&["export", "feedback", "--diagnosis", "K35", "--out", out.to_str().unwrap()], 1);
    assert!(e.contains("no feedback on K35") && e.contains(&format!("verdicts exist for {category} (1)")), "{e}");
}

/// A patient finds the demo doctor's practice in the booking page, books its first free
/// opening (sharing medication and allergies), sees it under "My appointments"; the doctor
/// then finds it in the practice calendar and confirms it. Screenshots saved.
#[test]
fn a_patient_books_in_chromium_and_the_doctor_confirms_it_in_the_calendar() {
    let Some((chromium, chromedriver)) = chromium() else { return };
    let models = super::predict::repo_models();
    let c = Carelens::new();
    let demo = c.json(&["--models", &models, "demo", "--patients", "200", "--no-serve"]);
    let server = Server::start(&c, &models);
    let http = Http::new(&server.url);
    let (doctor, doctor_pw) = login_of(&demo, "doctor");
    let (patient, patient_pw) = login_of(&demo, "patient");
    let dr_token = http.login(doctor, doctor_pw);
    let me = http.get("/api/v1/me", &dr_token).body;
    let practice = me["provider"].as_str().expect("the demo doctor has a practice").to_string();
    let p = http.get(&format!("/api/v1/providers/{practice}"), &dr_token).body;
    assert!(p["earliest"].is_string(), "the demo practice has free openings: {p}");

    let browser = Browser::start(&chromium, &chromedriver);
    browser.goto(&format!("{}/", server.url));
    browser.wait_for("the sign-in form", "return !document.querySelector('#login-view').hidden");
    browser.type_into("#username", patient);
    browser.type_into("#password", patient_pw);
    browser.click("#signin");
    browser.wait_for("search results", "return document.querySelectorAll('#bk-results li').length");
    // Narrow the search to the practice's specialty and postcode.
    browser.eval(&format!(
        "document.querySelector('#bk-specialty').value = {}; document.querySelector('#bk-radius').value = '5';",
        json!(p["specialty"])
    ));
    browser.type_into("#bk-near", p["postcode"].as_str().unwrap());
    browser.click("#bk-go");
    let card = format!("#bk-results li[data-provider='{practice}']");
    browser.wait_for("the practice among the results", &format!("return !!document.querySelector(\"{card}\")"));
    let text = browser.eval(&format!("return document.querySelector(\"{card}\").textContent")).to_string();
    assert!(text.contains(p["name"].as_str().unwrap()) && text.contains("next free"), "{text}");
    browser.click(&format!("{card} button.openings"));
    browser.wait_for("openings", "return document.querySelectorAll('#bk-days button.slot').length");
    browser.click("#bk-days button.slot");
    browser.wait_for("the booking form", "return !document.querySelector('#bk-confirm').hidden");
    let shared = browser.eval("return [...document.querySelectorAll('#bk-share input:checked')].map(i => i.value)");
    assert_eq!(shared, json!(["medication", "allergy"]), "mental health is never shared by default");
    browser.click("#bk-book");
    let status = browser.wait_for(
        "the booking",
        "const t = document.querySelector('#bk-book-status').textContent; return t && t !== 'Booking…' ? t : null",
    );
    assert!(status.as_str().unwrap().starts_with("Booked"), "{status}");
    let id = browser.wait_for(
        "the new appointment in the list",
        "const r = document.querySelector('#my-appointments tbody tr[data-id]'); return r ? r.dataset.id : null",
    );
    let id = id.as_str().unwrap().to_string();
    // The share is a consent the patient sees and can revoke at once.
    let row = format!("#my-consents tbody tr[data-provider='{practice}']");
    browser.wait_for("the share as a consent", &format!("return !!document.querySelector(\"{row}\")"));
    let shared = browser.eval(&format!("return document.querySelector(\"{row}\").textContent")).to_string();
    assert!(shared.contains("medication") && shared.contains("in force"), "{shared}");
    browser.eval("window.confirm = () => true");
    browser.click(&format!("{row} button.revoke"));
    browser.wait_for(
        "the revocation",
        &format!("const r = document.querySelector(\"{row}\"); return r && r.textContent.includes('revoked')"),
    );
    // The patient's access log lists who touched the record (the demo's prediction run, at least).
    browser.wait_for("the access log", "return document.querySelectorAll('#access-log tbody tr[data-seq]').length");
    // The patient reads their own record, all of it and then one category over a date range.
    let all = browser.wait_for(
        "the patient's own timeline",
        "const n = document.querySelectorAll('#my-record li.entry').length; return n ? n : null",
    );
    browser.eval(
        "document.querySelector('#mr-category').value = 'observation'; document.querySelector('#mr-from').value = '2000-01-01';",
    );
    browser.click("#mr-go");
    let kinds = browser.wait_for(
        "the filtered timeline",
        "const s = document.querySelector('#mr-status').textContent;
         return s.includes('entries') || s.startsWith('Nothing')
           ? [...document.querySelectorAll('#my-record li.entry')].map((li) => li.dataset.kind) : null",
    );
    let kinds: Vec<&str> = kinds.as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert!(kinds.len() as u64 <= all.as_u64().unwrap(), "{kinds:?}");
    assert!(kinds.iter().all(|k| ["observation", "document"].contains(k)), "{kinds:?}");
    browser.eval("document.querySelector('#my-record-filter').scrollIntoView()");
    let shot = artifacts().join("my-record.png");
    browser.screenshot(&shot);
    eprintln!("screenshot: {}", shot.display());
    // The patient downloads the record as FHIR; the download lands in the access log at once.
    browser.click("#download-record");
    browser.wait_for(
        "the record download",
        "return document.querySelector('#download-status').textContent.startsWith('Downloaded')",
    );
    browser.wait_for(
        "the export in the access log",
        "return [...document.querySelectorAll('#access-log tbody tr')].some((r) => r.textContent.includes('export'))",
    );
    browser.eval("document.querySelector('#bk-openings').scrollIntoView()");
    let shot = artifacts().join("booking-view.png");
    browser.screenshot(&shot);
    eprintln!("screenshot: {}", shot.display());

    // The doctor's calendar: week by week until the appointment shows, then confirm it.
    browser.click("#signout");
    browser.wait_for("the sign-in form again", "return !document.querySelector('#login-view').hidden");
    browser.eval("document.querySelector('#username').value = ''");
    browser.type_into("#username", doctor);
    browser.type_into("#password", doctor_pw);
    browser.click("#signin");
    browser.wait_for("the calendar link", "return !!document.querySelector('#nav a[href=\"#/calendar\"]')");
    browser.click("#nav a[href='#/calendar']");
    browser
        .wait_for("the calendar", "return document.querySelector('#cal-status').textContent.includes('appointments')");
    let row = format!("li.appt[data-id='{id}']");
    for _ in 0..14 {
        if browser.eval(&format!("return !!document.querySelector(\"{row}\")")) == true {
            break;
        }
        browser.eval("document.querySelector('#cal-status').textContent = ''");
        browser.click("#cal-next");
        browser.wait_for(
            "the next week",
            "return document.querySelector('#cal-status').textContent.includes('appointments')",
        );
    }
    let entry = browser.eval(&format!("return document.querySelector(\"{row}\").textContent")).to_string();
    assert!(entry.contains("booked"), "{entry}");
    browser.click(&format!("{row} button[data-status='confirmed']"));
    browser.wait_for(
        "the confirmation",
        &format!("const r = document.querySelector(\"{row}\"); return r && r.classList.contains('status-confirmed')"),
    );
    let shot = artifacts().join("calendar-view.png");
    browser.screenshot(&shot);
    eprintln!("screenshot: {}", shot.display());

    // A patient outside the practice: the doctor opens the record in an emergency.
    let everyone = c.json(&["patients", "--limit", "200"]);
    let stranger = everyone
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .find(|id| http.get(&format!("/api/v1/patients/{id}/history"), &dr_token).status == 403)
        .expect("a patient the demo practice does not treat");
    browser.goto(&format!("{}/#/patients/{stranger}", server.url));
    browser.wait_for("the emergency form", "return !!document.querySelector('#emergency-form')");
    browser.type_into("#emergency-reason", "unconscious in the emergency room, no relative reachable");
    browser.click("#emergency-form button");
    browser.wait_for("the record", "return document.querySelector('#patient-header').textContent");
    assert!(browser.eval("return !document.querySelector('#emergency-form')") == true);
    drop(browser);

    // The store agrees: confirmed, with the share grant and the messages queued.
    let pt_token = http.login(patient, patient_pw);
    let mine = http.get("/api/v1/appointments/mine", &pt_token).body;
    let a = mine.as_array().unwrap().iter().find(|a| a["id"] == id.as_str()).unwrap().clone();
    assert_eq!((a["provider"].as_str(), a["status"].as_str()), (Some(practice.as_str()), Some("confirmed")), "{a}");
    // The doctor's confirmation is in the patient's access log.
    let log = http.get("/api/v1/me/access-log", &pt_token).body;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["who"] == doctor && e["what"] == "appointments" && e["allowed"] == true),
        "{log}"
    );
    let out = c.json(&["notify", "status"]);
    assert!(out["pending"].as_u64().unwrap_or(0) >= 1, "{out}");
}
