//! The AVIF decoder that scores AVIF output, checked against libavif's own
//! `avifdec` (Debian's `libavif-bin`, installed by `scripts/setup`) on the
//! pipeline's AVIF output: the same pixels within rounding (4:4:4) or
//! within libyuv's fixed-point rounding (4:2:0, see the photo test).
#![cfg(feature = "avif")]

mod common;

use std::process::Command;

use common::{fixture, quadrants};
use image::{DynamicImage, ImageFormat};
use pixpress_pipeline::{decode_avif, metric, process, Format, Options};

fn avifdec_available() {
    let ok = Command::new("avifdec")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "avifdec is missing: install it with `apt-get install libavif-bin` (or run scripts/setup)"
    );
}

/// Decodes with avifdec, bilinear chroma upsampling, 8 bits.
fn avifdec(bytes: &[u8], name: &str) -> DynamicImage {
    let dir = std::env::temp_dir().join(format!("pixpress-avifdec-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, output) = (dir.join("in.avif"), dir.join("out.png"));
    std::fs::write(&input, bytes).unwrap();
    let status = Command::new("avifdec")
        .args(["-u", "bilinear", "-d", "8"])
        .arg(&input)
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let img =
        image::load_from_memory_with_format(&std::fs::read(&output).unwrap(), ImageFormat::Png)
            .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    img
}

/// Mean and largest absolute difference over all channels.
fn difference(a: &DynamicImage, b: &DynamicImage) -> (f64, u8) {
    let (a, b) = (a.to_rgba8(), b.to_rgba8());
    assert_eq!(a.dimensions(), b.dimensions());
    let mut total = 0u64;
    let mut worst = 0u8;
    for (x, y) in a.as_raw().iter().zip(b.as_raw()) {
        let d = x.abs_diff(*y);
        total += u64::from(d);
        worst = worst.max(d);
    }
    (total as f64 / a.as_raw().len() as f64, worst)
}

fn avif(input: &[u8], quality: u8) -> Vec<u8> {
    let out = process(
        input,
        &Options {
            quality: Some(quality),
            ..Options::new(Format::Avif)
        },
    )
    .unwrap();
    assert_eq!(out.format, Format::Avif);
    out.bytes
}

/// A photo is encoded 4:2:0 (8-bit). avifdec converts such images with
/// libyuv's fixed-point filter (6-bit coefficients), which rounds a few
/// levels away from the exact bilinear result that `decode_avif` computes
/// in floating point; so the pixels agree closely rather than exactly, and
/// ours must score against the source within half a point of libavif's.
#[test]
fn a_photo_decodes_as_libavif_decodes_it() {
    avifdec_available();
    let source = fixture("ljt-testorig.jpg");
    let original = image::load_from_memory(&source).unwrap();
    for quality in [40, 80] {
        let bytes = avif(&source, quality);
        let ours = decode_avif(&bytes, 1 << 24).unwrap();
        let theirs = avifdec(&bytes, &format!("photo{quality}"));
        let (mean, worst) = difference(&ours, &theirs);
        eprintln!("quality {quality}: mean difference {mean:.3}, largest {worst}");
        assert!(
            mean < 0.5 && worst <= 5,
            "quality {quality}: mean {mean}, worst {worst}"
        );
        let score_ours = metric::ssimulacra2(&original, &ours).unwrap();
        let score_theirs = metric::ssimulacra2(&original, &theirs).unwrap();
        eprintln!("quality {quality}: score {score_ours:.2} (avifdec's {score_theirs:.2})");
        assert!(
            score_ours >= score_theirs - 0.5,
            "quality {quality}: ours scores {score_ours:.2}, avifdec's {score_theirs:.2}"
        );
    }
}

#[test]
fn transparency_decodes_as_libavif_decodes_it() {
    avifdec_available();
    let mut png = Vec::new();
    DynamicImage::ImageRgba8(quadrants(97, 61, true))
        .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
        .unwrap();
    let bytes = avif(&png, 85);
    let ours = decode_avif(&bytes, 1 << 24).unwrap();
    assert!(ours.color().has_alpha());
    let theirs = avifdec(&bytes, "alpha");
    let (mean, worst) = difference(&ours, &theirs);
    eprintln!("with alpha: mean difference {mean:.3}, largest {worst}");
    assert!(mean < 0.6 && worst <= 3, "mean {mean}, worst {worst}");
}
