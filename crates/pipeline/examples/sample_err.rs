//! How far sampled scores are from the whole image's score, on the corpus
//! images over 1 MP, WebP and JPEG at a few qualities. Two ways to sample:
//! the search's (its mosaic of tiles chosen by detail,
//! `stages::search_image`, encoded and scored on its own) and the check's
//! (the whole image encoded, and evenly spaced tiles cut from it and from
//! the original scored), the latter with several tile sizes.
//! `SEARCH_TILES=6,8,12` (an environment variable) adds evenly spaced
//! mosaics of other numbers of 256-pixel tiles, encoded alone.
//!
//! ```text
//! cargo run --release -p pixpress-pipeline --example sample_err -- ../shared/corpus
//! ```

use std::path::PathBuf;

mod corpus;

use image::DynamicImage;
use pixpress_pipeline::{metric, stages, Format, Limits};

/// (tile side, tiles) of the check's samples.
const CUTS: [(u32, u32); 4] = [(256, 12), (128, 48), (64, 192), (32, 768)];

fn decode(bytes: &[u8]) -> DynamicImage {
    stages::decode(bytes, &Limits::default()).unwrap()
}

fn summary(label: &str, errors: &mut [f64]) {
    errors.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    let Some(max) = errors.last() else { return };
    let within = errors.iter().filter(|e| e.abs() <= 1.0).count();
    let mean = errors.iter().sum::<f64>() / errors.len() as f64;
    println!(
        "{label}: {} pairs, median |diff| {:.2}, max {:+.2}, mean {mean:+.2}, within 1 point {within}",
        errors.len(),
        errors[errors.len() / 2].abs(),
        max,
    );
}

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or("../shared/corpus".into()));
    let mut search_err = Vec::new();
    let counts: Vec<u32> = std::env::var("SEARCH_TILES")
        .unwrap_or_default()
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let mut count_err = vec![Vec::new(); counts.len()];
    let mut cut_err = vec![Vec::new(); CUTS.len()];
    for corpus::CorpusImage {
        path, image: img, ..
    } in corpus::images(&root)
    {
        let stages::SearchImage::Sample(sample) = stages::search_image(&img) else {
            continue;
        };
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for (format, q) in [(Format::Webp, 70u8), (Format::Webp, 85), (Format::Jpeg, 75)] {
            let full = decode(&stages::encode(&img, format, q).unwrap());
            let whole = metric::ssimulacra2(&img, &full).unwrap();
            let part = decode(&stages::encode(&sample, format, q).unwrap());
            let searched = metric::ssimulacra2(&sample, &part).unwrap() - whole;
            search_err.push(searched);
            let mut line =
                format!("{name} {format:?} q{q}: whole {whole:.2}, search {searched:+.2}");
            for (k, &tiles) in counts.iter().enumerate() {
                let Some(mosaic) = stages::mosaic(&img, 256, tiles) else {
                    continue;
                };
                let part = decode(&stages::encode(&mosaic, format, q).unwrap());
                let d = metric::ssimulacra2(&mosaic, &part).unwrap() - whole;
                count_err[k].push(d);
                line += &format!(", even {tiles} tiles {d:+.2}");
            }
            for (k, &(tile, tiles)) in CUTS.iter().enumerate() {
                let (Some(a), Some(b)) = (
                    stages::mosaic(&img, tile, tiles),
                    stages::mosaic(&full, tile, tiles),
                ) else {
                    continue;
                };
                let d = metric::ssimulacra2(&a, &b).unwrap() - whole;
                cut_err[k].push(d);
                line += &format!(", cut {tile}x{tiles} {d:+.2}");
            }
            println!("{line}");
        }
    }
    summary("search (mosaic encoded alone)", &mut search_err);
    for (k, &tiles) in counts.iter().enumerate() {
        summary(
            &format!("evenly spaced, {tiles} tiles of 256"),
            &mut count_err[k],
        );
    }
    for (k, &(tile, tiles)) in CUTS.iter().enumerate() {
        summary(&format!("check, {tiles} tiles of {tile}"), &mut cut_err[k]);
    }
}
