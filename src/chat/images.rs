//! Images in chat messages: an `image` field (or an image attachment) is
//! either the md5 of an earlier upload (looked up through
//! [`UploadedImages`], or among chat images) or base64 bytes, run through
//! the checked admission of the shared worker pool with the chat preset
//! (WebP within `chat.max_dimension` and `chat.max_image_bytes`). A result
//! is kept in the job store, the one image store keyed by md5, as the chat
//! variant of the task named by its md5, and served at `/chat/images/{md5}`.
//! It neither keeps images itself nor decodes them.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::error::ChatError;
use super::{ImageRef, UploadedImages};
use crate::config::Settings;
use crate::jobs::{
    Finished, FormatChoice, JobStore, QualityChoice, Task, TaskKey, Variant, VariantSpec,
    VariantState, WorkerPool,
};
use crate::pipeline::{Fit, Format, Options, Preset};

/// Where chat images are served (`{md5}` appended).
pub const IMAGE_PATH_PREFIX: &str = "/chat/images/";

/// Resolves `image` fields and keeps processed chat images in the job store.
#[derive(Clone)]
pub struct ChatImages {
    pool: WorkerPool,
    uploads: Arc<dyn UploadedImages>,
    store: JobStore,
    /// The variant a chat image is kept as (its name in the store).
    spec: VariantSpec,
    options: Options,
    max_input_bytes: u64,
}

impl ChatImages {
    pub fn new(
        pool: WorkerPool,
        uploads: Arc<dyn UploadedImages>,
        store: JobStore,
        settings: &Settings,
    ) -> Self {
        let chat = &settings.chat;
        let options = Options::from_preset(
            Preset::Chat {
                max_dimension: chat.max_dimension,
                max_bytes: chat.max_image_bytes,
            },
            settings.pipeline_limits(),
        );
        let spec = VariantSpec {
            format: FormatChoice::Fixed(Format::Webp),
            quality: QualityChoice::Fixed(Format::Webp.default_quality()),
            width: Some(chat.max_dimension),
            height: Some(chat.max_dimension),
            fit: Fit::Inside,
            max_bytes: Some(chat.max_image_bytes),
        };
        Self {
            pool,
            uploads,
            store,
            spec,
            options,
            max_input_bytes: chat.max_upload_bytes,
        }
    }

    /// A kept chat image with `md5`.
    async fn kept(&self, md5: &str) -> Option<(ImageRef, Bytes)> {
        let finished = self.store.kept(md5, &self.spec).await?;
        Some((image_ref(md5, &finished), finished.bytes.clone()))
    }

    /// Turns a message's `image` field into the reference its events carry.
    pub async fn resolve(&self, image: &str) -> Result<ImageRef, ChatError> {
        let image = image.trim();
        if is_md5(image) {
            let md5 = image.to_ascii_lowercase();
            if let Some((image, _)) = self.kept(&md5).await {
                return Ok(image);
            }
            if let Some(found) = self.uploads.find(&md5).await {
                return Ok(found);
            }
            return Err(ChatError::UnknownImage(md5));
        }
        self.process_base64(image).await
    }

    /// Base64 bytes (or a `data:` URL), processed and kept.
    pub async fn process_base64(&self, text: &str) -> Result<ImageRef, ChatError> {
        let bytes = self.decode_base64(text)?;
        self.process(bytes).await
    }

    /// The upload (or chat image) with `md5` as a chat image: a chat image
    /// as it is, an upload's finished result processed to WebP and kept.
    /// `None` when this server knows no such image.
    pub async fn upload_as_webp(&self, md5: &str) -> Result<Option<ImageRef>, ChatError> {
        if let Some((image, _)) = self.kept(md5).await {
            return Ok(Some(image));
        }
        match self.uploads.bytes(md5).await {
            Some(bytes) => self.process(bytes).await.map(Some),
            None => Ok(None),
        }
    }

    /// Runs bytes through the checked admission of the shared pool with the
    /// chat preset, and keeps the result under its md5.
    async fn process(&self, bytes: Bytes) -> Result<ImageRef, ChatError> {
        if bytes.len() as u64 > self.max_input_bytes {
            return Err(ChatError::ImageTooLarge {
                size: bytes.len(),
                limit: self.max_input_bytes,
            });
        }
        let output = self
            .pool
            .run_checked(bytes, self.options.clone(), None)
            .await?;
        let (key, finished) = self.store.keep(self.spec, output).await?;
        Ok(image_ref(key.as_str(), &finished))
    }

    /// The WebP bytes of a processed chat image, while kept.
    pub async fn bytes(&self, md5: &str) -> Option<Bytes> {
        self.kept(md5).await.map(|(_, bytes)| bytes)
    }

    fn decode_base64(&self, text: &str) -> Result<Bytes, ChatError> {
        let estimated = crate::encoding::decoded_len_estimate(text) as u64;
        if estimated > self.max_input_bytes + 3 {
            return Err(ChatError::ImageTooLarge {
                size: estimated as usize,
                limit: self.max_input_bytes,
            });
        }
        let bytes =
            crate::encoding::decode(text).map_err(|e| ChatError::InvalidBase64(e.to_string()))?;
        if bytes.is_empty() {
            return Err(ChatError::InvalidBase64("no bytes".into()));
        }
        if bytes.len() as u64 > self.max_input_bytes {
            return Err(ChatError::ImageTooLarge {
                size: bytes.len(),
                limit: self.max_input_bytes,
            });
        }
        Ok(Bytes::from(bytes))
    }
}

/// How a chat image's events refer to it.
fn image_ref(md5: &str, finished: &Finished) -> ImageRef {
    ImageRef {
        url: format!("{IMAGE_PATH_PREFIX}{md5}"),
        md5: md5.to_owned(),
        width: finished.width,
        height: finished.height,
        size: finished.bytes.len() as u64,
    }
}

/// Chat messages may name an earlier upload by its md5: the variant that
/// finished last is the one they show, at its download URL. The task is
/// looked up in the backend when this instance has not seen it (another
/// instance took the upload).
impl UploadedImages for JobStore {
    fn find<'a>(&'a self, md5: &'a str) -> BoxFuture<'a, Option<ImageRef>> {
        Box::pin(async move {
            let (task, variant, done) = last_done(self, md5).await?;
            Some(ImageRef {
                md5: task.key.to_string(),
                url: format!("/download/{}?{}", task.key, variant.spec.query()),
                width: done.width,
                height: done.height,
                size: done.bytes.len() as u64,
            })
        })
    }

    fn bytes<'a>(&'a self, md5: &'a str) -> BoxFuture<'a, Option<Bytes>> {
        Box::pin(async move {
            let (_, _, done) = last_done(self, md5).await?;
            Some(done.bytes.clone())
        })
    }
}

/// The variant of an upload that finished last, with its result.
async fn last_done(
    store: &JobStore,
    md5: &str,
) -> Option<(Arc<Task>, Arc<Variant>, Arc<Finished>)> {
    let task = store.lookup(&TaskKey::parse(md5)?).await?;
    let variant = task.pick(|_| true)?;
    let VariantState::Done(done) = variant.state() else {
        return None;
    };
    Some((task, variant, done))
}

/// 32 hexadecimal digits: the md5 of an upload, by the job service's rule.
pub fn is_md5(text: &str) -> bool {
    TaskKey::parse(text).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoUploads;
    impl UploadedImages for NoUploads {
        fn find<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Option<ImageRef>> {
            Box::pin(std::future::ready(None))
        }
    }

    fn images(max_upload: u64) -> ChatImages {
        let mut settings = Settings::default();
        settings.chat.max_upload_bytes = max_upload;
        let pool = WorkerPool::new(1, 1, std::time::Duration::from_secs(10));
        let store = JobStore::new(crate::jobs::StoreSettings::of(&settings), pool.clone());
        ChatImages::new(pool, Arc::new(NoUploads), store, &settings)
    }

    #[tokio::test]
    async fn an_unknown_md5_and_bad_base64_are_refused_by_name() {
        let images = images(1024);
        let err = images
            .resolve("0123456789abcdef0123456789ABCDEF")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "unknown_image");
        let err = images.resolve("not base64 at all!").await.unwrap_err();
        assert_eq!(err.code(), "invalid_base64");
        let big = "A".repeat(4 * 1024);
        assert_eq!(images.resolve(&big).await.unwrap_err().code(), "too_large");
    }

    #[tokio::test]
    async fn bytes_that_are_no_image_fail_in_the_pipeline() {
        let images = images(1024);
        let err = images
            .resolve("data:image/png;base64,aGVsbG8=")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "unsupported_format");
    }

    #[test]
    fn the_chat_variant_reads_back_from_its_stored_name() {
        // Another instance (or a reload from the backend) finds a kept chat
        // image by the variant its stored field name gives.
        let images = images(1024);
        let field = crate::jobs::record::field_of(&images.spec);
        assert_eq!(crate::jobs::record::spec_of(&field), Some(images.spec));
    }
}
