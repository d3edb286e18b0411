//! How the job service's states, results and errors become the backend's
//! plain records and back, and how a variant is named there (its download
//! query, `format=webp&quality=80&width=800&fit=inside`).

use std::sync::Arc;

use bytes::Bytes;

use super::{
    AutoOutcome, Finished, JobError, OptionRules, UploadOptions, VariantSpec, VariantState,
};
use crate::backend::{
    AutoRecord, BackendError, FailureRecord, FieldName, Phase, ResultRecord, VariantRecord,
};
use crate::error::Code;
use crate::pipeline::Format;

impl FieldName for VariantSpec {
    fn field(&self) -> String {
        self.query()
    }
}

/// The name of a variant inside its task.
pub fn field_of(spec: &VariantSpec) -> String {
    spec.field()
}

/// The variant a field names, or `None` for a field that is not one.
pub fn spec_of(field: &str) -> Option<VariantSpec> {
    let mut options = UploadOptions::default();
    for pair in field.split('&') {
        let (name, value) = pair.split_once('=')?;
        if !options.set(name, value.to_owned()) {
            return None;
        }
    }
    options.to_spec(&OptionRules::within(u32::MAX)).ok()
}

impl From<&Finished> for ResultRecord {
    fn from(finished: &Finished) -> Self {
        Self {
            format: finished.format.name().to_owned(),
            width: finished.width,
            height: finished.height,
            size: finished.bytes.len(),
            kept_original: finished.kept_original,
            finished_at: finished.finished_seq,
            quality: finished.quality,
            auto: finished.auto.as_ref().map(AutoRecord::from),
        }
    }
}

impl From<&AutoOutcome> for AutoRecord {
    fn from(auto: &AutoOutcome) -> Self {
        Self {
            target: auto.target,
            score: auto.score,
            target_met: auto.target_met,
            budget_limited: auto.budget_limited,
            score_sampled: auto.score_sampled,
            trials: auto.trials,
        }
    }
}

impl From<&AutoRecord> for AutoOutcome {
    fn from(auto: &AutoRecord) -> Self {
        Self {
            target: auto.target,
            score: auto.score,
            target_met: auto.target_met,
            budget_limited: auto.budget_limited,
            score_sampled: auto.score_sampled,
            trials: auto.trials,
        }
    }
}

impl From<&JobError> for FailureRecord {
    fn from(error: &JobError) -> Self {
        Self {
            code: error.code().as_str().to_owned(),
            message: error.to_string(),
            transient: error.is_transient(),
        }
    }
}

/// The error a failure record was made from: the same code and message (an
/// unknown code reads as an internal error).
pub fn error_of(failure: &FailureRecord) -> JobError {
    JobError::Reported {
        code: Code::parse(&failure.code).unwrap_or(Code::InternalError),
        message: failure.message.clone(),
    }
}

/// The local state a record stands for. A done record needs its result
/// bytes (`result`), fetched by the caller.
pub fn state_of(
    record: &VariantRecord,
    result: Option<Bytes>,
) -> Result<VariantState, BackendError> {
    Ok(match record.state {
        Phase::Queued => VariantState::Queued,
        Phase::Processing => VariantState::Processing,
        Phase::Error => VariantState::Failed(
            record
                .failure
                .as_ref()
                .map(error_of)
                .unwrap_or(JobError::Panicked),
        ),
        Phase::Done => {
            let meta = record
                .result
                .as_ref()
                .ok_or_else(|| BackendError::BadRecord("done without a result".into()))?;
            let bytes = result
                .ok_or_else(|| BackendError::BadRecord("done, but the result is gone".into()))?;
            let format = meta
                .format
                .parse::<Format>()
                .map_err(|e| BackendError::BadRecord(e.to_string()))?;
            VariantState::Done(Arc::new(Finished {
                bytes,
                format,
                width: meta.width,
                height: meta.height,
                kept_original: meta.kept_original,
                finished_seq: meta.finished_at,
                quality: meta.quality,
                auto: meta.auto.as_ref().map(AutoOutcome::from),
            }))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{FormatChoice, QualityChoice};
    use crate::pipeline::{Fit, PipelineError};

    #[test]
    fn a_field_names_its_variant_and_back() {
        let spec = VariantSpec {
            format: FormatChoice::Fixed(Format::Jpeg),
            quality: QualityChoice::Fixed(70),
            width: Some(800),
            height: None,
            fit: Fit::Cover,
            max_bytes: Some(50_000),
        };
        assert_eq!(spec_of(&field_of(&spec)), Some(spec));
        assert_eq!(spec_of("original_size=12"), None);
        for (format, target) in [
            (FormatChoice::Auto, 80),
            (FormatChoice::Fixed(Format::Png), 95),
        ] {
            let auto = VariantSpec {
                format,
                quality: QualityChoice::Auto { target },
                ..spec
            };
            assert_eq!(spec_of(&field_of(&auto)), Some(auto));
        }
    }

    #[test]
    fn an_auto_result_travels_through_its_record() {
        let finished = Finished {
            bytes: Bytes::from_static(b"abcd"),
            format: Format::Webp,
            width: 4,
            height: 5,
            kept_original: false,
            finished_seq: 9,
            quality: Some(63),
            auto: Some(AutoOutcome {
                target: 80.0,
                score: Some(81.25),
                target_met: Some(true),
                budget_limited: false,
                score_sampled: false,
                trials: 3,
            }),
        };
        let record = VariantRecord::done(10, &finished);
        let back = VariantRecord::from_json(&record.to_json()).expect("parses");
        let VariantState::Done(f) = state_of(&back, Some(finished.bytes.clone())).expect("a state")
        else {
            panic!("not done");
        };
        assert_eq!((f.quality, f.auto), (Some(63), finished.auto));
    }

    #[test]
    fn a_record_from_before_auto_still_reads() {
        let old = r#"{"state":"done","original_size":10,"result":{"format":"jpg","width":2,"height":3,"size":3,"kept_original":false,"finished_at":7}}"#;
        let record = VariantRecord::from_json(old).expect("parses");
        let VariantState::Done(f) =
            state_of(&record, Some(Bytes::from_static(b"abc"))).expect("a state")
        else {
            panic!("not done");
        };
        assert_eq!((f.format, f.quality, f.auto), (Format::Jpeg, None, None));
        // A fixed variant's record is written as before.
        let again = VariantRecord::done(10, &*f).to_json();
        assert!(
            !again.contains("auto") && !again.contains("quality"),
            "{again}"
        );
    }

    #[test]
    fn a_failure_record_rebuilds_the_same_error() {
        let errors = [
            JobError::Pipeline(PipelineError::UnsupportedFormat),
            JobError::Pipeline(PipelineError::InvalidImage("truncated".into())),
            JobError::Pipeline(PipelineError::BudgetNotMet { max_bytes: 1500 }),
            JobError::Pipeline(PipelineError::TooManyPixels {
                width: 9000,
                height: 9000,
                max_dimension: 8000,
                max_pixels: 40_000_000,
            }),
            JobError::Pipeline(PipelineError::FormatUnavailable("avif")),
            JobError::Timeout,
        ];
        for error in errors {
            let record = VariantRecord::failed(10, &error);
            let back = VariantRecord::from_json(&record.to_json()).expect("parses");
            let VariantState::Failed(rebuilt) = state_of(&back, None).expect("a state") else {
                panic!("not failed");
            };
            assert_eq!(rebuilt.code(), error.code());
            assert_eq!(rebuilt.to_string(), error.to_string());
            assert_eq!(rebuilt.is_transient(), error.is_transient());
        }
    }

    #[test]
    fn a_done_record_without_its_bytes_is_an_error() {
        let finished = Finished {
            bytes: Bytes::from_static(b"abc"),
            format: Format::Png,
            width: 2,
            height: 3,
            kept_original: false,
            finished_seq: 7,
            quality: Some(80),
            auto: None,
        };
        let record = VariantRecord::done(5, &finished);
        assert!(state_of(&record, None).is_err());
        let VariantState::Done(f) =
            state_of(&record, Some(Bytes::from_static(b"abc"))).expect("a state")
        else {
            panic!("not done");
        };
        assert_eq!((f.width, f.height, f.format), (2, 3, Format::Png));
    }
}
