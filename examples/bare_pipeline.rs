//! The pipeline alone, in-process, on N threads: the ceiling the server's
//! throughput is compared with (`scripts/bench`). Usage:
//!
//!     cargo run --release --example bare_pipeline -- DIR... [--formats webp,jpg,png] [--workers 3] [--quality 80]
//!
//! Each format runs every image once; prints jobs/s and input MP/s.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use pixpress::pipeline::{self, Format, Options};

fn main() {
    let mut dirs = Vec::new();
    let mut formats = vec![Format::Jpeg, Format::Webp, Format::Png];
    let mut workers = 3usize;
    let mut quality = 80u8;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--formats" => {
                formats = args
                    .next()
                    .expect("--formats LIST")
                    .split(',')
                    .map(|f| f.parse().expect("a format"))
                    .collect()
            }
            "--workers" => workers = args.next().expect("--workers N").parse().expect("a number"),
            "--quality" => quality = args.next().expect("--quality Q").parse().expect("1-100"),
            _ => dirs.push(PathBuf::from(a)),
        }
    }
    let mut images: Vec<(String, Vec<u8>)> = Vec::new();
    for dir in &dirs {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        for p in entries {
            let bytes = std::fs::read(&p).expect("readable");
            if pipeline::InputFormat::sniff(&bytes).is_some() {
                images.push((p.display().to_string(), bytes));
            }
        }
    }
    let limits = pipeline::Limits::default();
    let mpix: f64 = images
        .iter()
        .filter_map(|(_, b)| pipeline::probe(b, &limits).ok())
        .map(|i| i.width as f64 * i.height as f64 / 1e6)
        .sum();
    println!(
        "{} images, {mpix:.1} MP, {workers} workers, quality {quality}",
        images.len()
    );
    println!("format  jobs  ok  seconds  jobs/s  MP/s  out/in");
    for format in formats {
        let next = AtomicUsize::new(0);
        let stats = Mutex::new((0usize, 0usize, 0usize));
        let started = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((_, bytes)) = images.get(i) else {
                        break;
                    };
                    let options = Options {
                        quality: Some(quality),
                        ..Options::new(format)
                    };
                    let out = pipeline::process(bytes, &options);
                    let mut st = stats.lock().unwrap();
                    if let Ok(o) = out {
                        st.0 += 1;
                        st.1 += bytes.len();
                        st.2 += o.size;
                    }
                });
            }
        });
        let secs = started.elapsed().as_secs_f64();
        let (ok, bytes_in, bytes_out) = *stats.lock().unwrap();
        println!(
            "{:<6} {:>5} {:>3} {:>8.2} {:>7.2} {:>5.2} {:>6.3}",
            format.name(),
            images.len(),
            ok,
            secs,
            images.len() as f64 / secs,
            mpix / secs,
            bytes_out as f64 / bytes_in.max(1) as f64
        );
    }
}
