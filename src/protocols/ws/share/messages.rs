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

/// `textUpdate` from a member: the whole text of the room's shared pad.
#[derive(Debug, Deserialize)]
pub struct TextUpdateIn {
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
    /// Sent twice per image: when the upload begins (`processed: false`,
    /// the upload's own name, announced type and size) and when the
    /// processed image starts streaming (`processed: true`, the delivered
    /// name, its real type and size, and `originalFilename`).
    #[serde(rename_all = "camelCase")]
    ImageUploadStart {
        filename: &'a str,
        mime_type: &'a str,
        size: u64,
        from: &'a str,
        processed: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        original_filename: Option<&'a str>,
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
        size: u64,
        from: &'a str,
        original_filename: &'a str,
        /// The whole processed image as base64, when it is small enough.
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<&'a str>,
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
    /// To a member who arrives: everyone present, itself included.
    UserList {
        users: &'a [&'a str],
    },
    /// To the others, when a member arrives. `ip` is the member's label
    /// (its name, never its address); `name` says the same.
    UserConnected {
        ip: &'a str,
        name: &'a str,
    },
    /// To the others, when a member leaves.
    UserDisconnected {
        ip: &'a str,
        name: &'a str,
    },
    /// The room's shared text pad, whole.
    TextUpdate {
        text: &'a str,
        from: &'a str,
    },
    /// To the sender of a refused `textUpdate` alone.
    TextUpdateError {
        error: &'a str,
        code: Code,
    },
}
