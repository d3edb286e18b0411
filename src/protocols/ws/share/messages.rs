//! The share-room messages of SPEC section 3, as typed structs: what a
//! member sends and what the server sends back. Shapes only, no behaviour.

use serde::{Deserialize, Serialize};

use crate::error::Code;

/// `imageUploadStart` from an uploader. Its `mimeType` is not trusted (the
/// pipeline sniffs the bytes), so it is not read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartIn {
    pub filename: String,
    /// Bytes of the original file.
    pub size: u64,
    #[serde(default)]
    pub upload_id: Option<String>,
}

/// `imageUploadChunk` from an uploader.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkIn {
    pub filename: String,
    pub chunk_index: u64,
    pub total_chunks: u64,
    pub data: String,
    #[serde(default)]
    pub upload_id: Option<String>,
}

/// `text` from a member.
#[derive(Debug, Deserialize)]
pub struct TextIn {
    pub text: String,
}

/// Everything the server sends in a share room.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Out<'a> {
    #[serde(rename_all = "camelCase")]
    ImageUploadProgress {
        filename: &'a str,
        progress: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        upload_id: Option<&'a str>,
    },
    #[serde(rename_all = "camelCase")]
    ImageUploadStart {
        filename: &'a str,
        mime_type: &'a str,
        size: usize,
        from: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        upload_id: Option<&'a str>,
    },
    #[serde(rename_all = "camelCase")]
    ImageUploadChunk {
        filename: &'a str,
        chunk_index: usize,
        total_chunks: usize,
        data: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        upload_id: Option<&'a str>,
    },
    #[serde(rename_all = "camelCase")]
    ImageUploadComplete {
        filename: &'a str,
        mime_type: &'a str,
        width: u32,
        height: u32,
        size: usize,
        from: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        upload_id: Option<&'a str>,
    },
    #[serde(rename_all = "camelCase")]
    ImageUploadError {
        filename: &'a str,
        error: &'a str,
        /// The registry code of the error (`error` is its text, for people).
        code: Code,
        #[serde(skip_serializing_if = "Option::is_none")]
        upload_id: Option<&'a str>,
    },
    Text {
        text: &'a str,
        from: &'a str,
        ts: u64,
    },
    Error {
        error: &'a str,
        code: Code,
    },
}
