//! Byte budgets and the never-larger rule.

mod common;

use common::*;
use image::{DynamicImage, ImageFormat};
use pixpress_pipeline::{process, Fit, Format, Options, PipelineError, Step};

#[test]
fn a_budget_is_met_by_lowering_quality() {
    let input = encode_with_image(
        &DynamicImage::ImageRgb8(photo_like(400, 300)),
        ImageFormat::Png,
    );
    for format in [Format::Webp, Format::Jpeg] {
        let free = process(&input, &Options::new(format)).unwrap();
        let max = free.size as u64 * 2 / 3;
        let out = process(
            &input,
            &Options {
                max_bytes: Some(max),
                ..Options::new(format)
            },
        )
        .unwrap();
        assert!(out.size as u64 <= max, "{format}: {} > {max}", out.size);
        assert_eq!(
            (out.width, out.height),
            (400, 300),
            "quality alone suffices"
        );
    }
}

#[test]
fn a_tight_budget_is_met_by_downscaling() {
    let input = encode_with_image(&DynamicImage::ImageRgb8(noise(256, 256)), ImageFormat::Png);
    for format in [Format::Webp, Format::Jpeg, Format::Png] {
        let max = 6_000;
        let out = process(
            &input,
            &Options {
                max_bytes: Some(max),
                ..Options::new(format)
            },
        )
        .unwrap_or_else(|e| panic!("{format}: {e}"));
        assert!(out.size as u64 <= max, "{format}: {}", out.size);
        assert!(out.width < 256 && out.height < 256, "{format}: downscaled");
        let ratio = f64::from(out.width) / f64::from(out.height);
        assert!((ratio - 1.0).abs() < 0.05, "aspect kept");
        assert!(image::load_from_memory(&out.bytes).is_ok());
    }
}

#[test]
fn an_impossible_budget_fails_with_the_user_text() {
    let input = encode_with_image(&DynamicImage::ImageRgb8(noise(64, 64)), ImageFormat::Png);
    let err = process(
        &input,
        &Options {
            max_bytes: Some(20),
            ..Options::new(Format::Webp)
        },
    )
    .unwrap_err();
    assert_eq!(err, PipelineError::BudgetNotMet { max_bytes: 20 });
    assert_eq!(err.to_string(), "Image could not be compressed below 20B.");
    assert_eq!(
        PipelineError::BudgetNotMet { max_bytes: 500_000 }.to_string(),
        "Image could not be compressed below 500kB."
    );
}

#[test]
fn never_larger_keeps_a_smaller_jpeg_input_without_its_metadata() {
    let small = jpeg_q(&photo_like(200, 150), 50);
    let mut input = with_exif_orientation(&small, 1);
    input = insert_segment(&input, 0xFE, b"camera comment");
    let out = process(
        &input,
        &Options {
            quality: Some(95),
            ..Options::new(Format::Jpeg)
        },
    )
    .unwrap();
    assert!(out.kept_original);
    assert!(out.size < input.len());
    assert_eq!(
        out.size,
        small.len(),
        "exactly the input minus EXIF and COM"
    );
    assert!(!out.bytes.windows(14).any(|w| w == b"camera comment"));
    // The pixels are the input's, bit for bit.
    let a = image::load_from_memory(&out.bytes).unwrap().to_rgb8();
    let b = image::load_from_memory(&small).unwrap().to_rgb8();
    assert_eq!(a, b);
}

#[test]
fn never_larger_keeps_an_already_optimal_png() {
    let source = encode_with_image(
        &DynamicImage::ImageRgba8(quadrants(64, 64, true)),
        ImageFormat::Png,
    );
    let optimal = process(&source, &Options::new(Format::Png)).unwrap().bytes;
    let tagged = png_insert_after_ihdr(&optimal, &png_chunk(b"tEXt", b"Comment\0hello there"));
    let out = process(&tagged, &Options::new(Format::Png)).unwrap();
    assert!(out.size <= optimal.len());
    assert!(!out.bytes.windows(4).any(|w| w == b"tEXt"));
}

#[test]
fn edits_or_a_rotation_never_return_the_input() {
    let small = jpeg_q(&photo_like(200, 150), 40);
    let hq = Options {
        quality: Some(95),
        ..Options::new(Format::Jpeg)
    };
    let edited = Options {
        steps: vec![Step::Grayscale],
        ..hq.clone()
    };
    assert!(!process(&small, &edited).unwrap().kept_original);
    let rotated = with_exif_orientation(&jpeg_q(&photo_like(200, 150), 40), 6);
    let out = process(&rotated, &hq).unwrap();
    assert!(!out.kept_original);
    assert_eq!((out.width, out.height), (150, 200));
    // A resize that changes nothing is no edit.
    let noop = Options {
        steps: vec![Step::Resize {
            width: Some(4000),
            height: None,
            fit: Fit::Inside,
        }],
        ..hq
    };
    assert!(process(&small, &noop).unwrap().kept_original);
}

#[test]
fn another_output_format_is_never_the_input() {
    let small = jpeg_q(&photo_like(64, 64), 20);
    let out = process(
        &small,
        &Options {
            quality: Some(100),
            ..Options::new(Format::Webp)
        },
    )
    .unwrap();
    assert!(!out.kept_original);
    assert_eq!(&out.bytes[..4], b"RIFF");
}

#[test]
fn resize_steps_from_upload_options_apply() {
    let input = encode_with_image(
        &DynamicImage::ImageRgb8(photo_like(400, 300)),
        ImageFormat::Png,
    );
    let cases = [
        (Fit::Inside, (200, 150)),
        (Fit::Cover, (200, 200)),
        (Fit::Fill, (200, 200)),
    ];
    for (fit, want) in cases {
        let opts = Options {
            steps: vec![Step::Resize {
                width: Some(200),
                height: Some(200),
                fit,
            }],
            ..Options::new(Format::Webp)
        };
        let out = process(&input, &opts).unwrap();
        assert_eq!((out.width, out.height), want, "{fit:?}");
        let decoded = image::load_from_memory(&out.bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), want);
    }
}

#[test]
fn a_past_deadline_times_out() {
    let input = encode_with_image(
        &DynamicImage::ImageRgb8(photo_like(64, 64)),
        ImageFormat::Png,
    );
    let opts = Options {
        deadline: Some(std::time::Instant::now()),
        ..Options::default()
    };
    assert_eq!(process(&input, &opts).unwrap_err(), PipelineError::Timeout);
}
