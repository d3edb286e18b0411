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
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::frame::{read_frame, write_frame, FrameError, FrameLimits};
use super::handler::handle;
use super::message::{decode_request, Reply};
use super::settings::TcpSettings;
use crate::storage::FileStore;

/// Serves the image-sharing protocol on `listener` until `shutdown`
/// completes, then waits for the connections in progress to finish their
/// current request.
pub async fn serve(
    listener: TcpListener,
    store: Arc<dyn FileStore>,
    settings: TcpSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let settings = Arc::new(settings);
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match Arc::clone(&permits).try_acquire_owned() {
                    Ok(permit) => {
                        let (store, settings, stop) = (Arc::clone(&store), Arc::clone(&settings), stop_rx.clone());
                        tasks.spawn(async move {
                            connection(stream, peer, store, &settings, stop).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "tcp: connection refused, at max_connections");
                        let write_timeout = settings.write_timeout();
                        tasks.spawn(refuse_busy(stream, write_timeout));
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
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
}

async fn refuse_busy(stream: TcpStream, write_timeout: Duration) {
    let (_rd, mut wr) = stream.into_split();
    let reply = Reply::error(
        None,
        "the server is busy: too many connections, try again later",
    );
    let _ = tokio::time::timeout(write_timeout, write_frame(&mut wr, &reply.encode())).await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    store: Arc<dyn FileStore>,
    settings: &TcpSettings,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let limits = FrameLimits {
        max_frame_bytes: settings.max_frame_bytes,
        idle_timeout: settings.idle_timeout(),
        read_timeout: settings.read_timeout(),
        frame_timeout: settings.frame_timeout(),
    };
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut rd, &limits) => frame,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let (reply, close) = match frame {
            Ok(body) => {
                let reply = match decode_request(&body) {
                    Ok(request) => handle(request, &store, settings).await,
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
