//! The JSON text frames of every WebSocket protocol, read as the server
//! reads them: the `/ws` job request (its upload options checked), the share
//! room and img2img messages by type, the chat envelope, and the base64 of
//! image data. Any text is a message or a refusal, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixpress::jobs::{OptionRules, UploadOptions};
use pixpress::protocols::ws::chat::envelope;
use pixpress::protocols::ws::img2img::messages as img2img;
use pixpress::protocols::ws::share::messages as share;
use pixpress::protocols::ws::wire::Frame;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(options) = serde_json::from_str::<UploadOptions>(text) {
        let _ = options.to_spec(&OptionRules::within(16_384));
    }
    if let Ok(frame) = Frame::parse(text) {
        let _ = frame.read::<share::StartIn>();
        let _ = frame.read::<share::TextIn>();
        if let Ok(chunk) = frame.read::<share::ChunkIn>() {
            let _ = pixpress::encoding::decode(&chunk.data);
        }
        let _ = frame.read::<img2img::RegisterIn>();
        let _ = frame.read::<img2img::BinaryMetaIn>();
        if let Ok(request) = frame.read::<img2img::Img2ImgIn>() {
            let _ = pixpress::encoding::decode(&request.image);
        }
    }
    let _ = envelope::parse(text);
});
