//! The memory backends: one instance's jobs ([`MemoryJobs`],
//! `backend.kind: memory`) and room fan-out ([`MemoryBus`]), in this
//! process.
//!
//! Records and result bytes live in an expiring, byte-bounded cache (the
//! cache TTL and `cache.max_bytes`); the queue holds each job with its input
//! and the place its [`Gate`] (the worker pool) gave it at claim time, so a
//! full pool refuses a claim at once and a queued job holds its place until
//! it runs. State changes go to every listener in publication order.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use moka::sync::Cache;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::{
    BackendError, Bus, Claim, Gate, Heard, JobQueue, JobRepo, Listener, Phase, Place, PlaceCell,
    QueueDepth, QueuedJob, RoomPost, StateEvent, VariantRecord,
};

/// How long `take` waits for a job before answering empty.
const TAKE_WAIT: Duration = Duration::from_secs(1);

/// One task's variants: each record and, once done, its result.
#[derive(Default)]
struct TaskEntry {
    variants: HashMap<String, (VariantRecord, Option<Bytes>)>,
}

impl TaskEntry {
    fn weight(&self) -> u32 {
        let bytes: usize = self
            .variants
            .values()
            .map(|(_, result)| result.as_ref().map_or(0, Bytes::len) + 256)
            .sum();
        u32::try_from(bytes + 256).unwrap_or(u32::MAX)
    }
}

type Entry = Arc<Mutex<TaskEntry>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover the data if it did.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A claimed job waiting in the queue.
struct Waiting {
    id: u64,
    md5: String,
    variant: String,
    input: Bytes,
    place: Option<Place>,
}

/// Jobs, their records and their results in this process.
pub struct MemoryJobs {
    tasks: Cache<String, Entry>,
    gate: Option<Arc<dyn Gate>>,
    /// Places taken by claims whose job is not enqueued yet.
    claimed: Mutex<HashMap<(String, String), Place>>,
    queue: Mutex<VecDeque<Waiting>>,
    arrived: Notify,
    next_id: AtomicU64,
    listeners: Mutex<Vec<mpsc::UnboundedSender<Heard>>>,
}

impl MemoryJobs {
    /// Records kept `ttl` after their last change, `max_bytes` of results
    /// at most; `gate` bounds the queue (none: unbounded).
    pub fn new(ttl: Duration, max_bytes: u64, gate: Option<Arc<dyn Gate>>) -> Self {
        let tasks = Cache::builder()
            .time_to_live(ttl)
            .max_capacity(max_bytes)
            .weigher(|_k: &String, e: &Entry| lock(e).weight())
            .build();
        Self {
            tasks,
            gate,
            claimed: Mutex::new(HashMap::new()),
            queue: Mutex::new(VecDeque::new()),
            arrived: Notify::new(),
            next_id: AtomicU64::new(1),
            listeners: Mutex::new(Vec::new()),
        }
    }

    fn entry(&self, md5: &str) -> Option<Entry> {
        self.tasks.get(md5)
    }

    fn claim_now(&self, md5: &str, field: &str, original_size: usize) -> Claim {
        let entry = self.tasks.get_with(md5.to_owned(), Default::default);
        let mut task = lock(&entry);
        if let Some((record, _)) = task.variants.get(field) {
            return Claim::Existing(record.clone());
        }
        let place = match &self.gate {
            Some(gate) => match gate.enter(original_size) {
                Some(place) => Some(place),
                None => return Claim::QueueFull,
            },
            None => None,
        };
        task.variants.insert(
            field.to_owned(),
            (VariantRecord::queued(original_size), None),
        );
        if let Some(place) = place {
            lock(&self.claimed).insert((md5.to_owned(), field.to_owned()), place);
        }
        Claim::Won
    }

    fn publish_now(&self, md5: &str, field: &str, record: &VariantRecord, result: Option<&Bytes>) {
        let entry = self.tasks.get_with(md5.to_owned(), Default::default);
        {
            let mut task = lock(&entry);
            if record.is_transient() {
                task.variants.remove(field);
            } else {
                let result = result.filter(|_| record.state == Phase::Done).cloned();
                task.variants
                    .insert(field.to_owned(), (record.clone(), result));
            }
        }
        // Insert again so the cache weighs the result and restarts the TTL.
        self.tasks.insert(md5.to_owned(), entry);
        let event = StateEvent {
            md5: md5.to_owned(),
            variant: field.to_owned(),
            record: record.clone(),
        };
        lock(&self.listeners).retain(|l| l.send(Heard::Change(Box::new(event.clone()))).is_ok());
    }

    fn take_now(&self, count: usize) -> Vec<QueuedJob> {
        let mut queue = lock(&self.queue);
        let n = count.max(1).min(queue.len());
        queue
            .drain(..n)
            .map(|w| QueuedJob {
                id: w.id.to_string(),
                md5: w.md5,
                variant: w.variant,
                input: Some(w.input),
                place: w.place.map(PlaceCell),
                deliveries: 1,
            })
            .collect()
    }

    /// Jobs waiting in the queue.
    pub fn waiting(&self) -> usize {
        lock(&self.queue).len()
    }
}

impl JobRepo for MemoryJobs {
    fn kind(&self) -> &'static str {
        "memory"
    }

    // One instance: the task in the job store holds its owners itself.
    fn add_owner<'a>(
        &'a self,
        _md5: &'a str,
        _owner: &'a str,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        async { Ok(()) }.boxed()
    }

    fn is_owner<'a>(
        &'a self,
        _md5: &'a str,
        _owner: &'a str,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        async { Ok(false) }.boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        async { Ok(()) }.boxed()
    }

    fn claim<'a>(
        &'a self,
        md5: &'a str,
        field: &'a str,
        original_size: usize,
    ) -> BoxFuture<'a, Result<Claim, BackendError>> {
        let claim = self.claim_now(md5, field, original_size);
        async move { Ok(claim) }.boxed()
    }

    fn record<'a>(
        &'a self,
        md5: &'a str,
        field: &'a str,
    ) -> BoxFuture<'a, Result<Option<VariantRecord>, BackendError>> {
        let record = self
            .entry(md5)
            .and_then(|e| lock(&e).variants.get(field).map(|(r, _)| r.clone()));
        async move { Ok(record) }.boxed()
    }

    fn records<'a>(
        &'a self,
        md5: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, VariantRecord)>, BackendError>> {
        let records = self.entry(md5).map_or_else(Vec::new, |e| {
            lock(&e)
                .variants
                .iter()
                .map(|(f, (r, _))| (f.clone(), r.clone()))
                .collect()
        });
        async move { Ok(records) }.boxed()
    }

    fn result<'a>(
        &'a self,
        md5: &'a str,
        field: &'a str,
    ) -> BoxFuture<'a, Result<Option<Bytes>, BackendError>> {
        let result = self
            .entry(md5)
            .and_then(|e| lock(&e).variants.get(field).and_then(|(_, b)| b.clone()));
        async move { Ok(result) }.boxed()
    }

    fn input<'a>(&'a self, _md5: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, BackendError>> {
        // Queued jobs carry their input; nothing else keeps it.
        async { Ok(None) }.boxed()
    }

    fn publish<'a>(
        &'a self,
        md5: &'a str,
        field: &'a str,
        record: &'a VariantRecord,
        result: Option<&'a Bytes>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        self.publish_now(md5, field, record, result);
        async { Ok(()) }.boxed()
    }

    fn listen(
        self: Arc<Self>,
        stop: CancellationToken,
    ) -> BoxFuture<'static, Result<Listener, BackendError>> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.listeners).push(tx);
        // Nothing to run: publications reach the receiver directly. The
        // task ends with the others when `stop` is cancelled.
        let task = tokio::spawn(async move { stop.cancelled().await });
        async move { Ok((task, rx)) }.boxed()
    }
}

impl MemoryJobs {
    fn enqueue_now(&self, md5: &str, field: &str, input: &Bytes) {
        let place = lock(&self.claimed).remove(&(md5.to_owned(), field.to_owned()));
        lock(&self.queue).push_back(Waiting {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            md5: md5.to_owned(),
            variant: field.to_owned(),
            input: input.clone(),
            place,
        });
        self.arrived.notify_one();
    }
}

impl JobQueue for MemoryJobs {
    fn enqueue<'a>(
        &'a self,
        md5: &'a str,
        field: &'a str,
        input: &'a Bytes,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        self.enqueue_now(md5, field, input);
        async { Ok(()) }.boxed()
    }

    // One process: nothing can fail between the claim and the enqueue.
    fn submit<'a>(
        &'a self,
        md5: &'a str,
        field: &'a str,
        input: &'a Bytes,
    ) -> BoxFuture<'a, Result<Claim, BackendError>> {
        let claim = self.claim_now(md5, field, input.len());
        if matches!(claim, Claim::Won) {
            self.enqueue_now(md5, field, input);
        }
        async move { Ok(claim) }.boxed()
    }

    fn depth(&self) -> BoxFuture<'_, Result<Option<QueueDepth>, BackendError>> {
        async { Ok(None) }.boxed()
    }

    fn take(&self, count: usize) -> BoxFuture<'_, Result<Vec<QueuedJob>, BackendError>> {
        async move {
            let arrived = self.arrived.notified();
            let jobs = self.take_now(count);
            if !jobs.is_empty() {
                return Ok(jobs);
            }
            let _ = tokio::time::timeout(TAKE_WAIT, arrived).await;
            Ok(self.take_now(count))
        }
        .boxed()
    }

    fn admits_at_claim(&self) -> bool {
        self.gate.is_some()
    }

    fn claim_idle(&self) -> Option<Duration> {
        None
    }

    fn reclaim(&self, _count: usize) -> BoxFuture<'_, Result<Vec<QueuedJob>, BackendError>> {
        async { Ok(Vec::new()) }.boxed()
    }

    fn ack<'a>(&'a self, _job: &'a QueuedJob) -> BoxFuture<'a, Result<(), BackendError>> {
        // A taken job has left the queue already.
        async { Ok(()) }.boxed()
    }
}

/// Room fan-out within this process: every subscriber of a topic hears
/// each publication to it.
#[derive(Default)]
pub struct MemoryBus {
    topics: Mutex<HashMap<String, Vec<mpsc::UnboundedSender<RoomPost>>>>,
}

impl MemoryBus {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Bus for MemoryBus {
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        post: &'a RoomPost,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        if let Some(subscribers) = lock(&self.topics).get_mut(topic) {
            subscribers.retain(|s| s.send(post.clone()).is_ok());
        }
        async { Ok(()) }.boxed()
    }

    fn subscribe(&self, topic: &str) -> mpsc::UnboundedReceiver<RoomPost> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.topics)
            .entry(topic.to_owned())
            .or_default()
            .push(tx);
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Frame;

    struct Slots(Mutex<usize>);

    impl Gate for Slots {
        fn enter(&self, _input_len: usize) -> Option<Place> {
            let mut free = lock(&self.0);
            (*free > 0).then(|| {
                *free -= 1;
                Box::new(()) as Place
            })
        }
    }

    #[tokio::test]
    async fn a_variant_is_claimed_once_and_a_closed_gate_refuses() {
        let jobs = MemoryJobs::new(
            Duration::from_secs(60),
            1 << 20,
            Some(Arc::new(Slots(Mutex::new(1)))),
        );
        assert!(matches!(jobs.claim("a", "q", 3).await, Ok(Claim::Won)));
        assert!(matches!(
            jobs.claim("a", "q", 3).await,
            Ok(Claim::Existing(r)) if r.state == Phase::Queued
        ));
        assert!(matches!(
            jobs.claim("b", "q", 3).await,
            Ok(Claim::QueueFull)
        ));
        assert!(
            jobs.records("b").await.unwrap().is_empty(),
            "a refusal leaves no record"
        );

        jobs.enqueue("a", "q", &Bytes::from_static(b"abc"))
            .await
            .unwrap();
        let taken = jobs.take(8).await.unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].input.as_deref(), Some(&b"abc"[..]));
        assert!(taken[0].place.is_some(), "the job carries its place");
    }

    #[tokio::test]
    async fn a_submission_claims_and_queues_in_one_step() {
        let jobs = MemoryJobs::new(
            Duration::from_secs(60),
            1 << 20,
            Some(Arc::new(Slots(Mutex::new(1)))),
        );
        let input = Bytes::from_static(b"abc");
        assert!(matches!(
            jobs.submit("a", "q", &input).await,
            Ok(Claim::Won)
        ));
        assert_eq!(jobs.waiting(), 1, "queued with its claim");
        assert!(matches!(
            jobs.submit("a", "q", &input).await,
            Ok(Claim::Existing(_))
        ));
        assert!(matches!(
            jobs.submit("b", "q", &input).await,
            Ok(Claim::QueueFull)
        ));
        assert_eq!(jobs.waiting(), 1);
        assert!(jobs.records("b").await.unwrap().is_empty());
        let taken = jobs.take(8).await.unwrap();
        assert_eq!((taken.len(), taken[0].deliveries), (1, 1));
        assert!(taken[0].place.is_some(), "the job carries its place");
        assert_eq!(jobs.depth().await.unwrap(), None, "the pool counts it");
    }

    #[tokio::test]
    async fn publications_reach_listeners_and_transient_failures_are_not_kept() {
        let jobs = Arc::new(MemoryJobs::new(Duration::from_secs(60), 1 << 20, None));
        let (_task, mut events) = jobs.clone().listen(CancellationToken::new()).await.unwrap();
        assert!(matches!(jobs.claim("a", "q", 3).await, Ok(Claim::Won)));
        let done = VariantRecord::processing(3);
        jobs.publish("a", "q", &done, None).await.unwrap();
        let Some(Heard::Change(event)) = events.recv().await else {
            panic!("a state change");
        };
        assert_eq!(
            (event.md5.as_str(), event.record.state),
            ("a", Phase::Processing)
        );

        let failed = VariantRecord::failed(
            3,
            super::super::FailureRecord {
                code: "timeout".into(),
                message: String::new(),
                transient: true,
            },
        );
        jobs.publish("a", "q", &failed, None).await.unwrap();
        assert_eq!(jobs.record("a", "q").await.unwrap(), None);
        assert!(matches!(jobs.claim("a", "q", 3).await, Ok(Claim::Won)));
    }

    #[tokio::test]
    async fn a_bus_post_reaches_every_subscriber_of_its_topic_only() {
        let bus = MemoryBus::new();
        let mut a = bus.subscribe("share");
        let mut b = bus.subscribe("share");
        let mut other = bus.subscribe("chat");
        let frames = [Frame::text("hi"), Frame::binary(vec![1, 2])];
        let sent = RoomPost {
            room: "r".into(),
            origin: "hub-1".into(),
            sender: 7,
            skip_sender: true,
            role: None,
            frames: frames.to_vec(),
        };
        bus.publish("share", &sent).await.unwrap();
        for rx in [&mut a, &mut b] {
            let post = rx.try_recv().unwrap();
            assert_eq!(post, sent);
        }
        assert!(other.try_recv().is_err(), "another topic hears nothing");
    }
}
