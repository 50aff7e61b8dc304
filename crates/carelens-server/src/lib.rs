//! The carelens HTTP service (axum + tokio): a JSON API for doctors, ML engineers and admins,
//! the doctors' web view (static assets compiled in), health and readiness probes, and an
//! OpenAPI 3 document generated from the same route declarations as the router.
//!
//! Every request passes one middleware ([`access_log`]) that gives it an id, bounds its time
//! and logs method, route template, status and duration; never a path with ids in it, a query
//! string or a body. Bodies are capped ([`ServerConfig::max_body_bytes`]). Handlers take
//! domain types from the store and answer with the wire types of [`wire`].

mod access;
mod auth;
pub mod availability;
pub mod booking;
pub mod consent;
pub mod directory;
pub mod documents;
pub mod entries;
mod error;
mod extract;
mod jobs;
pub mod kpis;
pub mod prescriptions;
pub mod record;
mod routes;
pub mod schedule;
mod state;
mod ui;
pub mod wire;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

pub use access::{Access, Purpose, check_patient_access};
pub use auth::{AuthError, Claims, MIN_PASSWORD, TokenKey, generate_password, hash_password, verify_password};
pub use error::{ApiError, ErrorCode};
pub use jobs::{PredictionRunner, RunRequest};
pub use state::{AppState, ServerConfig};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "carelens",
        description = "Predicted diagnoses with their evidence for doctors, models and prediction runs for ML engineers. \
                       Sign in with POST /api/v1/auth/login and send the token as `Authorization: Bearer <token>`. \
                       Every error is `{\"error\": {\"code\", \"message\"}}` with a stable code."
    ),
    modifiers(&BearerScheme),
    components(schemas(error::ErrorBody))
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("carelens v1").build(),
            ),
        );
    }
}

/// The documented API routes and their OpenAPI document.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::healthz))
        .routes(routes!(routes::readyz))
        .routes(routes!(routes::login))
        .routes(routes!(routes::me))
        .routes(routes!(routes::my_access_log))
        .routes(routes!(consent::list, consent::grant))
        .routes(routes!(consent::revoke))
        .routes(routes!(consent::emergency))
        .routes(routes!(consent::list_teams, consent::create_team))
        .routes(routes!(routes::list_patients))
        .routes(routes!(routes::get_predictions))
        .routes(routes!(routes::get_evidence))
        .routes(routes!(routes::get_history, entries::add_entry))
        .routes(routes!(entries::correct_entry))
        .routes(routes!(record::get_fhir_record))
        .routes(
            routes!(documents::upload, documents::list)
                .layer(DefaultBodyLimit::max(carelens_records::documents::MAX_DOCUMENT_BYTES + 1024)),
        )
        .routes(routes!(prescriptions::list, prescriptions::prescribe))
        .routes(routes!(prescriptions::check))
        .routes(routes!(prescriptions::request_refill))
        .routes(routes!(prescriptions::dispense))
        .routes(routes!(prescriptions::set_reminders))
        .routes(routes!(documents::download))
        .routes(routes!(documents::verify))
        .routes(routes!(documents::list_keys, documents::register_key))
        .routes(routes!(routes::post_feedback))
        .routes(routes!(routes::list_models))
        .routes(routes!(routes::get_model))
        .routes(routes!(routes::start_run, routes::list_runs))
        .routes(routes!(routes::get_run))
        .routes(routes!(routes::list_users, routes::create_user))
        .routes(routes!(kpis::list_kpis))
        .routes(routes!(kpis::get_kpi))
        .routes(routes!(kpis::get_kpi_chart))
        .routes(routes!(booking::search_providers))
        .routes(routes!(booking::get_provider))
        .routes(routes!(booking::list_openings))
        .routes(routes!(booking::book))
        .routes(routes!(booking::reschedule))
        .routes(routes!(booking::set_status))
        .routes(routes!(booking::my_appointments))
        .routes(routes!(booking::calendar))
        .routes(routes!(booking::list_reviews, booking::post_review))
        .routes(routes!(schedule::list_rules, schedule::add_rule))
        .routes(routes!(schedule::end_rule))
        .routes(routes!(schedule::list_closures, schedule::add_closure))
        .routes(routes!(schedule::withdraw_closure))
        .split_for_parts()
}

/// The OpenAPI document of [`router`]'s API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The whole service: API, `/openapi.json`, the web view, limits and access logs.
pub fn router(state: AppState) -> Router {
    let (api, doc) = api();
    let doc = std::sync::Arc::new(doc);
    let max_body = state.config.max_body_bytes;
    api.route("/openapi.json", axum::routing::get(move || async move { axum::Json(doc.as_ref().clone()) }))
        .merge(ui::routes())
        .fallback(|| async { ApiError::of(ErrorCode::RouteNotFound) })
        .method_not_allowed_fallback(|| async { ApiError::of(ErrorCode::MethodNotAllowed) })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), access_log))
        .with_state(state)
}

static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// Request id, timeout and one structured log line per request (no ids, queries or bodies).
async fn access_log(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = format!("{:x}-{:x}", std::process::id(), REQUESTS.fetch_add(1, Ordering::Relaxed));
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map_or("<unmatched>", |m| m.as_str()).to_string();
    let span = tracing::info_span!("request", id = %id, method = %method, route = %route);
    let timeout = state.config.request_timeout;
    let mut resp = match tokio::time::timeout(timeout, next.run(req).instrument(span.clone())).await {
        Ok(r) => r,
        Err(_) => ApiError::new(ErrorCode::Timeout, format!("the request took longer than {} s", timeout.as_secs()))
            .into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let code = resp.extensions().get::<ErrorCode>().map_or("", |c| c.as_str());
    let _enter = span.enter();
    tracing::info!(
        target: "carelens::access",
        status = resp.status().as_u16(),
        code,
        ms = started.elapsed().as_secs_f64() * 1e3,
        "request"
    );
    resp
}

/// Serves until `shutdown` resolves; returns the address actually bound (port 0 picks one).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

/// Binds `addr`; the error names the address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}
