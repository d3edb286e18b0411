//! Decoding: EXIF orientation, colour profiles, CMYK, truncation, bad files.

mod common;

use std::path::Path;

use common::*;
use image::{imageops, DynamicImage, Rgb, RgbImage, RgbaImage};
use pixpress_pipeline::{
    probe, process, read_header, Format, InputFormat, Limits, Options, PipelineError,
};

fn png_options() -> Options {
    Options::new(Format::Png)
}

/// What a camera stores for an upright picture `u` under each EXIF
/// orientation (per the EXIF specification's row/column description).
fn stored_for(u: &RgbImage, orientation: u16) -> RgbImage {
    match orientation {
        1 => u.clone(),
        2 => imageops::flip_horizontal(u),
        3 => imageops::rotate180(u),
        4 => imageops::flip_vertical(u),
        5 => imageops::flip_horizontal(&imageops::rotate90(u)), // transpose
        6 => imageops::rotate270(u),
        7 => imageops::flip_horizontal(&imageops::rotate270(u)), // transverse
        8 => imageops::rotate90(u),
        _ => unreachable!(),
    }
}

#[test]
fn all_eight_exif_orientations_give_the_same_upright_pixels() {
    let upright = quadrants(64, 48, false);
    let upright_rgb = DynamicImage::ImageRgba8(upright.clone()).to_rgb8();
    for o in 1..=8 {
        let input = with_exif_orientation(&jpeg_q(&stored_for(&upright_rgb, o), 95), o);
        let out = process(&input, &png_options()).unwrap();
        assert_eq!((out.width, out.height), (64, 48), "orientation {o}");
        assert!(!out.kept_original);
        let diff = mean_abs_diff(&decode_rgba(&out.bytes), &upright);
        assert!(diff < 4.0, "orientation {o}: mean diff {diff}");
        // The output carries no EXIF (the PNG encoder never writes it).
        assert!(!out.bytes.windows(4).any(|w| w == b"eXIf"));
    }
}

#[test]
fn corpus_exif_sets_are_upright_and_identical() {
    let Some(dir) = corpus("exif") else {
        eprintln!("corpus absent: skipped");
        return;
    };
    for set in ["Landscape", "Portrait"] {
        let small = |o: u32| {
            let input = std::fs::read(dir.join(format!("{set}_{o}.jpg"))).unwrap();
            let opts = Options {
                steps: vec![pixpress_pipeline::Step::Resize {
                    width: Some(300),
                    height: Some(300),
                    fit: pixpress_pipeline::Fit::Inside,
                }],
                ..png_options()
            };
            decode_rgba(&process(&input, &opts).unwrap().bytes)
        };
        let reference = small(1);
        for o in 2..=8 {
            let got = small(o);
            assert_eq!(got.dimensions(), reference.dimensions(), "{set}_{o}");
            let diff = mean_abs_diff(&got, &reference);
            assert!(diff < 6.0, "{set}_{o}: mean diff {diff}");
        }
    }
}

#[test]
fn jpeg_output_has_no_exif_gps_or_comments() {
    let mut input = jpeg_q(&photo_like(64, 64), 90);
    input = with_exif_orientation(&input, 1);
    input = insert_segment(&input, 0xFE, b"secret comment");
    input = insert_segment(&input, 0xE1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>");
    let out = process(&input, &Options::new(Format::Jpeg)).unwrap();
    let has = |needle: &[u8]| out.bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!has(b"Exif\0\0") && !has(b"secret comment") && !has(b"xmpmeta"));
}

#[test]
fn truncated_jpeg_is_an_error_not_grey_pixels() {
    let full = jpeg_q(&photo_like(128, 128), 90);
    assert!(process(&full, &png_options()).is_ok());
    for cut in [full.len() / 3, full.len() / 2, full.len() - 2] {
        let err = process(&full[..cut], &png_options()).unwrap_err();
        assert_eq!(err.code(), "invalid_image", "cut at {cut}: {err}");
        assert!(probe(&full[..cut], &Limits::default()).is_err());
    }
}

#[test]
fn read_header_gives_probes_size_without_walking_a_jpegs_scans() {
    let limits = Limits::default();
    let jpeg = jpeg_q(&photo_like(120, 80), 90);
    let probed = probe(&jpeg, &limits).unwrap();
    let header = read_header(&jpeg, &limits).unwrap();
    assert_eq!(
        (header.format, header.width, header.height),
        (probed.format, 120, 80)
    );
    // A truncated JPEG still has its frame header: probe refuses it, the
    // header read does not.
    let cut = &jpeg[..jpeg.len() / 2];
    assert!(probe(cut, &limits).is_err());
    assert_eq!(read_header(cut, &limits).unwrap().width, 120);
    // The limits hold for both.
    let small = Limits {
        max_pixels: 100,
        ..Limits::default()
    };
    assert_eq!(
        read_header(&jpeg, &small).unwrap_err().code(),
        "too_many_pixels"
    );
    assert!(read_header(b"not an image", &limits).is_err());
}

fn check_bad_dir(dir: &Path) -> usize {
    let mut n = 0;
    let mut accepted = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| process(&bytes, &png_options()));
        match result {
            Ok(Err(e)) => {
                let code = e.code();
                assert!(
                    matches!(
                        code,
                        "invalid_image" | "unsupported_format" | "too_many_pixels"
                    ),
                    "{}: unexpected error {e}",
                    path.display()
                );
            }
            Ok(Ok(out)) => {
                accepted.push(format!("{} ({}x{})", path.display(), out.width, out.height))
            }
            Err(_) => panic!("{}: panicked", path.display()),
        }
        // probe never accepts them either, except corruption past the header.
        let _ = probe(&bytes, &Limits::default());
        n += 1;
    }
    assert!(accepted.is_empty(), "accepted: {accepted:#?}");
    n
}

/// Strict decoding must not refuse real images: every good corpus file goes
/// through (shrunk, to keep the test quick).
#[test]
fn every_good_corpus_image_is_processed() {
    let mut n = 0;
    for folder in ["photo", "graphic", "webp", "gif", "exif"] {
        let Some(dir) = corpus(folder) else {
            eprintln!("corpus absent: skipped");
            return;
        };
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let opts = Options {
                steps: vec![pixpress_pipeline::Step::Resize {
                    width: Some(96),
                    height: Some(96),
                    fit: pixpress_pipeline::Fit::Inside,
                }],
                ..Options::new(Format::Webp)
            };
            let out = process(&bytes, &opts).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(out.width <= 96 && out.height <= 96 && out.width > 0 && out.height > 0);
            n += 1;
        }
    }
    assert!(n > 70, "{n} files");
}

#[test]
fn committed_bad_files_are_refused_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad");
    assert!(check_bad_dir(&dir) >= 10);
}

#[test]
fn every_corpus_bad_file_is_refused_cleanly() {
    let Some(dir) = corpus("bad") else {
        eprintln!("corpus absent: skipped");
        return;
    };
    assert!(check_bad_dir(&dir) > 30);
}

#[test]
fn oversized_headers_fail_on_the_limits() {
    let input = fixture("bad/crafted-gif-huge-screen-65535x65535.gif");
    let err = process(&input, &png_options()).unwrap_err();
    assert!(
        matches!(err, PipelineError::TooManyPixels { width: 65535, .. }),
        "{err}"
    );

    // Limits are options: a small image fails under a smaller limit.
    let png = encode_with_image(
        &DynamicImage::ImageRgb8(photo_like(100, 50)),
        image::ImageFormat::Png,
    );
    let limits = Limits {
        max_dimension: 64,
        ..Limits::default()
    };
    assert_eq!(probe(&png, &limits).unwrap_err().code(), "too_many_pixels");
    let limits = Limits {
        max_pixels: 4999,
        ..Limits::default()
    };
    let err = process(
        &png,
        &Options {
            limits,
            ..png_options()
        },
    )
    .unwrap_err();
    assert_eq!(err.code(), "too_many_pixels");
    let limits = Limits {
        max_input_bytes: 100,
        ..Limits::default()
    };
    assert_eq!(probe(&png, &limits).unwrap_err().code(), "too_large");
}

#[test]
fn probe_reads_format_and_size_from_the_header() {
    let png = encode_with_image(
        &DynamicImage::ImageRgb8(photo_like(100, 50)),
        image::ImageFormat::Png,
    );
    let info = probe(&png, &Limits::default()).unwrap();
    assert_eq!(
        (info.format, info.width, info.height),
        (InputFormat::Png, 100, 50)
    );
    let jpeg = jpeg_q(&photo_like(30, 20), 80);
    let info = probe(&jpeg, &Limits::default()).unwrap();
    assert_eq!(
        (info.format, info.width, info.height),
        (InputFormat::Jpeg, 30, 20)
    );
    assert_eq!(
        probe(b"GIF", &Limits::default()).unwrap_err().code(),
        "unsupported_format"
    );
}

/// A linear-light profile with sRGB primaries: value 128 means 50% light,
/// which sRGB writes as about 188. Unconverted, it would stay 128.
#[test]
fn icc_profiles_are_converted_to_srgb() {
    let [r, g, b] = SRGB_PRIMARIES;
    let linear = icc_profile(r, g, b, 1.0);
    let img = RgbImage::from_pixel(16, 16, Rgb([128, 128, 128]));
    let input = png_with_icc(&img, linear);
    let out = process(&input, &png_options()).unwrap();
    let px = decode_rgba(&out.bytes).get_pixel(8, 8).0;
    for c in &px[..3] {
        assert!(
            (183..=193).contains(c),
            "linear 128 should be sRGB ~188, got {px:?}"
        );
    }
    assert!(
        !out.bytes.windows(4).any(|w| w == b"iCCP"),
        "output is plain sRGB"
    );

    // Display P3: a P3 red is more saturated than any sRGB red, so it maps to
    // full sRGB red; a muted P3 colour gains red and loses green in sRGB.
    let [r, g, b] = P3_PRIMARIES;
    let p3 = icc_profile(r, g, b, 2.2);
    let img = RgbImage::from_fn(16, 16, |x, _| {
        if x < 8 {
            Rgb([255, 0, 0])
        } else {
            Rgb([180, 120, 100])
        }
    });
    let out = process(&png_with_icc(&img, p3), &png_options()).unwrap();
    let got = decode_rgba(&out.bytes);
    let red = got.get_pixel(2, 8).0;
    assert!(
        red[0] > 245 && red[1] < 30 && red[2] < 30,
        "P3 red -> {red:?}"
    );
    let muted = got.get_pixel(12, 8).0;
    assert!(
        muted[0] > 183 && muted[1] < 118,
        "P3 (180,120,100) -> {muted:?}"
    );
}

#[test]
fn a_real_embedded_profile_is_applied() {
    // libjpeg-turbo's test PNG with an ICC profile: our pixels must differ
    // from the raw (unmanaged) decode only as much as that profile implies,
    // and stay close to it (the profile is near sRGB).
    let input = fixture("vgl_5674_0098.png");
    let raw = image::load_from_memory(&input).unwrap().to_rgba8();
    let out = process(&input, &png_options()).unwrap();
    let got = decode_rgba(&out.bytes);
    assert_eq!(got.dimensions(), raw.dimensions());
    assert!(mean_abs_diff(&got, &raw) < 20.0);
}

/// mozjpeg writes CMYK as given, with an Adobe marker: Photoshop's inverted
/// convention is "stored = 255 - ink". Without the marker, ink is stored.
#[test]
fn cmyk_jpegs_decode_to_the_right_colours() {
    // Ink for: red (M+Y), green (C+Y), blue (C+M), white (none), black (K).
    let inks: [[u8; 4]; 5] = [
        [0, 255, 255, 0],
        [255, 0, 255, 0],
        [255, 255, 0, 0],
        [0, 0, 0, 0],
        [0, 0, 0, 255],
    ];
    let expected: [[u8; 3]; 5] = [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 255],
        [0, 0, 0],
    ];
    let (w, h) = (80usize, 16usize);
    let pixels = |invert: bool| -> Vec<u8> {
        let mut v = Vec::with_capacity(w * h * 4);
        for _y in 0..h {
            for x in 0..w {
                for c in inks[x / 16] {
                    v.push(if invert { 255 - c } else { c });
                }
            }
        }
        v
    };
    let encode = |px: Vec<u8>| -> Vec<u8> {
        let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_CMYK);
        c.set_size(w, h);
        c.set_quality(95.0);
        let mut s = c.start_compress(Vec::new()).unwrap();
        s.write_scanlines(&px).unwrap();
        s.finish().unwrap()
    };
    let adobe = encode(pixels(true));
    assert!(adobe.windows(5).any(|w| w == b"Adobe"));
    let plain = strip_app14(&encode(pixels(false)));
    assert!(!plain.windows(5).any(|w| w == b"Adobe"));
    for (name, input) in [("adobe-inverted", adobe), ("plain", plain)] {
        let out = process(&input, &png_options()).unwrap();
        let got = decode_rgba(&out.bytes);
        for (i, want) in expected.iter().enumerate() {
            let p = got.get_pixel(i as u32 * 16 + 8, 8).0;
            for c in 0..3 {
                assert!(
                    p[c].abs_diff(want[c]) < 24,
                    "{name} patch {i}: {p:?} vs {want:?}"
                );
            }
        }
    }
}

fn strip_app14(jpeg: &[u8]) -> Vec<u8> {
    let at = jpeg.windows(2).position(|w| w == [0xFF, 0xEE]).unwrap();
    let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
    let mut out = jpeg[..at].to_vec();
    out.extend_from_slice(&jpeg[at + 2 + len..]);
    out
}

#[test]
fn arithmetic_coded_jpeg_decodes_like_its_huffman_twin() {
    let info = probe(&fixture("ljt-testimgari.jpg"), &Limits::default()).unwrap();
    assert_eq!(
        (info.width, info.height),
        (227, 149),
        "probe reads arithmetic JPEGs too"
    );
    let ari = process(&fixture("ljt-testimgari.jpg"), &png_options()).unwrap();
    let huff = process(&fixture("ljt-testorig.jpg"), &png_options()).unwrap();
    assert_eq!((ari.width, ari.height), (227, 149));
    let diff = mean_abs_diff(&decode_rgba(&ari.bytes), &decode_rgba(&huff.bytes));
    assert!(diff < 3.0, "mean diff {diff}");
}

#[test]
fn progressive_and_baseline_reference_jpegs_decode() {
    let input = fixture("ljt-testorig.jpg");
    let out = process(&input, &png_options()).unwrap();
    assert_eq!((out.width, out.height), (227, 149));
    let reference: RgbaImage = image::load_from_memory(&input).unwrap().to_rgba8();
    assert!(mean_abs_diff(&decode_rgba(&out.bytes), &reference) < 4.0);
}
