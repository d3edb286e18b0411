//! Operations on decoded pixels: resize (fast_image_resize, Lanczos3), crop,
//! rotate, flip, grayscale, blur, sharpen, brightness, contrast, invert.
//!
//! Each step reports whether it changed the pixels, so that the never-larger
//! rule knows when the input is still a faithful answer. No decoding or
//! encoding happens here.

use fast_image_resize::images::Image as FirImage;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, GrayAlphaImage, GrayImage, RgbImage, RgbaImage};

use crate::{Fit, FlipAxis, Limits, PipelineError, Step};

fn invalid(msg: String) -> PipelineError {
    PipelineError::InvalidOperation(msg)
}

/// Applies `steps` in order. Returns the image and whether any step changed it.
pub(crate) fn apply(
    mut image: DynamicImage,
    steps: &[Step],
    limits: &Limits,
) -> Result<(DynamicImage, bool), PipelineError> {
    let mut changed = false;
    for step in steps {
        if let Some(next) = apply_one(&image, step, limits)? {
            image = next;
            changed = true;
        }
    }
    Ok((image, changed))
}

/// One step; `None` when it leaves the image as it is.
fn apply_one(
    image: &DynamicImage,
    step: &Step,
    limits: &Limits,
) -> Result<Option<DynamicImage>, PipelineError> {
    let (w, h) = (image.width(), image.height());
    Ok(match *step {
        Step::Resize { width, height, fit } => {
            let Some((tw, th, crop)) = resize_target(w, h, width, height, fit)? else {
                return Ok(None);
            };
            let too_big = tw > limits.max_dimension
                || th > limits.max_dimension
                || u64::from(tw) * u64::from(th) > limits.max_pixels;
            if too_big {
                return Err(invalid(format!(
                    "resize to {tw}x{th} exceeds the pixel limits"
                )));
            }
            Some(resize(image, tw, th, crop)?)
        }
        Step::Crop {
            x,
            y,
            width,
            height,
        } => {
            // A box that reaches past the edges is clipped to the image; one
            // that misses it entirely is an error.
            let x2 = x.saturating_add(width).min(w);
            let y2 = y.saturating_add(height).min(h);
            if x >= w || y >= h || x2 <= x || y2 <= y {
                return Err(invalid(format!(
                    "crop {x},{y},{width},{height} lies outside the {w}x{h} image"
                )));
            }
            if (x, y, x2, y2) == (0, 0, w, h) {
                None
            } else {
                Some(image.crop_imm(x, y, x2 - x, y2 - y))
            }
        }
        Step::Rotate(deg) => match deg % 360 {
            0 => None,
            90 => Some(image.rotate90()),
            180 => Some(image.rotate180()),
            270 => Some(image.rotate270()),
            other => return Err(invalid(format!("rotate {other}: use 90, 180 or 270"))),
        },
        Step::Flip(FlipAxis::Horizontal) => Some(image.fliph()),
        Step::Flip(FlipAxis::Vertical) => Some(image.flipv()),
        Step::Grayscale => Some(image.grayscale()),
        Step::Blur(sigma) => {
            if !sigma.is_finite() || sigma <= 0.0 {
                None
            } else {
                // Box-blur approximation of a Gaussian: cost independent of sigma.
                Some(image.fast_blur(sigma.min(100.0)))
            }
        }
        Step::Sharpen => {
            let kernel = [0.0, -1.0, 0.0, -1.0, 5.0, -1.0, 0.0, -1.0, 0.0];
            Some(image.filter3x3(&kernel))
        }
        Step::Brightness(v) => {
            let v = v.clamp(-100, 100);
            // Percent of full scale: 10 adds 10% of white to every channel.
            let delta = (v * 255 + v.signum() * 50) / 100;
            if delta == 0 {
                None
            } else {
                Some(image.brighten(delta))
            }
        }
        Step::Contrast(c) => {
            if !c.is_finite() || c == 0.0 {
                None
            } else {
                Some(image.adjust_contrast(c.clamp(-100.0, 100.0)))
            }
        }
        Step::Invert => {
            let mut out = image.clone();
            out.invert();
            Some(out)
        }
    })
}

/// Shrink-on-load for a JPEG whose first step is a downscale: libjpeg's scale
/// in eighths that keeps at least twice the resize's target size (the
/// resampler then does the rest at full quality), and that first step with
/// its target fixed from the full-size `w`x`h` (so the output size does not
/// depend on the rounding of the shrunk size). `None`: decode at full size.
pub(crate) fn shrink_on_load(steps: &[Step], w: u32, h: u32) -> Option<(u8, Step)> {
    let Some(&Step::Resize { width, height, fit }) = steps.first() else {
        return None;
    };
    let (tw, th, cover) = resize_target(w, h, width, height, fit).ok()??;
    let need = (f64::from(tw) / f64::from(w)).max(f64::from(th) / f64::from(h));
    let eighths = (1..8u8).find(|&n| f64::from(n) / 8.0 >= 2.0 * need)?;
    let exact = Step::Resize {
        width: Some(tw),
        height: Some(th),
        fit: if cover { Fit::Cover } else { Fit::Fill },
    };
    Some((eighths, exact))
}

/// Target size for a resize, plus whether the result is centre-cropped
/// (cover). `None` when the image already satisfies the box.
fn resize_target(
    w: u32,
    h: u32,
    width: Option<u32>,
    height: Option<u32>,
    fit: Fit,
) -> Result<Option<(u32, u32, bool)>, PipelineError> {
    if width == Some(0) || height == Some(0) {
        return Err(invalid("resize to a zero size".into()));
    }
    let scaled = |s: f64, v: u32| ((f64::from(v) * s).round() as u32).max(1);
    let target = match (width, height, fit) {
        (None, None, _) => return Ok(None),
        (Some(bw), Some(bh), Fit::Fill) => (bw, bh, false),
        (Some(bw), Some(bh), Fit::Cover) => (bw, bh, true),
        (bw, bh, Fit::Inside) => {
            let sx = bw.map_or(f64::INFINITY, |bw| f64::from(bw) / f64::from(w));
            let sy = bh.map_or(f64::INFINITY, |bh| f64::from(bh) / f64::from(h));
            let s = sx.min(sy);
            if s >= 1.0 {
                return Ok(None);
            }
            let tw = bw.map_or_else(|| scaled(s, w), |bw| scaled(s, w).min(bw));
            let th = bh.map_or_else(|| scaled(s, h), |bh| scaled(s, h).min(bh));
            (tw, th, false)
        }
        // One side given with cover or fill: scale to it, aspect kept.
        (Some(bw), None, _) => (bw, scaled(f64::from(bw) / f64::from(w), h), false),
        (None, Some(bh), _) => (scaled(f64::from(bh) / f64::from(h), w), bh, false),
    };
    if (target.0, target.1) == (w, h) {
        return Ok(None);
    }
    Ok(Some(target))
}

/// Lanczos3 resize to exactly `tw`x`th`; with `cover`, the source is first
/// centre-cropped to the target's aspect ratio. Alpha is premultiplied
/// during the filter so that transparent pixels do not bleed colour.
pub(crate) fn resize(
    image: &DynamicImage,
    tw: u32,
    th: u32,
    cover: bool,
) -> Result<DynamicImage, PipelineError> {
    let (w, h) = (image.width(), image.height());
    let (pixel_type, bytes) = match image {
        DynamicImage::ImageLuma8(b) => (PixelType::U8, b.as_raw().clone()),
        DynamicImage::ImageLumaA8(b) => (PixelType::U8x2, b.as_raw().clone()),
        DynamicImage::ImageRgb8(b) => (PixelType::U8x3, b.as_raw().clone()),
        DynamicImage::ImageRgba8(b) => (PixelType::U8x4, b.as_raw().clone()),
        other => (PixelType::U8x4, other.to_rgba8().into_raw()),
    };
    let fail = |e: String| PipelineError::InvalidOperation(format!("resize: {e}"));
    let src = FirImage::from_vec_u8(w, h, bytes, pixel_type).map_err(|e| fail(e.to_string()))?;
    let mut dst = FirImage::new(tw, th, pixel_type);
    let mut options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    if cover {
        options = options.fit_into_destination(Some((0.5, 0.5)));
    }
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| fail(e.to_string()))?;
    let raw = dst.into_vec();
    let out = match pixel_type {
        PixelType::U8 => GrayImage::from_raw(tw, th, raw).map(DynamicImage::ImageLuma8),
        PixelType::U8x2 => GrayAlphaImage::from_raw(tw, th, raw).map(DynamicImage::ImageLumaA8),
        PixelType::U8x3 => RgbImage::from_raw(tw, th, raw).map(DynamicImage::ImageRgb8),
        _ => RgbaImage::from_raw(tw, th, raw).map(DynamicImage::ImageRgba8),
    };
    out.ok_or_else(|| fail("buffer size mismatch".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_never_enlarges_and_keeps_aspect() {
        assert_eq!(
            resize_target(100, 50, Some(200), Some(200), Fit::Inside).unwrap(),
            None
        );
        assert_eq!(
            resize_target(1000, 500, Some(200), Some(200), Fit::Inside).unwrap(),
            Some((200, 100, false))
        );
        assert_eq!(
            resize_target(1000, 500, None, Some(100), Fit::Inside).unwrap(),
            Some((200, 100, false))
        );
    }

    #[test]
    fn shrink_on_load_keeps_twice_the_target() {
        let inside = |w, h| Step::Resize {
            width: Some(w),
            height: Some(h),
            fit: Fit::Inside,
        };
        // 4000x3000 into 500x500: 500x375 needs 1/8 of the source; 2/8 keeps twice it.
        let (eighths, step) = shrink_on_load(&[inside(500, 500)], 4000, 3000).unwrap();
        assert_eq!(eighths, 2);
        assert_eq!(
            step,
            Step::Resize {
                width: Some(500),
                height: Some(375),
                fit: Fit::Fill
            }
        );
        // Half size or more: nothing to gain.
        assert!(shrink_on_load(&[inside(2500, 2500)], 4000, 3000).is_none());
        // Not the first step, or no downscale: full decode.
        assert!(shrink_on_load(&[Step::Rotate(90), inside(100, 100)], 4000, 3000).is_none());
        assert!(shrink_on_load(&[inside(5000, 5000)], 4000, 3000).is_none());
        // Cover keeps its crop.
        let cover = Step::Resize {
            width: Some(100),
            height: Some(100),
            fit: Fit::Cover,
        };
        let (eighths, step) = shrink_on_load(std::slice::from_ref(&cover), 4000, 1000).unwrap();
        assert_eq!(eighths, 2);
        assert_eq!(step, cover);
    }

    #[test]
    fn cover_and_fill_hit_the_box_exactly() {
        assert_eq!(
            resize_target(1000, 500, Some(200), Some(200), Fit::Cover).unwrap(),
            Some((200, 200, true))
        );
        assert_eq!(
            resize_target(100, 50, Some(300), Some(300), Fit::Fill).unwrap(),
            Some((300, 300, false))
        );
        assert!(resize_target(10, 10, Some(0), None, Fit::Fill).is_err());
    }

    #[test]
    fn cover_resize_crops_the_centre() {
        // Left half red, right half blue, 200x100: cover to 50x50 keeps the
        // middle, so both colours remain, split down the middle.
        let img = RgbImage::from_fn(200, 100, |x, _| {
            if x < 100 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let out = resize(&DynamicImage::ImageRgb8(img), 50, 50, true)
            .unwrap()
            .to_rgb8();
        assert_eq!(out.dimensions(), (50, 50));
        assert!(out.get_pixel(2, 25).0[0] > 200);
        assert!(out.get_pixel(47, 25).0[2] > 200);
    }

    #[test]
    fn crop_clips_to_the_image_and_rejects_a_box_outside() {
        let img = DynamicImage::ImageRgb8(RgbImage::new(100, 80));
        let limits = Limits::default();
        let crop = |x, y, width, height| Step::Crop {
            x,
            y,
            width,
            height,
        };
        let (out, changed) = apply(img.clone(), &[crop(10, 10, 200, 200)], &limits).unwrap();
        assert!(changed);
        assert_eq!((out.width(), out.height()), (90, 70));
        assert!(apply(img.clone(), &[crop(100, 0, 5, 5)], &limits).is_err());
        let (_, changed) = apply(img, &[crop(0, 0, 100, 80)], &limits).unwrap();
        assert!(!changed);
    }

    #[test]
    fn rotate_swaps_sides_and_rejects_odd_angles() {
        let img = DynamicImage::ImageRgb8(RgbImage::new(30, 20));
        let limits = Limits::default();
        let (out, _) = apply(img.clone(), &[Step::Rotate(90)], &limits).unwrap();
        assert_eq!((out.width(), out.height()), (20, 30));
        assert!(apply(img, &[Step::Rotate(45)], &limits).is_err());
    }

    #[test]
    fn tonal_steps_move_pixels_the_right_way() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(4, 4, image::Rgb([100, 100, 100])));
        let limits = Limits::default();
        let px = |steps: &[Step]| {
            apply(img.clone(), steps, &limits)
                .unwrap()
                .0
                .to_rgb8()
                .get_pixel(1, 1)
                .0[0]
        };
        assert!(px(&[Step::Brightness(10)]) > 100);
        assert!(px(&[Step::Brightness(-10)]) < 100);
        assert_eq!(px(&[Step::Invert]), 155);
        assert!(px(&[Step::Contrast(50.0)]) < 100);
    }
}
