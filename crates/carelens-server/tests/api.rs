//! The API through its router, on a real embedded store (SQLite + local objects in a temp
//! dir): sign-in, the access check, every error code a client can trigger, feedback, runs,
//! and the OpenAPI document against the real routes.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use carelens_domain::{
    AuditOutcome, Category, ConsentGrant, ConsentId, DiagnosisPrediction, EvidenceKind, EvidenceRef, Grantee, HealthId,
    MessageKind, MessageState, MessageSubject, ModelRef, Opening, OutboxMessage, PrescriptionId, Probability,
    Provenance, ProviderId, RiskBand, Role, SourceProbability, User, VisitType,
};
use carelens_server::{AppState, Claims, PredictionRunner, RunRequest, ServerConfig, TokenKey, hash_password, router};
use carelens_store::conformance::fixtures;
use carelens_store::{LocalObjects, ObjectStore, SqliteStore, Store, WriteBatch};
use chrono::Utc;
use serde_json::{Value, json};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery staple";

struct App {
    router: Router,
    store: Arc<dyn Store>,
    objects: Arc<dyn ObjectStore>,
    tokens: TokenKey,
    heatmap_digest: String,
    _dir: tempfile::TempDir,
}

/// A runner that waits until the test releases it.
struct GatedRunner {
    gate: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl PredictionRunner for GatedRunner {
    fn run(&self, request: &RunRequest, progress: &(dyn Fn(u64) + Sync)) -> Result<Value, String> {
        self.gate.lock().unwrap().recv().map_err(|e| e.to_string())?;
        let n = request.patients.as_ref().map_or(0, Vec::len) as u64;
        progress(n);
        Ok(json!({"considered": n, "new_sets": n}))
    }
}

fn in_care() -> HealthId {
    HealthId::from_number(1)
}
fn not_in_care() -> HealthId {
    HealthId::from_number(2)
}
fn consented() -> HealthId {
    HealthId::from_number(3)
}
fn no_set() -> HealthId {
    HealthId::from_number(4)
}

async fn user(store: &dyn Store, n: u128, name: &str, role: Role, provider: Option<ProviderId>) {
    let mut u: User = fixtures::user(n, name, role);
    u.password_hash = hash_password(PASSWORD).unwrap();
    u.provider = provider;
    store.put_user(&u).await.unwrap();
}

fn prediction(code: &str, p: f64, evidence: Vec<EvidenceRef>) -> DiagnosisPrediction {
    DiagnosisPrediction {
        code: code.parse().unwrap(),
        display: format!("diagnosis {code}"),
        probability: Probability::new(p).unwrap(),
        risk_band: if p >= 0.5 { RiskBand::High } else { RiskBand::Low },
        threshold: Some(0.5),
        known: false,
        sources: vec![SourceProbability {
            model: ModelRef { name: "chest-xray".into(), version: "1".into() },
            label: "consolidation".into(),
            probability: Probability::new(p).unwrap(),
            contribution: Some(0.7),
        }],
        evidence,
    }
}

async fn app_with(runner: Option<Arc<dyn PredictionRunner>>, config: ServerConfig) -> App {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("db.sqlite")).unwrap());
    let objects: Arc<dyn ObjectStore> = Arc::new(LocalObjects::open(dir.path().join("objects")).unwrap());
    app_on(store, objects, dir, runner, config).await
}

/// The same app on MongoDB + S3 (real servers on loopback), or `None` when they are not
/// installed (`CARELENS_REQUIRE_SERVERS` makes that a failure).
async fn app_on_servers() -> Option<(App, carelens_testkit::MongoServer, carelens_testkit::S3Server)> {
    let mongo = carelens_testkit::MongoServer::start().await?;
    let s3 = carelens_testkit::S3Server::start()?;
    s3.create_bucket("api");
    let store: Arc<dyn Store> = Arc::new(carelens_store::MongoStore::connect(&mongo.url("api")).await.unwrap());
    let objects: Arc<dyn ObjectStore> = Arc::new(
        carelens_store::S3Objects::connect(carelens_store::S3Config::s3_compatible(
            &s3.endpoint(),
            "api",
            &s3.access_key,
            &s3.secret_key,
        ))
        .await
        .unwrap(),
    );
    let app = app_on(store, objects, tempfile::tempdir().unwrap(), None, ServerConfig::default()).await;
    Some((app, mongo, s3))
}

async fn app_on(
    store: Arc<dyn Store>,
    objects: Arc<dyn ObjectStore>,
    dir: tempfile::TempDir,
    runner: Option<Arc<dyn PredictionRunner>>,
    config: ServerConfig,
) -> App {
    let mine = ProviderId::from_number(1);
    let other = ProviderId::from_number(2);
    let now = Utc::now();
    let batch = WriteBatch {
        providers: vec![fixtures::provider(1), fixtures::provider(2)],
        patients: (1..=4).map(fixtures::patient).collect(),
        history: vec![
            fixtures::diagnosis(1, &in_care(), fixtures::date(2024, 3, 1), "I10"),
            fixtures::observation(2, &in_care(), fixtures::date(2025, 6, 1), "4548-4", 7.1),
            fixtures::diagnosis(3, &in_care(), fixtures::date(2025, 1, 1), "F32"),
        ],
        appointments: vec![
            fixtures::appointment(1, &in_care(), &mine, now + chrono::Duration::days(3)),
            fixtures::appointment(2, &not_in_care(), &other, now + chrono::Duration::days(3)),
            fixtures::appointment(3, &no_set(), &mine, now - chrono::Duration::days(30)),
        ],
        ..WriteBatch::default()
    };
    store.apply(batch).await.unwrap();
    store
        .put_consent(&ConsentGrant {
            id: ConsentId::from_u128(1),
            patient: consented(),
            grantee: Grantee::Provider(mine.clone()),
            categories: vec![Category::Diagnosis],
            valid_from: now - chrono::Duration::days(1),
            valid_until: None,
            revoked_at: None,
            emergency_reason: None,
        })
        .await
        .unwrap();
    // The server streams the bytes without decoding them: a PNG signature is enough here.
    let png = b"\x89PNG\r\n\x1a\nheatmap".to_vec();
    let key = objects.put(png).await.unwrap();
    let digest = key.as_str().rsplit('/').next().unwrap().to_string();
    let mut set = fixtures::prediction_set(1, &in_care(), 1);
    set.predictions = vec![
        prediction(
            "J18",
            0.81,
            vec![EvidenceRef {
                kind: EvidenceKind::Heatmap,
                object_key: Some(key),
                detail: json!({"model": "chest-xray", "label": "consolidation", "method": "occlusion sensitivity", "max_logit_drop": 1.2}),
            }],
        ),
        prediction("F32", 0.6, vec![]),
        prediction("E11", 0.1, vec![]),
    ];
    store.put_prediction_set(&set).await.unwrap();
    let mut s3 = fixtures::prediction_set(2, &consented(), 1);
    s3.predictions = vec![prediction("E11", 0.3, vec![])];
    store.put_prediction_set(&s3).await.unwrap();
    user(&*store, 1, "dr.mine", Role::Doctor, Some(mine)).await;
    user(&*store, 2, "dr.other", Role::Doctor, Some(other)).await;
    user(&*store, 3, "ana.lyst", Role::Analyst, None).await;
    user(&*store, 4, "ml.eng", Role::MlEngineer, None).await;
    user(&*store, 5, "admin", Role::Admin, None).await;
    let tokens = TokenKey::random().unwrap();
    let models = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../models");
    let keys = carelens_records::keys::Keyring::new(carelens_records::keys::MasterKey::new([9; 32]), vec![]);
    let state = AppState::new(store.clone(), objects.clone(), models, tokens.clone(), config, runner)
        .with_analytics(dir.path().join("analytics"))
        .with_keys(keys);
    App { router: router(state), store, objects, tokens, heatmap_digest: digest, _dir: dir }
}

async fn app() -> App {
    app_with(None, ServerConfig::default()).await
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    bytes: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.bytes)))
    }
    #[track_caller]
    fn error(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(self.status, status, "{}", String::from_utf8_lossy(&self.bytes));
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "{v}");
        v["error"]["message"].as_str().unwrap().to_string()
    }
}

impl App {
    async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20).await.unwrap().to_vec();
        Resp { status, headers, bytes }
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b.header(header::CONTENT_TYPE, "application/json").body(Body::from(v.to_string())).unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        self.send(req).await
    }

    /// POSTs raw bytes with a content type and extra headers (document uploads).
    async fn upload(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        bytes: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, content_type);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Body::from(bytes)).unwrap()).await
    }

    async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn login(&self, name: &str) -> String {
        let r = self
            .call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": name, "password": PASSWORD})))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.bytes));
        r.json()["token"].as_str().unwrap().to_string()
    }

    async fn denied_audits(&self) -> usize {
        self.store.audit_log(0, 10_000).await.unwrap().iter().filter(|e| e.outcome == AuditOutcome::Denied).count()
    }
}

#[tokio::test]
async fn sign_in_issues_tokens_that_expire_and_cannot_be_forged() {
    let app = app().await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "dr.mine", "password": "wrong password!"})),
        )
        .await;
    r.error(StatusCode::UNAUTHORIZED, "bad_credentials");
    let r = app
        .call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": "nobody", "password": PASSWORD})))
        .await;
    r.error(StatusCode::UNAUTHORIZED, "bad_credentials");
    let token = app.login("dr.mine").await;
    let me = app.get("/api/v1/me", &token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["role"], "doctor");
    assert!(me.headers.contains_key("x-request-id"));

    app.call(Method::GET, "/api/v1/me", None, None).await.error(StatusCode::UNAUTHORIZED, "missing_token");
    app.get("/api/v1/me", "v1.00.00").await.error(StatusCode::UNAUTHORIZED, "invalid_token");
    let expired = app.tokens.sign(&Claims {
        sub: carelens_domain::UserId::from_u128(1),
        name: "dr.mine".into(),
        role: Role::Doctor,
        provider: Some(ProviderId::from_number(1)),
        patient: None,
        exp: Utc::now().timestamp() - 1,
    });
    app.get("/api/v1/me", &expired).await.error(StatusCode::UNAUTHORIZED, "token_expired");
    // A token of another server's key is refused.
    let foreign = TokenKey::random().unwrap().sign(&Claims {
        sub: carelens_domain::UserId::from_u128(5),
        name: "admin".into(),
        role: Role::Admin,
        provider: None,
        patient: None,
        exp: Utc::now().timestamp() + 600,
    });
    app.get("/api/v1/users", &foreign).await.error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn a_doctor_sees_patients_in_care_and_nobody_else_and_denials_are_audited() {
    let app = app().await;
    let token = app.login("dr.mine").await;

    let list = app.get("/api/v1/patients", &token).await;
    assert_eq!(list.status, StatusCode::OK);
    let ids: Vec<String> =
        list.json()["patients"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, vec![in_care().as_str().to_string(), no_set().as_str().to_string()], "next visit first");
    let search = app.get(&format!("/api/v1/patients?q={}", &no_set().as_str()[..8].to_lowercase()), &token).await;
    assert!(search.json()["patients"].as_array().unwrap().iter().any(|p| p["id"] == no_set().as_str()));

    let set = app.get(&format!("/api/v1/patients/{}/predictions", in_care().as_str()), &token).await;
    assert_eq!(set.status, StatusCode::OK, "{}", String::from_utf8_lossy(&set.bytes));
    let set = set.json();
    let codes: Vec<&str> = set["predictions"].as_array().unwrap().iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["J18", "E11"], "highest first; F32 (mental health) hidden without consent");
    let heat = &set["predictions"][0]["heatmaps"][0];
    assert_eq!(heat["url"], format!("/api/v1/patients/{}/evidence/{}", in_care().as_str(), app.heatmap_digest));
    assert_eq!(set["predictions"][0]["threshold"], 0.5);
    let png = app.get(heat["url"].as_str().unwrap(), &token).await;
    assert_eq!(png.status, StatusCode::OK);
    assert_eq!(png.headers[header::CONTENT_TYPE], "image/png");
    assert!(png.bytes.starts_with(b"\x89PNG"));
    app.get(&format!("/api/v1/patients/{}/evidence/{}", in_care().as_str(), "ab".repeat(32)), &token)
        .await
        .error(StatusCode::NOT_FOUND, "evidence_not_found");

    // Consent opens the diagnosis category only: predictions yes, labs no.
    let s = app.get(&format!("/api/v1/patients/{}/predictions", consented().as_str()), &token).await;
    assert_eq!(s.status, StatusCode::OK);
    let tl = app.get(&format!("/api/v1/patients/{}/history", consented().as_str()), &token).await.json();
    assert!(tl["hidden_categories"].as_array().unwrap().iter().any(|c| c == "observation"));

    let before = app.denied_audits().await;
    let msg = app
        .get(&format!("/api/v1/patients/{}/predictions", not_in_care().as_str()), &token)
        .await
        .error(StatusCode::FORBIDDEN, "not_in_care");
    assert!(msg.contains("no appointment with your practice"), "{msg}");
    app.get(&format!("/api/v1/patients/{}/evidence/{}", not_in_care().as_str(), app.heatmap_digest), &token)
        .await
        .error(StatusCode::FORBIDDEN, "not_in_care");
    // The other doctor cannot open this doctor's patient, nor the heatmap by its URL.
    let other = app.login("dr.other").await;
    app.get(heat["url"].as_str().unwrap(), &other).await.error(StatusCode::FORBIDDEN, "not_in_care");
    let analyst = app.login("ana.lyst").await;
    app.get(&format!("/api/v1/patients/{}/predictions", in_care().as_str()), &analyst)
        .await
        .error(StatusCode::FORBIDDEN, "forbidden_role");
    app.get("/api/v1/patients", &analyst).await.error(StatusCode::FORBIDDEN, "forbidden_role");
    assert_eq!(app.denied_audits().await, before + 5, "every denial is in the audit log");
    let log = app.store.audit_log(0, 10_000).await.unwrap();
    assert!(log.iter().any(|e| e.outcome == AuditOutcome::Denied && e.patient.as_ref() == Some(&not_in_care())));
    assert!(carelens_domain::verify_chain(&log, carelens_domain::GENESIS_HASH.to_string()).is_ok());

    app.get("/api/v1/patients/CLH-not-an-id/predictions", &token)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_health_id");
    app.get(&format!("/api/v1/patients/{}/predictions", HealthId::from_number(999).as_str()), &token)
        .await
        .error(StatusCode::NOT_FOUND, "patient_not_found");
    let msg = app
        .get(&format!("/api/v1/patients/{}/predictions", no_set().as_str()), &token)
        .await
        .error(StatusCode::NOT_FOUND, "no_prediction_set");
    assert!(msg.contains("carelens predict"), "{msg}");

    let tl = app.get(&format!("/api/v1/patients/{}/history", in_care().as_str()), &token).await;
    assert_eq!(tl.status, StatusCode::OK);
    let tl = tl.json();
    let kinds: Vec<&str> = tl["entries"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["prediction_set", "observation", "diagnosis"], "newest first, the F32 diagnosis hidden: {tl}");
    assert_eq!(tl["entries"][0]["title"], "Predicted diagnoses, version 1", "{tl}");
    assert_eq!(tl["hidden_categories"], json!(["mental_health"]));
    // Filtered by category and date.
    let kinds_of = |query: &'static str| {
        let app = &app;
        let token = &token;
        async move {
            let tl = app.get(&format!("/api/v1/patients/{}/history?{query}", in_care().as_str()), token).await.json();
            tl["entries"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(kinds_of("category=diagnosis").await, ["prediction_set", "diagnosis"]);
    assert_eq!(kinds_of("from=2025-01-01&to=2025-12-31").await, ["observation"]);
    assert_eq!(kinds_of("to=2024-12-31").await, ["diagnosis"]);
    app.get(&format!("/api/v1/patients/{}/history?from=2025-02-01&to=2025-01-01", in_care().as_str()), &token)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    app.get(&format!("/api/v1/patients/{}/history?category=gossip", in_care().as_str()), &token)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test]
async fn feedback_is_checked_stored_audited_and_shown() {
    let app = app_with(None, ServerConfig { max_body_bytes: 4096, ..ServerConfig::default() }).await;
    let token = app.login("dr.mine").await;
    let url = format!("/api/v1/patients/{}/feedback", in_care().as_str());
    let post = |body: Value| app.call(Method::POST, &url, Some(&token), Some(body));

    let r = post(json!({"set_version": 1, "code": "J18", "verdict": "confirmed", "comment": "matches the film"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let stored = app.store.all_feedback().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].code.as_str(), "J18");
    assert_eq!(stored[0].doctor, carelens_domain::UserId::from_u128(1));
    let set = app.get(&format!("/api/v1/patients/{}/predictions", in_care().as_str()), &token).await.json();
    assert_eq!(set["predictions"][0]["feedback"], "confirmed");
    assert!(app.store.audit_log(0, 1000).await.unwrap().iter().any(|e| e.resource.starts_with("feedback/")));

    post(json!({"set_version": 1, "code": "J18", "verdict": "maybe"}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    post(json!({"set_version": 1, "code": "not-icd", "verdict": "rejected"}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    post(json!({"set_version": 9, "code": "J18", "verdict": "rejected"}))
        .await
        .error(StatusCode::NOT_FOUND, "prediction_not_found");
    post(json!({"set_version": 1, "code": "I25", "verdict": "rejected"}))
        .await
        .error(StatusCode::NOT_FOUND, "prediction_not_found");
    // F32 is in the set but hidden from this doctor: as good as absent.
    post(json!({"set_version": 1, "code": "F32", "verdict": "rejected"}))
        .await
        .error(StatusCode::NOT_FOUND, "prediction_not_found");
    let msg = post(json!({"set_version": 1, "code": "J18"}))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_json_fields");
    assert!(msg.contains("verdict"), "{msg}");
    post(json!({"set_version": 1, "code": "J18", "verdict": "rejected", "comment": "x".repeat(2500)}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    post(json!({"set_version": 1, "code": "J18", "verdict": "rejected", "comment": "x".repeat(5000)}))
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let raw = Request::builder()
        .method(Method::POST)
        .uri(&url)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"set_version\": 1,"))
        .unwrap();
    app.send(raw).await.error(StatusCode::BAD_REQUEST, "malformed_json");
    let raw = Request::builder()
        .method(Method::POST)
        .uri(&url)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from("{}"))
        .unwrap();
    app.send(raw).await.error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let other = app.login("dr.other").await;
    app.call(Method::POST, &url, Some(&other), Some(json!({"set_version": 1, "code": "J18", "verdict": "rejected"})))
        .await
        .error(StatusCode::FORBIDDEN, "not_in_care");
    assert_eq!(app.store.all_feedback().await.unwrap().len(), 1, "nothing else was stored");
}

#[tokio::test]
async fn ml_engineers_list_models_and_run_predictions_in_the_background() {
    let (release, gate) = std::sync::mpsc::channel();
    let app = app_with(Some(Arc::new(GatedRunner { gate: Mutex::new(gate) })), ServerConfig::default()).await;
    let ml = app.login("ml.eng").await;
    let models = app.get("/api/v1/models", &ml).await;
    assert_eq!(models.status, StatusCode::OK);
    let models = models.json();
    let names: Vec<&str> = models["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"chest-xray") && names.contains(&"fusion"), "{names:?}");
    let cxr = app.get("/api/v1/models/chest-xray", &ml).await.json();
    assert_eq!(cxr["kind"], "image");
    assert!(cxr["validation"][0]["auroc"].as_f64().unwrap() > 0.5);
    app.get("/api/v1/models/no-such-model", &ml).await.error(StatusCode::NOT_FOUND, "model_not_found");

    let doctor = app.login("dr.mine").await;
    app.call(Method::POST, "/api/v1/prediction-runs", Some(&doctor), Some(json!({})))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden_role");
    app.call(Method::POST, "/api/v1/prediction-runs", Some(&ml), Some(json!({"patients": ["nope"]})))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_health_id");
    let started = app
        .call(Method::POST, "/api/v1/prediction-runs", Some(&ml), Some(json!({"patients": [in_care().as_str()]})))
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED);
    let id = started.json()["id"].as_u64().unwrap();
    app.call(Method::POST, "/api/v1/prediction-runs", Some(&ml), Some(json!({})))
        .await
        .error(StatusCode::CONFLICT, "job_running");
    release.send(()).unwrap();
    let mut state = String::new();
    for _ in 0..200 {
        let r = app.get(&format!("/api/v1/prediction-runs/{id}"), &ml).await.json();
        state = r["state"].as_str().unwrap().to_string();
        if state != "running" {
            assert_eq!(r["report"]["new_sets"], 1);
            assert_eq!(r["patients_done"], 1);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state, "succeeded");
    app.get("/api/v1/prediction-runs/77", &ml).await.error(StatusCode::NOT_FOUND, "job_not_found");
    assert_eq!(app.get("/api/v1/prediction-runs", &ml).await.json()["runs"].as_array().unwrap().len(), 1);

    // Without a runner the server says how to get one.
    let bare = app_with(None, ServerConfig::default()).await;
    let ml = bare.login("ml.eng").await;
    let msg = bare
        .call(Method::POST, "/api/v1/prediction-runs", Some(&ml), Some(json!({})))
        .await
        .error(StatusCode::CONFLICT, "no_models");
    assert!(msg.contains("--models"), "{msg}");
}

#[tokio::test]
async fn admins_create_users_with_hashed_passwords() {
    let app = app().await;
    let admin = app.login("admin").await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(json!({"username": "dr.new", "password": PASSWORD, "role": "doctor", "provider": ProviderId::from_number(1).as_str()})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    assert!(!String::from_utf8_lossy(&r.bytes).contains("argon2"), "no hash on the wire");
    let stored = app.store.user_by_name("dr.new").await.unwrap().unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$"));
    let again = app
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(json!({"username": "dr.new", "password": "a long enough secret", "role": "analyst"})),
        )
        .await;
    again.error(StatusCode::CONFLICT, "username_taken");
    app.call(
        Method::POST,
        "/api/v1/users",
        Some(&admin),
        Some(json!({"username": "dr.x", "password": "short", "role": "analyst"})),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "invalid_input");
    app.call(
        Method::POST,
        "/api/v1/users",
        Some(&admin),
        Some(json!({"username": "dr.y", "password": "a long enough secret", "role": "doctor"})),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "invalid_input");
    let doctor = app.login("dr.new").await;
    app.get("/api/v1/users", &doctor).await.error(StatusCode::FORBIDDEN, "forbidden_role");
    assert_eq!(app.get("/api/v1/users", &admin).await.json()["users"].as_array().unwrap().len(), 6);
}

/// Every operation in `/openapi.json` is served by the router (no 404/405), and the routes
/// the router serves under `/api` are all documented.
#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let app = app().await;
    let doc = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    operations.sort();
    assert_eq!(
        operations,
        [
            "GET /api/v1/appointments/mine",
            "GET /api/v1/calendar",
            "GET /api/v1/care-teams",
            "GET /api/v1/kpis",
            "GET /api/v1/kpis/{name}",
            "GET /api/v1/kpis/{name}/chart.svg",
            "GET /api/v1/me",
            "GET /api/v1/me/access-log",
            "GET /api/v1/me/consents",
            "GET /api/v1/me/signing-keys",
            "GET /api/v1/models",
            "GET /api/v1/models/{name}",
            "GET /api/v1/patients",
            "GET /api/v1/patients/{id}/documents",
            "GET /api/v1/patients/{id}/documents/{doc}",
            "GET /api/v1/patients/{id}/documents/{doc}/verify",
            "GET /api/v1/patients/{id}/evidence/{digest}",
            "GET /api/v1/patients/{id}/fhir",
            "GET /api/v1/patients/{id}/history",
            "GET /api/v1/patients/{id}/predictions",
            "GET /api/v1/patients/{id}/prescriptions",
            "GET /api/v1/prediction-runs",
            "GET /api/v1/prediction-runs/{run}",
            "GET /api/v1/providers/search",
            "GET /api/v1/providers/{id}",
            "GET /api/v1/providers/{id}/openings",
            "GET /api/v1/providers/{id}/reviews",
            "GET /api/v1/schedule/closures",
            "GET /api/v1/schedule/rules",
            "GET /api/v1/users",
            "GET /healthz",
            "GET /readyz",
            "POST /api/v1/appointments",
            "POST /api/v1/appointments/{id}/reschedule",
            "POST /api/v1/appointments/{id}/status",
            "POST /api/v1/auth/login",
            "POST /api/v1/care-teams",
            "POST /api/v1/me/consents",
            "POST /api/v1/me/consents/{id}/revoke",
            "POST /api/v1/me/signing-keys",
            "POST /api/v1/patients/{id}/documents",
            "POST /api/v1/patients/{id}/emergency-access",
            "POST /api/v1/patients/{id}/feedback",
            "POST /api/v1/patients/{id}/history",
            "POST /api/v1/patients/{id}/history/{entry}/correct",
            "POST /api/v1/patients/{id}/prescriptions",
            "POST /api/v1/patients/{id}/prescriptions/check",
            "POST /api/v1/patients/{id}/prescriptions/{rx}/dispense",
            "POST /api/v1/patients/{id}/prescriptions/{rx}/refill-request",
            "POST /api/v1/prediction-runs",
            "POST /api/v1/providers/{id}/reviews",
            "POST /api/v1/schedule/closures",
            "POST /api/v1/schedule/closures/{id}/withdraw",
            "POST /api/v1/schedule/rules",
            "POST /api/v1/schedule/rules/{id}/end",
            "POST /api/v1/users",
            "PUT /api/v1/patients/{id}/prescriptions/{rx}/reminders",
        ]
    );
    for op in &operations {
        let (method, path) = op.split_once(' ').unwrap();
        let path = path
            .replace("{id}", in_care().as_str())
            .replace("{digest}", &"0".repeat(64))
            .replace("{doc}", "00000000-0000-0000-0000-000000000000")
            .replace("{entry}", "00000000-0000-0000-0000-000000000000")
            .replace("{rx}", "00000000-0000-0000-0000-000000000000")
            .replace("{name}", "x")
            .replace("{run}", "1");
        let r = app.call(method.parse().unwrap(), &path, None, None).await;
        let code = if r.bytes.is_empty() { Value::Null } else { r.json()["error"]["code"].clone() };
        assert!(code != "route_not_found" && code != "method_not_allowed", "{op}: {code}");
        // Every documented status of this operation is a real one; every response is JSON.
        assert!(r.status.is_success() || r.status.is_client_error(), "{op}: {}", r.status);
    }
    app.call(Method::GET, "/api/v1/nothing", None, None).await.error(StatusCode::NOT_FOUND, "route_not_found");
    app.call(Method::DELETE, "/api/v1/me", None, None)
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn health_and_the_web_view() {
    let app = app().await;
    assert_eq!(app.call(Method::GET, "/healthz", None, None).await.json()["status"], "ok");
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.json()["store"], "sqlite");
    let page = app.call(Method::GET, "/", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&page.bytes).contains("/assets/app.js"));
    assert!(page.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("script-src 'self'"));
    let js = app.call(Method::GET, "/assets/app.js", None, None).await;
    assert!(js.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/javascript"));
    assert!(!String::from_utf8_lossy(&js.bytes).contains("innerHTML"), "text goes in through textContent only");
}

#[tokio::test]
async fn analysts_get_kpis_with_suppression_and_doctors_do_not() {
    let app = app().await;
    let analyst = app.login("ana.lyst").await;
    let doctor = app.login("dr.mine").await;
    // Before any snapshot: the catalogue says so, a KPI is a clear conflict.
    let cat = app.get("/api/v1/kpis", &analyst).await;
    assert_eq!(cat.status, StatusCode::OK);
    assert!(cat.json()["snapshot"].is_null());
    assert!(cat.json()["kpis"].as_array().unwrap().iter().any(|k| k["name"] == "prevalence"));
    let msg = app.get("/api/v1/kpis/prevalence", &analyst).await.error(StatusCode::CONFLICT, "no_snapshot");
    assert!(msg.contains("carelens export analytics"), "{msg}");
    // Export a snapshot of the four patients.
    let out = app._dir.path().join("snapshot-out");
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
    carelens_server::kpis::export_snapshot(
        &*app.store,
        &*app.objects,
        &out,
        as_of,
        b"0123456789abcdef",
        false,
        &|_, _| {},
    )
    .await
    .unwrap();
    let cat = app.get("/api/v1/kpis", &analyst).await.json();
    assert_eq!(cat["snapshot"]["persons"], 4);
    assert_eq!(cat["min_k"], 11);
    // Four persons: every cell is suppressed, and says so.
    let r = app.get("/api/v1/kpis/prevalence?by=sex", &analyst).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.bytes));
    let v = r.json();
    let rows = v["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["suppressed"] == true && r["value"].is_null()), "{v}");
    assert!(v["sql"].as_str().unwrap().contains("FROM events"));
    let csv = app.get("/api/v1/kpis/prevalence?by=sex&format=csv", &analyst).await;
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(String::from_utf8_lossy(&csv.bytes).starts_with("code,chapter,sex,value,"));
    let svg = app.get("/api/v1/kpis/prevalence/chart.svg?by=sex", &analyst).await;
    assert_eq!(svg.headers[header::CONTENT_TYPE], "image/svg+xml");
    assert!(String::from_utf8_lossy(&svg.bytes).contains("<svg"));
    // Bad requests.
    app.get("/api/v1/kpis/prevalance", &analyst).await.error(StatusCode::NOT_FOUND, "kpi_not_found");
    let msg =
        app.get("/api/v1/kpis/prevalence?by=specialty", &analyst).await.error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(msg.contains("specialty"), "{msg}");
    app.get("/api/v1/kpis/prevalence?k=3", &analyst).await.error(StatusCode::BAD_REQUEST, "invalid_input");
    app.get("/api/v1/kpis/no_show_rate?from=2026-05-01&to=2026-01-01", &analyst)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    // Doctors see their own patients, not population tables.
    let before = app.denied_audits().await;
    app.get("/api/v1/kpis", &doctor).await.error(StatusCode::FORBIDDEN, "forbidden_role");
    app.get("/api/v1/kpis/prevalence", &doctor).await.error(StatusCode::FORBIDDEN, "forbidden_role");
    assert_eq!(app.denied_audits().await, before + 2);
}

async fn patient_user(store: &dyn Store, n: u128, name: &str, patient: HealthId) {
    let mut u: User = fixtures::user(n, name, Role::Patient);
    u.password_hash = hash_password(PASSWORD).unwrap();
    u.patient = Some(patient);
    store.put_user(&u).await.unwrap();
}

impl App {
    async fn book(&self, token: &str, key: Option<&str>, body: Value) -> Resp {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/appointments")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(k) = key {
            b = b.header("idempotency-key", k);
        }
        self.send(b.body(Body::from(body.to_string())).unwrap()).await
    }
}

#[tokio::test]
async fn patients_search_book_once_move_and_cancel_and_doctors_keep_the_calendar() {
    let app = app().await;
    patient_user(&*app.store, 10, "pat.one", not_in_care()).await;
    patient_user(&*app.store, 11, "pat.two", no_set()).await;
    let mut with_mail = app.store.user_by_name("pat.one").await.unwrap().unwrap();
    with_mail.email = Some("pat.one@example.org".into());
    app.store.put_user(&with_mail).await.unwrap();
    let (one, two) = (app.login("pat.one").await, app.login("pat.two").await);
    let (dr, other_dr) = (app.login("dr.mine").await, app.login("dr.other").await);
    let p1 = ProviderId::from_number(1);
    // Openings of provider 1 in two days, on whole minutes.
    let base = Utc::now() + chrono::Duration::days(2);
    let base = base
        - chrono::Duration::seconds(base.timestamp() % 60)
        - chrono::Duration::nanoseconds(base.timestamp_subsec_nanos() as i64);
    let at = |m: i64| base + chrono::Duration::minutes(m);
    let opening = |start: chrono::DateTime<Utc>| Opening {
        provider: p1.clone(),
        start,
        end: start + chrono::Duration::minutes(15),
        visit_type: VisitType::FollowUp,
        insurance: vec![],
        sources: vec![Provenance::Own],
    };
    let soon = Utc::now() + chrono::Duration::minutes(30);
    let soon = soon - chrono::Duration::nanoseconds(soon.timestamp_subsec_nanos() as i64);
    app.store.replace_openings(&[opening(soon), opening(at(0)), opening(at(15)), opening(at(30))]).await.unwrap();

    // Search: provider 1 has openings and ranks first; provider 2 has none.
    let r = app.get("/api/v1/providers/search?near=M%C3%BCnchen&radius_km=20", &one).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.bytes));
    let v = r.json();
    assert_eq!(v["total"], 2, "{v}");
    assert_eq!(v["hits"][0]["id"], p1.as_str());
    assert!(v["hits"][0]["earliest"].is_string() && v["hits"][1]["earliest"].is_null(), "{v}");
    app.get("/api/v1/providers/search?near=Atlantis", &one).await.error(StatusCode::BAD_REQUEST, "invalid_input");
    app.get("/api/v1/providers/search?specialty=magic", &one).await.error(StatusCode::BAD_REQUEST, "invalid_input");

    let openings =
        |v: Value| v.as_array().unwrap().iter().map(|o| o["start"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let window = format!("/api/v1/providers/{}/openings?from={}&to={}", p1, urlencode(at(-60)), urlencode(at(120)));
    assert_eq!(openings(app.get(&window, &one).await.json()).len(), 3);
    app.get("/api/v1/providers/PRV-nope/openings", &one).await.error(StatusCode::BAD_REQUEST, "invalid_input");

    // Booking needs a key; a retry with the key books once; the key cannot be reused elsewhere.
    let req = json!({"provider": p1.as_str(), "start": at(0), "share": ["medication", "allergy"]});
    app.book(&one, None, req.clone()).await.error(StatusCode::BAD_REQUEST, "missing_idempotency_key");
    app.book(&one, Some("k-0"), json!({"provider": p1.as_str(), "start": at(0), "share": ["gossip"]}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    let first = app.book(&one, Some("k-1"), req.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&first.bytes));
    let booked = first.json();
    assert_eq!(booked["shared"], json!(["medication", "allergy"]));
    assert_eq!(booked["notifications"], json!(["confirmation", "reminder_24h", "reminder_2h"]));
    let retry = app.book(&one, Some("k-1"), req.clone()).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(retry.json()["id"], first.json()["id"]);
    // The share is a consent grant to the booked practice until 30 days after the visit; the
    // retry neither duplicates it nor the messages.
    let appt_id: carelens_domain::AppointmentId = booked["id"].as_str().unwrap().parse().unwrap();
    let grants: Vec<_> = app
        .store
        .consents_for(&not_in_care())
        .await
        .unwrap()
        .into_iter()
        .filter(|g| g.grantee == carelens_domain::Grantee::Provider(p1.clone()))
        .collect();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0].categories, [carelens_domain::Category::Medication, carelens_domain::Category::Allergy]);
    assert_eq!(grants[0].valid_until, Some(at(15) + chrono::Duration::days(30)));
    let messages = app.store.messages_for(&appt_id.into()).await.unwrap();
    assert_eq!(messages.len(), 3);
    assert!(messages.iter().all(|m| m.to == "pat.one@example.org"));
    app.book(&one, Some("k-1"), json!({"provider": p1.as_str(), "start": at(15)}))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
    assert_eq!(openings(app.get(&window, &one).await.json()).len(), 2, "the booked slot is no longer offered");
    // The search directory follows the booking at once: the next free opening is 15 min later.
    let v = app.get("/api/v1/providers/search?near=M%C3%BCnchen&radius_km=20", &one).await.json();
    assert_eq!(v["hits"][0]["earliest"], json!(at(15)), "{v}");
    let p = app.get(&format!("/api/v1/providers/{p1}"), &one).await.json();
    assert_eq!((p["name"].as_str(), &p["earliest"]), (Some("Praxis 1"), &json!(at(15))), "{p}");
    app.get("/api/v1/providers/PRV-nope", &one).await.error(StatusCode::BAD_REQUEST, "invalid_input");
    // Someone else cannot take it; too-soon openings and non-patients are refused.
    app.book(&two, Some("k-2"), req.clone()).await.error(StatusCode::CONFLICT, "slot_taken");
    app.book(&two, Some("k-3"), json!({"provider": p1.as_str(), "start": soon}))
        .await
        .error(StatusCode::CONFLICT, "too_short_notice");
    app.book(&dr, Some("k-4"), req.clone()).await.error(StatusCode::FORBIDDEN, "forbidden_role");
    app.book(&two, Some("k-5"), json!({"provider": p1.as_str(), "start": "yesterday"}))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_json_fields");

    // Rescheduling moves atomically and frees the old slot.
    let id = first.json()["id"].as_str().unwrap().to_owned();
    let moved = app
        .call(
            Method::POST,
            &format!("/api/v1/appointments/{id}/reschedule"),
            Some(&one),
            Some(json!({"start": at(30)})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", String::from_utf8_lossy(&moved.bytes));
    // The old time's messages are cancelled; the new time has its own.
    let state_counts = |ms: &[carelens_domain::OutboxMessage]| {
        let n = |s| ms.iter().filter(|m| m.state == s).count();
        (n(carelens_domain::MessageState::Pending), n(carelens_domain::MessageState::Cancelled))
    };
    let messages = app.store.messages_for(&appt_id.into()).await.unwrap();
    assert_eq!(state_counts(&messages), (3, 3));
    assert!(messages.iter().filter(|m| m.state == carelens_domain::MessageState::Pending).all(|m| m.start == at(30)));
    let free = openings(app.get(&window, &one).await.json());
    assert_eq!(free.len(), 2);
    assert!(free.iter().any(|s| s.starts_with(&at(0).format("%Y-%m-%dT%H:%M").to_string())), "{free:?}");
    // Other people's appointments are invisible.
    let status = |t: &str| json!({"status": t});
    app.call(Method::POST, &format!("/api/v1/appointments/{id}/status"), Some(&two), Some(status("cancelled")))
        .await
        .error(StatusCode::NOT_FOUND, "appointment_not_found");
    app.call(Method::POST, &format!("/api/v1/appointments/{id}/status"), Some(&other_dr), Some(status("confirmed")))
        .await
        .error(StatusCode::NOT_FOUND, "appointment_not_found");
    // The practice sees it in its calendar and confirms it; the patient may only cancel.
    let cal = app.get("/api/v1/calendar", &dr).await.json();
    assert!(cal.as_array().unwrap().iter().any(|a| a["id"] == id.as_str()), "{cal}");
    let c = app
        .call(Method::POST, &format!("/api/v1/appointments/{id}/status"), Some(&dr), Some(status("confirmed")))
        .await;
    assert_eq!(c.json()["status"], "confirmed");
    app.call(Method::POST, &format!("/api/v1/appointments/{id}/status"), Some(&one), Some(status("completed")))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden_role");
    let cancelled = app
        .call(Method::POST, &format!("/api/v1/appointments/{id}/status"), Some(&one), Some(status("cancelled")))
        .await;
    assert_eq!(cancelled.json()["status"], "cancelled");
    // Reminders go; the cancellation is announced.
    let messages = app.store.messages_for(&appt_id.into()).await.unwrap();
    assert_eq!(state_counts(&messages), (1, 6));
    assert!(
        messages.iter().any(|m| m.kind == carelens_domain::MessageKind::Cancellation
            && m.state == carelens_domain::MessageState::Pending)
    );
    app.call(Method::POST, &format!("/api/v1/appointments/{id}/status"), Some(&dr), Some(status("confirmed")))
        .await
        .error(StatusCode::CONFLICT, "bad_transition");
    let mine = app.get("/api/v1/appointments/mine", &one).await.json();
    // The fixture's earlier appointment with another practice, and this one.
    let this = mine.as_array().unwrap().iter().find(|a| a["id"] == id.as_str()).unwrap();
    assert_eq!(this["status"], "cancelled");
    app.get("/api/v1/calendar", &one).await.error(StatusCode::FORBIDDEN, "forbidden_role");

    // Reviews: only after a completed visit; one per patient (a second replaces the first);
    // listed without the reviewer.
    let reviews = format!("/api/v1/providers/{p1}/reviews");
    let before = app.get(&reviews, &two).await.json();
    let review = |stars: u8| json!({"stars": stars, "text": "Kurze Wartezeit, sehr freundlich."});
    app.call(Method::POST, &reviews, Some(&one), Some(review(5)))
        .await
        .error(StatusCode::FORBIDDEN, "review_needs_visit");
    let visit = app.book(&one, Some("k-visit"), json!({"provider": p1.as_str(), "start": at(0)})).await;
    assert_eq!(visit.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&visit.bytes));
    let vid = visit.json()["id"].as_str().unwrap().to_owned();
    for s in ["confirmed", "checked_in", "completed"] {
        let r = app.call(Method::POST, &format!("/api/v1/appointments/{vid}/status"), Some(&dr), Some(status(s))).await;
        assert_eq!(r.status, StatusCode::OK, "{s}: {}", String::from_utf8_lossy(&r.bytes));
    }
    app.call(Method::POST, &reviews, Some(&two), Some(review(1)))
        .await
        .error(StatusCode::FORBIDDEN, "review_needs_visit");
    app.call(Method::POST, &reviews, Some(&one), Some(review(6))).await.error(StatusCode::BAD_REQUEST, "invalid_input");
    app.call(Method::POST, &reviews, Some(&dr), Some(review(5))).await.error(StatusCode::FORBIDDEN, "forbidden_role");
    let n0 = before["items"].as_array().unwrap().len() as u64;
    let r = app.call(Method::POST, &reviews, Some(&one), Some(review(5))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    assert_eq!(r.json()["reviews"].as_u64(), Some(n0 + 1));
    let r = app.call(Method::POST, &reviews, Some(&one), Some(review(1))).await;
    let after = r.json();
    assert_eq!(after["reviews"].as_u64(), Some(n0 + 1), "a second review replaces the first");
    assert!(after["items"].as_array().unwrap().iter().any(|i| i["stars"] == 1 && i["verified_visit"] == true));
    let listed = app.get(&reviews, &two).await;
    assert_eq!(listed.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&listed.bytes).into_owned();
    assert!(!text.contains(not_in_care().as_str()) && !text.contains("patient"), "a reviewer is named: {text}");
    // The search ranks with the new rating.
    let hit = app.get("/api/v1/providers/search?near=M%C3%BCnchen&radius_km=20", &two).await.json();
    let h = hit["hits"].as_array().unwrap().iter().find(|h| h["id"] == p1.as_str()).unwrap().clone();
    assert_eq!(h["reviews"].as_u64(), Some(n0 + 1), "{h}");
}

fn urlencode(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).replace('+', "%2B").replace(':', "%3A")
}

/// Doctors keep their practice's weekly rules; a new rule's openings are bookable at once and
/// ending it withdraws them; other practices' rules are out of reach.
#[tokio::test]
async fn doctors_add_and_end_schedule_rules_and_patients_see_the_openings() {
    let app = app().await;
    patient_user(&*app.store, 10, "pat.one", not_in_care()).await;
    let (dr, other_dr, pat) = (app.login("dr.mine").await, app.login("dr.other").await, app.login("pat.one").await);
    let p1 = ProviderId::from_number(1);
    let rules = "/api/v1/schedule/rules";
    assert_eq!(app.get(rules, &dr).await.json(), json!([]));
    app.get(rules, &pat).await.error(StatusCode::FORBIDDEN, "forbidden_role");
    let post = |token: String, body: Value| {
        let app = &app;
        async move { app.call(Method::POST, rules, Some(&token), Some(body)).await }
    };
    post(dr.clone(), json!({"weekday": "someday", "start": "08:00", "end": "12:00", "slot_minutes": 15}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    let m = post(dr.clone(), json!({"weekday": "mon", "start": "12:00", "end": "08:00", "slot_minutes": 15}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(m.contains("schedule_rule.end"), "{m}");
    post(dr.clone(), json!({"weekday": "mon", "start": "8:00am", "end": "12:00", "slot_minutes": 15}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");

    // Every weekday morning, 4 × 15 min: about 90 days of openings.
    let mut last = Value::Null;
    for day in ["mon", "tue", "wed", "thu", "fri"] {
        let r = post(dr.clone(), json!({"weekday": day, "start": "08:00", "end": "09:00", "slot_minutes": 15})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
        last = r.json();
    }
    assert_eq!(last["rules"].as_array().unwrap().len(), 5);
    let n = last["openings"].as_u64().unwrap();
    assert!((200..=290).contains(&n), "about 63 weekdays × 4 (less holidays): {n}");
    // Patients see them in search and can list them (local 08:00 is 07:00 or 06:00 UTC).
    let hit = app.get("/api/v1/providers/search?near=M%C3%BCnchen&radius_km=20", &pat).await.json();
    assert_eq!(hit["hits"][0]["id"], p1.as_str(), "{hit}");
    let first = hit["hits"][0]["earliest"].as_str().unwrap().to_owned();
    assert!(
        first.ends_with(":00:00Z")
            || first.ends_with(":15:00Z")
            || first.ends_with(":45:00Z")
            || first.ends_with(":30:00Z")
    );
    let listed = app.get(&format!("/api/v1/providers/{p1}/openings"), &pat).await.json();
    assert!(listed.as_array().unwrap().iter().all(|o| o["sources"] == json!(["carelens"])), "{listed}");

    // Another practice cannot end it; ending it today withdraws the openings after today.
    let id = last["rules"][0]["id"].as_str().unwrap().to_owned();
    let end = |token: String, body: Value| {
        let (app, path) = (&app, format!("{rules}/{id}/end"));
        async move { app.call(Method::POST, &path, Some(&token), Some(body)).await }
    };
    end(other_dr.clone(), json!({"valid_until": "2020-01-01"})).await.error(StatusCode::NOT_FOUND, "rule_not_found");
    let today = Utc::now().date_naive();
    end(dr.clone(), json!({"valid_until": today - chrono::Duration::days(400)}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    let ended = end(dr.clone(), json!({"valid_until": today})).await;
    assert_eq!(ended.status, StatusCode::OK, "{}", String::from_utf8_lossy(&ended.bytes));
    let ended = ended.json();
    let after = ended["openings"].as_u64().unwrap();
    assert!(after < n && after >= n * 3 / 4, "one weekday of five withdrawn: {n} → {after}");
    assert_eq!(ended["rules"][0]["valid_until"], json!(today));
    assert_eq!(app.get(rules, &other_dr).await.json(), json!([]));

    // A two-week closure withdraws the openings on its days; withdrawing it brings them back.
    let closures = "/api/v1/schedule/closures";
    let close = |token: String, body: Value| {
        let app = &app;
        async move { app.call(Method::POST, closures, Some(&token), Some(body)).await }
    };
    let (from, to) = (today + chrono::Duration::days(14), today + chrono::Duration::days(27));
    close(dr.clone(), json!({"from": to, "to": from})).await.error(StatusCode::BAD_REQUEST, "invalid_input");
    let closed = close(dr.clone(), json!({"from": from, "to": to, "reason": "Urlaub"})).await;
    assert_eq!(closed.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&closed.bytes));
    let closed = closed.json();
    let during = closed["openings"].as_u64().unwrap();
    assert!(
        during + 16 <= after && during + 48 >= after,
        "two weeks of 4 weekdays × 4 slots less (holidays aside): {after} → {during}"
    );
    let listed = app
        .get(
            &format!(
                "/api/v1/providers/{p1}/openings?from={}&to={}",
                urlencode_date(from),
                urlencode_date(to + chrono::Duration::days(1))
            ),
            &pat,
        )
        .await
        .json();
    assert_eq!(listed, json!([]), "nothing offered while closed");
    let cid = closed["closures"][0]["id"].as_str().unwrap().to_owned();
    app.call(Method::POST, &format!("{closures}/{cid}/withdraw"), Some(&other_dr), None)
        .await
        .error(StatusCode::NOT_FOUND, "closure_not_found");
    let back = app.call(Method::POST, &format!("{closures}/{cid}/withdraw"), Some(&dr), None).await;
    assert_eq!(back.status, StatusCode::OK, "{}", String::from_utf8_lossy(&back.bytes));
    let back = back.json();
    assert_eq!(back["openings"].as_u64(), Some(after));
    assert_eq!(back["closures"][0]["withdrawn"], true);
    assert_eq!(app.get(closures, &other_dr).await.json(), json!([]));
}

fn urlencode_date(d: chrono::NaiveDate) -> String {
    format!("{d}T00:00:00Z").replace(':', "%3A")
}

/// A patient sees who touched their record — reads, refusals, with the account and role — and
/// nobody else's; other roles have no access log of their own.
#[tokio::test]
async fn patients_see_who_accessed_their_record() {
    let app = app().await;
    patient_user(&*app.store, 10, "pat.care", in_care()).await;
    patient_user(&*app.store, 11, "pat.other", not_in_care()).await;
    let (dr, other_dr) = (app.login("dr.mine").await, app.login("dr.other").await);
    let (pat, other) = (app.login("pat.care").await, app.login("pat.other").await);
    assert_eq!(app.get("/api/v1/me/access-log", &pat).await.json(), json!([]));
    assert_eq!(app.get(&format!("/api/v1/patients/{}/history", in_care()), &dr).await.status, StatusCode::OK);
    app.get(&format!("/api/v1/patients/{}/history", in_care()), &other_dr)
        .await
        .error(StatusCode::FORBIDDEN, "not_in_care");

    let log = app.get("/api/v1/me/access-log?limit=10", &pat).await.json();
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    // Newest first: the refusal, then the read.
    assert_eq!((log[0]["who"].as_str(), log[0]["allowed"].as_bool()), (Some("dr.other"), Some(false)), "{log:?}");
    assert_eq!(log[0]["reason"], "not_in_care");
    assert_eq!((log[1]["who"].as_str(), log[1]["role"].as_str()), (Some("dr.mine"), Some("doctor")));
    assert_eq!(
        (log[1]["what"].as_str(), log[1]["action"].as_str(), log[1]["allowed"].as_bool()),
        (Some("history"), Some("read"), Some(true))
    );
    assert!(log[0]["seq"].as_u64() > log[1]["seq"].as_u64());
    // Someone else's log does not show it; doctors have none.
    assert_eq!(app.get("/api/v1/me/access-log", &other).await.json(), json!([]));
    app.get("/api/v1/me/access-log", &dr).await.error(StatusCode::FORBIDDEN, "forbidden_role");
}

/// The authorisation matrix over the patient-data endpoints: every role × every consent state
/// (care relationship, consent granted / revoked / expired, break-the-glass, another patient)
/// gives the expected allow or deny; a revocation takes effect on the next request; every
/// denial is audited; break-the-glass reads stand out in the patient's access log.
#[tokio::test]
async fn the_authorisation_matrix_holds_and_consent_changes_take_effect_at_once() {
    authorisation_matrix(app().await).await;
}

#[tokio::test]
async fn the_authorisation_matrix_holds_on_mongodb_and_s3() {
    let Some((app, _mongo, _s3)) = app_on_servers().await else { return };
    authorisation_matrix(app).await;
}

async fn authorisation_matrix(app: App) {
    patient_user(&*app.store, 10, "pat.three", consented()).await;
    patient_user(&*app.store, 11, "pat.four", no_set()).await;
    let t = |name: &'static str| app.login(name);
    let (mine, other, pat3, pat4) =
        (t("dr.mine").await, t("dr.other").await, t("pat.three").await, t("pat.four").await);
    let (admin, analyst, ml) = (t("admin").await, t("ana.lyst").await, t("ml.eng").await);
    let hist = |p: HealthId| format!("/api/v1/patients/{p}/history");
    let pred = |p: HealthId| format!("/api/v1/patients/{p}/predictions");
    let check = |token: String, path: String, allowed: bool, code: &'static str| {
        let app = &app;
        async move {
            let before = app.denied_audits().await;
            let r = app.get(&path, &token).await;
            if allowed {
                assert_eq!(r.status, StatusCode::OK, "{path}: {}", String::from_utf8_lossy(&r.bytes));
            } else {
                assert!(r.status == StatusCode::FORBIDDEN, "{path}: {}", String::from_utf8_lossy(&r.bytes));
                assert_eq!(r.json()["error"]["code"], code, "{path}");
                assert_eq!(app.denied_audits().await, before + 1, "{path}: the denial is audited");
            }
        }
    };

    // Care relationship, consent, other patients, other roles.
    check(mine.clone(), hist(in_care()), true, "").await;
    check(mine.clone(), pred(in_care()), true, "").await;
    check(mine.clone(), hist(consented()), true, "").await; // consent (diagnosis only)
    check(mine.clone(), pred(consented()), true, "").await;
    check(mine.clone(), hist(not_in_care()), false, "not_in_care").await;
    check(other.clone(), hist(in_care()), false, "not_in_care").await;
    check(other.clone(), hist(not_in_care()), true, "").await;
    check(pat3.clone(), hist(consented()), true, "").await; // own record
    check(pat3.clone(), hist(in_care()), false, "not_in_care").await; // another patient
    check(pat3.clone(), pred(consented()), false, "forbidden_role").await;
    for token in [&admin, &analyst, &ml] {
        check(token.clone(), hist(in_care()), false, "forbidden_role").await;
        check(token.clone(), pred(in_care()), false, "forbidden_role").await;
    }

    // The FHIR export goes through the same check and holds only what the caller may see.
    let fhir = |p: HealthId| format!("/api/v1/patients/{p}/fhir");
    let kinds = |token: String, p: HealthId| {
        let app = &app;
        async move {
            let b = app.get(&fhir(p), &token).await.json();
            assert_eq!(b["resourceType"], "Bundle");
            b["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["resource"]["resourceType"].as_str().unwrap().to_owned())
                .collect::<std::collections::BTreeSet<String>>()
        }
    };
    check(mine.clone(), fhir(in_care()), true, "").await;
    check(mine.clone(), fhir(consented()), true, "").await;
    let seen = kinds(mine.clone(), consented()).await;
    assert!(
        seen.iter().all(|k| ["Patient", "Condition", "RiskAssessment"].contains(&k.as_str())),
        "diagnosis only: {seen:?}"
    );
    check(mine.clone(), fhir(not_in_care()), false, "not_in_care").await;
    check(other.clone(), fhir(in_care()), false, "not_in_care").await;
    check(pat3.clone(), fhir(consented()), true, "").await; // own record, with its consents and access log
    let own = kinds(pat3.clone(), consented()).await;
    assert!(own.contains("Consent") && own.contains("AuditEvent") && !own.contains("RiskAssessment"), "{own:?}");
    check(pat3.clone(), fhir(in_care()), false, "not_in_care").await;
    for token in [&admin, &analyst, &ml] {
        check(token.clone(), fhir(in_care()), false, "forbidden_role").await;
    }
    // Documents too.
    let docs_of = |p: HealthId| format!("/api/v1/patients/{p}/documents");
    check(mine.clone(), docs_of(in_care()), true, "").await;
    check(other.clone(), docs_of(in_care()), false, "not_in_care").await;
    check(pat3.clone(), docs_of(consented()), true, "").await;
    check(pat3.clone(), docs_of(in_care()), false, "not_in_care").await;
    for token in [&admin, &analyst, &ml] {
        check(token.clone(), docs_of(in_care()), false, "forbidden_role").await;
    }
    let exports = app.store.audit_for_patient(&consented(), 1000).await.unwrap();
    assert!(exports.iter().any(|e| e.action == carelens_domain::AuditAction::Export && e.resource == "record/fhir"));

    // Evidence and feedback go through the same check.
    let evidence = format!("/api/v1/patients/{}/evidence/{}", in_care(), app.heatmap_digest);
    let r = app.get(&evidence, &mine).await;
    assert_eq!((r.status, r.bytes.starts_with(b"\x89PNG")), (StatusCode::OK, true));
    check(other.clone(), evidence.clone(), false, "not_in_care").await;
    check(pat3.clone(), evidence.clone(), false, "forbidden_role").await;
    check(analyst.clone(), evidence, false, "forbidden_role").await;
    let feedback = format!("/api/v1/patients/{}/feedback", in_care());
    let verdict = json!({"set_version": 1, "code": "J18", "verdict": "confirmed"});
    for (token, code) in [(&other, "not_in_care"), (&pat3, "forbidden_role"), (&admin, "forbidden_role")] {
        let before = app.denied_audits().await;
        app.call(Method::POST, &feedback, Some(token), Some(verdict.clone())).await.error(StatusCode::FORBIDDEN, code);
        assert_eq!(app.denied_audits().await, before + 1);
    }
    let r = app.call(Method::POST, &feedback, Some(&mine), Some(verdict)).await;
    assert!(r.status.is_success(), "{}", String::from_utf8_lossy(&r.bytes));

    // The patient grants the other practice, which may read at once; revoking closes it at once.
    check(other.clone(), hist(consented()), false, "not_in_care").await;
    let post = |token: String, path: String, body: Option<Value>| {
        let app = &app;
        async move { app.call(Method::POST, &path, Some(&token), body).await }
    };
    let g = post(
        pat3.clone(),
        "/api/v1/me/consents".into(),
        Some(json!({"provider": ProviderId::from_number(2).as_str(), "categories": ["diagnosis", "medication"]})),
    )
    .await;
    assert_eq!(g.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&g.bytes));
    let g = g.json();
    assert_eq!((g["active"].as_bool(), g["provider_name"].as_str()), (Some(true), Some("Praxis 2")));
    check(other.clone(), hist(consented()), true, "").await;
    check(other.clone(), pred(consented()), true, "").await;
    let id = g["id"].as_str().unwrap();
    post(pat4.clone(), format!("/api/v1/me/consents/{id}/revoke"), None)
        .await
        .error(StatusCode::NOT_FOUND, "consent_not_found");
    let r = post(pat3.clone(), format!("/api/v1/me/consents/{id}/revoke"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["active"], false);
    check(other.clone(), hist(consented()), false, "not_in_care").await;
    // Bad grants.
    for body in [
        json!({"provider": "PRV-nope", "categories": ["diagnosis"]}),
        json!({"provider": ProviderId::from_number(2).as_str(), "categories": ["gossip"]}),
        json!({"provider": ProviderId::from_number(2).as_str(), "categories": ["diagnosis"], "valid_until": "2020-01-01T00:00:00Z"}),
    ] {
        post(pat3.clone(), "/api/v1/me/consents".into(), Some(body))
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_input");
    }
    post(mine.clone(), "/api/v1/me/consents".into(), Some(json!({"provider": "x", "categories": []})))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden_role");
    // An expired grant opens nothing.
    app.store
        .put_consent(&ConsentGrant {
            id: ConsentId::from_u128(77),
            patient: consented(),
            grantee: Grantee::Provider(ProviderId::from_number(2)),
            categories: vec![Category::Diagnosis],
            valid_from: Utc::now() - chrono::Duration::days(10),
            valid_until: Some(Utc::now() - chrono::Duration::days(1)),
            revoked_at: None,
            emergency_reason: None,
        })
        .await
        .unwrap();
    check(other.clone(), hist(consented()), false, "not_in_care").await;

    // A care team: practice 1 forms one with practice 2; once patient 3 grants the team,
    // practice 2 reads the granted categories; revoking the team's grant closes it again.
    let team = post(
        mine.clone(),
        "/api/v1/care-teams".into(),
        Some(json!({"name": "Heart team", "members": [ProviderId::from_number(2).as_str()]})),
    )
    .await;
    assert_eq!(team.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&team.bytes));
    let team = team.json();
    assert_eq!(team["members"].as_array().unwrap().len(), 2, "{team}");
    assert_eq!(app.get("/api/v1/care-teams", &other).await.json().as_array().unwrap().len(), 1);
    post(pat3.clone(), "/api/v1/care-teams".into(), Some(json!({"name": "x", "members": []})))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden_role");
    let tg = post(
        pat3.clone(),
        "/api/v1/me/consents".into(),
        Some(json!({"care_team": team["id"], "categories": ["diagnosis"]})),
    )
    .await;
    assert_eq!(tg.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&tg.bytes));
    assert!(tg.json()["provider_name"].as_str().unwrap().contains("Heart team"));
    check(other.clone(), hist(consented()), true, "").await;
    check(other.clone(), fhir(consented()), true, "").await;
    let tid = tg.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(post(pat3.clone(), format!("/api/v1/me/consents/{tid}/revoke"), None).await.status, StatusCode::OK);
    check(other.clone(), hist(consented()), false, "not_in_care").await;
    let listed = app.get("/api/v1/me/consents", &pat3).await.json();
    assert_eq!(listed.as_array().unwrap().iter().filter(|c| c["active"] == true).count(), 1, "{listed}");

    // A caregiver: patient 3 lets patient 4's account see medication and allergies, nothing
    // else; the timeline shows only those, predictions stay with doctors; revoking ends it.
    check(pat4.clone(), hist(consented()), false, "not_in_care").await;
    let cg = post(
        pat3.clone(),
        "/api/v1/me/consents".into(),
        Some(json!({"caregiver": "pat.four", "categories": ["medication", "allergy"]})),
    )
    .await;
    assert_eq!(cg.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&cg.bytes));
    let cg = cg.json();
    assert_eq!(cg["caregiver"], "pat.four");
    check(pat4.clone(), hist(consented()), true, "").await;
    check(pat4.clone(), fhir(consented()), true, "").await;
    let shared = kinds(pat4.clone(), consented()).await;
    assert!(
        shared.iter().all(|k| ["Patient", "MedicationStatement", "AllergyIntolerance"].contains(&k.as_str())),
        "medication and allergy only: {shared:?}"
    );
    let tl = app.get(&hist(consented()), &pat4).await.json();
    let hidden = tl["hidden_categories"].as_array().unwrap();
    assert!(hidden.iter().any(|c| c == "diagnosis") && hidden.iter().any(|c| c == "mental_health"), "{tl}");
    check(pat4.clone(), pred(consented()), false, "forbidden_role").await;
    for bad in [
        json!({"caregiver": "dr.mine", "categories": ["medication"]}),
        json!({"caregiver": "pat.three", "categories": ["medication"]}),
        json!({"caregiver": "pat.four", "provider": ProviderId::from_number(2).as_str(), "categories": ["medication"]}),
    ] {
        post(pat3.clone(), "/api/v1/me/consents".into(), Some(bad))
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_input");
    }
    let cid = cg["id"].as_str().unwrap();
    assert_eq!(post(pat3.clone(), format!("/api/v1/me/consents/{cid}/revoke"), None).await.status, StatusCode::OK);
    check(pat4.clone(), hist(consented()), false, "not_in_care").await;
    check(pat4.clone(), fhir(consented()), false, "not_in_care").await;

    // Break-the-glass: a reason is required; then 4 hours of access, audited as such.
    let emergency = format!("/api/v1/patients/{}/emergency-access", no_set());
    check(other.clone(), hist(no_set()), false, "not_in_care").await;
    post(other.clone(), emergency.clone(), Some(json!({"reason": "urgent"})))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    post(pat4.clone(), emergency.clone(), Some(json!({"reason": "unconscious in the emergency room"})))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden_role");
    let e = post(other.clone(), emergency, Some(json!({"reason": "unconscious in the emergency room"}))).await;
    assert_eq!(e.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&e.bytes));
    check(other.clone(), hist(no_set()), true, "").await;
    check(other.clone(), fhir(no_set()), true, "").await;
    let log = app.get("/api/v1/me/access-log", &pat4).await.json();
    let glass: Vec<&Value> = log.as_array().unwrap().iter().filter(|e| e["action"] == "break_glass").collect();
    assert_eq!(glass.len(), 3, "taking it, and the history read and the export under it: {log}");
    assert!(glass.iter().any(|e| e["reason"] == "unconscious in the emergency room"), "{log}");
    let mine_too = app.get("/api/v1/me/consents", &pat4).await.json();
    assert_eq!(mine_too[0]["emergency_reason"], "unconscious in the emergency room");
    // The patient can end it early.
    let gid = mine_too[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(post(pat4.clone(), format!("/api/v1/me/consents/{gid}/revoke"), None).await.status, StatusCode::OK);
    check(other.clone(), hist(no_set()), false, "not_in_care").await;
}

fn pdf(text: &str) -> Vec<u8> {
    format!("%PDF-1.7\n% {text}\n%%EOF\n").into_bytes()
}

/// The file under `root` holding exactly `bytes`.
fn file_with(root: &std::path::Path, bytes: &[u8]) -> std::path::PathBuf {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b == bytes) {
                return p;
            }
        }
    }
    panic!("no file holds the object");
}

#[tokio::test]
async fn documents_are_checked_signed_encrypted_and_verified() {
    let app = app().await;
    let root = app._dir.path().to_path_buf();
    documents_flow(app, &root).await;
}

#[tokio::test]
async fn documents_are_checked_signed_encrypted_and_verified_on_mongodb_and_s3() {
    let Some((app, _mongo, s3)) = app_on_servers().await else { return };
    documents_flow(app, &s3.data_dir()).await;
}

/// `object_root`: where the object store keeps the bytes on disk (to tamper with them).
async fn documents_flow(app: App, object_root: &std::path::Path) {
    use carelens_records::documents as docs;
    let (mine, other) = (app.login("dr.mine").await, app.login("dr.other").await);
    let base = format!("/api/v1/patients/{}/documents", in_care());
    let up = format!("{base}?kind=lab_report&title=Blood%20count");

    // Signed with the doctor's server-held key, stored encrypted, read back and verified.
    let r = app.upload(&up, &mine, "application/pdf", pdf("hb 13.1"), &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let d = r.json();
    assert_eq!((d["kind"].as_str(), d["encrypted"].as_bool()), (Some("lab_report"), Some(true)));
    assert!(d["signed_with"].as_str().is_some_and(|k| k.len() == 64));
    let id = d["id"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&base, &mine).await.json().as_array().unwrap().len(), 1);
    let got = app.get(&format!("{base}/{id}"), &mine).await;
    assert_eq!((got.status, got.bytes.as_slice()), (StatusCode::OK, pdf("hb 13.1").as_slice()));
    assert_eq!(app.get(&format!("{base}/{id}/verify"), &mine).await.json()["status"], "valid");
    // It is on the patient's timeline, in the category of its kind, and today.
    let today = chrono::Utc::now().date_naive();
    let tl = app.get(&format!("/api/v1/patients/{}/history?category=observation&from={today}", in_care()), &mine).await;
    let tl = tl.json();
    let entry = tl["entries"].as_array().unwrap().iter().find(|e| e["id"] == id.as_str()).unwrap();
    assert_eq!(
        (entry["kind"].as_str(), entry["title"].as_str(), entry["source"].as_str()),
        (Some("document"), Some("Blood count"), Some("upload")),
        "{tl}"
    );
    assert!(entry["detail"].as_str().unwrap().contains("signed"), "{entry}");
    let keys = app.get("/api/v1/me/signing-keys", &mine).await.json();
    assert_eq!(
        (keys[0]["public_key"].as_str(), keys[0]["server_held"].as_bool()),
        (d["signed_with"].as_str(), Some(true))
    );

    // Refused uploads, each audited.
    let refuse = |bytes: Vec<u8>,
                  ct: &'static str,
                  headers: Vec<(&'static str, String)>,
                  status: StatusCode,
                  code: &'static str| {
        let (app, up, mine) = (&app, up.clone(), mine.clone());
        async move {
            let before = app.denied_audits().await;
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.upload(&up, &mine, ct, bytes, &h).await.error(status, code);
            assert_eq!(app.denied_audits().await, before + 1, "{code}: the refusal is audited");
        }
    };
    refuse(pdf("hb 13.1"), "application/pdf", vec![], StatusCode::CONFLICT, "document_exists").await;
    refuse(
        b"PK\x03\x04zip bomb".to_vec(),
        "application/pdf",
        vec![],
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    refuse(
        b"%PDF-1.7".to_vec(),
        "application/zip",
        vec![],
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    refuse(b"<html>".to_vec(), "application/pdf", vec![], StatusCode::BAD_REQUEST, "invalid_input").await;
    let gz = app.upload(&up, &mine, "application/pdf", pdf("x"), &[("content-encoding", "gzip")]).await;
    gz.error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let huge = app.upload(&up, &mine, "text/plain", vec![b'a'; docs::MAX_DOCUMENT_BYTES + 2048], &[]).await;
    huge.error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // A detached signature from a key the client holds: refused until registered.
    let seed = [7u8; 32];
    let content = pdf("x-ray report");
    let sig = docs::sign(&seed, &in_care(), &docs::sha256_hex(&content));
    let headers = vec![("x-signature", sig.signature_hex.clone()), ("x-signing-key", sig.public_key_hex.clone())];
    refuse(content.clone(), "application/pdf", headers.clone(), StatusCode::BAD_REQUEST, "unknown_signer").await;
    let reg = app
        .call(Method::POST, "/api/v1/me/signing-keys", Some(&mine), Some(json!({"public_key": sig.public_key_hex})))
        .await;
    assert_eq!(reg.status, StatusCode::CREATED);
    let forged = vec![
        ("x-signature", docs::sign(&seed, &in_care(), &docs::sha256_hex(b"other")).signature_hex),
        headers[1].clone(),
    ];
    refuse(content.clone(), "application/pdf", forged, StatusCode::BAD_REQUEST, "bad_signature").await;
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = app.upload(&up, &mine, "application/pdf", content, &h).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    assert_eq!(r.json()["signed_with"].as_str(), Some(sig.public_key_hex.as_str()));

    // Another practice sees nothing, and another patient's URL does not reach the document.
    app.get(&base, &other).await.error(StatusCode::FORBIDDEN, "not_in_care");
    let idor = format!("/api/v1/patients/{}/documents/{id}", not_in_care());
    app.get(&idor, &other).await.error(StatusCode::NOT_FOUND, "document_not_found");

    // The stored bytes edited on disk: verification and download both say so.
    let stored = app.store.get_document(&id.parse().unwrap()).await.unwrap().unwrap();
    let ciphertext = app.objects.get(&stored.object_key).await.unwrap();
    let path = file_with(object_root, &ciphertext);
    let mut edited = ciphertext.clone();
    edited[20] ^= 1;
    std::fs::write(&path, edited).unwrap();
    let v = app.get(&format!("{base}/{id}/verify"), &mine).await.json();
    assert_eq!(v["status"], "tampered", "{v}");
    app.get(&format!("{base}/{id}"), &mine).await.error(StatusCode::CONFLICT, "document_tampered");
}

#[tokio::test]
async fn doctors_add_and_correct_entries_and_nothing_is_overwritten() {
    corrections_flow(app().await).await;
}

#[tokio::test]
async fn corrections_keep_history_on_mongodb() {
    let Some((app, _mongo, _s3)) = app_on_servers().await else { return };
    corrections_flow(app).await;
}

async fn corrections_flow(app: App) {
    let (mine, other) = (app.login("dr.mine").await, app.login("dr.other").await);
    patient_user(&*app.store, 10, "pat.own", in_care()).await;
    let pat = app.login("pat.own").await;
    let hist = format!("/api/v1/patients/{}/history", in_care());
    let hba1c = json!({"type": "observation", "code": "4548-4", "display": "HbA1c", "value": 64.0, "unit": "%"});

    // Validation names the field; patients and other practices may not write.
    let bad = app.call(Method::POST, &hist, Some(&mine), Some(json!({"date": "2026-01-10", "entry": hba1c}))).await;
    assert!(bad.error(StatusCode::BAD_REQUEST, "invalid_input").starts_with("observation.value"));
    let unknown = json!({"date": "2026-01-10", "entry": {"type": "gossip"}});
    app.call(Method::POST, &hist, Some(&mine), Some(unknown)).await.error(StatusCode::BAD_REQUEST, "invalid_input");
    let good = json!({"date": "2026-01-10", "entry": {"type": "observation", "code": "4548-4", "display": "HbA1c", "value": 8.4, "unit": "%"}});
    app.call(Method::POST, &hist, Some(&pat), Some(good.clone())).await.error(StatusCode::FORBIDDEN, "forbidden_role");
    app.call(Method::POST, &hist, Some(&other), Some(good.clone())).await.error(StatusCode::FORBIDDEN, "not_in_care");
    let mental = json!({"date": "2026-01-10", "entry": {"type": "diagnosis", "code": "F41.1", "display": "GAD", "status": "active"}});
    app.call(Method::POST, &hist, Some(&mine), Some(mental)).await.error(StatusCode::FORBIDDEN, "not_in_care");

    // Add, then correct: the timeline shows the correction; the original stays, marked.
    let r = app.call(Method::POST, &hist, Some(&mine), Some(good)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let first = r.json()["entry"].clone();
    assert_eq!(
        (first["source"].as_str(), first["detail"].as_str().unwrap().starts_with("8.4 %")),
        (Some("clinician"), true)
    );
    let id = first["id"].as_str().unwrap();
    let correct = format!("{hist}/{id}/correct");
    let fix = json!({"date": "2026-01-10", "reason": "typo: 6.4, not 8.4",
        "entry": {"type": "observation", "code": "4548-4", "display": "HbA1c", "value": 6.4, "unit": "%"}});
    app.call(Method::POST, &correct, Some(&mine), Some(json!({"date": "2026-01-10", "reason": "x", "entry": {}})))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    let r = app.call(Method::POST, &correct, Some(&mine), Some(fix.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let w = r.json();
    let new_id = w["entry"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (w["entry"]["corrects"].as_str(), w["replaced"]["corrected"]["by"].as_str()),
        (Some(id), Some(new_id.as_str()))
    );
    app.call(Method::POST, &correct, Some(&mine), Some(fix)).await.error(StatusCode::CONFLICT, "already_corrected");

    let shown = app.get(&hist, &mine).await.json();
    let ids: Vec<&str> = shown["entries"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&new_id.as_str()) && !ids.contains(&id), "the timeline shows the correction only");
    let all = app.get(&format!("{hist}?include_corrected=true"), &mine).await.json();
    let old = all["entries"].as_array().unwrap().iter().find(|e| e["id"] == id).unwrap().clone();
    assert_eq!(old["corrected"]["reason"], "typo: 6.4, not 8.4");
    assert!(old["detail"].as_str().unwrap().starts_with("8.4 %"), "the original value is kept: {old}");
    // The correction is in the access log with its reason.
    let log = app.store.audit_for_patient(&in_care(), 100).await.unwrap();
    assert!(
        log.iter()
            .any(|e| e.action == carelens_domain::AuditAction::Update
                && e.reason.as_deref() == Some("typo: 6.4, not 8.4"))
    );
    // Another patient's URL does not reach the entry.
    let idor = format!("/api/v1/patients/{}/history/{new_id}/correct", no_set());
    let again = json!({"date": "2026-01-10", "reason": "trying another id", "entry": {"type": "procedure", "kind": "procedure", "display": "x"}});
    app.call(Method::POST, &idor, Some(&mine), Some(again)).await.error(StatusCode::NOT_FOUND, "entry_not_found");
}

#[tokio::test]
async fn prescriptions_are_checked_signed_refilled_and_dispensed() {
    prescriptions_flow(app().await).await;
}

#[tokio::test]
async fn prescriptions_work_on_mongodb() {
    let Some((app, _mongo, _s3)) = app_on_servers().await else { return };
    prescriptions_flow(app).await;
}

/// The reminders waiting in the outbox for prescription `rx_id`.
async fn pending_reminders(app: &App, rx_id: &str) -> Vec<OutboxMessage> {
    let subject: MessageSubject = rx_id.parse::<PrescriptionId>().unwrap().into();
    let all = app.store.messages_for(&subject).await.unwrap();
    all.into_iter().filter(|m| m.state == MessageState::Pending).collect()
}

/// The patient chooses reminder times for prescription `rx_id` (ten days from today, one
/// refill, none chosen yet); leaves them at 09:00.
async fn medication_reminders(app: &App, base: &str, rx_id: &str, pat: &str, doctor: &str) {
    let path = format!("{base}/prescriptions/{rx_id}/reminders");
    let put = async |token: &str, body: Value| app.call(Method::PUT, &path, Some(token), Some(body)).await;
    let pending = async || pending_reminders(app, rx_id).await;
    assert!(pending().await.is_empty());
    // Reminders need an e-mail address; the patient has none yet.
    put(pat, json!({"times": ["08:00"]})).await.error(StatusCode::CONFLICT, "no_email");
    let mut user = app.store.user_by_name("pat.rx").await.unwrap().unwrap();
    user.email = Some("pat.rx@example.org".into());
    app.store.put_user(&user).await.unwrap();
    for bad in [
        json!({"times": ["8am"]}),
        json!({"times": ["08:00", "08:00"]}),
        json!({"times": ["01:00", "02:00", "03:00", "04:00", "05:00"]}),
    ] {
        assert!(put(pat, bad.clone()).await.error(StatusCode::BAD_REQUEST, "invalid_input").contains("times"), "{bad}");
    }
    put(doctor, json!({"times": ["08:00"]})).await.error(StatusCode::FORBIDDEN, "forbidden_role");
    // Not another patient's prescription, not one that is not the patient's.
    let elsewhere = format!("/api/v1/patients/{}/prescriptions/{rx_id}/reminders", no_set());
    app.call(Method::PUT, &elsewhere, Some(pat), Some(json!({"times": ["08:00"]})))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden_role");
    let unknown = format!("{base}/prescriptions/{}/reminders", PrescriptionId::from_u128(404));
    app.call(Method::PUT, &unknown, Some(pat), Some(json!({"times": ["08:00"]})))
        .await
        .error(StatusCode::NOT_FOUND, "prescription_not_found");
    assert!(pending().await.is_empty(), "refused requests schedule nothing");

    let r = put(pat, json!({"times": ["20:00", "08:00"]})).await.json();
    assert_eq!(r["prescription"]["reminder_times"], json!(["08:00", "20:00"]));
    let first = pending().await;
    assert_eq!(r["scheduled"].as_u64(), Some(first.len() as u64));
    // Ten days twice a day (today's may be past already) and one refill reminder.
    assert!((19..=21).contains(&first.len()), "{}", first.len());
    assert_eq!(first.iter().filter(|m| m.kind == MessageKind::RefillReminder).count(), 1);
    // Changing the times replaces them; turning them off leaves nothing pending.
    let r = put(pat, json!({"times": ["09:00"]})).await.json();
    let second = pending().await;
    assert_eq!(r["scheduled"].as_u64(), Some(second.len() as u64));
    assert!(second.iter().all(|m| first.iter().all(|f| f.id != m.id)), "old settings' reminders are cancelled");
    assert_eq!(put(pat, json!({"times": []})).await.json()["scheduled"], 0);
    assert!(pending().await.is_empty());
    let listed = app.get(&format!("{base}/prescriptions"), pat).await.json();
    assert_eq!(listed[0]["reminder_times"], json!([]));
    // On again at 09:00 for the rest of the test.
    put(pat, json!({"times": ["09:00"]})).await.json();
    assert_eq!(pending().await.len(), second.len());
}

async fn prescriptions_flow(app: App) {
    let (mine, other, admin) = (app.login("dr.mine").await, app.login("dr.other").await, app.login("admin").await);
    patient_user(&*app.store, 10, "pat.rx", in_care()).await;
    let pat = app.login("pat.rx").await;
    let base = format!("/api/v1/patients/{}", in_care());
    let post = |path: String, token: String, body: Option<Value>| {
        let app = &app;
        async move { app.call(Method::POST, &path, Some(&token), body).await }
    };
    for entry in [
        json!({"type": "allergy", "substance": "Penicillin", "substance_code": "J01CE02", "reaction": "hives", "severity": "severe"}),
        json!({"type": "medication", "code": "B01AA03", "display": "Warfarin", "dose": {"amount": 5.0, "unit": "mg", "frequency": "1-0-0"}, "start": "2025-01-01"}),
    ] {
        let r =
            post(format!("{base}/history"), mine.clone(), Some(json!({"date": "2025-01-01", "entry": entry}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    }
    let order = |drug: &str, name: &str, ack: Vec<String>| {
        json!({"drug": drug, "display": name, "strength": "500 mg", "dose": {"amount": 1.0, "unit": "tablet", "frequency": "1-0-1"},
               "duration_days": 10, "refills": 1, "acknowledge": ack})
    };

    // The allergy and the interaction are found; prescribing waits for acknowledgement.
    let w = post(format!("{base}/prescriptions/check"), mine.clone(), Some(order("J01CA04", "Amoxicillin", vec![])))
        .await
        .json();
    assert_eq!(
        (w["warnings"][0]["kind"].as_str(), w["warnings"][0]["severity"].as_str()),
        (Some("allergy"), Some("major")),
        "{w}"
    );
    let before = app.denied_audits().await;
    let refused =
        post(format!("{base}/prescriptions"), mine.clone(), Some(order("J01CA04", "Amoxicillin", vec![]))).await;
    assert!(refused.error(StatusCode::CONFLICT, "prescription_warnings").contains("allergy:"));
    assert_eq!(app.denied_audits().await, before + 1);
    let w = post(format!("{base}/prescriptions/check"), mine.clone(), Some(order("M01AE02", "Naproxen", vec![])))
        .await
        .json();
    let id = w["warnings"][0]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("interaction:B01AA+M01A"), "{w}");
    let r =
        post(format!("{base}/prescriptions"), mine.clone(), Some(order("M01AE02", "Naproxen", vec![id.clone()]))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.bytes));
    let rx = r.json();
    assert_eq!((rx["signature_valid"].as_bool(), rx["refills_left"].as_u64()), (Some(true), Some(1)));
    assert_eq!(rx["acknowledged"], json!([id]));
    let rx_id = rx["id"].as_str().unwrap().to_owned();
    // It is the patient's medication now: the next NSAID warns of a duplicate.
    let w = post(format!("{base}/prescriptions/check"), mine.clone(), Some(order("M01AE01", "Ibuprofen", vec![])))
        .await
        .json();
    assert!(w["warnings"].as_array().unwrap().iter().any(|w| w["kind"] == "duplicate_therapy"), "{w}");

    // Only doctors of a treating practice prescribe.
    post(format!("{base}/prescriptions"), pat.clone(), Some(order("C10AA01", "Simvastatin", vec![])))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden_role");
    post(format!("{base}/prescriptions"), admin.clone(), Some(order("C10AA01", "Simvastatin", vec![])))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden_role");
    post(format!("{base}/prescriptions"), other.clone(), Some(order("C10AA01", "Simvastatin", vec![])))
        .await
        .error(StatusCode::FORBIDDEN, "not_in_care");

    // The patient sees it and asks for a refill; the practice dispenses the fill and the refill.
    let mine_list = app.get(&format!("{base}/prescriptions"), &pat).await.json();
    assert_eq!(mine_list[0]["id"], rx_id.as_str());
    medication_reminders(&app, &base, &rx_id, &pat, &mine).await;
    let before_refill = pending_reminders(&app, &rx_id).await;
    assert!(!before_refill.is_empty());
    let refill = format!("{base}/prescriptions/{rx_id}/refill-request");
    let dispense = format!("{base}/prescriptions/{rx_id}/dispense");
    assert_eq!(post(refill.clone(), pat.clone(), None).await.json()["refill_pending"], true);
    post(refill.clone(), pat.clone(), None).await.error(StatusCode::CONFLICT, "refill_pending");
    post(refill.clone(), mine.clone(), None).await.error(StatusCode::FORBIDDEN, "forbidden_role");
    post(dispense.clone(), other.clone(), None).await.error(StatusCode::FORBIDDEN, "not_in_care");
    let first = post(dispense.clone(), mine.clone(), None).await.json();
    assert_eq!((first["refills_left"].as_u64(), first["dispensed"].as_array().unwrap().len()), (Some(1), 1));
    let second = post(dispense.clone(), mine.clone(), None).await.json();
    assert_eq!((second["refills_left"].as_u64(), second["refill_pending"].as_bool()), (Some(0), Some(false)));
    // The refill extends the reminders through the new supply (ten more days at 09:00), and no
    // refill reminder is owed any more.
    let after_refill = pending_reminders(&app, &rx_id).await;
    let doses = |ms: &[OutboxMessage]| ms.iter().filter(|m| m.kind == MessageKind::MedicationReminder).count();
    assert_eq!(doses(&after_refill), doses(&before_refill) + 10);
    assert!(after_refill.iter().all(|m| m.to == "pat.rx@example.org"));
    post(dispense, mine.clone(), None).await.error(StatusCode::CONFLICT, "no_refills_left");
    post(refill, pat.clone(), None).await.error(StatusCode::CONFLICT, "no_refills_left");
    // Another patient's URL does not reach it.
    let idor = format!("/api/v1/patients/{}/prescriptions/{rx_id}/dispense", no_set());
    post(idor, mine.clone(), None).await.error(StatusCode::NOT_FOUND, "prescription_not_found");
    // The FHIR export carries it as a MedicationRequest (valid R4 when a validator is set up),
    // and an import of that bundle skips it (its medication comes as a MedicationStatement).
    let bundle = app.get(&format!("{base}/fhir"), &mine).await.json();
    let req = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["resourceType"] == "MedicationRequest")
        .unwrap();
    assert_eq!(
        (req["resource"]["intent"].as_str(), req["resource"]["dispenseRequest"]["numberOfRepeatsAllowed"].as_u64()),
        (Some("order"), Some(1))
    );
    let back = carelens_records::fhir::parse_bundle(&serde_json::to_vec(&bundle).unwrap()).unwrap();
    assert!(
        back.report.problems.is_empty() && back.report.skipped.keys().any(|k| k.contains("carelens prescription")),
        "{:?}",
        back.report
    );
    if let (Some(python), Some(schema)) =
        (std::env::var_os("CARELENS_FHIR_PYTHON"), std::env::var_os("CARELENS_FHIR_SCHEMA"))
    {
        let file = app._dir.path().join("rx-bundle.json");
        std::fs::write(&file, serde_json::to_vec(&bundle).unwrap()).unwrap();
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        let script = std::path::PathBuf::from(manifest).join("../../tests/e2e/validate_fhir.py");
        let out = std::process::Command::new(python).arg(script).arg(schema).arg(&file).output().unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report[file.to_str().unwrap()], json!([]), "{report}");
    }

    // The stored prescription is still covered by its signature; a changed one is not.
    let stored = app.store.get_prescription(&rx_id.parse().unwrap()).await.unwrap().unwrap();
    assert!(carelens_records::prescribing::verify(&stored));
    let mut forged = stored.clone();
    forged.refills_allowed = 9;
    app.store.put_prescription(&forged).await.unwrap();
    assert_eq!(app.get(&format!("{base}/prescriptions"), &mine).await.json()[0]["signature_valid"], false);
}
