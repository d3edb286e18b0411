//! The score against quality curve of one codec on every corpus image, as
//! the auto search sees it (the image, or its sample when over 1 MP): one
//! line per image, `quality:bytes:score` pairs for qualities 10-35 in steps
//! of 5 and 40-100 in steps of 1. The search's first trial and default slope
//! (`auto.rs`, `Codec::start` and `Codec::slope`) were fitted on this.
//!
//! ```text
//! cargo run --release -p pixpress-pipeline --example auto_curves -- ../shared/corpus webp > curves.txt
//! ```

use std::path::PathBuf;

mod corpus;

use pixpress_pipeline::{metric, stages, Format, Limits, DEFAULT_BACKGROUND};

fn main() {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(args.next().unwrap_or("../shared/corpus".into()));
    let format = match args.next().as_deref() {
        Some("jpg") => Format::Jpeg,
        _ => Format::Webp,
    };
    let qualities: Vec<u8> = (10..40).step_by(5).chain(40..=100).collect();
    for corpus::CorpusImage {
        path, image: img, ..
    } in corpus::images(&root)
    {
        let work = stages::search_image(&img);
        let reference = metric::Reference::new(&work, DEFAULT_BACKGROUND).unwrap();
        let points: Vec<String> = qualities
            .iter()
            .map(|&q| {
                let bytes = stages::encode(&work, format, q).unwrap();
                let decoded = stages::decode(&bytes, &Limits::default()).unwrap();
                let s = reference.score(&decoded, DEFAULT_BACKGROUND).unwrap();
                format!("{q}:{}:{s:.3}", bytes.len())
            })
            .collect();
        println!(
            "{} {} {}",
            path.file_name().unwrap().to_string_lossy(),
            u64::from(img.width()) * u64::from(img.height()),
            points.join(" ")
        );
    }
}
