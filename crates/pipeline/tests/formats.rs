//! Every input format to every output format, alpha to JPEG, and the
//! special PNG layouts (16-bit, 1-bit gray, palette with transparency).

mod common;

use common::*;
use image::{DynamicImage, ImageFormat};
use pixpress_pipeline::{process, Format, InputFormat, Options};

const INPUTS: [ImageFormat; 6] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::WebP,
    ImageFormat::Gif,
    ImageFormat::Bmp,
    ImageFormat::Tiff,
];

fn outputs() -> Vec<Format> {
    Format::ALL.into_iter().filter(|f| f.available()).collect()
}

fn options(format: Format) -> Options {
    Options {
        quality: Some(90),
        ..Options::new(format)
    }
}

#[test]
fn every_input_format_becomes_every_output_format() {
    let source = DynamicImage::ImageRgba8(quadrants(64, 48, false));
    for input_format in INPUTS {
        let input = encode_with_image(&source, input_format);
        let sniffed = InputFormat::sniff(&input).expect("sniffable");
        for format in outputs() {
            let out = process(&input, &options(format))
                .unwrap_or_else(|e| panic!("{input_format:?} -> {format}: {e}"));
            assert_eq!((out.width, out.height), (64, 48), "{sniffed:?} -> {format}");
            assert_eq!(out.format, format);
            assert_eq!(out.mime, format.mime());
            assert_eq!(out.size, out.bytes.len());
            assert_eq!(out.original_size, input.len());
            if format == Format::Avif {
                assert_eq!(&out.bytes[4..12], b"ftypavif", "{sniffed:?} -> avif");
                continue;
            }
            let decoded = decode_rgba(&out.bytes);
            assert_eq!(
                image::guess_format(&out.bytes).unwrap(),
                match format {
                    Format::Jpeg => ImageFormat::Jpeg,
                    Format::Png => ImageFormat::Png,
                    _ => ImageFormat::WebP,
                }
            );
            let diff = mean_abs_diff(&decoded, &source.to_rgba8());
            // GIF input carries a 256-colour palette; lossy outputs blur edges.
            assert!(diff < 6.0, "{sniffed:?} -> {format}: mean diff {diff}");
        }
    }
}

#[test]
fn alpha_to_jpeg_is_flattened_on_white_or_the_background() {
    let mut img = quadrants(32, 32, false);
    for p in img.pixels_mut() {
        p.0[3] = 0;
    }
    let input = encode_with_image(&DynamicImage::ImageRgba8(img), ImageFormat::Png);
    let out = process(&input, &options(Format::Jpeg)).unwrap();
    let px = decode_rgba(&out.bytes);
    assert!(px
        .pixels()
        .all(|p| p.0[0] > 245 && p.0[1] > 245 && p.0[2] > 245));

    let on_black = Options {
        background: Some([0, 0, 0]),
        ..options(Format::Jpeg)
    };
    let px = decode_rgba(&process(&input, &on_black).unwrap().bytes);
    assert!(px
        .pixels()
        .all(|p| p.0[0] < 10 && p.0[1] < 10 && p.0[2] < 10));
}

#[test]
fn alpha_is_kept_in_webp_and_png() {
    let img = quadrants(64, 64, true);
    let input = encode_with_image(&DynamicImage::ImageRgba8(img.clone()), ImageFormat::Png);
    for format in [Format::Webp, Format::Png] {
        let out = decode_rgba(&process(&input, &options(format)).unwrap().bytes);
        let alpha_diff: f64 = out
            .pixels()
            .zip(img.pixels())
            .map(|(a, b)| f64::from(a.0[3].abs_diff(b.0[3])))
            .sum::<f64>()
            / f64::from(64 * 64);
        assert!(alpha_diff < 3.0, "{format}: alpha diff {alpha_diff}");
        // A palette has a few alpha levels; a transparent corner stays nearly so.
        assert!(out.get_pixel(0, 0).0[3] <= 16, "{format}: corner alpha");
        assert!(out.get_pixel(63, 63).0[3].abs_diff(img.get_pixel(63, 63).0[3]) <= 16);
    }
}

/// The PngSuite files: their pixels as the `image` crate decodes them are
/// the reference; our PNG output must match them closely.
#[test]
fn sixteen_bit_one_bit_and_palette_pngs_keep_their_colours() {
    for name in [
        "basn0g16.png", // 16-bit gray
        "basn2c16.png", // 16-bit RGB
        "basn6a16.png", // 16-bit RGBA
        "basn0g01.png", // 1-bit gray
        "basn3p04.png", // 4-bit palette
        "tbbn3p08.png", // palette with tRNS
    ] {
        let input = fixture(name);
        let reference = image::load_from_memory(&input).unwrap().to_rgba8();
        for format in [Format::Png, Format::Webp] {
            let out = process(&input, &options(format)).unwrap_or_else(|e| panic!("{name}: {e}"));
            let got = decode_rgba(&out.bytes);
            // Compare premultiplied by alpha: colour under transparency is free.
            let diff: f64 = got
                .pixels()
                .zip(reference.pixels())
                .map(|(a, b)| {
                    (0..4)
                        .map(|c| {
                            let pa =
                                u32::from(a.0[c]) * u32::from(if c < 3 { a.0[3] } else { 255 });
                            let pb =
                                u32::from(b.0[c]) * u32::from(if c < 3 { b.0[3] } else { 255 });
                            f64::from(pa.abs_diff(pb)) / 255.0
                        })
                        .sum::<f64>()
                })
                .sum::<f64>()
                / f64::from(got.width() * got.height() * 4);
            assert!(diff < 6.0, "{name} -> {format}: mean diff {diff}");
        }
    }
}

#[test]
fn animated_gif_gives_its_first_frame() {
    let input = fixture("no_time_for_that_tiny.gif");
    let first = image::load_from_memory(&input).unwrap().to_rgba8();
    let out = process(&input, &options(Format::Png)).unwrap();
    assert_eq!((out.width, out.height), first.dimensions());
    assert!(mean_abs_diff(&decode_rgba(&out.bytes), &first) < 4.0);
}

#[test]
fn grayscale_jpeg_stays_one_channel() {
    let gray = DynamicImage::ImageRgba8(quadrants(32, 32, false)).grayscale();
    let input = encode_with_image(&gray, ImageFormat::Png);
    let out = process(&input, &options(Format::Jpeg)).unwrap();
    let decoded = image::load_from_memory(&out.bytes).unwrap();
    assert_eq!(decoded.color(), image::ColorType::L8);
}

#[test]
fn the_format_is_sniffed_from_bytes_not_names() {
    // A PNG is a PNG whatever it is called; text is never an image.
    let png = encode_with_image(
        &DynamicImage::ImageRgba8(quadrants(8, 8, false)),
        ImageFormat::Png,
    );
    assert_eq!(InputFormat::sniff(&png), Some(InputFormat::Png));
    let err = process(
        b"this is not an image, even if named .jpg",
        &Options::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "unsupported_format");
}

#[test]
fn avif_needs_its_feature() {
    let input = encode_with_image(
        &DynamicImage::ImageRgba8(quadrants(16, 16, true)),
        ImageFormat::Png,
    );
    let result = process(&input, &Options::new(Format::Avif));
    if Format::Avif.available() {
        let out = result.unwrap();
        assert_eq!(out.mime, "image/avif");
    } else {
        assert_eq!(result.unwrap_err().code(), "format_unavailable");
    }
}
