//! The HTTP job API as a client sees it (SPEC section 1), with a real
//! server on a free port and reqwest as the client.

mod common;

use std::time::Duration;

use common::http::{form, md5_hex, upload, wait_status};
use common::*;
use reqwest::multipart::Form;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn root_describes_the_service_as_json() {
    let server = start(test_settings()).await;
    let v: Value = reqwest::get(base_url(&server))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["download_url"], "download/");
    assert_eq!(v["max_upload_size_bytes"], 10_485_760);
    assert_eq!(v["max_concurrent_tasks"], 3);
    let formats: Vec<&str> = v["formats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for f in ["webp", "png", "jpg"] {
        assert!(formats.contains(&f), "{formats:?}");
    }
    assert_eq!(v["queue"]["queued"], 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_browser_is_sent_to_the_web_app() {
    let server = start(test_settings()).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(base_url(&server))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection());
    assert_eq!(r.headers()["location"], "/app/");
    server.shutdown().await;
}

#[tokio::test]
async fn upload_follow_and_download_a_png() {
    let server = start(test_settings()).await;
    let base = base_url(&server);
    let input = jpeg(320, 200);
    let (status, answer) = upload(&base, input.clone(), &[("format", "png")]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["md5"], md5_hex(&input));
    assert_eq!(answer["format"], "png");
    assert_eq!(answer["quality"], 80);
    assert_eq!(answer["message"], "Your image is queued for processing");

    let variants = wait_status(&base, &md5_hex(&input)).await;
    assert_eq!(variants.len(), 1);
    let v = &variants[0];
    assert_eq!(v["status"], "done", "{v}");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(200))
    );
    assert_eq!(v["original_size"], input.len());
    assert!(v["error"].is_null());

    let r = reqwest::get(format!("{base}/download/{}", md5_hex(&input)))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.contains(&format!("{}.png", md5_hex(&input))),
        "{disposition}"
    );
    let len: usize = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), len);
    assert_eq!(body.len() as u64, v["size"].as_u64().unwrap());
    assert!(body.starts_with(b"\x89PNG"));
    assert_eq!(decode(&body).width(), 320);

    let r = reqwest::Client::new()
        .get(format!("{base}/download/{}", md5_hex(&input)))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    server.shutdown().await;
}

#[tokio::test]
async fn the_same_bytes_and_options_are_encoded_once() {
    let server = start(test_settings()).await;
    let base = base_url(&server);
    let input = jpeg(256, 256);
    let uploads = (0..6).map(|_| {
        upload(
            &base,
            input.clone(),
            &[("format", "webp"), ("quality", "70")],
        )
    });
    let answers = futures_util::future::join_all(uploads).await;
    for (status, answer) in &answers {
        assert!(status.is_success(), "{answer}");
        assert_eq!(answer["md5"], md5_hex(&input));
    }
    let variants = wait_status(&base, &md5_hex(&input)).await;
    assert_eq!(
        variants.len(),
        1,
        "one variant for identical requests: {variants:?}"
    );
    let (status, answer) = upload(
        &base,
        input.clone(),
        &[("format", "webp"), ("quality", "70")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "done already: {answer}");
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("pixpress_jobs_total"), "{metrics}");
    server.shutdown().await;
}

#[tokio::test]
async fn each_option_set_is_a_variant_and_downloads_pick_one() {
    let server = start(test_settings()).await;
    let base = base_url(&server);
    let input = png_rgba(300, 150);
    let md5 = md5_hex(&input);
    upload(
        &base,
        input.clone(),
        &[("format", "jpg"), ("quality", "60")],
    )
    .await;
    upload(
        &base,
        input.clone(),
        &[("format", "webp"), ("width", "100")],
    )
    .await;
    let variants = wait_status(&base, &md5).await;
    assert_eq!(variants.len(), 2);
    assert!(
        variants.iter().all(|v| v["status"] == "done"),
        "{variants:?}"
    );

    let jpg = reqwest::get(format!("{base}/download/{md5}?format=jpeg"))
        .await
        .unwrap();
    assert_eq!(jpg.headers()["content-type"], "image/jpeg");
    let jpg = jpg.bytes().await.unwrap();
    assert!(jpg.starts_with(&[0xFF, 0xD8, 0xFF]));

    let small = reqwest::get(format!("{base}/download/{md5}?format=webp&width=100"))
        .await
        .unwrap();
    let small = decode(&small.bytes().await.unwrap());
    assert_eq!((small.width(), small.height()), (100, 50));

    let missing = reqwest::get(format!("{base}/download/{md5}?format=png"))
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let v: Value = missing.json().await.unwrap();
    assert_eq!(v["error"], "not_found");
    server.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_json_errors_with_the_right_status() {
    let mut settings = test_settings();
    settings.upload.max_upload_size = 20_000;
    let server = start(settings).await;
    let base = base_url(&server);
    let client = reqwest::Client::new();

    let cases: Vec<(&str, Form, StatusCode, &str)> = vec![
        (
            "no picture",
            Form::new().text("format", "png"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "bad quality",
            form(jpeg(16, 16), &[("quality", "0")]),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "bad format",
            form(jpeg(16, 16), &[("format", "gif")]),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "bad width",
            form(jpeg(16, 16), &[("width", "wide")]),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "empty file",
            form(Vec::new(), &[]),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "text file",
            form(b"hello, this is not an image", &[]),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_format",
        ),
        (
            "bomb",
            form(png_bomb_header(100_000, 100_000), &[]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_pixels",
        ),
        (
            "too large",
            form(vec![0xFF; 200_000], &[]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
    ];
    for (what, form, status, code) in cases {
        let r = client
            .post(format!("{base}/upload"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{what}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], code, "{what}: {v}");
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {v}"
        );
    }
    let r = client
        .post(format!("{base}/upload"))
        .body("plain")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    for path in [
        "/status/0123456789abcdef0123456789abcdef",
        "/download/0123456789abcdef0123456789abcdef",
        "/status/nope",
    ] {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "not_found");
    }
    let alive = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(alive.status(), StatusCode::OK);
    server.shutdown().await;
}

#[tokio::test]
async fn oversize_is_refused_from_content_length_before_the_body() {
    let mut settings = test_settings();
    settings.upload.max_upload_size = 1000;
    let server = start(settings).await;
    let mut stream = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = "POST /upload HTTP/1.1\r\nhost: x\r\ncontent-type: multipart/form-data; boundary=b\r\ncontent-length: 50000000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut answer))
        .await
        .expect("answered without the body")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("too_large"), "{text}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_failed_variant_is_reported_and_download_says_why() {
    let server = start(test_settings()).await;
    let base = base_url(&server);
    let input = jpeg(400, 400);
    // No PNG, however small, fits in 64 bytes (its fixed chunks take 57).
    let (status, answer) = upload(
        &base,
        input.clone(),
        &[("format", "png"), ("max_bytes", "64")],
    )
    .await;
    assert!(status.is_success(), "a valid image is queued: {answer}");
    let v = &wait_status(&base, &md5_hex(&input)).await[0];
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["error"], "Image could not be compressed below 64B.");
    let r = reqwest::get(format!("{base}/download/{}", md5_hex(&input)))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "budget_not_met");
    server.shutdown().await;
}

#[tokio::test]
async fn a_full_queue_answers_503_at_once_and_wait_follows_the_job() {
    let mut settings = test_settings();
    settings.upload.max_concurrent_tasks = 1;
    settings.upload.max_queue = 1;
    let server = start(settings).await;
    let base = base_url(&server);
    // Take the only worker slot, so that jobs stay queued until released.
    let slot = server.state.store.pool().try_admit().expect("free slot");

    let first = jpeg(64, 64);
    let (status, _) = upload(&base, first.clone(), &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let md5 = md5_hex(&first);
    let v: Vec<Value> = reqwest::get(format!("{base}/status/{md5}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v[0]["status"], "queued");
    let r = reqwest::get(format!("{base}/download/{md5}"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "not_ready");

    let r = reqwest::Client::new()
        .post(format!("{base}/upload"))
        .multipart(form(jpeg(65, 65), &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "queue_full");

    let waiter = tokio::spawn({
        let base = base.clone();
        let md5 = md5.clone();
        async move { wait_status(&base, &md5).await }
    });
    drop(slot);
    let v = waiter.await.unwrap();
    assert_eq!(v[0]["status"], "done", "{v:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn api_keys_guard_the_job_api_when_configured() {
    let mut settings = test_settings();
    settings.auth.api_keys = vec!["s3cret".into()];
    let server = start(settings).await;
    let base = base_url(&server);
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/upload"))
        .multipart(form(jpeg(16, 16), &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "unauthorized");
    let r = client
        .post(format!("{base}/upload"))
        .bearer_auth("s3cret")
        .multipart(form(jpeg(16, 16), &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "health stays open");
    server.shutdown().await;
}

#[tokio::test]
async fn uploads_are_rate_limited_per_client() {
    let mut settings = test_settings();
    settings.upload.rate_limit_per_minute = 1;
    settings.upload.rate_limit_burst = 1;
    let server = start(settings).await;
    let base = base_url(&server);
    let (first, _) = upload(&base, jpeg(16, 16), &[]).await;
    assert_eq!(first, StatusCode::ACCEPTED);
    let (second, body) = upload(&base, jpeg(17, 17), &[]).await;
    assert_eq!(second, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"], "rate_limited");
    server.shutdown().await;
}

#[tokio::test]
async fn refusals_past_the_rate_limit_reach_a_keep_alive_client() {
    let mut settings = test_settings();
    settings.upload.rate_limit_per_minute = 1;
    settings.upload.rate_limit_burst = 2;
    let server = start(settings).await;
    let base = base_url(&server);
    // One client, so the requests share keep-alive connections.
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _round in 0..4 {
        let requests = (0..40).map(|i| {
            let body = vec![b'x' ^ (i as u8); 1024];
            client
                .post(format!("{base}/upload"))
                .multipart(form(body, &[]))
                .send()
        });
        for answer in futures_util::future::join_all(requests).await {
            let answer = answer.expect("every request gets its answer, never a reset");
            let status = answer.status();
            let body: Value = answer.json().await.expect("a JSON error body");
            assert!(body["error"].is_string(), "{body}");
            statuses.push(status);
        }
    }
    assert_eq!(statuses.len(), 160);
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .count();
    // The burst of two (and at most one token refilled a minute later)
    // reaches the handler, which refuses bytes that are not an image.
    assert!((2..=3).contains(&refused), "{refused} reached the handler");
    assert_eq!(limited + refused, 160, "the rest is rate limited");
    server.shutdown().await;
}

#[tokio::test]
async fn results_are_copied_to_the_output_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings();
    settings.server.output_dir = Some(dir.path().to_path_buf());
    let server = start(settings).await;
    let base = base_url(&server);
    let input = jpeg(40, 30);
    upload(&base, input.clone(), &[("format", "jpg")]).await;
    let v = wait_status(&base, &md5_hex(&input)).await;
    assert_eq!(v[0]["status"], "done");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(
        names[0].starts_with(&md5_hex(&input)) && names[0].ends_with(".jpg"),
        "{names:?}"
    );
    assert_eq!(
        server.state.store.clean_output_dir(Duration::ZERO).unwrap(),
        1
    );
    server.shutdown().await;
}

#[tokio::test]
async fn health_metrics_and_the_api_document_answer() {
    let server = start(test_settings()).await;
    let base = base_url(&server);
    let ready: Value = reqwest::get(format!("{base}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    assert!(text.contains("pixpress_queue_depth"), "{text}");
    let doc: Value = reqwest::get(format!("{base}/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in ["/upload", "/status/{md5}", "/download/{md5}"] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    let page = reqwest::get(format!("{base}/docs/")).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let unknown = reqwest::get(format!("{base}/no/such/route")).await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let v: Value = unknown.json().await.unwrap();
    assert_eq!(v["error"], "not_found");
    server.shutdown().await;
}
