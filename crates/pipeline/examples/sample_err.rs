//! How far the search's sample score is from the whole image's score, on
//! the corpus images over 1 MP: WebP at a few qualities, the whole image and
//! the sample (`stages::search_image`) each encoded and scored.
//!
//! ```text
//! cargo run --release -p pixpress-pipeline --example sample_err -- ../shared/corpus
//! ```

use std::path::PathBuf;

mod corpus;

use pixpress_pipeline::{metric, stages, Format, Limits};

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or("../shared/corpus".into()));
    let mut errors = Vec::new();
    for corpus::CorpusImage {
        path, image: img, ..
    } in corpus::images(&root)
    {
        let stages::SearchImage::Sample(sample) = stages::search_image(&img) else {
            continue;
        };
        let score = |img: &image::DynamicImage, q: u8| {
            let bytes = stages::encode(img, Format::Webp, q).unwrap();
            let decoded = stages::decode(&bytes, &Limits::default()).unwrap();
            metric::ssimulacra2(img, &decoded).unwrap()
        };
        for q in [70u8, 85] {
            let (whole, part) = (score(&img, q), score(&sample, q));
            errors.push((part - whole).abs());
            println!(
                "{} q{q}: whole {whole:.2}, sample {part:.2} ({:+.2})",
                path.file_name().unwrap().to_string_lossy(),
                part - whole
            );
        }
    }
    errors.sort_by(f64::total_cmp);
    if let (Some(max), false) = (errors.last(), errors.is_empty()) {
        let within = errors.iter().filter(|e| **e <= 1.0).count();
        println!(
            "{} pairs: median |diff| {:.2}, max {max:.2}, within 1 point {within}",
            errors.len(),
            errors[errors.len() / 2],
        );
    }
}
