//! Prometheus metrics: jobs by format and outcome, queue depth, jobs in
//! flight (this instance's pool, and the whole service's queue), processing
//! time, bytes in and out. One process-wide recorder.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::AppState;
use crate::jobs::JobObserver;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder once per process and returns its handle.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("pixpress_job_seconds".into()),
                    &[
                        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    ],
                )
                .expect("valid buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may exist (embedding); then ours only renders.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Records finished jobs.
pub struct JobMetrics;

impl JobObserver for JobMetrics {
    fn finished(
        &self,
        format: &'static str,
        outcome: &'static str,
        elapsed: Duration,
        bytes_in: usize,
        bytes_out: usize,
    ) {
        let labels = [("format", format), ("outcome", outcome)];
        metrics::counter!("pixpress_jobs_total", &labels).increment(1);
        metrics::histogram!("pixpress_job_seconds", "format" => format)
            .record(elapsed.as_secs_f64());
        metrics::counter!("pixpress_bytes_in_total").increment(bytes_in as u64);
        metrics::counter!("pixpress_bytes_out_total").increment(bytes_out as u64);
    }
}

/// `GET /metrics`
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let stats = state.store.pool().stats();
    metrics::gauge!("pixpress_queue_depth").set(stats.queued as f64);
    metrics::gauge!("pixpress_jobs_in_flight").set(stats.processing as f64);
    let service = state.store.queue_figures().await;
    if service.scope == "service" {
        metrics::gauge!("pixpress_service_jobs_queued").set(service.queued as f64);
        metrics::gauge!("pixpress_service_jobs_in_flight").set(service.processing as f64);
    }
    let (entries, bytes) = state.store.cache_usage();
    metrics::gauge!("pixpress_cache_entries").set(entries as f64);
    metrics::gauge!("pixpress_cache_bytes").set(bytes as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
