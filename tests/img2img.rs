//! img2img (SPEC section 4) with real WebSocket clients: every message, both
//! protocols, consumers and rooms, timeouts, bad input, and the Python
//! example client run unchanged against the server.

mod rooms_support;

use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use image::ImageFormat;
use pixpress::config::Settings;
use rooms_support::{decoded, jpeg, serve, Client, Read};
use serde_json::{json, Value};

async fn connect(addr: SocketAddr, path: &str) -> Client {
    let mut c = Client::connect(addr, path).await;
    let welcome = c.expect("welcome").await;
    assert_eq!(welcome["message"], "Connected to img2img WebSocket server");
    assert!(welcome["timestamp"].as_f64().unwrap() > 1.6e9);
    c
}

async fn register(c: &mut Client, kind: &str) {
    c.send_json(json!({"type":"register","client_type":kind}))
        .await;
    let r = c.expect("registered").await;
    assert_eq!(r["client_type"], kind);
}

/// Proves that nothing else is queued for `c`: a ping's pong comes next.
async fn nothing_pending(c: &mut Client) {
    c.send_json(json!({"type":"ping"})).await;
    let m = c.json().await;
    assert_eq!(
        m["type"], "pong",
        "expected nothing before the pong, got {m}"
    );
}

async fn expect_error(c: &mut Client, code: &str) -> Value {
    let e = c.expect("error").await;
    assert_eq!(e["message"], code, "{e}");
    assert!(!e["detail"].as_str().unwrap().is_empty());
    e
}

async fn send_binary_request(c: &mut Client, prompt: &str, timestamp: Value, image: Vec<u8>) {
    c.send_json(
        json!({"type":"img2img_binary","prompt":prompt,"format":"jpeg","timestamp":timestamp}),
    )
    .await;
    c.send_binary(image).await;
}

async fn binary_result(c: &mut Client) -> (Value, Vec<u8>) {
    let meta = c.expect("img2img_result_binary").await;
    let bytes = c.binary().await;
    assert_eq!(meta["size"].as_u64().unwrap() as usize, bytes.len());
    (meta, bytes)
}

#[tokio::test]
async fn welcome_ping_and_register() {
    let addr = serve(Settings::default()).await;
    let mut c = connect(addr, "/ws/img2img").await;
    c.send_json(json!({"type":"ping"})).await;
    assert!(c.expect("pong").await["timestamp"].as_f64().unwrap() > 1.6e9);
    register(&mut c, "producer").await;
    register(&mut c, "consumer").await;
    c.send_json(json!({"type":"register","client_type":"wizard"}))
        .await;
    expect_error(&mut c, "invalid_client_type").await;
    // Without a client_type, the original server registers a producer.
    c.send_json(json!({"type":"register"})).await;
    assert_eq!(c.expect("registered").await["client_type"], "producer");
}

#[tokio::test]
async fn a_base64_request_gets_the_edited_image_and_the_ignored_words() {
    let addr = serve(Settings::default()).await;
    let mut c = connect(addr, "/ws/img2img").await;
    let prompt = "resize 320x240, grayscale, a beautiful landscape";
    c.send_json(
        json!({"type":"img2img","image":STANDARD.encode(jpeg(640, 480)),
        "prompt":prompt,"timestamp":123.5}),
    )
    .await;
    let r = c.expect("img2img_result").await;
    assert_eq!(r["prompt"], prompt);
    assert_eq!(r["timestamp"], 123.5);
    assert_eq!(r["ignored"], json!(["a", "beautiful", "landscape"]));
    assert_eq!(r["format"], "jpeg");
    let bytes = STANDARD.decode(r["image"].as_str().unwrap()).unwrap();
    assert_eq!(&bytes[..3], &[0xFF, 0xD8, 0xFF]);
    assert_eq!(decoded(&bytes), (ImageFormat::Jpeg, 320, 240));
    let rgb = image::load_from_memory(&bytes).unwrap().to_rgb8();
    let p = rgb.get_pixel(100, 100).0;
    assert!(
        p[0].abs_diff(p[1]) <= 2 && p[1].abs_diff(p[2]) <= 2,
        "grayscale: {p:?}"
    );

    // Free text alone still gives a valid image, unchanged in size.
    c.send_json(
        json!({"type":"img2img","image":STANDARD.encode(jpeg(64, 32)),"prompt":"a cat in space"}),
    )
    .await;
    let r = c.expect("img2img_result").await;
    assert_eq!(r["ignored"], json!(["a", "cat", "in", "space"]));
    let bytes = STANDARD.decode(r["image"].as_str().unwrap()).unwrap();
    assert_eq!(decoded(&bytes), (ImageFormat::Jpeg, 64, 32));
}

#[tokio::test]
async fn binary_and_base64_requests_work_on_one_connection() {
    let addr = serve(Settings::default()).await;
    let mut c = connect(addr, "/ws/img2img/mixed").await;
    send_binary_request(&mut c, "rotate 90 | format png", json!("t1"), jpeg(120, 80)).await;
    let (meta, bytes) = binary_result(&mut c).await;
    assert_eq!(meta["timestamp"], "t1");
    assert_eq!(meta["format"], "png");
    assert_eq!(meta["prompt"], "rotate 90 | format png");
    assert_eq!(meta["ignored"], json!([]));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(decoded(&bytes), (ImageFormat::Png, 80, 120));

    c.send_json(json!({"type":"img2img","image":STANDARD.encode(jpeg(50, 40)),"prompt":"flip h","timestamp":2}))
        .await;
    let r = c.expect("img2img_result").await;
    assert_eq!(r["timestamp"], 2);

    send_binary_request(&mut c, "width 30", json!(3), jpeg(60, 40)).await;
    let (meta, bytes) = binary_result(&mut c).await;
    assert_eq!(meta["timestamp"], 3);
    assert_eq!(decoded(&bytes), (ImageFormat::Jpeg, 30, 20));
}

#[tokio::test]
async fn results_reach_the_sender_and_the_rooms_consumers_only() {
    let addr = serve(Settings::default()).await;
    let mut producer = connect(addr, "/ws/img2img/studio").await;
    register(&mut producer, "producer").await;
    let mut consumer1 = connect(addr, "/ws/img2img/studio").await;
    register(&mut consumer1, "consumer").await;
    let mut consumer2 = connect(addr, "/ws/img2img/studio").await;
    register(&mut consumer2, "consumer").await;
    let mut bystander = connect(addr, "/ws/img2img/studio").await;
    let mut elsewhere = connect(addr, "/ws/img2img/other").await;
    register(&mut elsewhere, "consumer").await;
    let mut in_default = connect(addr, "/ws/img2img").await;
    register(&mut in_default, "consumer").await;

    send_binary_request(&mut producer, "resize 100x100", json!(7), jpeg(200, 100)).await;
    let (mine, my_bytes) = binary_result(&mut producer).await;
    for c in [&mut consumer1, &mut consumer2] {
        let (meta, bytes) = binary_result(c).await;
        assert_eq!(meta, mine);
        assert_eq!(bytes, my_bytes);
    }
    assert_eq!(decoded(&my_bytes), (ImageFormat::Jpeg, 100, 50));

    producer
        .send_json(json!({"type":"img2img","image":STANDARD.encode(jpeg(20, 20)),"prompt":"invert","timestamp":8}))
        .await;
    assert_eq!(producer.expect("img2img_result").await["timestamp"], 8);
    for c in [&mut consumer1, &mut consumer2] {
        assert_eq!(c.expect("img2img_result").await["timestamp"], 8);
    }
    for c in [&mut bystander, &mut elsewhere, &mut in_default] {
        nothing_pending(c).await;
    }
}

#[tokio::test]
async fn a_binary_frame_without_metadata_is_ignored() {
    let addr = serve(Settings::default()).await;
    let mut c = connect(addr, "/ws/img2img").await;
    c.send_binary(jpeg(10, 10)).await;
    nothing_pending(&mut c).await;
}

#[tokio::test]
async fn metadata_without_its_image_expires() {
    let mut s = Settings::default();
    s.img2img.metadata_timeout = Duration::from_millis(200);
    let addr = serve(s).await;
    let mut c = connect(addr, "/ws/img2img").await;
    c.send_json(json!({"type":"img2img_binary","prompt":"","timestamp":"m1"}))
        .await;
    let e = expect_error(&mut c, "metadata_timeout").await;
    assert_eq!(e["timestamp"], "m1");
    c.send_binary(jpeg(10, 10)).await;
    nothing_pending(&mut c).await;
}

#[tokio::test]
async fn a_job_past_the_processing_timeout_is_answered_with_an_error() {
    let mut s = Settings::default();
    s.img2img.processing_timeout = Duration::from_millis(1);
    let addr = serve(s).await;
    let mut c = connect(addr, "/ws/img2img").await;
    send_binary_request(&mut c, "blur 8, sharpen", json!("slow"), jpeg(2000, 2000)).await;
    let e = expect_error(&mut c, "processing_timeout").await;
    assert_eq!(e["timestamp"], "slow");
    nothing_pending(&mut c).await;
}

#[tokio::test]
async fn bad_input_gets_an_error_code_and_the_connection_keeps_working() {
    let addr = serve(Settings::default()).await;
    let mut c = connect(addr, "/ws/img2img").await;
    let not_image = STANDARD.encode(b"just some text");
    let cases = [
        (
            json!({"type":"img2img","image":"%%%not base64%%%","timestamp":1}),
            "invalid_base64",
        ),
        (
            json!({"type":"img2img","image":not_image,"timestamp":2}),
            "unsupported_format",
        ),
        (
            json!({"type":"img2img","prompt":"no image"}),
            "invalid_message",
        ),
        (
            json!({"type":"img2img","image":STANDARD.encode(jpeg(20, 20)),"prompt":"crop 50,50,10,10"}),
            "invalid_operation",
        ),
    ];
    for (request, code) in cases {
        c.send_json(request.clone()).await;
        let e = expect_error(&mut c, code).await;
        if let Some(ts) = request.get("timestamp") {
            assert_eq!(&e["timestamp"], ts);
        }
    }
    c.send_text("{not json").await;
    expect_error(&mut c, "invalid_json").await;
    let mut truncated = jpeg(64, 64);
    truncated.truncate(200);
    send_binary_request(&mut c, "", json!(9), truncated).await;
    expect_error(&mut c, "invalid_image").await;
    nothing_pending(&mut c).await;
}

#[tokio::test]
async fn a_frame_over_the_limit_ends_that_connection_alone_with_an_error() {
    let mut s = Settings::default();
    s.img2img.max_message_bytes = 64 * 1024;
    let addr = serve(s).await;
    let mut other = connect(addr, "/ws/img2img").await;
    let mut c = connect(addr, "/ws/img2img").await;
    c.send_json(json!({"type":"img2img_binary","prompt":""}))
        .await;
    c.send_binary(vec![0u8; 200 * 1024]).await;
    let e = expect_error(&mut c, "message_too_large").await;
    assert!(e["detail"].as_str().unwrap().contains("65536"), "{e}");
    assert!(matches!(c.read().await, Read::Closed));
    nothing_pending(&mut other).await;
}

#[tokio::test]
async fn a_full_queue_is_an_error_not_a_stall() {
    let mut s = Settings::default();
    s.upload.max_concurrent_tasks = 1;
    s.upload.max_queue = 0;
    let addr = serve(s).await;
    let mut c = connect(addr, "/ws/img2img").await;
    let big = jpeg(1600, 1600);
    send_binary_request(&mut c, "blur 4", json!("first"), big.clone()).await;
    send_binary_request(&mut c, "blur 4", json!("second"), big).await;
    // The second is refused at once, before the first has finished.
    let e = expect_error(&mut c, "queue_full").await;
    assert_eq!(e["timestamp"], "second");
    let (meta, _) = binary_result(&mut c).await;
    assert_eq!(meta["timestamp"], "first");
}

#[tokio::test]
async fn requests_in_flight_per_connection_are_bounded() {
    let mut s = Settings::default();
    s.img2img.max_in_flight = 1;
    let addr = serve(s).await;
    let mut c = connect(addr, "/ws/img2img").await;
    let big = jpeg(1600, 1600);
    send_binary_request(&mut c, "blur 4", json!("first"), big.clone()).await;
    send_binary_request(&mut c, "blur 4", json!("second"), big).await;
    let e = expect_error(&mut c, "too_many_requests").await;
    assert_eq!(e["timestamp"], "second");
    let (meta, _) = binary_result(&mut c).await;
    assert_eq!(meta["timestamp"], "first");
    // The place is free by the time the answer arrives.
    send_binary_request(&mut c, "", json!("third"), jpeg(32, 32)).await;
    let (meta, _) = binary_result(&mut c).await;
    assert_eq!(meta["timestamp"], "third");
}

#[tokio::test]
async fn unknown_types_are_ignored_as_the_original_server_does() {
    // The process-wide recorder that `/metrics` renders.
    let recorder = pixpress::protocols::http::metrics::handle();
    let addr = serve(Settings::default()).await;
    let mut c = connect(addr, "/ws/img2img").await;
    c.send_json(json!({"type":"teleport","timestamp":1})).await;
    c.send_json(json!({"type":"subscribe"})).await;
    nothing_pending(&mut c).await;
    let metrics = recorder.render();
    assert!(
        metrics.contains(r#"pixpress_ws_ignored_messages_total{protocol="img2img"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_default_answer_is_a_jpeg_inside_512_at_quality_85() {
    let addr = serve(Settings::default()).await;
    let mut c = connect(addr, "/ws/img2img").await;
    let big = rooms_support::encode(&rooms_support::photo(2560, 1600), ImageFormat::Png);
    // The request's `format` names what it sends, as the original clients
    // use it: it does not change the answer.
    c.send_json(json!({"type":"img2img_binary","prompt":"a beautiful landscape","format":"png","timestamp":1}))
        .await;
    c.send_binary(big.clone()).await;
    let (meta, bytes_default) = binary_result(&mut c).await;
    assert_eq!(meta["format"], "jpeg");
    assert_eq!(decoded(&bytes_default), (ImageFormat::Jpeg, 512, 320));
    assert_eq!(
        (meta["width"].as_u64(), meta["height"].as_u64()),
        (Some(512), Some(320))
    );

    // The prompt overrides the box, the format and the quality.
    send_binary_request(&mut c, "width 1024, format webp", json!(2), big.clone()).await;
    let (meta, bytes) = binary_result(&mut c).await;
    assert_eq!(meta["format"], "webp");
    assert_eq!(decoded(&bytes), (ImageFormat::WebP, 1024, 640));
    send_binary_request(&mut c, "quality 85", json!(3), big.clone()).await;
    let (_, q85) = binary_result(&mut c).await;
    assert_eq!(q85, bytes_default, "quality 85 is the default");
    send_binary_request(&mut c, "quality 40", json!(4), big).await;
    let (_, q40) = binary_result(&mut c).await;
    assert!(q40.len() < q85.len());

    let mut s = Settings::default();
    s.img2img.default_size = pixpress::config::BoxSize {
        width: 100,
        height: 100,
    };
    let addr = serve(s).await;
    let mut c = connect(addr, "/ws/img2img").await;
    send_binary_request(&mut c, "", json!(6), jpeg(400, 200)).await;
    let (_, bytes) = binary_result(&mut c).await;
    assert_eq!(decoded(&bytes), (ImageFormat::Jpeg, 100, 50));
}

fn python_clients_available() -> bool {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import websockets, PIL"])
        .output();
    let ok = matches!(&probe, Ok(out) if out.status.success());
    assert!(
        ok || std::env::var_os("PIXPRESS_SKIP_PYTHON").is_some(),
        "python3 with websockets and Pillow is needed: \
         pip install -r scripts/clients/requirements.txt \
         (or set PIXPRESS_SKIP_PYTHON=1 to skip the client tests)"
    );
    ok
}

/// Runs `scripts/clients/img2img_client.py` against `addr`; its stdout.
async fn run_python_client(addr: SocketAddr, input: &[u8], args: &[&str]) -> (String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let input_path = dir.path().join("in.jpg");
    let output = dir.path().join("out.jpg");
    std::fs::write(&input_path, input).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/clients/img2img_client.py"
    );
    let url = format!("ws://{addr}/ws/img2img");
    let mut command = std::process::Command::new("python3");
    command
        .arg(script)
        .args(["--url", &url])
        .args(args)
        .arg("--input")
        .arg(&input_path)
        .arg("--output")
        .arg(&output);
    // The server runs on this runtime, so the client waits on another thread.
    let run = tokio::task::spawn_blocking(move || command.output());
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the client finishes")
        .unwrap()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "client failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (stdout, std::fs::read(&output).unwrap())
}

/// The documented Python example, run as is against the server.
#[tokio::test]
async fn the_python_example_client_round_trips_an_image() {
    if !python_clients_available() {
        return;
    }
    let addr = serve(Settings::default()).await;
    let (stdout, bytes) = run_python_client(
        addr,
        &jpeg(400, 300),
        &["--prompt", "resize 200x200, grayscale"],
    )
    .await;
    assert_eq!(decoded(&bytes), (ImageFormat::Jpeg, 200, 150));
    assert!(stdout.contains("200x150"), "{stdout}");
}

/// A 2560x1600 photo through both protocols with the websockets library's
/// default 1 MiB frame limit, as the original clients read results: the
/// default answer fits (the same image at full size would not).
#[tokio::test]
async fn the_python_client_gets_a_large_photo_back_within_its_frame_limit() {
    if !python_clients_available() {
        return;
    }
    let addr = serve(Settings::default()).await;
    let photo = rooms_support::encode(&rooms_support::noise(2560, 1600), ImageFormat::Jpeg);
    assert!(
        photo.len() > 1024 * 1024,
        "the input alone is over the frame limit"
    );
    for protocol in ["binary", "base64"] {
        let prompt = "a beautiful landscape";
        let (stdout, bytes) =
            run_python_client(addr, &photo, &["--protocol", protocol, "--prompt", prompt]).await;
        assert_eq!(decoded(&bytes), (ImageFormat::Jpeg, 512, 320), "{protocol}");
        assert!(stdout.contains("512x320"), "{protocol}: {stdout}");
    }
}
