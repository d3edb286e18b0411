//! `POST /upload` with an arbitrary multipart body, through the real
//! router (guards, multipart parsing, option checks, admission): every
//! answer is a JSON error or an accepted job, never a panic or a 500.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use pixpress::config::Settings;
use tokio_util::sync::CancellationToken;
use pixpress::jobs::{JobStore, StoreSettings, WorkerPool};
use pixpress::protocols::http::{router, AppState};
use tower::ServiceExt;

struct Server {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let mut settings = Settings::default();
        settings.upload.rate_limit_per_minute = 0;
        settings.upload.max_upload_size = 256 * 1024;
        let settings = Arc::new(settings);
        let app = runtime.block_on(async {
            let pool = WorkerPool::new(1, 4, std::time::Duration::from_secs(5));
            let store = JobStore::new(StoreSettings::of(&settings), pool);
            // The worker loop runs the queued jobs (until the process ends).
            pixpress::jobs::worker::start(store.clone(), CancellationToken::new())
                .await
                .expect("the memory backend starts");
            router(AppState::new(settings.clone(), store))
        });
        Server { runtime, app }
    })
}

fuzz_target!(|data: &[u8]| {
    let server = server();
    let request = Request::post("/upload")
        .header("content-type", "multipart/form-data; boundary=XfuzzX")
        .body(Body::from(data.to_vec()))
        .expect("a request");
    let response = server
        .runtime
        .block_on(server.app.clone().oneshot(request))
        .expect("the router answers");
    let status = response.status();
    assert!(
        status != StatusCode::INTERNAL_SERVER_ERROR,
        "an upload body made a 500"
    );
    if !status.is_success() {
        let body = server
            .runtime
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
            .expect("a body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON error");
        assert!(json["error"].is_string(), "{json}");
    }
});
