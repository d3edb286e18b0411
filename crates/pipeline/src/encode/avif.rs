//! AVIF with ravif (rav1e): 10-bit, alpha kept. Slow; opt-in per request.

use image::DynamicImage;
use ravif::{Encoder, Img, RGB8, RGBA8};

use super::contain_panic;
use crate::PipelineError;

/// rav1e speed (1 slowest - 10 fastest). 9 takes about half the time of 7
/// for 1-2% more bytes on our photos; 10 is faster again but up to a third
/// bigger (figures in the crate README).
const SPEED: u8 = 9;

pub(crate) fn encode(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, PipelineError> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let q = f32::from(quality.clamp(1, 100));
    let encoder = Encoder::new()
        .with_quality(q)
        .with_alpha_quality(q)
        .with_speed(SPEED);
    let fail = |e: ravif::Error| PipelineError::Encode(format!("avif: {e}"));
    contain_panic("ravif", || {
        let encoded = if super::has_transparency(image) {
            let rgba = image.to_rgba8();
            let px: Vec<RGBA8> = rgba
                .pixels()
                .map(|p| RGBA8::new(p.0[0], p.0[1], p.0[2], p.0[3]))
                .collect();
            encoder.encode_rgba(Img::new(&px[..], w, h)).map_err(fail)?
        } else {
            let rgb = image.to_rgb8();
            let px: Vec<RGB8> = rgb
                .pixels()
                .map(|p| RGB8::new(p.0[0], p.0[1], p.0[2]))
                .collect();
            encoder.encode_rgb(Img::new(&px[..], w, h)).map_err(fail)?
        };
        Ok(encoded.avif_file)
    })
}
