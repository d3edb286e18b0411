//! Room-state operations run one after another, in the order they were
//! queued: what a protocol records (history items, state, arrivals and
//! departures) reaches the room repo in the order it happened on this
//! instance, and a read queued after a write sees it. The queue is
//! bounded; an operation that finds it full is not run (logged).

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

/// A queue of operations and the task that runs them in turn.
#[derive(Clone)]
pub struct Ordered {
    queue: mpsc::Sender<BoxFuture<'static, ()>>,
}

/// The queue was full, or its task had ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the room state queue is full")]
pub struct QueueFull;

impl Ordered {
    /// Starts the task (within a Tokio runtime); it ends when the last
    /// clone of the queue is dropped, after what was queued.
    pub fn new(bound: usize) -> Self {
        let (queue, mut ops) = mpsc::channel::<BoxFuture<'static, ()>>(bound.max(1));
        tokio::spawn(async move {
            while let Some(op) = ops.recv().await {
                op.await;
            }
        });
        Self { queue }
    }

    /// Queues `op`, to run after everything queued before it.
    pub fn run(&self, op: impl std::future::Future<Output = ()> + Send + 'static) -> bool {
        self.queue.try_send(Box::pin(op)).is_ok()
    }

    /// Queues `op` and hands back its answer when it has run.
    pub fn call<T: Send + 'static>(
        &self,
        op: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<oneshot::Receiver<T>, QueueFull> {
        let (tx, rx) = oneshot::channel();
        let queued = self.run(async move {
            let _ = tx.send(op.await);
        });
        if queued {
            Ok(rx)
        } else {
            Err(QueueFull)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn operations_run_in_the_order_they_were_queued() {
        let ordered = Ordered::new(8);
        let seen = Arc::new(Mutex::new(Vec::new()));
        for i in 0..5 {
            let seen = seen.clone();
            assert!(ordered.run(async move {
                tokio::task::yield_now().await;
                seen.lock().unwrap().push(i);
            }));
        }
        let seen_then = seen.clone();
        let answer = ordered
            .call(async move { seen_then.lock().unwrap().clone() })
            .unwrap();
        assert_eq!(answer.await.unwrap(), [0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_instead_of_waiting() {
        let ordered = Ordered::new(1);
        let (release, wait) = oneshot::channel::<()>();
        let (started_tx, started) = oneshot::channel();
        assert!(ordered.run(async move {
            let _ = started_tx.send(());
            let _ = wait.await;
        }));
        started.await.unwrap();
        assert!(ordered.run(async {}), "one waits in the queue");
        assert_eq!(ordered.call(async {}).err(), Some(QueueFull));
        release.send(()).unwrap();
    }
}
