//! The job service's data: a task (the MD5 of an upload) and its variants
//! (one option set each), each variant's state behind a `watch` channel so
//! waiters react at once, and a finished variant's shared result.

use std::cmp::Reverse;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use bytes::Bytes;
use tokio::sync::watch;

use super::{JobError, TaskKey, VariantSpec};
use crate::pipeline::{Format, Output};

/// A finished variant's result. `bytes` is shared, never copied per reader.
#[derive(Debug, Clone)]
pub struct Finished {
    pub bytes: Bytes,
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub kept_original: bool,
    /// Order of completion across the store (larger is later).
    pub finished_seq: u64,
    /// The quality of the encode (`None` when the original was kept).
    pub quality: Option<u8>,
    /// What `quality=auto` / `format=auto` found; `None` for fixed variants.
    pub auto: Option<AutoOutcome>,
}

/// The outcome of an auto variant's search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoOutcome {
    /// The score target (SSIMULACRA2).
    pub target: f32,
    /// The output's score; `None` where it cannot be measured (after a
    /// budget downscale).
    pub score: Option<f64>,
    /// Whether `score` reached `target` (`None` without a score).
    pub target_met: Option<bool>,
    /// `max_bytes` won over the target.
    pub budget_limited: bool,
    /// The search and the score ran on a sample of the image.
    pub score_sampled: bool,
    /// Trial encodes made.
    pub trials: u32,
}

impl Finished {
    /// The stored form of a pipeline output; `finished_seq` orders completions.
    pub fn from_output(output: Output, finished_seq: u64) -> Self {
        let auto = output.target.map(|target| AutoOutcome {
            target,
            score: output.score,
            target_met: output.target_met,
            budget_limited: output.budget_limited,
            score_sampled: output.score_sampled,
            trials: output.trials,
        });
        Self {
            bytes: Bytes::from(output.bytes),
            format: output.format,
            width: output.width,
            height: output.height,
            kept_original: output.kept_original,
            finished_seq,
            quality: output.quality,
            auto,
        }
    }
}

/// Where a variant is in its life.
#[derive(Debug, Clone)]
pub enum VariantState {
    Queued,
    Processing,
    Done(Arc<Finished>),
    Failed(JobError),
}

impl VariantState {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Done(_) => "done",
            Self::Failed(_) => "error",
        }
    }

    /// Done or failed: nothing more will happen.
    pub fn is_settled(&self) -> bool {
        matches!(self, Self::Done(_) | Self::Failed(_))
    }
}

/// One option set applied to a task.
#[derive(Debug)]
pub struct Variant {
    pub spec: VariantSpec,
    pub(super) state: watch::Sender<VariantState>,
}

impl Variant {
    pub fn state(&self) -> VariantState {
        self.state.borrow().clone()
    }

    /// A receiver that sees every later state change.
    pub fn subscribe(&self) -> watch::Receiver<VariantState> {
        self.state.subscribe()
    }

    /// Moves the state forward only (queued, processing, settled): a late,
    /// older report never undoes a newer one.
    pub(super) fn advance(&self, next: VariantState) {
        fn rank(s: &VariantState) -> u8 {
            match s {
                VariantState::Queued => 0,
                VariantState::Processing => 1,
                VariantState::Done(_) | VariantState::Failed(_) => 2,
            }
        }
        self.state.send_if_modified(|current| {
            let forward = rank(&next) > rank(current);
            if forward {
                *current = next;
            }
            forward
        });
    }

    /// Done, or failed for good: a new submission reuses it.
    pub(super) fn reusable(&self) -> bool {
        match &*self.state.borrow() {
            VariantState::Failed(e) => !e.is_transient(),
            _ => true,
        }
    }

    pub(super) fn new(spec: VariantSpec, state: VariantState) -> Arc<Self> {
        Arc::new(Self {
            spec,
            state: watch::Sender::new(state),
        })
    }
}

/// All variants of one upload.
#[derive(Debug)]
pub struct Task {
    pub key: TaskKey,
    pub original_size: usize,
    pub(super) variants: Mutex<Vec<Arc<Variant>>>,
    /// The file name the bytes were first uploaded under, when a client gave one.
    filename: OnceLock<String>,
    /// Who uploaded it (API key owners), when API keys are set.
    owners: Mutex<Vec<String>>,
}

impl Task {
    pub(super) fn new(key: TaskKey, original_size: usize) -> Self {
        Self {
            key,
            original_size,
            variants: Mutex::new(Vec::new()),
            filename: OnceLock::new(),
            owners: Mutex::new(Vec::new()),
        }
    }

    /// Records `owner` as one who uploaded these bytes; true if new.
    pub fn add_owner(&self, owner: &str) -> bool {
        let mut owners = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
        if owners.iter().any(|o| o == owner) {
            return false;
        }
        owners.push(owner.to_owned());
        true
    }

    /// Whether `owner` uploaded these bytes (as this instance knows).
    pub fn owned_by(&self, owner: &str) -> bool {
        self.owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|o| o == owner)
    }

    /// Remembers the file name of an upload; the first one given stays.
    pub fn name_once(&self, name: &str) {
        let name = name.trim();
        if !name.is_empty() {
            let _ = self.filename.set(name.to_owned());
        }
    }

    /// The file name the bytes were first uploaded under, if any.
    pub fn filename(&self) -> Option<&str> {
        self.filename.get().map(String::as_str)
    }

    pub(super) fn lock_variants(&self) -> MutexGuard<'_, Vec<Arc<Variant>>> {
        // Every change under this lock is one push or one replacement, so
        // the list is whole even if a holder panicked.
        self.variants.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn variants(&self) -> Vec<Arc<Variant>> {
        self.lock_variants().clone()
    }

    /// The reusable variant with `spec`, or else a new one in `state`
    /// (replacing a transiently failed one).
    pub(super) fn variant_or_insert(&self, spec: VariantSpec, state: VariantState) -> Arc<Variant> {
        let mut variants = self.lock_variants();
        let existing = variants.iter().position(|v| v.spec == spec);
        if let Some(i) = existing {
            if variants[i].reusable() {
                return variants[i].clone();
            }
        }
        let variant = Variant::new(spec, state);
        match existing {
            Some(i) => variants[i] = variant.clone(),
            None => variants.push(variant.clone()),
        }
        variant
    }

    /// Takes out `variant`, a submission that did not go through, failing
    /// it first so whoever waits on it hears `why`.
    pub(super) fn forget(&self, variant: &Arc<Variant>, why: JobError) {
        variant.advance(VariantState::Failed(why));
        self.lock_variants().retain(|v| !Arc::ptr_eq(v, variant));
    }

    pub(super) fn weight(&self) -> u32 {
        let results: usize = self
            .variants()
            .iter()
            .filter_map(|v| match v.state() {
                VariantState::Done(f) => Some(f.bytes.len()),
                _ => None,
            })
            .sum();
        u32::try_from(results + 512).unwrap_or(u32::MAX)
    }

    /// The variant that finished last among those `matches` accepts, or
    /// else the one of them submitted last.
    pub fn pick(&self, matches: impl Fn(&VariantSpec) -> bool) -> Option<Arc<Variant>> {
        self.pick_acceptable(matches, |_| true).unwrap_or(None)
    }

    /// Like `pick`, counting only done variants whose output format
    /// `acceptable` allows: the one of them that finished last. With none,
    /// as `pick` does, the one submitted last; but when done variants were
    /// passed over for their format, one still queued or processing (the
    /// latest submitted) or else `Err` with the formats they have.
    pub fn pick_acceptable(
        &self,
        matches: impl Fn(&VariantSpec) -> bool,
        acceptable: impl Fn(Format) -> bool,
    ) -> Result<Option<Arc<Variant>>, Vec<Format>> {
        let variants: Vec<_> = self
            .variants()
            .into_iter()
            .filter(|v| matches(&v.spec))
            .collect();
        let mut refused = Vec::new();
        let mut latest_done: Option<(u64, &Arc<Variant>)> = None;
        for v in &variants {
            if let VariantState::Done(f) = v.state() {
                if !acceptable(f.format) {
                    refused.push(f.format);
                } else if latest_done.is_none_or(|(seq, _)| f.finished_seq > seq) {
                    latest_done = Some((f.finished_seq, v));
                }
            }
        }
        if let Some((_, v)) = latest_done {
            return Ok(Some(v.clone()));
        }
        if refused.is_empty() {
            return Ok(variants.last().cloned());
        }
        match variants.iter().rev().find(|v| !v.state().is_settled()) {
            Some(pending) => Ok(Some(pending.clone())),
            None => {
                refused.dedup();
                Err(refused)
            }
        }
    }

    /// The variant a download without options serves, the one TinyImage
    /// would: a done WebP variant, else PNG, else JPEG, else any other done
    /// variant; within a format the highest quality, then the latest
    /// finished. An auto variant ranks by the format and quality it chose
    /// (a kept original as quality 100). With none done, the one submitted
    /// last (so the answer says why it cannot be had yet).
    pub fn default_download(&self) -> Option<Arc<Variant>> {
        fn rank(format: Format) -> u8 {
            match format {
                Format::Webp => 0,
                Format::Png => 1,
                Format::Jpeg => 2,
                Format::Avif => 3,
            }
        }
        let variants = self.variants();
        let best_done = variants
            .iter()
            .filter_map(|v| match v.state() {
                VariantState::Done(f) => Some((
                    (
                        rank(f.format),
                        Reverse(v.spec.quality.fixed().or(f.quality).unwrap_or(100)),
                        Reverse(f.finished_seq),
                    ),
                    v,
                )),
                _ => None,
            })
            .min_by_key(|(order, _)| *order)
            .map(|(_, v)| v.clone());
        best_done.or_else(|| variants.last().cloned())
    }

    /// The variants not finished yet (queued or processing).
    pub fn unsettled(&self) -> Vec<Arc<Variant>> {
        self.variants()
            .into_iter()
            .filter(|v| !v.state().is_settled())
            .collect()
    }
}

/// What a submission led to.
pub struct Submitted {
    pub task: Arc<Task>,
    pub variant: Arc<Variant>,
    /// The same variant existed already (done or in flight): no new encode.
    pub deduplicated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::variant::{FormatChoice, QualityChoice};
    use crate::pipeline::Fit;

    fn spec(format: Format, quality: u8) -> VariantSpec {
        VariantSpec {
            format: FormatChoice::Fixed(format),
            quality: QualityChoice::Fixed(quality),
            width: None,
            height: None,
            fit: Fit::Inside,
            max_bytes: None,
        }
    }

    fn done_at(format: Format, quality: u8, seq: u64) -> VariantState {
        VariantState::Done(Arc::new(Finished {
            bytes: Bytes::from_static(b"x"),
            format,
            width: 1,
            height: 1,
            kept_original: false,
            finished_seq: seq,
            quality: Some(quality),
            auto: None,
        }))
    }

    fn task_with(variants: &[(Format, u8, VariantState)]) -> Task {
        let task = Task::new(TaskKey::of(b"t"), 1);
        for (format, quality, state) in variants {
            let state = match state {
                VariantState::Done(f) => done_at(*format, *quality, f.finished_seq),
                other => other.clone(),
            };
            task.variant_or_insert(spec(*format, *quality), state);
        }
        task
    }

    fn done(format: Format, seq: u64) -> VariantState {
        done_at(format, 0, seq)
    }

    fn picked(task: &Task) -> (Format, u8) {
        let v = task.default_download().unwrap();
        let (FormatChoice::Fixed(format), QualityChoice::Fixed(quality)) =
            (v.spec.format, v.spec.quality)
        else {
            panic!("an auto variant");
        };
        (format, quality)
    }

    fn auto_spec(format: FormatChoice) -> VariantSpec {
        VariantSpec {
            format,
            quality: QualityChoice::Auto { target: 80 },
            ..spec(Format::Webp, 80)
        }
    }

    #[test]
    fn a_plain_download_prefers_webp_then_png_then_the_best_jpeg() {
        use Format::{Jpeg, Png, Webp};
        let task = task_with(&[
            (Jpeg, 60, done(Jpeg, 1)),
            (Jpeg, 90, done(Jpeg, 2)),
            (Png, 80, done(Png, 3)),
            (Webp, 80, VariantState::Queued),
        ]);
        assert_eq!(picked(&task), (Png, 80));
        task.variant_or_insert(spec(Webp, 50), done_at(Webp, 50, 4));
        assert_eq!(picked(&task), (Webp, 50));

        let jpegs = task_with(&[(Jpeg, 60, done(Jpeg, 2)), (Jpeg, 90, done(Jpeg, 1))]);
        assert_eq!(picked(&jpegs), (Jpeg, 90));
    }

    #[test]
    fn with_nothing_done_the_latest_submission_answers() {
        let task = task_with(&[
            (Format::Webp, 80, VariantState::Processing),
            (Format::Png, 80, VariantState::Queued),
        ]);
        assert_eq!(picked(&task), (Format::Png, 80));
        assert_eq!(task.unsettled().len(), 2);
    }

    #[test]
    fn the_first_file_name_given_stays() {
        let task = task_with(&[]);
        assert_eq!(task.filename(), None);
        task.name_once("  ");
        assert_eq!(task.filename(), None);
        task.name_once("a.jpg");
        task.name_once("b.jpg");
        assert_eq!(task.filename(), Some("a.jpg"));
    }

    #[test]
    fn an_auto_variant_ranks_by_what_it_chose() {
        use Format::{Jpeg, Png};
        let task = task_with(&[(Png, 80, done(Png, 1))]);
        task.variant_or_insert(auto_spec(FormatChoice::Auto), done_at(Jpeg, 70, 2));
        assert_eq!(picked(&task), (Png, 80), "a JPEG ranks after a PNG");
        task.variant_or_insert(
            auto_spec(FormatChoice::Fixed(Format::Webp)),
            done_at(Format::Webp, 61, 3),
        );
        let v = task.default_download().unwrap();
        assert_eq!(v.spec, auto_spec(FormatChoice::Fixed(Format::Webp)));
    }

    #[test]
    fn an_acceptable_pick_skips_formats_the_client_refuses() {
        let task = task_with(&[]);
        let auto = |s: &VariantSpec| s.format == FormatChoice::Auto;
        assert_eq!(
            task.pick_acceptable(auto, |_| true).map(|v| v.is_some()),
            Ok(false)
        );
        task.variant_or_insert(auto_spec(FormatChoice::Auto), done_at(Format::Webp, 70, 1));
        assert!(task.pick_acceptable(auto, |_| true).unwrap().is_some());
        assert_eq!(
            task.pick_acceptable(auto, |f| f != Format::Webp)
                .map(|v| v.is_some()),
            Err(vec![Format::Webp])
        );
        // A variant still pending answers instead (409, not ready).
        let pending = VariantSpec {
            max_bytes: Some(5000),
            ..auto_spec(FormatChoice::Auto)
        };
        task.variant_or_insert(pending, VariantState::Queued);
        let v = task
            .pick_acceptable(auto, |f| f != Format::Webp)
            .unwrap()
            .unwrap();
        assert_eq!(v.spec, pending);
    }
}
