//! PUT, GET and LIST: the rules of the image-sharing protocol, applied to
//! decoded requests against the named-file store. Every failure becomes an
//! ERROR reply whose DETAILS says what was wrong. A PUT's image goes through
//! the job service's header check under `limits.*`, as every upload does.

use std::sync::Arc;

use bytes::Bytes;

use super::message::{Command, Details, Reply, Request};
use crate::config::TcpSettings;
use crate::files::{validate_name, FileRepo, StorageError};
use crate::jobs::check_header;
use crate::pipeline::{InputFormat, Limits};

/// Text sent for LIST, with STATUS ERROR, when nothing is stored.
pub const EMPTY_LIST_TEXT: &str = "No files have been shared yet.";

/// Answers one request.
pub async fn handle(
    request: Request,
    store: &Arc<dyn FileRepo>,
    settings: &TcpSettings,
    limits: &Limits,
) -> Reply {
    let command = request.command;
    let result = match command {
        Command::Put => put(request, store, settings, limits).await,
        Command::Get => get(request, store, settings).await,
        Command::List => list(store).await,
    };
    result.unwrap_or_else(|details| Reply::error(Some(command.as_str().to_owned()), details))
}

fn format_name(f: InputFormat) -> &'static str {
    match f {
        InputFormat::Jpeg => "JPEG",
        InputFormat::Png => "PNG",
        InputFormat::Webp => "WebP",
        InputFormat::Gif => "GIF",
        InputFormat::Bmp => "BMP",
        InputFormat::Tiff => "TIFF",
    }
}

/// The format a name's extension promises: .jpg/.jpeg or .png, any case.
fn format_of_name(name: &str) -> Option<InputFormat> {
    let (_, ext) = name.rsplit_once('.')?;
    match ext.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" => Some(InputFormat::Jpeg),
        "png" => Some(InputFormat::Png),
        _ => None,
    }
}

fn checked_name(
    filename: Option<String>,
    command: Command,
    settings: &TcpSettings,
) -> Result<String, String> {
    let name = filename.ok_or_else(|| format!("{} needs a FILENAME", command.as_str()))?;
    validate_name(&name, settings.max_name_len).map_err(|e| format!("invalid FILENAME: {e}"))?;
    Ok(name)
}

/// A store failure as DETAILS text (server-side faults are logged, not shown).
fn store_failure(e: StorageError, doing: &str) -> String {
    match e {
        StorageError::Io { .. } | StorageError::Interrupted | StorageError::Backend(_) => {
            tracing::error!(error = %e, "a shared file could not be {doing}");
            format!("the file could not be {doing} (server storage error)")
        }
        other => other.to_string(),
    }
}

async fn put(
    request: Request,
    store: &Arc<dyn FileRepo>,
    settings: &TcpSettings,
    limits: &Limits,
) -> Result<Reply, String> {
    let name = checked_name(request.filename, Command::Put, settings)?;
    let expected = format_of_name(&name)
        .ok_or_else(|| "FILENAME must end in .jpg, .jpeg or .png".to_owned())?;
    let data = match request.file_data {
        Some(d) if !d.is_empty() => Bytes::from(d),
        _ => {
            return Err("PUT needs FILE_DATA: the image bytes (it was missing or empty)".to_owned())
        }
    };
    match InputFormat::sniff(&data) {
        None => return Err("FILE_DATA is not a JPEG or PNG image".to_owned()),
        Some(f @ (InputFormat::Jpeg | InputFormat::Png)) if f != expected => {
            return Err(format!(
                "FILE_DATA is a {} image but FILENAME says {}",
                format_name(f),
                format_name(expected)
            ))
        }
        Some(InputFormat::Jpeg | InputFormat::Png) => {}
        Some(f) => {
            return Err(format!(
                "FILE_DATA is a {} image: only JPEG and PNG are accepted",
                format_name(f)
            ))
        }
    }
    let limits = Limits {
        max_input_bytes: settings.max_frame_bytes,
        ..*limits
    };
    check_header(&data, &limits).map_err(|e| format!("FILE_DATA is not a valid image: {e}"))?;
    let size = data.len();
    store
        .put(&name, data)
        .await
        .map_err(|e| store_failure(e, "stored"))?;
    Ok(Reply::ok(
        Command::Put,
        Details::Text(format!("stored {name} ({size} bytes)")),
    )
    .with_file(Some(name), None))
}

async fn get(
    request: Request,
    store: &Arc<dyn FileRepo>,
    settings: &TcpSettings,
) -> Result<Reply, String> {
    let name = checked_name(request.filename, Command::Get, settings)?;
    let data = store
        .get(&name)
        .await
        .map_err(|e| store_failure(e, "read"))?;
    let details = Details::Text(format!("{} bytes", data.len()));
    Ok(Reply::ok(Command::Get, details).with_file(Some(name), Some(data)))
}

async fn list(store: &Arc<dyn FileRepo>) -> Result<Reply, String> {
    let files = store.list().await.map_err(|e| {
        tracing::error!(error = %e, "listing shared files failed");
        "the files could not be listed (server storage error)".to_owned()
    })?;
    if files.is_empty() {
        return Err(EMPTY_LIST_TEXT.to_owned());
    }
    // One text, a name a line, as the original server sends it.
    let names: Vec<String> = files.into_iter().map(|f| f.name).collect();
    Ok(Reply::ok(Command::List, Details::Text(names.join("\n"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_decides_the_expected_format() {
        assert_eq!(format_of_name("a.JPG"), Some(InputFormat::Jpeg));
        assert_eq!(format_of_name("a.jpeg"), Some(InputFormat::Jpeg));
        assert_eq!(format_of_name("a.png"), Some(InputFormat::Png));
        assert_eq!(format_of_name("a.gif"), None);
        assert_eq!(format_of_name("png"), None);
    }
}
