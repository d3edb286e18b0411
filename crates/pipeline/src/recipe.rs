//! Edit recipes: text such as `resize 512x512, grayscale | blur 1.5,
//! quality 85, format webp` turned into pipeline steps.
//!
//! Steps are separated by commas, `|`, `;` or plain spaces; a step's
//! arguments follow its keyword (`crop 10,10,200,200` and `crop 10 10 200
//! 200` are the same). Words that are not steps, and steps whose arguments do
//! not parse, are returned in `ignored` so that free text still yields an
//! image. Parsing never fails.

use crate::{Fit, FlipAxis, Format, Step};

/// A parsed recipe.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recipe {
    pub steps: Vec<Step>,
    pub quality: Option<u8>,
    pub format: Option<Format>,
    /// Words (or `keyword argument` pairs) that were not understood, in order.
    pub ignored: Vec<String>,
}

/// Parses `text`; unknown words end up in `Recipe::ignored`.
pub fn parse(text: &str) -> Recipe {
    let tokens: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '|' | ';'))
        .filter(|t| !t.is_empty())
        .collect();
    let mut recipe = Recipe::default();
    let mut i = 0;
    while i < tokens.len() {
        let word = tokens[i];
        let args = &tokens[i + 1..];
        match parse_step(&word.to_ascii_lowercase(), args, &mut recipe) {
            Some(consumed) => i += 1 + consumed,
            None => {
                // A known keyword with a bad argument is reported together
                // with that argument; any other word alone.
                let takes_arg = is_keyword(word) && args.first().is_some_and(|a| !is_keyword(a));
                if takes_arg {
                    recipe.ignored.push(format!("{word} {}", args[0]));
                    i += 2;
                } else {
                    recipe.ignored.push(word.to_owned());
                    i += 1;
                }
            }
        }
    }
    recipe
}

const KEYWORDS: [&str; 20] = [
    "resize",
    "width",
    "height",
    "crop",
    "rotate",
    "flip",
    "mirror",
    "flop",
    "grayscale",
    "greyscale",
    "gray",
    "grey",
    "blur",
    "sharpen",
    "brightness",
    "contrast",
    "invert",
    "negate",
    "quality",
    "format",
];

fn is_keyword(word: &str) -> bool {
    KEYWORDS.contains(&word.to_ascii_lowercase().as_str())
}

fn uint(s: &str) -> Option<u32> {
    s.parse().ok().filter(|&v| v > 0)
}

fn fit_word(s: Option<&&str>) -> Option<Fit> {
    s.and_then(|s| s.parse().ok())
}

/// Parses one step starting at keyword `word`; returns how many argument
/// tokens it used, or `None` when `word` with `args` is not a step.
fn parse_step(word: &str, args: &[&str], recipe: &mut Recipe) -> Option<usize> {
    let arg = args.first().copied();
    let mut push = |step| recipe.steps.push(step);
    match word {
        "resize" => {
            let a = arg?.to_ascii_lowercase();
            let (width, height) = match a.split_once('x') {
                Some((w, h)) => (
                    if w.is_empty() { None } else { Some(uint(w)?) },
                    if h.is_empty() { None } else { Some(uint(h)?) },
                ),
                None => {
                    let side = uint(&a)?;
                    (Some(side), Some(side))
                }
            };
            if width.is_none() && height.is_none() {
                return None;
            }
            let fit = fit_word(args.get(1));
            push(Step::Resize {
                width,
                height,
                fit: fit.unwrap_or_default(),
            });
            Some(1 + usize::from(fit.is_some()))
        }
        "width" | "height" => {
            let v = uint(arg?)?;
            let (width, height) = if word == "width" {
                (Some(v), None)
            } else {
                (None, Some(v))
            };
            push(Step::Resize {
                width,
                height,
                fit: Fit::Inside,
            });
            Some(1)
        }
        "crop" => {
            let nums: Vec<u32> = args.iter().take(4).map_while(|a| a.parse().ok()).collect();
            let [x, y, width, height] = nums[..] else {
                return None;
            };
            if width == 0 || height == 0 {
                return None;
            }
            push(Step::Crop {
                x,
                y,
                width,
                height,
            });
            Some(4)
        }
        "rotate" => {
            let deg: i32 = arg?.trim_end_matches(['°']).parse().ok()?;
            let deg = deg.rem_euclid(360);
            if deg % 90 != 0 {
                return None;
            }
            push(Step::Rotate(deg as u16));
            Some(1)
        }
        "flip" | "mirror" | "flop" => {
            let axis = match arg.map(str::to_ascii_lowercase).as_deref() {
                Some("h" | "horizontal" | "x") => Some(FlipAxis::Horizontal),
                Some("v" | "vertical" | "y") => Some(FlipAxis::Vertical),
                _ => None,
            };
            match (word, axis) {
                (_, Some(a)) => {
                    push(Step::Flip(a));
                    Some(1)
                }
                ("flip", None) => {
                    push(Step::Flip(FlipAxis::Vertical));
                    Some(0)
                }
                (_, None) => {
                    push(Step::Flip(FlipAxis::Horizontal));
                    Some(0)
                }
            }
        }
        "grayscale" | "greyscale" | "gray" | "grey" => {
            push(Step::Grayscale);
            Some(0)
        }
        "blur" => {
            // `blur` alone is a gentle blur; with a number, that sigma.
            match arg.and_then(|a| a.parse::<f32>().ok()) {
                Some(s) if s.is_finite() && s > 0.0 && s <= 100.0 => {
                    push(Step::Blur(s));
                    Some(1)
                }
                Some(_) => None,
                None => {
                    push(Step::Blur(1.0));
                    Some(0)
                }
            }
        }
        "sharpen" => {
            push(Step::Sharpen);
            Some(0)
        }
        "brightness" => {
            let v: i32 = arg?.trim_end_matches('%').parse().ok()?;
            if !(-100..=100).contains(&v) {
                return None;
            }
            push(Step::Brightness(v));
            Some(1)
        }
        "contrast" => {
            let v: f32 = arg?.trim_end_matches('%').parse().ok()?;
            if !(-100.0..=100.0).contains(&v) {
                return None;
            }
            push(Step::Contrast(v));
            Some(1)
        }
        "invert" | "negate" => {
            push(Step::Invert);
            Some(0)
        }
        "quality" => {
            let q: u8 = arg?.parse().ok()?;
            if !(1..=100).contains(&q) {
                return None;
            }
            recipe.quality = Some(q);
            Some(1)
        }
        "format" => {
            recipe.format = Some(arg?.parse().ok()?);
            Some(1)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spec_example() {
        let r = parse("resize 512x512, grayscale | blur 1.5, quality 85, format webp");
        assert_eq!(
            r.steps,
            vec![
                Step::Resize {
                    width: Some(512),
                    height: Some(512),
                    fit: Fit::Inside
                },
                Step::Grayscale,
                Step::Blur(1.5),
            ]
        );
        assert_eq!(r.quality, Some(85));
        assert_eq!(r.format, Some(Format::Webp));
        assert!(r.ignored.is_empty());
    }

    #[test]
    fn parses_every_step_of_section_4() {
        let r = parse(
            "width 800, height 600, crop 10,10,200,200, rotate 90, flip h, sharpen, \
             brightness 10, contrast 20, invert, format jpeg",
        );
        assert_eq!(
            r.steps,
            vec![
                Step::Resize {
                    width: Some(800),
                    height: None,
                    fit: Fit::Inside
                },
                Step::Resize {
                    width: None,
                    height: Some(600),
                    fit: Fit::Inside
                },
                Step::Crop {
                    x: 10,
                    y: 10,
                    width: 200,
                    height: 200
                },
                Step::Rotate(90),
                Step::Flip(FlipAxis::Horizontal),
                Step::Sharpen,
                Step::Brightness(10),
                Step::Contrast(20.0),
                Step::Invert,
            ]
        );
        assert_eq!(r.format, Some(Format::Jpeg));
        assert!(r.ignored.is_empty(), "{:?}", r.ignored);
    }

    #[test]
    fn free_text_is_ignored_word_by_word() {
        let r = parse("a beautiful landscape");
        assert!(r.steps.is_empty());
        assert_eq!(r.ignored, ["a", "beautiful", "landscape"]);
    }

    #[test]
    fn bad_arguments_are_ignored_with_their_keyword() {
        let r = parse("rotate 45, grayscale, quality 500, format gif, resize big");
        assert_eq!(r.steps, vec![Step::Grayscale]);
        assert_eq!(r.quality, None);
        assert_eq!(r.format, None);
        assert_eq!(
            r.ignored,
            ["rotate 45", "quality 500", "format gif", "resize big"]
        );
    }

    #[test]
    fn resize_accepts_a_fit_and_one_sided_boxes() {
        let r = parse("RESIZE 300x200 cover | resize x100 | flip v");
        assert_eq!(
            r.steps,
            vec![
                Step::Resize {
                    width: Some(300),
                    height: Some(200),
                    fit: Fit::Cover
                },
                Step::Resize {
                    width: None,
                    height: Some(100),
                    fit: Fit::Inside
                },
                Step::Flip(FlipAxis::Vertical),
            ]
        );
    }

    #[test]
    fn empty_text_is_an_empty_recipe() {
        assert_eq!(parse("  ,, | "), Recipe::default());
    }
}
