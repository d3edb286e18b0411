//! Colour management: pixels tagged with an ICC profile are converted to sRGB
//! with a real colour engine (qcms), so every encoder can write untagged sRGB.
//!
//! Profiles that do not parse, or that do not fit the pixels (a CMYK profile
//! on RGB data), are ignored and the pixels are taken as sRGB.

use image::{DynamicImage, GrayAlphaImage, GrayImage, RgbImage, RgbaImage};
use qcms::{DataType, Intent, Profile, Transform};

fn srgb() -> Box<Profile> {
    let mut p = Profile::new_sRGB();
    p.precache_output_transform();
    p
}

/// The colour space an ICC header declares (bytes 16..20): `RGB `, `GRAY`, `CMYK`.
fn declared_space(icc: &[u8]) -> Option<&[u8]> {
    icc.get(16..20)
}

/// A transform from `icc` to sRGB for the given pixel layouts, unless the
/// profile is sRGB already, broken, or of another colour space than `from`.
pub(crate) fn transform(icc: &[u8], from: DataType, to: DataType) -> Option<Transform> {
    let expected: &[u8] = match from {
        DataType::RGB8 | DataType::RGBA8 | DataType::BGRA8 => b"RGB ",
        DataType::Gray8 | DataType::GrayA8 => b"GRAY",
        DataType::CMYK => b"CMYK",
    };
    if declared_space(icc)? != expected {
        return None;
    }
    let input = Profile::new_from_slice(icc, false)?;
    if input.is_sRGB() {
        return None;
    }
    // The engine asserts on profiles it cannot chain; treat that as "no profile".
    let create = || Transform::new_to(&input, &srgb(), from, to, Intent::Perceptual);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(create))
        .ok()
        .flatten()
}

/// Converts an 8-bit image from its embedded profile to sRGB.
pub(crate) fn to_srgb(image: DynamicImage, icc: &[u8]) -> DynamicImage {
    let (w, h) = (image.width(), image.height());
    match image {
        DynamicImage::ImageRgb8(mut buf) => {
            if let Some(t) = transform(icc, DataType::RGB8, DataType::RGB8) {
                t.apply(&mut buf);
            }
            DynamicImage::ImageRgb8(buf)
        }
        DynamicImage::ImageRgba8(mut buf) => {
            if let Some(t) = transform(icc, DataType::RGBA8, DataType::RGBA8) {
                t.apply(&mut buf);
            }
            DynamicImage::ImageRgba8(buf)
        }
        DynamicImage::ImageLuma8(buf) => match transform(icc, DataType::Gray8, DataType::RGB8) {
            Some(t) => {
                let mut out = vec![0u8; buf.len() * 3];
                t.convert(&buf, &mut out);
                let rgb = RgbImage::from_raw(w, h, out).expect("3 bytes per pixel");
                // A gray profile maps gray to gray; keep one channel.
                DynamicImage::ImageLuma8(gray_from_rgb(&rgb))
            }
            None => DynamicImage::ImageLuma8(buf),
        },
        DynamicImage::ImageLumaA8(buf) => match transform(icc, DataType::GrayA8, DataType::RGBA8) {
            Some(t) => {
                let mut out = vec![0u8; buf.len() * 2];
                t.convert(&buf, &mut out);
                let rgba = RgbaImage::from_raw(w, h, out).expect("4 bytes per pixel");
                let mut ga = GrayAlphaImage::new(w, h);
                for (d, s) in ga.pixels_mut().zip(rgba.pixels()) {
                    d.0 = [s.0[1], s.0[3]];
                }
                DynamicImage::ImageLumaA8(ga)
            }
            None => DynamicImage::ImageLumaA8(buf),
        },
        other => other,
    }
}

fn gray_from_rgb(rgb: &RgbImage) -> GrayImage {
    let mut g = GrayImage::new(rgb.width(), rgb.height());
    for (d, s) in g.pixels_mut().zip(rgb.pixels()) {
        // Gray in, gray out: the channels are equal; green is the safest pick.
        d.0 = [s.0[1]];
    }
    g
}
