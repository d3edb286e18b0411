//! A thin command line over the pipeline, for scripts and measurements:
//!
//!     pxcli process FILE [--format F] [--quality Q] [--target T] [--max-bytes N]
//!                        [--recipe "resize 800x600, grayscale"] [-o OUT]
//!     pxcli probe FILE
//!
//! Prints one line: `format width height bytes milliseconds [kept_original]`.
//!
//! `--target T` searches the quality for SSIMULACRA2 score T (`quality=auto`;
//! the line then ends with the quality, the score and the trials), and
//! `--exact-max-pixels N` scores a sampled search's output whole up to N
//! pixels (`AutoScoring`).
//!
//! `--encoder-only` skips the never-larger rule and the byte budget (decode
//! then one encode), so encoders can be compared with other encoders;
//! `--jpeg-trellis on|off` then overrides the JPEG encoder's trellis choice.

use std::process::ExitCode;
use std::time::Instant;

use pixpress_pipeline::{
    probe, process, recipe, stages, AutoQuality, Format, Limits, Options, PipelineError,
};

fn usage() -> ExitCode {
    eprintln!(
        "usage: pxcli process FILE [--format webp|jpg|png|avif] [--quality 1-100] \
         [--target 30-100] [--exact-max-pixels N] [--max-bytes N] [--recipe TEXT] [-o OUT]\n       \
         pxcli probe FILE"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(cmd), Some(file)) = (args.first(), args.get(1)) else {
        return usage();
    };
    let input = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{file}: {e}");
            return ExitCode::from(1);
        }
    };
    match cmd.as_str() {
        "probe" => match probe(&input, &Limits::default()) {
            Ok(info) => {
                println!("{:?} {} {}", info.format, info.width, info.height);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", e.code());
                ExitCode::from(1)
            }
        },
        "process" => run_process(&input, &args[2..]),
        _ => usage(),
    }
}

fn run_process(input: &[u8], rest: &[String]) -> ExitCode {
    let mut options = Options::default();
    let mut out = None;
    let mut encoder_only = false;
    let mut trellis = None;
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        if flag == "--encoder-only" {
            encoder_only = true;
            continue;
        }
        let Some(value) = it.next() else {
            return usage();
        };
        match flag.as_str() {
            "--jpeg-trellis" => trellis = Some(value == "on"),
            "--format" => match value.parse::<Format>() {
                Ok(f) => options.format = f,
                Err(e) => {
                    eprintln!("{e}");
                    return usage();
                }
            },
            "--quality" => options.quality = value.parse().ok(),
            "--target" => match value.parse().map(AutoQuality::new) {
                Ok(Ok(auto)) => options.auto_quality = Some(auto),
                _ => return usage(),
            },
            "--exact-max-pixels" => match value.parse() {
                Ok(n) => options.auto_scoring.exact_max_pixels = n,
                Err(_) => return usage(),
            },
            "--max-bytes" => options.max_bytes = value.parse().ok(),
            "--recipe" => {
                let r = recipe::parse(value);
                options.steps = r.steps;
                options.quality = r.quality.or(options.quality);
                options.format = r.format.unwrap_or(options.format);
                if !r.ignored.is_empty() {
                    eprintln!("ignored: {:?}", r.ignored);
                }
            }
            "-o" | "--output" => out = Some(value.clone()),
            _ => return usage(),
        }
    }
    let start = Instant::now();
    let result = if encoder_only {
        encode_only(input, &options, trellis)
    } else {
        process(input, &options)
    };
    match result {
        Ok(o) => {
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            let auto = match (options.auto_quality, o.score) {
                (Some(_), Some(score)) => format!(
                    " q{} score {score:.2}{} trials {}",
                    o.quality.unwrap_or(0),
                    if o.score_sampled { " (sampled)" } else { "" },
                    o.trials
                ),
                _ => String::new(),
            };
            println!(
                "{} {} {} {} {:.1}{}{auto}",
                o.format,
                o.width,
                o.height,
                o.size,
                ms,
                if o.kept_original {
                    " kept_original"
                } else {
                    ""
                }
            );
            if let Some(path) = out {
                if let Err(e) = std::fs::write(&path, &o.bytes) {
                    eprintln!("{path}: {e}");
                    return ExitCode::from(1);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", e.code());
            ExitCode::from(1)
        }
    }
}

/// Decode, then one encode: no never-larger rule, no budget, no steps.
fn encode_only(
    input: &[u8],
    options: &Options,
    trellis: Option<bool>,
) -> Result<pixpress_pipeline::Output, PipelineError> {
    let image = stages::decode(input, &options.limits)?;
    let quality = options.effective_quality();
    let bytes = match (options.format, trellis) {
        (Format::Jpeg, Some(t)) => stages::encode_jpeg(&image, quality, t)?,
        (format, _) => stages::encode(&image, format, quality)?,
    };
    Ok(pixpress_pipeline::Output {
        size: bytes.len(),
        bytes,
        format: options.format,
        mime: options.format.mime(),
        width: image.width(),
        height: image.height(),
        original_size: input.len(),
        kept_original: false,
        quality: Some(quality),
        score: None,
        target: None,
        target_met: None,
        trials: 0,
        budget_limited: false,
        score_sampled: false,
    })
}
