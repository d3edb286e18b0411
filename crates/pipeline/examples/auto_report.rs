//! quality=auto and format=auto measured over an image folder (the shared
//! corpus): bytes against fixed WebP qualities, scores, trial encodes, time.
//!
//! ```text
//! cargo run --release -p pixpress-pipeline --example auto_report -- ../shared/corpus [targets...]
//! ```
//!
//! For each image (photo/, graphic/, webp/ subfolders) it encodes WebP on a
//! quality grid and scores each encode on the whole image (the reference
//! figures), then runs `quality=auto` (WebP and JPEG), `format=auto` and a
//! fixed-quality job, and scores their outputs on the whole image too (so a
//! sampled search score can be checked). Prints per-image lines and the
//! summary tables in Markdown. Skips (exit 0) when the folder is absent.
//! `AUTO_SAMPLE_TILES` and `AUTO_EXACT_MAX_PIXELS` set `AutoScoring`;
//! `AUTO_REPORT_NO_GRID` skips the quality grid (and the figures that need
//! it); `AUTO_REPORT_MIN_PIXELS` skips smaller images.

use std::path::PathBuf;
use std::time::Instant;

mod corpus;

use pixpress_pipeline::{
    metric, process, stages, AutoFormat, AutoQuality, AutoScoring, Format, Limits, Options,
};

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

const GRID: [u8; 11] = [50, 60, 70, 75, 80, 85, 90, 93, 95, 97, 100];

struct Run {
    bytes: usize,
    quality: Option<u8>,
    format: Format,
    score: Option<f64>,
    /// The output scored on the whole image.
    true_score: f64,
    trials: u32,
    secs: f64,
    sampled: bool,
}

struct Image {
    name: String,
    pixels: u64,
    /// (quality, bytes, score) on the grid.
    grid: Vec<(u8, usize, f64)>,
    /// Score of a 2x-downscaled copy at WebP 80, against the 2x-downscaled
    /// reference (large images only).
    half_score_80: Option<f64>,
    /// Per target: webp auto, jpg auto, format auto, fixed webp 80 job.
    runs: Vec<[Run; 4]>,
}

fn true_score(reference: &image::DynamicImage, bytes: &[u8]) -> f64 {
    let decoded = if bytes.get(4..12) == Some(b"ftypavif") {
        pixpress_pipeline::decode_avif(bytes, Limits::default().max_pixels)
    } else {
        stages::decode(bytes, &Limits::default())
    };
    match decoded {
        Ok(d) if d.dimensions() == reference.dimensions() => {
            metric::ssimulacra2(reference, &d).unwrap_or(f64::NAN)
        }
        _ => f64::NAN,
    }
}

use image::GenericImageView;

fn run(input: &[u8], reference: &image::DynamicImage, options: &Options) -> Option<Run> {
    let started = Instant::now();
    let out = process(input, options).ok()?;
    let secs = started.elapsed().as_secs_f64();
    let true_score = true_score(reference, &out.bytes);
    Some(Run {
        bytes: out.size,
        quality: out.quality,
        format: out.format,
        score: out.score,
        true_score,
        trials: out.trials,
        secs,
        sampled: out.score_sampled,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(args.first().map_or("../shared/corpus", String::as_str));
    let targets: Vec<f32> = if args.len() > 1 {
        args[1..].iter().filter_map(|a| a.parse().ok()).collect()
    } else {
        vec![70.0, 80.0]
    };
    if !root.is_dir() {
        println!("{}: no such folder, skipping", root.display());
        return;
    }
    let mut images = Vec::new();
    for corpus::CorpusImage {
        path,
        bytes: input,
        image: reference,
    } in corpus::images(&root)
    {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let pixels = u64::from(reference.width()) * u64::from(reference.height());
        let mut grid = Vec::new();
        let min_pixels: u64 = env_number("AUTO_REPORT_MIN_PIXELS").unwrap_or(0);
        if pixels < min_pixels {
            continue;
        }
        let skip_grid = std::env::var_os("AUTO_REPORT_NO_GRID").is_some();
        for q in GRID.iter().copied().filter(|_| !skip_grid) {
            let Ok(bytes) = stages::encode(&reference, Format::Webp, q) else {
                continue;
            };
            grid.push((q, bytes.len(), true_score(&reference, &bytes)));
        }
        let half_score_80 = (pixels > 1_000_000 && !skip_grid).then(|| {
            let (w, h) = (reference.width() / 2, reference.height() / 2);
            let bytes = stages::encode(&reference, Format::Webp, 80).unwrap();
            let decoded = stages::decode(&bytes, &Limits::default()).unwrap();
            let a = stages::resize(&reference, w, h).unwrap();
            let b = stages::resize(&decoded, w, h).unwrap();
            metric::ssimulacra2(&a, &b).unwrap()
        });
        let mut runs = Vec::new();
        let defaults = AutoScoring::default();
        let scoring = AutoScoring {
            sample_tiles: env_number("AUTO_SAMPLE_TILES").unwrap_or(defaults.sample_tiles),
            exact_max_pixels: env_number("AUTO_EXACT_MAX_PIXELS")
                .unwrap_or(defaults.exact_max_pixels),
        };
        for &t in &targets {
            let auto = Some(AutoQuality::new(t).unwrap());
            let webp = Options {
                auto_quality: auto,
                auto_scoring: scoring,
                ..Options::new(Format::Webp)
            };
            let jpg = Options {
                auto_quality: auto,
                auto_scoring: scoring,
                ..Options::new(Format::Jpeg)
            };
            let fmt = Options {
                auto_quality: auto,
                auto_format: Some(AutoFormat::default()),
                auto_scoring: scoring,
                ..Options::new(Format::Webp)
            };
            let fixed = Options {
                quality: Some(80),
                ..Options::new(Format::Webp)
            };
            let r = [
                run(&input, &reference, &webp),
                run(&input, &reference, &jpg),
                run(&input, &reference, &fmt),
                run(&input, &reference, &fixed),
            ];
            if r.iter().any(Option::is_none) {
                continue;
            }
            let r = r.map(Option::unwrap);
            eprintln!(
                "{name} {pixels}px T{t}: webp-auto q{:?} {}B s{:.1}/{:.1} n{} {:.2}s | jpg-auto q{:?} {}B s{:.1} n{} | fmt-auto {} q{:?} {}B s{:.1}/{:.1} n{} {:.2}s | fixed80 {}B {:.2}s",
                r[0].quality, r[0].bytes, r[0].score.unwrap_or(f64::NAN), r[0].true_score, r[0].trials, r[0].secs,
                r[1].quality, r[1].bytes, r[1].true_score, r[1].trials,
                r[2].format.name(), r[2].quality, r[2].bytes, r[2].score.unwrap_or(f64::NAN), r[2].true_score, r[2].trials, r[2].secs,
                r[3].bytes, r[3].secs,
            );
            runs.push(r);
        }
        eprintln!(
            "{name} grid: {}",
            grid.iter()
                .map(|(q, b, s)| format!("q{q}:{b}B/{s:.1}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        if runs.len() == targets.len() {
            images.push(Image {
                name,
                pixels,
                grid,
                half_score_80,
                runs,
            });
        }
    }
    report(&images, &targets);
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if !n.is_multiple_of(2) {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn mb(b: usize) -> String {
    format!("{:.2} MB", b as f64 / 1e6)
}

fn report(images: &[Image], targets: &[f32]) {
    println!("\n{} images\n", images.len());
    for (ti, &t) in targets.iter().enumerate() {
        let t64 = f64::from(t);
        let reachable: Vec<&Image> = images
            .iter()
            .filter(|i| i.grid.iter().any(|g| g.2 >= t64))
            .collect();
        let unreachable: Vec<&Image> = images
            .iter()
            .filter(|i| !i.grid.iter().any(|g| g.2 >= t64))
            .collect();
        // Lowest grid quality that brings every reachable image to the target.
        let fixed_q = GRID.iter().copied().find(|&q| {
            reachable
                .iter()
                .all(|i| i.grid.iter().find(|g| g.0 == q).is_some_and(|g| g.2 >= t64))
        });
        let at = |i: &Image, q: u8| i.grid.iter().find(|g| g.0 == q).map_or(0, |g| g.1);
        let fixed_bytes: usize = fixed_q.map_or(0, |q| reachable.iter().map(|i| at(i, q)).sum());
        let own_grid: usize = reachable
            .iter()
            .map(|i| i.grid.iter().find(|g| g.2 >= t64).map_or(0, |g| g.1))
            .sum();
        let auto_bytes: usize = reachable.iter().map(|i| i.runs[ti][0].bytes).sum();
        let auto_below = reachable
            .iter()
            .filter(|i| i.runs[ti][0].true_score < t64)
            .count();
        let q80_bytes: usize = reachable.iter().map(|i| at(i, 80)).sum();
        let q80_below = reachable
            .iter()
            .filter(|i| i.grid.iter().find(|g| g.0 == 80).is_none_or(|g| g.2 < t64))
            .count();
        println!("### target {t}\n");
        println!("| over the {} images some WebP quality brings to {t} | total bytes | ratio to auto | below target (whole-image score) |", reachable.len());
        println!("|---|---:|---:|---:|");
        println!(
            "| `quality=auto` (webp) | {} | 1.00 | {} of {} |",
            mb(auto_bytes),
            auto_below,
            reachable.len()
        );
        if let Some(q) = fixed_q {
            println!(
                "| fixed q{q} (lowest single grid quality reaching {t} on all) | {} | auto = {:.2}x | 0 |",
                mb(fixed_bytes),
                auto_bytes as f64 / fixed_bytes as f64
            );
        }
        println!(
            "| each image's own lowest grid quality | {} | auto = {:.2}x | 0 |",
            mb(own_grid),
            auto_bytes as f64 / own_grid as f64
        );
        println!(
            "| fixed q80 | {} | auto = {:.2}x | {} of {} ({:.0}%) |",
            mb(q80_bytes),
            auto_bytes as f64 / q80_bytes as f64,
            q80_below,
            reachable.len(),
            100.0 * q80_below as f64 / reachable.len().max(1) as f64
        );
        println!();
        let trials: Vec<f64> = images
            .iter()
            .map(|i| f64::from(i.runs[ti][0].trials))
            .collect();
        let mean_trials = trials.iter().sum::<f64>() / trials.len().max(1) as f64;
        let ftrials: Vec<f64> = images
            .iter()
            .map(|i| f64::from(i.runs[ti][2].trials))
            .collect();
        let mean_ftrials = ftrials.iter().sum::<f64>() / ftrials.len().max(1) as f64;
        let ratio = |k: usize| -> Vec<f64> {
            images
                .iter()
                .map(|i| i.runs[ti][k].secs / i.runs[ti][3].secs)
                .collect()
        };
        let total = |k: usize| images.iter().map(|i| i.runs[ti][k].secs).sum::<f64>();
        println!(
            "trial encodes, all {} images: webp auto mean {:.2} (max {}), format=auto mean {:.2} (max {})\n",
            images.len(),
            mean_trials,
            trials.iter().copied().fold(0.0, f64::max),
            mean_ftrials,
            ftrials.iter().copied().fold(0.0, f64::max),
        );
        println!(
            "time against a fixed webp q80 job: webp auto median {:.2}x, total {:.1} s vs {:.1} s ({:.2}x); format=auto median {:.2}x, total {:.1} s ({:.2}x)\n",
            median(ratio(0)),
            total(0),
            total(3),
            total(0) / total(3),
            median(ratio(2)),
            total(2),
            total(2) / total(3)
        );
        println!("images no WebP quality brings to {t}:\n");
        println!("| image | best WebP score (q) | webp auto: q, bytes, score | format=auto: format, q, bytes, score |");
        println!("|---|---:|---|---|");
        for i in &unreachable {
            // Without the grid (AUTO_REPORT_NO_GRID) nothing is known here.
            let Some(best) = i.grid.iter().max_by(|a, b| a.2.total_cmp(&b.2)) else {
                continue;
            };
            let (a, f) = (&i.runs[ti][0], &i.runs[ti][2]);
            println!(
                "| {} | {:.1} (q{}) | q{:?}, {} B, {:.1} | {} q{:?}, {} B, {:.1} |",
                i.name,
                best.2,
                best.0,
                a.quality,
                a.bytes,
                a.true_score,
                f.format.name(),
                f.quality,
                f.bytes,
                f.true_score
            );
        }
        println!();
        // format=auto against the best single format (auto quality in it).
        let sum = |k: usize| images.iter().map(|i| i.runs[ti][k].bytes).sum::<usize>();
        let met = |k: usize| {
            images
                .iter()
                .filter(|i| i.runs[ti][k].true_score >= t64)
                .count()
        };
        println!(
            "| all {} images, target {t} | total bytes | meet target (whole-image score) |",
            images.len()
        );
        println!("|---|---:|---:|");
        println!("| webp, quality=auto | {} | {} |", mb(sum(0)), met(0));
        println!("| jpg, quality=auto | {} | {} |", mb(sum(1)), met(1));
        println!("| format=auto | {} | {} |", mb(sum(2)), met(2));
        let mut counts = std::collections::BTreeMap::new();
        for i in images {
            *counts.entry(i.runs[ti][2].format.name()).or_insert(0) += 1;
        }
        println!("\nformat=auto chose: {counts:?}\n");
        // Sampled scores against whole-image scores.
        let errs: Vec<f64> = images
            .iter()
            .flat_map(|i| [&i.runs[ti][0], &i.runs[ti][2]])
            .filter(|r| r.sampled)
            .filter_map(|r| r.score.map(|s| (s - r.true_score).abs()))
            .collect();
        if !errs.is_empty() {
            println!(
                "sampled search score against the whole-image score: {} outputs, median |diff| {:.2}, max {:.2}\n",
                errs.len(),
                median(errs.clone()),
                errs.iter().copied().fold(0.0, f64::max)
            );
        }
    }
    let halves: Vec<(String, f64, f64)> = images
        .iter()
        .filter_map(|i| {
            let full = i.grid.iter().find(|g| g.0 == 80)?.2;
            Some((i.name.clone(), full, i.half_score_80?))
        })
        .collect();
    if !halves.is_empty() {
        println!(
            "2x-downscaled scoring at WebP q80 (large images): whole-image vs downscaled score"
        );
        for (n, full, half) in &halves {
            println!("- {n}: {full:.1} vs {half:.1} ({:+.1})", half - full);
        }
        let _ = images.iter().map(|i| i.pixels).sum::<u64>();
    }
}
