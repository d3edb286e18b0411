//! The job API as a curl-like client uses it: multipart uploads, status
//! waits, task keys.

use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::Value;

/// The task key of an upload: the MD5 of its bytes.
pub fn md5_hex(bytes: &[u8]) -> String {
    pixpress::jobs::TaskKey::of(bytes).to_string()
}

/// `-F picture=@{name} -F k=v ...`
pub fn named_form(bytes: impl AsRef<[u8]>, name: &str, fields: &[(&str, &str)]) -> Form {
    let part = Part::bytes(bytes.as_ref().to_vec()).file_name(name.to_owned());
    let mut form = Form::new().part("picture", part);
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    form
}

/// A form whose picture is named `photo.jpg`.
pub fn form(bytes: impl AsRef<[u8]>, fields: &[(&str, &str)]) -> Form {
    named_form(bytes, "photo.jpg", fields)
}

/// `POST /upload` of `form`: the status and the JSON answer.
pub async fn post_upload(base: &str, form: Form) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/upload"))
        .multipart(form)
        .send()
        .await
        .expect("upload answered");
    let status = r.status();
    (status, r.json().await.expect("json answer"))
}

/// Uploads `bytes` as `photo.jpg` with `fields`.
pub async fn upload(
    base: &str,
    bytes: impl AsRef<[u8]>,
    fields: &[(&str, &str)],
) -> (StatusCode, Value) {
    post_upload(base, form(bytes, fields)).await
}

/// `GET /status/{md5}?wait=30`, which must answer 200.
pub async fn wait_status(base: &str, md5: &str) -> Vec<Value> {
    let r = reqwest::get(format!("{base}/status/{md5}?wait=30"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}
