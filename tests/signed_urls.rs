//! Signed download links (`download.signed_urls`) through the whole server:
//! the links handed out (upload answer, status entry, `/ws` done frame)
//! download the result; a changed, an expired and an unsigned link are
//! refused with 403 and their codes; off, `/download/{md5}` needs nothing.

mod common;

use std::time::{Duration, SystemTime};

use common::http::{md5_hex, upload, wait_status};
use futures_util::{SinkExt, StreamExt};
use pixpress::config::Settings;
use pixpress::jobs::{OptionRules, UploadOptions};
use pixpress::links::DownloadLinks;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "a long enough secret for tests";

fn signed_settings() -> Settings {
    let mut s = common::test_settings();
    s.download.signed_urls = true;
    s.download.signing_secret = Some(SECRET.into());
    s.download.link_lifetime = Duration::from_secs(3600);
    s
}

async fn get(base: &str, path: &str, key: Option<&str>) -> (StatusCode, Vec<u8>) {
    let mut r = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(key) = key {
        r = r.bearer_auth(key);
    }
    let r = r.send().await.expect("answered");
    (r.status(), r.bytes().await.unwrap().to_vec())
}

/// A 403 with `code` in the JSON body.
fn assert_refused(answer: &(StatusCode, Vec<u8>), code: &str) {
    assert_eq!(answer.0, StatusCode::FORBIDDEN);
    let body: Value = serde_json::from_slice(&answer.1).expect("a JSON error");
    assert_eq!(body["error"], code, "{body}");
    assert!(!body["message"].as_str().unwrap().is_empty());
}

fn is_webp(bytes: &[u8]) -> bool {
    bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP"
}

#[tokio::test]
async fn a_signed_link_downloads_and_a_changed_expired_or_unsigned_one_is_refused() {
    let server = common::start(signed_settings()).await;
    let base = common::base_url(&server);
    let image = common::jpeg(120, 80);
    let md5 = md5_hex(&image);

    let (status, answer) = upload(&base, &image, &[("format", "webp"), ("quality", "70")]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let from_upload = answer["url"].as_str().expect("the upload answer has a url");
    assert!(
        from_upload.starts_with(&format!("/download/{md5}?format=webp&quality=70&expires=")),
        "{from_upload}"
    );
    assert!(from_upload.contains("&signature="), "{from_upload}");

    let entries = wait_status(&base, &md5).await;
    assert_eq!(entries[0]["status"], "done");
    let from_status = entries[0]["url"]
        .as_str()
        .expect("a status entry has a url");

    for link in [from_upload, from_status] {
        let (status, bytes) = get(&base, link, None).await;
        assert_eq!(status, StatusCode::OK, "{link}");
        assert!(is_webp(&bytes));
    }

    // Another variant's options on this link, another task, something
    // appended: the signature no longer matches.
    let changed = [
        from_status.replace("quality=70", "quality=71"),
        from_status.replace(&md5, &md5_hex(b"other")),
        format!("{from_status}&format=png"),
        from_status.replace("&signature=", "&signature=x"),
    ];
    for link in &changed {
        assert_refused(&get(&base, link, None).await, "signature_invalid");
    }

    // A link this server signed two hours ago, for a lifetime of one.
    let links = DownloadLinks::new(&signed_settings().download);
    let spec = {
        let mut o = UploadOptions::default();
        o.set("format", "webp".into());
        o.set("quality", "70".into());
        o.to_spec(&OptionRules::within(16384)).unwrap()
    };
    let old = links.url_at(&md5, &spec, SystemTime::now() - Duration::from_secs(7200));
    assert_refused(&get(&base, &old, None).await, "link_expired");
    // The same link made now works: only the expiry differs.
    let fresh = links.url(&md5, &spec);
    assert_eq!(get(&base, &fresh, None).await.0, StatusCode::OK);

    // Unsigned, as a TinyImage client builds it, with or without options.
    for path in [
        format!("/download/{md5}"),
        format!("/download/{md5}?format=webp&quality=70"),
    ] {
        assert_refused(&get(&base, &path, None).await, "signature_required");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_ws_done_frame_carries_a_signed_link() {
    let server = common::start(signed_settings()).await;
    let base = common::base_url(&server);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.http_addr))
        .await
        .unwrap();
    let image = common::jpeg(64, 48);
    let data = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &image);
    ws.send(Message::text(
        json!({"format": "png", "data": data, "id": 7}).to_string(),
    ))
    .await
    .unwrap();
    let done = loop {
        let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a frame within the wait")
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
        if v["status"] == "done" || v["status"] == "error" {
            break v;
        }
    };
    assert_eq!(done["status"], "done", "{done}");
    let link = done["url"].as_str().expect("the done frame has a url");
    assert!(link.contains("format=png") && link.contains("&signature="));
    let (status, bytes) = get(&base, link, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&bytes[1..4], b"PNG");
    server.shutdown().await;
}

#[tokio::test]
async fn with_api_keys_a_signed_link_is_its_own_credential_and_a_key_alone_is_not_enough() {
    let mut s = signed_settings();
    s.auth.api_keys = vec!["key-one".into()];
    let server = common::start(s).await;
    let base = common::base_url(&server);
    let image = common::jpeg(40, 30);
    let md5 = md5_hex(&image);
    let r = reqwest::Client::new()
        .post(format!("{base}/upload"))
        .bearer_auth("key-one")
        .multipart(common::http::form(&image, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let link = r.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = reqwest::Client::new()
        .get(format!("{base}/status/{md5}?wait=30"))
        .bearer_auth("key-one")
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()[0]["status"], "done");

    // The link works for a client without a key (the uploader passed it on).
    assert_eq!(get(&base, &link, None).await.0, StatusCode::OK);
    // The uploader's key without a signature does not.
    let unsigned = format!("/download/{md5}");
    assert_refused(
        &get(&base, &unsigned, Some("key-one")).await,
        "signature_required",
    );
    // Statuses still need the key.
    assert_eq!(
        get(&base, &format!("/status/{md5}"), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    server.shutdown().await;
}

#[tokio::test]
async fn without_signed_urls_links_are_plain_and_downloads_need_no_signature() {
    let server = common::start(common::test_settings()).await;
    let base = common::base_url(&server);
    let image = common::jpeg(50, 50);
    let md5 = md5_hex(&image);
    let (_, answer) = upload(&base, &image, &[]).await;
    assert_eq!(
        answer["url"],
        format!("/download/{md5}?format=webp&quality=80")
    );
    let entries = wait_status(&base, &md5).await;
    assert_eq!(entries[0]["url"], answer["url"]);
    let (status, bytes) = get(&base, &format!("/download/{md5}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(is_webp(&bytes));
    server.shutdown().await;
}
