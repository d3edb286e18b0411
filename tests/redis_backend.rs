//! Distributed mode (SPEC section 8, `backend.kind: redis`): two instances
//! on one Redis form one job service. Each test uses its own key prefix and
//! removes its keys at the end. Without a Redis at PIXPRESS_TEST_REDIS_URL
//! (default redis://127.0.0.1:6379) the tests are skipped, or fail under CI.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use pixpress::backend::redis::{Claim, GROUP};
use pixpress::backend::{RedisBackend, VariantRecord};
use pixpress::config::{BackendKind, Settings};
use pixpress::jobs::{Finished, JobStore, OptionRules, TaskKey, UploadOptions, VariantSpec};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A test's own corner of Redis.
struct Shared {
    url: String,
    prefix: String,
    conn: MultiplexedConnection,
}

/// Connects to the test Redis, or says why the test cannot run.
async fn shared(test: &str) -> Option<Shared> {
    let url = std::env::var("PIXPRESS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let connected = async {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok::<_, redis::RedisError>(conn)
    };
    let conn = match tokio::time::timeout(Duration::from_secs(3), connected).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return no_redis(&e.to_string()),
        Err(_) => return no_redis("no answer within 3s"),
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    Some(Shared {
        url,
        prefix: format!("pixpress-test:{test}:{}:{nanos}:", std::process::id()),
        conn,
    })
}

fn no_redis(why: &str) -> Option<Shared> {
    if std::env::var_os("CI").is_some() {
        panic!("these tests need Redis under CI: {why}");
    }
    println!("skipped: no redis");
    None
}

impl Shared {
    fn settings(&self) -> Settings {
        let mut s = test_settings();
        s.backend.kind = BackendKind::Redis;
        s.backend.redis_url = self.url.clone();
        s.backend.key_prefix = self.prefix.clone();
        s
    }

    /// Another instance's view of the backend, with no loops running.
    async fn other_instance(&self) -> RedisBackend {
        let s = self.settings();
        RedisBackend::connect(
            &s.backend,
            s.cache.ttl,
            s.upload.job_timeout,
            s.upload.max_queue,
        )
        .await
        .expect("backend connects")
    }

    /// A consumer of the job group that takes jobs and never finishes them.
    async fn dead_worker_takes(&mut self, count: usize) -> usize {
        let options = redis::streams::StreamReadOptions::default()
            .group(GROUP, "dead-worker")
            .count(count);
        let reply: redis::streams::StreamReadReply = self
            .conn
            .xread_options(&[format!("{}jobs", self.prefix)], &[">"], &options)
            .await
            .expect("xreadgroup");
        reply.keys.iter().map(|k| k.ids.len()).sum()
    }

    async fn stream_info(&mut self) -> HashMap<String, redis::Value> {
        redis::cmd("XINFO")
            .arg("STREAM")
            .arg(format!("{}jobs", self.prefix))
            .query_async(&mut self.conn)
            .await
            .expect("xinfo stream")
    }

    /// Removes every key of this test.
    async fn clean_up(mut self) {
        let keys: Vec<String> = {
            let mut iter = self
                .conn
                .scan_match::<_, String>(format!("{}*", self.prefix))
                .await
                .expect("scan");
            let mut keys = Vec::new();
            while let Some(k) = futures_util::StreamExt::next(&mut iter).await {
                keys.push(k);
            }
            keys
        };
        if !keys.is_empty() {
            let _: () = self.conn.del(keys).await.expect("del");
        }
    }
}

fn form(bytes: Vec<u8>) -> Form {
    Form::new().part("picture", Part::bytes(bytes).file_name("photo.jpg"))
}

async fn upload(base: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/upload"))
        .multipart(form(bytes))
        .send()
        .await
        .expect("upload answered");
    let status = r.status();
    (status, r.json().await.expect("json answer"))
}

async fn status(base: &str, md5: &str, wait: u32) -> Vec<Value> {
    let r = reqwest::get(format!("{base}/status/{md5}?wait={wait}"))
        .await
        .expect("status answered");
    assert_eq!(r.status(), StatusCode::OK, "status of {md5}");
    r.json().await.expect("json list")
}

async fn download(base: &str, md5: &str) -> Bytes {
    let r = reqwest::get(format!("{base}/download/{md5}"))
        .await
        .expect("download answered");
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes().await.expect("body")
}

fn default_spec() -> VariantSpec {
    UploadOptions::default()
        .to_spec(&OptionRules::within(u32::MAX))
        .expect("defaults")
}

#[tokio::test]
async fn an_upload_on_one_instance_is_followed_and_downloaded_on_another() {
    let Some(redis) = shared("follow").await else {
        return;
    };
    let a = start(redis.settings()).await;
    let b = start(redis.settings()).await;
    let image = jpeg(64, 48);

    let (code, answer) = upload(&base_url(&a), image.clone()).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let md5 = answer["md5"].as_str().unwrap().to_owned();
    assert_eq!(md5, TaskKey::of(&image).to_string());

    let on_b = status(&base_url(&b), &md5, 20).await;
    assert_eq!(on_b.len(), 1);
    assert_eq!(on_b[0]["status"], "done", "{on_b:?}");
    assert_eq!(on_b[0]["original_size"], image.len());
    let from_b = download(&base_url(&b), &md5).await;
    // A learns of the result through the published event: wait for it there too.
    assert_eq!(status(&base_url(&a), &md5, 20).await[0]["status"], "done");
    let from_a = download(&base_url(&a), &md5).await;
    assert_eq!(from_a, from_b);
    assert_eq!(on_b[0]["size"], from_b.len());
    let decoded = decode(&from_b);
    assert_eq!((decoded.width(), decoded.height()), (64, 48));

    a.shutdown().await;
    b.shutdown().await;
    redis.clean_up().await;
}

#[tokio::test]
async fn an_auto_variant_reports_its_choice_on_another_instance() {
    let Some(redis) = shared("auto").await else {
        return;
    };
    let a = start(redis.settings()).await;
    let b = start(redis.settings()).await;
    let image = jpeg(96, 64);
    let form = Form::new()
        .part("picture", Part::bytes(image.clone()).file_name("a.jpg"))
        .text("format", "auto")
        .text("target", "70")
        .text("width", "80");
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/upload", base_url(&a)))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["format"], "auto", "{answer}");
    let md5 = answer["md5"].as_str().unwrap();

    let on_a = status(&base_url(&a), md5, 20).await;
    let on_b = status(&base_url(&b), md5, 20).await;
    assert_eq!(on_b[0]["status"], "done", "{on_b:?}");
    // The record carries the choice: b reports what a's worker found.
    for field in [
        "format",
        "quality",
        "score",
        "target",
        "target_met",
        "budget_limited",
    ] {
        assert_eq!(on_b[0][field], on_a[0][field], "{field}: {on_a:?} {on_b:?}");
    }
    assert_ne!(on_b[0]["format"], "auto");
    assert!(on_b[0]["quality"].is_u64(), "{on_b:?}");
    assert!(on_b[0]["score"].as_f64().unwrap() >= 70.0, "{on_b:?}");
    assert_eq!(on_b[0]["target"], 70);

    a.shutdown().await;
    b.shutdown().await;
    redis.clean_up().await;
}

#[tokio::test]
async fn the_same_upload_on_two_instances_at_once_is_encoded_once() {
    let Some(mut redis) = shared("single-flight").await else {
        return;
    };
    let a = start(redis.settings()).await;
    let b = start(redis.settings()).await;
    let image = jpeg(120, 90);

    let (base_a, base_b) = (base_url(&a), base_url(&b));
    let ((code_a, on_a), (code_b, on_b)) = tokio::join!(
        upload(&base_a, image.clone()),
        upload(&base_b, image.clone())
    );
    assert!(code_a.is_success() && code_b.is_success(), "{on_a} {on_b}");
    assert_eq!(on_a["md5"], on_b["md5"]);
    let md5 = on_a["md5"].as_str().unwrap();

    for server in [&a, &b] {
        let variants = status(&base_url(server), md5, 20).await;
        assert_eq!(variants.len(), 1, "one variant: {variants:?}");
        assert_eq!(variants[0]["status"], "done");
    }
    // One job entered the shared stream: one encode for both uploads. (The
    // metrics recorder is per process, so both in-process instances, and
    // every other test here, count into the same `pixpress_jobs_total`.)
    let info = redis.stream_info().await;
    assert_eq!(info.get("entries-added"), Some(&redis::Value::Int(1)));
    assert_eq!(
        download(&base_url(&a), md5).await,
        download(&base_url(&b), md5).await
    );

    a.shutdown().await;
    b.shutdown().await;
    redis.clean_up().await;
}

#[tokio::test]
async fn waiting_on_one_instance_returns_done_when_another_finishes_the_job() {
    let Some(redis) = shared("wait").await else {
        return;
    };
    let b = start(redis.settings()).await;
    let other = redis.other_instance().await;
    let image = jpeg(40, 30);
    let key = TaskKey::of(&image);
    let spec = default_spec();

    // The other instance claims the variant but never enqueues it, so only
    // it can finish the job.
    assert!(matches!(
        other.claim(&key, &spec, image.len()).await.unwrap(),
        Claim::Won
    ));
    let seen = status(&base_url(&b), key.as_str(), 0).await;
    assert_eq!(seen[0]["status"], "queued", "b mirrors the task: {seen:?}");

    let base = base_url(&b);
    let md5 = key.to_string();
    let waiting = tokio::spawn(async move { status(&base, &md5, 20).await });
    let output =
        pixpress::pipeline::process(&image, &spec.options(Default::default())).expect("encodes");
    let finished = Finished::from_output(output, 1);
    let done = VariantRecord::done(image.len(), &finished);
    other
        .publish(&key, &spec, &done, Some(&finished.bytes))
        .await
        .unwrap();

    let answer = waiting.await.unwrap();
    assert_eq!(answer[0]["status"], "done", "{answer:?}");
    assert_eq!(answer[0]["size"], finished.bytes.len());
    assert_eq!(download(&base_url(&b), key.as_str()).await, finished.bytes);

    b.shutdown().await;
    redis.clean_up().await;
}

#[tokio::test]
async fn a_job_whose_worker_died_is_taken_over_by_a_live_instance() {
    let Some(mut redis) = shared("reclaim").await else {
        return;
    };
    let other = redis.other_instance().await;
    let image = jpeg(50, 50);
    let key = TaskKey::of(&image);
    let spec = default_spec();
    assert!(matches!(
        other.claim(&key, &spec, image.len()).await.unwrap(),
        Claim::Won
    ));
    other
        .enqueue(&key, &spec, &Bytes::from(image.clone()))
        .await
        .unwrap();
    assert_eq!(redis.dead_worker_takes(1).await, 1);

    let mut settings = redis.settings();
    settings.backend.claim_idle = Some(Duration::from_millis(300));
    let live = start(settings).await;
    let variants = status(&base_url(&live), key.as_str(), 20).await;
    assert_eq!(variants[0]["status"], "done", "{variants:?}");
    let decoded = decode(&download(&base_url(&live), key.as_str()).await);
    assert_eq!((decoded.width(), decoded.height()), (50, 50));

    live.shutdown().await;
    redis.clean_up().await;
}

#[tokio::test]
async fn uploads_are_refused_when_the_service_queue_is_full() {
    let Some(mut redis) = shared("queue-full").await else {
        return;
    };
    // Two jobs outstanding, held by a worker that never finishes them.
    let other = redis.other_instance().await;
    for n in 0..2u8 {
        let image = jpeg(20 + u32::from(n), 20);
        let key = TaskKey::of(&image);
        other
            .claim(&key, &default_spec(), image.len())
            .await
            .unwrap();
        other
            .enqueue(&key, &default_spec(), &Bytes::from(image))
            .await
            .unwrap();
    }
    assert_eq!(redis.dead_worker_takes(2).await, 2);

    let mut settings = redis.settings();
    settings.upload.max_queue = 2;
    settings.backend.claim_idle = Some(Duration::from_secs(3600));
    let server = start(settings).await;
    let (code, answer) = upload(&base_url(&server), jpeg(30, 30)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer["error"], "queue_full");

    server.shutdown().await;
    redis.clean_up().await;
}

/// Forwards TCP connections to Redis until stopped; then every connection
/// through it breaks and new ones are refused.
struct RedisProxy {
    url: String,
    tasks: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl RedisProxy {
    async fn start(redis_url: &str) -> Self {
        let upstream = redis_url
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let tasks = Arc::new(std::sync::Mutex::new(Vec::new()));
        let accepted = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                accepted.lock().unwrap().push(pipe);
            }
        });
        tasks.lock().unwrap().push(accept);
        Self { url, tasks }
    }

    fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

#[tokio::test]
async fn readyz_reports_the_backend_and_fails_when_redis_stops_answering() {
    let Some(redis) = shared("readyz").await else {
        return;
    };
    let proxy = RedisProxy::start(&redis.url).await;
    let mut settings = redis.settings();
    settings.backend.redis_url = proxy.url.clone();
    let server = start(settings).await;
    let ready = reqwest::get(format!("{}/readyz", base_url(&server)))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["backend"], "redis");

    proxy.stop();
    let gone = reqwest::get(format!("{}/readyz", base_url(&server)))
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = gone.json().await.unwrap();
    assert_eq!(body["status"], "backend_unavailable");

    server.shutdown().await;
    redis.clean_up().await;
}

#[tokio::test]
async fn startup_with_an_unreachable_redis_fails_naming_the_setting() {
    let mut settings = test_settings();
    settings.backend.kind = BackendKind::Redis;
    settings.backend.redis_url = "redis://127.0.0.1:1".into();
    let err = pixpress::app::start(settings)
        .await
        .err()
        .expect("no server without its Redis");
    assert!(
        err.to_string().contains("backend.redis_url"),
        "the error names the setting: {err}"
    );
}

/// Two job stores on one Redis, as two instances would have; A has kept a
/// 40x30 result (as a chat image or a finished upload is kept) that B has
/// never seen. The stores, the result's key, spec and bytes.
async fn kept_on_a(redis: &Shared) -> (JobStore, JobStore, TaskKey, VariantSpec, Vec<u8>) {
    let s = redis.settings();
    let store = |backend: RedisBackend| {
        let pool = pixpress::jobs::WorkerPool::new(1, 1, Duration::from_secs(30));
        JobStore::new(pixpress::jobs::StoreSettings::of(&s), pool).with_backend(Arc::new(backend))
    };
    let a = store(redis.other_instance().await);
    let b = store(redis.other_instance().await);
    let spec = default_spec();
    let output =
        pixpress::pipeline::process(&jpeg(40, 30), &spec.options(Default::default())).unwrap();
    let bytes = output.bytes.clone();
    let (key, _) = a.keep(spec, output).await.expect("kept");
    assert_eq!(key, TaskKey::of(&bytes));
    assert!(b.task(&key).is_none(), "B has not seen it");
    (a, b, key, spec, bytes)
}

#[tokio::test]
async fn an_image_kept_by_one_instance_is_found_by_another() {
    // Chat images are kept this way: the md5 of their bytes names them.
    let Some(redis) = shared("kept").await else {
        return;
    };
    let (_a, b, key, spec, bytes) = kept_on_a(&redis).await;
    let found = b.kept(key.as_str(), &spec).await.expect("found on b");
    assert_eq!(found.bytes, bytes);
    assert_eq!((found.width, found.height), (40, 30));
    assert!(b.kept(&"0".repeat(32), &spec).await.is_none());
    redis.clean_up().await;
}

#[tokio::test]
async fn a_chat_message_names_an_upload_that_another_instance_finished() {
    use pixpress::chat::UploadedImages;
    let Some(redis) = shared("chat-upload").await else {
        return;
    };
    let (_a, b, key, spec, bytes) = kept_on_a(&redis).await;
    let found = b.find(key.as_str()).await.expect("B finds A's upload");
    assert_eq!(found.md5, key.as_str());
    assert_eq!(found.url, format!("/download/{key}?{}", spec.query()));
    assert_eq!((found.width, found.height), (40, 30));
    assert_eq!(b.bytes(key.as_str()).await.as_deref(), Some(&bytes[..]));
    assert!(b.find(&"0".repeat(32)).await.is_none());
    redis.clean_up().await;
}
