//! `quality=auto` and `format=auto` through the job API (SPEC sections 1
//! and 2): the choice reported in the status, the download headers and the
//! `/ws` done frame, the variant key, `Accept` negotiation and the budget.

mod common;

use std::time::Duration;

use base64::Engine;
use common::http::{md5_hex, upload, wait_status};
use common::*;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

async fn download(base: &str, md5: &str, query: &str, accept: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("{base}/download/{md5}{query}"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    request.send().await.expect("download answered")
}

/// The format the bytes are, from their magic numbers.
fn sniff(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"\x89PNG") {
        "png"
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        "jpg"
    } else if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "webp"
    } else if bytes.len() > 12 && &bytes[4..12] == b"ftypavif" {
        "avif"
    } else {
        "unknown"
    }
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn quality_auto_reaches_the_target_and_reports_it() {
    let server = start(test_settings()).await;
    let base = base_url(&server);
    let input = jpeg(160, 120);
    let md5 = md5_hex(&input);

    let (status, answer) = upload(&base, &input, &[("quality", "auto"), ("target", "75")]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        (&answer["format"], &answer["quality"], &answer["target"]),
        (&json!("webp"), &json!("auto"), &json!(75))
    );

    let variants = wait_status(&base, &md5).await;
    assert_eq!(variants.len(), 1, "{variants:?}");
    let v = &variants[0];
    assert_eq!(v["status"], "done", "{v}");
    assert_eq!(v["format"], "webp");
    let quality = v["quality"].as_u64().expect("the chosen quality");
    assert!((1..=100).contains(&quality), "{v}");
    let score = v["score"].as_f64().expect("a score");
    assert!(score >= 75.0, "{v}");
    assert_eq!(v["target"], 75);
    assert_eq!(v["target_met"], true);
    assert_eq!(v["budget_limited"], false);

    let r = download(&base, &md5, "?quality=auto", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let header_score: f64 = header(&r, "x-pixpress-score")
        .expect("a score header")
        .parse()
        .unwrap();
    assert_eq!(header_score, score);
    assert_eq!(
        header(&r, "x-pixpress-quality"),
        Some(&*quality.to_string())
    );
    assert_eq!(header(&r, "x-pixpress-format"), Some("webp"));
    assert_eq!(header(&r, "x-pixpress-target-met"), Some("true"));
    let body = r.bytes().await.unwrap();
    assert_eq!(sniff(&body), "webp");
    assert_eq!(body.len() as u64, v["size"].as_u64().unwrap());
    server.shutdown().await;
}

#[tokio::test]
async fn format_auto_reports_the_chosen_format_and_serves_it() {
    let server = start(test_settings()).await;
    let base = base_url(&server);
    let input = png_rgba(96, 64);
    let md5 = md5_hex(&input);

    let (status, answer) = upload(&base, &input, &[("format", "auto")]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        (&answer["format"], &answer["quality"], &answer["target"]),
        (&json!("auto"), &json!("auto"), &json!(80))
    );
    let v = &wait_status(&base, &md5).await[0];
    assert_eq!(v["status"], "done", "{v}");
    let chosen = v["format"].as_str().unwrap();
    assert!(["webp", "avif", "jpg", "png"].contains(&chosen), "{v}");
    assert!(v["score"].as_f64().is_some(), "{v}");
    assert_eq!(v["target"], 80);

    let r = download(&base, &md5, "?format=auto", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "x-pixpress-format"), Some(chosen));
    assert!(header(&r, "vary").is_some_and(|v| v.eq_ignore_ascii_case("accept")));
    let mime = header(&r, "content-type").unwrap().to_owned();
    let body = r.bytes().await.unwrap();
    assert_eq!(sniff(&body), chosen, "{mime}");
    assert_eq!(decode(&body).width(), 96);
    server.shutdown().await;
}

#[tokio::test]
async fn a_target_outside_30_to_100_or_not_a_number_is_a_bad_request() {
    let server = start(test_settings()).await;
    let base = base_url(&server);
    let input = jpeg(32, 32);
    for (quality, target) in [
        ("auto", "20"),
        ("auto", "abc"),
        ("auto", "101"),
        ("70", "20"),
    ] {
        let (status, answer) =
            upload(&base, &input, &[("quality", quality), ("target", target)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "target={target}: {answer}");
        assert_eq!(answer["error"], "bad_request");
        assert!(
            answer["message"].as_str().unwrap().starts_with("target"),
            "{answer}"
        );
    }
    let (status, answer) = upload(&base, &input, &[("quality", "best")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("auto"),
        "{answer}"
    );
    // Nothing was queued.
    let r = reqwest::get(format!("{base}/status/{}", md5_hex(&input)))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    server.shutdown().await;
}

#[tokio::test]
async fn the_same_auto_options_are_one_variant_and_fixed_ones_another() {
    let server = start(test_settings()).await;
    let base = base_url(&server);
    let input = jpeg(80, 60);
    let md5 = md5_hex(&input);

    let (status, _) = upload(&base, &input, &[("quality", "auto")]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(wait_status(&base, &md5).await[0]["status"], "done");
    // The default target given explicitly is the same variant: done already.
    let (status, again) = upload(&base, &input, &[("quality", "auto"), ("target", "80")]).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(wait_status(&base, &md5).await.len(), 1);

    let (status, _) = upload(&base, &input, &[("quality", "80")]).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "a fixed variant is another one"
    );
    let (status, _) = upload(&base, &input, &[("quality", "auto"), ("target", "90")]).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "another target is another one"
    );
    let variants = wait_status(&base, &md5).await;
    assert_eq!(variants.len(), 3, "{variants:?}");
    let fixed = variants
        .iter()
        .find(|v| v.get("target").is_none())
        .expect("the fixed variant");
    // A fixed variant's entry is as it always was: its number, no auto fields.
    assert_eq!(fixed["quality"], 80);
    for field in ["score", "target_met", "budget_limited", "score_sampled"] {
        assert!(fixed.get(field).is_none(), "{field}: {fixed}");
    }
    let targets: Vec<&Value> = variants.iter().map(|v| &v["target"]).collect();
    assert!(targets.contains(&&json!(80)) && targets.contains(&&json!(90)));

    // Downloads tell them apart.
    let auto = download(&base, &md5, "?quality=auto&target=90", None).await;
    assert_eq!(auto.status(), StatusCode::OK);
    assert!(header(&auto, "x-pixpress-score").is_some());
    let fixed = download(&base, &md5, "?quality=80", None).await;
    assert_eq!(fixed.status(), StatusCode::OK);
    assert!(header(&fixed, "x-pixpress-score").is_none());
    assert!(header(&fixed, "vary").is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn a_format_auto_download_honours_the_accept_header() {
    let server = start(test_settings()).await;
    let base = base_url(&server);
    let input = jpeg(120, 90);
    let md5 = md5_hex(&input);
    let (status, _) = upload(&base, &input, &[("format", "auto"), ("width", "100")]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let v = &wait_status(&base, &md5).await[0];
    let chosen = v["format"].as_str().unwrap().to_owned();
    let mime = match chosen.as_str() {
        "jpg" => "image/jpeg".to_owned(),
        other => format!("image/{other}"),
    };

    // Everything but the chosen format.
    let refusing = format!("{mime};q=0, image/*;q=0.8");
    let r = download(&base, &md5, "?format=auto", Some(&refusing)).await;
    assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);
    assert!(header(&r, "vary").is_some_and(|v| v.eq_ignore_ascii_case("accept")));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "not_acceptable", "{body}");

    for accept in [mime.as_str(), "image/webp,image/*;q=0.8", "*/*"] {
        let r = download(&base, &md5, "?format=auto", Some(accept)).await;
        assert_eq!(r.status(), StatusCode::OK, "{accept}");
        assert!(header(&r, "vary").is_some_and(|v| v.eq_ignore_ascii_case("accept")));
        assert_eq!(header(&r, "content-type"), Some(mime.as_str()));
    }
    // A plain download (TinyImage's pick) still serves the auto variant.
    let r = download(&base, &md5, "", Some(&refusing)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "x-pixpress-format"), Some(chosen.as_str()));
    server.shutdown().await;
}

#[tokio::test]
async fn a_target_out_of_reach_gets_the_highest_quality_and_says_so() {
    let server = start(test_settings()).await;
    let base = base_url(&server);
    let input = jpeg(120, 90);
    let md5 = md5_hex(&input);
    // Lossy WebP never scores 100 (an identical copy).
    let fields = [
        ("format", "webp"),
        ("quality", "auto"),
        ("target", "100"),
        ("width", "100"),
    ];
    let (status, answer) = upload(&base, &input, &fields).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let v = &wait_status(&base, &md5).await[0];
    assert_eq!(v["status"], "done", "{v}");
    assert_eq!(v["target_met"], false, "{v}");
    assert!(v["score"].as_f64().unwrap() < 100.0, "{v}");
    assert_eq!(v["quality"], 100, "{v}");
    assert_eq!(v["budget_limited"], false, "{v}");
    let r = download(&base, &md5, "?quality=auto", None).await;
    assert_eq!(header(&r, "x-pixpress-target-met"), Some("false"));
    server.shutdown().await;
}

#[tokio::test]
async fn the_byte_budget_wins_over_the_target() {
    let server = start(test_settings()).await;
    let base = base_url(&server);
    let input = jpeg(200, 150);
    let md5 = md5_hex(&input);
    let (status, answer) = upload(
        &base,
        &input,
        &[("quality", "auto"), ("target", "95"), ("max_bytes", "1500")],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let v = &wait_status(&base, &md5).await[0];
    assert_eq!(v["status"], "done", "{v}");
    assert!(v["size"].as_u64().unwrap() <= 1500, "{v}");
    assert_eq!(v["budget_limited"], true, "{v}");
    assert_ne!(v["target_met"], true, "{v}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_ws_request_with_quality_auto_is_done_with_a_score() {
    let server = start(test_settings()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.http_addr))
        .await
        .expect("ws connects");
    let input = jpeg(100, 80);
    let data = base64::engine::general_purpose::STANDARD.encode(&input);
    let request =
        json!({"format":"jpg","quality":"auto","target":70,"width":90,"id":7,"data":data});
    ws.send(Message::Text(request.to_string().into()))
        .await
        .unwrap();
    let mut frames = Vec::new();
    while frames.len() < 3 {
        let m = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .expect("an answer within the bound")
            .expect("socket open")
            .expect("valid frame");
        if let Message::Text(t) = m {
            frames.push(serde_json::from_str::<Value>(&t).unwrap());
        }
    }
    assert_eq!(
        frames[0],
        json!({"status":"queued","md5":md5_hex(&input),"format":"jpg","quality":"auto","target":70,"id":7})
    );
    assert_eq!(frames[1]["status"], "processing");
    let done = &frames[2];
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["format"], "jpg");
    assert!(done["quality"].is_u64(), "{done}");
    assert!(done["score"].as_f64().unwrap() >= 70.0, "{done}");
    assert_eq!(done["target_met"], true);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(done["file"].as_str().unwrap())
        .unwrap();
    assert_eq!(sniff(&bytes), "jpg");
    server.shutdown().await;
}
