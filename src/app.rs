//! Starting and stopping the whole server: builds the services (one worker
//! pool, the job store and its backend, the chat, the file store), binds the
//! HTTP listener (every HTTP and WebSocket route, from `protocols::router`)
//! and the TCP listener, and stops them all with one cancellation token.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backend::{
    Bus, MemoryBus, MemoryRoomRepos, RedisBackend, RedisBus, RedisRooms, RoomRepos,
};
use crate::config::{BackendKind, Settings};
use crate::jobs::{JobStore, StoreSettings, WorkerPool};
use crate::protocols::http::{self, AppState};
use crate::protocols::per_client::PerClient;
use crate::protocols::ws::socket::Sockets;
use crate::protocols::{self, Services};

/// A server that could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot prepare {what}: {message}")]
    Setup { what: &'static str, message: String },
}

/// A running server; `shutdown` stops it gracefully.
pub struct RunningServer {
    pub http_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
    pub state: AppState,
    stop: CancellationToken,
    http_task: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
    grace: Duration,
    sockets: Sockets,
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy)]
pub struct ShutdownReport {
    /// From the signal until no job was queued or running.
    pub jobs_settled: Duration,
    /// Whether every accepted job finished within the grace period.
    pub jobs_finished: bool,
    /// WebSockets open when the jobs had settled (closed with 1001).
    pub sockets_closed: usize,
    /// From the signal until every listener and socket had stopped.
    pub total: Duration,
}

/// Builds the shared services and binds both listeners.
pub async fn start(settings: Settings) -> Result<RunningServer, StartError> {
    let settings = Arc::new(settings);
    let pool = WorkerPool::new(
        settings.upload.max_concurrent_tasks,
        settings.upload.max_queue,
        settings.upload.job_timeout,
    )
    .with_max_queued_bytes(settings.upload.max_queued_bytes)
    .with_max_running_pixels(settings.upload.max_running_pixels);
    if let Some(dir) = &settings.server.output_dir {
        std::fs::create_dir_all(dir).map_err(|e| StartError::Setup {
            what: "server.output_dir",
            message: format!("{}: {e}", dir.display()),
        })?;
    }
    let store = JobStore::new(StoreSettings::of(&settings), pool.clone())
        .with_observer(Arc::new(http::metrics::JobMetrics));
    let backend = match settings.backend.kind {
        BackendKind::Memory => None,
        BackendKind::Redis => Some(Arc::new(
            RedisBackend::connect(
                &settings.backend,
                settings.cache.ttl,
                settings.upload.job_timeout,
                settings.upload.max_queue,
            )
            .await
            .map_err(backend_error)?,
        )),
    };
    let store = match backend {
        Some(b) => store.with_backend(b),
        None => store,
    };
    let state = AppState::new(settings.clone(), store.clone());

    let files = crate::files::connect(&settings.storage, &settings.backend)
        .await
        .map_err(|e| StartError::Setup {
            what: "storage",
            message: e.to_string(),
        })?;
    let chat_repo = crate::chat::connect_repo(&settings)
        .await
        .map_err(backend_error)?;
    let chat = crate::chat::start(
        pool.clone(),
        &settings,
        Arc::new(store.clone()),
        store.clone(),
        chat_repo,
    );
    let (bus, room_state): (Arc<dyn Bus>, Arc<dyn RoomRepos>) = match settings.backend.kind {
        BackendKind::Memory => (Arc::new(MemoryBus::new()), Arc::new(MemoryRoomRepos)),
        BackendKind::Redis => (
            Arc::new(
                RedisBus::connect(&settings.backend)
                    .await
                    .map_err(backend_error)?,
            ),
            Arc::new(
                RedisRooms::connect(&settings.backend)
                    .await
                    .map_err(backend_error)?,
            ),
        ),
    };
    let sockets = Sockets::new(crate::protocols::ws::socket::Rules {
        idle_timeout: settings.ws.idle_timeout,
        ping_interval: settings.ws.ping_interval,
    });
    let per_client = PerClient::new(settings.server.max_connections_per_client);
    let app: Router = protocols::router(&Services {
        settings: settings.clone(),
        pool: pool.clone(),
        app: state.clone(),
        files: files.clone(),
        chat,
        bus,
        room_state,
        sockets: sockets.clone(),
    });

    let http_listener = bind(&settings.server.host, settings.server.port).await?;
    let http_addr = http_listener.local_addr().expect("bound address");
    let tcp_listener = bind(&settings.server.host, settings.tcp.port).await?;
    let tcp_addr = tcp_listener.local_addr().expect("bound address");

    let stop = CancellationToken::new();
    let mut background = Vec::new();
    let loops = crate::jobs::worker::start(store.clone(), stop.child_token())
        .await
        .map_err(backend_error)?;
    background.extend(loops);

    let http_stop = stop.child_token();
    let http_task = tokio::spawn(http::listener::serve(
        http_listener,
        app,
        per_client.clone(),
        settings.server.header_read_timeout,
        http_stop,
    ));

    background.push(tokio::spawn(protocols::tcp::serve(
        tcp_listener,
        files,
        settings.tcp.clone(),
        settings.pipeline_limits(),
        per_client,
        stop.child_token().cancelled_owned(),
    )));

    if settings.server.output_dir.is_some() {
        let every = settings.server.output_cleanup_interval;
        let ttl = settings.cache.ttl;
        let store = store.clone();
        let cleanup_stop = stop.child_token();
        background.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let store = store.clone();
                        let _ = tokio::task::spawn_blocking(move || store.clean_output_dir(ttl)).await;
                    }
                    () = cleanup_stop.cancelled() => break,
                }
            }
        }));
    }

    tracing::info!("listening http={http_addr} tcp={tcp_addr}");
    Ok(RunningServer {
        http_addr,
        tcp_addr,
        state,
        stop,
        http_task,
        background,
        grace: settings.server.shutdown_grace,
        sockets,
    })
}

fn backend_error(e: crate::backend::BackendError) -> StartError {
    StartError::Setup {
        what: "backend.redis_url",
        message: format!("cannot use Redis: {e}"),
    }
}

async fn bind(host: &str, port: u16) -> Result<TcpListener, StartError> {
    let addr = format!("{host}:{port}");
    TcpListener::bind(&addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

impl RunningServer {
    /// Stops gracefully: new work (uploads, `/ws` connections and requests)
    /// is refused with 503 `shutting_down` at once, while statuses and
    /// downloads are still answered; jobs already accepted get up to
    /// `server.shutdown_grace` to finish; then every WebSocket is sent what
    /// is queued for it and closed with 1001, and the listeners stop.
    pub async fn shutdown(self) -> ShutdownReport {
        let started = Instant::now();
        self.state.shutting_down.store(true, Ordering::Relaxed);
        tracing::info!("shutting down: new work refused, finishing accepted jobs");
        let deadline = started + self.grace;
        let pool = self.state.store.pool().clone();
        let mut settled = pool.subscribe_idle();
        let jobs_finished =
            tokio::time::timeout_at(deadline.into(), settled.wait_for(|idle| *idle))
                .await
                .is_ok_and(|r| r.is_ok());
        let jobs_settled = started.elapsed();
        if !jobs_finished {
            tracing::warn!(grace = ?self.grace, "jobs still running at the end of the grace period");
        }
        let sockets_closed = self.sockets.open_sockets();
        self.sockets.close_all(SOCKET_CLOSE_WAIT).await;
        self.stop.cancel();
        let _ = tokio::time::timeout(SOCKET_CLOSE_WAIT, self.http_task).await;
        for task in self.background {
            task.abort();
        }
        let report = ShutdownReport {
            jobs_settled,
            jobs_finished,
            sockets_closed,
            total: started.elapsed(),
        };
        tracing::info!(
            jobs_settled_ms = report.jobs_settled.as_millis() as u64,
            jobs_finished = report.jobs_finished,
            sockets_closed = report.sockets_closed,
            total_ms = report.total.as_millis() as u64,
            "shut down"
        );
        report
    }
}

/// How long, after the jobs have settled, sockets and HTTP connections get
/// to close.
const SOCKET_CLOSE_WAIT: Duration = Duration::from_secs(5);
