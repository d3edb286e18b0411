//! Decode, resize, each encoder and quality=auto's stages on corpus images (../shared/corpus beside
//! the repository). Skips, with a note, when the corpus is absent.
//!
//!     cargo bench -p pixpress-pipeline --bench stages

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pixpress_pipeline::{metric, process, stages, AutoQuality, Options};
use pixpress_pipeline::{Format, Limits};

fn corpus(rel: &str) -> Option<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus")
        .join(rel);
    std::fs::read(path).ok()
}

const PHOTO: &str = "photo/plasma-EveningGlow-2560x1600.jpg";
const GRAPHIC: &str = "graphic/imagepng-lorem_ipsum_screenshot.png";
const PNG_PHOTO: &str = "graphic/imagepng-kodim23.png";
const WEBP: &str = "webp/libwebp-lossless_color_transform.webp";

fn bench(c: &mut Criterion) {
    let (Some(photo), Some(graphic), Some(png_photo), Some(webp)) = (
        corpus(PHOTO),
        corpus(GRAPHIC),
        corpus(PNG_PHOTO),
        corpus(WEBP),
    ) else {
        eprintln!("corpus absent: benches skipped");
        return;
    };
    let limits = Limits::default();

    let mut g = c.benchmark_group("decode");
    for (name, bytes) in [
        ("jpeg_4mp", &photo),
        ("png_rgb", &png_photo),
        ("png_rgba", &graphic),
        ("webp", &webp),
    ] {
        let img = stages::decode(bytes, &limits).unwrap();
        g.throughput(Throughput::Elements(u64::from(img.width() * img.height())));
        g.bench_function(name, |b| b.iter(|| stages::decode(bytes, &limits).unwrap()));
    }
    // Shrink-on-load: what a JPEG costs when a resize will follow.
    for eighths in [4u8, 2] {
        let img = stages::decode_scaled(&photo, &limits, eighths).unwrap();
        g.throughput(Throughput::Elements(u64::from(img.width() * img.height())));
        g.bench_function(format!("jpeg_4mp_at_{eighths}_eighths"), |b| {
            b.iter(|| stages::decode_scaled(&photo, &limits, eighths).unwrap())
        });
    }
    g.finish();

    // The header: admission's probe (for JPEG a walk over the whole file, so
    // a truncated one fails early) against the worker pool's read of the
    // size alone.
    let mut g = c.benchmark_group("header");
    g.bench_function("probe_jpeg_4mp", |b| {
        b.iter(|| pixpress_pipeline::probe(&photo, &limits).unwrap())
    });
    g.bench_function("read_header_jpeg_4mp", |b| {
        b.iter(|| pixpress_pipeline::read_header(&photo, &limits).unwrap())
    });
    g.finish();

    // A thumbnail from the 4 MP JPEG: full decode then resize, against
    // shrink-on-load to twice the target then resize.
    let mut g = c.benchmark_group("thumbnail");
    g.bench_function("jpeg_4mp_to_320_full_decode", |b| {
        b.iter(|| {
            let img = stages::decode(&photo, &limits).unwrap();
            stages::resize(&img, 320, 200).unwrap()
        })
    });
    g.bench_function("jpeg_4mp_to_320_shrink_on_load", |b| {
        b.iter(|| {
            let img = stages::decode_scaled(&photo, &limits, 2).unwrap();
            stages::resize(&img, 320, 200).unwrap()
        })
    });
    g.finish();

    let big = stages::decode(&photo, &limits).unwrap();
    let mut g = c.benchmark_group("resize");
    g.throughput(Throughput::Elements(u64::from(big.width() * big.height())));
    g.bench_function("lanczos3_4mp_to_1mp", |b| {
        b.iter(|| stages::resize(&big, big.width() / 2, big.height() / 2).unwrap())
    });
    g.finish();

    // Encoders on a 1 MP photo and the screenshot; AVIF on a smaller photo.
    let photo_1mp = stages::resize(&big, 1280, 800).unwrap();
    let screenshot = stages::decode(&graphic, &limits).unwrap();
    let photo_small = stages::resize(&big, 512, 320).unwrap();
    let mut g = c.benchmark_group("encode");
    for (label, img) in [("photo_1mp", &photo_1mp), ("screenshot", &screenshot)] {
        g.throughput(Throughput::Elements(u64::from(img.width() * img.height())));
        for format in [Format::Webp, Format::Jpeg, Format::Png] {
            g.bench_with_input(BenchmarkId::new(format.name(), label), img, |b, img| {
                b.iter(|| stages::encode(img, format, 80).unwrap())
            });
        }
        g.bench_with_input(BenchmarkId::new("jpg_trellis", label), img, |b, img| {
            b.iter(|| stages::encode_jpeg(img, 80, true).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("png_lossless", label), img, |b, img| {
            b.iter(|| stages::encode_png_lossless(img).unwrap())
        });
    }
    if Format::Avif.available() {
        for (label, img) in [("photo_0.16mp", &photo_small), ("photo_1mp", &photo_1mp)] {
            g.throughput(Throughput::Elements(u64::from(img.width() * img.height())));
            g.bench_with_input(BenchmarkId::new("avif", label), img, |b, img| {
                b.iter(|| stages::encode(img, Format::Avif, 60).unwrap())
            });
        }
    }
    g.finish();

    // quality=auto's stages: a trial's decode (the input path's WebP
    // decoder against libwebp's, which the search uses), a score one-off
    // against one with the reference prepared once (what each trial pays;
    // up to 1 MP whole, larger in strips), the sample, and a whole job
    // against a fixed-quality job.
    let mut g = c.benchmark_group("auto");
    let trial = stages::encode(&photo_1mp, Format::Webp, 80).unwrap();
    let decoded = stages::decode(&trial, &limits).unwrap();
    let white = pixpress_pipeline::DEFAULT_BACKGROUND;
    g.throughput(Throughput::Elements(u64::from(
        photo_1mp.width() * photo_1mp.height(),
    )));
    g.bench_function("decode_webp_trial_1mp_input_decoder", |b| {
        b.iter(|| stages::decode(&trial, &limits).unwrap())
    });
    g.bench_function("decode_webp_trial_1mp_libwebp", |b| {
        b.iter(|| stages::decode_output(Format::Webp, &trial).unwrap())
    });
    g.bench_function("score_1mp_one_off", |b| {
        b.iter(|| metric::ssimulacra2(&photo_1mp, &decoded).unwrap())
    });
    let reference = metric::Reference::new(&photo_1mp, white).unwrap();
    g.bench_function("score_1mp_prepared_reference", |b| {
        b.iter(|| reference.score(&decoded, white).unwrap())
    });
    g.bench_function("prepare_reference_1mp", |b| {
        b.iter(|| metric::Reference::new(&photo_1mp, white).unwrap())
    });
    g.throughput(Throughput::Elements(u64::from(big.width() * big.height())));
    let big_trial = stages::encode(&big, Format::Webp, 80).unwrap();
    let big_decoded = stages::decode_output(Format::Webp, &big_trial).unwrap();
    g.bench_function("score_4mp_one_off_in_strips", |b| {
        b.iter(|| metric::ssimulacra2(&big, &big_decoded).unwrap())
    });
    g.bench_function("sample_4mp", |b| {
        b.iter(|| stages::search_image(&big).width())
    });
    let fixed = Options {
        quality: Some(80),
        ..Options::new(Format::Webp)
    };
    let auto = Options {
        auto_quality: Some(AutoQuality::default()),
        ..Options::new(Format::Webp)
    };
    for (name, options) in [("webp_q80_job_4mp", &fixed), ("webp_auto_job_4mp", &auto)] {
        g.bench_function(name, |b| b.iter(|| process(&photo, options).unwrap()));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
