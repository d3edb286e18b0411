//! quality=auto and format=auto: the score function on known pairs, searched
//! outputs meeting their target per format, target_not_met, the byte budget
//! winning, the format choice and its candidate set, bad targets.

mod common;

use common::{encode_with_image, fixture, photo_like, quadrants};
use image::{DynamicImage, ImageFormat};
use pixpress_pipeline::{
    metric, process, AutoFormat, AutoQuality, AutoScoring, Format, Limits, Options, PipelineError,
};

/// A real photograph (227x149) as committed PNG-free JPEG input.
fn photo() -> Vec<u8> {
    fixture("ljt-testorig.jpg")
}

/// A flat graphic: four colours, no alpha, as PNG.
fn flat_graphic() -> Vec<u8> {
    let img = DynamicImage::ImageRgba8(quadrants(96, 64, false)).to_rgb8();
    encode_with_image(&DynamicImage::ImageRgb8(img), ImageFormat::Png)
}

fn auto(format: Format, target: f32) -> Options {
    Options {
        auto_quality: Some(AutoQuality::new(target).unwrap()),
        ..Options::new(format)
    }
}

/// The whole-image score of an output against the decoded input.
fn score_of(input: &[u8], output: &[u8]) -> f64 {
    metric::score_bytes(input, output, &Limits::default()).unwrap()
}

#[test]
fn identical_images_score_the_maximum() {
    let img = DynamicImage::ImageRgb8(photo_like(64, 48));
    let s = metric::ssimulacra2(&img, &img).unwrap();
    assert!((s - metric::MAX_SCORE).abs() < 1e-6, "{s}");
}

#[test]
fn a_heavily_blurred_copy_scores_low() {
    let img = image::load_from_memory(&photo()).unwrap();
    let blurred = img.blur(6.0);
    let s = metric::ssimulacra2(&img, &blurred).unwrap();
    assert!(s < 40.0, "blurred copy scored {s}");
    let slight = img.blur(0.4);
    let t = metric::ssimulacra2(&img, &slight).unwrap();
    assert!(t > s + 20.0, "slight blur {t} vs heavy {s}");
}

#[test]
fn different_sizes_are_an_error_not_a_panic() {
    let a = DynamicImage::ImageRgb8(photo_like(32, 32));
    let b = DynamicImage::ImageRgb8(photo_like(32, 31));
    assert!(metric::ssimulacra2(&a, &b).is_err());
}

#[test]
fn auto_quality_meets_the_target_in_webp_and_jpeg() {
    let input = photo();
    for format in [Format::Webp, Format::Jpeg] {
        for target in [60.0, 75.0] {
            let out = process(&input, &auto(format, target)).unwrap();
            assert_eq!(out.format, format);
            assert_eq!(out.target, Some(target));
            assert_eq!(out.target_met, Some(true), "{format:?} {target}");
            let score = out.score.unwrap();
            assert!(score >= f64::from(target), "{format:?}: {score} < {target}");
            // The reported score is the output's own.
            let real = score_of(&input, &out.bytes);
            assert!((real - score).abs() < 0.5, "{real} vs {score}");
            assert!((1..=5).contains(&out.trials), "{} trials", out.trials);
            if !out.kept_original {
                assert!(out.quality.is_some());
            }
        }
    }
}

#[test]
fn a_lower_target_gives_a_lower_quality_and_fewer_bytes() {
    let input = photo();
    let low = process(&input, &auto(Format::Webp, 50.0)).unwrap();
    let high = process(&input, &auto(Format::Webp, 85.0)).unwrap();
    assert!(low.quality.unwrap() < high.quality.unwrap());
    assert!(low.size < high.size);
}

#[test]
fn auto_quality_meets_the_target_in_png() {
    let input = encode_with_image(
        &DynamicImage::ImageRgba8(quadrants(80, 60, true)),
        ImageFormat::Png,
    );
    let out = process(&input, &auto(Format::Png, 85.0)).unwrap();
    assert_eq!(out.format, Format::Png);
    assert_eq!(out.target_met, Some(true));
    assert!(score_of(&input, &out.bytes) >= 85.0);
}

#[cfg(feature = "avif")]
#[test]
fn auto_quality_in_avif_meets_the_target_and_reports_its_score() {
    let input = photo();
    let out = process(&input, &auto(Format::Avif, 80.0)).unwrap();
    assert_eq!(out.format, Format::Avif);
    assert_eq!(&out.bytes[4..12], b"ftypavif");
    assert_eq!(out.target_met, Some(true));
    let score = out.score.unwrap();
    assert!(score >= 80.0, "{score}");
    // The same score when the output is decoded and scored on its own.
    let independent = metric::score_bytes(&input, &out.bytes, &Limits::default()).unwrap();
    assert!(
        (independent - score).abs() < 0.01,
        "{independent} against {score}"
    );
    // And a lower target is met with fewer bytes.
    let lower = process(&input, &auto(Format::Avif, 65.0)).unwrap();
    assert!(lower.size < out.size, "{} against {}", lower.size, out.size);
}

#[test]
fn an_unreachable_target_gives_the_highest_quality_and_says_so() {
    // Lossy WebP never reproduces a photo exactly.
    let out = process(&photo(), &auto(Format::Webp, 100.0)).unwrap();
    assert_eq!(out.target_met, Some(false));
    assert_eq!(out.quality, Some(100));
    assert!(out.score.unwrap() < 100.0);
}

#[test]
fn the_byte_budget_wins_over_the_target() {
    let input = photo();
    let free = process(&input, &auto(Format::Webp, 90.0)).unwrap();
    let max = (free.size / 3) as u64;
    let out = process(
        &input,
        &Options {
            max_bytes: Some(max),
            ..auto(Format::Webp, 90.0)
        },
    )
    .unwrap();
    assert!(out.size as u64 <= max, "{} > {max}", out.size);
    assert!(out.budget_limited);
    assert_eq!(out.target_met, Some(false));
    assert!(out.quality.unwrap() < free.quality.unwrap());
    // A budget the auto result already fits changes nothing.
    let roomy = process(
        &input,
        &Options {
            max_bytes: Some(free.size as u64 * 2),
            ..auto(Format::Webp, 90.0)
        },
    )
    .unwrap();
    assert!(!roomy.budget_limited);
    assert_eq!(roomy.bytes, free.bytes);
}

fn format_auto(candidates: Vec<Format>) -> Options {
    Options {
        auto_quality: Some(AutoQuality::new(80.0).unwrap()),
        auto_format: Some(AutoFormat {
            candidates,
            ..AutoFormat::default()
        }),
        ..Options::default()
    }
}

#[test]
fn format_auto_picks_png_for_a_flat_few_colour_graphic() {
    let input = flat_graphic();
    let out = process(&input, &format_auto(AutoFormat::default().candidates)).unwrap();
    assert_eq!(out.format, Format::Png);
    assert_eq!(out.mime, "image/png");
    assert_eq!(out.target_met, Some(true));
    assert!(out.score.unwrap() >= 99.0);
}

#[test]
fn format_auto_picks_a_lossy_format_for_a_photo() {
    let input = photo();
    let out = process(&input, &format_auto(AutoFormat::default().candidates)).unwrap();
    assert!(
        matches!(out.format, Format::Webp | Format::Jpeg | Format::Avif),
        "{:?}",
        out.format
    );
    assert_eq!(out.target_met, Some(true));
    assert!(score_of(&input, &out.bytes) >= 79.5);
    // Each lossy format alone, at the same target, is no smaller.
    for format in [Format::Webp, Format::Jpeg] {
        let single = process(&input, &format_auto(vec![format])).unwrap();
        assert!(out.size <= single.size, "{format:?}");
    }
}

#[test]
fn format_auto_obeys_the_candidate_set() {
    let input = flat_graphic();
    let out = process(&input, &format_auto(vec![Format::Webp, Format::Jpeg])).unwrap();
    assert_ne!(out.format, Format::Png);
    let out = process(&input, &format_auto(vec![Format::Jpeg])).unwrap();
    assert_eq!(out.format, Format::Jpeg);
    assert_eq!(&out.bytes[..2], &[0xFF, 0xD8]);
    let out = process(&photo(), &format_auto(vec![Format::Webp])).unwrap();
    assert_eq!(out.format, Format::Webp);
    assert_eq!(&out.bytes[8..12], b"WEBP");
}

#[test]
fn format_auto_without_a_usable_candidate_is_an_error() {
    let err = process(&photo(), &format_auto(Vec::new())).unwrap_err();
    assert_eq!(err.code(), "format_unavailable");
}

#[test]
fn bad_targets_are_refused() {
    for bad in [29.9, 100.5, -1.0, f32::NAN, f32::INFINITY] {
        let err = AutoQuality::new(bad).unwrap_err();
        assert_eq!(err.code(), "invalid_target", "{bad}");
        let options = Options {
            auto_quality: Some(AutoQuality { target: bad }),
            ..Options::default()
        };
        let err = process(&photo(), &options).unwrap_err();
        assert!(matches!(err, PipelineError::InvalidTarget(_)), "{err:?}");
        assert!(err.to_string().contains("between 30 and 100"));
    }
    assert!(AutoQuality::new(30.0).is_ok());
    assert!(AutoQuality::new(100.0).is_ok());
    assert_eq!(AutoQuality::default().target, 80.0);
}

#[test]
fn fixed_quality_jobs_report_their_quality_and_no_search() {
    let out = process(
        &photo(),
        &Options {
            quality: Some(70),
            ..Options::new(Format::Webp)
        },
    )
    .unwrap();
    assert_eq!(out.quality, Some(70));
    assert_eq!((out.score, out.target, out.target_met), (None, None, None));
    assert_eq!(out.trials, 0);
}

#[test]
fn a_prepared_reference_scores_as_the_one_off_metric() {
    let img = image::load_from_memory(&photo()).unwrap();
    let bytes = pixpress_pipeline::stages::encode(&img, Format::Webp, 40).unwrap();
    let decoded = pixpress_pipeline::stages::decode(&bytes, &Limits::default()).unwrap();
    let white = pixpress_pipeline::DEFAULT_BACKGROUND;
    let reference = metric::Reference::new(&img, white).unwrap();
    let once = metric::ssimulacra2(&img, &decoded).unwrap();
    let prepared = reference.score(&decoded, white).unwrap();
    assert!((once - prepared).abs() < 1e-9, "{once} vs {prepared}");
    assert!(prepared < 90.0, "q40 scored {prepared}");
    // Scoring again gives the same answer, and the reference itself 100.
    assert_eq!(reference.score(&decoded, white).unwrap(), prepared);
    assert!((reference.score(&img, white).unwrap() - metric::MAX_SCORE).abs() < 1e-6);
    let other = DynamicImage::ImageRgb8(photo_like(32, 32));
    assert!(reference.score(&other, white).is_err());
}

#[test]
fn large_images_are_searched_on_a_sample_of_about_a_megapixel() {
    use pixpress_pipeline::stages::{search_image, SearchImage};
    let small = DynamicImage::ImageRgb8(photo_like(800, 600));
    assert!(matches!(search_image(&small), SearchImage::Whole(_)));
    let large = DynamicImage::ImageRgb8(photo_like(2400, 1600));
    let SearchImage::Sample(sample) = search_image(&large) else {
        panic!("a 3.8 MP image is searched whole");
    };
    let pixels = u64::from(sample.width()) * u64::from(sample.height());
    assert!(pixels <= 1_000_000, "{pixels}");
    assert_eq!((sample.width() % 256, sample.height() % 256), (0, 0));
    // The search reports that it ran on the sample.
    let mut png = Vec::new();
    large
        .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
        .unwrap();
    let out = process(&png, &auto(Format::Webp, 70.0)).unwrap();
    assert!(out.score_sampled);
    assert_eq!((out.width, out.height), (2400, 1600));
    assert!((1..=5).contains(&out.trials), "{} trials", out.trials);
}

#[test]
fn exact_scoring_reports_the_whole_image_score_of_a_large_output() {
    let large = DynamicImage::ImageRgb8(photo_like(1600, 1000));
    let png = encode_with_image(&large, ImageFormat::Png);
    for format in [Format::Webp, Format::Jpeg] {
        let sampled = process(&png, &auto(format, 75.0)).unwrap();
        assert!(sampled.score_sampled);
        let exact = Options {
            auto_scoring: AutoScoring {
                exact_max_pixels: 1_600_000,
                ..AutoScoring::default()
            },
            ..auto(format, 75.0)
        };
        let out = process(&png, &exact).unwrap();
        assert!(!out.score_sampled, "{format:?}");
        let whole = score_of(&png, &out.bytes);
        let reported = out.score.unwrap();
        assert!(
            (reported - whole).abs() < 1e-9,
            "{format:?}: {reported} vs {whole}"
        );
        assert!(whole >= 75.0, "{format:?}: {whole} at q{:?}", out.quality);
        assert_eq!(out.target_met, Some(true));
        // One pixel over the bound and the score is the sample's again.
        let over = Options {
            auto_scoring: AutoScoring {
                exact_max_pixels: 1_599_999,
                ..AutoScoring::default()
            },
            ..auto(format, 75.0)
        };
        assert!(process(&png, &over).unwrap().score_sampled);
    }
}

#[test]
fn exact_scoring_steps_the_quality_up_when_the_whole_image_falls_short() {
    // A smooth picture with two of its twenty 256-pixel tiles full of fine
    // noise: a sample of two tiles, taken at the quartiles of detail, holds
    // only smooth ones and scores far above the whole image, so the exact
    // score finds the output short and encodes again at a higher quality.
    let img = image::RgbImage::from_fn(1280, 1024, |x, y| {
        let noisy = (256..512).contains(&x) && (256..512).contains(&y)
            || (768..1024).contains(&x) && (512..768).contains(&y);
        if noisy {
            let v = ((x * 7919 + y * 104_729) % 251) as u8;
            image::Rgb([v, v.wrapping_mul(3), v.wrapping_add(90)])
        } else {
            image::Rgb([(x / 5) as u8, (y / 4) as u8, ((x + y) / 9) as u8])
        }
    });
    let png = encode_with_image(&DynamicImage::ImageRgb8(img), ImageFormat::Png);
    let scoring = |exact_max_pixels| AutoScoring {
        sample_tiles: 2,
        exact_max_pixels,
    };
    let sampled = process(
        &png,
        &Options {
            auto_scoring: scoring(0),
            ..auto(Format::Webp, 80.0)
        },
    )
    .unwrap();
    let sampled_whole = score_of(&png, &sampled.bytes);
    assert!(
        sampled_whole < 80.0,
        "the sample's answer already reaches 80 on the whole ({sampled_whole})"
    );
    let exact = process(
        &png,
        &Options {
            auto_scoring: scoring(u64::MAX),
            ..auto(Format::Webp, 80.0)
        },
    )
    .unwrap();
    assert!(
        exact.quality > sampled.quality,
        "{:?} vs {:?}",
        exact.quality,
        sampled.quality
    );
    assert!(exact.trials > sampled.trials);
    let whole = score_of(&png, &exact.bytes);
    assert!((exact.score.unwrap() - whole).abs() < 1e-9);
    assert_eq!(exact.target_met, Some(whole >= 80.0));
    assert!(whole > sampled_whole, "{whole} vs {sampled_whole}");
}
