//! Population KPIs for analysts over the latest analytics snapshot, and the two functions
//! that move snapshots between the store and files, which the CLI uses too:
//! [`export_snapshot`] (store → Parquet → object store, recorded in the store) and
//! [`latest_snapshot`] (recorded key → object store → cached directory).

use std::path::{Path, PathBuf};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use carelens_analytics::snapshot::{MANIFEST, Manifest};
use carelens_analytics::{AnalyticsError, PatientRecord, Period, Query, Snapshot, SnapshotWriter, output};
use carelens_domain::{ObjectKey, Role};
use carelens_store::{HistoryFilter, ObjectStore, PageRequest, Store};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Session;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::extract::Params;
use crate::state::AppState;
use crate::wire::{KpiCatalogue, KpiInfo, SnapshotInfo};

/// Store meta key holding the object key of the latest snapshot's manifest.
pub const SNAPSHOT_META: &str = "analytics.snapshot";

/// Why no snapshot could be opened.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("no analytics snapshot yet: run `carelens export analytics` first")]
    None,
    #[error(transparent)]
    Store(#[from] carelens_store::StoreError),
    #[error(transparent)]
    Analytics(#[from] AnalyticsError),
    #[error("{path}: {detail}")]
    File { path: PathBuf, detail: String },
}

fn io(path: &Path, e: std::io::Error) -> SnapshotError {
    SnapshotError::File { path: path.to_owned(), detail: e.to_string() }
}

/// The folder name a snapshot is cached under: the manifest digest's first 16 characters.
pub fn cache_name(key: &ObjectKey) -> String {
    key.as_str().rsplit('/').next().unwrap_or(key.as_str()).chars().take(16).collect()
}

/// The latest snapshot: its cached directory under `cache`, downloaded from the object store
/// (each file checked against its content address) when missing or damaged.
pub async fn latest_snapshot(
    store: &dyn Store,
    objects: &dyn ObjectStore,
    cache: &Path,
) -> Result<Snapshot, SnapshotError> {
    let key = store.get_meta(SNAPSHOT_META).await?.ok_or(SnapshotError::None)?;
    let key: ObjectKey = key.parse().map_err(|e| SnapshotError::File {
        path: PathBuf::from(SNAPSHOT_META),
        detail: format!("not an object key ({e})"),
    })?;
    let dir = cache.join(cache_name(&key));
    if dir.join(MANIFEST).exists() {
        if let Ok(s) = Snapshot::open(&dir) {
            return Ok(s);
        }
        std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
    }
    let text = objects.get(&key).await?;
    let text = String::from_utf8(text).map_err(|_| SnapshotError::File {
        path: PathBuf::from(key.as_str()),
        detail: "the manifest is not text".into(),
    })?;
    let manifest = Manifest::parse(&text, Path::new(key.as_str()))?;
    let tmp = cache.join(format!("{}.part", cache_name(&key)));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    for f in manifest.files() {
        let missing = || SnapshotError::File { path: PathBuf::from(&f.path), detail: "has no object key".into() };
        let k: ObjectKey = f.object_key.as_deref().ok_or_else(missing)?.parse().map_err(|_| missing())?;
        let dest = tmp.join(&f.path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        objects.copy_to(&k, &dest).await?;
    }
    std::fs::write(tmp.join(MANIFEST), text).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, &dir).map_err(|e| io(&dir, e))?;
    Ok(Snapshot::open(&dir)?)
}

/// Writes a snapshot of everything in `store` into the empty directory `dir`, puts every part
/// file and then the manifest into `objects`, and records the manifest's key as the latest
/// snapshot. `progress` hears `("patients" | "uploading", total)` once and then each step.
pub async fn export_snapshot(
    store: &dyn Store,
    objects: &dyn ObjectStore,
    dir: &Path,
    as_of: chrono::NaiveDate,
    key: &[u8],
    stable: bool,
    progress: &(dyn Fn(&str, Option<u64>) + Sync),
) -> Result<(ObjectKey, Manifest), SnapshotError> {
    let mut writer = SnapshotWriter::create(dir, as_of, key, stable)?;
    let mut page = Some(PageRequest::first(500));
    while let Some(req) = page {
        let got = store.list_providers(req).await?;
        for p in &got.items {
            writer.add_provider(p, &store.schedule_rules_for(&p.id).await?);
        }
        page = got.next;
    }
    progress("patients", Some(store.counts().await?.patients));
    let all = HistoryFilter::default();
    let mut page = Some(PageRequest::first(500));
    while let Some(req) = page {
        let got = store.list_patients(req).await?;
        for p in &got.items {
            let history = store.history(&p.id, &all).await?;
            let appointments = store.appointments_for_patient(&p.id).await?;
            let prediction_sets = store.prediction_sets(&p.id).await?;
            let feedback = store.feedback_for(&p.id).await?;
            writer.add_patient(PatientRecord {
                patient: p,
                history: &history,
                appointments: &appointments,
                prediction_sets: &prediction_sets,
                feedback: &feedback,
            })?;
            progress("patients", None);
        }
        page = got.next;
    }
    let mut manifest = writer.finish()?;
    progress("uploading", Some(manifest.files().count() as u64));
    for f in manifest.files_mut() {
        let path = dir.join(&f.path);
        let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
        f.object_key = Some(objects.put(bytes).await?.as_str().to_owned());
        progress("uploading", None);
    }
    manifest.write(dir)?;
    let path = dir.join(MANIFEST);
    let text = std::fs::read(&path).map_err(|e| io(&path, e))?;
    let key = objects.put(text).await?;
    store.set_meta(SNAPSHOT_META, key.as_str()).await?;
    Ok((key, manifest))
}

const ANALYSTS: &[Role] = &[Role::Analyst];

async fn snapshot(state: &AppState) -> ApiResult<Snapshot> {
    let Some(cache) = state.analytics.clone() else {
        return Err(ApiError::new(ErrorCode::NoSnapshot, "this server has no analytics folder configured"));
    };
    match latest_snapshot(state.store.as_ref(), state.objects.as_ref(), &cache).await {
        Ok(s) => Ok(s),
        Err(SnapshotError::None) => Err(ApiError::new(ErrorCode::NoSnapshot, SnapshotError::None.to_string())),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// The KPI catalogue with each KPI's definition and strata, and the snapshot it runs on.
#[utoipa::path(get, path = "/api/v1/kpis", tag = "analysts", security(("bearer" = [])), responses(
    (status = 200, body = KpiCatalogue), (status = 403, body = ErrorBody, description = "`forbidden_role`")))]
pub async fn list_kpis(State(state): State<AppState>, session: Session) -> ApiResult<Json<KpiCatalogue>> {
    session.require(&state, ANALYSTS, "kpis").await?;
    let snapshot = match snapshot(&state).await {
        Ok(s) => Some(SnapshotInfo {
            as_of: s.manifest.as_of,
            created_at: s.manifest.created_at.clone(),
            persons: s.manifest.tables.get("patients").map_or(0, |t| t.rows),
        }),
        Err(e) if e.code() == ErrorCode::NoSnapshot => None,
        Err(e) => return Err(e),
    };
    let kpis = carelens_analytics::CATALOGUE
        .iter()
        .map(|k| KpiInfo {
            name: k.name.into(),
            title: k.title.into(),
            topic: k.topic.into(),
            unit: k.unit.into(),
            definition: k.definition.into(),
            strata: k.allowed().into_iter().map(String::from).collect(),
            default_by: k.default_by.iter().map(|s| s.to_string()).collect(),
        })
        .collect();
    Ok(Json(KpiCatalogue { snapshot, min_k: carelens_analytics::kpi::DEFAULT_K, kpis }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KpiQuery {
    /// Strata, comma-separated (see the catalogue for what each KPI allows)
    #[serde(default)]
    pub by: Option<String>,
    /// Window start (YYYY-MM-DD)
    #[serde(default)]
    pub from: Option<chrono::NaiveDate>,
    /// Window end (YYYY-MM-DD); default the snapshot date
    #[serde(default)]
    pub to: Option<chrono::NaiveDate>,
    /// `month`, `quarter` (default) or `year`
    #[serde(default)]
    pub period: Option<String>,
    /// Suppression threshold; at least the server's minimum (11)
    #[serde(default)]
    pub k: Option<u32>,
    /// `json` (default) or `csv`
    #[serde(default)]
    pub format: Option<String>,
}

/// The role check, the parameters, the snapshot and the run, shared by the JSON/CSV and
/// chart endpoints.
async fn run_kpi(
    state: &AppState,
    session: &Session,
    name: &str,
    q: &KpiQuery,
) -> ApiResult<carelens_analytics::KpiResult> {
    session.require(state, ANALYSTS, "kpis").await?;
    let def = carelens_analytics::find(name).map_err(|e| ApiError::new(ErrorCode::KpiNotFound, e.to_string()))?;
    let min_k = carelens_analytics::kpi::DEFAULT_K;
    let k = q.k.unwrap_or(min_k);
    if k < min_k {
        return Err(ApiError::new(ErrorCode::InvalidInput, format!("k must be at least {min_k} here")));
    }
    let period = Period::parse(q.period.as_deref().unwrap_or("quarter"))
        .map_err(|e| ApiError::new(ErrorCode::InvalidInput, e.to_string()))?;
    let by = q.by.as_deref().unwrap_or("").split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().to_owned());
    let query = Query { by: by.collect(), from: q.from, to: q.to, period, k };
    let snap = snapshot(state).await?;
    tokio::task::spawn_blocking(move || carelens_analytics::run(&snap, def, &query))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            AnalyticsError::InvalidStratum { .. } | AnalyticsError::EmptyRange { .. } | AnalyticsError::Invalid(_) => {
                ApiError::new(ErrorCode::InvalidInput, e.to_string())
            }
            other => ApiError::internal(other),
        })
}

/// One KPI: rows with keys, measures and `suppressed`, as JSON (or CSV with `format=csv`).
#[utoipa::path(get, path = "/api/v1/kpis/{name}", tag = "analysts", security(("bearer" = [])),
    params(("name" = String, Path, description = "KPI name, e.g. `prevalence`"), KpiQuery), responses(
    (status = 200, description = "the KPI result: `kpi`, `title`, `definition`, `from`, `to`, `k`, `key_columns`, `measures`, `rows` (objects with the key columns, the measures and `suppressed`), `sql`"),
    (status = 400, body = ErrorBody, description = "`invalid_input`: a stratum the KPI does not allow, an empty window, k below the minimum"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`"),
    (status = 404, body = ErrorBody, description = "`kpi_not_found`"),
    (status = 409, body = ErrorBody, description = "`no_snapshot`")))]
pub async fn get_kpi(
    State(state): State<AppState>,
    session: Session,
    UrlPath(name): UrlPath<String>,
    Params(q): Params<KpiQuery>,
) -> ApiResult<Response> {
    let format = q.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "csv") {
        return Err(ApiError::new(ErrorCode::InvalidInput, format!("unknown format `{format}`; use json or csv")));
    }
    let result = run_kpi(&state, &session, &name, &q).await?;
    Ok(match format {
        "csv" => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}.csv\"", result.kpi)),
            ],
            output::to_csv(&result),
        )
            .into_response(),
        _ => Json(output::to_json(&result)).into_response(),
    })
}

/// One KPI as an SVG chart: lines over periods, else bars with 95 % intervals.
#[utoipa::path(get, path = "/api/v1/kpis/{name}/chart.svg", tag = "analysts", security(("bearer" = [])),
    params(("name" = String, Path, description = "KPI name"), KpiQuery), responses(
    (status = 200, content_type = "image/svg+xml", description = "the chart"),
    (status = 400, body = ErrorBody, description = "`invalid_input`"),
    (status = 403, body = ErrorBody, description = "`forbidden_role`"),
    (status = 404, body = ErrorBody, description = "`kpi_not_found`"),
    (status = 409, body = ErrorBody, description = "`no_snapshot`")))]
pub async fn get_kpi_chart(
    State(state): State<AppState>,
    session: Session,
    UrlPath(name): UrlPath<String>,
    Params(q): Params<KpiQuery>,
) -> ApiResult<Response> {
    let result = run_kpi(&state, &session, &name, &q).await?;
    let svg = carelens_analytics::chart::svg(&result);
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}
