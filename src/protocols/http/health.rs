//! `GET /healthz` (the process answers) and `GET /readyz` (it can take work:
//! not shutting down, and the job backend answers).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "ready"), (status = 503, description = "not ready")))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.shutting_down() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "shutting_down" })),
        );
    }
    let stats = state.store.pool().stats();
    let repo = state.store.repo();
    let backend = repo.kind();
    if let Err(e) = repo.ping().await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({ "status": "backend_unavailable", "backend": backend, "message": e.to_string() }),
            ),
        );
    }
    (
        StatusCode::OK,
        Json(json!({ "status": "ready", "backend": backend, "queue": stats })),
    )
}
