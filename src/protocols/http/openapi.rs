//! `GET /openapi.json`, generated from the handlers, and the API page at
//! `/docs` (bundled, works offline).

use utoipa::OpenApi;

use super::{health, jobs_api};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pixpress",
        description = "Image compression job queue and real-time sharing. WebSocket protocols (/ws, /ws/share/{room}, /ws/img2img, /ws/chat) are described in the project's docs."
    ),
    paths(
        jobs_api::root,
        jobs_api::upload,
        jobs_api::status,
        jobs_api::download,
        health::healthz,
        health::readyz
    ),
    components(schemas(
        jobs_api::ServiceInfo,
        jobs_api::QueueView,
        jobs_api::UploadAnswer,
        jobs_api::VariantView
    ))
)]
pub struct ApiDoc;

pub fn router<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new()
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}
