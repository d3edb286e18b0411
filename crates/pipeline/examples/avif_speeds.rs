//! AVIF (libavif + libaom) over an image folder (the shared corpus): bytes,
//! SSIMULACRA2 and encode time per image at each libaom speed, chroma
//! layout and libavif quality asked for. The figures behind the AVIF
//! encoder's speed and quality map (crate README, "AVIF: encoder, speed
//! and quality map").
//!
//! ```text
//! SPEEDS=6,7 QUALITIES=50,60,70 cargo run --release -p pixpress-pipeline \
//!     --example avif_speeds -- ../shared/corpus > avif.tsv
//! ```
//!
//! Prints TSV: image, pixels, speed, chroma (`auto` is the encoder's own
//! choice, else 420 or 444), libavif quality, bytes, score, seconds.
//! `MAX_PX` skips larger images; `EVERY=n OFFSET=k` takes every n-th image
//! from the k-th (to split a run over processes); `ONLY=text` takes only
//! the paths that contain it. Skips (exit 0) when the folder is absent.

use std::path::PathBuf;
use std::time::Instant;

mod corpus;

use pixpress_pipeline::{metric, Limits};

fn env_list<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|v| v.parse().ok())
        .collect()
}

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or("../shared/corpus".into()));
    if !root.is_dir() {
        println!("{}: no such folder, skipping", root.display());
        return;
    }
    let every: usize = env_list::<usize>("EVERY", "1")[0].max(1);
    let offset: usize = env_list("OFFSET", "0")[0];
    let max_px: u64 = env_list("MAX_PX", "100000000")[0];
    let speeds: Vec<i32> = env_list("SPEEDS", "7");
    let chroma: Vec<String> = env_list("CHROMA", "auto");
    let qualities: Vec<i32> = env_list("QUALITIES", "30,40,50,60,70,80,90");
    let only = std::env::var("ONLY").unwrap_or_default();
    for (i, c) in corpus::images(&root).enumerate() {
        let px = u64::from(c.image.width()) * u64::from(c.image.height());
        if i % every != offset || px > max_px || !c.path.to_string_lossy().contains(&only) {
            continue;
        }
        let name = c.path.file_name().unwrap().to_string_lossy().into_owned();
        for &speed in &speeds {
            for layout in &chroma {
                let chroma = match layout.as_str() {
                    "420" => Some(3), // libavif's AVIF_PIXEL_FORMAT_YUV420
                    "444" => Some(1), // AVIF_PIXEL_FORMAT_YUV444
                    _ => None,
                };
                for &q in &qualities {
                    let started = Instant::now();
                    let bytes = pixpress_pipeline::avif_encode_with(&c.image, q, speed, chroma)
                        .expect("encode");
                    let secs = started.elapsed().as_secs_f64();
                    let decoded =
                        pixpress_pipeline::decode_avif(&bytes, Limits::default().max_pixels)
                            .expect("decode");
                    let score = metric::ssimulacra2(&c.image, &decoded).expect("score");
                    println!(
                        "{name}\t{px}\t{speed}\t{layout}\t{q}\t{}\t{score:.2}\t{secs:.3}",
                        bytes.len()
                    );
                }
            }
        }
    }
}
