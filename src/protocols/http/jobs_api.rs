//! The TinyImage-compatible job API: `GET /`, `POST /upload`,
//! `GET /status/{md5}`, `GET /download/{md5}`. Thin handlers over `JobStore`.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use bytes::{Bytes, BytesMut};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::error::Code;
use crate::jobs::{
    FormatChoice, JobError, OptionRules, Task, TaskKey, UploadOptions, VariantSpec, VariantState,
};
use crate::pipeline::Format;
pub use crate::protocols::job_view::{quality_schema, QualityValue, VariantView};

/// Room for the multipart framing and the option fields around the file.
pub const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// Longest `?wait=` in seconds.
pub const MAX_WAIT_SECONDS: u64 = 30;

/// Jobs queued and processing.
#[derive(Serialize, ToSchema)]
pub struct QueueView {
    queued: usize,
    processing: usize,
    /// `service`: the whole service's jobs (with `backend.kind: redis`,
    /// every instance's); `instance`: this instance's only, while Redis
    /// does not answer.
    scope: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct ServiceInfo {
    version: &'static str,
    download_url: String,
    max_upload_size_bytes: u64,
    max_concurrent_tasks: usize,
    formats: Vec<&'static str>,
    queue: QueueView,
    /// What the web app and other clients need to know beforehand.
    #[serde(flatten)]
    facts: super::facts::ClientFacts,
}

/// `GET /`: service facts as JSON, or the web app for a browser.
#[utoipa::path(get, path = "/", responses((status = 200, body = ServiceInfo), (status = 303, description = "a browser is sent to /app/")))]
pub async fn root(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if prefers_html(&headers) {
        return Redirect::to("/app/").into_response();
    }
    let figures = state.store.queue_figures().await;
    Json(ServiceInfo {
        version: env!("CARGO_PKG_VERSION"),
        download_url: state.settings.download.download_url.clone(),
        max_upload_size_bytes: state.settings.upload.max_upload_size,
        max_concurrent_tasks: state.settings.upload.max_concurrent_tasks,
        formats: Format::ALL
            .iter()
            .filter(|f| f.available())
            .map(|f| f.name())
            .collect(),
        queue: QueueView {
            queued: figures.queued,
            processing: figures.processing,
            scope: figures.scope,
        },
        facts: super::facts::ClientFacts::of(&state.settings),
    })
    .into_response()
}

fn prefers_html(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let html = accept.find("text/html");
    let json = accept.find("application/json");
    match (html, json) {
        (Some(h), Some(j)) => h < j,
        (Some(_), None) => true,
        _ => false,
    }
}

/// The answer to an upload.
#[derive(Serialize, ToSchema)]
pub struct UploadAnswer {
    message: &'static str,
    md5: String,
    /// The requested format, or `auto`.
    format: &'static str,
    /// The requested quality (a number), or `auto`.
    #[schema(schema_with = quality_schema)]
    quality: QualityValue,
    /// The score target of an auto variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 30, maximum = 100)]
    target: Option<u8>,
    /// Where the result is downloaded once done: `/download/{md5}?{the
    /// options}`, signed and with an `expires` when `download.signed_urls`
    /// is on.
    url: String,
}

/// `POST /upload`: multipart `picture` plus options; answers 202 (200 when
/// the same variant is already done).
#[utoipa::path(post, path = "/upload",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, body = UploadAnswer, description = "queued"),
        (status = 200, body = UploadAnswer, description = "already done"),
        (status = 400, body = ErrorBody, description = "bad field"),
        (status = 401, body = ErrorBody, description = "an API key is required"),
        (status = 413, body = ErrorBody, description = "too large"),
        (status = 415, body = ErrorBody, description = "not an image we decode"),
        (status = 422, body = ErrorBody, description = "image over the limits or undecodable"),
        (status = 429, body = ErrorBody, description = "rate limited", headers(("Retry-After" = u32, description = "seconds"))),
        (status = 503, body = ErrorBody, description = "queue full, shutting down or backend unavailable", headers(("Retry-After" = u32, description = "seconds")))))]
pub async fn upload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    let limit = state.settings.upload.max_upload_size;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit + MULTIPART_OVERHEAD) {
        // Too much to read and drop: answer, then close the connection.
        return Ok(super::guard::refuse_and_close(ApiError::too_large(limit)));
    }
    let mut multipart = multipart
        .map_err(|e| ApiError::bad_request(format!("expected a multipart/form-data body: {e}")))?;
    // The body's bytes count against `upload.max_queued_bytes` while it is
    // read (a body of unknown length as the largest allowed).
    let expected = declared.unwrap_or(limit + MULTIPART_OVERHEAD);
    // A refused body is read and dropped like any refused upload below.
    let hold = state.store.pool().hold_intake(expected);
    let read = match hold {
        Some(_) => read_form(&mut multipart, limit, expected).await,
        None => Err(ApiError::from(JobError::QueueFull)),
    };
    if read.is_err() {
        discard_rest(&mut multipart).await;
    }
    let Form {
        picture,
        filename,
        options,
    } = read?;
    let spec = options
        .to_spec(&OptionRules::from(&*state.settings))
        .map_err(|e| ApiError::bad_request(e.0))?;
    // The job counts its input itself from here (while it waits).
    drop(hold);
    let submitted = state.store.submit(picture, spec).await?;
    state.store.add_owner(&submitted.task, &caller).await;
    if let Some(name) = filename {
        submitted.task.name_once(&name);
    }
    let done = matches!(submitted.variant.state(), VariantState::Done(_));
    let status = if done {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let answer = UploadAnswer {
        message: if done {
            "Image already processed for this format/quality"
        } else {
            "Your image is queued for processing"
        },
        md5: submitted.task.key.to_string(),
        format: spec.format.name(),
        quality: QualityValue::requested(spec.quality),
        target: spec.quality.target(),
        url: state.links.url(submitted.task.key.as_str(), &spec),
    };
    Ok((status, Json(answer)).into_response())
}

/// What an upload form carries.
struct Form {
    picture: Bytes,
    /// The picture's file name, as the client sent it.
    filename: Option<String>,
    options: UploadOptions,
}

/// Reads the upload's fields: the picture (at most `limit` bytes; the body
/// is `expected` bytes long at most), its file name and the options.
async fn read_form(multipart: &mut Multipart, limit: u64, expected: u64) -> Result<Form, ApiError> {
    let mut options = UploadOptions::default();
    let mut picture: Option<Bytes> = None;
    let mut filename = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or("").to_owned();
        if !is_field_name(&name) {
            return Err(ApiError::bad_request(format!(
                "form field {name:?}: a field name is 1-64 letters, digits, '_', '.' or '-'"
            )));
        }
        if name == "picture" {
            filename = field.file_name().map(str::to_owned);
            // Sized for the whole body once, not grown by doubling.
            let mut buf = BytesMut::with_capacity(expected.min(limit) as usize);
            while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                if (buf.len() + chunk.len()) as u64 > limit {
                    return Err(ApiError::too_large(limit));
                }
                buf.extend_from_slice(&chunk);
            }
            picture = Some(buf.freeze());
        } else if UploadOptions::accepts(&name) {
            let value = field.text().await.map_err(multipart_error)?;
            if value.len() > 256 {
                return Err(ApiError::bad_request(format!("{name}: value too long")));
            }
            options.set(&name, value);
        } else {
            // A field the API does not know: ignored, never held in memory.
            while field.chunk().await.map_err(multipart_error)?.is_some() {}
        }
    }
    let picture =
        picture.ok_or_else(|| ApiError::bad_request("picture: the image file is missing"))?;
    if picture.is_empty() {
        return Err(ApiError::bad_request("picture: the file is empty"));
    }
    Ok(Form {
        picture,
        filename,
        options,
    })
}

/// Form field names the upload takes: a plain token (unknown ones are
/// ignored, nameless or garbled ones refused). `FIELD_NAME_PATTERN` says the
/// same in the API document.
pub const FIELD_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_.-]{0,63}$";

fn is_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Reads and drops what is left of a refused upload, so that the answer
/// reaches a keep-alive client instead of a connection reset (closing a
/// socket with unread data resets it). Bounded by the route's body limit.
async fn discard_rest(multipart: &mut Multipart) {
    while let Ok(Some(mut field)) = multipart.next_field().await {
        while let Ok(Some(_)) = field.chunk().await {}
    }
}

fn query_error(e: QueryRejection) -> ApiError {
    ApiError::bad_request(format!("bad query: {}", e.body_text()))
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::of(Code::TooLarge, e.body_text())
    } else {
        ApiError::bad_request(format!("malformed multipart body: {}", e.body_text()))
    }
}

/// The multipart form of `POST /upload`, for the API document (the handler
/// reads the fields one by one as they stream in).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The image file (JPEG, PNG, WebP, GIF, BMP or TIFF, told by its bytes; not empty).
    #[schema(value_type = String, format = Binary, min_length = 1)]
    picture: Vec<u8>,
    /// Output format (default webp; empty means the default). `auto`: the
    /// smallest of webp, avif (up to `quality.auto_avif_max_pixels`), jpg and
    /// png at the score `target`; it chooses the quality too (a number given
    /// as `quality` with it is not used).
    #[schema(value_type = String, required = false, pattern = "^(|webp|png|jpg|jpeg|avif|auto)$")]
    format: Option<String>,
    /// 1-100 (default per format), or `auto`: the lowest quality whose
    /// output scores at least `target`.
    #[schema(schema_with = quality_schema, required = false)]
    quality: Option<String>,
    /// With `quality=auto` or `format=auto`: the SSIMULACRA2 score to reach,
    /// 30-100 (default `quality.auto_target`, 80). Checked whenever given;
    /// a fixed quality does not use it.
    #[schema(value_type = u8, required = false, minimum = 30, maximum = 100)]
    target: Option<u8>,
    /// Resize box width in pixels (at most `limits.max_dimension`, 16384 by default).
    #[schema(value_type = u32, required = false, minimum = 1, maximum = 16384)]
    width: Option<u32>,
    /// Resize box height in pixels.
    #[schema(value_type = u32, required = false, minimum = 1, maximum = 16384)]
    height: Option<u32>,
    /// How the box is filled: inside (default), cover or fill; empty means the default.
    #[schema(value_type = String, required = false, pattern = "^(|inside|contain|cover|fill)$")]
    fit: Option<String>,
    /// Byte budget, 64 bytes to 1 TB (sizes such as `200KB` are accepted too).
    #[schema(value_type = u64, required = false, minimum = 64, maximum = 1_000_000_000_000_u64)]
    max_bytes: Option<u64>,
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code from the registry (docs/errors.md).
    error: String,
    /// What went wrong, for people.
    message: String,
}

/// The body of a 409 from `/download`: the variant is not done yet.
#[derive(Serialize, ToSchema)]
pub struct NotReadyBody {
    /// Always `not_ready`.
    error: String,
    /// `queued` or `processing`.
    status: String,
    message: String,
}

#[derive(serde::Deserialize)]
pub struct WaitQuery {
    wait: Option<f64>,
}

/// `GET /status/{md5}`: one entry per variant; `?wait=N` (at most 30)
/// holds the answer until nothing is queued or processing.
#[utoipa::path(get, path = "/status/{md5}",
    params(("md5" = String, Path, description = "the MD5 of the uploaded bytes"),
        ("wait" = Option<f64>, Query, description = "seconds to hold the answer while a variant is queued or processing (at most 30)")),
    responses((status = 200, body = [VariantView]), (status = 400, body = ErrorBody, description = "bad query"),
        (status = 401, body = ErrorBody, description = "an API key is required"),
        (status = 404, body = ErrorBody, description = "unknown md5")))]
pub async fn status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(md5): Path<String>,
    q: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Json<Vec<VariantView>>, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let task = find_task(&state, &caller, &md5).await?;
    if let Some(wait) = q.wait.filter(|w| w.is_finite() && *w > 0.0) {
        let wait = Duration::from_secs_f64(wait.min(MAX_WAIT_SECONDS as f64));
        state.store.wait_settled(&task, wait).await;
    }
    let views = task
        .variants()
        .iter()
        .map(|v| VariantView::linked(&task, v, &state.links))
        .collect();
    Ok(Json(views))
}

/// One entry of `GET /queue/{md5}`, as TinyImage lists its queue.
#[derive(Serialize, ToSchema)]
pub struct QueuedView {
    md5: String,
    /// The file name of the upload, or the md5 when none was given.
    filename: String,
    /// The requested format, or `auto`.
    format: &'static str,
    /// The requested quality, or `auto`.
    #[schema(schema_with = quality_schema)]
    quality: QualityValue,
}

/// `GET /queue/{md5}`: the variants of an upload still waiting or being
/// processed (TinyImage keeps a task in its queue until it is done).
#[utoipa::path(get, path = "/queue/{md5}",
    params(("md5" = String, Path, description = "the MD5 of the uploaded bytes")),
    responses((status = 200, body = [QueuedView]),
        (status = 401, body = ErrorBody, description = "an API key is required"),
        (status = 404, body = ErrorBody, description = "unknown md5, or nothing of it is queued")))]
pub async fn queue(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(md5): Path<String>,
) -> Result<Json<Vec<QueuedView>>, ApiError> {
    let task = find_task(&state, &caller, &md5).await?;
    let filename = task.filename().unwrap_or(task.key.as_str()).to_owned();
    let views: Vec<QueuedView> = task
        .unsettled()
        .iter()
        .map(|v| QueuedView {
            md5: task.key.to_string(),
            filename: filename.clone(),
            format: v.spec.format.name(),
            quality: QualityValue::requested(v.spec.quality),
        })
        .collect();
    if views.is_empty() {
        return Err(ApiError::not_found(format!(
            "nothing of task {} is queued",
            task.key
        )));
    }
    Ok(Json(views))
}

/// The task `md5` names, if `caller` may see it: a task uploaded with
/// another API key is answered as unknown, so its existence is not told.
async fn find_task(
    state: &AppState,
    caller: &Caller,
    md5: &str,
) -> Result<std::sync::Arc<Task>, ApiError> {
    let key = TaskKey::parse(md5)
        .ok_or_else(|| ApiError::not_found(format!("no task {md5:?}: not an md5")))?;
    let unknown = || ApiError::not_found(format!("no task {key} (unknown or expired)"));
    let task = state.store.lookup(&key).await.ok_or_else(unknown)?;
    if state.store.visible_to(&task, caller).await {
        Ok(task)
    } else {
        Err(unknown())
    }
}

/// `GET /download/{md5}`: the processed bytes of the variant the options
/// pick, or without options of the one TinyImage would serve (WebP, then
/// PNG, then JPEG; an auto variant ranks by the format and quality it
/// chose). `?format=auto` picks among done `format=auto` variants those in
/// a format the `Accept` header allows (406 `not_acceptable` when none is),
/// and its answers carry `Vary: Accept`.
#[utoipa::path(get, path = "/download/{md5}",
    params(("md5" = String, Path, description = "the MD5 of the uploaded bytes"),
        ("format" = Option<String>, Query, pattern = "^(webp|png|jpg|jpeg|avif|auto)$", description = "`auto` picks a format=auto variant whose chosen format the Accept header allows"),
        ("quality" = Option<String>, Query, description = "1-100, or `auto` for an auto variant"),
        ("target" = Option<u8>, Query, minimum = 30, maximum = 100, description = "an auto variant with this score target"),
        ("width" = Option<u32>, Query, minimum = 1, maximum = 16384),
        ("height" = Option<u32>, Query, minimum = 1, maximum = 16384),
        ("fit" = Option<String>, Query, pattern = "^(inside|contain|cover|fill)$"),
        ("max_bytes" = Option<u64>, Query, minimum = 64, maximum = 1_000_000_000_000_u64),
        ("expires" = Option<u64>, Query, description = "signed links (`download.signed_urls`): the Unix time the link ends"),
        ("signature" = Option<String>, Query, description = "signed links: the HMAC-SHA256 of the link before it, URL-safe base64; always the last parameter")),
    responses((status = 200, description = "the image", content_type = "image/*", headers(
            ("X-Pixpress-Format" = String, description = "auto variants: the format chosen"),
            ("X-Pixpress-Quality" = String, description = "auto variants: the quality chosen (absent when the original was kept)"),
            ("X-Pixpress-Score" = String, description = "auto variants: the SSIMULACRA2 score of the bytes (absent when not measured)"),
            ("X-Pixpress-Target-Met" = String, description = "auto variants: `true` or `false`, whether the score reached the target"),
            ("Vary" = String, description = "`Accept` with ?format=auto"))),
        (status = 304, description = "not modified"),
        (status = 400, body = ErrorBody, description = "bad query"),
        (status = 401, body = ErrorBody, description = "an API key is required"),
        (status = 403, body = ErrorBody, description = "download.signed_urls: signature_required, signature_invalid or link_expired"),
        (status = 404, body = ErrorBody, description = "unknown md5 or variant"),
        (status = 406, body = ErrorBody, description = "?format=auto: the auto variant's format is not one the Accept header allows", headers(("Vary" = String))),
        (status = 409, body = NotReadyBody, description = "not ready"),
        (status = 413, body = ErrorBody, description = "the variant failed: too large"),
        (status = 415, body = ErrorBody, description = "the variant failed: not an image"),
        (status = 422, body = ErrorBody, description = "the variant failed")))]
pub async fn download(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(md5): Path<String>,
    options: Result<Query<UploadOptions>, QueryRejection>,
    link: Result<Query<LinkParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(options) = options.map_err(query_error)?;
    // Checked by the signed-link guard when links are signed; either way a
    // malformed one is a bad query, not something to ignore.
    link.map_err(query_error)?;
    let task = find_task(&state, &caller, &md5).await?;
    let rules = OptionRules::from(&*state.settings);
    let spec = if options.is_empty() {
        None
    } else {
        Some(
            options
                .to_spec(&rules)
                .map_err(|e| ApiError::bad_request(e.0))?,
        )
    };
    let negotiated = spec.is_some_and(|s| s.format == FormatChoice::Auto);
    let answer = serve(&task, &options, &rules, negotiated, &headers).await;
    if !negotiated {
        return answer;
    }
    let vary = |mut response: Response| {
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept"));
        response
    };
    answer.map(vary).or_else(|e| Ok(vary(e.into_response())))
}

/// A signed link's own parameters, as the download's query holds them.
#[derive(Debug, serde::Deserialize)]
pub struct LinkParams {
    #[serde(rename = "expires")]
    _expires: Option<u64>,
    #[serde(rename = "signature")]
    _signature: Option<String>,
}

/// The download answer for the variant `options` pick; with `negotiated`
/// (`?format=auto`), only one in a format `headers`' `Accept` allows.
async fn serve(
    task: &Task,
    options: &UploadOptions,
    rules: &OptionRules,
    negotiated: bool,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let matches = |spec: &VariantSpec| options.matches(spec, rules).unwrap_or(false);
    let variant = if options.is_empty() {
        task.default_download()
    } else if negotiated {
        let accept = super::accept::Accept::of(headers);
        task.pick_acceptable(matches, |f| accept.allows(f.mime()))
            .map_err(|chosen| {
                let chosen: Vec<&str> = chosen.iter().map(|f| f.mime()).collect();
                ApiError::of(
                    Code::NotAcceptable,
                    format!(
                        "the automatic format chose {}, which the Accept header does not allow",
                        chosen.join(", ")
                    ),
                )
            })?
    } else {
        task.pick(matches)
    }
    .ok_or_else(|| ApiError::not_found("no variant of this task matches those options"))?;
    let finished = match variant.state() {
        VariantState::Done(f) => f,
        VariantState::Failed(e) => {
            let status = match e.code().status() {
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::INTERNAL_SERVER_ERROR => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                s => s,
            };
            return Err(ApiError::new(status, e.code(), e.to_string()));
        }
        other => {
            let body = serde_json::json!({
                "error": Code::NotReady,
                "status": other.name(),
                "message": "the image is not processed yet; wait on /status/{md5}?wait=10",
            });
            return Ok((StatusCode::CONFLICT, Json(body)).into_response());
        }
    };
    let ext = finished.format.extension();
    let etag = format!("\"{}-{}-{}\"", task.key, variant.spec.file_stem(), ext);
    let not_modified = super::webapp::if_none_match(headers, &etag);
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        finished.bytes.clone().into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(finished.format.mime()),
    );
    if !not_modified {
        h.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(finished.bytes.len()),
        );
    }
    // The md5, the variant's file stem and the extension are ASCII.
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    let disposition = format!("attachment; filename=\"{}.{ext}\"", task.key);
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, value);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    if variant.spec.is_auto() {
        let view = VariantView::of(task, &variant);
        h.insert(
            "x-pixpress-format",
            HeaderValue::from_static(finished.format.name()),
        );
        if let Some(q) = finished.quality {
            h.insert("x-pixpress-quality", HeaderValue::from(u16::from(q)));
        }
        if let Some(score) = view
            .score
            .and_then(|s| HeaderValue::from_str(&s.to_string()).ok())
        {
            h.insert("x-pixpress-score", score);
        }
        if let Some(met) = view.target_met {
            h.insert(
                "x-pixpress-target-met",
                HeaderValue::from_static(if met { "true" } else { "false" }),
            );
        }
    }
    Ok(response)
}
