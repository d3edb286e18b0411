//! The HTTP surface: axum routes for the job API, files, health, metrics,
//! the OpenAPI document and the web app, and the guards (API keys, upload
//! rate limits) that `/upload` and `/ws` share. Handlers are thin; the work
//! is in `jobs`, `files` and the pipeline.

pub mod accept;
pub mod facts;
pub mod files;
pub mod guard;
pub mod health;
pub mod jobs_api;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod webapp;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Settings;
use crate::jobs::JobStore;
use crate::links::DownloadLinks;

/// What the job API handlers share.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: JobStore,
    pub metrics: PrometheusHandle,
    pub upload_limiter: Option<Arc<guard::UploadLimiter>>,
    pub shutting_down: Arc<AtomicBool>,
    /// The download links handed out, signed with `download.signed_urls`.
    pub links: Arc<DownloadLinks>,
}

impl AppState {
    pub fn new(settings: Arc<Settings>, store: JobStore) -> Self {
        let upload_limiter = guard::upload_limiter(
            settings.upload.rate_limit_per_minute,
            settings.upload.rate_limit_burst,
        );
        Self {
            links: Arc::new(DownloadLinks::new(&settings.download)),
            settings,
            store,
            metrics: metrics::handle(),
            upload_limiter,
            shutting_down: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

/// The job API, `/ws` (the job API over a WebSocket, behind the same
/// guards), health, metrics and the API document.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.upload.max_upload_size + jobs_api::MULTIPART_OVERHEAD;
    let uploads = Router::new()
        .route("/upload", post(jobs_api::upload))
        .route("/ws", get(super::ws::jobs::handler))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::rate_limit,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::refuse_when_stopping,
        ));
    // A signed download link is its own credential (guard::download_access).
    let downloads = Router::new()
        .route("/download/{md5}", get(jobs_api::download))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::download_access,
        ));
    let jobs = Router::new()
        .merge(uploads)
        .route("/status/{md5}", get(jobs_api::status))
        .route("/queue/{md5}", get(jobs_api::queue))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::require_api_key,
        ))
        .merge(downloads)
        .layer(DefaultBodyLimit::max(
            usize::try_from(body_limit).unwrap_or(usize::MAX),
        ));
    Router::new()
        .route("/", get(jobs_api::root))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .merge(jobs)
        .with_state(state)
        .merge(openapi::router())
}
