//! Faults of the distributed job service (`backend.kind: redis`), each test
//! on a throwaway `redis-server` of its own: Redis killed mid-load and
//! started again, a job whose worker dies every time (the dead letter), a
//! submission that fails half-way, and the service-wide queue figures.

mod common;
mod redis_support;

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use common::*;
use common::{http, spawned};
use futures_util::{SinkExt, StreamExt};
use pixpress::backend::redis::Claim;
use pixpress::backend::{JobQueue, RedisBackend};
use pixpress::config::{BackendKind, Settings};
use pixpress::jobs::{OptionRules, TaskKey, UploadOptions, VariantSpec};
use redis::AsyncCommands;
use redis_support::Redis;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Bound on the attempts of a poll; each attempt waits `POLL_PAUSE` first.
const POLL_ATTEMPTS: u32 = 600;
const POLL_PAUSE: Duration = Duration::from_millis(50);

fn settings(redis: &Redis, prefix: &str) -> Settings {
    let mut s = test_settings();
    s.backend.kind = BackendKind::Redis;
    s.backend.redis_url = redis.url.clone();
    s.backend.key_prefix = prefix.into();
    s
}

fn default_spec() -> VariantSpec {
    UploadOptions::default()
        .to_spec(&OptionRules::within(u32::MAX))
        .expect("defaults")
}

async fn backend(s: &Settings) -> RedisBackend {
    RedisBackend::connect(
        &s.backend,
        s.cache.ttl,
        s.upload.job_timeout,
        s.upload.max_queue,
    )
    .await
    .expect("backend connects")
}

async fn connection(redis: &Redis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("redis answers")
}

async fn get_json(url: String) -> (StatusCode, Value) {
    let r = reqwest::get(url).await.expect("answered");
    let status = r.status();
    (status, r.json().await.expect("json answer"))
}

/// Asks `url` until its answer passes `ok` (at most `POLL_ATTEMPTS` times);
/// the last answer.
async fn poll(url: String, ok: impl Fn(StatusCode, &Value) -> bool) -> (StatusCode, Value) {
    let mut last = (StatusCode::IM_A_TEAPOT, Value::Null);
    for _ in 0..POLL_ATTEMPTS {
        if let Ok(r) = reqwest::get(&url).await {
            let status = r.status();
            let body = r.json().await.unwrap_or(Value::Null);
            if ok(status, &body) {
                return (status, body);
            }
            last = (status, body);
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
    panic!("{url} never answered as expected; last: {last:?}");
}

/// The server's `/metrics` text.
async fn metrics(base: &str) -> String {
    let r = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("answered");
    r.text().await.expect("a text answer")
}

/// The variants of `md5` once none is queued or processing.
async fn settled(base: &str, md5: &str) -> Vec<Value> {
    let url = format!("{base}/status/{md5}?wait=5");
    let (_, body) = poll(url, |status, body| {
        status == StatusCode::OK
            && body.as_array().is_some_and(|v| {
                v.iter()
                    .all(|v| v["status"] == "done" || v["status"] == "error")
            })
    })
    .await;
    body.as_array().cloned().unwrap_or_default()
}

/// Every queued or processing record under `prefix` that lacks its input
/// or its stream entry, read in one atomic step (a Redis script), and how
/// many records there are.
const HALF_WRITTEN: &str = r#"
local prefix = ARGV[1]
local jobs = {}
for _, entry in ipairs(redis.call('XRANGE', prefix .. 'jobs', '-', '+')) do
  local f, md5, variant = entry[2], nil, nil
  for i = 1, #f, 2 do
    if f[i] == 'md5' then md5 = f[i + 1] elseif f[i] == 'variant' then variant = f[i + 1] end
  end
  jobs[md5 .. ' ' .. variant] = true
end
local records, bad, cursor = 0, {}, '0'
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', prefix .. 'task:*', 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    local md5 = string.sub(key, #prefix + 6)
    local fields = redis.call('HGETALL', key)
    for i = 1, #fields, 2 do
      records = records + 1
      local state = cjson.decode(fields[i + 1]).state
      if state == 'queued' or state == 'processing' then
        if not jobs[md5 .. ' ' .. fields[i]] then
          table.insert(bad, md5 .. ' ' .. fields[i] .. ': ' .. state .. ' without its job')
        end
        if redis.call('EXISTS', prefix .. 'input:' .. md5) == 0 then
          table.insert(bad, md5 .. ': ' .. state .. ' without its input')
        end
      end
    end
  end
until cursor == '0'
return {records, bad}
"#;

#[tokio::test]
async fn redis_killed_mid_load_answers_503_and_the_service_recovers_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start_durable(dir.path());
    let mut s = settings(&redis, "faults:");
    s.backend.claim_idle = Some(Duration::from_secs(1));
    s.upload.job_timeout = Duration::from_millis(900);
    let server = start(s).await;
    let base = base_url(&server);

    // The load: distinct images, uploaded one after another until stopped,
    // each answer reported as it comes.
    let (answers_tx, mut answers) = mpsc::unbounded_channel();
    let stop = tokio_util::sync::CancellationToken::new();
    let load = tokio::spawn({
        let (base, stop) = (base.clone(), stop.clone());
        async move {
            for n in 0..2000u32 {
                if stop.is_cancelled() {
                    break;
                }
                let image = jpeg(24 + n % 50, 24 + n / 50);
                let md5 = TaskKey::of(&image).to_string();
                let (status, body) = common::http::upload(&base, image, &[]).await;
                if answers_tx.send((md5, status, body)).is_err() {
                    break;
                }
            }
        }
    });
    let mut accepted = Vec::new();
    while accepted.len() < 5 {
        let (md5, status, body) = answers.recv().await.expect("the load goes on");
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        accepted.push(md5);
    }

    redis.kill();
    let mut refused = 0;
    while refused < 3 {
        let (md5, status, body) = answers.recv().await.expect("the load goes on");
        if status == StatusCode::ACCEPTED {
            // Answered before the outage reached it.
            assert_eq!(refused, 0, "accepted after a refusal: {body}");
            accepted.push(md5);
            continue;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"], "backend_unavailable", "{body}");
        refused += 1;
    }
    stop.cancel();
    load.await.unwrap();

    let (status, body) = get_json(format!("{base}/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "backend_unavailable");
    // The same code over /ws.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.http_addr))
        .await
        .expect("ws connects");
    let data = base64::engine::general_purpose::STANDARD.encode(jpeg(90, 17));
    let request = json!({"data": data, "id": 1}).to_string();
    ws.send(tokio_tungstenite::tungstenite::Message::text(request))
        .await
        .unwrap();
    let answer = loop {
        match ws.next().await.expect("an answer").unwrap() {
            tokio_tungstenite::tungstenite::Message::Text(t) => {
                break serde_json::from_str::<Value>(&t).unwrap()
            }
            _ => continue,
        }
    };
    assert_eq!(
        (&answer["status"], &answer["message"]),
        (&json!("error"), &json!("backend_unavailable")),
        "{answer}"
    );
    // `GET /` still answers, with this instance's figures.
    let (status, info) = get_json(format!("{base}/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["queue"]["scope"], "instance", "{info}");

    redis.restart();
    // Nothing half-written: every queued or running record kept its input
    // and its job through the kill.
    let mut conn = connection(&redis).await;
    let (records, bad): (usize, Vec<String>) = redis::Script::new(HALF_WRITTEN)
        .arg("faults:")
        .invoke_async(&mut conn)
        .await
        .unwrap();
    assert!(records >= accepted.len(), "{records} records");
    assert!(bad.is_empty(), "half-written: {bad:?}");

    poll(format!("{base}/readyz"), |status, _| {
        status == StatusCode::OK
    })
    .await;
    // Every accepted upload is finished, those cut off mid-job included.
    for md5 in &accepted {
        let variants = settled(&base, md5).await;
        assert_eq!(variants.len(), 1, "{variants:?}");
        assert_eq!(variants[0]["status"], "done", "{md5}: {variants:?}");
    }
    // And new uploads complete again.
    let (status, body) = common::http::upload(&base, jpeg(77, 61), &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let variants = settled(&base, body["md5"].as_str().unwrap()).await;
    assert_eq!(variants[0]["status"], "done", "{variants:?}");
    let (_, info) = get_json(format!("{base}/")).await;
    assert_eq!(info["queue"]["scope"], "service", "{info}");

    server.shutdown().await;
}

#[tokio::test]
async fn a_job_whose_worker_dies_every_time_is_set_aside_after_max_attempts() {
    let redis = Redis::start();
    let mut s = settings(&redis, "dead-letter:");
    s.backend.claim_idle = Some(Duration::from_millis(1));
    let image = jpeg(50, 50);
    let input = Bytes::from(image.clone());
    let key = TaskKey::of(&image);
    let spec = default_spec();

    // Workers that take the job and die before finishing it, through the
    // backend's own API: the first takes it from the stream, the next two
    // take it over from the one before.
    let first = backend(&s).await;
    assert!(matches!(
        first.submit(&key, &spec, &input).await.unwrap(),
        Claim::Won
    ));
    let taken = JobQueue::take(&first, 1).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].deliveries, 1);
    for delivery in 2..=3 {
        let dead = backend(&s).await;
        let mut reclaimed = Vec::new();
        for _ in 0..POLL_ATTEMPTS {
            reclaimed = JobQueue::reclaim(&dead, 1).await.unwrap();
            if !reclaimed.is_empty() {
                break;
            }
            tokio::time::sleep(POLL_PAUSE).await;
        }
        assert_eq!(reclaimed.len(), 1, "taken over");
        assert_eq!(reclaimed[0].deliveries, delivery);
    }

    // A live instance takes it over a fourth time: past max_attempts (3),
    // it sets the job aside instead of running it.
    s.backend.claim_idle = Some(Duration::from_millis(200));
    s.backend.max_attempts = 3;
    let live = start(s).await;
    let base = base_url(&live);
    let variants = settled(&base, key.as_str()).await;
    assert_eq!(variants[0]["status"], "error", "{variants:?}");
    assert_eq!(variants[0]["code"], "job_failed_repeatedly", "{variants:?}");
    let r = reqwest::get(format!("{base}/download/{key}"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "job_failed_repeatedly", "{body}");

    // Nothing of it is left to reclaim, and uploading it again does not
    // try it again.
    // The status is written before the entry is acknowledged, so the
    // acknowledgement may still be on its way when the status reads `error`.
    let mut conn = connection(&redis).await;
    let mut pending = usize::MAX;
    for _ in 0..POLL_ATTEMPTS {
        let reply: redis::streams::StreamPendingReply =
            conn.xpending("dead-letter:jobs", "workers").await.unwrap();
        pending = reply.count();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
    assert_eq!(pending, 0, "the set-aside job is acknowledged");
    let (status, body) = common::http::upload(&base, image, &[]).await;
    assert!(status.is_success(), "{body}");
    let variants = settled(&base, key.as_str()).await;
    assert_eq!(variants[0]["code"], "job_failed_repeatedly", "{variants:?}");
    let added: redis::Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg("dead-letter:jobs")
        .query_async::<std::collections::HashMap<String, redis::Value>>(&mut conn)
        .await
        .unwrap()
        .remove("entries-added")
        .unwrap();
    assert_eq!(
        added,
        redis::Value::Int(1),
        "one job ever entered the stream"
    );
    assert_eq!(conn.xlen::<_, usize>("dead-letter:jobs").await.unwrap(), 0);

    live.shutdown().await;
}

#[tokio::test]
async fn a_submission_that_fails_half_way_leaves_nothing() {
    let redis = Redis::start();
    let s = settings(&redis, "half:");
    let other = backend(&s).await;
    let mut conn = connection(&redis).await;
    // The job stream is made unusable (a string in its place).
    let _: () = conn.del("half:jobs").await.unwrap();
    let _: () = conn.set("half:jobs", "not a stream").await.unwrap();
    let image = Bytes::from(jpeg(30, 30));
    let key = TaskKey::of(&image);
    assert!(other.submit(&key, &default_spec(), &image).await.is_err());
    let task: bool = conn.exists(format!("half:task:{key}")).await.unwrap();
    let input: bool = conn.exists(format!("half:input:{key}")).await.unwrap();
    assert!(!task && !input, "no record, no input");
}

#[tokio::test]
async fn queue_figures_count_the_whole_service() {
    let redis = Redis::start();
    let mut s = settings(&redis, "figures:");
    s.backend.claim_idle = Some(Duration::from_secs(3600));
    // Two jobs taken by a worker elsewhere that holds them (no instance
    // below ran them).
    let other = backend(&s).await;
    for n in 0..2 {
        let image = Bytes::from(jpeg(20 + n, 20));
        let key = TaskKey::of(&image);
        assert!(matches!(
            other.submit(&key, &default_spec(), &image).await.unwrap(),
            Claim::Won
        ));
    }
    assert_eq!(JobQueue::take(&other, 2).await.unwrap().len(), 2);

    let a = start(s.clone()).await;
    let b = start(s).await;
    for server in [&a, &b] {
        let (status, info) = get_json(format!("{}/", base_url(server))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            info["queue"],
            json!({"queued": 0, "processing": 2, "scope": "service"}),
            "{info}"
        );
    }
    let metrics = metrics(&base_url(&a)).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "pixpress_service_jobs_in_flight 2"),
        "{metrics}"
    );
    let depth = JobQueue::depth(&other).await.unwrap().unwrap();
    assert_eq!((depth.waiting, depth.taken), (0, 2));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_job_whose_instance_is_killed_mid_run_is_finished_by_another() {
    let redis = Redis::start();
    let config = format!(
        "server: {{host: 127.0.0.1, port: 0}}\n\
         tcp: {{port: 0}}\n\
         upload: {{max_concurrent_tasks: 1, rate_limit_per_minute: 0}}\n\
         backend: {{kind: redis, redis_url: \"{}\", key_prefix: \"killed:\", claim_idle: 1s}}\n",
        redis.url
    );
    // Instance A takes the job; it is killed (SIGKILL) while it runs it.
    let mut a = spawned::spawn_server(&config);
    let base_a = format!("http://{}", a.http);
    let image = jpeg(4000, 3000);
    let md5 = http::md5_hex(&image);
    let (status, _) = http::upload(&base_a, &image, &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    poll(format!("{base_a}/status/{md5}"), |_, body| {
        body[0]["status"] == "processing"
    })
    .await;
    a.kill();

    // Instance B starts after A is gone and takes the job over once it has
    // been idle for `claim_idle`.
    let b = spawned::spawn_server(&config);
    let base_b = format!("http://{}", b.http);
    let entries = settled(&base_b, &md5).await;
    assert_eq!(entries[0]["status"], "done", "{entries:?}");
    let metrics = metrics(&base_b).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"pixpress_jobs_total{format="webp",outcome="done"} 1"#),
        "B ran the job: {metrics}"
    );
    let webp = reqwest::get(format!("{base_b}/download/{md5}"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(webp.starts_with(b"RIFF") && &webp[8..12] == b"WEBP");
}
