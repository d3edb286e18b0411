//! The TinyImage client flow (SPEC section 1), as its README's curl commands
//! run it: upload with `-F picture=@file -F format=...`, follow
//! `/status/{md5}` and `/queue/{md5}`, and download with no options at all,
//! which must serve the variant TinyImage would (WebP, then PNG, then JPEG).

mod common;

use common::http::{md5_hex, named_form, post_upload};
use common::*;
use reqwest::StatusCode;
use serde_json::Value;

/// `curl -X POST /upload -F "picture=@name" -F "format=..." [-F "quality=..."]`
async fn upload(base: &str, bytes: &[u8], name: &str, fields: &[(&str, &str)]) -> Value {
    let (status, answer) = post_upload(base, named_form(bytes, name, fields)).await;
    assert!(status.is_success(), "{status}: {answer}");
    answer
}

async fn settle(base: &str, md5: &str) -> Vec<Value> {
    let r = reqwest::get(format!("{base}/status/{md5}?wait=30"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let variants: Vec<Value> = r.json().await.unwrap();
    assert!(
        variants.iter().all(|v| v["status"] == "done"),
        "{variants:?}"
    );
    variants
}

/// `curl -o out http://HOST/download/{md5}`: the content type it got.
async fn plain_download(base: &str, md5: &str) -> (String, Vec<u8>) {
    let r = reqwest::get(format!("{base}/download/{md5}"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mime = r.headers()["content-type"].to_str().unwrap().to_owned();
    (mime, r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn a_plain_download_serves_webp_then_png_then_the_best_jpeg() {
    let server = start(test_settings()).await;
    let base = base_url(&server);
    let input = jpeg(320, 200);
    let md5 = md5_hex(&input);

    let answer = upload(
        &base,
        &input,
        "photo.jpg",
        &[("format", "jpg"), ("quality", "50")],
    )
    .await;
    assert_eq!(answer["md5"], md5.as_str());
    assert_eq!(answer["message"], "Your image is queued for processing");
    upload(
        &base,
        &input,
        "photo.jpg",
        &[("format", "jpg"), ("quality", "90")],
    )
    .await;
    settle(&base, &md5).await;
    let (mime, q90) = plain_download(&base, &md5).await;
    assert_eq!(mime, "image/jpeg");
    let q50 = reqwest::get(format!("{base}/download/{md5}?format=jpg&quality=50"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(q90.len() > q50.len(), "the highest quality JPEG is served");

    upload(&base, &input, "photo.jpg", &[("format", "png")]).await;
    settle(&base, &md5).await;
    let (mime, bytes) = plain_download(&base, &md5).await;
    assert_eq!(mime, "image/png");
    assert!(bytes.starts_with(b"\x89PNG"));

    // TinyImage's default format: the upload without fields.
    upload(&base, &input, "photo.jpg", &[]).await;
    settle(&base, &md5).await;
    let (mime, bytes) = plain_download(&base, &md5).await;
    assert_eq!(mime, "image/webp");
    assert_eq!(&bytes[8..12], b"WEBP");
    server.shutdown().await;
}

#[tokio::test]
async fn the_queue_lists_what_is_not_done_yet_and_404s_after() {
    let mut settings = test_settings();
    settings.upload.max_concurrent_tasks = 1;
    let server = start(settings).await;
    let base = base_url(&server);

    // One worker: a large palette PNG keeps it busy while the second
    // upload waits behind it.
    let slow = png_rgba(2400, 2400);
    upload(&base, &slow, "big.png", &[("format", "png")]).await;
    let input = jpeg(64, 48);
    let md5 = md5_hex(&input);
    upload(
        &base,
        &input,
        "holiday.jpg",
        &[("format", "jpg"), ("quality", "70")],
    )
    .await;

    let r = reqwest::get(format!("{base}/queue/{md5}")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let queued: Vec<Value> = r.json().await.unwrap();
    assert_eq!(
        queued,
        vec![
            serde_json::json!({"md5": md5, "filename": "holiday.jpg", "format": "jpg", "quality": 70})
        ]
    );

    settle(&base, &md5).await;
    let r = reqwest::get(format!("{base}/queue/{md5}")).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "not_found");

    let r = reqwest::get(format!("{base}/queue/0123456789abcdef0123456789abcdef"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    server.shutdown().await;
}
