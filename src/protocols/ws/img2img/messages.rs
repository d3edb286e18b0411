//! The img2img messages of SPEC section 4, as typed structs. Shapes only.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `register`; without `client_type` a producer, as the original server.
#[derive(Debug, Deserialize)]
pub struct RegisterIn {
    #[serde(default = "producer")]
    pub client_type: String,
}

fn producer() -> String {
    "producer".to_owned()
}

/// `img2img`: the legacy request with a base64 image.
#[derive(Debug, Deserialize)]
pub struct Img2ImgIn {
    pub image: String,
    #[serde(default)]
    pub prompt: String,
}

/// `img2img_binary`: metadata of the binary frame that follows. Its
/// `format` names the format of that frame; the bytes are sniffed instead.
#[derive(Debug, Deserialize)]
pub struct BinaryMetaIn {
    #[serde(default)]
    pub prompt: String,
    #[serde(default)]
    pub timestamp: Option<Value>,
}

/// What a result says besides the image itself.
#[derive(Debug, Serialize)]
pub struct ResultMeta<'a> {
    pub prompt: &'a str,
    pub format: &'a str,
    pub timestamp: &'a Value,
    pub ignored: &'a [String],
    pub width: u32,
    pub height: u32,
    pub size: usize,
}

/// Everything the server sends on an img2img socket.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Out<'a> {
    Welcome {
        message: &'a str,
        timestamp: f64,
    },
    Pong {
        timestamp: f64,
    },
    Registered {
        client_type: &'a str,
        timestamp: f64,
    },
    #[serde(rename = "img2img_result")]
    Result {
        image: &'a str,
        #[serde(flatten)]
        meta: ResultMeta<'a>,
    },
    #[serde(rename = "img2img_result_binary")]
    ResultBinary {
        #[serde(flatten)]
        meta: ResultMeta<'a>,
    },
    /// `message` is the stable code; `detail` says it for people.
    Error {
        message: &'a str,
        detail: &'a str,
        timestamp: &'a Value,
    },
}
