//! The HTTP listener: accepts connections, bounds them per client address
//! (`server.max_connections_per_client`), and serves each with hyper's
//! HTTP/1 server, whose header read timeout (`server.header_read_timeout`)
//! drops a client that sends its request headers too slowly (slowloris) or
//! keeps an idle keep-alive connection too long. Upgrades (WebSockets) go
//! on holding their connection's place. On shutdown it stops accepting,
//! lets requests in progress finish, and closes idle connections.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::error::ApiError;
use crate::protocols::per_client::{Counted, PerClient};

/// How long a refused connection is read from (and its request dropped)
/// after the refusal, so the refusal is not lost to a reset.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// Most bytes read from a refused connection, before and after the answer.
const REFUSAL_READ: usize = 64 * 1024;

/// Serves `app` on `listener` until `stop`, then lets the connections in
/// progress finish (WebSockets are ended by their own shutdown signal).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    per_client: PerClient,
    header_read_timeout: Duration,
    stop: CancellationToken,
) {
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let Some(slot) = per_client.try_take(peer.ip()) else {
            tracing::debug!(%peer, "http: connection refused, too many from this address");
            connections.spawn(refuse(stream, per_client.max()));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(request)
                });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new());
            if !header_read_timeout.is_zero() {
                builder.header_read_timeout(header_read_timeout);
            }
            let connection = builder
                .serve_connection(TokioIo::new(Counted::new(stream, slot)), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => log_end(served, peer),
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    log_end(connection.await, peer);
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
}

fn log_end(served: Result<(), hyper::Error>, peer: SocketAddr) {
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "http: connection ended");
    }
}

/// Answers a connection over the per-address bound with 503
/// `too_many_connections`: after the request's headers (a client reads no
/// answer before its request), then reads what else the client sent
/// (bounded) so the answer is not lost to a reset.
async fn refuse(mut stream: TcpStream, max: usize) {
    let error = ApiError::too_many_connections(max);
    let body = serde_json::json!({"error": error.code, "message": error.message}).to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut head = Vec::new();
    let request = async {
        let mut buf = [0u8; 4096];
        while head.len() < REFUSAL_READ && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, request).await;
    let refused = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left = REFUSAL_READ;
        while left > 0 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, refused).await;
}
