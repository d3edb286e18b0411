//! One chat socket: joins the hub room of its user, parses frames and hands
//! them, in arrival order, to a per-socket worker that carries them out one
//! at a time (so responses and events keep the order of the requests). The
//! shared socket loop (`ws::socket::serve`) does the reading and writing,
//! the shared limiter bounds the requests waiting. Owns the socket's queue
//! of pending requests and its presence.

use std::sync::Arc;

use axum::extract::ws::WebSocket;
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::envelope::{self, BadFrame, ClientFrame};
use crate::chat::events::{coded_error_response, error_response};
use crate::chat::{ChatError, ChatService, Link, UserId};
use crate::protocols::ws::limiter::{InFlight, InFlightPermit};
use crate::protocols::ws::socket::{refuse, serve, Session, CLOSE_TRY_AGAIN};
use crate::rooms::{Frame, MemberHandle, Membership};

/// Runs one connection of `user` to its end.
pub async fn run(socket: WebSocket, service: Arc<ChatService>, user: UserId, max_pending: usize) {
    let membership = match service.hub().join(&user, &user) {
        Ok((membership, outbound)) => (membership, outbound),
        Err(e) => {
            let error = ChatError::TooManySockets(e.to_string());
            let frame = error_response(&Value::Null, &error);
            refuse(
                socket,
                Frame::text(frame),
                CLOSE_TRY_AGAIN,
                "too many sockets",
            )
            .await;
            return;
        }
    };
    let (membership, outbound) = membership;
    let link = match service.connect(&user, membership.handle()).await {
        Ok(link) => link,
        Err(error) => {
            drop(membership);
            let frame = error_response(&Value::Null, &error);
            refuse(socket, Frame::text(frame), CLOSE_TRY_AGAIN, "chat is full").await;
            return;
        }
    };
    let session = ChatSession::start(service, link, membership, max_pending);
    serve(socket, outbound, Vec::new(), session).await;
}

/// What the worker is handed, in arrival order, with its place.
type Pending = (Result<ClientFrame, BadFrame>, InFlightPermit);

struct ChatSession {
    service: Arc<ChatService>,
    link: Arc<Link>,
    handle: MemberHandle,
    /// Leaves the user's room when dropped.
    membership: Option<Membership>,
    pending: mpsc::UnboundedSender<Pending>,
    /// Bounds the requests waiting (`chat.max_pending_requests`).
    places: InFlight,
    worker: JoinHandle<()>,
}

impl ChatSession {
    fn start(
        service: Arc<ChatService>,
        link: Arc<Link>,
        membership: Membership,
        max_pending: usize,
    ) -> Self {
        let (pending, mut queue) = mpsc::unbounded_channel::<Pending>();
        let handle = membership.handle();
        let worker = {
            let (service, link) = (service.clone(), link.clone());
            tokio::spawn(async move {
                while let Some((frame, place)) = queue.recv().await {
                    carry_out(&service, &link, frame).await;
                    drop(place);
                }
            })
        };
        Self {
            service,
            link,
            handle,
            membership: Some(membership),
            pending,
            places: InFlight::new(max_pending),
            worker,
        }
    }

    fn enqueue(&mut self, frame: Result<ClientFrame, BadFrame>) {
        match self.places.try_take() {
            // The worker lives as long as the session, so the send succeeds.
            Ok(place) => {
                let _ = self.pending.send((frame, place));
            }
            Err(full) => {
                let id = match &frame {
                    Ok(ClientFrame::Request { id, .. }) => id.clone(),
                    // typing is best effort; an ack needs nothing.
                    Ok(ClientFrame::Typing { .. } | ClientFrame::Ack) => return,
                    Ok(ClientFrame::Offline) => Value::Null,
                    Err(bad) => bad.id.clone(),
                };
                let frame = coded_error_response(&id, full.code(), &full.to_string());
                self.handle.send_self(Frame::text(frame));
            }
        }
    }
}

async fn carry_out(service: &ChatService, link: &Arc<Link>, frame: Result<ClientFrame, BadFrame>) {
    let (me, user) = (link.handle(), link.user());
    match frame {
        Ok(ClientFrame::Request { id, request }) => service.handle(link, &id, request).await,
        Ok(ClientFrame::Typing { chat_id }) => {
            if let Err(error) = service.typing(user, &chat_id).await {
                me.send_self(Frame::text(error_response(&Value::Null, &error)));
            }
        }
        Ok(ClientFrame::Offline) => service.offline(user).await,
        Ok(ClientFrame::Ack) => {}
        Err(BadFrame { id, error }) => {
            me.send_self(Frame::text(error_response(&id, &error)));
        }
    }
}

impl Session for ChatSession {
    fn on_text(&mut self, text: &str) {
        self.enqueue(envelope::parse(text));
    }

    fn on_binary(&mut self, _data: Bytes) {
        self.enqueue(Err(BadFrame {
            id: Value::Null,
            error: ChatError::BinaryFrame,
        }));
    }

    fn on_too_large(&mut self) {
        let error = ChatError::FrameTooLarge;
        self.handle
            .send_self(Frame::text(error_response(&Value::Null, &error)));
    }
}

impl Drop for ChatSession {
    fn drop(&mut self) {
        self.worker.abort();
        // Leave the room first, so the offline notice reaches no one here.
        self.membership.take();
        let (service, link) = (self.service.clone(), self.link.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { service.disconnect(&link).await });
        }
    }
}
