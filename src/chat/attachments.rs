//! Message attachments: the Attachment type as clients send and read it
//! (`{type, id, filename, url, payload}`, `meta` accepted as the last
//! field's name and sent beside it), and what the chat does with one: an
//! image given as base64 `data`, or naming an upload of this server by its
//! md5 (in `id` or `url`), is processed to WebP by the chat's images and
//! described by the server; anything else is passed on as sent, its `url`
//! never fetched.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Value};

use super::error::ChatError;
use super::images::{is_md5, ChatImages, IMAGE_PATH_PREFIX};
use super::ImageRef;

/// Attachments one message may carry.
pub const MAX_ATTACHMENTS: usize = 10;
/// Longest `id`, `filename` or `url`, in bytes.
pub const MAX_FIELD_LEN: usize = 2048;
/// Largest meta (`payload`), in bytes of JSON.
pub const MAX_META_LEN: usize = 4096;

/// What an attachment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentKind {
    Image,
    File,
    Video,
}

/// An attachment as events and messages carry it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub kind: AttachmentKind,
    pub id: String,
    pub filename: String,
    pub url: String,
    /// Type-specific details; an image's are `{mimetype, width, height, size}`.
    pub meta: Value,
}

impl Serialize for Attachment {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            r#type: AttachmentKind,
            id: &'a str,
            filename: &'a str,
            url: &'a str,
            payload: &'a Value,
            meta: &'a Value,
        }
        Wire {
            r#type: self.kind,
            id: &self.id,
            filename: &self.filename,
            url: &self.url,
            payload: &self.meta,
            meta: &self.meta,
        }
        .serialize(serializer)
    }
}

/// Reads an attachment as it was sent (and stored): the meta under
/// `payload` or `meta`, `payload` first.
impl<'de> Deserialize<'de> for Attachment {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            r#type: AttachmentKind,
            id: String,
            filename: String,
            url: String,
            #[serde(default)]
            payload: Option<Value>,
            #[serde(default)]
            meta: Option<Value>,
        }
        let w = Wire::deserialize(deserializer)?;
        Ok(Self {
            kind: w.r#type,
            id: w.id,
            filename: w.filename,
            url: w.url,
            meta: w.payload.or(w.meta).unwrap_or(Value::Null),
        })
    }
}

/// An attachment as a client sends it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AttachmentInput {
    #[serde(rename = "type")]
    pub kind: AttachmentKind,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub payload: Option<Value>,
    /// The type page's name for `payload`; `payload` wins when both are sent.
    #[serde(default)]
    pub meta: Option<Value>,
    /// Base64 bytes of an image (or a `data:` URL), processed by the server.
    #[serde(default)]
    pub data: Option<String>,
}

/// Turns a message's attachments into what its events carry, in order.
pub async fn resolve(
    images: &ChatImages,
    inputs: Vec<AttachmentInput>,
) -> Result<Vec<Attachment>, ChatError> {
    if inputs.len() > MAX_ATTACHMENTS {
        return Err(ChatError::InvalidRequest(format!(
            "a message may carry at most {MAX_ATTACHMENTS} attachments"
        )));
    }
    let mut out = Vec::with_capacity(inputs.len());
    for input in inputs {
        out.push(resolve_one(images, input).await?);
    }
    Ok(out)
}

async fn resolve_one(images: &ChatImages, input: AttachmentInput) -> Result<Attachment, ChatError> {
    for (name, value) in [
        ("id", &input.id),
        ("filename", &input.filename),
        ("url", &input.url),
    ] {
        if value.as_ref().is_some_and(|v| v.len() > MAX_FIELD_LEN) {
            return Err(ChatError::InvalidRequest(format!(
                "an attachment's {name} is longer than {MAX_FIELD_LEN} bytes"
            )));
        }
    }
    let meta_len = [&input.payload, &input.meta]
        .iter()
        .filter_map(|m| m.as_ref())
        .map(|m| serde_json::to_vec(m).map_or(usize::MAX, |v| v.len()))
        .max()
        .unwrap_or(0);
    if meta_len > MAX_META_LEN {
        return Err(ChatError::InvalidRequest(format!(
            "an attachment's payload (meta) is larger than {MAX_META_LEN} bytes of JSON"
        )));
    }
    let local = match (input.kind, input.data.as_deref()) {
        (AttachmentKind::Image, Some(data)) => Some(images.process_base64(data).await?),
        (_, Some(_)) => {
            return Err(ChatError::InvalidRequest(
                "only image attachments may carry data".into(),
            ))
        }
        (AttachmentKind::Image, None) => match upload_md5(&input) {
            Some(md5) => images.upload_as_webp(&md5).await?,
            None => None,
        },
        (_, None) => None,
    };
    if let Some(image) = local {
        return Ok(processed(input, image));
    }
    match input.url.filter(|u| !u.is_empty()) {
        Some(url) => Ok(Attachment {
            kind: input.kind,
            id: input.id.unwrap_or_default(),
            filename: input.filename.unwrap_or_default(),
            url,
            meta: input.payload.or(input.meta).unwrap_or_else(|| json!({})),
        }),
        None => match input.id.filter(|id| is_md5(id)) {
            Some(md5) => Err(ChatError::UnknownImage(md5.to_ascii_lowercase())),
            None => Err(ChatError::InvalidRequest(
                "an attachment needs a url, base64 data, or the md5 of an upload as its id".into(),
            )),
        },
    }
}

/// An image processed here: the server's description, under the client's
/// id (the image's md5 when none was given) and file name with the
/// extension of what it now is.
fn processed(input: AttachmentInput, image: ImageRef) -> Attachment {
    let stem = input
        .filename
        .as_deref()
        .filter(|f| !f.is_empty())
        .map(|f| f.rsplit_once('.').map_or(f, |(stem, _)| stem).to_owned())
        .unwrap_or_else(|| image.md5.clone());
    Attachment {
        kind: AttachmentKind::Image,
        id: input
            .id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| image.md5.clone()),
        filename: format!("{stem}.webp"),
        meta: json!({
            "mimetype": "image/webp",
            "width": image.width,
            "height": image.height,
            "size": image.size,
        }),
        url: image.url,
    }
}

/// The md5 of an upload (or chat image) of this server that an image
/// attachment names: its `url` as a bare md5 or a path of this server
/// (`/download/{md5}`, `/chat/images/{md5}`), else its `id` as a bare md5.
/// A URL with a scheme or host is someone else's and names nothing here.
fn upload_md5(input: &AttachmentInput) -> Option<String> {
    let from_url = input.url.as_deref().and_then(|url| {
        let path = url.split(['?', '#']).next().unwrap_or("");
        if is_md5(path) {
            return Some(path);
        }
        ["/download/", IMAGE_PATH_PREFIX]
            .iter()
            .find_map(|prefix| path.strip_prefix(prefix))
            .filter(|md5| is_md5(md5))
    });
    from_url
        .or(input.id.as_deref().filter(|id| is_md5(id)))
        .map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: Value) -> AttachmentInput {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn an_attachment_is_sent_with_payload_and_meta_and_read_with_either() {
        let a = input(json!({"type":"image","id":"i","filename":"f","url":"u","meta":{"w":1}}));
        assert_eq!(a.meta, Some(json!({"w":1})));
        let sent = Attachment {
            kind: a.kind,
            id: "i".into(),
            filename: "f".into(),
            url: "u".into(),
            meta: json!({"w":1}),
        };
        assert_eq!(
            serde_json::to_value(&sent).unwrap(),
            json!({"type":"image","id":"i","filename":"f","url":"u",
                   "payload":{"w":1},"meta":{"w":1}})
        );
        assert!(serde_json::from_value::<AttachmentInput>(json!({"type":"sticker"})).is_err());
    }

    #[test]
    fn only_paths_of_this_server_and_bare_md5s_name_an_upload() {
        let md5 = "0123456789abcdef0123456789ABCDEF";
        let lower = md5.to_ascii_lowercase();
        let named = |v: Value| upload_md5(&input(v));
        assert_eq!(named(json!({"type":"image","id":md5})), Some(lower.clone()));
        assert_eq!(
            named(json!({"type":"image","url":format!("/download/{md5}?format=webp")})),
            Some(lower.clone())
        );
        assert_eq!(
            named(json!({"type":"image","url":format!("/chat/images/{md5}")})),
            Some(lower.clone())
        );
        assert_eq!(
            named(json!({"type":"image","id":"img1",
                         "url":format!("http://example.com/download/{md5}")})),
            None
        );
        assert_eq!(named(json!({"type":"image","id":"img1"})), None);
    }
}
