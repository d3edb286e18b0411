//! `quality=auto` and `format=auto`: aim at a perceptual score instead of a
//! codec's quality number.
//!
//! For each candidate format, a bounded search finds the lowest quality
//! whose decoded output scores at least the target (SSIMULACRA2, see
//! `metric`) against the pixels just before encoding: one trial at a
//! predicted quality, then steps along the score's slope and linear
//! interpolation between the two trials that bracket the target. Large
//! images are searched on a sample (a mosaic of full-resolution tiles chosen
//! by detail), then encoded once at the quality found. `format=auto` keeps the smallest
//! candidate that meets the target.

use std::time::{Duration, Instant};

use image::{DynamicImage, GenericImage, GenericImageView};

use crate::encode::{self, EncodeSettings};
use crate::{budget, metric, strip, Format, InputFormat, Limits, Options, Output, PipelineError};

/// The score target when none is given (the server's `quality.auto_target`).
pub const DEFAULT_TARGET: f32 = 80.0;
/// Lowest accepted target.
pub const MIN_TARGET: f32 = 30.0;
/// Highest accepted target (an identical copy scores 100).
pub const MAX_TARGET: f32 = 100.0;
/// Above this many pixels AVIF is left out of `format=auto` by default.
pub const DEFAULT_AVIF_MAX_PIXELS: u64 = 1_000_000;

/// `quality=auto`: the lowest quality whose output scores at least `target`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoQuality {
    /// SSIMULACRA2 score to reach, 30..=100.
    pub target: f32,
}

impl Default for AutoQuality {
    fn default() -> Self {
        Self {
            target: DEFAULT_TARGET,
        }
    }
}

impl AutoQuality {
    /// A checked target: `InvalidTarget` outside 30..=100 or for NaN.
    pub fn new(target: f32) -> Result<Self, PipelineError> {
        let auto = Self { target };
        auto.validate()?;
        Ok(auto)
    }

    pub fn validate(&self) -> Result<(), PipelineError> {
        if (MIN_TARGET..=MAX_TARGET).contains(&self.target) {
            Ok(())
        } else {
            Err(PipelineError::InvalidTarget(self.target.to_string()))
        }
    }
}

/// `format=auto`: the smallest of `candidates` at the target score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoFormat {
    /// Formats that may be chosen (e.g. what an `Accept` header allows).
    /// Formats this build cannot encode are skipped; PNG is tried only for
    /// images a palette suits (few colours, or transparency).
    pub candidates: Vec<Format>,
    /// AVIF is tried only up to this many pixels (it is slow).
    pub avif_max_pixels: u64,
}

impl Default for AutoFormat {
    fn default() -> Self {
        Self {
            candidates: vec![Format::Webp, Format::Avif, Format::Jpeg, Format::Png],
            avif_max_pixels: DEFAULT_AVIF_MAX_PIXELS,
        }
    }
}

/// How `quality=auto` and `format=auto` score images over a megapixel.
///
/// Scoring a whole large image costs several fixed jobs' time (SSIMULACRA2
/// runs at about 0.1-0.2 s a megapixel, a fixed WebP job at about 0.05), so
/// the search runs on a sample: `sample_tiles` full-resolution tiles of 256
/// pixels. A sample's score is not the whole image's: more tiles bring it
/// closer and cost more (the pipeline README's "Scoring large images" has
/// the figures). Up to `exact_max_pixels`, the output found on the sample
/// is scored again on the whole image; that score is the one reported, and
/// when it falls short of the target the quality steps up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoScoring {
    /// Tiles asked for in the search's sample of a large image (at least
    /// 2; the mosaic is a full grid, so a 16:9 image asked for 12 gets 15).
    pub sample_tiles: u32,
    /// Images of at most this many pixels get their output scored whole
    /// after a sampled search; 0 = never.
    pub exact_max_pixels: u64,
}

/// Tiles asked for in a sample by default (0.8-1 MP once the grid is full).
pub const DEFAULT_SAMPLE_TILES: u32 = 12;

impl AutoScoring {
    /// Whether an output of `image` is scored on the whole image even after
    /// a sampled search (`exact_max_pixels`).
    fn scores_whole(&self, image: &DynamicImage) -> bool {
        u64::from(image.width()) * u64::from(image.height()) <= self.exact_max_pixels
    }
}

impl Default for AutoScoring {
    fn default() -> Self {
        Self {
            sample_tiles: DEFAULT_SAMPLE_TILES,
            exact_max_pixels: 0,
        }
    }
}

/// Whether AVIF output can be scored in this build: it can wherever AVIF
/// is built (dav1d decodes the output, `avif_decode`). Without it
/// `format=auto` leaves AVIF out and `quality=auto` with AVIF would use a
/// fixed quality per target, reported without a score.
pub const AVIF_SCORED: bool = cfg!(feature = "avif");

/// Decodes an output of `format` to score it.
pub(crate) fn decode_output(format: Format, bytes: &[u8]) -> Result<DynamicImage, PipelineError> {
    #[cfg(feature = "avif")]
    if format == Format::Avif {
        return crate::avif_decode::decode(bytes, Limits::default().max_pixels);
    }
    if format == Format::Webp {
        return crate::webp_decode::decode(bytes, Limits::default().max_pixels);
    }
    Ok(crate::decode::decode(bytes, &Limits::default())?.image)
}

/// Images above this many pixels are searched on a sample.
const SAMPLE_ABOVE: u64 = 1_000_000;
/// Points a search on a sample aims above the target. A sample's score
/// sits above the whole output's more often than below it, on the corpus
/// mostly by up to 2 points (more on a few large flat graphics); the
/// pipeline README's "Scoring large images" has the figures.
const SAMPLE_MARGIN: f64 = 2.0;
/// Side of one sample tile (a multiple of the 16-pixel macroblock).
const TILE: u32 = 256;
/// Quality steps up after an exact score that falls short, at most.
const EXACT_STEPS: u32 = 2;
/// Cap on trial encodes per codec (quality=auto), plus one at quality 100
/// when none of them reached the target.
const MAX_TRIALS: u32 = 4;
/// Per codec when several formats compete (format=auto).
const MAX_TRIALS_EACH: u32 = 3;
/// JPEG 4:2:0 is searched up to this quality; beyond it 4:4:4 gives more
/// score per byte.
const JPEG_420_MAX: u8 = 92;
/// A passing trial this close to the target ends the search.
const CLOSE: f64 = 3.0;
/// Steps aim this far above the target, so that the next trial is likely
/// to pass (and then to end the search) rather than fall just short.
const AIM: f64 = 1.0;
/// A bracket this narrow (in quality steps) ends the search.
const NARROW: u8 = 3;
/// The lowest quality the search goes to.
const Q_MIN: u8 = 10;
/// PNG exact-palette check: more distinct colours than this and no palette.
const PALETTE_COLOURS: usize = 256;
/// PNG is tried at all only for images with at most this many colours (or
/// with transparency).
const FEW_COLOURS: usize = 4096;

/// One encoder configuration the search can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    Webp,
    /// mozjpeg as `encode::jpeg` does it (4:2:0).
    Jpeg,
    /// mozjpeg with full-resolution chroma: reaches high targets on
    /// graphics with coloured edges, where 4:2:0 caps the score.
    Jpeg444,
    Png,
    Avif,
}

impl Codec {
    /// The codec a fixed output format is searched with (JPEG: 4:2:0).
    fn of(format: Format) -> Self {
        match format {
            Format::Webp => Self::Webp,
            Format::Jpeg => Self::Jpeg,
            Format::Png => Self::Png,
            Format::Avif => Self::Avif,
        }
    }

    fn format(self) -> Format {
        match self {
            Self::Webp => Format::Webp,
            Self::Jpeg | Self::Jpeg444 => Format::Jpeg,
            Self::Png => Format::Png,
            Self::Avif => Format::Avif,
        }
    }

    /// The highest quality searched (4:2:0 JPEG stops where 4:4:4 takes
    /// over).
    fn highest(self) -> u8 {
        if self == Self::Jpeg {
            JPEG_420_MAX
        } else {
            100
        }
    }

    /// Predicted quality for a target (the first trial): about the median
    /// photo's lowest passing quality (WebP: 84 for 80, 71 for 70).
    fn start(self, target: f64) -> f64 {
        match self {
            Self::Webp => 1.3 * target - 20.0,
            Self::Jpeg => 1.2 * target - 24.0,
            Self::Jpeg444 => 1.1 * target - 12.0,
            Self::Png => target,
            Self::Avif => 1.3 * target - 28.0,
        }
    }

    /// Score points per quality step near `quality` when only one trial
    /// is known: scores rise faster at low qualities than at high ones
    /// (WebP on the corpus: about 0.9 a step around 50, 0.7 around 85).
    fn slope(self, quality: u8) -> f64 {
        let base = match self {
            Self::Webp | Self::Jpeg | Self::Jpeg444 => 0.8,
            Self::Png | Self::Avif => 0.7,
        };
        (base + 0.005 * (70.0 - f64::from(quality))).max(0.3)
    }

    fn encode(
        self,
        image: &DynamicImage,
        quality: u8,
        background: [u8; 3],
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, PipelineError> {
        match self {
            Self::Jpeg444 => jpeg_444(image, quality, background),
            other => encode::encode(
                image,
                &EncodeSettings {
                    format: other.format(),
                    quality,
                    background,
                    deadline,
                },
            ),
        }
    }
}

/// One trial encode and its score.
#[derive(Debug, Clone)]
struct Trial {
    quality: u8,
    bytes: Vec<u8>,
    score: f64,
}

/// The result of one codec's search.
#[derive(Debug, Clone)]
struct Found {
    codec: Codec,
    quality: u8,
    bytes: Vec<u8>,
    score: f64,
    met: bool,
    trials: u32,
}

/// What the auto path chose.
#[derive(Debug, Clone)]
pub(crate) struct Chosen {
    pub bytes: Vec<u8>,
    pub codec: Codec,
    pub quality: u8,
    /// `None` when the output could not be scored (AVIF).
    pub score: Option<f64>,
    pub trials: u32,
    /// The search ran on a sample of the image, and the score is the
    /// sample's.
    pub sampled: bool,
}

impl Chosen {
    pub fn format(&self) -> Format {
        self.codec.format()
    }
}

fn check_deadline(deadline: Option<Instant>) -> Result<(), PipelineError> {
    match deadline {
        Some(d) if Instant::now() >= d => Err(PipelineError::Timeout),
        _ => Ok(()),
    }
}

/// The candidate formats for this image, in trial order.
fn candidates(image: &DynamicImage, format: Format, auto: Option<&AutoFormat>) -> Vec<Codec> {
    let Some(auto) = auto else {
        return vec![Codec::of(format)];
    };
    let pixels = u64::from(image.width()) * u64::from(image.height());
    let allowed = |f: Format| auto.candidates.contains(&f) && f.available();
    let mut out = Vec::new();
    if allowed(Format::Webp) {
        out.push(Codec::Webp);
    }
    if allowed(Format::Png) && palette_suits(image) {
        out.push(Codec::Png);
    }
    if allowed(Format::Avif) && AVIF_SCORED && pixels <= auto.avif_max_pixels {
        out.push(Codec::Avif);
    }
    if allowed(Format::Jpeg) {
        out.push(Codec::Jpeg);
    }
    out
}

/// Few colours or real transparency: the images a palette PNG may serve.
fn palette_suits(image: &DynamicImage) -> bool {
    encode::has_transparency(image) || encode::distinct_colours(image, FEW_COLOURS).is_some()
}

/// The search's sample of a large image: a mosaic of about `tiles`
/// full-resolution tiles that stand for the image's mix of flat and busy
/// regions (`stratified`), so that trial encodes and scores cost the same
/// whatever the image size. Tile corners sit on the 16-pixel grid, so codec
/// blocks line up with the image's own. `None` for images small enough to
/// search whole.
pub(crate) fn sample(image: &DynamicImage, tiles: u32) -> Option<DynamicImage> {
    let (w, h) = image.dimensions();
    if u64::from(w) * u64::from(h) <= SAMPLE_ABOVE {
        return None;
    }
    stratified(image, TILE, tiles.max(2))
}

/// The grid shape (columns, rows) of a mosaic of about `tiles` tiles of
/// `tile` pixels for an image of `w` x `h`.
fn grid_shape(w: u32, h: u32, tile: u32, tiles: u32) -> (u32, u32) {
    let aspect = f64::from(w) / f64::from(h);
    let nx = ((f64::from(tiles) * aspect).sqrt().round() as u32).clamp(1, w / tile);
    let ny = tiles.div_ceil(nx).clamp(1, h / tile);
    (nx, ny)
}

/// Detail of a tile: the mean absolute difference of luma to the right and
/// lower neighbour, on every fourth pixel of every fourth row.
fn detail(image: &DynamicImage, x0: u32, y0: u32, tile: u32) -> f64 {
    let luma = |x: u32, y: u32| {
        let p = image.get_pixel(x, y).0;
        i32::from(p[0]) + 2 * i32::from(p[1]) + i32::from(p[2])
    };
    let mut sum = 0u64;
    let mut n = 0u64;
    for y in (y0..y0 + tile - 1).step_by(4) {
        for x in (x0..x0 + tile - 1).step_by(4) {
            let c = luma(x, y);
            sum += u64::from((luma(x + 1, y) - c).unsigned_abs())
                + u64::from((luma(x, y + 1) - c).unsigned_abs());
            n += 1;
        }
    }
    sum as f64 / n.max(1) as f64
}

/// A mosaic like `mosaic`'s, but its tiles stand for the image's mix of
/// flat and busy regions: every tile of a grid over the image is ranked by
/// detail, tiles are taken at evenly spaced ranks, and placed in reading
/// order. Falls back to `mosaic` when the grid has too few tiles.
pub(crate) fn stratified(image: &DynamicImage, tile: u32, tiles: u32) -> Option<DynamicImage> {
    let (w, h) = image.dimensions();
    if w < 2 * tile || h < 2 * tile {
        return None;
    }
    let (nx, ny) = grid_shape(w, h, tile, tiles);
    let n = (nx * ny) as usize;
    let (cx, cy) = (w / tile, h / tile);
    if ((cx * cy) as usize) < 2 * n {
        return mosaic(image, tile, tiles);
    }
    let (ox, oy) = ((w - cx * tile) / 2 / 16 * 16, (h - cy * tile) / 2 / 16 * 16);
    let mut ranked: Vec<(f64, u32, u32)> = (0..cy)
        .flat_map(|j| (0..cx).map(move |i| (ox + i * tile, oy + j * tile)))
        .map(|(x, y)| (detail(image, x, y, tile), x, y))
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut chosen: Vec<(u32, u32)> = (0..n)
        .map(|k| {
            let r = &ranked[(2 * k + 1) * ranked.len() / (2 * n)];
            (r.1, r.2)
        })
        .collect();
    chosen.sort_by_key(|&(x, y)| (y, x));
    assemble(image, tile, nx, &chosen)
}

/// The tiles of `tile` pixels at `corners` (reading order), side by side in
/// rows of `nx`.
fn assemble(
    image: &DynamicImage,
    tile: u32,
    nx: u32,
    corners: &[(u32, u32)],
) -> Option<DynamicImage> {
    let ny = (corners.len() as u32).div_ceil(nx);
    let mut out = DynamicImage::new(nx * tile, ny * tile, image.color());
    for (k, &(x, y)) in corners.iter().enumerate() {
        let (i, j) = (k as u32 % nx, k as u32 / nx);
        out.copy_from(&*image.view(x, y, tile, tile), i * tile, j * tile)
            .ok()?;
    }
    Some(out)
}

/// `tiles` tiles of `tile` pixels square spread evenly over `image` (corners
/// on the 16-pixel grid), side by side in one image; `None` when the image
/// is less than two tiles wide or high. The same image size always gives
/// the same tile positions, so the mosaics of an image and of an encode of
/// it line up.
pub(crate) fn mosaic(image: &DynamicImage, tile: u32, tiles: u32) -> Option<DynamicImage> {
    let (w, h) = image.dimensions();
    if w < 2 * tile || h < 2 * tile {
        return None;
    }
    let (nx, ny) = grid_shape(w, h, tile, tiles);
    let at = |i: u32, n: u32, side: u32| -> u32 {
        if n == 1 {
            return (side - tile) / 2 / 16 * 16;
        }
        let x = u64::from(i) * u64::from(side - tile) / u64::from(n - 1);
        (x as u32) / 16 * 16
    };
    let corners: Vec<(u32, u32)> = (0..ny)
        .flat_map(|j| (0..nx).map(move |i| (at(i, nx, w), at(j, ny, h))))
        .collect();
    assemble(image, tile, nx, &corners)
}

/// Encodes, decodes and scores trials of one codec against a reference
/// prepared once for the whole search.
struct Scorer<'a> {
    image: &'a DynamicImage,
    reference: &'a metric::Reference,
    background: [u8; 3],
    deadline: Option<Instant>,
    trials: u32,
    last: Duration,
}

impl Scorer<'_> {
    fn trial(&mut self, codec: Codec, quality: u8) -> Result<Trial, PipelineError> {
        check_deadline(self.deadline)?;
        let started = Instant::now();
        let bytes = codec.encode(self.image, quality, self.background, self.deadline)?;
        let decoded = decode_output(codec.format(), &bytes)?;
        let score = self.reference.score(&decoded, self.background)?;
        self.trials += 1;
        self.last = started.elapsed();
        Ok(Trial {
            quality,
            bytes,
            score,
        })
    }

    /// Whether another trial fits before the deadline (with room for the
    /// final full-size encode).
    fn time_for_another(&self) -> bool {
        match self.deadline {
            Some(d) => d.saturating_duration_since(Instant::now()) > self.last * 3,
            None => true,
        }
    }
}

/// The next quality to try, or `None` when the search is done.
fn next_quality(trials: &[Trial], target: f64, codec: Codec, lo: u8, hi: u8) -> Option<u8> {
    let ok = trials
        .iter()
        .filter(|t| t.score >= target)
        .min_by_key(|t| t.quality);
    let fail = trials
        .iter()
        .filter(|t| t.score < target && ok.is_none_or(|o| t.quality < o.quality))
        .max_by_key(|t| t.quality);
    let next = match (ok, fail) {
        (Some(o), _) if o.score - target <= CLOSE => return None,
        (Some(o), Some(f)) => {
            if o.quality - f.quality <= NARROW {
                return None;
            }
            let t = (target - f.score) / (o.score - f.score).max(1e-6);
            let q = f64::from(f.quality) + t * f64::from(o.quality - f.quality);
            (q.ceil() as u8).clamp(f.quality + 1, o.quality - 1)
        }
        (Some(o), None) => {
            if o.quality <= lo {
                return None;
            }
            let slope = fitted_slope(trials).unwrap_or_else(|| codec.slope(o.quality));
            let q = f64::from(o.quality) - (o.score - target - AIM) / slope;
            (q.floor().max(0.0) as u8).clamp(lo, o.quality - 1)
        }
        (None, Some(f)) => {
            if f.quality >= hi {
                return None;
            }
            let slope = fitted_slope(trials).unwrap_or_else(|| codec.slope(f.quality));
            let q = f64::from(f.quality) + (target + AIM - f.score) / slope;
            (q.ceil().min(255.0) as u8).clamp(f.quality + 1, hi)
        }
        (None, None) => return None,
    };
    (!trials.iter().any(|t| t.quality == next)).then_some(next)
}

/// The score's slope between the two trials of lowest quality, if sane.
fn fitted_slope(trials: &[Trial]) -> Option<f64> {
    let mut sorted: Vec<&Trial> = trials.iter().collect();
    sorted.sort_by_key(|t| t.quality);
    let (a, b) = (sorted.first()?, sorted.get(1)?);
    let slope = (b.score - a.score) / f64::from(b.quality - a.quality);
    (slope > 0.05).then_some(slope.min(5.0))
}

/// Searches one codec. `beat`: the size to beat (another format's); a
/// failing trial already larger than it ends the search early.
fn search(
    scorer: &mut Scorer<'_>,
    codec: Codec,
    target: f64,
    start: Option<u8>,
    beat: Option<usize>,
    max_trials: u32,
) -> Result<Found, PipelineError> {
    let hi = codec.highest();
    let lo = Q_MIN;
    let first = start
        .unwrap_or_else(|| {
            codec
                .start(target)
                .round()
                .clamp(f64::from(lo), f64::from(hi)) as u8
        })
        .clamp(lo, hi);
    let before = scorer.trials;
    let mut trials = vec![scorer.trial(codec, first)?];
    while scorer.trials - before < max_trials && scorer.time_for_another() {
        let failing_and_big = trials
            .last()
            .is_some_and(|t| t.score < target && beat.is_some_and(|b| t.bytes.len() >= b));
        if failing_and_big {
            break;
        }
        let Some(q) = next_quality(&trials, target, codec, lo, hi) else {
            break;
        };
        trials.push(scorer.trial(codec, q)?);
    }
    // A single-codec search that ran out of trials without passing: the
    // answer is then the highest quality, so make sure it was tried
    // (4:2:0 JPEG goes on to 4:4:4 instead).
    let top = trials.iter().map(|t| t.quality).max().unwrap_or(hi);
    let passed = trials.iter().any(|t| t.score >= target);
    if max_trials == MAX_TRIALS
        && codec != Codec::Jpeg
        && !passed
        && top < hi
        && scorer.time_for_another()
    {
        trials.push(scorer.trial(codec, hi)?);
    }
    let spent = scorer.trials - before;
    let best = match trials
        .iter()
        .filter(|t| t.score >= target)
        .min_by_key(|t| t.quality)
    {
        Some(ok) => (ok.clone(), true),
        None => {
            let top = trials.iter().max_by_key(|t| t.quality).cloned();
            (top.expect("at least one trial"), false)
        }
    };
    let (t, met) = best;
    Ok(Found {
        codec,
        quality: t.quality,
        bytes: t.bytes,
        score: t.score,
        met,
        trials: spent,
    })
}

/// A fixed AVIF quality per target, for builds that cannot score AVIF.
fn avif_quality(target: f64) -> u8 {
    Codec::Avif.start(target).round().clamp(1.0, 100.0) as u8
}

/// Runs the search over the candidates and encodes the winner at full size.
pub(crate) fn choose(
    image: &DynamicImage,
    format: Format,
    auto_format: Option<&AutoFormat>,
    target: f32,
    scoring: &AutoScoring,
    background: [u8; 3],
    deadline: Option<Instant>,
) -> Result<Chosen, PipelineError> {
    let target = f64::from(target);
    let codecs = candidates(image, format, auto_format);
    if codecs.is_empty() {
        return Err(PipelineError::FormatUnavailable(
            "auto (no candidate format)",
        ));
    }
    if !AVIF_SCORED && codecs == [Codec::Avif] {
        // Not scorable here: one encode at the quality that usually reaches
        // the target.
        let q = avif_quality(target);
        let bytes = Codec::Avif.encode(image, q, background, deadline)?;
        return Ok(Chosen {
            bytes,
            codec: Codec::Avif,
            quality: q,
            score: None,
            trials: 1,
            sampled: false,
        });
    }
    let sampled = sample(image, scoring.sample_tiles);
    let work = sampled.as_ref().unwrap_or(image);
    let asked = target;
    // A sample's score can sit above the whole image's; aim above the
    // target so that the whole output still reaches it.
    let target = if sampled.is_some() {
        (target + SAMPLE_MARGIN).min(metric::MAX_SCORE)
    } else {
        target
    };
    let reference = metric::Reference::new(work, background)?;
    let mut scorer = Scorer {
        image: work,
        reference: &reference,
        background,
        deadline,
        trials: 0,
        last: Duration::ZERO,
    };
    let max_trials = if codecs.len() > 1 {
        MAX_TRIALS_EACH
    } else {
        MAX_TRIALS
    };
    let mut best: Option<Found> = None;
    let better = |a: &Found, b: &Option<Found>| match b {
        None => true,
        Some(b) => match (a.met, b.met) {
            (true, false) => true,
            (false, true) => false,
            (true, true) => a.bytes.len() < b.bytes.len(),
            (false, false) => a.score > b.score,
        },
    };
    for codec in codecs {
        if codec == Codec::Avif && !AVIF_SCORED {
            continue;
        }
        if best.is_some() && !scorer.time_for_another() {
            break;
        }
        let beat = best.as_ref().filter(|b| b.met).map(|b| b.bytes.len());
        // PNG with few colours: an exact palette first.
        let start = (codec == Codec::Png
            && encode::distinct_colours(work, PALETTE_COLOURS).is_some())
        .then_some(100);
        let mut found = search(&mut scorer, codec, target, start, beat, max_trials)?;
        if codec == Codec::Jpeg
            && !found.met
            && work.color().has_color()
            && scorer.time_for_another()
        {
            // 4:2:0 caps this image below the target: full-resolution chroma.
            let start = found.quality.max(85);
            let full = search(
                &mut scorer,
                Codec::Jpeg444,
                target,
                Some(start),
                beat,
                max_trials,
            )?;
            if full.met || full.score > found.score {
                found = Found {
                    trials: found.trials + full.trials,
                    ..full
                };
            }
        }
        if better(&found, &best) {
            best = Some(found);
        }
    }
    let mut best = best.expect("one candidate searched");
    if sampled.is_some() {
        // The search ran on the sample: encode the whole image once.
        best.bytes = best
            .codec
            .encode(image, best.quality, background, deadline)?;
        if scoring.scores_whole(image) {
            return exact(image, best, asked, scorer.trials, background, deadline);
        }
    }
    Ok(Chosen {
        bytes: best.bytes,
        codec: best.codec,
        quality: best.quality,
        score: Some(best.score),
        trials: scorer.trials,
        sampled: sampled.is_some(),
    })
}

/// Scores the full-size output of a sampled search (`found`, its bytes
/// encoded from the whole image) on the whole image and reports that
/// score; when it falls short of `target`, steps the quality up along the
/// codec's slope (at most `EXACT_STEPS` more full-size encodes, each
/// counted as a trial) and keeps the first that passes, else the highest
/// tried.
fn exact(
    image: &DynamicImage,
    found: Found,
    target: f64,
    mut trials: u32,
    background: [u8; 3],
    deadline: Option<Instant>,
) -> Result<Chosen, PipelineError> {
    let codec = found.codec;
    let hi = codec.highest();
    let reference = metric::prepare(image, background);
    let score_of = |bytes: &[u8]| -> Result<f64, PipelineError> {
        check_deadline(deadline)?;
        let decoded = decode_output(codec.format(), bytes)?;
        metric::score_rgb(&reference, &metric::prepare(&decoded, background))
    };
    let mut quality = found.quality;
    let mut bytes = found.bytes;
    let mut score = score_of(&bytes)?;
    for _ in 0..EXACT_STEPS {
        if score >= target || quality >= hi {
            break;
        }
        let step = ((target + AIM - score) / codec.slope(quality))
            .ceil()
            .max(1.0);
        let next = (f64::from(quality) + step).min(f64::from(hi)) as u8;
        check_deadline(deadline)?;
        bytes = codec.encode(image, next, background, deadline)?;
        trials += 1;
        quality = next;
        score = score_of(&bytes)?;
    }
    Ok(Chosen {
        bytes,
        codec,
        quality,
        score: Some(score),
        trials,
        sampled: false,
    })
}

/// Scores `bytes` (an encode of `image`, same size) the way the search
/// reports: on the sample for large images (whole up to the exact bound).
/// Returns the score and whether it was sampled; `None` for AVIF where it
/// cannot be scored.
pub(crate) fn score_like_search(
    image: &DynamicImage,
    format: Format,
    quality: u8,
    bytes: &[u8],
    scoring: &AutoScoring,
    background: [u8; 3],
    deadline: Option<Instant>,
) -> Result<Option<(f64, bool)>, PipelineError> {
    if format == Format::Avif && !AVIF_SCORED {
        return Ok(None);
    }
    let sampled = (!scoring.scores_whole(image))
        .then(|| sample(image, scoring.sample_tiles))
        .flatten();
    if let Some(s) = sampled {
        let codec = Codec::of(format);
        let reference = metric::Reference::new(&s, background)?;
        let mut scorer = Scorer {
            image: &s,
            reference: &reference,
            background,
            deadline,
            trials: 0,
            last: Duration::ZERO,
        };
        return Ok(Some((scorer.trial(codec, quality)?.score, true)));
    }
    let decoded = decode_output(format, bytes)?;
    let score = metric::score_rgb(
        &metric::prepare(image, background),
        &metric::prepare(&decoded, background),
    )?;
    Ok(Some((score, false)))
}

/// The auto path of `process`, after decoding and the steps: search, then
/// the never-larger rule (a stripped same-format original that is smaller
/// wins, score 100), then the byte budget (which wins over the target).
pub(crate) fn finish(
    input: &[u8],
    input_format: InputFormat,
    upright: bool,
    image: DynamicImage,
    changed: bool,
    options: &Options,
) -> Result<Output, PipelineError> {
    let target = options.auto_quality.map_or(DEFAULT_TARGET, |a| a.target);
    let background = options.background.unwrap_or(crate::DEFAULT_BACKGROUND);
    let deadline = options.deadline;
    let chosen = choose(
        &image,
        options.format,
        options.auto_format.as_ref(),
        target,
        &options.auto_scoring,
        background,
        deadline,
    )?;
    let (w, h) = (image.width(), image.height());
    let fits = |len: usize| options.max_bytes.is_none_or(|m| len as u64 <= m);
    let base = |bytes: Vec<u8>, format: Format| Output {
        size: bytes.len(),
        bytes,
        format,
        mime: format.mime(),
        width: w,
        height: h,
        original_size: input.len(),
        kept_original: false,
        quality: Some(chosen.quality),
        score: chosen.score,
        target: Some(target),
        target_met: chosen.score.map(|s| s >= f64::from(target)),
        trials: chosen.trials,
        budget_limited: false,
        score_sampled: chosen.sampled,
    };

    let allowed = |f: Format| match &options.auto_format {
        Some(a) => a.candidates.contains(&f),
        None => f == options.format,
    };
    let original_format = input_format.as_output().filter(|&f| allowed(f));
    if let (false, true, Some(format)) = (changed, upright, original_format) {
        let original = strip::strip(input, input_format).ok().flatten();
        if let Some(original) = original.filter(|o| fits(o.len()) && o.len() <= chosen.bytes.len())
        {
            return Ok(Output {
                kept_original: true,
                quality: None,
                score: Some(metric::MAX_SCORE),
                target_met: Some(true),
                score_sampled: false,
                ..base(original, format)
            });
        }
    }
    if fits(chosen.bytes.len()) {
        return Ok(base(chosen.bytes.clone(), chosen.format()));
    }

    // The budget wins: search down from the quality found, then downscale.
    let max_bytes = options.max_bytes.unwrap_or(u64::MAX);
    let format = chosen.format();
    let settings = EncodeSettings {
        format,
        quality: chosen.quality,
        background,
        deadline,
    };
    let fitted = budget::fit(&image, &settings, max_bytes)?;
    let scored = if (fitted.width, fitted.height) == (w, h) {
        score_like_search(
            &image,
            format,
            fitted.quality,
            &fitted.bytes,
            &options.auto_scoring,
            background,
            deadline,
        )?
    } else {
        None
    };
    Ok(Output {
        width: fitted.width,
        height: fitted.height,
        quality: Some(fitted.quality),
        score: scored.map(|(s, _)| s),
        target_met: Some(scored.is_some_and(|(s, _)| s >= f64::from(target))),
        budget_limited: true,
        score_sampled: scored.is_some_and(|(_, sampled)| sampled),
        ..base(fitted.bytes, format)
    })
}

/// JPEG with 4:4:4 chroma, otherwise as `encode::jpeg` encodes (mozjpeg's
/// tables, optimised Huffman, baseline unless `jpeg::PROGRESSIVE`, no trellis).
fn jpeg_444(
    image: &DynamicImage,
    quality: u8,
    background: [u8; 3],
) -> Result<Vec<u8>, PipelineError> {
    use mozjpeg::{ColorSpace, Compress};
    let (w, h) = (image.width() as usize, image.height() as usize);
    let rgb = if image.color().has_alpha() {
        encode::flatten(image, background)
    } else {
        image.to_rgb8()
    };
    let quality = quality.clamp(1, 100);
    encode::contain_panic("mozjpeg", || {
        let mut c = Compress::new(ColorSpace::JCS_RGB);
        c.set_fastest_defaults();
        c.set_size(w, h);
        c.set_quality(f32::from(quality));
        let table = mozjpeg::qtable::NRobidoux.scaled(f32::from(quality), f32::from(quality));
        c.set_luma_qtable(&table);
        c.set_chroma_qtable(&table);
        c.set_chroma_sampling_pixel_sizes((1, 1), (1, 1));
        if encode::jpeg::PROGRESSIVE {
            c.set_progressive_mode();
        }
        c.set_optimize_coding(true);
        let io = |e: std::io::Error| PipelineError::Encode(format!("mozjpeg: {e}"));
        let mut started = c.start_compress(Vec::new()).map_err(io)?;
        started.write_scanlines(rgb.as_raw()).map_err(io)?;
        started.finish().map_err(io)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(quality: u8, score: f64) -> Trial {
        Trial {
            quality,
            bytes: Vec::new(),
            score,
        }
    }

    #[test]
    fn a_pass_close_to_the_target_ends_the_search() {
        assert_eq!(
            next_quality(&[t(84, 82.9)], 80.0, Codec::Webp, Q_MIN, 100),
            None
        );
    }

    #[test]
    fn a_first_failure_steps_up_past_the_target_by_the_prior_slope() {
        // 6 points short plus the aim margin, at 0.73 points a step near 84.
        let q = next_quality(&[t(84, 74.0)], 80.0, Codec::Webp, Q_MIN, 100).unwrap();
        let slope = Codec::Webp.slope(84);
        assert_eq!(q, (84.0 + (80.0 + AIM - 74.0) / slope).ceil() as u8);
        assert!((93..=95).contains(&q), "{q}");
    }

    #[test]
    fn a_pass_far_above_the_target_steps_down_but_not_below_the_floor() {
        let q = next_quality(&[t(84, 95.0)], 80.0, Codec::Webp, Q_MIN, 100).unwrap();
        assert!((Q_MIN..84).contains(&q), "{q}");
        let q = next_quality(&[t(20, 99.0)], 80.0, Codec::Webp, Q_MIN, 100).unwrap();
        assert_eq!(q, Q_MIN);
    }

    #[test]
    fn a_bracket_is_interpolated_and_a_narrow_one_ends_the_search() {
        let q = next_quality(&[t(70, 76.0), t(90, 86.0)], 80.0, Codec::Webp, Q_MIN, 100).unwrap();
        assert_eq!(q, 78);
        assert_eq!(
            next_quality(&[t(77, 79.0), t(80, 84.0)], 80.0, Codec::Webp, Q_MIN, 100),
            None
        );
    }

    #[test]
    fn the_slope_prior_is_steeper_at_low_qualities() {
        assert!(Codec::Webp.slope(40) > Codec::Webp.slope(90));
        assert!(Codec::Webp.slope(100) > 0.0);
    }

    /// 3072x1536 (12 x 6 tiles of 256): flat grey but for noise in the
    /// 3 x 6 tiles of the right quarter.
    fn a_quarter_busy() -> DynamicImage {
        let mut img = image::RgbImage::from_pixel(3072, 1536, image::Rgb([128, 128, 128]));
        for (x, y, p) in img.enumerate_pixels_mut() {
            if x >= 2304 {
                let v = ((x * 7919 + y * 104_729) % 251) as u8;
                *p = image::Rgb([v, v.wrapping_mul(3), v.wrapping_add(90)]);
            }
        }
        DynamicImage::ImageRgb8(img)
    }

    fn busy_tiles(sample: &DynamicImage) -> usize {
        let (w, h) = sample.dimensions();
        (0..h / TILE)
            .flat_map(|j| (0..w / TILE).map(move |i| (i, j)))
            .filter(|&(i, j)| detail(sample, i * TILE, j * TILE, TILE) > 1.0)
            .count()
    }

    #[test]
    fn the_sample_holds_flat_and_busy_tiles_in_the_images_proportion() {
        let img = a_quarter_busy();
        let sample = sample(&img, 12).unwrap();
        let (nx, ny) = grid_shape(3072, 1536, TILE, 12);
        assert_eq!(sample.dimensions(), (nx * TILE, ny * TILE));
        let n = (nx * ny) as usize;
        // A quarter of the image is busy, so a quarter of the tiles.
        let busy = busy_tiles(&sample);
        assert!((n / 4..=n / 4 + 1).contains(&busy), "{busy} busy of {n}");
        // Evenly spaced tiles follow the layout instead: two of the five
        // columns reach into the busy quarter, so 40% of the tiles are busy.
        let even = busy_tiles(&mosaic(&img, TILE, 12).unwrap());
        assert_eq!((nx, ny), (5, 3));
        assert_eq!(even, 6, "{even} busy of {n} evenly spaced");
        // The same image gives the same sample.
        assert_eq!(
            sample.as_bytes(),
            super::sample(&img, 12).unwrap().as_bytes()
        );
    }

    #[test]
    fn small_and_narrow_images_are_searched_whole_or_on_the_plain_mosaic() {
        let small = DynamicImage::new_rgb8(1000, 1000);
        assert!(sample(&small, 12).is_none());
        // 2 x 8 tiles of 256: too few to rank, the evenly spaced mosaic.
        let narrow = DynamicImage::ImageRgb8(image::RgbImage::from_fn(512, 2048, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 7])
        }));
        let s = sample(&narrow, 12).unwrap();
        let m = mosaic(&narrow, TILE, 12).unwrap();
        assert_eq!(s.as_bytes(), m.as_bytes());
    }
}
