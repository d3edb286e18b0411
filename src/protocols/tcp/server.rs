//! The listener: accepts connections up to `max_connections` (refusing the
//! rest with an ERROR reply), runs one task per connection that reads frames,
//! answers them in order and closes on any framing error or timeout, and
//! stops accepting on shutdown. A bad client only ever costs its own
//! connection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::frame::{read_frame, write_frame, FrameError, FrameLimits};
use super::handler::handle;
use super::message::{decode_request, Reply};
use crate::config::TcpSettings;
use crate::error::ApiError;
use crate::files::FileRepo;
use crate::pipeline::Limits;
use crate::protocols::per_client::PerClient;

/// What every connection is held to.
struct Rules {
    settings: TcpSettings,
    limits: Limits,
}

/// Serves the image-sharing protocol on `listener` until `shutdown`
/// completes, then waits for the connections in progress to finish their
/// current request. Uploaded images are checked against `limits`.
pub async fn serve(
    listener: TcpListener,
    store: Arc<dyn FileRepo>,
    settings: TcpSettings,
    limits: Limits,
    per_client: PerClient,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let settings = Arc::new(Rules { settings, limits });
    let permits = Arc::new(Semaphore::new(settings.settings.max_connections));
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match (Arc::clone(&permits).try_acquire_owned(), per_client.try_take(peer.ip())) {
                    (Ok(permit), Some(slot)) => {
                        let (store, settings, stop) = (Arc::clone(&store), Arc::clone(&settings), stop.clone());
                        tasks.spawn(async move {
                            connection(stream, peer, store, &settings.settings, &settings.limits, stop).await;
                            drop((permit, slot));
                        });
                    }
                    (Err(_), _) => {
                        tracing::warn!(%peer, "tcp: connection refused, at max_connections");
                        let write_timeout = settings.settings.write_timeout();
                        tasks.spawn(refuse_busy(stream, write_timeout, BUSY.to_owned()));
                    }
                    (Ok(_), None) => {
                        tracing::debug!(%peer, "tcp: connection refused, too many from this address");
                        let write_timeout = settings.settings.write_timeout();
                        let refusal = ApiError::too_many_connections(per_client.max());
                        tasks.spawn(refuse_busy(stream, write_timeout, format!("{}: {}", refusal.code, refusal.message)));
                    }
                },
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "tcp: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    stop.cancel();
    while tasks.join_next().await.is_some() {}
}

/// The refusal of a connection past `tcp.max_connections`.
const BUSY: &str = "the server is busy: too many connections, try again later";

async fn refuse_busy(stream: TcpStream, write_timeout: Duration, why: String) {
    let (_rd, mut wr) = stream.into_split();
    let reply = Reply::error(None, why);
    let _ = tokio::time::timeout(write_timeout, write_frame(&mut wr, &reply.encode())).await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    store: Arc<dyn FileRepo>,
    settings: &TcpSettings,
    limits: &Limits,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let frame_limits = FrameLimits {
        max_frame_bytes: settings.max_frame_bytes,
        idle_timeout: settings.idle_timeout(),
        read_timeout: settings.read_timeout(),
        frame_timeout: settings.frame_timeout(),
    };
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut rd, &frame_limits) => frame,
            () = stop.cancelled() => break,
        };
        let (reply, close) = match frame {
            Ok(body) => {
                let reply = match decode_request(&body) {
                    Ok(request) => handle(request, &store, settings, limits).await,
                    Err(e) => {
                        tracing::info!(%peer, error = %e, "tcp: bad request");
                        Reply::error(e.command(), e.to_string())
                    }
                };
                (reply, false)
            }
            Err(e @ FrameError::TooLarge { .. }) => {
                tracing::warn!(%peer, error = %e, "tcp: closing connection");
                (
                    Reply::error(None, format!("{e}; closing the connection")),
                    true,
                )
            }
            Err(e) => {
                tracing::debug!(%peer, reason = %e, "tcp: connection ended");
                break;
            }
        };
        let written = tokio::time::timeout(
            settings.write_timeout(),
            write_frame(&mut wr, &reply.encode()),
        )
        .await;
        if close || !matches!(written, Ok(Ok(()))) {
            break;
        }
    }
}
